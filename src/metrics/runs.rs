//! Outcomes of a recurring background job (WeCom syncs, policy reloads): how many succeeded and
//! failed, how long the last one took, and when one last succeeded — what an operator alerts
//! on ("no successful sync for a day").

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::primitives::Counter;
use super::text::Exposition;

#[derive(Debug, Default)]
pub struct RunStats {
    successes: Counter,
    failures: Counter,
    last_duration_ns: AtomicU64,
    /// Unix time in milliseconds; 0 until the first success.
    last_success_ms: AtomicU64,
}

impl RunStats {
    pub fn succeeded(&self, took: Duration) {
        self.successes.inc();
        self.last_duration_ns
            .store(saturating_nanos(took), Ordering::Relaxed);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.last_success_ms.store(now, Ordering::Relaxed);
    }

    pub fn failed(&self, took: Duration) {
        self.failures.inc();
        self.last_duration_ns
            .store(saturating_nanos(took), Ordering::Relaxed);
    }

    pub fn successes(&self) -> u64 {
        self.successes.get()
    }

    pub fn failures(&self) -> u64 {
        self.failures.get()
    }

    /// Writes the counter `total` (`{result="success|failure"}`) and the gauges
    /// `<prefix>_last_duration_seconds` and `<prefix>_last_success_timestamp_seconds` (0 before
    /// the first success); `what` names one run in help texts, e.g. "policy reload".
    pub fn render(&self, text: &mut Exposition, total: &str, prefix: &str, what: &str) {
        text.family(total, "counter", &format!("Each {what}, by result."))
            .sample(total, &[("result", "success")], self.successes.get() as f64)
            .sample(total, &[("result", "failure")], self.failures.get() as f64);
        let duration = format!("{prefix}_last_duration_seconds");
        text.family(
            &duration,
            "gauge",
            &format!("How long the last {what} took, successful or not."),
        )
        .sample(
            &duration,
            &[],
            self.last_duration_ns.load(Ordering::Relaxed) as f64 / 1e9,
        );
        let success = format!("{prefix}_last_success_timestamp_seconds");
        text.family(
            &success,
            "gauge",
            &format!("Unix time of the last successful {what} (0: none yet)."),
        )
        .sample(
            &success,
            &[],
            self.last_success_ms.load(Ordering::Relaxed) as f64 / 1e3,
        );
    }
}

fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
