//! The normalized event: one record of what an agent did, the same for every runtime.
//! A plain serde type; the raw runtime line is kept beside it in the state store.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The runtime's session started; carries the resume token.
    Session(SessionEvent),
    /// Text from the model (or, with role `user`, a prompt Fracta sent).
    Message(MessageEvent),
    /// Reasoning / thinking text.
    Reasoning(TextEvent),
    ToolCall(ToolCallEvent),
    ToolResult(ToolResultEvent),
    /// A model step (turn of the agent loop) started or finished.
    Step(StepEvent),
    Usage(UsageEvent),
    Error(ErrorEvent),
    /// Something the runtime warns about that does not end the turn (a config warning, a
    /// deprecation, a retried request).
    Warning(ErrorEvent),
    /// A status change recorded by Fracta (started, succeeded, failed, stopped, lost).
    Status(StatusEvent),
    /// A runtime line Fracta recognizes but does not normalize further (kept raw).
    Runtime(RuntimeEvent),
    /// A line the parser does not know: kept raw, flagged, never fatal.
    Unknown(UnknownEvent),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeEvent {
    /// The runtime's own name for it (`system/hook_started`, `rate_limit_event`, …).
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    pub resume_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub role: Role,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Assistant,
    User,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextEvent {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub name: String,
    #[serde(default)]
    pub input: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResultEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub output: String,
    #[serde(default)]
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepEvent {
    pub phase: StepPhase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepPhase {
    Started,
    Finished,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageEvent {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEvent {
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnknownEvent {
    /// Why the line was not understood (not JSON, unknown type, …).
    pub reason: String,
}

impl Event {
    /// The kind stored beside the payload (`message`, `tool_call`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Session(_) => "session",
            Event::Message(_) => "message",
            Event::Reasoning(_) => "reasoning",
            Event::ToolCall(_) => "tool_call",
            Event::ToolResult(_) => "tool_result",
            Event::Step(_) => "step",
            Event::Usage(_) => "usage",
            Event::Error(_) => "error",
            Event::Warning(_) => "warning",
            Event::Status(_) => "status",
            Event::Runtime(_) => "runtime",
            Event::Unknown(_) => "unknown",
        }
    }

    pub fn status(status: &str, detail: Option<String>) -> Event {
        Event::Status(StatusEvent {
            status: status.to_string(),
            detail,
        })
    }

    /// A one-line summary for live views and `fracta logs`.
    pub fn summary(&self) -> String {
        fn clip(s: &str, n: usize) -> String {
            let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
            if one.chars().count() > n {
                format!("{}…", one.chars().take(n).collect::<String>())
            } else {
                one
            }
        }
        match self {
            Event::Session(s) => format!("session {}", s.resume_token),
            Event::Message(m) => match m.role {
                Role::Assistant => format!("assistant: {}", clip(&m.text, 200)),
                Role::User => format!("user: {}", clip(&m.text, 200)),
            },
            Event::Reasoning(t) => format!("thinking: {}", clip(&t.text, 120)),
            Event::ToolCall(t) => format!("tool {} {}", t.name, clip(&t.input.to_string(), 120)),
            Event::ToolResult(t) => {
                format!(
                    "{} {}",
                    if t.is_error {
                        "tool error:"
                    } else {
                        "tool result:"
                    },
                    clip(&t.output, 120)
                )
            }
            Event::Step(s) => match s.phase {
                StepPhase::Started => "step started".to_string(),
                StepPhase::Finished => "step finished".to_string(),
            },
            Event::Usage(u) => format!(
                "usage: {} in, {} out, {} cached{}",
                u.input_tokens,
                u.output_tokens,
                u.cached_tokens,
                u.cost_usd.map(|c| format!(", ${c:.6}")).unwrap_or_default()
            ),
            Event::Error(e) => format!("error: {}", clip(&e.message, 300)),
            Event::Warning(e) => format!("warning: {}", clip(&e.message, 300)),
            Event::Status(s) => match &s.detail {
                Some(d) => format!("{}: {}", s.status, clip(d, 300)),
                None => s.status.clone(),
            },
            Event::Runtime(r) => format!("({})", r.name),
            Event::Unknown(u) => format!("(unparsed line: {})", u.reason),
        }
    }
}
