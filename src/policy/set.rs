//! The policy set: every policy file of a folder, parsed, merged and validated as one.
//!
//! Files are TOML (see the README's "Policy files" section). They merge: a datasource or role
//! defined in two files is an error, assignments accumulate. Loading either yields a complete,
//! valid set or every error found, each with `file:line`; a set is never half-loaded.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::assignment::{Assignment, Matcher, RESERVED_VARIABLES};
use super::filter::RowFilter;
use super::mask::Mask;
use super::origin::{Origin, PolicyError, PolicyErrors, toml_sources};
use super::value::VarValue;
use crate::catalog::{Relation, RelationKind};
use crate::names::{NamePattern, display_ident, fold_str, read_quoted};

/// A value and where the policy wrote it.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

#[derive(Clone, Debug)]
pub struct DatasourcePolicy {
    pub name: String,
    pub description: Option<String>,
    /// Columns nobody may see on this datasource, whatever their roles.
    pub deny_columns: Vec<Located<NamePattern>>,
    /// Functions everybody may call on this datasource, beyond the built-in safe list.
    pub functions: Vec<Located<String>>,
    /// Columns everybody sees masked on this datasource, whatever their roles.
    pub masks: Vec<Located<MaskRule>>,
    pub origin: Origin,
}

/// `mask."pattern" = "kind"`: the columns a pattern covers are shown masked.
#[derive(Clone, Debug)]
pub struct MaskRule {
    /// `table.column` or `schema.table.column`, as in `deny_columns`.
    pub columns: NamePattern,
    pub mask: Mask,
}

/// What one role may do on one datasource.
#[derive(Clone, Debug)]
pub struct Grant {
    pub tables: Vec<Located<NamePattern>>,
    /// Allow-lists: for tables matching the pattern, only these columns.
    pub columns: Vec<(Located<NamePattern>, Vec<String>)>,
    pub deny_columns: Vec<Located<NamePattern>>,
    pub masks: Vec<Located<MaskRule>>,
    pub rows: Vec<(Located<NamePattern>, Located<RowFilter>)>,
    pub functions: Vec<Located<String>>,
    pub origin: Origin,
}

/// Whether a `tables` pattern grants `relation`. A partition or inheritance child is granted
/// only by its exact name: its parent's rows, columns and masks do not follow it, so a glob
/// written for the parent (`public.*`) would open it unfiltered (found by red-team review).
/// Views and materialized views likewise: they read other tables with their owner's rights,
/// where no row filter of the user's reaches.
pub fn grants_relation(pattern: &NamePattern, relation: &Relation) -> bool {
    let by_name_only = relation.is_child
        || matches!(
            relation.kind,
            RelationKind::View | RelationKind::MaterializedView
        );
    pattern.matches(&[&relation.name.schema, &relation.name.name])
        && (!by_name_only || pattern.is_literal())
}

#[derive(Clone, Debug)]
pub struct Role {
    pub name: String,
    pub description: Option<String>,
    pub grants: BTreeMap<String, Grant>,
    pub origin: Origin,
}

#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    pub datasources: BTreeMap<String, DatasourcePolicy>,
    pub roles: BTreeMap<String, Role>,
    pub assignments: Vec<Assignment>,
}

impl PolicySet {
    /// Loads every `*.toml` file in `dir` (in name order) as one policy set.
    pub fn load_dir(dir: &Path) -> Result<PolicySet, PolicyErrors> {
        PolicySet::from_sources(&PolicySet::sources_in(dir)?)
    }

    /// The `(file name, text)` of every `*.toml` file in `dir`, in name order.
    pub fn sources_in(dir: &Path) -> Result<Vec<(Arc<str>, String)>, PolicyErrors> {
        toml_sources(dir, "the policies folder")
    }

    /// Builds a set from `(file name, text)` pairs.
    pub fn from_sources(files: &[(Arc<str>, String)]) -> Result<PolicySet, PolicyErrors> {
        let mut set = PolicySet::default();
        let mut errors = Vec::new();
        for (file, text) in files {
            FileReader {
                file,
                text,
                errors: &mut errors,
            }
            .read_into(&mut set);
        }
        set.validate_references(&mut errors);
        if errors.is_empty() {
            Ok(set)
        } else {
            Err(PolicyErrors(errors))
        }
    }

