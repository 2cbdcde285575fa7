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

use sqlparser::ast::{BinaryOperator, DataType, Expr, Value};

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
        let as_text = || sql::cast(value(), DataType::Text);
        let text = |s: &str| Expr::value(Value::SingleQuotedString(s.to_owned()));
        let number = |n: &str| Expr::value(Value::Number(n.to_owned(), false));
        Ok(match self {
            Mask::Last4 => {
                let long = Expr::BinaryOp {
                    left: Box::new(sql::builtin_call("length", vec![as_text()])),
                    op: BinaryOperator::Gt,
                    right: Box::new(number("4")),
                };
                let kept = sql::case(vec![(long, number("4"))], Some(number("0")));
                Expr::BinaryOp {
                    left: Box::new(text("****")),
                    op: BinaryOperator::StringConcat,
                    right: Box::new(sql::builtin_call("right", vec![as_text(), kept])),
                }
            }
            Mask::Hash => sql::builtin_call(
                "encode",
                vec![
                    sql::builtin_call(
                        "sha256",
                        vec![sql::builtin_call(
                            "convert_to",
                            vec![as_text(), text("UTF8")],
                        )],
                    ),
                    text("hex"),
                ],
            ),
            // A CASE that never takes its branch: NULL, typed as the column is.
            Mask::Null => sql::case(vec![(Expr::value(Value::Boolean(false)), value())], None),
            Mask::Year => {
                let truncated = sql::builtin_call("date_trunc", vec![text("year"), value()]);
                match YearType::of(type_name) {
                    // date_trunc takes a date as a timestamp with time zone; cast back.
                    Some(YearType::Date) => sql::cast(truncated, DataType::Date),
                    Some(YearType::Timestamp) => truncated,
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

enum YearType {
    Date,
    Timestamp,
}

impl YearType {
    fn of(type_name: &str) -> Option<YearType> {
        if type_name == "date" {
            return Some(YearType::Date);
        }
        // `timestamp(3) with time zone` and the like; arrays (`…[]`) are not dates.
        let timestamp = type_name.starts_with("timestamp")
            && (type_name.ends_with("with time zone")
                || type_name.ends_with("without time zone")
                || type_name == "timestamp");
        timestamp.then_some(YearType::Timestamp)
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
            "pg_catalog.date_trunc('year', \"Phone\")::DATE"
        );
        assert_eq!(
            sql_of(Mask::Year, "timestamp(3) with time zone"),
            "pg_catalog.date_trunc('year', \"Phone\")"
        );
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
