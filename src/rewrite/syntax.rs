//! Reading names and arguments out of sqlparser's AST, folded.
//!
//! The same few shapes (a dotted name, a call's arguments, `t.*`, a join's constraint) are read
//! by the walker and by the checks that run over the finished tree: one reading of each keeps
//! them agreeing.

use sqlparser::ast::{
    AccessExpr, CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident,
    JoinConstraint, JoinOperator, ObjectName, TableFactor,
};

use crate::names::fold;
use crate::refusal::Refusal;

/// Parts of an object name, folded; function-call parts are refused.
pub(super) fn object_name_parts(name: &ObjectName) -> Result<Vec<String>, Refusal> {
    crate::names::fold_object_name(name)
        .ok_or_else(|| Refusal::unsupported("a function call inside a name"))
}

/// The name a subscripted or field-selected name begins with: `o.tags` of `o.tags[1]`, which
/// sqlparser splits into the root `o` and the accesses `.tags`, `[1]`. Also how many accesses
/// belong to the name; `None` when none do, or the root is no plain name (`(o).tags`).
pub(super) fn leading_name(root: &Expr, chain: &[AccessExpr]) -> Option<(Vec<Ident>, usize)> {
    let mut parts = match root {
        Expr::Identifier(id) => vec![id.clone()],
        Expr::CompoundIdentifier(ids) => ids.clone(),
        _ => return None,
    };
    let named = parts.len();
    parts.extend(chain.iter().map_while(|access| match access {
        AccessExpr::Dot(Expr::Identifier(id)) => Some(id.clone()),
        _ => None,
    }));
    let names = parts.len() - named;
    (names > 0).then_some((parts, names))
}

/// The arguments of a function in FROM (`generate_series(1, t.x)`, `f(t.*)`).
pub(super) fn table_function_arguments(factor: &TableFactor) -> &[FunctionArg] {
    match factor {
        TableFactor::Table {
            args: Some(args), ..
        } => &args.args,
        TableFactor::Function { args, .. } => args,
        _ => &[],
    }
}

/// The arguments of a function call in an expression.
pub(super) fn call_arguments(e: &Expr) -> &[FunctionArg] {
    match e {
        Expr::Function(Function {
            args: FunctionArguments::List(list),
            ..
        }) => &list.args,
        _ => &[],
    }
}

/// The names `t` of `t.*` function arguments (`row_to_json(t.*)`): each reads t's whole row,
/// as the bare name `t` would.
pub(super) fn row_arguments(args: &[FunctionArg]) -> impl Iterator<Item = &ObjectName> {
    args.iter().filter_map(|arg| match arg {
        FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(name))
        | FunctionArg::Named {
            arg: FunctionArgExpr::QualifiedWildcard(name),
            ..
        }
        | FunctionArg::ExprNamed {
            arg: FunctionArgExpr::QualifiedWildcard(name),
            ..
        } => Some(name),
        _ => None,
    })
}

/// The folded parts of a bare column reference.
pub(super) fn column_parts(e: &Expr) -> Option<Vec<String>> {
    match e {
        Expr::Identifier(id) => Some(vec![fold(id)]),
        Expr::CompoundIdentifier(ids) => Some(ids.iter().map(fold).collect()),
        _ => None,
    }
}

/// The join kinds PostgreSQL has, binding their constraint: one list for the shared and the
/// mutable reading below, so that the walk and the checks over its tree agree on what a join is.
macro_rules! postgres_join {
    ($constraint:ident) => {
        JoinOperator::Join($constraint)
            | JoinOperator::Inner($constraint)
            | JoinOperator::Left($constraint)
            | JoinOperator::LeftOuter($constraint)
            | JoinOperator::Right($constraint)
            | JoinOperator::RightOuter($constraint)
            | JoinOperator::FullOuter($constraint)
            | JoinOperator::CrossJoin($constraint)
    };
}

/// The constraint (ON, USING, NATURAL or none) of a join; `None` for the kinds of other
/// dialects (SEMI, ANTI, APPLY, ASOF, STRAIGHT_JOIN, ARRAY JOIN), which the walk refuses.
pub(super) fn join_constraint(operator: &JoinOperator) -> Option<&JoinConstraint> {
    match operator {
        postgres_join!(c) => Some(c),
        _ => None,
    }
}

/// [`join_constraint`], for the walk that rewrites the constraint.
pub(super) fn join_constraint_mut(operator: &mut JoinOperator) -> Option<&mut JoinConstraint> {
    match operator {
        postgres_join!(c) => Some(c),
        _ => None,
    }
}

/// The values a CASE may take: each WHEN's result, and the ELSE.
pub(super) fn case_results<'e>(
    conditions: &'e [CaseWhen],
    else_result: &'e Option<Box<Expr>>,
) -> impl Iterator<Item = &'e Expr> {
    conditions
        .iter()
        .map(|when| &when.result)
        .chain(else_result.as_deref())
}
