//! tablegate serving a test database on an ephemeral port, in process, and the seed scenario.

use std::net::SocketAddr;
use std::sync::Arc;

use tablegate::config::Config;
use tablegate::directory::{Directory, users_file};
use tablegate::policy::PolicySet;
use tablegate::proxy::{self, Gate};
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, NoTls, SimpleQueryMessage, Socket};

use super::database::TempDatabase;
use super::raw::RawClient;
use super::stores::StoreKind;

/// tablegate serving one datasource (`shop`) backed by a test database.
pub struct Proxy {
    pub addr: SocketAddr,
    pub gate: Arc<Gate>,
    task: tokio::task::JoinHandle<()>,
    _store: StoreKind,
}

impl Proxy {
    /// `users` is a users file; `passwords` are set in the directory store, as `tablegate users
    /// set-password` would. `config` is extra operator configuration (TOML), e.g. `[tls]`.
    pub async fn start(
        db: &TempDatabase,
        policy: &str,
        users: &str,
        passwords: &[(&str, &str)],
        config: &str,
    ) -> Proxy {
        let shop = Proxy::shop_datasource(&db.url(), "");
        Proxy::open(&shop, policy, users, passwords, config)
            .await
            .expect("gate")
    }

    /// The `[datasource.shop]` section for the database at `url`, with extra `settings` (TOML).
    pub fn shop_datasource(url: &str, settings: &str) -> String {
        format!(
            "[datasource.shop]\nurl = \"{url}\"\npool_size = 8\nconnect_timeout_secs = 30\ncatalog_refresh_secs = 0\n{settings}\n"
        )
    }

    /// As [`Proxy::start`], with the datasource section given; the error is the one serve
    /// would fail with.
    pub async fn open(
        datasource: &str,
        policy: &str,
        users: &str,
        passwords: &[(&str, &str)],
        config: &str,
    ) -> Result<Proxy, String> {
        let text = format!("listen = \"127.0.0.1:0\"\n{config}\n{datasource}");
        let base = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let config = Config::parse(&text, base)?;
        let policies = PolicySet::from_str("test-policy.toml", policy).expect("test policy");
        let (store_kind, store) = StoreKind::open_sqlite().await;
        let directory = Directory::new(
            store,
            users_file::parse(users, "test-users.toml").expect("test users"),
        );
        for (userid, password) in passwords {
            directory
                .set_password(userid, password)
                .await
                .expect("set password");
        }
        let gate = Arc::new(Gate::open(config, policies, directory, None).await?);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn({
            let gate = gate.clone();
            async move {
                let _ = proxy::serve(gate, listener).await;
            }
        });
        Ok(Proxy {
            addr,
            gate,
            task,
            _store: store_kind,
        })
    }

    /// Disables `userid` in the directory, as `tablegate users disable` does.
    pub async fn disable(&self, userid: &str) {
        self.gate
            .directory
            .set_disabled_by_admin(userid, true)
            .await
            .unwrap();
    }

    /// Makes the directory store unreadable, as a broken disk or database would.
    pub fn break_directory(&self) {
        self.alter_directory("ALTER TABLE directory_users RENAME TO directory_users_gone");
    }

    /// Undoes [`Proxy::break_directory`].
    pub fn repair_directory(&self) {
        self.alter_directory("ALTER TABLE directory_users_gone RENAME TO directory_users");
    }

    fn alter_directory(&self, sql: &str) {
        let StoreKind::Sqlite(dir) = &self._store else {
            panic!("the test proxy's directory is SQLite");
        };
        rusqlite::Connection::open(dir.path().join("data/directory.db"))
            .unwrap()
            .execute_batch(sql)
            .unwrap();
    }

    /// Makes `policy` the live policy, as a reload would.
    pub fn use_policy(&self, policy: &str) {
        self.gate
            .replace_policies(PolicySet::from_str("p.toml", policy).expect("test policy"));
    }

    /// SHOP_POLICY with public.orders no longer granted to sales reps.
    pub fn orders_revoked() -> String {
        SHOP_POLICY.replace(
            "tables = [\"public.orders\", \"public.customers\"]",
            "tables = [\"public.customers\"]",
        )
    }

