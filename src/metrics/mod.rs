//! What tablegate counts, for the Prometheus endpoint (`/metrics`).
//!
//! [`ProxyMetrics`] is what sessions record as statements pass: outcomes, refusal kinds,
//! rewrite and upstream latency, rewrite-cache hits. It is built from [`primitives`] so that a
//! statement costs a handful of relaxed atomic operations and nothing else. Values that exist
//! anyway (pool use, cache size, policy generation) are read at scrape time instead of being
//! counted. [`runs`] keeps the outcomes of background jobs; [`text`] writes the exposition
//! format.

pub mod primitives;
pub mod runs;
pub mod text;

use std::time::Duration;

use primitives::{Counter, Gauge, Histogram};
use text::Exposition;

use crate::refusal::RefusalKind;

/// Every refusal kind, in the order of [`kind_index`].
const REFUSAL_KINDS: [RefusalKind; 8] = [
    RefusalKind::Syntax,
    RefusalKind::Statement,
    RefusalKind::Relation,
    RefusalKind::Column,
    RefusalKind::Function,
    RefusalKind::Policy,
    RefusalKind::Unsupported,
    RefusalKind::Setting,
];

/// The slot of `kind` in [`REFUSAL_KINDS`]; exhaustive, so a new kind fails to compile here
/// rather than going uncounted.
fn kind_index(kind: RefusalKind) -> usize {
    match kind {
        RefusalKind::Syntax => 0,
        RefusalKind::Statement => 1,
        RefusalKind::Relation => 2,
        RefusalKind::Column => 3,
        RefusalKind::Function => 4,
        RefusalKind::Policy => 5,
        RefusalKind::Unsupported => 6,
        RefusalKind::Setting => 7,
    }
}

/// Rewrites take microseconds when cached and up to milliseconds when not.
const REWRITE_BOUNDS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1,
];

/// Upstream statements range from a millisecond to long reports.
const UPSTREAM_BOUNDS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// What sessions record per statement and per session.
#[derive(Debug)]
pub struct ProxyMetrics {
    ok: Counter,
    error: Counter,
    refused: [Counter; REFUSAL_KINDS.len()],
    rewrite: Histogram,
    cache_hits: Counter,
    cache_misses: Counter,
    upstream: Histogram,
    sessions: Gauge,
    /// By [`LoginFailure`].
    failed_logins: [Counter; 3],
}

impl Default for ProxyMetrics {
    fn default() -> ProxyMetrics {
        ProxyMetrics {
            ok: Counter::default(),
            error: Counter::default(),
            refused: Default::default(),
            rewrite: Histogram::new(REWRITE_BOUNDS),
            cache_hits: Counter::default(),
            cache_misses: Counter::default(),
            upstream: Histogram::new(UPSTREAM_BOUNDS),
            sessions: Gauge::default(),
            failed_logins: Default::default(),
        }
    }
}

/// Why a login failed, as `tablegate_logins_failed_total` tells them apart: an alert on
/// guessing must not fire on an outage.
#[derive(Clone, Copy)]
pub enum LoginFailure {
    /// A wrong password or credential, an unknown or disabled user.
    Credentials,
    DirectoryUnavailable,
    /// A protocol error, a client that left mid-login.
    Other,
}

impl LoginFailure {
    fn label(self) -> &'static str {
        match self {
            LoginFailure::Credentials => "credentials",
            LoginFailure::DirectoryUnavailable => "directory_unavailable",
            LoginFailure::Other => "other",
        }
    }
}

/// Keeps a session counted as open until it is dropped, whichever way the session ends.
pub struct OpenSession<'m>(&'m ProxyMetrics);

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        self.0.sessions.dec();
    }
}

