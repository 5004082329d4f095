//! Claude Code: `claude -p --output-format stream-json --verbose ... -- PROMPT`, configured through
//! `.claude/settings.json` in the workspace (permissions, API key helper, MCP).

use std::collections::BTreeMap;

use fracta_config::AdapterKind;
use serde_json::{Value, json};

use super::{
    Adapter, AdapterError, EventParser, LaunchContext, Outcome, Parsed, StreamSession, merge_json,
    str_at, u64_at, ws,
};
use crate::event::{
    ErrorEvent, Event, MessageEvent, Role, SessionEvent, TextEvent, ToolCallEvent, ToolResultEvent,
    UsageEvent,
};
use crate::launch::{FileSpec, LaunchSpec, Stdin};

pub struct Claude;

/// Variables that keep Claude Code off the network for anything but the model.
const QUIET_ENV: &[(&str, &str)] = &[
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ("DISABLE_TELEMETRY", "1"),
    ("DISABLE_AUTOUPDATER", "1"),
    ("DISABLE_ERROR_REPORTING", "1"),
];

/// Claude Code's subagent tool, by its names.
pub const NATIVE_SUBAGENT_TOOLS: [&str; 2] = ["Task", "Agent"];

impl Claude {
    /// `.claude/settings.json`: permissions from `project.allowed_tools`, the API key helper
    /// projection, merged with the runtime's `native_config`.
    pub fn settings(ctx: &LaunchContext<'_>) -> Value {
        let mut settings = json!({
            "permissions": { "allow": ctx.project.allowed_tools },
        });
        if let Some(h) = ctx.api_key_helper {
            settings["apiKeyHelper"] = Value::String(h.command.clone());
        }
        if ctx.gateway.is_some() {
            // Every tool of Fracta's MCP server (`mcp__fracta__spawn`, …).
            merge_json(
                &mut settings,
                &json!({ "permissions": { "allow": ["mcp__fracta"] } }),
            );
        }
        if let Some(native) = &ctx.runtime.native_config {
            merge_json(&mut settings, native);
        }
        // Claude Code's own subagents (its `Task` tool, `Agent` in newer releases) run
        // outside Fracta's budgets: denied, which keeps them from the model, unless the
        // project allows them.
        if !ctx.project.allow_native_subagents {
            merge_json(
                &mut settings,
                &json!({ "permissions": { "deny": NATIVE_SUBAGENT_TOOLS } }),
            );
        }
        settings
    }
}

