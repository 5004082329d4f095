//! The MCP gateway, named `fracta` (so Claude sees `mcp__fracta__<tool>`), on the official
//! rmcp SDK: over streamable HTTP for agents (each with its own bearer token) and over stdio
//! for a person's own MCP client (`fracta mcp`).

use std::sync::Arc;
use std::time::Duration;

use fracta_api::{AgentArgs, ListArgs, MessageArgs, SendArgs, SpawnArgs, WaitArgs};
use fracta_core::supervisor::{Caller, ControlError, Supervisor};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Extensions, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};

use crate::convert::{agent_view, request_context, spawn_request};

pub const DEFAULT_WAIT_SECS: u64 = 600;

/// How a connection's caller is known.
#[derive(Clone)]
pub enum Identity {
    /// Each HTTP request carries a bearer token (agents).
    BearerToken,
    /// A local person on stdio.
    User,
}

#[derive(Clone)]
pub struct FractaMcp {
    supervisor: Arc<Supervisor>,
    identity: Identity,
    tool_router: ToolRouter<Self>,
}

fn bearer(ext: &Extensions) -> Option<String> {
    let parts = ext.get::<http::request::Parts>()?;
    let v = parts
        .headers
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

fn ok_json<T: serde::Serialize>(v: &T) -> Result<CallToolResult, ErrorData> {
    let text =
        serde_json::to_string_pretty(v).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]))
}

/// A tool error the calling model can act on.
fn tool_error(msg: impl Into<String>) -> Result<CallToolResult, ErrorData> {
    Ok(CallToolResult::error(vec![ContentBlock::text(msg.into())]))
}

fn control_error(e: ControlError) -> Result<CallToolResult, ErrorData> {
    tool_error(e.to_string())
}

#[tool_router]
impl FractaMcp {
    pub fn new(supervisor: Arc<Supervisor>, identity: Identity) -> Self {
        FractaMcp {
            supervisor,
            identity,
            tool_router: Self::tool_router(),
        }
    }

    fn caller(&self, ext: &Extensions) -> Result<Caller, String> {
        match self.identity {
            Identity::User => Ok(Caller::User),
            Identity::BearerToken => match bearer(ext) {
                Some(t) => self
                    .supervisor
                    .authenticate(&t)
                    .map(Caller::Agent)
                    .ok_or_else(|| {
                        "unauthorized: this token belongs to no running agent".to_string()
                    }),
                None => Err(
                    "unauthorized: send your agent token as `Authorization: Bearer TOKEN`"
                        .to_string(),
                ),
            },
        }
    }

