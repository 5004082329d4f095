//! What an adapter describes and a backend runs: argv, env, files to write, working folder.
//! A local process and (later) a Kubernetes Job are two renderings of one `LaunchSpec`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct LaunchSpec {
    /// The CLI's name (`claude`); the backend resolves it to a path.
    pub program: String,
    pub args: Vec<String>,
    /// The agent's environment on top of the inherited one (see `env` module for precedence).
    pub env: BTreeMap<String, String>,
    /// Inherited variables to drop.
    pub env_remove: Vec<String>,
    pub cwd: PathBuf,
    /// Files the runtime reads, written before launch ("WriteWorkspace").
    pub files: Vec<FileSpec>,
    /// Symlinks to create (`link` → `target`), e.g. a private runtime home pointing at the
    /// user's own login, so credentials are never copied.
    pub links: Vec<LinkSpec>,
    pub stdin: Stdin,
    /// Where a stream session is reached when not over stdin/stdout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Endpoint {
    /// OpenCode's HTTP server (`opencode serve`): basic auth as user `opencode` with the
    /// password the session's env var `password_env` holds.
    OpenCodeHttp { url: String, password_env: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct LinkSpec {
    pub link: PathBuf,
    pub target: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileSpec {
    /// Absolute path.
    pub path: PathBuf,
    pub contents: String,
    /// Part of the workspace (and so kept out of the agent's commits), or private state.
    pub in_workspace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stdin {
    /// Closed: batch runs take no input (Codex waits on an open stdin).
    Null,
    /// Piped, for stream sessions.
    Piped,
}

impl LaunchSpec {
    /// The command line as a person would type it (for logs and `fracta show`).
    pub fn display_command(&self) -> String {
        std::iter::once(self.program.as_str())
            .chain(self.args.iter().map(String::as_str))
            .map(|a| {
                if a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@".contains(c))
                    && !a.is_empty()
                {
                    a.to_string()
                } else {
                    format!("'{}'", a.replace('\'', "'\\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}
