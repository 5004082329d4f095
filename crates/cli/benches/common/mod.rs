//! What the benches share: a git project whose `fracta.yaml` points the three runtimes at
//! the scripted model server, and `fracta` commands run in it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The three runtimes, pointed at the scripted model server (as the test harness does).
pub fn config(url: &str) -> String {
    let instant = instant_cli().display().to_string();
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
    instant:
      adapter: codex
      command: {instant}
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
project:
  default_base_branch: main
  allowed_tools: [Read, Write, Edit, Glob, Grep, "Bash(git *)"]
"#
    )
}

/// The instant stand-in CLI: a script that prints a recorded Codex turn (one answer) and
/// exits, whatever it is asked. Fracta runs it as the `instant` runtime (Codex's adapter), so
/// a spawn of it costs Fracta's own work and next to nothing else. Written once per process.
pub fn instant_cli() -> PathBuf {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("fracta-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let transcript = repo_root().join("crates/core/fixtures/transcripts/codex/text.jsonl");
        let path = dir.join("instant-cli");
        std::fs::write(
            &path,
            format!("#!/bin/sh\nexec cat '{}'\n", transcript.display()),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    })
    .clone()
}

pub fn git(dir: &Path, args: &[&str]) {
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
}

/// The environment every process gets: what a user's shell would pass to `fracta`.
pub fn base_env(home: &Path) -> BTreeMap<String, String> {
    let bin = repo_root().join("node_modules/.bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    BTreeMap::from([
        ("PATH".to_string(), path),
        ("HOME".to_string(), home.display().to_string()),
        ("NO_COLOR".to_string(), "1".to_string()),
    ])
}

/// A git project (`repo/`) and, beside it, the home its processes get (`home/`): outside
/// the repository, as a user's is, so that the agent CLIs' per-user state and Fracta's
/// worktrees (in `~/.local/state`) are not inside the project.
pub struct Project {
    pub dir: tempfile::TempDir,
    repo: PathBuf,
    pub env: BTreeMap<String, String>,
}

impl Project {
    pub fn new(url: &str, leaf: bool) -> Project {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        let root = repo.as_path();
        std::fs::create_dir_all(root).unwrap();
        std::fs::create_dir_all(dir.path().join("home")).unwrap();
        git(root, &["init", "-q", "-b", "main"]);
        std::fs::write(root.join("README.md"), "bench project\n").unwrap();
        std::fs::write(root.join(".gitignore"), ".fracta/\n").unwrap();
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
        let mut cfg = config(url);
        if leaf {
            cfg = cfg.replacen("agents:\n", "agents:\n  budgets:\n    max_depth: 0\n", 1);
        }
        std::fs::write(root.join("fracta.yaml"), cfg).unwrap();
        let env = base_env(&dir.path().join("home"));
        Project { dir, repo, env }
    }

    /// The repository.
    pub fn path(&self) -> &Path {
        &self.repo
    }

    /// The home its processes get.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn fracta(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_fracta"));
        c.args(args)
            .current_dir(self.path())
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null());
        c
    }

    /// An agent's stored record, with what its public view leaves out (meta, pid, prompt).
    pub fn record(&self, id: &str) -> Value {
        let path = self.path().join(".fracta/state.db");
        let store = fracta_state::open_store(&fracta_state::StateConfig::sqlite(path)).unwrap();
        serde_json::to_value(store.get_agent(id).unwrap()).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.fracta(args).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "fracta {args:?} printed no JSON ({e}); exit {:?}\nstdout: {}\nstderr: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}
