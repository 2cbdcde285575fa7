//! Access: what one user may see on one datasource, resolved against one catalog snapshot.
//!
//! For every relation the user's roles grant, this fixes the visible columns and builds the
//! *protected source*: `SELECT <visible columns> FROM "schema"."table" WHERE <row filters>` with
//! the user's values bound as literals. The rewriter replaces each occurrence of the relation by
//! that source. With several roles a row is visible if any role admits it, and a column's value
//! only on rows admitted by a role that grants the column (NULL elsewhere).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;

use sqlparser::ast::{Expr, Query, SelectItem};

use super::assignment::{Entitlements, HeldRole};
use super::filter::BindError;
use super::set::{Grant, PolicySet};
use crate::catalog::{Catalog, RelationId, SYSTEM_SCHEMAS};
use crate::directory::User;
use crate::names::quoted;
use crate::refusal::{Refusal, RefusalKind};
use crate::sql;

static NEXT_ACCESS_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// How a granted relation is read.
#[derive(Clone, Debug)]
pub enum Source {
    /// Every row and column is visible: the relation is referenced as it is.
    Whole,
    /// A derived table that filters rows and projects only visible columns.
    Protected(Box<Query>),
}

/// One role's row filter on a relation, as applied (for `explain`).
#[derive(Clone, Debug)]
pub struct AppliedFilter {
    pub role: String,
    pub text: String,
    pub bound: String,
}

#[derive(Clone, Debug)]
pub struct TableAccess {
    /// Per catalog column: may the user see it?
    pub visible: Vec<bool>,
    /// The source to read, or why the relation cannot be read (a missing variable, a broken filter).
    pub source: Result<Source, Refusal>,
    pub filters: Vec<AppliedFilter>,
}

#[derive(Debug)]
pub struct Access {
    pub datasource: String,
    pub userid: String,
    /// Roles that grant anything on this datasource.
    pub roles: Vec<HeldRole>,
    tables: HashMap<RelationId, TableAccess>,
    functions: HashSet<String>,
    /// Identifies what this access contains: equal keys, equal access (same policy and catalog).
    key: String,
    /// Unique per instance: the rewrite cache keys entries on it.
    id: u64,
}

impl Access {
    pub fn build(policies: &PolicySet, catalog: &Catalog, user: &User, datasource: &str) -> Access {
        let entitlements = policies.entitlements(user);
        let grants: Vec<(&HeldRole, &Grant)> = entitlements
            .roles
            .iter()
            .filter_map(|held| {
                let grant = policies.roles.get(&held.role)?.grants.get(datasource)?;
                Some((held, grant))
            })
            .collect();
        let datasource_policy = policies.datasources.get(datasource);

        let mut functions: HashSet<String> = datasource_policy
            .into_iter()
            .flat_map(|d| d.functions.iter().map(|f| f.value.clone()))
            .collect();
        functions.extend(
            grants
                .iter()
                .flat_map(|(_, g)| g.functions.iter().map(|f| f.value.clone())),
        );

        let mut key = format!("{datasource}\n{}\n", catalog.generation());
        for (held, _) in &grants {
            let _ = writeln!(key, "role {}", held.role);
        }
        let mut variables = BTreeSet::new();
        for (_, grant) in &grants {
            for (_, filter) in &grant.rows {
                variables.extend(filter.value.variables().iter().cloned());
            }
        }
        for name in &variables {
            let _ = writeln!(key, "var {name} = {:?}", entitlements.variable(user, name));
        }

        let mut tables = HashMap::new();
        if datasource_policy.is_some() {
            for (id, relation) in catalog.relations() {
                if SYSTEM_SCHEMAS.contains(&relation.name.schema.as_str()) {
                    continue;
                }
                let granting: Vec<_> = grants
                    .iter()
                    .filter(|(_, g)| {
                        g.tables.iter().any(|p| {
                            p.value
                                .matches(&[&relation.name.schema, &relation.name.name])
                        })
                    })
                    .collect();
                if granting.is_empty() {
                    continue;
                }
                let builder = TableBuilder {
                    catalog,
                    relation: id,
                    user,
                    entitlements: &entitlements,
                    datasource_deny: datasource_policy
                        .map(|d| d.deny_columns.as_slice())
                        .unwrap_or_default(),
                };
                tables.insert(id, builder.build(&granting));
            }
        }
        let mut functions_list: Vec<_> = functions.iter().cloned().collect();
        functions_list.sort();
        let _ = writeln!(key, "functions {functions_list:?}");

        Access {
            datasource: datasource.to_owned(),
            userid: user.userid.clone(),
            roles: grants.iter().map(|(h, _)| (*h).clone()).collect(),
            tables,
            functions,
            key,
            id: NEXT_ACCESS_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// This instance's identity (never reused within the process).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The user's access to a relation; `None` means no grant: the relation does not exist for them.
    pub fn table(&self, relation: RelationId) -> Option<&TableAccess> {
        self.tables.get(&relation)
    }

    /// Whether a policy allows this function (named as [`function_key`] folds it).
    pub fn allows_function(&self, key: &str) -> bool {
        self.functions.contains(key)
    }

    /// Whether the user may read anything at all on this datasource.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn granted_tables(&self) -> impl Iterator<Item = (RelationId, &TableAccess)> {
        self.tables.iter().map(|(id, t)| (*id, t))
    }
}

struct TableBuilder<'a> {
    catalog: &'a Catalog,
    relation: RelationId,
    user: &'a User,
    entitlements: &'a Entitlements,
    datasource_deny: &'a [super::set::Located<crate::names::NamePattern>],
}

