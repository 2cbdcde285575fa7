//! Syncing the directory from the fake WeCom: a nested organisation, then changes, on both
//! stores; policies reading synced users.

mod support;

use std::sync::Arc;

use indicatif::ProgressBar;
use support::stores::StoreKind;
use tablegate::directory::{Directory, DirectoryStore, StoredUser};
use tablegate::policy::PolicySet;
use tablegate::policy::filter::BindError;
use tablegate::wecom::api::Endpoint;
use tablegate::wecom::fake::{FakeOrg, FakeUser, FakeWeCom, RawAnswer};
use tablegate::wecom::organisation::LeftOut;
use tablegate::wecom::shared_email::SharedEmail;
use tablegate::wecom::{ClientOptions, DirectorySync, SyncSettings, SyncSummary, WeComClient};

const INITIAL_PASSWORD: &str = "Welcome-2026";

/// Company(1, not visible) > Sales(2) > East(3); Engineering(4); Secret Lab(5, not visible).
/// The app sees Sales and Engineering, and `boss` (in Secret Lab) individually.
fn nested_org() -> FakeOrg {
    let mut org = FakeOrg::new("wwnested", 1000002, "nested-secret", "Company")
        .department(2, "Sales", 1)
        .department(3, "East", 2)
        .department(4, "Engineering", 1)
        .department(5, "Secret Lab", 1)
        .user(
            FakeUser::new("ZhangSan", "张三", &[3, 4])
                .position("Sales Rep")
                .attr("region", "East")
                .web_attr("homepage", "https://example.com/zhangsan"),
        )
        .user(FakeUser::new("lisi", "李四", &[2]).position("Manager"))
        .user(FakeUser::new("wangwu", "王五", &[4]).status(4))
        .user(FakeUser::new("zhaoliu", "赵六", &[4]).status(2))
        .user(FakeUser::new("boss", "老板", &[5]).position("CEO"));
    org.visible_departments = vec![2, 4];
    org.visible_users = vec!["boss".into()];
    org.post_2022_app = true;
    org
}

/// [`nested_org`] seen by an app created before 2022-06-20, which WeCom still gives emails.
fn nested_org_with_emails() -> FakeOrg {
    let mut org = nested_org();
    org.post_2022_app = false;
    org
}

fn syncer(wecom: &FakeWeCom, store: Arc<dyn DirectoryStore>) -> DirectorySync {
    syncer_beside_local(wecom, store, Vec::new(), Vec::new())
}

/// A sync that leaves `local_userids` (the users file's) alone and gives no WeCom user one of
/// `local_emails`.
fn syncer_beside_local(
    wecom: &FakeWeCom,
    store: Arc<dyn DirectoryStore>,
    local_userids: Vec<String>,
    local_emails: Vec<String>,
) -> DirectorySync {
    let client = WeComClient::new(wecom.credentials(), ClientOptions::default()).unwrap();
    DirectorySync::new(
        Arc::new(client),
        store,
        SyncSettings {
            email_suffix: "example.com".into(),
            initial_password: Some(INITIAL_PASSWORD.into()),
            concurrency: 4,
            local_userids,
            local_emails,
        },
    )
}

/// One sync of `store` from `wecom`, which must succeed.
async fn sync_once(wecom: &FakeWeCom, store: &Arc<dyn DirectoryStore>) -> SyncSummary {
    syncer(wecom, Arc::clone(store))
        .run(&ProgressBar::hidden())
        .await
        .unwrap()
}

async fn user(store: &Arc<dyn DirectoryStore>, userid: &str) -> StoredUser {
    store.user(userid).await.unwrap().unwrap()
}

fn counts(s: &SyncSummary) -> (usize, usize, usize, usize) {
    (s.created, s.updated, s.disabled, s.unchanged)
}

