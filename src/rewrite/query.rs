//! Queries, set operations and SELECT; the items of FROM are read in [`from`](super::from).
//!
//! Every relation occurrence — in FROM or JOIN, in a CTE, a subquery anywhere, a LATERAL item —
//! is replaced by its protected source, a derived table that keeps the name (or alias) the
//! query used, so the rest of the query reads it unchanged and outer joins keep their meaning.
//! Hidden columns named in the top-level select list are stripped (with a notice); named
//! anywhere else they refuse the statement. Masked columns may be selected as they are, at the
//! top level or passed up unchanged through derived tables, CTEs and `UNION ALL`; any other use
//! refuses the statement.

use sqlparser::ast::{
    Distinct, Expr, GroupByExpr, Ident, LimitClause, ObjectName, OrderBy, OrderByKind, Query,
    Select, SelectFlavor, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, SetOperator,
    SetQuantifier, TableAlias, Value, WildcardAdditionalOptions,
};

use super::Walker;
use super::colname::output_name;
use super::grouping::GroupedUses;
use super::scope::{ColumnState, CteDef, Frame, FromItem, ItemColumn, Resolved};
use super::syntax::{column_parts, object_name_parts};
use crate::names::{display_ident, fold};
use crate::refusal::{Refusal, RefusalKind};
use crate::sql;

/// The columns a query returns: their names, and which of them pass on a masked column.
pub(super) struct Output {
    pub columns: Vec<ItemColumn>,
    /// Some columns could not be named (a `*` over an item with unknown columns).
    pub open: bool,
    /// Hidden columns a `*` left out, each with its place among the columns PostgreSQL would
    /// return for the original query (ascending). Positions and names past them would mean
    /// other columns upstream than in the query as written.
    pub hidden: Vec<(usize, String)>,
}

impl Output {
    fn new(columns: Vec<ItemColumn>) -> Output {
        Output {
            columns,
            open: false,
            hidden: Vec::new(),
        }
    }

    /// Adds the columns `*` shows of `item`, noting the hidden ones it leaves out.
    fn extend_wildcard(&mut self, item: &FromItem) {
        for column in &item.columns {
            if column.is_hidden() {
                let place = self.columns.len() + self.hidden.len();
                self.hidden.push((place, column.name.clone()));
            } else {
                self.columns.push(column.clone());
            }
        }
        self.open |= item.open;
    }

    /// The columns of a derived table or CTE made of this output, as the original query names
    /// them: hidden columns back in their places, marked hidden (a name meaning one is refused
    /// rather than resolving further out), then `aliases` applied — which may not reach a
    /// hidden column, since upstream the same list would rename other columns.
    pub(super) fn into_item_columns(
        self,
        item: &str,
        aliases: &[String],
    ) -> Result<Vec<ItemColumn>, Refusal> {
        let mut columns = self.columns;
        for (place, name) in self.hidden {
            let hidden = ItemColumn {
                name,
                state: ColumnState::Hidden,
            };
            columns.insert(place.min(columns.len()), hidden);
        }
        renamed(item, columns, aliases)
    }

    /// Refuses an output-column position that counts past a hidden column a `*` left out:
    /// upstream it would mean another column.
    fn refuse_position_past_hidden(&self, position: usize, clause: &str) -> Result<(), Refusal> {
        match self.hidden.first() {
            Some((place, name)) if position > *place => Err(Refusal::new(
                RefusalKind::Column,
                format!(
                    "{clause} {position} counts past the column {}, which is hidden by policy and left out of *",
                    display_ident(name)
                ),
            )
            .with_hint("name the column instead of giving its position")),
            _ => Ok(()),
        }
    }

    fn masked(&self) -> Option<&ItemColumn> {
        self.columns.iter().find(|c| c.is_masked())
    }

    /// Refuses the output if it carries a masked column into `use_`, which would compare or
    /// compute on it.
    pub(super) fn refuse_masked(&self, use_: &str) -> Result<(), Refusal> {
        match self.masked() {
            Some(column) => Err(masked_column_refusal(&column.name, use_)),
            None => Ok(()),
        }
    }
}

