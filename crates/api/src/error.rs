//! The shape of an error: the HTTP API's error answers and `--json` errors of the CLI.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An error: `{"error": {"code": "not_found", "message": "..."}}`. The HTTP API answers it
/// with a 4xx/5xx status; the CLI prints it on stdout under `--json`, with its usual
/// non-zero exit code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ApiErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// For programs: stable across versions.
    pub code: ErrorCode,
    /// For people: what went wrong, and what would be valid.
    pub message: String,
}

/// The machine-readable kind of an error. HTTP status and CLI exit code of each: `usage` 400
/// / 2, `unauthorized` 401 / 1, `forbidden` 403 / 1, `not_found` 404 / 4, `conflict` 409 / 2,
/// `budget_exceeded` 422 / 2, `internal` 500 / 1, `failed` (CLI only) 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// An invalid request or configuration; the message names what is valid.
    Usage,
    /// No or a wrong token.
    Unauthorized,
    /// The caller may not act on that agent.
    Forbidden,
    /// No such agent, task or config file.
    NotFound,
    /// Not in this state (no live session to send to, a turn in flight, ...).
    Conflict,
    /// Over a budget (depth, children, running agents, wall clock).
    BudgetExceeded,
    /// The operation failed (the message says why).
    Failed,
    /// A fault of Fracta's.
    Internal,
}
