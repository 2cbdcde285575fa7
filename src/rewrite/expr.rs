//! Expressions: column references, functions, operators, casts and the subqueries inside them.
//!
//! Every expression form is matched explicitly; a form not listed here is refused, so a new
//! sqlparser construct can never pass unchecked.

use sqlparser::ast::{
    AccessExpr, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentClause,
    FunctionArguments, Ident, InTarget, ObjectName, Subscript, Value, WindowFrameBound, WindowSpec,
    WindowType,
};

use super::Walker;
use super::functions::{
    builtin_text_search_config, is_safe_binary_operator, is_safe_function, is_safe_unary_operator,
    refused_type, takes_text_search_config,
};
use super::query::{hidden_column_refusal, masked_column_refusal, qualified_label};
use super::scope::{ColumnState, Frame, FromItem, Resolved};
use super::syntax::{leading_name, object_name_parts};
use crate::names::fold;
use crate::policy::set::function_key;
use crate::refusal::{Refusal, RefusalKind};

/// Built-ins written with keyword syntax: PostgreSQL does not look them up as functions, so
/// they cannot be schema-qualified.
const KEYWORD_FUNCTIONS: [&str; 12] = [
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "row",
    "array",
    "grouping",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
];

/// SQL's parameterless value functions that sqlparser reads as plain identifiers. Unquoted,
/// PostgreSQL reads them as the function whatever columns are in scope, so they are checked as
/// functions (`current_role` and `system_user` name the upstream service account).
const SQL_VALUE_FUNCTIONS: [&str; 3] = ["current_role", "system_user", "current_schema"];

