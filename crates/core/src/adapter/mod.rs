//! Adapters: the code that knows one agent CLI. An adapter *describes* a launch (argv, env,
//! files) and *parses* the CLI's event stream; it never runs anything itself.
//!
//! Adding a runtime = one module here and one line in [`adapter_for`].

pub mod acp;
pub mod claude;
pub mod codex;
pub mod codex_app;
pub mod gemini;
pub mod opencode;
pub mod shim;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fracta_config::{AdapterKind, Project, RuntimeEntry};
use serde_json::Value;

use crate::event::{Event, UsageEvent};
use crate::launch::LaunchSpec;
pub use crate::launch::{ApiKeyHelper, Gateway, SessionKeys};

/// Everything an adapter needs to describe one batch launch.
pub struct LaunchContext<'a> {
    pub agent_id: &'a str,
    pub prompt: &'a str,
    pub model: Option<&'a str>,
    /// Continue this conversation (Claude session id, Codex thread id, OpenCode session id).
    pub resume_token: Option<&'a str>,
    pub workspace: &'a Path,
    /// Private per-agent folder for the runtime's own state (e.g. `CODEX_HOME`).
    pub runtime_home: &'a Path,
    /// Folder shared by every agent of this runtime entry in this project
    /// (`.fracta/runtimes/<name>`): runtime state worth keeping warm between agents, such as
    /// Codex's home, whose databases cost a fresh home a few hundred milliseconds to create.
    pub runtime_state: &'a Path,
    pub runtime: &'a RuntimeEntry,
    pub project: &'a Project,
    /// The agent's resolved env (profile + runtime + bindings), for adapters that must
    /// reference a variable by name in their config.
    pub env: &'a BTreeMap<String, String>,
    /// Claude's `apiKeyHelper` projection, when the runtime is bound that way.
    pub api_key_helper: Option<&'a ApiKeyHelper>,
    /// Fracta's MCP gateway, registered in the runtime's config as server `fracta`; the token
    /// reaches the CLI only as the env var `FRACTA_AGENT_TOKEN`.
    pub gateway: Option<&'a crate::launch::Gateway>,
    /// A stream session served over the network: its port and per-session password.
    pub session: Option<&'a SessionKeys>,
}

/// A new session's title, for a runtime that would otherwise ask the model for one
/// (OpenCode): the agent's id and the prompt's first line, cut at 50 characters as OpenCode
/// cuts a prompt it takes for a title.
pub fn session_title(agent_id: &str, prompt: &str) -> String {
    let line = prompt.lines().map(str::trim).find(|l| !l.is_empty());
    let Some(line) = line else {
        return agent_id.to_string();
    };
    let mut head: String = line.chars().take(50).collect();
    if head.len() < line.len() {
        head.push_str("...");
    }
    format!("{agent_id}: {head}")
}

/// What an adapter learned from the event stream by the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub resume_token: Option<String>,
    pub model: Option<String>,
    /// The agent's final message.
    pub result: Option<String>,
    pub usage: UsageEvent,
    pub cost_usd: Option<f64>,
    /// The runtime's own error report, if it gave one.
    pub error: Option<String>,
    /// Whether the runtime itself said the run succeeded (`None`: it did not say).
    pub success: Option<bool>,
}

/// One parsed line: the events it yields, and whether the parser understood it.
pub struct Parsed {
    pub events: Vec<Event>,
    pub understood: bool,
}

impl Parsed {
    pub fn known(events: Vec<Event>) -> Parsed {
        Parsed {
            events,
            understood: true,
        }
    }

    pub fn unknown(reason: impl Into<String>) -> Parsed {
        Parsed {
            events: vec![Event::Unknown(crate::event::UnknownEvent {
                reason: reason.into(),
            })],
            understood: false,
        }
    }
}

/// Turns a CLI's stdout lines into normalized events. Never fails: a line it cannot read is
/// returned as `Event::Unknown`, so a CLI upgrade cannot break a run.
pub trait EventParser: Send {
    fn parse_line(&mut self, line: &str) -> Parsed;
    fn outcome(&self) -> &Outcome;
    /// In a stream session: whether the line just parsed ended a turn (then cleared).
    fn take_turn_end(&mut self) -> bool {
        false
    }
}

