//! Row filters hold against errors: a query whose conditions could fail on some rows reads its
//! protected sources behind an optimization fence.
//!
//! PostgreSQL flattens a protected source `(SELECT … FROM t WHERE <filter>) AS t` into the outer
//! query and evaluates the filter and the query's own conditions in the order it finds cheapest.
//! A condition that can raise an error then runs on rows the filter rejects:
//! `SELECT count(*) FROM orders WHERE sqrt(amount) IS NOT NULL` fails with "cannot take square
//! root of a negative number" if *any* order, visible or not, has a negative amount, and a
//! `CASE` inside it turns that into a yes/no question about any value of any filtered-out row.
//! PostgreSQL's own answer is the security barrier with leakproof functions; tablegate's is the
//! same in SQL: when some condition is not known to be leakproof, every row-filtered source
//! gets `OFFSET 0`, which PostgreSQL neither flattens nor pushes conditions into, so the filter
//! runs first. Queries whose conditions are all leakproof (plain comparisons of columns and
//! literals, AND/OR/NOT, IS NULL, IN, BETWEEN) keep the unfenced form, and with it index use.
//!
//! Conditions are what PostgreSQL may evaluate below a filter: WHERE, JOIN … ON and HAVING at
//! every level, and the select list of every subquery, CTE and derived table (an outer
//! condition on one of its columns is pushed down as that expression). Aggregate and window
//! calls are evaluated after the rows are filtered, so their arguments do not count. The
//! decision reads the query's shape only, never a literal's value.
//!
//! What remains: a comparison of two columns of different types may convert one of them on
//! every row (numeric to float8, date to timestamp) and fail on values beyond the other type's
//! range. tablegate does not know the types of every column (derived tables, functions) and
//! treats column-to-column comparisons, the stuff of every join, as leakproof.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArguments, InTarget, JoinConstraint, JoinOperator,
    ObjectNamePart, Query, Select, SelectItem, Statement, UnaryOperator, Visit, Visitor,
};

use crate::names::fold;

/// Aggregates: their arguments are computed from rows that already passed every filter.
const AGGREGATES: [&str; 40] = [
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "array_agg",
    "string_agg",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_avgx",
    "regr_avgy",
    "regr_count",
    "regr_intercept",
    "regr_r2",
    "regr_slope",
    "regr_sxx",
    "regr_sxy",
    "regr_syy",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "range_agg",
    "range_intersect_agg",
];

/// Whether some condition of the statement may raise an error on a row, so that row filters
/// must run first.
pub(super) fn needs_fence(statement: &Statement) -> bool {
    let mut finder = LeakyConditions {
        depth: 0,
        leaky: false,
    };
    let _ = statement.visit(&mut finder);
    finder.leaky
}

struct LeakyConditions {
    /// Query nesting: 1 is the statement's own query (its select list is the result).
    depth: usize,
    leaky: bool,
}

impl Visitor for LeakyConditions {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        let mut conditions: Vec<&Expr> = Vec::new();
        conditions.extend(&select.selection);
        conditions.extend(&select.having);
        for element in &select.from {
            for join in &element.joins {
                if let Some(JoinConstraint::On(on)) = join_constraint(&join.join_operator) {
                    conditions.push(on);
                }
            }
        }
        if self.depth > 1 {
            for item in &select.projection {
                if let SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } = item
                {
                    conditions.push(e);
                }
            }
        }
        if conditions.into_iter().any(|e| !is_leakproof(e)) {
            self.leaky = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &sqlparser::ast::TableFactor) -> ControlFlow<()> {
        // ON clauses of parenthesised joins.
        if let sqlparser::ast::TableFactor::NestedJoin {
            table_with_joins, ..
        } = factor
        {
            for join in &table_with_joins.joins {
                if let Some(JoinConstraint::On(on)) = join_constraint(&join.join_operator)
                    && !is_leakproof(on)
                {
                    self.leaky = true;
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        JoinOperator::Join(c)
        | JoinOperator::Inner(c)
        | JoinOperator::Left(c)
        | JoinOperator::LeftOuter(c)
        | JoinOperator::Right(c)
        | JoinOperator::RightOuter(c)
        | JoinOperator::FullOuter(c)
        | JoinOperator::CrossJoin(c)
        | JoinOperator::Semi(c)
        | JoinOperator::LeftSemi(c)
        | JoinOperator::RightSemi(c)
        | JoinOperator::Anti(c)
        | JoinOperator::LeftAnti(c)
        | JoinOperator::RightAnti(c)
        | JoinOperator::StraightJoin(c) => Some(c),
        _ => None,
    }
}

/// Whether evaluating `e` on a row can neither fail nor reveal anything but its boolean result.
/// An allow-list: every form not named here counts as leaky. Subqueries inside are judged where
/// their own conditions are (see [`LeakyConditions`]).
fn is_leakproof(e: &Expr) -> bool {
    match e {
        // Not typed literals: `d > TIMESTAMP '…'` converts the date column on every row, which
        // fails for dates beyond the timestamp range.
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Exists { .. }
        | Expr::Subquery(_) => true,
        Expr::Nested(a)
        | Expr::IsNull(a)
        | Expr::IsNotNull(a)
        | Expr::IsTrue(a)
        | Expr::IsNotTrue(a)
        | Expr::IsFalse(a)
        | Expr::IsNotFalse(a)
        | Expr::IsUnknown(a)
        | Expr::IsNotUnknown(a) => is_leakproof(a),
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => is_leakproof(expr),
            // A signed literal is folded to a constant before any row is read.
            UnaryOperator::Minus | UnaryOperator::Plus => matches!(**expr, Expr::Value(_)),
            _ => false,
        },
        Expr::BinaryOp { left, op, right } => {
            matches!(
                op,
                BinaryOperator::And
                    | BinaryOperator::Or
                    | BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
            ) && is_leakproof(left)
                && is_leakproof(right)
        }
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
            is_leakproof(a) && is_leakproof(b)
        }
        Expr::In { expr, target, .. } => {
            is_leakproof(expr)
                && match target {
                    InTarget::List(list) => list.iter().all(is_leakproof),
                    InTarget::Subquery(_) => true,
                    _ => false,
                }
        }
        Expr::Between {
            expr, low, high, ..
        } => is_leakproof(expr) && is_leakproof(low) && is_leakproof(high),
        Expr::AnyOp {
            left,
            compare_op,
            right,
            ..
        }
        | Expr::AllOp {
            left,
            compare_op,
            right,
        } => {
            matches!(
                compare_op,
                BinaryOperator::Eq
                    | BinaryOperator::NotEq
                    | BinaryOperator::Lt
                    | BinaryOperator::LtEq
                    | BinaryOperator::Gt
                    | BinaryOperator::GtEq
            ) && is_leakproof(left)
                && is_leakproof(right)
        }
        Expr::Array(array) => array.elem.iter().all(is_leakproof),
        Expr::Tuple(items) => items.iter().all(is_leakproof),
        Expr::Function(f) => is_aggregate_or_window(f),
        _ => false,
    }
}

