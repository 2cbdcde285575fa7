//! tablegate in one command: a sample company in a local fake WeCom, a sample database on the
//! local PostgreSQL, policies for the seed scenarios, a directory sync, and the proxy serving.
//! It prints the psql commands with which two employees ask the same question and get different
//! answers.
//!
//! `cargo run --release --example quickstart [-- --port 6432 --http-port 8080]`
//!
//! Needs only PostgreSQL on 127.0.0.1:5432 with trust authentication for user `postgres`
//! (override with PGHOST/PGPORT/PGUSER). Files go to `target/quickstart/`; the database
//! `tablegate_quickstart` is recreated on every run.

use std::path::{Path, PathBuf};

use tablegate::config::Config;
use tablegate::wecom::fake::{FakeLogin, FakeOrg, FakeUser, FakeWeCom};
use tablegate::{directory, server, wecom};

/// Every synced employee gets this password (WeCom login needs none).
const PASSWORD: &str = "tablegate-demo";

const DATA: &str = "
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region text NOT NULL, phone text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers, region text NOT NULL,
                     amount numeric(10,2) NOT NULL, ordered_at date NOT NULL);
CREATE TABLE employees (userid text PRIMARY KEY, name text NOT NULL, department text NOT NULL,
                        salary int NOT NULL, phone text);
INSERT INTO customers VALUES
  (1, 'Harbor Foods', 'East', '021-5550-0101'), (2, 'Lakeside Tools', 'North', '010-5550-0202'),
  (3, 'Summit Cafe', 'East', '021-5550-0303'), (4, 'Pine Ridge Mills', 'North', '010-5550-0404'),
  (5, 'Westgate Books', 'West', '028-5550-0505');
INSERT INTO orders VALUES
  (101, 1, 'East', 1200.00, '2026-09-03'), (102, 3, 'East', 640.50, '2026-09-17'),
  (103, 1, 'East', 310.00, '2026-10-02'), (104, 2, 'North', 2150.00, '2026-09-08'),
  (105, 4, 'North', 975.25, '2026-10-11'), (106, 5, 'West', 4400.00, '2026-10-20'),
  (107, 3, 'East', 88.00, '2026-11-01'), (108, 4, 'North', 1530.00, '2026-11-05');
INSERT INTO employees VALUES
  ('alice', 'Alice Chen', 'Sales', 9200, '138-0000-0001'),
  ('bob', 'Bob Li', 'Sales', 8700, '138-0000-0002'),
  ('carol', 'Carol Wang', 'HR', 11000, '138-0000-0003'),
  ('dave', 'Dave Zhou', 'Engineering', 12500, '138-0000-0004');
";

const POLICY: &str = r#"# The seed scenarios: sales reps see their region's sales; HR managers see every
# salary, everyone else only their own row; nobody sees phone numbers.

[datasource.quickstart]
description = "Sample sales and HR data"
deny_columns = ["*.phone"]

[role.sales_rep]
description = "Sales representatives: their own region only"
[role.sales_rep.datasource.quickstart]
tables = ["public.orders", "public.customers"]
# `region` is a custom attribute set in WeCom for each sales rep.
rows."public.orders" = "region = {{user.region}}"
rows."public.customers" = "region = {{user.region}}"

[role.employee]
description = "Everyone: their own employee record"
[role.employee.datasource.quickstart]
tables = ["public.employees"]
rows."public.employees" = "userid = {{user.userid}}"

[role.hr_manager]
description = "HR managers: every employee record"
[role.hr_manager.datasource.quickstart]
tables = ["public.employees"]

[[assign]]
department = "Sales"
roles = ["sales_rep", "employee"]

[[assign]]
department = "Engineering"
roles = ["employee"]

[[assign]]
position = "HR Manager"
roles = ["hr_manager", "employee"]
"#;

const SALES_QUESTION: &str = "SELECT region, count(*) AS orders, sum(amount) AS total FROM orders GROUP BY region ORDER BY region";
const SALARY_QUESTION: &str = "SELECT name, department, salary FROM employees ORDER BY name";

struct Options {
    port: u16,
    http_port: u16,
}

fn options() -> Result<Options, String> {
    let mut options = Options {
        port: 6432,
        http_port: 8080,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let port = value
            .parse()
            .map_err(|_| format!("{arg}: `{value}` is not a port"))?;
        match arg.as_str() {
            "--port" => options.port = port,
            "--http-port" => options.http_port = port,
            _ => return Err(format!("unknown option {arg} (use --port, --http-port)")),
        }
    }
    Ok(options)
}

fn company() -> FakeOrg {
    FakeOrg::new("wwquickstart", 1000002, "quickstart-secret", "Acme Trading")
        .department(2, "Sales", 1)
        .department(3, "East", 2)
        .department(4, "North", 2)
        .department(5, "HR", 1)
        .department(6, "Engineering", 1)
        .user(
            FakeUser::new("alice", "Alice Chen", &[3])
                .position("Sales Representative")
                .attr("region", "East"),
        )
        .user(
            FakeUser::new("bob", "Bob Li", &[4])
                .position("Sales Representative")
                .attr("region", "North"),
        )
        .user(FakeUser::new("carol", "Carol Wang", &[5]).position("HR Manager"))
        .user(FakeUser::new("dave", "Dave Zhou", &[6]).position("Engineer"))
}

