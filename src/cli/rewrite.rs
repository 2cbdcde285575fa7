//! `tablegate rewrite`: what would be forwarded for this user, or the refusal.

use std::process::ExitCode;

use tablegate::policy::Access;
use tablegate::rewrite::{Context, rewrite};

use super::StatementArgs;

pub async fn run(args: &StatementArgs) -> Result<ExitCode, String> {
    let setting = super::setting(args).await?;
    let access = Access::build(
        &setting.policies,
        &setting.catalog,
        &setting.user,
        &args.database,
    );
    let context = Context {
        catalog: &setting.catalog,
        access: &access,
        search_path: &setting.search_path,
        risky_parameter_types: false,
    };
    match rewrite(&args.sql, &context) {
        Ok(rewritten) => {
            for notice in &rewritten.notices {
                eprintln!("NOTICE: {notice}");
            }
            println!("{}", rewritten.sql());
            Ok(ExitCode::SUCCESS)
        }
        Err(refusal) => {
            eprintln!("ERROR: {}", refusal.message);
            if let Some(hint) = &refusal.hint {
                eprintln!("HINT: {hint}");
            }
            Ok(ExitCode::from(1))
        }
    }
}