impl Walker<'_> {
    pub(super) fn expr(
        &mut self,
        e: &mut Expr,
        frame: &Frame,
        clause: &'static str,
    ) -> Result<(), Refusal> {
        match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                self.column_expr(e, frame, clause, false).map(|_| ())
            }
            Expr::CompoundFieldAccess { root, access_chain } => {
                take_name_parts(root, access_chain);
                self.expr(root, frame, clause)?;
                for access in access_chain {
                    match access {
                        // `(a).f` is the call `f(a)` unless a is a composite value with a
                        // field f, which tablegate cannot tell.
                        AccessExpr::Dot(_) => {
                            return Err(Refusal::new(
                                RefusalKind::Unsupported,
                                "field selection `(value).field` is not supported",
                            )
                            .with_hint("PostgreSQL reads `(a).f` as the call `f(a)` when a has no field f; write columns as alias.column"));
                        }
                        AccessExpr::Subscript(Subscript::Index { index }) => {
                            self.expr(index, frame, clause)?
                        }
                        AccessExpr::Subscript(Subscript::Slice {
                            lower_bound,
                            upper_bound,
                            stride,
                        }) => {
                            if stride.is_some() {
                                return Err(Refusal::unsupported("array slices with a stride"));
                            }
                            for b in [lower_bound, upper_bound].into_iter().flatten() {
                                self.expr(b, frame, clause)?;
                            }
                        }
                    }
                }
                Ok(())
            }
            Expr::IsFalse(a)
            | Expr::IsNotFalse(a)
            | Expr::IsTrue(a)
            | Expr::IsNotTrue(a)
            | Expr::IsNull(a)
            | Expr::IsNotNull(a)
            | Expr::IsUnknown(a)
            | Expr::IsNotUnknown(a)
            | Expr::Nested(a) => self.expr(a, frame, clause),
            Expr::IsNormalized { expr, .. } => self.expr(expr, frame, clause),
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                self.expr(a, frame, clause)?;
                self.expr(b, frame, clause)
            }
            Expr::In {
                expr,
                target,
                negated: _,
                global,
            } => {
                if *global {
                    return Err(Refusal::unsupported("GLOBAL IN"));
                }
                self.expr(expr, frame, clause)?;
                match target {
                    InTarget::List(list) => self.exprs(list, frame, clause),
                    InTarget::Subquery(q) => self.query(q, frame, false)?.refuse_masked("IN (...)"),
                    InTarget::Unnest(_) | InTarget::Table { .. } => {
                        Err(Refusal::unsupported("this form of IN"))
                    }
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.expr(expr, frame, clause)?;
                self.expr(low, frame, clause)?;
                self.expr(high, frame, clause)
            }
            Expr::BinaryOp { left, op, right } => {
                if !is_safe_binary_operator(op) {
                    return Err(operator_refusal(&op.to_string()));
                }
                self.expr(left, frame, clause)?;
                self.expr(right, frame, clause)
            }
            Expr::Like {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::ILike {
                expr,
                pattern,
                escape_char,
                ..
            }
            | Expr::SimilarTo {
                expr,
                pattern,
                escape_char,
                ..
            } => {
                self.expr(expr, frame, clause)?;
                self.expr(pattern, frame, clause)?;
                if let Some(escape) = escape_char {
                    self.expr(escape, frame, clause)?;
                }
                Ok(())
            }
            Expr::AnyOp {
                left,
                compare_op,
                right,
                ..
            }
            | Expr::AllOp {
                left,
                compare_op,
                right,
            } => {
                if !is_safe_binary_operator(compare_op) {
                    return Err(operator_refusal(&compare_op.to_string()));
                }
                self.expr(left, frame, clause)?;
                self.expr(right, frame, clause)
            }
            Expr::UnaryOp { op, expr } => {
                if !is_safe_unary_operator(op) {
                    return Err(operator_refusal(&op.to_string()));
                }
                self.expr(expr, frame, clause)
            }
            Expr::Cast {
                kind,
                expr,
                data_type,
                format,
            } => {
                if !matches!(
                    kind,
                    sqlparser::ast::CastKind::Cast | sqlparser::ast::CastKind::DoubleColon
                ) || format.is_some()
                {
                    return Err(Refusal::unsupported("this kind of cast"));
                }
                check_type(data_type)?;
                self.checked.typed_values += 1;
                self.expr(expr, frame, clause)
            }
            Expr::AtTimeZone {
                timestamp,
                time_zone,
            } => {
                self.expr(timestamp, frame, clause)?;
                self.expr(time_zone, frame, clause)
            }
            Expr::Extract { expr, .. } => self.expr(expr, frame, clause),
            Expr::Ceil { expr, field } | Expr::Floor { expr, field } => {
                if matches!(field, sqlparser::ast::CeilFloorKind::Scale(_)) {
                    return Err(Refusal::unsupported("CEIL/FLOOR with a scale"));
                }
                self.expr(expr, frame, clause)
            }
            Expr::Position { expr, r#in } => {
                self.expr(expr, frame, clause)?;
                self.expr(r#in, frame, clause)
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                self.expr(expr, frame, clause)?;
                for part in [substring_from, substring_for].into_iter().flatten() {
                    self.expr(part, frame, clause)?;
                }
                Ok(())
            }
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                if trim_characters.is_some() {
                    return Err(Refusal::unsupported("TRIM with a character list"));
                }
                self.expr(expr, frame, clause)?;
                if let Some(what) = trim_what {
                    self.expr(what, frame, clause)?;
                }
                Ok(())
            }
            Expr::Overlay {
                expr,
                overlay_what,
                overlay_from,
                overlay_for,
            } => {
                self.expr(expr, frame, clause)?;
                self.expr(overlay_what, frame, clause)?;
                self.expr(overlay_from, frame, clause)?;
                if let Some(f) = overlay_for {
                    self.expr(f, frame, clause)?;
                }
                Ok(())
            }
            Expr::Collate { expr, collation } => {
                // A schema-qualified collation name would tell whether the schema exists.
                let parts = object_name_parts(collation)?;
                let builtin = match parts.as_slice() {
                    [_] => true,
                    [schema, _] => schema == "pg_catalog",
                    _ => false,
                };
                if !builtin {
                    return Err(Refusal::unsupported(format!(
                        "the collation {collation}: name a built-in collation without a schema"
                    )));
                }
                self.expr(expr, frame, clause)
            }
            Expr::Value(v) => check_value(&v.value),
            Expr::TypedString(t) => {
                check_type(&t.data_type)?;
                self.checked.typed_values += 1;
                if t.uses_odbc_syntax {
                    return Err(Refusal::unsupported("ODBC literal syntax"));
                }
                check_value(&t.value.value)
            }
            Expr::Function(f) => self.function(f, frame, clause),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                if let Some(operand) = operand {
                    self.expr(operand, frame, clause)?;
                }
                for when in conditions {
                    self.expr(&mut when.condition, frame, clause)?;
                    self.expr(&mut when.result, frame, clause)?;
                }
                if let Some(e) = else_result {
                    self.expr(e, frame, clause)?;
                }
                Ok(())
            }
            // EXISTS ignores what its subquery selects.
            Expr::Exists { subquery, .. } => self.query(subquery, frame, false).map(|_| ()),
            Expr::Subquery(subquery) => self
                .query(subquery, frame, false)?
                .refuse_masked("a subquery's value"),
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                for set in sets {
                    self.exprs(set, frame, clause)?;
                }
                Ok(())
            }
            Expr::Tuple(list) => self.exprs(list, frame, clause),
            Expr::Array(array) => self.exprs(&mut array.elem, frame, clause),
            Expr::Interval(interval) => self.expr(&mut interval.value, frame, clause),
            Expr::Wildcard(_) | Expr::QualifiedWildcard(..) => {
                Err(Refusal::unsupported("`*` inside an expression"))
            }
            Expr::JsonAccess { .. }
            | Expr::IsJson { .. }
            | Expr::RLike { .. }
            | Expr::Convert { .. }
            | Expr::Prefixed { .. }
            | Expr::Struct { .. }
            | Expr::Named { .. }
            | Expr::Dictionary(_)
            | Expr::Map(_)
            | Expr::MatchAgainst { .. }
            | Expr::OuterJoin(_)
            | Expr::Prior(_)
            | Expr::Lambda(_)
            | Expr::MemberOf(_) => Err(Refusal::unsupported(format!("`{e}`"))),
        }
    }

    fn exprs(
        &mut self,
        list: &mut [Expr],
        frame: &Frame,
        clause: &'static str,
    ) -> Result<(), Refusal> {
        list.iter_mut()
            .try_for_each(|e| self.expr(e, frame, clause))
    }

    /// A select-list expression: the one place a masked column (or a whole row holding one) may
    /// appear, as a bare reference. Returns what the output column carries.
    pub(super) fn selected_expr(
        &mut self,
        e: &mut Expr,
        frame: &Frame,
    ) -> Result<ColumnState, Refusal> {
        match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                self.column_expr(e, frame, "the select list", true)
            }
            _ => {
                self.expr(e, frame, "an expression in the select list")?;
                Ok(ColumnState::Visible)
            }
        }
    }

    /// A column reference (`Expr::Identifier` or `Expr::CompoundIdentifier`), shortened in place
    /// when needed; masked columns only `as_is`. Returns the state of what it reaches.
    fn column_expr(
        &mut self,
        e: &mut Expr,
        frame: &Frame,
        clause: &'static str,
        as_is: bool,
    ) -> Result<ColumnState, Refusal> {
        match e {
            Expr::Identifier(id)
                if id.quote_style.is_none()
                    && SQL_VALUE_FUNCTIONS.contains(&id.value.to_ascii_lowercase().as_str()) =>
            {
                self.check_function_name(&ObjectName::from(vec![id.clone()]))?;
                Ok(ColumnState::Visible)
            }
            Expr::Identifier(id) => self
                .column_ref(std::slice::from_mut(id), frame, clause, as_is)
                .map(|(state, _)| state),
            Expr::CompoundIdentifier(ids) => {
                let (state, shorter) = self.column_ref(ids, frame, clause, as_is)?;
                if let Some(shorter) = shorter {
                    *ids = shorter;
                }
                Ok(state)
            }
            _ => unreachable!("column_expr is called for column references"),
        }
    }

    /// Checks a column reference; returns the state of what it reaches, and a shorter spelling
    /// when `schema.table.column` must become `table.column` (the protected source keeps the
    /// table's name, not its schema).
    fn column_ref(
        &mut self,
        idents: &mut [Ident],
        frame: &Frame,
        clause: &'static str,
        as_is: bool,
    ) -> Result<(ColumnState, Option<Vec<Ident>>), Refusal> {
        let parts: Vec<String> = idents.iter().map(fold).collect();
        if parts.len() > 3 {
            return Err(Refusal::new(
                RefusalKind::Unsupported,
                format!(
                    "`{}`: references into other databases are not supported",
                    idents
                        .iter()
                        .map(|i| i.to_string())
                        .collect::<Vec<_>>()
                        .join(".")
                ),
            ));
        }
        match frame.resolve(&parts) {
            Resolved::Column { item, column } => {
                match column.state {
                    ColumnState::Hidden => {
                        return Err(hidden_column_refusal(
                            &qualified_label(item, &column.name),
                            clause,
                        ));
                    }
                    ColumnState::Masked if !as_is => {
                        return Err(masked_column_refusal(
                            &qualified_label(item, &column.name),
                            clause,
                        ));
                    }
                    // Said once, where the column leaves its table.
                    ColumnState::Masked if item.relation.is_some() => {
                        self.notice_masked(&[qualified_label(item, &column.name)]);
                    }
                    ColumnState::Masked | ColumnState::Visible => {}
                }
                if parts.len() == 3 && item.schema.as_deref() == Some(parts[0].as_str()) {
                    // `schema.table.column` → `table.column`, if that reaches the same item.
                    let short = &parts[1..];
                    let same = matches!(frame.resolve(short), Resolved::Column { item: other, .. } if std::ptr::eq(other, item));
                    if !same {
                        return Err(Refusal::new(
                            RefusalKind::Unsupported,
                            format!(
                                "`{}` is ambiguous once the schema is left out",
                                parts.join(".")
                            ),
                        )
                        .with_hint("give the table an alias and use alias.column"));
                    }
                    return Ok((column.state, Some(idents[1..].to_vec())));
                }
                Ok((column.state, None))
            }
            Resolved::WholeRow(item) => match item.masked_columns().next() {
                Some(_) if as_is => Ok((ColumnState::Masked, None)),
                Some(column) => Err(masked_row_refusal(item, column, clause)),
                None => Ok((ColumnState::Visible, None)),
            },
            Resolved::Unknown => Ok((ColumnState::Visible, None)),
            Resolved::NotAColumn => Err(Refusal::new(
                RefusalKind::Unsupported,
                format!(
                    "`{}` is not a column of a table, subquery or function in FROM",
                    parts
                        .iter()
                        .map(|p| crate::names::display_ident(p))
                        .collect::<Vec<_>>()
                        .join(".")
                ),
            )
            .with_hint("PostgreSQL would read it as a field of a composite value or as a function call (`a.f` is `f(a)`); write columns as alias.column, and call functions as f(…)")),
        }
    }

    fn function(
        &mut self,
        f: &mut Function,
        frame: &Frame,
        clause: &'static str,
    ) -> Result<(), Refusal> {
        let Function {
            name,
            uses_odbc_syntax,
            parameters,
            args,
            within_group,
            filter,
            null_treatment,
            over,
        } = f;
        self.checked.functions += 1;
        if *uses_odbc_syntax
            || !matches!(parameters, FunctionArguments::None)
            || null_treatment.is_some()
        {
            return Err(Refusal::unsupported(format!(
                "the call `{name}` (not PostgreSQL syntax)"
            )));
        }
        let function = self.check_function_name(name)?;
        if is_safe_function(&function)
            && !KEYWORD_FUNCTIONS.contains(&function.as_str())
            && matches!(args, FunctionArguments::List(_))
        {
            // Pin built-ins to pg_catalog, so an overload in another schema cannot be picked.
            // Safe built-in names are plain lower-case words: they print as written.
            *name = ObjectName::from(vec![
                Ident::new("pg_catalog"),
                Ident::new(function.as_str()),
            ]);
        }
        match args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(q) => {
                self.query(q, frame, false)?
                    .refuse_masked("a subquery's value")?;
            }
            FunctionArguments::List(list) => {
                if takes_text_search_config(&function, list.args.len()) {
                    text_search_config(&function, &mut list.args[0])?;
                }
                for arg in list.args.iter_mut() {
                    self.function_arg(arg, frame, clause)?;
                }
                for c in list.clauses.iter_mut() {
                    match c {
                        FunctionArgumentClause::OrderBy(order) => {
                            for o in order {
                                self.expr(&mut o.expr, frame, clause)?;
                            }
                        }
                        _ => {
                            return Err(Refusal::unsupported("this clause inside a function call"));
                        }
                    }
                }
            }
        }
        for o in within_group.iter_mut() {
            self.expr(&mut o.expr, frame, clause)?;
        }
        if let Some(filter) = filter {
            self.expr(filter, frame, clause)?;
        }
        match over {
            Some(WindowType::WindowSpec(spec)) => self.window_spec(spec, frame)?,
            Some(WindowType::NamedWindow(_)) | None => {}
        }
        Ok(())
    }

    pub(super) fn function_arg(
        &mut self,
        arg: &mut FunctionArg,
        frame: &Frame,
        clause: &'static str,
    ) -> Result<(), Refusal> {
        let postgres_operator = |operator: &sqlparser::ast::FunctionArgOperator| {
            matches!(
                operator,
                sqlparser::ast::FunctionArgOperator::RightArrow
                    | sqlparser::ast::FunctionArgOperator::Assignment
            )
        };
        let arg = match arg {
            FunctionArg::Unnamed(a) => a,
            FunctionArg::Named { arg, operator, .. } if postgres_operator(operator) => arg,
            // `make_interval(days => 30)`: the name is a parameter's, never a column.
            FunctionArg::ExprNamed {
                name: Expr::Identifier(_),
                arg,
                operator,
            } if postgres_operator(operator) => arg,
            FunctionArg::Named { .. } | FunctionArg::ExprNamed { .. } => {
                return Err(Refusal::unsupported("this named-argument syntax"));
            }
        };
        match arg {
            FunctionArgExpr::Expr(e) => self.expr(e, frame, clause),
            FunctionArgExpr::Wildcard => Ok(()),
            FunctionArgExpr::QualifiedWildcard(name) => {
                // `count(t.*)`: the item's row, which holds only visible columns; masked ones
                // would be computed on.
                let parts = object_name_parts(name)?;
                match self
                    .wildcard_item(&parts, frame)
                    .and_then(|item| Some((item, item.masked_columns().next()?)))
                {
                    Some((item, column)) => Err(masked_row_refusal(item, column, clause)),
                    None => Ok(()),
                }
            }
            FunctionArgExpr::WildcardWithOptions(_) => {
                Err(Refusal::unsupported("`*` with options"))
            }
        }
    }

    pub(super) fn window_spec(
        &mut self,
        spec: &mut WindowSpec,
        frame: &Frame,
    ) -> Result<(), Refusal> {
        self.exprs(&mut spec.partition_by, frame, "a window's PARTITION BY")?;
        for o in spec.order_by.iter_mut() {
            self.expr(&mut o.expr, frame, "a window's ORDER BY")?;
        }
        if let Some(window_frame) = &mut spec.window_frame {
            let bounds = std::iter::once(&mut window_frame.start_bound)
                .chain(window_frame.end_bound.as_mut());
            for bound in bounds {
                if let WindowFrameBound::Preceding(Some(e)) | WindowFrameBound::Following(Some(e)) =
                    bound
                {
                    self.expr(e, frame, "a window frame")?;
                }
            }
        }
        Ok(())
    }

    /// Whether a function may be called; returns its name as policies list it.
    pub(super) fn check_function_name(&self, name: &ObjectName) -> Result<String, Refusal> {
        let key = function_key(&object_name_parts(name)?);
        let builtin = is_safe_function(&key);
        if builtin || self.access.allows_function(&key) {
            Ok(key)
        } else {
            Err(Refusal::new(
                RefusalKind::Function,
                format!("permission denied for function {name}: it is not on tablegate's list of safe functions"),
            )
            .with_hint(
                "use built-in aggregate, math, string, date/time, JSON or array functions; a DBA can allow more in the policy's `functions` list",
            ))
        }
    }
}

