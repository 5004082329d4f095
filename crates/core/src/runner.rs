//! One agent's life, in the order it happens: resolve the request (`resolve`) → record it →
//! its workspace (`workspace`) → credentials, env and assertions (`credentials`, `env`) → the
//! adapter's launch → the backend runs it (`backend`, or a `remote` one) → the session loop
//! drives it (`session`) → its end is recorded (`record`). Stopping and reconciling are in
//! `stop`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fracta_config::{LoadedConfig, RuntimeEntry};
use fracta_state::{AgentPatch, AgentRecord, AgentStatus, ProcessRef, Store};

use crate::adapter::{Adapter, LaunchContext, adapter_for};
use crate::backend::{STOP_GRACE, local};
use crate::credentials::{self, ResolvedAuth};
use crate::env::{AGENT_TOKEN_ENV, compose_env, is_secret_env};
use crate::error::RunError;
use crate::event::{Event, MessageEvent, Role};
use crate::launch::{LaunchSpec, SessionKeys};
use crate::record::{Observer, Recorder};
use crate::redact::Redactor;
use crate::remote::{RemoteBackend, RemoteRun, Started};
use crate::resolve::{self, Prepared, SpawnRequest, hostname, locate_binary};
use crate::session::{self, Launched, RunOptions};
use crate::workspace;

/// What the local runner says when the config asks for the Kubernetes backend where it does
/// not run yet.
pub const KUBERNETES_NOT_HERE: &str = "runtime.backend is kubernetes, and on Kubernetes Fracta runs batch agents and control-plane stream sessions so far (and resumes both): set runtime.backend: local for it";

pub struct Runner {
    /// The config new work reads (`cfg()`); `fracta serve` swaps in a changed valid one.
    cfg: std::sync::RwLock<Arc<LoadedConfig>>,
    pub store: Arc<dyn Store>,
    pub redactor: Redactor,
    /// Records events and ends (the same store and redactor).
    pub recorder: Recorder,
    /// Where agents run when `runtime.backend` is not local (set by the binary).
    pub(crate) remote: std::sync::OnceLock<Arc<dyn RemoteBackend>>,
    /// A workspace being made ahead of its agent's record (`fracta spawn`).
    early: std::sync::Mutex<Option<EarlyWorkspace>>,
}

/// Whether `spec`'s env or arguments name `dir` or a path in it.
fn names_path(spec: &crate::launch::LaunchSpec, dir: &Path) -> bool {
    let dir = dir.display().to_string();
    spec.env
        .values()
        .chain(&spec.args)
        .any(|v| v.contains(dir.as_str()))
}

/// The workspace of a root agent, made on a thread of its own while the rest of `fracta spawn`
/// starts (the state store opens, the gateway binds): its agent's id, task and base are known
/// once the request is resolved, before either. The agent's run takes it instead of making
/// one; one never taken (the spawn failed before its agent ran) is removed when dropped.
pub struct EarlyWorkspace {
    agent: String,
    thread:
        Option<std::thread::JoinHandle<Result<workspace::Workspace, workspace::WorkspaceError>>>,
    /// What the thread made, once waited for ([`EarlyWorkspace::wait`]).
    made: Option<Result<workspace::Workspace, workspace::WorkspaceError>>,
}

impl EarlyWorkspace {
    /// Start making the workspace of `agent` (a root agent on the local backend).
    pub fn start(cfg: &LoadedConfig, agent: &AgentRecord) -> std::io::Result<EarlyWorkspace> {
        let project_dir = cfg.project_dir();
        let base = root_base(cfg, agent);
        let worktrees_dir = worktrees_dir(cfg);
        let (id, task) = (agent.id.clone(), agent.task.clone());
        let thread = crate::beside::spawn("workspace", move || {
            make_workspace(&project_dir, worktrees_dir.as_deref(), &id, &task, &base)
        })?;
        Ok(EarlyWorkspace {
            agent: agent.id.clone(),
            thread: Some(thread),
            made: None,
        })
    }

    /// Wait for the thread: the workspace it made, if it made one (it stays this one's).
    fn wait(&mut self) -> Option<&workspace::Workspace> {
        if let Some(joined) = self.thread.take().map(std::thread::JoinHandle::join) {
            self.made = Some(match joined {
                Ok(made) => made,
                // A thread that panicked is an error, not a lost agent.
                Err(_) => Err(workspace::WorkspaceError::Io {
                    path: PathBuf::from(&self.agent),
                    source: std::io::Error::other("the thread making the workspace stopped"),
                }),
            });
        }
        self.made.as_ref().and_then(|m| m.as_ref().ok())
    }

