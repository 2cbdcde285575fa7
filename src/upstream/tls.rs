//! TLS from tablegate to the databases behind it: datasources and the shared directory store.
//!
//! The modes are libpq's without `allow` and `prefer`: a connection either does not use TLS or
//! insists on it, because a fallback to plaintext is a downgrade anyone on the path can force.
//! `require` encrypts without checking who answers; `verify-ca` checks that the server's
//! certificate chains to the configured root; `verify-full` also checks that it names the host.
//! Unless the operator says otherwise, a database on this machine (a loopback address or a Unix
//! socket) is reached without TLS and any other is verified in full: the service credentials
//! and every row tablegate guards cross that connection.

use std::fmt;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Deserialize;
use tokio_postgres::config::Host;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    Disable,
    Require,
    VerifyCa,
    VerifyFull,
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Disable => "disable",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        })
    }
}

/// How to encrypt the connections to one database: present only when they use TLS.
#[derive(Clone)]
pub struct UpstreamTls {
    pub mode: TlsMode,
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tls {} to {:?}", self.mode, self.server_name)
    }
}

impl UpstreamTls {
    /// The TLS for a database at `host`, from its `tls` and `tls_root_cert` settings (relative
    /// paths already resolved). `what` names the configuration section in messages.
    pub fn configure(
        what: &str,
        mode: Option<TlsMode>,
        root_cert: Option<&Path>,
        host: Option<&Host>,
    ) -> Result<Option<UpstreamTls>, String> {
        let host_name = match host {
            Some(Host::Tcp(name)) => name.as_str(),
            None => "localhost",
            Some(Host::Unix(dir)) => {
                return match mode {
                    None | Some(TlsMode::Disable) => Ok(None),
                    Some(mode) => Err(format!(
                        "{what}: tls = \"{mode}\" cannot apply to the Unix socket in {}: \
                         PostgreSQL speaks TLS only over TCP. Set tls = \"disable\" or give a TCP host.",
                        dir.display()
                    )),
                };
            }
        };
        let on_this_machine = host_name.eq_ignore_ascii_case("localhost")
            || host_name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        let mode = match mode {
            Some(mode) => mode,
            None if on_this_machine => TlsMode::Disable,
            None if root_cert.is_none() => {
                return Err(format!(
                    "{what}: {host_name} is not on this machine, so tablegate verifies its \
                     certificate (tls = \"verify-full\" unless set) and needs tls_root_cert: the CA \
                     certificate (PEM) that signed the database server's certificate \
                     (/etc/ssl/certs/ca-certificates.crt for a publicly signed one). Or set \
                     tls = \"require\" to encrypt without verifying (anyone on the network path \
                     could then pose as the database), or tls = \"disable\"."
                ));
            }
            None => TlsMode::VerifyFull,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
            (TlsMode::Disable, None) => return Ok(None),
            (TlsMode::Require, None) => {
                Arc::new(EncryptOnly(provider.signature_verification_algorithms))
            }
            (TlsMode::VerifyCa | TlsMode::VerifyFull, Some(path)) => {
                let roots = load_roots(what, path)?;
                let full =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("{what}: tls_root_cert {}: {e}", path.display()))?;
                if mode == TlsMode::VerifyFull {
                    full
                } else {
                    Arc::new(ChainOnly(full))
                }
            }
            (TlsMode::VerifyCa | TlsMode::VerifyFull, None) => {
                return Err(format!(
                    "{what}: tls = \"{mode}\" needs tls_root_cert: the CA certificate (PEM) that \
                     signed the database server's certificate (/etc/ssl/certs/ca-certificates.crt \
                     for a publicly signed one)."
                ));
            }
            (TlsMode::Disable | TlsMode::Require, Some(_)) => {
                return Err(format!(
                    "{what}: tls_root_cert is set but tls = \"{mode}\" verifies nothing; \
                     set tls = \"verify-full\" (or \"verify-ca\") to use it, or remove it."
                ));
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("{what}: TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        let server_name = ServerName::try_from(host_name.to_owned())
            .map_err(|e| format!("{what}: {host_name} is not a valid TLS server name: {e}"))?;
        Ok(Some(UpstreamTls {
            mode,
            config: Arc::new(config),
            server_name,
        }))
    }

    /// Runs the TLS handshake over `io` (after the server accepted an SSLRequest).
    pub async fn handshake<IO>(
        &self,
        io: IO,
    ) -> std::io::Result<tokio_rustls::client::TlsStream<IO>>
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        tokio_rustls::TlsConnector::from(self.config.clone())
            .connect(self.server_name.clone(), io)
            .await
    }

    /// The same settings for tokio-postgres connections (catalog reads, checks, the directory).
    pub fn driver_connector(&self) -> tokio_postgres_rustls::MakeRustlsConnect {
        tokio_postgres_rustls::MakeRustlsConnect::new((*self.config).clone())
    }
}

fn load_roots(what: &str, path: &Path) -> Result<RootCertStore, String> {
    let unreadable =
        |e: &dyn fmt::Display| format!("{what}: cannot read tls_root_cert {}: {e}", path.display());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
        roots
            .add(cert.map_err(|e| unreadable(&e))?)
            .map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"it holds no PEM certificate"));
    }
    Ok(roots)
}

