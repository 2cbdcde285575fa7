//! Constructors for the few AST shapes tablegate writes itself.
//!
//! Generated SQL is built as AST nodes and printed by sqlparser, never assembled as text.
//! Identifiers are always quoted; combined predicates are always parenthesised, so the printed
//! text parses back to the same tree whatever the operands are.

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    BinaryOperator, CaseWhen, Expr, GroupByExpr, ObjectName, Query, Select, SelectFlavor,
    SelectItem, SetExpr, TableAlias, TableFactor, TableWithJoins,
};

use crate::names::{QualifiedName, quoted};

/// `"schema"."name"`.
pub fn object_name(name: &QualifiedName) -> ObjectName {
    ObjectName::from(vec![quoted(&name.schema), quoted(&name.name)])
}

/// A plain reference to a relation, as a FROM item.
pub fn table(name: ObjectName, alias: Option<TableAlias>) -> TableFactor {
    TableFactor::Table {
        name,
        alias,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_directives: vec![],
        inheritance: None,
    }
}

pub fn alias(name: sqlparser::ast::Ident) -> TableAlias {
    TableAlias {
        explicit: true,
        name,
        columns: vec![],
        at: None,
    }
}

/// `SELECT projection FROM from [WHERE selection]`.
pub fn select(projection: Vec<SelectItem>, from: TableFactor, selection: Option<Expr>) -> Query {
    let select = Select {
        select_token: AttachedToken::empty(),
        optimizer_hints: vec![],
        distinct: None,
        select_modifiers: None,
        top: None,
        top_before_distinct: false,
        projection,
        exclude: None,
        into: None,
        from: vec![TableWithJoins {
            relation: from,
            joins: vec![],
        }],
        lateral_views: vec![],
        prewhere: None,
        selection,
        connect_by: vec![],
        group_by: GroupByExpr::Expressions(vec![], vec![]),
        cluster_by: vec![],
        distribute_by: vec![],
        sort_by: vec![],
        having: None,
        named_window: vec![],
        qualify: None,
        window_before_qualify: false,
        value_table_mode: None,
        flavor: SelectFlavor::Standard,
    };
    Query {
        with: None,
        body: Box::new(SetExpr::Select(Box::new(select))),
        order_by: None,
        limit_clause: None,
        fetch: None,
        locks: vec![],
        for_clause: None,
        settings: None,
        format_clause: None,
        pipe_operators: vec![],
    }
}

/// `(e)`, unless `e` already is parenthesised.
fn nested(e: Expr) -> Expr {
    match e {
        Expr::Nested(_) => e,
        e => Expr::Nested(Box::new(e)),
    }
}

/// `(a) OR (b) OR …`; `exprs` must not be empty.
pub fn any_of(exprs: Vec<Expr>) -> Expr {
    combine(exprs, BinaryOperator::Or)
}

/// `(a) AND (b) AND …`; `exprs` must not be empty.
pub fn all_of(exprs: Vec<Expr>) -> Expr {
    combine(exprs, BinaryOperator::And)
}

fn combine(exprs: Vec<Expr>, op: BinaryOperator) -> Expr {
    let mut iter = exprs.into_iter().map(nested);
    let first = iter.next().expect("combine needs at least one expression");
    iter.fold(first, |left, right| Expr::BinaryOp {
        left: Box::new(left),
        op: op.clone(),
        right: Box::new(right),
    })
}

/// `CASE WHEN (condition) THEN result END`.
pub fn case_when(condition: Expr, result: Expr) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: vec![CaseWhen {
            condition: nested(condition),
            result,
        }],
        else_result: None,
    }
}
