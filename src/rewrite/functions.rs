//! Which functions, operators and types a query may use.
//!
//! Allowed by default: PostgreSQL built-ins that compute on their arguments and nothing else
//! (aggregates, window functions, math, string, date/time, JSON, arrays, conditionals). Refused
//! unless a policy names them: everything else — above all functions that run SQL text
//! (`query_to_xml`, `ts_stat`, `dblink`), read files or large objects, change settings, sleep,
//! signal backends or reveal catalog contents — and every function tablegate does not know.

use std::collections::HashSet;
use std::sync::LazyLock;

use sqlparser::ast::{BinaryOperator, DataType, UnaryOperator};

/// Built-in aggregates: safe anywhere, and leakproof (their arguments come from rows that
/// already passed every filter).
pub const AGGREGATES: [&str; 40] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "range_agg",
    "range_intersect_agg",
];

static SAFE_FUNCTIONS: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    [
        // aggregates beyond AGGREGATES (grouping() only reads the grouping set)
        "grouping",
        // window functions
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
        // math
        "abs",
        "cbrt",
        "ceil",
        "ceiling",
        "degrees",
        "div",
        "exp",
        "factorial",
        "floor",
        "gcd",
        "lcm",
        "ln",
        "log",
        "log10",
        "min_scale",
        "mod",
        "pi",
        "power",
        "pow",
        "radians",
        "round",
        "scale",
        "sign",
        "sqrt",
        "trim_scale",
        "trunc",
        "width_bucket",
        "random",
        "acos",
        "asin",
        "atan",
        "atan2",
        "cos",
        "cot",
        "sin",
        "tan",
        "sinh",
        "cosh",
        "tanh",
        "asinh",
        "acosh",
        "atanh",
        "acosd",
        "asind",
        "atand",
        "atan2d",
        "cosd",
        "cotd",
        "sind",
        "tand",
        // strings
        "ascii",
        "bit_length",
        "btrim",
        "char_length",
        "character_length",
        "chr",
        "concat",
        "concat_ws",
        "format",
        "initcap",
        "left",
        "length",
        "lower",
        "lpad",
        "ltrim",
        "md5",
        "octet_length",
        "overlay",
        "position",
        "quote_ident",
        "quote_literal",
        "quote_nullable",
        "regexp_count",
        "regexp_instr",
        "regexp_like",
        "regexp_match",
        "regexp_matches",
        "regexp_replace",
        "regexp_split_to_array",
        "regexp_split_to_table",
        "regexp_substr",
        "repeat",
        "replace",
        "reverse",
        "right",
        "rpad",
        "rtrim",
        "split_part",
        "starts_with",
        "strpos",
        "substr",
        "substring",
        "to_ascii",
        "to_hex",
        "translate",
        "upper",
        "unistr",
        "normalize",
        "encode",
        "decode",
        "sha224",
        "sha256",
        "sha384",
        "sha512",
        "string_to_array",
        "string_to_table",
        "array_to_string",
        "to_char",
        "to_date",
        "to_number",
        "to_timestamp",
        // date and time
        "age",
        "clock_timestamp",
        "current_date",
        "current_time",
        "current_timestamp",
        "date_bin",
        "date_part",
        "date_trunc",
        "extract",
        "isfinite",
        "justify_days",
        "justify_hours",
        "justify_interval",
        "localtime",
        "localtimestamp",
        "make_date",
        "make_interval",
        "make_time",
        "make_timestamp",
        "make_timestamptz",
        "now",
        "statement_timestamp",
        "timeofday",
        "transaction_timestamp",
        "timezone",
        // conditionals and rows
        "coalesce",
        "nullif",
        "greatest",
        "least",
        "num_nonnulls",
        "num_nulls",
        "row",
        // JSON
        "to_json",
        "to_jsonb",
        "array_to_json",
        "row_to_json",
        "json_build_array",
        "jsonb_build_array",
        "json_build_object",
        "jsonb_build_object",
        "json_object",
        "jsonb_object",
        "json_array_length",
        "jsonb_array_length",
        "json_each",
        "jsonb_each",
        "json_each_text",
        "jsonb_each_text",
        "json_extract_path",
        "jsonb_extract_path",
        "json_extract_path_text",
        "jsonb_extract_path_text",
        "json_object_keys",
        "jsonb_object_keys",
        "json_array_elements",
        "jsonb_array_elements",
        "json_array_elements_text",
        "jsonb_array_elements_text",
        "json_typeof",
        "jsonb_typeof",
        "json_strip_nulls",
        "jsonb_strip_nulls",
        "jsonb_set",
        "jsonb_insert",
        "jsonb_pretty",
        "jsonb_path_exists",
        "jsonb_path_match",
        "jsonb_path_query",
        "jsonb_path_query_array",
        "jsonb_path_query_first",
        "json_to_record",
        "json_to_recordset",
        "jsonb_to_record",
        "jsonb_to_recordset",
        // arrays and ranges
        "array",
        "array_append",
        "array_cat",
        "array_dims",
        "array_fill",
        "array_length",
        "array_lower",
        "array_ndims",
        "array_position",
        "array_positions",
        "array_prepend",
        "array_remove",
        "array_replace",
        "array_upper",
        "cardinality",
        "trim_array",
        "unnest",
        "generate_subscripts",
        "generate_series",
        "isempty",
        "lower_inc",
        "upper_inc",
        "lower_inf",
        "upper_inf",
        "range_merge",
        "int4range",
        "int8range",
        "numrange",
        "daterange",
        "tsrange",
        "tstzrange",
        // text search
        "to_tsvector",
        "to_tsquery",
        "plainto_tsquery",
        "phraseto_tsquery",
        "websearch_to_tsquery",
        "ts_rank",
        "ts_rank_cd",
        // type conversions written as calls
        "int",
        "int2",
        "int4",
        "int8",
        "integer",
        "smallint",
        "bigint",
        "text",
        "varchar",
        "numeric",
        "decimal",
        "float4",
        "float8",
        "real",
        "bool",
        "boolean",
        "date",
        "time",
        "timestamp",
        "timestamptz",
        "interval",
        "bpchar",
        // what drivers ask when they connect
        "version",
        "current_schema",
        "gen_random_uuid",
        // what pools send when they hand a connection back (asyncpg): releases only the
        // session's own advisory locks, and taking one is not allowed
        "pg_advisory_unlock_all",
    ]
    .into_iter()
    .chain(AGGREGATES)
    .collect()
});

