//! The shape of a recorded event.

use jiff::Timestamp;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One recorded event of an agent: `GET /v1/agents/{id}/events`, the `data` of the event
/// streams, and `fracta logs --json` (one per line).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(transform = crate::every_field_required)]
pub struct EventView {
    pub agent_id: String,
    /// Per-agent sequence number: 1, 2, 3, ... without gaps.
    pub seq: u64,
    #[schemars(with = "String")]
    pub at: Timestamp,
    /// `message`, `tool_call`, `tool_result`, `step`, `usage`, `status`, `error`, `warning`, ...
    pub kind: String,
    /// The normalized event (its fields depend on `kind`).
    pub payload: Value,
    /// The runtime's own line this event came from, when it is the first event of that line.
    pub raw: Option<String>,
    /// Whether the runtime's line was understood (false: `payload` is a fallback).
    pub parsed: bool,
}
