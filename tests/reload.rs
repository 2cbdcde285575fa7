//! Policy hot reload against real PostgreSQL: edits to the policies folder under load, good and
//! bad, and the checks a reload runs before anything changes.

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use support::database::TempDatabase;
use support::proxy::{Proxy, SHOP_POLICY, shop_with};
use tablegate::reload::{PolicyReloader, watch};
use tokio_postgres::SimpleQueryMessage;

/// How often the tests' watchers look at the folder.
const POLL: Duration = Duration::from_millis(50);

const REGIONS: &str = "SELECT DISTINCT region FROM orders ORDER BY region";

/// What alice sees before the edit, and after it.
fn before() -> Vec<String> {
    vec!["East".into(), "North".into()]
}

fn after() -> Vec<String> {
    vec!["West".into()]
}

/// SHOP_POLICY with alice's regions changed from East and North to West.
fn edited_policy() -> String {
    let edited = SHOP_POLICY.replace(
        r#"vars = { regions = ["East", "North"] }"#,
        r#"vars = { regions = ["West"] }"#,
    );
    assert_ne!(edited, SHOP_POLICY, "the edit applies");
    edited
}

/// Everything logged in this test binary (the watcher logs from the runtime's worker threads,
/// so a thread-local subscriber would miss it).
fn captured_log() -> String {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    let log = LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || LogWriter(sink.clone()))
            .init();
        log
    });
    String::from_utf8_lossy(&log.lock().unwrap()).into_owned()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The shop scenario served from a policies folder, with its reloader (the live set already
/// read from the folder) and a watcher on it.
struct Served {
    db: TempDatabase,
    proxy: Proxy,
    folder: tempfile::TempDir,
    reloader: Arc<PolicyReloader>,
    watcher: tokio::task::JoinHandle<()>,
}

impl Served {
    async fn start() -> Served {
        captured_log();
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("shop.toml"), SHOP_POLICY).unwrap();
        let config = format!("policies = {:?}", folder.path().display().to_string());
        let (db, proxy) = shop_with(&config).await;
        let reloader = Arc::new(PolicyReloader::new(proxy.gate.clone()));
        reloader
            .reload("test start")
            .await
            .expect("the shop policy");
        let watcher = tokio::spawn(watch::watch(reloader.clone(), POLL));
        Served {
            db,
            proxy,
            folder,
            reloader,
            watcher,
        }
    }

    fn policy_file(&self) -> PathBuf {
        self.folder.path().join("shop.toml")
    }

    /// Waits until the reloader has counted `successes` and `failures`.
    async fn wait_for_reloads(&self, successes: u64, failures: u64) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let stats = self.reloader.stats();
        while stats.successes() < successes || stats.failures() < failures {
            assert!(
                Instant::now() < deadline,
                "reloads: {} ok, {} failed; waited for {successes} and {failures}",
                stats.successes(),
                stats.failures()
            );
            tokio::time::sleep(POLL).await;
        }
        assert_eq!((stats.successes(), stats.failures()), (successes, failures));
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn first_column(messages: &[SimpleQueryMessage]) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect()
}

/// Clients running REGIONS as alice without pause, over both protocols and on fresh
/// connections, until stopped; each result must be exactly one policy's answer.
struct Load {
    stop: Arc<AtomicBool>,
    statements: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<Result<Vec<Vec<String>>, String>>>,
}