/// The configuration argument of a text search function must be a literal naming a built-in
/// configuration. It is written anew, so the rewrite cache keeps it as fixed text: the decision
/// read its value.
fn text_search_config(function: &str, arg: &mut FunctionArg) -> Result<(), Refusal> {
    let builtin = match arg {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(v))) => match &v.value {
            Value::SingleQuotedString(name) => builtin_text_search_config(name),
            _ => None,
        },
        _ => None,
    };
    let Some(config) = builtin else {
        return Err(Refusal::new(
            RefusalKind::Function,
            format!("{function}: the text search configuration must be a built-in one, named by a string literal"),
        )
        .with_hint("write e.g. 'english' or 'simple', or leave the configuration out"));
    };
    *arg = FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::value(
        Value::SingleQuotedString(config.to_owned()),
    )));
    Ok(())
}

pub(super) fn check_type(data_type: &sqlparser::ast::DataType) -> Result<(), Refusal> {
    match refused_type(data_type) {
        None => Ok(()),
        Some(what) => Err(Refusal::new(
            RefusalKind::Function,
            format!("casts to {what} are not allowed"),
        )
        .with_hint("cast to PostgreSQL's built-in types; catalog lookup types and table row types would reveal objects outside your grants")),
    }
}

fn check_value(value: &Value) -> Result<(), Refusal> {
    match value {
        Value::Placeholder(p)
            if p.starts_with('$') && p[1..].chars().all(|c| c.is_ascii_digit()) && p.len() > 1 =>
        {
            Ok(())
        }
        Value::Placeholder(p) => Err(Refusal::unsupported(format!(
            "the parameter `{p}` (PostgreSQL uses $1, $2, …)"
        ))),
        _ => Ok(()),
    }
}

