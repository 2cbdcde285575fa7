//! Values of the session settings that change what a row filter means.
//!
//! A row filter runs inside the user's query, so under the user's session settings: a filter
//! `d >= '2024-01-01'` on a timestamptz column, or `day = current_date`, moves with TimeZone;
//! `'01/02/2024'` is January or February by DateStyle's date order; a negative interval literal
//! reads differently under IntervalStyle sql_standard. Drivers set these, so they stay settable,
//! within what a real client needs: time zones the upstream's tz database names (their offsets
//! lie within UTC−12…+14) or hours within ±14, where PostgreSQL alone would take a POSIX zone
//! such as `<+167>-167` a week away; the output style of DateStyle, never its date order; any
//! IntervalStyle but sql_standard. Values are read strictly — a name or a plain `'…'` literal,
//! each DateStyle word exactly one PostgreSQL knows — since PostgreSQL itself reads more than
//! tablegate would (`E'…'` and `$$…$$` strings, `"DMY"` quoted in the list, any word starting
//! with `EURO`), and what tablegate cannot read is refused.

use std::collections::HashSet;

use sqlparser::ast::{Expr, UnaryOperator, Value};

use crate::refusal::{Refusal, RefusalKind};

/// The furthest a time zone given as hours may lie from UTC, as real zones do.
const MAX_HOURS_FROM_UTC: f64 = 14.0;

/// What the upstream accepts as a time zone name and which date order it reads dates in.
#[derive(Clone, Debug)]
pub struct SettingRules {
    /// Zone names, lowercased (PostgreSQL finds them case-insensitively).
    time_zones: HashSet<String>,
    date_order: DateOrder,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DateOrder {
    Mdy,
    Dmy,
    Ymd,
}

impl DateOrder {
    fn name(self) -> &'static str {
        match self {
            DateOrder::Mdy => "MDY",
            DateOrder::Dmy => "DMY",
            DateOrder::Ymd => "YMD",
        }
    }
}

impl SettingRules {
    /// From `pg_timezone_names` and the server's DateStyle (e.g. `ISO, MDY`).
    pub fn new(time_zones: impl IntoIterator<Item = String>, date_style: &str) -> SettingRules {
        let date_order = date_style
            .split(',')
            .map(|token| token.trim().to_ascii_lowercase())
            .fold(DateOrder::Mdy, |order, token| match token.as_str() {
                "dmy" => DateOrder::Dmy,
                "ymd" => DateOrder::Ymd,
                "mdy" => DateOrder::Mdy,
                _ => order,
            });
        SettingRules {
            time_zones: time_zones
                .into_iter()
                .map(|z| z.to_ascii_lowercase())
                .collect(),
            date_order,
        }
    }

    /// Refuses a value of `variable` (folded) that would change what row filters mean.
    pub fn check(&self, variable: &str, values: &[Expr]) -> Result<(), Refusal> {
        match variable {
            "timezone" => self.check_time_zone(values),
            "datestyle" => self.check_date_style(values),
            "intervalstyle" => check_interval_style(values),
            _ => Ok(()),
        }
    }

    /// `SET TIME ZONE value` and `SET TimeZone = value`.
    pub fn check_time_zone(&self, values: &[Expr]) -> Result<(), Refusal> {
        let accepted = match values {
            [Expr::Identifier(id)]
                if id.quote_style.is_none()
                    && matches!(id.value.to_ascii_lowercase().as_str(), "default" | "local") =>
            {
                true
            }
            [value] => match (hours(value), text(value)) {
                (Some(hours), _) => hours.abs() <= MAX_HOURS_FROM_UTC,
                (None, Some(name)) => match name.trim().parse::<f64>() {
                    Ok(hours) => hours.abs() <= MAX_HOURS_FROM_UTC,
                    Err(_) => self.time_zones.contains(&name.to_ascii_lowercase()),
                },
                (None, None) => false,
            },
            _ => false,
        };
        if accepted {
            return Ok(());
        }
        let shown = values
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        Err(Refusal::new(
            RefusalKind::Setting,
            format!(
                "the time zone {shown} is not allowed: row filters read dates in the session's time zone, so it must be a zone the database names (pg_timezone_names) or hours within ±14 of UTC"
            ),
        )
        .with_hint("e.g. SET TimeZone = 'Asia/Shanghai', SET TimeZone = 'UTC' or SET TIME ZONE 8"))
    }