/// `verify-ca`: the chain must lead to a configured root; the name in it may differ from the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `require`: any certificate is accepted, but the handshake must still be signed by its key,
/// so the session is encrypted to whoever holds it.
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str) -> Host {
        Host::Tcp(host.to_owned())
    }

    #[test]
    fn a_database_on_this_machine_is_reached_without_tls_unless_asked() {
        for host in ["127.0.0.1", "localhost", "::1"] {
            let tls = UpstreamTls::configure("datasource `d`", None, None, Some(&tcp(host)));
            assert!(tls.unwrap().is_none(), "{host}");
        }
        let unix = Host::Unix("/var/run/postgresql".into());
        assert!(
            UpstreamTls::configure("d", None, None, Some(&unix))
                .unwrap()
                .is_none()
        );
        let asked =
            UpstreamTls::configure("d", Some(TlsMode::Require), None, Some(&tcp("127.0.0.1")));
        assert_eq!(asked.unwrap().unwrap().mode, TlsMode::Require);
    }

    #[test]
    fn a_remote_database_is_verified_unless_the_operator_says_otherwise() {
        let error =
            UpstreamTls::configure("datasource `sales`", None, None, Some(&tcp("db.internal")))
                .unwrap_err();
        assert!(
            error.contains("datasource `sales`: db.internal is not on this machine"),
            "{error}"
        );
        assert!(error.contains("tls_root_cert"), "{error}");
        assert!(error.contains("tls = \"require\""), "{error}");
        let require =
            UpstreamTls::configure("d", Some(TlsMode::Require), None, Some(&tcp("db.internal")));
        assert_eq!(require.unwrap().unwrap().mode, TlsMode::Require);
        let disable =
            UpstreamTls::configure("d", Some(TlsMode::Disable), None, Some(&tcp("db.internal")));
        assert!(disable.unwrap().is_none());
    }

    #[test]
    fn contradictory_settings_are_refused_with_the_way_out() {
        let unix = Host::Unix("/run/pg".into());
        let error =
            UpstreamTls::configure("d", Some(TlsMode::Require), None, Some(&unix)).unwrap_err();
        assert!(error.contains("only over TCP"), "{error}");
        let error = UpstreamTls::configure("d", Some(TlsMode::VerifyFull), None, Some(&tcp("db")))
            .unwrap_err();
        assert!(error.contains("needs tls_root_cert"), "{error}");
        let error = UpstreamTls::configure(
            "d",
            Some(TlsMode::Require),
            Some(Path::new("/etc/ssl/certs/ca-certificates.crt")),
            Some(&tcp("db")),
        )
        .unwrap_err();
        assert!(error.contains("verifies nothing"), "{error}");
        let error = UpstreamTls::configure(
            "d",
            Some(TlsMode::VerifyFull),
            Some(Path::new("/nonexistent/ca.pem")),
            Some(&tcp("db")),
        )
        .unwrap_err();
        assert!(
            error.contains("cannot read tls_root_cert /nonexistent/ca.pem"),
            "{error}"
        );
    }
}
