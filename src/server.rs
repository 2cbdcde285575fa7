//! A whole tablegate instance: the PostgreSQL listener and the HTTP side (WeCom login, admin
//! API, health, metrics), with policy hot reload on edits to the policies folder and on
//! SIGHUP, wired from one configuration. `tablegate serve` and the quickstart run this.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::http_listener::HttpLimits;
use crate::ops::{self, Ops};
use crate::policy::PolicySet;
use crate::proxy::{self, Gate};
use crate::reload::{self, PolicyReloader};
use crate::{admin, directory, login, wecom};

/// A started instance.
pub struct Running {
    pub postgres: SocketAddr,
    pub http: SocketAddr,
    pub gate: Arc<Gate>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Serves until interrupted (Ctrl-C or SIGTERM).
    pub async fn until_shutdown(self) {
        let terminate = async {
            #[cfg(unix)]
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
                return;
            }
            std::future::pending::<()>().await
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate => {}
        }
        tracing::info!("shutting down");
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Loads policies and the directory, opens the datasources, binds both listeners and serves.
pub async fn start(config: Config) -> Result<Running, String> {
    let policies =
        PolicySet::load_dir(&config.path(&config.policies)).map_err(|e| e.to_string())?;
    let directory = directory::open(&config).await?;
    let mut tasks = Vec::new();

    let mut http = axum::Router::new();
    let mut login_service = None;
    let mut directory_sync = None;
    if config.wecom.is_some() {
        let client = wecom::client_from_config(&config)?;
        let sync = Arc::new(wecom::sync_from_config(
            &config,
            client.clone(),
            &directory,
        )?);
        let interval = config.wecom()?.sync_interval_secs;
        if interval > 0 {
            tasks.push(tokio::spawn(wecom::sync_periodically(
                sync.clone(),
                Duration::from_secs(interval),
            )));
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
                &config,
                sync.clone(),
            )?)));
        }
        directory_sync = Some(sync);
    }

    let listen = config.listen.clone();
    let http_listen = config.http_listen.clone();
    if config.http_connections_per_address == 0 {
        return Err("http_connections_per_address must be at least 1".into());
    }
    let poll = Duration::from_millis(config.policies_poll_ms);
    let gate = Arc::new(Gate::open(config, policies, directory, login_service).await?);
    tasks.extend(catalog_refreshes(&gate));
    let reloader = Arc::new(PolicyReloader::new(gate.clone()));
    tasks.push(reload::signal::reload_on_sighup(reloader.clone())?);
    if !poll.is_zero() {
        tasks.push(tokio::spawn(reload::watch::watch(reloader.clone(), poll)));
    }
    http = http.merge(ops::router(Arc::new(Ops::new(
        gate.clone(),
        reloader,
        directory_sync,
    ))));

    let listener = TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let http_listener = TcpListener::bind(&http_listen)
        .await
        .map_err(|e| format!("cannot listen on {http_listen} (http_listen): {e}"))?;
    let postgres = listener.local_addr().map_err(|e| e.to_string())?;
    let http_addr = http_listener.local_addr().map_err(|e| e.to_string())?;
    tasks.push(tokio::spawn({
        let gate = gate.clone();
        async move {
            if let Err(e) = proxy::serve(gate, listener).await {
                tracing::error!(error = %e, "the PostgreSQL listener stopped");
            }
        }
    }));
    tasks.push(tokio::spawn(crate::http_listener::serve(
        http_listener,
        http,
        HttpLimits {
            per_address: gate.config.http_connections_per_address,
            ..HttpLimits::default()
        },
    )));
    tracing::info!(postgres = %postgres, http = %http_addr, "tablegate is listening");
    Ok(Running {
        postgres,
        http: http_addr,
        gate,
        tasks,
    })
}

/// Re-reads each datasource's catalog on its interval; a failed read keeps the previous one.
fn catalog_refreshes(gate: &Arc<Gate>) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for datasource in gate.datasources.values() {
        let seconds = gate.config.datasource[&datasource.name].catalog_refresh_secs;
        if seconds == 0 {
            continue;
        }
        let datasource = datasource.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(seconds));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Err(e) = datasource.refresh_catalog().await {
                    tracing::warn!(datasource = %datasource.name, error = %e, "catalog refresh failed; keeping the previous one");
                }
            }
        }));
    }
    tasks
}
