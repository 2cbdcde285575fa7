//! `explain`: the rewritten SQL for one user, and why it looks the way it does.
//!
//! A DBA asking "why does alice see only these rows?" needs the chain from the directory to the
//! SQL: the roles alice holds and the assignment lines that gave them, the variable values and
//! where each came from, the row filters and column rules of every table the query reads (each
//! with its policy line), whether the sources were fenced, and the SQL forwarded — or the
//! refusal. [`Explanation`] is that chain as data, built from the same [`Access`] and
//! [`Entitlements`](crate::policy::Entitlements) the proxy uses, so it cannot drift from what
//! the proxy does; its `Display` (in `render`) prints it for a terminal.

mod render;

use std::collections::BTreeSet;

use crate::catalog::{Catalog, RelationId};
use crate::directory::User;
use crate::names::QualifiedName;
use crate::policy::{
    Access, AppliedFilter, ColumnRule, HeldRole, PolicySet, Source, VarValue, VariableSource,
};
use crate::refusal::Refusal;
use crate::rewrite::{Context, SearchPath, parse, rewrite_traced};

#[derive(Clone, Debug)]
pub struct Explanation {
    pub user: String,
    pub datasource: String,
    /// Whether the policies declare the datasource at all.
    pub datasource_declared: bool,
    pub roles: Vec<RoleExplanation>,
    pub variables: Vec<VariableExplanation>,
    /// The granted tables the statement reads, in the order the rewrite met them (also when it
    /// was refused, up to the refusal).
    pub tables: Vec<TableExplanation>,
    pub outcome: Outcome,
}

#[derive(Clone, Debug)]
pub struct RoleExplanation {
    /// The role, how the user matched its assignment, and the assignment's line.
    pub held: HeldRole,
    /// Whether the role grants anything on this datasource.
    pub grants_here: bool,
}

#[derive(Clone, Debug)]
pub struct VariableExplanation {
    pub name: String,
    /// The value filters receive, or why there is none.
    pub value: Result<VarValue, String>,
    pub sources: Vec<VariableSource>,
}

#[derive(Clone, Debug)]
pub struct TableExplanation {
    pub name: QualifiedName,
    pub read: Read,
    pub filters: Vec<AppliedFilter>,
    /// Roles that grant the table without a row filter: the user sees every row.
    pub unfiltered_roles: Vec<String>,
    /// The columns some policy line hides or masks, in table order.
    pub columns: Vec<ColumnExplanation>,
}

/// How the statement reads a table.
#[derive(Clone, Debug)]
pub enum Read {
    /// As it is: no filter, every column plain.
    Whole,
    /// Through this protected source (SQL).
    Protected(String),
    /// Not at all: the table's policy cannot be applied for this user.
    Refused(Refusal),
}

#[derive(Clone, Debug)]
pub struct ColumnExplanation {
    pub column: String,
    pub shown: Shown,
    /// The policy lines that hide or mask it, per role (or for the whole datasource).
    pub rules: Vec<ColumnRule>,
}

/// What the user gets of a column some policy line hides or masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    /// Nothing: no role shows it.
    Hidden,
    /// Masked, on some or all rows.
    Masked,
    /// Plainly, on the rows of the roles that show it (NULL on other rows).
    ByOtherRoles,
}

#[derive(Clone, Debug)]
pub enum Outcome {
    Rewritten {
        sql: String,
        notices: Vec<String>,
        /// Row-filtered sources were fenced: some condition could fail on filtered-out rows,
        /// so the filters run first.
        fenced: bool,
    },
    Refused(Refusal),
}

/// Explains how `sql` is rewritten for `user` on `datasource`.
pub fn explain(
    policies: &PolicySet,
    catalog: &Catalog,
    user: &User,
    datasource: &str,
    search_path: &SearchPath,
    sql: &str,
) -> Explanation {
    let access = Access::build(policies, catalog, user, datasource);
    let entitlements = policies.entitlements(user);
    let roles = entitlements
        .roles
        .iter()
        .map(|held| RoleExplanation {
            held: held.clone(),
            grants_here: access.roles.iter().any(|r| r.role == held.role),
        })
        .collect();

    // The variables the user's filters on this datasource read, and those assigned to them.
    let mut names: BTreeSet<&str> = entitlements.assigned_variables().collect();
    for held in &access.roles {
        if let Some(grant) = policies
            .roles
            .get(&held.role)
            .and_then(|r| r.grants.get(datasource))
        {
            for (_, filter) in &grant.rows {
                names.extend(filter.value.variables().iter().map(String::as_str));
            }
        }
    }
    let variables = names
        .into_iter()
        .map(|name| VariableExplanation {
            name: name.to_owned(),
            value: entitlements.variable(user, name).map_err(|e| e.to_string()),
            sources: entitlements.variable_sources(user, name),
        })
        .collect();

    let context = Context {
        catalog,
        access: &access,
        search_path,
        risky_parameter_types: false,
    };
    let (result, trace) = match parse(sql) {
        Ok(statements) => rewrite_traced(statements, &context),
        Err(refusal) => (Err(refusal), Default::default()),
    };
    let outcome = match result {
        Ok(rewritten) => Outcome::Rewritten {
            sql: rewritten.sql(),
            notices: rewritten.notices,
            fenced: trace.fenced,
        },
        Err(refusal) => Outcome::Refused(refusal),
    };
    let tables = trace
        .relations
        .iter()
        .map(|&id| table(catalog, &access, id))
        .collect();
    Explanation {
        user: user.userid.clone(),
        datasource: datasource.to_owned(),
        datasource_declared: policies.datasources.contains_key(datasource),
        roles,
        variables,
        tables,
        outcome,
    }
}

fn table(catalog: &Catalog, access: &Access, id: RelationId) -> TableExplanation {
    let relation = catalog.relation(id);
    let table = access
        .table(id)
        .expect("the rewriter reads only granted relations");
    let read = match &table.source {
        Ok(Source::Whole) => Read::Whole,
        Ok(Source::Protected(query)) => Read::Protected(query.to_string()),
        Err(refusal) => Read::Refused(refusal.clone()),
    };
    let columns = relation
        .columns
        .iter()
        .enumerate()
        .filter_map(|(i, column)| {
            let rules: Vec<ColumnRule> = table
                .column_rules
                .iter()
                .filter(|r| r.column == column.name)
                .cloned()
                .collect();
            if rules.is_empty() {
                return None;
            }
            let shown = if !table.visible[i] {
                Shown::Hidden
            } else if table.masked[i] {
                Shown::Masked
            } else {
                Shown::ByOtherRoles
            };
            Some(ColumnExplanation {
                column: column.name.clone(),
                shown,
                rules,
            })
        })
        .collect();
    TableExplanation {
        name: relation.name.clone(),
        read,
        unfiltered_roles: table
            .roles
            .iter()
            .filter(|role| !table.filters.iter().any(|f| f.role == **role))
            .cloned()
            .collect(),
        filters: table.filters.clone(),
        columns,
    }
}

#[cfg(test)]
mod tests;