impl Adapter for Claude {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Claude
    }

    /// Claude Code warns on every run that it ignores the workspace's `.claude/settings.json`
    /// permissions (the workspace is not "trusted"); Fracta hands it the same file with
    /// `--settings`, which applies them, so the warning says nothing about a failure.
    fn stderr_noise(&self, line: &str) -> bool {
        line.starts_with("Ignoring ")
            && line.contains("permissions.allow entries")
            && line.contains("not been trusted")
    }

    fn forbidden_env(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            fracta_config::load::CLAUDE_FORBIDDEN_ENV,
            "it stops Claude Code from loading .claude/settings.json (the seed forbids it)",
        )]
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            steer: false,
            // The seed's capability table: Claude Code stream sessions run locally only.
            stream_on_kubernetes: false,
            default_max_steps: None,
            networked_session: false,
            pod_port: None,
            stdio_session: false,
        }
    }

    fn binary(&self) -> &'static str {
        "claude"
    }

    fn npm_package(&self) -> &'static str {
        "@anthropic-ai/claude-code"
    }

    fn tested_version(&self) -> &'static str {
        "2.1.197"
    }

    /// `claude -p --input-format stream-json --output-format stream-json ...`: each turn is one
    /// user message line on stdin; the process lives until stdin closes.
    fn stream_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let mut spec = self.batch_launch(ctx)?;
        // `-p ... -- PROMPT` → `-p --input-format stream-json ...`: the prompt comes on stdin.
        if spec.args.len() >= 2 && spec.args[spec.args.len() - 2] == "--" {
            spec.args.truncate(spec.args.len() - 2);
        }
        if spec.args.first().is_some_and(|a| a == "-p") {
            spec.args
                .splice(1..1, ["--input-format".to_string(), "stream-json".into()]);
        }
        spec.stdin = Stdin::Piped;
        Ok(spec)
    }

    fn stream_session(&self, _resume_token: Option<&str>) -> Box<dyn StreamSession> {
        Box::new(ClaudeSession(ClaudeParser::default()))
    }

    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let settings_path = ws(ctx, ".claude/settings.json");
        // Project settings only grant permissions in a workspace the user has trusted; passing
        // the same file with --settings applies it without touching the user's Claude config.
        let mut args = vec![
            "-p".to_string(),
            "--output-format".into(),
            "stream-json".into(),
            "--verbose".into(),
            "--settings".into(),
            settings_path.display().to_string(),
        ];
        if let Some(m) = ctx.model {
            args.extend(["--model".into(), m.to_string()]);
        }
        if let Some(t) = ctx.resume_token {
            args.extend(["--resume".into(), t.to_string()]);
        }
        let mut files = Vec::new();
        if let Some(g) = ctx.gateway {
            // The token stays in the env: Claude expands ${VAR} in MCP headers.
            // `alwaysLoad`: Claude connects to the gateway at start-up and awaits it, so the
            // tools are there on the first turn (never deferred behind tool search), and print
            // mode does not poll for a pending server in 50-ms ticks before the first turn.
            let mcp = json!({ "mcpServers": { "fracta": {
                "type": "http",
                "url": g.url,
                "headers": { "Authorization": format!("Bearer ${{{}}}", crate::env::AGENT_TOKEN_ENV) },
                "alwaysLoad": true,
            } } });
            let path = ctx.runtime_home.join("claude-mcp.json");
            args.extend(["--mcp-config".into(), path.display().to_string()]);
            files.push(FileSpec {
                path,
                contents: serde_json::to_string_pretty(&mcp).unwrap_or_default() + "\n",
                in_workspace: false,
            });
        }
        args.extend(ctx.runtime.args.iter().cloned());
        // `--` ends the options: a prompt such as `--help` or `--system-prompt` is the user's
        // text, never an option (nor a value of a variadic option such as `--mcp-config`).
        args.extend(["--".into(), ctx.prompt.to_string()]);

        let mut env: BTreeMap<String, String> = QUIET_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(ttl) = ctx.api_key_helper.and_then(|h| h.ttl_ms) {
            env.insert("CLAUDE_CODE_API_KEY_HELPER_TTL_MS".into(), ttl.to_string());
        }
        let settings = serde_json::to_string_pretty(&Self::settings(ctx))
            .map_err(|e| AdapterError::Other(format!("cannot render settings.json: {e}")))?;
        Ok(LaunchSpec {
            program: self.binary().into(),
            args,
            env,
            // CLAUDE_CODE_SIMPLE (the seed forbids it) is refused by the runner, not dropped.
            env_remove: vec![],
            cwd: ctx.workspace.to_path_buf(),
            files: {
                files.push(FileSpec {
                    path: settings_path,
                    contents: settings + "\n",
                    in_workspace: true,
                });
                files
            },
            links: vec![],
            stdin: Stdin::Null,
            endpoint: None,
            ..LaunchSpec::default()
        })
    }

    fn parser(&self) -> Box<dyn EventParser> {
        Box::new(ClaudeParser::default())
    }
}

#[derive(Default)]
pub struct ClaudeParser {
    outcome: Outcome,
    /// A `result` line was just read: the turn is over.
    turn_end: bool,
}

fn tool_result_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| str_at(i, "text").map(str::to_string))
            .collect::<Vec<_>>()
            .join("\n"),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