async fn create_database(name: &str) -> Result<String, String> {
    let server = format!(
        "host={} port={} user={}",
        std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into()),
        std::env::var("PGPORT").unwrap_or_else(|_| "5432".into()),
        std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into()),
    );
    let connect = |db: &str| {
        let url = format!("{server} dbname={db}");
        async move {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .map_err(|e| {
                format!("cannot reach PostgreSQL ({url}): {e}\nIs it running? See the README.")
            })?;
            tokio::spawn(connection);
            Ok::<_, String>(client)
        }
    };
    let admin = connect("postgres").await?;
    // One statement each: DROP/CREATE DATABASE cannot share a transaction.
    for statement in [
        format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        format!("CREATE DATABASE {name}"),
    ] {
        admin
            .batch_execute(&statement)
            .await
            .map_err(|e| format!("cannot create database {name}: {}", db_message(&e)))?;
    }
    connect(name)
        .await?
        .batch_execute(DATA)
        .await
        .map_err(|e| format!("cannot load the sample data: {}", db_message(&e)))?;
    Ok(format!(
        "postgres://{}@{}:{}/{name}",
        std::env::var("PGUSER").unwrap_or_else(|_| "postgres".into()),
        std::env::var("PGHOST").unwrap_or_else(|_| "127.0.0.1".into()),
        std::env::var("PGPORT").unwrap_or_else(|_| "5432".into())
    ))
}

fn db_message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned())
}

fn write_files(
    dir: &Path,
    options: &Options,
    wecom: &FakeWeCom,
    database_url: &str,
) -> Result<PathBuf, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("policies"))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::write(dir.join("policies/quickstart.toml"), POLICY).map_err(|e| e.to_string())?;
    let config = format!(
        r#"# Written by `cargo run --example quickstart`.
listen = "127.0.0.1:{port}"
http_listen = "127.0.0.1:{http}"
policies = "policies"

[directory]
sqlite = "directory.db"

[datasource.quickstart]
url = "{database_url}"
statement_timeout_secs = 30

[wecom]
corp_id = "wwquickstart"
agent_id = 1000002
secret = {{ value = "quickstart-secret" }}
email_suffix = "acme.example"
initial_password = {{ value = "{PASSWORD}" }}
base_url = "{base}"
authorize_url = "{authorize}"
qr_login_url = "{qr}"
sync_interval_secs = 0

[login]
public_url = "http://127.0.0.1:{http}"
credential_key = {{ value = "quickstart-only-key-0123456789-abcdef" }}

[tls]
cert = "server.crt"
key = "server.key"

[audit]
output = "audit.jsonl"
"#,
        port = options.port,
        http = options.http_port,
        base = wecom.base_url(),
        authorize = wecom.authorize_url(),
        qr = wecom.qr_login_url(),
    );
    // A self-signed certificate, so login credentials (cleartext, TLS only) work from psql.
    let certificate =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| format!("cannot make a certificate: {e}"))?;
    std::fs::write(dir.join("server.crt"), certificate.cert.pem()).map_err(|e| e.to_string())?;
    std::fs::write(
        dir.join("server.key"),
        certificate.signing_key.serialize_pem(),
    )
    .map_err(|e| e.to_string())?;
    let path = dir.join("tablegate.toml");
    std::fs::write(&path, config).map_err(|e| e.to_string())?;
    Ok(path)
}

async fn run() -> Result<(), String> {
    let options = options()?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/quickstart");

    println!("1. Starting a fake WeCom with the sample company Acme Trading...");
    let wecom = FakeWeCom::start(company()).await;
    wecom.log_in_as(FakeLogin::Member("alice".into()));

    println!("2. Creating the sample database tablegate_quickstart...");
    let database_url = create_database("tablegate_quickstart").await?;

    println!(
        "3. Writing policies and configuration to {}...",
        dir.display()
    );
    let config_path = write_files(&dir, &options, &wecom, &database_url)?;
    let config = Config::load(&config_path)?;
    let audit = tablegate::audit::init(&config.audit, &config.base)?;

    println!("4. Syncing the organisation from WeCom...");
    let directory = directory::open(&config).await?;
    let client = wecom::client_from_config(&config)?;
    let sync = wecom::sync_from_config(&config, client, &directory)?;
    let summary = sync
        .run(&indicatif::ProgressBar::hidden())
        .await
        .map_err(|e| e.to_string())?;
    println!(
        "   {} users created in {} departments",
        summary.created, summary.departments
    );

    println!("5. Serving...");
    let running = server::start(config).await?;
    let port = running.postgres.port();
    let psql = |user: &str, sql: &str| {
        format!(
            "PGPASSWORD={PASSWORD} psql \"host=127.0.0.1 port={port} user={user} dbname=quickstart\" -c \"{sql}\""
        )
    };
    println!(
        "\ntablegate is ready: PostgreSQL on {postgres}, HTTP on {http}\n\n\
         Two sales reps ask the same question and see only their own region:\n\n  {alice}\n  {bob}\n\n\
         HR sees every salary; everyone else only their own (and nobody sees phone numbers):\n\n  {carol}\n  {dave}\n\n\
         Password-free login: the fake WeCom logs in as alice and shows a credential to use as\n         her password (valid 10 minutes) with a psql line; the line verifies tablegate's\n         certificate, so add sslrootcert={dir}/server.crt to it:\n\n  curl -sL -b '' http://{http}/login/wecom\n\n\
         Refused, with the reason:\n\n  {refused}\n\n\
         Files: {dir} (policies, tablegate.toml, audit.jsonl). Ctrl-C to stop.",
        postgres = running.postgres,
        http = running.http,
        alice = psql("alice", SALES_QUESTION),
        bob = psql("bob", SALES_QUESTION),
        carol = psql("carol", SALARY_QUESTION),
        dave = psql("dave", SALARY_QUESTION),
        refused = psql("dave", "SELECT * FROM orders"),
        dir = dir.display(),
    );
    running.until_shutdown().await;
    if let Some(audit) = audit {
        audit.flush();
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    if let Err(message) = run().await {
        eprintln!("quickstart: {message}");
        std::process::exit(1);
    }
}
