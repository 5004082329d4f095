//! How CLI commands find a running control plane: `fracta serve` writes
//! `.fracta/serve.json` (URL, pid, admin token; readable by its owner only) and removes it on
//! exit. A file left by a control plane that died is ignored once its health check fails.
//!
//! One control plane per project: `serve` holds an exclusive lock on `.fracta/serve.lock`
//! for its whole life (the kernel drops it when the process ends, however it ends), so a
//! second `serve` fails before it touches anything.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The discovery file's contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServeInfo {
    /// Base URL, e.g. `http://127.0.0.1:7878`.
    pub url: String,
    pub pid: u32,
    /// The admin token for the HTTP API.
    pub token: String,
}

/// `.fracta/serve.json` in the project's `.fracta` folder.
pub fn path(fracta_dir: &Path) -> PathBuf {
    fracta_dir.join("serve.json")
}

/// Write the file, readable and writable by the owner only.
pub fn write(fracta_dir: &Path, info: &ServeInfo) -> std::io::Result<()> {
    std::fs::create_dir_all(fracta_dir)?;
    let tmp = fracta_dir.join(format!(".serve.json.{}", std::process::id()));
    write_private(
        &path(fracta_dir),
        &tmp,
        serde_json::to_string_pretty(info)?.as_bytes(),
    )
}

/// Write `bytes` to `path` through `tmp` (synced, then renamed over it), readable and
/// writable by the owner only.
pub(crate) fn write_private(path: &Path, tmp: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(tmp, path)
}

/// `.fracta/serve.lock`, the control plane's lock on the project.
pub fn lock_path(fracta_dir: &Path) -> PathBuf {
    fracta_dir.join("serve.lock")
}

/// The project's lock, held while this value lives.
#[derive(Debug)]
pub struct ServeLock {
    _file: std::fs::File,
}

/// Why the lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another control plane holds it; what its discovery file says, if it has written it.
    Held(Option<ServeInfo>),
    Io(std::io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Held(Some(i)) => write!(
                f,
                "another fracta serve is already running for this project (pid {}, {}): use it, or stop it first",
                i.pid, i.url
            ),
            LockError::Held(None) => write!(
                f,
                "another fracta serve is already running for this project (it is starting; see .fracta/serve.json): use it, or stop it first"
            ),
            LockError::Io(e) => write!(f, "cannot lock the project for fracta serve: {e}"),
        }
    }
}

impl std::error::Error for LockError {}

/// Take the project's lock without waiting, or say who holds it.
pub fn lock(fracta_dir: &Path) -> Result<ServeLock, LockError> {
    std::fs::create_dir_all(fracta_dir).map_err(LockError::Io)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_path(fracta_dir))
        .map_err(LockError::Io)?;
    match file.try_lock() {
        Ok(()) => Ok(ServeLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(LockError::Held(read(fracta_dir))),
        Err(std::fs::TryLockError::Error(e)) => Err(LockError::Io(e)),
    }
}

/// Read the file, if there is one that parses.
pub fn read(fracta_dir: &Path) -> Option<ServeInfo> {
    let text = std::fs::read_to_string(path(fracta_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Remove the file if it is still ours (a newer control plane may have replaced it).
pub fn remove_if_ours(fracta_dir: &Path, pid: u32) {
    if read(fracta_dir).is_some_and(|i| i.pid == pid) {
        let _ = std::fs::remove_file(path(fracta_dir));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_project_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock(dir.path()).unwrap();
        let info = ServeInfo {
            url: "http://127.0.0.1:7878".into(),
            pid: 4242,
            token: "t".into(),
        };
        write(dir.path(), &info).unwrap();
        match lock(dir.path()) {
            Err(e @ LockError::Held(Some(_))) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("pid 4242") && msg.contains("http://127.0.0.1:7878"),
                    "{msg}"
                );
            }
            other => panic!("a second lock was not refused: {other:?}"),
        }
        // The refused attempt left the first one's file alone.
        assert_eq!(read(dir.path()), Some(info));
        drop(first);
        assert!(
            lock(dir.path()).is_ok(),
            "the lock is free once its holder is gone"
        );
    }
}
