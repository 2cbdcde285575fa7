//! How long a sync of 50,000 users in 2,000 departments takes against the fake WeCom, and how
//! much memory it needs.
//!
//! `cargo run --release --example wecom_sync_scale [users] [departments]`
//! Set `TABLEGATE_BENCH_POSTGRES` (e.g. `host=127.0.0.1 user=postgres dbname=bench`) to sync
//! into that PostgreSQL database instead of a temporary SQLite file.

use std::sync::Arc;
use std::time::Instant;

use indicatif::ProgressBar;
use tablegate::directory::DirectoryStore;
use tablegate::directory::postgres::PostgresStore;
use tablegate::directory::sqlite::SqliteStore;
use tablegate::upstream::Database;
use tablegate::wecom::api::Endpoint;
use tablegate::wecom::fake::{FakeOrg, FakeUser, FakeWeCom};
use tablegate::wecom::{ClientOptions, DirectorySync, SyncSettings, WeComClient};

/// Peak resident memory of this process (fake server included), from /proc.
fn peak_memory_mib() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or("unknown".into(), |kb| format!("{} MiB", kb / 1024))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let users: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(50_000);
    let departments: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);

    let generated = Instant::now();
    let wecom = FakeWeCom::start(FakeOrg::generated(users, departments)).await;
    println!(
        "fake WeCom with {users} users in {departments} departments ready in {:.1}s",
        generated.elapsed().as_secs_f64()
    );

    let scratch = tempfile::tempdir().expect("a temporary directory");
    let store: Arc<dyn DirectoryStore> = match std::env::var("TABLEGATE_BENCH_POSTGRES") {
        Ok(settings) => Arc::new(
            PostgresStore::connect(Database::new(
                settings.parse().expect("PostgreSQL settings"),
                None,
            ))
            .await
            .expect("connect to PostgreSQL"),
        ),
        Err(_) => Arc::new(
            SqliteStore::open(&scratch.path().join("directory.db"))
                .await
                .expect("open SQLite"),
        ),
    };
    let client = WeComClient::new(wecom.credentials(), ClientOptions::default()).unwrap();
    let sync = DirectorySync::new(
        Arc::new(client),
        store,
        SyncSettings {
            email_suffix: "example.com".into(),
            initial_password: Some("Welcome-2026".into()),
            concurrency: 8,
            local_userids: Vec::new(),
            local_emails: Vec::new(),
        },
    );

    for run in ["initial sync", "sync without changes"] {
        wecom.reset_calls();
        let summary = sync.run(&ProgressBar::hidden()).await.expect("sync");
        println!(
            "{run}: {summary}; {} user/list calls, {} calls in all",
            wecom.calls(Endpoint::UserList),
            wecom.total_calls()
        );
    }
    wecom.update_org(|org| {
        for n in (0..users).step_by(100) {
            if let Some(user) = org.users.get_mut(n) {
                user.position = "Promoted".into();
            }
        }
        for n in 0..users / 100 {
            org.users
                .push(FakeUser::new(&format!("joiner{n:05}"), "Joiner", &[1]));
        }
    });
    let summary = sync.run(&ProgressBar::hidden()).await.expect("sync");
    println!("sync with 1% changed and 1% new: {summary}");
    println!("peak memory (fake server included): {}", peak_memory_mib());
}
