//! The session loop: one agent's launched CLI driven to its end. Its output (stdout, or a
//! network transport's messages) becomes recorded events; everything else that can happen to
//! a run arrives as one typed [`Op`] — the next turn, steering input, the idle timer, the
//! wall-clock budget, a shutdown — and is handled in one place. The same loop drives a local
//! process and a Pod: it sees only a [`Workload`].

mod step;

use std::sync::Arc;
use std::time::Duration;

use fracta_state::{AgentRecord, AgentStatus};
use futures::FutureExt;
use tokio::sync::{mpsc, oneshot, watch};

pub use step::StepMonitor;

use crate::adapter::{Adapter, BatchParser, Parsed, StreamSession};
use crate::backend::Workload;
use crate::credentials::RequestContext;
use crate::error::RunError;
use crate::event::{Event, MessageEvent, Role};
use crate::launch::{Endpoint, FileSpec, Gateway};
use crate::record::{Observer, Recorder};

/// Lines of a batch run's output recorded in one write at most, when they arrive together.
const MAX_BURST: usize = 64;

/// How long a stream session may wait for its next turn before it is closed (and can be
/// resumed later).
pub const DEFAULT_STREAM_IDLE: Duration = Duration::from_secs(15 * 60);

/// One turn handed to a live stream session; `done` gets the agent's record once the turn
/// has ended (its `result` is the turn's final message).
#[derive(Debug)]
pub struct StreamTurn {
    pub prompt: String,
    pub done: Option<oneshot::Sender<AgentRecord>>,
}

/// Input for the turn in flight; `done` says whether the session took it.
#[derive(Debug)]
pub struct SteerRequest {
    pub prompt: String,
    pub done: oneshot::Sender<Result<(), String>>,
}

/// A stream session's queue of turns (sends to a busy session wait here, in order).
pub type Inbox = Arc<tokio::sync::Mutex<mpsc::Receiver<StreamTurn>>>;
/// Steering input for a session's turn in flight.
pub type SteerInbox = Arc<tokio::sync::Mutex<mpsc::Receiver<SteerRequest>>>;

/// Why Fracta itself is going away, as the binary that caught the signal says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// The person at the terminal pressed Ctrl-C: stop the agent.
    Interrupt,
    /// Fracta was asked to end (`SIGTERM`, `SIGHUP`, …, named here): idle sessions close
    /// resumable, running agents are stopped.
    Terminate(&'static str),
}

/// Where Fracta's shutdown is announced (the binary sets it; runs watch it).
pub type ShutdownWatch = watch::Receiver<Option<Shutdown>>;

/// How a run is hosted: the spawn request's context (headers for `http_header_token`), the
/// gateway when a control plane hosts the agent, and for a stream session where its turns
/// and steering come from.
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
    /// Set while a stream session waits for its next turn (between turns), for a control
    /// plane that shows it as "waiting for input".
    pub waiting: Option<Arc<std::sync::atomic::AtomicBool>>,
    /// Fracta's own shutdown (signals are the binary's business; it announces them here).
    pub shutdown: Option<ShutdownWatch>,
}

/// What the session loop takes over once an agent's CLI runs.
pub struct Launched<'a> {
    /// This turn's number (1 for a first run).
    pub turn: u32,
    pub prompt: &'a str,
    pub resume_token: Option<&'a str>,
    pub stream: bool,
    /// The process's stdin, for a session spoken there.
    pub stdin: Option<tokio::process::ChildStdin>,
    /// Where the session is reached over the network instead, and its secret (a password, a
    /// capability token).
    pub connect: Option<(Endpoint, String)>,
    /// The files Fracta wrote, kept out of the agent's commits.
    pub files: &'a [FileSpec],
    /// The wall-clock budget of the run (of each turn, for a stream session).
    pub wall_clock: Duration,
    /// The runtime's step limit, if its adapter counts steps.
    pub max_steps: Option<u32>,
    /// What the session protocol needs besides turns (the launch's `session_init`).
    pub session_init: Option<&'a serde_json::Value>,
    /// The agent's worktree, opened while its CLI started, for the checks at the end.
    pub worktree: Option<crate::workspace::OpenWorktree>,
}

