//! Password-free login against the fake WeCom: an HTTP client follows /login/wecom → WeCom's
//! authorize (or QR) page → the callback, and gets a credential that verifies for that user.

mod support;

use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use support::browser::{DESKTOP_UA, WECOM_UA, browser, credential_in};
use support::stores::StoreKind;
use tablegate::admin::AdminService;
use tablegate::directory::{Directory, User, users_file};
use tablegate::login::{CredentialSigner, LoginService, LoginSettings};
use tablegate::proxy::login_throttle::{LoginThrottle, TRACKED_SOURCES};
use tablegate::wecom::api::Endpoint;
use tablegate::wecom::fake::{FakeLogin, FakeOrg, FakeUser, FakeWeCom};
use tablegate::wecom::{ClientOptions, DirectorySync, SyncSettings, WeComClient};

const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// Failed logins (codes WeCom rejects, non-members) one address may have within a minute.
const FAILED_LOGINS_ALLOWED: u32 = 5;

struct Setup {
    wecom: FakeWeCom,
    service: Arc<LoginService>,
    directory: Directory,
    base: String,
    _store: StoreKind,
}

fn org() -> FakeOrg {
    FakeOrg::new("wwlogin", 1000002, "login-secret", "Company")
        .department(2, "Sales", 1)
        .user(FakeUser::new("ZhangSan", "张三", &[2]).attr("region", "East"))
        .user(FakeUser::new("zhaoliu", "赵六", &[2]).status(2))
}

/// tablegate's HTTP side (login and admin routers) on a free port, after one sync.
async fn setup(asktable_url: Option<String>, state_lifetime: Duration) -> Setup {
    setup_with(org(), Vec::new(), asktable_url, state_lifetime).await
}

/// [`setup`] for `org`, with `file_users` in the users file (given a password, so stored as
/// local users before the sync).
async fn setup_with(
    org: FakeOrg,
    file_users: Vec<User>,
    asktable_url: Option<String>,
    state_lifetime: Duration,
) -> Setup {
    let (kind, store) = StoreKind::open_sqlite().await;
    let directory = Directory::new(Arc::clone(&store), file_users);
    let local_userids: Vec<String> = directory.file_userids().map(str::to_owned).collect();
    for userid in &local_userids {
        directory
            .set_password(userid, "local-password")
            .await
            .unwrap();
    }
    let wecom = FakeWeCom::start(org).await;
    let client = Arc::new(WeComClient::new(wecom.credentials(), ClientOptions::default()).unwrap());
    let sync = Arc::new(DirectorySync::new(
        Arc::clone(&client),
        Arc::clone(&store),
        SyncSettings {
            email_suffix: "example.com".into(),
            initial_password: None,
            concurrency: 2,
            local_userids,
            local_emails: directory.file_emails().map(str::to_owned).collect(),
        },
    ));
    sync.run(&ProgressBar::hidden()).await.unwrap();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let base = format!("http://{address}");
    wecom.set_trusted_domain(Some(address.to_string()));
    let settings = LoginSettings {
        public_url: base.clone(),
        authorize_url: wecom.authorize_url(),
        qr_login_url: wecom.qr_login_url(),
        asktable_url,
        psql_host: "tablegate.example.com".into(),
        psql_port: 6432,
        state_lifetime,
    };
    let signer = CredentialSigner::new(&[42u8; 32], Duration::from_secs(600)).unwrap();
    let service = Arc::new(LoginService::new(
        client,
        directory.clone(),
        signer,
        settings,
        LoginThrottle::new(
            FAILED_LOGINS_ALLOWED,
            Duration::from_secs(60),
            TRACKED_SOURCES,
        ),
    ));
    let admin = Arc::new(AdminService::new(ADMIN_TOKEN, sync).unwrap());
    let app = tablegate::login::router(Arc::clone(&service)).merge(tablegate::admin::router(admin));
    tokio::spawn(tablegate::http_listener::serve(
        listener,
        app,
        tablegate::http_listener::HttpLimits::default(),
    ));
    Setup {
        wecom,
        service,
        directory,
        base,
        _store: kind,
    }
}

async fn location(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(
        response.status(),
        302,
        "{url}: {}",
        response.text().await.unwrap()
    );
    response.headers()["location"].to_str().unwrap().to_owned()
}

/// A WeCom browser that started a login, and the callback URL WeCom sends it to (not followed).
async fn started_login(s: &Setup) -> (reqwest::Client, String) {
    let client = browser(WECOM_UA, false);
    let authorize = location(&client, &format!("{}/login/wecom", s.base)).await;
    let callback = location(&client, &authorize).await;
    (client, callback)
}

