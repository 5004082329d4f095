//! Fracta's state store: every agent, task, event and usage record.
//!
//! Callers use the object-safe [`Store`] trait (obtained from [`open_store`]),
//! so further drivers (e.g. Postgres) can be added without touching them.
//!
//! All methods are synchronous, and safe to call straight from async code: the driver runs
//! its blocking work through [`blocking`], which on a multi-threaded tokio runtime hands the
//! worker's other tasks to another thread (`tokio::task::block_in_place`) for the duration,
//! and on a current-thread runtime (the short-lived CLI commands) or outside any runtime just
//! runs it. So a write that waits for another process's write lock stalls only its caller.
//!
//! The SQLite driver ([`SqliteStore`]) is safe to share between several
//! `fracta` processes: WAL mode, a busy timeout, and every write in a
//! `BEGIN IMMEDIATE` transaction on its one write connection. Reads use that connection
//! when it is free and otherwise a pooled read connection, so a read never queues behind a
//! write (WAL lets readers proceed while another connection writes).

mod error;
mod migrations;
pub mod model;
mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use error::{Result, StoreError};
pub use migrations::SCHEMA_VERSION;
pub use model::{
    AgentBudgets, AgentFilter, AgentMeta, AgentPatch, AgentRecord, AgentStatus, EventRecord,
    KubernetesRef, Mode, NewEvent, ProcessRef, TaskRecord, TransitionWrite, Usage, UsageRecord,
    new_id,
};
pub use sqlite::{DEFAULT_BUSY_TIMEOUT, LAST, SqliteStore};

/// Run blocking work (a store call, or waiting for a lock held around one) so that it is
/// safe from async code: on a multi-threaded tokio runtime, inside
/// `tokio::task::block_in_place` (the worker's other tasks move to another thread while `f`
/// runs); on a current-thread runtime, where that is not possible, or outside any runtime,
/// directly.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The storage driver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Driver {
    /// An embedded SQLite file.
    #[default]
    Sqlite,
}

/// Where and how to open the state store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateConfig {
    #[serde(default)]
    pub driver: Driver,
    /// Database file (for `sqlite`); parent directories are created.
    pub path: PathBuf,
}

impl StateConfig {
    /// A SQLite store at `path`.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        StateConfig {
            driver: Driver::Sqlite,
            path: path.into(),
        }
    }
}

/// Open (creating and migrating if needed) the configured state store.
pub fn open_store(config: &StateConfig) -> Result<Arc<dyn Store>> {
    match config.driver {
        Driver::Sqlite => Ok(Arc::new(SqliteStore::open(&config.path)?)),
    }
}

/// The state store. Object-safe; every method is synchronous and atomic.
///
/// Agent ids passed to methods other than [`Store::get_agent`] must be full ids.
pub trait Store: Send + Sync + std::fmt::Debug {
    /// A human-readable location (e.g. the database path), for messages.
    fn location(&self) -> String;

    // ---- tasks ----

    /// Insert or replace a task by name.
    fn upsert_task(&self, task: &TaskRecord) -> Result<()>;
    /// A task by name, if recorded.
    fn get_task(&self, name: &str) -> Result<Option<TaskRecord>>;
    /// All tasks, ordered by name.
    fn list_tasks(&self) -> Result<Vec<TaskRecord>>;

    // ---- agents ----

