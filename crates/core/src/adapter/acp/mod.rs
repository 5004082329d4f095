//! Any agent that speaks the Agent Client Protocol (ACP) on its stdio: `gemini --acp`,
//! `opencode acp`, `qwen --acp`, … The runtime entry's `command` and `args` start it; Fracta
//! is the ACP client. One session per run: `initialize`, then `session/new` (or
//! `session/load` to resume, where the agent advertises `loadSession`) with Fracta's MCP
//! gateway as an HTTP MCP server, then one `session/prompt` per turn (a batch run has one
//! turn and then closes the agent's stdin); `session/cancel` aborts a turn.
//! `session/request_permission` is answered from `project.allowed_tools`, and each decision
//! is recorded; `session/update` notifications become Fracta's normalized events.

pub mod wire;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use fracta_config::AdapterKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Adapter, AdapterError, EventParser, LaunchContext, Outcome, Parsed, StreamSession, str_at,
};
use crate::event::{
    ErrorEvent, Event, MessageEvent, Role, RuntimeEvent, SessionEvent, StepEvent, StepPhase,
    TextEvent, ToolCallEvent, ToolResultEvent, UsageEvent,
};
use crate::launch::{FileSpec, LaunchSpec, SessionInit, Stdin};
use wire::{
    CancelParams, ClientCapabilities, ContentBlock, ErrorResponse, HttpHeader, Implementation,
    InitializeParams, LoadSessionParams, McpServer, NewSessionParams, Notification,
    PermissionOutcome, PermissionResponse, PromptParams, Request, Response, RpcError,
};

/// The generic ACP adapter.
pub struct Acp;

/// What a session needs besides its turns, decided at launch: the folder it works in, the MCP
/// servers it gets (Fracta's gateway, with the agent's token), and the tool rules its
/// permission requests are answered from. Carried in [`LaunchSpec::session_init`], never
/// serialized anywhere else (the gateway header holds the agent's token).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AcpInit {
    pub cwd: String,
    pub mcp_servers: Vec<McpServer>,
    pub allowed_tools: Vec<String>,
}

impl AcpInit {
    pub fn new(ctx: &LaunchContext<'_>) -> AcpInit {
        let mcp_servers = ctx
            .gateway
            .map(|g| {
                vec![McpServer::Http {
                    name: "fracta".into(),
                    url: g.url.clone(),
                    headers: vec![HttpHeader {
                        name: "Authorization".into(),
                        value: format!("Bearer {}", g.token),
                    }],
                }]
            })
            .unwrap_or_default();
        AcpInit {
            cwd: ctx.workspace.display().to_string(),
            mcp_servers,
            allowed_tools: ctx.project.allowed_tools.clone(),
        }
    }
}

/// An ACP launch: `program args…` with its stdin piped (batch and stream alike: the protocol
/// is spoken there) and the session's init.
pub fn launch(
    ctx: &LaunchContext<'_>,
    program: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
    files: Vec<FileSpec>,
) -> Result<LaunchSpec, AdapterError> {
    let init = serde_json::to_value(AcpInit::new(ctx))
        .map_err(|e| AdapterError::Other(format!("cannot describe the ACP session: {e}")))?;
    Ok(LaunchSpec {
        program,
        args,
        env,
        env_remove: vec![],
        cwd: ctx.workspace.to_path_buf(),
        files,
        links: vec![],
        stdin: Stdin::Piped,
        endpoint: None,
        session_init: Some(SessionInit(init)),
        ..LaunchSpec::default()
    })
}

/// The capabilities of every ACP runtime: a session over stdio (a batch run too), step
/// counting by tool calls, no Pod (an ACP agent talks over its stdio).
pub const CAPABILITIES: super::Capabilities = super::Capabilities {
    steer: false,
    stream_on_kubernetes: false,
    default_max_steps: Some(super::DEFAULT_MAX_STEPS),
    networked_session: false,
    pod_port: None,
    stdio_session: true,
};

