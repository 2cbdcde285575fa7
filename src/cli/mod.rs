//! Command implementations; each returns the exit code, or an error message for exit status 2.

pub mod check;
pub mod explain;
pub mod import_asktable;
pub mod rewrite;
pub mod serve;
pub mod test_policies;
pub mod users;
pub mod wecom;

use std::path::{Path, PathBuf};

use tablegate::catalog::Catalog;
use tablegate::config::Config;
use tablegate::directory::{self, User};
use tablegate::policy::PolicySet;
use tablegate::rewrite::SearchPath;

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
    let (client, _connection) = config
        .datasource(datasource)?
        .database(datasource, &config.base)?
        .connect()
        .await
        .map_err(|e| format!("cannot connect to datasource `{datasource}`: {e}"))?;
    Ok(client)
}

pub async fn catalog(client: &tokio_postgres::Client, datasource: &str) -> Result<Catalog, String> {
    Catalog::load(client)
        .await
        .map_err(|e| format!("cannot read the catalog of datasource `{datasource}`: {e}"))
}

/// What `rewrite` and `explain` take: a statement, the user it runs as and where.
#[derive(clap::Args)]
pub struct StatementArgs {
    #[arg(long, default_value = "tablegate.toml")]
    pub config: PathBuf,
    /// The user (userid) the statement runs as.
    #[arg(long)]
    pub user: String,
    /// The datasource, as clients name it in the database connection parameter.
    #[arg(long)]
    pub database: String,
    /// The session's search_path (default: the upstream database's).
    #[arg(long)]
    pub search_path: Option<String>,
    pub sql: String,
}

/// A statement's setting: the policies, the user, the datasource's live catalog, the search_path.
pub struct Setting {
    pub policies: PolicySet,
    pub user: User,
    pub catalog: Catalog,
    pub search_path: SearchPath,
}

pub async fn setting(args: &StatementArgs) -> Result<Setting, String> {
    let loaded = load(&args.config).await?;
    let user = loaded
        .users
        .into_iter()
        .find(|u| u.is(&args.user))
        .ok_or_else(|| format!("user `{}` is not in the directory", args.user))?;
    let client = connect(&loaded.config, &args.database).await?;
    let catalog = catalog(&client, &args.database).await?;
    let search_path = SearchPath::parse_setting(
        args.search_path
            .as_deref()
            .unwrap_or(catalog.default_search_path()),
    )?;
    Ok(Setting {
        policies: loaded.policies,
        user,
        catalog,
        search_path,
    })
}
