//! AskTable roles and policies to one tablegate policy file, against a catalog snapshot.
//!
//! AskTable evaluates its patterns on every query; tablegate grants named tables and columns. So
//! the import expands the patterns against each datasource's live catalog and writes what they
//! match today: one tablegate role per AskTable role, with its tables, column allow-lists where
//! a field pattern or a deny policy removes columns, and its row filters (all filters of a
//! role's policies that reach a table, ANDed). Whatever cannot be expressed costs access, never
//! grants it: a table whose deny rule or row filter cannot be translated is left out, with a note.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::Arc;

use super::export::{Export, Permission, Policy, Role, RowsFilter};
use super::matching::{FilterRule, NameRegex, pattern_doubt};
use crate::catalog::{Catalog, Relation, SYSTEM_SCHEMAS};
use crate::names::display_ident;
use crate::policy::PolicySet;

/// A tablegate datasource and the AskTable datasource ids that stand for it.
pub struct Datasource<'a> {
    pub name: String,
    pub asktable_ids: Vec<String>,
    pub catalog: &'a Catalog,
}

/// What the import could not carry over, or what a DBA must still do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    /// Something the AskTable policies say that the written file does not (access was lost).
    pub lost: bool,
    pub text: String,
}

pub struct Import {
    /// The policy file.
    pub toml: String,
    pub notes: Vec<Note>,
}

impl Import {
    pub fn expressed_everything(&self) -> bool {
        self.notes.iter().all(|n| !n.lost)
    }
}

/// A policy with its patterns compiled, or why they cannot be.
struct Compiled<'e> {
    policy: &'e Policy,
    patterns: Result<[NameRegex; 3], String>,
}

impl Compiled<'_> {
    /// Whether the policy's patterns reach a column. AskTable's documentation leaves open what
    /// a pattern is matched against (its own example `.salaries.` only matches a dotted path),
    /// so the reading that costs access wins: allow patterns are searched in the bare name
    /// only, deny patterns in the bare name or the dotted path `schema.table.column`.
    fn reaches(&self, schema: &str, table: &str, column: &str) -> bool {
        let Ok([s, t, f]) = &self.patterns else {
            return false;
        };
        match self.policy.permission {
            Permission::Allow => s.matches(schema) && t.matches(table) && f.matches(column),
            // A deny that only filters rows says nothing about columns.
            Permission::Deny if self.filters_rows_only() => false,
            Permission::Deny => {
                let path = format!("{schema}.{table}");
                let full = format!("{path}.{column}");
                let broad = |p: &NameRegex, bare: &str| {
                    p.matches(bare) || p.matches(&path) || p.matches(&full)
                };
                broad(s, schema) && broad(t, table) && broad(f, column)
            }
        }
    }

    fn filters_rows_only(&self) -> bool {
        let config = &self.policy.dataset_config;
        config.regex_patterns.is_none()
            && config.rows_filters.as_ref().is_some_and(|f| !f.is_empty())
    }

    /// Whether an allow policy grants every column of a table, now and after schema changes.
    fn grants_whole(&self, schema: &str, table: &str) -> bool {
        matches!(&self.patterns, Ok([s, t, f]) if s.matches(schema) && t.matches(table) && f.matches_all())
    }

    fn covers(&self, datasource: &Datasource) -> bool {
        self.policy
            .dataset_config
            .datasource_ids
            .ids()
            .iter()
            .any(|id| id == "*" || datasource.asktable_ids.contains(id))
    }

    /// The policy's row filters for a datasource (keyed by one of its AskTable ids, or `*`).
    fn filters(&self, datasource: &Datasource) -> Vec<Result<FilterRule, String>> {
        let Some(by_datasource) = &self.policy.dataset_config.rows_filters else {
            return Vec::new();
        };
        by_datasource
            .iter()
            .filter(|(id, _)| *id == "*" || datasource.asktable_ids.contains(id))
            .flat_map(|(_, filters)| filters)
            .map(|f| match f {
                RowsFilter::Text(text) => FilterRule::parse_text(text),
                RowsFilter::Structured {
                    condition,
                    db_regex,
                    table_regex,
                    field_regex,
                    operator_expression,
                } => FilterRule::structured(
                    condition,
                    db_regex,
                    table_regex,
                    field_regex,
                    operator_expression,
                ),
            })
            .collect()
    }
}

