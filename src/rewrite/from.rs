//! FROM items: relations, CTE references, functions, joins.
//!
//! Each item becomes a [`FromItem`] naming the columns the rest of the query may read. A
//! relation is replaced by its protected source, a derived table that keeps the name (or alias)
//! the query used; a CTE reference takes the CTE's columns; a function in FROM is checked as a
//! call is, and named as PostgreSQL names its columns.

use sqlparser::ast::{
    Expr, Join, JoinConstraint, LimitClause, Offset, OffsetRows, Select, SelectItem, SetExpr,
    TableAlias, TableFactor, TableSample, TableSampleKind, TableSampleMethod, TableSampleModifier,
    TableSampleQuantity, TableSampleSeedModifier, TableWithJoins, Value, WildcardAdditionalOptions,
};

use super::Walker;
use super::census::Census;
use super::expr::check_type;
use super::query::{
    alias_column_names, hidden_column_refusal, masked_column_refusal, qualified_label, renamed,
};
use super::scope::{ColumnState, Frame, FromItem, ItemColumn};
use super::syntax::{join_constraint_mut, object_name_parts};
use crate::catalog::{RelationKind, SYSTEM_SCHEMAS};
use crate::names::{QualifiedName, display_ident, fold, quoted};
use crate::policy::Source;
use crate::refusal::{Refusal, RefusalKind};
use crate::sql;

/// Set-returning functions whose single output column is named after the function (or alias).
pub(super) const SCALAR_SET_FUNCTIONS: [&str; 13] = [
    "generate_series",
    "unnest",
    "generate_subscripts",
    "regexp_split_to_table",
    "regexp_matches",
    "string_to_table",
    "json_array_elements",
    "jsonb_array_elements",
    "json_array_elements_text",
    "jsonb_array_elements_text",
    "json_object_keys",
    "jsonb_object_keys",
    "jsonb_path_query",
];

