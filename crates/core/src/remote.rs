//! A backend that runs agents off this machine (Kubernetes). The binary plugs it into the
//! runner, so this crate does not depend on the cluster client. It places an agent and hands
//! back its running workload; the runner drives it with the same session loop as a local
//! process and records its end. It never calls the runner.

use fracta_config::LoadedConfig;
use fracta_state::AgentRecord;
use futures::future::BoxFuture;

use crate::backend::Workload;
use crate::error::RunError;
use crate::launch::Endpoint;
use crate::record::{Observer, Recorder};
use crate::session::RunOptions;

/// One agent handed to a remote backend: recorded and checked (budgets, gateway token) by the
/// runner, to be placed there.
pub struct RemoteRun<'a> {
    pub cfg: &'a LoadedConfig,
    pub recorder: &'a Recorder,
    pub agent: AgentRecord,
    pub opts: &'a RunOptions,
    pub observer: &'a mut dyn Observer,
}

/// What placing an agent came to.
pub enum Started {
    /// Its CLI runs: the workload to drive, where it runs (for the `running` event), and for a
    /// session, where it is reached and its secret.
    Running {
        agent: AgentRecord,
        workload: Box<dyn Workload>,
        detail: String,
        connect: Option<(Endpoint, String)>,
    },
    /// It could not start; the record says why (already recorded as failed).
    Failed(AgentRecord),
}

pub trait RemoteBackend: Send + Sync {
    /// Place a recorded agent — a batch agent as a Job, a stream agent as a Pod serving its
    /// session — and return once its CLI runs (or could not start).
    fn start<'a>(&'a self, run: RemoteRun<'a>) -> BoxFuture<'a, Result<Started, RunError>>;
    /// Stop an agent it runs (already recorded as stopped).
    fn stop<'a>(&'a self, agent: &'a AgentRecord) -> BoxFuture<'a, Result<(), String>>;
}

/// The `host` of agents a remote backend runs: `kubernetes/<namespace>`.
pub const REMOTE_HOST_PREFIX: &str = "kubernetes/";
