//! Plain record types stored by the state store.
//!
//! These are boundary types (they are what `--json` output shows), so field
//! names are stable and snake_case.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::StoreError;

/// Generate a fresh agent id (a ULID string, time-sortable).
pub fn new_id() -> String {
    ulid::Ulid::generate().to_string()
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

/// Lifecycle status of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Recorded, not yet launched.
    Queued,
    /// Being launched (workspace, config files, process start).
    Starting,
    /// The runtime process is running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Finished with an error.
    Failed,
    /// Stopped on request.
    Stopped,
    /// The process vanished while recorded as running.
    Lost,
}

impl AgentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [AgentStatus; 7] = [
        AgentStatus::Queued,
        AgentStatus::Starting,
        AgentStatus::Running,
        AgentStatus::Succeeded,
        AgentStatus::Failed,
        AgentStatus::Stopped,
        AgentStatus::Lost,
    ];

    /// Statuses that are not terminal.
    pub const ACTIVE: [AgentStatus; 3] = [
        AgentStatus::Queued,
        AgentStatus::Starting,
        AgentStatus::Running,
    ];

    /// Whether the agent is finished (no further transitions expected,
    /// except a resume that starts it again).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AgentStatus::Succeeded | AgentStatus::Failed | AgentStatus::Stopped | AgentStatus::Lost
        )
    }

    /// The stored / serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Queued => "queued",
            AgentStatus::Starting => "starting",
            AgentStatus::Running => "running",
            AgentStatus::Succeeded => "succeeded",
            AgentStatus::Failed => "failed",
            AgentStatus::Stopped => "stopped",
            AgentStatus::Lost => "lost",
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| StoreError::InvalidValue {
                field: "status",
                value: s.to_owned(),
            })
    }
}

/// How an agent runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// One prompt, run to completion.
    Batch,
    /// Long-lived, steerable session.
    Stream,
}

impl Mode {
    /// The stored / serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::Stream => "stream",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "batch" => Ok(Mode::Batch),
            "stream" => Ok(Mode::Stream),
            other => Err(StoreError::InvalidValue {
                field: "mode",
                value: other.to_owned(),
            }),
        }
    }
}

/// Token usage totals.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
}

impl Usage {
    /// Component-wise saturating sum.
    pub fn saturating_add(self, other: Usage) -> Usage {
        Usage {
            input_tokens: self.input_tokens.saturating_add(other.input_tokens),
            output_tokens: self.output_tokens.saturating_add(other.output_tokens),
            cached_tokens: self.cached_tokens.saturating_add(other.cached_tokens),
        }
    }
}

/// One agent (a session): one run of one runtime on one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentRecord {
    pub id: String,
    pub parent_id: Option<String>,
    /// Own id for root agents.
    pub root_id: String,
    pub depth: u32,
    pub task: String,
    /// Configured runtime name.
    pub runtime: String,
    /// `claude`, `codex`, `opencode`, `gemini` or `acp`.
    pub adapter: String,
    pub mode: Mode,
    pub model: Option<String>,
    pub status: AgentStatus,
    /// The instructions given to the agent.
    pub prompt: String,
    pub resume_token: Option<String>,
    pub workspace: Option<String>,
    pub branch: Option<String>,
    /// Per-agent runtime config dir (e.g. `CODEX_HOME`).
    pub runtime_home: Option<String>,
    pub pid: Option<i64>,
    /// Identity token of the process (so a reused PID is not mistaken for ours).
    pub process_start: Option<String>,
    pub host: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub error: Option<String>,
    pub result: Option<String>,
    #[serde(default)]
    pub usage: Usage,
    pub cost_usd: Option<f64>,
    #[schemars(with = "String")]
    pub created_at: Timestamp,
    #[schemars(with = "Option<String>")]
    pub started_at: Option<Timestamp>,
    #[schemars(with = "Option<String>")]
    pub ended_at: Option<Timestamp>,
    #[schemars(with = "String")]
    pub updated_at: Timestamp,
    #[serde(default)]
    pub meta: AgentMeta,
}

