//! `tablegate explain`: the rewritten SQL for a user, and the policy lines behind it.

use std::process::ExitCode;

use tablegate::explain::{Outcome, explain};

use super::StatementArgs;

pub async fn run(args: &StatementArgs) -> Result<ExitCode, String> {
    let setting = super::setting(args).await?;
    let explanation = explain(
        &setting.policies,
        &setting.catalog,
        &setting.user,
        &args.database,
        &setting.search_path,
        &args.sql,
    );
    print!("{explanation}");
    Ok(match explanation.outcome {
        Outcome::Rewritten { .. } => ExitCode::SUCCESS,
        Outcome::Refused(_) => ExitCode::from(1),
    })
}
