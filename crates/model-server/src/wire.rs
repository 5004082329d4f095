//! Pieces shared by the API encoders: SSE events, id generation, token
//! estimates, chunking and request inspection.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::Value;

use crate::script::{Block, Match, Reply};

/// One server-sent event.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    /// `event:` line; `None` for data-only events (Chat Completions).
    pub name: Option<String>,
    /// The `data:` payload (already serialized).
    pub data: String,
    /// Whether this is a content delta (subject to `chunk_delay_ms`, and the
    /// point after which `drop_connection` closes the stream).
    pub delta: bool,
}

impl Event {
    pub(crate) fn named(name: &str, data: &Value) -> Event {
        Event {
            name: Some(name.to_string()),
            data: data.to_string(),
            delta: false,
        }
    }

    pub(crate) fn data_only(data: String) -> Event {
        Event {
            name: None,
            data,
            delta: false,
        }
    }

    pub(crate) fn into_delta(mut self) -> Event {
        self.delta = true;
        self
    }

    /// The wire form: `event: NAME\ndata: JSON\n\n`.
    pub(crate) fn encode(&self) -> String {
        match &self.name {
            Some(n) => format!("event: {n}\ndata: {}\n\n", self.data),
            None => format!("data: {}\n\n", self.data),
        }
    }
}

/// A streamed response: its events and how many of them come before the
/// content (the point where a `hold` pauses).
#[derive(Debug, Clone)]
pub(crate) struct Stream {
    pub events: Vec<Event>,
    pub preamble: usize,
}

/// Deterministic per-server ids: `msg_0001`, `toolu_0001`, ...
#[derive(Debug, Default)]
pub(crate) struct Ids {
    counters: Mutex<HashMap<String, u64>>,
}

impl Ids {
    pub(crate) fn next(&self, prefix: &str) -> String {
        let mut map = crate::server::lock(&self.counters);
        let n = map.entry(prefix.to_string()).or_insert(0);
        *n += 1;
        format!("{prefix}_{:04}", *n)
    }
}

/// Resolved token counts for one reply.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub cache_creation: u64,
    pub reasoning: u64,
}

/// Everything an encoder needs to render a reply.
#[derive(Debug, Clone)]
pub(crate) struct Ctx {
    pub model: String,
    pub blocks: Vec<Block>,
    pub tokens: Tokens,
    pub stop_reason: Option<String>,
    pub created: u64,
}