    #[tool(
        description = "Start a child agent on a task, with any runtime configured in fracta.yaml (by its name: e.g. claude, codex, opencode, gemini). Returns the new agent's id at once; with wait=true, waits for it to finish and returns its result. Budgets (depth, children, wall clock) can only be lowered."
    )]
    async fn spawn(
        &self,
        Parameters(a): Parameters<SpawnArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        let (req, asked) = match spawn_request(&a) {
            Ok(r) => r,
            Err(e) => return tool_error(e),
        };
        // The gateway's incoming request: its headers feed `http_header_token` origins.
        let request = ext
            .get::<http::request::Parts>()
            .map(|parts| request_context(&parts.headers))
            .unwrap_or_default();
        let agent = match self.supervisor.spawn_with(&caller, req, &asked, request) {
            Ok(a) => a,
            Err(e) => return control_error(e),
        };
        if a.wait.unwrap_or(false) {
            let t = Duration::from_secs(a.timeout_secs.unwrap_or(DEFAULT_WAIT_SECS));
            return match self.supervisor.wait(&agent.id, t).await {
                Ok(done) => ok_json(&agent_view(&done)),
                Err(e) => control_error(e),
            };
        }
        ok_json(&agent_view(&agent))
    }

    #[tool(
        description = "An agent's current status and details (yourself or an agent you spawned)."
    )]
    async fn status(
        &self,
        Parameters(a): Parameters<AgentArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        match self.supervisor.authorize(&caller, &a.agent_id) {
            Ok(agent) => ok_json(&agent_view(&agent)),
            Err(e) => control_error(e),
        }
    }

    #[tool(
        description = "Wait until an agent you spawned ends (or the timeout passes), then return its status and result."
    )]
    async fn wait(
        &self,
        Parameters(a): Parameters<WaitArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        let agent = match self.supervisor.authorize(&caller, &a.agent_id) {
            Ok(agent) => agent,
            Err(e) => return control_error(e),
        };
        let t = Duration::from_secs(a.timeout_secs.unwrap_or(DEFAULT_WAIT_SECS));
        match self.supervisor.wait(&agent.id, t).await {
            Ok(done) => ok_json(&agent_view(&done)),
            Err(e) => control_error(e),
        }
    }

    #[tool(
        description = "The final message of an agent you spawned (an error if it has not finished)."
    )]
    async fn result(
        &self,
        Parameters(a): Parameters<AgentArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        match self.supervisor.authorize(&caller, &a.agent_id) {
            Ok(agent) if !agent.status.is_terminal() => tool_error(format!(
                "agent {} is still {}; call `wait` first",
                agent.id,
                agent.status.as_str()
            )),
            Ok(agent) => match (&agent.result, &agent.error) {
                (Some(r), _) => Ok(CallToolResult::success(vec![ContentBlock::text(r.clone())])),
                (None, Some(e)) => {
                    tool_error(format!("agent {} {}: {e}", agent.id, agent.status.as_str()))
                }
                (None, None) => tool_error(format!(
                    "agent {} {} without a final message",
                    agent.id,
                    agent.status.as_str()
                )),
            },
            Err(e) => control_error(e),
        }
    }

    #[tool(
        description = "Send a follow-up message to an agent you spawned: it continues the same conversation in the same workspace. A live stream session queues it behind its turn in flight; an ended agent starts a new turn. Returns at once (the turn queued or started); use `wait` for the answer, or pass wait=true to answer once the turn has ended."
    )]
    async fn send(
        &self,
        Parameters(a): Parameters<SendArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        let agent = match self.supervisor.authorize(&caller, &a.agent_id) {
            Ok(agent) => agent,
            Err(e) => return control_error(e),
        };
        // A live stream session takes the turn (queued behind a turn in flight); an ended
        // agent runs a new turn of its conversation.
        if self.supervisor.has_session(&agent.id) {
            let wait = a
                .wait
                .unwrap_or(false)
                .then(|| Duration::from_secs(a.timeout_secs.unwrap_or(DEFAULT_WAIT_SECS)));
            return match self
                .supervisor
                .send(&caller, &agent.id, &a.prompt, wait)
                .await
            {
                Ok(agent) => ok_json(&agent_view(&agent)),
                Err(e) => control_error(e),
            };
        }
        match self.supervisor.resume(&agent.id, &a.prompt) {
            Ok(agent) if a.wait.unwrap_or(false) => {
                let t = Duration::from_secs(a.timeout_secs.unwrap_or(DEFAULT_WAIT_SECS));
                match self.supervisor.wait(&agent.id, t).await {
                    Ok(done) => ok_json(&agent_view(&done)),
                    Err(e) => control_error(e),
                }
            }
            Ok(agent) => ok_json(&agent_view(&agent)),
            Err(e) => control_error(e),
        }
    }

    #[tool(
        description = "Add input to the turn an agent is running right now (turn/steer). Supported by codex stream sessions only."
    )]
    async fn steer(
        &self,
        Parameters(a): Parameters<MessageArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        match self.supervisor.steer(&caller, &a.agent_id, &a.prompt).await {
            Ok(agent) => ok_json(&agent_view(&agent)),
            Err(e) => control_error(e),
        }
    }

    #[tool(description = "Stop an agent you spawned, and everything it spawned.")]
    async fn stop(
        &self,
        Parameters(a): Parameters<AgentArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        match self.supervisor.stop_as(&caller, &a.agent_id).await {
            Ok(agent) => ok_json(&agent_view(&agent)),
            Err(e) => control_error(e),
        }
    }

    #[tool(description = "The agents you spawned directly, with their status.")]
    async fn list(
        &self,
        Parameters(_a): Parameters<ListArgs>,
        ext: Extensions,
    ) -> Result<CallToolResult, ErrorData> {
        let caller = match self.caller(&ext) {
            Ok(c) => c,
            Err(e) => return tool_error(e),
        };
        let agents = match &caller {
            Caller::Agent(me) => self.supervisor.runner.store.children(me),
            Caller::User => self
                .supervisor
                .runner
                .store
                .list_agents(&fracta_state::AgentFilter {
                    roots_only: true,
                    ..Default::default()
                }),
        };
        match agents {
            Ok(list) => ok_json(&list.iter().map(agent_view).collect::<Vec<_>>()),
            Err(e) => tool_error(e.to_string()),
        }
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for FractaMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("fracta", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Fracta runs coding agents. Use `spawn` to hand a task to a child agent (any runtime), `wait`/`result` to get its answer, `list` to see your children, `stop` to end one.",
            )
    }
}