impl Walker<'_> {
    pub(super) fn query(
        &mut self,
        query: &mut Query,
        outer: &Frame,
        top: bool,
    ) -> Result<Output, Refusal> {
        let Query {
            with,
            body,
            order_by,
            limit_clause,
            fetch,
            locks,
            for_clause,
            settings,
            format_clause,
            pipe_operators,
        } = query;
        self.checked.queries += 1;
        if !locks.is_empty() {
            return Err(Refusal::new(
                RefusalKind::Statement,
                "SELECT ... FOR UPDATE/SHARE locks rows, which read-only access does not allow",
            )
            .with_hint("remove the locking clause"));
        }
        if for_clause.is_some()
            || settings.is_some()
            || format_clause.is_some()
            || !pipe_operators.is_empty()
        {
            return Err(Refusal::unsupported(
                "this query clause (not PostgreSQL syntax)",
            ));
        }
        let mut ctes: Vec<CteDef> = Vec::new();
        if let Some(with) = with {
            let names: Vec<String> = with
                .cte_tables
                .iter()
                .map(|c| fold(&c.alias.name))
                .collect();
            for (i, cte) in with.cte_tables.iter_mut().enumerate() {
                if cte.from.is_some() {
                    return Err(Refusal::unsupported("this WITH clause form"));
                }
                let name = fold(&cte.alias.name);
                let alias_columns = alias_column_names(&cte.alias)?;
                if with.recursive {
                    // A recursive CTE sees itself; its columns are known once its body is read.
                    ctes.push(CteDef {
                        name: name.clone(),
                        open: alias_columns.is_empty(),
                        columns: alias_columns.iter().map(ItemColumn::visible).collect(),
                    });
                }
                let frame = Frame {
                    parent: Some(outer),
                    ctes: &ctes,
                    items: &[],
                };
                // Later CTEs of an enclosing WITH RECURSIVE stay in reach, and in a recursive
                // list so do this list's.
                let mut later = self.later_ctes.clone();
                if with.recursive {
                    later.extend_from_slice(&names[i + 1..]);
                }
                let outside = std::mem::replace(&mut self.later_ctes, later);
                let output = self.query(&mut cte.query, &frame, false);
                self.later_ctes = outside;
                let output = output?;
                if with.recursive {
                    // Its recursive part read the columns before it was known which are masked.
                    output.refuse_masked("a recursive CTE")?;
                    ctes.pop();
                }
                let open = output.open;
                let def = CteDef {
                    columns: output.into_item_columns(&name, &alias_columns)?,
                    name,
                    open,
                };
                ctes.push(def);
            }
        }
        let frame = Frame {
            parent: Some(outer),
            ctes: &ctes,
            items: &[],
        };
        let output = self.set_expr(body, &frame, top, order_by.as_mut())?;
        if let Some(limit) = limit_clause {
            match limit {
                LimitClause::LimitOffset {
                    limit,
                    offset,
                    limit_by,
                } => {
                    if !limit_by.is_empty() {
                        return Err(Refusal::unsupported("LIMIT BY"));
                    }
                    if let Some(limit) = limit {
                        self.expr(limit, &frame, "LIMIT")?;
                    }
                    if let Some(offset) = offset {
                        self.expr(&mut offset.value, &frame, "OFFSET")?;
                    }
                }
                LimitClause::OffsetCommaLimit { .. } => {
                    return Err(Refusal::unsupported("LIMIT offset, count (MySQL syntax)"));
                }
            }
        }
        if let Some(quantity) = fetch.as_mut().and_then(|f| f.quantity.as_mut()) {
            self.expr(quantity, &frame, "FETCH")?;
        }
        Ok(output)
    }

    fn set_expr(
        &mut self,
        body: &mut SetExpr,
        frame: &Frame,
        top: bool,
        order_by: Option<&mut OrderBy>,
    ) -> Result<Output, Refusal> {
        match body {
            SetExpr::Select(select) => self.select(select, frame, top, order_by),
            SetExpr::Query(query) => {
                // An ORDER BY outside the parentheses numbers the inner select list as written:
                // nothing may be stripped from it.
                let output = self.query(query, frame, top && order_by.is_none())?;
                self.order_by_outputs(order_by, &output, frame)?;
                Ok(output)
            }
            SetExpr::SetOperation {
                left,
                right,
                op,
                set_quantifier,
            } => {
                let mut output = self.set_expr(left, frame, false, None)?;
                let right = self.set_expr(right, frame, false, None)?;
                let places = |o: &Output| o.hidden.iter().map(|(p, _)| *p).collect::<Vec<_>>();
                if places(&output) != places(&right) {
                    let (_, name) = output
                        .hidden
                        .iter()
                        .chain(&right.hidden)
                        .next()
                        .expect("a side leaves a hidden column out");
                    return Err(Refusal::new(
                        RefusalKind::Column,
                        format!(
                            "the sides of {op} leave hidden columns such as {} out of * at different places, so upstream their columns would pair differently",
                            display_ident(name)
                        ),
                    )
                    .with_hint("name the columns on both sides"));
                }
                let passes_rows_on =
                    *op == SetOperator::Union && matches!(set_quantifier, SetQuantifier::All);
                if passes_rows_on {
                    // A column of UNION ALL is masked if either side's is.
                    for (column, other) in output.columns.iter_mut().zip(&right.columns) {
                        if other.is_masked() {
                            column.state = ColumnState::Masked;
                        }
                    }
                } else {
                    // UNION, INTERSECT and EXCEPT compare whole rows.
                    let clause = format!("{op}");
                    output.refuse_masked(&clause)?;
                    right.refuse_masked(&clause)?;
                }
                self.order_by_outputs(order_by, &output, frame)?;
                Ok(output)
            }
            SetExpr::Values(values) => {
                let mut width = 0;
                for row in &mut values.rows {
                    width = width.max(row.len());
                    for e in row.iter_mut() {
                        self.expr(e, frame, "VALUES")?;
                    }
                }
                let output = Output::new(
                    (1..=width)
                        .map(|i| ItemColumn::visible(format!("column{i}")))
                        .collect(),
                );
                self.order_by_outputs(order_by, &output, frame)?;
                Ok(output)
            }
            SetExpr::Table(table) => {
                // `TABLE t` is `SELECT * FROM t`.
                let name: Vec<Ident> = table
                    .schema_name
                    .iter()
                    .chain(table.table_name.iter())
                    .cloned()
                    .collect();
                let mut select = match sql::select(
                    vec![SelectItem::Wildcard(WildcardAdditionalOptions::default())],
                    sql::table(ObjectName::from(name), None),
                    None,
                )
                .body
                .as_ref()
                {
                    SetExpr::Select(s) => s.clone(),
                    _ => unreachable!("sql::select builds a SELECT"),
                };
                let output = self.select(&mut select, frame, top, order_by)?;
                *body = SetExpr::Select(select);
                Ok(output)
            }
            SetExpr::Insert(_) | SetExpr::Update(_) | SetExpr::Delete(_) | SetExpr::Merge(_) => {
                Err(Refusal::new(
                    RefusalKind::Statement,
                    "data-modifying statements are not allowed: access is read-only",
                ))
            }
        }
    }

    /// ORDER BY after a set operation or parenthesised query: it can only name output columns.
    fn order_by_outputs(
        &mut self,
        order_by: Option<&mut OrderBy>,
        output: &Output,
        outer: &Frame,
    ) -> Result<(), Refusal> {
        let Some(order_by) = order_by else {
            return Ok(());
        };
        let items = [FromItem::named(None, output.columns.clone(), output.open)];
        let frame = Frame {
            parent: Some(outer),
            ctes: &[],
            items: &items,
        };
        for e in order_by_exprs(order_by)? {
            if let Some(position) = ordinal(e)? {
                output.refuse_position_past_hidden(position, "ORDER BY")?;
                refuse_masked_position(output, position, "ORDER BY")?;
                // The rewrite read the number: see `positional`.
                *e = fresh_ordinal(position);
            }
            self.expr(e, &frame, "ORDER BY")?;
        }
        Ok(())
    }

    fn select(
        &mut self,
        select: &mut Select,
        outer: &Frame,
        top: bool,
        order_by: Option<&mut OrderBy>,
    ) -> Result<Output, Refusal> {
        let Select {
            select_token: _,
            optimizer_hints,
            distinct,
            select_modifiers,
            top: top_clause,
            top_before_distinct: _,
            projection,
            exclude,
            into,
            from,
            lateral_views,
            prewhere,
            selection,
            connect_by,
            group_by,
            cluster_by,
            distribute_by,
            sort_by,
            having,
            named_window,
            qualify,
            window_before_qualify: _,
            value_table_mode,
            flavor,
        } = select;
        if into.is_some() {
            return Err(Refusal::new(
                RefusalKind::Statement,
                "SELECT INTO creates a table, which read-only access does not allow",
            ));
        }
        if !optimizer_hints.is_empty()
            || select_modifiers.is_some()
            || top_clause.is_some()
            || exclude.is_some()
            || !lateral_views.is_empty()
            || prewhere.is_some()
            || !connect_by.is_empty()
            || !cluster_by.is_empty()
            || !distribute_by.is_empty()
            || !sort_by.is_empty()
            || qualify.is_some()
            || value_table_mode.is_some()
            || *flavor != SelectFlavor::Standard
        {
            return Err(Refusal::unsupported(
                "a SELECT clause that PostgreSQL does not have",
            ));
        }

        let mut items: Vec<FromItem> = Vec::new();
        for element in from.iter_mut() {
            self.join_tree(element, outer, &mut items)?;
        }
        check_unique_refnames(&items)?;
        let frame = Frame {
            parent: Some(outer),
            ctes: &[],
            items: &items,
        };

        if let Some(selection) = selection {
            self.expr(selection, &frame, "WHERE")?;
        }
        let stripped = if top {
            self.strip_hidden(projection, &frame)?
        } else {
            Vec::new()
        };
        if !stripped.is_empty() {
            if projection.is_empty() {
                return Err(Refusal::new(
                    RefusalKind::Column,
                    format!(
                        "nothing left to return: every requested column is hidden by policy ({})",
                        stripped
                            .iter()
                            .map(|s| s.label.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
                .with_hint("select columns you are allowed to see"));
            }
            if distinct.is_some() {
                return Err(hidden_column_refusal(&stripped[0].label, "SELECT DISTINCT"));
            }
        }
        let mut output = Output::new(Vec::new());
        for item in projection.iter_mut() {
            self.select_item(item, &frame, &mut output)?;
        }
        if matches!(distinct, Some(Distinct::Distinct)) {
            output.refuse_masked("SELECT DISTINCT")?;
        }
        let positions = ProjectionPositions {
            stripped: &stripped,
            output: &output,
        };
        match group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(Refusal::unsupported(
                        "GROUP BY modifiers (WITH ROLLUP, TOTALS)",
                    ));
                }
                for e in exprs {
                    match e {
                        // PostgreSQL reads positions inside grouping sets too.
                        Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                            for e in sets.iter_mut().flatten() {
                                self.positional(
                                    e, &frame, "GROUP BY", &positions, projection, false,
                                )?;
                            }
                        }
                        _ => {
                            self.positional(e, &frame, "GROUP BY", &positions, projection, false)?
                        }
                    }
                }
            }
            GroupByExpr::All(_) => return Err(Refusal::unsupported("GROUP BY ALL")),
        }
        if let Some(having) = having {
            self.expr(having, &frame, "HAVING")?;
        }
        for window in named_window.iter_mut() {
            match &mut window.1 {
                sqlparser::ast::NamedWindowExpr::WindowSpec(spec) => {
                    self.window_spec(spec, &frame)?
                }
                sqlparser::ast::NamedWindowExpr::NamedWindow(_) => {}
            }
        }
        if let Some(Distinct::On(exprs)) = distinct {
            for e in exprs {
                self.positional(e, &frame, "DISTINCT ON", &positions, projection, true)?;
            }
        }
        let mut order_by = order_by;
        if let Some(order_by) = order_by.as_deref_mut() {
            for e in order_by_exprs(order_by)? {
                self.positional(e, &frame, "ORDER BY", &positions, projection, true)?;
            }
        }
        if let GroupByExpr::Expressions(exprs, _) = group_by {
            let uses = GroupedUses {
                projection,
                having: having.as_ref(),
                order_by: order_by.as_deref(),
                distinct: distinct.as_ref(),
                windows: named_window,
            };
            self.add_key_dependent_columns(exprs, &uses, &frame);
        }
        Ok(output)
    }

    /// Removes bare references to hidden columns from a top-level select list.
    fn strip_hidden(
        &mut self,
        projection: &mut Vec<SelectItem>,
        frame: &Frame,
    ) -> Result<Vec<Stripped>, Refusal> {
        let mut stripped = Vec::new();
        let mut kept = Vec::with_capacity(projection.len());
        // Where the item starts in the select list as PostgreSQL expands it on the tables
        // themselves: a `*` there includes hidden columns. Unknown past a `*` over columns
        // tablegate cannot name.
        let mut place = Some(0);
        for item in std::mem::take(projection) {
            let position = place;
            let width = match &item {
                SelectItem::Wildcard(_) => frame
                    .items
                    .iter()
                    .filter(|i| i.unqualified_visible)
                    .map(|i| (!i.open).then_some(i.columns.len()))
                    .sum::<Option<usize>>(),
                SelectItem::QualifiedWildcard(
                    SelectItemQualifiedWildcardKind::ObjectName(name),
                    _,
                ) => object_name_parts(name)
                    .ok()
                    .and_then(|parts| self.wildcard_item(&parts, frame))
                    .filter(|i| !i.open)
                    .map(|i| i.columns.len()),
                SelectItem::QualifiedWildcard(..) => None,
                _ => Some(1),
            };
            place = place.zip(width).map(|(p, w)| p + w);
            let (expr, alias) = match &item {
                SelectItem::UnnamedExpr(e) => (Some(e), None),
                SelectItem::ExprWithAlias { expr, alias } => (Some(expr), Some(fold(alias))),
                _ => (None, None),
            };
            let hidden = expr.and_then(|e| {
                let parts = column_parts(e)?;
                match frame.resolve(&parts) {
                    Resolved::Column { item, column } if column.is_hidden() => Some((
                        qualified_label(item, &column.name),
                        alias.unwrap_or_else(|| column.name.clone()),
                    )),
                    _ => None,
                }
            });
            match hidden {
                Some((label, output_name)) => stripped.push(Stripped {
                    position,
                    label,
                    output_name,
                }),
                None => kept.push(item),
            }
        }
        *projection = kept;
        if !stripped.is_empty() {
            self.notice(format!(
                "tablegate: hidden by policy and left out of the result: {}",
                stripped
                    .iter()
                    .map(|s| s.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(stripped)
    }

    fn select_item(
        &mut self,
        item: &mut SelectItem,
        frame: &Frame,
        output: &mut Output,
    ) -> Result<(), Refusal> {
        match item {
            SelectItem::UnnamedExpr(e) => {
                let state = self.selected_expr(e, frame)?;
                output.columns.push(ItemColumn {
                    name: output_name(e),
                    state,
                });
            }
            SelectItem::ExprWithAlias { expr, alias } => {
                let state = self.selected_expr(expr, frame)?;
                output.columns.push(ItemColumn {
                    name: fold(alias),
                    state,
                });
            }
            SelectItem::Wildcard(options) => {
                check_plain_wildcard(options)?;
                let covered: Vec<&FromItem> = frame.items.iter().collect();
                for item in frame.items.iter().filter(|i| i.unqualified_visible) {
                    output.extend_wildcard(item);
                }
                self.notice_wildcard(&covered);
            }
            SelectItem::QualifiedWildcard(kind, options) => {
                check_plain_wildcard(options)?;
                let SelectItemQualifiedWildcardKind::ObjectName(name) = kind else {
                    return Err(Refusal::unsupported("`(expression).*`"));
                };
                let parts = object_name_parts(name)?;
                match self.wildcard_item(&parts, frame) {
                    Some(item) => {
                        output.extend_wildcard(item);
                        self.notice_wildcard(&[item]);
                    }
                    None => output.open = true,
                }
            }
            SelectItem::ExprWithAliases { .. } => {
                return Err(Refusal::unsupported("multiple aliases for one expression"));
            }
        }
        Ok(())
    }

    /// The FROM item `t.*` (or `s.t.*`) names.
    pub(super) fn wildcard_item<'f>(
        &self,
        parts: &[String],
        frame: &Frame<'f>,
    ) -> Option<&'f FromItem> {
        match parts {
            [name] => frame.item(name),
            [schema, name] => frame
                .item(name)
                .filter(|i| i.schema.is_none() || i.schema.as_deref() == Some(schema.as_str())),
            _ => None,
        }
    }

    fn notice_wildcard(&mut self, items: &[&FromItem]) {
        let relations = || items.iter().filter(|i| i.relation.is_some());
        let hidden: Vec<String> = relations()
            .flat_map(|i| i.hidden_columns().map(|c| qualified_label(i, c)))
            .collect();
        if !hidden.is_empty() {
            self.notice(format!(
                "tablegate: hidden by policy and left out of *: {}",
                hidden.join(", ")
            ));
        }
        let masked: Vec<String> = relations()
            .flat_map(|i| i.masked_columns().map(|c| qualified_label(i, c)))
            .collect();
        self.notice_masked(&masked);
    }

    pub(super) fn notice_masked(&mut self, labels: &[String]) {
        if !labels.is_empty() {
            self.notice(format!(
                "tablegate: masked by policy, shown masked: {}",
                labels.join(", ")
            ));
        }
    }

    /// A GROUP BY, DISTINCT ON or ORDER BY item, which may be an output column's position or
    /// (for DISTINCT ON and ORDER BY, first) an output column's name.
    fn positional(
        &mut self,
        e: &mut Expr,
        frame: &Frame,
        clause: &'static str,
        positions: &ProjectionPositions,
        projection: &[SelectItem],
        names_first: bool,
    ) -> Result<(), Refusal> {
        if let Some(original) = ordinal(e)? {
            if let Some(s) = positions.stripped.iter().find(|s| s.position.is_none()) {
                return Err(hidden_column_refusal(&s.label, clause)
                    .with_hint("name the columns instead of giving positions: a * before the hidden column covers columns tablegate cannot name"));
            }
            let places = || positions.stripped.iter().filter_map(|s| s.position);
            if let Some(s) = positions
                .stripped
                .iter()
                .find(|s| s.position.map(|p| p + 1) == Some(original))
            {
                return Err(hidden_column_refusal(&s.label, clause));
            }
            let shift = places().filter(|&p| p + 1 < original).count();
            positions
                .output
                .refuse_position_past_hidden(original - shift, clause)?;
            refuse_masked_position(positions.output, original - shift, clause)?;
            // Always a new literal: the rewrite may depend on this number's value (columns
            // stripped or masked, a grouped primary key), so the rewrite cache must not treat
            // it as a slot.
            *e = fresh_ordinal(original - shift);
            return Ok(());
        }
        if let Expr::Identifier(id) = e {
            let name = fold(id);
            // ORDER BY and DISTINCT ON take a bare name as an output column first; GROUP BY takes
            // it as an input column first.
            let as_output = names_first
                || matches!(
                    frame.resolve(std::slice::from_ref(&name)),
                    Resolved::Unknown | Resolved::WholeRow(_)
                );
            if as_output {
                if positions
                    .output
                    .columns
                    .iter()
                    .any(|c| c.name == name && c.is_masked())
                {
                    return Err(masked_column_refusal(&display_ident(&name), clause));
                }
                let names_output = projection.iter().any(|item| match item {
                    SelectItem::ExprWithAlias { alias, .. } => fold(alias) == name,
                    SelectItem::UnnamedExpr(e) => output_name(e) == name,
                    _ => false,
                });
                if names_output {
                    return Ok(());
                }
                if let Some(s) = positions.stripped.iter().find(|s| s.output_name == name) {
                    return Err(hidden_column_refusal(&s.label, clause));
                }
            }
        }
        self.expr(e, frame, clause)
    }
}

/// A stripped select-list item: where it stood, what it showed, and the output name it had.
pub(super) struct Stripped {
    /// Where it was in the select list as PostgreSQL would expand it (0-based); `None` past a
    /// `*` over columns tablegate cannot name.
    position: Option<usize>,
    label: String,
    output_name: String,
}

pub(super) struct ProjectionPositions<'a> {
    stripped: &'a [Stripped],
    /// The select list's output, after stripping.
    output: &'a Output,
}

