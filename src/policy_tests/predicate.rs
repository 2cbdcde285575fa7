//! `expect.rows_where`: a condition every row of a case's result must satisfy, checked by
//! PostgreSQL on the result itself.
//!
//! The DBA writes an SQL boolean expression over the result's columns. It is parsed once with
//! sqlparser as exactly one expression and checked: no subquery (so it can read nothing but the
//! result, although the check runs on the service connection), no parameters, only functions,
//! operators and casts the rewriter allows. The check query is then built as AST around the
//! rewritten query — `SELECT … FROM (<rewritten>) AS result WHERE (<predicate>) IS NOT TRUE` — so
//! the text of the predicate is never pasted into SQL. Test files are trusted DBA input; these
//! checks keep a typo from turning into something else.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, FunctionArguments, Ident, Query, SelectItem, TableFactor, Value, Visit, Visitor,
    WildcardAdditionalOptions,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::names::{fold, fold_object_name};
use crate::policy::set::function_key;
use crate::rewrite::functions::{
    is_safe_binary_operator, is_safe_function, is_safe_unary_operator, refused_type,
};
use crate::sql;

/// The name the result goes by in the predicate: `result.region` is the column `region`.
pub const RESULT: &str = "result";

#[derive(Clone, Debug)]
pub struct RowPredicate {
    /// As the test file writes it.
    pub text: String,
    expr: Box<Expr>,
}

impl RowPredicate {
    pub fn parse(text: &str) -> Result<RowPredicate, String> {
        let mut parser = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(text)
            .map_err(|e| format!("`rows_where` does not parse: {e}"))?;
        let expr = parser
            .parse_expr()
            .map_err(|e| format!("`rows_where` does not parse: {e}"))?;
        if parser.peek_token().token != Token::EOF {
            return Err(format!(
                "`rows_where` must be one boolean expression; unexpected `{}` after it",
                parser.peek_token().token
            ));
        }
        let mut check = Check { problem: None };
        let _ = expr.visit(&mut check);
        match check.problem {
            Some(problem) => Err(format!("`rows_where` {problem}")),
            None => Ok(RowPredicate {
                text: text.to_owned(),
                expr: Box::new(expr),
            }),
        }
    }

    /// `SELECT pg_catalog.count(1) FROM (<query>) AS result WHERE (<predicate>) IS NOT TRUE`:
    /// how many rows fail the predicate (NULL fails too).
    pub fn count_failing(&self, query: Query) -> Query {
        let count = sql::builtin_call("count", vec![Expr::value(Value::Number("1".into(), false))]);
        self.failing(query, vec![SelectItem::UnnamedExpr(count)])
    }

    /// `SELECT * FROM (<query>) AS result WHERE (<predicate>) IS NOT TRUE LIMIT <limit>`: some
    /// rows that fail it, to show.
    pub fn sample_failing(&self, query: Query, limit: u64) -> Query {
        let mut sample = self.failing(
            query,
            vec![SelectItem::Wildcard(WildcardAdditionalOptions::default())],
        );
        sample.limit_clause = Some(sqlparser::ast::LimitClause::LimitOffset {
            limit: Some(Expr::value(Value::Number(limit.to_string(), false))),
            offset: None,
            limit_by: vec![],
        });
        sample
    }

    fn failing(&self, query: Query, projection: Vec<SelectItem>) -> Query {
        let result = TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query),
            alias: Some(sql::alias(Ident::new(RESULT))),
            sample: None,
        };
        let fails = Expr::IsNotTrue(Box::new(Expr::Nested(self.expr.clone())));
        sql::select(projection, result, Some(fails))
    }
}

/// Finds the first thing a row predicate may not contain.
struct Check {
    problem: Option<String>,
}

impl Check {
    fn refuse(&mut self, problem: String) -> ControlFlow<()> {
        self.problem = Some(problem);
        ControlFlow::Break(())
    }
}

impl Visitor for Check {
    type Break = ();

    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.refuse("cannot contain a subquery: it is checked on the query's result only".into())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::CompoundIdentifier(parts) if parts.len() != 2 || fold(&parts[0]) != RESULT => {
                let name = parts.iter().map(|p| p.value.as_str()).collect::<Vec<_>>();
                return self.refuse(format!(
                    "names `{}`: name the result's columns as `column` or `{RESULT}.column`",
                    name.join(".")
                ));
            }
            Expr::Function(f) => {
                let key = fold_object_name(&f.name).map(|parts| function_key(&parts));
                if !key.is_some_and(|key| is_safe_function(&key)) || f.over.is_some() {
                    return self.refuse(format!(
                        "calls `{}`, which is not a built-in function tablegate allows here",
                        f.name
                    ));
                }
                if matches!(f.args, FunctionArguments::Subquery(_)) {
                    return self.refuse("cannot contain a subquery".into());
                }
            }
            Expr::BinaryOp { op, .. } if !is_safe_binary_operator(op) => {
                return self.refuse(format!("uses the operator {op}, which is not allowed"));
            }
            Expr::UnaryOp { op, .. } if !is_safe_unary_operator(op) => {
                return self.refuse(format!("uses the operator {op}, which is not allowed"));
            }
            Expr::Cast { data_type, .. } => {
                if let Some(what) = refused_type(data_type) {
                    return self.refuse(format!("casts to {what}, which is not allowed"));
                }
            }
            Expr::Value(v) if matches!(v.value, Value::Placeholder(_)) => {
                return self.refuse(format!("has the parameter {}; write the value", v.value));
            }
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                return self.refuse("cannot contain `*`".into());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_query_is_built_around_the_rewritten_query() {
        let predicate =
            RowPredicate::parse("region IN ('East', 'North') AND result.amount > 0").unwrap();
        let query = crate::rewrite::parse("SELECT region, amount FROM (SELECT 1) AS t")
            .unwrap()
            .remove(0);
        let sqlparser::ast::Statement::Query(query) = query else {
            unreachable!()
        };
        assert_eq!(
            predicate.count_failing(*query.clone()).to_string(),
            "SELECT pg_catalog.count(1) FROM (SELECT region, amount FROM (SELECT 1) AS t) AS result \
             WHERE (region IN ('East', 'North') AND result.amount > 0) IS NOT TRUE"
        );
        assert!(
            predicate
                .sample_failing(*query, 3)
                .to_string()
                .ends_with("IS NOT TRUE LIMIT 3")
        );
    }

    #[test]
    fn anything_but_one_expression_over_the_result_is_rejected() {
        for (text, problem) in [
            (
                "region = 'East'; DROP TABLE orders",
                "one boolean expression",
            ),
            ("region = 'East') OR (true", "one boolean expression"),
            ("EXISTS (SELECT 1 FROM secret)", "subquery"),
            ("region IN (SELECT region FROM orders)", "subquery"),
            ("pg_sleep(10) IS NULL", "pg_sleep"),
            ("public.f(region)", "public.f"),
            ("orders.region = 'East'", "orders.region"),
            ("region = $1", "parameter"),
            ("region::regclass IS NULL", "casts"),
            ("", "does not parse"),
        ] {
            let err = RowPredicate::parse(text).unwrap_err();
            assert!(err.contains(problem), "{text}: {err}");
        }
        assert!(RowPredicate::parse("phone LIKE '****%' OR phone IS NULL").is_ok());
        assert!(
            RowPredicate::parse("length(result.name) <= 10 AND coalesce(amount, 0) >= 0").is_ok()
        );
    }
}
