//! Changes the test makes to a query: a tie-break for LIMIT, leaving out the select-list
//! columns tablegate stripped, repairing a SQLite habit, and equivalent forms (variants).

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Expr, Ident, ObjectNamePart, OrderBy, OrderByExpr, OrderByKind, OrderByOptions, Query,
    SelectItem, SetExpr, Statement, TableFactor, Value, VisitMut, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

fn parse_one(sql: &str) -> Option<Statement> {
    let mut statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).ok()?;
    (statements.len() == 1).then(|| statements.remove(0))
}

/// Which query levels have LIMIT, OFFSET or FETCH: their rows may depend on how the server
/// breaks ties in the ORDER BY.
pub struct LimitLevels {
    pub top: bool,
    pub nested: bool,
}

impl LimitLevels {
    pub fn any(&self) -> bool {
        self.top || self.nested
    }
}

pub fn limit_levels(sql: &str) -> LimitLevels {
    struct Finder {
        depth: usize,
        levels: LimitLevels,
    }
    impl VisitorMut for Finder {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if q.limit_clause.is_some() || q.fetch.is_some() {
                if self.depth == 0 {
                    self.levels.top = true;
                } else {
                    self.levels.nested = true;
                }
            }
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _: &mut Query) -> ControlFlow<()> {
            self.depth -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut finder = Finder {
        depth: 0,
        levels: LimitLevels {
            top: false,
            nested: false,
        },
    };
    if let Some(mut statement) = parse_one(sql) {
        let _ = statement.visit(&mut finder);
    }
    finder.levels
}

/// The query without its top level's LIMIT, OFFSET and FETCH: every row a limited answer may
/// hold.
pub fn without_top_limit(sql: &str) -> Option<String> {
    let mut statement = parse_one(sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    query.limit_clause = None;
    query.fetch = None;
    Some(statement.to_string())
}

/// The query with every limited level's ORDER BY extended by all its output columns
/// (`ORDER BY <keys>, 1, 2, …`), which makes the rows a LIMIT keeps a function of the data:
/// rows that still tie are equal in every column, so which one is kept does not matter. `None`
/// if some limited level's width is unknown (`*`).
pub fn tie_broken(sql: &str) -> Option<String> {
    struct TieBreak {
        unknown: bool,
    }
    impl VisitorMut for TieBreak {
        type Break = ();
        fn pre_visit_query(&mut self, q: &mut Query) -> ControlFlow<()> {
            if q.limit_clause.is_none() && q.fetch.is_none() {
                return ControlFlow::Continue(());
            }
            let Some(width) = width(&q.body) else {
                self.unknown = true;
                return ControlFlow::Break(());
            };
            let order_by = q.order_by.get_or_insert_with(|| OrderBy {
                kind: OrderByKind::Expressions(Vec::new()),
                interpolate: None,
            });
            let OrderByKind::Expressions(exprs) = &mut order_by.kind else {
                self.unknown = true;
                return ControlFlow::Break(());
            };
            exprs.extend((1..=width).map(|i| OrderByExpr {
                expr: Expr::value(Value::Number(i.to_string(), false)),
                options: OrderByOptions {
                    sort: None,
                    nulls_first: None,
                },
                with_fill: None,
            }));
            ControlFlow::Continue(())
        }
    }
    let mut statement = parse_one(sql)?;
    let mut pass = TieBreak { unknown: false };
    let _ = statement.visit(&mut pass);
    (!pass.unknown).then(|| statement.to_string())
}

fn width(body: &SetExpr) -> Option<usize> {
    match body {
        SetExpr::Select(s) => s
            .projection
            .iter()
            .all(|i| {
                matches!(
                    i,
                    SelectItem::UnnamedExpr(_) | SelectItem::ExprWithAlias { .. }
                )
            })
            .then_some(s.projection.len()),
        SetExpr::SetOperation { left, .. } => width(left),
        SetExpr::Query(q) => width(&q.body),
        _ => None,
    }
}

/// The query without the top-level select-list items tablegate stripped, named by the labels
/// of its notice (`alias.column`). `None` when that cannot be done faithfully here: not a plain
/// SELECT, or positional ORDER BY / GROUP BY (whose numbers would shift).
pub fn without_columns(sql: &str, labels: &[String]) -> Option<String> {
    let mut statement = parse_one(sql)?;
    let Statement::Query(query) = &mut statement else {
        return None;
    };
    let positional = |e: &Expr| matches!(e, Expr::Value(v) if matches!(v.value, Value::Number(..)));
    if let Some(OrderBy {
        kind: OrderByKind::Expressions(exprs),
        ..
    }) = &query.order_by
        && exprs.iter().any(|o| positional(&o.expr))
    {
        return None;
    }
    let SetExpr::Select(select) = query.body.as_mut() else {
        return None;
    };
    if let sqlparser::ast::GroupByExpr::Expressions(exprs, _) = &select.group_by
        && exprs.iter().any(positional)
    {
        return None;
    }
    let stripped = |e: &Expr| -> bool {
        let parts: Vec<String> = match e {
            Expr::Identifier(id) => vec![id.value.to_ascii_lowercase()],
            Expr::CompoundIdentifier(ids) => {
                ids.iter().map(|i| i.value.to_ascii_lowercase()).collect()
            }
            _ => return false,
        };
        labels.iter().any(|label| match parts.as_slice() {
            // Unqualified: PostgreSQL accepted the name, so it is unambiguous.
            [column] => label.rsplit('.').next() == Some(column.as_str()),
            [.., table, column] => *label == format!("{table}.{column}"),
            [] => false,
        })
    };
    let before = select.projection.len();
    select.projection.retain(|item| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => !stripped(e),
        _ => true,
    });
    (select.projection.len() < before && !select.projection.is_empty())
        .then(|| statement.to_string())
}

/// The labels a rewrite's "left out of the result" notice names.
pub fn stripped_labels(notices: &[String]) -> Vec<String> {
    notices
        .iter()
        .filter_map(|n| n.split_once("left out of the result: "))
        .flat_map(|(_, list)| list.split(", ").map(str::to_owned))
        .collect()
}

/// A SQLite habit repaired: `"JetBlue Airways"` as a value is a string in SQLite and a column
/// name in PostgreSQL. Double-quoted names that are no column of the db (`columns`, lower case)
/// become string literals. `None` if nothing changed.
pub fn repair_sqlite(sql: &str, columns: &HashSet<String>) -> Option<String> {
    struct Repair<'a> {
        columns: &'a HashSet<String>,
        changed: bool,
    }
    impl VisitorMut for Repair<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Expr::Identifier(id) = expr
                && id.quote_style == Some('"')
                && !self.columns.contains(&id.value)
            {
                *expr = Expr::value(Value::SingleQuotedString(id.value.clone()));
                self.changed = true;
            }
            ControlFlow::Continue(())
        }
    }
    let mut statement = parse_one(sql)?;
    let mut pass = Repair {
        columns,
        changed: false,
    };
    let _ = statement.visit(&mut pass);
    pass.changed.then(|| statement.to_string())
}

