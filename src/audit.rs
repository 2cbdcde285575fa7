//! Audit records: one JSON line per statement, to a file or stdout, through `tracing`
//! ([`crate::audit_line`] formats them).
//!
//! Each record names the user, datasource, client address, the SQL as sent, what was forwarded
//! (or why it was refused), the outcome, the duration and the rows returned. Passwords and
//! login credentials never reach these records: only statement text does.

use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::audit_line::AuditLayer;
pub use crate::audit_writer::BatchWriter;
use crate::config::AuditConfig;

/// The tracing target audit records are emitted under.
pub const TARGET: &str = "tablegate::audit";

/// Who a session is, for its audit records.
#[derive(Clone, Debug)]
pub struct Subject {
    pub user: String,
    pub datasource: String,
    pub client: SocketAddr,
    /// The service account that logged in to act for `user` (AskTable's engine), if any.
    pub via: Option<String>,
}

/// The most of a refused statement's text an audit record keeps: a client's text may be
/// long (it was refused), and every byte of it would be written to the log.
pub const AUDITED_SQL: usize = 64 * 1024;

/// A refused statement's text as its audit record keeps it: at most [`AUDITED_SQL`] bytes of
/// `sql`, marked when cut. `length` is the statement's whole length, when `sql` is only its
/// start.
pub fn refused_sql(sql: &str, length: usize) -> std::borrow::Cow<'_, str> {
    if sql.len() <= AUDITED_SQL && length <= sql.len() {
        return sql.into();
    }
    let mut end = sql.len().min(AUDITED_SQL);
    while !sql.is_char_boundary(end) {
        end -= 1;
    }
    let length = length.max(sql.len());
    format!(
        "{} … (cut short by tablegate: {length} bytes in all)",
        &sql[..end]
    )
    .into()
}

pub enum Outcome<'a> {
    Ok { rows: u64 },
    Error { message: &'a str },
    Refused { reason: &'a str, kind: &'a str },
}

pub fn record(
    subject: &Subject,
    sql: &str,
    forwarded: Option<&str>,
    outcome: Outcome<'_>,
    duration: Duration,
) {
    let duration_us = duration.as_micros() as u64;
    let forwarded = forwarded.unwrap_or("");
    match outcome {
        Outcome::Ok { rows } => tracing::info!(
            target: TARGET,
            user = %subject.user, via = subject.via.as_deref(), datasource = %subject.datasource,
            client = %subject.client,
            sql, forwarded, outcome = "ok", rows, duration_us
        ),
        Outcome::Error { message } => tracing::info!(
            target: TARGET,
            user = %subject.user, via = subject.via.as_deref(), datasource = %subject.datasource,
            client = %subject.client,
            sql, forwarded, outcome = "error", error = message, duration_us
        ),
        Outcome::Refused { reason, kind } => tracing::info!(
            target: TARGET,
            user = %subject.user, via = subject.via.as_deref(), datasource = %subject.datasource,
            client = %subject.client,
            sql, outcome = "refused", refusal = kind, reason, duration_us
        ),
    }
}

/// Sets up logging: operational logs to stderr (`RUST_LOG`, default info), audit records as JSON
/// lines to the configured output. Keep the returned writer and flush it when stopping.
pub fn init(config: &AuditConfig, base: &std::path::Path) -> Result<Option<BatchWriter>, String> {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.target() != TARGET
        }));
    let audit_only = Targets::new().with_target(TARGET, tracing::Level::INFO);
    let audit = match config.output.as_str() {
        "off" => None,
        "stdout" => Some(BatchWriter::new(Box::new(std::io::stdout()))),
        path => {
            let path = base.join(path);
            // Every user's SQL is in it: private to tablegate's account, whatever the umask.
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))?;
            Some(BatchWriter::new(Box::new(file)))
        }
    };
    let audit_layer = audit
        .clone()
        .map(|writer| AuditLayer::new(writer).with_filter(audit_only));
    tracing_subscriber::registry()
        .with(logs)
        .with(audit_layer)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(audit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_statement_is_audited_up_to_a_bound() {
        assert_eq!(refused_sql("SELECT 1", 8), "SELECT 1");
        let long = "é".repeat(AUDITED_SQL);
        let kept = refused_sql(&long, long.len());
        assert!(kept.len() < AUDITED_SQL + 100, "{}", kept.len());
        assert!(kept.ends_with(&format!(
            "(cut short by tablegate: {} bytes in all)",
            long.len()
        )));
        assert!(
            refused_sql("SELECT", 5_000_000)
                .ends_with("SELECT … (cut short by tablegate: 5000000 bytes in all)")
        );
    }
}
