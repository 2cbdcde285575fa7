//! The running tablegate: everything sessions share.
//!
//! The policy set is replaced as a whole (hot reload, see [`crate::reload`]); its generation
//! tells sessions to rebuild their access at their next statement. A set and its generation
//! are swapped together under one lock, so nobody can pair a new generation with an old set;
//! the generation is mirrored in an atomic so that the per-statement check is one load.
//! Datasources hold pools and catalogs; the rewrite cache is shared by all sessions; the cancel
//! table maps the keys tablegate gave clients to upstream backends; the metrics count what
//! sessions do; the connection limit and the login throttle bound what clients may hold and
//! try.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use pgwire::api::auth::sasl::scram::ScramServerAuth;
use pgwire::error::PgWireError;
use tokio_rustls::TlsAcceptor;

use super::connection_limit::ConnectionLimit;
use super::login_throttle::LoginThrottle;
use crate::cache::RewriteCache;
use crate::config::Config;
use crate::datasource::Datasource;
use crate::directory::{Directory, ScramVerifier};
use crate::login::LoginService;
use crate::metrics::ProxyMetrics;
use crate::policy::PolicySet;
use crate::upstream::CancelKey;
use crate::wire::MessageBudget;

/// The shortest secret a service account may have.
const MIN_SERVICE_SECRET_CHARS: usize = 16;

/// A service account, known by the verifier of its secret (the secret itself is not kept).
pub struct ServiceAccount {
    pub name: String,
    pub verifier: ScramVerifier,
}

/// The live policy set and its generation, always read and replaced together.
#[derive(Clone)]
pub struct LivePolicies {
    pub generation: u64,
    pub set: Arc<PolicySet>,
}

pub struct Gate {
    pub config: Config,
    policies: RwLock<LivePolicies>,
    /// `policies.generation`, readable without the lock.
    policy_generation: AtomicU64,
    pub directory: Directory,
    /// Verifies WeCom login credentials, when password-free login is configured.
    pub login: Option<Arc<LoginService>>,
    pub datasources: BTreeMap<String, Arc<Datasource>>,
    pub cache: RewriteCache,
    /// (process id, secret) tablegate gave a client → the upstream backend's cancel key.
    pub cancels: DashMap<(i32, i32), CancelKey>,
    pub tls: Option<TlsAcceptor>,
    /// SCRAM over TLS, offering SCRAM-SHA-256-PLUS bound to tablegate's certificate, so that a
    /// man in the middle cannot relay the exchange: `None` without TLS, or when the
    /// certificate's signature algorithm has no tls-server-end-point hash.
    pub tls_scram: Option<ScramServerAuth>,
    pub service_accounts: Vec<ServiceAccount>,
    /// Derives the SCRAM verifiers shown for logins without one ([`ScramVerifier::decoy`]).
    decoy_secret: Vec<u8>,
    pub metrics: Arc<ProxyMetrics>,
    /// `max_client_connections`: a slot per open client connection.
    pub connections: ConnectionLimit,
    /// Failed logins per client address.
    pub login_throttle: LoginThrottle,
    /// Room for large client messages, shared by every session.
    pub large_messages: MessageBudget,
}

/// How many bytes of large client messages (longer than a MiB) all sessions together may hold
/// while they arrive; also the longest Bind a client may send (PostgreSQL's limit is 1 GB), the
/// one type that is held whole at that size.
const LARGE_MESSAGE_BUDGET: usize = 256 << 20;

