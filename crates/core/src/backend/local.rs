//! The local backend: a launch runs as a child process in its own process group, so that a
//! stop reaches everything it started. stdout is read line by line; stderr is drained on its
//! own task (the child never blocks on a full pipe) and its tail kept for error reports.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::launch::{LaunchSpec, Stdin};

/// How long output is still read after the direct child exited.
pub const ORPHAN_DRAIN: Duration = Duration::from_secs(2);

/// How much of stderr is kept for reports.
pub const STDERR_TAIL_BYTES: usize = 8 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A running child.
pub struct LocalProcess {
    child: Child,
    pub pid: u32,
    /// Identifies this process beyond its pid (start time), so a reused pid is never taken
    /// for it.
    pub identity: Option<String>,
    stdout: BufReader<ChildStdout>,
    /// Partial line kept across cancelled reads (read_until appends to it).
    line: Vec<u8>,
    /// Set once the direct child has exited.
    status: Option<std::io::Result<std::process::ExitStatus>>,
    stderr: Option<JoinHandle<String>>,
    pub stdin: Option<tokio::process::ChildStdin>,
}

/// How a child ended.
#[derive(Debug, Clone, Default)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stderr_tail: String,
    /// How it ended, when a backend knows better than a code or a signal (a Job's reason).
    pub reason: Option<String>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    pub fn describe(&self) -> String {
        if let Some(r) = &self.reason {
            return r.clone();
        }
        match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("killed by signal {s} ({})", signal_name(s)),
            (None, None) => "ended without a status".to_string(),
        }
    }
}

pub fn signal_name(s: i32) -> &'static str {
    match s {
        1 => "SIGHUP",
        2 => "SIGINT",
        6 => "SIGABRT",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        15 => "SIGTERM",
        _ => "signal",
    }
}

/// Write the launch's files (creating folders) and make its links. A file that already holds
/// the same contents is left alone; others are replaced atomically (written beside, then
/// renamed), since a file in a shared runtime home may be read by a running CLI meanwhile.
/// One in the agent's own worktree (a spare's, written by its last agent) is written over in
/// place instead ([`write_in_place`]): no CLI reads it yet.
/// Write `contents` over the file at `path` if it is a plain file (not a link, one name
/// only), without emptying it first: whether it was. A file replaced by a rename, or cut to
/// nothing, frees its blocks, and where the file system discards freed blocks that waits for
/// the disk (~0.4 ms on the 2-core VM); a small file written over keeps its one block.
fn write_in_place(path: &Path, contents: &[u8]) -> bool {
    use std::io::Write;
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    // Not through a link; and a FIFO put there would block an open for writing.
    let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let Ok(mut file) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(flags.bits())
        .open(path)
    else {
        return false;
    };
    let plain = file.metadata().is_ok_and(|m| m.is_file() && m.nlink() == 1);
    plain && file.write_all(contents).is_ok() && file.set_len(contents.len() as u64).is_ok()
}

pub fn write_files(spec: &LaunchSpec) -> Result<(), LocalError> {
    // Unique per write, also between tasks of one process.
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let unique = || {
        format!(
            "fracta-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        )
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| LocalError::WriteFile { path, source }
    };
    for f in &spec.files {
        if std::fs::read(&f.path).is_ok_and(|old| old == f.contents.as_bytes()) {
            continue;
        }
        if f.in_workspace && write_in_place(&f.path, f.contents.as_bytes()) {
            continue;
        }
        if let Some(dir) = f.path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = f.path.with_file_name(format!(".{name}.{}", unique()));
        std::fs::write(&tmp, &f.contents).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &f.path).map_err(io(&f.path))?;
    }
    for l in &spec.links {
        if std::fs::read_link(&l.link).is_ok_and(|t| t == l.target) {
            continue;
        }
        if let Some(dir) = l.link.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        let tmp = l.link.with_file_name(format!(".link.{}", unique()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&l.target, &tmp).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &l.link).map_err(io(&l.link))?;
    }
    Ok(())
}

