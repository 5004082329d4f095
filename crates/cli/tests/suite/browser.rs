//! A real headless Chromium for the dashboard's tests: Debian's `chromium` driven by
//! playwright-core (`crates/cli/tests/browser/driver.mjs`, installed with `npm ci --prefix
//! crates/cli/tests/browser`; `.ci/run` installs both). The test sends one JSON command a line
//! and reads one JSON answer a line.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};

/// Where the driver lives.
pub fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// The Chromium binary: `$CHROMIUM`, else Debian's.
pub fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Where screenshots go: `target/dashboard/`.
pub fn shots_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/dashboard");
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Browser {
    /// Start Chromium, or fail saying what to install.
    pub fn start() -> Browser {
        assert!(
            chromium().exists(),
            "{} is missing: `apt-get install -y chromium` (.ci/run does)",
            chromium().display()
        );
        assert!(
            driver_dir().join("node_modules/playwright-core").exists(),
            "playwright-core is missing: `npm ci --prefix {}` (.ci/run does)",
            driver_dir().display()
        );
        let mut child = Command::new("node")
            .arg(driver_dir().join("driver.mjs"))
            .current_dir(driver_dir())
            .env("CHROMIUM", chromium())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs the browser driver");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Browser {
            child,
            stdin,
            stdout,
        }
    }

    /// The driver's process id (Chromium's processes are its descendants).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Run one command; its value, or `Err(message)`.
    pub fn try_call(&mut self, cmd: Value) -> Result<Value, String> {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(
            !line.is_empty(),
            "the browser driver exited (command {cmd})"
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["ok"] == true {
            Ok(v["value"].clone())
        } else {
            Err(v["error"].as_str().unwrap_or("?").to_string())
        }
    }

    /// Run one command; panics with the driver's message when it fails.
    pub fn call(&mut self, cmd: Value) -> Value {
        let what = cmd.to_string();
        self.try_call(cmd)
            .unwrap_or_else(|e| panic!("browser command {what} failed: {e}"))
    }

    pub fn goto(&mut self, url: &str) -> Value {
        self.call(json!({ "op": "goto", "url": url }))
    }

    pub fn wait(&mut self, sel: &str) {
        self.call(json!({ "op": "wait", "sel": sel }));
    }

    pub fn wait_fn(&mut self, js: &str) {
        self.call(json!({ "op": "waitFn", "js": js }));
    }

    pub fn click(&mut self, sel: &str) {
        self.call(json!({ "op": "click", "sel": sel }));
    }

    pub fn fill(&mut self, sel: &str, value: &str) {
        self.call(json!({ "op": "fill", "sel": sel, "value": value }));
    }

    pub fn text(&mut self, sel: &str) -> String {
        self.call(json!({ "op": "text", "sel": sel }))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    pub fn eval(&mut self, js: &str) -> Value {
        self.call(json!({ "op": "eval", "js": js }))
    }

    /// A request from inside the page (same origin, its cookies): `{status, json}`.
    pub fn fetch(&mut self, url: &str, method: &str, headers: Value, body: Option<&str>) -> Value {
        self.call(json!({ "op": "fetch", "url": url, "method": method, "headers": headers, "body": body }))
    }

    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let p = shots_dir().join(name);
        self.call(json!({ "op": "screenshot", "path": p }));
        p
    }

    /// Errors the page logged (console errors, uncaught exceptions, CSP violations) since
    /// the last call.
    pub fn problems(&mut self) -> Vec<String> {
        serde_json::from_value(self.call(json!({ "op": "problems" }))).unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({ "op": "close" }));
        let _ = self.stdin.flush();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