/// Why an ACP runtime cannot run on Kubernetes.
pub const NOT_ON_KUBERNETES: &str = "an ACP agent talks to Fracta over its stdin/stdout, which a Pod does not offer (no relay bridge yet); run this runtime with runtime.backend: local";

impl Adapter for Acp {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Acp
    }

    fn capabilities(&self) -> super::Capabilities {
        CAPABILITIES
    }

    fn binary(&self) -> &'static str {
        "acp agent"
    }

    fn npm_package(&self) -> &'static str {
        "the ACP agent's own package"
    }

    /// Any agent that speaks ACP: none in particular was tested.
    fn tested_version(&self) -> &'static str {
        ""
    }

    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let Some(command) = ctx.runtime.command.clone() else {
            return Err(AdapterError::Other(
                "an `adapter: acp` runtime needs `command` (and `args`), e.g. `command: opencode` with `args: [acp]`".into(),
            ));
        };
        launch(
            ctx,
            command,
            ctx.runtime.args.clone(),
            BTreeMap::new(),
            vec![],
        )
    }

    fn stream_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        self.batch_launch(ctx)
    }

    fn stream_session(&self, resume_token: Option<&str>) -> Box<dyn StreamSession> {
        Box::new(AcpSession::new(resume_token, AcpInit::default()))
    }

    fn session_for(
        &self,
        resume_token: Option<&str>,
        init: Option<&Value>,
    ) -> Box<dyn StreamSession> {
        session_for(resume_token, init)
    }

    fn parser(&self) -> Box<dyn EventParser> {
        Box::new(AcpSession::new(None, AcpInit::default()))
    }
}

/// The session of an ACP launch, from the init its launch described.
pub fn session_for(resume_token: Option<&str>, init: Option<&Value>) -> Box<dyn StreamSession> {
    let init = init
        .and_then(|v| serde_json::from_value::<AcpInit>(v.clone()).ok())
        .unwrap_or_default();
    Box::new(AcpSession::new(resume_token, init))
}

// ------------------------------------------------------------------ permissions

/// The tool rule (Claude-style, from `project.allowed_tools`) that allows an ACP tool call,
/// if any. ACP names a call's `kind`: `read` and `search` need `Read`, `Grep`, `Glob` or
/// `LS`; `edit`, `delete` and `move` need `Edit`, `Write`, `MultiEdit` or `NotebookEdit`;
/// `execute` needs `Bash` or a `Bash(pattern)` that matches its command; `fetch` needs
/// `WebFetch`; `think` is always allowed. Fracta's own MCP tools are always allowed. Any
/// other call is allowed by a rule naming its title exactly.
pub fn allowing_rule<'a>(allowed: &'a [String], call: &Value) -> Option<&'a str> {
    let kind = str_at(call, "kind").unwrap_or("other");
    let title = str_at(call, "title").unwrap_or("");
    if kind == "think" {
        return Some("think");
    }
    if is_fracta_tool(call) {
        return Some("mcp__fracta");
    }
    let command = command_of(call);
    allowed.iter().map(String::as_str).find(|rule| {
        let (tool, pattern) = match rule.split_once('(') {
            Some((t, rest)) => (t.trim(), Some(rest.trim_end_matches(')').trim())),
            None => (rule.trim(), None),
        };
        match kind {
            "read" | "search" => matches!(tool, "Read" | "Grep" | "Glob" | "LS"),
            "edit" | "delete" | "move" => {
                matches!(tool, "Edit" | "Write" | "MultiEdit" | "NotebookEdit")
            }
            "fetch" => tool == "WebFetch",
            "execute" => {
                tool == "Bash"
                    && match (pattern, command.as_deref()) {
                        (None | Some("" | "*"), _) => true,
                        (Some(p), Some(c)) => bash_pattern_matches(p, c),
                        (Some(_), None) => false,
                    }
            }
            _ => *rule == title,
        }
    })
}

