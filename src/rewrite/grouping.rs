//! GROUP BY a table's primary key, which PostgreSQL allows to select the table's other columns,
//! kept working through protected sources.
//!
//! PostgreSQL accepts `SELECT t.id, t.name, count(*) FROM t JOIN u … GROUP BY t.id` when `id` is
//! t's primary key: every other column of t is functionally dependent on it. It knows keys only
//! of tables, not of derived tables, so once tablegate replaces t by its protected source the
//! same query fails ("column t.name must appear in the GROUP BY clause"). The source's rows are
//! a subset of t's rows and each of its columns is a function of the row, so the key still
//! determines them: grouping by the key *and* by the dependent columns the query uses forms
//! exactly the same groups. tablegate adds those columns to the GROUP BY, written as references
//! to the source's own (visible) columns, so nothing hidden is ever named.

use std::collections::HashSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    Distinct, Expr, NamedWindowDefinition, OrderBy, SelectItem, SelectItemQualifiedWildcardKind,
    SetExpr, Visit, Visitor,
};

use super::Walker;
use super::query::ordinal;
use super::scope::{Frame, FromItem, Resolved};
use super::syntax::{call_arguments, column_parts, object_name_parts, row_arguments};
use crate::names::{fold, quoted};
use crate::policy::Source;

/// The parts of a SELECT that may use columns a grouped key determines.
pub(super) struct GroupedUses<'a> {
    pub projection: &'a [SelectItem],
    pub having: Option<&'a Expr>,
    pub order_by: Option<&'a OrderBy>,
    pub distinct: Option<&'a Distinct>,
    pub windows: &'a [NamedWindowDefinition],
}

impl Walker<'_> {
    /// Adds to `group_by` the columns of each protected relation whose whole primary key is
    /// grouped and which the query's other clauses use. Does nothing with GROUPING SETS, ROLLUP
    /// or CUBE (PostgreSQL's rule is about plain grouping), or for relations read whole (there
    /// PostgreSQL sees the key itself).
    pub(super) fn add_key_dependent_columns(
        &self,
        group_by: &mut Vec<Expr>,
        uses: &GroupedUses,
        frame: &Frame,
    ) {
        if group_by.is_empty()
            || group_by
                .iter()
                .any(|e| matches!(e, Expr::GroupingSets(_) | Expr::Cube(_) | Expr::Rollup(_)))
        {
            return;
        }
        // (item position at this level, column name) of every plainly grouped column.
        let mut grouped: Vec<(usize, String)> = Vec::new();
        for e in group_by.iter() {
            let e = match positional_target(e, uses.projection) {
                Some(target) => target,
                None => e,
            };
            let Some(parts) = column_parts(e) else {
                continue;
            };
            if let Resolved::Column { item, column } = frame.resolve(&parts)
                && let Some(position) = frame.items.iter().position(|i| std::ptr::eq(i, item))
            {
                grouped.push((position, column.name.clone()));
            }
        }
        let used = UsedNames::of(uses);
        let mut added = Vec::new();
        for (position, item) in frame.items.iter().enumerate() {
            let is_grouped = |name: &str| grouped.iter().any(|(p, n)| *p == position && n == name);
            let Some(refname) = item.refname.as_deref() else {
                continue;
            };
            if !self.key_grouped(item, &is_grouped) {
                continue;
            }
            let every_column = used.all || used.expanded.contains(refname);
            for column in item.columns.iter().filter(|c| !c.is_hidden()) {
                if !is_grouped(&column.name) && (every_column || used.names.contains(&column.name))
                {
                    added.push(Expr::CompoundIdentifier(vec![
                        quoted(refname),
                        quoted(&column.name),
                    ]));
                }
            }
            // `SELECT t` (the whole row) needs the row itself grouped; written unqualified, so
            // only where that name means the row and not some column.
            let name = [refname.to_owned()];
            if used.whole_rows.contains(refname)
                && matches!(frame.resolve(&name), Resolved::WholeRow(_))
                && frame.item(refname).is_some_and(|i| std::ptr::eq(i, item))
            {
                added.push(Expr::Identifier(quoted(refname)));
            }
        }
        group_by.extend(added);
    }

    /// Whether the item is a granted relation whose every primary key column is grouped, and
    /// is the table's own value in the source. With several roles a key column one role does not
    /// grant is NULL on the rows only that role admits; it no longer identifies a row, and the
    /// query is left to fail as it would on the permitted data.
    fn key_grouped(&self, item: &FromItem, is_grouped: &dyn Fn(&str) -> bool) -> bool {
        let Some(id) = item.relation else {
            return false;
        };
        let Some(access) = self.access.table(id) else {
            return false;
        };
        // The source lists the visible columns in table order; a whole one, all of them plain.
        let projection = match &access.source {
            Ok(Source::Whole) => None,
            Ok(Source::Protected(source)) => match source.body.as_ref() {
                SetExpr::Select(select) => Some(&select.projection),
                _ => return false,
            },
            Err(_) => return false,
        };
        let key = &self.catalog.relation(id).primary_key;
        !key.is_empty()
            && key.iter().all(|&k| {
                let position = access.visible[..k].iter().filter(|&&v| v).count();
                access.visible.get(k) == Some(&true)
                    && projection.is_none_or(|p| {
                        matches!(
                            p.get(position),
                            Some(SelectItem::UnnamedExpr(Expr::Identifier(_)))
                        )
                    })
                    && item.columns.get(k).is_some_and(|c| is_grouped(&c.name))
            })
    }
}

