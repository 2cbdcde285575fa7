//! `/metrics`: everything tablegate counts, in the Prometheus text format.
//!
//! Per-statement counters come from [`ProxyMetrics`](crate::metrics::ProxyMetrics); pool use,
//! the rewrite cache's size, the policy generation, and what the connection limit and the
//! login throttle hold and refused are read from the running parts at scrape time; reloads and
//! WeCom syncs report their [`RunStats`](crate::metrics::runs).

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::Ops;
use crate::metrics::text::{CONTENT_TYPE, Exposition};

pub async fn metrics(State(ops): State<Arc<Ops>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&ops))
}

/// The whole exposition.
pub fn render(ops: &Ops) -> String {
    let mut text = Exposition::default();
    text.family(
        "tablegate_build_info",
        "gauge",
        "The running tablegate's version (always 1).",
    )
    .sample(
        "tablegate_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1.0,
    );
    ops.gate.metrics.render(&mut text);
    text.family(
        "tablegate_rewrite_cache_entries",
        "gauge",
        "Statement shapes held in the rewrite cache.",
    )
    .sample(
        "tablegate_rewrite_cache_entries",
        &[],
        ops.gate.cache.len() as f64,
    );
    pools(ops, &mut text);
    client_limits(ops, &mut text);
    ops.reloader.stats().render(
        &mut text,
        "tablegate_policy_reloads_total",
        "tablegate_policy_reload",
        "policy reload",
    );
    text.family(
        "tablegate_policy_generation",
        "gauge",
        "The live policy set's generation: 1 at start, one more per successful reload.",
    )
    .sample(
        "tablegate_policy_generation",
        &[],
        ops.gate.policy_generation() as f64,
    );
    if let Some(sync) = &ops.sync {
        sync.stats().render(
            &mut text,
            "tablegate_wecom_syncs_total",
            "tablegate_wecom_sync",
            "WeCom directory sync",
        );
    }
    text.finish()
}

fn client_limits(ops: &Ops, text: &mut Exposition) {
    let connections = &ops.gate.connections;
    let throttle = &ops.gate.login_throttle;
    text.family(
        "tablegate_client_connections",
        "gauge",
        "Client connections open: logging in or in a session.",
    )
    .sample(
        "tablegate_client_connections",
        &[],
        connections.open() as f64,
    );
    text.family(
        "tablegate_client_connections_max",
        "gauge",
        "The most client connections open at once (max_client_connections).",
    )
    .sample(
        "tablegate_client_connections_max",
        &[],
        connections.max() as f64,
    );
    text.family(
        "tablegate_connections_refused_total",
        "counter",
        "Client connections refused before a session: too_many_clients (max_client_connections open), too_many_logins (the address has too many logins in progress), login_throttled (the address failed too many logins).",
    )
    .sample(
        "tablegate_connections_refused_total",
        &[("reason", "too_many_clients")],
        connections.refused() as f64,
    )
    .sample(
        "tablegate_connections_refused_total",
        &[("reason", "too_many_logins")],
        connections.refused_logins() as f64,
    )
    .sample(
        "tablegate_connections_refused_total",
        &[("reason", "login_throttled")],
        throttle.refused() as f64,
    );
    text.family(
        "tablegate_login_throttle_addresses",
        "gauge",
        "Client addresses (IPv6: /64 networks) and their networks (IPv4 /24, IPv6 /48) the login throttle tracks: failing logins in an open window, or logging in now.",
    )
    .sample(
        "tablegate_login_throttle_addresses",
        &[],
        throttle.tracked() as f64,
    );
}

fn pools(ops: &Ops, text: &mut Exposition) {
    let datasources = &ops.gate.datasources;
    text.family(
        "tablegate_pool_connections",
        "gauge",
        "Upstream connections per datasource: in_use (leased by a session or being opened) or idle.",
    );
    for (name, datasource) in datasources {
        let pool = &datasource.pool;
        text.sample(
            "tablegate_pool_connections",
            &[("datasource", name), ("state", "in_use")],
            pool.in_use() as f64,
        )
        .sample(
            "tablegate_pool_connections",
            &[("datasource", name), ("state", "idle")],
            pool.idle() as f64,
        );
    }
    text.family(
        "tablegate_pool_size",
        "gauge",
        "The most upstream connections a datasource's pool holds (pool_size).",
    );
    for (name, datasource) in datasources {
        text.sample(
            "tablegate_pool_size",
            &[("datasource", name)],
            datasource.pool.size() as f64,
        );
    }
}
