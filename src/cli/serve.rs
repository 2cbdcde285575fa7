//! `tablegate serve`: the proxy, and its HTTP side (WeCom login, admin API).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tablegate::config::Config;
use tablegate::policy::PolicySet;
use tablegate::proxy::{self, Gate};
use tablegate::{admin, directory, login, wecom};

pub async fn run(config_path: &Path) -> Result<ExitCode, String> {
    let config = Config::load(config_path)?;
    let _audit = tablegate::audit::init(&config.audit, &config.base)?;
    let policies =
        PolicySet::load_dir(&config.path(&config.policies)).map_err(|e| e.to_string())?;
    let directory = directory::open(&config).await?;

    let mut http = axum::Router::new();
    let mut login_service = None;
    if config.wecom.is_some() {
        let client = wecom::client_from_config(&config)?;
        let sync = Arc::new(wecom::sync_from_config(
            &config,
            client.clone(),
            directory.store().clone(),
        )?);
        let interval = config.wecom()?.sync_interval_secs;
        if interval > 0 {
            tokio::spawn(wecom::sync_periodically(
                sync.clone(),
                Duration::from_secs(interval),
            ));
        }
        if config.login.is_some() {
            let service = Arc::new(login::LoginService::from_config(
                &config,
                client,
                directory.clone(),
            )?);
            http = http.merge(login::router(service.clone()));
            login_service = Some(service);
        }
        if config.admin.is_some() {
            http = http.merge(admin::router(Arc::new(admin::AdminService::from_config(
                &config, sync,
            )?)));
        }
    }
    http = http.route("/healthz", axum::routing::get(|| async { "ok" }));

    let listen = config.listen.clone();
    let http_listen = config.http_listen.clone();
    let gate = Arc::new(Gate::open(config, policies, directory, login_service).await?);
    spawn_catalog_refreshes(&gate);

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let http_listener = tokio::net::TcpListener::bind(&http_listen)
        .await
        .map_err(|e| format!("cannot listen on {http_listen} (http_listen): {e}"))?;
    tracing::info!(postgres = %listen, http = %http_listen, "tablegate is listening");
    tokio::select! {
        result = proxy::serve(gate, listener) => result.map_err(|e| e.to_string())?,
        result = axum::serve(http_listener, http) => result.map_err(|e| e.to_string())?,
        _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Re-reads each datasource's catalog on its interval; a failed read keeps the previous one.
fn spawn_catalog_refreshes(gate: &Arc<Gate>) {
    for datasource in gate.datasources.values() {
        let seconds = gate.config.datasource[&datasource.name].catalog_refresh_secs;
        if seconds == 0 {
            continue;
        }
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