async fn full_sync_then_changes(store: Arc<dyn DirectoryStore>) {
    let wecom = FakeWeCom::start(nested_org()).await;
    let sync = syncer(&wecom, Arc::clone(&store));

    let first = sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(counts(&first), (5, 0, 0, 0), "{first}");
    assert_eq!(first.departments, 3);

    let zhang = user(&store, "zhangsan").await;
    assert_eq!(zhang.user.userid, "ZhangSan");
    assert_eq!(zhang.user.email.as_deref(), Some("ZhangSan@example.com"));
    let paths: Vec<String> = zhang
        .user
        .departments
        .iter()
        .map(|d| d.path_string())
        .collect();
    // The root (Company) is not visible: these paths do not start at it.
    assert_eq!(paths, ["…/Sales/East", "…/Engineering"]);
    assert_eq!(zhang.user.departments[0].node().id, Some(3));
    assert_eq!(
        zhang.user.attributes.get("region").map(String::as_str),
        Some("East")
    );
    assert!(!zhang.user.attributes.contains_key("homepage"));
    assert!(
        zhang
            .password_verifier
            .as_ref()
            .unwrap()
            .matches_password(INITIAL_PASSWORD)
    );
    assert_eq!(zhang.wecom_status, Some(1));

    let boss = user(&store, "boss").await;
    assert!(boss.user.enabled);
    assert!(
        boss.user.departments.is_empty(),
        "Secret Lab is not visible"
    );
    assert!(
        user(&store, "wangwu").await.user.enabled,
        "not activated is still a member"
    );
    assert!(
        !user(&store, "zhaoliu").await.user.enabled,
        "disabled in WeCom"
    );

    let directory = Directory::new(Arc::clone(&store), vec![]);
    directory.set_password("lisi", "lisi's own").await.unwrap();

    wecom.update_org(|org| {
        org.user_mut("lisi").unwrap().status = 5;
        org.users.retain(|u| u.userid != "wangwu");
        org.visible_users.clear();
        let zhang = org.user_mut("zhangsan").unwrap();
        zhang.position = "Sales Lead".into();
        zhang.attributes = vec![];
        *zhang = zhang.clone().attr("region", "West");
        org.users.push(FakeUser::new("newbie", "新人", &[3]));
    });
    let second = sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(counts(&second), (1, 1, 3, 1), "{second}");

    let all = store.users().await.unwrap();
    assert_eq!(all.len(), 6, "nobody is deleted");
    let lisi = user(&store, "lisi").await;
    assert!(!lisi.user.enabled);
    assert_eq!(lisi.wecom_status, Some(5));
    assert!(
        lisi.password_verifier.is_none(),
        "a userid that left WeCom may come back as someone else: its password goes"
    );
    assert!(
        !user(&store, "wangwu").await.user.enabled,
        "deleted from WeCom"
    );
    assert!(
        !user(&store, "boss").await.user.enabled,
        "out of the visible range"
    );
    let zhang_after = user(&store, "zhangsan").await;
    assert_eq!(zhang_after.user.position.as_deref(), Some("Sales Lead"));
    assert_eq!(zhang_after.created_at, zhang.created_at);
    assert!(
        zhang_after
            .password_verifier
            .unwrap()
            .matches_password(INITIAL_PASSWORD)
    );
    assert!(
        user(&store, "newbie")
            .await
            .password_verifier
            .unwrap()
            .matches_password(INITIAL_PASSWORD)
    );

    let before = store.dump().await.unwrap();
    let third = sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(
        (third.created, third.updated, third.disabled),
        (0, 0, 0),
        "{third}"
    );
    let after = store.dump().await.unwrap();
    assert_eq!(before.lines().count(), after.lines().count());

    // A user who comes back is enabled again; the admin's own "disabled" stays.
    directory
        .set_disabled_by_admin("zhaoliu", true)
        .await
        .unwrap();
    wecom.update_org(|org| org.user_mut("zhaoliu").unwrap().status = 1);
    sync.run(&ProgressBar::hidden()).await.unwrap();
    let zhaoliu = user(&store, "zhaoliu").await;
    assert!(zhaoliu.user.enabled);
    assert!(!zhaoliu.is_enabled(), "the admin disabled zhaoliu");
    assert!(
        zhaoliu.password_verifier.is_none(),
        "a user who comes back does not find the password of whoever had the userid before"
    );
}

#[tokio::test]
async fn sqlite_full_sync_then_changes() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    full_sync_then_changes(store).await;
}

#[tokio::test]
async fn postgres_full_sync_then_changes() {
    let (_kind, store) = StoreKind::open_postgres().await;
    full_sync_then_changes(store).await;
}

