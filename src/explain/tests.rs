//! Tests of `explain`: roles, variables, filters and column rules with their policy lines,
//! and refusals.

use super::*;
use crate::catalog::catalog_of_tables;
use crate::directory::users_file;
use crate::policy::{ColumnEffect, Mask};

const POLICY: &str = r#"[datasource.d]
deny_columns = ["*.phone"]

[role.rep.datasource.d]
tables = ["public.orders", "public.customers", "public.visits"]
rows."public.orders" = "region IN ({{user.regions}}) AND owner = {{user.userid}}"
mask."customers.name" = "last4"
rows."public.visits" = "day > '2020'"

[role.auditor.datasource.d]
tables = ["public.orders"]
columns."public.orders" = ["id", "region"]

[role.hr.datasource.elsewhere]
tables = ["public.people"]

[datasource.elsewhere]

[[assign]]
department = "Sales"
roles = ["rep", "hr"]
vars = { regions = ["East"] }

[[assign]]
user = "alice"
roles = ["auditor"]
vars = { regions = ["North"] }
"#;

fn explained(sql: &str) -> Explanation {
    let catalog = catalog_of_tables(&[
        ("public", "orders", &["id", "region", "owner", "amount"]),
        ("public", "customers", &["id", "name", "phone"]),
        ("public", "visits", &["day"]),
    ]);
    let policies = PolicySet::from_str("p.toml", POLICY).unwrap();
    let user = users_file::parse(
        "[[user]]\nuserid = \"alice\"\ndepartments = [\"Corp/Sales\"]\nattributes = { desk = \"7\" }\n",
        "u",
    )
    .unwrap()
    .remove(0);
    let path = SearchPath::parse_setting("public").unwrap();
    explain(&policies, &catalog, &user, "d", &path, sql)
}

#[test]
fn roles_come_with_the_assignment_that_gave_them() {
    let e = explained("SELECT 1");
    let roles: Vec<(&str, &str, usize, bool)> = e
        .roles
        .iter()
        .map(|r| {
            (
                r.held.role.as_str(),
                r.held.via.as_str(),
                r.held.origin.line,
                r.grants_here,
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("rep", "department Sales", 19, true),
            ("hr", "department Sales", 19, false),
            ("auditor", "user alice", 24, true),
        ]
    );
}

#[test]
fn variables_show_their_value_and_every_source() {
    let e = explained("SELECT 1");
    let names: Vec<&str> = e.variables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["regions", "userid"],
        "assigned, and read by filters"
    );
    let regions = &e.variables[0];
    assert_eq!(
        regions.value.as_ref().unwrap().to_string(),
        "[\"East\", \"North\"]"
    );
    let lines: Vec<usize> = regions
        .sources
        .iter()
        .map(|s| match s {
            VariableSource::Assignment { origin, .. } => origin.line,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(lines, [19, 24]);
    assert_eq!(e.variables[1].sources, [VariableSource::Directory]);
}

#[test]
fn tables_read_show_filters_and_column_rules_with_their_lines() {
    let e = explained("SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.id");
    let names: Vec<String> = e.tables.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["public.orders", "public.customers"]);

    let orders = &e.tables[0];
    assert_eq!(orders.filters.len(), 1);
    assert_eq!(orders.filters[0].role, "rep");
    assert_eq!(orders.filters[0].origin.line, 6);
    assert_eq!(
        orders.filters[0].bound,
        "region IN ('East', 'North') AND owner = 'alice'"
    );
    // amount and owner: the auditor's columns list leaves them out; rep shows them on its rows.
    assert_eq!(orders.unfiltered_roles, ["auditor"]);
    let amount = orders
        .columns
        .iter()
        .find(|c| c.column == "amount")
        .unwrap();
    assert_eq!(amount.shown, Shown::ByOtherRoles);
    assert_eq!(amount.rules[0].effect, ColumnEffect::NotListed);
    assert_eq!(amount.rules[0].origin.line, 12);

    let customers = &e.tables[1];
    let shown: Vec<(&str, Shown)> = customers
        .columns
        .iter()
        .map(|c| (c.column.as_str(), c.shown))
        .collect();
    assert_eq!(shown, [("name", Shown::Masked), ("phone", Shown::Hidden)]);
    assert_eq!(
        customers.columns[0].rules[0].effect,
        ColumnEffect::Masked(Mask::Last4)
    );
    assert_eq!(customers.columns[1].rules[0].role, None, "the datasource's");
    assert_eq!(customers.columns[1].rules[0].origin.line, 2);

    let Outcome::Rewritten {
        sql,
        notices,
        fenced,
    } = &e.outcome
    else {
        panic!("refused: {:?}", e.outcome);
    };
    assert!(sql.starts_with("SELECT o.id, c.name FROM (SELECT"), "{sql}");
    assert!(!fenced);
    assert_eq!(
        notices,
        &["tablegate: masked by policy, shown masked: c.name"]
    );
}

#[test]
fn a_refusal_still_shows_the_tables_read_up_to_it() {
    let e = explained("SELECT id FROM customers WHERE phone = '1'");
    let Outcome::Refused(refusal) = &e.outcome else {
        panic!("not refused");
    };
    assert!(refusal.message.contains("customers.phone"), "{refusal}");
    assert_eq!(e.tables.len(), 1);
    assert_eq!(e.tables[0].columns[1].column, "phone");
}

#[test]
fn fencing_is_reported() {
    let e = explained("SELECT day FROM visits WHERE 1 / (length(day) - 3) > 0");
    assert!(
        matches!(e.outcome, Outcome::Rewritten { fenced: true, .. }),
        "{:?}",
        e.outcome
    );
}

#[test]
fn the_text_names_every_link_with_its_line() {
    let text =
        explained("SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.id").to_string();
    for line in [
        "user alice on datasource d",
        "  rep: assigned to department Sales at p.toml:19",
        "  hr: assigned to department Sales at p.toml:19 (grants nothing on d)",
        "  user.regions = [\"East\", \"North\"]",
        "    from the assignment at p.toml:24: [\"North\"]",
        "  user.userid = \"alice\"",
        "    from the user's directory entry",
        "  public.orders",
        "    rows of role rep (p.toml:6): region IN ({{user.regions}}) AND owner = {{user.userid}}",
        "      bound: region IN ('East', 'North') AND owner = 'alice'",
        "    rows of role auditor: every row (no row filter)",
        "    column amount: shown only on rows of the roles that show it",
        "      not in the columns list of role auditor at p.toml:12",
        "    column name: masked",
        "      mask `last4` of role rep at p.toml:7",
        "    column phone: hidden",
        "      deny_columns of datasource d (every role) at p.toml:2",
        "  no: every condition is leakproof, or no source is row-filtered",
        "  tablegate: masked by policy, shown masked: c.name",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }
    let refused = explained("SELECT phone FROM customers").to_string();
    assert!(
        refused.contains("\nrefused\n  nothing left to return"),
        "{refused}"
    );
}
