//! The protected source of one relation: each granting role's view of it, combined.
//!
//! A role's view is its row filter (none: every row) and, per column, whether the role shows it
//! as it is, masked, or not at all. The source keeps the rows some role admits; a column's value
//! on a row comes from the roles that admit the row, the most revealing first: the plain value if
//! one of them shows it plainly, else the mask of the first (in the user's role order) that masks
//! it, else NULL. When one choice covers every row the source lets through, no CASE is written.

use sqlparser::ast::{Expr, SelectItem};

use super::access::{AppliedFilter, ColumnEffect, ColumnRule, Source, TableAccess};
use super::assignment::{Entitlements, HeldRole};
use super::filter::BindError;
use super::origin::Origin;
use super::set::{DatasourcePolicy, Grant, Located, MaskRule};
use crate::catalog::{Catalog, RelationId};
use crate::directory::User;
use crate::names::{NamePattern, quoted};
use crate::refusal::{Refusal, RefusalKind};
use crate::sql;

pub(super) struct TableBuilder<'a> {
    pub catalog: &'a Catalog,
    pub relation: RelationId,
    pub user: &'a User,
    pub entitlements: &'a Entitlements,
    pub datasource: Option<&'a DatasourcePolicy>,
}

/// How one role shows one column.
#[derive(Clone, Debug, PartialEq)]
enum Shown {
    Hidden,
    Plain,
    /// The mask's expression over the column.
    Masked(Box<Expr>),
}

/// One role's view of the relation: its filter (None: all rows) and how it shows each column.
struct RoleView {
    filter: Option<Expr>,
    columns: Vec<Shown>,
}

