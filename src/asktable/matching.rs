//! AskTable's name patterns and row filters, evaluated the way AskTable documents them.
//!
//! Name patterns are regular expressions searched in the bare name (`^…$` anchors an exact
//! name); an absent or empty pattern matches every name. A text row filter reads
//! `schema.table.field <operator expression>` with `*` wildcards in schema and table; its
//! `{{var}}` placeholders become tablegate's `{{user.var}}`, so values still enter the query as
//! typed literals, never as text.

use std::sync::LazyLock;

use regex::Regex;

use crate::names::{NamePattern, display_ident};
use crate::policy::filter::RowFilter;

/// One of a policy's three name patterns.
#[derive(Debug)]
pub struct NameRegex(Option<Regex>);

impl NameRegex {
    pub fn compile(pattern: Option<&str>) -> Result<NameRegex, String> {
        match pattern {
            None => Ok(NameRegex(None)),
            Some("") => Ok(NameRegex(None)),
            Some(p) => Regex::new(p).map(|r| NameRegex(Some(r))).map_err(|e| {
                // The parser's message spans lines (pattern, caret, reason): keep the reason.
                let e = e.to_string();
                let reason = e
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ");
                format!(
                    "the pattern `{p}` is not a regular expression tablegate can evaluate \
                     ({reason})"
                )
            }),
        }
    }

    pub fn matches_all(&self) -> bool {
        self.0.is_none()
    }

    pub fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|r| r.is_match(name))
    }
}

/// A reminder for a pattern that probably does not say what its author meant.
pub fn pattern_doubt(pattern: &str) -> Option<String> {
    (pattern.contains(" |") || pattern.contains("| ")).then(|| {
        format!(
            "the pattern `{pattern}` has spaces around `|`; they are part of what it matches \
             (in AskTable too), so a name without those spaces may not match"
        )
    })
}

/// Which columns a row filter applies to.
#[derive(Debug)]
pub enum FilterTarget {
    /// `schema.table.field`, `*` wildcards in schema and table.
    Dotted(NamePattern),
    Regexes {
        schema: NameRegex,
        table: NameRegex,
        field: NameRegex,
    },
}

impl FilterTarget {
    pub fn matches(&self, schema: &str, table: &str, column: &str) -> bool {
        match self {
            FilterTarget::Dotted(p) => p.matches(&[schema, table, column]),
            FilterTarget::Regexes {
                schema: s,
                table: t,
                field: f,
            } => s.matches(schema) && t.matches(table) && f.matches(column),
        }
    }
}

/// A row filter of an AskTable policy: where it applies and what it compares the column with,
/// already in tablegate's placeholder syntax.
#[derive(Debug)]
pub struct FilterRule {
    /// As written in the export, for messages.
    pub written: String,
    pub target: FilterTarget,
    /// The operator expression (`= {{user.employee_id}}`), or why it cannot be expressed.
    pub operator: Result<String, String>,
}

impl FilterRule {
    /// The text form: `schema.table.field <operator expression>`.
    pub fn parse_text(text: &str) -> Result<FilterRule, String> {
        let (target, operator) = split_target(text.trim());
        let pattern =
            NamePattern::parse(target, &[3]).map_err(|e| format!("row filter `{text}`: {e}"))?;
        if !pattern.part_is_literal(2) {
            return Err(format!(
                "row filter `{text}`: the field must be a column name, not a wildcard"
            ));
        }
        Ok(FilterRule {
            written: text.to_owned(),
            target: FilterTarget::Dotted(pattern),
            operator: translate_operator(operator),
        })
    }

    pub fn structured(
        condition: &str,
        schema: &str,
        table: &str,
        field: &str,
        operator: &str,
    ) -> Result<FilterRule, String> {
        let target = FilterTarget::Regexes {
            schema: NameRegex::compile(Some(schema))?,
            table: NameRegex::compile(Some(table))?,
            field: NameRegex::compile(Some(field))?,
        };
        Ok(FilterRule {
            written: format!("{condition}: {schema}.{table}.{field} {operator}"),
            target,
            operator: translate_operator(operator),
        })
    }

    /// The tablegate row filter for `column`, checked to parse as one.
    pub fn for_column(&self, column: &str) -> Result<String, String> {
        let operator = self
            .operator
            .as_ref()
            .map_err(|e| format!("row filter `{}`: {e}", self.written))?;
        let text = format!("{} {operator}", display_ident(column));
        RowFilter::parse(&text).map_err(|e| {
            format!(
                "row filter `{}`: does not make a valid condition: {e}",
                self.written
            )
        })?;
        Ok(text)
    }
}

