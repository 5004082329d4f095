//! The requests Fracta sends to `codex app-server` (its JSON-RPC, one JSON object a line on
//! stdio or one a WebSocket message). Plain serde types, checked against the JSON Schema the
//! pinned CLI generates (`codex app-server generate-json-schema`) by a test, so a CLI upgrade
//! that changes them fails CI.

use serde::Serialize;

/// A client request. Codex's JSON-RPC leaves out the `jsonrpc` member.
#[derive(Debug, Clone, Serialize)]
pub struct Request<P> {
    pub id: u64,
    pub method: &'static str,
    pub params: P,
}

/// A client notification (`initialized`).
#[derive(Debug, Clone, Serialize)]
pub struct Notification {
    pub method: &'static str,
}

/// The answer to a request the server made of us.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorResponse {
    pub id: serde_json::Value,
    pub error: RpcError,
}

#[derive(Debug, Clone, Serialize)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    pub client_info: ClientInfo,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    pub name: String,
    pub version: String,
}

/// `thread/start`: the thread runs in the process's working folder with the config of its
/// `CODEX_HOME` and `-c` overrides (approval policy, sandbox, model, MCP gateway).
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadStartParams {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ThreadResumeParams {
    pub thread_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum UserInput {
    Text { text: String },
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnStartParams {
    pub thread_id: String,
    pub input: Vec<UserInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnSteerParams {
    pub thread_id: String,
    pub expected_turn_id: String,
    pub input: Vec<UserInput>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TurnInterruptParams {
    pub thread_id: String,
    pub turn_id: String,
}

/// The notifications Fracta reads (the rest are kept as runtime events).
pub const NOTIFICATIONS: &[&str] = &[
    "thread/started",
    "turn/started",
    "turn/completed",
    "item/started",
    "item/completed",
    "thread/tokenUsage/updated",
    "error",
    "configWarning",
    "deprecationNotice",
    "warning",
];