impl Load {
    fn start(proxy: &Proxy) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let statements = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for kind in ["simple", "extended", "simple", "extended", "reconnecting"] {
            let url = proxy.url("alice", "alice-secret");
            let stop = stop.clone();
            let statements = statements.clone();
            tasks.push(tokio::spawn(async move {
                let connect = || async {
                    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                        .await
                        .map_err(|e| format!("connect: {e}"))?;
                    tokio::spawn(connection);
                    Ok::<_, String>(client)
                };
                let mut client = connect().await?;
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let regions = match kind {
                        "extended" => client
                            .query(REGIONS, &[])
                            .await
                            .map(|rows| rows.iter().map(|r| r.get::<_, String>(0)).collect()),
                        _ => client.simple_query(REGIONS).await.map(|m| first_column(&m)),
                    }
                    .map_err(|e| format!("{kind}: {e}"))?;
                    if regions != before() && regions != after() {
                        return Err(format!("{kind}: neither policy's answer: {regions:?}"));
                    }
                    if seen.last() != Some(&regions) {
                        seen.push(regions);
                    }
                    statements.fetch_add(1, Ordering::Relaxed);
                    if kind == "reconnecting" {
                        client = connect().await?;
                    }
                }
                Ok(seen)
            }));
        }
        Load {
            stop,
            statements,
            tasks,
        }
    }

    /// Lets the clients run until `more` statements have passed.
    async fn run_for(&self, more: u64) {
        let target = self.statements.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.statements.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the load stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stops the clients; each one's answers in order (consecutive repeats collapsed).
    async fn stop(self) -> Vec<Vec<Vec<String>>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut answers = Vec::new();
        for task in self.tasks {
            answers.push(
                task.await
                    .unwrap()
                    .unwrap_or_else(|e| panic!("a statement failed: {e}")),
            );
        }
        answers
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_edit_under_load_applies_to_every_session_and_no_statement_fails() {
    let served = Served::start().await;
    let load = Load::start(&served.proxy);
    load.run_for(50).await;

    std::fs::write(served.policy_file(), edited_policy()).unwrap();
    served.wait_for_reloads(2, 0).await;
    load.run_for(100).await;
    let answers = load.stop().await;

    // Every client saw the old answer, then the new one, and never went back.
    for seen in &answers {
        assert_eq!(seen.last(), Some(&after()), "{answers:?}");
        assert!(seen.len() <= 2, "{answers:?}");
    }
    assert_eq!(served.proxy.gate.policy_generation(), 3);
    assert!(captured_log().contains("policies reloaded from"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_under_load_is_rejected_with_file_and_line_and_the_old_policy_stays() {
    let served = Served::start().await;
    let load = Load::start(&served.proxy);
    load.run_for(50).await;

    // A grant on a datasource no section declares.
    let broken = SHOP_POLICY.replace(
        "[role.sales_rep.datasource.shop]",
        "[role.sales_rep.datasource.shopp]",
    );
    let line = line_of(&broken, "shopp]");
    std::fs::write(served.policy_file(), broken).unwrap();
    served.wait_for_reloads(1, 1).await;
    load.run_for(100).await;
    let answers = load.stop().await;

    for seen in &answers {
        assert_eq!(seen, &[before()], "{answers:?}");
    }
    assert_eq!(served.proxy.gate.policy_generation(), 2);
    let expected = format!("{}:{line}:", served.policy_file().display());
    let log = captured_log();
    assert!(
        log.lines()
            .any(|l| l.contains("policy reload rejected") && l.contains(&expected)),
        "no `{expected}` in the log:\n{log}"
    );

    // Fixing the file is picked up like any edit.
    std::fs::write(served.policy_file(), edited_policy()).unwrap();
    served.wait_for_reloads(2, 1).await;
    let alice = served.proxy.client("alice", "alice-secret").await.unwrap();
    assert_eq!(
        first_column(&alice.simple_query(REGIONS).await.unwrap()),
        after()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rejects_new_catalog_findings_and_tolerates_old_ones() {
    let served = Served::start().await;
    served.watcher.abort();
    let file = served.policy_file();
    let typo = SHOP_POLICY.replace(r#""public.customers"]"#, r#""public.customer"]"#);
    std::fs::write(&file, &typo).unwrap();
    let errors = served.reloader.reload("test").await.unwrap_err();
    let message = errors.to_string();
    let line = line_of(&typo, "public.customer\"");
    assert!(
        message.contains(&format!(
            "{}:{line}: tables `public.customer`",
            file.display()
        )),
        "{message}"
    );
    assert_eq!(served.proxy.gate.policy_generation(), 2);

    // The same finding already in the live set (here: a table dropped after loading) does
    // not block an unrelated edit.
    let db = served.db.connect().await;
    db.batch_execute("DROP TABLE customers").await.unwrap();
    served.proxy.gate.datasources["shop"]
        .refresh_catalog()
        .await
        .unwrap();
    std::fs::write(&file, edited_policy()).unwrap();
    assert_eq!(served.reloader.reload("test").await.unwrap(), 3);
    let alice = served.proxy.client("alice", "alice-secret").await.unwrap();
    assert_eq!(
        first_column(&alice.simple_query(REGIONS).await.unwrap()),
        after()
    );
}

/// The 1-based number of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    1 + text
        .lines()
        .position(|l| l.contains(needle))
        .expect("the needle is in the text")
}