impl Walker<'_> {
    /// One comma-separated FROM element and its joins.
    pub(super) fn join_tree(
        &mut self,
        element: &mut TableWithJoins,
        outer: &Frame,
        items: &mut Vec<FromItem>,
    ) -> Result<(), Refusal> {
        let start = items.len();
        self.table_factor(&mut element.relation, outer, items)?;
        for Join {
            relation,
            global,
            join_operator,
        } in element.joins.iter_mut()
        {
            if *global {
                return Err(Refusal::unsupported("GLOBAL JOIN"));
            }
            let right_start = items.len();
            self.table_factor(relation, outer, items)?;
            let constraint = join_constraint_mut(join_operator)
                .ok_or_else(|| Refusal::unsupported("this kind of join"))?;
            self.join_constraint(constraint, outer, items, start, right_start)?;
        }
        Ok(())
    }

    fn join_constraint(
        &mut self,
        constraint: &mut JoinConstraint,
        outer: &Frame,
        items: &mut Vec<FromItem>,
        left_start: usize,
        right_start: usize,
    ) -> Result<(), Refusal> {
        let merged: Vec<String> = match constraint {
            JoinConstraint::None => return Ok(()),
            JoinConstraint::On(e) => {
                let frame = Frame {
                    parent: Some(outer),
                    ctes: &[],
                    items,
                };
                return self.expr(e, &frame, "JOIN ... ON");
            }
            JoinConstraint::Using(names) => {
                let mut merged = Vec::with_capacity(names.len());
                for name in names.iter() {
                    let [column] = object_name_parts(name)?
                        .try_into()
                        .map_err(|_| Refusal::unsupported("a qualified name in JOIN ... USING"))?;
                    for side in [&items[left_start..right_start], &items[right_start..]] {
                        if let Some((item, c)) = unqualified_column(side, &column) {
                            let label = qualified_label(item, &column);
                            match c.state {
                                ColumnState::Hidden => {
                                    return Err(hidden_column_refusal(&label, "JOIN ... USING"));
                                }
                                ColumnState::Masked => {
                                    return Err(masked_column_refusal(&label, "JOIN ... USING"));
                                }
                                ColumnState::Visible => {}
                            }
                        }
                    }
                    merged.push(column);
                }
                merged
            }
            JoinConstraint::Natural => {
                // Common columns as in the original query: a hidden one would be compared (and
                // upstream, where the sources lack it, the join would silently change), a
                // masked one compared.
                let left: Vec<&ItemColumn> = items[left_start..right_start]
                    .iter()
                    .filter(|i| i.unqualified_visible)
                    .flat_map(|i| i.columns.iter())
                    .collect();
                let mut common = Vec::new();
                for column in items[right_start..]
                    .iter()
                    .filter(|i| i.unqualified_visible)
                    .flat_map(|i| i.columns.iter())
                {
                    let Some(other) = left.iter().find(|l| l.name == column.name) else {
                        continue;
                    };
                    if column.is_hidden() || other.is_hidden() {
                        return Err(hidden_column_refusal(
                            &display_ident(&column.name),
                            "NATURAL JOIN",
                        ));
                    }
                    if column.is_masked() || other.is_masked() {
                        return Err(masked_column_refusal(
                            &display_ident(&column.name),
                            "NATURAL JOIN",
                        ));
                    }
                    common.push(column.name.clone());
                }
                common
            }
            JoinConstraint::UsingAlias(..) => {
                return Err(Refusal::unsupported("JOIN ... USING ... AS"));
            }
        };
        let mut columns: Vec<ItemColumn> = merged.iter().map(ItemColumn::visible).collect();
        for item in items[left_start..]
            .iter_mut()
            .filter(|i| i.unqualified_visible)
        {
            columns.extend(
                item.columns
                    .iter()
                    .filter(|c| !merged.contains(&c.name))
                    .cloned(),
            );
            item.unqualified_visible = false;
        }
        let open = items[left_start..].iter().any(|i| i.open);
        items.push(FromItem {
            refname: None,
            schema: None,
            columns,
            open,
            unqualified_visible: true,
            relation: None,
        });
        Ok(())
    }

    fn table_factor(
        &mut self,
        factor: &mut TableFactor,
        outer: &Frame,
        items: &mut Vec<FromItem>,
    ) -> Result<(), Refusal> {
        match factor {
            TableFactor::Table { args: Some(_), .. } | TableFactor::Function { .. } => {
                let item = self.function_factor(factor, outer, items)?;
                items.push(item);
            }
            TableFactor::Table { .. } => {
                let item = self.relation_factor(factor, outer)?;
                items.push(item);
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
                sample,
            } => {
                if sample.is_some() {
                    return Err(Refusal::unsupported("TABLESAMPLE on a subquery"));
                }
                let lateral_frame = Frame {
                    parent: Some(outer),
                    ctes: &[],
                    items,
                };
                let frame = if *lateral { &lateral_frame } else { outer };
                let output = self.query(subquery, frame, false)?;
                let open = output.open;
                let (refname, columns) = match alias {
                    Some(alias) => {
                        let name = fold(&alias.name);
                        let columns =
                            output.into_item_columns(&name, &alias_column_names(alias)?)?;
                        (Some(name), columns)
                    }
                    None => (None, output.into_item_columns("", &[])?),
                };
                items.push(FromItem::named(refname, columns, open));
            }
            TableFactor::UNNEST {
                alias,
                array_exprs,
                with_offset,
                with_offset_alias,
                with_ordinality,
            } => {
                if *with_offset || with_offset_alias.is_some() {
                    return Err(Refusal::unsupported("UNNEST ... WITH OFFSET"));
                }
                let frame = Frame {
                    parent: Some(outer),
                    ctes: &[],
                    items,
                };
                for e in array_exprs.iter_mut() {
                    self.expr(e, &frame, "FROM")?;
                }
                let single = array_exprs.len() == 1;
                let item = function_item("unnest", alias.as_ref(), single, *with_ordinality)?;
                items.push(item);
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => match alias {
                None => self.join_tree(table_with_joins, outer, items)?,
                Some(alias) => {
                    let mut inner = Vec::new();
                    self.join_tree(table_with_joins, outer, &mut inner)?;
                    let columns: Vec<ItemColumn> = inner
                        .iter()
                        .filter(|i| i.unqualified_visible)
                        .flat_map(|i| i.columns.iter().cloned())
                        .collect();
                    let names = alias_column_names(alias)?;
                    let columns = renamed(&fold(&alias.name), columns, &names)?;
                    items.push(FromItem {
                        refname: Some(fold(&alias.name)),
                        schema: None,
                        columns,
                        open: inner.iter().any(|i| i.open),
                        unqualified_visible: true,
                        relation: None,
                    });
                }
            },
            _ => return Err(Refusal::unsupported("this kind of FROM item")),
        }
        Ok(())
    }

    /// A function in FROM: implicitly LATERAL, so its arguments see the items before it.
    fn function_factor(
        &mut self,
        factor: &mut TableFactor,
        outer: &Frame,
        items: &[FromItem],
    ) -> Result<FromItem, Refusal> {
        let frame = Frame {
            parent: Some(outer),
            ctes: &[],
            items,
        };
        let (name, alias, with_ordinality) = match factor {
            TableFactor::Table {
                name,
                alias,
                args: Some(args),
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_directives,
                inheritance,
            } => {
                if !with_hints.is_empty()
                    || version.is_some()
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_directives.is_empty()
                    || inheritance.is_some()
                    || args.settings.is_some()
                {
                    return Err(Refusal::unsupported("this form of function call in FROM"));
                }
                for arg in args.args.iter_mut() {
                    self.function_arg(arg, &frame, "FROM")?;
                }
                // sqlparser's visitor counts this name as a relation.
                self.checked.relations += 1;
                (name, alias, *with_ordinality)
            }
            TableFactor::Function {
                name,
                args,
                with_ordinality,
                alias,
                lateral: _,
            } => {
                for arg in args.iter_mut() {
                    self.function_arg(arg, &frame, "FROM")?;
                }
                (name, alias, *with_ordinality)
            }
            _ => unreachable!("function_factor is called for function FROM items"),
        };
        let function = self.check_function_name(name)?;
        let single = SCALAR_SET_FUNCTIONS.contains(&function.as_str());
        match function.as_str() {
            "json_each" | "jsonb_each" | "json_each_text" | "jsonb_each_text"
                if alias.as_ref().is_none_or(|a| a.columns.is_empty()) =>
            {
                let mut item = function_item(&function, alias.as_ref(), false, with_ordinality)?;
                item.columns
                    .splice(0..0, ["key", "value"].map(ItemColumn::visible));
                item.open = false;
                Ok(item)
            }
            _ => function_item(&function, alias.as_ref(), single, with_ordinality),
        }
    }

    /// A relation or CTE named in FROM.
    fn relation_factor(
        &mut self,
        factor: &mut TableFactor,
        outer: &Frame,
    ) -> Result<FromItem, Refusal> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            with_hints,
            version,
            with_ordinality,
            partitions,
            json_path,
            sample,
            index_directives,
            inheritance,
        } = factor
        else {
            unreachable!("relation_factor is called for plain table references");
        };
        if !with_hints.is_empty()
            || version.is_some()
            || *with_ordinality
            || !partitions.is_empty()
            || json_path.is_some()
            || !index_directives.is_empty()
        {
            return Err(Refusal::unsupported("this form of table reference"));
        }
        if let Some(sample) = sample {
            table_sample(sample)?;
        }
        let alias_columns = match alias {
            Some(a) => alias_column_names(a)?,
            None => Vec::new(),
        };
        let parts = object_name_parts(name)?;
        if let [cte_name] = parts.as_slice()
            && outer.cte(cte_name).is_none()
            && self.later_ctes.contains(cte_name)
        {
            return Err(Refusal::unsupported(format!(
                "a reference to the CTE {}, defined later in the same WITH RECURSIVE",
                display_ident(cte_name)
            )));
        }
        if let [cte_name] = parts.as_slice()
            && let Some(cte) = outer.cte(cte_name)
        {
            if sample.is_some() || inheritance.is_some() {
                return Err(Refusal::unsupported("ONLY or TABLESAMPLE on a CTE"));
            }
            self.checked.relations += 1;
            let refname = alias
                .as_ref()
                .map_or_else(|| cte.name.clone(), |a| fold(&a.name));
            let columns = renamed(&refname, cte.columns.clone(), &alias_columns)?;
            return Ok(FromItem::named(Some(refname), columns, cte.open));
        }
        let written = name.to_string();
        let qualified = self.resolve_relation(&parts, &written)?;
        let id = self
            .catalog
            .lookup(&qualified)
            .ok_or_else(|| no_such_relation(&written))?;
        let relation = self.catalog.relation(id);
        let access = self
            .access
            .table(id)
            .ok_or_else(|| no_such_relation(&written))?;
        self.read(id);
        let source = access.source.clone()?;

        let refname = alias
            .as_ref()
            .map_or_else(|| relation.name.name.clone(), |a| fold(&a.name));
        let item = FromItem {
            refname: Some(refname.clone()),
            schema: alias.is_none().then(|| relation.name.schema.clone()),
            columns: relation
                .columns
                .iter()
                .enumerate()
                .map(|(i, c)| ItemColumn {
                    name: alias_columns
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| c.name.clone()),
                    state: if !access.visible[i] {
                        ColumnState::Hidden
                    } else if access.masked[i] {
                        ColumnState::Masked
                    } else {
                        ColumnState::Visible
                    },
                })
                .collect(),
            open: false,
            unqualified_visible: true,
            relation: Some(id),
        };
        let alias_ident = alias
            .as_ref()
            .map_or_else(|| quoted(&relation.name.name), |a| a.name.clone());
        let object = sql::object_name(&relation.name);
        // A relation granted whole is read through a source too, listing the columns
        // tablegate knows: a column added upstream since the catalog was read (perhaps one a
        // deny-list will hide), or a system column, is not reached through it.
        let mut body = match source {
            Source::Whole => Box::new(sql::select(
                relation
                    .columns
                    .iter()
                    .map(|c| SelectItem::UnnamedExpr(Expr::Identifier(quoted(&c.name))))
                    .collect(),
                sql::table(object, None),
                None,
            )),
            Source::Protected(body) => body,
        };
        // Counted before the query's own TABLESAMPLE moves in: that was walked above.
        self.checked.add(Census::of(&body));
        let SetExpr::Select(select) = body.body.as_mut() else {
            unreachable!("sources are SELECTs");
        };
        if let TableFactor::Table {
            sample: s,
            inheritance: i,
            ..
        } = &mut select.from[0].relation
        {
            *s = sample.take();
            *i = inheritance.take();
        }
        if !alias_columns.is_empty() {
            rename_source_columns(select, &access.visible, &alias_columns, relation);
        }
        // A view's own WHERE is no more a barrier than a row filter.
        if self.fence && (select.selection.is_some() || relation.kind == RelationKind::View) {
            // See `leakproof`: the row filter runs before the query's conditions.
            self.trace.fenced = true;
            body.limit_clause = Some(LimitClause::LimitOffset {
                limit: None,
                offset: Some(Offset {
                    value: Expr::value(Value::Number("0".into(), false)),
                    rows: OffsetRows::None,
                }),
                limit_by: vec![],
            });
        }
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: body,
            alias: Some(sql::alias(alias_ident)),
            sample: None,
        };
        Ok(item)
    }

    /// The relation a name means: schema-qualified, or the first match along the search_path.
    pub(super) fn resolve_relation(
        &self,
        parts: &[String],
        written: &str,
    ) -> Result<QualifiedName, Refusal> {
        let qualified = match parts {
            [name] => self
                .search_path
                .schemas(self.catalog)
                .map(|schema| QualifiedName::new(schema, name.as_str()))
                .find(|q| self.catalog.lookup(q).is_some())
                .ok_or_else(|| no_such_relation(written))?,
            [schema, name] => QualifiedName::new(schema.as_str(), name.as_str()),
            _ => {
                return Err(Refusal::new(
                    RefusalKind::Relation,
                    format!("`{written}`: references to other databases are not supported"),
                )
                .with_hint("name relations as table or schema.table"));
            }
        };
        if SYSTEM_SCHEMAS.contains(&qualified.schema.as_str()) {
            return Err(Refusal::new(
                RefusalKind::Relation,
                format!("permission denied for {qualified}: system catalogs are not available through tablegate"),
            )
            .with_hint("ask about your data's tables directly"));
        }
        Ok(qualified)
    }
}

