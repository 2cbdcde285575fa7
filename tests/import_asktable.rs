//! `tablegate import-asktable` on AskTable's documented examples, against real databases: what
//! it writes, what it reports it could not express, and that the written policies enforce what
//! the AskTable ones said when queries run under them.

mod support;

use std::path::Path;
use std::process::Output;

use support::database::{TempDatabase, run};

const HR: &str = "
CREATE TABLE employees (employee_id int PRIMARY KEY, name text, phone_number text,
    department_id int);
CREATE TABLE salaries (employee_id int, amount numeric);
CREATE TABLE leaves (employee_id int, day date);
CREATE TABLE departments (id int PRIMARY KEY, name text);
INSERT INTO employees VALUES (1, 'Zhang San', '13800000001', 1), (2, 'Li Na', '13800000002', 1),
    (3, 'Wang Wu', '13800000003', 2);
INSERT INTO salaries VALUES (1, 9000), (2, 12000), (3, 15000);
INSERT INTO leaves VALUES (1, '2024-05-02'), (2, '2024-05-10'), (2, '2024-05-11'),
    (3, '2024-05-20');
INSERT INTO departments VALUES (1, 'Sales'), (2, 'Finance');
";

const SHOP: &str = r#"
CREATE TABLE "user" (id int, name text, password_hash text, created_at timestamptz);
CREATE TABLE shop (id int, merchantId int, city_id int, status text, pwd_hint text);
CREATE TABLE shop_orders (id int, region text, amount numeric);
CREATE TABLE tmp_orders (id int, region text);
INSERT INTO shop_orders VALUES (1, 'East', 10), (2, 'West', 20), (3, 'Test', 30);
"#;

const USERS: &str = r#"
[[user]]
userid = "lina"
attributes = { employee_id = "2" }

[[user]]
userid = "hana"

[[user]]
userid = "wei"
attributes = { user_region = "West" }
"#;

const ASSIGNMENTS: &str = r#"
[[assign]]
user = "lina"
roles = ["comm_user"]

[[assign]]
user = "hana"
roles = ["hr_viewer"]

[[assign]]
user = "wei"
roles = ["regional"]
"#;

struct Setup {
    _hr: TempDatabase,
    _shop: TempDatabase,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let hr = TempDatabase::with(HR).await;
    let shop = TempDatabase::with(SHOP).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[directory]\nusers_file = \"users.toml\"\nsqlite = \"directory.db\"\n\n\
         [datasource.hr]\nurl = \"{}\"\n\n[datasource.shop]\nurl = \"{}\"\n",
        hr.url(),
        shop.url()
    );
    std::fs::write(dir.path().join("tablegate.toml"), config).unwrap();
    std::fs::write(dir.path().join("users.toml"), USERS).unwrap();
    std::fs::create_dir_all(dir.path().join("policies")).unwrap();
    Setup {
        _hr: hr,
        _shop: shop,
        dir,
    }
}

fn export() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/asktable/docs-examples.json")
        .display()
        .to_string()
}

async fn tablegate(dir: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_tablegate"))
        .arg(args[0])
        .arg("--config")
        .arg(dir.join("tablegate.toml"))
        .args(&args[1..])
        .output()
        .await
        .expect("tablegate runs")
}