/// A form of a query that means the same, and its version for the copy.
pub struct Variant {
    pub name: &'static str,
    pub sql: String,
    pub copy_sql: String,
}

/// Forms of a query that mean the same, each a different path through the rewriter: as a CTE,
/// as a derived table, and with every table name schema-qualified (which the copy's version
/// qualifies with the copy's schema).
pub fn variants(sql: &str, schema: &str, copy_schema: &str) -> Vec<Variant> {
    struct Qualify<'a> {
        schema: &'a str,
    }
    impl VisitorMut for Qualify<'_> {
        type Break = ();
        fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
            if let TableFactor::Table {
                name, args: None, ..
            } = factor
                && name.0.len() == 1
            {
                name.0.insert(
                    0,
                    ObjectNamePart::Identifier(Ident::with_quote('"', self.schema)),
                );
            }
            ControlFlow::Continue(())
        }
    }
    let Some(statement) = parse_one(sql) else {
        return Vec::new();
    };
    let qualified = |schema: &str| {
        let mut s = statement.clone();
        let _ = s.visit(&mut Qualify { schema });
        s.to_string()
    };
    let same = |name, sql: String| Variant {
        name,
        copy_sql: sql.clone(),
        sql,
    };
    vec![
        same(
            "as a CTE",
            format!("WITH spider_q AS ({statement}) SELECT * FROM spider_q"),
        ),
        same(
            "as a derived table",
            format!("SELECT * FROM ({statement}) AS spider_q"),
        ),
        Variant {
            name: "schema-qualified",
            sql: qualified(schema),
            copy_sql: qualified(copy_schema),
        },
    ]
}