impl ProxyMetrics {
    /// A statement was rewritten (`hit`: from the cache) or refused (`hit` is false: refusals
    /// are never cached), taking `took`.
    pub fn rewrote(&self, hit: bool, took: Duration) {
        self.rewrite.observe(took);
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// Upstream answered a statement, `took` after tablegate sent it.
    pub fn finished(&self, failed: bool, took: Duration) {
        self.upstream.observe(took);
        if failed {
            self.error.inc();
        } else {
            self.ok.inc();
        }
    }

    pub fn refused(&self, kind: RefusalKind) {
        self.refused[kind_index(kind)].inc();
    }

    pub fn login_failed(&self, why: LoginFailure) {
        self.failed_logins[why as usize].inc();
    }

    pub fn session_opened(&self) -> OpenSession<'_> {
        self.sessions.inc();
        OpenSession(self)
    }

    pub fn render(&self, text: &mut Exposition) {
        let refused: u64 = self.refused.iter().map(Counter::get).sum();
        text.family(
            "tablegate_statements_total",
            "counter",
            "Statements by outcome: ok and error as upstream answered, refused by tablegate.",
        )
        .sample(
            "tablegate_statements_total",
            &[("outcome", "ok")],
            self.ok.get() as f64,
        )
        .sample(
            "tablegate_statements_total",
            &[("outcome", "error")],
            self.error.get() as f64,
        )
        .sample(
            "tablegate_statements_total",
            &[("outcome", "refused")],
            refused as f64,
        );
        text.family(
            "tablegate_statements_refused_total",
            "counter",
            "Refused statements by kind of refusal.",
        );
        for kind in REFUSAL_KINDS {
            text.sample(
                "tablegate_statements_refused_total",
                &[("kind", kind.as_str())],
                self.refused[kind_index(kind)].get() as f64,
            );
        }
        text.family(
            "tablegate_rewrite_duration_seconds",
            "histogram",
            "Time to check and rewrite a statement, refusals included.",
        )
        .histogram(
            "tablegate_rewrite_duration_seconds",
            &[],
            &self.rewrite.snapshot(),
        );
        text.family(
            "tablegate_rewrite_cache_lookups_total",
            "counter",
            "Rewrite-cache lookups: hit (rewrite reused) or miss (rewritten, or refused).",
        )
        .sample(
            "tablegate_rewrite_cache_lookups_total",
            &[("result", "hit")],
            self.cache_hits.get() as f64,
        )
        .sample(
            "tablegate_rewrite_cache_lookups_total",
            &[("result", "miss")],
            self.cache_misses.get() as f64,
        );
        text.family(
            "tablegate_upstream_duration_seconds",
            "histogram",
            "Time from sending a statement upstream to its completion or error.",
        )
        .histogram(
            "tablegate_upstream_duration_seconds",
            &[],
            &self.upstream.snapshot(),
        );
        text.family(
            "tablegate_sessions_open",
            "gauge",
            "Client sessions past login and not yet closed.",
        )
        .sample("tablegate_sessions_open", &[], self.sessions.get() as f64);
        text.family(
            "tablegate_logins_failed_total",
            "counter",
            "Logins that failed, by reason: credentials (wrong password or credential, unknown or disabled user), directory_unavailable, other (a protocol error, a client that left mid-login).",
        );
        for reason in [
            LoginFailure::Credentials,
            LoginFailure::DirectoryUnavailable,
            LoginFailure::Other,
        ] {
            text.sample(
                "tablegate_logins_failed_total",
                &[("reason", reason.label())],
                self.failed_logins[reason as usize].get() as f64,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_kind_has_its_own_slot() {
        for (i, kind) in REFUSAL_KINDS.into_iter().enumerate() {
            assert_eq!(kind_index(kind), i, "{kind:?}");
        }
    }

    #[test]
    fn open_sessions_are_counted_until_dropped() {
        let metrics = ProxyMetrics::default();
        let first = metrics.session_opened();
        let second = metrics.session_opened();
        drop(first);
        assert_eq!(metrics.sessions.get(), 1);
        drop(second);
        assert_eq!(metrics.sessions.get(), 0);
    }
}
