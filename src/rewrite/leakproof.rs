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
//! calls are evaluated after the rows are filtered, so their arguments do not count — except
//! inside a subquery in an expression or a LATERAL item, which may run once per outer row
//! before that row's filter, with its values as parameters: there every expression counts
//! (ORDER BY, LIMIT, GROUP BY, function arguments in FROM, aggregate arguments), and a scalar
//! subquery that could return two rows fails. The decision reads the query's shape only, never
//! a literal's value.
//!
//! What remains: a comparison of two columns of different types may convert one of them on
//! every row (numeric to float8, date to timestamp) and fail on values beyond the other type's
//! range. tablegate does not know the types of every column (derived tables, functions) and
//! treats column-to-column comparisons, the stuff of every join, as leakproof.

use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    InTarget, JoinConstraint, JoinOperator, LimitClause, ObjectNamePart, OrderBy, OrderByKind,
    Query, Select, SelectItem, SetExpr, Statement, TableFactor, UnaryOperator, Visit, Visitor,
};

use crate::names::fold;
use crate::rewrite::functions::AGGREGATES;

/// Whether some condition of the statement may raise an error on a row, so that row filters
/// must run first.
pub(super) fn needs_fence(statement: &Statement) -> bool {
    let mut finder = LeakyConditions {
        depth: 0,
        correlated: 0,
        leaky: false,
    };
    let _ = statement.visit(&mut finder);
    finder.leaky
}

struct LeakyConditions {
    /// Query nesting: 1 is the statement's own query (its select list is the result).
    depth: usize,
    /// How many subqueries in expressions (or LATERAL items) enclose this point: their queries
    /// may run once per outer row, before that row's filter, with its values as parameters.
    correlated: usize,
    leaky: bool,
}

impl Visitor for LeakyConditions {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.depth += 1;
        if self.depth > 1 {
            // VALUES rows below the top are select lists too: a one-row `LATERAL (VALUES
            // (1 / o.amount))` is pulled up into the outer query like a subquery.
            let mut rows = Vec::new();
            values_rows(&query.body, &mut rows);
            self.judge(rows)?;
        }
        if self.correlated > 0 {
            // A subquery's ORDER BY and LIMIT run for each outer row it is correlated with.
            let mut conditions: Vec<&Expr> = Vec::new();
            if let Some(OrderBy {
                kind: OrderByKind::Expressions(items),
                ..
            }) = &query.order_by
            {
                conditions.extend(items.iter().map(|o| &o.expr));
            }
            match &query.limit_clause {
                Some(LimitClause::LimitOffset {
                    limit,
                    offset,
                    limit_by,
                }) => {
                    conditions.extend(limit);
                    conditions.extend(offset.iter().map(|o| &o.value));
                    conditions.extend(limit_by);
                }
                Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                    conditions.extend([offset, limit]);
                }
                None => {}
            }
            conditions.extend(query.fetch.iter().filter_map(|f| f.quantity.as_ref()));
            return self.judge(conditions);
        }
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
        if self.correlated > 0
            && let GroupByExpr::Expressions(exprs, _) = &select.group_by
        {
            conditions.extend(exprs);
        }
        self.judge(conditions)
    }

    fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        self.correlated += usize::from(is_sublink(e));
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, e: &Expr) -> ControlFlow<()> {
        self.correlated -= usize::from(is_sublink(e));
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        self.correlated -= usize::from(is_lateral(factor));
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        self.correlated += usize::from(is_lateral(factor));
        let mut conditions: Vec<&Expr> = Vec::new();
        match factor {
            // ON clauses of parenthesised joins.
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                for join in &table_with_joins.joins {
                    if let Some(JoinConstraint::On(on)) = join_constraint(&join.join_operator) {
                        conditions.push(on);
                    }
                }
            }
            // Arguments of functions in FROM, which may read the items before them.
            TableFactor::Table {
                args: Some(args), ..
            } => conditions.extend(args.args.iter().filter_map(argument)),
            TableFactor::Function { args, .. } => {
                conditions.extend(args.iter().filter_map(argument));
            }
            TableFactor::UNNEST { array_exprs, .. } => conditions.extend(array_exprs),
            _ => {}
        }
        self.judge(conditions)
    }
}

