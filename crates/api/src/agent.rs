//! The one shape of an agent.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The value of [`AgentView::schema`]: the name and version of this shape. A change that
/// removes or retypes a field gets a new version; added fields keep it.
pub const AGENT_SCHEMA: &str = "fracta.agent.v1";

/// An agent, the same object everywhere: `fracta ps|show|spawn|resume|stop|send|steer
/// --json`, the HTTP API (`GET /v1/agents`, `GET /v1/agents/{id}` and every call that answers
/// an agent) and the MCP tools.
///
/// - `schema` is always `"fracta.agent.v1"` (see [`AGENT_SCHEMA`]).
/// - Every field is always present; an empty one is `null` (e.g. `parent_id` of a root).
/// - Money is a decimal string in US dollars with exactly 6 decimals (`"cost_usd":
///   "0.000300"`), never a float; `null` when the cost is unknown.
/// - Timestamps are RFC 3339 strings in UTC.
/// - It never carries a credential: `resume_token` is the runtime's own session id, which
///   `fracta resume` continues, not a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::every_field_required)]
pub struct AgentView {
    /// Always `fracta.agent.v1`.
    #[schemars(extend("const" = "fracta.agent.v1"))]
    pub schema: String,
    pub id: String,
    /// The agent that spawned this one; null for a root agent.
    pub parent_id: Option<String>,
    /// The root of this agent's tree (its own id for a root agent).
    pub root_id: String,
    /// 0 for a root agent, its parent's depth + 1 otherwise.
    pub depth: u32,
    pub task: String,
    /// The configured runtime's name.
    pub runtime: String,
    /// `claude`, `codex`, `opencode`, `gemini` or `acp`.
    pub adapter: String,
    pub mode: AgentMode,
    pub model: Option<String>,
    pub status: AgentStatus,
    /// The runtime's session id, to continue the conversation (not a credential).
    pub resume_token: Option<String>,
    /// Where the agent works.
    pub workspace: Option<String>,
    /// The git branch of its workspace.
    pub branch: Option<String>,
    /// It ended having changed nothing (no commit beyond its base, nothing uncommitted), so
    /// its worktree and branch were removed then; `fracta resume` makes them again.
    pub changed_nothing: bool,
    /// The agent's final message.
    pub result: Option<String>,
    /// Why it failed, stopped or was lost.
    pub error: Option<String>,
    /// The runtime process's exit code.
    pub exit_code: Option<i32>,
    /// The signal that ended the runtime process.
    pub signal: Option<i32>,
    pub usage: TokenUsage,
    /// US dollars, a decimal string with exactly 6 decimals (`"0.000300"`); null when unknown.
    pub cost_usd: Option<String>,
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[schemars(with = "Option<String>")]
    pub started_at: Option<Timestamp>,
    #[schemars(with = "Option<String>")]
    pub ended_at: Option<Timestamp>,
    /// The last change of the record.
    #[schemars(with = "String")]
    pub updated_at: Timestamp,
}

/// Token totals of an agent, over all its turns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
}

/// Where an agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Recorded, not yet launched.
    Queued,
    /// Being launched.
    Starting,
    /// Its runtime is running.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended with an error.
    Failed,
    /// Stopped on request.
    Stopped,
    /// Its process vanished while recorded as running.
    Lost,
}

/// How an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentMode {
    /// One prompt, run to completion.
    Batch,
    /// A long-lived session that takes turns.
    Stream,
}
