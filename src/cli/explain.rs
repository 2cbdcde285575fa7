//! `tablegate explain`: the rewritten SQL for a user, and the policy lines behind it.

use std::path::Path;
use std::process::ExitCode;

use tablegate::explain::{Outcome, explain};
use tablegate::rewrite::SearchPath;

pub async fn run(
    config_path: &Path,
    userid: &str,
    datasource: &str,
    search_path: Option<&str>,
    sql: &str,
) -> Result<ExitCode, String> {
    let loaded = super::load(config_path).await?;
    let user = loaded
        .users
        .iter()
        .find(|u| u.is(userid))
        .ok_or_else(|| format!("user `{userid}` is not in the directory"))?;
    let client = super::connect(&loaded.config, datasource).await?;
    let catalog = super::catalog(&client, datasource).await?;
    let path = SearchPath::parse_setting(search_path.unwrap_or(catalog.default_search_path()))?;
    let explanation = explain(&loaded.policies, &catalog, user, datasource, &path, sql);
    print!("{explanation}");
    Ok(match explanation.outcome {
        Outcome::Rewritten { .. } => ExitCode::SUCCESS,
        Outcome::Refused(_) => ExitCode::from(1),
    })
}
