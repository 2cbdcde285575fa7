//! The HTTP listener (login, admin API, `/metrics`, `/healthz`): bounded, so that slow or idle
//! clients cannot hold it — or the file descriptors the PostgreSQL listener shares — forever.
//!
//! A connection must send its request head within a deadline, serves one request (no
//! keep-alive: logins and scrapes make few requests), and at most a fixed number are open at
//! once, of which one client address (an IPv4 address, an IPv6 /64) may hold only a share;
//! connections past either limit are closed on accept. Found by red-team review: without the
//! share, one host holding every connection with half-sent request heads kept the login pages
//! and `/healthz` from almost everyone else.

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::proxy::connection_limit::PerAddress;

/// How much the listener lets clients hold.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Connections open at once.
    pub connections: usize,
    /// Connections one client address may have open at once.
    pub per_address: usize,
    /// Time a connection has to send its request head.
    pub header_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> HttpLimits {
        HttpLimits {
            connections: 256,
            per_address: 32,
            header_timeout: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` within `limits`, until the task is dropped.
pub async fn serve(listener: TcpListener, app: axum::Router, limits: HttpLimits) {
    let open = Arc::new(Semaphore::new(limits.connections));
    let per_address = PerAddress::new(limits.per_address);
    loop {
        let (socket, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!(error = %e, "HTTP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(claim) = per_address.claim(peer) else {
            drop(socket);
            continue;
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            drop(socket);
            continue;
        };
        // Handlers learn the client's address as axum's `ConnectInfo`.
        let app = app.clone().layer(Extension(ConnectInfo(peer)));
        let service = TowerToHyperService::new(app);
        tokio::spawn(async move {
            let _held = (permit, claim);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .keep_alive(false)
                .serve_connection(TokioIo::new(socket), service);
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
}
