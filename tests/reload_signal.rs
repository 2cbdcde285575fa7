//! SIGHUP reloads the policies. A test binary of its own: the signal goes to the whole process,
//! and would reach every other test's reloader too.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::proxy::{SHOP_POLICY, shop_with};
use tablegate::reload::{PolicyReloader, signal};
use tokio_postgres::SimpleQueryMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policies_folder() {
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("shop.toml");
    std::fs::write(&file, SHOP_POLICY).unwrap();
    let config = format!("policies = {:?}", folder.path().display().to_string());
    let (_db, proxy) = shop_with(&config).await;
    let reloader = Arc::new(PolicyReloader::new(proxy.gate.clone()));
    let handler = signal::reload_on_sighup(reloader.clone()).unwrap();

    let alice = proxy.client("alice", "alice-secret").await.unwrap();
    let regions = || async {
        alice
            .simple_query("SELECT DISTINCT region FROM orders ORDER BY region")
            .await
            .unwrap()
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(regions().await, ["East", "North"]);

    // No watcher runs: only the signal can make the edit live.
    std::fs::write(
        &file,
        SHOP_POLICY.replace(r#"["East", "North"]"#, r#"["West"]"#),
    )
    .unwrap();
    let status = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while reloader.stats().successes() == 0 {
        assert!(Instant::now() < deadline, "no reload after SIGHUP");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(proxy.gate.policy_generation(), 2);
    assert_eq!(
        regions().await,
        ["West"],
        "the same session, next statement"
    );
    handler.abort();
}