#[tokio::test]
async fn email_comes_from_wecom_when_the_app_may_read_it() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org_with_emails()).await;
    sync_once(&wecom, &store).await;
    assert_eq!(
        user(&store, "zhangsan").await.user.email.as_deref(),
        Some("zhangsan@mail.example.com")
    );
}

#[tokio::test]
async fn policies_read_synced_users() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org()).await;
    sync_once(&wecom, &store).await;
    let policies = PolicySet::from_str(
        "p.toml",
        "[datasource.d]\n[role.sales.datasource.d]\ntables=[\"public.orders\"]\n\
         [[assign]]\ndepartment = \"Sales\"\nroles=[\"sales\"]\n\
         [[assign]]\ndepartment_id = 4\nroles=[\"sales\"]\nvars = { level = 2 }\n",
    )
    .unwrap();
    let directory = Directory::new(Arc::clone(&store), vec![]);
    let zhang = directory.user("zhangsan").await.unwrap().unwrap();
    let entitlements = policies.entitlements(&zhang);
    assert_eq!(entitlements.roles.len(), 1);
    assert_eq!(entitlements.roles[0].via, "department Sales");
    assert_eq!(
        entitlements.variable(&zhang, "region").unwrap().to_string(),
        "\"East\""
    );
    assert_eq!(
        entitlements.variable(&zhang, "level").unwrap().to_string(),
        "2"
    );
    assert_eq!(
        entitlements
            .variable(&zhang, "department_ids")
            .unwrap()
            .to_string(),
        "[3, 4]"
    );
    // Disabled in WeCom: no roles.
    let zhaoliu = directory.user("zhaoliu").await.unwrap().unwrap();
    assert!(policies.entitlements(&zhaoliu).roles.is_empty());
}

#[tokio::test]
async fn sync_outcomes_are_counted_for_metrics() {
    use tablegate::metrics::text::Exposition;
    use tablegate::wecom::api::Endpoint;
    use tablegate::wecom::fake::Injection;

    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org()).await;
    let sync = syncer(&wecom, store);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    sync.run(&ProgressBar::hidden()).await.unwrap();
    wecom.inject(Injection::new(Endpoint::DepartmentList, -1).always());
    sync.run(&ProgressBar::hidden()).await.unwrap_err();
    assert_eq!((sync.stats().successes(), sync.stats().failures()), (1, 1));

    let mut text = Exposition::default();
    sync.stats().render(
        &mut text,
        "tablegate_wecom_syncs_total",
        "tablegate_wecom_sync",
        "WeCom directory sync",
    );
    let text = text.finish();
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
            .parse()
            .unwrap()
    };
    assert_eq!(
        value("tablegate_wecom_syncs_total{result=\"success\"}"),
        1.0
    );
    assert_eq!(
        value("tablegate_wecom_syncs_total{result=\"failure\"}"),
        1.0
    );
    assert!(value("tablegate_wecom_sync_last_duration_seconds") > 0.0);
    let last_success = value("tablegate_wecom_sync_last_success_timestamp_seconds");
    assert!(
        last_success >= started.floor(),
        "{last_success} < {started}"
    );
}

/// Users-file users are local people: a WeCom member of the same id is someone else, so the
/// sync neither creates nor updates a record under that id (it reports it), with or without a
/// password set; a local user the users file no longer names is disabled.
#[tokio::test]
async fn users_file_users_are_left_alone_and_revoked_when_removed() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let file = tablegate::directory::users_file::parse(
        "[[user]]\nuserid = \"lisi\"\n[[user]]\nuserid = \"Boss\"\nname = \"The DBA\"\n",
        "users.toml",
    )
    .unwrap();
    let directory = Directory::new(Arc::clone(&store), file);
    directory
        .set_password("boss", "dba-password")
        .await
        .unwrap();
    let wecom = FakeWeCom::start(nested_org()).await;
    let summary = syncer_beside_local(
        &wecom,
        Arc::clone(&store),
        directory.file_userids().map(str::to_owned).collect(),
        Vec::new(),
    )
    .run(&ProgressBar::hidden())
    .await
    .unwrap();
    assert_eq!(summary.skipped_local, ["boss", "lisi"]);
    assert!(
        store.user("lisi").await.unwrap().is_none(),
        "no WeCom record"
    );
    let boss = directory.user("boss").await.unwrap().unwrap();
    assert_eq!((boss.name.as_str(), boss.enabled), ("The DBA", true));
    assert!(directory.wecom_user("boss").await.unwrap().is_none());
    assert!(directory.wecom_user("ZhangSan").await.unwrap().is_some());

    // The admin deletes `Boss` from the users file: the stored password no longer logs in.
    let without = Directory::new(Arc::clone(&store), Vec::new());
    assert!(!without.user("boss").await.unwrap().unwrap().enabled);
    assert!(without.password_verifier("boss").await.unwrap().is_none());
}

