//! The running tablegate: everything sessions share.
//!
//! The policy set is replaced as a whole (hot reload); its generation tells sessions to rebuild
//! their access at their next statement. Datasources hold pools and catalogs; the rewrite cache
//! is shared by all sessions; the cancel table maps the keys tablegate gave clients to upstream
//! backends.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use tokio_rustls::TlsAcceptor;

use crate::cache::RewriteCache;
use crate::config::Config;
use crate::datasource::Datasource;
use crate::directory::{Directory, ScramVerifier};
use crate::login::LoginService;
use crate::policy::PolicySet;
use crate::upstream::CancelKey;

/// A service account, known by the verifier of its secret (the secret itself is not kept).
pub struct ServiceAccount {
    pub name: String,
    pub verifier: ScramVerifier,
}

pub struct Gate {
    pub config: Config,
    policies: RwLock<Arc<PolicySet>>,
    policy_generation: AtomicU64,
    pub directory: Directory,
    /// Verifies WeCom login credentials, when password-free login is configured.
    pub login: Option<Arc<LoginService>>,
    pub datasources: BTreeMap<String, Arc<Datasource>>,
    pub cache: RewriteCache,
    /// (process id, secret) tablegate gave a client → the upstream backend's cancel key.
    pub cancels: DashMap<(i32, i32), CancelKey>,
    pub tls: Option<TlsAcceptor>,
    pub service_accounts: Vec<ServiceAccount>,
    /// What SCRAM runs against for an unknown user (its password is random and forgotten).
    pub decoy_verifier: ScramVerifier,
}

impl Gate {
    /// Opens every configured datasource (reading its catalog) and prepares TLS.
    pub async fn open(
        config: Config,
        policies: PolicySet,
        directory: Directory,
        login: Option<Arc<LoginService>>,
    ) -> Result<Gate, String> {
        let mut datasources = BTreeMap::new();
        for (name, ds) in &config.datasource {
            datasources.insert(
                name.clone(),
                Arc::new(Datasource::open(name, ds, &config.base).await?),
            );
        }
        let tls = match &config.tls {
            Some(tls) => Some(tls_acceptor(
                &config.path(&tls.cert),
                &config.path(&tls.key),
            )?),
            None => None,
        };
        let service_accounts = config
            .service_account
            .iter()
            .map(|a| {
                let secret = a.secret.resolve(
                    &format!("secret of service account {}", a.name),
                    &config.base,
                )?;
                Ok(ServiceAccount {
                    name: a.name.clone(),
                    verifier: ScramVerifier::new(&secret),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Gate {
            cache: RewriteCache::new(config.rewrite_cache_entries),
            config,
            policies: RwLock::new(Arc::new(policies)),
            policy_generation: AtomicU64::new(1),
            directory,
            login,
            datasources,
            cancels: DashMap::new(),
            tls,
            service_accounts,
            decoy_verifier: ScramVerifier::new(&crate::random::alphanumeric(32)),
        })
    }

    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.read().expect("policy lock").clone()
    }

    pub fn policy_generation(&self) -> u64 {
        self.policy_generation.load(Ordering::Acquire)
    }

    /// Makes `policies` live: sessions switch at their next statement.
    pub fn replace_policies(&self, policies: PolicySet) {
        *self.policies.write().expect("policy lock") = Arc::new(policies);
        for ds in self.datasources.values() {
            ds.forget_accesses();
        }
        self.cache.clear();
        self.policy_generation.fetch_add(1, Ordering::AcqRel);
    }

    pub fn service_account(&self, name: &str) -> Option<&ServiceAccount> {
        self.service_accounts.iter().find(|a| a.name == name)
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