impl EventParser for ClaudeParser {
    fn parse_line(&mut self, line: &str) -> Parsed {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Parsed::unknown("not JSON");
        };
        let kind = str_at(&v, "type").unwrap_or("");
        match kind {
            "system" => match str_at(&v, "subtype") {
                Some("init") => {
                    let token = str_at(&v, "session_id").unwrap_or("").to_string();
                    let model = str_at(&v, "model").map(str::to_string);
                    self.outcome.resume_token = Some(token.clone());
                    self.outcome.model = model.clone();
                    Parsed::known(vec![Event::Session(SessionEvent {
                        resume_token: token,
                        model,
                    })])
                }
                Some(other) => Parsed::known(vec![Event::Runtime(crate::event::RuntimeEvent {
                    name: format!("system/{other}"),
                })]),
                None => Parsed::unknown("system line without subtype"),
            },
            "assistant" => {
                let mut events = Vec::new();
                for block in v
                    .pointer("/message/content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    match str_at(block, "type") {
                        Some("text") => {
                            let text = str_at(block, "text").unwrap_or("").to_string();
                            events.push(Event::Message(MessageEvent {
                                role: Role::Assistant,
                                text,
                            }));
                        }
                        Some("thinking") => {
                            let text = str_at(block, "thinking").unwrap_or("").to_string();
                            events.push(Event::Reasoning(TextEvent { text }));
                        }
                        Some("tool_use") => events.push(Event::ToolCall(ToolCallEvent {
                            id: str_at(block, "id").map(str::to_string),
                            name: str_at(block, "name").unwrap_or("").to_string(),
                            input: block.get("input").cloned().unwrap_or(Value::Null),
                        })),
                        _ => {}
                    }
                }
                Parsed::known(events)
            }
            "user" => {
                let mut events = Vec::new();
                if let Some(content) = v.pointer("/message/content") {
                    match content {
                        Value::Array(blocks) => {
                            for b in blocks {
                                if str_at(b, "type") == Some("tool_result") {
                                    events.push(Event::ToolResult(ToolResultEvent {
                                        id: str_at(b, "tool_use_id").map(str::to_string),
                                        name: None,
                                        output: tool_result_text(
                                            b.get("content").unwrap_or(&Value::Null),
                                        ),
                                        is_error: b
                                            .get("is_error")
                                            .and_then(Value::as_bool)
                                            .unwrap_or(false),
                                    }));
                                } else if let Some(t) = str_at(b, "text") {
                                    events.push(Event::Message(MessageEvent {
                                        role: Role::User,
                                        text: t.to_string(),
                                    }));
                                }
                            }
                        }
                        Value::String(s) => events.push(Event::Message(MessageEvent {
                            role: Role::User,
                            text: s.clone(),
                        })),
                        _ => {}
                    }
                }
                Parsed::known(events)
            }
            "result" => {
                self.turn_end = true;
                let usage = UsageEvent {
                    input_tokens: u64_at(&v, &["usage", "input_tokens"]),
                    output_tokens: u64_at(&v, &["usage", "output_tokens"]),
                    cached_tokens: u64_at(&v, &["usage", "cache_read_input_tokens"]),
                    cost_usd: v.get("total_cost_usd").and_then(Value::as_f64),
                };
                let is_error = v.get("is_error").and_then(Value::as_bool).unwrap_or(false)
                    || str_at(&v, "subtype").is_some_and(|s| s != "success");
                let result = str_at(&v, "result").map(str::to_string);
                if let Some(t) = str_at(&v, "session_id") {
                    self.outcome.resume_token = Some(t.to_string());
                }
                self.outcome.usage = usage.clone();
                self.outcome.cost_usd = usage.cost_usd;
                self.outcome.success = Some(!is_error);
                let mut events = vec![Event::Usage(usage)];
                if is_error {
                    let msg = result
                        .clone()
                        .filter(|r| !r.is_empty())
                        .or_else(|| v.get("errors").map(Value::to_string))
                        .unwrap_or_else(|| {
                            format!(
                                "claude reported {}",
                                str_at(&v, "subtype").unwrap_or("an error")
                            )
                        });
                    self.outcome.error = Some(msg.clone());
                    events.push(Event::Error(ErrorEvent { message: msg }));
                } else {
                    self.outcome.result = result;
                }
                Parsed::known(events)
            }
            "rate_limit_event" | "stream_event" | "control_request" | "control_response"
            | "keep_alive" => Parsed::known(vec![Event::Runtime(crate::event::RuntimeEvent {
                name: kind.to_string(),
            })]),
            "" => Parsed::unknown("JSON without a type"),
            other => Parsed::unknown(format!("unknown type `{other}`")),
        }
    }

    fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    fn take_turn_end(&mut self) -> bool {
        std::mem::take(&mut self.turn_end)
    }
}

/// A Claude stream session: each turn is one user message line on stdin.
pub struct ClaudeSession(ClaudeParser);

impl ClaudeSession {
    fn user_message(prompt: &str) -> String {
        json!({
            "type": "user",
            "message": { "role": "user", "content": [{ "type": "text", "text": prompt }] }
        })
        .to_string()
    }
}

impl EventParser for ClaudeSession {
    fn parse_line(&mut self, line: &str) -> Parsed {
        self.0.parse_line(line)
    }
    fn outcome(&self) -> &Outcome {
        self.0.outcome()
    }
    fn take_turn_end(&mut self) -> bool {
        self.0.take_turn_end()
    }
}

impl StreamSession for ClaudeSession {
    fn open(&mut self, prompt: &str) -> Vec<String> {
        vec![Self::user_message(prompt)]
    }
    fn send(&mut self, prompt: &str) -> Vec<String> {
        vec![Self::user_message(prompt)]
    }
}