/// Aggregate and window calls run on rows every filter has passed.
fn is_aggregate_or_window(f: &Function) -> bool {
    if f.over.is_some() {
        return true;
    }
    let parts: Vec<String> = f
        .name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => fold(id),
            ObjectNamePart::Function(_) => String::new(),
        })
        .collect();
    let name = match parts.as_slice() {
        [name] => name,
        [schema, name] if schema == "pg_catalog" => name,
        _ => return false,
    };
    AGGREGATES.contains(&name.as_str()) && !matches!(f.args, FunctionArguments::Subquery(_))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::parser::Parser;

    fn fenced(sql: &str) -> bool {
        needs_fence(&Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap()[0])
    }

    #[test]
    fn plain_comparisons_are_leakproof() {
        for sql in [
            "SELECT sqrt(amount), 1 / amount FROM orders WHERE id = 5 AND region IN ('a', 'b')",
            "SELECT * FROM a JOIN b ON a.id = b.id LEFT JOIN c ON (c.x > -1 OR c.y IS NULL)",
            "SELECT x FROM t WHERE x BETWEEN 1 AND 3 AND NOT y <> 'q' AND z = ANY (ARRAY[1, 2])",
            "SELECT x FROM t WHERE x > (SELECT avg(x) FROM t) AND y IN (SELECT y FROM u)",
            "SELECT g, count(*) FROM t GROUP BY g HAVING count(*) > 1",
            "SELECT * FROM (SELECT g, max(x) AS m, rank() OVER (ORDER BY g) FROM t GROUP BY g) s WHERE m > 2",
        ] {
            assert!(!fenced(sql), "{sql}");
        }
    }

    #[test]
    fn conditions_that_can_fail_need_the_fence() {
        for sql in [
            "SELECT count(*) FROM orders WHERE sqrt(amount) IS NOT NULL",
            "SELECT count(*) FROM orders WHERE 1 / (amount - 7) > 0",
            "SELECT count(*) FROM orders WHERE note::int = 1",
            "SELECT count(*) FROM orders WHERE note LIKE 'a%'",
            "SELECT * FROM a LEFT JOIN b ON b.x / 0 = 1",
            "SELECT * FROM a JOIN (b JOIN c ON c.t::date > now()) ON true",
            "SELECT g FROM t GROUP BY g HAVING g / 0 > 1",
            "SELECT * FROM (SELECT 1 / amount AS r FROM orders) s WHERE r > 0",
            "WITH s AS (SELECT sqrt(amount) AS r FROM orders) SELECT * FROM s",
            "SELECT x FROM t WHERE x IN (SELECT 1 / y FROM u)",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.y::int = t.x)",
            "SELECT x FROM t WHERE CASE WHEN x > 1 THEN true END",
            "SELECT x FROM t WHERE public.count(x) > 1",
            "SELECT x FROM t WHERE d > TIMESTAMP '2020-01-01 00:00'",
        ] {
            assert!(fenced(sql), "{sql}");
        }
    }
}
