//! Row filters: the boolean SQL expression a role applies to a table's rows.
//!
//! A DBA writes `region IN ({{user.regions}})`. The text is parsed once, when policies load, into
//! an expression template whose `{{…}}` placeholders are parameter nodes. Binding a user's values
//! replaces each placeholder with a typed literal node (a list expands an `IN (...)` list), so no
//! value is ever pasted into SQL text.
//!
//! A filter runs inside the user's query, where the user's CTEs and search_path are in scope. So
//! every table it reads must be schema-qualified, every function it calls either a known
//! built-in or schema-qualified, and so must every type it casts to and collation it names that
//! PostgreSQL's grammar does not build in: a name the user could redirect would let them choose
//! the filter.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DataType, Expr, InTarget, ObjectName, Query, SetExpr, TypedString, Value, ValueWithSpan, Visit,
    VisitMut, Visitor, VisitorMut,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Span;

use super::value::VarValue;
use crate::catalog::Relation;
use crate::names::fold;
use crate::rewrite::functions::is_safe_function;
use crate::rewrite::operand_traits::element_type;

#[derive(Clone, Debug)]
pub struct RowFilter {
    /// The expression as written in the policy file.
    pub text: String,
    template: Expr,
    /// Variable names (without `user.`), by placeholder number minus one.
    variables: Vec<String>,
}

/// Why a filter could not be bound for a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BindError {
    /// The user has no value for this variable.
    Missing(String),
    /// A list variable used outside `IN (...)`.
    ListOutsideIn(String),
    /// The variable's value could not be settled (e.g. two assignments disagree).
    Unresolved { variable: String, reason: String },
}

impl std::fmt::Display for BindError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindError::Missing(name) => write!(
                f,
                "no value: no assignment sets `{name}` and the user's directory entry has no such attribute"
            ),
            BindError::ListOutsideIn(name) => {
                write!(f, "the list `{name}` is used outside IN (...)")
            }
            BindError::Unresolved { reason, .. } => f.write_str(reason),
        }
    }
}

impl RowFilter {
    pub fn parse(text: &str) -> Result<RowFilter, String> {
        let (sql, variables) = replace_placeholders(text)?;
        let mut parser = Parser::new(&PostgreSqlDialect {})
            .try_with_sql(&sql)
            .map_err(|e| format!("the row filter does not parse: {e}"))?;
        let mut template = parser
            .parse_expr()
            .map_err(|e| format!("the row filter does not parse: {e}"))?;
        if parser.peek_token().token != sqlparser::tokenizer::Token::EOF {
            return Err(format!(
                "the row filter must be one expression; unexpected `{}` after it",
                parser.peek_token().token
            ));
        }
        let mut counter = PlaceholderCounter {
            seen: vec![0; variables.len()],
            foreign: false,
        };
        let _ = template.visit(&mut counter);
        if counter.foreign || counter.seen.iter().any(|&n| n != 1) {
            return Err(
                "write {{user.x}} placeholders as whole values outside quotes (tablegate inserts a typed literal), and no $n parameters".into(),
            );
        }
        if let ControlFlow::Break(reason) = template.visit(&mut UnredirectableNames) {
            return Err(reason);
        }
        // Spans point into the policy file; the rewrite cache matches literals by span, so none
        // of a policy's literals may carry one.
        let _ = VisitMut::visit(&mut template, &mut SpanEraser);
        Ok(RowFilter {
            text: text.to_owned(),
            template,
            variables,
        })
    }

    /// The variables this filter reads, as named after `user.`.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// Column names the filter reads from its own table (outside any subquery it contains).
    pub fn columns(&self) -> Vec<Vec<String>> {
        let mut collector = ColumnCollector::default();
        let _ = self.template.visit(&mut collector);
        collector.columns
    }