/// Everything that can happen to a run besides its output.
enum Op {
    /// The next turn of a live session (`None`: nobody can send any more).
    Turn(Option<StreamTurn>),
    /// Input for the turn in flight.
    Steer(SteerRequest),
    /// The session has waited `idle_timeout` for a turn.
    Idle,
    /// The wall-clock budget is spent.
    OverTime,
    /// Fracta is going away.
    Shutdown(Shutdown),
}

/// Where a live session's messages go: the process's stdin (one line each), or a transport
/// task (a session reached over the network).
enum Wire {
    Stdin(tokio::process::ChildStdin),
    Channel(mpsc::UnboundedSender<String>),
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

/// The loop's state between ops and lines.
struct Loop<'r> {
    rec: &'r Recorder,
    agent: AgentRecord,
    session: Box<dyn StreamSession>,
    wire: Option<Wire>,
    /// Why the run was ended by Fracta (then its end keeps that status).
    ended_by_us: bool,
    /// The session was closed by Fracta (idle, no more input, shutdown).
    closed_by_us: bool,
    aborted_turn: Option<String>,
    waiting: Option<oneshot::Sender<AgentRecord>>,
    idle_since: Option<tokio::time::Instant>,
    /// Mirrors `idle_since` for the control plane (`RunOptions::waiting`).
    waiting_flag: Option<Arc<std::sync::atomic::AtomicBool>>,
    monitor: Option<StepMonitor>,
    session_turn: u32,
    session_cost: f64,
    idle_timeout: Duration,
    /// The wall-clock budget of one turn: a stream session lives as long as it is used, and
    /// its idle timeout, not this, ends it between turns.
    wall_clock: Duration,
    /// When the turn in flight began.
    turn_started: tokio::time::Instant,
    over_time: bool,
    shutdown_seen: bool,
    /// A stream session (else a batch run, maybe spoken as a one-turn session).
    stream: bool,
    /// A session whose stdin Fracta closed is terminated if it has not ended by then.
    close_deadline: Option<tokio::time::Instant>,
}

