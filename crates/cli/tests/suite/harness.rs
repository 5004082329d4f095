//! End-to-end harness: a git project in a temp folder whose `fracta.yaml` points all three
//! real agent CLIs at an in-process scripted model server, and the real `fracta` binary.

#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use fracta_model_server::{ModelServer, RecordedRequest, Script};
use serde_json::Value;

/// The repository root (where package.json pins the agent CLIs).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Fail with instructions when the pinned CLIs are not installed.
pub fn require_clis() {
    for b in ["claude", "codex", "opencode", "gemini"] {
        let p = repo_root().join("node_modules/.bin").join(b);
        assert!(
            p.exists(),
            "{} is missing: run `npm ci` in {} (scripts/setup.sh does)",
            p.display(),
            repo_root().display()
        );
    }
}

pub struct Project {
    pub dir: tempfile::TempDir,
    pub server: Option<ModelServer>,
    pub rt: tokio::runtime::Runtime,
    pub url: String,
}

/// The three runtimes, pointed at the scripted model server at `url`.
pub fn config(url: &str, extra_runtime_keys: &str) -> String {
    format!(
        r#"agents:
  default_runtime: claude
  agent_runtimes:
    claude:
      adapter: claude
      model: claude-sonnet-4-5
      env:
        ANTHROPIC_BASE_URL: {url}
        ANTHROPIC_API_KEY: sk-ant-test
{extra_runtime_keys}
    codex:
      adapter: codex
      model: gpt-5.5
      env:
        FAKE_OPENAI_KEY: sk-openai-test
      native_config:
        model_provider: fake
        model_providers:
          fake:
            name: Fake
            base_url: {url}/v1
            env_key: FAKE_OPENAI_KEY
            wire_api: responses
            request_max_retries: 0
            stream_max_retries: 0
{extra_runtime_keys}
    opencode:
      adapter: opencode
      model: fake/m
      env:
        OPENCODE_DISABLE_MODELS_FETCH: "1"
        NPM_CONFIG_OFFLINE: "true"
      native_config:
        provider:
          fake:
            npm: "@ai-sdk/anthropic"
            options:
              baseURL: {url}/v1
              apiKey: sk-oc-test
            models:
              m:
                name: m
{extra_runtime_keys}
project:
  default_base_branch: main
  allowed_tools: [Read, Write, Edit, Glob, Grep, "Bash(git *)"]
"#
    )
}

