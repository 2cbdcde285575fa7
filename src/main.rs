//! The `tablegate` command: serve, and the DBA's and admin's tools.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tablegate",
    version,
    about = "A PostgreSQL-wire permission proxy"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the SQL tablegate would forward for a user, or why it refuses it.
    Rewrite {
        #[arg(long, default_value = "tablegate.toml")]
        config: PathBuf,
        /// The user (userid) the statement runs as.
        #[arg(long)]
        user: String,
        /// The datasource, as clients name it in the database connection parameter.
        #[arg(long)]
        database: String,
        /// The session's search_path (default: the upstream database's).
        #[arg(long)]
        search_path: Option<String>,
        sql: String,
    },
    /// Run the proxy.
    Serve {
        #[arg(long, default_value = "tablegate.toml")]
        config: PathBuf,
    },
    /// Validate the policies against the live databases.
    Check {
        #[arg(long, default_value = "tablegate.toml")]
        config: PathBuf,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.command {
        Command::Rewrite {
            config,
            user,
            database,
            search_path,
            sql,
        } => cli::rewrite::run(&config, &user, &database, search_path.as_deref(), &sql).await,
        Command::Check { config } => cli::check::run(&config).await,
        Command::Serve { config } => cli::serve::run(&config).await,
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tablegate: {message}");
            ExitCode::from(2)
        }
    }
}
