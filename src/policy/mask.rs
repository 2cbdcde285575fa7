//! Masks: a column shown in a reduced form instead of being hidden.
//!
//! A policy writes `mask."customers.phone" = "last4"`. The protected source then projects the
//! column as a masking expression under the column's own name, so everything that reads the
//! source — the query, and PostgreSQL's planner when it pushes conditions down — only ever sees
//! the masked value. The expressions are AST built here (the column is a quoted identifier, the
//! constants are literal nodes, functions are pinned to `pg_catalog`); no policy text becomes SQL
//! text. The rewriter additionally lets a masked column only be selected as it is (see
//! `rewrite::scope`), so no query computes on masked values.

use std::fmt;

use sqlparser::ast::{BinaryOperator, DataType, ExactNumberInfo, Expr, TimezoneInfo, Value};

use crate::names::quoted;
use crate::sql;

/// What a masked column shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mask {
    /// `****` and the value's last four characters, as text; values of four characters or fewer
    /// show as `****` only (their last four would be all of them). NULL stays NULL.
    Last4,
    /// The SHA-256 of the value's text (UTF-8), in hex: equal values stay equal, so results can
    /// still be matched up, but the value is not shown. NULL stays NULL.
    Hash,
    /// Always NULL, of the column's own type.
    Null,
    /// Dates and timestamps cut to January 1st of their year, keeping the column's type.
    Year,
}

impl Mask {
    /// Every mask, as policies name them.
    pub const ALL: [Mask; 4] = [Mask::Last4, Mask::Hash, Mask::Null, Mask::Year];

