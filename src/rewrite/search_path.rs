//! The session's search_path, as tablegate tracks it to resolve unqualified relation names.
//!
//! tablegate writes every relation it forwards schema-qualified, so upstream name resolution of
//! relations never depends on the session; this value decides which relation an unqualified name
//! in the client's SQL means. `pg_catalog` is searched first unless listed, as in PostgreSQL;
//! a path that puts another schema before it is refused, because functions and operators
//! resolve through the same path upstream and must stay PostgreSQL's built-ins.

use std::fmt;

use sqlparser::ast::{Expr, Value};

use crate::catalog::Catalog;
use crate::names::{display_ident, fold, fold_str, read_quoted};
use crate::refusal::{Refusal, RefusalKind};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SearchPath {
    /// Schema names as set, `$user` kept symbolic.
    entries: Vec<String>,
}

impl SearchPath {
    /// Parses the setting's text as PostgreSQL shows it: `"$user", public`.
    pub fn parse_setting(raw: &str) -> Result<SearchPath, String> {
        SearchPath::checked(split_setting(raw)?).map_err(|r| r.message)
    }

    /// The path a `SET search_path` statement sets: identifiers fold, string literals are taken
    /// as they are (each is one schema name, as PostgreSQL treats them).
    pub fn from_set_values(values: &[Expr]) -> Result<SearchPath, Refusal> {
        let mut entries = Vec::with_capacity(values.len());
        for value in values {
            let name = match value {
                Expr::Identifier(id) => fold(id),
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => fold_str(s, true),
                    _ => return Err(bad_value(value)),
                },
                _ => return Err(bad_value(value)),
            };
            entries.push(name);
        }
        SearchPath::checked(entries)
    }

    fn checked(entries: Vec<String>) -> Result<SearchPath, Refusal> {
        if let Some(position) = entries.iter().position(|e| e == "pg_catalog")
            && position > 0
        {
            return Err(Refusal::new(
                RefusalKind::Setting,
                "search_path may not list schemas before pg_catalog",
            )
            .with_hint("put pg_catalog first, or leave it out (it is then searched first)"));
        }
        Ok(SearchPath { entries })
    }

    /// Refuses a path naming a schema other than pg_catalog, public, `$user` and those where
    /// `granted` holds. Upstream, `current_schema()` is the first path entry that exists, which
    /// would tell whether a schema the user has nothing in exists. The refusal reads the same
    /// either way.
    pub fn refuse_other_schemas(&self, granted: impl Fn(&str) -> bool) -> Result<(), Refusal> {
        let always = ["pg_catalog", "public", "$user"];
        match self
            .entries
            .iter()
            .find(|e| !always.contains(&e.as_str()) && !granted(e))
        {
            None => Ok(()),
            Some(schema) => Err(Refusal::new(
                RefusalKind::Setting,
                format!(
                    "search_path may name only schemas holding tables you may read: {} does not exist or holds none",
                    display_ident(schema)
                ),
            )
            .with_hint("besides pg_catalog, public and \"$user\", list the schemas of your granted tables")),
        }
    }

    /// The schemas searched for an unqualified relation name, in order.
    pub fn schemas<'a>(&'a self, catalog: &'a Catalog) -> impl Iterator<Item = &'a str> + 'a {
        let implicit_catalog =
            (!self.entries.iter().any(|e| e == "pg_catalog")).then_some("pg_catalog");
        implicit_catalog
            .into_iter()
            .chain(self.entries.iter().map(move |e| {
                if e == "$user" {
                    catalog.session_user()
                } else {
                    e.as_str()
                }
            }))
            .filter(move |s| catalog.has_schema(s))
    }
}

impl fmt::Display for SearchPath {
    /// The setting as PostgreSQL would show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if e == "$user" {
                f.write_str("\"$user\"")?;
            } else {
                f.write_str(&display_ident(e))?;
            }
        }
        Ok(())
    }
}

fn bad_value(value: &Expr) -> Refusal {
    Refusal::new(
        RefusalKind::Setting,
        format!("search_path entries must be schema names, not `{value}`"),
    )
}

/// Splits `"$user", public, "My Schema"` into names, folding unquoted ones.
fn split_setting(raw: &str) -> Result<Vec<String>, String> {
    let mut names = Vec::new();
    let mut chars = raw.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(names);
        }
        if chars.next_if_eq(&'"').is_some() {
            let name = read_quoted(&mut chars)
                .ok_or_else(|| format!("unterminated quote in search_path `{raw}`"))?;
            names.push(name);
        } else {
            let mut name = String::new();
            while let Some(c) = chars.next_if(|&c| c != ',' && !c.is_whitespace()) {
                name.push(c);
            }
            names.push(fold_str(&name, false));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.next() {
            None => return Ok(names),
            Some(',') => continue,
            Some(c) => return Err(format!("unexpected `{c}` in search_path `{raw}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog_of_tables;

    #[test]
    fn parses_postgres_settings_and_resolves_user() {
        let catalog = catalog_of_tables(&[("public", "t", &["a"]), ("tablegate", "t", &["a"])]);
        let path = SearchPath::parse_setting("\"$user\", public, \"Nope\"").unwrap();
        assert_eq!(
            path.schemas(&catalog).collect::<Vec<_>>(),
            ["pg_catalog", "tablegate", "public"]
        );
        assert_eq!(path.to_string(), "\"$user\", public, \"Nope\"");
    }

    #[test]
    fn pg_catalog_cannot_be_moved_behind_another_schema() {
        assert!(SearchPath::parse_setting("public, pg_catalog").is_err());
        assert!(SearchPath::parse_setting("pg_catalog, public").is_ok());
    }

    #[test]
    fn names_fold_and_truncate_as_postgresql_reads_them() {
        let long = "S".repeat(70);
        let truncated = "S".repeat(63);
        let path = SearchPath::parse_setting(&format!("\"{long}\", {long}, \"a\"\"b\"")).unwrap();
        assert_eq!(
            path.entries,
            [truncated.clone(), truncated.to_lowercase(), "a\"b".into()]
        );
        let set = SearchPath::from_set_values(&[Expr::value(Value::SingleQuotedString(long))]);
        assert_eq!(set.unwrap().entries, [truncated]);
        assert!(SearchPath::parse_setting("\"open").is_err());
    }
}
