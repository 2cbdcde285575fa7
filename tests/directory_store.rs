//! Both directory stores keep the same users the same way, and change them all or not at all.

mod support;

use std::sync::Arc;

use support::stores::StoreKind;
use tablegate::directory::{
    Department, DepartmentNode, Directory, DirectoryChanges, DirectoryStore, ScramVerifier,
    StoreError, StoredUser, Timestamp, User, UserSource,
};

fn stored(userid: &str) -> StoredUser {
    StoredUser {
        user: User {
            userid: userid.into(),
            name: format!("{userid} 名字"),
            email: Some(format!("{userid}@example.com")),
            departments: vec![Department {
                path: vec![
                    DepartmentNode {
                        id: Some(1),
                        name: "Corp".into(),
                    },
                    DepartmentNode {
                        id: Some(2),
                        name: "销售".into(),
                    },
                ],
                from_root: true,
            }],
            position: Some("Rep".into()),
            attributes: [("region".to_string(), "East".to_string())].into(),
            enabled: true,
        },
        source: UserSource::Wecom,
        wecom_status: Some(1),
        disabled_by_admin: false,
        password_verifier: Some(ScramVerifier::new("initial")),
        created_at: Timestamp(1_700_000_000),
        updated_at: Timestamp(1_700_000_000),
        last_synced_at: Some(Timestamp(1_700_000_000)),
    }
}

async fn scenario(store: Arc<dyn DirectoryStore>) {
    let zhang = stored("Zhang");
    store
        .apply(&DirectoryChanges {
            create: vec![zhang.clone(), stored("li")],
            ..DirectoryChanges::default()
        })
        .await
        .unwrap();
    let users = store.users().await.unwrap();
    assert_eq!(
        users
            .iter()
            .map(|u| u.user.userid.as_str())
            .collect::<Vec<_>>(),
        ["li", "Zhang"]
    );
    assert_eq!(store.user("ZHANG").await.unwrap().unwrap(), zhang);

    // A failing change leaves everything as it was.
    let before = store.dump().await.unwrap();
    let mut changed = stored("li");
    changed.user.name = "changed".into();
    let err = store
        .apply(&DirectoryChanges {
            create: vec![stored("wang")],
            update: vec![changed.clone(), stored("nobody")],
            ..DirectoryChanges::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err, StoreError::UnknownUser("nobody".into()));
    assert_eq!(store.dump().await.unwrap(), before);

    // Updates keep the verifier and creation time; `seen` only moves last_synced_at.
    changed.password_verifier = None;
    changed.created_at = Timestamp(1);
    changed.updated_at = Timestamp(1_800_000_000);
    store
        .apply(&DirectoryChanges {
            update: vec![changed],
            seen: vec!["ZHANG".into()],
            synced_at: Some(Timestamp(1_800_000_001)),
            ..DirectoryChanges::default()
        })
        .await
        .unwrap();
    let li = store.user("li").await.unwrap().unwrap();
    assert_eq!(li.user.name, "changed");
    assert!(li.password_verifier.unwrap().matches_password("initial"));
    assert_eq!(li.created_at, Timestamp(1_700_000_000));
    let zhang = store.user("zhang").await.unwrap().unwrap();
    assert_eq!(zhang.last_synced_at, Some(Timestamp(1_800_000_001)));
    assert_eq!(zhang.updated_at, Timestamp(1_700_000_000));

    // Passwords and the admin's flag, through the directory view.
    let file_user = User {
        userid: "local".into(),
        name: "Local".into(),
        email: None,
        departments: vec![],
        position: None,
        attributes: Default::default(),
        enabled: true,
    };
    let directory = Directory::new(Arc::clone(&store), vec![file_user]);
    directory.set_password("zhang", "new secret").await.unwrap();
    assert!(
        directory
            .password_verifier("Zhang")
            .await
            .unwrap()
            .unwrap()
            .matches_password("new secret")
    );
    directory
        .set_disabled_by_admin("zhang", true)
        .await
        .unwrap();
    assert!(!directory.user("zhang").await.unwrap().unwrap().enabled);
    assert!(
        directory
            .password_verifier("zhang")
            .await
            .unwrap()
            .is_none()
    );
    directory.set_password("LOCAL", "pw").await.unwrap();
    let local = store.user("local").await.unwrap().unwrap();
    assert_eq!(local.source, UserSource::Local);
    assert_eq!(directory.users().await.unwrap().len(), 3);
    assert!(matches!(
        directory.set_password("ghost", "pw").await,
        Err(StoreError::UnknownUser(_))
    ));
}

#[tokio::test]
async fn sqlite_store() {
    let (_kind, store) = StoreKind::open_sqlite().await;
    scenario(store).await;
}

#[tokio::test]
async fn postgres_store() {
    let (_kind, store) = StoreKind::open_postgres().await;
    scenario(store).await;
}

#[tokio::test]
async fn both_stores_dump_the_same_bytes() {
    let (_sqlite_kind, sqlite) = StoreKind::open_sqlite().await;
    let (_pg_kind, pg) = StoreKind::open_postgres().await;
    let changes = DirectoryChanges {
        create: vec![stored("b"), stored("A")],
        ..DirectoryChanges::default()
    };
    sqlite.apply(&changes).await.unwrap();
    pg.apply(&changes).await.unwrap();
    assert_eq!(sqlite.dump().await.unwrap(), pg.dump().await.unwrap());
}

#[tokio::test]
async fn verifiers_match_postgresql_own() {
    let db = support::database::TempDatabase::create().await;
    let (client, connection) = db.config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let role = format!("{}_role", db.name);
    client
        .batch_execute(&format!(
            "SET password_encryption = 'scram-sha-256'; CREATE ROLE {role} PASSWORD 'pässword 1'"
        ))
        .await
        .unwrap();
    let theirs: String = client
        .query_one(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1",
            &[&role],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
    drop(client);
    let parsed = ScramVerifier::parse(&theirs).unwrap();
    let ours = ScramVerifier::with_salt("pässword 1", &parsed.salt, parsed.iterations);
    assert_eq!(ours.to_string(), theirs);
}