    pub fn parse(text: &str) -> Result<Mask, String> {
        Mask::ALL
            .into_iter()
            .find(|m| m.name() == text)
            .ok_or_else(|| {
                format!(
                    "unknown mask `{text}`; masks are {}",
                    Mask::ALL.map(|m| format!("`{}`", m.name())).join(", ")
                )
            })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mask::Last4 => "last4",
            Mask::Hash => "hash",
            Mask::Null => "null",
            Mask::Year => "year",
        }
    }

    /// The masking expression for `column`, whose type is `type_name` as PostgreSQL's
    /// `format_type` prints it; an error says why the mask cannot apply to that type.
    pub fn expression(self, column: &str, type_name: &str) -> Result<Expr, String> {
        let value = || Expr::Identifier(quoted(column));
        let text = |s: &str| Expr::value(Value::SingleQuotedString(s.to_owned()));
        let number = |n: &str| Expr::value(Value::Number(n.to_owned(), false));
        let as_text = || self.fixed_text(column, type_name);
        Ok(match self {
            Mask::Last4 => {
                let as_text = as_text()?;
                let long = Expr::BinaryOp {
                    left: Box::new(sql::builtin_call("length", vec![as_text.clone()])),
                    op: BinaryOperator::Gt,
                    right: Box::new(number("4")),
                };
                let kept = sql::case(vec![(long, number("4"))], Some(number("0")));
                Expr::BinaryOp {
                    left: Box::new(text("****")),
                    op: BinaryOperator::StringConcat,
                    right: Box::new(sql::builtin_call("right", vec![as_text, kept])),
                }
            }
            Mask::Hash => sql::builtin_call(
                "encode",
                vec![
                    sql::builtin_call(
                        "sha256",
                        vec![sql::builtin_call(
                            "convert_to",
                            vec![as_text()?, text("UTF8")],
                        )],
                    ),
                    text("hex"),
                ],
            ),
            // A CASE that never takes its branch: NULL, typed as the column is.
            Mask::Null => sql::case(vec![(Expr::value(Value::Boolean(false)), value())], None),
            Mask::Year => {
                let year = |arguments| sql::builtin_call("date_trunc", arguments);
                match TimeType::of(type_name) {
                    // As a timestamp without time zone: a date taken as a timestamp with time
                    // zone would be truncated in the session's time zone.
                    Some(TimeType::Date) => sql::cast(
                        year(vec![
                            text("year"),
                            sql::cast(value(), DataType::Timestamp(None, TimezoneInfo::None)),
                        ]),
                        DataType::Date,
                    ),
                    Some(TimeType::Timestamp) => year(vec![text("year"), value()]),
                    // In UTC, not in the session's time zone, which the client sets: truncated
                    // in a zone 167 hours away, a late-December instant shows its year's end.
                    Some(TimeType::TimestampTz) => year(vec![text("year"), value(), text("UTC")]),
                    None => {
                        return Err(format!(
                            "the `year` mask applies to date and timestamp columns; `{column}` is {type_name}"
                        ));
                    }
                }
            }
        })
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Mask {
    /// The column as text that no session setting changes: DateStyle, TimeZone, IntervalStyle
    /// and extra_float_digits, which clients may set, change how dates, times, intervals and
    /// floats print, and a mask over two printings would show more than over one (`last4` of a
    /// date shows month and day in ISO, the year in `SQL, DMY`; found by red-team review).
    fn fixed_text(self, column: &str, type_name: &str) -> Result<Expr, String> {
        let value = Expr::Identifier(quoted(column));
        let text = |s: &str| Expr::value(Value::SingleQuotedString(s.to_owned()));
        let to_char = |value, format: &str| sql::builtin_call("to_char", vec![value, text(format)]);
        Ok(match TimeType::of(type_name) {
            Some(TimeType::Date) => to_char(value, "YYYY-MM-DD"),
            Some(TimeType::Timestamp) => to_char(value, "YYYY-MM-DD HH24:MI:SS.US"),
            Some(TimeType::TimestampTz) => to_char(
                sql::builtin_call("timezone", vec![text("UTC"), value]),
                "YYYY-MM-DD HH24:MI:SS.US",
            ),
            None if matches!(type_name, "real" | "double precision") => sql::cast(
                sql::cast(value, DataType::Numeric(ExactNumberInfo::None)),
                DataType::Text,
            ),
            None if prints_the_same_in_every_session(type_name) => sql::cast(value, DataType::Text),
            None => {
                return Err(format!(
                    "the `{self}` mask shows `{column}` as text, and how {type_name} prints depends on session settings; mask it with `null`"
                ));
            }
        })
    }
}

/// Types whose text no setting a client may change alters.
fn prints_the_same_in_every_session(type_name: &str) -> bool {
    let base = type_name.split('(').next().unwrap_or(type_name).trim_end();
    matches!(
        base,
        "text"
            | "character varying"
            | "character"
            | "\"char\""
            | "name"
            | "citext"
            | "smallint"
            | "integer"
            | "bigint"
            | "numeric"
            | "boolean"
            | "uuid"
            | "json"
            | "jsonb"
            | "inet"
            | "cidr"
            | "macaddr"
            | "macaddr8"
            | "bytea"
    ) && !type_name.ends_with(']')
}

/// Date and timestamp types, which the `year` mask truncates.
enum TimeType {
    Date,
    Timestamp,
    TimestampTz,
}

impl TimeType {
    fn of(type_name: &str) -> Option<TimeType> {
        if type_name == "date" {
            return Some(TimeType::Date);
        }
        // `timestamp(3) with time zone` and the like; arrays (`…[]`) are not dates.
        if !type_name.starts_with("timestamp") {
            return None;
        }
        if type_name.ends_with("with time zone") && !type_name.ends_with("without time zone") {
            Some(TimeType::TimestampTz)
        } else if type_name.ends_with("without time zone") || type_name == "timestamp" {
            Some(TimeType::Timestamp)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sql_of(mask: Mask, type_name: &str) -> String {
        mask.expression("Phone", type_name).unwrap().to_string()
    }

    #[test]
    fn masks_are_expressions_over_the_quoted_column() {
        assert_eq!(
            sql_of(Mask::Last4, "text"),
            "'****' || pg_catalog.right(\"Phone\"::TEXT, CASE WHEN (pg_catalog.length(\"Phone\"::TEXT) > 4) THEN 4 ELSE 0 END)"
        );
        assert_eq!(
            sql_of(Mask::Hash, "character varying(20)"),
            "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(\"Phone\"::TEXT, 'UTF8')), 'hex')"
        );
        assert_eq!(
            sql_of(Mask::Null, "integer"),
            "CASE WHEN (false) THEN \"Phone\" END"
        );
        assert_eq!(
            sql_of(Mask::Year, "date"),
            "pg_catalog.date_trunc('year', \"Phone\"::TIMESTAMP)::DATE"
        );
        assert_eq!(
            sql_of(Mask::Year, "timestamp(3) with time zone"),
            "pg_catalog.date_trunc('year', \"Phone\", 'UTC')"
        );
        assert_eq!(
            sql_of(Mask::Year, "timestamp without time zone"),
            "pg_catalog.date_trunc('year', \"Phone\")"
        );
    }

    #[test]
    fn text_masks_print_values_the_same_in_every_session() {
        assert_eq!(
            sql_of(Mask::Hash, "date"),
            "pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(pg_catalog.to_char(\"Phone\", 'YYYY-MM-DD'), 'UTF8')), 'hex')"
        );
        assert!(sql_of(Mask::Last4, "timestamp with time zone").contains(
            "pg_catalog.to_char(pg_catalog.timezone('UTC', \"Phone\"), 'YYYY-MM-DD HH24:MI:SS.US')"
        ));
        assert!(sql_of(Mask::Last4, "double precision").contains("\"Phone\"::NUMERIC::TEXT"));
        assert!(sql_of(Mask::Last4, "numeric(10,2)").contains("\"Phone\"::TEXT"));
        for type_name in ["interval", "date[]", "text[]", "money", "point"] {
            let err = Mask::Last4.expression("phone", type_name).unwrap_err();
            assert!(
                err.contains("depends on session settings"),
                "{type_name}: {err}"
            );
        }
        assert!(Mask::Null.expression("phone", "interval").is_ok());
    }

    #[test]
    fn year_refuses_what_is_not_a_date_and_names_parse() {
        let err = Mask::Year.expression("phone", "text").unwrap_err();
        assert!(err.contains("`phone` is text"), "{err}");
        assert!(Mask::Year.expression("d", "date[]").is_err());
        assert_eq!(Mask::parse("hash"), Ok(Mask::Hash));
        let err = Mask::parse("partial").unwrap_err();
        assert!(err.contains("`last4`, `hash`, `null`, `year`"), "{err}");
    }
}
