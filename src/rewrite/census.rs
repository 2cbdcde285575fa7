//! Defence in depth: every part of the output that can read a relation, run a function or name
//! a type was checked by the walker, or put there by tablegate.
//!
//! As it walks, the walker tallies the queries, relations, function calls and typed values
//! (casts and typed literals) it checked, and what it inserted (protected sources). The
//! rewritten statement is then counted again by sqlparser's generic visitor, which reaches every
//! field of every node. A difference means a clause was carried into the output without being
//! walked — as `TABLESAMPLE`'s arguments once were — and the statement is refused, not forwarded.

use std::convert::Infallible;
use std::ops::ControlFlow;

use sqlparser::ast::{Expr, ObjectName, Query, Statement, Visit, Visitor};

use crate::refusal::{Refusal, RefusalKind};

/// How many nodes of each kind that can reach data or run code a tree holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Census {
    pub queries: usize,
    pub relations: usize,
    pub functions: usize,
    pub typed_values: usize,
}

impl Census {
    pub fn of(node: &impl Visit) -> Census {
        let mut counter = Counter(Census::default());
        let _ = node.visit(&mut counter);
        counter.0
    }

    pub fn add(&mut self, other: Census) {
        self.queries += other.queries;
        self.relations += other.relations;
        self.functions += other.functions;
        self.typed_values += other.typed_values;
    }
}

/// Refuses `statement` unless it holds exactly what the walker checked or inserted.
pub(super) fn verify(statement: &Statement, checked: Census) -> Result<(), Refusal> {
    let found = Census::of(statement);
    if found == checked {
        return Ok(());
    }
    let unchecked = [
        (found.queries, checked.queries, "subqueries"),
        (found.relations, checked.relations, "relations"),
        (found.functions, checked.functions, "function calls"),
        (
            found.typed_values,
            checked.typed_values,
            "casts or typed literals",
        ),
    ]
    .iter()
    .filter(|(found, checked, _)| found != checked)
    .map(|(found, checked, what)| format!("{what} ({found} found, {checked} checked)"))
    .collect::<Vec<_>>()
    .join(", ");
    Err(Refusal::new(
        RefusalKind::Unsupported,
        format!("tablegate could not check every part of this statement: {unchecked}"),
    )
    .with_hint("write the query without its unusual clauses, and report the statement to tablegate's maintainers"))
}

struct Counter(Census);

impl Visitor for Counter {
    type Break = Infallible;

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<Infallible> {
        self.0.queries += 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, _: &ObjectName) -> ControlFlow<Infallible> {
        self.0.relations += 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<Infallible> {
        match e {
            Expr::Function(_) => self.0.functions += 1,
            Expr::Cast { .. } | Expr::TypedString(_) => self.0.typed_values += 1,
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::parse;

    fn census(sql: &str) -> Census {
        Census::of(&parse(sql).unwrap()[0])
    }

    #[test]
    fn every_field_is_counted_even_where_the_walker_once_did_not_look() {
        let sql = "SELECT id FROM orders TABLESAMPLE BERNOULLI ((SELECT string_agg(note, ',')::int FROM orders))";
        assert_eq!(
            census(sql),
            Census {
                queries: 2,
                relations: 2,
                functions: 1,
                typed_values: 1,
            }
        );
        // A walker that skipped the sample would have checked one query and one relation.
        let walked = Census {
            queries: 1,
            relations: 1,
            ..Census::default()
        };
        let refusal = verify(&parse(sql).unwrap()[0], walked).unwrap_err();
        assert_eq!(refusal.kind, RefusalKind::Unsupported);
        assert!(
            refusal.message.contains("subqueries (2 found, 1 checked)"),
            "{refusal}"
        );
    }
}