/// One role's view of the relation: its filter (None: all rows) and its visible columns.
struct RoleView {
    filter: Option<Expr>,
    columns: Vec<bool>,
}

impl TableBuilder<'_> {
    fn build(&self, granting: &[&(&HeldRole, &Grant)]) -> TableAccess {
        let relation = self.catalog.relation(self.relation);
        let mut filters = Vec::new();
        let mut views = Vec::with_capacity(granting.len());
        let mut failure = None;
        for (held, grant) in granting {
            match self.role_view(held, grant, &mut filters) {
                Ok(view) => views.push(view),
                Err(refusal) => {
                    failure.get_or_insert(refusal);
                }
            }
        }
        let visible: Vec<bool> = (0..relation.columns.len())
            .map(|i| views.iter().any(|v| v.columns[i]))
            .collect();
        let source = match failure {
            Some(refusal) => Err(refusal),
            None => Ok(self.source(&views, &visible)),
        };
        TableAccess {
            visible,
            source,
            filters,
        }
    }

    fn role_view(
        &self,
        held: &HeldRole,
        grant: &Grant,
        applied: &mut Vec<AppliedFilter>,
    ) -> Result<RoleView, Refusal> {
        let relation = self.catalog.relation(self.relation);
        let (schema, table) = (relation.name.schema.as_str(), relation.name.name.as_str());
        let mut bound = Vec::new();
        for (pattern, filter) in &grant.rows {
            if !pattern.value.matches(&[schema, table]) {
                continue;
            }
            for column in filter.value.columns() {
                let known = match column.as_slice() {
                    [c] => relation.column_index(c).is_some(),
                    [t, c] => t == table && relation.column_index(c).is_some(),
                    _ => false,
                };
                if !known {
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
            });
            bound.push(expr);
        }
        let allow_lists: Vec<&Vec<String>> = grant
            .columns
            .iter()
            .filter(|(p, _)| p.value.matches(&[schema, table]))
            .map(|(_, names)| names)
            .collect();
        let columns = relation
            .columns
            .iter()
            .map(|c| {
                let allowed =
                    allow_lists.is_empty() || allow_lists.iter().any(|l| l.contains(&c.name));
                let denied = grant
                    .deny_columns
                    .iter()
                    .chain(self.datasource_deny)
                    .any(|p| denies(&p.value, schema, table, &c.name));
                allowed && !denied
            })
            .collect();
        Ok(RoleView {
            filter: (!bound.is_empty()).then(|| sql::all_of(bound)),
            columns,
        })
    }

    fn source(&self, views: &[RoleView], visible: &[bool]) -> Source {
        let relation = self.catalog.relation(self.relation);
        let unfiltered = views.iter().any(|v| v.filter.is_none());
        if unfiltered
            && visible.iter().all(|&v| v)
            && views.iter().all(|v| v.columns.iter().all(|&c| c))
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
                let value = Expr::Identifier(quoted(&column.name));
                let granting: Vec<&RoleView> = views.iter().filter(|v| v.columns[i]).collect();
                // The value shows on rows some granting role admits; when those are all the rows
                // the WHERE clause lets through, no CASE is needed.
                if granting.iter().any(|v| v.filter.is_none()) || granting.len() == views.len() {
                    SelectItem::UnnamedExpr(value)
                } else {
                    let admitted =
                        sql::any_of(granting.iter().filter_map(|v| v.filter.clone()).collect());
                    SelectItem::ExprWithAlias {
                        expr: sql::case_when(admitted, value),
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

/// Whether a deny pattern (`table.column` or `schema.table.column`) covers a column.
pub(super) fn denies(
    pattern: &crate::names::NamePattern,
    schema: &str,
    table: &str,
    column: &str,
) -> bool {
    match pattern.len() {
        3 => pattern.matches(&[schema, table, column]),
        _ => pattern.matches(&[table, column]),
    }
}

fn bind_refusal(
    error: BindError,
    role: &str,
    table: &str,
    origin: &super::origin::Origin,
) -> Refusal {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog_of_tables;
    use crate::directory::users_file;

    fn alice() -> User {
        users_file::parse(
            "[[user]]\nuserid=\"alice\"\ndepartments=[\"Sales\"]\nattributes={ region = \"East\" }\n",
            "u",
        )
        .unwrap()
        .remove(0)
    }

    fn access(policy: &str) -> (Catalog, Access) {
        let catalog = catalog_of_tables(&[
            ("public", "orders", &["id", "region", "amount", "note"]),
            ("public", "customers", &["id", "name", "phone"]),
            ("sales", "targets", &["region", "target"]),
        ]);
        let policies = PolicySet::from_str("p.toml", policy).unwrap();
        let access = Access::build(&policies, &catalog, &alice(), "d");
        (catalog, access)
    }

    fn source_sql(catalog: &Catalog, access: &Access, schema: &str, table: &str) -> String {
        let id = catalog
            .lookup(&crate::names::QualifiedName::new(schema, table))
            .unwrap();
        match access.table(id).expect("granted").source.as_ref().unwrap() {
            Source::Whole => "WHOLE".into(),
            Source::Protected(q) => q.to_string(),
        }
    }

    #[test]
    fn one_role_filters_rows_and_hides_denied_columns() {
        let (catalog, access) = access(
            "[datasource.d]\ndeny_columns=[\"*.phone\"]\n\
             [role.rep.datasource.d]\ntables=[\"public.*\"]\nrows.\"public.orders\"=\"region = {{user.region}}\"\n\
             [[assign]]\ndepartment=\"Sales\"\nroles=[\"rep\"]\n",
        );
        assert_eq!(
            source_sql(&catalog, &access, "public", "orders"),
            "SELECT \"id\", \"region\", \"amount\", \"note\" FROM \"public\".\"orders\" WHERE (region = 'East')"
        );
        assert_eq!(
            source_sql(&catalog, &access, "public", "customers"),
            "SELECT \"id\", \"name\" FROM \"public\".\"customers\""
        );
        let targets = catalog
            .lookup(&crate::names::QualifiedName::new("sales", "targets"))
            .unwrap();
        assert!(access.table(targets).is_none(), "no grant, no access");
    }

    #[test]
    fn several_roles_union_rows_and_mask_columns_per_role() {
        let (catalog, access) = access(
            "[datasource.d]\n\
             [role.a.datasource.d]\ntables=[\"public.orders\"]\ncolumns.\"public.orders\"=[\"id\",\"region\"]\nrows.\"public.orders\"=\"region = 'East'\"\n\
             [role.b.datasource.d]\ntables=[\"public.orders\"]\ndeny_columns=[\"orders.note\"]\nrows.\"public.orders\"=\"amount < 10\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"a\",\"b\"]\n",
        );
        assert_eq!(
            source_sql(&catalog, &access, "public", "orders"),
            "SELECT \"id\", \"region\", CASE WHEN (amount < 10) THEN \"amount\" END AS \"amount\" \
             FROM \"public\".\"orders\" WHERE (region = 'East') OR (amount < 10)"
        );
    }

    #[test]
    fn unfiltered_full_grants_read_the_table_directly() {
        let (catalog, access) = access(
            "[datasource.d]\n[role.m.datasource.d]\ntables=[\"public.orders\"]\n[[assign]]\nuser=\"alice\"\nroles=[\"m\"]\n",
        );
        assert_eq!(source_sql(&catalog, &access, "public", "orders"), "WHOLE");
    }

    #[test]
    fn a_missing_variable_or_unknown_filter_column_refuses_the_table() {
        let (catalog, access) = access(
            "[datasource.d]\n[role.r.datasource.d]\ntables=[\"public.*\"]\n\
             rows.\"public.orders\"=\"region = {{user.nope}}\"\nrows.\"public.customers\"=\"regio = 'x'\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"r\"]\n",
        );
        let orders = catalog
            .lookup(&crate::names::QualifiedName::new("public", "orders"))
            .unwrap();
        let err = access.table(orders).unwrap().source.as_ref().unwrap_err();
        assert!(err.message.contains("user.nope"), "{err}");
        let customers = catalog
            .lookup(&crate::names::QualifiedName::new("public", "customers"))
            .unwrap();
        let err = access
            .table(customers)
            .unwrap()
            .source
            .as_ref()
            .unwrap_err();
        assert!(err.message.contains("`regio`"), "{err}");
    }
}