    /// The columns the filter reads that `relation` does not have: a bare name, or one
    /// qualified by the relation's own name.
    pub fn unknown_columns<'a>(
        &self,
        relation: &'a Relation,
    ) -> impl Iterator<Item = Vec<String>> + 'a {
        self.columns()
            .into_iter()
            .filter(move |column| match column.as_slice() {
                [c] => relation.column_index(c).is_none(),
                [t, c] => *t != relation.name.name || relation.column_index(c).is_none(),
                _ => true,
            })
    }

    /// The filter with NULL for every variable: for type-checking it without a user.
    pub fn bind_nulls(&self) -> Expr {
        let mut expr = self.template.clone();
        let _ = VisitMut::visit(&mut expr, &mut NullBinder);
        expr
    }

    /// The filter with the user's values in place of its placeholders.
    pub fn bind(
        &self,
        mut value_of: impl FnMut(&str) -> Result<VarValue, BindError>,
    ) -> Result<Expr, BindError> {
        let values = self
            .variables
            .iter()
            .map(|name| value_of(name))
            .collect::<Result<Vec<_>, _>>()?;
        let mut binder = Binder {
            variables: &self.variables,
            values: &values,
            error: None,
        };
        let mut expr = self.template.clone();
        let _ = VisitMut::visit(&mut expr, &mut binder);
        match binder.error {
            Some(e) => Err(e),
            None => Ok(expr),
        }
    }
}

/// `{{ user.name }}` becomes `$1`, `$2`, … in order of appearance.
fn replace_placeholders(text: &str) -> Result<(String, Vec<String>), String> {
    let mut sql = String::with_capacity(text.len());
    let mut variables = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        sql.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "a `{{` placeholder is not closed with `}}`".to_string())?;
        let inner = after[..end].trim();
        let name = inner.strip_prefix("user.").ok_or_else(|| {
            format!("placeholder `{{{{{inner}}}}}` should name a user variable, e.g. {{{{user.region}}}}")
        })?;
        if name.is_empty() || name.contains(['{', '}']) {
            return Err(format!(
                "placeholder `{{{{{inner}}}}}` has no variable name"
            ));
        }
        variables.push(name.to_owned());
        sql.push_str(&format!(" ${} ", variables.len()));
        rest = &after[end + 2..];
    }
    if rest.contains("}}") {
        return Err("a `}}` has no matching `{{`".into());
    }
    sql.push_str(rest);
    Ok((sql, variables))
}

fn placeholder_index(value: &Value) -> Option<usize> {
    match value {
        Value::Placeholder(p) => p.strip_prefix('$')?.parse::<usize>().ok()?.checked_sub(1),
        _ => None,
    }
}

struct PlaceholderCounter {
    seen: Vec<usize>,
    foreign: bool,
}

impl Visitor for PlaceholderCounter {
    type Break = ();
    fn pre_visit_value(&mut self, value: &ValueWithSpan) -> ControlFlow<()> {
        if let Value::Placeholder(_) = value.value {
            match placeholder_index(&value.value).and_then(|i| self.seen.get_mut(i)) {
                Some(n) => *n += 1,
                None => self.foreign = true,
            }
        }
        ControlFlow::Continue(())
    }
}

/// Refuses names in a filter that the user's query could make mean something else.
struct UnredirectableNames;

impl Visitor for UnredirectableNames {
    type Break = String;
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if query.with.is_some() {
            return ControlFlow::Break(
                "a row filter may not hold a WITH clause (its names would mix with the user's CTEs); write a subquery instead".into(),
            );
        }
        // `TABLE x` names a relation the visitor does not see as one (found in review).
        if holds_table_command(&query.body) {
            return ControlFlow::Break(
                "a row filter may not use TABLE x; write SELECT * FROM schema.x instead".into(),
            );
        }
        ControlFlow::Continue(())
    }
    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<String> {
        match relation.0.len() {
            1 => ControlFlow::Break(format!(
                "qualify the table `{relation}` in the row filter with its schema (e.g. public.{relation}): an unqualified name would follow the user's CTEs and search_path"
            )),
            _ => ControlFlow::Continue(()),
        }
    }
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<String> {
        if let Expr::Function(function) = expr
            && let [name] = function.name.0.as_slice()
            && !name
                .as_ident()
                .is_some_and(|id| is_safe_function(&fold(id)))
        {
            return ControlFlow::Break(format!(
                "qualify the function `{name}` in the row filter with its schema (e.g. pg_catalog.{name} or public.{name}): only known built-ins may be unqualified, as other names follow the user's search_path"
            ));
        }
        let data_type = match expr {
            Expr::Cast { data_type, .. } | Expr::TypedString(TypedString { data_type, .. }) => {
                Some(data_type)
            }
            _ => None,
        };
        if let Some(name) = data_type.and_then(unqualified_named_type) {
            return ControlFlow::Break(format!(
                "qualify the type `{name}` in the row filter with its schema (e.g. pg_catalog.{name} or public.{name}): a type name outside SQL's own follows the user's search_path"
            ));
        }
        if let Expr::Collate { collation, .. } = expr
            && let [name] = collation.0.as_slice()
            && !name
                .as_ident()
                .is_some_and(|id| BUILT_IN_COLLATIONS.contains(&fold(id).as_str()))
        {
            return ControlFlow::Break(format!(
                "qualify the collation {name} in the row filter with its schema (e.g. pg_catalog.{name}): only C, POSIX, default and ucs_basic may be unqualified"
            ));
        }
        ControlFlow::Continue(())
    }
}

