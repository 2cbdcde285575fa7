//! The admin HTTP endpoints, for `serve` to mount: `POST /admin/wecom/sync` runs a WeCom sync
//! now and answers with its summary. Requests must carry `Authorization: Bearer <[admin] token>`.

use std::fmt;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use indicatif::ProgressBar;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::wecom::{DirectorySync, SyncError};

pub const SYNC_PATH: &str = "/admin/wecom/sync";

pub struct AdminService {
    /// SHA-256 of the token: comparing digests takes the same time wherever tokens differ.
    token_digest: [u8; 32],
    sync: Arc<DirectorySync>,
}

impl fmt::Debug for AdminService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminService(<token redacted>)")
    }
}

impl AdminService {
    /// `token` must be at least 16 characters.
    pub fn new(token: &str, sync: Arc<DirectorySync>) -> Result<AdminService, String> {
        if token.len() < 16 {
            return Err("[admin] token must be at least 16 characters".into());
        }
        Ok(AdminService {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            sync,
        })
    }

    /// The admin service with `[admin] token`.
    pub fn from_config(
        config: &crate::config::Config,
        sync: Arc<DirectorySync>,
    ) -> Result<AdminService, String> {
        let admin = config
            .admin
            .as_ref()
            .ok_or("the admin endpoint is not configured: add an [admin] section with a token")?;
        AdminService::new(&admin.token.resolve("[admin] token", &config.base)?, sync)
    }

    fn authorised(&self, headers: &HeaderMap) -> bool {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|token| {
                let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
                digest == self.token_digest
            })
    }
}

pub fn router(service: Arc<AdminService>) -> Router {
    Router::new()
        .route(SYNC_PATH, post(sync_now))
        .with_state(service)
}

async fn sync_now(State(service): State<Arc<AdminService>>, headers: HeaderMap) -> Response {
    if !service.authorised(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(json!({ "error": "send `Authorization: Bearer <token>` with the [admin] token" })),
        )
            .into_response();
    }
    match service.sync.run(&ProgressBar::hidden()).await {
        Ok(summary) => Json(json!({
            "summary": summary.to_string(),
            "departments": summary.departments,
            "created": summary.created,
            "updated": summary.updated,
            "disabled": summary.disabled,
            "unchanged": summary.unchanged,
            "skipped_local": summary.skipped_local,
            "not_found": summary.not_found,
            "left_out": summary.left_out.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "shared_emails": summary.shared_emails.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "duration_ms": summary.duration.as_millis() as u64,
        }))
        .into_response(),
        Err(error) => {
            let status = match &error {
                SyncError::AlreadyRunning => StatusCode::CONFLICT,
                SyncError::WeCom(_) => StatusCode::BAD_GATEWAY,
                SyncError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            tracing::warn!("admin-requested WeCom sync: {error}");
            (status, Json(json!({ "error": error.to_string() }))).into_response()
        }
    }
}
