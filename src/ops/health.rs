//! `/healthz`: 200 when every datasource can serve a new session, 503 otherwise.
//!
//! For each datasource the probe leases a connection from its pool (waiting at most
//! [`LEASE_WAIT`]; an idle connection is used if there is one, else a new one is opened) and
//! gives it back, which resets it with `DISCARD ALL`: a real round trip to upstream. So 503
//! means a new client session would fail or wait: upstream is unreachable or refuses the
//! service account, or every pooled connection stayed in use. The PostgreSQL listener runs in
//! the same process and never stops by itself (accept errors are retried), so an answer also
//! means tablegate is accepting clients.
//!
//! The body names each datasource with `ok` or the reason class; the details (which may name
//! hosts) go to the log. One probe runs at a time and its result is reused for
//! [`REUSE_FOR`], so a flood of health requests cannot tie up the pools.

use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::Ops;
use crate::datasource::Datasource;
use crate::upstream::pool::LeaseError;

/// How long the probe waits for a free connection in a full pool.
pub const LEASE_WAIT: Duration = Duration::from_secs(2);
/// The longest a whole probe of one datasource may take (lease, connect, reset).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a probe's result answers later requests.
pub const REUSE_FOR: Duration = Duration::from_secs(1);

/// The last probe's result and when it ran.
#[derive(Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(Instant, Arc<Report>)>>);

/// Each datasource's state, in name order.
pub struct Report {
    pub datasources: Vec<(String, Result<(), &'static str>)>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.datasources.iter().all(|(_, state)| state.is_ok())
    }
}

pub async fn healthz(State(ops): State<Arc<Ops>>) -> Response {
    let report = check(&ops).await;
    let mut body = String::new();
    for (name, state) in &report.datasources {
        let _ = writeln!(body, "datasource {name}: {}", state.err().unwrap_or("ok"));
    }
    if report.datasources.is_empty() {
        body.push_str("ok: no datasources configured\n");
    }
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body).into_response()
}

/// The current report: the last one if it is recent, else a fresh probe of every datasource.
pub async fn check(ops: &Ops) -> Arc<Report> {
    let mut last = ops.health.0.lock().await;
    if let Some((at, report)) = last.as_ref()
        && at.elapsed() < REUSE_FOR
    {
        return report.clone();
    }
    let probes = ops
        .gate
        .datasources
        .values()
        .map(|datasource| async move { (datasource.name.clone(), probe(datasource).await) });
    let report = Arc::new(Report {
        datasources: futures_util::future::join_all(probes).await,
    });
    *last = Some((Instant::now(), report.clone()));
    report
}

async fn probe(datasource: &Datasource) -> Result<(), &'static str> {
    let leased = async {
        let (connection, lease) = datasource.pool.lease(None, LEASE_WAIT).await?;
        Ok::<bool, LeaseError>(lease.give_back(connection).await)
    };
    let (reason, detail) = match tokio::time::timeout(PROBE_TIMEOUT, leased).await {
        Ok(Ok(true)) => return Ok(()),
        Ok(Ok(false)) => ("unavailable: the connection failed its reset", None),
        // A lease for tablegate itself takes no user's share.
        Ok(Err(LeaseError::Exhausted | LeaseError::ShareInUse { .. })) => {
            ("saturated: every pooled connection stayed in use", None)
        }
        Ok(Err(LeaseError::Connect(e))) => (
            "unavailable: cannot connect upstream (the log says why)",
            Some(e.to_string()),
        ),
        Err(_) => ("unavailable: upstream did not answer in time", None),
    };
    tracing::warn!(datasource = %datasource.name, error = detail.as_deref().unwrap_or(""), "health check: {reason}");
    Err(reason)
}