fn state_of(url: &str) -> String {
    let url = url::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned()
}

#[tokio::test]
async fn wecom_client_logs_in_and_gets_a_credential() {
    let s = setup(None, Duration::from_secs(300)).await;
    s.wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    let response = browser(WECOM_UA, true)
        .get(format!("{}/login/wecom", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    let credential = credential_in(&page);
    assert!(
        page.contains("host=tablegate.example.com port=6432 user=ZhangSan"),
        "{page}"
    );
    assert_eq!(
        s.service.verify_login_credential(&credential).unwrap(),
        "ZhangSan"
    );
    let user = s
        .service
        .authenticate("zhangsan", &credential)
        .await
        .unwrap();
    assert_eq!(user.attributes["region"], "East");
    assert!(
        s.service
            .authenticate("zhaoliu", &credential)
            .await
            .is_err()
    );
    assert_eq!(s.wecom.calls(Endpoint::Authorize), 1);
    assert_eq!(s.wecom.calls(Endpoint::QrLogin), 0);
}

#[tokio::test]
async fn desktop_browsers_go_through_the_qr_login() {
    let s = setup(None, Duration::from_secs(300)).await;
    s.wecom.log_in_as(FakeLogin::Member("ZHANGSAN".into()));
    let client = browser(DESKTOP_UA, false);
    let qr = location(&client, &format!("{}/login/wecom", s.base)).await;
    assert!(qr.starts_with(&s.wecom.qr_login_url()), "{qr}");
    assert!(qr.contains("login_type=CorpApp"));
    let page = browser(DESKTOP_UA, true)
        .get(format!("{}/login/wecom", s.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let credential = credential_in(&page);
    assert_eq!(
        s.service.verify_login_credential(&credential).unwrap(),
        "ZhangSan"
    );
}

#[tokio::test]
async fn asktable_gets_the_credential() {
    let s = setup(
        Some("https://asktable.example.com/login?from=tablegate".into()),
        Duration::from_secs(300),
    )
    .await;
    s.wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    let (client, callback) = started_login(&s).await;
    let target = location(&client, &callback).await;
    let url = url::Url::parse(&target).unwrap();
    assert_eq!(url.host_str(), Some("asktable.example.com"));
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["from"], "tablegate");
    assert_eq!(query["user"], "ZhangSan");
    assert_eq!(
        s.service
            .verify_login_credential(&query["credential"])
            .unwrap(),
        "ZhangSan"
    );
}

async fn open(client: &reqwest::Client, url: &str) -> (u16, String) {
    let response = client.get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn reused_codes_bad_states_and_outsiders_are_refused() {
    let s = setup(None, Duration::from_secs(300)).await;
    s.wecom.log_in_as(FakeLogin::Member("zhangsan".into()));

    let (client, callback) = started_login(&s).await;
    assert_eq!(open(&client, &callback).await.0, 200);
    // The same callback again: its state is used up.
    let (status, page) = open(&client, &callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("already used"), "{page}");
    // The used code with a fresh state: WeCom says 40029.
    let (client, fresh) = started_login(&s).await;
    let code = url::Url::parse(&callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let reused = format!(
        "{}/login/wecom/callback?code={code}&state={}",
        s.base,
        state_of(&fresh)
    );
    let (status, page) = open(&client, &reused).await;
    assert_eq!(status, 400);
    assert!(page.contains("older than 5 minutes"), "{page}");
    // A code past its five minutes.
    let old_code = s.wecom.issue_code(FakeLogin::Member("zhangsan".into()));
    s.wecom.advance_clock(Duration::from_secs(301));
    let client = browser(WECOM_UA, false);
    let state = state_of(&location(&client, &format!("{}/login/wecom", s.base)).await);
    let (status, _) = open(
        &client,
        &format!(
            "{}/login/wecom/callback?code={old_code}&state={state}",
            s.base
        ),
    )
    .await;
    assert_eq!(status, 400);
    // A forged state.
    let (status, _) = open(
        &client,
        &format!("{}/login/wecom/callback?code=abc&state=forged", s.base),
    )
    .await;
    assert_eq!(status, 400);

    for (who, status, says) in [
        (FakeLogin::NonMember("oAbCdEf".into()), 403, "Only members"),
        (FakeLogin::Member("zhaoliu".into()), 403, "disabled"),
        (FakeLogin::Member("stranger".into()), 403, "directory yet"),
    ] {
        s.wecom.log_in_as(who);
        let (client, callback) = started_login(&s).await;
        let (got, page) = open(&client, &callback).await;
        assert_eq!(got, status);
        assert!(page.contains(says), "{page}");
    }
}

/// Found by red-team review: each callback spends a getuserinfo call of the budget all logins
/// share, so a flood of callbacks with made-up codes kept genuine logins out until the minute
/// passed. A code WeCom rejects is a failed login of the address, which past its limit is
/// refused without calling WeCom.
#[tokio::test]
async fn an_address_sending_rejected_codes_is_refused_before_wecom_is_called() {
    let s = setup(None, Duration::from_secs(300)).await;
    for _ in 0..FAILED_LOGINS_ALLOWED {
        let client = browser(WECOM_UA, false);
        let state = state_of(&location(&client, &format!("{}/login/wecom", s.base)).await);
        let made_up = format!("{}/login/wecom/callback?code=made-up&state={state}", s.base);
        assert_eq!(open(&client, &made_up).await.0, 400);
    }
    let calls = s.wecom.calls(Endpoint::GetUserInfo);
    assert_eq!(calls, FAILED_LOGINS_ALLOWED as usize);
    // Past the limit, even a genuine code is not exchanged.
    s.wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    let (client, callback) = started_login(&s).await;
    let (status, page) = open(&client, &callback).await;
    assert_eq!(status, 429);
    assert!(
        page.contains("too many failed logins from 127.0.0.1"),
        "{page}"
    );
    assert_eq!(s.wecom.calls(Endpoint::GetUserInfo), calls);
}

/// WeCom userids are the WeCom admin's to hand out: a member whose id equals a local user's
/// (the DBA's own account, say) is someone else, and never logs in as that user.
#[tokio::test]
async fn a_wecom_member_never_logs_in_as_the_local_user_of_the_same_id() {
    let dba = users_file::parse("[[user]]\nuserid = \"dba\"\n", "users.toml").unwrap();
    let s = setup_with(
        org().user(FakeUser::new("dba", "Warehouse clerk", &[2])),
        dba,
        None,
        Duration::from_secs(300),
    )
    .await;
    s.wecom.log_in_as(FakeLogin::Member("dba".into()));
    let (client, callback) = started_login(&s).await;
    let (status, page) = open(&client, &callback).await;
    assert_eq!(status, 403, "{page}");
    assert!(!page.contains("tg1."), "no credential: {page}");
    // A credential for that id (however obtained) is no password for the local user either.
    let forged = CredentialSigner::new(&[42u8; 32], Duration::from_secs(600))
        .unwrap()
        .issue("dba");
    let refused = s
        .service
        .authenticate("dba", &forged)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("not a WeCom user"), "{refused}");
    // The local user is still the users file's, untouched by the sync.
    let user = s.directory.user("dba").await.unwrap().unwrap();
    assert_ne!(user.name, "Warehouse clerk");
    assert!(user.enabled);
}

#[tokio::test]
async fn a_login_started_in_another_browser_is_refused() {
    // Login CSRF: an attacker starts a login as themselves and sends the callback URL to a
    // victim, whose browser would end up with the attacker's credential.
    let s = setup(None, Duration::from_secs(300)).await;
    s.wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    let (_attacker, callback) = started_login(&s).await;
    let victim = browser(WECOM_UA, false);
    let (status, page) = open(&victim, &callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("did not start in this browser"), "{page}");
}

#[tokio::test]
async fn expired_states_are_refused() {
    let s = setup(None, Duration::ZERO).await;
    s.wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    let (client, callback) = started_login(&s).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (status, page) = open(&client, &callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("took too long"), "{page}");
}

#[tokio::test]
async fn untrusted_redirect_domain_is_refused_by_wecom() {
    let s = setup(None, Duration::from_secs(300)).await;
    s.wecom.log_in_as(FakeLogin::Member("zhangsan".into()));
    s.wecom
        .set_trusted_domain(Some("tablegate.example.com".into()));
    let client = browser(WECOM_UA, false);
    let authorize = location(&client, &format!("{}/login/wecom", s.base)).await;
    let response = client.get(&authorize).send().await.unwrap();
    assert_eq!(response.headers()["error-code"], "50001");
}

#[tokio::test]
async fn admin_sync_endpoint_needs_the_token() {
    let s = setup(None, Duration::from_secs(300)).await;
    let http = browser(DESKTOP_UA, false);
    let url = format!("{}/admin/wecom/sync", s.base);
    let response = http.post(&url).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .post(&url)
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["unchanged"], 2, "{body}");
    s.wecom.inject(tablegate::wecom::fake::Injection::new(
        Endpoint::DepartmentList,
        48002,
    ));
    let response = http
        .post(&url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("Contacts"),
        "{body}"
    );
}