/// Start `spec` with the program at `program`. `env` is the complete environment.
pub fn spawn(
    spec: &LaunchSpec,
    program: &Path,
    env: &[(String, String)],
) -> Result<LocalProcess, LocalError> {
    // `$(NAME)` in args means the env var's value, as in a Kubernetes container spec.
    let vars: std::collections::BTreeMap<String, String> = env.iter().cloned().collect();
    let mut cmd = Command::new(program);
    cmd.args(
        spec.args
            .iter()
            .map(|a| crate::launch::expand_env_refs(a, &vars)),
    )
    .current_dir(&spec.cwd)
    .env_clear()
    .envs(
        env.iter()
            .filter(|(k, _)| k != "PWD" && k != "OLDPWD")
            .map(|(k, v)| (k.as_str(), v.as_str())),
    )
    // Some CLIs (OpenCode) take their project folder from $PWD, not from the real cwd.
    .env("PWD", &spec.cwd)
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .stdin(match spec.stdin {
        Stdin::Null => Stdio::null(),
        Stdin::Piped => Stdio::piped(),
    })
    .process_group(0)
    .kill_on_drop(false);
    let mut child = cmd.spawn().map_err(|source| LocalError::Spawn {
        program: program.display().to_string(),
        source,
    })?;
    let pid = child.id().unwrap_or(0);
    let identity = process_identity(pid);
    let stdout = child
        .stdout
        .take()
        .map(BufReader::new)
        .ok_or_else(|| LocalError::Spawn {
            program: program.display().to_string(),
            source: std::io::Error::other("no stdout pipe"),
        })?;
    let stderr = child.stderr.take().map(|mut err| {
        tokio::spawn(async move {
            let mut tail: VecDeque<u8> = VecDeque::with_capacity(STDERR_TAIL_BYTES);
            let mut buf = [0u8; 4096];
            loop {
                match err.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        tail.extend(&buf[..n]);
                        while tail.len() > STDERR_TAIL_BYTES {
                            tail.pop_front();
                        }
                    }
                }
            }
            String::from_utf8_lossy(&tail.into_iter().collect::<Vec<u8>>()).into_owned()
        })
    });
    let stdin = child.stdin.take();
    Ok(LocalProcess {
        child,
        pid,
        identity,
        stdout,
        line: Vec::new(),
        status: None,
        stderr,
        stdin,
    })
}

impl LocalProcess {
    /// Read one line into `self.line`; cancel safe (a partial line stays in the buffer).
    async fn read_line(&mut self) -> Option<String> {
        read_line(&mut self.stdout, &mut self.line).await
    }

    /// The next stdout line (without the newline), or None at end of output. When the
    /// direct child has exited but something it started still holds stdout open (e.g. the
    /// native binary behind an npm wrapper), what is left is drained for a moment and the
    /// rest of the process group is killed: a run never hangs on an orphan.
    pub async fn next_line(&mut self) -> Option<String> {
        loop {
            if self.status.is_some() {
                return match tokio::time::timeout(ORPHAN_DRAIN, self.read_line()).await {
                    Ok(l) => l,
                    Err(_) => {
                        signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
                        None
                    }
                };
            }
            tokio::select! {
                l = read_line(&mut self.stdout, &mut self.line) => return l,
                s = self.child.wait() => self.status = Some(s),
            }
        }
    }

    /// Wait for the child to end and collect its status and stderr tail.
    pub async fn wait(mut self) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        let status = match self.status.take() {
            Some(s) => s,
            None => self.child.wait().await,
        };
        // Whatever the leader left behind in its group goes with it.
        signal_group(self.pid, nix::sys::signal::Signal::SIGKILL);
        let stderr_tail = match self.stderr.take() {
            // The stderr pipe may be held open by a grandchild; do not wait forever.
            Some(h) => tokio::time::timeout(Duration::from_secs(2), h)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => String::new(),
        };
        match status {
            Ok(s) => ExitInfo {
                code: s.code(),
                signal: s.signal(),
                stderr_tail,
                reason: None,
            },
            Err(e) => ExitInfo {
                code: None,
                signal: None,
                stderr_tail: format!("{stderr_tail}\n(wait failed: {e})"),
                reason: None,
            },
        }
    }
}

