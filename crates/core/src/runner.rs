//! Runs agents: resolves a spawn request against the config, creates the workspace, has the
//! adapter describe the launch, runs it on the local backend, persists every event before it
//! is shown, and records how the agent ended. Also resume, stop and ghost reconciliation.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fracta_config::{AdapterKind, LoadedConfig, Mode, RuntimeEntry, Tier};
use fracta_state::{
    AgentFilter, AgentPatch, AgentRecord, AgentStatus, NewEvent, Store, StoreError, UsageRecord,
};
use serde_json::json;

use crate::adapter::{Adapter, LaunchContext, SessionKeys, StreamSession, adapter_for};
use crate::backend::local::{self, ExitInfo};
use crate::credentials::{self, RequestContext, ResolvedAuth};
use crate::event::{ErrorEvent, Event, MessageEvent, Role};
use crate::redact::Redactor;
use crate::task::{self, Task};
use crate::workspace;

/// How long a stop waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad request: nothing was started (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Task(#[from] task::TaskError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// What the local runner says when the config asks for the Kubernetes backend where only the
/// foreground batch spawn runs there yet.
pub const KUBERNETES_NOT_HERE: &str = "runtime.backend is kubernetes, and on Kubernetes Fracta runs batch agents and control-plane stream sessions so far; resume runs locally only: set runtime.backend: local for it";

/// The seed's capability table: Claude Code stream sessions run locally only.
pub const CLAUDE_STREAM_LOCAL_ONLY: &str = "Claude Code stream sessions run locally only (the seed's capability table: K8s stream N/A for Claude); use --mode batch on Kubernetes, or runtime.backend: local";

/// A request to start an agent.
#[derive(Debug, Clone, Default)]
pub struct SpawnRequest {
    pub task: String,
    pub prompt: Option<String>,
    pub runtime: Option<String>,
    pub tier: Option<Tier>,
    pub model: Option<String>,
    pub mode: Option<Mode>,
    pub parent_id: Option<String>,
}

/// Where an agent reaches Fracta's MCP gateway, and the token that identifies it there.
#[derive(Debug, Clone)]
pub struct Gateway {
    /// Streamable-HTTP MCP endpoint, e.g. `http://127.0.0.1:PORT/mcp`.
    pub url: String,
    /// The agent's own bearer token (handed over in `FRACTA_AGENT_TOKEN`, never written).
    pub token: String,
}

/// The env var that carries an agent's gateway token.
pub const AGENT_TOKEN_ENV: &str = "FRACTA_AGENT_TOKEN";

/// How a run is hosted: the spawn request's context (headers for `http_header_token`) and the
/// gateway, when a control plane hosts the agent.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub request: RequestContext,
    pub gateway: Option<Gateway>,
    /// For a stream session: where its next turns come from. The session lives while a sender
    /// is alive and it has not been idle for `idle_timeout`.
    pub inbox: Option<Inbox>,
    /// Steering input for the turn in flight (Codex's `turn/steer`).
    pub steer: Option<SteerInbox>,
    pub idle_timeout: Option<Duration>,
}

/// Input for the turn in flight; `done` says whether the session took it.
#[derive(Debug)]
pub struct SteerRequest {
    pub prompt: String,
    pub done: tokio::sync::oneshot::Sender<Result<(), String>>,
}

pub type SteerInbox = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<SteerRequest>>>;

/// Where a live session's messages go: the process's stdin (one line each), or a transport
/// task (OpenCode's HTTP server).
enum Wire {
    Stdin(tokio::process::ChildStdin),
    Channel(tokio::sync::mpsc::UnboundedSender<String>),
}

impl Wire {
    async fn write(&mut self, lines: Vec<String>) -> Result<(), String> {
        for l in lines {
            match self {
                Wire::Stdin(w) => {
                    tokio::io::AsyncWriteExt::write_all(w, format!("{l}\n").as_bytes())
                        .await
                        .map_err(|e| e.to_string())?;
                }
                Wire::Channel(tx) => tx
                    .send(l)
                    .map_err(|_| "the session's transport has ended".to_string())?,
            }
        }
        Ok(())
    }
}

/// One turn handed to a live stream session; `done` gets the agent's record once the turn
/// has ended (its `result` is the turn's final message).
#[derive(Debug)]
pub struct StreamTurn {
    pub prompt: String,
    pub done: Option<tokio::sync::oneshot::Sender<AgentRecord>>,
}

/// A stream session's queue of turns (sends to a busy session wait here, in order).
pub type Inbox = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<StreamTurn>>>;

/// End a live session: close its stdin (the CLI ends on its own), or stop its server.
fn close_wire(wire: Wire, work: &mut dyn crate::backend::Workload) {
    match wire {
        Wire::Stdin(w) => drop(w),
        Wire::Channel(tx) => {
            drop(tx);
            work.terminate();
        }
    }
}

/// What `Runner::drive` takes over once an agent's CLI runs.
pub struct Launched<'a> {
    /// This turn's number (1 for a first run).
    pub turn: u32,
    pub prompt: &'a str,
    pub resume_token: Option<&'a str>,
    pub stream: bool,
    /// The process's stdin, for a session spoken there.
    pub stdin: Option<tokio::process::ChildStdin>,
    /// Where the session is reached over the network instead, and its secret (OpenCode's
    /// password, Codex's capability token).
    pub connect: Option<(crate::launch::Endpoint, String)>,
    /// The files Fracta wrote, kept out of the agent's commits.
    pub files: &'a [crate::launch::FileSpec],
}

/// OpenCode safety (the seed's step monitoring): count the steps a run (a turn, in a session)
/// starts; warn at every fifth up to 20; past the runtime's `max_steps`, say why to abort.
pub struct StepMonitor {
    limit: u32,
    steps: u32,
}

impl StepMonitor {
    /// For OpenCode runtimes; `None` for the others.
    pub fn for_runtime(rt: &RuntimeEntry) -> Option<Self> {
        (rt.adapter == AdapterKind::Opencode).then(|| StepMonitor {
            limit: rt.max_steps.unwrap_or(DEFAULT_OPENCODE_MAX_STEPS),
            steps: 0,
        })
    }

    pub fn new_turn(&mut self) {
        self.steps = 0;
    }

    /// Count the steps `events` start; once the count passes the limit, the reason to abort.
    pub fn observe(&mut self, agent_id: &str, events: &[Event]) -> Option<String> {
        let started = events
            .iter()
            .filter(|e| matches!(e, Event::Step(s) if s.phase == crate::event::StepPhase::Started))
            .count();
        let limit = self.limit;
        let mut why = None;
        for _ in 0..started {
            self.steps += 1;
            let steps = self.steps;
            if steps.is_multiple_of(5) && steps <= 20 {
                tracing::warn!(agent = %agent_id, "opencode has taken {steps} steps (max_steps {limit})");
            }
            if steps == limit + 1 {
                let w = format!("opencode took more than {limit} steps (max_steps): aborted");
                tracing::warn!(agent = %agent_id, "{w}");
                why = Some(w);
            }
        }
        why
    }
}