    pub fn url(&self, user: &str, password: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={user} password={password} dbname=shop sslmode=disable",
            self.addr.port()
        )
    }

    /// A connection string for [`SERVICE_ACCOUNT`] acting for `user`.
    pub fn acting_url(&self, user: &str) -> String {
        format!(
            "{} options='-c tablegate.act_as={user}'",
            self.url("asktable", SERVICE_SECRET)
        )
    }

    pub async fn client(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.url(user, password), NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// A session logged in by [`RawClient`], for messages no driver sends.
    pub async fn raw_client(&self, user: &str, password: &str) -> RawClient {
        RawClient::login(self.addr.port(), user, password).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The seed scenario: a database holding [`SHOP`], served with [`SHOP_POLICY`], [`SHOP_USERS`]
/// and [`SHOP_PASSWORDS`].
pub async fn shop() -> (TempDatabase, Proxy) {
    shop_with("").await
}

/// [`shop`] with extra operator configuration (TOML), as for [`Proxy::start`].
pub async fn shop_with(config: &str) -> (TempDatabase, Proxy) {
    let db = TempDatabase::with(SHOP).await;
    let proxy = Proxy::start(&db, SHOP_POLICY, SHOP_USERS, SHOP_PASSWORDS, config).await;
    (db, proxy)
}

/// [`shop`] with extra `settings` (TOML) in its `[datasource.shop]` section.
pub async fn shop_with_datasource(settings: &str) -> (TempDatabase, Proxy) {
    let db = TempDatabase::with(SHOP).await;
    let proxy = Proxy::open(
        &Proxy::shop_datasource(&db.url(), settings),
        SHOP_POLICY,
        SHOP_USERS,
        SHOP_PASSWORDS,
        "",
    )
    .await
    .expect("gate");
    (db, proxy)
}

/// The rows of a simple query's answer, as text.
pub fn values(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_owned))
                    .collect(),
            ),
            _ => None,
        })
        .collect()
}

/// The SQLSTATE of a driver's error; empty when the error has none (a lost connection).
pub fn sqlstate(e: &tokio_postgres::Error) -> String {
    e.code().map(|c| c.code().to_owned()).unwrap_or_default()
}

/// Runs `pg_sleep(30)` on `client`, cancels it with the client's cancel token (over `tls`
/// when the client's connection used TLS, as drivers do), and asserts that the query ended as
/// PostgreSQL ends a cancelled one (the policy must allow pg_sleep).
pub async fn assert_cancel_stops_a_sleep<T: MakeTlsConnect<Socket>>(client: Client, tls: T) {
    let token = client.cancel_token();
    let sleeping = tokio::spawn(async move { client.simple_query("SELECT pg_sleep(30)").await });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    token.cancel_query(tls).await.unwrap();
    let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), sleeping)
        .await
        .expect("cancelled in time")
        .unwrap();
    let error = outcome.unwrap_err();
    assert_eq!(
        error.code().map(|c| c.code()),
        Some("57014"),
        "query_canceled: {error}"
    );
}

/// A `[tls]` section (for [`Proxy::start`]) with a fresh self-signed certificate for
/// localhost and 127.0.0.1, kept in the returned folder.
pub fn tls_config() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let key =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    std::fs::write(dir.path().join("server.crt"), key.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        key.signing_key.serialize_pem(),
    )
    .unwrap();
    let config = format!(
        "[tls]\ncert = \"{}\"\nkey = \"{}\"\n",
        dir.path().join("server.crt").display(),
        dir.path().join("server.key").display()
    );
    (dir, config)
}

/// Orders in East (even ids) and West, one West order (7) with an amount past float8's range
/// and a `big` past oid's: converting them to those types fails, quoting them.
pub const ORDERS_WITH_A_HUGE_AMOUNT: &str = "
CREATE TABLE public.orders (id int PRIMARY KEY, region text, amount numeric, big bigint);
INSERT INTO public.orders SELECT g, CASE WHEN g % 2 = 0 THEN 'East' ELSE 'West' END,
  CASE WHEN g = 7 THEN 1e400 ELSE g * 10 END, CASE WHEN g = 7 THEN 987654321098 ELSE g END
  FROM generate_series(1, 1000) g;
CREATE TABLE public.region_members (userid text, region text);
INSERT INTO public.region_members VALUES ('alice', 'East');
ANALYZE public.orders; ANALYZE public.region_members;
";

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
departments = ["Sales/East"]

[[user]]
userid = "sam"
departments = ["Sales/West"]

[[user]]
userid = "bob"

[[user]]
userid = "carol"

[[user]]
userid = "mute"
enabled = false
"#;

/// AskTable's engine as a service account (extra configuration for [`Proxy::start`]).
pub const SERVICE_ACCOUNT: &str =
    "[[service_account]]\nname = \"asktable\"\nsecret = { value = \"engine-secret-0123\" }\n";
pub const SERVICE_SECRET: &str = "engine-secret-0123";

pub const SHOP_PASSWORDS: &[(&str, &str)] = &[
    ("alice", "alice-secret"),
    ("sam", "sam-secret"),
    ("bob", "bob-secret"),
    ("carol", "carol-secret"),
    ("mute", "mute-secret"),
];