async fn import(dir: &Path, extra: &[&str]) -> Output {
    let out = dir.join("policies").display().to_string();
    let export = export();
    let mut args = vec![
        "import-asktable",
        export.as_str(),
        "--out",
        out.as_str(),
        "--datasource",
        "ds_shop=shop",
    ];
    args.extend_from_slice(extra);
    tablegate(dir, &args).await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_documented_examples_convert_and_what_cannot_be_expressed_is_named() {
    let setup = setup().await;
    let output = import(setup.dir.path(), &[]).await;
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let written = std::fs::read_to_string(setup.dir.path().join("policies/asktable.toml")).unwrap();

    // allow_myself: every table with an employee_id column is filtered by it.
    assert!(
        written.contains(
            "[role.comm_user.datasource.hr]\n\
             tables = [\"public.departments\", \"public.employees\", \"public.leaves\", \"public.salaries\"]\n\
             rows.\"public.employees\" = \"employee_id = {{user.employee_id}}\"\n\
             rows.\"public.leaves\" = \"employee_id = {{user.employee_id}}\"\n\
             rows.\"public.salaries\" = \"employee_id = {{user.employee_id}}\"\n"
        ),
        "{written}"
    );
    // allow_all minus the documented denies: no salaries table, no phone numbers.
    assert!(
        written.contains(
            "[role.hr_viewer.datasource.hr]\n\
             tables = [\"public.departments\", \"public.employees\", \"public.leaves\"]\n\
             columns.\"public.employees\" = [\"employee_id\", \"name\", \"department_id\"]\n"
        ),
        "{written}"
    );
    // The structured filter of the newer API, its quoted placeholder now a typed variable.
    assert!(
        written.contains(
            "[role.regional.datasource.shop]\n\
             tables = [\"public.shop_orders\", \"public.tmp_orders\"]\n\
             rows.\"public.shop_orders\" = \"region = {{user.user_region}}\"\n\
             rows.\"public.tmp_orders\" = \"region = {{user.user_region}}\"\n"
        ),
        "{written}"
    );
    // A deny row filter cannot be expressed: that table is left out, the rest granted.
    assert!(
        written.contains(
            "[role.shop_clean.datasource.shop]\n\
             tables = [\"public.shop\", \"public.tmp_orders\", \"public.user\"]\n"
        ),
        "{written}"
    );
    for lost in [
        "NOT IMPORTED: policy `elsewhere`: AskTable datasource `ds_crm` is not a tablegate datasource",
        "NOT IMPORTED: role `shop_clean`: deny policy `hide_test_orders` filters rows of public.shop_orders",
        "NOT IMPORTED: role `fancy` on `shop`: policy `not_tmp`: the pattern `^(?!tmp_)` is not a regular expression tablegate can evaluate",
        "NOT IMPORTED: role `fancy`: row filter `public.shop.city_id = {{ city_id | int }}`: \
         `= {{ city_id | int }}` uses a template construct other than `{{variable}}`",
        "NOT IMPORTED: role `fancy`: policy `pol_missing` is not in the export",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(lost)),
            "no line starting {lost:?} in:\n{stderr}"
        );
    }
    for review in [
        "review: policy `policy_name`: the pattern `.*password.* | .*pwd.*` has spaces around `|`",
        "review: role `comm_user` needs `employee_id` for every user who holds it",
        "review: role `comm_user` on `hr`: no row filter reaches public.departments",
        "review: role `crm` grants nothing on any datasource",
        "review: role `regional` declares role_variables `city_id` that no imported row filter uses",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(review)),
            "no line starting {review:?} in:\n{stderr}"
        );
    }
    // Left out: the table whose filter cannot be translated, everything of a policy whose
    // pattern cannot be evaluated (`not_tmp` would add nothing `templated` does not grant).
    assert!(
        written.contains(
            "[role.fancy.datasource.shop]\n\
             tables = [\"public.shop_orders\", \"public.tmp_orders\", \"public.user\"]\n"
        ),
        "{written}"
    );
    // The file carries its own notes; `crm`'s datasource is not tablegate's.
    assert!(
        written.contains("# NOT IMPORTED: role `shop_clean`"),
        "{written}"
    );
    assert!(!written.contains("[role.crm.datasource"), "{written}");

    let again = import(setup.dir.path(), &[]).await;
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("pass --force"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(
        import(setup.dir.path(), &["--force"]).await.status.code(),
        Some(1)
    );
}

/// Runs `sql` as `user` through the rewriter, then on the database.
async fn rows_as(
    setup: &Setup,
    db: &TempDatabase,
    user: &str,
    datasource: &str,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, String> {
    let output = tablegate(
        setup.dir.path(),
        &["rewrite", "--user", user, "--database", datasource, sql],
    )
    .await;
    if !output.status.success() {
        return Err(text(&output.stderr));
    }
    let rewritten = text(&output.stdout);
    let client = db.connect().await;
    Ok(run(&client, &rewritten)
        .await
        .expect("the rewritten query runs")
        .sorted_rows())
}

#[tokio::test]
async fn the_imported_policies_enforce_what_asktable_enforced() {
    let setup = setup().await;
    assert_eq!(import(setup.dir.path(), &[]).await.status.code(), Some(1));
    std::fs::write(
        setup.dir.path().join("policies/assignments.toml"),
        ASSIGNMENTS,
    )
    .unwrap();
    let check = tablegate(setup.dir.path(), &["check"]).await;
    assert!(check.status.success(), "{}", text(&check.stderr));
    let (hr, shop) = (&setup._hr, &setup._shop);

    // Li Na (employee 2) sees her own leaves only, as in AskTable's "use roles" example.
    let leaves = rows_as(
        &setup,
        hr,
        "lina",
        "hr",
        "SELECT e.name, l.day::text FROM leaves l JOIN employees e USING (employee_id)",
    )
    .await
    .unwrap();
    assert_eq!(
        leaves,
        [
            [Some("Li Na".to_string()), Some("2024-05-10".to_string())],
            [Some("Li Na".to_string()), Some("2024-05-11".to_string())],
        ]
    );
    // The HR viewer: no salaries, no phone numbers, everything else.
    let refused = rows_as(&setup, hr, "hana", "hr", "SELECT sum(amount) FROM salaries")
        .await
        .unwrap_err();
    assert!(refused.contains("salaries"), "{refused}");
    let refused = rows_as(
        &setup,
        hr,
        "hana",
        "hr",
        "SELECT name FROM employees WHERE phone_number LIKE '138%'",
    )
    .await
    .unwrap_err();
    assert!(refused.contains("phone_number"), "{refused}");
    let names = rows_as(&setup, hr, "hana", "hr", "SELECT * FROM employees")
        .await
        .unwrap();
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|row| row.len() == 3), "{names:?}");
    // The region filter takes the user's region as a typed value.
    let orders = rows_as(
        &setup,
        shop,
        "wei",
        "shop",
        "SELECT id, region FROM shop_orders",
    )
    .await
    .unwrap();
    assert_eq!(orders, [[Some("2".to_string()), Some("West".to_string())]]);
}