/// `TABLESAMPLE BERNOULLI | SYSTEM (n) [REPEATABLE (seed)]` with constant arguments. The sample
/// is taken inside the protected source, before the row filter, so its arguments would run on
/// unfiltered rows: an expression there could read anything. Only numbers and parameters pass.
fn table_sample(sample: &TableSampleKind) -> Result<(), Refusal> {
    let (TableSampleKind::BeforeTableAlias(sample) | TableSampleKind::AfterTableAlias(sample)) =
        sample;
    let constant = |v: &Value| matches!(v, Value::Number(..) | Value::Placeholder(_));
    let TableSample {
        modifier: TableSampleModifier::TableSample,
        name: Some(TableSampleMethod::Bernoulli | TableSampleMethod::System),
        quantity:
            Some(TableSampleQuantity {
                parenthesized: true,
                value: Expr::Value(quantity),
                unit: None,
            }),
        seed,
        bucket: None,
        offset: None,
    } = sample.as_ref()
    else {
        return Err(Refusal::unsupported("this form of TABLESAMPLE")
            .with_hint("write TABLESAMPLE BERNOULLI (percent) or SYSTEM (percent) with a number"));
    };
    let seed_constant = seed.as_ref().is_none_or(|s| {
        s.modifier == TableSampleSeedModifier::Repeatable && constant(&s.value.value)
    });
    if !constant(&quantity.value) || !seed_constant {
        return Err(Refusal::unsupported(
            "an expression in TABLESAMPLE: it would run before the row filter",
        )
        .with_hint("give the sample percentage and REPEATABLE seed as numbers"));
    }
    Ok(())
}

