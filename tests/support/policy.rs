//! Generated policies: a row filter per table and role, denied columns for some tables, the
//! policy file tablegate reads, and the "permitted copy" of the data that defines what a query
//! through tablegate must return.
//!
//! A filter is generated once and written twice: as policy text (with `{{user.x}}` variables)
//! and as plain SQL with the user's values, which builds the copy. Both come from the same
//! values, so the copy is what the policy means, computed without tablegate.

use super::corpus::Table;
use super::data::TableData;
use super::rng::Rng;
use super::sql::{ident, literal, qualified};

const SEED: u64 = 0x706f_6c69_6379; // "policy"

/// One role's row filter on one table.
#[derive(Clone, Debug)]
pub struct Filter {
    /// As the policy file writes it.
    pub policy: String,
    /// With the user's values in place: what the copy applies.
    pub sql: String,
    /// The `{{user.name}}` variable it reads and the value as TOML text.
    pub var: Option<(String, String)>,
}

/// What one role grants on one table.
#[derive(Clone, Debug)]
pub struct RoleView {
    pub filter: Filter,
    pub denied: Vec<String>,
}

/// A table and what each of the user's roles grants on it (in role order).
pub struct TableGrant {
    pub table: Table,
    pub views: Vec<RoleView>,
}

/// A user, their roles, and the grants: everything needed for the policy file and the copy.
pub struct Scenario {
    pub user: String,
    pub roles: Vec<String>,
    pub schemas: Vec<String>,
    pub grants: Vec<TableGrant>,
    /// The copy of schema `s` is `<copy_prefix>s`.
    pub copy_prefix: String,
}

impl Scenario {
    /// One role; every table filtered, some with one or two denied columns.
    pub fn single_role(data: &[TableData], schemas: &[String]) -> Scenario {
        Scenario::one_role(data, schemas, true)
    }

    /// One role that filters rows and hides no column: every query PostgreSQL accepts should
    /// then be accepted, so each refusal is a gap in the rewriter.
    pub fn rows_only(data: &[TableData], schemas: &[String]) -> Scenario {
        Scenario {
            user: "row_reader".into(),
            roles: vec!["row_filter".into()],
            copy_prefix: "copy0_".into(),
            ..Scenario::one_role(data, schemas, false)
        }
    }

    fn one_role(data: &[TableData], schemas: &[String], deny: bool) -> Scenario {
        let mut vars = if deny { 0 } else { 2000 };
        let grants = data
            .iter()
            .filter(|d| schemas.contains(&d.table.schema))
            .map(|d| {
                let mut rng = Rng::for_name(SEED, &format!("{}.{}", d.table.schema, d.table.name));
                let filter = filter_for(d, &mut rng, &mut vars);
                let denied = if rng.chance(45) && deny {
                    let count = 1 + rng.below(2);
                    pick_columns(&d.table, &mut rng, count)
                } else {
                    Vec::new()
                };
                TableGrant {
                    table: d.table.clone(),
                    views: vec![RoleView { filter, denied }],
                }
            })
            .collect();
        Scenario {
            user: "analyst".into(),
            roles: vec!["spider_reader".into()],
            schemas: schemas.to_vec(),
            grants,
            copy_prefix: "copy_".into(),
        }
    }

    /// Two roles with different filters. Per table, one column is granted by role A only
    /// (B denies it) and, on some tables, one by B only and one by neither; a row only B admits
    /// then shows NULL in A's column.
    pub fn two_roles(data: &[TableData], schemas: &[String]) -> Scenario {
        let mut vars = 1000;
        let grants = data
            .iter()
            .filter(|d| schemas.contains(&d.table.schema))
            .map(|d| {
                let mut rng =
                    Rng::for_name(SEED ^ 2, &format!("{}.{}", d.table.schema, d.table.name));
                let filter_a = filter_for(d, &mut rng, &mut vars);
                let filter_b = filter_for(d, &mut rng, &mut vars);
                let columns = pick_columns(&d.table, &mut rng, 3);
                let (mut denied_a, mut denied_b) = (Vec::new(), Vec::new());
                if let Some(only_a) = columns.first() {
                    denied_b.push(only_a.clone());
                }
                if rng.chance(50)
                    && let Some(only_b) = columns.get(1)
                {
                    denied_a.push(only_b.clone());
                }
                if rng.chance(30)
                    && let Some(neither) = columns.get(2)
                {
                    denied_a.push(neither.clone());
                    denied_b.push(neither.clone());
                }
                TableGrant {
                    table: d.table.clone(),
                    views: vec![
                        RoleView {
                            filter: filter_a,
                            denied: denied_a,
                        },
                        RoleView {
                            filter: filter_b,
                            denied: denied_b,
                        },
                    ],
                }
            })
            .collect();
        Scenario {
            user: "two_roles".into(),
            roles: vec!["role_a".into(), "role_b".into()],
            schemas: schemas.to_vec(),
            grants,
            copy_prefix: "copy2_".into(),
        }
    }

