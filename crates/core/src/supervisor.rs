//! The control plane's heart: a `Supervisor` owns agents that outlive one call (children
//! spawned through MCP, detached runs), enforces budgets, issues per-agent gateway tokens that
//! act only on their own subtree, and stops whole trees.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use fracta_config::Budgets;
use fracta_state::{AgentBudgets, AgentRecord, AgentStatus};
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use crate::adapter::adapter_named;
use crate::credentials::RequestContext;
use crate::error::RunError;
use crate::event::Event;
use crate::launch::Gateway;
use crate::record::Observer;
use crate::resolve::{Prepared, SpawnRequest};
use crate::runner::Runner;
use crate::session::{RunOptions, Shutdown, SteerRequest, StreamTurn};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A person (the CLI, `fracta mcp` over stdio, the HTTP API's admin).
    User,
    /// An agent, identified by its gateway token.
    Agent(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("budget exceeded: {budget} is {limit} ({detail})")]
    Budget {
        budget: &'static str,
        limit: u64,
        detail: String,
    },
    #[error(
        "agent {target} is not in your subtree: an agent may act only on itself and the agents it spawned (directly or not)"
    )]
    Forbidden { target: String },
    /// The gateway never lets an agent stop itself (its subtree would go with it).
    #[error(
        "agent {id} is you: an agent cannot stop itself through the gateway; finish your turn instead"
    )]
    SelfStop { id: String },
    #[error(
        "agent {id} has no live stream session (it is {status}): `send` needs a running stream session; resume an ended agent instead"
    )]
    NoSession { id: String, status: &'static str },
    /// A steer the session could not take (not codex, no turn in flight, refused).
    #[error("{0}")]
    Steer(String),
    #[error(transparent)]
    Run(#[from] RunError),
    #[error(transparent)]
    Store(#[from] fracta_state::StoreError),
}

/// One event of one agent, for live subscribers (SSE, the foreground view).
#[derive(Debug, Clone)]
pub struct AgentEvent {
    pub agent_id: String,
    pub runtime: String,
    pub seq: u64,
    pub event: Event,
}

#[derive(Default)]
struct State {
    /// Gateway token → agent id.
    tokens: HashMap<String, String>,
    /// Agents whose run this supervisor owns → "ended" signal.
    live: HashMap<String, watch::Receiver<bool>>,
    /// Live stream sessions → their turn queue and steering input.
    sessions: HashMap<String, SessionHandle>,
}

#[derive(Clone)]
struct SessionHandle {
    turns: mpsc::Sender<StreamTurn>,
    steer: mpsc::Sender<SteerRequest>,
    /// Set by the session while it waits for its next turn.
    waiting: Arc<std::sync::atomic::AtomicBool>,
}

/// What a background run does.
enum Work {
    /// The agent's first turn (it is recorded and queued).
    First(Box<AgentRecord>),
    /// A new turn of an ended agent's conversation.
    Resume(String),
}

pub struct Supervisor {
    pub runner: Arc<Runner>,
    gateway_url: OnceLock<String>,
    running: Arc<Semaphore>,
    state: Mutex<State>,
    /// Held while a spawn checks its parent's budgets and records the child; not `state`,
    /// which token checks need while that record waits for the database.
    spawn_gate: Mutex<()>,
    /// The live tap, made by the first [`Supervisor::subscribe`]: a process nobody watches
    /// live (`spawn --json`) neither allocates its buffer nor copies an event into it.
    events: Arc<OnceLock<broadcast::Sender<AgentEvent>>>,
    /// Fracta's shutdown, announced by the binary that caught the signal.
    shutdown: watch::Sender<Option<Shutdown>>,
}

/// A fresh random token for an agent or a session (the OS random source, or an error).
fn new_token() -> Result<String, ControlError> {
    crate::secret::new_token().map_err(|e| ControlError::Run(RunError::Other(e.to_string())))
}

struct Broadcast(Arc<OnceLock<broadcast::Sender<AgentEvent>>>);

impl Observer for Broadcast {
    fn on_event(&mut self, agent: &AgentRecord, seq: u64, event: &Event) {
        let Some(tx) = self.0.get().filter(|tx| tx.receiver_count() > 0) else {
            return;
        };
        let _ = tx.send(AgentEvent {
            agent_id: agent.id.clone(),
            runtime: agent.runtime.clone(),
            seq,
            event: event.clone(),
        });
    }
}

/// Lower each limit of `parent` to the one `asked` for, where it asks for less.
pub fn narrow(parent: &Budgets, asked: &Budgets) -> Budgets {
    fn min<T: Ord + Copy>(p: T, a: Option<T>) -> Option<T> {
        Some(a.map_or(p, |a| a.min(p)))
    }
    Budgets {
        max_depth: min(parent.max_depth(), asked.max_depth),
        max_children: min(parent.max_children(), asked.max_children),
        max_running: min(parent.max_running(), asked.max_running),
        wall_clock_secs: min(parent.wall_clock_secs(), asked.wall_clock_secs),
    }
}

/// An agent's own budgets, as recorded with it (else the config's).
fn budgets_of(agent: &AgentRecord, default: &Budgets) -> Budgets {
    agent.meta.budgets.map_or(*default, |b| Budgets {
        max_depth: b.max_depth,
        max_children: b.max_children,
        max_running: b.max_running,
        wall_clock_secs: b.wall_clock_secs,
    })
}

/// Budgets as recorded with an agent.
fn recorded(b: &Budgets) -> AgentBudgets {
    AgentBudgets {
        max_depth: b.max_depth,
        max_children: b.max_children,
        max_running: b.max_running,
        wall_clock_secs: b.wall_clock_secs,
    }
}

impl Supervisor {
    pub fn new(runner: Arc<Runner>) -> Arc<Supervisor> {
        let max = runner.cfg().config.agents.budgets.max_running().max(1) as usize;
        Arc::new(Supervisor {
            runner,
            gateway_url: OnceLock::new(),
            running: Arc::new(Semaphore::new(max)),
            state: Mutex::new(State::default()),
            spawn_gate: Mutex::new(()),
            events: Arc::default(),
            shutdown: watch::channel(None).0,
        })
    }

    /// Where agents reach the MCP gateway; set once the server is listening.
    pub fn set_gateway_url(&self, url: String) {
        let _ = self.gateway_url.set(url);
    }

    /// Fracta is going away (the binary caught a signal): every run this supervisor hosts
    /// hears it — an interrupt stops them, a termination closes idle sessions (resumable) and
    /// stops the rest.
    pub fn shut_down(&self, why: Shutdown) {
        self.shutdown.send_replace(Some(why));
    }

    /// Hears [`Supervisor::shut_down`] (e.g. to end streams that would otherwise never end).
    pub fn shutdown_watch(&self) -> watch::Receiver<Option<Shutdown>> {
        self.shutdown.subscribe()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<AgentEvent> {
        // A live tap only (the store is the record; a lagging receiver skips ahead), so a
        // modest buffer: each slot holds a whole event, and 4096 of them cost ~0.5 ms of page
        // faults.
        self.events
            .get_or_init(|| broadcast::channel(1024).0)
            .subscribe()
    }

    /// A gateway token for an agent this control plane knows, valid until the supervisor ends
    /// (for tools that act as that agent, e.g. a benchmark or a stream session's own client).
    pub fn issue_token(&self, agent_id: &str) -> Result<String, ControlError> {
        let token = new_token()?;
        if let Ok(mut st) = self.state.lock() {
            st.tokens.insert(token.clone(), agent_id.to_string());
        }
        Ok(token)
    }

    /// The agent a gateway token belongs to.
    pub fn authenticate(&self, token: &str) -> Option<String> {
        let st = self.state.lock().ok()?;
        st.tokens.get(token).cloned()
    }

    /// The agent `id` names (a full id in any case, or a unique prefix), if the caller may act
    /// on it: itself or one of its descendants. Every tool and route resolves ids here, so an
    /// authorization or self-check always compares full ids. For an agent, a prefix is matched
    /// against the agents it may see: one match is that agent, several are an ambiguity listing
    /// only them, none is not found. A target outside its subtree is named as the caller
    /// spelled it (its full id is not revealed).
    pub fn authorize(&self, caller: &Caller, id: &str) -> Result<AgentRecord, ControlError> {
        let target = match (self.runner.store.get_agent(id), caller) {
            (Ok(a), _) => a,
            (Err(fracta_state::StoreError::Ambiguous { prefix, .. }), Caller::Agent(me)) => {
                return self.resolve_within(me, &prefix);
            }
            (Err(e), _) => return Err(e.into()),
        };
        let Caller::Agent(me) = caller else {
            return Ok(target);
        };
        if self.is_within(me, &target.id)? {
            Ok(target)
        } else {
            Err(ControlError::Forbidden {
                target: id.to_string(),
            })
        }
    }

    /// The agent of `me`'s subtree (itself included) whose id starts with `prefix` (any case).
    fn resolve_within(&self, me: &str, prefix: &str) -> Result<AgentRecord, ControlError> {
        const LISTED: usize = 10;
        let want = prefix.to_ascii_uppercase();
        let mut matches = Vec::new();
        let mut stack = vec![self.runner.store.get_agent(me)?];
        while let Some(a) = stack.pop() {
            stack.extend(self.runner.store.children(&a.id)?);
            if a.id.to_ascii_uppercase().starts_with(&want) {
                matches.push(a);
            }
        }
        matches.sort_by(|a, b| a.id.cmp(&b.id));
        match matches.len() {
            0 => Err(fracta_state::StoreError::NotFound { id: prefix.into() }.into()),
            1 => Ok(matches.remove(0)),
            _ => Err(fracta_state::StoreError::Ambiguous {
                prefix: prefix.into(),
                matches: matches.into_iter().take(LISTED).map(|a| a.id).collect(),
            }
            .into()),
        }
    }

    /// Is the agent with full id `id` the agent `me` or one of its descendants?
    fn is_within(&self, me: &str, id: &str) -> Result<bool, ControlError> {
        let mut cur = Some(id.to_string());
        let mut hops = 0u32;
        while let Some(a) = cur {
            if a == me {
                return Ok(true);
            }
            hops += 1;
            if hops > 1024 {
                return Ok(false);
            }
            cur = self.runner.store.get_agent(&a)?.parent_id;
        }
        Ok(false)
    }

    /// Stop the agent `id` names and its whole subtree, as `caller`: the id is resolved and
    /// authorized first, and an agent may not stop itself (by any spelling of its id).
    pub async fn stop_as(&self, caller: &Caller, id: &str) -> Result<AgentRecord, ControlError> {
        let target = self.authorize(caller, id)?;
        if let Caller::Agent(me) = caller
            && me == &target.id
        {
            return Err(ControlError::SelfStop { id: target.id });
        }
        self.stop_tree(&target.id).await
    }

    /// Start an agent without waiting for it: returns its (queued) record at once. A spawn
    /// with no request behind it (the CLI): `http_header_token` origins have no value.
    pub fn spawn(
        self: &Arc<Self>,
        caller: &Caller,
        req: SpawnRequest,
        asked: &Budgets,
    ) -> Result<AgentRecord, ControlError> {
        self.spawn_with(caller, req, asked, RequestContext::default())
    }

    /// [`Supervisor::spawn`] for a request that came over HTTP (the API, the MCP gateway):
    /// its headers are where `http_header_token` origins take their value. They live with the
    /// run only (never recorded).
    pub fn spawn_with(
        self: &Arc<Self>,
        caller: &Caller,
        mut req: SpawnRequest,
        asked: &Budgets,
        request: RequestContext,
    ) -> Result<AgentRecord, ControlError> {
        let defaults = self.runner.cfg().config.agents.budgets;
        // Checking a parent's budgets and recording its child is one step: two concurrent
        // spawns (a model may call the tool twice in one turn) must not both see room.
        // Waiting for the gate is waiting for another spawn's store write: blocking work.
        let gate =
            fracta_state::blocking(|| self.spawn_gate.lock().unwrap_or_else(|e| e.into_inner()));
        let budgets = match caller {
            Caller::User => narrow(&defaults, asked),
            Caller::Agent(parent_id) => {
                let parent = self.runner.store.get_agent(parent_id)?;
                let pb = budgets_of(&parent, &defaults);
                let depth = u64::from(parent.depth) + 1;
                if depth > u64::from(pb.max_depth()) {
                    return Err(ControlError::Budget {
                        budget: "max_depth",
                        limit: u64::from(pb.max_depth()),
                        detail: format!("a child of agent {} would be at depth {depth}", parent.id),
                    });
                }
                let children = self.runner.store.children(&parent.id)?.len() as u64;
                if children >= u64::from(pb.max_children()) {
                    return Err(ControlError::Budget {
                        budget: "max_children",
                        limit: u64::from(pb.max_children()),
                        detail: format!("agent {} already has {children} children", parent.id),
                    });
                }
                req.parent_id = Some(parent.id.clone());
                narrow(&pb, asked)
            }
        };
        let prepared = self.runner.prepare(&req)?;
        self.admit(gate, prepared, &budgets, request)
    }

    /// [`Supervisor::spawn`] of a root agent the user asked for, resolved already (`fracta
    /// spawn` resolves its request first, to start its workspace while the rest starts).
    pub fn spawn_prepared(
        self: &Arc<Self>,
        prepared: Prepared,
        asked: &Budgets,
    ) -> Result<AgentRecord, ControlError> {
        let defaults = self.runner.cfg().config.agents.budgets;
        let gate =
            fracta_state::blocking(|| self.spawn_gate.lock().unwrap_or_else(|e| e.into_inner()));
        let budgets = narrow(&defaults, asked);
        self.admit(gate, prepared, &budgets, RequestContext::default())
    }

    /// Record a prepared agent under `budgets` and launch it (the spawn gate is held until it
    /// is recorded).
    fn admit(
        self: &Arc<Self>,
        gate: std::sync::MutexGuard<'_, ()>,
        mut prepared: Prepared,
        budgets: &Budgets,
        request: RequestContext,
    ) -> Result<AgentRecord, ControlError> {
        prepared.agent.meta.budgets = Some(recorded(budgets));
        let token = new_token()?;
        let agent = self.runner.record(prepared)?;
        drop(gate);
        self.launch(
            &agent.id,
            token,
            Work::First(Box::new(agent.clone())),
            request,
        );
        Ok(agent)
    }

    /// Run a new turn of an ended agent's conversation in the background.
    pub fn resume(self: &Arc<Self>, id: &str, prompt: &str) -> Result<AgentRecord, ControlError> {
        let agent = self.runner.store.get_agent(id)?;
        if !agent.status.is_terminal() {
            return Err(ControlError::Run(RunError::Usage(format!(
                "agent {} is {}; wait for its turn to end before sending more",
                agent.id,
                agent.status.as_str()
            ))));
        }
        self.launch(
            &agent.id,
            new_token()?,
            Work::Resume(prompt.to_string()),
            RequestContext::default(),
        );
        Ok(agent)
    }

    /// Run an agent's turn in the background: give it a gateway token, wait for a running slot
    /// (`max_running`), run, then retire the token and signal the end.
    fn launch(self: &Arc<Self>, id: &str, token: String, work: Work, request: RequestContext) {
        let (done_tx, done_rx) = watch::channel(false);
        // The record as it was just written (a first turn), else as stored.
        let recorded = match &work {
            Work::First(rec) => Ok((**rec).clone()),
            Work::Resume(_) => self.runner.store.get_agent(id),
        };
        // A stream agent's first run is a live session; a resumed one runs a single turn.
        let stream = matches!(work, Work::First(_))
            && recorded
                .as_ref()
                .is_ok_and(|a| a.mode == fracta_state::Mode::Stream);
        let mut inbox = None;
        let mut steer = None;
        let mut waiting = None;
        if let Ok(mut st) = self.state.lock() {
            st.tokens.insert(token.clone(), id.to_string());
            st.live.insert(id.to_string(), done_rx);
            if stream {
                let (tx, rx) = mpsc::channel(64);
                let (steer_tx, steer_rx) = mpsc::channel(16);
                let flag = Arc::new(std::sync::atomic::AtomicBool::new(false));
                st.sessions.insert(
                    id.to_string(),
                    SessionHandle {
                        turns: tx,
                        steer: steer_tx,
                        waiting: Arc::clone(&flag),
                    },
                );
                waiting = Some(flag);
                inbox = Some(Arc::new(tokio::sync::Mutex::new(rx)));
                steer = Some(Arc::new(tokio::sync::Mutex::new(steer_rx)));
            }
        }
        // An agent whose budgets leave it no child to spawn gets no gateway: its tools would
        // only refuse, and registering them costs the CLI an MCP handshake at start-up.
        let defaults = self.runner.cfg().config.agents.budgets;
        let can_spawn = recorded.map_or(true, |a| {
            let b = budgets_of(&a, &defaults);
            a.depth < b.max_depth() && b.max_children() > 0
        });
        let me = Arc::clone(self);
        let id = id.to_string();
        tokio::spawn(async move {
            let permit = Arc::clone(&me.running).acquire_owned().await;
            let opts = RunOptions {
                request,
                gateway: me
                    .gateway_url
                    .get()
                    .filter(|_| can_spawn)
                    .map(|url| Gateway {
                        url: url.clone(),
                        token: token.clone(),
                    }),
                inbox,
                steer,
                idle_timeout: me
                    .runner
                    .cfg()
                    .config
                    .agents
                    .stream_idle_timeout_secs
                    .map(Duration::from_secs),
                waiting,
                shutdown: Some(me.shutdown.subscribe()),
            };
            let mut obs = Broadcast(Arc::clone(&me.events));
            let result = match work {
                // A stop while queued: do not start it.
                Work::First(rec) => match me.runner.store.get_agent(&id) {
                    // Fracta began shutting down while it waited for a slot: do not start it.
                    Ok(a) if a.status == AgentStatus::Queued && me.shutdown.borrow().is_some() => {
                        let why = "fracta was shutting down before it started";
                        let rec = &me.runner.recorder;
                        rec.end_with(&id, AgentStatus::Stopped, why).and_then(|_| {
                            rec.persist(
                                &a,
                                &[Event::status("stopped", Some(why.into()))],
                                None,
                                true,
                                &mut obs,
                            )
                        })
                    }
                    Ok(a) if a.status == AgentStatus::Queued => me
                        .runner
                        .run_recorded(*rec, &opts, &mut obs)
                        .await
                        .map(drop),
                    _ => Ok(()),
                },
                Work::Resume(prompt) => me
                    .runner
                    .resume_with(&id, &prompt, &opts, &mut obs)
                    .await
                    .map(drop),
            };
            if let Err(e) = result {
                tracing::error!(agent = %id, "run failed: {e}");
            }
            drop(permit);
            if let Ok(mut st) = me.state.lock() {
                st.tokens.remove(&token);
                st.sessions.remove(&id);
            }
            let _ = done_tx.send(true);
        });
    }

    /// Hand a live stream session its next turn (queued behind a turn in flight). With `wait`,
    /// returns once the turn has ended (or the wait times out), else at once.
    pub async fn send(
        &self,
        caller: &Caller,
        id: &str,
        prompt: &str,
        wait: Option<Duration>,
    ) -> Result<AgentRecord, ControlError> {
        let agent = self.authorize(caller, id)?;
        // An ended session's run may still be winding up (its branch checked and removed):
        // its record says it ended, so it takes no more turns.
        let tx = if agent.status.is_terminal() {
            None
        } else {
            self.state
                .lock()
                .ok()
                .and_then(|st| st.sessions.get(&agent.id).map(|s| s.turns.clone()))
        };
        let Some(tx) = tx else {
            return Err(ControlError::NoSession {
                id: agent.id.clone(),
                status: agent.status.as_str(),
            });
        };
        let (done_tx, done_rx) = oneshot::channel();
        let turn = StreamTurn {
            prompt: prompt.to_string(),
            done: Some(done_tx),
        };
        if tx.send(turn).await.is_err() {
            return Err(ControlError::NoSession {
                id: agent.id.clone(),
                status: "ended",
            });
        }
        if let Some(t) = wait {
            // The session ending mid-turn drops the sender: then the record says how.
            if let Ok(Ok(rec)) = tokio::time::timeout(t, done_rx).await {
                return Ok(rec);
            }
        }
        Ok(self.runner.store.get_agent(&agent.id)?)
    }

    /// Add input to the turn in flight of a live Codex session (`turn/steer`).
    pub async fn steer(
        &self,
        caller: &Caller,
        id: &str,
        prompt: &str,
    ) -> Result<AgentRecord, ControlError> {
        let agent = self.authorize(caller, id)?;
        if !adapter_named(&agent.adapter).is_some_and(|a| a.capabilities().steer) {
            return Err(ControlError::Steer(format!(
                "{} (agent {} runs {})",
                crate::adapter::STEER_UNSUPPORTED,
                agent.id,
                agent.adapter
            )));
        }
        let tx = self
            .state
            .lock()
            .ok()
            .and_then(|st| st.sessions.get(&agent.id).map(|s| s.steer.clone()));
        let Some(tx) = tx else {
            return Err(ControlError::NoSession {
                id: agent.id.clone(),
                status: agent.status.as_str(),
            });
        };
        let (done_tx, done_rx) = oneshot::channel();
        let req = SteerRequest {
            prompt: prompt.to_string(),
            done: done_tx,
        };
        let gone = || ControlError::NoSession {
            id: agent.id.clone(),
            status: "ended",
        };
        tx.send(req).await.map_err(|_| gone())?;
        match tokio::time::timeout(Duration::from_secs(30), done_rx).await {
            Ok(Ok(Ok(()))) => Ok(self.runner.store.get_agent(&agent.id)?),
            Ok(Ok(Err(e))) => Err(ControlError::Steer(e)),
            Ok(Err(_)) => Err(gone()),
            Err(_) => Err(ControlError::Steer(
                "the session did not take the input within 30 s".into(),
            )),
        }
    }

    /// Whether the agent has a live stream session here.
    pub fn has_session(&self, id: &str) -> bool {
        self.state
            .lock()
            .is_ok_and(|st| st.sessions.contains_key(id))
    }

    /// Whether the agent's live stream session here is between turns, waiting for input.
    pub fn waiting_for_input(&self, id: &str) -> bool {
        self.state.lock().is_ok_and(|st| {
            st.sessions
                .get(id)
                .is_some_and(|s| s.waiting.load(std::sync::atomic::Ordering::Relaxed))
        })
    }

    /// Take no more turns: the session ends once its turn in flight (if any) is done.
    pub fn close_session(&self, id: &str) {
        if let Ok(mut st) = self.state.lock() {
            st.sessions.remove(id);
        }
    }

    /// Wait until an agent ends (or `timeout`); returns its record either way.
    pub async fn wait(&self, id: &str, timeout: Duration) -> Result<AgentRecord, ControlError> {
        let rx = self
            .state
            .lock()
            .ok()
            .and_then(|st| st.live.get(id).cloned());
        let deadline = tokio::time::Instant::now() + timeout;
        match rx {
            Some(mut rx) => {
                let _ = tokio::time::timeout_at(deadline, rx.wait_for(|d| *d)).await;
            }
            None => loop {
                let a = self.runner.store.get_agent(id)?;
                if a.status.is_terminal() || tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            },
        }
        Ok(self.runner.store.get_agent(id)?)
    }

    /// The agents this supervisor runs (or has queued) right now.
    pub fn live_ids(&self) -> Vec<String> {
        self.state
            .lock()
            .map(|st| {
                st.live
                    .iter()
                    .filter(|(_, r)| !*r.borrow())
                    .map(|(id, _)| id.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Wait until every agent this supervisor started has ended.
    pub async fn wait_all(&self) {
        loop {
            let pending: Vec<watch::Receiver<bool>> = self
                .state
                .lock()
                .map(|st| st.live.values().filter(|r| !*r.borrow()).cloned().collect())
                .unwrap_or_default();
            if pending.is_empty() {
                return;
            }
            for mut rx in pending {
                let _ = rx.wait_for(|d| *d).await;
            }
        }
    }

    /// Close every live session: an idle one ends at once (recorded as closed, resumable), a
    /// busy one after its turn in flight. Waits up to `timeout` for them; returns how many
    /// ended.
    pub async fn close_sessions(&self, timeout: Duration) -> usize {
        let pending: Vec<watch::Receiver<bool>> = match self.state.lock() {
            Ok(mut st) => {
                let ids: Vec<String> = st.sessions.drain().map(|(id, _)| id).collect();
                ids.iter()
                    .filter_map(|id| st.live.get(id).cloned())
                    .collect()
            }
            Err(_) => Vec::new(),
        };
        let mut ended = 0;
        let until = tokio::time::Instant::now() + timeout;
        for mut rx in pending {
            if let Ok(Ok(_)) = tokio::time::timeout_at(until, rx.wait_for(|d| *d)).await {
                ended += 1;
            }
        }
        ended
    }

    /// Stop an agent and its whole subtree (children first).
    pub async fn stop_tree(&self, id: &str) -> Result<AgentRecord, ControlError> {
        Ok(self.runner.stop_tree(id).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_only_get_less() {
        let parent = Budgets {
            max_depth: Some(2),
            max_children: Some(3),
            max_running: None,
            wall_clock_secs: Some(100),
        };
        let asked = Budgets {
            max_depth: Some(5),
            max_children: Some(1),
            max_running: None,
            wall_clock_secs: None,
        };
        let n = narrow(&parent, &asked);
        assert_eq!(n.max_depth, Some(2));
        assert_eq!(n.max_children, Some(1));
        assert_eq!(n.wall_clock_secs, Some(100));
        assert_eq!(n.max_running, Some(Budgets::DEFAULT_MAX_RUNNING));
    }

    /// An agent still queued when Fracta begins shutting down is recorded stopped, saying so,
    /// and its CLI never starts (here it would fail: the command does not exist).
    #[tokio::test]
    async fn an_agent_queued_at_shutdown_never_starts() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = fracta_config::parse(
            "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n      command: /nonexistent/claude\n",
            &dir.path().join("fracta.yaml"),
        )
        .unwrap();
        let store: Arc<dyn fracta_state::Store> =
            Arc::new(fracta_state::SqliteStore::open_in_memory().unwrap());
        let sup = Supervisor::new(Arc::new(Runner::new(Arc::new(cfg), store)));
        sup.shut_down(Shutdown::Terminate("SIGTERM"));
        let req = SpawnRequest {
            task: "t".into(),
            prompt: Some("hi".into()),
            ..SpawnRequest::default()
        };
        let a = sup.spawn(&Caller::User, req, &Budgets::default()).unwrap();
        let done = sup.wait(&a.id, Duration::from_secs(10)).await.unwrap();
        assert_eq!(done.status, AgentStatus::Stopped, "{done:#?}");
        assert!(
            done.error.as_deref().unwrap().contains("shutting down"),
            "{done:#?}"
        );
    }

    /// The live tap is made by its first subscriber and hears every event the store records
    /// from then on, in order; without one, the events are recorded all the same.
    #[tokio::test]
    async fn live_events_reach_subscribers_and_need_none() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = fracta_config::parse(
            "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n      command: /nonexistent/claude\n",
            &dir.path().join("fracta.yaml"),
        )
        .unwrap();
        let store: Arc<dyn fracta_state::Store> =
            Arc::new(fracta_state::SqliteStore::open_in_memory().unwrap());
        let sup = Supervisor::new(Arc::new(Runner::new(Arc::new(cfg), Arc::clone(&store))));
        let req = || SpawnRequest {
            task: "t".into(),
            prompt: Some("hi".into()),
            ..SpawnRequest::default()
        };
        // Nobody watching: no tap, and the agent's events are recorded.
        let unwatched = sup
            .spawn(&Caller::User, req(), &Budgets::default())
            .unwrap();
        sup.wait(&unwatched.id, Duration::from_secs(10))
            .await
            .unwrap();
        assert!(sup.events.get().is_none());
        assert!(store.event_count(&unwatched.id).unwrap() >= 2);

        let mut live = sup.subscribe();
        let a = sup
            .spawn(&Caller::User, req(), &Budgets::default())
            .unwrap();
        let done = sup.wait(&a.id, Duration::from_secs(10)).await.unwrap();
        assert_eq!(done.status, AgentStatus::Failed, "{done:#?}");
        let recorded: Vec<u64> = store
            .events(&a.id, 0, None)
            .unwrap()
            .iter()
            .map(|e| e.seq)
            .collect();
        let mut heard = vec![];
        while let Ok(e) = live.try_recv() {
            assert_eq!(e.agent_id, a.id);
            heard.push(e.seq);
        }
        assert_eq!(heard, recorded);
    }

    /// A token acts on its own agent and its descendants only: never a sibling or a parent.
    #[test]
    fn authorize_limits_a_token_to_its_subtree() {
        let cfg = fracta_config::parse(
            "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n",
            std::path::Path::new("f.yaml"),
        )
        .unwrap();
        let store: Arc<dyn fracta_state::Store> =
            Arc::new(fracta_state::SqliteStore::open_in_memory().unwrap());
        let mk = |parent: Option<&AgentRecord>| {
            let mut a = AgentRecord::new("t", "claude", "claude", fracta_state::Mode::Batch, "p");
            if let Some(p) = parent {
                a = a.with_parent(p);
            }
            store.insert_agent(&a).unwrap()
        };
        let p = mk(None);
        let a = mk(Some(&p));
        let b = mk(Some(&p));
        let grandchild = mk(Some(&a));
        let sup = Supervisor::new(Arc::new(Runner::new(Arc::new(cfg), Arc::clone(&store))));
        let as_a = Caller::Agent(a.id.clone());
        assert!(sup.authorize(&as_a, &a.id).is_ok());
        assert!(sup.authorize(&as_a, &grandchild.id).is_ok());
        assert!(
            matches!(
                sup.authorize(&as_a, &b.id),
                Err(ControlError::Forbidden { .. })
            ),
            "sibling"
        );
        assert!(
            matches!(
                sup.authorize(&as_a, &p.id),
                Err(ControlError::Forbidden { .. })
            ),
            "parent"
        );
        assert!(
            sup.authorize(&Caller::Agent(p.id.clone()), &grandchild.id)
                .is_ok()
        );
        assert!(sup.authorize(&Caller::User, &b.id).is_ok());
        assert!(sup.authenticate("not-a-token").is_none());
    }
}