/// What Fracta keeps about an agent beyond its columns, typed. Stored as one JSON column
/// whose every field is optional, so records written by earlier versions (an untyped bag
/// with these same keys) read as they are: no migration is needed, and keys this version
/// does not know are kept in `extra` and written back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AgentMeta {
    /// The tier asked for (`heavy`, `medium`, `light`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The branch or commit its worktree branched from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// Turns run so far (a resume or a session's next turn adds one).
    #[serde(default)]
    pub turns: u32,
    /// The agent's own budgets (its parent's, narrowed by what was asked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<AgentBudgets>,
    /// The Fracta process that supervises it (reconcile judges the agent by it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supervisor: Option<ProcessRef>,
    /// The command line it was launched with (redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// The tail of its CLI's error output (redacted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_tail: Option<String>,
    /// The commit Fracta made of what it left on its branch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// For a session: whether its last turn succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_turn_ok: Option<bool>,
    /// It ended having changed nothing (no commit beyond its base, nothing uncommitted):
    /// the branch it had, removed with its worktree then (a resume makes them again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unchanged_branch: Option<String>,
    /// Where it runs on Kubernetes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesRef>,
    /// Keys this version does not know, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

/// An agent's budgets as recorded (`None`: the config's default).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct AgentBudgets {
    #[serde(default)]
    pub max_depth: Option<u32>,
    #[serde(default)]
    pub max_children: Option<u32>,
    #[serde(default)]
    pub max_running: Option<u32>,
    #[serde(default)]
    pub wall_clock_secs: Option<u64>,
}

/// A process, by pid and the identity that tells it from a later process with the same pid.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ProcessRef {
    pub pid: u32,
    #[serde(default)]
    pub identity: Option<String>,
}

/// An agent's objects on Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KubernetesRef {
    pub namespace: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
}

impl AgentRecord {
    /// A new queued root agent with a fresh id and `created_at = now`.
    pub fn new(
        task: impl Into<String>,
        runtime: impl Into<String>,
        adapter: impl Into<String>,
        mode: Mode,
        prompt: impl Into<String>,
    ) -> Self {
        let id = new_id();
        let now = Timestamp::now();
        AgentRecord {
            root_id: id.clone(),
            id,
            parent_id: None,
            depth: 0,
            task: task.into(),
            runtime: runtime.into(),
            adapter: adapter.into(),
            mode,
            model: None,
            status: AgentStatus::Queued,
            prompt: prompt.into(),
            resume_token: None,
            workspace: None,
            branch: None,
            runtime_home: None,
            pid: None,
            process_start: None,
            host: None,
            exit_code: None,
            signal: None,
            error: None,
            result: None,
            usage: Usage::default(),
            cost_usd: None,
            created_at: now,
            started_at: None,
            ended_at: None,
            updated_at: now,
            meta: AgentMeta::default(),
        }
    }

    /// Make this agent a child of `parent` (sets `parent_id`, `root_id`, `depth`).
    pub fn with_parent(mut self, parent: &AgentRecord) -> Self {
        self.parent_id = Some(parent.id.clone());
        self.root_id = parent.root_id.clone();
        self.depth = parent.depth.saturating_add(1);
        self
    }

    /// Whether this is a root agent (no parent).
    pub fn is_root(&self) -> bool {
        self.parent_id.is_none()
    }
}

/// A named task definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecord {
    pub name: String,
    pub description: Option<String>,
    /// Path of the task file, or `"inline"`.
    pub source: String,
    /// Defaults (runtime / tier / model / mode) as JSON.
    #[serde(default = "empty_object")]
    pub defaults: Value,
    pub instructions: String,
    pub updated_at: Timestamp,
}

/// An event to append. The store assigns `seq`; `at` defaults to now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewEvent {
    pub kind: String,
    pub payload: Value,
    /// The raw runtime line, kept beside the normalized payload.
    pub raw: Option<String>,
    /// Whether the raw line was understood (false: payload is a fallback).
    pub parsed: bool,
    pub at: Option<Timestamp>,
}

impl NewEvent {
    /// A parsed event with the given kind and payload, no raw line, `at = now`.
    pub fn new(kind: impl Into<String>, payload: Value) -> Self {
        NewEvent {
            kind: kind.into(),
            payload,
            raw: None,
            parsed: true,
            at: None,
        }
    }

