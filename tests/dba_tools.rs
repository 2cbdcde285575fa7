//! The DBA's commands as a DBA runs them: the `tablegate` binary with a configuration folder
//! (tablegate.toml, policies, users file) against a real PostgreSQL database.

mod support;

use std::path::Path;
use std::process::Output;

use support::database::TempDatabase;

const SCHEMA: &str = "
CREATE TABLE orders (id int PRIMARY KEY, region text, amount numeric, customer_id int);
CREATE TABLE customers (id int PRIMARY KEY, name text, phone text, email text);
INSERT INTO orders SELECT g, (ARRAY['East','West','North'])[1 + g % 3], g * 10, 1 + g % 3
    FROM generate_series(1, 9) g;
INSERT INTO customers VALUES (1, 'Ann', '555-0101', 'ann@example.com'),
    (2, 'Bo', '555-0202', 'bo@example.com'), (3, 'Cy', NULL, NULL);
";

const POLICY: &str = r#"[datasource.shop]
deny_columns = ["*.phone"]

[role.sales_rep.datasource.shop]
tables = ["public.orders", "public.customers"]
rows."public.orders" = "region IN ({{user.regions}})"
mask."customers.email" = "hash"

[[assign]]
department = "Sales"
roles = ["sales_rep"]
vars = { regions = ["East", "North"] }
"#;

const USERS: &str = r#"
[[user]]
userid = "alice"
departments = ["Corp/Sales"]
"#;

/// A configuration folder for `db`, with `files` (relative path, text) added.
fn configuration(db: &TempDatabase, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[directory]\nusers_file = \"users.toml\"\nsqlite = \"directory.db\"\n\n\
         [datasource.shop]\nurl = \"{}\"\ncatalog_refresh_secs = 0\n",
        db.url()
    );
    write(dir.path(), "tablegate.toml", &config);
    write(dir.path(), "users.toml", USERS);
    write(dir.path(), "policies/shop.toml", POLICY);
    for (path, text) in files {
        write(dir.path(), path, text);
    }
    dir
}

fn write(dir: &Path, relative: &str, text: &str) {
    let path = dir.join(relative);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

async fn tablegate(dir: &Path, args: &[&str]) -> Output {
    let config = dir.join("tablegate.toml");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_tablegate"));
    command
        .arg(args[0])
        .arg("--config")
        .arg(&config)
        .args(&args[1..]);
    command.output().await.expect("tablegate runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn explain_prints_the_rewritten_sql_and_the_policy_lines_behind_it() {
    let db = TempDatabase::with(SCHEMA).await;
    let dir = configuration(&db, &[]);
    let policy = dir.path().join("policies/shop.toml").display().to_string();
    let output = tablegate(
        dir.path(),
        &[
            "explain",
            "--user",
            "alice",
            "--database",
            "shop",
            "SELECT o.id, c.email, c.phone FROM orders o JOIN customers c ON c.id = o.customer_id",
        ],
    )
    .await;
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for line in [
        "user alice on datasource shop".to_string(),
        format!("  sales_rep: assigned to department Sales at {policy}:9"),
        "  user.regions = [\"East\", \"North\"]".into(),
        format!("    from the assignment at {policy}:9: [\"East\", \"North\"]"),
        "  public.orders".into(),
        format!("    rows of role sales_rep ({policy}:6): region IN ({{{{user.regions}}}})"),
        "      bound: region IN ('East', 'North')".into(),
        "  public.customers".into(),
        "    column phone: hidden".into(),
        format!("      deny_columns of datasource shop (every role) at {policy}:2"),
        "    column email: masked".into(),
        format!("      mask `hash` of role sales_rep at {policy}:7"),
        "  no: every condition is leakproof, or no source is row-filtered".into(),
        "  tablegate: hidden by policy and left out of the result: c.phone".into(),
        "  tablegate: masked by policy, shown masked: c.email".into(),
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing line {line:?} in:\n{text}"
        );
    }
    // The printed SQL is what runs: PostgreSQL accepts it.
    let sql = text
        .lines()
        .skip_while(|l| *l != "rewritten SQL")
        .nth(1)
        .unwrap()
        .trim();
    let rows = support::database::run(&db.connect().await, sql)
        .await
        .unwrap();
    assert_eq!(rows.columns, ["id", "email"]);
    assert_eq!(rows.rows.len(), 6, "East and North orders only");

    let refused = tablegate(
        dir.path(),
        &[
            "explain",
            "--user",
            "alice",
            "--database",
            "shop",
            "SELECT id FROM customers ORDER BY email",
        ],
    )
    .await;
    assert_eq!(refused.status.code(), Some(1));
    let text = stdout(&refused);
    assert!(
        text.contains(
            "\nrefused\n  permission denied for column customers.email: it is masked by policy"
        ),
        "{text}"
    );
    assert!(text.contains("    column email: masked"), "{text}");
}

const CASES: &str = r#"[[case]]
name = "reps see their regions only"
user = "alice"
database = "shop"
query = "SELECT DISTINCT region FROM orders"
expect.rows_where = "region IN ('East', 'North')"
expect.row_count = 2

[[case]]
name = "a wrong expectation"
user = "alice"
database = "shop"
query = "SELECT id, email FROM customers"
expect.columns = ["id", "email", "phone"]

[[case]]
name = "phones cannot be searched"
user = "alice"
database = "shop"
query = "SELECT id FROM customers WHERE phone = '555-0101'"
expect.refused = true
expect.refusal_contains = "hidden by policy"
"#;

#[tokio::test]
async fn test_policies_reports_each_case_with_its_line_and_fails_on_any_failure() {
    let db = TempDatabase::with(SCHEMA).await;
    let dir = configuration(&db, &[("policies/tests/shop.toml", CASES)]);
    let cases = dir
        .path()
        .join("policies/tests/shop.toml")
        .display()
        .to_string();
    let output = tablegate(dir.path(), &["test-policies"]).await;
    let text = stdout(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            format!("PASS {cases}:1  reps see their regions only"),
            format!("FAIL {cases}:9  a wrong expectation"),
            "       columns are [\"id\", \"email\"], expected [\"id\", \"email\", \"phone\"]"
                .into(),
            format!("PASS {cases}:16  phones cannot be searched"),
            String::new(),
            "3 cases: 2 passed, 1 failed".into(),
        ]
    );

    // Only the passing cases: success. A folder given explicitly replaces policies/tests.
    let passing = CASES.replace(
        "expect.columns = [\"id\", \"email\", \"phone\"]",
        "expect.columns = [\"id\", \"email\"]",
    );
    write(dir.path(), "other/cases.toml", &passing);
    let other = dir.path().join("other").display().to_string();
    let output = tablegate(dir.path(), &["test-policies", "--tests", &other]).await;
    assert!(output.status.success(), "{}", stdout(&output));

    // A mistake in a case file is reported at its line, before anything runs.
    write(
        dir.path(),
        "other/broken.toml",
        "[[case]]\nuser = \"alice\"\ndatabase = \"shop\"\nquery = \"SELECT 1\"\nexpect.rows_where = \"(SELECT true)\"\n",
    );
    let output = tablegate(dir.path(), &["test-policies", "--tests", &other]).await;
    assert_eq!(output.status.code(), Some(2));
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        errors.contains("broken.toml:5: `rows_where` cannot contain a subquery"),
        "{errors}"
    );
}