    /// The workspace, once made.
    fn finish(&mut self) -> Result<workspace::Workspace, workspace::WorkspaceError> {
        self.wait();
        self.made.take().unwrap_or_else(|| {
            Err(workspace::WorkspaceError::Io {
                path: PathBuf::from(&self.agent),
                source: std::io::Error::other("the workspace was taken already"),
            })
        })
    }
}

impl Drop for EarlyWorkspace {
    fn drop(&mut self) {
        if self.thread.is_none() && self.made.is_none() {
            return;
        }
        // Never taken: its agent was never run, and nothing can have changed it.
        if let Ok(ws) = self.finish() {
            let removed = match &ws.branch {
                Some(branch) => {
                    workspace::remove_if_unchanged(&ws.path, None, branch, &ws.base, true)
                        .map(|_| ())
                }
                None => std::fs::remove_dir_all(&ws.path).map_err(|source| {
                    workspace::WorkspaceError::Io {
                        path: ws.path.clone(),
                        source,
                    }
                }),
            };
            if let Err(e) = removed {
                tracing::warn!(agent = %self.agent, "could not remove the unused workspace {}: {e}", ws.path.display());
            }
        }
    }
}

/// Make agent `id`'s workspace (a worktree of the project, from `base`), with Fracta's
/// `.gitignore` in `.fracta`: on the early thread or when its run starts.
fn make_workspace(
    project_dir: &std::path::Path,
    worktrees_dir: Option<&std::path::Path>,
    id: &str,
    task: &str,
    base: &workspace::Base,
) -> Result<workspace::Workspace, workspace::WorkspaceError> {
    let fracta_dir = project_dir.join(".fracta");
    workspace::ensure_fracta_ignore(&fracta_dir);
    let t0 = std::time::Instant::now();
    let ws = workspace::create(project_dir, &fracta_dir, worktrees_dir, id, task, base);
    tracing::debug!(agent = %id, ms = t0.elapsed().as_secs_f64() * 1e3, "workspace created");
    ws
}

/// Where agent worktrees go: `project.worktrees_dir`, else the user's state folder.
fn worktrees_dir(cfg: &LoadedConfig) -> Option<PathBuf> {
    cfg.worktrees_dir()
        .map(|d| std::path::absolute(&d).unwrap_or(d))
}

/// Where a root agent's worktree branches from: what it asked for (`--base`), else the branch
/// the project has checked out, else `project.default_base_branch`, else `main`.
fn root_base(cfg: &LoadedConfig, agent: &AgentRecord) -> workspace::Base {
    match &agent.meta.base {
        Some(b) => workspace::Base::Named(b.clone()),
        None => workspace::Base::Current {
            fallback: cfg
                .config
                .project
                .default_base_branch
                .clone()
                .unwrap_or_else(|| "main".into()),
        },
    }
}

/// What a turn asks of its launch.
struct TurnAsk<'a> {
    prompt: &'a str,
    resume_token: Option<&'a str>,
    stream: bool,
}

/// A launch ready to start: what the adapter described, its whole env, the CLI, and a
/// networked session's keys.
struct Ready {
    spec: LaunchSpec,
    env: BTreeMap<String, String>,
    program: PathBuf,
    keys: Option<SessionKeys>,
}

/// A loopback port nobody listens on now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The Fracta process that supervises an agent, as recorded with it (reconcile judges the
/// agent by whether this process still lives).
fn supervisor_meta() -> ProcessRef {
    ProcessRef {
        pid: std::process::id(),
        identity: local::process_identity(std::process::id()),
    }
}

impl Runner {
    pub fn new(cfg: Arc<LoadedConfig>, store: Arc<dyn Store>) -> Self {
        let redactor = Redactor::with_secret_env();
        Runner {
            recorder: Recorder::new(Arc::clone(&store), redactor.clone()),
            cfg: std::sync::RwLock::new(cfg),
            store,
            redactor,
            remote: std::sync::OnceLock::new(),
            early: std::sync::Mutex::new(None),
        }
    }

    /// Run the agent `early` was started for with it, rather than making its workspace then.
    pub fn set_early_workspace(&self, early: EarlyWorkspace) {
        let old = self.early_slot().replace(early);
        drop(old);
    }

    /// What the record of `agent` says of its workspace `ws`: where it is, its branch and
    /// base, and the agent's own folder.
    fn placed(&self, agent: &AgentRecord, ws: &workspace::Workspace) -> AgentPatch {
        let home = self
            .cfg()
            .project_dir()
            .join(".fracta/agents")
            .join(&agent.id);
        let mut meta = agent.meta.clone();
        meta.base = ws.branch.as_ref().map(|_| ws.base.clone());
        AgentPatch {
            meta: Some(meta),
            workspace: Some(Some(ws.path.display().to_string())),
            branch: Some(ws.branch.clone()),
            runtime_home: Some(Some(home.display().to_string())),
            ..AgentPatch::default()
        }
    }