    /// Parses a single policy text (tests, examples).
    pub fn from_str(name: &str, text: &str) -> Result<PolicySet, PolicyErrors> {
        PolicySet::from_sources(&[(Arc::from(name), text.to_owned())])
    }

    fn validate_references(&self, errors: &mut Vec<PolicyError>) {
        for role in self.roles.values() {
            for (datasource, grant) in &role.grants {
                if !self.datasources.contains_key(datasource) {
                    errors.push(PolicyError {
                        origin: grant.origin.clone(),
                        message: format!(
                            "role `{}` grants on datasource `{datasource}`, which no [datasource.{datasource}] section declares",
                            role.name
                        ),
                    });
                }
            }
        }
        for assignment in &self.assignments {
            for role in &assignment.roles {
                if !self.roles.contains_key(&role.value) {
                    errors.push(PolicyError {
                        origin: role.origin.clone(),
                        message: format!(
                            "assignment names role `{}`, which is not defined",
                            role.value
                        ),
                    });
                }
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    datasource: BTreeMap<Spanned<String>, RawDatasource>,
    #[serde(default)]
    role: BTreeMap<Spanned<String>, RawRole>,
    #[serde(default)]
    assign: Vec<Spanned<RawAssign>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatasource {
    description: Option<String>,
    #[serde(default)]
    deny_columns: Vec<Spanned<String>>,
    #[serde(default)]
    functions: Vec<Spanned<String>>,
    #[serde(default)]
    mask: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRole {
    description: Option<String>,
    #[serde(default)]
    datasource: BTreeMap<Spanned<String>, Spanned<RawGrant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGrant {
    #[serde(default)]
    tables: Vec<Spanned<String>>,
    #[serde(default)]
    columns: BTreeMap<Spanned<String>, Vec<String>>,
    #[serde(default)]
    deny_columns: Vec<Spanned<String>>,
    #[serde(default)]
    rows: BTreeMap<Spanned<String>, Spanned<String>>,
    #[serde(default)]
    functions: Vec<Spanned<String>>,
    #[serde(default)]
    mask: BTreeMap<Spanned<String>, Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssign {
    user: Option<String>,
    users: Option<Vec<String>>,
    department: Option<String>,
    department_id: Option<u64>,
    position: Option<String>,
    #[serde(default)]
    roles: Vec<Spanned<String>>,
    #[serde(default)]
    vars: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

struct FileReader<'a> {
    file: &'a Arc<str>,
    text: &'a str,
    errors: &'a mut Vec<PolicyError>,
}

impl FileReader<'_> {
    fn origin(&self, offset: usize) -> Origin {
        Origin::at(self.file, self.text, offset)
    }

    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let origin = self.origin(offset);
        self.errors.push(PolicyError {
            origin,
            message: message.into(),
        });
    }

    fn read_into(mut self, set: &mut PolicySet) {
        let raw: RawFile = match toml::from_str(self.text) {
            Ok(raw) => raw,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                self.error(offset, e.message().to_owned());
                return;
            }
        };
        for (name, ds) in raw.datasource {
            let origin = self.origin(name.span().start);
            let name = name.into_inner();
            if let Some(previous) = set.datasources.get(&name) {
                self.error(
                    origin.line_offset(self.text),
                    format!(
                        "datasource `{name}` is already defined at {}",
                        previous.origin
                    ),
                );
                continue;
            }
            let policy = DatasourcePolicy {
                name: name.clone(),
                description: ds.description,
                deny_columns: self.patterns(ds.deny_columns, &[2, 3]),
                functions: self.functions(ds.functions),
                masks: self.masks(ds.mask),
                origin,
            };
            set.datasources.insert(name, policy);
        }
        for (name, raw_role) in raw.role {
            let origin = self.origin(name.span().start);
            let name = name.into_inner();
            if let Some(previous) = set.roles.get(&name) {
                self.error(
                    origin.line_offset(self.text),
                    format!("role `{name}` is already defined at {}", previous.origin),
                );
                continue;
            }
            let mut grants = BTreeMap::new();
            for (datasource, grant) in raw_role.datasource {
                let grant_origin = self.origin(grant.span().start);
                let grant = self.grant(grant.into_inner(), grant_origin);
                grants.insert(datasource.into_inner(), grant);
            }
            set.roles.insert(
                name.clone(),
                Role {
                    name,
                    description: raw_role.description,
                    grants,
                    origin,
                },
            );
        }
        for assign in raw.assign {
            let offset = assign.span().start;
            if let Some(a) = self.assignment(assign.into_inner(), offset) {
                set.assignments.push(a);
            }
        }
    }

    fn grant(&mut self, raw: RawGrant, origin: Origin) -> Grant {
        let mut columns = Vec::new();
        for (pattern, names) in raw.columns {
            if let Some(p) = self.pattern(pattern, &[2]) {
                columns.push((p, names.iter().map(|n| fold_column_name(n)).collect()));
            }
        }
        let mut rows = Vec::new();
        for (pattern, filter) in raw.rows {
            let filter_origin = self.origin(filter.span().start);
            let filter_offset = filter.span().start;
            let Some(p) = self.pattern(pattern, &[2]) else {
                continue;
            };
            match RowFilter::parse(filter.get_ref()) {
                Ok(f) => rows.push((
                    p,
                    Located {
                        value: f,
                        origin: filter_origin,
                    },
                )),
                Err(e) => self.error(filter_offset, e),
            }
        }
        Grant {
            tables: self.patterns(raw.tables, &[2]),
            columns,
            deny_columns: self.patterns(raw.deny_columns, &[2, 3]),
            masks: self.masks(raw.mask),
            rows,
            functions: self.functions(raw.functions),
            origin,
        }
    }

    fn assignment(&mut self, raw: RawAssign, offset: usize) -> Option<Assignment> {
        let mut matchers = Vec::new();
        if let Some(u) = raw.user {
            matchers.push(Matcher::Users(vec![u]));
        }
        if let Some(us) = raw.users {
            matchers.push(Matcher::Users(us));
        }
        if let Some(d) = raw.department {
            matchers.push(Matcher::Department(d));
        }
        if let Some(id) = raw.department_id {
            matchers.push(Matcher::DepartmentId(id));
        }
        if let Some(p) = raw.position {
            matchers.push(Matcher::Position(p));
        }
        if matchers.len() != 1 {
            self.error(
                offset,
                "an assignment needs exactly one of `user`, `users`, `department`, `department_id`, `position`",
            );
            return None;
        }
        if raw.roles.is_empty() {
            self.error(offset, "an assignment needs `roles = [...]`");
            return None;
        }
        let mut vars = BTreeMap::new();
        for (name, value) in raw.vars {
            let var_offset = name.span().start;
            let name = name.into_inner();
            if RESERVED_VARIABLES.contains(&name.as_str()) {
                self.error(
                    var_offset,
                    format!("`{name}` is a directory attribute ({{{{user.{name}}}}}); an assignment cannot set it"),
                );
                continue;
            }
            match VarValue::from_toml(value.get_ref()) {
                Ok(v) => {
                    vars.insert(name, v);
                }
                Err(e) => self.error(value.span().start, format!("variable `{name}`: {e}")),
            }
        }
        Some(Assignment {
            matcher: matchers.pop().expect("exactly one matcher"),
            roles: raw
                .roles
                .into_iter()
                .map(|r| Located {
                    origin: self.origin(r.span().start),
                    value: r.into_inner(),
                })
                .collect(),
            vars,
            origin: self.origin(offset),
        })
    }

    fn pattern(&mut self, raw: Spanned<String>, parts: &[usize]) -> Option<Located<NamePattern>> {
        let offset = raw.span().start;
        match NamePattern::parse(raw.get_ref(), parts) {
            Ok(p) => Some(Located {
                value: p,
                origin: self.origin(offset),
            }),
            Err(e) => {
                self.error(offset, e);
                None
            }
        }
    }

    fn patterns(
        &mut self,
        raw: Vec<Spanned<String>>,
        parts: &[usize],
    ) -> Vec<Located<NamePattern>> {
        raw.into_iter()
            .filter_map(|r| self.pattern(r, parts))
            .collect()
    }

    fn masks(&mut self, raw: BTreeMap<Spanned<String>, Spanned<String>>) -> Vec<Located<MaskRule>> {
        let mut masks = Vec::new();
        for (pattern, kind) in raw {
            let Some(columns) = self.pattern(pattern, &[2, 3]) else {
                continue;
            };
            match Mask::parse(kind.get_ref()) {
                Ok(mask) => masks.push(Located {
                    value: MaskRule {
                        columns: columns.value,
                        mask,
                    },
                    origin: columns.origin,
                }),
                Err(e) => self.error(kind.span().start, e),
            }
        }
        // By line, as the DBA wrote them (TOML keys come back sorted).
        masks.sort_by_key(|m| m.origin.line);
        masks
    }

    fn functions(&mut self, raw: Vec<Spanned<String>>) -> Vec<Located<String>> {
        raw.into_iter()
            .filter_map(|f| {
                let offset = f.span().start;
                match NamePattern::parse(f.get_ref(), &[1, 2]).map(|p| p.literal_parts()) {
                    Ok(Some(parts)) => Some(Located {
                        value: function_key(&parts),
                        origin: self.origin(offset),
                    }),
                    Ok(None) => {
                        self.error(offset, "function names cannot contain `*`");
                        None
                    }
                    Err(e) => {
                        self.error(offset, e);
                        None
                    }
                }
            })
            .collect()
    }
}

impl Origin {
    /// The byte offset of this origin's line start (to report a second error at the same line).
    fn line_offset(&self, text: &str) -> usize {
        text.split_inclusive('\n')
            .take(self.line.saturating_sub(1))
            .map(str::len)
            .sum()
    }
}

/// A column name from an allow-list, folded like an SQL identifier (quotes keep case). Text that
/// is not one whole quoted name is folded as written, unquoted.
fn fold_column_name(name: &str) -> String {
    let mut chars = name.chars().peekable();
    if chars.next_if_eq(&'"').is_some()
        && let Some(quoted) = read_quoted(&mut chars)
        && chars.peek().is_none()
    {
        return quoted;
    }
    fold_str(name, false)
}

/// How functions are compared: a function's folded name parts, `pg_catalog.` dropped, printed
/// as SQL would name them (`util."Fancy"`), so that a quoted name never meets a folded one.
pub fn function_key(parts: &[String]) -> String {
    let parts = match parts {
        [schema, name] if schema == "pg_catalog" => std::slice::from_ref(name),
        _ => parts,
    };
    parts
        .iter()
        .map(|part| display_ident(part))
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"
[datasource.sales_dw]
deny_columns = ["*.phone"]

[datasource.hr]

[role.sales_rep.datasource.sales_dw]
tables = ["public.orders", "public.customers"]
rows."public.orders" = "region IN ({{user.regions}})"

[role.employee.datasource.hr]
tables = ["public.employees"]
deny_columns = ["employees.phone"]
rows."public.employees" = "employee_id = {{user.employee_id}}"

[[assign]]
department = "Sales"
roles = ["sales_rep"]
vars = { regions = ["East", "North"] }
"#;

    #[test]
    fn the_seed_scenario_loads() {
        let set = PolicySet::from_str("seed.toml", SEED).unwrap();
        assert_eq!(set.datasources.len(), 2);
        let rep = &set.roles["sales_rep"];
        assert_eq!(rep.grants["sales_dw"].tables.len(), 2);
        assert_eq!(rep.grants["sales_dw"].rows[0].1.origin.line, 9);
        assert_eq!(set.assignments.len(), 1);
    }

    #[test]
    fn errors_name_file_and_line() {
        let text = "[role.r.datasource.nowhere]\ntables = [\"orders\"]\nrows.\"public.t\" = \"a = '{{user.x}}'\"\n\n[[assign]]\nuser = \"bob\"\nroles = [\"ghost\"]\nvars = { userid = \"x\" }\n";
        let errors = PolicySet::from_str("p.toml", text).unwrap_err().to_string();
        assert!(
            errors.contains("p.toml:2: `orders` should have the form schema.table"),
            "{errors}"
        );
        assert!(
            errors.contains("p.toml:3: write {{user.x}} placeholders"),
            "{errors}"
        );
        assert!(
            errors.contains("p.toml:8: `userid` is a directory attribute"),
            "{errors}"
        );
        assert!(
            errors.contains("p.toml:7: assignment names role `ghost`"),
            "{errors}"
        );
        assert!(
            errors.contains("p.toml:1: role `r` grants on datasource `nowhere`"),
            "{errors}"
        );
    }

    #[test]
    fn duplicates_across_files_are_errors() {
        let files = [
            (
                Arc::from("a.toml"),
                "[datasource.d]\n[role.r.datasource.d]\ntables=[\"public.t\"]\n".to_string(),
            ),
            (
                Arc::from("b.toml"),
                "\n[role.r.datasource.d]\ntables=[\"public.u\"]\n".to_string(),
            ),
        ];
        let errors = PolicySet::from_sources(&files).unwrap_err().to_string();
        assert!(
            errors.contains("b.toml:2: role `r` is already defined at a.toml:2"),
            "{errors}"
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_lines() {
        let errors = PolicySet::from_str("p.toml", "[datasource.d]\ndeny_column = []\n")
            .unwrap_err()
            .to_string();
        assert!(errors.starts_with("p.toml:2:"), "{errors}");
        assert!(errors.contains("deny_column"), "{errors}");
    }

    #[test]
    fn masks_take_column_patterns_and_known_kinds() {
        let set = PolicySet::from_str(
            "p.toml",
            "[datasource.d]\nmask.\"*.email\" = \"hash\"\n[role.r.datasource.d]\ntables=[\"public.t\"]\n\
             mask.\"t.b\" = \"null\"\nmask.\"public.t.a\" = \"last4\"\n",
        )
        .unwrap();
        let masks = &set.roles["r"].grants["d"].masks;
        assert_eq!(masks.len(), 2);
        assert_eq!((masks[0].value.mask, masks[0].origin.line), (Mask::Null, 5));
        assert_eq!(masks[1].value.columns.len(), 3);
        assert_eq!(set.datasources["d"].masks[0].value.mask, Mask::Hash);
        let errors = PolicySet::from_str(
            "p.toml",
            "[datasource.d]\nmask.\"email\" = \"hash\"\nmask.\"t.phone\" = \"stars\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            errors.contains("p.toml:2: `email` should have the form"),
            "{errors}"
        );
        assert!(
            errors.contains("p.toml:3: unknown mask `stars`; masks are `last4`"),
            "{errors}"
        );
    }

    #[test]
    fn function_keys_fold_and_drop_pg_catalog() {
        let key = |text: &str| {
            function_key(
                &NamePattern::parse(text, &[1, 2])
                    .unwrap()
                    .literal_parts()
                    .unwrap(),
            )
        };
        assert_eq!(key("PG_SLEEP"), "pg_sleep");
        assert_eq!(key("pg_catalog.pg_sleep"), "pg_sleep");
        assert_eq!(key("Util.\"Fancy\""), "util.\"Fancy\"");
        assert_eq!(key("\"util.fancy\""), "\"util.fancy\"");
    }

    #[test]
    fn allow_list_columns_fold_like_identifiers() {
        assert_eq!(fold_column_name("Phone"), "phone");
        assert_eq!(fold_column_name("\"Phone\""), "Phone");
        assert_eq!(fold_column_name("\"a\"\"b\""), "a\"b");
        assert_eq!(
            fold_column_name(&format!("\"{}\"", "X".repeat(70))).len(),
            63
        );
    }
}
