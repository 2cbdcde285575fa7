//! `tablegate rewrite`: what would be forwarded for this user, or the refusal.

use std::path::Path;
use std::process::ExitCode;

use tablegate::policy::Access;
use tablegate::rewrite::{Context, SearchPath, rewrite};

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
    let access = Access::build(&loaded.policies, &catalog, user, datasource);
    let path = SearchPath::parse_setting(search_path.unwrap_or(catalog.default_search_path()))?;
    let context = Context {
        catalog: &catalog,
        access: &access,
        search_path: &path,
    };
    match rewrite(sql, &context) {
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