fn compile(policy: &Policy) -> Compiled<'_> {
    let patterns = policy.dataset_config.regex_patterns.as_ref();
    let compile = |p: Option<&String>| NameRegex::compile(p.map(String::as_str));
    let patterns = (|| {
        Ok([
            compile(patterns.and_then(|p| p.schemas_regex_pattern.as_ref()))?,
            compile(patterns.and_then(|p| p.tables_regex_pattern.as_ref()))?,
            compile(patterns.and_then(|p| p.fields_regex_pattern.as_ref()))?,
        ])
    })();
    Compiled { policy, patterns }
}

/// Converts `export` for `datasources`; `source` names the export in the file's header. The
/// result must load next to the `existing` policy files, whose datasource sections it reuses.
pub fn convert(
    export: &Export,
    datasources: &[Datasource],
    source: &str,
    existing: &[(Arc<str>, String)],
) -> Result<Import, String> {
    if export.roles.is_empty() {
        return Err(
            "the export has no roles: tablegate grants access through roles, so there is \
             nothing to import (export AskTable's roles with their policy_ids too)"
                .into(),
        );
    }
    let mut notes = Vec::new();
    let policies: Vec<Compiled> = export.policies.iter().map(compile).collect();
    for policy in &policies {
        note_policy(policy, datasources, &mut notes);
    }
    let mut body = String::new();
    for role in &export.roles {
        write_role(role, &policies, datasources, &mut body, &mut notes);
    }
    let declared = PolicySet::from_sources(existing)
        .map_err(|e| format!("the existing policies do not load: {e}"))?
        .datasources;
    let mut sections = String::new();
    for datasource in datasources {
        if !declared.contains_key(&datasource.name) {
            let _ = writeln!(
                sections,
                "[datasource.{}]\ndescription = {}\n",
                toml_key(&datasource.name),
                toml_string(&format!(
                    "AskTable datasource {}",
                    datasource.asktable_ids.join(", ")
                ))
            );
        }
    }
    let toml = header(source, &notes) + &sections + &body + ASSIGNMENT_TEMPLATE;
    let mut files = existing.to_vec();
    files.push((Arc::from("asktable.toml"), toml.clone()));
    PolicySet::from_sources(&files).map_err(|e| {
        format!("the converted policies would not load next to the existing ones: {e}")
    })?;
    Ok(Import { toml, notes })
}

/// Notes about a policy as a whole: unknown datasources, patterns that cannot be evaluated or
/// that match nothing.
fn note_policy(policy: &Compiled, datasources: &[Datasource], notes: &mut Vec<Note>) {
    let name = &policy.policy.name;
    for id in policy.policy.dataset_config.datasource_ids.ids() {
        if id != "*" && !datasources.iter().any(|d| d.asktable_ids.contains(id)) {
            notes.push(Note {
                lost: true,
                text: format!(
                    "policy `{name}`: AskTable datasource `{id}` is not a tablegate datasource; \
                     nothing of this policy is imported for it (name it with \
                     --datasource {id}=NAME)"
                ),
            });
        }
    }
    if let Some(p) = &policy.policy.dataset_config.regex_patterns {
        for pattern in [
            &p.schemas_regex_pattern,
            &p.tables_regex_pattern,
            &p.fields_regex_pattern,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(doubt) = pattern_doubt(pattern) {
                notes.push(Note {
                    lost: false,
                    text: format!("policy `{name}`: {doubt}"),
                });
            }
        }
    }
    if policy.patterns.is_ok() && !policy.filters_rows_only() {
        for datasource in datasources.iter().filter(|d| policy.covers(d)) {
            let matched = tables_of(datasource.catalog).any(|r| {
                r.columns
                    .iter()
                    .any(|c| policy.reaches(&r.name.schema, &r.name.name, &c.name))
            });
            if !matched {
                notes.push(Note {
                    lost: false,
                    text: format!(
                        "policy `{name}`: its patterns match no column of datasource `{}`, so \
                         it {} nothing there",
                        datasource.name,
                        match policy.policy.permission {
                            Permission::Allow => "grants",
                            Permission::Deny => "denies",
                        }
                    ),
                });
            }
        }
    }
}

