//! `tablegate check`: policies against the live databases, with file:line in every message.

use std::path::Path;
use std::process::ExitCode;

use tablegate::control_chars::escape_control;
use tablegate::policy::check::{Findings, check_assignments, check_datasource};

pub async fn run(config_path: &Path) -> Result<ExitCode, String> {
    let loaded = match super::load(config_path).await {
        Ok(l) => l,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut findings = Findings::default();
    check_assignments(&loaded.policies, &loaded.users, &mut findings);
    for (name, datasource) in &loaded.policies.datasources {
        if !loaded.config.datasource.contains_key(name) {
            findings.errors.push(tablegate::policy::PolicyError {
                origin: datasource.origin.clone(),
                message: format!(
                    "datasource `{name}` has no [datasource.{name}] section in {}",
                    config_path.display()
                ),
            });
            continue;
        }
        let mut client = super::connect(&loaded.config, name).await?;
        let catalog = super::catalog(&client, name).await?;
        check_datasource(
            &loaded.policies,
            name,
            &catalog,
            &loaded.users,
            &mut client,
            &mut findings,
        )
        .await;
    }
    let by_place = |e: &tablegate::policy::PolicyError| (e.origin.file.clone(), e.origin.line);
    findings.warnings.sort_by_key(by_place);
    findings.errors.sort_by_key(by_place);
    for w in &findings.warnings {
        eprintln!("warning: {}", escape_control(&w.to_string()));
    }
    for e in &findings.errors {
        eprintln!("error: {}", escape_control(&e.to_string()));
    }
    if findings.errors.is_empty() {
        println!(
            "policies are valid: {} datasources, {} roles, {} assignments",
            loaded.policies.datasources.len(),
            loaded.policies.roles.len(),
            loaded.policies.assignments.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
