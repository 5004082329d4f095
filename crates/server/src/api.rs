//! Boundary types of the control plane: MCP tool arguments and the agent view returned by
//! tools and `--json` output. Plain serde + JSON Schema structs; behaviour lives elsewhere.

use fracta_config::{Budgets, Mode, Tier};
use fracta_core::resolve::SpawnRequest;
use fracta_state::AgentRecord;
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
}

impl SpawnArgs {
    /// The runner's request and the budgets asked for, or a message naming what is valid.
    pub fn to_request(&self) -> Result<(SpawnRequest, Budgets), String> {
        let tier = match self.tier.as_deref() {
            None => None,
            Some("heavy") => Some(Tier::Heavy),
            Some("medium") => Some(Tier::Medium),
            Some("light") => Some(Tier::Light),
            Some(other) => {
                return Err(format!(
                    "unknown tier `{other}`; valid tiers: heavy, medium, light"
                ));
            }
        };
        let mode = match self.mode.as_deref() {
            None => None,
            Some("batch") => Some(Mode::Batch),
            Some("stream") => Some(Mode::Stream),
            Some(other) => {
                return Err(format!(
                    "unknown mode `{other}`; valid modes: batch, stream"
                ));
            }
        };
        let req = SpawnRequest {
            task: self.task.clone(),
            prompt: self.prompt.clone(),
            runtime: self.runtime.clone(),
            tier,
            model: self.model.clone(),
            mode,
            parent_id: None,
        };
        let asked = Budgets {
            max_depth: self.max_depth,
            max_children: self.max_children,
            max_running: None,
            wall_clock_secs: self.wall_clock_secs,
        };
        Ok((req, asked))
    }
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

/// An error answer of the HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ApiErrorBody {
    /// What went wrong, and what would be valid.
    pub error: String,
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

/// Arguments of `send` and `steer`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageArgs {
    pub agent_id: String,
    /// What to say.
    pub prompt: String,
}

/// Arguments of `list` (none).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListArgs {}

/// An agent as tools and `--json` show it. Never carries a token or a secret.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentView {
    pub id: String,
    pub parent_id: Option<String>,
    pub depth: u32,
    pub task: String,
    pub runtime: String,
    pub adapter: String,
    pub mode: String,
    pub model: Option<String>,
    /// queued, starting, running, succeeded, failed, stopped or lost.
    pub status: String,
    pub resume_token: Option<String>,
    pub workspace: Option<String>,
    pub branch: Option<String>,
    /// The agent's final message.
    pub result: Option<String>,
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: Option<f64>,
}

impl From<&AgentRecord> for AgentView {
    fn from(a: &AgentRecord) -> Self {
        AgentView {
            id: a.id.clone(),
            parent_id: a.parent_id.clone(),
            depth: a.depth,
            task: a.task.clone(),
            runtime: a.runtime.clone(),
            adapter: a.adapter.clone(),
            mode: a.mode.as_str().to_string(),
            model: a.model.clone(),
            status: a.status.as_str().to_string(),
            resume_token: a.resume_token.clone(),
            workspace: a.workspace.clone(),
            branch: a.branch.clone(),
            result: a.result.clone(),
            error: a.error.clone(),
            exit_code: a.exit_code,
            input_tokens: a.usage.input_tokens,
            output_tokens: a.usage.output_tokens,
            cached_tokens: a.usage.cached_tokens,
            cost_usd: a.cost_usd,
        }
    }
}