    pub fn copy_schema(&self, schema: &str) -> String {
        format!("{}{schema}", self.copy_prefix)
    }

    /// This scenario's roles and assignment, for a policy file declaring `[datasource.spider]`.
    pub fn policy_toml(&self) -> String {
        let mut out = String::new();
        for (r, role) in self.roles.iter().enumerate() {
            out.push_str(&format!("\n[role.{role}.datasource.spider]\n"));
            let tables: Vec<String> = self
                .schemas
                .iter()
                .map(|s| toml_literal(&format!("{}.*", ident(s))))
                .collect();
            out.push_str(&format!("tables = [{}]\n", tables.join(", ")));
            let denied: Vec<String> = self
                .grants
                .iter()
                .flat_map(|g| {
                    g.views[r].denied.iter().map(|c| {
                        toml_literal(&format!(
                            "{}.{}",
                            qualified(&g.table.schema, &g.table.name),
                            ident(c)
                        ))
                    })
                })
                .collect();
            out.push_str(&format!("deny_columns = [{}]\n", denied.join(", ")));
            for g in &self.grants {
                out.push_str(&format!(
                    "rows.{} = {}\n",
                    toml_literal(&qualified(&g.table.schema, &g.table.name)),
                    toml_basic(&g.views[r].filter.policy)
                ));
            }
        }
        out.push_str(&format!(
            "\n[[assign]]\nuser = {}\nroles = [{}]\n[assign.vars]\n",
            toml_basic(&self.user),
            self.roles
                .iter()
                .map(|r| toml_basic(r))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        for g in &self.grants {
            for v in &g.views {
                if let Some((name, value)) = &v.filter.var {
                    out.push_str(&format!("{name} = {value}\n"));
                }
            }
        }
        out
    }

    /// DDL for the copy: per table, the permitted rows and columns, as the contract defines
    /// them (a column granted by only some roles shows only on rows those roles admit). Primary
    /// keys are kept (they are never denied), as a real copy would keep them: PostgreSQL lets a
    /// query select columns functionally dependent on a grouped key.
    pub fn copy_ddl(&self) -> String {
        let mut out = String::new();
        for s in &self.schemas {
            out.push_str(&format!("CREATE SCHEMA {};\n", ident(&self.copy_schema(s))));
        }
        for g in &self.grants {
            let columns: Vec<String> = g
                .table
                .columns
                .iter()
                .filter_map(|c| {
                    let granting: Vec<&RoleView> = g
                        .views
                        .iter()
                        .filter(|v| !v.denied.contains(&c.name))
                        .collect();
                    if granting.is_empty() {
                        None
                    } else if granting.len() == g.views.len() {
                        Some(ident(&c.name))
                    } else {
                        Some(format!(
                            "CASE WHEN {} THEN {} END AS {}",
                            any_of(granting.iter().map(|v| &v.filter)),
                            ident(&c.name),
                            ident(&c.name)
                        ))
                    }
                })
                .collect();
            let copy = qualified(&self.copy_schema(&g.table.schema), &g.table.name);
            out.push_str(&format!(
                "CREATE TABLE {copy} AS SELECT {} FROM {} WHERE {};\n",
                columns.join(", "),
                qualified(&g.table.schema, &g.table.name),
                any_of(g.views.iter().map(|v| &v.filter)),
            ));
            if !g.table.primary_key.is_empty() {
                let key: Vec<String> = g.table.primary_key.iter().map(|k| ident(k)).collect();
                out.push_str(&format!(
                    "ALTER TABLE {copy} ADD PRIMARY KEY ({});\n",
                    key.join(", ")
                ));
            }
        }
        out
    }

    /// Whether `column` of `schema.table` is hidden from this user (denied by every role).
    pub fn hidden(&self, schema: &str, table: &str, column: &str) -> bool {
        self.grants
            .iter()
            .find(|g| g.table.schema == schema && g.table.name == table)
            .is_some_and(|g| g.views.iter().all(|v| v.denied.iter().any(|d| d == column)))
    }
}

fn any_of<'a>(filters: impl Iterator<Item = &'a Filter>) -> String {
    filters
        .map(|f| format!("({})", f.sql))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Up to `count` distinct non-key columns, leaving at least one column of the table visible.
fn pick_columns(table: &Table, rng: &mut Rng, count: usize) -> Vec<String> {
    let mut candidates: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| !table.in_primary_key(&c.name))
        .map(|c| c.name.as_str())
        .collect();
    let limit = count.min(table.columns.len().saturating_sub(1));
    let mut out = Vec::new();
    while out.len() < limit && !candidates.is_empty() {
        out.push(candidates.remove(rng.below(candidates.len())).to_owned());
    }
    out
}

/// A filter on a random column of the table, of a random kind, keeping part of the rows.
fn filter_for(data: &TableData, rng: &mut Rng, vars: &mut usize) -> Filter {
    let column = rng.pick(&data.table.columns).clone();
    let c = ident(&column.name);
    let mut values: Vec<&str> = data.values(&column.name);
    if column.numeric {
        values.sort_by(|a, b| number(a).total_cmp(&number(b)));
    } else {
        values.sort();
    }
    let mut distinct = values.clone();
    distinct.dedup();
    let lit = |v: &str| literal(v, column.numeric);
    let plain = |sql: String| Filter {
        policy: sql.clone(),
        sql,
        var: None,
    };
    if values.is_empty() {
        return plain(format!("{c} IS NOT NULL"));
    }
    let median = values[values.len() / 2];
    let mut next_var = || {
        *vars += 1;
        format!("v{vars}")
    };
    match rng.below(7) {
        0 => {
            let op = *rng.pick(&[">", "<=", ">=", "<"]);
            plain(format!("{c} {op} {}", lit(median)))
        }
        kind @ (1 | 2) => {
            // Every other distinct value: IN keeps about half, NOT IN the rest.
            let half: Vec<&str> = distinct.iter().copied().step_by(2).collect();
            let name = next_var();
            let not = if kind == 2 { "NOT " } else { "" };
            Filter {
                policy: format!("{c} {not}IN ({{{{user.{name}}}}})"),
                sql: format!(
                    "{c} {not}IN ({})",
                    half.iter().map(|v| lit(v)).collect::<Vec<_>>().join(", ")
                ),
                var: Some((
                    name,
                    format!(
                        "[{}]",
                        half.iter()
                            .map(|v| toml_value(v, column.numeric))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )),
            }
        }
        3 => plain(format!("{c} IS NOT NULL")),
        4 => {
            let name = next_var();
            let op = *rng.pick(&["=", "<>"]);
            Filter {
                policy: format!("{c} {op} {{{{user.{name}}}}}"),
                sql: format!("{c} {op} {}", lit(median)),
                var: Some((name, toml_value(median, column.numeric))),
            }
        }
        5 => plain(format!("{c} IS NULL OR {c} > {}", lit(median))),
        _ => {
            let low = values[values.len() / 4];
            let high = values[values.len() * 3 / 4];
            plain(format!("{c} BETWEEN {} AND {}", lit(low), lit(high)))
        }
    }
}

fn number(v: &str) -> f64 {
    v.parse().expect("numeric values parse")
}

/// A policy variable's value: TOML integer or float for numbers (tablegate binds them as
/// numeric literals), a string for text.
fn toml_value(v: &str, numeric: bool) -> String {
    if !numeric {
        toml_basic(v)
    } else if let Ok(i) = v.parse::<i64>() {
        i.to_string()
    } else {
        format!("{:?}", number(v))
    }
}

/// A TOML basic string.
fn toml_basic(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A TOML literal string (names here never contain `'`).
fn toml_literal(s: &str) -> String {
    assert!(!s.contains('\''), "{s}");
    format!("'{s}'")
}
