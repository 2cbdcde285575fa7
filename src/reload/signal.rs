//! SIGHUP reloads the policies, as `systemctl reload` (`ExecReload=kill -HUP $MAINPID`) sends.

use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::task::JoinHandle;

use super::PolicyReloader;

/// Installs the SIGHUP handler now (so a SIGHUP sent after this returns cannot kill the
/// process), and reloads on every SIGHUP from then on.
pub fn reload_on_sighup(reloader: Arc<PolicyReloader>) -> Result<JoinHandle<()>, String> {
    let mut hangups =
        signal(SignalKind::hangup()).map_err(|e| format!("cannot handle SIGHUP: {e}"))?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            // The outcome is logged and counted by the reload itself.
            let _ = reloader.reload("SIGHUP").await;
        }
    }))
}