/// OpenCode's step limit per run when the runtime sets no `max_steps` (the seed's 20).
pub const DEFAULT_OPENCODE_MAX_STEPS: u32 = 20;

/// How long a stream session may wait for its next turn before it is closed (and can be
/// resumed later).
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(15 * 60);

/// Receives each event after it is persisted.
pub trait Observer: Send {
    fn on_event(&mut self, agent: &AgentRecord, seq: u64, event: &Event);
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn on_event(&mut self, _: &AgentRecord, _: u64, _: &Event) {}
}

pub struct Runner {
    pub cfg: Arc<LoadedConfig>,
    pub store: Arc<dyn Store>,
    pub redactor: Redactor,
    /// Where agents run when `runtime.backend` is not local (set by the binary).
    remote: std::sync::OnceLock<Arc<dyn RemoteBackend>>,
}

/// A backend that runs agents off this machine (Kubernetes). The binary provides it, so that
/// this crate does not depend on the cluster client.
pub trait RemoteBackend: Send + Sync {
    /// Run a recorded batch agent to its end.
    fn run_batch<'a>(
        &'a self,
        runner: &'a Runner,
        agent: AgentRecord,
        gateway: Option<&'a Gateway>,
        observer: &'a mut dyn Observer,
    ) -> futures::future::BoxFuture<'a, Result<AgentRecord, RunError>>;
    /// Run a recorded stream agent's session to its end (turns from `opts`' inbox).
    fn run_stream<'a>(
        &'a self,
        runner: &'a Runner,
        agent: AgentRecord,
        opts: &'a RunOptions,
        observer: &'a mut dyn Observer,
    ) -> futures::future::BoxFuture<'a, Result<AgentRecord, RunError>>;
    /// Stop an agent it runs (already recorded as stopped).
    fn stop<'a>(
        &'a self,
        agent: &'a AgentRecord,
    ) -> futures::future::BoxFuture<'a, Result<(), String>>;
}

/// The `host` of agents a remote backend runs: `kubernetes/<namespace>`.
pub const REMOTE_HOST_PREFIX: &str = "kubernetes/";

/// This machine's name, recorded on agents so that only this host judges their processes.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn state_mode(m: Mode) -> fracta_state::Mode {
    match m {
        Mode::Batch => fracta_state::Mode::Batch,
        Mode::Stream => fracta_state::Mode::Stream,
    }
}

/// The agent's environment. Precedence, lowest first: Fracta's own (inherited) environment,
/// the adapter's defaults (quiet/offline switches, `CODEX_HOME`), the profile's `env`, the
/// runtime's `env`, then bindings (`bearer_env`). Fracta's own `FRACTA_*` variables are not
/// passed on.
pub fn compose_env(
    inherited: impl IntoIterator<Item = (String, String)>,
    adapter: &BTreeMap<String, String>,
    profile: &BTreeMap<String, String>,
    runtime: &BTreeMap<String, String>,
    bindings: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, _)| !k.starts_with("FRACTA_"))
        .collect();
    for layer in [adapter, profile, runtime, bindings] {
        env.extend(layer.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    env
}

/// Is an env entry secret-bearing? Its name, or the name of a `${VAR}` it takes its value
/// from, looks like a key, token, secret, password or credential. Such values are registered
/// with the redactor, so they never reach an event, a log or an output.
pub fn is_secret_env(name: &str, raw_value: &str) -> bool {
    fracta_config::show::looks_secret(name)
        || fracta_config::expand::references(raw_value)
            .iter()
            .any(|r| fracta_config::show::looks_secret(r.name))
}

/// Where an agent CLI is found: the runtime's `command`, else PATH, else the project's
/// `node_modules/.bin` (beside the config, or above the fracta executable).
pub fn locate_binary(
    cfg: &LoadedConfig,
    rt: &RuntimeEntry,
    adapter: &dyn Adapter,
) -> Result<PathBuf, String> {
    let install = format!(
        "install it with `npm ci` in the Fracta repository (pinned in package.json), or `npm install -g {}`, or set `command:` on the runtime",
        adapter.npm_package()
    );
    let name = rt
        .command
        .clone()
        .unwrap_or_else(|| adapter.binary().to_string());
    let name = fracta_config::expand::expand_env(&name).unwrap_or(name);
    if name.contains('/') {
        let p = if Path::new(&name).is_absolute() {
            PathBuf::from(&name)
        } else {
            cfg.dir.join(&name)
        };
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "the {} CLI `{}` does not exist; {install}",
                adapter.binary(),
                p.display()
            ))
        };
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if rt.command.is_none() {
        let mut roots: Vec<PathBuf> = cfg.dir.canonicalize().ok().into_iter().collect();
        if let Ok(exe) = std::env::current_exe() {
            roots.push(exe);
        }
        for root in roots {
            for anc in root.ancestors() {
                dirs.push(anc.join("node_modules").join(".bin"));
            }
        }
    }
    for d in dirs {
        let p = d.join(&name);
        if is_executable(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "the {} CLI (`{name}`) is not installed: it is not on PATH nor in node_modules/.bin; {install}",
        adapter.binary()
    ))
}

/// A loopback port nobody listens on now.
/// `FRACTA_CODEX_TRANSPORT=ws`: run local Codex sessions as a Pod does, over
/// `codex app-server --listen ws://127.0.0.1:PORT` with a capability token, instead of stdio.
pub const CODEX_TRANSPORT_ENV: &str = "FRACTA_CODEX_TRANSPORT";