impl TableBuilder<'_> {
    pub fn build(&self, granting: &[&(&HeldRole, &Grant)]) -> TableAccess {
        let relation = self.catalog.relation(self.relation);
        let mut filters = Vec::new();
        let mut column_rules = Vec::new();
        let mut views = Vec::with_capacity(granting.len());
        let mut failure = None;
        for (held, grant) in granting {
            match self.role_view(held, grant, &mut filters, &mut column_rules) {
                Ok(view) => views.push(view),
                Err(refusal) => {
                    failure.get_or_insert(refusal);
                }
            }
        }
        let visible: Vec<bool> = (0..relation.columns.len())
            .map(|i| views.iter().any(|v| v.columns[i] != Shown::Hidden))
            .collect();
        let mut masked = vec![false; relation.columns.len()];
        let source = match failure {
            Some(refusal) => Err(refusal),
            None => Ok(self.source(&views, &visible, &mut masked)),
        };
        TableAccess {
            roles: granting.iter().map(|(held, _)| held.role.clone()).collect(),
            visible,
            masked,
            source,
            filters,
            column_rules,
        }
    }

    fn role_view(
        &self,
        held: &HeldRole,
        grant: &Grant,
        applied: &mut Vec<AppliedFilter>,
        rules: &mut Vec<ColumnRule>,
    ) -> Result<RoleView, Refusal> {
        let relation = self.catalog.relation(self.relation);
        let (schema, table) = (relation.name.schema.as_str(), relation.name.name.as_str());
        let mut bound = Vec::new();
        for (pattern, filter) in &grant.rows {
            if !pattern.value.matches(&[schema, table]) {
                continue;
            }
            if let Some(column) = filter.value.unknown_columns(relation).next() {
                return Err(Refusal::new(
                    RefusalKind::Policy,
                    format!(
                        "the row filter of role `{}` for {} ({}) reads `{}`, which is not a column of that table",
                        held.role,
                        relation.name,
                        filter.origin,
                        column.join(".")
                    ),
                )
                .with_hint("ask the DBA to fix the policy; `tablegate check` finds such errors"));
            }
            let expr = filter
                .value
                .bind(|name| self.entitlements.variable(self.user, name))
                .map_err(|e| {
                    bind_refusal(e, &held.role, &relation.name.to_string(), &filter.origin)
                })?;
            applied.push(AppliedFilter {
                role: held.role.clone(),
                text: filter.value.text.clone(),
                bound: expr.to_string(),
                origin: filter.origin.clone(),
            });
            bound.push(expr);
        }
        let allow_lists: Vec<&(Located<NamePattern>, Vec<String>)> = grant
            .columns
            .iter()
            .filter(|(p, _)| p.value.matches(&[schema, table]))
            .collect();
        let datasource_deny = self.datasource.map_or(&[][..], |d| &d.deny_columns);
        let datasource_masks = self.datasource.map_or(&[][..], |d| &d.masks);
        let mut columns = Vec::with_capacity(relation.columns.len());
        for column in &relation.columns {
            let name = column.name.as_str();
            let mut rule = |role: Option<&str>, effect, origin: &Origin| {
                let rule = ColumnRule {
                    column: name.to_owned(),
                    role: role.map(str::to_owned),
                    effect,
                    origin: origin.clone(),
                };
                if !rules.contains(&rule) {
                    rules.push(rule);
                }
            };
            let denied = grant
                .deny_columns
                .iter()
                .map(|p| (Some(held.role.as_str()), p))
                .chain(datasource_deny.iter().map(|p| (None, p)))
                .find(|(_, p)| denies(&p.value, schema, table, name));
            if let Some((role, pattern)) = denied {
                rule(role, ColumnEffect::Denied, &pattern.origin);
                columns.push(Shown::Hidden);
                continue;
            }
            if !allow_lists.is_empty()
                && !allow_lists.iter().any(|(_, l)| l.iter().any(|c| c == name))
            {
                rule(
                    Some(&held.role),
                    ColumnEffect::NotListed,
                    &allow_lists[0].0.origin,
                );
                columns.push(Shown::Hidden);
                continue;
            }
            let masks: Vec<(Option<&str>, &Located<MaskRule>)> = grant
                .masks
                .iter()
                .map(|m| (Some(held.role.as_str()), m))
                .chain(datasource_masks.iter().map(|m| (None, m)))
                .filter(|(_, m)| denies(&m.value.columns, schema, table, name))
                .collect();
            let Some(&(role, first)) = masks.first() else {
                columns.push(Shown::Plain);
                continue;
            };
            if let Some((_, other)) = masks.iter().find(|(_, m)| m.value.mask != first.value.mask) {
                return Err(Refusal::new(
                    RefusalKind::Policy,
                    format!(
                        "column {}.{name} has two masks for role `{}`: `{}` ({}) and `{}` ({})",
                        relation.name,
                        held.role,
                        first.value.mask,
                        first.origin,
                        other.value.mask,
                        other.origin
                    ),
                )
                .with_hint("ask the DBA to keep one mask per column; `tablegate check` reports such conflicts"));
            }
            let expression = first
                .value
                .mask
                .expression(name, &column.type_name)
                .map_err(|e| {
                    Refusal::new(RefusalKind::Policy, format!("{e} ({})", first.origin)).with_hint(
                        "ask the DBA to fix the policy; `tablegate check` finds such errors",
                    )
                })?;
            rule(role, ColumnEffect::Masked(first.value.mask), &first.origin);
            columns.push(Shown::Masked(Box::new(expression)));
        }
        Ok(RoleView {
            filter: (!bound.is_empty()).then(|| sql::all_of(bound)),
            columns,
        })
    }

    /// The source; marks in `masked` the columns some rows show masked.
    fn source(&self, views: &[RoleView], visible: &[bool], masked: &mut [bool]) -> Source {
        let relation = self.catalog.relation(self.relation);
        let unfiltered = views.iter().any(|v| v.filter.is_none());
        if unfiltered
            && views
                .iter()
                .all(|v| v.columns.iter().all(|c| *c == Shown::Plain))
        {
            return Source::Whole;
        }
        let rows = (!unfiltered)
            .then(|| sql::any_of(views.iter().filter_map(|v| v.filter.clone()).collect()));
        let projection = relation
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| visible[*i])
            .map(|(i, column)| {
                let plain = Expr::Identifier(quoted(&column.name));
                let (value, shows_mask) = column_value(views, i, &plain);
                masked[i] = shows_mask;
                if value == plain {
                    SelectItem::UnnamedExpr(value)
                } else {
                    SelectItem::ExprWithAlias {
                        expr: value,
                        alias: quoted(&column.name),
                    }
                }
            })
            .collect();
        Source::Protected(Box::new(sql::select(
            projection,
            sql::table(sql::object_name(&relation.name), None),
            rows,
        )))
    }
}