/// The output position a GROUP BY, DISTINCT ON or ORDER BY item names by number.
///
/// PostgreSQL reads an integer constant as a position, in parentheses or not: `ORDER BY (2)` is
/// the second column. Any other number here is refused — too large for a position, written
/// `0x2` or `1_0` (integers to PostgreSQL 16), or not an integer (which PostgreSQL refuses) — so
/// that no number in this place is ever taken for an ordinary literal, and cached as one.
pub(super) fn ordinal(e: &Expr) -> Result<Option<usize>, Refusal> {
    match e {
        Expr::Nested(inner) => ordinal(inner),
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n
                .parse()
                .ok()
                .filter(|_| n.bytes().all(|b| b.is_ascii_digit()))
                .map(Some)
                .ok_or_else(|| {
                    Refusal::new(
                        RefusalKind::Unsupported,
                        format!("the number {n} where a column position is read"),
                    )
                    .with_hint("write a position as plain digits within the select list's length")
                }),
            _ => Ok(None),
        },
        _ => Ok(None),
    }
}

/// An ordinal tablegate writes itself: without a source position, so the rewrite cache keeps it
/// as fixed text and keys the statement by its exact text.
fn fresh_ordinal(position: usize) -> Expr {
    Expr::value(Value::Number(position.to_string(), false))
}