/// `GROUP BY 2` means the second select-list expression.
fn positional_target<'a>(e: &Expr, projection: &'a [SelectItem]) -> Option<&'a Expr> {
    let position = ordinal(e).ok().flatten()?;
    match projection.get(position.checked_sub(1)?)? {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => Some(e),
        _ => None,
    }
}

/// What a query's clauses use: column names by their last part (`t.name` → `name`), bare
/// names that may be FROM items used as whole rows (`SELECT t`), items expanded by `t.*`, and
/// whether a `*` expands every item. Matching by name over-approximates, which is harmless: an
/// extra dependent column in the GROUP BY changes no group.
struct UsedNames {
    names: HashSet<String>,
    whole_rows: HashSet<String>,
    expanded: HashSet<String>,
    all: bool,
}

impl UsedNames {
    fn of(uses: &GroupedUses) -> UsedNames {
        let mut used = UsedNames {
            names: HashSet::new(),
            whole_rows: HashSet::new(),
            expanded: HashSet::new(),
            all: false,
        };
        for item in uses.projection {
            match item {
                SelectItem::Wildcard(_) => used.all = true,
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(n),
                    _,
                ) => {
                    if let Ok(parts) = object_name_parts(n) {
                        used.expanded.extend(parts.last().cloned());
                    }
                }
                _ => {}
            }
            let _ = item.visit(&mut used);
        }
        if let Some(having) = uses.having {
            let _ = having.visit(&mut used);
        }
        if let Some(order_by) = uses.order_by {
            let _ = order_by.visit(&mut used);
        }
        if let Some(distinct) = uses.distinct {
            let _ = distinct.visit(&mut used);
        }
        for window in uses.windows {
            let _ = window.visit(&mut used);
        }
        used
    }
}

impl Visitor for UsedNames {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::Identifier(id) => {
                self.names.insert(fold(id));
                self.whole_rows.insert(fold(id));
            }
            Expr::CompoundIdentifier(ids) => {
                self.names.extend(ids.last().map(fold));
            }
            _ => {
                // `row_to_json(t.*)` needs t's row grouped, as a bare `t` does.
                for name in row_arguments(call_arguments(expr)) {
                    if let Ok(parts) = object_name_parts(name) {
                        self.whole_rows.extend(parts.last().cloned());
                    }
                }
            }
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::Value;

    #[test]
    fn positions_name_select_list_expressions() {
        let projection = vec![
            SelectItem::UnnamedExpr(Expr::Identifier(quoted("a"))),
            SelectItem::UnnamedExpr(Expr::Identifier(quoted("b"))),
        ];
        let two = Expr::value(Value::Number("2".into(), false));
        assert_eq!(
            positional_target(&two, &projection),
            Some(&Expr::Identifier(quoted("b")))
        );
        let nine = Expr::value(Value::Number("9".into(), false));
        assert_eq!(positional_target(&nine, &projection), None);
    }
}