/// The value of column `i` in the source, and whether it shows a mask on some rows.
///
/// The candidate values, most revealing first: the plain column, then each mask in the order of
/// the roles using it; each applies on the rows its roles admit. A value whose roles include an
/// unfiltered one covers every remaining row (ELSE); so does the last one when every role shows
/// the column somehow, since the source only has rows some role admits.
fn column_value(views: &[RoleView], i: usize, plain: &Expr) -> (Expr, bool) {
    let mut candidates: Vec<(Expr, Vec<&Option<Expr>>)> = Vec::new();
    let plain_roles = views.iter().filter(|v| v.columns[i] == Shown::Plain);
    let masking_roles = views
        .iter()
        .filter(|v| matches!(v.columns[i], Shown::Masked(..)));
    for view in plain_roles.chain(masking_roles) {
        let value = match &view.columns[i] {
            Shown::Masked(expression) => expression,
            _ => plain,
        };
        match candidates.iter_mut().find(|(v, _)| v == value) {
            Some((_, filters)) => filters.push(&view.filter),
            None => candidates.push((value.clone(), vec![&view.filter])),
        }
    }
    let every_role_shows = views.iter().all(|v| v.columns[i] != Shown::Hidden);
    let last = candidates.len().saturating_sub(1);
    let mut arms = Vec::new();
    let mut otherwise = None;
    for (k, (value, filters)) in candidates.into_iter().enumerate() {
        if filters.iter().any(|f| f.is_none()) || (k == last && every_role_shows) {
            otherwise = Some(value);
            break;
        }
        let admitted = sql::any_of(filters.into_iter().flatten().cloned().collect());
        arms.push((admitted, value));
    }
    let shows_mask = arms
        .iter()
        .map(|(_, v)| v)
        .chain(&otherwise)
        .any(|v| v != plain);
    match (arms.is_empty(), otherwise) {
        (true, Some(value)) => (value, shows_mask),
        (_, otherwise) => (sql::case(arms, otherwise), shows_mask),
    }
}

/// Whether a column pattern (`table.column` or `schema.table.column`, as `deny_columns` and
/// `mask` write them) covers a column.
pub(super) fn denies(pattern: &NamePattern, schema: &str, table: &str, column: &str) -> bool {
    match pattern.len() {
        3 => pattern.matches(&[schema, table, column]),
        _ => pattern.matches(&[table, column]),
    }
}

fn bind_refusal(error: BindError, role: &str, table: &str, origin: &Origin) -> Refusal {
    match error {
        BindError::Missing(name) => Refusal::new(
            RefusalKind::Policy,
            format!(
                "the row filter of role `{role}` on {table} needs the variable user.{name}, which you do not have"
            ),
        )
        .with_hint(format!(
            "ask the DBA to set `{name}` for you (an assignment's vars, or a directory attribute); the filter is at {origin}"
        )),
        BindError::ListOutsideIn(name) => Refusal::new(
            RefusalKind::Policy,
            format!(
                "the row filter of role `{role}` on {table} ({origin}) uses the list user.{name} outside IN (...)"
            ),
        )
        .with_hint("ask the DBA to write the filter as `column IN ({{user.NAME}})`"),
        BindError::Unresolved { variable, reason } => Refusal::new(
            RefusalKind::Policy,
            format!("the variable user.{variable} needed by role `{role}` on {table} is ambiguous: {reason}"),
        )
        .with_hint("ask the DBA to make the assignments agree"),
    }
}