impl Gate {
    /// Opens every configured datasource (reading its catalog) and prepares TLS.
    pub async fn open(
        config: Config,
        policies: PolicySet,
        directory: Directory,
        login: Option<Arc<LoginService>>,
    ) -> Result<Gate, String> {
        let connections = ConnectionLimit::new(config.max_client_connections)?;
        let login_throttle = LoginThrottle::from_config(&config)?;
        let mut datasources = BTreeMap::new();
        for (name, ds) in &config.datasource {
            datasources.insert(
                name.clone(),
                Arc::new(Datasource::open(name, ds, &config.base).await?),
            );
        }
        let (tls, tls_scram) = match &config.tls {
            Some(tls) => {
                let cert = config.path(&tls.cert);
                (
                    Some(tls_acceptor(&cert, &config.path(&tls.key))?),
                    channel_binding(&cert)?,
                )
            }
            None => (None, None),
        };
        let service_accounts = config
            .service_account
            .iter()
            .map(|a| {
                let secret = a.secret.resolve(
                    &format!("secret of service account {}", a.name),
                    &config.base,
                )?;
                // It acts for anyone, and a recorded SCRAM exchange can be guessed against offline.
                if secret.chars().count() < MIN_SERVICE_SECRET_CHARS {
                    return Err(format!(
                        "the secret of service account {} is shorter than {MIN_SERVICE_SECRET_CHARS} characters: \
                         use a long random one (e.g. `openssl rand -base64 32`)",
                        a.name
                    ));
                }
                Ok(ServiceAccount {
                    name: a.name.clone(),
                    verifier: ScramVerifier::new(&secret),
                })
            })
            .collect::<Result<_, String>>()?;
        // From the credential key where there is one: an unknown name's salt then stays the same
        // across restarts and between replicas, as a real user's does (a secret of each process
        // told them apart, found by red-team review).
        let decoy_secret = login.as_ref().map_or_else(
            || rand::random::<[u8; 32]>().to_vec(),
            |login| login.derived_key("decoy salts"),
        );
        Ok(Gate {
            cache: RewriteCache::new(config.rewrite_cache_entries),
            config,
            policies: RwLock::new(LivePolicies {
                generation: 1,
                set: Arc::new(policies),
            }),
            policy_generation: AtomicU64::new(1),
            directory,
            login,
            datasources,
            cancels: DashMap::new(),
            tls,
            tls_scram,
            service_accounts,
            decoy_secret,
            metrics: Arc::default(),
            connections,
            login_throttle,
            large_messages: MessageBudget::new(LARGE_MESSAGE_BUDGET),
        })
    }

    /// What authentication checks for a login without a verifier (unknown, or no password).
    pub fn decoy_verifier(&self, login: &str) -> ScramVerifier {
        ScramVerifier::decoy(&self.decoy_secret, login)
    }

    /// The live set with its generation (build accesses from this, never from two reads).
    pub fn policies(&self) -> LivePolicies {
        self.policies.read().expect("policy lock").clone()
    }

    /// The live generation: one atomic load, cheap enough to check at every statement.
    pub fn policy_generation(&self) -> u64 {
        self.policy_generation.load(Ordering::Acquire)
    }

    /// Makes `policies` live: sessions switch at their next statement. Returns the new
    /// generation.
    pub fn replace_policies(&self, policies: PolicySet) -> u64 {
        let generation = {
            let mut live = self.policies.write().expect("policy lock");
            live.generation += 1;
            live.set = Arc::new(policies);
            self.policy_generation
                .store(live.generation, Ordering::Release);
            live.generation
        };
        // Accesses and rewrites of older generations can no longer be looked up (accesses are
        // keyed by generation, rewrites by access); dropping them frees their memory.
        for ds in self.datasources.values() {
            ds.forget_accesses();
        }
        self.cache.clear();
        generation
    }

    /// The service account of this login name, case-insensitive as userids are: an exact match
    /// only would answer `ASKTABLE` with a decoy salt and `asktable` with the real one, telling
    /// a service account's name (found by red-team review).
    pub fn service_account(&self, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }
}

/// SCRAM bound to the certificate's tls-server-end-point hash (RFC 5929), which pgwire computes
/// for RSA and ECDSA signatures with SHA-256, -384 or -512.
fn channel_binding(cert: &std::path::Path) -> Result<Option<ScramServerAuth>, String> {
    let pem = std::fs::read(cert)
        .map_err(|e| format!("cannot read TLS certificate {}: {e}", cert.display()))?;
    let mut scram = ScramServerAuth::new();
    match scram.configure_certificate(&pem) {
        Ok(()) => Ok(Some(scram)),
        Err(PgWireError::UnsupportedCertificateSignatureAlgorithm) => {
            tracing::warn!(
                certificate = %cert.display(),
                "the TLS certificate's signature algorithm allows no SCRAM channel binding \
                 (SCRAM-SHA-256-PLUS): use an RSA or ECDSA certificate, or have clients verify it \
                 (sslmode=verify-full), else a man in the middle can relay a service account's login"
            );
            Ok(None)
        }
        Err(e) => Err(format!(
            "cannot read TLS certificate {}: {e}",
            cert.display()
        )),
    }
}

fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read TLS certificate {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read TLS certificate {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read TLS key {}: {e}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("TLS certificate and key do not fit: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