/// Found by red-team review: WeCom synced `dba` (Mallory) before the users file named `dba`,
/// the DBA; Mallory's record kept answering for the userid, so a WeCom login or Mallory's
/// password opened the DBA's roles. The users file wins whichever came first.
#[tokio::test]
async fn a_users_file_user_named_after_a_synced_member_is_not_that_member() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org()).await;
    let sync =
        |local: Vec<String>| syncer_beside_local(&wecom, Arc::clone(&store), local, Vec::new());
    sync(Vec::new()).run(&ProgressBar::hidden()).await.unwrap();
    assert!(
        store
            .user("lisi")
            .await
            .unwrap()
            .unwrap()
            .password_verifier
            .is_some()
    );

    let file = tablegate::directory::users_file::parse(
        "[[user]]\nuserid = \"LiSi\"\nname = \"The DBA\"\n",
        "users.toml",
    )
    .unwrap();
    let directory = Directory::new(Arc::clone(&store), file);
    // Before any new sync: the local user, without the member's password or WeCom login.
    let lisi = directory.user("lisi").await.unwrap().unwrap();
    assert_eq!(lisi.name, "The DBA");
    assert!(directory.password_verifier("lisi").await.unwrap().is_none());
    assert!(directory.wecom_user("lisi").await.unwrap().is_none());
    let contested = directory.set_password("lisi", "dba-password").await;
    assert!(
        contested
            .as_ref()
            .is_err_and(|e| e.to_string().contains("Rename the local user")),
        "{contested:?}"
    );

    let summary = sync(directory.file_userids().map(str::to_owned).collect())
        .run(&ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(summary.skipped_local, ["lisi"]);
    assert_eq!(summary.disabled, 1, "{summary}");
    let member = store.user("lisi").await.unwrap().unwrap();
    assert!(!member.user.enabled);
    assert!(member.password_verifier.is_none());
}

/// Found by red-team review: agent/get named `boss`, user/get for `boss` answered another
/// userid; the first sync stored that user and every later sync failed creating it again
/// ("already in the directory"), so leavers were never disabled. Such an answer is left out,
/// reported, and no sync fails.
#[tokio::test]
async fn a_user_get_answer_for_another_userid_is_left_out_and_stops_no_sync() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org()).await;
    wecom.answer_raw(
        RawAnswer::new(
            Endpoint::UserGet,
            200,
            r#"{"errcode":0,"errmsg":"ok","userid":"Ghost.Renamed","name":"G","department":[2],"status":1}"#,
        )
        .always(),
    );
    let sync = syncer(&wecom, Arc::clone(&store));
    let first = sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(
        first.left_out,
        [LeftOut::AnsweredForAnother {
            asked: "boss".into(),
            answered: "Ghost.Renamed".into()
        }]
    );
    assert!(
        first
            .to_string()
            .contains(r#"user/get for "boss" answered "Ghost.Renamed""#),
        "{first}"
    );
    assert!(store.user("Ghost.Renamed").await.unwrap().is_none());
    assert!(store.user("boss").await.unwrap().is_none());

    wecom.update_org(|org| org.user_mut("lisi").unwrap().status = 5);
    for _ in 0..2 {
        sync.run(&ProgressBar::hidden()).await.unwrap();
    }
    assert!(
        !user(&store, "lisi").await.user.enabled,
        "leavers are disabled"
    );
}

