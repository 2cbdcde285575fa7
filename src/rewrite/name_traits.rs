//! What the names of a statement may denote when compared: the [`OperandTraits`] of every
//! value a name may stand for, for the fence ([`super::leakproof`]) to judge comparisons by.
//!
//! A name's traits are those of the catalog's columns of that name (in any relation) together
//! with those of every value the statement gives it: a select-list item's by its alias or the
//! output name PostgreSQL figures, a set operation's column by position across its branches,
//! through any depth of derived tables and CTEs. Names are not placed in scopes: taking every
//! value a name may hold anywhere in the statement can only widen its traits.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::ops::ControlFlow;

use sqlparser::ast::{
    BinaryOperator, Expr, Function, FunctionArguments, JoinConstraint, ObjectNamePart, Query,
    Select, SelectItem, SetExpr, Statement, UnaryOperator, Visit, Visitor,
};

use super::colname::output_name;
use super::leakproof::{
    FIXED_TYPE_AGGREGATES, INPUT_TYPED_AGGREGATES, argument, function_name, is_condition,
};
use super::operand_traits::{OperandTraits, TypeFamilies};
use super::syntax::case_results;
use crate::names::fold;

/// What the catalog's columns named so, in any relation, may be when compared; `None` when no
/// column has that name.
pub(super) type ColumnTraits<'a> = dyn Fn(&str) -> Option<OperandTraits> + 'a;

/// What the values each name of a statement may denote may be when compared
/// ([`OperandTraits`]): the catalog's columns of that name, and every value the statement gives
/// that name — a select-list item by its alias or output name, judged by its expression; a name
/// an alias list gives (unless a column definition types it), a FROM item's or a function's
/// ([`super::leakproof`]'s record names), anything. A name neither the catalog nor the statement knows may be
/// anything.
pub(super) struct NameTraits<'a> {
    catalog: &'a ColumnTraits<'a>,
    statement: &'a Statement,
    records: &'a HashMap<String, OperandTraits>,
    /// What the statement gives each name, worked out when first asked for: most statements
    /// compare columns only with literals.
    given: OnceCell<Given>,
}

/// What a statement gives its names: by name, or anything to every name when some set
/// operation's columns cannot be placed ([`SelectOutputs::misaligned`]).
struct Given {
    names: HashMap<String, OperandTraits>,
    misaligned: bool,
}

