//! The script format: plain serde types, loadable from YAML or JSON.
//!
//! A script is an ordered list of rules plus an optional fallback reply.
//! For every model request the server picks the first rule whose `when`
//! matches and that still has uses left; if none does it answers with the
//! `fallback`, and without a fallback it answers HTTP 500 with a readable
//! "no script rule matched" error.
//!
//! ```yaml
//! rules:
//!   - name: greet
//!     when: { api: anthropic, contains: "say hello" }
//!     reply: "Hello from the script!"          # a bare string is a text reply
//!   - name: run-ls
//!     when: { contains: "list files", has_tools: true }
//!     times: 2                                  # default 1
//!     reply:
//!       reasoning: "The user wants a listing."
//!       text: "Listing files."
//!       tool_calls:
//!         - { name: Bash, input: { command: "ls" } }
//!       usage: { input_tokens: 120, output_tokens: 30, cached_tokens: 100 }
//!       chunk_delay_ms: 5
//!   - name: slow-turn
//!     when: { contains: "long task" }
//!     reply: { text: "Working...", hold: turn1 }   # pauses until released
//!   - name: overloaded
//!     when: { model: haiku }
//!     repeat: true                              # unlimited uses
//!     reply: { error: { status: 529, message: "try later" } }
//!   - name: ordered
//!     when: { api: openai, anywhere: true, contains: "apply_patch" }
//!     reply:
//!       content:                                # explicit ordered content
//!         - text: "Patching."
//!         - tool_call: { name: apply_patch, kind: custom, input: "*** Begin Patch\n*** End Patch" }
//! fallback: "I have nothing scripted for that."
//! ```

use std::path::Path;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::ScriptError;

/// A whole script: ordered rules and an optional fallback.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Script {
    /// Rules, tried in order.
    pub rules: Vec<Rule>,
    /// Reply used (without limit) when no rule matches.
    pub fallback: Option<Reply>,
}

/// One scripted rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Name recorded in [`crate::RecordedRequest::rule`]; unnamed rules are recorded as `#INDEX`.
    #[serde(default)]
    pub name: Option<String>,
    /// What a request must look like; an empty match matches every model request.
    #[serde(default)]
    pub when: Match,
    /// How many requests this rule answers (default 1). Ignored when `repeat` is true.
    #[serde(default)]
    pub times: Option<u32>,
    /// Answer any number of requests.
    #[serde(default)]
    pub repeat: bool,
    /// The reply.
    pub reply: Reply,
}

impl Rule {
    /// How many uses this rule has in total; `None` = unlimited.
    pub fn limit(&self) -> Option<u32> {
        if self.repeat {
            None
        } else {
            Some(self.times.unwrap_or(1))
        }
    }
}

/// Which wire API a request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Api {
    /// Anthropic Messages API (`/v1/messages`).
    Anthropic,
    /// OpenAI Responses API (`/v1/responses`).
    #[serde(rename = "openai")]
    OpenAi,
    /// OpenAI Chat Completions API (`/v1/chat/completions`).
    #[serde(rename = "openai_chat")]
    OpenAiChat,
    /// Gemini API (`/v1beta/models/{model}:generateContent`, `:streamGenerateContent`).
    Gemini,
}

impl Api {
    /// The name used in scripts and recordings.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Anthropic => "anthropic",
            Api::OpenAi => "openai",
            Api::OpenAiChat => "openai_chat",
            Api::Gemini => "gemini",
        }
    }
}

/// Conditions on a request; every given field must hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    /// The wire API.
    pub api: Option<Api>,
    /// Substring of the last user-side message's text (a user message or a
    /// tool result), or of any string in the body when `anywhere` is true.
    pub contains: Option<String>,
    /// Search `contains` in every string of the request body.
    pub anywhere: bool,
    /// Substring of the request's `model`.
    pub model: Option<String>,
    /// Whether the request offers tools (a non-empty `tools` array).
    pub has_tools: Option<bool>,
    /// Whether the request asks for streaming.
    pub stream: Option<bool>,
}

/// The kind of an OpenAI tool call (ignored for Anthropic).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// A `function_call` item with JSON `arguments`.
    #[default]
    Function,
    /// A `custom_tool_call` item with a free-form `input` string.
    Custom,
}

/// A tool call the model makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// Tool name, e.g. `Bash`, `shell`, `mcp__srv__tool`.
    pub name: String,
    /// Tool input. For `kind: custom` a string is sent as is; anything else is serialized.
    #[serde(default = "empty_object")]
    pub input: Value,
    /// OpenAI Responses only: the tool's namespace (Codex sends MCP tools as namespace
    /// `mcp__SERVER` with functions named after each tool).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `function` (default) or `custom` (OpenAI only).
    #[serde(default)]
    pub kind: ToolKind,
    /// The call id (`toolu_...` / `call_...`); generated when absent.
    #[serde(default)]
    pub id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