/// The ACP runtimes of `Project::with_acp`, pointed at the model server at `url`.
pub fn acp_runtimes(url: &str, extra: &str) -> String {
    let opencode = serde_json::json!({
        "model": "fake/m",
        "permission": { "task": "deny" },
        // No title request: ACP's `session/new` cannot give OpenCode a title (the docs'
        // advice for an OpenCode ACP runtime, checked by `an_opencode_acp_batch_run_answers`).
        "agent": { "title": { "disable": true } },
        "snapshot": false,
        "provider": { "fake": {
            "npm": "@ai-sdk/anthropic",
            "options": { "baseURL": format!("{url}/v1"), "apiKey": "sk-oc-test" },
            "models": { "m": { "name": "m" } },
        } },
    });
    format!(
        r#"    gemini:
      adapter: gemini
      model: gemini-2.5-pro
      env:
        GOOGLE_GEMINI_BASE_URL: {url}
        GEMINI_API_KEY: gm-test-key
{extra}
    opencode-acp:
      adapter: acp
      command: opencode
      args: [acp]
      env:
        OPENCODE_DISABLE_MODELS_FETCH: "1"
        OPENCODE_DISABLE_AUTOUPDATE: "1"
        NPM_CONFIG_OFFLINE: "true"
        OPENCODE_CONFIG_CONTENT: '{opencode}'
{extra}
"#
    )
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl Project {
    /// A git project with one commit on `main`, and a model server running `script`.
    pub fn new(script: Script) -> Project {
        Self::with_keys(script, "")
    }

    /// A project whose config also has the ACP runtimes: `gemini` (Gemini CLI) and
    /// `opencode-acp` (`opencode acp` through the generic ACP adapter), with `extra` keys on
    /// every runtime entry.
    pub fn with_acp(script: Script, extra: &str) -> Project {
        let p = Self::with_keys(script, extra);
        let acp = acp_runtimes(&p.url, extra);
        let text = config(&p.url, extra).replace("\nproject:\n", &format!("\n{acp}project:\n"));
        std::fs::write(p.path().join("fracta.yaml"), text).unwrap();
        p
    }

    /// Like `new`, with extra YAML keys added to every runtime entry (indented 6 spaces).
    pub fn with_keys(script: Script, extra: &str) -> Project {
        require_clis();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(ModelServer::start(script, "127.0.0.1:0".parse().unwrap()))
            .unwrap();
        let url = server.url();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("home")).unwrap();
        git(root, &["init", "-q", "-b", "main"]);
        std::fs::write(root.join("README.md"), "test project\n").unwrap();
        std::fs::write(root.join(".gitignore"), ".fracta/\nhome/\n").unwrap();
        git(root, &["add", "."]);
        git(
            root,
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-q",
                "-m",
                "init",
            ],
        );
        std::fs::write(root.join("fracta.yaml"), config(&url, extra)).unwrap();
        Project {
            dir,
            server: Some(server),
            rt,
            url,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Give each agent an untracked file from `project.setup` (appended to fracta.yaml, whose
    /// last section must be `project:`), so an agent that itself changes nothing still leaves
    /// its worktree and branch for the test to look at.
    pub fn keep_worktrees(&self) {
        let path = self.path().join("fracta.yaml");
        let cfg = std::fs::read_to_string(&path).unwrap();
        assert!(cfg.contains("\nproject:\n"), "{cfg}");
        std::fs::write(
            path,
            format!("{cfg}  setup:\n    - touch kept-by-the-test\n"),
        )
        .unwrap();
    }

    pub fn server(&self) -> &ModelServer {
        self.server.as_ref().unwrap()
    }

    /// Every model request the server received: the CLI's turns and any side request (such
    /// as a session title) alike.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server().model_requests()
    }

    /// Each model request the server received, as (last user text, path, rule that
    /// answered): what a test counts, and shows when the count is wrong.
    pub fn asked(&self) -> Vec<(Option<String>, String, Option<String>)> {
        self.requests()
            .into_iter()
            .map(|r| (r.last_user_text(), r.path, r.rule))
            .collect()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fracta"));
        c.args(args)
            .current_dir(self.path())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", self.path().join("home"))
            .env("NO_COLOR", "1")
            .env("FRACTA_LOG", "debug")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Start `fracta` in the background.
    pub fn start(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    /// `fracta spawn --json ...`, returning the exit code and the JSON object.
    pub fn spawn_json(&self, args: &[&str]) -> (i32, Value) {
        let mut full = vec!["spawn", "--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "spawn printed no JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), v)
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "fracta {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// The agent's stored record, with what its public view (`show --json`) leaves out: pid,
    /// prompt, runtime_home, meta. Goes through `show` first, so the record is reconciled.
    pub fn agent(&self, id: &str) -> Value {
        let shown = self.json(&["show", id, "--json"]);
        serde_json::to_value(
            self.store()
                .get_agent(shown["id"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap()
    }

    /// The project's state store.
    pub fn store(&self) -> std::sync::Arc<dyn fracta_state::Store> {
        let path = self.path().join(".fracta/state.db");
        fracta_state::open_store(&fracta_state::StateConfig::sqlite(path)).unwrap()
    }

    /// Normalized events of an agent (`fracta logs --json`).
    pub fn events(&self, id: &str) -> Vec<Value> {
        let out = self.run(&["logs", id, "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Wait until `fracta ps --json` shows exactly one agent in `status`; return it.
    pub fn wait_for_status(&self, status: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let agents = self.json(&["ps", "--all", "--json"]);
            if let Some(a) = agents
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["status"] == status)
            {
                return a.clone();
            }
            assert!(
                start.elapsed() < timeout,
                "no agent became {status} within {timeout:?}: {agents:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Wait until agent `id` is `status`.
    pub fn wait_for_agent(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let a = self.agent(id);
            if a["status"] == status {
                return a;
            }
            assert!(
                start.elapsed() < timeout,
                "not {status} within {timeout:?}: {a:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A file on a branch of the project's repository.
    pub fn show_file(&self, branch: &str, path: &str) -> Option<String> {
        let out = Command::new("git")
            .args(["show", &format!("{branch}:{path}")])
            .current_dir(self.path())
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.shutdown());
        }
    }
}

/// Wait for a child with a timeout; kill it if it overstays.
pub fn wait_child(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            panic!("process did not end within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Is a process alive (and not a zombie)?
pub fn pid_alive(pid: i64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("");
            state != "Z" && state != "X"
        })
        .unwrap_or(false)
}

/// A `fracta serve` started for a test: killed when dropped (a failing test leaves no control
/// plane behind); `stop` ends it with SIGTERM as a person would.
pub struct Serve {
    child: Option<Child>,
    pub url: String,
    pub token: String,
}

impl Serve {
    /// Start `fracta serve` in `p` and wait for its discovery file.
    pub fn start(p: &Project) -> Serve {
        Self::start_with(p, &[])
    }

    /// `start`, with extra environment variables for `fracta serve`.
    pub fn start_with(p: &Project, env: &[(&str, &str)]) -> Serve {
        Self::launch(p, &[], env, false)
    }

    /// `start_with`, with extra arguments for `fracta serve` (e.g. `--listen`).
    pub fn start_args(p: &Project, args: &[&str], env: &[(&str, &str)]) -> Serve {
        Self::launch(p, args, env, false)
    }

    /// `start`, in a process group of its own, as a shell starts a foreground job: `interrupt`
    /// then sends Ctrl-C's SIGINT to the whole group, as a terminal does.
    pub fn start_as_job(p: &Project) -> Serve {
        Self::launch(p, &[], &[], true)
    }

    fn launch(p: &Project, args: &[&str], env: &[(&str, &str)], own_group: bool) -> Serve {
        use std::os::unix::process::CommandExt;
        let file = p.path().join(".fracta/serve.json");
        let _ = std::fs::remove_file(&file);
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut cmd = p.command(&full);
        cmd.envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if own_group {
            cmd.process_group(0);
        }
        let child = cmd.spawn().unwrap();
        let mut s = Serve {
            child: Some(child),
            url: String::new(),
            token: String::new(),
        };
        let start = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&file)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
            {
                s.url = v["url"].as_str().unwrap().to_string();
                s.token = v["token"].as_str().unwrap().to_string();
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "fracta serve wrote no discovery file"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Its stderr, as it comes: a thread collects it into the returned buffer.
    pub fn stderr(&mut self) -> std::sync::Arc<std::sync::Mutex<String>> {
        use std::io::BufRead;
        let buf = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let err = self.child.as_mut().unwrap().stderr.take().unwrap();
        let b = std::sync::Arc::clone(&buf);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines() {
                let Ok(line) = line else { break };
                let mut b = b.lock().unwrap();
                b.push_str(&line);
                b.push('\n');
            }
        });
        buf
    }

    /// Ctrl-C at the terminal: SIGINT to its process group (see `start_as_job`), then wait;
    /// returns whether it exited successfully.
    pub fn interrupt(mut self) -> bool {
        let mut c = self.child.take().unwrap();
        nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        )
        .unwrap();
        wait_child(&mut c, Duration::from_secs(30)).success()
    }

    /// SIGKILL, as a crash would.
    pub fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn stop(mut self) -> bool {
        let mut c = self.child.take().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        wait_child(&mut c, Duration::from_secs(30)).success()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
