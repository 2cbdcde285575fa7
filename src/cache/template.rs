//! A rewritten statement with its client literals cut out, ready to take other values.
//!
//! Built on a cache miss: each output literal node whose source position is one of the
//! statement's plain literals becomes a slot. The build refuses to make a template unless every
//! plain literal maps to exactly one slot — so the template cannot depend on a literal's value
//! in any way the slots do not show. Literals tablegate wrote itself (policy values, renumbered
//! ordinals) have no source position and stay fixed text.

use std::ops::ControlFlow;

use sqlparser::ast::{Statement, Value, ValueWithSpan, VisitMut, VisitorMut};

use super::lexer::{Literal, LiteralKind, text_value};
use crate::policy::value::text_literal;

#[derive(Debug)]
pub struct Template {
    /// Text between slots: `fragments.len() == slots.len() + 1`.
    fragments: Vec<Box<str>>,
    /// For each slot, the index of the literal that fills it.
    slots: Vec<usize>,
    length_hint: usize,
}

impl Template {
    /// A template with no slots: the rewritten text as it is.
    pub fn fixed(sql: String) -> Template {
        Template {
            length_hint: sql.len(),
            fragments: vec![sql.into_boxed_str()],
            slots: Vec::new(),
        }
    }

    /// Cuts `literals` (of `source`) out of `statements`; `None` if they do not map one to one.
    pub fn with_slots(
        statements: &[Statement],
        source: &str,
        literals: &[Literal],
    ) -> Option<Template> {
        let marker = format!("$tg{:016x}s", rand_marker());
        let mut statements = statements.to_vec();
        let mut slotter = Slotter {
            source,
            literals,
            used: vec![0; literals.len()],
            marker: &marker,
        };
        for s in statements.iter_mut() {
            let _ = VisitMut::visit(s, &mut slotter);
        }
        if slotter.used.iter().any(|&n| n != 1) {
            return None;
        }
        let printed = statements
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("; ");
        let mut fragments = Vec::with_capacity(literals.len() + 1);
        let mut slots = Vec::with_capacity(literals.len());
        let mut rest = printed.as_str();
        while let Some(at) = rest.find(&marker) {
            fragments.push(rest[..at].into());
            let after = &rest[at + marker.len()..];
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            let index: usize = after[..digits].parse().ok()?;
            // The marker must be followed by its terminator, so `…s1` never reads as `…s12`.
            if !after[digits..].starts_with('_') {
                return None;
            }
            slots.push(index);
            rest = &after[digits + 1..];
        }
        fragments.push(rest.into());
        if slots.len() != literals.len() {
            return None;
        }
        Some(Template {
            length_hint: printed.len(),
            fragments,
            slots,
        })
    }

    /// The statement text with `source`'s literals (found at `literals`) in the slots, each
    /// re-quoted from its value exactly as the printer quotes it on a miss.
    pub fn render(&self, source: &str, literals: &[Literal]) -> String {
        let mut out = String::with_capacity(self.length_hint + 16);
        out.push_str(&self.fragments[0]);
        for (slot, fragment) in self.slots.iter().zip(&self.fragments[1..]) {
            let literal = &literals[*slot];
            let text = &source[literal.start..literal.end];
            match literal.kind {
                LiteralKind::Text => {
                    use std::fmt::Write;
                    let _ = write!(out, "{}", text_literal(&text_value(text)));
                }
                LiteralKind::Integer | LiteralKind::Decimal => {
                    debug_assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
                    out.push_str(text);
                }
            }
            out.push_str(fragment);
        }
        out
    }
}

/// A per-process random value, so no client text can predict the marker.
fn rand_marker() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(0x7461_626c_6567_6174u64)
}

struct Slotter<'a> {
    source: &'a str,
    literals: &'a [Literal],
    used: Vec<usize>,
    marker: &'a str,
}

impl VisitorMut for Slotter<'_> {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        let start = value.span.start;
        if start.line == 0 {
            return ControlFlow::Continue(());
        }
        let source = self.source;
        // Same place, same kind, same value: the node is this literal.
        let is_literal = |l: &Literal| {
            let text = &source[l.start..l.end];
            l.line == start.line
                && l.column == start.column
                && match (&value.value, l.kind) {
                    (
                        Value::SingleQuotedString(v) | Value::EscapedStringLiteral(v),
                        LiteralKind::Text,
                    ) => *v == text_value(text),
                    (Value::Number(v, false), LiteralKind::Integer | LiteralKind::Decimal) => {
                        v == text
                    }
                    _ => false,
                }
        };
        // The lexer lists literals in text order: one search, not a scan per value (a long IN
        // list made that quadratic, found by red-team review).
        let place = self
            .literals
            .binary_search_by_key(&(start.line, start.column), |l| (l.line, l.column));
        if let Ok(index) = place
            && is_literal(&self.literals[index])
        {
            self.used[index] += 1;
            value.value = Value::Placeholder(format!("{}{index}_", self.marker));
        }
        ControlFlow::Continue(())
    }
}