impl ToolCall {
    /// The input serialized as the wire sends it (arguments JSON, or raw custom input).
    pub fn input_string(&self) -> String {
        match (&self.kind, &self.input) {
            (ToolKind::Custom, Value::String(s)) => s.clone(),
            (_, v) => v.to_string(),
        }
    }
}

/// One piece of ordered reply content; written as a one-key map:
/// `{text: ...}`, `{reasoning: ...}` or `{tool_call: {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "BlockRepr", into = "BlockRepr")]
pub enum Block {
    /// Visible text.
    Text(String),
    /// Reasoning / thinking text.
    Reasoning(String),
    /// A tool call.
    ToolCall(ToolCall),
}

/// The map form of a [`Block`] (serde's enum form is awkward in YAML).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BlockRepr {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reasoning: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool_call: Option<ToolCall>,
}

impl TryFrom<BlockRepr> for Block {
    type Error = String;
    fn try_from(r: BlockRepr) -> Result<Block, String> {
        match (r.text, r.reasoning, r.tool_call) {
            (Some(t), None, None) => Ok(Block::Text(t)),
            (None, Some(t), None) => Ok(Block::Reasoning(t)),
            (None, None, Some(tc)) => Ok(Block::ToolCall(tc)),
            _ => {
                Err("a content block needs exactly one of `text`, `reasoning`, `tool_call`".into())
            }
        }
    }
}

impl From<Block> for BlockRepr {
    fn from(b: Block) -> BlockRepr {
        match b {
            Block::Text(t) => BlockRepr {
                text: Some(t),
                ..BlockRepr::default()
            },
            Block::Reasoning(t) => BlockRepr {
                reasoning: Some(t),
                ..BlockRepr::default()
            },
            Block::ToolCall(tc) => BlockRepr {
                tool_call: Some(tc),
                ..BlockRepr::default()
            },
        }
    }
}

/// Token usage reported with a reply. Missing values are estimated.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Usage {
    /// Input (prompt) tokens; default: a rough estimate from the request body.
    pub input_tokens: Option<u64>,
    /// Output tokens; default: a rough estimate from the reply content.
    pub output_tokens: Option<u64>,
    /// Cached input tokens (Anthropic `cache_read_input_tokens`, OpenAI `cached_tokens`).
    pub cached_tokens: Option<u64>,
    /// Anthropic `cache_creation_input_tokens`.
    pub cache_creation_tokens: Option<u64>,
    /// OpenAI `reasoning_tokens`.
    pub reasoning_tokens: Option<u64>,
}

/// An HTTP error reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    /// HTTP status (default 500).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Error message (default: the status' reason phrase).
    #[serde(default)]
    pub message: Option<String>,
    /// Error type; default derived from the status and the API.
    #[serde(default, rename = "type")]
    pub error_type: Option<String>,
    /// OpenAI `code` (default null, or `rate_limit_exceeded` for 429).
    #[serde(default)]
    pub code: Option<String>,
    /// Sets the `retry-after-ms` and `retry-after` headers.
    #[serde(default)]
    pub retry_after_ms: Option<u64>,
    /// Sets the `x-should-retry` header honoured by the Anthropic/OpenAI SDKs.
    #[serde(default)]
    pub should_retry: Option<bool>,
}

fn default_status() -> u16 {
    500
}

/// A scripted reply. In a script a bare string means `{text: STRING}`.
///
/// Content is ordered: `reasoning`, then `text`, then `tool_calls`, then
/// the explicit `content` list (see [`Reply::blocks`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(remote = "Self", default, deny_unknown_fields)]
pub struct Reply {
    /// Reasoning text, placed first.
    pub reasoning: Option<String>,
    /// Text, placed after reasoning.
    pub text: Option<String>,
    /// Tool calls, placed after text.
    pub tool_calls: Vec<ToolCall>,
    /// Explicit ordered content, placed after the shorthands above.
    pub content: Vec<Block>,
    /// Token usage.
    pub usage: Option<Usage>,
    /// Override the stop reason (default `end_turn`, or `tool_use` when there are
    /// tool calls; for OpenAI Responses `max_tokens` makes the response incomplete).
    pub stop_reason: Option<String>,
    /// Wait this long before sending anything (headers included).
    pub delay_ms: Option<u64>,
    /// Wait this long before each streamed delta.
    pub chunk_delay_ms: Option<u64>,
    /// Start the stream, then pause until `release(NAME)`.
    pub hold: Option<String>,
    /// Answer with an HTTP error instead.
    pub error: Option<ErrorReply>,
    /// Close the connection mid-stream (after the first delta).
    pub drop_connection: bool,
}

impl Serialize for Reply {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Reply::serialize(self, s)
    }
}