/// Splits `schema.table.field rest` after the target, minding quoted names.
fn split_target(text: &str) -> (&str, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            c if !quoted && (c.is_whitespace() || "=<>!".contains(c)) => {
                return (&text[..i], text[i..].trim_start());
            }
            _ => {}
        }
    }
    (text, "")
}

static LIST_MEMBERSHIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b((?:not\s+)?in)\s*\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").unwrap()
});
static QUOTED_VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"'\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}'").unwrap());
static VARIABLE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}").unwrap());

/// AskTable's Jinja placeholders as tablegate's: `IN {{xs}}` becomes `IN ({{user.xs}})` (a list
/// expands to the IN list), `'{{x}}'` and `{{x}}` become `{{user.x}}` (a typed literal, so the
/// quotes AskTable needed around text values go).
fn translate_operator(operator: &str) -> Result<String, String> {
    if operator.is_empty() {
        return Err("the row filter has no condition after the column".into());
    }
    let text = LIST_MEMBERSHIP.replace_all(operator, "$1 ({{user.$2}})");
    let text = QUOTED_VARIABLE.replace_all(&text, "{{user.$1}}");
    let text = VARIABLE.replace_all(&text, "{{user.$1}}");
    let leftover = text.replace("{{user.", "");
    if leftover.contains("{{") || leftover.contains("{%") {
        return Err(format!(
            "`{operator}` uses a template construct other than `{{{{variable}}}}`; tablegate \
             variables are plain values"
        ));
    }
    Ok(text.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_user_variables() {
        assert_eq!(
            translate_operator("= {{employee_id}}").unwrap(),
            "= {{user.employee_id}}"
        );
        assert_eq!(
            translate_operator("= '{{ user_region }}'").unwrap(),
            "= {{user.user_region}}"
        );
        assert_eq!(
            translate_operator("NOT IN {{allowed_departments}}").unwrap(),
            "NOT IN ({{user.allowed_departments}})"
        );
        assert_eq!(
            translate_operator("> '2023-01-01 00:00:00 +00:00'").unwrap(),
            "> '2023-01-01 00:00:00 +00:00'"
        );
        assert!(translate_operator("= {{ x | upper }}").is_err());
        assert!(translate_operator("{% if a %}= 1{% endif %}").is_err());
    }

    #[test]
    fn text_filters_split_target_and_condition() {
        let rule = FilterRule::parse_text("*.*.employee_id = {{employee_id}}").unwrap();
        assert!(rule.target.matches("public", "leaves", "employee_id"));
        assert!(!rule.target.matches("public", "leaves", "id"));
        assert_eq!(
            rule.for_column("employee_id").unwrap(),
            "employee_id = {{user.employee_id}}"
        );
        let rule = FilterRule::parse_text("public.shop.status='online'").unwrap();
        assert!(rule.target.matches("public", "shop", "status"));
        assert_eq!(rule.for_column("status").unwrap(), "status ='online'");
        let quoted = FilterRule::parse_text(r#"public."Shop Floor"."City Id" = 3"#).unwrap();
        assert!(quoted.target.matches("public", "Shop Floor", "City Id"));
        assert_eq!(quoted.for_column("City Id").unwrap(), r#""City Id" = 3"#);
        assert!(FilterRule::parse_text("public.*.* = 1").is_err());
        assert!(FilterRule::parse_text("employee_id = 1").is_err());
    }

    #[test]
    fn a_condition_that_is_not_sql_is_not_expressed() {
        let rule = FilterRule::parse_text("*.*.employee_id = = {{employee_id}}").unwrap();
        assert!(rule.for_column("employee_id").is_err());
    }

    #[test]
    fn patterns_search_the_bare_name() {
        let tables = NameRegex::compile(Some("^(user|shop).*$")).unwrap();
        assert!(tables.matches("shop_items") && !tables.matches("workshop"));
        assert!(
            NameRegex::compile(Some("salar"))
                .unwrap()
                .matches("salaries")
        );
        assert!(NameRegex::compile(Some("")).unwrap().matches_all());
        assert!(NameRegex::compile(Some("(?<=a)b")).is_err());
        assert!(pattern_doubt(".*password.* | .*pwd.*").is_some());
        assert!(pattern_doubt("password|pwd").is_none());
    }
}
