//! The whole password-free path, as an employee walks it: the admin syncs the organisation
//! through the admin API, the employee opens the app in WeCom (a browser following redirects
//! through the fake WeCom), receives a login credential, and psql connects through tablegate with
//! it over TLS, seeing exactly that employee's rows.

mod support;

use std::path::Path;
use std::process::Output;

use support::browser::{WECOM_UA, browser, credential_in};
use support::database::TempDatabase;
use support::raw::scram_salt;
use tablegate::config::Config;
use tablegate::wecom::fake::{FakeLogin, FakeOrg, FakeUser, FakeWeCom};
use tokio::process::Command;

const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

const DATA: &str = "
CREATE TABLE orders (id int PRIMARY KEY, region text, amount numeric);
INSERT INTO orders SELECT g, (ARRAY['East','North','West'])[1 + g % 3], g FROM generate_series(1, 12) g;
";

/// Regions come from the WeCom custom attribute `region`; the role from the department.
const POLICY: &str = r#"
[datasource.shop]

[role.sales_rep.datasource.shop]
tables = ["public.orders"]
rows."public.orders" = "region = {{user.region}}"

[[assign]]
department = "Sales"
roles = ["sales_rep"]
"#;

fn org() -> FakeOrg {
    FakeOrg::new("wwe2e", 1000002, "e2e-secret", "Company")
        .department(2, "Sales", 1)
        .department(3, "Warehouse", 1)
        .user(FakeUser::new("alice", "Alice", &[2]).attr("region", "East"))
        .user(FakeUser::new("bob", "Bob", &[2]).attr("region", "North"))
        .user(FakeUser::new("walt", "Walt", &[3]).attr("region", "West"))
}

/// A port nobody listens on now: the HTTP side's address must be known before it starts,
/// since it is the WeCom app's trusted domain and part of the callback URL.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_config(dir: &Path, db: &TempDatabase, wecom: &FakeWeCom, http_port: u16) -> Config {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/shop.toml"), POLICY).unwrap();
    let certificate = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(dir.join("server.crt"), certificate.cert.pem()).unwrap();
    std::fs::write(
        dir.join("server.key"),
        certificate.signing_key.serialize_pem(),
    )
    .unwrap();
    let config = format!(
        r#"listen = "127.0.0.1:0"
http_listen = "127.0.0.1:{http_port}"

[directory]
sqlite = "directory.db"

[datasource.shop]
url = "{url}"
pool_size = 4

[wecom]
corp_id = "wwe2e"
agent_id = 1000002
secret = {{ value = "e2e-secret" }}
email_suffix = "example.com"
base_url = "{base}"
authorize_url = "{authorize}"
qr_login_url = "{qr}"
sync_interval_secs = 0

[login]
public_url = "http://127.0.0.1:{http_port}"
credential_key = {{ value = "e2e-only-key-0123456789-abcdefghij" }}

[admin]
token = {{ value = "{ADMIN_TOKEN}" }}

[tls]
cert = "server.crt"
key = "server.key"
"#,
        url = db.url(),
        base = wecom.base_url(),
        authorize = wecom.authorize_url(),
        qr = wecom.qr_login_url(),
    );
    std::fs::write(dir.join("tablegate.toml"), config).unwrap();
    Config::load(&dir.join("tablegate.toml")).unwrap()
}

/// The employee opens the app's homepage inside WeCom and ends on the credential page.
async fn log_in(wecom: &FakeWeCom, http_base: &str, userid: &str) -> String {
    wecom.log_in_as(FakeLogin::Member(userid.into()));
    let response = browser(WECOM_UA, true)
        .get(format!("{http_base}/login/wecom"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    credential_in(&response.text().await.unwrap())
}

async fn psql(port: u16, user: &str, password: &str, sslmode: &str, sql: &str) -> Output {
    Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user={user} dbname=shop sslmode={sslmode}"
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", password)
        .output()
        .await
        .expect("psql is installed (see .ci/run)")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_login_credential_connects_through_tablegate_as_that_employee() {
    let db = TempDatabase::with(DATA).await;
    let wecom = FakeWeCom::start(org()).await;
    let http_port = free_port();
    wecom.set_trusted_domain(Some(format!("127.0.0.1:{http_port}")));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &db, &wecom, http_port);
    let running = tablegate::server::start(config).await.unwrap();
    let http_base = format!("http://{}", running.http);
    let port = running.postgres.port();

    // The admin's "Sync WeCom" button.
    let sync = browser(WECOM_UA, false)
        .post(format!("{http_base}/admin/wecom/sync"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(sync.status(), 200, "{}", sync.text().await.unwrap());

    let sql = "SELECT string_agg(DISTINCT region, ',') || ':' || count(*) FROM orders";
    let alice = log_in(&wecom, &http_base, "alice").await;
    let out = psql(port, "alice", &alice, "require", sql).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "East:4");

    let bob = log_in(&wecom, &http_base, "bob").await;
    let out = psql(port, "bob", &bob, "require", sql).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "North:4");

    // A credential is one user's: alice's does not open bob's session.
    let out = psql(port, "bob", &alice, "require", sql).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("password authentication failed"),
        "{}",
        stderr(&out)
    );
    // Credentials travel as cleartext passwords, so never without TLS.
    let out = psql(port, "alice", &alice, "disable", sql).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sslmode=require"), "{}", stderr(&out));

    // Logged in, but no role: the datasource does not exist for walt.
    let walt = log_in(&wecom, &http_base, "walt").await;
    let out = psql(port, "walt", &walt, "require", sql).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("database \"shop\" does not exist or you have no access"),
        "{}",
        stderr(&out)
    );
}

/// Found by red-team review: an unknown name's decoy salt came from a secret of each process,
/// so it changed on restart and differed between replicas while a real user's stored salt did
/// not — comparing salts told real names from unknown ones. Replicas sharing the credential key
/// now show an unknown name the same salt.
#[tokio::test]
async fn replicas_sharing_the_credential_key_show_unknown_names_the_same_salt() {
    let db = TempDatabase::with(DATA).await;
    let wecom = FakeWeCom::start(org()).await;
    let mut salts = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &db, &wecom, free_port());
        let running = tablegate::server::start(config).await.unwrap();
        salts.push((
            scram_salt(running.postgres.port(), "ghost").await,
            scram_salt(running.postgres.port(), "phantom").await,
        ));
    }
    assert_eq!(salts[0], salts[1]);
    assert_ne!(salts[0].0, salts[0].1);
}
