//! Constructors for the few AST shapes tablegate writes itself.
//!
//! Generated SQL is built as AST nodes and printed by sqlparser, never assembled as text.
//! Identifiers are always quoted; combined predicates are always parenthesised, so the printed
//! text parses back to the same tree whatever the operands are.

use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    BinaryOperator, CaseWhen, CastKind, DataType, Expr, Function, FunctionArg, FunctionArgExpr,
    FunctionArgumentList, FunctionArguments, GroupByExpr, Ident, ObjectName, Query, Select,
    SelectFlavor, SelectItem, SetExpr, TableAlias, TableFactor, TableWithJoins,
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

/// `CASE WHEN (c1) THEN r1 WHEN (c2) THEN r2 … [ELSE e] END`; `arms` must not be empty.
pub fn case(arms: Vec<(Expr, Expr)>, else_result: Option<Expr>) -> Expr {
    Expr::Case {
        case_token: AttachedToken::empty(),
        end_token: AttachedToken::empty(),
        operand: None,
        conditions: arms
            .into_iter()
            .map(|(condition, result)| CaseWhen {
                condition: nested(condition),
                result,
            })
            .collect(),
        else_result: else_result.map(Box::new),
    }
}

/// `pg_catalog.name(args…)`: a built-in, pinned so no function of the same name in a schema on
/// the session's search_path can stand in for it. `name` must be a plain lower-case word.
pub fn builtin_call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new("pg_catalog"), Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        within_group: vec![],
        filter: None,
        null_treatment: None,
        over: None,
    })
}

/// `expr::data_type`.
pub fn cast(expr: Expr, data_type: DataType) -> Expr {
    Expr::Cast {
        kind: CastKind::DoubleColon,
        expr: Box::new(nested_unless_simple(expr)),
        data_type,
        format: None,
    }
}

/// `::` binds tighter than any operator: a compound operand needs parentheses.
fn nested_unless_simple(e: Expr) -> Expr {
    match e {
        Expr::Identifier(_)
        | Expr::CompoundIdentifier(_)
        | Expr::Value(_)
        | Expr::Function(_)
        | Expr::Nested(_)
        | Expr::Cast { .. } => e,
        e => Expr::Nested(Box::new(e)),
    }
}