/// The relations a role can be granted: no system catalogs, no partitions (their parent is).
fn tables_of(catalog: &Catalog) -> impl Iterator<Item = &Relation> {
    let mut relations: Vec<&Relation> = catalog
        .relations()
        .map(|(_, r)| r)
        .filter(|r| !r.is_child && !SYSTEM_SCHEMAS.contains(&r.name.schema.as_str()))
        .collect();
    relations.sort_by(|a, b| a.name.cmp(&b.name));
    relations.into_iter()
}

/// One table as a role may see it.
struct TableGrant {
    table: String,
    /// The visible columns when not all are.
    columns: Option<Vec<String>>,
    filters: Vec<String>,
}

fn write_role(
    role: &Role,
    policies: &[Compiled],
    datasources: &[Datasource],
    out: &mut String,
    notes: &mut Vec<Note>,
) {
    let name = &role.name;
    let mut held = Vec::new();
    for id in &role.policy_ids {
        let found = policies
            .iter()
            .find(|p| p.policy.id.as_deref() == Some(id.as_str()))
            .or_else(|| policies.iter().find(|p| p.policy.name == *id));
        match found {
            Some(p) => held.push(p),
            None => notes.push(Note {
                lost: true,
                text: format!("role `{name}`: policy `{id}` is not in the export; it is skipped"),
            }),
        }
    }
    let names: Vec<&str> = held.iter().map(|p| p.policy.name.as_str()).collect();
    let description = role
        .description
        .clone()
        .unwrap_or_else(|| format!("AskTable role {name}"));
    let _ = writeln!(
        out,
        "[role.{}]\ndescription = {}\n# AskTable policies: {}\n",
        toml_key(name),
        toml_string(&description),
        if names.is_empty() {
            "none".to_owned()
        } else {
            comment(&names.join(", "))
        }
    );
    let mut variables = BTreeSet::new();
    let mut granted_anything = false;
    for datasource in datasources {
        let grants = grants(role, &held, datasource, notes);
        if grants.is_empty() {
            continue;
        }
        granted_anything = true;
        write_grant(name, datasource, &grants, out, &mut variables, notes);
    }
    if !granted_anything {
        notes.push(Note {
            lost: false,
            text: format!("role `{name}` grants nothing on any datasource"),
        });
    }
    if !variables.is_empty() {
        let list: Vec<String> = variables.iter().map(|v| format!("`{v}`")).collect();
        notes.push(Note {
            lost: false,
            text: format!(
                "role `{name}` needs {} for every user who holds it: AskTable took {} from the \
                 chat's role_variables; tablegate takes {} from the user's directory attributes \
                 (e.g. a WeCom custom attribute) or the `vars` of an [[assign]] entry",
                list.join(", "),
                if list.len() == 1 { "it" } else { "them" },
                if list.len() == 1 { "it" } else { "them" },
            ),
        });
    }
    let unused: Vec<String> = role
        .declared_variables()
        .into_iter()
        .filter(|v| !variables.contains(v))
        .map(|v| format!("`{v}`"))
        .collect();
    if !unused.is_empty() {
        notes.push(Note {
            lost: false,
            text: format!(
                "role `{name}` declares role_variables {} that no imported row filter uses",
                unused.join(", ")
            ),
        });
    }
}

