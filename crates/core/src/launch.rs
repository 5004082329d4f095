//! What an adapter describes and a backend runs: argv, env, files to write, working folder.
//! A local process and (later) a Kubernetes Job are two renderings of one `LaunchSpec`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
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
    /// How the session's server is served when it runs elsewhere (a Pod): its port and
    /// probes. `None` for a launch spoken over stdio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served: Option<Served>,
    /// Env vars whose value is the session's secret (or its digest): never a literal in a
    /// rendered object; a Pod takes them from the agent's Secret.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_env: Vec<SecretEnv>,
    /// Env vars whose value is a whole config document: a Pod takes them from its ConfigMap
    /// (under the key `file`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub config_env: Vec<EnvFile>,
    /// Env vars naming a state file the runtime writes: a Pod points them at `file` in a
    /// writable volume of its own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub state_env: Vec<EnvFile>,
    /// What the session protocol needs besides turns (ACP: the folder, the MCP servers with
    /// the agent's token, the tool rules), handed to the adapter's session. Never serialized:
    /// it may hold the agent's token.
    #[serde(skip)]
    pub session_init: Option<SessionInit>,
}

/// A session's init (see [`LaunchSpec::session_init`]); its `Debug` shows none of it.
#[derive(Clone, Default)]
pub struct SessionInit(pub serde_json::Value);

impl std::fmt::Debug for SessionInit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionInit(..)")
    }
}

/// A session's server as a backend that runs it elsewhere serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Served {
    pub port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
}

/// A health check of a served session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    pub check: Check,
    pub initial_delay_secs: i32,
    pub period_secs: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<i32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Check {
    /// The port accepts a connection.
    Tcp { port: u16 },
    /// A command run inside the container exits 0.
    Exec { command: Vec<String> },
}

/// An env var that carries the session's secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecretEnv {
    pub name: String,
    /// What it is, for a person reading a rendered object.
    pub what: String,
    /// It holds the SHA-256 of the secret, not the secret.
    pub digest: bool,
}

/// An env var and the file (a bare name) that stands for its value elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvFile {
    pub name: String,
    pub file: String,
}

/// Where an agent reaches Fracta's MCP gateway, and the token that identifies it there.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Streamable-HTTP MCP endpoint, e.g. `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The agent's own bearer token (handed over in `FRACTA_AGENT_TOKEN`, never written).
    pub token: String,
}

/// What Fracta generates for a session it reaches over the network.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// The address the session's server binds (`127.0.0.1` here, `0.0.0.0` in a Pod).
    pub host: String,
    pub port: u16,
    /// Per-session password (registered with the redactor).
    pub secret: String,
}

/// A runtime auth resolver projected into the CLI's own config.
#[derive(Debug, Clone)]
pub struct ApiKeyHelper {
    pub command: String,
    pub ttl_ms: Option<u64>,
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

/// A file that can be started: a regular file with an execute bit.
pub(crate) fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
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

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stdin {
    /// Closed: batch runs take no input (Codex waits on an open stdin).
    #[default]
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
