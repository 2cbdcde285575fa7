//! PostgreSQL's rules for names, in one place.
//!
//! Every comparison of a table, schema or column name in tablegate goes through [`fold`] so that
//! tablegate sees the same object PostgreSQL will: unquoted identifiers fold to lower case (ASCII
//! only, as in a UTF-8 database), quoted ones keep their case, and both are truncated to
//! `NAMEDATALEN - 1` bytes. Policy files name objects with the same syntax ([`NamePattern`]), plus
//! `*` globs.

use std::fmt;
use std::iter::Peekable;
use std::str::Chars;

use sqlparser::ast::{Ident, ObjectName, ObjectNamePart};

/// PostgreSQL's `NAMEDATALEN - 1`: longer identifiers are silently truncated by the server.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The name PostgreSQL resolves for an identifier as written in SQL.
pub fn fold(ident: &Ident) -> String {
    fold_str(&ident.value, ident.quote_style.is_some())
}

/// The parts of an object name as PostgreSQL resolves them; `None` when a part is a function
/// call (`f(x).y`), which names nothing.
pub fn fold_object_name(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|part| match part {
            ObjectNamePart::Identifier(id) => Some(fold(id)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// [`fold`] for an identifier given as text and whether it was quoted.
pub fn fold_str(value: &str, quoted: bool) -> String {
    let mut name = if quoted {
        value.to_owned()
    } else {
        value.to_ascii_lowercase()
    };
    truncate_identifier(&mut name);
    name
}

fn truncate_identifier(name: &mut String) {
    if name.len() > MAX_IDENTIFIER_BYTES {
        let mut end = MAX_IDENTIFIER_BYTES;
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        name.truncate(end);
    }
}

/// An identifier that tablegate writes into SQL: always quoted, so that it means exactly `name`.
pub fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// A relation's schema-qualified name, already folded.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QualifiedName {
    pub schema: String,
    pub name: String,
}

impl QualifiedName {
    pub fn new(schema: impl Into<String>, name: impl Into<String>) -> Self {
        QualifiedName {
            schema: schema.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for QualifiedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}",
            display_ident(&self.schema),
            display_ident(&self.name)
        )
    }
}

/// A folded name as a DBA would type it: bare when that reads back the same, quoted otherwise.
pub fn display_ident(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if bare {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// One dot-separated part of a [`NamePattern`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum PatternPart {
    /// A quoted part: matches exactly this name.
    Exact(String),
    /// An unquoted part, folded; `*` matches any run of characters.
    Glob(String),
}

impl PatternPart {
    fn matches(&self, name: &str) -> bool {
        match self {
            PatternPart::Exact(exact) => exact == name,
            PatternPart::Glob(glob) => glob_matches(glob.as_bytes(), name.as_bytes()),
        }
    }
}

fn glob_matches(glob: &[u8], name: &[u8]) -> bool {
    match glob.split_first() {
        None => name.is_empty(),
        Some((b'*', rest)) => (0..=name.len()).any(|skip| glob_matches(rest, &name[skip..])),
        Some((c, rest)) => name.first() == Some(c) && glob_matches(rest, &name[1..]),
    }
}

/// A pattern over dotted names from a policy file: `public.orders`, `sales.*`, `*.phone`,
/// `"Mixed Case".t`. Unquoted parts fold like SQL identifiers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamePattern {
    parts: Vec<PatternPart>,
    text: String,
}

impl NamePattern {
    /// Parses a pattern of exactly `parts` dotted parts (or one of `allowed` counts).
    pub fn parse(text: &str, allowed_parts: &[usize]) -> Result<Self, String> {
        let parts = split_dotted(text)?;
        if !allowed_parts.contains(&parts.len()) {
            let expected = allowed_parts
                .iter()
                .map(|n| match n {
                    1 => "name",
                    2 => "schema.table (or table.column)",
                    _ => "schema.table.column",
                })
                .collect::<Vec<_>>()
                .join(" or ");
            return Err(format!("`{text}` should have the form {expected}"));
        }
        Ok(NamePattern {
            parts,
            text: text.to_owned(),
        })
    }

    pub fn len(&self) -> usize {
        self.parts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Whether `names` (same length as the pattern) match part by part.
    pub fn matches(&self, names: &[&str]) -> bool {
        self.parts.len() == names.len() && self.parts.iter().zip(names).all(|(p, n)| p.matches(n))
    }

    /// Whether the pattern's last `names.len()` parts match `names`.
    pub fn matches_suffix(&self, names: &[&str]) -> bool {
        names.len() <= self.parts.len()
            && self.parts[self.parts.len() - names.len()..]
                .iter()
                .zip(names)
                .all(|(p, n)| p.matches(n))
    }

    /// Whether a part is a plain name, without globs.
    pub fn part_is_literal(&self, index: usize) -> bool {
        match &self.parts[index] {
            PatternPart::Exact(_) => true,
            PatternPart::Glob(g) => !g.contains('*'),
        }
    }

    /// Whether the pattern names exactly one thing: no part holds a glob.
    pub fn is_literal(&self) -> bool {
        (0..self.parts.len()).all(|index| self.part_is_literal(index))
    }

    /// The first `n` parts as a pattern of their own.
    pub fn prefix(&self, n: usize) -> NamePattern {
        NamePattern {
            parts: self.parts[..n].to_vec(),
            text: self.text.clone(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The names, when no part holds a glob.
    pub fn literal_parts(&self) -> Option<Vec<String>> {
        self.is_literal().then(|| {
            self.parts
                .iter()
                .map(|p| match p {
                    PatternPart::Exact(name) | PatternPart::Glob(name) => name.clone(),
                })
                .collect()
        })
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Reads a quoted identifier after its opening `"` as PostgreSQL does: `""` stands for a quote,
/// and the name is truncated to [`MAX_IDENTIFIER_BYTES`]. `None` when the closing quote is
/// missing.
pub fn read_quoted(chars: &mut Peekable<Chars>) -> Option<String> {
    let mut name = String::new();
    loop {
        match chars.next()? {
            '"' if chars.next_if_eq(&'"').is_some() => name.push('"'),
            '"' => break,
            c => name.push(c),
        }
    }
    truncate_identifier(&mut name);
    Some(name)
}

fn split_dotted(text: &str) -> Result<Vec<PatternPart>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let part = if chars.next_if_eq(&'"').is_some() {
            let name = read_quoted(&mut chars)
                .ok_or_else(|| format!("`{text}` has an unterminated quoted name"))?;
            PatternPart::Exact(name)
        } else {
            let mut name = String::new();
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if !(c.is_alphanumeric() || c == '_' || c == '$' || c == '*') {
                    return Err(format!(
                        "`{text}` contains `{c}`; quote names with special characters, e.g. \"my-table\""
                    ));
                }
                name.push(c);
                chars.next();
            }
            if name.is_empty() {
                return Err(format!("`{text}` has an empty name part"));
            }
            PatternPart::Glob(fold_str(&name, false))
        };
        parts.push(part);
        match chars.next() {
            None => return Ok(parts),
            Some('.') => continue,
            Some(c) => return Err(format!("`{text}`: unexpected `{c}` after a quoted name")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unquoted_identifiers_fold_to_lower_case_quoted_keep_case() {
        assert_eq!(fold(&Ident::new("Orders")), "orders");
        assert_eq!(fold(&Ident::with_quote('"', "Orders")), "Orders");
        // Only ASCII folds, as in a UTF-8 database.
        assert_eq!(fold(&Ident::new("ÄBC")), "Äbc");
    }

    #[test]
    fn long_identifiers_truncate_like_postgres() {
        let long = "a".repeat(70);
        assert_eq!(fold(&Ident::new(&long)).len(), 63);
        // Truncation never splits a character.
        let wide = "é".repeat(40);
        let folded = fold(&Ident::with_quote('"', &wide));
        assert_eq!(folded.len(), 62);
    }

    #[test]
    fn patterns_fold_and_glob() {
        let p = NamePattern::parse("Sales.*", &[2]).unwrap();
        assert!(p.matches(&["sales", "orders"]));
        assert!(!p.matches(&["Sales", "orders"]));
        let q = NamePattern::parse("\"Sales\".\"Big\"\"One\"", &[2]).unwrap();
        assert!(q.matches(&["Sales", "Big\"One"]));
        let c = NamePattern::parse("*.phone", &[2, 3]).unwrap();
        assert!(c.matches_suffix(&["customers", "phone"]));
        assert!(!c.matches_suffix(&["customers", "phones"]));
        assert!(NamePattern::parse("orders", &[2]).is_err());
        assert!(NamePattern::parse("a;b.c", &[2]).is_err());
        assert!(NamePattern::parse("a..c", &[3]).is_err());
    }

    #[test]
    fn display_quotes_only_when_needed() {
        assert_eq!(display_ident("orders"), "orders");
        assert_eq!(display_ident("Orders"), "\"Orders\"");
        assert_eq!(display_ident("a\"b"), "\"a\"\"b\"");
    }
}
