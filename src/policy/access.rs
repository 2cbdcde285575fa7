//! Access: what one user may see on one datasource, resolved against one catalog snapshot.
//!
//! For every relation the user's roles grant, this fixes the visible columns and builds the
//! *protected source* ([`super::source`]): `SELECT <visible columns> FROM "schema"."table" WHERE
//! <row filters>` with the user's values bound as literals and masked columns projected as their
//! masks. The rewriter replaces each occurrence of the relation by that source. With several
//! roles a row is visible if any role admits it, and a column's value shows on rows admitted by a
//! role that grants the column (NULL elsewhere), plainly where such a role shows it plainly.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write;

use sqlparser::ast::Query;

use super::assignment::HeldRole;
use super::mask::Mask;
use super::origin::Origin;
use super::set::{Grant, PolicySet, grants_relation};
use super::source::TableBuilder;
use crate::catalog::{Catalog, RelationId, SYSTEM_SCHEMAS};
use crate::directory::User;
use crate::refusal::Refusal;

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
    /// The filter as the policy writes it.
    pub text: String,
    /// The filter with the user's values bound, as SQL.
    pub bound: String,
    pub origin: Origin,
}

/// A policy line that keeps a column from one role (or, with `role` None, from everyone on the
/// datasource) as it is (for `explain`).
#[derive(Clone, Debug, PartialEq)]
pub struct ColumnRule {
    pub column: String,
    pub role: Option<String>,
    pub effect: ColumnEffect,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ColumnEffect {
    /// A `deny_columns` pattern hides it.
    Denied,
    /// The role's `columns` allow-list for the table leaves it out.
    NotListed,
    /// A `mask` shows it masked.
    Masked(Mask),
}

#[derive(Clone, Debug)]
pub struct TableAccess {
    /// The user's roles that grant the relation, in the user's role order.
    pub roles: Vec<String>,
    /// Per catalog column: may the user see it (plainly or masked)?
    pub visible: Vec<bool>,
    /// Per catalog column: does the user see it masked on some or all rows? Such a column may
    /// only be selected as it is.
    pub masked: Vec<bool>,
    /// The source to read, or why the relation cannot be read (a missing variable, a broken filter).
    pub source: Result<Source, Refusal>,
    pub filters: Vec<AppliedFilter>,
    /// Every policy line that hides or masks a column for one of the user's roles.
    pub column_rules: Vec<ColumnRule>,
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
                    .filter(|(_, g)| g.tables.iter().any(|p| grants_relation(&p.value, relation)))
                    .collect();
                if granting.is_empty() {
                    continue;
                }
                let builder = TableBuilder {
                    catalog,
                    relation: id,
                    user,
                    entitlements: &entitlements,
                    datasource: datasource_policy,
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

    fn masked_access(policy: &str) -> (Catalog, Access) {
        let column = |(name, type_name): &(&str, &str)| crate::catalog::Column {
            name: name.to_string(),
            type_name: type_name.to_string(),
            holds_records: false,
            families: crate::rewrite::operand_traits::TypeFamilies::NONE,
            collation: 0,
        };
        let relation = |name: &str, columns: &[(&str, &str)]| crate::catalog::Relation {
            name: crate::names::QualifiedName::new("public", name),
            kind: crate::catalog::RelationKind::Table,
            is_child: false,
            has_children: false,
            columns: columns.iter().map(column).collect(),
            primary_key: vec![0],
        };
        let catalog = Catalog::new(
            vec![
                relation(
                    "customers",
                    &[
                        ("id", "integer"),
                        ("name", "text"),
                        ("phone", "character varying(20)"),
                        ("born", "date"),
                        ("region", "text"),
                    ],
                ),
                relation("orders", &[("id", "integer"), ("region", "text")]),
            ],
            [],
            "tablegate",
            "public",
        );
        let policies = PolicySet::from_str("p.toml", policy).unwrap();
        let access = Access::build(&policies, &catalog, &alice(), "d");
        (catalog, access)
    }

    fn customers(catalog: &Catalog, access: &Access) -> TableAccess {
        let id = catalog
            .lookup(&crate::names::QualifiedName::new("public", "customers"))
            .unwrap();
        access.table(id).expect("granted").clone()
    }

    #[test]
    fn a_masked_column_is_its_mask_under_its_own_name() {
        let (catalog, access) = masked_access(
            "[datasource.d]\nmask.\"*.born\" = \"year\"\n\
             [role.rep.datasource.d]\ntables=[\"public.*\"]\nmask.\"customers.phone\" = \"last4\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"rep\"]\n",
        );
        assert_eq!(
            source_sql(&catalog, &access, "public", "customers"),
            "SELECT \"id\", \"name\", '****' || pg_catalog.right(\"phone\"::TEXT, \
             CASE WHEN (pg_catalog.length(\"phone\"::TEXT) > 4) THEN 4 ELSE 0 END) AS \"phone\", \
             pg_catalog.date_trunc('year', \"born\"::TIMESTAMP)::DATE AS \"born\", \"region\" \
             FROM \"public\".\"customers\""
        );
        let table = customers(&catalog, &access);
        assert_eq!(table.masked, [false, false, true, true, false]);
        assert_eq!(table.visible, [true; 5]);
        assert_eq!(table.column_rules.len(), 2);
        assert_eq!(
            table.column_rules[0],
            ColumnRule {
                column: "phone".into(),
                role: Some("rep".into()),
                effect: ColumnEffect::Masked(Mask::Last4),
                origin: Origin {
                    file: "p.toml".into(),
                    line: 5
                },
            }
        );
        assert_eq!(table.column_rules[1].role, None, "the datasource's mask");
        assert_eq!(
            source_sql(&catalog, &access, "public", "orders"),
            "WHOLE",
            "tables without masked columns are read directly"
        );
    }

    #[test]
    fn a_role_showing_the_column_plainly_wins_on_the_rows_it_admits() {
        let (catalog, access) = masked_access(
            "[datasource.d]\n\
             [role.east.datasource.d]\ntables=[\"public.customers\"]\nrows.\"public.customers\"=\"region = 'East'\"\n\
             [role.all.datasource.d]\ntables=[\"public.customers\"]\nmask.\"customers.phone\"=\"null\"\nmask.\"customers.name\"=\"hash\"\n\
             rows.\"public.customers\"=\"id > 0\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"all\", \"east\"]\n",
        );
        let sql = source_sql(&catalog, &access, "public", "customers");
        assert!(
            sql.contains(
                "CASE WHEN (region = 'East') THEN \"phone\" ELSE CASE WHEN (false) THEN \"phone\" END END AS \"phone\""
            ),
            "{sql}"
        );
        assert!(
            sql.contains("CASE WHEN (region = 'East') THEN \"name\" ELSE pg_catalog.encode("),
            "{sql}"
        );
        assert!(
            sql.ends_with("WHERE (id > 0) OR (region = 'East')"),
            "{sql}"
        );
        assert_eq!(
            customers(&catalog, &access).masked,
            [false, true, true, false, false]
        );

        // An unfiltered role showing the column plainly shows it plainly everywhere.
        let (catalog, access) = masked_access(
            "[datasource.d]\n\
             [role.all.datasource.d]\ntables=[\"public.customers\"]\n\
             [role.masking.datasource.d]\ntables=[\"public.customers\"]\nmask.\"customers.phone\"=\"null\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"masking\", \"all\"]\n",
        );
        assert_eq!(customers(&catalog, &access).masked, [false; 5]);
        assert_eq!(
            source_sql(&catalog, &access, "public", "customers"),
            "SELECT \"id\", \"name\", \"phone\", \"born\", \"region\" FROM \"public\".\"customers\""
        );
    }

    #[test]
    fn masks_of_several_roles_apply_on_the_rows_each_admits_and_deny_wins_over_mask() {
        let (catalog, access) = masked_access(
            "[datasource.d]\ndeny_columns=[\"customers.name\"]\n\
             [role.a.datasource.d]\ntables=[\"public.customers\"]\nrows.\"public.customers\"=\"region = 'East'\"\n\
             mask.\"customers.phone\"=\"last4\"\nmask.\"customers.name\"=\"hash\"\n\
             [role.b.datasource.d]\ntables=[\"public.customers\"]\nrows.\"public.customers\"=\"region = 'West'\"\n\
             mask.\"customers.phone\"=\"hash\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"a\", \"b\"]\n",
        );
        let sql = source_sql(&catalog, &access, "public", "customers");
        assert!(
            sql.contains("CASE WHEN (region = 'East') THEN '****' || pg_catalog.right("),
            "{sql}"
        );
        assert!(
            sql.contains(") ELSE pg_catalog.encode(pg_catalog.sha256("),
            "{sql}"
        );
        assert!(!sql.contains("\"name\""), "denied beats masked: {sql}");
        let table = customers(&catalog, &access);
        assert_eq!(table.visible, [true, false, true, true, true]);
        assert!(
            table.column_rules.iter().any(|r| r.column == "name"
                && r.effect == ColumnEffect::Denied
                && r.role.is_none()),
            "{:?}",
            table.column_rules
        );
    }

    #[test]
    fn conflicting_masks_or_a_mask_the_type_cannot_take_refuse_the_table() {
        let (catalog, access) = masked_access(
            "[datasource.d]\nmask.\"*.phone\"=\"null\"\n\
             [role.r.datasource.d]\ntables=[\"public.customers\"]\nmask.\"customers.phone\"=\"last4\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"r\"]\n",
        );
        let err = customers(&catalog, &access).source.unwrap_err();
        assert!(
            err.message
                .contains("has two masks for role `r`: `last4` (p.toml:5) and `null` (p.toml:2)"),
            "{err}"
        );
        let (catalog, access) = masked_access(
            "[datasource.d]\n[role.r.datasource.d]\ntables=[\"public.customers\"]\nmask.\"customers.name\"=\"year\"\n\
             [[assign]]\nuser=\"alice\"\nroles=[\"r\"]\n",
        );
        let err = customers(&catalog, &access).source.unwrap_err();
        assert!(err.message.contains("`name` is text (p.toml:4)"), "{err}");
    }
}