impl<'de> Deserialize<'de> for Reply {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Reply;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a reply: a string (text) or a map of reply fields")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Reply, E> {
                Ok(Reply::text(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Reply, A::Error> {
                Reply::deserialize(de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_any(V)
    }
}

impl Reply {
    /// A plain text reply.
    pub fn text(text: impl Into<String>) -> Self {
        Reply {
            text: Some(text.into()),
            ..Reply::default()
        }
    }

    /// A reply making one function tool call.
    pub fn tool_call(name: impl Into<String>, input: Value) -> Self {
        Reply {
            tool_calls: vec![ToolCall {
                name: name.into(),
                input,
                namespace: None,
                kind: ToolKind::Function,
                id: None,
            }],
            ..Reply::default()
        }
    }

    /// An HTTP error reply.
    pub fn error(status: u16, message: impl Into<String>) -> Self {
        Reply {
            error: Some(ErrorReply {
                status,
                message: Some(message.into()),
                error_type: None,
                code: None,
                retry_after_ms: None,
                should_retry: None,
            }),
            ..Reply::default()
        }
    }

    /// The ordered content: reasoning, text, tool calls, then `content`.
    pub fn blocks(&self) -> Vec<Block> {
        let mut out = Vec::new();
        if let Some(r) = &self.reasoning {
            out.push(Block::Reasoning(r.clone()));
        }
        if let Some(t) = &self.text {
            out.push(Block::Text(t.clone()));
        }
        out.extend(self.tool_calls.iter().cloned().map(Block::ToolCall));
        out.extend(self.content.iter().cloned());
        out
    }
}

impl Script {
    /// A script with only a fallback reply.
    pub fn fallback_only(reply: Reply) -> Self {
        Script {
            rules: Vec::new(),
            fallback: Some(reply),
        }
    }

    /// Parse a script from YAML or JSON (JSON when the text starts with `{`).
    /// `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Script, ScriptError> {
        if text.trim_start().starts_with('{') {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| ScriptError::Parse {
                origin: origin.to_string(),
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| ScriptError::Parse {
                origin: origin.to_string(),
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })
        }
    }

    /// Load a script file (YAML or JSON, by content).
    pub fn from_path(path: impl AsRef<Path>) -> Result<Script, ScriptError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScriptError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Script::parse(&text, &path.display().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_module_doc_example() {
        let doc = include_str!("script.rs");
        let yaml: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```yaml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| {
                l.strip_prefix("//! ")
                    .unwrap_or(l.trim_start_matches("//!"))
            })
            .collect::<Vec<_>>()
            .join("\n");
        let s = Script::parse(&yaml, "doc").unwrap();
        assert_eq!(s.rules.len(), 5);
        assert_eq!(
            s.rules[0].reply.text.as_deref(),
            Some("Hello from the script!")
        );
        assert_eq!(s.rules[1].limit(), Some(2));
        assert_eq!(s.rules[3].limit(), None);
        assert_eq!(s.rules[2].reply.hold.as_deref(), Some("turn1"));
        assert_eq!(s.rules[3].reply.error.as_ref().unwrap().status, 529);
        let blocks = s.rules[4].reply.blocks();
        assert!(matches!(&blocks[1], Block::ToolCall(t) if t.kind == ToolKind::Custom));
        assert_eq!(
            s.fallback,
            Some(Reply::text("I have nothing scripted for that."))
        );
    }

    #[test]
    fn json_script_and_errors_name_path() {
        let s = Script::parse(
            r#"{"rules":[{"when":{"contains":"x"},"reply":{"text":"y"}}]}"#,
            "inline",
        )
        .unwrap();
        assert_eq!(s.rules[0].when.contains.as_deref(), Some("x"));

        let err = Script::parse("rules:\n  - reply: {txt: hi}\n", "s.yaml").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("s.yaml"), "{msg}");
        assert!(msg.contains("rules[0].reply"), "{msg}");
        assert!(msg.contains("txt"), "{msg}");

        let err = Script::parse(r#"{"rules":[{"reply":"a","times":"x"}]}"#, "j.json").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("j.json") && msg.contains("rules[0].times"),
            "{msg}"
        );
    }

    #[test]
    fn content_block_needs_exactly_one_key() {
        let err = Script::parse(
            "fallback:\n  content:\n    - {text: a, reasoning: b}\n",
            "b.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("fallback.content[0]"), "{err}");
        assert!(err.contains("exactly one"), "{err}");
        let s = Script::parse("fallback: {content: [{reasoning: r}, {text: t}]}", "b").unwrap();
        let blocks = s.fallback.unwrap().blocks();
        assert_eq!(
            blocks,
            vec![Block::Reasoning("r".into()), Block::Text("t".into())]
        );
        // round trip through JSON keeps the map form
        let json = serde_json::to_string(&blocks).unwrap();
        assert_eq!(json, r#"[{"reasoning":"r"},{"text":"t"}]"#);
    }

    #[test]
    fn from_path_reports_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.yaml");
        std::fs::write(&p, "fallback: ok\n").unwrap();
        assert_eq!(
            Script::from_path(&p).unwrap().fallback,
            Some(Reply::text("ok"))
        );
        let missing = dir.path().join("nope.yaml");
        let msg = Script::from_path(&missing).unwrap_err().to_string();
        assert!(msg.contains("nope.yaml"), "{msg}");
    }
}
