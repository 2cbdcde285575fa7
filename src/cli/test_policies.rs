//! `tablegate test-policies`: the DBA's policy test cases, run against the live databases.

use std::path::Path;
use std::process::ExitCode;

use tablegate::policy_tests::{Suite, Verdict, load_dir};

pub async fn run(config_path: &Path, tests: Option<&Path>) -> Result<ExitCode, String> {
    let loaded = super::load(config_path).await?;
    let dir = match tests {
        Some(dir) => dir.to_path_buf(),
        None => loaded.config.path(&loaded.config.policies).join("tests"),
    };
    let cases = match load_dir(&dir) {
        Ok(cases) => cases,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    if cases.is_empty() {
        return Err(format!(
            "no test cases in {}: write [[case]] tables in *.toml files there (see docs/dba-tools.md)",
            dir.display()
        ));
    }
    let mut suite = Suite::new(&loaded.config, &loaded.policies, &loaded.users);
    let mut failed = 0;
    for case in &cases {
        match suite.run(case).await {
            Verdict::Pass => println!("PASS {}  {}", case.origin, case.name),
            Verdict::Fail(findings) => {
                failed += 1;
                println!("FAIL {}  {}", case.origin, case.name);
                for finding in findings {
                    println!("       {finding}");
                }
            }
        }
    }
    println!(
        "\n{} cases: {} passed, {failed} failed",
        cases.len(),
        cases.len() - failed
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