    /// Insert a new agent. An empty `id` is replaced by a fresh ULID and an
    /// empty `root_id` by the id. If `parent_id` is set the parent must exist.
    /// Returns the record as stored.
    fn insert_agent(&self, agent: &AgentRecord) -> Result<AgentRecord>;
    /// [`Store::upsert_task`] and [`Store::insert_agent`] in one transaction (a spawn's
    /// record: one write, not two).
    fn insert_agent_of_task(&self, task: &TaskRecord, agent: &AgentRecord) -> Result<AgentRecord>;
    /// [`Store::insert_agent_of_task`], written in the transaction of the store's next write,
    /// or before its next read, whichever comes first; the record is returned at once. For a
    /// spawn whose next write is its launch's (`running`, after the CLI has started): the
    /// insert is then off the path to the CLI's start, and one write, not two. An error of
    /// the insert is the next write's (it is tried again with each write until it is in).
    /// Until then no other connection sees the agent; a store dropped first writes it then.
    fn insert_agent_of_task_with_next_write(
        &self,
        task: &TaskRecord,
        agent: &AgentRecord,
    ) -> Result<AgentRecord> {
        self.insert_agent_of_task(task, agent)
    }
    /// An agent by full id, unique id prefix, else unique id suffix (case-insensitive; the
    /// live view shows the last six characters), or [`LAST`] (`@last`: the newest agent).
    /// Unknown → [`StoreError::NotFound`]; ambiguous → [`StoreError::Ambiguous`].
    fn get_agent(&self, id_or_prefix: &str) -> Result<AgentRecord>;
    /// Agents matching `filter`: running first, then starting, queued, then
    /// the rest; newest first within each group.
    fn list_agents(&self, filter: &AgentFilter) -> Result<Vec<AgentRecord>>;
    /// Direct children of an agent, oldest first.
    fn children(&self, id: &str) -> Result<Vec<AgentRecord>>;
    /// Whether an agent has any child (a cheap query: no record is read).
    fn has_children(&self, id: &str) -> Result<bool>;
    /// Apply a patch in one IMMEDIATE transaction; returns the updated record.
    fn update_agent(&self, id: &str, patch: &AgentPatch) -> Result<AgentRecord>;
    /// Read-modify-write in one IMMEDIATE transaction. The closure may change
    /// any field except `id` and `created_at`; `updated_at` is set to now.
    fn modify_agent(&self, id: &str, f: &mut dyn FnMut(&mut AgentRecord)) -> Result<AgentRecord>;
    /// Compare-and-set status transition: if the agent's status is one of
    /// `from`, set it to `to` and apply `patch`, returning `true`; otherwise
    /// change nothing and return `false`. Entering `running` sets `started_at`
    /// and entering a terminal status sets `ended_at` (if not already set and
    /// not given in the patch).
    fn transition(
        &self,
        id: &str,
        from: &[AgentStatus],
        to: AgentStatus,
        patch: &AgentPatch,
    ) -> Result<bool>;
    /// A status move and the events that say so, in one transaction (one write, not three):
    /// the usage of `write`, if any; then the [`Store::transition`] of `write`, or, if the
    /// agent is no longer in `write.from` (it was stopped, say), `write.otherwise` applied
    /// without a move; then the events `events` makes of whether it moved and the record as
    /// it then is. Returns the record and the events' sequence numbers.
    fn transition_with_events(
        &self,
        id: &str,
        write: &TransitionWrite<'_>,
        events: &mut dyn FnMut(bool, &AgentRecord) -> Vec<NewEvent>,
    ) -> Result<(AgentRecord, Vec<u64>)>;
    /// Delete an agent with its events and usage records. Children are kept
    /// (their `parent_id` still names the deleted agent).
    fn delete_agent(&self, id: &str) -> Result<()>;

    // ---- events ----

    /// Append events, assigning consecutive per-agent sequence numbers
    /// (starting at 1, no gaps) in one transaction; returns them.
    fn append_events(&self, agent_id: &str, events: &[NewEvent]) -> Result<Vec<u64>>;
    /// Events with `seq > after_seq`, in order, at most `limit`.
    fn events(
        &self,
        agent_id: &str,
        after_seq: u64,
        limit: Option<usize>,
    ) -> Result<Vec<EventRecord>>;
    /// Number of events of an agent (equal to its last seq).
    fn event_count(&self, agent_id: &str) -> Result<u64>;

    // ---- usage ----

    /// Record one turn's usage and add it to the agent's totals and cost in
    /// the same transaction.
    fn record_usage(&self, usage: &UsageRecord) -> Result<()>;
    /// Usage records of an agent, in recording order.
    fn usage(&self, agent_id: &str) -> Result<Vec<UsageRecord>>;
}