    fn check_date_style(&self, values: &[Expr]) -> Result<(), Refusal> {
        let kept = self.date_order.name();
        let refusal = || {
            Refusal::new(
                RefusalKind::Setting,
                format!(
                    "DateStyle may change how dates are shown, not the date order ({kept}) in which row filters read dates"
                ),
            )
            .with_hint(format!("e.g. SET DateStyle = 'ISO, {kept}' or 'German, {kept}'"))
        };
        let mut order = self.date_order;
        let mut ordered = false;
        for value in values {
            let list = text(value).ok_or_else(refusal)?;
            for token in list.split(',').map(|t| t.trim().to_ascii_lowercase()) {
                // As PostgreSQL's check_datestyle reads the list, left to right.
                match token.as_str() {
                    "iso" | "sql" | "postgres" => {}
                    "german" if !ordered => order = DateOrder::Dmy,
                    "german" => {}
                    "default" => order = self.date_order,
                    "ymd" | "dmy" | "euro" | "european" | "mdy" | "us" | "noneuro"
                    | "noneuropean" => {
                        ordered = true;
                        order = match token.as_str() {
                            "ymd" => DateOrder::Ymd,
                            "dmy" | "euro" | "european" => DateOrder::Dmy,
                            _ => DateOrder::Mdy,
                        };
                    }
                    _ => return Err(refusal()),
                }
            }
        }
        if order == self.date_order {
            Ok(())
        } else {
            Err(refusal())
        }
    }
}

fn check_interval_style(values: &[Expr]) -> Result<(), Refusal> {
    match values {
        [value]
            if text(value).is_some_and(|style| {
                ["postgres", "postgres_verbose", "iso_8601", "default"]
                    .iter()
                    .any(|known| style.eq_ignore_ascii_case(known))
            }) =>
        {
            Ok(())
        }
        _ => Err(Refusal::new(
            RefusalKind::Setting,
            "IntervalStyle may be postgres, postgres_verbose or iso_8601: sql_standard changes how row filters read negative intervals",
        )
        .with_hint("e.g. SET IntervalStyle = 'iso_8601'")),
    }
}

/// A name or string literal's text.
fn text(value: &Expr) -> Option<&str> {
    match value {
        Expr::Identifier(id) => Some(&id.value),
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

/// A number, possibly signed: hours east of UTC.
fn hours(value: &Expr) -> Option<f64> {
    match value {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => hours(expr).map(|h| -h),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => hours(expr),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn rules() -> SettingRules {
        SettingRules::new(["UTC".into(), "Asia/Shanghai".into()], "ISO, MDY")
    }

    fn values(list: &str) -> Vec<Expr> {
        Parser::new(&PostgreSqlDialect {})
            .try_with_sql(list)
            .unwrap()
            .parse_comma_separated(Parser::parse_expr)
            .unwrap()
    }

    fn allowed(variable: &str, list: &str) -> bool {
        rules().check(variable, &values(list)).is_ok()
    }

    #[test]
    fn time_zones_are_real_zones_or_hours_within_a_day() {
        for ok in [
            "'UTC'",
            "'asia/shanghai'",
            "LOCAL",
            "DEFAULT",
            "-8",
            "5.5",
            "'+14'",
        ] {
            assert!(allowed("timezone", ok), "{ok}");
        }
        for refused in [
            "'<+167>-167'",
            "'UTC+167'",
            "'Mars/Olympus'",
            "15",
            "'-15'",
            "utc, utc",
        ] {
            assert!(!allowed("timezone", refused), "{refused}");
        }
    }

    #[test]
    fn date_style_keeps_the_date_order() {
        for ok in [
            "ISO",
            "'ISO, MDY'",
            "SQL, US",
            "'German, MDY'",
            "'MDY, German'",
            "DEFAULT",
        ] {
            assert!(allowed("datestyle", ok), "{ok}");
        }
        for refused in [
            "'ISO, DMY'",
            "German",
            "'Euro'",
            "YMD",
            "'MDY, DMY'",
            // found in review: forms PostgreSQL reads and a lax reading would pass
            "E'ISO, DMY'",
            "$$DMY$$",
            "'Europe'",
            "'\"DMY\"'",
            "'DEFAULT, German'",
        ] {
            assert!(!allowed("datestyle", refused), "{refused}");
        }
        let european = SettingRules::new([], "ISO, DMY");
        assert!(european.check("datestyle", &values("German")).is_ok());
        assert!(european.check("datestyle", &values("'ISO, MDY'")).is_err());
    }

    #[test]
    fn interval_style_is_anything_but_sql_standard() {
        assert!(allowed("intervalstyle", "postgres_verbose"));
        assert!(allowed("intervalstyle", "'iso_8601'"));
        assert!(!allowed("intervalstyle", "SQL_STANDARD"));
        assert!(!allowed("intervalstyle", "E'sql_standard'"));
        assert!(!allowed("intervalstyle", "'sql_standard '"));
    }
}
