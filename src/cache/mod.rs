//! The rewrite cache: a statement is rewritten once per shape, per access, per search_path
//! (and whether its parameters were declared float, which can change its fence).
//!
//! The shape of a statement is its text with plain literals cut out ([`lexer`]), so
//! `... WHERE aid = 1` and `... WHERE aid = 2` share one entry: a [`Template`] of the rewritten
//! text whose slots take the literals back, re-quoted from their values. This cache is
//! security-critical; three rules keep it honest:
//! - a shape is used only for queries (SELECT, WITH, VALUES, EXPLAIN), whose rewrite cannot
//!   depend on a literal's value except where the rewriter writes a fresh literal (renumbered
//!   ordinals), which is then fixed text rather than a slot;
//! - a template is made only if every literal the lexer found is exactly one output node at the
//!   same position with the same value, so lexer and parser provably agree on this text;
//! - otherwise (other statements, opaque literal forms) the exact text is the key.
//!
//! Refusals are not cached. Entries belong to one [`Access`] instance (a new policy or catalog
//! means a new access, whose entries start empty); eviction is second-chance when full.

pub mod lexer;
pub mod template;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use dashmap::DashMap;
use sqlparser::ast::Statement;

use crate::refusal::Refusal;
use crate::rewrite::{self, Context, Deallocation, SessionEffect};
use lexer::{LexOutcome, Literal, lex};
use template::Template;

/// What the proxy forwards for one statement string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prepared {
    pub sql: String,
    pub notices: Arc<[String]>,
    pub effect: Option<SessionEffect>,
    pub deallocation: Option<Deallocation>,
    /// How many statements the string held (a Parse message may hold only one).
    pub statements: usize,
}

struct Entry {
    template: Template,
    notices: Arc<[String]>,
    effect: Option<SessionEffect>,
    deallocation: Option<Deallocation>,
    statements: usize,
    used: AtomicBool,
}

impl Entry {
    /// The entry's rewrite for `sql`, its literals put back.
    fn prepared(&self, sql: &str, literals: &[Literal]) -> Prepared {
        Prepared {
            sql: self.template.render(sql, literals),
            notices: self.notices.clone(),
            effect: self.effect.clone(),
            deallocation: self.deallocation.clone(),
            statements: self.statements,
        }
    }
}

#[derive(PartialEq, Eq, Hash)]
enum Shape {
    /// The text with plain literals replaced by their kind.
    Slotted(Vec<u8>),
    Exact(Box<str>),
}

#[derive(PartialEq, Eq, Hash)]
struct Key {
    access: u64,
    search_path: Arc<str>,
    risky_parameter_types: bool,
    shape: Shape,
}

pub struct RewriteCache {
    entries: DashMap<Key, Arc<Entry>>,
    capacity: usize,
}

/// Cache statistics, for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    pub hit: bool,
}

impl RewriteCache {
    pub fn new(capacity: usize) -> RewriteCache {
        RewriteCache {
            entries: DashMap::new(),
            capacity: capacity.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&self) {
        self.entries.clear();
    }

    /// Rewrites `sql` for the context's access, from the cache when the shape was seen.
    /// `search_path` is the context's path as text (the key keeps it).
    pub fn rewrite(
        &self,
        sql: &str,
        context: &Context,
        search_path: &Arc<str>,
    ) -> Result<(Prepared, Outcome), Refusal> {
        let lexed = lex(sql);
        let key = Key {
            access: context.access.id(),
            search_path: search_path.clone(),
            risky_parameter_types: context.risky_parameter_types,
            shape: shape_of(sql, &lexed),
        };
        if let Some(entry) = self.entries.get(&key) {
            entry.used.store(true, Ordering::Relaxed);
            return Ok((entry.prepared(sql, &lexed.literals), Outcome { hit: true }));
        }
        let rewritten = rewrite::rewrite(sql, context)?;
        let template = match &key.shape {
            Shape::Slotted(_) if only_queries(&rewritten.statements) => {
                Template::with_slots(&rewritten.statements, sql, &lexed.literals)
            }
            _ => None,
        };
        let (template, key) = match template {
            Some(t) => (t, key),
            None => (
                Template::fixed(rewritten.sql()),
                Key {
                    shape: Shape::Exact(sql.into()),
                    ..key
                },
            ),
        };
        let entry = Arc::new(Entry {
            template,
            notices: rewritten.notices.into(),
            effect: rewritten.effect,
            deallocation: rewritten.deallocation,
            statements: rewritten.statements.len(),
            used: AtomicBool::new(false),
        });
        let prepared = entry.prepared(sql, &lexed.literals);
        self.make_room();
        self.entries.insert(key, entry);
        Ok((prepared, Outcome { hit: false }))
    }

    /// Second chance: entries used since the last sweep stay (and lose their mark).
    fn make_room(&self) {
        if self.entries.len() < self.capacity {
            return;
        }
        self.entries
            .retain(|_, e| e.used.swap(false, Ordering::Relaxed));
        if self.entries.len() >= self.capacity {
            // Everything was in use: drop an arbitrary half rather than grow.
            let mut keep = true;
            self.entries.retain(|_, _| {
                keep = !keep;
                keep
            });
        }
    }
}

fn only_queries(statements: &[Statement]) -> bool {
    statements.iter().all(|s| match s {
        Statement::Query(_) => true,
        Statement::Explain { statement, .. } => matches!(statement.as_ref(), Statement::Query(_)),
        _ => false,
    })
}

/// The shape key: text between literals kept byte for byte (length-prefixed, so no text can
/// imitate a slot), literals replaced by their kind.
fn shape_of(sql: &str, lexed: &LexOutcome) -> Shape {
    if lexed.opaque {
        return Shape::Exact(sql.into());
    }
    let mut key = Vec::with_capacity(sql.len() + 8);
    let mut at = 0;
    for literal in &lexed.literals {
        push_chunk(&mut key, &sql.as_bytes()[at..literal.start]);
        key.push(match literal.kind {
            lexer::LiteralKind::Text => b'S',
            lexer::LiteralKind::Integer => b'I',
            lexer::LiteralKind::Decimal => b'D',
        });
        at = literal.end;
    }
    push_chunk(&mut key, &sql.as_bytes()[at..]);
    Shape::Slotted(key)
}

fn push_chunk(key: &mut Vec<u8>, chunk: &[u8]) {
    key.push(b'T');
    key.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    key.extend_from_slice(chunk);
}
