//! Fracta's boundary types: what crosses from Fracta to a person or a program — the CLI's
//! `--json` output, the HTTP API under `/v1` and the MCP tools. Plain serde + JSON Schema
//! types with no behaviour; the crates that know both sides convert into them (the control
//! plane in `fracta-server`'s `convert` module). This crate depends on nothing of Fracta's.

mod agent;
mod dashboard;
mod error;
mod event;
mod requests;

pub use agent::{AGENT_SCHEMA, AgentMode, AgentStatus, AgentView, TokenUsage};
pub use dashboard::{
    DiffView, FileDiff, ForestAgent, LoginBody, LoginCode, MergeBody, MergeView, RemoveQuery,
    SessionView,
};
pub use error::{ApiErrorBody, ErrorCode, ErrorDetail};
pub use event::EventView;
pub use requests::{
    AgentArgs, EventsQuery, Health, ListArgs, ListQuery, MessageArgs, ResumeBody, SendArgs,
    SendBody, SpawnArgs, SteerBody, WaitArgs,
};

/// Schema transform for views whose every field is always written (`null` when empty):
/// each property is required, so a client may rely on the key being there.
fn every_field_required(schema: &mut schemars::Schema) {
    let keys: Vec<serde_json::Value> = schema
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .map(|p| p.keys().cloned().map(serde_json::Value::String).collect())
        .unwrap_or_default();
    schema.insert("required".into(), serde_json::Value::Array(keys));
}
