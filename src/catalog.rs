//! The live catalog of one datasource: which relations exist and their columns, in table order.
//!
//! The rewriter resolves every relation name against this snapshot exactly as PostgreSQL would
//! (schemas, search_path, `$user`), expands `*` from it and checks column names against it. It is
//! loaded from the upstream database with the service credentials and replaced as a whole on
//! refresh; every snapshot carries a generation so caches keyed on it go stale with it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::names::QualifiedName;
use crate::rewrite::operand_traits::{Collations, OperandTraits, TypeFamilies};
use crate::rewrite::settings::SettingRules;

/// What kind of relation a name denotes. All are protected the same way; the kind is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelationKind {
    Table,
    PartitionedTable,
    View,
    MaterializedView,
    ForeignTable,
}

impl RelationKind {
    fn from_relkind(relkind: i8) -> Option<Self> {
        Some(match relkind as u8 {
            b'r' => RelationKind::Table,
            b'p' => RelationKind::PartitionedTable,
            b'v' => RelationKind::View,
            b'm' => RelationKind::MaterializedView,
            b'f' => RelationKind::ForeignTable,
            _ => return None,
        })
    }

    pub fn describe(self) -> &'static str {
        match self {
            RelationKind::Table => "table",
            RelationKind::PartitionedTable => "partitioned table",
            RelationKind::View => "view",
            RelationKind::MaterializedView => "materialized view",
            RelationKind::ForeignTable => "foreign table",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Column {
    pub name: String,
    /// The type as `format_type` prints it; used by `check` and `explain`.
    pub type_name: String,
    /// Whether its values are records, or hold records: a composite type, a domain, array or
    /// range over one, or a pseudo-type (a view's `record` column). PostgreSQL compares records
    /// field by field and checks a field's type only when it gets there, so a comparison with
    /// such a value can fail on some rows and not others (see `rewrite::leakproof`).
    pub holds_records: bool,
    /// The type families its values belong to, for comparisons that convert them.
    pub families: TypeFamilies,
    /// Its collation's OID: 0 for a type without one, 100 for the database's default.
    pub collation: u32,
}

/// The collation OIDs that are none or the database default: they never conflict.
const NO_COLLATION: [u32; 2] = [0, 100];

#[derive(Clone, Debug)]
pub struct Relation {
    pub name: QualifiedName,
    pub kind: RelationKind,
    /// A partition or an inheritance child: reachable through its parent too.
    pub is_child: bool,
    /// Has partitions or inheritance children, which a plan of it names.
    pub has_children: bool,
    pub columns: Vec<Column>,
    /// Positions (in `columns`) of the primary key's columns; empty without one. PostgreSQL lets
    /// a query grouped by a table's primary key use the table's other columns ungrouped.
    pub primary_key: Vec<usize>,
}

impl Relation {
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Schemas whose relations are PostgreSQL's own catalogs.
pub const SYSTEM_SCHEMAS: [&str; 2] = ["pg_catalog", "information_schema"];

/// Index of a relation in its catalog snapshot.
pub type RelationId = usize;

#[derive(Debug)]
pub struct Catalog {
    generation: u64,
    relations: Vec<Relation>,
    by_name: HashMap<QualifiedName, RelationId>,
    schemas: HashSet<String>,
    /// Names of columns, of any relation, whose values hold records ([`Column::holds_records`]).
    record_columns: HashSet<String>,
    /// For each column name, of any relation, what the columns so named may be when compared.
    column_traits: HashMap<String, OperandTraits>,
    /// The upstream login role: what `$user` in search_path means.
    session_user: String,
    /// The upstream default search_path, as its raw setting.
    default_search_path: String,
    setting_rules: SettingRules,
}

static GENERATIONS: AtomicU64 = AtomicU64::new(1);

impl Catalog {
    pub fn new(
        relations: Vec<Relation>,
        extra_schemas: impl IntoIterator<Item = String>,
        session_user: impl Into<String>,
        default_search_path: impl Into<String>,
    ) -> Self {
        let by_name = relations
            .iter()
            .enumerate()
            .map(|(id, r)| (r.name.clone(), id))
            .collect();
        let mut schemas: HashSet<String> = extra_schemas.into_iter().collect();
        schemas.extend(relations.iter().map(|r| r.name.schema.clone()));
        schemas.extend(SYSTEM_SCHEMAS.iter().map(|s| s.to_string()));
        let record_columns = relations
            .iter()
            .flat_map(|r| &r.columns)
            .filter(|c| c.holds_records)
            .map(|c| c.name.clone())
            .collect();
        let mut collations: Vec<u32> = relations
            .iter()
            .flat_map(|r| &r.columns)
            .map(|c| c.collation)
            .filter(|c| !NO_COLLATION.contains(c))
            .collect();
        collations.sort_unstable();
        collations.dedup();
        let mut column_traits: HashMap<String, OperandTraits> = HashMap::new();
        for column in relations.iter().flat_map(|r| &r.columns) {
            let traits = OperandTraits {
                families: column.families,
                collations: collations
                    .binary_search(&column.collation)
                    .map_or(Collations::NONE, Collations::at),
            };
            let known = column_traits.entry(column.name.clone()).or_default();
            *known = *known | traits;
        }
        Catalog {
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
            relations,
            by_name,
            schemas,
            record_columns,
            column_traits,
            session_user: session_user.into(),
            default_search_path: default_search_path.into(),
            setting_rules: SettingRules::new([], "ISO, MDY"),
        }
    }

    /// The catalog with the upstream's time zone names and date order.
    pub fn with_setting_rules(mut self, rules: SettingRules) -> Catalog {
        self.setting_rules = rules;
        self
    }

    pub fn setting_rules(&self) -> &SettingRules {
        &self.setting_rules
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn relation(&self, id: RelationId) -> &Relation {
        &self.relations[id]
    }

    pub fn relations(&self) -> impl Iterator<Item = (RelationId, &Relation)> {
        self.relations.iter().enumerate()
    }

    pub fn lookup(&self, name: &QualifiedName) -> Option<RelationId> {
        self.by_name.get(name).copied()
    }

    /// Names of columns whose values hold records, in any relation.
    pub fn record_columns(&self) -> &HashSet<String> {
        &self.record_columns
    }

    /// What the columns named `name`, in any relation, may be when compared; `None` when no
    /// column has that name.
    pub fn column_traits(&self, name: &str) -> Option<OperandTraits> {
        self.column_traits.get(name).copied()
    }

    pub fn has_schema(&self, schema: &str) -> bool {
        self.schemas.contains(schema)
    }

    pub fn session_user(&self) -> &str {
        &self.session_user
    }

    pub fn default_search_path(&self) -> &str {
        &self.default_search_path
    }

    /// Reads the catalog of the database `client` is connected to.
    pub async fn load(client: &tokio_postgres::Client) -> Result<Catalog, tokio_postgres::Error> {
        let rows = client
            .query(
                // Types holding records: composite and pseudo-types, and domains, arrays,
                // ranges and multiranges over them. Types of a family ([`TypeFamilies`]):
                // the base types $1, and domains and arrays over them.
                "WITH RECURSIVE record_types(oid) AS ( \
                     SELECT oid FROM pg_catalog.pg_type WHERE typtype IN ('c', 'p') \
                     UNION \
                     SELECT t.oid FROM pg_catalog.pg_type t \
                     LEFT JOIN pg_catalog.pg_range r ON t.oid IN (r.rngtypid, r.rngmultitypid) \
                     JOIN record_types s ON s.oid IN (t.typbasetype, t.typelem, r.rngsubtype)), \
                 family_types(oid, base) AS ( \
                     SELECT oid, oid FROM pg_catalog.pg_type WHERE oid = ANY ($1) \
                     UNION \
                     SELECT t.oid, s.base FROM pg_catalog.pg_type t \
                     JOIN family_types s ON s.oid IN (t.typbasetype, t.typelem)) \
                 SELECT n.nspname::text, c.relname::text, c.relkind, \
                        (c.relispartition OR EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid)), \
                        coalesce(array_agg(a.attname::text ORDER BY a.attnum) \
                                 FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'), \
                        coalesce(array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) \
                                 FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'), \
                        coalesce((SELECT array_agg(k.attname::text) FROM pg_catalog.pg_constraint con \
                                  JOIN pg_catalog.pg_attribute k ON k.attrelid = con.conrelid AND k.attnum = ANY (con.conkey) \
                                  WHERE con.conrelid = c.oid AND con.contype = 'p'), '{}'), \
                        coalesce(array_agg(a.atttypid IN (SELECT oid FROM record_types) ORDER BY a.attnum) \
                                 FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'), \
                        EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhparent = c.oid), \
                        coalesce(array_agg((SELECT min(f.base) FROM family_types f WHERE f.oid = a.atttypid) ORDER BY a.attnum) \
                                 FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}'), \
                        coalesce(array_agg(a.attcollation ORDER BY a.attnum) \
                                 FILTER (WHERE a.attnum > 0 AND NOT a.attisdropped), '{}') \
                 FROM pg_catalog.pg_class c \
                 JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid \
                 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') \
                   AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' \
                 GROUP BY n.nspname, c.relname, c.relkind, c.relispartition, c.oid",
                &[&TypeFamilies::BASE_TYPES.map(|(oid, _)| oid).to_vec()],
            )
            .await?;
        let relations = rows
            .iter()
            .filter_map(|row| {
                let kind = RelationKind::from_relkind(row.get(2))?;
                let names: Vec<String> = row.get(4);
                let types: Vec<String> = row.get(5);
                let key: Vec<String> = row.get(6);
                let holds_records: Vec<bool> = row.get(7);
                let family_bases: Vec<Option<u32>> = row.get(9);
                let collations: Vec<u32> = row.get(10);
                Some(Relation {
                    name: QualifiedName::new(row.get::<_, String>(0), row.get::<_, String>(1)),
                    kind,
                    is_child: row.get(3),
                    has_children: row.get(8),
                    primary_key: key
                        .iter()
                        .filter_map(|k| names.iter().position(|n| n == k))
                        .collect(),
                    columns: names
                        .into_iter()
                        .zip(types)
                        .zip(holds_records)
                        .zip(family_bases)
                        .zip(collations)
                        .map(
                            |((((name, type_name), holds_records), base), collation)| Column {
                                name,
                                type_name,
                                holds_records,
                                families: base
                                    .map_or(TypeFamilies::NONE, TypeFamilies::of_base_type),
                                collation,
                            },
                        )
                        .collect(),
                })
            })
            .collect();
        let schemas = client
            .query(
                "SELECT nspname::text FROM pg_catalog.pg_namespace \
                 WHERE nspname NOT LIKE 'pg\\_toast%' AND nspname NOT LIKE 'pg\\_temp\\_%'",
                &[],
            )
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>();
        let settings = client
            .query_one(
                "SELECT session_user::text, pg_catalog.current_setting('search_path'), \
                        pg_catalog.current_setting('DateStyle'), \
                        ARRAY(SELECT name::text FROM pg_catalog.pg_timezone_names)",
                &[],
            )
            .await?;
        Ok(Catalog::new(
            relations,
            schemas,
            settings.get::<_, String>(0),
            settings.get::<_, String>(1),
        )
        .with_setting_rules(SettingRules::new(
            settings.get::<_, Vec<String>>(3),
            settings.get(2),
        )))
    }
}

/// A compact way to declare catalogs in tests and benchmarks: `("public", "orders", &["id", "region"])`.
/// A few of PostgreSQL's own catalogs are added, as a live database has them.
pub fn catalog_of_tables(tables: &[(&str, &str, &[&str])]) -> Catalog {
    const SYSTEM: [(&str, &str, &[&str]); 3] = [
        (
            "pg_catalog",
            "pg_class",
            &["oid", "relname", "relnamespace"],
        ),
        ("pg_catalog", "pg_user", &["usename", "passwd"]),
        (
            "information_schema",
            "tables",
            &["table_schema", "table_name"],
        ),
    ];
    let relations = tables
        .iter()
        .chain(SYSTEM.iter())
        .map(|(schema, name, columns)| Relation {
            name: QualifiedName::new(*schema, *name),
            kind: RelationKind::Table,
            is_child: false,
            has_children: false,
            primary_key: Vec::new(),
            columns: columns
                .iter()
                .map(|c| Column {
                    name: c.to_string(),
                    type_name: "text".into(),
                    holds_records: false,
                    families: TypeFamilies::NONE,
                    collation: 0,
                })
                .collect(),
        })
        .collect();
    Catalog::new(relations, [], "tablegate", "\"$user\", public").with_setting_rules(
        SettingRules::new(
            ["UTC", "Europe/Berlin", "Asia/Shanghai"].map(String::from),
            "ISO, MDY",
        ),
    )
}

/// [`catalog_of_tables`] with primary keys: `("public", "orders", &["id"])`.
pub fn catalog_with_keys(
    tables: &[(&str, &str, &[&str])],
    keys: &[(&str, &str, &[&str])],
) -> Catalog {
    let base = catalog_of_tables(tables);
    let relations = base
        .relations
        .into_iter()
        .map(|mut r| {
            if let Some((_, _, key)) = keys
                .iter()
                .find(|(s, t, _)| r.name == QualifiedName::new(*s, *t))
            {
                r.primary_key = key
                    .iter()
                    .map(|k| r.column_index(k).expect("a key column of the table"))
                    .collect();
            }
            r
        })
        .collect();
    Catalog::new(
        relations,
        base.schemas,
        base.session_user,
        base.default_search_path,
    )
    .with_setting_rules(base.setting_rules)
}
