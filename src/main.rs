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
    Rewrite(cli::StatementArgs),
    /// Print the SQL tablegate would forward for a user and why: roles, variables, row
    /// filters, hidden and masked columns with their policy lines; or the refusal.
    Explain(cli::StatementArgs),
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
    /// Run the policy test cases against the live databases; fails if any case fails.
    TestPolicies {
        #[arg(long, default_value = "tablegate.toml")]
        config: PathBuf,
        /// The folder of test case files (default: the policies folder's `tests`).
        #[arg(long)]
        tests: Option<PathBuf>,
    },
    /// Convert an AskTable export (policies, roles, datasources as JSON) into a tablegate
    /// policy file for review, saying what could not be expressed.
    ImportAsktable {
        #[arg(long, default_value = "tablegate.toml")]
        config: PathBuf,
        /// The AskTable export.
        file: PathBuf,
        /// Where to write `asktable.toml`.
        #[arg(long, default_value = "asktable-import")]
        out: PathBuf,
        /// An AskTable datasource id and the tablegate datasource it is, as ID=NAME (repeatable);
        /// AskTable datasources named like a tablegate datasource need none.
        #[arg(long = "datasource", value_name = "ID=NAME")]
        datasources: Vec<String>,
        /// Replace an existing `asktable.toml`.
        #[arg(long)]
        force: bool,
    },
    /// Look at and manage the users in the directory.
    Users {
        #[arg(long, default_value = "tablegate.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Work with the WeCom app users come from.
    Wecom {
        #[arg(long, default_value = "tablegate.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: WecomCommand,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Every user: source, status, departments.
    List,
    /// One user in full.
    Show { userid: String },
    /// Set a user's database password (read without echo, or one line from standard input).
    SetPassword { userid: String },
    /// Stop a user from connecting; WeCom syncs do not undo this.
    Disable { userid: String },
    /// Undo `disable`.
    Enable { userid: String },
}

#[derive(Subcommand)]
enum WecomCommand {
    /// Sync the directory from WeCom now.
    Sync,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Commands parse SQL on this thread and on the runtime's: both get the stack a statement at
    // the rewriter's operator limit needs.
    std::thread::Builder::new()
        .name("tablegate".into())
        .stack_size(tablegate::rewrite::STACK_SIZE)
        .spawn(|| {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .thread_stack_size(tablegate::rewrite::STACK_SIZE)
                .build()
                .expect("a runtime")
                .block_on(run(args))
        })
        .expect("a main thread")
        .join()
        .unwrap_or(ExitCode::FAILURE)
}

async fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Command::Rewrite(args) => cli::rewrite::run(&args).await,
        Command::Explain(args) => cli::explain::run(&args).await,
        Command::Check { config } => cli::check::run(&config).await,
        Command::TestPolicies { config, tests } => {
            cli::test_policies::run(&config, tests.as_deref()).await
        }
        Command::Serve { config } => cli::serve::run(&config).await,
        Command::ImportAsktable {
            config,
            file,
            out,
            datasources,
            force,
        } => {
            cli::import_asktable::run(cli::import_asktable::Options {
                config: &config,
                export: &file,
                out: &out,
                datasources: &datasources,
                force,
            })
            .await
        }
        Command::Users { config, command } => match command {
            UsersCommand::List => cli::users::list(&config).await,
            UsersCommand::Show { userid } => cli::users::show(&config, &userid).await,
            UsersCommand::SetPassword { userid } => {
                cli::users::set_password(&config, &userid).await
            }
            UsersCommand::Disable { userid } => {
                cli::users::set_disabled(&config, &userid, true).await
            }
            UsersCommand::Enable { userid } => {
                cli::users::set_disabled(&config, &userid, false).await
            }
        },
        Command::Wecom { config, command } => match command {
            WecomCommand::Sync => cli::wecom::sync(&config).await,
        },
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("tablegate: {message}");
            ExitCode::from(2)
        }
    }
}