/// Whether a built-in function (name folded, schema dropped if it was pg_catalog) is safe.
pub fn is_safe_function(name: &str) -> bool {
    SAFE_FUNCTIONS.contains(name)
}

/// Operators with PostgreSQL's built-in meaning only (custom and `OPERATOR(...)` forms refused).
pub fn is_safe_binary_operator(op: &BinaryOperator) -> bool {
    use BinaryOperator::*;
    matches!(
        op,
        Plus | Minus
            | Multiply
            | Divide
            | Modulo
            | StringConcat
            | Gt
            | Lt
            | GtEq
            | LtEq
            | Eq
            | NotEq
            | And
            | Or
            | BitwiseOr
            | BitwiseAnd
            | PGBitwiseXor
            | PGBitwiseShiftLeft
            | PGBitwiseShiftRight
            | PGExp
            | PGOverlap
            | PGRegexMatch
            | PGRegexIMatch
            | PGRegexNotMatch
            | PGRegexNotIMatch
            | PGLikeMatch
            | PGILikeMatch
            | PGNotLikeMatch
            | PGNotILikeMatch
            | PGStartsWith
            | Arrow
            | LongArrow
            | HashArrow
            | HashLongArrow
            | HashMinus
            | AtArrow
            | ArrowAt
            | AtQuestion
            | AtAt
            | Question
            | QuestionAnd
            | QuestionPipe
            | Overlaps
    )
}

pub fn is_safe_unary_operator(op: &UnaryOperator) -> bool {
    use UnaryOperator::*;
    matches!(
        op,
        Plus | Minus | Not | BitwiseNot | PGSquareRoot | PGCubeRoot | PGAbs
    )
}

/// Types whose input functions look names up in the catalog (`'pg_authid'::regclass`): casting
/// to them probes for objects the user cannot see.
const CATALOG_LOOKUP_TYPES: [&str; 11] = [
    "regclass",
    "regcollation",
    "regconfig",
    "regdictionary",
    "regnamespace",
    "regoper",
    "regoperator",
    "regproc",
    "regprocedure",
    "regrole",
    "regtype",
];