/// Collations every PostgreSQL has; other names resolve through the search_path.
const BUILT_IN_COLLATIONS: [&str; 4] = ["C", "POSIX", "default", "ucs_basic"];

/// A type written as a bare name (sqlparser's `Custom`), which PostgreSQL looks up along the
/// search_path; the types SQL's grammar spells out (integer, text, date …) are pg_catalog's.
fn unqualified_named_type(data_type: &DataType) -> Option<&ObjectName> {
    match element_type(data_type) {
        DataType::Custom(name, _) if name.0.len() == 1 => Some(name),
        _ => None,
    }
}

fn holds_table_command(body: &SetExpr) -> bool {
    match body {
        SetExpr::Table(_) => true,
        SetExpr::SetOperation { left, right, .. } => {
            holds_table_command(left) || holds_table_command(right)
        }
        _ => false,
    }
}

struct SpanEraser;

impl VisitorMut for SpanEraser {
    type Break = ();
    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> ControlFlow<()> {
        value.span = Span::empty();
        ControlFlow::Continue(())
    }
}

#[derive(Default)]
struct ColumnCollector {
    depth: usize,
    columns: Vec<Vec<String>>,
}

impl Visitor for ColumnCollector {
    type Break = ();
    fn pre_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }
    fn post_visit_query(&mut self, _: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }
    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if self.depth == 0 {
            match expr {
                Expr::Identifier(id) => self.columns.push(vec![fold(id)]),
                Expr::CompoundIdentifier(ids) => self.columns.push(ids.iter().map(fold).collect()),
                _ => {}
            }
        }
        ControlFlow::Continue(())
    }
}

struct NullBinder;

impl VisitorMut for NullBinder {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(v) = expr
            && placeholder_index(&v.value).is_some()
        {
            *expr = Expr::value(Value::Null);
        }
        ControlFlow::Continue(())
    }
}

struct Binder<'a> {
    variables: &'a [String],
    values: &'a [VarValue],
    error: Option<BindError>,
}

impl Binder<'_> {
    fn scalar(&mut self, index: usize) -> Expr {
        match &self.values[index] {
            VarValue::Scalar(s) => s.to_expr(),
            VarValue::List(_) => {
                self.error = Some(BindError::ListOutsideIn(self.variables[index].clone()));
                Expr::value(Value::Null)
            }
        }
    }
}

