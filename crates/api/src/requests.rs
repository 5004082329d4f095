//! Request bodies, queries and MCP tool arguments.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Arguments of the `spawn` tool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SpawnArgs {
    /// The task name: a task file `.fracta/tasks/NAME.md`, or any name when `prompt` is given.
    pub task: String,
    /// Instructions for the new agent (appended to the task file's body, if there is one).
    #[serde(default)]
    pub prompt: Option<String>,
    /// Which configured runtime runs it (e.g. `claude`, `codex`, `opencode`); default: the
    /// task's, else the configured default.
    #[serde(default)]
    pub runtime: Option<String>,
    /// `heavy`, `medium` or `light`: picks the runtime's model for that tier.
    #[serde(default)]
    pub tier: Option<String>,
    /// A model id; overrides `tier`.
    #[serde(default)]
    pub model: Option<String>,
    /// `batch` (default).
    #[serde(default)]
    pub mode: Option<String>,
    /// Wait for the child to finish and return its result (default: return its id at once).
    #[serde(default)]
    pub wait: Option<bool>,
    /// With `wait`: give up waiting after this many seconds (default 600). The child goes on.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Lower the child's budgets (never above yours).
    #[serde(default)]
    pub max_depth: Option<u32>,
    #[serde(default)]
    pub max_children: Option<u32>,
    #[serde(default)]
    pub wall_clock_secs: Option<u64>,
    /// The branch (or commit) the agent's worktree branches from; default: the calling
    /// agent's branch, else the project's current branch.
    #[serde(default)]
    pub base: Option<String>,
}

/// Body of `POST /v1/agents/{id}/resume`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResumeBody {
    /// The next turn's prompt.
    pub prompt: String,
}

/// Body of `POST /v1/agents/{id}/send`: the next turn of a live stream session.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    /// The turn's prompt.
    pub prompt: String,
    /// Answer once the turn has ended (default true); false: at once, the turn queued.
    #[serde(default)]
    pub wait: Option<bool>,
    /// With `wait`: give up waiting after this many seconds (default 600).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Body of `POST /v1/agents/{id}/steer`: input for the turn in flight (Codex only).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SteerBody {
    /// The input to add to the turn in flight.
    pub prompt: String,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    pub ok: bool,
    /// The control plane's process id.
    pub pid: u32,
    pub version: String,
}

/// Query of `GET /v1/agents`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct ListQuery {
    /// Include ended agents (default: only queued, starting and running ones).
    #[serde(default)]
    pub all: Option<bool>,
    /// Only the agents of this tree (a root agent's id).
    #[serde(default)]
    pub root: Option<String>,
}

/// Query of `GET /v1/agents/{id}/events` and of the event streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct EventsQuery {
    /// Only events after this sequence number (default 0: from the start).
    #[serde(default)]
    pub after: Option<u64>,
    /// At most this many (default 500; not for streams).
    #[serde(default)]
    pub limit: Option<usize>,
}

/// Arguments naming one agent.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentArgs {
    /// The agent id returned by `spawn` (or `list`).
    pub agent_id: String,
}

/// Arguments of `wait`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WaitArgs {
    pub agent_id: String,
    /// Give up after this many seconds (default 600). The agent goes on.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Arguments of `steer`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageArgs {
    pub agent_id: String,
    /// What to say.
    pub prompt: String,
}

/// Arguments of `send`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendArgs {
    pub agent_id: String,
    /// What to say.
    pub prompt: String,
    /// Answer once the turn has ended (default false: at once, with the turn queued).
    #[serde(default)]
    pub wait: Option<bool>,
    /// With `wait`: give up waiting after this many seconds (default 600). The turn goes on.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// Arguments of `list` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {}
