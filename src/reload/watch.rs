//! Watching the policies folder by polling: every interval, the name, size, modification time
//! and inode of each `*.toml` file (following symlinks) are compared with the last look.
//!
//! Polling rather than inotify (the `notify` crate) because it works the same everywhere
//! policies come from: bind mounts from Docker Desktop and NFS, where inotify events do not
//! arrive, and Kubernetes ConfigMaps, which swap a symlinked folder rather than write the files.
//! Its cost is one directory read and a few `stat`s per interval.
//!
//! A change is reloaded once the folder has looked the same for one more interval: that
//! debounces bursts (an editor's save, `git pull`, a deploy copying several files) into one
//! reload and avoids reading a file half-written. A rejected set is not retried until the
//! folder changes again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::PolicyReloader;

/// What the folder looks like: each policy file's name, size, modification time and inode,
/// sorted; or why it cannot be read. The inode catches saves by rename (editors, ConfigMaps)
/// within one tick of the coarse modification clock.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    Files(Vec<(PathBuf, u64, Option<SystemTime>, u64)>),
    Unreadable(String),
}

fn look(dir: &Path) -> Look {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return Look::Unreadable(e.to_string()),
    };
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|x| x == "toml"))
        .map(|path| {
            // `metadata` follows symlinks: a ConfigMap swap changes the target's times.
            let meta = std::fs::metadata(&path);
            let size = meta.as_ref().map_or(0, |m| m.len());
            let inode = meta.as_ref().map_or(0, |m| m.ino());
            let modified = meta.and_then(|m| m.modified()).ok();
            (path, size, modified, inode)
        })
        .collect();
    files.sort();
    Look::Files(files)
}

async fn look_now(dir: &Path) -> Look {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || look(&dir))
        .await
        .unwrap_or_else(|e| Look::Unreadable(e.to_string()))
}

/// Polls the reloader's folder every `interval` and reloads settled changes; never returns.
pub async fn watch(reloader: Arc<PolicyReloader>, interval: Duration) {
    let mut loaded = look_now(reloader.dir()).await;
    let mut pending: Option<Look> = None;
    loop {
        tokio::time::sleep(interval).await;
        let now = look_now(reloader.dir()).await;
        if now == loaded {
            pending = None;
        } else if pending.as_ref() == Some(&now) {
            // The outcome is logged and counted by the reload itself.
            let _ = reloader.reload("policies folder changed").await;
            loaded = now;
            pending = None;
        } else {
            pending = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_look_sees_edits_to_policy_files_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), "x").unwrap();
        let first = look(dir.path());
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(look(dir.path()), first);
        std::fs::write(dir.path().join("a.toml"), "xy").unwrap();
        assert_ne!(look(dir.path()), first);
        assert!(matches!(
            look(&dir.path().join("missing")),
            Look::Unreadable(_)
        ));
    }
}