    /// Attach the raw runtime line.
    pub fn with_raw(mut self, raw: impl Into<String>) -> Self {
        self.raw = Some(raw.into());
        self
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct EventRecord {
    pub agent_id: String,
    /// Per-agent sequence number: 1, 2, 3, ... without gaps.
    pub seq: u64,
    #[schemars(with = "String")]
    pub at: Timestamp,
    pub kind: String,
    pub payload: Value,
    pub raw: Option<String>,
    pub parsed: bool,
}

/// Usage of one turn of an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRecord {
    pub agent_id: String,
    pub turn: u32,
    pub model: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub cost_usd: Option<f64>,
    pub at: Timestamp,
}

/// Filter for listing agents. The default lists everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Only these statuses (empty: any).
    pub statuses: Vec<AgentStatus>,
    /// Only direct children of this agent (full id).
    pub parent_id: Option<String>,
    /// Only agents in this tree (full root id; includes the root itself).
    pub root_id: Option<String>,
    /// Only root agents (no parent).
    pub roots_only: bool,
    /// Only agents on this task.
    pub task: Option<String>,
    /// At most this many records.
    pub limit: Option<usize>,
}

/// What [`crate::Store::transition_with_events`] writes besides the events.
#[derive(Debug, Clone, Copy)]
pub struct TransitionWrite<'a> {
    /// A turn's usage, recorded first (its totals added to the agent's).
    pub usage: Option<&'a UsageRecord>,
    /// The statuses the agent may move from, and the one it moves to, with `patch`.
    pub from: &'a [AgentStatus],
    pub to: AgentStatus,
    pub patch: &'a AgentPatch,
    /// Applied instead when the agent is no longer in `from` (it keeps its status); `None`
    /// leaves it as it is.
    pub otherwise: Option<&'a AgentPatch>,
}

/// A partial update of an agent. `None` leaves a field as it is; for
/// nullable fields `Some(None)` clears it. `id`, `parent_id`, `root_id`,
/// `depth` and `created_at` are immutable; `updated_at` is always set to now.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentPatch {
    pub status: Option<AgentStatus>,
    pub task: Option<String>,
    pub runtime: Option<String>,
    pub adapter: Option<String>,
    pub mode: Option<Mode>,
    pub model: Option<Option<String>>,
    pub prompt: Option<String>,
    pub resume_token: Option<Option<String>>,
    pub workspace: Option<Option<String>>,
    pub branch: Option<Option<String>>,
    pub runtime_home: Option<Option<String>>,
    pub pid: Option<Option<i64>>,
    pub process_start: Option<Option<String>>,
    pub host: Option<Option<String>>,
    pub exit_code: Option<Option<i32>>,
    pub signal: Option<Option<i32>>,
    pub error: Option<Option<String>>,
    pub result: Option<Option<String>>,
    /// Replace the usage totals.
    pub usage: Option<Usage>,
    pub cost_usd: Option<Option<f64>>,
    pub started_at: Option<Option<Timestamp>>,
    pub ended_at: Option<Option<Timestamp>>,
    /// Replace `meta` entirely.
    pub meta: Option<AgentMeta>,
}

impl AgentPatch {
    /// Apply the patch to a record (does not touch `updated_at`).
    pub fn apply(&self, a: &mut AgentRecord) {
        fn set<T: Clone>(dst: &mut T, src: &Option<T>) {
            if let Some(v) = src {
                *dst = v.clone();
            }
        }
        set(&mut a.status, &self.status);
        set(&mut a.task, &self.task);
        set(&mut a.runtime, &self.runtime);
        set(&mut a.adapter, &self.adapter);
        set(&mut a.mode, &self.mode);
        set(&mut a.model, &self.model);
        set(&mut a.prompt, &self.prompt);
        set(&mut a.resume_token, &self.resume_token);
        set(&mut a.workspace, &self.workspace);
        set(&mut a.branch, &self.branch);
        set(&mut a.runtime_home, &self.runtime_home);
        set(&mut a.pid, &self.pid);
        set(&mut a.process_start, &self.process_start);
        set(&mut a.host, &self.host);
        set(&mut a.exit_code, &self.exit_code);
        set(&mut a.signal, &self.signal);
        set(&mut a.error, &self.error);
        set(&mut a.result, &self.result);
        set(&mut a.usage, &self.usage);
        set(&mut a.cost_usd, &self.cost_usd);
        set(&mut a.started_at, &self.started_at);
        set(&mut a.ended_at, &self.ended_at);
        set(&mut a.meta, &self.meta);
    }
}