    fn early_slot(&self) -> std::sync::MutexGuard<'_, Option<EarlyWorkspace>> {
        self.early
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// [`Runner::placed`] of the workspace made early for `agent`, once made, if one was (it
    /// stays to be taken).
    fn early_placed(&self, agent: &AgentRecord) -> Option<AgentPatch> {
        let mut slot = self.early_slot();
        let ws = slot
            .as_mut()
            .filter(|e| e.agent == agent.id)
            .and_then(EarlyWorkspace::wait)?;
        Some(self.placed(agent, ws))
    }

    /// The early workspace of `agent`, if one was started for it.
    fn take_early(&self, agent: &str) -> Option<EarlyWorkspace> {
        let mut slot = self.early_slot();
        if slot.as_ref().is_some_and(|e| e.agent == agent) {
            slot.take()
        } else {
            None
        }
    }

    /// The config as it is now. A run reads it as it goes: a config swapped in meanwhile
    /// applies to what the run has not resolved yet.
    pub fn cfg(&self) -> Arc<LoadedConfig> {
        match self.cfg.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Use `cfg` from now on (for new spawns; what runs keeps what it resolved).
    pub fn set_config(&self, cfg: LoadedConfig) {
        match self.cfg.write() {
            Ok(mut c) => *c = Arc::new(cfg),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(cfg),
        }
    }

    /// Run agents on `remote` when `runtime.backend` asks for it.
    pub fn set_remote(&self, remote: Arc<dyn RemoteBackend>) {
        let _ = self.remote.set(remote);
    }

    fn on_kubernetes(&self) -> bool {
        self.cfg().config.runtime.backend == fracta_config::Backend::Kubernetes
    }

    /// `.fracta/runtimes/<name>`: state shared by a runtime entry's agents (see
    /// `LaunchContext::runtime_state`).
    fn runtime_state(&self, runtime: &str) -> PathBuf {
        self.cfg()
            .project_dir()
            .join(".fracta")
            .join("runtimes")
            .join(runtime)
    }

    /// Resolve a request into a queued agent record (nothing runs yet). On Kubernetes, a
    /// stream agent of a runtime that cannot serve its session in a Pod is refused here.
    pub fn prepare(&self, req: &SpawnRequest) -> Result<Prepared, RunError> {
        let cfg = self.cfg();
        let p = resolve::prepare(&cfg, Some(self.store.as_ref()), req)?;
        if self.on_kubernetes()
            && let Ok(rt) = resolve::runtime(&cfg, &p.runtime_name)
            && adapter_for(rt.adapter).capabilities().stdio_session
        {
            return Err(RunError::Usage(format!(
                "runtime `{}` cannot run on Kubernetes: {}",
                p.runtime_name,
                crate::adapter::acp::NOT_ON_KUBERNETES
            )));
        }
        if self.on_kubernetes()
            && p.agent.mode == fracta_state::Mode::Stream
            && let Ok(rt) = resolve::runtime(&self.cfg(), &p.runtime_name)
            && !adapter_for(rt.adapter).capabilities().stream_on_kubernetes
        {
            return Err(RunError::Usage(resolve::stream_local_only(adapter_for(
                rt.adapter,
            ))));
        }
        Ok(p)
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

    /// Insert a prepared agent (queued) and its task into the store, with the Fracta process
    /// that supervises it.
    pub fn record(&self, prepared: Prepared) -> Result<AgentRecord, RunError> {
        let Prepared {
            mut agent,
            runtime_name,
            task,
        } = prepared;
        let task = fracta_state::TaskRecord {
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
        };
        // A queued agent has a supervisor too: reconcile must not take it for a ghost.
        agent.meta.supervisor = Some(supervisor_meta());
        // A workspace made early (`fracta spawn`) is recorded with it: one write, not two.
        // Such an agent is `fracta spawn`'s own, and nothing reads its record before its
        // launch writes `running`: the record goes into that write, once the CLI has started.
        let agent = match self.early_placed(&agent) {
            Some(placed) => {
                placed.apply(&mut agent);
                self.store
                    .insert_agent_of_task_with_next_write(&task, &agent)?
            }
            None => self.store.insert_agent_of_task(&task, &agent)?,
        };
        tracing::info!(agent = %agent.id, task = %agent.task, runtime = %runtime_name, parent = ?agent.parent_id, "agent recorded");
        Ok(agent)
    }

    /// Create a recorded agent's workspace and run its first turn (on Kubernetes: hand it to
    /// the remote backend).
    pub async fn run_recorded(
        &self,
        mut agent: AgentRecord,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        if self.on_kubernetes() {
            return self.run_remote(agent, opts, observer).await;
        }
        let project_dir = self.cfg().project_dir();
        let made = match self.take_early(&agent.id) {
            Some(mut early) => early.finish(),
            None => make_workspace(
                &project_dir,
                self.worktrees_dir().as_deref(),
                &agent.id,
                &agent.task,
                &self.base_of(&agent)?,
            ),
        };
        match made {
            // Recorded with it already ([`Runner::record`]).
            Ok(ws) if agent.workspace.as_deref() == Some(&*ws.path.display().to_string()) => {}
            Ok(ws) => {
                agent = self
                    .store
                    .update_agent(&agent.id, &self.placed(&agent, &ws))?
            }
            Err(e) => {
                return self.recorder.fail_before_start(
                    &agent,
                    &format!("cannot create the workspace: {e}"),
                    observer,
                );
            }
        }
        let prompt = agent.prompt.clone();
        self.run_turn(agent, &prompt, None, opts, observer).await
    }

    /// Where an agent's worktree branches from: what it asked for (`--base`), else its
    /// parent's branch (a tree of agents builds on its own work), else the branch the project
    /// has checked out, else `project.default_base_branch`, else `main`.
    fn base_of(&self, agent: &AgentRecord) -> Result<workspace::Base, RunError> {
        if agent.meta.base.is_none()
            && let Some(p) = &agent.parent_id
            && let Some(b) = self.store.get_agent(p)?.branch
        {
            return Ok(workspace::Base::Named(b));
        }
        Ok(root_base(&self.cfg(), agent))
    }

    /// A recorded agent on the remote backend: placed there, then driven and recorded here
    /// exactly as a local one.
    async fn run_remote(
        &self,
        agent: AgentRecord,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let Some(remote) = self.remote.get() else {
            return self
                .recorder
                .fail_before_start(&agent, KUBERNETES_NOT_HERE, observer);
        };
        let rt = resolve::runtime(&self.cfg(), &agent.runtime)?.clone();
        let adapter = adapter_for(rt.adapter);
        let turn = agent.meta.turns + 1;
        // A live session needs its turns' inbox (a control plane's); a stream agent's resumed
        // turn is one turn, as locally.
        let stream = agent.mode == fracta_state::Mode::Stream && opts.inbox.is_some();
        if agent.mode == fracta_state::Mode::Stream && !stream && turn == 1 {
            return self
                .recorder
                .fail_before_start(&agent, KUBERNETES_NOT_HERE, observer);
        }
        // Its prompt is its first event, as for a local agent.
        self.recorder.persist(
            &agent,
            &[Event::Message(MessageEvent {
                role: Role::User,
                text: agent.prompt.clone(),
            })],
            None,
            true,
            observer,
        )?;
        let run = RemoteRun {
            cfg: &self.cfg(),
            recorder: &self.recorder,
            agent,
            opts,
            observer: &mut *observer,
        };
        let (agent, mut workload, detail, connect) = match remote.start(run).await? {
            Started::Running {
                agent,
                workload,
                detail,
                connect,
            } => (agent, workload, detail, connect),
            Started::Failed(rec) => return Ok(rec),
        };
        let mut meta = agent.meta.clone();
        meta.turns = turn;
        let patch = AgentPatch {
            meta: Some(meta),
            ..AgentPatch::default()
        };
        let (started, agent) = self
            .recorder
            .mark_running(&agent, &patch, detail, &[], observer)?;
        if !started {
            // Stopped while it was being placed.
            workload.terminate();
            let _ = workload.wait().await;
            return Ok(agent);
        }
        let prompt = agent.prompt.clone();
        let wall_clock = self.wall_clock(&agent);
        session::drive(
            &self.recorder,
            agent,
            adapter,
            Launched {
                turn,
                prompt: &prompt,
                resume_token: None,
                stream,
                stdin: None,
                connect,
                files: &[],
                wall_clock,
                max_steps: adapter.capabilities().max_steps(&rt),
                session_init: None,
                worktree: None,
            },
            workload,
            opts,
            observer,
        )
        .await
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
        if self.on_kubernetes() {
            return self.resume_remote(id, prompt, opts, observer).await;
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
        let agent = match agent.meta.unchanged_branch.clone() {
            Some(_) if agent.workspace.is_none() => self.recreate_workspace(agent)?,
            _ => agent,
        };
        if agent
            .workspace
            .as_deref()
            .is_none_or(|w| !std::path::Path::new(w).is_dir())
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

    /// Where agent worktrees go: `project.worktrees_dir`, else the user's state folder.
    fn worktrees_dir(&self) -> Option<PathBuf> {
        worktrees_dir(&self.cfg())
    }

    /// An agent whose worktree and branch were removed because it changed nothing gets them
    /// again, from the same base, at the same path (its runtime's session finds it there).
    fn recreate_workspace(&self, agent: AgentRecord) -> Result<AgentRecord, RunError> {
        let project_dir = self.cfg().project_dir();
        let base = self.base_of(&agent)?;
        let ws = workspace::create(
            &project_dir,
            &project_dir.join(".fracta"),
            self.worktrees_dir().as_deref(),
            &agent.id,
            &agent.task,
            &base,
        )
        .map_err(|e| {
            RunError::Usage(format!(
                "agent {} changed nothing, so its worktree was removed, and it cannot be made again: {e}",
                agent.id
            ))
        })?;
        let mut meta = agent.meta.clone();
        meta.unchanged_branch = None;
        Ok(self.store.update_agent(
            &agent.id,
            &AgentPatch {
                meta: Some(meta),
                workspace: Some(Some(ws.path.display().to_string())),
                branch: Some(ws.branch.clone()),
                ..AgentPatch::default()
            },
        )?)
    }

    /// An ended agent taking a new turn: back to starting, its last end's error and exit
    /// cleared.
    fn reopen(&self, id: &str) -> Result<(), RunError> {
        self.store.transition(
            id,
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
        Ok(())
    }

    /// A resumed turn on Kubernetes: a new Job on the agent's claim (its workspace and the
    /// runtime's home, kept since its last turn), continuing its conversation. A closed stream
    /// session resumes so too: one turn, as a local one does.
    async fn resume_remote(
        &self,
        id: &str,
        prompt: &str,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let agent = self.store.get_agent(id)?;
        if !agent.status.is_terminal() {
            return Err(RunError::Usage(format!(
                "agent {} is {}; wait for it to end (or stop it) before resuming",
                agent.id,
                agent.status.as_str()
            )));
        }
        if agent.meta.kubernetes.is_none() {
            return Err(RunError::Usage(format!(
                "agent {} did not run on Kubernetes (it has no claim there); resume it with runtime.backend: local",
                agent.id
            )));
        }
        if agent.resume_token.is_none() {
            return Err(RunError::Usage(format!(
                "agent {} has no resume token (its runtime never reported a session), so it cannot be resumed",
                agent.id
            )));
        }
        self.reopen(&agent.id)?;
        let mut agent = self.store.get_agent(id)?;
        // This turn's prompt (the record keeps the first): what the new Job is given.
        agent.prompt = prompt.to_string();
        self.run_remote(agent, opts, observer).await
    }

    /// The agent's environment: the runtime's `env` expanded (secret-looking values registered
    /// with the redactor) on top of the inherited, adapter and profile layers, bindings last.
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

    /// The wall-clock budget of an agent: its own (narrowed by its parent), else the config's.
    fn wall_clock(&self, agent: &AgentRecord) -> Duration {
        Duration::from_secs(resolve::wall_clock_secs(&self.cfg(), agent))
    }

    /// A session served over the network gets its own loopback port and secret.
    fn session_keys(&self) -> std::io::Result<SessionKeys> {
        let port = free_port()?;
        let secret = crate::secret::new_token()?;
        self.redactor.add(&secret);
        self.redactor.add(&crate::secret::sha256_hex(&secret));
        Ok(SessionKeys {
            host: "127.0.0.1".into(),
            port,
            secret,
        })
    }

    /// Everything between a recorded agent and its running CLI: credentials, the launch, its
    /// env and assertions, the CLI, its files. `Err` is why it cannot start.
    async fn launch(
        &self,
        agent: &AgentRecord,
        rt: &RuntimeEntry,
        adapter: &dyn Adapter,
        turn: TurnAsk<'_>,
        opts: &RunOptions,
    ) -> Result<Ready, String> {
        let TurnAsk {
            prompt,
            resume_token,
            stream,
        } = turn;
        let t0 = std::time::Instant::now();
        let auth = credentials::resolve(
            &self.cfg(),
            &agent.runtime,
            rt,
            &opts.request,
            &self.redactor,
        )
        .await
        .map_err(|e| e.to_string())?;
        let keys = if stream && adapter.capabilities().networked_session {
            Some(
                self.session_keys()
                    .map_err(|e| format!("no free loopback port or secret for the session: {e}"))?,
            )
        } else {
            None
        };
        let workspace = PathBuf::from(agent.workspace.clone().unwrap_or_default());
        let home = PathBuf::from(agent.runtime_home.clone().unwrap_or_default());
        let ctx = LaunchContext {
            session: keys.as_ref(),
            agent_id: &agent.id,
            prompt,
            model: agent.model.as_deref(),
            resume_token,
            workspace: &workspace,
            runtime_home: &home,
            runtime_state: &self.runtime_state(&agent.runtime),
            runtime: rt,
            project: &self.cfg().config.project,
            env: &auth.binding_env,
            api_key_helper: auth.api_key_helper.as_ref(),
            gateway: opts.gateway.as_ref(),
        };
        let spec = if stream {
            adapter.stream_launch(&ctx)
        } else {
            adapter.batch_launch(&ctx)
        }
        .map_err(|e| e.to_string())?;
        let mut env = self.build_env(&agent.runtime, rt, &spec.env, &auth)?;
        for k in &spec.env_remove {
            env.remove(k);
        }
        if let Some(g) = &opts.gateway {
            self.redactor.add(&g.token);
            env.insert(AGENT_TOKEN_ENV.to_string(), g.token.clone());
        }
        credentials::check_env(&auth, &agent.runtime, adapter, &env).map_err(|e| e.to_string())?;
        tracing::debug!(agent = %agent.id, ms = t0.elapsed().as_secs_f64() * 1e3, "credentials and env resolved");
        let mut program = locate_binary(&self.cfg(), rt, adapter)?;
        if let Some(native) = adapter.native_start(&program) {
            tracing::debug!(agent = %agent.id, shim = %program.display(), native = %native.program.display(), "starting the CLI's native binary, not its npm shim");
            for k in &native.env_remove {
                env.remove(k);
            }
            env.extend(native.env);
            program = native.program;
        }
        // The agent's own folder, made when its launch names it (a runtime told by env or
        // argument to keep its state there); a file Fracta writes there gets its folder with
        // it. A Codex agent's launch names none: no empty folder per spawn.
        if !home.as_os_str().is_empty() && names_path(&spec, &home) {
            std::fs::create_dir_all(&home)
                .map_err(|e| format!("cannot create the runtime home {}: {e}", home.display()))?;
        }
        local::write_files(&spec).map_err(|e| e.to_string())?;
        if agent.branch.is_some() {
            let ours: Vec<PathBuf> = spec
                .files
                .iter()
                .filter(|f| f.in_workspace)
                .map(|f| f.path.clone())
                .collect();
            if let Err(e) = workspace::keep_out_of_commits(&workspace, &ours) {
                tracing::warn!(agent = %agent.id, "could not exclude Fracta's files from git: {e}");
            }
        }
        tracing::debug!(agent = %agent.id, ms = t0.elapsed().as_secs_f64() * 1e3, "files written");
        Ok(Ready {
            spec,
            env,
            program,
            keys,
        })
    }

    /// A turn, then: an agent that ended having changed nothing leaves no branch.
    async fn run_turn(
        &self,
        agent: AgentRecord,
        prompt: &str,
        resume_token: Option<&str>,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let rec = self
            .run_turn_inner(agent, prompt, resume_token, opts, observer)
            .await?;
        Ok(self.drop_if_unchanged(rec))
    }

    /// An ended agent that changed nothing leaves no branch. A run's end removes it before
    /// recording the end (`Recorder::finish_local`); this catches the other ends (failed
    /// before start, stopped).
    fn drop_if_unchanged(&self, rec: AgentRecord) -> AgentRecord {
        if !rec.status.is_terminal() || rec.branch.is_none() {
            return rec;
        }
        let Some(branch) = self.recorder.remove_if_unchanged(&rec, false, None) else {
            return rec;
        };
        let mut meta = rec.meta.clone();
        meta.unchanged_branch = Some(branch);
        let patch = AgentPatch {
            meta: Some(meta),
            branch: Some(None),
            workspace: Some(None),
            ..AgentPatch::default()
        };
        match self.store.update_agent(&rec.id, &patch) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(agent = %rec.id, "could not record that the agent changed nothing: {e}");
                rec
            }
        }
    }

    async fn run_turn_inner(
        &self,
        agent: AgentRecord,
        prompt: &str,
        resume_token: Option<&str>,
        opts: &RunOptions,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let rt = resolve::runtime(&self.cfg(), &agent.runtime)?.clone();
        let adapter = adapter_for(rt.adapter);
        let turn = agent.meta.turns + 1;
        let agent = if turn > 1 {
            // A resumed turn: back to starting, and show the new prompt.
            self.reopen(&agent.id)?;
            self.store.get_agent(&agent.id)?
        } else {
            // As recorded with its workspace, just now.
            agent
        };
        // The turn's prompt is its first event. Without setup commands to run first, it is
        // written once the CLI has been started (its start-up overlaps the write), or before
        // the failure that kept it from starting.
        let setup_first = turn == 1 && !self.cfg().config.project.setup.is_empty();
        let prompt_event = Event::Message(MessageEvent {
            role: Role::User,
            text: prompt.to_string(),
        });
        let show_prompt = |observer: &mut dyn Observer| {
            self.recorder.persist(
                &agent,
                std::slice::from_ref(&prompt_event),
                None,
                true,
                observer,
            )
        };
        let fail = |why: &str, observer: &mut dyn Observer| {
            if !setup_first {
                show_prompt(observer)?;
            }
            self.recorder.fail_before_start(&agent, why, observer)
        };
        if setup_first {
            show_prompt(observer)?;
            let ws = PathBuf::from(agent.workspace.clone().unwrap_or_default());
            let setup = &self.cfg().config.project.setup;
            let shutdown = opts.shutdown.as_ref();
            match crate::setup::run(&self.recorder, &agent, setup, &ws, shutdown, observer).await? {
                crate::setup::SetupEnd::Ready => {}
                crate::setup::SetupEnd::Failed(why) => {
                    return self.recorder.fail_before_start(&agent, &why, observer);
                }
                crate::setup::SetupEnd::Cancelled(why) => {
                    // Stopped by request (already recorded), or Fracta is going away.
                    if self
                        .recorder
                        .end_with(&agent.id, AgentStatus::Stopped, &why)?
                    {
                        let rec = self.store.get_agent(&agent.id)?;
                        self.recorder.persist(
                            &rec,
                            &[Event::status("stopped", Some(why))],
                            None,
                            true,
                            observer,
                        )?;
                    }
                    return Ok(self.store.get_agent(&agent.id)?);
                }
            }
        }
        let stream = agent.mode == fracta_state::Mode::Stream && opts.inbox.is_some();
        let ask = TurnAsk {
            prompt,
            resume_token,
            stream,
        };
        let Ready {
            spec,
            env,
            program,
            keys,
        } = match self.launch(&agent, &rt, adapter, ask, opts).await {
            Ok(l) => l,
            Err(why) => return fail(&why, observer),
        };
        let env_list: Vec<(String, String)> = env.into_iter().collect();
        let command = self.redactor.redact(&spec.display_command());
        tracing::debug!(agent = %agent.id, %command, "launching");
        let mut proc = match local::spawn(&spec, &program, &env_list) {
            Ok(p) => p,
            Err(e) => return fail(&e.to_string(), observer),
        };
        let mut meta = agent.meta.clone();
        meta.turns = turn;
        meta.supervisor = Some(supervisor_meta());
        meta.command = Some(command.clone());
        // Its prompt (unless the setup's run showed it) and that it runs: one write.
        let first = if setup_first {
            &[][..]
        } else {
            std::slice::from_ref(&prompt_event)
        };
        let marked = self.recorder.mark_running(
            &agent,
            &AgentPatch {
                pid: Some(Some(i64::from(proc.pid))),
                process_start: Some(proc.identity.clone()),
                host: Some(Some(hostname())),
                meta: Some(meta),
                ..AgentPatch::default()
            },
            format!("pid {}", proc.pid),
            first,
            observer,
        );
        let (started, agent) = match marked {
            Ok(m) => m,
            Err(e) => {
                // Not recorded: not run either.
                local::stop_group(proc.pid, proc.identity.as_deref(), STOP_GRACE).await;
                let _ = proc.wait().await;
                return Err(e);
            }
        };
        if !started {
            // Stopped between record and launch.
            local::stop_group(proc.pid, proc.identity.as_deref(), STOP_GRACE).await;
            let _ = proc.wait().await;
            return Ok(agent);
        }
        // Where its session is reached when not over stdin: the endpoint and its secret.
        let connect = spec
            .endpoint
            .clone()
            .map(|e| (e, keys.map(|k| k.secret).unwrap_or_default()));
        let stdin = proc.stdin.take();
        let wall_clock = self.wall_clock(&agent);
        // Its worktree opened now, while the CLI starts, not after it exits: an open reads
        // every config file of the repository (~0.3 ms), and the checks at the end need it.
        let worktree = agent
            .branch
            .as_ref()
            .and(agent.workspace.as_deref())
            .and_then(|ws| workspace::open_worktree(Path::new(ws)));
        session::drive(
            &self.recorder,
            agent,
            adapter,
            Launched {
                turn,
                prompt,
                resume_token,
                stream,
                stdin,
                connect,
                files: &spec.files,
                wall_clock,
                max_steps: adapter.capabilities().max_steps(&rt),
                session_init: spec.session_init.as_ref().map(|i| &i.0),
                worktree,
            },
            Box::new(proc),
            opts,
            observer,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::workspace::tests::{repo, sh as git};

    /// An agent's own folder is made only when its launch names it: OpenCode's database in it,
    /// yes; a Codex launch (its home is the runtime's, shared), no.
    #[test]
    fn the_runtime_home_is_named_by_env_or_args_or_not_at_all() {
        let home = Path::new("/p/.fracta/agents/01ABC");
        let mut spec = crate::launch::LaunchSpec::default();
        spec.env.insert(
            "CODEX_HOME".into(),
            "/p/.fracta/runtimes/codex/codex-home".into(),
        );
        spec.args = vec!["exec".into(), "--json".into()];
        assert!(!names_path(&spec, home));
        spec.env.insert(
            "OPENCODE_DB".into(),
            "/p/.fracta/agents/01ABC/opencode.db".into(),
        );
        assert!(names_path(&spec, home));
        spec.env.clear();
        spec.args
            .push("--mcp-config=/p/.fracta/agents/01ABC/claude-mcp.json".into());
        assert!(names_path(&spec, home));
    }

    /// A workspace started ahead of its agent (`fracta spawn` makes it while the store opens)
    /// is the one the agent's run takes; one never taken (the spawn failed before its agent
    /// ran) leaves no folder and no branch behind.
    #[test]
    fn an_early_workspace_is_taken_by_its_agent_or_removed() {
        let dir = repo(&[]);
        let repo = dir.path().to_path_buf();
        let outside = tempfile::tempdir().unwrap();
        let worktrees = outside.path().join("worktrees");
        let cfg = fracta_config::parse(
            &format!(
                "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n      command: /bin/true\nproject:\n  worktrees_dir: {}\n",
                worktrees.display()
            ),
            &repo.join("fracta.yaml"),
        )
        .unwrap();
        let prepare = || {
            resolve::prepare(
                &cfg,
                None,
                &SpawnRequest {
                    task: "t".into(),
                    prompt: Some("p".into()),
                    ..SpawnRequest::default()
                },
            )
            .unwrap()
        };
        let branches = || git(&repo, &["branch", "--list", "fracta/*"]);

        let unused = prepare().agent;
        drop(EarlyWorkspace::start(&cfg, &unused).unwrap());
        // Its branch is deleted on a thread; the binary waits for it before it exits.
        crate::workspace::finish_discards();
        assert!(!worktrees.join(&unused.id).exists());
        assert_eq!(branches(), "");
        assert_eq!(
            git(&repo, &["worktree", "list", "--porcelain"])
                .matches("worktree ")
                .count(),
            1
        );

        let agent = prepare().agent;
        let store: Arc<dyn Store> = Arc::new(fracta_state::SqliteStore::open_in_memory().unwrap());
        let runner = Runner::new(Arc::new(cfg.clone()), store);
        runner.set_early_workspace(EarlyWorkspace::start(&cfg, &agent).unwrap());
        assert!(runner.take_early("another agent").is_none());
        let ws = runner.take_early(&agent.id).unwrap().finish().unwrap();
        assert_eq!(ws.path, worktrees.join(&agent.id));
        assert_eq!(ws.base, "main");
        assert!(ws.path.join("README.md").is_file());
        assert!(branches().contains(ws.branch.as_deref().unwrap()));

        // Recorded once made: the record names it (one write), and the run still takes it.
        let prepared = prepare();
        let id = prepared.agent.id.clone();
        runner.set_early_workspace(EarlyWorkspace::start(&cfg, &prepared.agent).unwrap());
        let rec = runner.record(prepared).unwrap();
        let path = worktrees.join(&id);
        assert_eq!(rec.workspace.as_deref(), Some(&*path.display().to_string()));
        assert!(branches().contains(rec.branch.as_deref().unwrap()));
        assert_eq!(rec.meta.base.as_deref(), Some("main"));
        assert!(
            rec.runtime_home
                .unwrap()
                .ends_with(&format!(".fracta/agents/{id}"))
        );
        assert_eq!(runner.store.get_agent(&id).unwrap().branch, rec.branch);
        let ws = runner.take_early(&id).unwrap().finish().unwrap();
        assert_eq!(ws.path, path);
    }
}