/// The tables `role` may see on `datasource`, with columns and filters.
fn grants(
    role: &Role,
    held: &[&Compiled],
    datasource: &Datasource,
    notes: &mut Vec<Note>,
) -> Vec<TableGrant> {
    let name = &role.name;
    let held: Vec<&Compiled> = held
        .iter()
        .copied()
        .filter(|p| p.covers(datasource))
        .collect();
    let mut lost = |text: String| notes.push(Note { lost: true, text });
    // A deny that cannot be evaluated could cover any table: the role gets none here.
    for policy in &held {
        if let Err(e) = &policy.patterns {
            let verdict = match policy.policy.permission {
                Permission::Allow => "grants nothing",
                Permission::Deny => "could deny anything, so the role gets no table",
            };
            lost(format!(
                "role `{name}` on `{}`: policy `{}`: {e}; it {verdict} there",
                datasource.name, policy.policy.name
            ));
            if policy.policy.permission == Permission::Deny {
                return Vec::new();
            }
        }
    }
    let mut allow_filters = Vec::new();
    let mut deny_filters = Vec::new();
    for policy in &held {
        for rule in policy.filters(datasource) {
            match rule {
                Ok(rule) if policy.policy.permission == Permission::Allow => {
                    allow_filters.push(rule)
                }
                Ok(rule) => deny_filters.push((policy.policy.name.as_str(), rule)),
                Err(e) => {
                    lost(format!(
                        "role `{name}` on `{}`: policy `{}`: {e}; the role gets no table there",
                        datasource.name, policy.policy.name
                    ));
                    return Vec::new();
                }
            }
        }
    }
    let mut grants = Vec::new();
    'tables: for relation in tables_of(datasource.catalog) {
        let (schema, table) = (&relation.name.schema, &relation.name.name);
        let reached = |permission: Permission, column: &str| {
            held.iter()
                .any(|p| p.policy.permission == permission && p.reaches(schema, table, column))
        };
        let visible: Vec<usize> = (0..relation.columns.len())
            .filter(|&i| {
                let column = &relation.columns[i].name;
                reached(Permission::Allow, column) && !reached(Permission::Deny, column)
            })
            .collect();
        let whole_by_allow = held
            .iter()
            .any(|p| p.policy.permission == Permission::Allow && p.grants_whole(schema, table));
        if visible.is_empty() {
            continue;
        }
        for (policy, rule) in &deny_filters {
            if relation
                .columns
                .iter()
                .any(|c| rule.target.matches(schema, table, &c.name))
            {
                lost(format!(
                    "role `{name}`: deny policy `{policy}` filters rows of {} (`{}`); tablegate \
                     grants rows, it does not subtract them, so the role does not get this table",
                    relation.name, rule.written
                ));
                continue 'tables;
            }
        }
        let mut filters = Vec::new();
        for rule in &allow_filters {
            for column in &relation.columns {
                if !rule.target.matches(schema, table, &column.name) {
                    continue;
                }
                match rule.for_column(&column.name) {
                    Ok(filter) => filters.push(filter),
                    Err(e) => {
                        lost(format!(
                            "role `{name}`: {e}; the role does not get {}",
                            relation.name
                        ));
                        continue 'tables;
                    }
                }
            }
        }
        let all_columns = whole_by_allow && visible.len() == relation.columns.len();
        grants.push(TableGrant {
            table: relation.name.to_string(),
            columns: (!all_columns).then(|| {
                visible
                    .iter()
                    .map(|&i| display_ident(&relation.columns[i].name))
                    .collect()
            }),
            filters,
        });
    }
    grants
}

