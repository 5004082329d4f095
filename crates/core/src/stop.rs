//! Stopping agents (one, or a whole subtree) and reconciling ghosts: agents recorded as
//! active whose supervising Fracta process is gone.

use fracta_state::{AgentFilter, AgentPatch, AgentRecord, AgentStatus, NewEvent};

use crate::backend::{STOP_GRACE, local};
use crate::error::RunError;
use crate::event::Event;
use crate::resolve::hostname;
use crate::runner::Runner;

impl Runner {
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
            .is_some_and(|h| h.starts_with(crate::remote::REMOTE_HOST_PREFIX))
            && let Some(remote) = self.remote.get()
        {
            self.recorder
                .end_with(&agent.id, AgentStatus::Stopped, "stopped by request")?;
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
        self.recorder
            .end_with(&agent.id, AgentStatus::Stopped, "stopped by request")?;
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
            let sup = a.meta.supervisor.as_ref();
            let sup_pid = sup.map(|s| s.pid);
            let alive = match sup {
                Some(s) => local::is_alive(s.pid, s.identity.as_deref()),
                // Recorded before supervisors were (older records): judge by age.
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
    use std::sync::Arc;

    use fracta_state::{ProcessRef, Store};

    use crate::resolve::SpawnRequest;
    use crate::runner::Runner;

    use super::*;

    fn runner(dir: &std::path::Path) -> (Runner, Arc<dyn Store>) {
        let cfg = fracta_config::parse(
            "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n      command: /bin/true\n",
            &dir.join("fracta.yaml"),
        )
        .unwrap();
        let store: Arc<dyn Store> = Arc::new(fracta_state::SqliteStore::open_in_memory().unwrap());
        (Runner::new(Arc::new(cfg), Arc::clone(&store)), store)
    }

    /// An agent waiting for a `max_running` slot under a live supervisor is no ghost, however
    /// old its record: a reconcile (any `show` or `stop` of another agent) leaves it queued.
    /// One whose supervisor is gone is written off, so the check is not vacuous.
    #[test]
    fn reconcile_leaves_a_queued_agent_of_a_live_supervisor_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (runner, store) = runner(dir.path());
        let old = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(2);
        let queue = |supervisor: Option<ProcessRef>| {
            let mut p = runner
                .prepare(&SpawnRequest {
                    task: "wait".into(),
                    prompt: Some("wait your turn".into()),
                    ..SpawnRequest::default()
                })
                .unwrap();
            p.agent.updated_at = old;
            p.agent.created_at = old;
            // Recorded as the runner records a queued agent (this process supervises it).
            let mut a = runner.record(p).unwrap();
            if let Some(s) = supervisor {
                a = store
                    .update_agent(
                        &a.id,
                        &AgentPatch {
                            meta: Some(fracta_state::AgentMeta {
                                supervisor: Some(s),
                                ..a.meta.clone()
                            }),
                            ..AgentPatch::default()
                        },
                    )
                    .unwrap();
            }
            a
        };
        let waiting = queue(None);
        assert_eq!(waiting.status, AgentStatus::Queued);
        assert!(
            jiff::Timestamp::now().duration_since(waiting.updated_at)
                > jiff::SignedDuration::from_secs(3600)
        );
        // A queued agent whose supervisor died (a child process that has exited).
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        let orphan = queue(Some(ProcessRef {
            pid: dead_pid,
            identity: None,
        }));

        let fixed = runner.reconcile().unwrap();
        assert_eq!(fixed, vec![orphan.id.clone()]);
        let after = store.get_agent(&waiting.id).unwrap();
        assert_eq!(after.status, AgentStatus::Queued, "{after:?}");
        assert_eq!(after.error, None);
        assert_eq!(
            store.get_agent(&orphan.id).unwrap().status,
            AgentStatus::Lost
        );
        assert_eq!(
            waiting.meta.supervisor.as_ref().map(|s| s.pid),
            Some(std::process::id()),
            "a queued agent is recorded with its supervisor"
        );
    }
}