/// PostgreSQL's own types that sqlparser has no keyword for (it parses them as custom names).
/// Every other custom name is refused: it may be a table's row type — `'(,,)'::secret` and
/// `row_to_json('(,,)'::orders)` answer whether a table exists and list its columns, hidden
/// ones included, whatever the user's grants — or a domain whose CHECK runs functions
/// tablegate has not vetted. The decision depends on the name alone, never on the catalog, so
/// it reveals nothing either. Each comes with its OID and its array type's OID (fixed across
/// PostgreSQL versions): the parameter types a client may declare in Parse.
const BUILTIN_TYPES: &[(&str, u32, u32)] = &[
    // spelled as keywords elsewhere; named like this when schema-qualified or by their alias
    ("bool", 16, 1000),
    ("int2", 21, 1005),
    ("int4", 23, 1007),
    ("int8", 20, 1016),
    ("float4", 700, 1021),
    ("float8", 701, 1022),
    ("numeric", 1700, 1231),
    ("text", 25, 1009),
    ("varchar", 1043, 1015),
    ("bpchar", 1042, 1014),
    ("char", 18, 1002),
    ("name", 19, 1003),
    ("date", 1082, 1182),
    ("time", 1083, 1183),
    ("timetz", 1266, 1270),
    ("timestamp", 1114, 1115),
    ("timestamptz", 1184, 1185),
    ("interval", 1186, 1187),
    ("uuid", 2950, 2951),
    ("json", 114, 199),
    ("jsonb", 3802, 3807),
    ("jsonpath", 4072, 4073),
    ("bytea", 17, 1001),
    ("bit", 1560, 1561),
    ("varbit", 1562, 1563),
    ("tsvector", 3614, 3643),
    ("tsquery", 3615, 3645),
    // network, money, geometry
    ("inet", 869, 1041),
    ("cidr", 650, 651),
    ("macaddr", 829, 1040),
    ("macaddr8", 774, 775),
    ("money", 790, 791),
    ("point", 600, 1017),
    ("line", 628, 629),
    ("lseg", 601, 1018),
    ("box", 603, 1020),
    ("path", 602, 1019),
    ("polygon", 604, 1027),
    ("circle", 718, 719),
    // ranges and multiranges
    ("int4range", 3904, 3905),
    ("int8range", 3926, 3927),
    ("numrange", 3906, 3907),
    ("tsrange", 3908, 3909),
    ("tstzrange", 3910, 3911),
    ("daterange", 3912, 3913),
    ("int4multirange", 4451, 6150),
    ("int8multirange", 4536, 6157),
    ("nummultirange", 4532, 6151),
    ("tsmultirange", 4533, 6152),
    ("tstzmultirange", 4534, 6153),
    ("datemultirange", 4535, 6155),
    // object identifiers as plain numbers (the regclass family above looks names up)
    ("oid", 26, 1028),
    // what a client declares for a parameter it leaves to the server to type
    ("unknown", 705, 0),
];

/// Text search functions whose two-argument form takes a configuration first: a `regconfig`,
/// which PostgreSQL looks up by name — `to_tsvector('nosuch.cfg', x)` would tell which schemas
/// exist.
const CONFIGURED_TEXT_SEARCH: [&str; 5] = [
    "to_tsvector",
    "to_tsquery",
    "plainto_tsquery",
    "phraseto_tsquery",
    "websearch_to_tsquery",
];

/// PostgreSQL's built-in text search configurations.
const BUILTIN_TEXT_SEARCH_CONFIGS: [&str; 29] = [
    "arabic",
    "armenian",
    "basque",
    "catalan",
    "danish",
    "dutch",
    "english",
    "finnish",
    "french",
    "german",
    "greek",
    "hindi",
    "hungarian",
    "indonesian",
    "irish",
    "italian",
    "lithuanian",
    "nepali",
    "norwegian",
    "portuguese",
    "romanian",
    "russian",
    "serbian",
    "simple",
    "spanish",
    "swedish",
    "tamil",
    "turkish",
    "yiddish",
];

/// Whether a call of `function` with `arg_count` arguments names a text search configuration
/// in its first argument.
pub fn takes_text_search_config(function: &str, arg_count: usize) -> bool {
    arg_count == 2 && CONFIGURED_TEXT_SEARCH.contains(&function)
}

/// The built-in configuration a name means (`English`, `pg_catalog.english`), if it is one.
pub fn builtin_text_search_config(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let bare = lower.strip_prefix("pg_catalog.").unwrap_or(&lower);
    BUILTIN_TEXT_SEARCH_CONFIGS
        .iter()
        .find(|c| **c == bare)
        .copied()
}

/// Why a parameter type a client declared in Parse may not be used, if it may not: the same
/// types as in casts, by OID (0 leaves the type to the server).
pub fn refused_parameter_type(oid: u32) -> Option<String> {
    let builtin = oid == 0
        || BUILTIN_TYPES
            .iter()
            .any(|&(_, scalar, array)| oid == scalar || (array != 0 && oid == array));
    (!builtin).then(|| {
        format!(
            "the parameter type with OID {oid}, which is not one of PostgreSQL's plain data types,"
        )
    })
}