async fn read_line(stdout: &mut BufReader<ChildStdout>, line: &mut Vec<u8>) -> Option<String> {
    match stdout.read_until(b'\n', line).await {
        Ok(0) | Err(_) if line.is_empty() => None,
        _ => {
            let mut buf = std::mem::take(line);
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            Some(String::from_utf8_lossy(&buf).into_owned())
        }
    }
}

/// The process's start time (field 22 of /proc/PID/stat), which with the pid identifies it.
pub fn process_identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); starttime is field 22 → index 19.
    let start = fields.get(19)?;
    let state = fields.first()?;
    if *state == "Z" || *state == "X" {
        return None;
    }
    Some(start.to_string())
}

/// Is the process `pid` still the one we started (same identity) and not a zombie?
pub fn is_alive(pid: u32, identity: Option<&str>) -> bool {
    match (process_identity(pid), identity) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Signal a whole process group.
pub fn signal_group(pgid: u32, signal: nix::sys::signal::Signal) -> bool {
    let Ok(raw) = i32::try_from(pgid) else {
        return false;
    };
    if raw <= 1 {
        return false;
    }
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), signal).is_ok()
}

/// Stop a process group: SIGTERM, then SIGKILL after `grace`. Returns once the leader is gone
/// (or after the kill).
pub async fn stop_group(pid: u32, identity: Option<&str>, grace: Duration) {
    use nix::sys::signal::Signal;
    if !is_alive(pid, identity) {
        // The leader is gone, but its group may not be: make sure.
        signal_group(pid, Signal::SIGKILL);
        return;
    }
    signal_group(pid, Signal::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while tokio::time::Instant::now() < deadline {
        if !is_alive(pid, identity) {
            signal_group(pid, Signal::SIGKILL);
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    signal_group(pid, Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::launch::FileSpec;
    use std::os::unix::fs::MetadataExt;

    fn file(path: &Path, contents: &str, in_workspace: bool) -> FileSpec {
        FileSpec {
            path: path.to_path_buf(),
            contents: contents.into(),
            in_workspace,
        }
    }

    fn inode(p: &Path) -> u64 {
        std::fs::symlink_metadata(p).unwrap().ino()
    }

    /// A file of the agent's worktree already there (a spare's) is written over in place; a
    /// shared one is replaced whole by a rename; a link or a second name in the worktree is
    /// never written through (the file it names stays as it was).
    #[test]
    fn worktree_files_are_written_in_place_and_shared_ones_replaced() {
        let d = tempfile::tempdir().unwrap();
        let ws = d.path().join(".codex/config.toml");
        let shared = d.path().join("home/config.toml");
        let outside = d.path().join("user.toml");
        let linked = d.path().join(".claude/settings.json");
        let hard = d.path().join(".gemini/settings.json");
        for p in [&ws, &shared, &outside] {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, "a longer first version\n").unwrap();
        }
        std::fs::create_dir_all(linked.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(&outside, &linked).unwrap();
        std::fs::create_dir_all(hard.parent().unwrap()).unwrap();
        std::fs::hard_link(&outside, &hard).unwrap();
        let before = (inode(&ws), inode(&shared), inode(&linked), inode(&hard));
        let spec = LaunchSpec {
            files: vec![
                file(&ws, "new\n", true),
                file(&shared, "new\n", false),
                file(&linked, "new\n", true),
                file(&hard, "new\n", true),
            ],
            ..LaunchSpec::default()
        };
        write_files(&spec).unwrap();
        for p in [&ws, &shared, &linked, &hard] {
            assert_eq!(
                std::fs::read_to_string(p).unwrap(),
                "new\n",
                "{}",
                p.display()
            );
        }
        assert_eq!(inode(&ws), before.0);
        assert_ne!(inode(&shared), before.1);
        assert_ne!(inode(&linked), before.2);
        assert!(std::fs::symlink_metadata(&linked).unwrap().is_file());
        assert_ne!(inode(&hard), before.3);
        assert_eq!(
            std::fs::read_to_string(&outside).unwrap(),
            "a longer first version\n"
        );
    }
}
