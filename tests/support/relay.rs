//! A man in the middle of a TLS connection, for tests of what he can and cannot do.
//!
//! It answers the client's SSLRequest with a certificate of its own (as anyone on the path can
//! when the client does not verify: `sslmode=require`), opens its own TLS connection to
//! tablegate (or a plaintext one, if asked), rewrites one startup setting on the way in and, if
//! asked, hides SCRAM-SHA-256-PLUS from the client; then it passes every byte through.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 4, 210, 22, 47];

pub struct Relay {
    /// Startup setting bytes to find and what to put in their place (`act_as=sam` → `act_as=alice`).
    pub swap: (String, String),
    /// Offer the client only SCRAM-SHA-256.
    pub hide_channel_binding: bool,
    /// Speak to tablegate without TLS (where it offers no -PLUS to hide).
    pub plaintext_upstream: bool,
    /// tablegate's certificate (PEM), which the relay itself trusts.
    pub upstream_cert: std::path::PathBuf,
}

impl Relay {
    /// Listens on a free local port; serves every connection until the test ends.
    pub async fn start(self, upstream: SocketAddr) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let own = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![own.cert.der().clone()],
                    PrivateKeyDer::from_pem_slice(own.signing_key.serialize_pem().as_bytes())
                        .unwrap(),
                )
                .unwrap(),
        ));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.upstream_cert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let connector = TlsConnector::from(Arc::new(
            rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        ));
        let relay = Arc::new(self);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (relay, acceptor, connector) =
                    (relay.clone(), acceptor.clone(), connector.clone());
                tokio::spawn(async move {
                    let _ = relay.serve(client, upstream, acceptor, connector).await;
                });
            }
        });
        addr
    }

    async fn serve(
        &self,
        mut client: TcpStream,
        upstream: SocketAddr,
        acceptor: TlsAcceptor,
        connector: TlsConnector,
    ) -> std::io::Result<()> {
        let mut request = [0u8; 8];
        client.read_exact(&mut request).await?;
        assert_eq!(request, SSL_REQUEST, "the client asks for TLS first");
        client.write_all(b"S").await?;
        let mut client = acceptor.accept(client).await?;
        let mut server = TcpStream::connect(upstream).await?;
        let startup = self.swapped(&untagged_message(&mut client).await?);
        if self.plaintext_upstream {
            server.write_all(&startup).await?;
            tokio::io::copy_bidirectional(&mut client, &mut server).await?;
            return Ok(());
        }
        server.write_all(&SSL_REQUEST).await?;
        let mut answer = [0u8; 1];
        server.read_exact(&mut answer).await?;
        assert_eq!(&answer, b"S", "tablegate speaks TLS");
        let name = ServerName::try_from("localhost").unwrap();
        let mut server = connector.connect(name, server).await?;
        server.write_all(&startup).await?;
        if self.hide_channel_binding {
            let (tag, body) = tagged_message(&mut server).await?;
            client.write_all(&without_plus(tag, &body)).await?;
        }
        tokio::io::copy_bidirectional(&mut client, &mut server).await?;
        Ok(())
    }

    fn swapped(&self, startup: &[u8]) -> Vec<u8> {
        let (from, to) = (self.swap.0.as_bytes(), self.swap.1.as_bytes());
        let at = startup
            .windows(from.len())
            .position(|w| w == from)
            .expect("the startup packet holds the setting to swap");
        let mut body = startup[4..at].to_vec();
        body.extend_from_slice(to);
        body.extend_from_slice(&startup[at + from.len()..]);
        let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A startup packet: length, then body.
async fn untagged_message(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let mut message = len.to_vec();
    message.resize(u32::from_be_bytes(len) as usize, 0);
    stream.read_exact(&mut message[4..]).await?;
    Ok(message)
}

async fn tagged_message(stream: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(u8, Vec<u8>)> {
    let tag = stream.read_u8().await?;
    let len = stream.read_u32().await? as usize;
    let mut body = vec![0u8; len - 4];
    stream.read_exact(&mut body).await?;
    Ok((tag, body))
}

/// AuthenticationSASL with SCRAM-SHA-256 alone; any other message as it was.
fn without_plus(tag: u8, body: &[u8]) -> Vec<u8> {
    let body = if tag == b'R' && body.starts_with(&10u32.to_be_bytes()) {
        let mut plain = 10u32.to_be_bytes().to_vec();
        plain.extend_from_slice(b"SCRAM-SHA-256\0\0");
        plain
    } else {
        body.to_vec()
    };
    let mut out = vec![tag];
    out.extend(((body.len() + 4) as u32).to_be_bytes());
    out.extend(body);
    out
}
