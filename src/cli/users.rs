//! `tablegate users list|show|set-password|disable|enable`: the admin's view of the directory.
//!
//! What WeCom supplies (userids, names, positions, departments, attributes) is printed with its
//! control characters escaped, so that it cannot drive the admin's terminal.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use tablegate::config::Config;
use tablegate::control_chars::escape_control;
use tablegate::directory::{self, Directory, StoredUser, User};
use unicode_width::UnicodeWidthStr;

async fn open(config_path: &Path) -> Result<Directory, String> {
    directory::open(&Config::load(config_path)?).await
}

fn status(stored: &StoredUser) -> &'static str {
    match (stored.user.enabled, stored.disabled_by_admin) {
        (_, true) => "disabled by admin",
        (false, false) => match stored.wecom_status {
            Some(5) => "left WeCom",
            Some(2) => "disabled in WeCom",
            _ => "not in WeCom",
        },
        (true, false) => "enabled",
    }
}

/// `text` padded to `width` terminal columns (Chinese characters take two).
fn pad(text: &str, width: usize) -> String {
    format!("{text}{}", " ".repeat(width.saturating_sub(text.width())))
}

fn row(userid: &str, name: &str, source: &str, status: &str, departments: &str) -> String {
    format!(
        "{} {} {} {} {}",
        pad(&escape_control(userid), 24),
        pad(&escape_control(name), 16),
        pad(source, 7),
        pad(status, 18),
        escape_control(departments)
    )
}

fn print_row(userid: &str, name: &str, source: &str, status: &str, departments: &str) {
    println!("{}", row(userid, name, source, status, departments));
}

fn department_paths(user: &User) -> String {
    user.departments
        .iter()
        .map(|d| d.path_string())
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn list(config_path: &Path) -> Result<ExitCode, String> {
    let directory = open(config_path).await?;
    let stored = directory.store().users().await.map_err(|e| e.to_string())?;
    print_row("USERID", "NAME", "SOURCE", "STATUS", "DEPARTMENTS");
    for record in &stored {
        print_row(
            &record.user.userid,
            &record.user.name,
            record.source.as_str(),
            status(record),
            &department_paths(&record.user),
        );
    }
    for user in directory.users().await.map_err(|e| e.to_string())? {
        if !stored.iter().any(|s| s.user.is(&user.userid)) {
            let status = if user.enabled { "enabled" } else { "disabled" };
            print_row(
                &user.userid,
                &user.name,
                "file",
                status,
                &department_paths(&user),
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(config_path: &Path, userid: &str) -> Result<ExitCode, String> {
    let directory = open(config_path).await?;
    let Some(user) = directory.user(userid).await.map_err(|e| e.to_string())? else {
        return Err(format!(
            "user `{userid}` is not in the directory (see `tablegate users list`)"
        ));
    };
    let stored = directory
        .store()
        .user(userid)
        .await
        .map_err(|e| e.to_string())?;
    for line in profile(&user) {
        println!("{line}");
    }
    match stored {
        Some(stored) => {
            println!("status:      {}", status(&stored));
            println!("source:      {}", stored.source.as_str());
            if let Some(code) = stored.wecom_status {
                println!("WeCom status: {code}");
            }
            let password = if stored.password_verifier.is_some() {
                "set"
            } else {
                "none"
            };
            println!("password:    {password}");
            println!("created:     {}", stored.created_at);
            println!("updated:     {}", stored.updated_at);
            if let Some(synced) = stored.last_synced_at {
                println!("last synced: {synced}");
            }
        }
        None => println!("source:      users file (no password)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The lines of `users show` that come from the user's profile.
fn profile(user: &User) -> Vec<String> {
    let mut lines = vec![
        format!("userid:      {}", escape_control(&user.userid)),
        format!("name:        {}", escape_control(&user.name)),
        format!(
            "email:       {}",
            escape_control(user.email.as_deref().unwrap_or("-"))
        ),
        format!(
            "position:    {}",
            escape_control(user.position.as_deref().unwrap_or("-"))
        ),
    ];
    for d in &user.departments {
        let id = d
            .node()
            .id
            .map(|id| format!(" (id {id})"))
            .unwrap_or_default();
        lines.push(format!(
            "department:  {}{id}",
            escape_control(&d.path_string())
        ));
    }
    for (name, value) in &user.attributes {
        lines.push(format!(
            "attribute:   {} = {}",
            escape_control(name),
            escape_control(value)
        ));
    }
    lines.push(format!(
        "enabled:     {}",
        if user.enabled { "yes" } else { "no" }
    ));
    lines
}

/// Reads the new password without echo on a terminal, or as one line from a pipe.
fn read_password(userid: &str) -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("New password for {userid}: "))
            .map_err(|e| format!("cannot read the password: {e}"))?;
        let second = rpassword::prompt_password("Again: ")
            .map_err(|e| format!("cannot read the password: {e}"))?;
        if first != second {
            return Err("the two passwords differ; nothing was changed".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
        Ok(line.trim_end_matches(['\n', '\r']).to_owned())
    }
}

pub async fn set_password(config_path: &Path, userid: &str) -> Result<ExitCode, String> {
    let directory = open(config_path).await?;
    let password = read_password(userid)?;
    if password.len() < 8 {
        return Err("a password needs at least 8 characters; nothing was changed".into());
    }
    directory
        .set_password(userid, &password)
        .await
        .map_err(|e| e.to_string())?;
    println!("password of {userid} changed");
    let _ = std::io::stdout().flush();
    Ok(ExitCode::SUCCESS)
}

pub async fn set_disabled(
    config_path: &Path,
    userid: &str,
    disabled: bool,
) -> Result<ExitCode, String> {
    let directory = open(config_path).await?;
    directory
        .set_disabled_by_admin(userid, disabled)
        .await
        .map_err(|e| e.to_string())?;
    let user = directory
        .user(userid)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("user `{userid}` vanished from the directory"))?;
    match (disabled, user.enabled) {
        (true, _) => println!("{userid} is disabled; syncs will not re-enable them"),
        (false, true) => println!("{userid} is enabled"),
        (false, false) => println!(
            "{userid} is no longer disabled by you, but stays disabled: WeCom says they left, are disabled, or are outside the app's visible range"
        ),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tablegate::directory::{Department, DepartmentNode};

    /// Found by red-team review: names, positions and attributes from WeCom reached the
    /// admin's terminal raw (escape sequences, carriage returns, OSC 52 clipboard writes).
    #[test]
    fn control_characters_from_wecom_are_printed_escaped() {
        let hostile = "x\u{1b}]52;c;ZXZpbA==\u{7}\r\u{1b}[2J";
        let user = User {
            userid: format!("mallory{hostile}"),
            name: hostile.into(),
            email: Some(hostile.into()),
            departments: vec![Department {
                path: vec![DepartmentNode {
                    id: Some(2),
                    name: hostile.into(),
                }],
                from_root: true,
            }],
            position: Some(hostile.into()),
            attributes: [(hostile.to_string(), hostile.to_string())].into(),
            enabled: true,
        };
        let mut printed = profile(&user);
        printed.push(row(
            &user.userid,
            &user.name,
            "wecom",
            "enabled",
            &department_paths(&user),
        ));
        for line in &printed {
            assert!(!line.chars().any(char::is_control), "{line:?}");
        }
        assert!(
            printed[1].ends_with("x\\u{1b}]52;c;ZXZpbA==\\u{7}\\u{d}\\u{1b}[2J"),
            "{:?}",
            printed[1]
        );
    }
}
