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