/// How long an agent may take to exit once Fracta closed its stdin (its session is over).
/// Gemini CLI 0.61, for one, stays up for minutes after a cancelled turn.
pub const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// Drive a launched agent to its end: its session protocol (a stream) or its output (a
/// batch run); ops as they come; then record how it ended. `work` is what runs it: a local
/// process, or a remote backend's Pod or Job.
pub async fn drive(
    rec: &Recorder,
    agent: AgentRecord,
    adapter: &dyn Adapter,
    launched: Launched<'_>,
    mut work: Box<dyn Workload>,
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
        wall_clock,
        max_steps,
        session_init,
        worktree,
    } = launched;
    // A runtime whose batch run is a session too (ACP) speaks its protocol on stdin either way.
    let stdio_session = adapter.capabilities().stdio_session;
    let session: Box<dyn StreamSession> = if stream || stdio_session {
        adapter.session_for(resume_token, session_init)
    } else {
        Box::new(BatchParser(adapter.parser()))
    };
    let mut incoming: Option<mpsc::UnboundedReceiver<String>> = None;
    let mut wire = None;
    if stream {
        match connect {
            Some((endpoint, secret)) => {
                let (out_tx, out_rx) = mpsc::unbounded_channel();
                let (in_tx, in_rx) = mpsc::unbounded_channel();
                crate::transport::connect(
                    endpoint,
                    secret,
                    resume_token,
                    crate::adapter::session_title(&agent.id, prompt),
                    out_rx,
                    in_tx,
                );
                wire = Some(Wire::Channel(out_tx));
                incoming = Some(in_rx);
            }
            None => wire = stdin.map(Wire::Stdin),
        }
    } else if stdio_session {
        wire = stdin.map(Wire::Stdin);
    }
    let mut st = Loop {
        rec,
        agent,
        session,
        wire,
        ended_by_us: false,
        closed_by_us: false,
        aborted_turn: None,
        waiting: None,
        idle_since: None,
        waiting_flag: opts.waiting.clone(),
        monitor: max_steps.map(|limit| StepMonitor::new(adapter.binary(), limit)),
        session_turn: turn,
        session_cost: 0.0,
        idle_timeout: opts.idle_timeout.unwrap_or(DEFAULT_STREAM_IDLE),
        wall_clock,
        turn_started: tokio::time::Instant::now(),
        over_time: false,
        shutdown_seen: false,
        stream,
        close_deadline: None,
    };
    let first = st.session.open(prompt);
    if let Some(w) = st.wire.as_mut()
        && let Err(e) = w.write(first).await
    {
        tracing::warn!(agent = %st.agent.id, "could not hand the session its first turn: {e}");
    }
    let mut shutdown = opts.shutdown.clone();
    loop {
        let guards = Guards {
            live: st.wire.is_some(),
            idle_since: st.idle_since,
            idle_timeout: st.idle_timeout,
            // Only while a turn is in flight (between turns the idle timeout governs).
            deadline: (!st.ended_by_us && !st.over_time && st.idle_since.is_none())
                .then_some(st.turn_started + st.wall_clock),
            shutdown: !st.ended_by_us && !st.shutdown_seen,
        };
        // What the session said: the process's stdout, or the transport's messages (then
        // stdout is only the server's log).
        let said: Option<String> = tokio::select! {
            line = work.next_line() => match line {
                None => break,
                Some(l) if incoming.is_some() => {
                    tracing::debug!(agent = %st.agent.id, "{}: {}", adapter.binary(), rec.redactor.redact(&l));
                    None
                }
                Some(l) => Some(l),
            },
            msg = async { match incoming.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } }, if incoming.is_some() => {
                if msg.is_none() {
                    // The transport gave up (it said why): the session is over.
                    incoming = None;
                    if st.wire.take().is_some() {
                        st.closed_by_us = true;
                        work.terminate();
                    }
                }
                msg
            }
            _ = async {
                match st.close_deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            }, if st.close_deadline.is_some() => {
                tracing::info!(agent = %st.agent.id, "the agent did not exit within {} s of its stdin closing: terminating it", CLOSE_GRACE.as_secs());
                st.close_deadline = None;
                work.terminate();
                None
            }
            op = next_op(opts, shutdown.as_mut(), guards) => {
                st.handle(op, work.as_mut(), observer).await?;
                None
            }
        };
        let Some(line) = said else { continue };
        if !st.takes_bursts() {
            st.on_line(&line, work.as_mut(), observer).await?;
            continue;
        }
        // The lines already waiting behind this one are recorded with it, in one write: a
        // CLI prints its events in bursts (a whole short turn at once).
        if st.on_burst(line, work.as_mut(), observer).await? {
            break;
        }
    }
    tracing::debug!(agent = %st.agent.id, "output ended");
    let mut exit = work.wait().await;
    tracing::debug!(agent = %st.agent.id, code = ?exit.code, signal = ?exit.signal, "process ended");
    if st.closed_by_us && exit.signal.is_some() {
        // A session server Fracta closed (it has no stdin to close) ends by our signal.
        exit.code = Some(0);
    }
    // The CLI's known noise is no part of why it failed.
    exit.stderr_tail = exit
        .stderr_tail
        .lines()
        .filter(|l| !adapter.stderr_noise(l.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    st.set_waiting(false);
    // A session recorded each turn's usage as it ended.
    let usage_turn = (!stream).then_some(turn);
    rec.finish_local(
        &st.agent.id,
        usage_turn,
        st.session.outcome(),
        &exit,
        crate::record::EndWorktree {
            files,
            opened: worktree,
        },
        observer,
    )
}

/// Which ops can come now.
#[derive(Clone, Copy)]
struct Guards {
    /// The session takes input.
    live: bool,
    /// Waiting for the next turn since then.
    idle_since: Option<tokio::time::Instant>,
    idle_timeout: Duration,
    deadline: Option<tokio::time::Instant>,
    shutdown: bool,
}

/// The next op, of those that can come now.
async fn next_op(opts: &RunOptions, shutdown: Option<&mut ShutdownWatch>, g: Guards) -> Op {
    let idle = g.live && g.idle_since.is_some();
    tokio::select! {
        next = async {
            match opts.inbox.as_ref() {
                Some(inbox) => inbox.lock().await.recv().await,
                None => std::future::pending().await,
            }
        }, if idle => Op::Turn(next),
        Some(req) = async {
            match opts.steer.as_ref() {
                Some(rx) => rx.lock().await.recv().await,
                None => std::future::pending().await,
            }
        }, if g.live => Op::Steer(req),
        _ = async {
            match g.idle_since {
                Some(t) => tokio::time::sleep_until(t + g.idle_timeout).await,
                None => std::future::pending().await,
            }
        }, if idle => Op::Idle,
        _ = async {
            match g.deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        } => Op::OverTime,
        s = async {
            match shutdown {
                Some(rx) => loop {
                    if let Some(s) = *rx.borrow_and_update() {
                        break s;
                    }
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                },
                None => std::future::pending().await,
            }
        }, if g.shutdown => Op::Shutdown(s),
    }
}

impl Loop<'_> {
    fn set_waiting(&self, waiting: bool) {
        if let Some(f) = &self.waiting_flag {
            f.store(waiting, std::sync::atomic::Ordering::Relaxed);
        }
    }

    fn user_message(&self, text: &str, observer: &mut dyn Observer) -> Result<(), RunError> {
        let m = Event::Message(MessageEvent {
            role: Role::User,
            text: text.to_string(),
        });
        self.rec.persist(&self.agent, &[m], None, true, observer)
    }

    /// Close the live session, saying why (it ends recorded and resumable).
    fn close(
        &mut self,
        why: String,
        work: &mut dyn Workload,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        self.rec.persist(
            &self.agent,
            &[Event::status("idle", Some(why))],
            None,
            true,
            observer,
        )?;
        if let Some(w) = self.wire.take() {
            self.closed_by_us = true;
            match w {
                // The CLI ends on its own once its input ends; if it does not, it is ended.
                Wire::Stdin(w) => {
                    drop(w);
                    self.close_deadline = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                }
                Wire::Channel(tx) => {
                    drop(tx);
                    work.terminate();
                }
            }
        }
        Ok(())
    }

    /// End the run now with `to` and why (recorded first, so its end keeps them).
    fn end(&mut self, to: AgentStatus, why: &str, work: &mut dyn Workload) -> Result<(), RunError> {
        self.ended_by_us = true;
        self.rec.end_with(&self.agent.id, to, why)?;
        work.terminate();
        Ok(())
    }

    async fn handle(
        &mut self,
        op: Op,
        work: &mut dyn Workload,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        match op {
            Op::Turn(Some(turn)) => {
                self.idle_since = None;
                self.set_waiting(false);
                self.turn_started = tokio::time::Instant::now();
                if let Some(m) = self.monitor.as_mut() {
                    m.new_turn();
                }
                self.user_message(&turn.prompt, observer)?;
                self.waiting = turn.done;
                let lines = self.session.send(&turn.prompt);
                if let Some(w) = self.wire.as_mut()
                    && let Err(e) = w.write(lines).await
                {
                    tracing::warn!(agent = %self.agent.id, "the session no longer takes input: {e}");
                    self.wire = None;
                }
            }
            // Nobody can send any more (end of input, control plane shutting down).
            Op::Turn(None) => self.close(
                "no more turns can come: session closed; resume it later".into(),
                work,
                observer,
            )?,
            Op::Steer(req) => {
                let answer = match self.session.steer(&req.prompt) {
                    Ok(lines) if self.idle_since.is_none() => {
                        self.user_message(&req.prompt, observer)?;
                        match self.wire.as_mut() {
                            Some(w) => w.write(lines).await,
                            None => Err("the session has ended".into()),
                        }
                    }
                    Ok(_) => Err("no turn is in flight to steer; send the input as the next turn (fracta send)".into()),
                    Err(e) => Err(e),
                };
                let _ = req.done.send(answer);
            }
            Op::Idle => {
                let secs = self.idle_timeout.as_secs();
                tracing::info!(agent = %self.agent.id, "stream session idle for {secs} s: closing it");
                self.close(
                    format!("no turn for {secs} s: session closed; resume it later"),
                    work,
                    observer,
                )?;
            }
            Op::OverTime => {
                self.over_time = true;
                let why = format!(
                    "budget exceeded: wall_clock_secs is {} (the turn ran that long): stopped",
                    self.wall_clock.as_secs()
                );
                tracing::warn!(agent = %self.agent.id, "{why}");
                self.rec.error(&self.agent, &why, observer)?;
                self.end(AgentStatus::Failed, &why, work)?;
            }
            Op::Shutdown(s) => {
                self.shutdown_seen = true;
                match s {
                    Shutdown::Interrupt => {
                        self.end(AgentStatus::Stopped, "interrupted (Ctrl-C)", work)?;
                    }
                    // The session is already closing.
                    Shutdown::Terminate(_) if self.closed_by_us => {}
                    Shutdown::Terminate(_) if self.wire.is_some() && self.idle_since.is_some() => {
                        // An idle session when Fracta shuts down: close it as the idle timeout
                        // would; it ends recorded and resumable.
                        tracing::info!(agent = %self.agent.id, "fracta is shutting down: closing the idle session");
                        self.close(
                            "fracta is shutting down: session closed; resume it later".into(),
                            work,
                            observer,
                        )?;
                    }
                    Shutdown::Terminate(signal) => {
                        self.end(
                            AgentStatus::Stopped,
                            &format!("fracta received {signal}"),
                            work,
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Whether lines that arrive together are recorded together ([`Loop::on_burst`]): in a
    /// batch run that Fracta does not talk to. A session's lines each may need an answer or
    /// end a turn before the next is read.
    fn takes_bursts(&self) -> bool {
        !self.stream && self.wire.is_none()
    }

    /// A line of a batch run and those already waiting behind it (at most [`MAX_BURST`]):
    /// their events in one write. Each line's steps are counted as it is taken, as
    /// [`Loop::on_line`] counts them; the line that goes past `max_steps` is the burst's last
    /// (what follows it is read as it would have been, or not at all once the run is ended).
    /// Whether the output ended.
    async fn on_burst(
        &mut self,
        first: String,
        work: &mut dyn Workload,
        observer: &mut dyn Observer,
    ) -> Result<bool, RunError> {
        let mut lines: Vec<(Parsed, String)> = Vec::new();
        let mut over = None;
        let mut next = Some(first);
        let mut ended = false;
        while let Some(line) = next.take() {
            if !line.trim().is_empty() {
                let parsed = self.session.parse_line(&line);
                over = self.over_steps(&parsed.events);
                lines.push((parsed, line));
            }
            if over.is_some() || lines.len() >= MAX_BURST {
                break;
            }
            match work.next_line().now_or_never() {
                Some(Some(l)) => next = Some(l),
                Some(None) => ended = true,
                None => {}
            }
        }
        let written: Vec<(&[Event], Option<&str>, bool)> = lines
            .iter()
            .map(|(p, l)| (&p.events[..], Some(l.as_str()), p.understood))
            .collect();
        self.rec.persist_lines(&self.agent, &written, observer)?;
        // Nobody to answer: what the session would say is dropped, as on_line drops it.
        let _ = self.session.take_output();
        if let Some(why) = over {
            self.stop_for_steps(why, work, observer).await?;
        }
        Ok(ended)
    }

    /// One line the session said: persist what it means, answer it, watch the step limit,
    /// and close the turn it ends.
    async fn on_line(
        &mut self,
        line: &str,
        work: &mut dyn Workload,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        if line.trim().is_empty() {
            return Ok(());
        }
        let parsed = self.session.parse_line(line);
        self.rec.persist(
            &self.agent,
            &parsed.events,
            Some(line),
            parsed.understood,
            observer,
        )?;
        let answers = self.session.take_output();
        if !answers.is_empty()
            && let Some(w) = self.wire.as_mut()
            && let Err(e) = w.write(answers).await
        {
            tracing::warn!(agent = %self.agent.id, "could not answer the session: {e}");
        }
        if let Some(why) = self.over_steps(&parsed.events) {
            self.stop_for_steps(why, work, observer).await?;
        }
        if !self.stream {
            // A batch run spoken as a session ends with its one turn: its stdin closes and
            // the agent exits (its end is recorded as a batch run's).
            if self.wire.is_some() && self.session.take_turn_end() {
                self.wire = None;
                self.closed_by_us = true;
                self.close_deadline = Some(tokio::time::Instant::now() + CLOSE_GRACE);
            }
            return Ok(());
        }
        if self.wire.is_some() && self.session.take_turn_end() {
            let record = self.rec.end_turn(
                &self.agent.id,
                self.session_turn,
                &mut self.session_cost,
                self.session.outcome(),
                self.aborted_turn.take(),
            )?;
            self.session_turn += 1;
            if let Some(w) = self.waiting.take() {
                let _ = w.send(record);
            }
            self.idle_since = Some(tokio::time::Instant::now());
            self.set_waiting(true);
        }
        Ok(())
    }

    /// Why the run must stop, if these events take it past `max_steps` (and Fracta has not
    /// ended it already).
    fn over_steps(&mut self, events: &[Event]) -> Option<String> {
        let why = self
            .monitor
            .as_mut()
            .and_then(|m| m.observe(&self.agent.id, events))?;
        (!self.ended_by_us).then_some(why)
    }

    /// Past `max_steps`: the error recorded, then the run failed (a live session has its turn
    /// aborted instead).
    async fn stop_for_steps(
        &mut self,
        why: String,
        work: &mut dyn Workload,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        self.rec.error(&self.agent, &why, observer)?;
        let abort = self.session.interrupt();
        match self.wire.as_mut() {
            // A live session: abort the turn; the session goes on.
            Some(w) if self.stream && !abort.is_empty() => {
                self.aborted_turn = Some(why);
                if let Err(e) = w.write(abort).await {
                    tracing::warn!(agent = %self.agent.id, "could not abort the turn: {e}");
                }
            }
            _ => self.end(AgentStatus::Failed, &why, work)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use fracta_state::{AgentRecord, Mode, SqliteStore, Store};
    use futures::future::BoxFuture;

    use super::*;
    use crate::adapter::adapter_for;
    use crate::backend::local::ExitInfo;
    use crate::record::Quiet;
    use crate::redact::Redactor;

    /// A recorded Codex turn: four lines, each of them one event.
    const TURN: &str = include_str!("../../fixtures/transcripts/codex/text.jsonl");

    /// Output given line by line, each after its pause (none: there at once). Cancel safe, as
    /// a process's output is: a line is taken only once it is handed over.
    struct Given {
        lines: VecDeque<(Duration, String)>,
        due: Option<tokio::time::Instant>,
    }

    impl Workload for Given {
        fn next_line(&mut self) -> BoxFuture<'_, Option<String>> {
            Box::pin(async move {
                let pause = self.lines.front()?.0;
                if !pause.is_zero() {
                    let due = *self
                        .due
                        .get_or_insert_with(|| tokio::time::Instant::now() + pause);
                    tokio::time::sleep_until(due).await;
                    self.due = None;
                }
                self.lines.pop_front().map(|(_, l)| l)
            })
        }

        /// Ended: nothing more is read (as a killed process's or a deleted Job's output).
        fn terminate(&mut self) {
            self.lines.clear();
        }

        fn wait(self: Box<Self>) -> BoxFuture<'static, ExitInfo> {
            Box::pin(async {
                ExitInfo {
                    code: Some(0),
                    signal: None,
                    stderr_tail: String::new(),
                    reason: None,
                }
            })
        }
    }

    /// Drive a batch run of the recorded turn, its lines `pause` apart; the CLI's events as
    /// stored.
    async fn run(pause: Duration) -> Vec<fracta_state::EventRecord> {
        let (end, events) = run_lines(TURN, pause, None).await;
        assert_eq!(end.status, AgentStatus::Succeeded, "{end:?}");
        events
    }

    /// Drive a batch run of Codex's `lines`, `pause` apart, under `max_steps`: how it ended,
    /// and the CLI's events as stored.
    async fn run_lines(
        lines: &str,
        pause: Duration,
        max_steps: Option<u32>,
    ) -> (AgentRecord, Vec<fracta_state::EventRecord>) {
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open_in_memory().unwrap());
        let rec = Recorder::new(Arc::clone(&store), Redactor::new());
        let agent = store
            .insert_agent(&AgentRecord::new("t", "codex", "codex", Mode::Batch, "p"))
            .unwrap();
        let work = Given {
            lines: lines.lines().map(|l| (pause, l.to_string())).collect(),
            due: None,
        };
        let launched = Launched {
            turn: 1,
            prompt: "p",
            resume_token: None,
            stream: false,
            stdin: None,
            connect: None,
            files: &[],
            wall_clock: Duration::from_secs(60),
            max_steps,
            session_init: None,
            worktree: None,
        };
        let adapter = adapter_for(fracta_config::AdapterKind::Codex);
        let opts = RunOptions::default();
        let end = drive(
            &rec,
            agent,
            adapter,
            launched,
            Box::new(work),
            &opts,
            &mut Quiet,
        )
        .await
        .unwrap();
        let events = store.events(&end.id, 0, None).unwrap();
        (
            end,
            events.into_iter().filter(|e| e.raw.is_some()).collect(),
        )
    }

    /// Lines that arrive together are recorded in one write (they share its time), lines that
    /// arrive apart each in its own; what is recorded is the same either way.
    #[tokio::test]
    async fn a_burst_of_lines_is_recorded_in_one_write() {
        let together = run(Duration::ZERO).await;
        let apart = run(Duration::from_millis(20)).await;
        let what = |events: &[fracta_state::EventRecord]| {
            events
                .iter()
                .map(|e| {
                    (
                        e.seq,
                        e.kind.clone(),
                        e.payload.clone(),
                        e.raw.clone(),
                        e.parsed,
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(what(&together), what(&apart));
        let kinds: Vec<&str> = together.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["session", "step", "message", "step"]);
        let writes = |events: &[fracta_state::EventRecord]| {
            let mut at: Vec<_> = events.iter().map(|e| e.at).collect();
            at.dedup();
            at.len()
        };
        assert_eq!(writes(&together), 1);
        assert_eq!(writes(&apart), 4);
    }

    /// A burst is cut at the line that goes past `max_steps`: the run fails there, and the
    /// steps its CLI printed after it are not read, as when each line was read alone.
    #[tokio::test]
    async fn a_burst_stops_at_the_step_past_the_limit() {
        let step = r#"{"type":"turn.started"}"#;
        let lines = [step; 5].join("\n");
        for pause in [Duration::ZERO, Duration::from_millis(20)] {
            let (end, events) = run_lines(&lines, pause, Some(2)).await;
            assert_eq!(end.status, AgentStatus::Failed, "{end:?}");
            let err = end.error.clone().unwrap_or_default();
            assert!(err.contains("max_steps"), "{err}");
            let steps = events.iter().filter(|e| e.kind == "step").count();
            assert_eq!(steps, 3, "{pause:?}: {events:#?}");
        }
    }
}
