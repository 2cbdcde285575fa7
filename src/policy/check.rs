//! `tablegate check`: the policy set validated against the live databases.
//!
//! Loading already rejects what is wrong in the files themselves. This adds what only the live
//! schema and the directory can tell: patterns that match nothing (usually a typo that would
//! silently grant or hide less than intended), filters reading columns a table lacks, variables
//! nobody has, filters PostgreSQL cannot plan, masks a column's type cannot take or that
//! conflict, assignments that match nobody or a department name several departments bear, and
//! department paths that departments without a known path from the root never match.

use std::collections::{BTreeMap, BTreeSet};

use super::assignment::{Matcher, RESERVED_VARIABLES};
use super::origin::{Origin, PolicyError};
use super::set::{Grant, Located, MaskRule, PolicySet, grants_relation};
use super::source::denies;
use crate::catalog::{Catalog, RelationId, SYSTEM_SCHEMAS};
use crate::directory::{Department, User};
use crate::names::{NamePattern, QualifiedName};

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

    fn warning(&mut self, origin: &Origin, message: String) {
        self.warnings.push(PolicyError {
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

/// Checks the assignments against the directory: an assignment that matches nobody (a typo, or a
/// department path not starting at the root), a department name that names several
/// departments — every member of each gets the roles, which a department created elsewhere in
/// WeCom would silently widen — and a department path that cannot be decided for departments
/// whose path from the root is unknown (an ancestor outside the WeCom app's visible range).
pub fn check_assignments(policies: &PolicySet, users: &[User], findings: &mut Findings) {
    let without_root_path = departments_without_root_path(users);
    for assignment in &policies.assignments {
        let warn = |findings: &mut Findings, message: String| {
            findings.warning(&assignment.origin, message)
        };
        let matcher = &assignment.matcher;
        let Matcher::Department(name) = matcher else {
            if !users.iter().any(|u| matcher.matches(u)) {
                warn(findings, matches_nobody(matcher, ""));
            }
            continue;
        };
        if name.contains('/') {
            if !users.iter().any(|u| matcher.matches(u)) {
                warn(
                    findings,
                    matches_nobody(
                        matcher,
                        " (a department path starts at the organisation's root, e.g. `Corp/Sales/East`)",
                    ),
                );
            }
            if !without_root_path.is_empty() {
                warn(
                    findings,
                    format!(
                        "department path `{name}` is never matched by {} department(s) whose path from the root \
                         is unknown, as the WeCom app cannot see all their ancestors: {}. Add the organisation's root \
                         to the app's visible range, or assign these departments by department_id",
                        without_root_path.len(),
                        listed(&without_root_path)
                    ),
                );
            }
            continue;
        }
        if !users.iter().any(|u| matcher.matches(u)) {
            warn(findings, matches_nobody(matcher, ""));
            continue;
        }
        // Departments by id where WeCom gives one: two unrelated departments may show the same
        // path when neither path starts at the root.
        let named: BTreeMap<String, String> = users
            .iter()
            .flat_map(|u| &u.departments)
            .filter_map(|d| {
                let at = d.path.iter().position(|n| n.name == *name)?;
                let up_to = Department {
                    path: d.path[..=at].to_vec(),
                    from_root: d.from_root,
                };
                Some((department_key(&up_to), describe(&up_to)))
            })
            .collect();
        if named.len() > 1 {
            let paths: Vec<String> = named.into_values().collect();
            warn(
                findings,
                format!(
                    "department `{name}` names {} departments ({}): the members of each get these roles; \
                     write the path of the one meant, or its department_id",
                    paths.len(),
                    paths.join(", ")
                ),
            );
        }
    }
}

fn matches_nobody(matcher: &Matcher, hint: &str) -> String {
    format!(
        "the assignment to {} matches no user in the directory{hint}",
        matcher.describe()
    )
}

/// Identifies a department: by its WeCom id, else (users file) by its path.
fn department_key(department: &Department) -> String {
    match department.node().id {
        Some(id) => format!("id {id}"),
        None => department.path_string(),
    }
}

/// A department as `check` names it: its path, and its id when the path is not from the root.
fn describe(department: &Department) -> String {
    match department.node().id {
        Some(id) if !department.from_root => format!("{} (id {id})", department.path_string()),
        _ => department.path_string(),
    }
}

/// The users' departments whose path from the root is unknown, described, by department.
fn departments_without_root_path(users: &[User]) -> Vec<String> {
    let unknown: BTreeMap<String, String> = users
        .iter()
        .flat_map(|u| &u.departments)
        .filter(|d| !d.from_root)
        .map(|d| (department_key(d), describe(d)))
        .collect();
    unknown.into_values().collect()
}

/// The first few of `items`, and how many more.
fn listed(items: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        text.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    text
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

    let datasource_masks = policies
        .datasources
        .get(datasource)
        .map_or(&[][..], |d| &d.masks);
    for mask in datasource_masks {
        let hits = check_mask(mask, catalog, &relations, findings);
        if !hits {
            findings.warning(
                &mask.origin,
                format!(
                    "mask `{}` matches no column of datasource `{datasource}`",
                    mask.value.columns
                ),
            );
        }
    }

    if let Some(ds) = policies.datasources.get(datasource) {
        for pattern in &ds.deny_columns {
            if !covers_a_column(&pattern.value, catalog, &relations) {
                findings.warning(
                    &pattern.origin,
                    format!(
                        "deny_columns `{}` matches no column of datasource `{datasource}`",
                        pattern.value
                    ),
                );
            }
        }
    }

    for role in policies.roles.values() {
        let Some(grant) = role.grants.get(datasource) else {
            continue;
        };
        let granted: Vec<(RelationId, &QualifiedName)> = relations
            .iter()
            .filter(|(id, _)| {
                grant
                    .tables
                    .iter()
                    .any(|p| grants_relation(&p.value, catalog.relation(*id)))
            })
            .copied()
            .collect();
        for pattern in &grant.tables {
            if !relations
                .iter()
                .any(|(id, _)| grants_relation(&pattern.value, catalog.relation(*id)))
            {
                let only_by_name = relations
                    .iter()
                    .any(|(_, n)| pattern.value.matches(&[&n.schema, &n.name]));
                let message = if only_by_name {
                    format!(
                        "tables `{}` of role `{}` matches only views, partitions or child tables of datasource `{datasource}`, which a pattern with `*` never grants: name each one",
                        pattern.value, role.name
                    )
                } else {
                    format!(
                        "tables `{}` of role `{}` matches no relation of datasource `{datasource}`",
                        pattern.value, role.name
                    )
                };
                findings.error(&pattern.origin, message);
            }
        }
        check_columns(grant, &role.name, catalog, &granted, findings);
        check_masks(
            grant,
            &role.name,
            datasource_masks,
            catalog,
            &granted,
            findings,
        );
        for (pattern, filter) in &grant.rows {
            let targets = named_tables("rows", pattern, &role.name, &granted, findings);
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
                for column in filter.value.unknown_columns(relation) {
                    findings.error(
                        &filter.origin,
                        format!(
                            "the filter reads `{}`, which is not a column of {name}",
                            column.join(".")
                        ),
                    );
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

/// The granted tables a role's `rows` or `columns` pattern (`key`) names; an error when it
/// names none.
fn named_tables<'g, 'n>(
    key: &str,
    pattern: &Located<NamePattern>,
    role: &str,
    granted: &'g [(RelationId, &'n QualifiedName)],
    findings: &mut Findings,
) -> Vec<&'g (RelationId, &'n QualifiedName)> {
    let tables: Vec<_> = granted
        .iter()
        .filter(|(_, n)| pattern.value.matches(&[&n.schema, &n.name]))
        .collect();
    if tables.is_empty() {
        findings.error(
            &pattern.origin,
            format!(
                "{key} `{}` of role `{role}` matches no table the role grants",
                pattern.value
            ),
        );
    }
    tables
}

fn check_columns(
    grant: &Grant,
    role: &str,
    catalog: &Catalog,
    granted: &[(RelationId, &QualifiedName)],
    findings: &mut Findings,
) {
    for (pattern, names) in &grant.columns {
        let tables = named_tables("columns", pattern, role, granted, findings);
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
        if !covers_a_column(&pattern.value, catalog, granted) {
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

/// Whether a column pattern (`deny_columns`) covers some column of `tables`.
fn covers_a_column(
    pattern: &NamePattern,
    catalog: &Catalog,
    tables: &[(RelationId, &QualifiedName)],
) -> bool {
    tables.iter().any(|(id, name)| {
        catalog
            .relation(*id)
            .columns
            .iter()
            .any(|c| denies(pattern, &name.schema, &name.name, &c.name))
    })
}

/// Whether a mask covers some column of `tables`; an error for each covered column whose type
/// the mask cannot take.
fn check_mask(
    mask: &Located<MaskRule>,
    catalog: &Catalog,
    tables: &[(RelationId, &QualifiedName)],
    findings: &mut Findings,
) -> bool {
    let mut hits = false;
    for (id, name) in tables {
        for column in &catalog.relation(*id).columns {
            if !denies(&mask.value.columns, &name.schema, &name.name, &column.name) {
                continue;
            }
            hits = true;
            if let Err(message) = mask.value.mask.expression(&column.name, &column.type_name) {
                findings.error(&mask.origin, format!("{message} (in {name})"));
            }
        }
    }
    hits
}

/// A role's masks: each covers a column of a granted table, fits its type, and no column gets
/// two different masks (from two patterns, or the role's and the datasource's).
fn check_masks(
    grant: &Grant,
    role: &str,
    datasource_masks: &[Located<MaskRule>],
    catalog: &Catalog,
    granted: &[(RelationId, &QualifiedName)],
    findings: &mut Findings,
) {
    for mask in &grant.masks {
        if !check_mask(mask, catalog, granted, findings) {
            findings.error(
                &mask.origin,
                format!(
                    "mask `{}` of role `{role}` matches no column of a granted table",
                    mask.value.columns
                ),
            );
        }
    }
    for (id, name) in granted {
        for column in &catalog.relation(*id).columns {
            let covering: Vec<&Located<MaskRule>> = grant
                .masks
                .iter()
                .chain(datasource_masks)
                .filter(|m| denies(&m.value.columns, &name.schema, &name.name, &column.name))
                .collect();
            if let Some(other) = covering
                .iter()
                .find(|m| m.value.mask != covering[0].value.mask)
            {
                findings.error(
                    &covering[0].origin,
                    format!(
                        "column {name}.{} gets two masks for role `{role}`: `{}` here and `{}` at {}; keep one",
                        column.name, covering[0].value.mask, other.value.mask, other.origin
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Column, Relation, RelationKind};

    /// Every filter plans: these tests are about what only the catalog can tell.
    struct AnythingPlans;

    impl Planner for AnythingPlans {
        async fn plan(&mut self, _: &str) -> Result<(), String> {
            Ok(())
        }
    }

    fn findings(policy: &str) -> Findings {
        let relation = |name: &str, is_child: bool| Relation {
            name: QualifiedName::new("public", name),
            kind: RelationKind::Table,
            is_child,
            has_children: false,
            columns: [("id", "integer"), ("phone", "text"), ("born", "date")]
                .map(|(name, type_name)| Column {
                    name: name.into(),
                    type_name: type_name.into(),
                    holds_records: false,
                    families: crate::rewrite::operand_traits::TypeFamilies::NONE,
                    collation: 0,
                })
                .to_vec(),
            primary_key: vec![0],
        };
        let catalog = Catalog::new(
            vec![
                relation("customers", false),
                relation("customers_2024", true),
            ],
            [],
            "tablegate",
            "public",
        );
        let policies = PolicySet::from_str("p.toml", policy).unwrap();
        let mut findings = Findings::default();
        let mut planner = AnythingPlans;
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(check_datasource(
                &policies,
                "d",
                &catalog,
                &[],
                &mut planner,
                &mut findings,
            ));
        findings
    }

    #[test]
    fn assignments_matching_nobody_or_several_departments_are_reported() {
        let policies = PolicySet::from_str(
            "p.toml",
            "[role.r]\n\
             [[assign]]\ndepartment = \"Sales\"\nroles = [\"r\"]\n\
             [[assign]]\ndepartment = \"Sales/East\"\nroles = [\"r\"]\n\
             [[assign]]\ndepartment = \"Corp/Sales/East\"\nroles = [\"r\"]\n\
             [[assign]]\nuser = \"nobody\"\nroles = [\"r\"]\n",
        )
        .unwrap();
        let users = crate::directory::users_file::parse(
            "[[user]]\nuserid = \"alice\"\ndepartments = [\"Corp/Sales/East\"]\n\
             [[user]]\nuserid = \"mallory\"\ndepartments = [\"Corp/Warehouse/Sales\"]\n",
            "users.toml",
        )
        .unwrap();
        let mut findings = Findings::default();
        check_assignments(&policies, &users, &mut findings);
        let warnings: Vec<String> = findings.warnings.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "p.toml:2: department `Sales` names 2 departments (Corp/Sales, Corp/Warehouse/Sales): \
                 the members of each get these roles; write the path of the one meant, or its department_id",
                "p.toml:5: the assignment to department Sales/East matches no user in the directory \
                 (a department path starts at the organisation's root, e.g. `Corp/Sales/East`)",
                "p.toml:11: the assignment to user nobody matches no user in the directory",
            ]
        );
        assert!(findings.errors.is_empty());
    }

    /// Found by red-team review: with `Corp` and `Corp/Ops` outside the app's visible range,
    /// `Corp/Finance` and `Corp/Ops/Finance` both showed as `Finance`, so `check` saw one
    /// department and skipped the path assignment altogether.
    #[test]
    fn departments_without_a_path_from_the_root_are_reported() {
        use crate::wecom::api::ApiDepartment;
        use crate::wecom::department_paths::DepartmentPaths;
        let paths = DepartmentPaths::new(
            &[
                (5, "Finance", 1),
                (6, "Payroll", 5),
                (12, "Finance", 10),
                (13, "Payroll", 12),
            ]
            .map(|(id, name, parentid)| ApiDepartment {
                id,
                name: name.into(),
                parentid,
            }),
        );
        let member = |userid: &str, department: u64| User {
            userid: userid.into(),
            name: userid.into(),
            email: None,
            departments: vec![paths.get(department).unwrap().clone()],
            position: None,
            attributes: Default::default(),
            enabled: true,
        };
        let users = [member("paula", 6), member("oscar", 13)];
        let policies = PolicySet::from_str(
            "p.toml",
            "[role.r]\n\
             [[assign]]\ndepartment = \"Finance/Payroll\"\nroles = [\"r\"]\n\
             [[assign]]\ndepartment = \"Finance\"\nroles = [\"r\"]\n",
        )
        .unwrap();
        let mut findings = Findings::default();
        check_assignments(&policies, &users, &mut findings);
        let warnings: Vec<String> = findings.warnings.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "p.toml:2: the assignment to department Finance/Payroll matches no user in the directory \
                 (a department path starts at the organisation's root, e.g. `Corp/Sales/East`)",
                "p.toml:2: department path `Finance/Payroll` is never matched by 2 department(s) whose path \
                 from the root is unknown, as the WeCom app cannot see all their ancestors: \
                 …/Finance/Payroll (id 13), …/Finance/Payroll (id 6). Add the organisation's root to the \
                 app's visible range, or assign these departments by department_id",
                "p.toml:5: department `Finance` names 2 departments (…/Finance (id 12), …/Finance (id 5)): \
                 the members of each get these roles; write the path of the one meant, or its department_id",
            ]
        );
    }

    #[test]
    fn a_pattern_matching_only_child_tables_grants_nothing_and_says_why() {
        let found = findings(
            "[datasource.d]\n[role.r.datasource.d]\ntables = [\"public.customers_*\", \"public.customers_2024\"]\n",
        );
        let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            errors,
            [
                "p.toml:3: tables `public.customers_*` of role `r` matches only views, partitions or child tables of datasource `d`, which a pattern with `*` never grants: name each one"
            ]
        );
    }

    #[test]
    fn masks_must_match_fit_their_column_and_not_conflict() {
        let found = findings(
            "[datasource.d]\nmask.\"*.phone\" = \"hash\"\nmask.\"*.fax\" = \"null\"\n\
             [role.r.datasource.d]\ntables = [\"public.customers\"]\n\
             mask.\"customers.phone\" = \"last4\"\nmask.\"customers.id\" = \"year\"\n\
             mask.\"customers.born\" = \"year\"\nmask.\"orders.note\" = \"null\"\n",
        );
        let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        let warnings: Vec<String> = found.warnings.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            warnings,
            ["p.toml:3: mask `*.fax` matches no column of datasource `d`"]
        );
        assert!(
            errors.contains(
                &"p.toml:7: the `year` mask applies to date and timestamp columns; `id` is integer (in public.customers)".to_string()
            ),
            "{errors:?}"
        );
        assert!(
            errors.contains(
                &"p.toml:9: mask `orders.note` of role `r` matches no column of a granted table"
                    .to_string()
            ),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with(
                "p.toml:6: column public.customers.phone gets two masks for role `r`: `last4` here and `hash` at p.toml:2"
            )),
            "{errors:?}"
        );
        assert_eq!(errors.len(), 3, "{errors:?}");
    }

    #[test]
    fn patterns_that_name_nothing_are_reported() {
        let found = findings(
            "[datasource.d]\ndeny_columns = [\"*.fax\"]\n\
             [role.r.datasource.d]\ntables = [\"public.customers\"]\n\
             deny_columns = [\"customers.fax\"]\n\
             rows.\"public.orders\" = \"id = 1\"\n\
             columns.\"public.orders\" = [\"id\"]\n\
             columns.\"public.customers\" = [\"id\", \"fax\"]\n",
        );
        let errors: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
        let warnings: Vec<String> = found.warnings.iter().map(|e| e.to_string()).collect();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].ends_with("deny_columns `*.fax` matches no column of datasource `d`"),
            "{warnings:?}"
        );
        for expected in [
            "deny_columns `customers.fax` of role `r` matches no column of a granted table",
            "rows `public.orders` of role `r` matches no table the role grants",
            "columns `public.orders` of role `r` matches no table the role grants",
            "columns `public.customers` lists `fax`, which none of its tables has",
        ] {
            assert!(
                errors.iter().any(|e| e.ends_with(expected)),
                "{expected}: {errors:?}"
            );
        }
        assert_eq!(errors.len(), 4, "{errors:?}");
    }
}
