//! `tablegate serve`: the proxy and its HTTP side, until interrupted.

use std::path::Path;
use std::process::ExitCode;

use tablegate::config::Config;

pub async fn run(config_path: &Path) -> Result<ExitCode, String> {
    let config = Config::load(config_path)?;
    let audit = tablegate::audit::init(&config.audit, &config.base)?;
    tablegate::server::start(config)
        .await?
        .until_shutdown()
        .await;
    if let Some(audit) = audit {
        audit.flush();
    }
    Ok(ExitCode::SUCCESS)
}
