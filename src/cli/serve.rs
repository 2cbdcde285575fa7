//! `tablegate serve`: the proxy.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tablegate::directory::{StaticDirectory, users_file};
use tablegate::policy::PolicySet;
use tablegate::proxy::{self, Gate};

pub async fn run(config_path: &Path) -> Result<ExitCode, String> {
    let config = tablegate::config::Config::load(config_path)?;
    let _audit = tablegate::audit::init(&config.audit, &config.base)?;
    let policies =
        PolicySet::load_dir(&config.path(&config.policies)).map_err(|e| e.to_string())?;
    let logins = match &config.directory.users_file {
        Some(file) => users_file::load(&config.path(file))?,
        None => Vec::new(),
    };
    let directory = Arc::new(StaticDirectory::new(logins));
    let listen = config.listen.clone();
    let gate = Arc::new(Gate::open(config, policies, directory).await?);
    for datasource in gate.datasources.values() {
        let seconds = gate.config.datasource[&datasource.name].catalog_refresh_secs;
        if seconds > 0 {
            let datasource = datasource.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(seconds));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    if let Err(e) = datasource.refresh_catalog().await {
                        tracing::warn!(datasource = %datasource.name, error = %e, "catalog refresh failed; keeping the previous one");
                    }
                }
            });
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    tracing::info!(address = %listener.local_addr().map(|a| a.to_string()).unwrap_or(listen), "tablegate is listening");
    tokio::select! {
        result = proxy::serve(gate, listener) => result.map_err(|e| e.to_string())?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(ExitCode::SUCCESS)
}
