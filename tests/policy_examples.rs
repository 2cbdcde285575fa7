//! The shipped policies (policies/) and their test cases, run against real PostgreSQL
//! loaded with the example data: every case passes, and a policy that leaks fails the case
//! that guards it, naming the case's line.

mod support;

use std::path::{Path, PathBuf};

use tablegate::config::Config;
use tablegate::directory::users_file;
use tablegate::policy::PolicySet;
use tablegate::policy_tests::{Case, Suite, Verdict, load_dir};

use support::database::TempDatabase;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn examples() -> PathBuf {
    repo().join("examples")
}

/// The example databases, and a configuration naming them as the examples' datasources.
async fn databases() -> (TempDatabase, TempDatabase, Config) {
    let read = |name: &str| std::fs::read_to_string(examples().join("data").join(name)).unwrap();
    let sales = TempDatabase::with(&read("sales_dw.sql")).await;
    let hr = TempDatabase::with(&read("hr.sql")).await;
    let config = Config::parse(
        &format!(
            "[datasource.sales_dw]\nurl = \"{}\"\n[datasource.hr]\nurl = \"{}\"\n",
            sales.url(),
            hr.url()
        ),
        examples(),
    )
    .unwrap();
    (sales, hr, config)
}

async fn run_all(config: &Config, policies: &PolicySet, cases: &[Case]) -> Vec<(String, Verdict)> {
    let users = users_file::load(&examples().join("users.toml")).unwrap();
    let mut suite = Suite::new(config, policies, &users);
    let mut verdicts = Vec::new();
    for case in cases {
        verdicts.push((
            format!("{} {}", case.origin, case.name),
            suite.run(case).await,
        ));
    }
    verdicts
}

#[tokio::test]
async fn every_example_case_passes() {
    let (_sales, _hr, config) = databases().await;
    let policies = PolicySet::load_dir(&repo().join("policies")).unwrap();
    let cases = load_dir(&repo().join("policies/tests")).unwrap();
    assert_eq!(cases.len(), 20);
    let failures: Vec<_> = run_all(&config, &policies, &cases)
        .await
        .into_iter()
        .filter(|(_, v)| *v != Verdict::Pass)
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[tokio::test]
async fn a_leaking_policy_fails_the_case_that_guards_it() {
    let (_sales, _hr, config) = databases().await;
    // A careless edit: the reps' row filter on orders is gone, and phones are no longer masked.
    let sales = std::fs::read_to_string(repo().join("policies/sales.toml"))
        .unwrap()
        .replace(
            "rows.\"public.orders\" = \"region IN ({{user.regions}})\"\n",
            "",
        )
        .replace(
            "# Enough to tell a customer on the phone which number is on file.\nmask.\"customers.phone\" = \"last4\"\n",
            "",
        );
    let read = |name: &str| std::fs::read_to_string(repo().join("policies").join(name)).unwrap();
    let policies = PolicySet::from_sources(&[
        ("sales.toml".into(), sales),
        ("hr.toml".into(), read("hr.toml")),
        ("assignments.toml".into(), read("assignments.toml")),
    ])
    .unwrap();
    let cases = load_dir(&repo().join("policies/tests")).unwrap();
    let verdicts = run_all(&config, &policies, &cases).await;
    let failed: Vec<&(String, Verdict)> = verdicts
        .iter()
        .filter(|(_, v)| *v != Verdict::Pass)
        .collect();
    let names: Vec<&str> = failed
        .iter()
        .map(|(n, _)| n.rsplit_once(".toml:").unwrap().1)
        .collect();
    assert_eq!(
        names,
        [
            "4 sales reps see only their regions' orders",
            "20 a rep in the West sees the West only",
            "29 reps see phone numbers masked, never in full",
            "37 nobody searches by a masked phone number",
            "45 nor orders by one",
        ],
        "{failed:#?}"
    );
    let Verdict::Fail(findings) = &failed[0].1 else {
        unreachable!()
    };
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert!(
        findings[0].starts_with(
            "2 of 4 rows do not satisfy `region IN ('East', 'North')`, e.g. (region): ("
        ) && findings[0].contains("(West)"),
        "{findings:?}"
    );
}

/// The README's policy example is a valid set that does what its comments say: the phone is
/// masked, the email hidden, the orders filtered by the assignment's regions.
#[test]
fn the_readme_policy_example_loads_and_behaves_as_its_comments_say() {
    use tablegate::catalog::catalog_of_tables;
    use tablegate::policy::Access;
    use tablegate::rewrite::{Context, SearchPath, rewrite};

    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let example = readme
        .split("## Policy files")
        .nth(1)
        .and_then(|s| s.split("```toml\n").nth(1))
        .and_then(|s| s.split("```").next())
        .expect("a ```toml block under \"## Policy files\"");
    let policies = PolicySet::from_str("README.md", example).unwrap();
    let catalog = catalog_of_tables(&[
        ("public", "orders", &["id", "region", "amount"]),
        (
            "public",
            "customers",
            &["id", "name", "region", "phone", "email"],
        ),
    ]);
    let user = users_file::parse(
        "[[user]]\nuserid = \"alice\"\ndepartments = [\"Corp/Sales/East\"]\n",
        "users",
    )
    .unwrap()
    .remove(0);
    let access = Access::build(&policies, &catalog, &user, "sales_dw");
    let path = SearchPath::parse_setting("public").unwrap();
    let context = Context {
        catalog: &catalog,
        access: &access,
        search_path: &path,
        risky_parameter_types: false,
    };
    let customers = rewrite("SELECT * FROM customers", &context).unwrap().sql();
    assert!(
        customers.contains("****"),
        "phone masked with last4: {customers}"
    );
    assert!(!customers.contains("email"), "email hidden: {customers}");
    let orders = rewrite("SELECT * FROM orders", &context).unwrap().sql();
    assert!(
        orders.contains("region IN ('East', 'North')"),
        "orders filtered by the assigned regions: {orders}"
    );
}