/// WeCom's userids are case-insensitive: two spellings of one userid in one sync's answers
/// cannot be told apart, so neither is taken (an existing record is disabled), whichever
/// answer came first.
#[tokio::test]
async fn userids_differing_only_in_case_are_left_out_and_reported() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org()).await;
    let sync = syncer(&wecom, Arc::clone(&store));
    sync.run(&ProgressBar::hidden()).await.unwrap();
    wecom.update_org(|org| org.users.push(FakeUser::new("LISI", "Impostor", &[4])));
    let summary = sync.run(&ProgressBar::hidden()).await.unwrap();
    assert_eq!(
        summary.left_out,
        [LeftOut::SpelledDifferently(vec![
            "LISI".into(),
            "lisi".into()
        ])]
    );
    assert_eq!(summary.disabled, 1, "{summary}");
    let lisi = user(&store, "lisi").await;
    assert_eq!(
        (lisi.user.name.as_str(), lisi.user.enabled),
        ("李四", false)
    );
    assert!(lisi.password_verifier.is_none());
    sync.run(&ProgressBar::hidden()).await.unwrap();
}

/// Found by red-team review: with `Corp` and `Corp/Ops` outside the visible range, the paths of
/// `Corp/Finance/Payroll` and `Corp/Ops/Finance/Payroll` both read `Finance/Payroll`, and that
/// path assignment matched a member of the Ops team.
#[tokio::test]
async fn departments_whose_ancestors_are_not_all_visible_match_no_path() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let mut org = FakeOrg::new("wwpaths", 1000002, "paths-secret", "Corp")
        .department(5, "Finance", 1)
        .department(6, "Payroll", 5)
        .department(10, "Ops", 1)
        .department(12, "Finance", 10)
        .department(13, "Payroll", 12)
        .user(FakeUser::new("paula", "Paula", &[6]))
        .user(FakeUser::new("oscar", "Oscar", &[13]));
    org.visible_departments = vec![5, 12];
    let wecom = FakeWeCom::start(org).await;
    let sync = syncer(&wecom, Arc::clone(&store));
    sync.run(&ProgressBar::hidden()).await.unwrap();
    let directory = Directory::new(Arc::clone(&store), vec![]);
    let policies = PolicySet::from_str(
        "p.toml",
        "[datasource.d]\n[role.r.datasource.d]\ntables=[\"public.t\"]\n\
         [[assign]]\ndepartment = \"Finance/Payroll\"\nroles=[\"r\"]\n\
         [[assign]]\ndepartment = \"Corp/Finance/Payroll\"\nroles=[\"r\"]\n\
         [[assign]]\ndepartment = \"Payroll\"\nroles=[\"r\"]\n\
         [[assign]]\ndepartment_id = 5\nroles=[\"r\"]\n",
    )
    .unwrap();
    let via = |user: &tablegate::directory::User| -> Vec<String> {
        policies
            .assignments
            .iter()
            .filter(|a| a.matcher.matches(user))
            .map(|a| a.matcher.describe())
            .collect()
    };
    let oscar = directory.user("oscar").await.unwrap().unwrap();
    assert_eq!(oscar.departments[0].path_string(), "…/Finance/Payroll");
    assert_eq!(via(&oscar), ["department Payroll"]);
    let paula = directory.user("paula").await.unwrap().unwrap();
    assert_eq!(via(&paula), ["department Payroll", "department id 5"]);

    // With the root visible, paths start at it.
    wecom.update_org(|org| org.visible_departments = vec![1]);
    sync.run(&ProgressBar::hidden()).await.unwrap();
    let paula = directory.user("paula").await.unwrap().unwrap();
    assert_eq!(paula.departments[0].path_string(), "Corp/Finance/Payroll");
    assert_eq!(
        via(&paula),
        [
            "department Corp/Finance/Payroll",
            "department Payroll",
            "department id 5"
        ]
    );
    let oscar = directory.user("oscar").await.unwrap().unwrap();
    assert_eq!(via(&oscar), ["department Payroll"]);
}

