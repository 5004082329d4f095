//! Adapters: the code that knows one agent CLI. An adapter *describes* a launch (argv, env,
//! files) and *parses* the CLI's event stream; it never runs anything itself.
//!
//! Adding a runtime = one module here and one line in [`adapter_for`].

pub mod claude;
pub mod codex;
pub mod opencode;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fracta_config::{AdapterKind, Project, RuntimeEntry};
use serde_json::Value;

use crate::event::{Event, UsageEvent};
use crate::launch::LaunchSpec;

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
    pub gateway: Option<&'a crate::runner::Gateway>,
}

/// A runtime auth resolver projected into the CLI's own config.
#[derive(Debug, Clone)]
pub struct ApiKeyHelper {
    pub command: String,
    pub ttl_ms: Option<u64>,
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

pub trait Adapter: Send + Sync {
    fn kind(&self) -> AdapterKind;
    /// The CLI's executable name.
    fn binary(&self) -> &'static str;
    /// The npm package that provides it, pinned in the project's package.json.
    fn npm_package(&self) -> &'static str;
    /// Describe a batch run (a new conversation, or a resumed one).
    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError>;
    /// Describe a stream session: one long-lived process taking turns as they come (the first
    /// turn is `ctx.prompt`). `Unsupported` where this runtime's session is not built.
    fn stream_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let _ = ctx;
        Err(AdapterError::Unsupported(format!(
            "stream mode for {} is not available yet (Claude Code sessions are); use --mode batch",
            self.binary()
        )))
    }
    /// The line that hands a stream session its next turn (written to its stdin).
    fn stream_input(&self, prompt: &str) -> String {
        let _ = prompt;
        String::new()
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

pub fn adapter_for(kind: AdapterKind) -> &'static dyn Adapter {
    match kind {
        AdapterKind::Claude => &claude::Claude,
        AdapterKind::Codex => &codex::Codex,
        AdapterKind::Opencode => &opencode::OpenCode,
    }
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