/// A call of one of Fracta's own MCP tools (its gateway: spawn, status, …).
fn is_fracta_tool(call: &Value) -> bool {
    let title = str_at(call, "title").unwrap_or("");
    let id = str_at(call, "toolCallId").unwrap_or("");
    title.starts_with("mcp__fracta__")
        || title.contains("(fracta MCP Server)")
        || title.starts_with("fracta_")
        || id.starts_with("mcp__fracta__")
        || id.starts_with("mcp_fracta_")
        || id.starts_with("fracta__")
}

/// The command line of an `execute` call: its raw input's `command` (a string or an argv),
/// else its title.
fn command_of(call: &Value) -> Option<String> {
    let raw = call.get("rawInput").unwrap_or(&Value::Null);
    match raw.get("command") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(a)) => Some(
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => str_at(call, "title").map(str::to_string),
    }
}

/// Claude's Bash rule patterns: `git:*` and `git *` allow `git` and `git …`; a `*` elsewhere
/// matches anything; otherwise the command must be the pattern.
fn bash_pattern_matches(pattern: &str, command: &str) -> bool {
    let command = command.trim();
    if let Some(prefix) = pattern
        .strip_suffix(":*")
        .or_else(|| pattern.strip_suffix(" *"))
    {
        return command == prefix
            || command
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(' '));
    }
    if !pattern.contains('*') {
        return command == pattern;
    }
    // A simple glob: the pieces between `*`s appear in order.
    let pieces: Vec<&str> = pattern.split('*').collect();
    let mut rest = command;
    for (i, piece) in pieces.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(piece) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == pieces.len() - 1 {
            return rest.ends_with(piece);
        } else {
            match rest.find(piece) {
                Some(at) => rest = &rest[at + piece.len()..],
                None => return false,
            }
        }
    }
    rest.is_empty()
}

// ------------------------------------------------------------------ session

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Initialize,
    New,
    Load,
    Prompt,
}

/// One ACP session, as the session loop drives it.
pub struct AcpSession {
    init: AcpInit,
    resume: Option<String>,
    next_id: u64,
    pending: BTreeMap<u64, Pending>,
    session_id: Option<String>,
    /// Replaying a loaded session's history (its updates are not this run's events).
    loading: bool,
    queued: VecDeque<String>,
    in_turn: bool,
    turn_end: bool,
    /// The agent message and thought being streamed, joined until something else comes.
    message: String,
    message_id: Option<String>,
    thought: String,
    /// Usage an agent reports in its updates' `_meta` (Qwen Code), summed over the turn.
    meta_usage: UsageEvent,
    /// Tool calls seen (started), and those finished.
    calls: BTreeMap<String, String>,
    finished: BTreeSet<String>,
    output: Vec<String>,
    outcome: Outcome,
}

fn line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

impl AcpSession {
    pub fn new(resume: Option<&str>, init: AcpInit) -> AcpSession {
        AcpSession {
            init,
            resume: resume.map(str::to_string),
            next_id: 0,
            pending: BTreeMap::new(),
            session_id: None,
            loading: false,
            queued: VecDeque::new(),
            in_turn: false,
            turn_end: false,
            message: String::new(),
            message_id: None,
            thought: String::new(),
            meta_usage: UsageEvent::default(),
            calls: BTreeMap::new(),
            finished: BTreeSet::new(),
            output: Vec::new(),
            outcome: Outcome::default(),
        }
    }

    fn request<P: Serialize>(&mut self, method: &'static str, params: P, kind: Pending) -> String {
        self.next_id += 1;
        self.pending.insert(self.next_id, kind);
        line(&Request {
            jsonrpc: "2.0",
            id: self.next_id,
            method,
            params,
        })
    }

