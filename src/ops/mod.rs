//! The operations endpoints on the HTTP listener (`http_listen`): `/healthz` for load
//! balancers and orchestrators ([`health`]), `/metrics` for Prometheus ([`scrape`]).
//!
//! Neither needs a token, so they answer anyone who can reach `http_listen`; when the WeCom
//! login pages make that listener public, keep these two paths internal at the reverse proxy.
//! Their answers hold no credentials and no statement text.

pub mod health;
pub mod scrape;

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use crate::proxy::Gate;
use crate::reload::PolicyReloader;
use crate::wecom::DirectorySync;

/// What the endpoints look at.
pub struct Ops {
    pub gate: Arc<Gate>,
    pub reloader: Arc<PolicyReloader>,
    /// The WeCom sync, when one is configured.
    pub sync: Option<Arc<DirectorySync>>,
    health: health::HealthCache,
}

impl Ops {
    pub fn new(
        gate: Arc<Gate>,
        reloader: Arc<PolicyReloader>,
        sync: Option<Arc<DirectorySync>>,
    ) -> Ops {
        Ops {
            gate,
            reloader,
            sync,
            health: health::HealthCache::default(),
        }
    }
}

pub fn router(ops: Arc<Ops>) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(scrape::metrics))
        .with_state(ops)
}
