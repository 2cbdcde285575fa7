//! `tablegate check`: the policy set validated against the live databases.
//!
//! Loading already rejects what is wrong in the files themselves. This adds what only the live
//! schema and the directory can tell: patterns that match nothing (usually a typo that would
//! silently grant or hide less than intended), filters reading columns a table lacks, variables
//! nobody has, and filters PostgreSQL cannot plan.

use std::collections::BTreeSet;

use super::access::denies;
use super::assignment::RESERVED_VARIABLES;
use super::origin::{Origin, PolicyError};
use super::set::{Grant, PolicySet};
use crate::catalog::{Catalog, RelationId, SYSTEM_SCHEMAS};
use crate::directory::User;
use crate::names::QualifiedName;

/// Findings: errors make `check` fail; warnings are reported only.
#[derive(Debug, Default)]
pub struct Findings {
    pub errors: Vec<PolicyError>,
    pub warnings: Vec<PolicyError>,
}

impl Findings {
    fn error(&mut self, origin: &Origin, message: String) {
        self.errors.push(PolicyError {
            origin: origin.clone(),
            message,
        });
    }
}

/// Where `check` sends a statement to be planned (EXPLAIN) on a datasource.
pub trait Planner {
    /// Plans `sql` upstream; the error is PostgreSQL's message.
    fn plan(&mut self, sql: &str) -> impl std::future::Future<Output = Result<(), String>>;
}

impl Planner for tokio_postgres::Client {
    async fn plan(&mut self, sql: &str) -> Result<(), String> {
        self.batch_execute(sql)
            .await
            .map_err(|e| match e.as_db_error() {
                Some(db) => db.message().to_owned(),
                None => e.to_string(),
            })
    }
}

/// Checks the grants on one datasource against its catalog.
pub async fn check_datasource(
    policies: &PolicySet,
    datasource: &str,
    catalog: &Catalog,
    users: &[User],
    planner: &mut impl Planner,
    findings: &mut Findings,
) {
    let known_variables: BTreeSet<&str> = RESERVED_VARIABLES
        .iter()
        .copied()
        .chain(
            policies
                .assignments
                .iter()
                .flat_map(|a| a.vars.keys().map(String::as_str)),
        )
        .chain(
            users
                .iter()
                .flat_map(|u| u.attributes.keys().map(String::as_str)),
        )
        .collect();
    let relations: Vec<(RelationId, &QualifiedName)> = catalog
        .relations()
        .filter(|(_, r)| !SYSTEM_SCHEMAS.contains(&r.name.schema.as_str()))
        .map(|(id, r)| (id, &r.name))
        .collect();

    if let Some(ds) = policies.datasources.get(datasource) {
        for pattern in &ds.deny_columns {
            let hits = relations.iter().any(|(id, name)| {
                catalog
                    .relation(*id)
                    .columns
                    .iter()
                    .any(|c| denies(&pattern.value, &name.schema, &name.name, &c.name))
            });
            if !hits {
                findings.warnings.push(PolicyError {
                    origin: pattern.origin.clone(),
                    message: format!(
                        "deny_columns `{}` matches no column of datasource `{datasource}`",
                        pattern.value
                    ),
                });
            }
        }
    }

    for role in policies.roles.values() {
        let Some(grant) = role.grants.get(datasource) else {
            continue;
        };
        let granted: Vec<(RelationId, &QualifiedName)> = relations
            .iter()
            .filter(|(_, n)| {
                grant
                    .tables
                    .iter()
                    .any(|p| p.value.matches(&[&n.schema, &n.name]))
            })
            .copied()
            .collect();
        for pattern in &grant.tables {
            if !relations
                .iter()
                .any(|(_, n)| pattern.value.matches(&[&n.schema, &n.name]))
            {
                findings.error(
                    &pattern.origin,
                    format!(
                        "tables `{}` of role `{}` matches no relation of datasource `{datasource}`",
                        pattern.value, role.name
                    ),
                );
            }
        }
        check_columns(grant, &role.name, catalog, &granted, findings);
        for (pattern, filter) in &grant.rows {
            let targets: Vec<_> = granted
                .iter()
                .filter(|(_, n)| pattern.value.matches(&[&n.schema, &n.name]))
                .collect();
            if targets.is_empty() {
                findings.error(
                    &pattern.origin,
                    format!(
                        "rows `{}` of role `{}` matches no table the role grants",
                        pattern.value, role.name
                    ),
                );
            }
            for variable in filter.value.variables() {
                if !known_variables.contains(variable.as_str()) {
                    findings.error(
                        &filter.origin,
                        format!(
                            "the filter reads user.{variable}, which no assignment sets and no directory user has as an attribute"
                        ),
                    );
                }
            }
            for (id, name) in targets {
                let relation = catalog.relation(*id);
                for column in filter.value.columns() {
                    let known = match column.as_slice() {
                        [c] => relation.column_index(c).is_some(),
                        [t, c] => *t == name.name && relation.column_index(c).is_some(),
                        _ => false,
                    };
                    if !known {
                        findings.error(
                            &filter.origin,
                            format!(
                                "the filter reads `{}`, which is not a column of {name}",
                                column.join(".")
                            ),
                        );
                    }
                }
                let probe = crate::sql::select(
                    vec![sqlparser::ast::SelectItem::UnnamedExpr(
                        sqlparser::ast::Expr::value(sqlparser::ast::Value::Number(
                            "1".into(),
                            false,
                        )),
                    )],
                    crate::sql::table(crate::sql::object_name(name), None),
                    Some(filter.value.bind_nulls()),
                );
                if let Err(message) = planner.plan(&format!("EXPLAIN {probe}")).await {
                    findings.error(
                        &filter.origin,
                        format!("PostgreSQL cannot plan the filter on {name}: {message}"),
                    );
                }
            }
        }
    }
}

fn check_columns(
    grant: &Grant,
    role: &str,
    catalog: &Catalog,
    granted: &[(RelationId, &QualifiedName)],
    findings: &mut Findings,
) {
    for (pattern, names) in &grant.columns {
        let tables: Vec<_> = granted
            .iter()
            .filter(|(_, n)| pattern.value.matches(&[&n.schema, &n.name]))
            .collect();
        if tables.is_empty() {
            findings.error(
                &pattern.origin,
                format!(
                    "columns `{}` of role `{role}` matches no table the role grants",
                    pattern.value
                ),
            );
        }
        for column in names {
            if !tables
                .iter()
                .any(|(id, _)| catalog.relation(*id).column_index(column).is_some())
                && !tables.is_empty()
            {
                findings.error(
                    &pattern.origin,
                    format!(
                        "columns `{}` lists `{column}`, which none of its tables has",
                        pattern.value
                    ),
                );
            }
        }
    }
    for pattern in &grant.deny_columns {
        let hits = granted.iter().any(|(id, name)| {
            catalog
                .relation(*id)
                .columns
                .iter()
                .any(|c| denies(&pattern.value, &name.schema, &name.name, &c.name))
        });
        if !hits {
            findings.error(
                &pattern.origin,
                format!(
                    "deny_columns `{}` of role `{role}` matches no column of a granted table",
                    pattern.value
                ),
            );
        }
    }
}