    fn prompt(&mut self, text: &str) -> Vec<String> {
        let Some(session_id) = self.session_id.clone() else {
            self.queued.push_back(text.to_string());
            return Vec::new();
        };
        self.in_turn = true;
        self.outcome.result = None;
        self.outcome.error = None;
        self.outcome.success = None;
        self.outcome.usage = UsageEvent::default();
        self.meta_usage = UsageEvent::default();
        vec![self.request(
            "session/prompt",
            PromptParams {
                session_id,
                prompt: vec![ContentBlock::Text {
                    text: text.to_string(),
                }],
            },
            Pending::Prompt,
        )]
    }

    /// The session failed (before or during a turn): say why, and end the turn waiting.
    fn fail(&mut self, message: String) -> Vec<Event> {
        self.outcome.error = Some(message.clone());
        self.outcome.success = Some(false);
        if self.in_turn || !self.queued.is_empty() {
            self.in_turn = false;
            self.queued.clear();
            self.turn_end = true;
        }
        vec![Event::Error(ErrorEvent { message })]
    }

    /// The message and thought streamed so far, as events.
    fn flush(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        let thought = std::mem::take(&mut self.thought);
        if !thought.is_empty() {
            events.push(Event::Reasoning(TextEvent { text: thought }));
        }
        let text = std::mem::take(&mut self.message);
        if !text.is_empty() {
            self.outcome.result = Some(text.clone());
            events.push(Event::Message(MessageEvent {
                role: Role::Assistant,
                text,
            }));
        }
        events
    }