impl Ctx {
    pub(crate) fn new(reply: &Reply, body: &Value) -> Ctx {
        let blocks = reply.blocks();
        let u = reply.usage.clone().unwrap_or_default();
        let out_chars: usize = blocks
            .iter()
            .map(|b| match b {
                Block::Text(t) | Block::Reasoning(t) => t.chars().count(),
                Block::ToolCall(tc) => tc.name.len() + tc.input_string().chars().count(),
            })
            .sum();
        let reasoning_chars: usize = blocks
            .iter()
            .map(|b| match b {
                Block::Reasoning(t) => t.chars().count(),
                _ => 0,
            })
            .sum();
        let tokens = Tokens {
            input: u.input_tokens.unwrap_or_else(|| estimate_tokens(body)),
            output: u
                .output_tokens
                .unwrap_or_else(|| (out_chars as u64).div_ceil(4).max(1)),
            cached: u.cached_tokens.unwrap_or(0),
            cache_creation: u.cache_creation_tokens.unwrap_or(0),
            reasoning: u
                .reasoning_tokens
                .unwrap_or_else(|| (reasoning_chars as u64).div_ceil(4)),
        };
        Ctx {
            model: body
                .get("model")
                .and_then(Value::as_str)
                .unwrap_or("fracta-model")
                .to_string(),
            blocks,
            tokens,
            stop_reason: reply.stop_reason.clone(),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    pub(crate) fn has_tool_calls(&self) -> bool {
        self.blocks.iter().any(|b| matches!(b, Block::ToolCall(_)))
    }
}

/// A rough token estimate of a request body (4 characters per token).
pub(crate) fn estimate_tokens(body: &Value) -> u64 {
    let n = match body {
        Value::Null => 0,
        Value::String(s) => s.len(),
        v => v.to_string().len(),
    };
    (n as u64).div_ceil(4).max(1)
}

/// Split text into at most three chunks on character boundaries (none for "").
pub(crate) fn chunks(s: &str) -> Vec<String> {
    let chars: Vec<char> = s.chars().collect();
    if chars.is_empty() {
        return Vec::new();
    }
    let size = chars.len().div_ceil(3);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// The text of the last user-side message of a request: the last user message
/// or tool result in `messages` (Anthropic, Chat Completions) or `input`
/// (Responses; a plain string input counts as the user message) or `contents` (Gemini: a
/// `user` turn's text parts and function responses).
pub fn last_user_text(body: &Value) -> Option<String> {
    let list = body
        .get("messages")
        .or_else(|| body.get("input"))
        .or_else(|| body.get("contents"))?;
    if let Value::String(s) = list {
        return Some(s.clone());
    }
    let items = list.as_array()?;
    let item = items.iter().rev().find(|item| {
        let role = item.get("role").and_then(Value::as_str);
        let ty = item.get("type").and_then(Value::as_str).unwrap_or("");
        matches!(role, Some("user") | Some("tool")) || ty.ends_with("_output")
    })?;
    let mut out = Vec::new();
    for key in ["content", "output", "text", "parts"] {
        if let Some(v) = item.get(key) {
            collect_message_text(v, &mut out);
        }
    }
    Some(out.join("\n"))
}

fn collect_message_text(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| collect_message_text(x, out)),
        Value::Object(m) => {
            // A thought of the model's is not the user's text.
            if m.get("thought").and_then(Value::as_bool) == Some(true) {
                return;
            }
            for key in ["text", "content", "output", "functionResponse", "response"] {
                if let Some(x) = m.get(key) {
                    collect_message_text(x, out);
                }
            }
        }
        _ => {}
    }
}

fn any_string_contains(v: &Value, needle: &str) -> bool {
    match v {
        Value::String(s) => s.contains(needle),
        Value::Array(a) => a.iter().any(|x| any_string_contains(x, needle)),
        Value::Object(m) => m.values().any(|x| any_string_contains(x, needle)),
        _ => false,
    }
}

/// Whether a request (of `api`, with `body`) satisfies `m`.
pub(crate) fn matches(m: &Match, api: crate::script::Api, body: &Value) -> bool {
    if m.api.is_some_and(|a| a != api) {
        return false;
    }
    if let Some(want) = &m.model {
        let model = body.get("model").and_then(Value::as_str).unwrap_or("");
        if !model.contains(want.as_str()) {
            return false;
        }
    }
    if let Some(want) = m.has_tools {
        let has = body
            .get("tools")
            .and_then(Value::as_array)
            .is_some_and(|t| !t.is_empty());
        if has != want {
            return false;
        }
    }
    if let Some(want) = m.stream {
        let stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        if stream != want {
            return false;
        }
    }
    if let Some(needle) = &m.contains {
        let ok = if m.anywhere {
            any_string_contains(body, needle)
        } else {
            last_user_text(body).is_some_and(|t| t.contains(needle.as_str()))
        };
        if !ok {
            return false;
        }
    }
    true
}

/// A short single-line excerpt for error messages.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let flat = flat.trim();
    if flat.chars().count() <= max {
        flat.to_string()
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::Api;
    use serde_json::json;

    #[test]
    fn chunking() {
        assert!(chunks("").is_empty());
        assert_eq!(chunks("ab"), vec!["a", "b"]);
        assert_eq!(chunks("Hello, world"), vec!["Hell", "o, w", "orld"]);
        assert_eq!(chunks("héllo").concat(), "héllo");
    }

    #[test]
    fn last_user_text_per_api() {
        let anthropic = json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "tool says hi"}]},
                {"type": "text", "text": "and more"}
            ]}
        ]});
        assert_eq!(
            last_user_text(&anthropic).unwrap(),
            "tool says hi\nand more"
        );
        let responses = json!({"input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "do it"}]},
            {"type": "function_call", "call_id": "c", "name": "shell", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c", "output": "exit 0"}
        ]});
        assert_eq!(last_user_text(&responses).unwrap(), "exit 0");
        assert_eq!(last_user_text(&json!({"input": "plain"})).unwrap(), "plain");
        let chat = json!({"messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "question"}
        ]});
        assert_eq!(last_user_text(&chat).unwrap(), "question");
        assert_eq!(last_user_text(&json!({"x": 1})), None);
        let gemini = json!({"contents": [
            {"role": "user", "parts": [{"text": "list it"}]},
            {"role": "model", "parts": [{"functionCall": {"name": "ls", "args": {}}}]},
            {"role": "user", "parts": [{"functionResponse": {"name": "ls", "response": {"output": "a.txt"}}}]}
        ]});
        assert_eq!(last_user_text(&gemini).unwrap(), "a.txt");
    }

    #[test]
    fn matching() {
        let body = json!({"model": "claude-haiku-4-5", "stream": true, "system": "secret sauce",
            "tools": [{"name": "Bash"}],
            "messages": [{"role": "user", "content": "hello there"}]});
        let m = |y: &str| serde_yaml_ng::from_str::<Match>(y).unwrap();
        assert!(matches(&m("{}"), Api::Anthropic, &body));
        assert!(matches(&m("{contains: hello}"), Api::Anthropic, &body));
        assert!(!matches(&m("{contains: sauce}"), Api::Anthropic, &body));
        assert!(matches(
            &m("{contains: sauce, anywhere: true}"),
            Api::Anthropic,
            &body
        ));
        assert!(!matches(&m("{api: openai}"), Api::Anthropic, &body));
        assert!(matches(
            &m("{model: haiku, has_tools: true, stream: true}"),
            Api::Anthropic,
            &body
        ));
        assert!(!matches(&m("{has_tools: false}"), Api::Anthropic, &body));
        assert!(!matches(&m("{stream: false}"), Api::Anthropic, &body));
        assert!(!matches(&m("{model: sonnet}"), Api::Anthropic, &body));
    }
}