/// A whole row (`t`, `t.*`) used in an expression, when it holds a masked column.
fn masked_row_refusal(item: &FromItem, column: &str, clause: &str) -> Refusal {
    let row = item.refname.as_deref().unwrap_or("the row");
    Refusal::new(
        RefusalKind::Column,
        format!(
            "permission denied for the row {row}: it holds {}, which is masked by policy, and rows holding masked columns can only be selected as they are, not used in {clause}",
            qualified_label(item, column)
        ),
    )
    .with_hint("name the columns you need instead of the whole row")
}

fn operator_refusal(op: &str) -> Refusal {
    Refusal::new(
        RefusalKind::Function,
        format!("the operator {op} is not allowed"),
    )
    .with_hint("use PostgreSQL's built-in operators")
}

/// `o.tags[1]` reaches tablegate as the root `o` followed by `.tags` and `[1]`; the name's
/// later parts are the column's name, as PostgreSQL reads them (found by red-team review:
/// refused as field selection). A parenthesised root, `(o).tags`, stays field selection.
fn take_name_parts(root: &mut Box<Expr>, chain: &mut Vec<AccessExpr>) {
    if let Some((parts, names)) = leading_name(root, chain) {
        chain.drain(..names);
        **root = Expr::CompoundIdentifier(parts);
    }
}