    fn response(&mut self, id: u64, v: &Value) -> Parsed {
        let Some(kind) = self.pending.remove(&id) else {
            return Parsed::unknown("a response to an id Fracta never used");
        };
        if let Some(e) = v.get("error") {
            let message = str_at(e, "message")
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string());
            let what = match kind {
                Pending::Initialize => "initialize",
                Pending::New => "session/new",
                Pending::Load => "session/load",
                Pending::Prompt => "session/prompt",
            };
            let mut events = self.flush();
            if kind == Pending::Prompt {
                self.in_turn = false;
                self.turn_end = true;
            }
            events.extend(self.fail(format!("the agent refused {what}: {message}")));
            return Parsed::known(events);
        }
        let result = v.get("result").unwrap_or(&Value::Null);
        match kind {
            Pending::Initialize => {
                let load = result
                    .pointer("/agentCapabilities/loadSession")
                    .and_then(Value::as_bool)
                    == Some(true);
                let next = match self.resume.clone() {
                    Some(_) if !load => {
                        let agent = result
                            .pointer("/agentInfo/name")
                            .and_then(Value::as_str)
                            .unwrap_or("this ACP agent");
                        return Parsed::known(self.fail(format!(
                            "{agent} does not advertise `loadSession`, so its sessions cannot be resumed; start a new agent instead"
                        )));
                    }
                    Some(session_id) => {
                        self.loading = true;
                        self.request(
                            "session/load",
                            LoadSessionParams {
                                session_id,
                                cwd: self.init.cwd.clone(),
                                mcp_servers: self.init.mcp_servers.clone(),
                            },
                            Pending::Load,
                        )
                    }
                    None => self.request(
                        "session/new",
                        NewSessionParams {
                            cwd: self.init.cwd.clone(),
                            mcp_servers: self.init.mcp_servers.clone(),
                        },
                        Pending::New,
                    ),
                };
                self.output.push(next);
                Parsed::known(vec![Event::Runtime(RuntimeEvent {
                    name: "initialized".into(),
                })])
            }
            Pending::New | Pending::Load => {
                // A loaded session's history may still be replayed after the answer (Gemini
                // CLI replays it without waiting): it goes on until the agent lists its
                // commands, which both Gemini CLI and OpenCode do once a session is ready.
                self.loading = kind == Pending::Load;
                let sid = match (kind, str_at(result, "sessionId"), self.resume.clone()) {
                    (Pending::New, Some(s), _) => s.to_string(),
                    (Pending::Load, _, Some(s)) => s,
                    _ => return Parsed::known(self.fail("the agent started no session".into())),
                };
                self.session_id = Some(sid.clone());
                self.outcome.resume_token = Some(sid.clone());
                if let Some(first) = self.queued.pop_front() {
                    let out = self.prompt(&first);
                    self.output.extend(out);
                }
                Parsed::known(vec![Event::Session(SessionEvent {
                    resume_token: sid,
                    model: None,
                })])
            }
            Pending::Prompt => {
                let mut events = self.flush();
                let usage = UsageEvent {
                    // ACP's `usage`; Gemini CLI's `_meta.quota.token_count`.
                    input_tokens: first_u64(
                        result,
                        &[
                            "/usage/inputTokens",
                            "/_meta/quota/token_count/input_tokens",
                        ],
                    ),
                    output_tokens: first_u64(
                        result,
                        &[
                            "/usage/outputTokens",
                            "/_meta/quota/token_count/output_tokens",
                        ],
                    ),
                    cached_tokens: first_u64(
                        result,
                        &["/usage/cachedReadTokens", "/usage/cachedTokens"],
                    ),
                    cost_usd: None,
                };
                // Qwen Code reports usage per model call, in its chunks' `_meta`.
                let usage = if usage.input_tokens == 0 && usage.output_tokens == 0 {
                    std::mem::take(&mut self.meta_usage)
                } else {
                    usage
                };
                self.outcome.usage = usage.clone();
                events.push(Event::Usage(usage));
                let stop = str_at(result, "stopReason").unwrap_or("end_turn");
                if stop == "end_turn" {
                    if self.outcome.success.is_none() {
                        self.outcome.success = Some(true);
                    }
                } else {
                    let message = format!("the turn ended: {stop}");
                    self.outcome.success = Some(false);
                    self.outcome.error.get_or_insert(message.clone());
                    events.push(Event::Error(ErrorEvent { message }));
                }
                self.in_turn = false;
                self.turn_end = true;
                // A turn sent while this one ran goes now.
                if let Some(next) = self.queued.pop_front() {
                    let out = self.prompt(&next);
                    self.output.extend(out);
                }
                Parsed::known(events)
            }
        }
    }

    /// A request of the agent's.
    fn agent_request(&mut self, id: &Value, method: &str, params: &Value) -> Parsed {
        if method != "session/request_permission" {
            self.output.push(line(&ErrorResponse {
                jsonrpc: "2.0",
                id: id.clone(),
                error: RpcError {
                    code: -32601,
                    message: format!("fracta does not offer {method}"),
                },
            }));
            return Parsed::known(vec![Event::Runtime(RuntimeEvent {
                name: format!("request {method} declined"),
            })]);
        }
        let call = params.get("toolCall").unwrap_or(&Value::Null);
        let rule = allowing_rule(&self.init.allowed_tools, call);
        let options = params
            .get("options")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let pick = |kinds: &[&str]| {
            kinds.iter().find_map(|k| {
                options
                    .iter()
                    .find(|o| str_at(o, "kind") == Some(k))
                    .and_then(|o| str_at(o, "optionId"))
                    .map(str::to_string)
            })
        };
        let choice = match rule {
            Some(_) => pick(&["allow_once", "allow_always"]),
            None => pick(&["reject_once", "reject_always"]),
        };
        let outcome = match choice {
            Some(option_id) => PermissionOutcome::Selected { option_id },
            None => PermissionOutcome::Cancelled,
        };
        self.output.push(line(&Response {
            jsonrpc: "2.0",
            id: id.clone(),
            result: PermissionResponse { outcome },
        }));
        let tool = str_at(call, "title")
            .or_else(|| str_at(call, "kind"))
            .unwrap_or("a tool");
        let name = match rule {
            Some(r) => format!("permission allowed: {tool} (by {r})"),
            None => format!("permission denied: {tool} (not in project.allowed_tools)"),
        };
        // The model called a tool even when it is denied (Gemini CLI then says no more of
        // it): a call, and a step, from its first word.
        let mut events = self.flush();
        events.extend(self.call_started(call));
        events.push(Event::Runtime(RuntimeEvent { name }));
        Parsed::known(events)
    }

    /// A tool call's start (a step), the first time it is seen.
    fn call_started(&mut self, call: &Value) -> Vec<Event> {
        let id = str_at(call, "toolCallId").unwrap_or("").to_string();
        if self.calls.contains_key(&id) {
            return vec![];
        }
        let name = str_at(call, "title")
            .or_else(|| str_at(call, "kind"))
            .unwrap_or("tool")
            .to_string();
        self.calls.insert(id.clone(), name.clone());
        vec![
            Event::Step(StepEvent {
                phase: StepPhase::Started,
            }),
            Event::ToolCall(ToolCallEvent {
                id: Some(id),
                name,
                input: call.get("rawInput").cloned().unwrap_or(Value::Null),
            }),
        ]
    }

    fn update(&mut self, update: &Value) -> Parsed {
        let kind = str_at(update, "sessionUpdate").unwrap_or("");
        if self.loading {
            // The history of a loaded session, replayed: recorded when it happened.
            if kind == "available_commands_update" && self.session_id.is_some() {
                self.loading = false;
            }
            return Parsed::known(vec![]);
        }
        if let Some(u) = update.pointer("/_meta/usage") {
            let m = &mut self.meta_usage;
            m.input_tokens += first_u64(u, &["/inputTokens"]);
            m.output_tokens += first_u64(u, &["/outputTokens"]);
            m.cached_tokens += first_u64(u, &["/cachedReadTokens"]);
        }
        match kind {
            "agent_message_chunk" => {
                // A new message (OpenCode names each) ends the one before.
                let id = str_at(update, "messageId").map(str::to_string);
                if id.is_some() && id != self.message_id && !self.message.is_empty() {
                    let events = self.flush();
                    self.message_id = id;
                    self.message
                        .push_str(text_of(update.get("content")).as_str());
                    return Parsed::known(events);
                }
                if id.is_some() {
                    self.message_id = id;
                }
                if !self.thought.is_empty() {
                    let t = std::mem::take(&mut self.thought);
                    self.message
                        .push_str(text_of(update.get("content")).as_str());
                    return Parsed::known(vec![Event::Reasoning(TextEvent { text: t })]);
                }
                self.message
                    .push_str(text_of(update.get("content")).as_str());
                Parsed::known(vec![])
            }
            "agent_thought_chunk" => {
                let mut events = Vec::new();
                if !self.message.is_empty() {
                    events = self.flush();
                }
                self.thought
                    .push_str(text_of(update.get("content")).as_str());
                Parsed::known(events)
            }
            // Fracta recorded the prompt when it sent it.
            "user_message_chunk" => Parsed::known(vec![]),
            "tool_call" | "tool_call_update" => {
                let mut events = self.flush();
                let id = str_at(update, "toolCallId").unwrap_or("").to_string();
                events.extend(self.call_started(update));
                let status = str_at(update, "status").unwrap_or("");
                if matches!(status, "completed" | "failed") && self.finished.insert(id.clone()) {
                    let output = content_text(update.get("content"))
                        .or_else(|| {
                            update.get("rawOutput").map(|o| match o {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            })
                        })
                        .unwrap_or_default();
                    events.push(Event::ToolResult(ToolResultEvent {
                        id: Some(id.clone()),
                        name: self.calls.get(&id).cloned(),
                        output,
                        is_error: status == "failed",
                    }));
                    events.push(Event::Step(StepEvent {
                        phase: StepPhase::Finished,
                    }));
                }
                Parsed::known(events)
            }
            "plan" => {
                let mut events = self.flush();
                let entries: Vec<String> = update
                    .get("entries")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|e| {
                                let mark = match str_at(e, "status") {
                                    Some("completed") => "[x]",
                                    Some("in_progress") => "[~]",
                                    _ => "[ ]",
                                };
                                format!("{mark} {}", str_at(e, "content").unwrap_or(""))
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                events.push(Event::Runtime(RuntimeEvent {
                    name: format!("plan: {}", entries.join("; ")),
                }));
                Parsed::known(events)
            }
            "" => Parsed::unknown("session/update without a sessionUpdate"),
            // Commands, modes, titles, context size, …: kept raw.
            other => Parsed::known(vec![Event::Runtime(RuntimeEvent {
                name: other.to_string(),
            })]),
        }
    }
}