impl LeakyConditions {
    fn judge<'e>(&mut self, conditions: impl IntoIterator<Item = &'e Expr>) -> ControlFlow<()> {
        let nested = self.correlated > 0;
        if conditions.into_iter().any(|e| !is_leakproof(e, nested)) {
            self.leaky = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// The expressions of the VALUES lists of a query body (not of queries nested in it).
fn values_rows<'q>(body: &'q SetExpr, rows: &mut Vec<&'q Expr>) {
    match body {
        SetExpr::Values(values) => rows.extend(values.rows.iter().flat_map(|r| &r.content)),
        SetExpr::SetOperation { left, right, .. } => {
            values_rows(left, rows);
            values_rows(right, rows);
        }
        _ => {}
    }
}

/// An expression holding a subquery.
fn is_sublink(e: &Expr) -> bool {
    match e {
        Expr::Subquery(_) | Expr::Exists { .. } => true,
        Expr::In { target, .. } => matches!(target, InTarget::Subquery(_)),
        Expr::Function(f) => matches!(f.args, FunctionArguments::Subquery(_)),
        _ => false,
    }
}

fn is_lateral(factor: &TableFactor) -> bool {
    matches!(factor, TableFactor::Derived { lateral: true, .. })
}

/// The expression of a function argument, named or not (`*` has none).
fn argument(arg: &FunctionArg) -> Option<&Expr> {
    match arg {
        FunctionArg::Named { arg, .. }
        | FunctionArg::ExprNamed { arg, .. }
        | FunctionArg::Unnamed(arg) => match arg {
            FunctionArgExpr::Expr(e) => Some(e),
            _ => None,
        },
    }
}

/// Whether a scalar subquery returns at most one row whatever the data: an aggregate-only
/// select list without GROUP BY. Any other may fail with "more than one row returned".
fn at_most_one_row(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let ungrouped =
        matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    ungrouped
        && select.projection.iter().all(|item| match item {
            SelectItem::UnnamedExpr(Expr::Function(f))
            | SelectItem::ExprWithAlias {
                expr: Expr::Function(f),
                ..
            } => f.over.is_none() && is_aggregate(f),
            _ => false,
        })
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
/// their own conditions are (see [`LeakyConditions`]). `nested`: inside a subquery, which may be
/// correlated with rows no filter has passed yet, so even aggregate arguments count.
fn is_leakproof(e: &Expr, nested: bool) -> bool {
    let leakproof = |e: &Expr| is_leakproof(e, nested);
    match e {
        // Not typed literals: `d > TIMESTAMP '…'` converts the date column on every row, which
        // fails for dates beyond the timestamp range.
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Exists { .. } => true,
        Expr::Subquery(query) => at_most_one_row(query),
        Expr::Nested(a)
        | Expr::IsNull(a)
        | Expr::IsNotNull(a)
        | Expr::IsTrue(a)
        | Expr::IsNotTrue(a)
        | Expr::IsFalse(a)
        | Expr::IsNotFalse(a)
        | Expr::IsUnknown(a)
        | Expr::IsNotUnknown(a) => leakproof(a),
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => leakproof(expr),
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
            ) && leakproof(left)
                && leakproof(right)
        }
        Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => leakproof(a) && leakproof(b),
        Expr::In { expr, target, .. } => {
            leakproof(expr)
                && match target {
                    InTarget::List(list) => list.iter().all(leakproof),
                    InTarget::Subquery(_) => true,
                    _ => false,
                }
        }
        Expr::Between {
            expr, low, high, ..
        } => leakproof(expr) && leakproof(low) && leakproof(high),
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
            ) && leakproof(left)
                && (matches!(**right, Expr::Subquery(_)) || leakproof(right))
        }
        Expr::Array(array) => array.elem.iter().all(leakproof),
        Expr::Tuple(items) => items.iter().all(leakproof),
        Expr::Function(f) if nested => {
            f.over.is_none() && is_aggregate(f) && arguments_leakproof(f)
        }
        Expr::Function(f) => f.over.is_some() || is_aggregate(f),
        _ => false,
    }
}

/// Aggregate calls run on rows every filter has passed (as do window calls).
fn is_aggregate(f: &Function) -> bool {
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

/// Whether every argument of a call (and its FILTER) is leakproof; an ORDER BY among the
/// arguments or WITHIN GROUP counts as leaky.
fn arguments_leakproof(f: &Function) -> bool {
    let args = match &f.args {
        FunctionArguments::List(list) if list.clauses.is_empty() && f.within_group.is_empty() => {
            list.args.iter().filter_map(argument).collect()
        }
        FunctionArguments::None => Vec::new(),
        FunctionArguments::List(_) | FunctionArguments::Subquery(_) => return false,
    };
    args.into_iter()
        .chain(f.filter.as_deref())
        .all(|e| is_leakproof(e, true))
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
            "SELECT x FROM t WHERE x = (SELECT max(y) FROM u WHERE u.z = t.z)",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.y = t.x ORDER BY u.y LIMIT 1)",
            "SELECT * FROM t, generate_series(1, t.x) AS g",
            "SELECT x FROM t WHERE x = ANY (SELECT y FROM u WHERE u.z = t.z)",
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
            // inside a subquery correlated with rows no filter has passed yet
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM generate_series(1, (1 / t.x)::int))",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 LIMIT 1 / t.x)",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM u ORDER BY 1 / t.x)",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM u GROUP BY u.y / t.x)",
            "SELECT x FROM t WHERE EXISTS (SELECT 1 FROM u HAVING sum(1 / t.x) > 0)",
            "SELECT x FROM t WHERE (SELECT y FROM u WHERE u.y = t.x) IS NULL",
            "SELECT * FROM t, unnest(ARRAY[1 / t.x]) AS a",
            "SELECT t.x FROM t, LATERAL (VALUES (t.name::bool)) AS v(b) WHERE v.b",
            "SELECT count(*) FROM t, LATERAL (VALUES (1), (1 / t.x)) AS v(y) WHERE v.y > 0",
        ] {
            assert!(fenced(sql), "{sql}");
        }
    }
}