/// Found by red-team review: an employee set her WeCom email to `lisi@example.com`, the email
/// generated for lisi (who has none in WeCom), and read lisi's rows under a filter
/// `owner_email = {{user.email}}`. An email several users hold — WeCom's, generated, or a
/// users-file user's — is given to none of the WeCom users holding it.
/// Found in review: a user who left keeps their rows' email in the directory; an employee who
/// takes it in WeCom does not get it.
#[tokio::test]
async fn an_email_a_departed_user_held_is_not_given_to_another() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org_with_emails()).await;
    sync_once(&wecom, &store).await;
    let directory = Directory::new(Arc::clone(&store), Vec::new());
    let boss_email = directory
        .user("boss")
        .await
        .unwrap()
        .unwrap()
        .email
        .unwrap();
    wecom.update_org(|org| {
        org.users.retain(|u| u.userid != "boss");
        org.user_mut("lisi").unwrap().email = boss_email.to_uppercase();
    });
    let summary = sync_once(&wecom, &store).await;
    assert_eq!(
        summary.shared_emails,
        [SharedEmail {
            email: boss_email.to_lowercase(),
            userids: vec!["lisi".into()],
            held_elsewhere: true,
        }]
    );
    assert_eq!(directory.user("lisi").await.unwrap().unwrap().email, None);
}

#[tokio::test]
async fn an_email_several_users_hold_is_given_to_none_of_them() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let mut org = nested_org_with_emails();
    org.user_mut("lisi").unwrap().email = String::new();
    org.users.push(FakeUser::new("mallory", "M", &[4]));
    org.user_mut("mallory").unwrap().email = "LiSi@Example.com".into();
    let wecom = FakeWeCom::start(org).await;
    sync_once(&wecom, &store).await;
    wecom.update_org(|org| org.user_mut("wangwu").unwrap().email = "dba@example.com".into());
    let file = tablegate::directory::users_file::parse(
        "[[user]]\nuserid = \"dba\"\nemail = \"DBA@example.com\"\n",
        "users.toml",
    )
    .unwrap();
    let directory = Directory::new(Arc::clone(&store), file);
    let summary = syncer_beside_local(
        &wecom,
        Arc::clone(&store),
        directory.file_userids().map(str::to_owned).collect(),
        directory.file_emails().map(str::to_owned).collect(),
    )
    .run(&ProgressBar::hidden())
    .await
    .unwrap();
    assert_eq!(
        summary.shared_emails,
        [
            SharedEmail {
                email: "dba@example.com".into(),
                userids: vec!["wangwu".into()],
                held_elsewhere: true,
            },
            SharedEmail {
                email: "lisi@example.com".into(),
                userids: vec!["lisi".into(), "mallory".into()],
                held_elsewhere: false,
            },
        ]
    );
    assert!(
        summary
            .to_string()
            .contains("lisi@example.com held by lisi, mallory"),
        "{summary}"
    );
    for userid in ["lisi", "mallory", "wangwu"] {
        let member = directory.user(userid).await.unwrap().unwrap();
        assert_eq!(member.email, None, "{userid}");
        let refusal = PolicySet::from_str("p.toml", "")
            .unwrap()
            .entitlements(&member)
            .variable(&member, "email")
            .unwrap_err();
        assert_eq!(refusal, BindError::Missing("email".into()));
        assert!(refusal.to_string().contains("`email`"), "{refusal}");
    }
    assert_eq!(
        directory
            .user("dba")
            .await
            .unwrap()
            .unwrap()
            .email
            .as_deref(),
        Some("DBA@example.com"),
        "the users file's word stands"
    );
    assert_eq!(
        directory
            .user("zhangsan")
            .await
            .unwrap()
            .unwrap()
            .email
            .as_deref(),
        Some("zhangsan@mail.example.com")
    );
}

/// A WeCom record synced before the users file named its email does not hold it either, also
/// before the next sync withholds it.
#[tokio::test]
async fn a_stored_wecom_user_never_shows_a_users_file_users_email() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    let wecom = FakeWeCom::start(nested_org_with_emails()).await;
    sync_once(&wecom, &store).await;
    let file = tablegate::directory::users_file::parse(
        "[[user]]\nuserid = \"dba\"\nemail = \"LiSi@mail.example.com\"\n",
        "users.toml",
    )
    .unwrap();
    let directory = Directory::new(Arc::clone(&store), file);
    assert_eq!(directory.user("lisi").await.unwrap().unwrap().email, None);
    assert!(
        directory
            .users()
            .await
            .unwrap()
            .iter()
            .all(|u| u.is("dba") || u.email.as_deref() != Some("lisi@mail.example.com"))
    );
}
