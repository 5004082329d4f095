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
    /// Codex's app-server over WebSocket (`--listen ws://IP:PORT`): JSON-RPC, one message per
    /// text frame, the upgrade authenticated with `Authorization: Bearer TOKEN`. The process
    /// knows only the token's SHA-256 (`--ws-token-sha256 $(digest_env)`); the token itself
    /// stays with Fracta.
    CodexWs { url: String, digest_env: String },
}

/// Expand `$(NAME)` in `arg` from `env`, as Kubernetes expands a container's command and
/// args: a name `env` lacks is left as written, and `$$` stands for a literal `$`.
pub fn expand_env_refs(arg: &str, env: &std::collections::BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(arg.len());
    let mut rest = arg;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
            && let Some(value) = env.get(&inner[..end])
        {
            out.push_str(value);
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
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

#[cfg(test)]
mod expand_tests {
    #![allow(clippy::unwrap_used)]

    use super::expand_env_refs;
    use std::collections::BTreeMap;

    #[test]
    fn env_refs_expand_as_kubernetes_does() {
        let env = BTreeMap::from([("A".to_string(), "1".to_string())]);
        assert_eq!(expand_env_refs("--x=$(A)", &env), "--x=1");
        assert_eq!(expand_env_refs("$(A)$(A)", &env), "11");
        // Unknown names and escapes stay as written / become a literal `$`.
        assert_eq!(expand_env_refs("$(B)", &env), "$(B)");
        assert_eq!(expand_env_refs("$$(A)", &env), "$(A)");
        assert_eq!(expand_env_refs("a$b$", &env), "a$b$");
        assert_eq!(expand_env_refs("$(A", &env), "$(A");
    }
}