/// Refuses an ordinal that names a masked output column. Behind a `*` over columns tablegate
/// cannot name, positions are uncertain: with a masked column in the output, ordinals are
/// refused.
fn refuse_masked_position(output: &Output, position: usize, clause: &str) -> Result<(), Refusal> {
    let Some(masked) = output.masked() else {
        return Ok(());
    };
    if output.open {
        return Err(masked_column_refusal(&display_ident(&masked.name), clause)
            .with_hint("name the columns instead of using positions; masked columns can only be selected as they are"));
    }
    match position.checked_sub(1).and_then(|i| output.columns.get(i)) {
        Some(column) if column.is_masked() => {
            Err(masked_column_refusal(&display_ident(&column.name), clause))
        }
        _ => Ok(()),
    }
}

fn order_by_exprs(order_by: &mut OrderBy) -> Result<impl Iterator<Item = &mut Expr>, Refusal> {
    if order_by.interpolate.is_some() {
        return Err(Refusal::unsupported("ORDER BY ... INTERPOLATE"));
    }
    match &mut order_by.kind {
        OrderByKind::Expressions(exprs) => {
            for e in exprs.iter() {
                if e.with_fill.is_some() {
                    return Err(Refusal::unsupported("ORDER BY ... WITH FILL"));
                }
                if matches!(e.options.sort, Some(sqlparser::ast::OrderBySort::Using(_))) {
                    return Err(Refusal::unsupported("ORDER BY ... USING an operator"));
                }
            }
            Ok(exprs.iter_mut().map(|e| &mut e.expr))
        }
        OrderByKind::All(_) => Err(Refusal::unsupported("ORDER BY ALL")),
    }
}

