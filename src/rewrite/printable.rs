//! The last step before printing: every identifier and literal must print as text that
//! PostgreSQL reads back as the same token.
//!
//! sqlparser's printer does not guarantee that: inside a standard string or quoted identifier
//! it treats `\'` (or `\"`) and doubled quotes in the *value* as already escaped, so a value the
//! client smuggled in through an escape could print as a quote that ends the literal — and the
//! rest of the value would run as SQL. This pass rewrites such strings into E'' literals (whose
//! printer escapes everything) and refuses what cannot be printed faithfully.

use std::ops::ControlFlow;

use sqlparser::ast::{Ident, Statement, Value, ValueWithSpan, VisitMut, VisitorMut};

use crate::policy::value::text_literal;
use crate::refusal::Refusal;

pub(super) fn make_printable(statement: &mut Statement) -> Result<(), Refusal> {
    let mut pass = Printable { refusal: None };
    let _ = VisitMut::visit(statement, &mut pass);
    match pass.refusal {
        Some(r) => Err(r),
        None => Ok(()),
    }
}

struct Printable {
    refusal: Option<Refusal>,
}

impl Printable {
    fn refuse(&mut self, what: String) -> ControlFlow<()> {
        self.refusal = Some(Refusal::unsupported(what));
        ControlFlow::Break(())
    }
}

fn plain_word(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_' || c == '$')
}

impl VisitorMut for Printable {
    type Break = ();

    fn pre_visit_ident(&mut self, ident: &mut Ident) -> ControlFlow<()> {
        let ok = match ident.quote_style {
            None => plain_word(&ident.value),
            Some('"') => !ident.value.contains('"') && !ident.value.is_empty(),
            Some(_) => false,
        };
        if ok {
            ControlFlow::Continue(())
        } else {
            self.refuse(format!("the identifier {ident:?} (quotes inside names)"))
        }
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        // An escape can put a NUL into a value (`U&'\0000'`), which no PostgreSQL text can
        // hold and no protocol message can carry (found by red-team review: forwarded, it made
        // upstream reject the message as malformed).
        if text_of(&value.value).is_some_and(|s| s.contains('\0')) {
            return self.refuse("a string holding a NUL character (code point 0)".into());
        }
        match &mut value.value {
            Value::SingleQuotedString(s) | Value::UnicodeStringLiteral(s) => {
                let literal = text_literal(s);
                value.value = literal;
            }
            Value::EscapedStringLiteral(_) | Value::Boolean(_) | Value::Null => {}
            Value::DollarQuotedString(d) => {
                let tag_ok = d.tag.as_deref().is_none_or(plain_word);
                let delimiter = format!("${}$", d.tag.as_deref().unwrap_or(""));
                if !tag_ok || d.value.contains(&delimiter) || d.value.ends_with('$') {
                    let literal = text_literal(&d.value);
                    value.value = literal;
                }
            }
            Value::NationalStringLiteral(s) => {
                if s.contains(['\'', '\\']) {
                    return self.refuse("an N'' literal with quotes or backslashes".into());
                }
            }
            Value::HexStringLiteral(s) => {
                if !s.chars().all(|c| c.is_ascii_hexdigit()) {
                    return self.refuse("this X'' literal".into());
                }
            }
            Value::SingleQuotedByteStringLiteral(s) => {
                if !s.chars().all(|c| c == '0' || c == '1') {
                    return self.refuse("this B'' literal".into());
                }
            }
            Value::Number(n, long) => {
                let numeric = n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
                    && n.starts_with(|c: char| c.is_ascii_digit() || c == '.');
                if *long || !numeric {
                    return self.refuse(format!("the number `{n}`"));
                }
            }
            Value::Placeholder(p) => {
                if !(p.len() > 1
                    && p.starts_with('$')
                    && p[1..].chars().all(|c| c.is_ascii_digit()))
                {
                    return self.refuse(format!("the parameter `{p}`"));
                }
            }
            other => return self.refuse(format!("the literal {other}")),
        }
        ControlFlow::Continue(())
    }
}

/// The text of a string literal of a kind tablegate prints (X'' and B'' hold only digits).
fn text_of(value: &Value) -> Option<&str> {
    match value {
        Value::SingleQuotedString(s)
        | Value::UnicodeStringLiteral(s)
        | Value::EscapedStringLiteral(s)
        | Value::NationalStringLiteral(s) => Some(s),
        Value::DollarQuotedString(d) => Some(&d.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn printed(sql: &str) -> Result<String, Refusal> {
        let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap();
        make_printable(&mut statements[0])?;
        Ok(statements[0].to_string())
    }

    #[test]
    fn backslash_quote_in_a_value_cannot_end_the_literal() {
        // PostgreSQL (standard_conforming_strings on) reads the value \' UNION SELECT … --
        let out = printed(r"SELECT '\'' UNION SELECT secret FROM vault --'").unwrap();
        assert_eq!(out, r"SELECT E'\\\' UNION SELECT secret FROM vault --'");
    }

    #[test]
    fn doubled_quotes_survive() {
        assert_eq!(printed("SELECT 'a''''b'").unwrap(), r"SELECT E'a\'\'b'");
        assert_eq!(printed("SELECT 'plain'").unwrap(), "SELECT 'plain'");
    }

    #[test]
    fn quotes_inside_identifiers_are_refused() {
        assert!(printed(r#"SELECT "a\""" FROM t"#).is_err());
        assert!(printed(r##"SELECT 1 AS "x""""##).is_err());
        assert_eq!(
            printed(r#"SELECT "Mixed Case" FROM t"#).unwrap(),
            r#"SELECT "Mixed Case" FROM t"#
        );
    }

    #[test]
    fn nul_characters_are_refused_however_escaped() {
        for sql in [r"SELECT U&'a\0000b'", r"SELECT U&'\+000000'"] {
            match printed(sql) {
                Err(refusal) => assert!(refusal.to_string().contains("NUL"), "{sql}: {refusal}"),
                Ok(out) => panic!("{sql} printed as {out:?}"),
            }
        }
    }

    #[test]
    fn unicode_and_dollar_strings_print_as_escape_strings_when_needed() {
        assert_eq!(printed(r"SELECT U&'d\0061t'").unwrap(), "SELECT 'dat'");
        assert_eq!(printed("SELECT $$it's$$").unwrap(), "SELECT $$it's$$");
    }
}