fn unqualified_column<'a>(
    items: &'a [FromItem],
    name: &str,
) -> Option<(&'a FromItem, &'a ItemColumn)> {
    items
        .iter()
        .filter(|i| i.unqualified_visible)
        .find_map(|i| i.columns.iter().find(|c| c.name == name).map(|c| (i, c)))
}

/// The item for a function in FROM, with PostgreSQL's column naming for scalar results.
fn function_item(
    function: &str,
    alias: Option<&TableAlias>,
    single: bool,
    with_ordinality: bool,
) -> Result<FromItem, Refusal> {
    let alias_columns = match alias {
        Some(a) => alias_column_names_allowing_types(a)?,
        None => Vec::new(),
    };
    let refname = alias.map_or_else(|| function.to_owned(), |a| fold(&a.name));
    let (mut columns, open) = if !alias_columns.is_empty() {
        (alias_columns, false)
    } else if single {
        (vec![refname.clone()], false)
    } else {
        (Vec::new(), true)
    };
    if with_ordinality && alias.is_none_or(|a| a.columns.is_empty()) {
        columns.push("ordinality".into());
    }
    let columns = columns.into_iter().map(ItemColumn::visible).collect();
    Ok(FromItem::named(Some(refname), columns, open))
}

/// Alias column names for functions, where `AS x(a int, b text)` column definitions are allowed
/// (the types are casts of the function's values, checked as casts are).
fn alias_column_names_allowing_types(alias: &TableAlias) -> Result<Vec<String>, Refusal> {
    alias
        .columns
        .iter()
        .map(|c| {
            if let Some(data_type) = &c.data_type {
                check_type(data_type)?;
            }
            Ok(fold(&c.name))
        })
        .collect()
}

/// Puts a query's alias column list (`FROM t AS x(a, b)`) onto the protected source's columns,
/// by their position in the table.
fn rename_source_columns(
    select: &mut Select,
    visible: &[bool],
    aliases: &[String],
    relation: &crate::catalog::Relation,
) {
    let visible_positions: Vec<usize> = (0..relation.columns.len())
        .filter(|&i| visible[i])
        .collect();
    for (item, &position) in select.projection.iter_mut().zip(&visible_positions) {
        let Some(alias) = aliases.get(position) else {
            continue;
        };
        let expr = match std::mem::replace(
            item,
            SelectItem::Wildcard(WildcardAdditionalOptions::default()),
        ) {
            SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => e,
            other => {
                *item = other;
                continue;
            }
        };
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: quoted(alias),
        };
    }
}

fn no_such_relation(written: &str) -> Refusal {
    Refusal::new(
        RefusalKind::Relation,
        format!("permission denied for relation {written}: it does not exist or you have no access to it"),
    )
    .with_hint("ask your DBA which tables your roles grant")
}