fn check_plain_wildcard(options: &WildcardAdditionalOptions) -> Result<(), Refusal> {
    let WildcardAdditionalOptions {
        wildcard_token: _,
        opt_ilike,
        opt_exclude,
        opt_except,
        opt_replace,
        opt_rename,
        opt_alias,
    } = options;
    if opt_ilike.is_some()
        || opt_exclude.is_some()
        || opt_except.is_some()
        || opt_replace.is_some()
        || opt_rename.is_some()
        || opt_alias.is_some()
    {
        return Err(Refusal::unsupported(
            "`*` with EXCLUDE/EXCEPT/REPLACE/RENAME",
        ));
    }
    Ok(())
}

fn check_unique_refnames(items: &[FromItem]) -> Result<(), Refusal> {
    for (i, a) in items.iter().enumerate() {
        let Some(name) = &a.refname else { continue };
        if items[i + 1..].iter().any(|b| {
            b.refname.as_ref() == Some(name) && a.relation.is_some() && b.relation.is_some()
        }) {
            return Err(Refusal::new(
                RefusalKind::Unsupported,
                format!("two relations in one FROM are both called `{name}`"),
            )
            .with_hint("give each an alias"));
        }
    }
    Ok(())
}

pub(super) fn masked_column_refusal(label: &str, clause: &str) -> Refusal {
    Refusal::new(
        RefusalKind::Column,
        format!("permission denied for column {label}: it is masked by policy and can only be selected as it is, not used in {clause}"),
    )
    .with_hint("select the column on its own to see its masked value; masked columns cannot be compared, joined, grouped, ordered, deduplicated or computed on")
}

