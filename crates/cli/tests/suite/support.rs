//! Running the real `fracta` binary in a throwaway project folder with a controlled
//! environment. Every CLI test module builds on this.
//!
//! ```ignore
//! let p = Project::new();
//! p.write("fracta.yaml", "agents: ...");
//! let out = p.fracta(["config", "validate"]).env("OPENAI_API_KEY", "x").run();
//! assert_eq!(out.code, 0, "{out}");
//! p.snapshot(|| insta::assert_snapshot!(out.transcript()));
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The binary under test.
pub const FRACTA: &str = env!("CARGO_BIN_EXE_fracta");

/// The config crate's fixtures (the seed's examples and the bad-config corpus).
pub fn fixture(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../config/fixtures")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("fixture {}: {e}", p.display()))
}

/// A temporary project folder (the working directory of every command) and a separate
/// temporary HOME, both removed on drop.
pub struct Project {
    root: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    pub fn new() -> Self {
        Project {
            root: tempfile::Builder::new()
                .prefix("fracta-test-")
                .tempdir()
                .unwrap(),
            home: tempfile::Builder::new()
                .prefix("fracta-home-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.root.path()
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn join(&self, rel: impl AsRef<Path>) -> PathBuf {
        self.root.path().join(rel)
    }

    /// Write `contents` to `rel` (creating parent folders).
    pub fn write(&self, rel: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.join(rel);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(&p, contents).unwrap();
        p
    }

    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let p = self.join(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.join(rel).exists()
    }

    /// `fracta ARGS` in this project. The environment is cleared except for PATH, with HOME
    /// pointing at the temporary home and `NO_COLOR=1` (call `.color()` to drop it).
    pub fn fracta<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(FRACTA);
        cmd.args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        Run { cmd }
    }

    /// `fracta ARGS` on a pseudo-terminal (through util-linux `script`), with
    /// `TERM=xterm-256color` and, unless `no_color` is false, `NO_COLOR=1`. stdout and stderr
    /// both arrive in `stdout`. None when `script` is not installed.
    pub fn fracta_in_terminal(&self, args: &[&str], no_color: bool) -> Option<Out> {
        let have_script = Command::new("script")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have_script {
            eprintln!("skipping: util-linux `script` is not installed");
            return None;
        }
        let line = std::iter::once(FRACTA)
            .chain(args.iter().copied())
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = Command::new("script");
        cmd.args(["-qec", &line, "/dev/null"])
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("TERM", "xterm-256color")
            .stdin(Stdio::null());
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        Some(Run { cmd }.run())
    }

    /// Insta settings that replace this project's and home's paths with `[PROJECT]` and
    /// `[HOME]`, so snapshots do not depend on where the temp folders are.
    pub fn settings(&self) -> insta::Settings {
        let mut s = insta::Settings::clone_current();
        for (dir, name) in [(self.path(), "[PROJECT]"), (self.home(), "[HOME]")] {
            let mut forms = vec![dir.display().to_string()];
            if let Ok(c) = dir.canonicalize() {
                forms.push(c.display().to_string());
            }
            for form in forms {
                s.add_filter(&regex_escape(&form), name);
            }
        }
        s
    }

    /// Run `f` (which asserts snapshots) with this project's path filters.
    pub fn snapshot<R>(&self, f: impl FnOnce() -> R) -> R {
        self.settings().bind(f)
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A command about to run.
pub struct Run {
    cmd: Command,
}

impl Run {
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Self {
        self.cmd.env_remove(k);
        self
    }

    /// Let colour decisions happen (drops the default `NO_COLOR=1`).
    pub fn color(self) -> Self {
        self.env_remove("NO_COLOR")
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.cmd.current_dir(dir);
        self
    }

    pub fn run(mut self) -> Out {
        let o = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("running {FRACTA}: {e}"));
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// What a command did.
#[derive(Debug, Clone)]
pub struct Out {
    /// The exit code (-1 when killed by a signal).
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Exit code, stdout and stderr in one text, for a snapshot of what a user sees.
    pub fn transcript(&self) -> String {
        format!(
            "exit: {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }
}

impl fmt::Display for Out {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.transcript())
    }
}
