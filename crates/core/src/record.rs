//! Recording: every event an agent's runtime emits is redacted and persisted before anyone is
//! shown it, and every end of a run (a turn, a failure before start, the last exit) is written
//! with its reason. Backends and the session loop record through a [`Recorder`]; none of them
//! needs the runner for it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fracta_state::{
    AgentPatch, AgentRecord, AgentStatus, NewEvent, Store, TransitionWrite, UsageRecord,
};

use crate::adapter::Outcome;
use crate::backend::local::ExitInfo;
use crate::error::RunError;
use crate::event::{ErrorEvent, Event};
use crate::launch::FileSpec;
use crate::redact::Redactor;
use crate::workspace;

/// Receives each event after it is persisted.
pub trait Observer: Send {
    fn on_event(&mut self, agent: &AgentRecord, seq: u64, event: &Event);
}

/// An observer that ignores everything.
pub struct Quiet;

impl Observer for Quiet {
    fn on_event(&mut self, _: &AgentRecord, _: u64, _: &Event) {}
}

/// Writes what agents do into the store, redacted.
#[derive(Clone)]
pub struct Recorder {
    pub store: Arc<dyn Store>,
    pub redactor: Redactor,
}

/// How a run ended, as a backend saw it (a local process, or a Job), for [`Recorder::end_run`].
pub struct RunEnd<'a> {
    /// Record usage as this turn's (`None`: a session recorded it turn by turn).
    pub usage_turn: Option<u32>,
    pub outcome: &'a Outcome,
    pub succeeded: bool,
    /// Why it did not succeed (already redacted), if it did not.
    pub error: Option<String>,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The tail of its error output (redacted), kept with the record.
    pub stderr_tail: Option<String>,
    /// The commit Fracta made of the agent's leftovers.
    pub commit: Option<String>,
    /// A word on how it ended for the final status event (e.g. "exit code 1").
    pub detail: Option<String>,
    /// It changed nothing, and its worktree and this branch were removed.
    pub unchanged_branch: Option<String>,
}

/// The agent's worktree as its local run ends ([`Recorder::finish_local`]).
pub struct EndWorktree<'a> {
    /// The files Fracta wrote for the run: those in the worktree are never committed.
    pub files: &'a [FileSpec],
    /// The worktree's repository, opened while the CLI started (else it is opened at the end).
    pub opened: Option<workspace::OpenWorktree>,
}

/// One turn's usage as recorded (`cost`: this turn's).
fn usage_record(agent: &AgentRecord, turn: u32, o: &Outcome, cost: Option<f64>) -> UsageRecord {
    UsageRecord {
        agent_id: agent.id.clone(),
        turn,
        model: o.model.clone().or(agent.model.clone()),
        input_tokens: o.usage.input_tokens,
        output_tokens: o.usage.output_tokens,
        cached_tokens: o.usage.cached_tokens,
        cost_usd: cost,
        at: jiff::Timestamp::now(),
    }
}

/// Tell the observer of events just stored (with their sequence numbers).
fn show(agent: &AgentRecord, seqs: &[u64], events: &[Event], observer: &mut dyn Observer) {
    for (seq, e) in seqs.iter().zip(events) {
        observer.on_event(agent, *seq, e);
    }
}

/// Why a run that exited 0 failed: the runtime never said it completed.
pub const NO_COMPLETION: &str = "the CLI exited 0 without its completion event (no result)";

impl Recorder {
    pub fn new(store: Arc<dyn Store>, redactor: Redactor) -> Self {
        Recorder { store, redactor }
    }

    /// Persist events (redacted), then show them. `raw` (the runtime's own line) is kept
    /// beside the first event it yielded.
    pub fn persist(
        &self,
        agent: &AgentRecord,
        events: &[Event],
        raw: Option<&str>,
        understood: bool,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        self.persist_lines(agent, &[(events, raw, understood)], observer)
    }