fn codex_over_ws() -> bool {
    std::env::var(CODEX_TRANSPORT_ENV).is_ok_and(|v| v == "ws")
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// A resolved spawn: the runtime, adapter, task and the queued agent record.
pub struct Prepared {
    pub agent: AgentRecord,
    pub runtime_name: String,
    pub task: Task,
}

impl Runner {
    pub fn new(cfg: Arc<LoadedConfig>, store: Arc<dyn Store>) -> Self {
        Runner {
            cfg,
            store,
            redactor: Redactor::new(),
            remote: std::sync::OnceLock::new(),
        }
    }

    /// Run agents on `remote` when `runtime.backend` asks for it.
    pub fn set_remote(&self, remote: Arc<dyn RemoteBackend>) {
        let _ = self.remote.set(remote);
    }

    fn runtime(&self, name: &str) -> Result<&RuntimeEntry, RunError> {
        self.cfg
            .config
            .agents
            .agent_runtimes
            .get(name)
            .ok_or_else(|| {
                let valid: Vec<&str> = self
                    .cfg
                    .config
                    .agents
                    .agent_runtimes
                    .keys()
                    .map(String::as_str)
                    .collect();
                RunError::Usage(format!(
                    "unknown runtime `{name}`; {}",
                    fracta_config::diagnostic::valid_help("runtimes", name, &valid)
                ))
            })
    }

    /// `.fracta/runtimes/<name>`: state shared by a runtime entry's agents (see
    /// `LaunchContext::runtime_state`).
    fn runtime_state(&self, runtime: &str) -> PathBuf {
        let dir = std::path::absolute(&self.cfg.dir).unwrap_or_else(|_| self.cfg.dir.clone());
        dir.join(".fracta").join("runtimes").join(runtime)
    }

    /// Resolve a request into a queued agent record (nothing runs yet).
    pub fn prepare(&self, req: &SpawnRequest) -> Result<Prepared, RunError> {
        let task = task::resolve(&self.cfg.tasks_dir(), &req.task, req.prompt.as_deref())?;
        if task.instructions.trim().is_empty() {
            return Err(RunError::Usage(format!(
                "task `{}` has no instructions; give some with --prompt",
                task.name
            )));
        }
        let runtime_name = match req.runtime.clone().or_else(|| task.defaults.runtime.clone()) {
            Some(r) => r,
            None => self.cfg.default_runtime().map(str::to_string).ok_or_else(|| {
                let valid: Vec<&str> = self.cfg.config.agents.agent_runtimes.keys().map(String::as_str).collect();
                RunError::Usage(if valid.is_empty() {
                    "no runtimes are configured; add one under agents.agent_runtimes".into()
                } else {
                    format!(
                        "which runtime? pass --runtime, or set agents.default_runtime; valid runtimes: {}",
                        fracta_config::diagnostic::one_of(&valid)
                    )
                })
            })?,
        };
        let rt = self.runtime(&runtime_name)?;
        let mode = req
            .mode
            .or(task.defaults.mode)
            .unwrap_or(self.cfg.config.agents.default_mode);
        let tier = req.tier.or(task.defaults.tier);
        let model = req
            .model
            .clone()
            .or_else(|| task.defaults.model.clone())
            .or_else(|| tier.and_then(|t| rt.model_tiers.get(t)).map(str::to_string))
            .or_else(|| rt.model.clone());
        let model = match model {
            Some(m) => Some(
                fracta_config::expand::expand_env(&m)
                    .map_err(|e| RunError::Usage(format!("model: {e}")))?,
            ),
            None => None,
        };
        let mut agent = AgentRecord::new(
            &task.name,
            &runtime_name,
            rt.adapter.as_str(),
            state_mode(mode),
            &task.instructions,
        );
        if let Some(pid) = &req.parent_id {
            let parent = self.store.get_agent(pid)?;
            agent = agent.with_parent(&parent);
        }
        agent.model = model;
        agent.host = Some(hostname());
        agent.meta = json!({ "tier": tier.map(|t| t.as_str()), "turns": 0 });
        Ok(Prepared {
            agent,
            runtime_name,
            task,
        })
    }

    /// Record the agent and run it to completion in the foreground.
    pub async fn spawn(
        &self,
        prepared: Prepared,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        self.spawn_with(prepared, &RunOptions::default(), observer)
            .await
    }

    /// Record the agent and run it, hosted as `opts` says.
    pub async fn spawn_with(
        &self,
        prepared: Prepared,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let agent = self.record(prepared)?;
        self.run_recorded(agent, opts, observer).await
    }

    /// Insert a prepared agent (queued) and its task into the store.
    pub fn record(&self, prepared: Prepared) -> Result<AgentRecord, RunError> {
        let Prepared {
            agent,
            runtime_name,
            task,
        } = prepared;
        self.store.upsert_task(&fracta_state::TaskRecord {
            name: task.name.clone(),
            description: task.defaults.description.clone(),
            source: task
                .path
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "inline".into()),
            defaults: serde_json::to_value(&task.defaults).unwrap_or_default(),
            instructions: task.instructions.clone(),
            updated_at: jiff::Timestamp::now(),
        })?;
        let agent = self.store.insert_agent(&agent)?;
        tracing::info!(agent = %agent.id, task = %agent.task, runtime = %runtime_name, parent = ?agent.parent_id, "agent recorded");
        Ok(agent)
    }

    /// Create a recorded agent's workspace and run its first turn.
    pub async fn run_recorded(
        &self,
        mut agent: AgentRecord,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        if self.cfg.config.runtime.backend == fracta_config::Backend::Kubernetes {
            return match self.remote.get() {
                Some(remote) if agent.mode == fracta_state::Mode::Batch => {
                    remote
                        .run_batch(self, agent, opts.gateway.as_ref(), observer)
                        .await
                }
                _ if agent.adapter == "claude" => {
                    self.fail_before_start(&agent, CLAUDE_STREAM_LOCAL_ONLY, observer)
                }
                Some(remote) if opts.inbox.is_some() => {
                    remote.run_stream(self, agent, opts, observer).await
                }
                _ => self.fail_before_start(&agent, KUBERNETES_NOT_HERE, observer),
            };
        }
        let base = self
            .cfg
            .config
            .project
            .default_base_branch
            .clone()
            .unwrap_or_else(|| "main".into());
        let project_dir =
            std::path::absolute(&self.cfg.dir).unwrap_or_else(|_| self.cfg.dir.clone());
        let fracta_dir = project_dir.join(".fracta");
        workspace::ensure_fracta_ignore(&fracta_dir);
        let t0 = std::time::Instant::now();
        match workspace::create(&project_dir, &fracta_dir, &agent.id, &agent.task, &base) {
            Ok(ws) => {
                tracing::debug!(agent = %agent.id, ms = t0.elapsed().as_secs_f64() * 1e3, "workspace created");
                let home = fracta_dir.join("agents").join(&agent.id);
                agent = self.store.update_agent(
                    &agent.id,
                    &AgentPatch {
                        workspace: Some(Some(ws.path.display().to_string())),
                        branch: Some(ws.branch.clone()),
                        runtime_home: Some(Some(home.display().to_string())),
                        ..AgentPatch::default()
                    },
                )?;
            }
            Err(e) => {
                return self.fail_before_start(
                    &agent,
                    &format!("cannot create the workspace: {e}"),
                    observer,
                );
            }
        }
        let prompt = agent.prompt.clone();
        self.run_turn(agent, &prompt, None, opts, observer).await
    }

    /// Run a new turn of a finished agent's conversation, in the same workspace.
    pub async fn resume(
        &self,
        id: &str,
        prompt: &str,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        self.resume_with(id, prompt, &RunOptions::default(), observer)
            .await
    }

    pub async fn resume_with(
        &self,
        id: &str,
        prompt: &str,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        self.reconcile()?;
        if self.cfg.config.runtime.backend == fracta_config::Backend::Kubernetes {
            return Err(RunError::Usage(KUBERNETES_NOT_HERE.into()));
        }
        let agent = self.store.get_agent(id)?;
        if !agent.status.is_terminal() {
            return Err(RunError::Usage(format!(
                "agent {} is {}; wait for it to end (or stop it) before resuming",
                agent.id,
                agent.status.as_str()
            )));
        }
        let Some(token) = agent.resume_token.clone() else {
            return Err(RunError::Usage(format!(
                "agent {} has no resume token (its runtime never reported a session), so it cannot be resumed",
                agent.id
            )));
        };
        if agent
            .workspace
            .as_deref()
            .is_none_or(|w| !Path::new(w).is_dir())
        {
            return Err(RunError::Usage(format!(
                "agent {}'s workspace {} no longer exists",
                agent.id,
                agent.workspace.as_deref().unwrap_or("?")
            )));
        }
        self.run_turn(agent, prompt, Some(&token), opts, observer)
            .await
    }

    /// Record that the agent failed before its CLI ran (on any backend), and why.
    pub fn fail_before_start(
        &self,
        agent: &AgentRecord,
        why: &str,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let why = self.redactor.redact(why);
        tracing::warn!(agent = %agent.id, "agent failed before start: {why}");
        self.record_error(agent, &why, observer)?;
        self.end_with(&agent.id, AgentStatus::Failed, &why)?;
        let status = Event::status("failed", Some(why));
        let rec = self.store.get_agent(&agent.id)?;
        self.persist(&rec, &[status], None, true, observer)?;
        Ok(rec)
    }

    /// Persist events of an agent that another backend runs (Kubernetes): redacted, in
    /// order, before the observer sees them.
    pub fn record_events(
        &self,
        agent: &AgentRecord,
        events: &[Event],
        raw: Option<&str>,
        understood: bool,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        self.persist(agent, events, raw, understood, observer)
    }

    /// Persist one error event of the agent (why it failed, or why a turn was cut short).
    pub fn record_error(
        &self,
        agent: &AgentRecord,
        message: &str,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        let error = Event::Error(ErrorEvent {
            message: message.to_string(),
        });
        self.persist(agent, &[error], None, true, observer)
    }

    /// Persist events (redacted), then show them.
    fn persist(
        &self,
        agent: &AgentRecord,
        events: &[Event],
        raw: Option<&str>,
        understood: bool,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        if events.is_empty() {
            return Ok(());
        }
        let raw = raw.map(|r| self.redactor.redact(r));
        let mut redacted: Vec<Event> = Vec::with_capacity(events.len());
        // The raw line is kept beside the first event it yielded.
        let new: Vec<NewEvent> = events
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let mut payload = serde_json::to_value(e).unwrap_or_default();
                self.redactor.redact_json(&mut payload);
                redacted
                    .push(serde_json::from_value(payload.clone()).unwrap_or_else(|_| e.clone()));
                let raw = if i == 0 { raw.clone() } else { None };
                NewEvent {
                    kind: e.kind().to_string(),
                    payload,
                    raw,
                    parsed: understood,
                    at: None,
                }
            })
            .collect();
        let seqs = self.store.append_events(&agent.id, &new)?;
        for (seq, e) in seqs.iter().zip(&redacted) {
            observer.on_event(agent, *seq, e);
        }
        Ok(())
    }

    fn build_env(
        &self,
        runtime_name: &str,
        rt: &RuntimeEntry,
        adapter_env: &BTreeMap<String, String>,
        auth: &ResolvedAuth,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut runtime_env = BTreeMap::new();
        for (k, v) in &rt.env {
            let val = fracta_config::expand::expand_env(v).map_err(|e| {
                format!("runtime `{runtime_name}` needs agents.agent_runtimes.{runtime_name}.env.{k}: {e}")
            })?;
            if is_secret_env(k, v) {
                self.redactor.add(&val);
            }
            runtime_env.insert(k.clone(), val);
        }
        Ok(compose_env(
            std::env::vars(),
            adapter_env,
            &auth.profile_env,
            &runtime_env,
            &auth.binding_env,
        ))
    }

    async fn run_turn(
        &self,
        agent: AgentRecord,
        prompt: &str,
        resume_token: Option<&str>,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let request = &opts.request;
        let rt = self.runtime(&agent.runtime)?.clone();
        let adapter = adapter_for(rt.adapter);
        let turn = agent
            .meta
            .get("turns")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0) as u32
            + 1;
        let workspace = PathBuf::from(agent.workspace.clone().unwrap_or_default());
        let home = PathBuf::from(agent.runtime_home.clone().unwrap_or_default());

        if turn > 1 {
            // A resumed turn: back to starting, and show the new prompt.
            self.store.transition(
                &agent.id,
                &[
                    AgentStatus::Succeeded,
                    AgentStatus::Failed,
                    AgentStatus::Stopped,
                    AgentStatus::Lost,
                ],
                AgentStatus::Starting,
                &AgentPatch {
                    error: Some(None),
                    exit_code: Some(None),
                    signal: Some(None),
                    ..AgentPatch::default()
                },
            )?;
        }
        let agent = self.store.get_agent(&agent.id)?;
        self.persist(
            &agent,
            &[Event::Message(MessageEvent {
                role: Role::User,
                text: prompt.to_string(),
            })],
            None,
            true,
            observer,
        )?;

        let t0 = std::time::Instant::now();
        let auth =
            match credentials::resolve(&self.cfg, &agent.runtime, &rt, request, &self.redactor)
                .await
            {
                Ok(a) => a,
                Err(e) => return self.fail_before_start(&agent, &e.to_string(), observer),
            };
        let stream = agent.mode == fracta_state::Mode::Stream && opts.inbox.is_some();
        // A session served over the network gets its own port and password.
        let networked = match rt.adapter {
            AdapterKind::Opencode => true,
            AdapterKind::Codex => codex_over_ws(),
            AdapterKind::Claude => false,
        };
        let keys = if stream && networked {
            match free_port() {
                Ok(port) => {
                    let secret = crate::control_plane::new_token();
                    self.redactor.add(&secret);
                    self.redactor
                        .add(&crate::adapter::codex::sha256_hex(&secret));
                    Some(SessionKeys {
                        host: "127.0.0.1".into(),
                        port,
                        secret,
                    })
                }
                Err(e) => {
                    return self.fail_before_start(
                        &agent,
                        &format!("no free loopback port for the session: {e}"),
                        observer,
                    );
                }
            }
        } else {
            None
        };
        let ctx = LaunchContext {
            session: keys.as_ref(),
            agent_id: &agent.id,
            prompt,
            model: agent.model.as_deref(),
            resume_token,
            workspace: &workspace,
            runtime_home: &home,
            runtime_state: &self.runtime_state(&agent.runtime),
            runtime: &rt,
            project: &self.cfg.config.project,
            env: &auth.binding_env,
            api_key_helper: auth.api_key_helper.as_ref(),
            gateway: opts.gateway.as_ref(),
        };
        let launched = if stream {
            adapter.stream_launch(&ctx)
        } else {
            adapter.batch_launch(&ctx)
        };
        let spec = match launched {
            Ok(s) => s,
            Err(e) => return self.fail_before_start(&agent, &e.to_string(), observer),
        };
        let mut env = match self.build_env(&agent.runtime, &rt, &spec.env, &auth) {
            Ok(e) => e,
            Err(e) => return self.fail_before_start(&agent, &e, observer),
        };
        for k in &spec.env_remove {
            env.remove(k);
        }
        if let Some(g) = &opts.gateway {
            self.redactor.add(&g.token);
            env.insert(AGENT_TOKEN_ENV.to_string(), g.token.clone());
        }
        if rt.adapter == AdapterKind::Claude
            && env.contains_key(fracta_config::load::CLAUDE_FORBIDDEN_ENV)
        {
            return self.fail_before_start(
                &agent,
                "CLAUDE_CODE_SIMPLE is set in the agent's environment; it stops Claude Code from loading .claude/settings.json (the seed forbids it): unset it",
                observer,
            );
        }
        if let Err(e) = credentials::check_assertions(&auth, &agent.runtime, &env) {
            return self.fail_before_start(&agent, &e.to_string(), observer);
        }
        tracing::debug!(agent = %agent.id, ms = t0.elapsed().as_secs_f64() * 1e3, "credentials and env resolved");
        let program = match locate_binary(&self.cfg, &rt, adapter) {
            Ok(p) => p,
            Err(e) => return self.fail_before_start(&agent, &e, observer),
        };
        if !home.as_os_str().is_empty()
            && let Err(e) = std::fs::create_dir_all(&home)
        {
            return self.fail_before_start(
                &agent,
                &format!("cannot create the runtime home {}: {e}", home.display()),
                observer,
            );
        }
        if let Err(e) = local::write_files(&spec) {
            return self.fail_before_start(&agent, &e.to_string(), observer);
        }
        if agent.branch.is_some() {
            let ours: Vec<PathBuf> = spec
                .files
                .iter()
                .filter(|f| f.in_workspace)
                .map(|f| f.path.clone())
                .collect();
            if let Err(e) = workspace::keep_out_of_commits(&workspace, &home, &ours) {
                tracing::warn!(agent = %agent.id, "could not exclude Fracta's files from git: {e}");
            }
        }
        tracing::debug!(agent = %agent.id, ms = t0.elapsed().as_secs_f64() * 1e3, "files written");
        let env_list: Vec<(String, String)> = env.into_iter().collect();
        tracing::debug!(agent = %agent.id, command = %self.redactor.redact(&spec.display_command()), "launching");
        let mut proc = match local::spawn(&spec, &program, &env_list) {
            Ok(p) => p,
            Err(e) => return self.fail_before_start(&agent, &e.to_string(), observer),
        };
        let started = self.store.transition(
            &agent.id,
            &[AgentStatus::Queued, AgentStatus::Starting],
            AgentStatus::Running,
            &AgentPatch {
                pid: Some(Some(i64::from(proc.pid))),
                process_start: Some(proc.identity.clone()),
                host: Some(Some(hostname())),
                meta: Some({
                    let mut m = agent.meta.clone();
                    m["turns"] = json!(turn);
                    m["supervisor"] = json!({
                        "pid": std::process::id(),
                        "identity": local::process_identity(std::process::id()),
                    });
                    m["command"] = json!(self.redactor.redact(&spec.display_command()));
                    m
                }),
                ..AgentPatch::default()
            },
        )?;
        let agent = self.store.get_agent(&agent.id)?;
        if !started {
            // Stopped between record and launch.
            local::stop_group(proc.pid, proc.identity.as_deref(), STOP_GRACE).await;
            let _ = proc.wait().await;
            return Ok(agent);
        }
        self.persist(
            &agent,
            &[Event::status("running", Some(format!("pid {}", proc.pid)))],
            None,
            true,
            observer,
        )?;

        // Where its session is reached when not over stdin: the endpoint and its secret.
        let connect = spec.endpoint.clone().map(|e| {
            let secret = match &e {
                crate::launch::Endpoint::OpenCodeHttp { password_env, .. } => {
                    spec.env.get(password_env).cloned().unwrap_or_default()
                }
                crate::launch::Endpoint::CodexWs { .. } => {
                    keys.as_ref().map(|k| k.secret.clone()).unwrap_or_default()
                }
            };
            (e, secret)
        });
        let stdin = proc.stdin.take();
        self.drive(
            agent,
            &rt,
            Launched {
                turn,
                prompt,
                resume_token,
                stream,
                stdin,
                connect,
                files: &spec.files,
            },
            Box::new(proc),
            opts,
            observer,
        )
        .await
    }

    /// Drive a launched agent to its end: its session protocol (a stream) or its output (a
    /// batch run); turns from the inbox, steering, budgets and stops; then record how it
    /// ended. `work` is what runs it: a local process, or a remote backend's Pod.
    pub async fn drive(
        &self,
        agent: AgentRecord,
        rt: &RuntimeEntry,
        launched: Launched<'_>,
        mut work: Box<dyn crate::backend::Workload>,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let Launched {
            turn,
            prompt,
            resume_token,
            stream,
            stdin,
            connect,
            files,
        } = launched;
        let adapter = adapter_for(rt.adapter);
        // A stream session speaks the runtime's protocol: on the process's stdin, or through a
        // transport task (OpenCode's HTTP server). Its first turn goes in at once, then turns
        // come from the inbox and steering input from the steer channel.
        let mut session: Box<dyn StreamSession> = if stream {
            adapter.stream_session(resume_token)
        } else {
            Box::new(crate::adapter::BatchParser(adapter.parser()))
        };
        let mut incoming: Option<tokio::sync::mpsc::UnboundedReceiver<String>> = None;
        let mut wire: Option<Wire> = None;
        if stream {
            match connect {
                Some((crate::launch::Endpoint::OpenCodeHttp { url, .. }, password)) => {
                    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
                    let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
                    tokio::spawn(crate::transport::opencode(
                        crate::transport::OpenCodeTarget {
                            url,
                            password,
                            resume: resume_token.map(str::to_string),
                        },
                        out_rx,
                        in_tx,
                    ));
                    wire = Some(Wire::Channel(out_tx));
                    incoming = Some(in_rx);
                }
                Some((crate::launch::Endpoint::CodexWs { url, .. }, token)) => {
                    let (out_tx, out_rx) = tokio::sync::mpsc::unbounded_channel();
                    let (in_tx, in_rx) = tokio::sync::mpsc::unbounded_channel();
                    tokio::spawn(crate::transport::codex_ws(
                        crate::transport::CodexWsTarget { url, token },
                        out_rx,
                        in_tx,
                    ));
                    wire = Some(Wire::Channel(out_tx));
                    incoming = Some(in_rx);
                }
                None => wire = stdin.map(Wire::Stdin),
            }
        }
        let mut interrupted = None;
        let mut closed_by_us = false;
        let mut aborted_turn: Option<String> = None;
        let mut waiting: Option<tokio::sync::oneshot::Sender<AgentRecord>> = None;
        let mut idle_since: Option<tokio::time::Instant> = None;
        // OpenCode safety (the seed's step monitoring): count its steps per turn; warn at 5,
        // 10, 15, 20; past `max_steps` (default 20), abort the turn (a session) or the run
        // (batch) and record why.
        let mut monitor = StepMonitor::for_runtime(rt);
        // Turns of this session so far, and the session's cumulative cost as last reported.
        let mut session_turn = turn;
        let mut session_cost = 0.0_f64;
        let idle_timeout = opts.idle_timeout.unwrap_or(DEFAULT_STREAM_IDLE);
        if let Some(w) = wire.as_mut()
            && let Err(e) = w.write(session.open(prompt)).await
        {
            tracing::warn!(agent = %agent.id, "could not hand the session its first turn: {e}");
        }
        let wall_clock = agent
            .meta
            .get("budgets")
            .and_then(|b| b.get("wall_clock_secs"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or_else(|| self.cfg.config.agents.budgets.wall_clock_secs());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wall_clock);
        let mut over_time = false;
        let mut sigterm =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        loop {
            // What the session said: the process's stdout, or the transport's messages (then
            // stdout is only the server's log).
            let said: Option<String> = tokio::select! {
                line = work.next_line() => {
                    match line {
                        None => break,
                        Some(l) if incoming.is_some() => {
                            tracing::debug!(agent = %agent.id, "{}: {}", adapter.binary(), self.redactor.redact(&l));
                            None
                        }
                        Some(l) => Some(l),
                    }
                }
                msg = async { match incoming.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } }, if incoming.is_some() => {
                    match msg {
                        Some(m) => Some(m),
                        None => {
                            // The transport gave up (it said why): the session is over.
                            incoming = None;
                            if wire.take().is_some() {
                                closed_by_us = true;
                                work.terminate();
                            }
                            None
                        }
                    }
                }
                next = async {
                    match opts.inbox.as_ref() {
                        Some(inbox) => inbox.lock().await.recv().await,
                        None => std::future::pending().await,
                    }
                }, if wire.is_some() && idle_since.is_some() => {
                    match next {
                        Some(turn) => {
                            idle_since = None;
                            if let Some(m) = monitor.as_mut() {
                                m.new_turn();
                            }
                            self.persist(&agent, &[Event::Message(MessageEvent { role: Role::User, text: turn.prompt.clone() })], None, true, observer)?;
                            waiting = turn.done;
                            let lines = session.send(&turn.prompt);
                            if let Some(w) = wire.as_mut()
                                && let Err(e) = w.write(lines).await
                            {
                                tracing::warn!(agent = %agent.id, "the session no longer takes input: {e}");
                                wire = None;
                            }
                        }
                        // Nobody can send any more (end of input, control plane shutting
                        // down): close the session.
                        None => {
                            self.persist(&agent, &[Event::status("idle", Some("no more turns can come: session closed; resume it later".into()))], None, true, observer)?;
                            if let Some(w) = wire.take() {
                                closed_by_us = true;
                                close_wire(w, work.as_mut());
                            }
                        }
                    }
                    None
                }
                steer = async {
                    match opts.steer.as_ref() {
                        Some(rx) => rx.lock().await.recv().await,
                        None => std::future::pending().await,
                    }
                }, if wire.is_some() => {
                    if let Some(req) = steer {
                        let answer = match session.steer(&req.prompt) {
                            Ok(lines) if idle_since.is_none() => {
                                self.persist(&agent, &[Event::Message(MessageEvent { role: Role::User, text: req.prompt.clone() })], None, true, observer)?;
                                match wire.as_mut() {
                                    Some(w) => w.write(lines).await,
                                    None => Err("the session has ended".into()),
                                }
                            }
                            Ok(_) => Err("no turn is in flight to steer; send the input as the next turn (fracta send)".into()),
                            Err(e) => Err(e),
                        };
                        let _ = req.done.send(answer);
                    }
                    None
                }
                _ = async {
                    match idle_since {
                        Some(t) => tokio::time::sleep_until(t + idle_timeout).await,
                        None => std::future::pending().await,
                    }
                }, if wire.is_some() && idle_since.is_some() => {
                    tracing::info!(agent = %agent.id, "stream session idle for {} s: closing it", idle_timeout.as_secs());
                    self.persist(&agent, &[Event::status("idle", Some(format!("no turn for {} s: session closed; resume it later", idle_timeout.as_secs())))], None, true, observer)?;
                    if let Some(w) = wire.take() {
                        closed_by_us = true;
                        close_wire(w, work.as_mut());
                    }
                    None
                }
                _ = tokio::time::sleep_until(deadline), if interrupted.is_none() && !over_time => {
                    over_time = true;
                    tracing::warn!(agent = %agent.id, "wall-clock budget of {wall_clock} s exceeded; stopping it");
                    work.terminate();
                    None
                }
                _ = tokio::signal::ctrl_c(), if interrupted.is_none() => {
                    interrupted = Some("interrupted (Ctrl-C)");
                    self.end_with(&agent.id, AgentStatus::Stopped, "interrupted (Ctrl-C)")?;
                    work.terminate();
                    None
                }
                _ = async { match sigterm.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } }, if interrupted.is_none() => {
                    if closed_by_us {
                        // The session is already closing (its control plane closed it).
                        continue;
                    }
                    if wire.is_some() && idle_since.is_some() {
                        // An idle session when Fracta shuts down: close it as the idle timeout
                        // would; it ends recorded and resumable.
                        tracing::info!(agent = %agent.id, "fracta is shutting down: closing the idle session");
                        self.persist(&agent, &[Event::status("idle", Some("fracta is shutting down: session closed; resume it later".into()))], None, true, observer)?;
                        if let Some(w) = wire.take() {
                            closed_by_us = true;
                            close_wire(w, work.as_mut());
                        }
                        continue;
                    }
                    interrupted = Some("fracta received SIGTERM");
                    self.end_with(&agent.id, AgentStatus::Stopped, "fracta received SIGTERM")?;
                    work.terminate();
                    None
                }
            };
            let Some(line) = said else { continue };
            if line.trim().is_empty() {
                continue;
            }
            let parsed = session.parse_line(&line);
            self.persist(
                &agent,
                &parsed.events,
                Some(&line),
                parsed.understood,
                observer,
            )?;
            let answers = session.take_output();
            if !answers.is_empty()
                && let Some(w) = wire.as_mut()
                && let Err(e) = w.write(answers).await
            {
                tracing::warn!(agent = %agent.id, "could not answer the session: {e}");
            }
            if let Some(why) = monitor
                .as_mut()
                .and_then(|m| m.observe(&agent.id, &parsed.events))
                && interrupted.is_none()
            {
                self.record_error(&agent, &why, observer)?;
                let abort = session.interrupt();
                match wire.as_mut() {
                    // A live session: abort the turn; the session goes on.
                    Some(w) if !abort.is_empty() => {
                        aborted_turn = Some(why);
                        if let Err(e) = w.write(abort).await {
                            tracing::warn!(agent = %agent.id, "could not abort the turn: {e}");
                        }
                    }
                    _ => {
                        self.end_with(&agent.id, AgentStatus::Failed, &why)?;
                        interrupted = Some("max_steps");
                        work.terminate();
                    }
                }
            }
            if wire.is_some() && session.take_turn_end() {
                let rec = self.end_turn(
                    &agent.id,
                    session_turn,
                    &mut session_cost,
                    session.outcome(),
                    aborted_turn.take(),
                )?;
                session_turn += 1;
                if let Some(w) = waiting.take() {
                    let _ = w.send(rec);
                }
                idle_since = Some(tokio::time::Instant::now());
            }
        }
        tracing::debug!(agent = %agent.id, "output ended");
        let mut exit = work.wait().await;
        tracing::debug!(agent = %agent.id, code = ?exit.code, signal = ?exit.signal, "process ended");
        if closed_by_us && exit.signal.is_some() {
            // A session server Fracta closed (it has no stdin to close) ends by our signal.
            exit.code = Some(0);
        }
        // A session recorded each turn's usage as it ended.
        let usage_turn = (!stream).then_some(turn);
        self.finish(
            &agent.id,
            usage_turn,
            session.outcome(),
            &exit,
            files,
            observer,
        )
        .await
    }

    /// A stream session's turn has ended: record its result, usage and resume token (the
    /// session goes on, `running`), and hand back the record.
    fn end_turn(
        &self,
        id: &str,
        turn: u32,
        session_cost: &mut f64,
        outcome: &crate::adapter::Outcome,
        aborted: Option<String>,
    ) -> Result<AgentRecord, RunError> {
        let mut agent = self.store.get_agent(id)?;
        let error = aborted.or_else(|| outcome.error.clone());
        // Tokens are per turn; Claude's cost is the session's running total.
        let cost = outcome.cost_usd.map(|total| {
            let delta = (total - *session_cost).max(0.0);
            *session_cost = total;
            delta
        });
        let usage = &outcome.usage;
        self.store.record_usage(&UsageRecord {
            agent_id: agent.id.clone(),
            turn,
            model: outcome.model.clone().or(agent.model.clone()),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cached_tokens: usage.cached_tokens,
            cost_usd: cost,
            at: jiff::Timestamp::now(),
        })?;
        let mut meta = agent.meta.clone();
        meta["turns"] = json!(turn);
        meta["last_turn_ok"] = json!(outcome.success != Some(false) && error.is_none());
        agent = self.store.update_agent(
            id,
            &AgentPatch {
                resume_token: outcome.resume_token.clone().map(Some),
                result: Some(outcome.result.clone().map(|r| self.redactor.redact(&r))),
                error: Some(error.map(|e| self.redactor.redact(&e))),
                meta: Some(meta),
                ..AgentPatch::default()
            },
        )?;
        Ok(agent)
    }

    /// Move a live agent to `to` (failed or stopped), with why (false if it had already ended).
    fn end_with(&self, id: &str, to: AgentStatus, why: &str) -> Result<bool, RunError> {
        Ok(self.store.transition(
            id,
            &AgentStatus::ACTIVE,
            to,
            &AgentPatch {
                error: Some(Some(why.to_string())),
                ..AgentPatch::default()
            },
        )?)
    }

    async fn finish(
        &self,
        id: &str,
        usage_turn: Option<u32>,
        outcome: &crate::adapter::Outcome,
        exit: &ExitInfo,
        files: &[crate::launch::FileSpec],
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let agent = self.store.get_agent(id)?;
        let stderr_tail = self.redactor.redact(exit.stderr_tail.trim());
        let succeeded = exit.success() && outcome.success != Some(false);
        let error = if succeeded {
            None
        } else {
            let mut parts = vec![format!("{} {}", agent.adapter, exit.describe())];
            if let Some(e) = &outcome.error {
                parts.push(format!("runtime error: {}", self.redactor.redact(e)));
            }
            let tail: Vec<&str> = stderr_tail
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            if !tail.is_empty() {
                parts.push(format!("stderr: {}", tail.join("\n")));
            }
            Some(parts.join("; "))
        };
        // Commit what the agent left on its branch, without Fracta's own files.
        let mut commit = None;
        if succeeded
            && agent.branch.is_some()
            && let Some(ws) = agent.workspace.as_deref()
        {
            let exclude: Vec<PathBuf> = files
                .iter()
                .filter(|f| f.in_workspace)
                .map(|f| f.path.clone())
                .collect();
            match workspace::commit_leftovers(
                Path::new(ws),
                &format!("fracta: {} ({})", agent.task, agent.id),
                &exclude,
            ) {
                Ok(c) => commit = c,
                Err(e) => {
                    tracing::warn!(agent = %agent.id, "could not commit the agent's work: {e}")
                }
            }
        }
        tracing::debug!(agent = %agent.id, commit = ?commit, "leftovers checked");
        if let Some(turn) = usage_turn {
            let usage = &outcome.usage;
            self.store.record_usage(&UsageRecord {
                agent_id: agent.id.clone(),
                turn,
                model: outcome.model.clone().or(agent.model.clone()),
                input_tokens: usage.input_tokens,
                output_tokens: usage.output_tokens,
                cached_tokens: usage.cached_tokens,
                cost_usd: outcome.cost_usd,
                at: jiff::Timestamp::now(),
            })?;
        }
        let mut meta = agent.meta.clone();
        if !stderr_tail.is_empty() {
            meta["stderr_tail"] = json!(stderr_tail);
        }
        if let Some(c) = &commit {
            meta["commit"] = json!(c);
        }
        let patch = AgentPatch {
            resume_token: outcome.resume_token.clone().map(Some),
            result: outcome
                .result
                .clone()
                .map(|r| Some(self.redactor.redact(&r))),
            exit_code: Some(exit.code),
            signal: Some(exit.signal),
            error: error.clone().map(Some),
            pid: Some(None),
            meta: Some(meta),
            ..AgentPatch::default()
        };
        let to = if succeeded {
            AgentStatus::Succeeded
        } else {
            AgentStatus::Failed
        };
        let moved = self
            .store
            .transition(id, &AgentStatus::ACTIVE, to, &patch)?;
        if !moved {
            // Already stopped (or lost): keep that status, record how the process ended.
            let mut p = patch;
            p.error = None;
            self.store.update_agent(id, &p)?;
        }
        let rec = self.store.get_agent(id)?;
        if !moved {
            self.persist(
                &rec,
                &[Event::status(rec.status.as_str(), rec.error.clone())],
                None,
                true,
                observer,
            )?;
        } else if let Some(e) = &error {
            let mut evs = Vec::new();
            if outcome.error.is_none() {
                evs.push(Event::Error(ErrorEvent { message: e.clone() }));
            }
            evs.push(Event::status("failed", Some(exit.describe())));
            self.persist(&rec, &evs, None, true, observer)?;
        } else {
            self.persist(
                &rec,
                &[Event::status(
                    "succeeded",
                    commit.map(|c| format!("committed {c}")),
                )],
                None,
                true,
                observer,
            )?;
        }
        tracing::info!(agent = %rec.id, status = rec.status.as_str(), "agent ended");
        Ok(rec)
    }

    /// Stop an agent and its whole subtree, children first.
    pub async fn stop_tree(&self, id: &str) -> Result<AgentRecord, RunError> {
        let root = self.store.get_agent(id)?;
        let mut order = Vec::new();
        let mut stack = vec![root.id.clone()];
        while let Some(cur) = stack.pop() {
            for c in self.store.children(&cur)? {
                stack.push(c.id);
            }
            order.push(cur);
        }
        for a in order.iter().rev() {
            self.stop(a).await?;
        }
        Ok(self.store.get_agent(&root.id)?)
    }

    /// Stop a running agent and its whole process group.
    pub async fn stop(&self, id: &str) -> Result<AgentRecord, RunError> {
        self.reconcile()?;
        let agent = self.store.get_agent(id)?;
        if agent.status.is_terminal() {
            return Ok(agent);
        }
        if agent
            .host
            .as_deref()
            .is_some_and(|h| h.starts_with(REMOTE_HOST_PREFIX))
            && let Some(remote) = self.remote.get()
        {
            self.end_with(&agent.id, AgentStatus::Stopped, "stopped by request")?;
            remote.stop(&agent).await.map_err(RunError::Other)?;
            tracing::info!(agent = %agent.id, "agent stopped");
            return Ok(self.store.get_agent(&agent.id)?);
        }
        if let Some(h) = &agent.host
            && *h != hostname()
        {
            return Err(RunError::Other(format!(
                "agent {} runs on host {h}; stop it there",
                agent.id
            )));
        }
        self.end_with(&agent.id, AgentStatus::Stopped, "stopped by request")?;
        if let Some(pid) = agent.pid.and_then(|p| u32::try_from(p).ok()) {
            local::stop_group(pid, agent.process_start.as_deref(), STOP_GRACE).await;
        }
        tracing::info!(agent = %agent.id, "agent stopped");
        Ok(self.store.get_agent(&agent.id)?)
    }

    /// Find agents recorded as active on this host whose supervising fracta process is gone,
    /// stop what is left of them, and record them as lost. Returns the ids it fixed.
    pub fn reconcile(&self) -> Result<Vec<String>, RunError> {
        let host = hostname();
        let active = self.store.list_agents(&AgentFilter {
            statuses: AgentStatus::ACTIVE.to_vec(),
            ..AgentFilter::default()
        })?;
        let mut fixed = Vec::new();
        for a in active {
            if a.host.as_deref().is_some_and(|h| h != host) {
                continue;
            }
            let sup = a.meta.get("supervisor");
            let sup_pid = sup
                .and_then(|s| s.get("pid"))
                .and_then(serde_json::Value::as_u64)
                .and_then(|p| u32::try_from(p).ok());
            let sup_id = sup
                .and_then(|s| s.get("identity"))
                .and_then(serde_json::Value::as_str);
            let alive = match sup_pid {
                Some(p) => local::is_alive(p, sup_id),
                // Queued and never launched: judge by age.
                None => {
                    jiff::Timestamp::now().duration_since(a.updated_at)
                        < jiff::SignedDuration::from_secs(60)
                }
            };
            if alive {
                continue;
            }
            if let Some(pid) = a.pid.and_then(|p| u32::try_from(p).ok())
                && local::is_alive(pid, a.process_start.as_deref())
            {
                local::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
            }
            let why = format!(
                "lost: the fracta process that supervised this agent{} is gone, so its events stopped being recorded",
                sup_pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
            );
            if self.store.transition(
                &a.id,
                &AgentStatus::ACTIVE,
                AgentStatus::Lost,
                &AgentPatch {
                    error: Some(Some(why.clone())),
                    pid: Some(None),
                    ..AgentPatch::default()
                },
            )? {
                let _ = self.store.append_events(
                    &a.id,
                    &[NewEvent::new(
                        "status",
                        serde_json::to_value(Event::status("lost", Some(why))).unwrap_or_default(),
                    )],
                );
                tracing::warn!(agent = %a.id, "recorded a ghost agent as lost");
                fixed.push(a.id);
            }
        }
        Ok(fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_precedence_inherited_adapter_profile_runtime_binding() {
        let inherited = vec![
            ("A".to_string(), "inherited".to_string()),
            ("B".to_string(), "inherited".to_string()),
            ("FRACTA_CONFIG".to_string(), "x".to_string()),
            ("KEEP".to_string(), "inherited".to_string()),
        ];
        let env = compose_env(
            inherited,
            &m(&[
                ("A", "adapter"),
                ("B", "adapter"),
                ("C", "adapter"),
                ("D", "adapter"),
            ]),
            &m(&[("B", "profile"), ("C", "profile"), ("D", "profile")]),
            &m(&[("C", "runtime"), ("D", "runtime")]),
            &m(&[("D", "binding")]),
        );
        assert_eq!(
            env,
            m(&[
                ("A", "adapter"),
                ("B", "profile"),
                ("C", "runtime"),
                ("D", "binding"),
                ("KEEP", "inherited")
            ])
        );
    }
}