pub(super) fn alias_column_names(alias: &TableAlias) -> Result<Vec<String>, Refusal> {
    alias
        .columns
        .iter()
        .map(|c| match c.data_type {
            None => Ok(fold(&c.name)),
            Some(_) => Err(Refusal::unsupported("column definitions in an alias")),
        })
        .collect()
}

/// Applies the alias column list of `item`: the first names are replaced, the rest keep theirs.
/// Upstream, hidden columns are not in the protected sources: a list reaching one would name
/// different columns there than the query meant.
pub(super) fn renamed(
    item: &str,
    mut columns: Vec<ItemColumn>,
    aliases: &[String],
) -> Result<Vec<ItemColumn>, Refusal> {
    if let Some(hidden) = columns[..aliases.len().min(columns.len())]
        .iter()
        .find(|c| c.is_hidden())
    {
        return Err(Refusal::new(
            RefusalKind::Column,
            format!(
                "the column alias list of {} reaches the column {}, which is hidden by policy",
                display_ident(item),
                display_ident(&hidden.name)
            ),
        )
        .with_hint("name the columns in the select list instead (column AS name)"));
    }
    for (column, alias) in columns.iter_mut().zip(aliases) {
        column.name = alias.clone();
    }
    Ok(columns)
}

/// `table.column` as the user would name it.
pub(super) fn qualified_label(item: &FromItem, column: &str) -> String {
    match &item.refname {
        Some(r) => format!(
            "{}.{}",
            crate::names::display_ident(r),
            crate::names::display_ident(column)
        ),
        None => crate::names::display_ident(column),
    }
}

pub(super) fn hidden_column_refusal(label: &str, clause: &str) -> Refusal {
    Refusal::new(
        RefusalKind::Column,
        format!("permission denied for column {label}: it is hidden by policy and cannot be used in {clause}"),
    )
    .with_hint("remove the column from the query; hidden columns can be neither shown nor used in conditions, joins, grouping or ordering")
}
