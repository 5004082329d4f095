//! A backend that runs agents off this machine (Kubernetes). The binary plugs it into the
//! runner, so this crate does not depend on the cluster client. It records through the
//! [`Recorder`] and drives sessions with the session loop; it never calls the runner.

use fracta_config::LoadedConfig;
use fracta_state::AgentRecord;
use futures::future::BoxFuture;

use crate::error::RunError;
use crate::record::{Observer, Recorder};
use crate::session::RunOptions;

/// One agent handed to a remote backend: recorded and checked (budgets, gateway token,
/// credential assertions) by the runner, to be run to its end there.
pub struct RemoteRun<'a> {
    pub cfg: &'a LoadedConfig,
    pub recorder: &'a Recorder,
    pub agent: AgentRecord,
    pub opts: &'a RunOptions,
    pub observer: &'a mut dyn Observer,
}

pub trait RemoteBackend: Send + Sync {
    /// Run a recorded batch agent to its end.
    fn run_batch<'a>(&'a self, run: RemoteRun<'a>) -> BoxFuture<'a, Result<AgentRecord, RunError>>;
    /// Run a recorded stream agent's session to its end (turns from `opts`' inbox).
    fn run_stream<'a>(&'a self, run: RemoteRun<'a>)
    -> BoxFuture<'a, Result<AgentRecord, RunError>>;
    /// Stop an agent it runs (already recorded as stopped).
    fn stop<'a>(&'a self, agent: &'a AgentRecord) -> BoxFuture<'a, Result<(), String>>;
}

/// The `host` of agents a remote backend runs: `kubernetes/<namespace>`.
pub const REMOTE_HOST_PREFIX: &str = "kubernetes/";
