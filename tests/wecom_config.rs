//! From a tablegate.toml to a synced directory and a login service, the way `serve` wires them.

mod support;

use std::sync::Arc;

use indicatif::ProgressBar;
use tablegate::admin::AdminService;
use tablegate::config::Config;
use tablegate::login::LoginService;
use tablegate::wecom::fake::{FakeOrg, FakeUser, FakeWeCom};
use tablegate::{directory, wecom};

async fn wire(config_text: &str, folder: &std::path::Path) {
    let path = folder.join("tablegate.toml");
    std::fs::write(&path, config_text).unwrap();
    std::fs::write(
        folder.join("users.toml"),
        "[[user]]\nuserid = \"analyst\"\n",
    )
    .unwrap();
    std::fs::write(folder.join("wecom.secret"), "config-secret\n").unwrap();
    let config = Config::load(&path).unwrap();

    let directory = directory::open(&config).await.unwrap();
    let client = wecom::client_from_config(&config).unwrap();
    let sync = Arc::new(wecom::sync_from_config(&config, Arc::clone(&client), &directory).unwrap());
    let summary = sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(summary.created, 1);
    let zhang = directory.user("zhangsan").await.unwrap().unwrap();
    assert_eq!(zhang.email.as_deref(), Some("zhangsan@corp.example"));
    assert!(
        directory
            .password_verifier("zhangsan")
            .await
            .unwrap()
            .unwrap()
            .matches_password("Welcome-2026")
    );
    assert!(
        directory.user("analyst").await.unwrap().is_some(),
        "users file still read"
    );

    let login = LoginService::from_config(&config, client, directory).unwrap();
    assert!(login.verify_login_credential("tg1.x.1.y").is_err());
    AdminService::from_config(&config, sync).unwrap();
}

fn config_text(wecom: &FakeWeCom, directory: &str) -> String {
    format!(
        r#"
        listen = "0.0.0.0:6432"
        [directory]
        users_file = "users.toml"
        {directory}
        [wecom]
        corp_id = "wwconfig"
        agent_id = 1000002
        secret = {{ file = "wecom.secret" }}
        email_suffix = "@corp.example"
        initial_password = {{ env = "TABLEGATE_TEST_INITIAL_PASSWORD" }}
        base_url = "{}"
        [login]
        public_url = "https://tablegate.example.com/"
        credential_key = {{ value = "0123456789abcdef0123456789abcdef" }}
        [admin]
        token = {{ value = "admin-token-0123456789" }}
        "#,
        wecom.base_url()
    )
}

async fn fake() -> FakeWeCom {
    let mut org = FakeOrg::new("wwconfig", 1000002, "config-secret", "Corp").user(FakeUser::new(
        "zhangsan",
        "张三",
        &[1],
    ));
    org.post_2022_app = true;
    FakeWeCom::start(org).await
}

#[tokio::test]
async fn both_directory_stores_from_the_configuration() {
    // SAFETY: no other test in this binary reads or writes the environment concurrently.
    unsafe { std::env::set_var("TABLEGATE_TEST_INITIAL_PASSWORD", "Welcome-2026") };
    let folder = tempfile::tempdir().unwrap();
    let wecom = fake().await;
    wire(&config_text(&wecom, ""), folder.path()).await;
    assert!(folder.path().join("data/directory.db").exists());

    let db = support::database::TempDatabase::create().await;
    let folder = tempfile::tempdir().unwrap();
    let url = format!(
        "postgres_url = \"postgres://postgres@127.0.0.1:5432/{}\"",
        db.name
    );
    wire(&config_text(&fake().await, &url), folder.path()).await;
    assert!(
        !folder.path().join("data").exists(),
        "PostgreSQL instead of SQLite"
    );
}