/// A live session's protocol: turns in, events out. Each method returns the messages to hand
/// the session (lines on its stdin, or requests for its transport); `parse_line` may queue
/// answers (`take_output`), e.g. Codex's `turn/start` once its thread exists.
pub trait StreamSession: EventParser {
    /// Start the session with its first turn.
    fn open(&mut self, prompt: &str) -> Vec<String>;
    /// The next turn.
    fn send(&mut self, prompt: &str) -> Vec<String>;
    /// Add input to the turn in flight (Codex's `turn/steer`).
    fn steer(&mut self, prompt: &str) -> Result<Vec<String>, String> {
        let _ = prompt;
        Err(STEER_UNSUPPORTED.into())
    }
    /// Abort the turn in flight without ending the session; empty when the runtime has no
    /// such request (then the process is signalled).
    fn interrupt(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Messages queued by `parse_line`.
    fn take_output(&mut self) -> Vec<String> {
        Vec::new()
    }
}

/// What a session without `turn/steer` answers a steer.
pub const STEER_UNSUPPORTED: &str = "this runtime cannot take input into a turn in flight (turn/steer); send it as the next turn instead";

/// A batch run's parser, seen as a session that takes no input.
pub struct BatchParser(pub Box<dyn EventParser>);

impl EventParser for BatchParser {
    fn parse_line(&mut self, line: &str) -> Parsed {
        self.0.parse_line(line)
    }
    fn outcome(&self) -> &Outcome {
        self.0.outcome()
    }
}

impl StreamSession for BatchParser {
    fn open(&mut self, _: &str) -> Vec<String> {
        Vec::new()
    }
    fn send(&mut self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// The step limit per run when a step-counting runtime sets no `max_steps` (the seed's 20).
pub const DEFAULT_MAX_STEPS: u32 = 20;

/// What a runtime supports, as its adapter says; the engine, the control plane and the CLI
/// ask this instead of checking a runtime's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Takes input into the turn in flight (`turn/steer`).
    pub steer: bool,
    /// Its stream session can run in a Pod, reached over the network.
    pub stream_on_kubernetes: bool,
    /// Counts steps and stops a run past `max_steps`: the limit when the runtime sets none.
    pub default_max_steps: Option<u32>,
    /// Its local stream session is served over the network (its own loopback port and
    /// per-session secret) rather than over stdin/stdout.
    pub networked_session: bool,
    /// The port its session's server listens on in a Pod (the seed's), if it has one.
    pub pod_port: Option<u16>,
    /// Its batch run is a session spoken over stdio too (ACP): one turn, then its stdin is
    /// closed. Such a runtime cannot run in a Pod (no stdio to speak over there).
    pub stdio_session: bool,
}

impl Capabilities {
    /// The step limit of a runtime entry, if its adapter counts steps.
    pub fn max_steps(&self, rt: &RuntimeEntry) -> Option<u32> {
        self.default_max_steps.map(|d| rt.max_steps.unwrap_or(d))
    }
}

pub trait Adapter: Send + Sync {
    fn kind(&self) -> AdapterKind;
    /// What this runtime supports.
    fn capabilities(&self) -> Capabilities;
    /// Where a session served at `host:port` is reached (a Pod's address), for adapters
    /// whose sessions are served over the network.
    fn session_endpoint(&self, host: &str, port: u16) -> Option<crate::launch::Endpoint> {
        let _ = (host, port);
        None
    }
    /// A line of the CLI's stderr that is known noise under Fracta (a warning every run
    /// prints), kept out of an error's stderr tail so it does not hide the real cause.
    fn stderr_noise(&self, line: &str) -> bool {
        let _ = line;
        false
    }
    /// Env vars that must not reach this CLI, each with why.
    fn forbidden_env(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }
    /// The CLI's executable name.
    fn binary(&self) -> &'static str;
    /// What to start in place of `program` (the CLI as found) when it is a shim in front of
    /// a native binary: that binary, with the env the shim would give it. `None`: `program`.
    fn native_start(&self, program: &Path) -> Option<shim::NativeStart> {
        let _ = program;
        None
    }
    /// The npm package that provides it, pinned in the project's package.json.
    fn npm_package(&self) -> &'static str;
    /// The CLI version Fracta was tested with: the exact pin of `npm_package` in the
    /// repository's package.json (a test keeps the two equal). `fracta doctor` compares an
    /// installed CLI's `--version` with it. Empty for an adapter that drives whatever CLI its
    /// runtime names (`acp`).
    fn tested_version(&self) -> &'static str;
    /// Describe a batch run (a new conversation, or a resumed one).
    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError>;
    /// Describe a stream session: one long-lived process taking turns as they come (the first
    /// turn is `ctx.prompt`). `Unsupported` where this runtime has no session.
    fn stream_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let _ = ctx;
        Err(AdapterError::Unsupported(format!(
            "stream mode for {} is not available; use --mode batch",
            self.binary()
        )))
    }
    /// The protocol side of a stream session: what to write to start it and to hand it turns,
    /// and the parser of what it says. `resume_token` continues an earlier conversation.
    fn stream_session(&self, resume_token: Option<&str>) -> Box<dyn StreamSession> {
        let _ = resume_token;
        Box::new(BatchParser(self.parser()))
    }
    /// The session of a launch whose spec carries a `session_init` (what the protocol needs
    /// besides turns: ACP's folder, MCP servers, tool rules).
    fn session_for(
        &self,
        resume_token: Option<&str>,
        init: Option<&Value>,
    ) -> Box<dyn StreamSession> {
        let _ = init;
        self.stream_session(resume_token)
    }
    fn parser(&self) -> Box<dyn EventParser>;
}

#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("invalid native_config for runtime {runtime}: {message}")]
    NativeConfig { runtime: String, message: String },
    #[error("{0}")]
    Other(String),
    #[error("{0}")]
    Unsupported(String),
}

