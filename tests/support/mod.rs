//! Real parts for integration tests: a uniquely named PostgreSQL database per test, and
//! tablegate serving it on an ephemeral port, in process.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use tablegate::config::Config;
use tablegate::directory::{StaticDirectory, users_file};
use tablegate::policy::PolicySet;
use tablegate::proxy::{self, Gate};
use tokio_postgres::{Client, NoTls};

pub const ADMIN_URL: &str = "host=127.0.0.1 port=5432 user=postgres dbname=postgres";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A database that exists for one test and is dropped after it.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub async fn create(setup: &str) -> TestDb {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("tg_test_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let admin = connect(ADMIN_URL).await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("PostgreSQL must run on 127.0.0.1:5432 (see .ci/run)");
        let db = TestDb { name };
        db.admin().await.batch_execute(setup).await.expect("test database setup");
        db
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A direct connection, as the superuser, bypassing tablegate.
    pub async fn admin(&self) -> Client {
        connect(&format!("host=127.0.0.1 port=5432 user=postgres dbname={}", self.name)).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                if let Ok((client, connection)) = tokio_postgres::connect(ADMIN_URL, NoTls).await {
                    tokio::spawn(connection);
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                }
            });
        })
        .join();
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

/// tablegate serving one datasource (`shop`) backed by a test database.
pub struct Proxy {
    pub addr: SocketAddr,
    pub gate: Arc<Gate>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// `config` is extra operator configuration (TOML), e.g. `[tls]` or service accounts.
    pub async fn start(db: &TestDb, policy: &str, users: &str, config: &str) -> Proxy {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n{config}\n[datasource.shop]\nurl = \"{}\"\npool_size = 40\ncatalog_refresh_secs = 0\n",
            db.url()
        );
        let base = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let config = Config::parse(&text, base).expect("test configuration");
        let policies = PolicySet::from_str("test-policy.toml", policy).expect("test policy");
        let logins = users_file::parse_logins(users, "test-users.toml").expect("test users");
        let gate = Arc::new(Gate::open(config, policies, Arc::new(StaticDirectory::new(logins))).await.expect("gate"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn({
            let gate = gate.clone();
            async move {
                let _ = proxy::serve(gate, listener).await;
            }
        });
        Proxy { addr, gate, task }
    }

    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=shop sslmode=disable",
            self.addr.port()
        )
    }

    pub async fn client(&self, user: &str, password: &str) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(&self.url(user, password), NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The seed scenario's data: orders by region, customers with phones, employees with salaries.
pub const SHOP: &str = "
CREATE TABLE orders (id int PRIMARY KEY, region text, amount numeric, customer_id int);
CREATE TABLE customers (id int PRIMARY KEY, name text, phone text, region text);
CREATE TABLE employees (employee_id int PRIMARY KEY, name text, salary int, phone text);
CREATE TABLE secret (x text);
INSERT INTO orders SELECT g, (ARRAY['East','West','North','South'])[1 + g % 4], g * 10, 1 + g % 5 FROM generate_series(1, 40) g;
INSERT INTO customers SELECT g, 'customer ' || g, '555-01' || g, (ARRAY['East','West','North','South'])[1 + g % 4] FROM generate_series(1, 5) g;
INSERT INTO employees VALUES (7, 'Bob', 5000, '555-7'), (9, 'Carol', 9000, '555-9'), (11, 'Dan', 4000, '555-11');
INSERT INTO secret VALUES ('do not read');
";

pub const SHOP_POLICY: &str = r#"
[datasource.shop]
deny_columns = ["*.phone"]
functions = ["pg_sleep"]

[role.sales_rep.datasource.shop]
tables = ["public.orders", "public.customers"]
rows."public.orders" = "region IN ({{user.regions}})"

[role.employee.datasource.shop]
tables = ["public.employees"]
rows."public.employees" = "employee_id = {{user.employee_id}}"

[role.hr_manager.datasource.shop]
tables = ["public.employees"]

[[assign]]
department = "Sales"
roles = ["sales_rep"]

[[assign]]
user = "alice"
roles = ["sales_rep"]
vars = { regions = ["East", "North"] }

[[assign]]
user = "sam"
roles = ["sales_rep"]
vars = { regions = ["West"] }

[[assign]]
users = ["bob", "carol"]
roles = ["employee"]

[[assign]]
user = "bob"
roles = ["employee"]
vars = { employee_id = 7 }

[[assign]]
user = "carol"
roles = ["hr_manager"]
vars = { employee_id = 9 }
"#;

pub const SHOP_USERS: &str = r#"
[[user]]
userid = "alice"
password = "alice-secret"
departments = ["Sales/East"]

[[user]]
userid = "sam"
password = "sam-secret"
departments = ["Sales/West"]

[[user]]
userid = "bob"
password = "bob-secret"

[[user]]
userid = "carol"
password = "carol-secret"

[[user]]
userid = "mute"
password = "mute-secret"
enabled = false
"#;
