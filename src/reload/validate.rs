//! What a reload checks beyond parsing: the `tablegate check` findings that need no database
//! round trip, against the catalogs tablegate already holds in memory.
//!
//! Patterns that match no relation, column lists naming missing columns and filters reading
//! unknown variables are usually typos that grant or hide less than intended, so a reload that
//! *introduces* one is rejected. Findings the live set already has are only warned about:
//! they may come from schema drift rather than the edit, and blocking every reload on them
//! would also block an urgent revocation. Planning filters with EXPLAIN (a round trip per
//! filter) is left to `tablegate check`.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::policy::check::{Findings, Planner, check_datasource};
use crate::policy::{PolicyError, PolicySet};
use crate::proxy::Gate;

/// How long a reload waits for the directory's user list (for the variable checks).
const USERS_WAIT: Duration = Duration::from_secs(10);

/// The catalog checks' verdict on a candidate set.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Findings the candidate has and the live set does not: the reload is rejected.
    pub errors: Vec<PolicyError>,
    /// Everything else worth telling: errors the live set already had, and warnings.
    pub warnings: Vec<PolicyError>,
}

/// Compares the findings of `candidate` with those of `live`. When the directory cannot list its
/// users in time, the checks are skipped (logged): a reload must not hang on the directory.
pub async fn verdict(gate: &Gate, live: &PolicySet, candidate: &PolicySet) -> Verdict {
    let users = match tokio::time::timeout(USERS_WAIT, gate.directory.users()).await {
        Ok(Ok(users)) => users,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "policy reload: cannot list the directory's users, so the catalog checks are skipped");
            return Verdict::default();
        }
        Err(_) => {
            tracing::warn!(
                "policy reload: the directory did not list its users within {}s, so the catalog checks are skipped",
                USERS_WAIT.as_secs()
            );
            return Verdict::default();
        }
    };
    let before = findings(gate, live, &users).await;
    let after = findings(gate, candidate, &users).await;
    let known: BTreeSet<(&str, &str)> = before
        .errors
        .iter()
        .map(|e| (&*e.origin.file, e.message.as_str()))
        .collect();
    let (old, new): (Vec<_>, Vec<_>) = after
        .errors
        .into_iter()
        .partition(|e| known.contains(&(&*e.origin.file, e.message.as_str())));
    let mut warnings = after.warnings;
    warnings.extend(old);
    Verdict {
        errors: new,
        warnings,
    }
}

/// `tablegate check`'s findings for `set` on every configured datasource, without planning.
pub async fn findings(gate: &Gate, set: &PolicySet, users: &[crate::directory::User]) -> Findings {
    let mut findings = Findings::default();
    for (name, policy) in &set.datasources {
        let Some(datasource) = gate.datasources.get(name) else {
            // Grants nothing reachable (clients cannot connect to it), so not a reason to
            // reject; configuring a datasource needs a restart anyway.
            findings.warnings.push(PolicyError {
                origin: policy.origin.clone(),
                message: format!(
                    "datasource `{name}` has no [datasource.{name}] section in the configuration; add one and restart to serve it"
                ),
            });
            continue;
        };
        check_datasource(
            set,
            name,
            &datasource.catalog(),
            users,
            &mut SkipPlanning,
            &mut findings,
        )
        .await;
    }
    findings
}

/// Accepts every filter: planning is a round trip per filter, left to `tablegate check`.
struct SkipPlanning;

impl Planner for SkipPlanning {
    async fn plan(&mut self, _sql: &str) -> Result<(), String> {
        Ok(())
    }
}
