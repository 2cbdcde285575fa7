//! Command implementations; each returns the exit code, or an error message for exit status 2.

pub mod check;
pub mod explain;
pub mod import_asktable;
pub mod rewrite;
pub mod serve;
pub mod test_policies;
pub mod users;
pub mod wecom;

use std::path::Path;

use tablegate::catalog::Catalog;
use tablegate::config::Config;
use tablegate::directory::{self, User};
use tablegate::policy::PolicySet;

pub struct Loaded {
    pub config: Config,
    pub policies: PolicySet,
    pub users: Vec<User>,
}

/// The configuration, the policies and every user in the directory (store and users file).
pub async fn load(config_path: &Path) -> Result<Loaded, String> {
    let config = Config::load(config_path)?;
    let policies =
        PolicySet::load_dir(&config.path(&config.policies)).map_err(|e| e.to_string())?;
    let users = directory::open(&config)
        .await?
        .users()
        .await
        .map_err(|e| e.to_string())?;
    Ok(Loaded {
        config,
        policies,
        users,
    })
}

/// Connects to a datasource's upstream database with the service credentials.
pub async fn connect(config: &Config, datasource: &str) -> Result<tokio_postgres::Client, String> {
    let pg = config
        .datasource(datasource)?
        .postgres_config(&config.base)?;
    let (client, connection) = pg
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(|e| format!("cannot connect to datasource `{datasource}`: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

pub async fn catalog(client: &tokio_postgres::Client, datasource: &str) -> Result<Catalog, String> {
    Catalog::load(client)
        .await
        .map_err(|e| format!("cannot read the catalog of datasource `{datasource}`: {e}"))
}