/// Built-in types no column compared with a value of them is converted to on the way (a
/// conversion of that value fails on its own content only), with their arrays: integers,
/// numeric, text, bool, bytea, date, time, timestamp, interval, uuid and JSON. A float
/// converts a numeric column, `oid` a bigint one, `timestamptz` a timestamp one, each failing
/// on values out of its range.
const CONVERTING_NO_COLUMN: [&str; 16] = [
    "bool",
    "int2",
    "int4",
    "int8",
    "numeric",
    "text",
    "varchar",
    "bpchar",
    "bytea",
    "date",
    "time",
    "timestamp",
    "interval",
    "uuid",
    "json",
    "jsonb",
];

/// Whether a parameter a client declared in Parse with type `oid` may convert a column it is
/// compared with ([`CONVERTING_NO_COLUMN`]). Unknown (0, 705) leaves the type to where the
/// parameter is used.
pub fn risky_parameter_type(oid: u32) -> bool {
    const UNKNOWN: u32 = 705;
    oid != 0
        && oid != UNKNOWN
        && !BUILTIN_TYPES.iter().any(|&(name, scalar, array)| {
            CONVERTING_NO_COLUMN.contains(&name) && (oid == scalar || oid == array)
        })
}

/// Why a type may not be used in a cast, if it may not.
pub fn refused_type(data_type: &DataType) -> Option<String> {
    match data_type {
        DataType::Custom(name, modifiers) => {
            if !modifiers.is_empty() {
                return Some(format!("type modifiers of `{data_type}`"));
            }
            let parts = crate::names::fold_object_name(name).unwrap_or_default();
            let not_builtin = || {
                Some(format!(
                    "the type {name}, which is not built into PostgreSQL,"
                ))
            };
            let last = match parts.as_slice() {
                [last] => last.as_str(),
                [schema, last] if schema == "pg_catalog" => last.as_str(),
                _ => return not_builtin(),
            };
            if CATALOG_LOOKUP_TYPES.contains(&last) {
                Some(format!("the catalog lookup type {last}"))
            } else if BUILTIN_TYPES.iter().any(|(name, ..)| *name == last) {
                None
            } else {
                not_builtin()
            }
        }
        DataType::Regclass => Some("the catalog lookup type regclass".into()),
        DataType::Array(inner) => match inner {
            sqlparser::ast::ArrayElemTypeDef::AngleBracket(t)
            | sqlparser::ast::ArrayElemTypeDef::SquareBracket(t, _)
            | sqlparser::ast::ArrayElemTypeDef::Parenthesis(t)
            | sqlparser::ast::ArrayElemTypeDef::ParenthesisNotNull(t) => refused_type(t),
            sqlparser::ast::ArrayElemTypeDef::None => None,
            sqlparser::ast::ArrayElemTypeDef::Qualified(t, _) => refused_type(t),
        },
        // PostgreSQL's own type keywords. Any other keyword sqlparser knows from another database
        // (DATETIME, STRING, BLOB, …) reaches PostgreSQL as a plain name, which a table's row
        // type could answer to.
        DataType::Character(_)
        | DataType::Char(_)
        | DataType::CharacterVarying(_)
        | DataType::CharVarying(_)
        | DataType::Varchar(_)
        | DataType::Text
        | DataType::Uuid
        | DataType::Bytea
        | DataType::Bit(_)
        | DataType::BitVarying(_)
        | DataType::VarBit(_)
        | DataType::Numeric(_)
        | DataType::Decimal(_)
        | DataType::Dec(_)
        | DataType::Float(_)
        | DataType::Real
        | DataType::DoublePrecision
        | DataType::Float4
        | DataType::Float8
        | DataType::SmallInt(_)
        | DataType::Int(_)
        | DataType::Integer(_)
        | DataType::BigInt(_)
        | DataType::Int2(_)
        | DataType::Int4(_)
        | DataType::Int8(_)
        | DataType::Bool
        | DataType::Boolean
        | DataType::Date
        | DataType::Time(..)
        | DataType::Timestamp(..)
        | DataType::Interval { .. }
        | DataType::JSON
        | DataType::JSONB
        | DataType::TsVector
        | DataType::TsQuery
        | DataType::GeometricType(_) => None,
        other => Some(format!("the type {other}, which PostgreSQL does not have,")),
    }
}
