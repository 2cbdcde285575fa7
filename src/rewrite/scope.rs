//! Name resolution: which FROM item and column an identifier means, as PostgreSQL decides it.
//!
//! Each query level contributes a [`Frame`] of FROM items (PostgreSQL's range-table entries) and
//! the CTEs its WITH clause defines; frames link to the enclosing level, so correlated references
//! and CTE names resolve outward exactly as in PostgreSQL. Relation items carry *all* their
//! columns, hidden ones included and marked: a name must resolve to what it means in the
//! original query, so a hidden column is recognised and refused rather than silently resolving
//! to some other column once the protected source no longer has it.
//!
//! A masked column is the third state: it exists and may be shown, but only as it is. It stays
//! masked through every derived table, CTE and `UNION ALL` that passes it on unchanged, so an
//! outer query that compares, groups, orders or computes on it is refused just the same.

use crate::catalog::RelationId;

/// What the user may do with a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ColumnState {
    /// Anything.
    Visible,
    /// Select it as it is, nothing else: its values are masked (on some or all rows).
    Masked,
    /// Nothing: it exists, but the user may not see it.
    Hidden,
}

#[derive(Clone, Debug)]
pub(super) struct ItemColumn {
    pub name: String,
    pub state: ColumnState,
}

impl ItemColumn {
    pub fn visible(name: impl Into<String>) -> ItemColumn {
        ItemColumn {
            name: name.into(),
            state: ColumnState::Visible,
        }
    }

    pub fn is_hidden(&self) -> bool {
        self.state == ColumnState::Hidden
    }

    pub fn is_masked(&self) -> bool {
        self.state == ColumnState::Masked
    }
}

/// A FROM item: a relation, CTE, derived table, function, or the merged output of a join.
#[derive(Clone, Debug)]
pub(super) struct FromItem {
    /// What the query calls it: the alias, or the relation's or CTE's name. `None` for an
    /// unaliased subquery and for the merged columns of a USING or NATURAL join.
    pub refname: Option<String>,
    /// The schema of a relation referenced without alias: `schema.table.column` reaches it too.
    pub schema: Option<String>,
    pub columns: Vec<ItemColumn>,
    /// It may have columns tablegate cannot name (a function returning records).
    pub open: bool,
    /// False for the inputs of a USING or NATURAL join: PostgreSQL reaches their columns
    /// unqualified only through the join's merged item.
    pub unqualified_visible: bool,
    pub relation: Option<RelationId>,
}

impl FromItem {
    pub fn named(refname: Option<String>, columns: Vec<ItemColumn>, open: bool) -> FromItem {
        FromItem {
            refname,
            schema: None,
            columns,
            open,
            unqualified_visible: true,
            relation: None,
        }
    }

    fn column(&self, name: &str) -> Option<&ItemColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn hidden_columns(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|c| c.is_hidden())
            .map(|c| c.name.as_str())
    }

    pub fn masked_columns(&self) -> impl Iterator<Item = &str> {
        self.columns
            .iter()
            .filter(|c| c.is_masked())
            .map(|c| c.name.as_str())
    }
}

/// A CTE visible by name.
#[derive(Clone, Debug)]
pub(super) struct CteDef {
    pub name: String,
    pub columns: Vec<ItemColumn>,
    pub open: bool,
}

#[derive(Clone, Copy)]
pub(super) struct Frame<'a> {
    pub parent: Option<&'a Frame<'a>>,
    pub ctes: &'a [CteDef],
    pub items: &'a [FromItem],
}

/// What a column reference means.
pub(super) enum Resolved<'a> {
    Column {
        item: &'a FromItem,
        column: &'a ItemColumn,
    },
    /// An item's name used as a value: its whole (visible) row.
    WholeRow(&'a FromItem),
    /// tablegate cannot tell; PostgreSQL will either raise an error or find the column in an
    /// item whose columns tablegate cannot name — never a hidden one, which its source lacks.
    Unknown,
    /// `a.b` that is not column b of item a: PostgreSQL reads it as field b of a composite
    /// value a, or else as the call `b(a)` — of any function, on the allow-list or not.
    NotAColumn,
}

impl<'a> Frame<'a> {
    pub const ROOT: Frame<'static> = Frame {
        parent: None,
        ctes: &[],
        items: &[],
    };

    fn levels(&self) -> impl Iterator<Item = &Frame<'a>> {
        std::iter::successors(Some(self), |f| f.parent)
    }

    pub fn cte(&self, name: &str) -> Option<&'a CteDef> {
        self.levels()
            .find_map(|f| f.ctes.iter().rev().find(|c| c.name == name))
    }

    /// An item by its reference name, innermost level first.
    pub fn item(&self, refname: &str) -> Option<&'a FromItem> {
        self.levels().find_map(|f| {
            f.items
                .iter()
                .find(|i| i.refname.as_deref() == Some(refname))
        })
    }

    /// Resolves `parts` (already folded) as PostgreSQL's transformColumnRef does, as far as
    /// a column of an item: a qualified name that is not one is [`Resolved::NotAColumn`].
    pub fn resolve(&self, parts: &[String]) -> Resolved<'a> {
        match parts {
            [name] => self.resolve_unqualified(name),
            [first, column] => match self.item(first) {
                Some(item) => Self::in_item(item, column),
                None => Resolved::NotAColumn,
            },
            [schema, table, column] => {
                let qualified = self.levels().find_map(|f| {
                    f.items.iter().find(|i| {
                        i.refname.as_deref() == Some(table.as_str())
                            && i.schema.as_deref() == Some(schema.as_str())
                    })
                });
                match qualified {
                    Some(item) => Self::in_item(item, column),
                    None => Resolved::NotAColumn,
                }
            }
            _ => Resolved::Unknown,
        }
    }

    /// Column `column` of `item`. Of an item whose columns tablegate cannot all name, any
    /// other name may be a column or a function.
    fn in_item(item: &'a FromItem, column: &str) -> Resolved<'a> {
        match item.column(column) {
            Some(c) => Resolved::Column { item, column: c },
            None => Resolved::NotAColumn,
        }
    }

    fn resolve_unqualified(&self, name: &str) -> Resolved<'a> {
        for frame in self.levels() {
            let mut found: Option<Resolved<'a>> = None;
            let mut open = false;
            for item in frame.items.iter().filter(|i| i.unqualified_visible) {
                if let Some(column) = item.column(name) {
                    // Ambiguous names are PostgreSQL's error to raise, unless one candidate is
                    // hidden: then the reference is refused for that column.
                    let hidden_first =
                        matches!(found, Some(Resolved::Column { column: c, .. }) if c.is_hidden());
                    if !hidden_first {
                        found = Some(Resolved::Column { item, column });
                    }
                }
                open |= item.open;
            }
            if let Some(found) = found {
                return found;
            }
            if open {
                // PostgreSQL finds the name in the item tablegate cannot name, or else further
                // out: if further out it means a hidden or masked column, assume it does.
                let outer = frame.parent.map(|parent| parent.resolve_unqualified(name));
                return match outer {
                    Some(r @ Resolved::Column { column, .. })
                        if column.state != ColumnState::Visible =>
                    {
                        r
                    }
                    Some(r @ Resolved::WholeRow(item))
                        if item.masked_columns().next().is_some() =>
                    {
                        r
                    }
                    _ => Resolved::Unknown,
                };
            }
        }
        match self.item(name) {
            Some(item) => Resolved::WholeRow(item),
            None => Resolved::Unknown,
        }
    }
}
