//! `tablegate wecom sync`: one sync now, with a progress bar and a summary.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tablegate::config::Config;
use tablegate::control_chars::escape_control;
use tablegate::{directory, wecom};

pub async fn sync(config_path: &Path) -> Result<ExitCode, String> {
    let config = Config::load(config_path)?;
    let directory = directory::open(&config).await?;
    let client = wecom::client_from_config(&config)?;
    let sync = wecom::sync_from_config(&config, client, &directory)?;
    let progress = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} departments {pos}/{len} {wide_bar} {elapsed}")
            .expect("a valid progress template"),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let result = sync.run(&progress).await;
    progress.finish_and_clear();
    match result {
        Ok(summary) => {
            println!("departments: {}", summary.departments);
            println!("created:     {}", summary.created);
            println!("updated:     {}", summary.updated);
            println!("disabled:    {}", summary.disabled);
            println!("unchanged:   {}", summary.unchanged);
            if !summary.skipped_local.is_empty() {
                println!(
                    "left alone (local users): {}",
                    escape_control(&summary.skipped_local.join(", "))
                );
            }
            if !summary.not_found.is_empty() {
                println!(
                    "in the visible range but gone from WeCom: {}",
                    escape_control(&summary.not_found.join(", "))
                );
            }
            for left_out in &summary.left_out {
                println!(
                    "left out as not visible, WeCom's answers disagree: {left_out} (check this user in the WeCom admin console)"
                );
            }
            for shared in &summary.shared_emails {
                println!(
                    "email given to nobody, several users hold it: {shared} (give each user their own email in WeCom)"
                );
            }
            println!("duration:    {:.1}s", summary.duration.as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("tablegate: {error}");
            Ok(ExitCode::from(1))
        }
    }
}