impl<'a> NameTraits<'a> {
    pub(super) fn new(
        statement: &'a Statement,
        records: &'a HashMap<String, OperandTraits>,
        catalog: &'a ColumnTraits<'a>,
    ) -> NameTraits<'a> {
        NameTraits {
            catalog,
            statement,
            records,
            given: OnceCell::new(),
        }
    }

    fn given(&self) -> &Given {
        self.given.get_or_init(|| {
            let mut outputs = SelectOutputs::default();
            let _ = self.statement.visit(&mut outputs);
            let mut names: HashMap<String, OperandTraits> = outputs
                .outputs
                .iter()
                .map(|(name, _)| (name.clone(), OperandTraits::NONE))
                .collect();
            for (name, traits) in self.records {
                let known = names.entry(name.clone()).or_default();
                *known = *known | *traits;
            }
            let misaligned = outputs.misaligned;
            // An output may name another (`SELECT s.total AS t FROM (SELECT sum(…) AS total …)
            // s`): traits only grow, so this ends once none does.
            loop {
                let partial = NameTraits {
                    given: OnceCell::from(Given { names, misaligned }),
                    ..*self
                };
                let more: Vec<OperandTraits> = outputs
                    .outputs
                    .iter()
                    .map(|(_, e)| partial.of_expr(e))
                    .collect();
                names = partial.given.into_inner().expect("given above").names;
                let mut grew = false;
                for ((name, _), more) in outputs.outputs.iter().zip(more) {
                    let known = names.get_mut(name).expect("every output is given");
                    if *known | more != *known {
                        *known = *known | more;
                        grew = true;
                    }
                }
                if !grew {
                    return Given { names, misaligned };
                }
            }
        })
    }

    pub(super) fn of_name(&self, name: &str) -> OperandTraits {
        let given = self.given();
        if given.misaligned {
            return OperandTraits::ANY;
        }
        match ((self.catalog)(name), given.names.get(name)) {
            (None, None) => OperandTraits::ANY,
            (catalog, given) => catalog.unwrap_or_default() | given.copied().unwrap_or_default(),
        }
    }

    /// What `e`'s value may be. Literals take the type of what they are compared with
    /// (parameters are judged by the fence's own rules); booleans are of no family.
    pub(super) fn of_expr(&self, e: &Expr) -> OperandTraits {
        match e {
            Expr::Identifier(id) => self.of_name(&fold(id)),
            Expr::CompoundIdentifier(ids) => ids
                .last()
                .map_or(OperandTraits::ANY, |id| self.of_name(&fold(id))),
            Expr::Value(_) | Expr::Interval(_) => OperandTraits::NONE,
            Expr::Nested(inner)
            | Expr::UnaryOp {
                op: UnaryOperator::Minus | UnaryOperator::Plus,
                expr: inner,
            } => self.of_expr(inner),
            Expr::TypedString(typed) => {
                OperandTraits::of_families(TypeFamilies::of_data_type(&typed.data_type))
            }
            Expr::Cast {
                expr, data_type, ..
            } => OperandTraits {
                families: TypeFamilies::of_data_type(data_type),
                collations: self.of_expr(expr).collations,
            },
            Expr::BinaryOp {
                left,
                op:
                    BinaryOperator::Plus
                    | BinaryOperator::Minus
                    | BinaryOperator::Multiply
                    | BinaryOperator::Divide
                    | BinaryOperator::Modulo,
                right,
            } => self.of_arithmetic([left.as_ref(), right.as_ref()]),
            e if is_condition(e) => OperandTraits::NONE,
            Expr::Case {
                conditions,
                else_result,
                ..
            } => case_results(conditions, else_result)
                .fold(OperandTraits::NONE, |t, e| t | self.of_expr(e)),
            Expr::Array(array) => self.of_all(&array.elem),
            Expr::Tuple(fields) => self.of_all(fields),
            Expr::Subquery(query) => self.of_outputs(&query.body),
            Expr::Function(f) => self.of_call(f),
            _ => OperandTraits::ANY,
        }
    }

    /// Arithmetic keeps its operands' families, except that dates and timestamps give one
    /// another (`d + interval '1 day'` is a timestamp) and `oid` gives bigint. Types of no
    /// family give anything (found by red-team review: `money / money` is a float).
    fn of_arithmetic(&self, operands: [&Expr; 2]) -> OperandTraits {
        const DATETIME: TypeFamilies = TypeFamilies::DATE
            .union(TypeFamilies::TIMESTAMP)
            .union(TypeFamilies::TIMESTAMPTZ);
        let mut traits = OperandTraits::NONE;
        for operand in operands {
            if is_bare_literal(operand) {
                continue;
            }
            let more = self.of_expr(operand);
            if more.families == TypeFamilies::NONE {
                return OperandTraits::ANY;
            }
            traits = traits | more;
        }
        if traits.families.intersects(DATETIME) {
            traits.families = traits.families | DATETIME;
        }
        if traits.families.intersects(TypeFamilies::OID) {
            traits.families = traits.families | TypeFamilies::BIGINT;
        }
        traits
    }

    fn of_all(&self, exprs: &[Expr]) -> OperandTraits {
        exprs
            .iter()
            .fold(OperandTraits::NONE, |t, e| t | self.of_expr(e))
    }

    /// What any column a query body returns may be.
    pub(super) fn of_outputs(&self, body: &SetExpr) -> OperandTraits {
        match body {
            SetExpr::Select(select) => {
                select
                    .projection
                    .iter()
                    .fold(OperandTraits::NONE, |t, item| match item {
                        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                            t | self.of_expr(e)
                        }
                        _ => OperandTraits::ANY,
                    })
            }
            SetExpr::Query(query) => self.of_outputs(&query.body),
            SetExpr::SetOperation { left, right, .. } => {
                self.of_outputs(left) | self.of_outputs(right)
            }
            SetExpr::Values(values) => values
                .rows
                .iter()
                .fold(OperandTraits::NONE, |t, row| t | self.of_all(&row.content)),
            _ => OperandTraits::ANY,
        }
    }

    /// An aggregate's or window function's result, carrying its inputs' collations: `count`
    /// and the ranks are bigint, `ntile` integer; the input-typed keep their input's families;
    /// `sum` of integers is bigint, of bigints numeric, `avg` of any but floats numeric. Other
    /// calls may return anything.
    fn of_call(&self, f: &Function) -> OperandTraits {
        let name = function_name(f);
        let inputs = match &f.args {
            FunctionArguments::List(list) => list
                .args
                .iter()
                .filter_map(argument)
                .chain(f.within_group.iter().map(|o| &o.expr))
                .fold(OperandTraits::NONE, |t, e| t | self.of_expr(e)),
            FunctionArguments::None => OperandTraits::NONE,
            FunctionArguments::Subquery(_) => OperandTraits::ANY,
        };
        let keep = |family: TypeFamilies, into: TypeFamilies| {
            if inputs.families.intersects(family) {
                into
            } else {
                TypeFamilies::NONE
            }
        };
        let families = match name.as_str() {
            "count" | "row_number" | "rank" | "dense_rank" => TypeFamilies::BIGINT,
            "ntile" => TypeFamilies::INTEGER,
            "sum" => {
                keep(TypeFamilies::INTEGER, TypeFamilies::BIGINT)
                    | keep(TypeFamilies::BIGINT, TypeFamilies::NUMERIC)
                    | keep(TypeFamilies::NUMERIC, TypeFamilies::NUMERIC)
                    | keep(TypeFamilies::FLOAT, TypeFamilies::FLOAT)
            }
            "avg" => {
                keep(
                    TypeFamilies::INTEGER | TypeFamilies::BIGINT | TypeFamilies::NUMERIC,
                    TypeFamilies::NUMERIC,
                ) | keep(TypeFamilies::FLOAT, TypeFamilies::FLOAT)
            }
            name if FIXED_TYPE_AGGREGATES.contains(&name) => TypeFamilies::NONE,
            name if INPUT_TYPED_AGGREGATES.contains(&name) => inputs.families,
            _ => return OperandTraits::ANY,
        };
        OperandTraits {
            families,
            collations: inputs.collations,
        }
    }

    /// Whether a join's `USING` or `NATURAL` merges columns whose names may hold values that
    /// fail to compare, or (in an outer join's merged column) to convert to their common type.
    /// tablegate does not know which columns a NATURAL join merges: it counts as such a join.
    pub(super) fn join_may_fail(&self, constraint: &JoinConstraint) -> bool {
        match constraint {
            JoinConstraint::Using(columns) | JoinConstraint::UsingAlias(columns, _) => {
                columns.iter().any(|column| {
                    let traits = match column.0.last() {
                        Some(ObjectNamePart::Identifier(id)) => self.of_name(&fold(id)),
                        _ => OperandTraits::ANY,
                    };
                    traits.merge_may_fail(traits)
                })
            }
            JoinConstraint::Natural => true,
            JoinConstraint::On(_) | JoinConstraint::None => false,
        }
    }
}

