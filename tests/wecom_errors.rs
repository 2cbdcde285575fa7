//! Every WeCom error path: what the admin is told, that a failed sync changes nothing, that
//! tokens are refreshed when they should be and never in a loop, and that no secret leaks.

mod support;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use support::stores::StoreKind;
use tablegate::directory::DirectoryStore;
use tablegate::wecom::api::Endpoint;
use tablegate::wecom::fake::{FakeLogin, FakeOrg, FakeUser, FakeWeCom, Injection, RawAnswer};
use tablegate::wecom::{
    ClientOptions, DirectorySync, SyncError, SyncSettings, WeComClient, WeComCredentials,
};

const SECRET: &str = "errors-secret-value";

/// Four visible departments under an invisible root, two users each, and `solo` in the root,
/// visible individually.
fn org() -> FakeOrg {
    let mut org = FakeOrg::new("wwerrors", 1000002, SECRET, "Company");
    for d in 2..=5 {
        org = org
            .department(d, &format!("D{d}"), 1)
            .user(FakeUser::new(&format!("a{d}"), "A", &[d]).attr("region", "East"))
            .user(FakeUser::new(&format!("b{d}"), "B", &[d]));
    }
    org.visible_departments = vec![2, 3, 4, 5];
    org.visible_users = vec!["solo".into()];
    org.user(FakeUser::new("solo", "S", &[1]))
}

fn options() -> ClientOptions {
    ClientOptions {
        busy_backoff: Duration::from_millis(5),
        ..ClientOptions::default()
    }
}

fn syncer_with(credentials: WeComCredentials, store: Arc<dyn DirectoryStore>) -> DirectorySync {
    DirectorySync::new(
        Arc::new(WeComClient::new(credentials, options()).unwrap()),
        store,
        SyncSettings {
            email_suffix: "example.com".into(),
            initial_password: Some("initial".into()),
            concurrency: 1,
            local_userids: Vec::new(),
            local_emails: Vec::new(),
        },
    )
}

struct Case {
    wecom: FakeWeCom,
    store: Arc<dyn DirectoryStore>,
    _kind: StoreKind,
}

impl Case {
    /// A SQLite directory already synced once.
    async fn new() -> Case {
        Case::with_store(StoreKind::open_sqlite().await).await
    }

    /// A directory in `store` already synced once.
    async fn with_store((kind, store): (StoreKind, Arc<dyn DirectoryStore>)) -> Case {
        let wecom = FakeWeCom::start(org()).await;
        syncer_with(wecom.credentials(), Arc::clone(&store))
            .run(&ProgressBar::hidden())
            .await
            .unwrap();
        wecom.update_org(|org| {
            org.users.push(FakeUser::new("newcomer", "N", &[3]));
            org.user_mut("b4").unwrap().status = 5;
        });
        wecom.reset_calls();
        Case {
            wecom,
            store,
            _kind: kind,
        }
    }

    /// A sync with a fresh client (no cached token) that must fail; checks that the directory
    /// is byte-for-byte unchanged and that the message holds no secret.
    async fn failing_sync(&self) -> String {
        let before = self.store.dump().await.unwrap();
        let error = syncer_with(self.wecom.credentials(), Arc::clone(&self.store))
            .run(&ProgressBar::hidden())
            .await
            .unwrap_err();
        assert_eq!(
            self.store.dump().await.unwrap(),
            before,
            "the directory changed"
        );
        let message = error.to_string();
        assert_no_secret(&self.wecom, &message);
        assert_no_secret(&self.wecom, &format!("{error:?}"));
        message
    }
}

fn assert_no_secret(wecom: &FakeWeCom, text: &str) {
    assert!(!text.contains(SECRET), "the Secret leaked: {text}");
    assert!(
        !text.contains("access_token="),
        "a token URL leaked: {text}"
    );
    for token in wecom.issued_tokens() {
        assert!(!text.contains(&token), "a token leaked: {text}");
    }
}

