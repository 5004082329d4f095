//! How CLI commands find a running control plane: `fracta serve` writes
//! `.fracta/serve.json` (URL, pid, admin token; readable by its owner only) and removes it on
//! exit. A file left by a control plane that died is ignored once its health check fails.

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
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(fracta_dir)?;
    let p = path(fracta_dir);
    let tmp = fracta_dir.join(format!(".serve.json.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(serde_json::to_string_pretty(info)?.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p)
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