/// A literal as written, which takes its type from what it meets.
pub(super) fn is_bare_literal(e: &Expr) -> bool {
    match e {
        Expr::Value(_) | Expr::Interval(_) => true,
        Expr::Nested(inner)
        | Expr::UnaryOp {
            op: UnaryOperator::Minus | UnaryOperator::Plus,
            expr: inner,
        } => is_bare_literal(inner),
        _ => false,
    }
}

/// Every select-list item of the statement, at every level, with the name it gives its value:
/// its alias, or the output name PostgreSQL figures. A set operation's columns take the names
/// of its first branch and the values of every branch, by position.
#[derive(Default)]
struct SelectOutputs {
    outputs: Vec<(String, Expr)>,
    /// Query nesting: 1 is the statement's own query, whose columns no condition reads.
    depth: usize,
    /// Some set operation below the top has a branch whose columns tablegate cannot place (a
    /// `*`, `TABLE t`): any of its names may hold any branch's value (found by red-team
    /// review: `SELECT *, cnote AS k FROM customers UNION ALL SELECT …, clabel FROM customers`
    /// gave `k` the values of the fifth column).
    misaligned: bool,
}

impl Visitor for SelectOutputs {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.depth += 1;
        if matches!(*query.body, SetExpr::SetOperation { .. }) {
            let mut branches = Vec::new();
            set_operation_branches(&query.body, &mut branches);
            match branches.into_iter().collect::<Option<Vec<_>>>() {
                Some(branches) => {
                    let names: Vec<String> = branches
                        .first()
                        .map(|first| first.iter().map(|(name, _)| name.clone()).collect())
                        .unwrap_or_default();
                    for branch in branches {
                        for (name, (_, e)) in names.iter().zip(branch) {
                            self.outputs.push((name.clone(), (*e).clone()));
                        }
                    }
                }
                None => self.misaligned |= self.depth > 1,
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        for item in &select.projection {
            if let Some((name, e)) = select_output(item) {
                self.outputs.push((name, e.clone()));
            }
        }
        ControlFlow::Continue(())
    }
}

/// A select-list item's name and value; `None` for `*` and `t.*`.
fn select_output(item: &SelectItem) -> Option<(String, &Expr)> {
    match item {
        SelectItem::UnnamedExpr(e) => Some((output_name(e), e)),
        SelectItem::ExprWithAlias { expr, alias } => Some((fold(alias), expr)),
        _ => None,
    }
}

/// The named values of each branch of a set operation, left to right, or `None` for a branch
/// whose columns cannot be placed by position (a `*` among them, `TABLE t`); a branch of VALUES
/// names its columns `column1`, `column2`, … as PostgreSQL does.
type Branch<'q> = Option<Vec<(String, &'q Expr)>>;

fn set_operation_branches<'q>(body: &'q SetExpr, branches: &mut Vec<Branch<'q>>) {
    match body {
        SetExpr::SetOperation { left, right, .. } => {
            set_operation_branches(left, branches);
            set_operation_branches(right, branches);
        }
        SetExpr::Query(query) => set_operation_branches(&query.body, branches),
        SetExpr::Select(select) => {
            branches.push(select.projection.iter().map(select_output).collect())
        }
        SetExpr::Values(values) => branches.extend(values.rows.iter().map(|row| {
            Some(
                row.content
                    .iter()
                    .enumerate()
                    .map(|(i, e)| (format!("column{}", i + 1), e))
                    .collect(),
            )
        })),
        _ => branches.push(None),
    }
}