#[tokio::test]
async fn every_error_code_tells_the_admin_what_to_fix() {
    let cases: &[(Endpoint, i64, usize, &str)] = &[
        (Endpoint::GetToken, 40001, 0, "[wecom] secret"),
        (Endpoint::GetToken, 40013, 0, "[wecom] corp_id"),
        (
            Endpoint::GetToken,
            41004,
            0,
            "Secret ([wecom] secret) is empty",
        ),
        (Endpoint::AgentGet, 40056, 0, "[wecom] agent_id"),
        (Endpoint::AgentGet, 301002, 0, "Secret and AgentID"),
        (Endpoint::UserList, 41001, 0, "tablegate bug"),
        (Endpoint::UserList, 45009, 0, "rate limit"),
        (Endpoint::UserList, 45033, 0, "Lower [wecom] concurrency"),
        (
            Endpoint::DepartmentList,
            48002,
            0,
            "read access to Contacts",
        ),
        (Endpoint::DepartmentList, 48009, 0, "self-built app"),
        (Endpoint::UserList, 60011, 2, "visible range"),
        (Endpoint::UserGet, 60011, 0, "visible range"),
        (Endpoint::UserList, 12345, 1, "devtool/query?e=12345"),
    ];
    for (endpoint, code, after, phrase) in cases {
        let case = Case::new().await;
        case.wecom
            .inject(Injection::new(*endpoint, *code).after(*after).always());
        let message = case.failing_sync().await;
        assert!(
            message.contains(phrase) && message.contains(&code.to_string()),
            "{endpoint} {code}: {message}"
        );
        assert!(message.contains("the directory is unchanged"), "{message}");
        assert!(message.contains("WeCom hint"), "{message}");
    }
}

#[tokio::test]
async fn untrusted_ip_names_the_ip_and_the_trusted_domain() {
    let case = Case::new().await;
    case.wecom
        .set_trusted_ips(Some(vec!["203.0.113.7".parse::<IpAddr>().unwrap()]));
    let message = case.failing_sync().await;
    assert!(message.contains("60020"), "{message}");
    assert!(message.contains("IP 127.0.0.1"), "{message}");
    assert!(
        message.contains("trusted domain must be configured first"),
        "{message}"
    );
}

#[tokio::test]
async fn a_failure_in_the_middle_changes_nothing() {
    let case = Case::new().await;
    case.wecom
        .inject(Injection::new(Endpoint::UserList, 60011).after(3));
    case.failing_sync().await;
    assert_eq!(
        case.wecom.calls(Endpoint::UserList),
        4,
        "the walk stops at the failure"
    );
}

#[tokio::test]
async fn a_failure_in_the_middle_changes_nothing_on_postgres() {
    let case = Case::with_store(StoreKind::open_postgres().await).await;
    case.wecom
        .inject(Injection::new(Endpoint::UserList, 45033).after(2));
    let message = case.failing_sync().await;
    assert!(message.contains("45033"), "{message}");
}

/// Found by red-team review: a gateway answered department/list with HTTP 502 and
/// `{"error":"upstream timeout"}`, read as WeCom's success with no departments: the sync
/// disabled everyone and forgot their passwords. An answer not in WeCom's shape, or a success
/// without the payload it must carry, fails the sync and changes nothing.
#[tokio::test]
async fn an_answer_not_from_wecom_is_an_error_not_an_empty_organisation() {
    let gateway_timeout = r#"{"error":"upstream timeout"}"#;
    let cases: &[(Endpoint, u16, &str, &str)] = &[
        (Endpoint::DepartmentList, 502, gateway_timeout, "HTTP 502"),
        (
            Endpoint::DepartmentList,
            200,
            gateway_timeout,
            "without WeCom's `errcode`",
        ),
        (
            Endpoint::DepartmentList,
            200,
            "<html>busy</html>",
            "not JSON",
        ),
        (
            Endpoint::DepartmentList,
            200,
            r#"{"errcode":0,"errmsg":"ok"}"#,
            "`department`",
        ),
        (
            Endpoint::DepartmentList,
            503,
            r#"{"errcode":0,"errmsg":"ok","department":[]}"#,
            "HTTP 503",
        ),
        (
            Endpoint::UserList,
            200,
            r#"{"errcode":0,"errmsg":"ok"}"#,
            "`userlist`",
        ),
        (
            Endpoint::UserGet,
            200,
            r#"{"errcode":0,"errmsg":"ok","name":"S"}"#,
            "`userid`",
        ),
        (
            Endpoint::GetToken,
            200,
            r#"{"errcode":0,"errmsg":"ok"}"#,
            "`access_token`",
        ),
    ];
    for (endpoint, status, body, phrase) in cases {
        let case = Case::new().await;
        case.wecom
            .answer_raw(RawAnswer::new(*endpoint, *status, body).always());
        let message = case.failing_sync().await;
        assert!(
            message.contains(phrase)
                && message.contains("a proxy or gateway between tablegate and WeCom")
                && message.contains(&endpoint.to_string()),
            "{endpoint} {status} {body}: {message}"
        );
    }
}