impl VisitorMut for Binder<'_> {
    type Break = ();
    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match expr {
            Expr::In {
                target: InTarget::List(list),
                negated,
                ..
            } => {
                let mut expanded = Vec::with_capacity(list.len());
                for item in list.drain(..) {
                    match &item {
                        Expr::Value(v) => match placeholder_index(&v.value) {
                            Some(i) => match &self.values[i] {
                                VarValue::List(items) => {
                                    expanded.extend(items.iter().map(|s| s.to_expr()))
                                }
                                VarValue::Scalar(s) => expanded.push(s.to_expr()),
                            },
                            None => expanded.push(item),
                        },
                        _ => expanded.push(item),
                    }
                }
                if expanded.is_empty() {
                    // `x IN ()` is not SQL; an empty list admits no row (and NOT IN, every row).
                    *expr = Expr::value(Value::Boolean(*negated));
                } else {
                    *list = expanded;
                }
            }
            Expr::Value(v) => {
                if let Some(i) = placeholder_index(&v.value) {
                    *expr = self.scalar(i);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::value::Scalar;

    fn values(name: &str) -> Result<VarValue, BindError> {
        match name {
            "regions" => Ok(VarValue::List(vec![
                Scalar::Text("East".into()),
                Scalar::Text("x' OR '1'='1".into()),
            ])),
            "none" => Ok(VarValue::List(vec![])),
            "employee_id" => Ok(VarValue::Scalar(Scalar::Integer(42))),
            other => Err(BindError::Missing(other.into())),
        }
    }

    #[test]
    fn lists_expand_in_lists_and_hostile_text_stays_a_literal() {
        let f = RowFilter::parse("region IN ({{user.regions}})").unwrap();
        assert_eq!(f.variables(), ["regions"]);
        let e = f.bind(values).unwrap();
        assert_eq!(e.to_string(), r"region IN ('East', E'x\' OR \'1\'=\'1')");
    }

    #[test]
    fn an_empty_list_admits_no_row() {
        let f = RowFilter::parse("region IN ({{user.none}}) OR {{user.employee_id}} = id").unwrap();
        assert_eq!(f.bind(values).unwrap().to_string(), "false OR 42 = id");
        let f = RowFilter::parse("region NOT IN ({{ user.none }})").unwrap();
        assert_eq!(f.bind(values).unwrap().to_string(), "true");
    }

    #[test]
    fn missing_and_misused_variables_are_reported() {
        let f = RowFilter::parse("a = {{user.nope}}").unwrap();
        assert_eq!(f.bind(values), Err(BindError::Missing("nope".into())));
        let f = RowFilter::parse("a = {{user.regions}}").unwrap();
        assert_eq!(
            f.bind(values),
            Err(BindError::ListOutsideIn("regions".into()))
        );
    }

    #[test]
    fn placeholders_inside_quotes_or_foreign_parameters_are_rejected() {
        assert!(RowFilter::parse("a = '{{user.x}}'").is_err());
        assert!(RowFilter::parse("a = $1").is_err());
        assert!(RowFilter::parse("a = {{x}}").is_err());
        assert!(RowFilter::parse("a = 1; DROP TABLE t").is_err());
        assert!(RowFilter::parse("a = {{user.x}").is_err());
    }

    #[test]
    fn names_the_users_query_could_redirect_are_rejected() {
        for (filter, complaint) in [
            (
                "r IN (SELECT region FROM members)",
                "qualify the table `members`",
            ),
            (
                "EXISTS (SELECT 1 FROM \"Members\" m)",
                "qualify the table `\"Members\"`",
            ),
            (
                "r IN (WITH m AS (SELECT 1) SELECT * FROM public.m)",
                "WITH clause",
            ),
            (
                "owner_of(id) = {{user.x}}",
                "qualify the function `owner_of`",
            ),
            ("r IN (TABLE members)", "TABLE x"),
            ("r IN (SELECT 1 UNION TABLE public.members)", "TABLE x"),
            (
                "r = {{user.x}}::region_code",
                "qualify the type `region_code`",
            ),
            ("r = CAST({{user.x}} AS region_code[])", "qualify the type"),
            ("r = region_code 'east'", "qualify the type"),
            ("r COLLATE \"de_DE\" = {{user.x}}", "qualify the collation"),
        ] {
            let error = RowFilter::parse(filter).unwrap_err();
            assert!(error.contains(complaint), "{filter}: {error}");
        }
        for filter in [
            "r IN (SELECT m.region FROM public.members m WHERE m.userid = {{user.x}})",
            "public.owner_of(id) = {{user.x}} AND lower(name) = 'a' AND coalesce(a, 1) = 1",
            "r = {{user.x}}::public.region_code AND d > date '2020-01-01' AND n::integer[] = '{1}'",
            "r COLLATE \"C\" = {{user.x}} AND r COLLATE pg_catalog.\"de_DE\" = 'a'",
        ] {
            assert!(RowFilter::parse(filter).is_ok(), "{filter}");
        }
    }

    #[test]
    fn columns_outside_subqueries_are_collected() {
        let f =
            RowFilter::parse("t.a = 1 AND b IN (SELECT c FROM public.other WHERE d = {{user.x}})")
                .unwrap();
        assert_eq!(
            f.columns(),
            vec![vec!["t".to_string(), "a".into()], vec!["b".into()]]
        );
    }
}