    /// Persist the events of several lines of the runtime's output in one write, then show
    /// them: each line's events with its raw text beside the first, as [`Recorder::persist`]
    /// keeps them.
    pub fn persist_lines(
        &self,
        agent: &AgentRecord,
        lines: &[(&[Event], Option<&str>, bool)],
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        let mut new = Vec::new();
        let mut shown = Vec::new();
        for (events, raw, understood) in lines.iter().filter(|l| !l.0.is_empty()) {
            let (n, r) = self.redacted(events, *raw, *understood);
            new.extend(n);
            shown.extend(r);
        }
        if new.is_empty() {
            return Ok(());
        }
        let seqs = self.store.append_events(&agent.id, &new)?;
        show(agent, &seqs, &shown, observer);
        Ok(())
    }

    /// Events as stored (redacted; `raw` beside the first) and as shown.
    fn redacted(
        &self,
        events: &[Event],
        raw: Option<&str>,
        understood: bool,
    ) -> (Vec<NewEvent>, Vec<Event>) {
        let raw = raw.map(|r| self.redactor.redact(r));
        let mut redacted: Vec<Event> = Vec::with_capacity(events.len());
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
        (new, redacted)
    }

    /// Persist one error event of the agent (why it failed, or why a turn was cut short).
    pub fn error(
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

    /// Move a live agent to `to` (failed or stopped), with why (false if it had already ended).
    pub fn end_with(&self, id: &str, to: AgentStatus, why: &str) -> Result<bool, RunError> {
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

    /// Record that the agent failed before its CLI ran (on any backend), and why.
    pub fn fail_before_start(
        &self,
        agent: &AgentRecord,
        why: &str,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let why = self.redactor.redact(why);
        tracing::warn!(agent = %agent.id, "agent failed before start: {why}");
        self.error(agent, &why, observer)?;
        self.end_with(&agent.id, AgentStatus::Failed, &why)?;
        let status = Event::status("failed", Some(why));
        let rec = self.store.get_agent(&agent.id)?;
        self.persist(&rec, &[status], None, true, observer)?;
        Ok(rec)
    }

    /// The agent's CLI runs (`detail`: where): record it, after the events `first` (its turn's
    /// prompt, say, persisted whether or not it moves), in one write.
    pub fn mark_running(
        &self,
        agent: &AgentRecord,
        patch: &AgentPatch,
        detail: String,
        first: &[Event],
        observer: &mut dyn Observer,
    ) -> Result<(bool, AgentRecord), RunError> {
        self.move_with_events(
            &agent.id,
            &TransitionWrite {
                usage: None,
                from: &[AgentStatus::Queued, AgentStatus::Starting],
                to: AgentStatus::Running,
                patch,
                otherwise: None,
            },
            |moved, _| {
                let mut events = first.to_vec();
                if moved {
                    events.push(Event::status("running", Some(detail.clone())));
                }
                events
            },
            observer,
        )
    }

    /// [`Store::transition_with_events`] of events made by `events` (redacted as
    /// [`Recorder::persist`] does), then shown: whether it moved, and the record.
    fn move_with_events(
        &self,
        id: &str,
        write: &TransitionWrite<'_>,
        mut events: impl FnMut(bool, &AgentRecord) -> Vec<Event>,
        observer: &mut dyn Observer,
    ) -> Result<(bool, AgentRecord), RunError> {
        let mut moved = false;
        let mut shown = Vec::new();
        let (rec, seqs) = self
            .store
            .transition_with_events(id, write, &mut |m, rec| {
                moved = m;
                let (new, redacted) = self.redacted(&events(m, rec), None, true);
                shown = redacted;
                new
            })?;
        show(&rec, &seqs, &shown, observer);
        Ok((moved, rec))
    }

    fn usage(
        &self,
        agent: &AgentRecord,
        turn: u32,
        o: &Outcome,
        cost: Option<f64>,
    ) -> Result<(), RunError> {
        self.store
            .record_usage(&usage_record(agent, turn, o, cost))?;
        Ok(())
    }

    /// A stream session's turn has ended: record its result, usage and resume token (the
    /// session goes on, `running`), and hand back the record.
    pub fn end_turn(
        &self,
        id: &str,
        turn: u32,
        session_cost: &mut f64,
        outcome: &Outcome,
        aborted: Option<String>,
    ) -> Result<AgentRecord, RunError> {
        let agent = self.store.get_agent(id)?;
        let error = aborted.or_else(|| outcome.error.clone());
        // Tokens are per turn; Claude's cost is the session's running total.
        let cost = outcome.cost_usd.map(|total| {
            let delta = (total - *session_cost).max(0.0);
            *session_cost = total;
            delta
        });
        self.usage(&agent, turn, outcome, cost)?;
        let mut meta = agent.meta.clone();
        meta.turns = turn;
        meta.last_turn_ok = Some(outcome.success != Some(false) && error.is_none());
        Ok(self.store.update_agent(
            id,
            &AgentPatch {
                resume_token: outcome.resume_token.clone().map(Some),
                result: Some(outcome.result.clone().map(|r| self.redactor.redact(&r))),
                error: Some(error.map(|e| self.redactor.redact(&e))),
                meta: Some(meta),
                ..AgentPatch::default()
            },
        )?)
    }

    /// A run has ended: its usage, result, resume token and exit, then its status (unless it
    /// was already stopped or lost, which it keeps) with the events that say so.
    pub fn end_run(
        &self,
        id: &str,
        end: RunEnd<'_>,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let agent = self.store.get_agent(id)?;
        let o = end.outcome;
        let usage = end
            .usage_turn
            .map(|turn| usage_record(&agent, turn, o, o.cost_usd));
        let mut meta = agent.meta.clone();
        if let Some(t) = end.stderr_tail.as_ref().filter(|t| !t.is_empty()) {
            meta.stderr_tail = Some(t.clone());
        }
        if let Some(c) = &end.commit {
            meta.commit = Some(c.clone());
        }
        let unchanged = end.unchanged_branch.is_some();
        if unchanged {
            meta.unchanged_branch = end.unchanged_branch.clone();
        }
        let error = if end.succeeded {
            None
        } else {
            end.error.clone()
        };
        let patch = AgentPatch {
            resume_token: o.resume_token.clone().map(Some),
            result: o.result.clone().map(|r| Some(self.redactor.redact(&r))),
            exit_code: Some(end.exit_code),
            signal: Some(end.signal),
            error: error.clone().map(Some),
            pid: Some(None),
            meta: Some(meta),
            branch: unchanged.then_some(None),
            workspace: unchanged.then_some(None),
            ..AgentPatch::default()
        };
        // Already stopped (or lost): it keeps that status (and its error); how the process
        // ended is recorded.
        let otherwise = AgentPatch {
            error: None,
            ..patch.clone()
        };
        let to = if end.succeeded {
            AgentStatus::Succeeded
        } else {
            AgentStatus::Failed
        };
        // The usage, the end and the events that say so: one write.
        let (_, rec) = self.move_with_events(
            id,
            &TransitionWrite {
                usage: usage.as_ref(),
                from: &AgentStatus::ACTIVE,
                to,
                patch: &patch,
                otherwise: Some(&otherwise),
            },
            |moved, rec| {
                if !moved {
                    vec![Event::status(rec.status.as_str(), rec.error.clone())]
                } else if let Some(e) = &error {
                    let mut evs = Vec::new();
                    if o.error.is_none() {
                        evs.push(Event::Error(ErrorEvent { message: e.clone() }));
                    }
                    evs.push(Event::status("failed", end.detail.clone()));
                    evs
                } else {
                    vec![Event::status(
                        "succeeded",
                        end.commit.as_ref().map(|c| format!("committed {c}")),
                    )]
                }
            },
            observer,
        )?;
        tracing::info!(agent = %rec.id, status = rec.status.as_str(), "agent ended");
        Ok(rec)
    }

    /// Remove the worktree and branch of an agent with no commit beyond its base and nothing
    /// uncommitted; the branch it had, if they were removed. An agent with children keeps
    /// them (theirs grew from its branch).
    ///
    /// `opened`: its worktree's repository, if open already ([`workspace::open_worktree`]).
    pub fn remove_if_unchanged(
        &self,
        agent: &AgentRecord,
        clean: bool,
        opened: Option<workspace::OpenWorktree>,
    ) -> Option<String> {
        let (Some(branch), Some(ws), Some(base)) = (
            agent.branch.as_deref(),
            agent.workspace.as_deref(),
            agent.meta.base.as_deref(),
        ) else {
            return None;
        };
        let has_children = self.store.has_children(&agent.id).unwrap_or(true);
        if has_children {
            return None;
        }
        match workspace::remove_if_unchanged(Path::new(ws), opened, branch, base, clean) {
            Ok(true) => {
                tracing::info!(agent = %agent.id, %branch, "the agent changed nothing: its worktree and branch are removed");
                Some(branch.to_string())
            }
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(agent = %agent.id, "could not check or remove the branch of an agent that may have changed nothing: {e}");
                None
            }
        }
    }

    /// The end of a local run: say why it failed (exit, the runtime's own error, the stderr
    /// tail), commit what a successful agent left on its branch (without Fracta's files), and
    /// record it.
    pub fn finish_local(
        &self,
        id: &str,
        usage_turn: Option<u32>,
        outcome: &Outcome,
        exit: &ExitInfo,
        worktree: EndWorktree<'_>,
        observer: &mut dyn Observer,
    ) -> Result<AgentRecord, RunError> {
        let EndWorktree {
            files,
            opened: early,
        } = worktree;
        let agent = self.store.get_agent(id)?;
        let stderr_tail = self.redactor.redact(exit.stderr_tail.trim());
        // A run succeeds only on the runtime's own word: its completion event (a stream
        // session Fracta closed keeps its last completed turn's). An exit 0 without it
        // (a CLI that printed nothing, help text, a crash that exits 0) is a failure.
        let completed = outcome.success == Some(true);
        let succeeded = exit.success() && completed;
        let error = (!succeeded).then(|| {
            let first = if exit.success() && outcome.success.is_none() {
                format!("{}: {NO_COMPLETION}", agent.adapter)
            } else {
                format!("{} {}", agent.adapter, exit.describe())
            };
            // The tail's lines that the exit's description already quotes are not repeated.
            let tail: Vec<&str> = stderr_tail
                .lines()
                .filter(|l| l.trim().is_empty() || !first.contains(l.trim()))
                .collect();
            let mut parts = vec![first];
            if let Some(e) = &outcome.error {
                parts.push(format!("runtime error: {}", self.redactor.redact(e)));
            }
            let tail = &tail[tail.len().saturating_sub(10)..];
            if !tail.is_empty() {
                parts.push(format!("stderr: {}", tail.join("\n")));
            }
            parts.join("; ")
        });
        let mut commit = None;
        // Whether the worktree was just found to hold nothing to commit.
        let mut clean = false;
        // Opened once for both checks (what is left to commit, whether anything changed);
        // while the CLI started, if the run opened it then.
        let mut opened = None;
        if succeeded
            && agent.branch.is_some()
            && let Some(ws) = agent.workspace.as_deref()
        {
            opened = early.or_else(|| workspace::open_worktree(Path::new(ws)));
            let exclude: Vec<PathBuf> = files
                .iter()
                .filter(|f| f.in_workspace)
                .map(|f| f.path.clone())
                .collect();
            let holds_secret = |text: &str| self.redactor.contains_secret(text);
            match workspace::commit_leftovers(
                Path::new(ws),
                opened.as_ref(),
                &format!("fracta: {} ({})", agent.task, agent.id),
                &exclude,
                &holds_secret,
            ) {
                Ok(c) => {
                    clean = c.is_none();
                    commit = c;
                }
                Err(e @ workspace::WorkspaceError::SecretInWork { .. }) => {
                    tracing::warn!(agent = %agent.id, "{e}");
                    self.error(&agent, &e.to_string(), observer)?;
                }
                Err(e) => {
                    tracing::warn!(agent = %agent.id, "could not commit the agent's work: {e}")
                }
            }
        }
        tracing::debug!(agent = %agent.id, commit = ?commit, "leftovers checked");
        // Before its end is recorded (a resume may follow at once): an agent that changed
        // nothing leaves no worktree or branch.
        let unchanged_branch = self.remove_if_unchanged(&agent, clean, opened);
        self.end_run(
            id,
            RunEnd {
                usage_turn,
                outcome,
                succeeded,
                error,
                exit_code: exit.code,
                signal: exit.signal,
                stderr_tail: Some(stderr_tail),
                commit,
                detail: Some(exit.describe()),
                unchanged_branch,
            },
            observer,
        )
    }
}