#[tokio::test]
async fn system_busy_is_retried_three_times() {
    let case = Case::new().await;
    case.wecom.inject(Injection::new(Endpoint::UserList, -1));
    syncer_with(case.wecom.credentials(), Arc::clone(&case.store))
        .run(&ProgressBar::hidden())
        .await
        .unwrap();

    let case = Case::new().await;
    case.wecom
        .inject(Injection::new(Endpoint::DepartmentList, -1).always());
    let message = case.failing_sync().await;
    assert!(message.contains("busy"), "{message}");
    assert_eq!(case.wecom.calls(Endpoint::DepartmentList), 4);
}

#[tokio::test]
async fn wrong_secret_is_never_retried() {
    let case = Case::new().await;
    let mut credentials = case.wecom.credentials();
    credentials.secret = "a-wrong-secret".into();
    for attempt in 1..=2 {
        let error = syncer_with(credentials.clone(), Arc::clone(&case.store))
            .run(&ProgressBar::hidden())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("40001"), "{error}");
        assert!(!error.to_string().contains("a-wrong-secret"));
        assert_eq!(case.wecom.calls(Endpoint::GetToken), attempt);
        assert_eq!(case.wecom.total_calls(), attempt);
    }
}

#[tokio::test]
async fn stale_tokens_are_refreshed_once() {
    let case = Case::new().await;
    let sync = syncer_with(case.wecom.credentials(), Arc::clone(&case.store));
    sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(case.wecom.calls(Endpoint::GetToken), 1);
    sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(
        case.wecom.calls(Endpoint::GetToken),
        1,
        "the token is cached"
    );

    // Expired on WeCom's clock (42001): refreshed, the sync succeeds.
    case.wecom.advance_clock(Duration::from_secs(7201));
    sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(case.wecom.calls(Endpoint::GetToken), 2);

    // Invalidated early (40014): refreshed, the sync succeeds.
    case.wecom.invalidate_tokens();
    sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(case.wecom.calls(Endpoint::GetToken), 3);

    // 40001 from a data call: one refresh and one retry, then the error.
    case.wecom.reset_calls();
    case.wecom
        .inject(Injection::new(Endpoint::DepartmentList, 40001).always());
    let error = sync.run(&ProgressBar::hidden()).await.unwrap_err();
    assert!(error.to_string().contains("40001"), "{error}");
    assert_eq!(case.wecom.calls(Endpoint::GetToken), 1);
    assert_eq!(case.wecom.calls(Endpoint::DepartmentList), 2);
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_before_they_expire() {
    let case = Case::new().await;
    case.wecom.set_token_lifetime(Duration::from_secs(1));
    let sync = syncer_with(case.wecom.credentials(), Arc::clone(&case.store));
    sync.run(&ProgressBar::hidden()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    case.wecom.reset_calls();
    case.wecom.set_token_lifetime(Duration::from_secs(7200));
    sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(
        case.wecom.calls(Endpoint::GetToken),
        1,
        "renewed ahead of expiry"
    );
}

#[tokio::test]
async fn rate_limits_stop_the_sync_without_a_retry_storm() {
    let case = Case::new().await;
    case.wecom.set_rate_limit(2);
    let error = syncer_with(case.wecom.credentials(), Arc::clone(&case.store))
        .run(&ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("45009"), "{error}");
    assert_eq!(error.retry_after(), Some(Duration::from_secs(60)));
    // The first sync used up this minute's user/list budget: the first call is refused.
    assert_eq!(
        case.wecom.calls(Endpoint::UserList),
        1,
        "stopped at the first 45009"
    );
    let calls = case.wecom.total_calls();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(case.wecom.total_calls(), calls, "nothing keeps calling");
}

#[tokio::test]
async fn individually_visible_users_gone_from_wecom_are_reported() {
    let case = Case::new().await;
    case.wecom
        .update_org(|org| org.visible_users.push("ghost".into()));
    let summary = syncer_with(case.wecom.credentials(), Arc::clone(&case.store))
        .run(&ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(summary.not_found, ["ghost"]);
    assert!(summary.to_string().contains("gone from WeCom: ghost"));
}

#[tokio::test]
async fn unreachable_wecom_is_explained_without_the_url() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let credentials = WeComCredentials {
        base_url: "http://127.0.0.1:9".into(),
        corp_id: "wwerrors".into(),
        agent_id: 1,
        secret: SECRET.into(),
    };
    let error = syncer_with(credentials.clone(), store)
        .run(&ProgressBar::hidden())
        .await
        .unwrap_err();
    assert!(matches!(error, SyncError::WeCom(_)));
    let message = error.to_string();
    assert!(message.contains("cannot reach WeCom"), "{message}");
    assert!(!message.contains(SECRET), "{message}");
    assert!(!format!("{error:?}").contains(SECRET));
    assert!(!format!("{credentials:?}").contains(SECRET));
}

#[tokio::test]
async fn login_codes_are_explained() {
    let wecom = FakeWeCom::start(org()).await;
    let client = WeComClient::new(wecom.credentials(), options()).unwrap();
    let error = client.login_identity("never-issued").await.unwrap_err();
    assert!(
        error.to_string().contains("older than 5 minutes"),
        "{error}"
    );
    let error = client.user("nobody").await.unwrap_err();
    assert!(error.to_string().contains("60111"), "{error}");
    assert!(!format!("{client:?}").contains(SECRET));
}

/// Found by red-team review: every bogus login callback costs a getuserinfo call, and past the
/// budget a genuine login waited up to a minute, holding its connection. A person waiting is
/// told at once instead, and WeCom is not called.
#[tokio::test]
async fn a_login_past_the_call_budget_is_refused_at_once() {
    let wecom = FakeWeCom::start(org()).await;
    let client = WeComClient::new(
        wecom.credentials(),
        ClientOptions {
            requests_per_minute: 1,
            ..options()
        },
    )
    .unwrap();
    let _ = client.login_identity("bogus").await;
    let calls = wecom.calls(Endpoint::GetUserInfo);
    let started = std::time::Instant::now();
    let code = wecom.issue_code(FakeLogin::Member("zhangsan".into()));
    let error = client.login_identity(&code).await.unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(error.kind, tablegate::wecom::WeComErrorKind::OverBudget);
    assert!(error.to_string().contains("requests_per_minute"), "{error}");
    assert_eq!(
        wecom.calls(Endpoint::GetUserInfo),
        calls,
        "WeCom was not called"
    );
}

#[test]
fn every_documented_code_has_its_own_advice() {
    use tablegate::wecom::{WeComError, WeComErrorKind};
    for code in [
        -1, 40001, 40013, 40014, 40029, 40056, 41001, 42001, 45009, 45033, 48002, 48009, 50001,
        60011, 60020, 60111, 301002,
    ] {
        let error = WeComError {
            endpoint: Endpoint::UserList,
            kind: WeComErrorKind::Api {
                code,
                errmsg: format!(
                    "{}, hint: [1-2], from ip: 198.51.100.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}",
                    tablegate::wecom::fake::errmsg_text(code)
                ),
            },
        };
        let message = error.to_string();
        assert!(
            !message.contains("devtool/query"),
            "{code} has no advice: {message}"
        );
    }
}
