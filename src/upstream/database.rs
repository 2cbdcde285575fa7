//! Where a database behind tablegate is and how to reach it: libpq-style settings plus TLS.
//!
//! Every connection tablegate opens itself goes through here or through
//! [`Target`](super::Target), which is built from the same value, so the proxy's raw connections
//! and its driver connections (catalog reads, `check`, policy tests, the directory store) can
//! never disagree on whether a database is reached over TLS.

use tokio::task::JoinHandle;
use tokio_postgres::config::SslMode;

use super::tls::UpstreamTls;

#[derive(Clone, Debug)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub tls: Option<UpstreamTls>,
}

impl Database {
    pub fn new(mut config: tokio_postgres::Config, tls: Option<UpstreamTls>) -> Database {
        config.ssl_mode(match tls {
            Some(_) => SslMode::Require,
            None => SslMode::Disable,
        });
        Database { config, tls }
    }

    /// A driver connection. Its connection task runs until the client is dropped; await the
    /// handle to know it has ended. The error names every cause (a TLS failure says why).
    pub async fn connect(&self) -> Result<(tokio_postgres::Client, JoinHandle<()>), String> {
        self.connect_driver().await.map_err(|e| {
            let mut message = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(inner) = cause {
                message = format!("{message}: {inner}");
                cause = inner.source();
            }
            message
        })
    }

    async fn connect_driver(
        &self,
    ) -> Result<(tokio_postgres::Client, JoinHandle<()>), tokio_postgres::Error> {
        let report = |ended: Result<(), tokio_postgres::Error>| {
            if let Err(e) = ended {
                tracing::warn!("database connection ended: {e}");
            }
        };
        Ok(match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.driver_connector()).await?;
                (
                    client,
                    tokio::spawn(async move { report(connection.await) }),
                )
            }
            None => {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
                (
                    client,
                    tokio::spawn(async move { report(connection.await) }),
                )
            }
        })
    }
}