fn write_grant(
    role: &str,
    datasource: &Datasource,
    grants: &[TableGrant],
    out: &mut String,
    variables: &mut BTreeSet<String>,
    notes: &mut Vec<Note>,
) {
    let tables: Vec<String> = grants.iter().map(|g| toml_string(&g.table)).collect();
    let _ = writeln!(
        out,
        "[role.{}.datasource.{}]\ntables = [{}]",
        toml_key(role),
        toml_key(&datasource.name),
        tables.join(", ")
    );
    for grant in grants {
        if let Some(columns) = &grant.columns {
            let columns: Vec<String> = columns.iter().map(|c| toml_string(c)).collect();
            let _ = writeln!(
                out,
                "columns.{} = [{}]",
                toml_string(&grant.table),
                columns.join(", ")
            );
        }
    }
    let mut unfiltered = Vec::new();
    for grant in grants {
        let filter = match grant.filters.as_slice() {
            [] => {
                unfiltered.push(grant.table.as_str());
                continue;
            }
            [one] => one.clone(),
            several => several
                .iter()
                .map(|f| format!("({f})"))
                .collect::<Vec<_>>()
                .join(" AND "),
        };
        for captures in VARIABLE_NAME.captures_iter(&filter) {
            variables.insert(captures[1].to_owned());
        }
        let _ = writeln!(
            out,
            "rows.{} = {}",
            toml_string(&grant.table),
            toml_string(&filter)
        );
    }
    out.push('\n');
    if !unfiltered.is_empty() && unfiltered.len() < grants.len() {
        notes.push(Note {
            lost: false,
            text: format!(
                "role `{role}` on `{}`: no row filter reaches {} (none of the role's filters \
                 names a column they have): the role sees all their rows",
                datasource.name,
                unfiltered.join(", ")
            ),
        });
    }
}

static VARIABLE_NAME: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(r"\{\{user\.([A-Za-z0-9_]+)\}\}").unwrap());

fn header(source: &str, notes: &[Note]) -> String {
    let source = comment(source);
    let mut text = format!(
        "# Converted from the AskTable export {source} by `tablegate import-asktable`.\n\
         # Tables and columns are those AskTable's patterns matched in the live catalog at import\n\
         # time; run the import again after schema changes. Review, then run `tablegate check`.\n"
    );
    if !notes.is_empty() {
        text.push_str("#\n");
        for note in notes {
            let _ = writeln!(
                text,
                "# {} {}",
                if note.lost {
                    "NOT IMPORTED:"
                } else {
                    "review:"
                },
                comment(&note.text)
            );
        }
    }
    text.push('\n');
    text
}

const ASSIGNMENT_TEMPLATE: &str = "\
# AskTable picks a role per chat; tablegate gives roles to users. Assign the roles above, e.g.:
# [[assign]]
# department = \"Sales\"
# roles = [\"sales_rep\"]
# vars = { regions = [\"East\", \"North\"] }
";

/// Text from the export as one comment line: a newline in a policy's name must not end the
/// comment and start a grant.
fn comment(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_owned()).to_string()
}

fn toml_key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        s.to_owned()
    } else {
        toml_string(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::catalog_of_tables;

    #[test]
    fn text_from_the_export_cannot_break_out_of_a_comment() {
        let catalog = catalog_of_tables(&[("public", "t", &["a"])]);
        let export: Export = serde_json::from_str(
            r#"{
              "policies": [{ "id": "p", "permission": "allow",
                "name": "x\n[role.evil.datasource.db]\ntables = [\"public.t\"]\n#",
                "dataset_config": { "datasource_ids": ["elsewhere"] } }],
              "roles": [{ "name": "r", "policy_ids": ["p"] }]
            }"#,
        )
        .unwrap();
        let datasource = Datasource {
            name: "db".into(),
            asktable_ids: vec!["ds_db".into()],
            catalog: &catalog,
        };
        let import = convert(&export, &[datasource], "x\n[role.evil2]", &[]).unwrap();
        let set = PolicySet::from_str("asktable.toml", &import.toml).unwrap();
        assert_eq!(
            set.roles.keys().collect::<Vec<_>>(),
            ["r"],
            "{}",
            import.toml
        );
        assert!(set.roles["r"].grants.is_empty(), "{}", import.toml);
    }
}