fn first_u64(v: &Value, pointers: &[&str]) -> u64 {
    pointers
        .iter()
        .find_map(|p| v.pointer(p).and_then(Value::as_u64))
        .unwrap_or(0)
}

/// The text of a content block (`{type: text, text}`).
fn text_of(content: Option<&Value>) -> String {
    content
        .and_then(|c| str_at(c, "text"))
        .unwrap_or("")
        .to_string()
}

/// The text of a tool call's content list (`content` blocks; a diff by its path).
fn content_text(content: Option<&Value>) -> Option<String> {
    let items = content?.as_array()?;
    let parts: Vec<String> = items
        .iter()
        .filter_map(|c| match str_at(c, "type") {
            Some("content") => c
                .get("content")
                .and_then(|b| str_at(b, "text"))
                .map(str::to_string),
            Some("diff") => str_at(c, "path").map(|p| format!("diff {p}")),
            Some("terminal") => str_at(c, "terminalId").map(|t| format!("terminal {t}")),
            _ => None,
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

impl EventParser for AcpSession {
    fn parse_line(&mut self, l: &str) -> Parsed {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            return Parsed::unknown("not JSON");
        };
        let method = str_at(&v, "method").map(str::to_string);
        let params = v.get("params").cloned().unwrap_or(Value::Null);
        match (v.get("id").cloned(), method) {
            (Some(id), Some(m)) => self.agent_request(&id, &m, &params),
            (Some(id), None) => match id.as_u64() {
                Some(id) => self.response(id, &v),
                None => Parsed::unknown("a response to an id Fracta never used"),
            },
            (None, Some(m)) if m == "session/update" => {
                self.update(params.get("update").unwrap_or(&Value::Null))
            }
            (None, Some(m)) => Parsed::known(vec![Event::Runtime(RuntimeEvent { name: m })]),
            (None, None) => Parsed::unknown("neither a request, a response nor a notification"),
        }
    }

    fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    fn take_turn_end(&mut self) -> bool {
        std::mem::take(&mut self.turn_end)
    }
}

impl StreamSession for AcpSession {
    fn open(&mut self, prompt: &str) -> Vec<String> {
        let init = self.request(
            "initialize",
            InitializeParams {
                protocol_version: wire::PROTOCOL_VERSION,
                client_capabilities: ClientCapabilities::default(),
                client_info: Implementation {
                    name: "fracta".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                },
            },
            Pending::Initialize,
        );
        self.queued.push_back(prompt.to_string());
        vec![init]
    }

    fn send(&mut self, prompt: &str) -> Vec<String> {
        if self.in_turn {
            self.queued.push_back(prompt.to_string());
            return Vec::new();
        }
        self.prompt(prompt)
    }

    fn interrupt(&mut self) -> Vec<String> {
        match (&self.session_id, self.in_turn) {
            (Some(sid), true) => vec![line(&Notification {
                jsonrpc: "2.0",
                method: "session/cancel",
                params: CancelParams {
                    session_id: sid.clone(),
                },
            })],
            _ => Vec::new(),
        }
    }

    fn take_output(&mut self) -> Vec<String> {
        std::mem::take(&mut self.output)
    }
}

#[cfg(test)]
mod tests;
