//! Policy hot reload: the policies folder is read again, validated, and swapped in whole.
//!
//! A reload is triggered by an edit in the folder ([`watch`]) or by SIGHUP ([`signal`]). It
//! loads every file as one set (`PolicySet::load_dir`, which reports every error with
//! `file:line`), then runs the catalog checks ([`validate`]); only a set that passes both
//! replaces the live one, through [`Gate::replace_policies`]: the whole `Arc<PolicySet>` and its
//! generation at once, so no statement can see half of a set. Sessions pick the new set up at
//! their next statement; the rewrite cache and shared accesses are dropped with the old set.
//! An invalid set is logged with its errors and changes nothing. Reloads run one at a time, so
//! a slow one cannot overwrite a newer one.

pub mod signal;
pub mod validate;
pub mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use crate::control_chars::escape_control;
use crate::metrics::runs::RunStats;
use crate::policy::{Origin, PolicyError, PolicyErrors, PolicySet};
use crate::proxy::Gate;

pub struct PolicyReloader {
    gate: Arc<Gate>,
    dir: PathBuf,
    /// Held for a whole reload: loads and swaps happen in the order reloads were asked for.
    running: tokio::sync::Mutex<()>,
    stats: RunStats,
}

impl PolicyReloader {
    /// Reloads the configured policies folder into `gate`.
    pub fn new(gate: Arc<Gate>) -> PolicyReloader {
        let dir = gate.config.path(&gate.config.policies);
        PolicyReloader {
            gate,
            dir,
            running: tokio::sync::Mutex::new(()),
            stats: RunStats::default(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// Loads, validates and swaps in the policies folder; `trigger` says why, for the log.
    /// Returns the new generation, or every error that kept the live set in place.
    pub async fn reload(&self, trigger: &str) -> Result<u64, PolicyErrors> {
        let _one_at_a_time = self.running.lock().await;
        let started = Instant::now();
        let result = self.load_and_swap().await;
        match &result {
            Ok(generation) => {
                self.stats.succeeded(started.elapsed());
                let set = self.gate.policies().set;
                tracing::info!(
                    trigger,
                    generation,
                    "policies reloaded from {}: {} datasources, {} roles, {} assignments; sessions switch at their next statement",
                    self.dir.display(),
                    set.datasources.len(),
                    set.roles.len(),
                    set.assignments.len()
                );
            }
            Err(errors) => {
                self.stats.failed(started.elapsed());
                tracing::error!(
                    trigger,
                    live_generation = self.gate.policy_generation(),
                    "policy reload rejected: {} error(s) in {}; the previous policies stay live. Fix them and save again (or send SIGHUP)",
                    errors.0.len(),
                    self.dir.display()
                );
                for error in &errors.0 {
                    tracing::error!("policy reload rejected: {error}");
                }
            }
        }
        result
    }

    async fn load_and_swap(&self) -> Result<u64, PolicyErrors> {
        let dir = self.dir.clone();
        let candidate = tokio::task::spawn_blocking(move || PolicySet::load_dir(&dir))
            .await
            .map_err(|e| {
                // Only a panic while loading gets here: report it like any folder error.
                PolicyErrors(vec![PolicyError {
                    origin: Origin {
                        file: Origin::file_name(&self.dir),
                        line: 0,
                    },
                    message: format!("loading the policies failed: {e}"),
                }])
            })??;
        let live = self.gate.policies();
        let verdict = validate::verdict(&self.gate, &live.set, &candidate).await;
        for warning in &verdict.warnings {
            // Warnings quote department names from WeCom.
            tracing::warn!("policy check: {}", escape_control(&warning.to_string()));
        }
        if !verdict.errors.is_empty() {
            return Err(PolicyErrors(verdict.errors));
        }
        Ok(self.gate.replace_policies(candidate))
    }
}