/// The adapter of a recorded agent (`AgentRecord::adapter`), by its name.
pub fn adapter_named(name: &str) -> Option<&'static dyn Adapter> {
    AdapterKind::ALL
        .into_iter()
        .find(|k| k.as_str() == name)
        .map(adapter_for)
}

/// Every runtime Fracta knows: one registration line each.
pub fn adapter_for(kind: AdapterKind) -> &'static dyn Adapter {
    match kind {
        AdapterKind::Claude => &claude::Claude,
        AdapterKind::Codex => &codex::Codex,
        AdapterKind::Opencode => &opencode::OpenCode,
        AdapterKind::Gemini => &gemini::Gemini,
        AdapterKind::Acp => &acp::Acp,
    }
}

/// The version a CLI's `--version` printed: its first `X.Y.Z` token (`2.1.197 (Claude Code)`,
/// `codex-cli 0.169.0`, `1.18.33`), pre-release or build suffix included.
pub fn parse_version(output: &str) -> Option<&str> {
    output
        .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == ',')
        .map(|t| t.trim_start_matches('v'))
        .find(|t| {
            let core = t.split(['-', '+']).next().unwrap_or("");
            let parts: Vec<&str> = core.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// Merge `over` into `base`: objects merge key by key, arrays gain the items they lack,
/// anything else is replaced. Used for a runtime's `native_config`.
pub fn merge_json(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                match b.get_mut(k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (Value::Array(b), Value::Array(o)) => {
            for v in o {
                if !b.contains(v) {
                    b.push(v.clone());
                }
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

/// Read a JSON number as u64 from a path of keys.
pub(crate) fn u64_at(v: &Value, path: &[&str]) -> u64 {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(n) => cur = n,
            None => return 0,
        }
    }
    cur.as_u64().unwrap_or(0)
}

pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// A path inside the workspace.
pub(crate) fn ws(ctx: &LaunchContext<'_>, rel: &str) -> PathBuf {
    ctx.workspace.join(rel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `tested_version` is what package.json and package-lock.json pin: the two cannot drift.
    #[test]
    fn tested_versions_are_the_package_json_pins() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let read = |f: &str| -> Value {
            serde_json::from_str(&std::fs::read_to_string(root.join(f)).unwrap()).unwrap()
        };
        let pkg = read("package.json");
        let lock = read("package-lock.json");
        for kind in AdapterKind::ALL {
            let a = adapter_for(kind);
            if a.tested_version().is_empty() {
                continue; // `acp`: the runtime names its own CLI
            }
            let pin = pkg["dependencies"][a.npm_package()].as_str();
            assert_eq!(
                pin,
                Some(a.tested_version()),
                "package.json pins {} at {pin:?}; the {} adapter's tested_version says {}",
                a.npm_package(),
                kind.as_str(),
                a.tested_version()
            );
            let locked =
                lock["packages"][format!("node_modules/{}", a.npm_package())]["version"].as_str();
            assert_eq!(locked, Some(a.tested_version()), "package-lock.json");
        }
    }

    #[test]
    fn versions_are_read_from_each_clis_output() {
        assert_eq!(parse_version("2.1.197 (Claude Code)\n"), Some("2.1.197"));
        assert_eq!(parse_version("codex-cli 0.169.0\n"), Some("0.169.0"));
        assert_eq!(parse_version("1.18.33"), Some("1.18.33"));
        assert_eq!(parse_version("v1.2.3-beta.1"), Some("1.2.3-beta.1"));
        assert_eq!(parse_version("no version here 1.2"), None);
    }

    #[test]
    fn merge_unions_arrays_and_overrides_scalars() {
        let mut a = json!({"permissions": {"allow": ["Read"]}, "model": "x"});
        merge_json(
            &mut a,
            &json!({"permissions": {"allow": ["Read", "Write"]}, "model": "y", "env": {"A": "1"}}),
        );
        assert_eq!(
            a,
            json!({"permissions": {"allow": ["Read", "Write"]}, "model": "y", "env": {"A": "1"}})
        );
    }
}

#[cfg(test)]
#[path = "tests.rs"]
mod fixture_tests;
