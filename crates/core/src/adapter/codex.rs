//! Codex: `codex exec --json -- PROMPT` (and `codex exec resume -- THREAD PROMPT`). Codex takes its
//! model provider only from `$CODEX_HOME/config.toml`, so Fracta gives each runtime entry of a
//! project its own Codex home (`.fracta/runtimes/<name>/codex-home`, shared by that runtime's
//! agents and kept for resume, the user's `auth.json` linked in) holding the runtime's static
//! config; what differs per agent — the MCP gateway — comes as `-c` overrides. The complete
//! file is also written to the seed's `.codex/config.toml` in the workspace. A shared home
//! keeps Codex's databases warm: a fresh home costs every start a few hundred milliseconds.

use std::collections::BTreeMap;

use fracta_config::AdapterKind;
use serde_json::{Value, json};

use super::{
    Adapter, AdapterError, EventParser, LaunchContext, Outcome, Parsed, StreamSession, merge_json,
    str_at, u64_at, ws,
};
use crate::event::{
    ErrorEvent, Event, MessageEvent, Role, RuntimeEvent, SessionEvent, StepEvent, StepPhase,
    TextEvent, ToolCallEvent, ToolResultEvent, UsageEvent,
};
use crate::launch::{
    Check, Endpoint, FileSpec, LaunchSpec, LinkSpec, Probe, SecretEnv, Served, Stdin,
};

pub struct Codex;

impl Codex {
    /// The config Fracta writes: the seed's `--full-auto` intent (work in the workspace without
    /// approval prompts) as config keys that both `exec` and `exec resume` honour, telemetry off,
    /// merged with the runtime's `native_config` (e.g. a model provider).
    pub fn config(ctx: &LaunchContext<'_>) -> Value {
        let mut cfg = Self::static_config(ctx);
        if let Some(g) = ctx.gateway {
            merge_json(
                &mut cfg,
                &json!({ "mcp_servers": { "fracta": Self::gateway_entry(g) } }),
            );
        }
        cfg
    }

    /// The gateway's `[mcp_servers.fracta]` table. The token stays in the env
    /// (`bearer_token_env_var`); MCP calls need approval switched on, since approval_policy
    /// is "never".
    fn gateway_entry(g: &crate::launch::Gateway) -> Value {
        json!({
            "url": g.url,
            "bearer_token_env_var": crate::env::AGENT_TOKEN_ENV,
            "default_tools_approval_mode": "approve",
        })
    }

    /// The gateway as `-c` overrides, in the order of `gateway_entry`.
    fn gateway_overrides(g: &crate::launch::Gateway) -> Vec<String> {
        let entry = Self::gateway_entry(g);
        let mut out = Vec::new();
        if let Some(m) = entry.as_object() {
            for (k, v) in m {
                // A JSON string is a valid TOML basic string.
                out.extend(["-c".to_string(), format!("mcp_servers.fracta.{k}={v}")]);
            }
        }
        out
    }

    /// The per-runtime part: everything but the gateway.
    ///
    /// `features.plugins = false` turns off Codex's plugin marketplace, which at every start
    /// syncs OpenAI's curated plugin repository (`git ls-remote https://github.com/openai/plugins`,
    /// then the GitHub API, then an archive download). When any MCP server is configured —
    /// Fracta's gateway always is, unless the agent may spawn no child — Codex 0.169 holds the
    /// first turn until that sync has finished or failed. A runtime that wants plugins sets
    /// `native_config.features.plugins: true`.
    fn static_config(ctx: &LaunchContext<'_>) -> Value {
        let mut cfg = json!({
            "approval_policy": "never",
            "sandbox_mode": "workspace-write",
            "analytics": { "enabled": false },
            "feedback": { "enabled": false },
            "check_for_update_on_startup": false,
            "features": { "plugins": false },
        });
        if let Some(native) = &ctx.runtime.native_config {
            merge_json(&mut cfg, native);
        }
        // Codex's multi-agent tools (`spawn_agent`, …, offered as the `multi_agent_v1`
        // namespace) run subagents outside Fracta's budgets: off unless the project allows
        // them.
        // (A native_config that is no table stays as it is, to be refused as such.)
        if !ctx.project.allow_native_subagents && cfg.is_object() {
            merge_json(
                &mut cfg,
                &json!({ "features": { "multi_agent": false, "multi_agent_v2": false } }),
            );
        }
        cfg
    }

    pub fn config_toml(ctx: &LaunchContext<'_>) -> Result<String, AdapterError> {
        to_toml(Self::config(ctx))
    }
}

fn to_toml(v: Value) -> Result<String, AdapterError> {
    let table: toml::Table =
        serde_json::from_value(strip_nulls(v)).map_err(|e| AdapterError::NativeConfig {
            runtime: "codex".into(),
            message: format!("cannot express it as TOML: {e}"),
        })?;
    toml::to_string_pretty(&table).map_err(|e| AdapterError::NativeConfig {
        runtime: "codex".into(),
        message: e.to_string(),
    })
}

/// TOML has no null: drop null values.
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|v| !v.is_null())
                .map(strip_nulls)
                .collect(),
        ),
        other => other,
    }
}

impl Adapter for Codex {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Codex
    }

    fn session_endpoint(&self, host: &str, port: u16) -> Option<Endpoint> {
        Some(Endpoint::CodexWs {
            url: format!("ws://{host}:{port}"),
            digest_env: WS_TOKEN_DIGEST_ENV.into(),
        })
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            steer: true,
            stream_on_kubernetes: true,
            default_max_steps: None,
            networked_session: over_ws(),
            pod_port: Some(8080),
            stdio_session: false,
        }
    }

    fn binary(&self) -> &'static str {
        "codex"
    }

    fn npm_package(&self) -> &'static str {
        "@openai/codex"
    }

    fn native_start(&self, program: &std::path::Path) -> Option<super::shim::NativeStart> {
        super::shim::codex_native(program)
    }

    fn tested_version(&self) -> &'static str {
        "0.169.0"
    }

    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let home = ctx.runtime_state.join("codex-home");
        let toml = Self::config_toml(ctx)?;
        let home_toml = to_toml(Self::static_config(ctx))?;
        let mut args = vec!["exec".to_string()];
        if let Some(t) = ctx.resume_token {
            args.extend([
                "resume".into(),
                "--json".into(),
                "--skip-git-repo-check".into(),
            ]);
            if let Some(m) = ctx.model {
                args.extend(["--model".into(), m.to_string()]);
            }
            args.extend(ctx.gateway.map(Self::gateway_overrides).unwrap_or_default());
            args.extend(ctx.runtime.args.iter().cloned());
            // `--` ends the options before the untrusted text (the thread id included).
            args.extend(["--".into(), t.to_string(), ctx.prompt.to_string()]);
        } else {
            args.extend(["--json".into(), "--skip-git-repo-check".into()]);
            if let Some(m) = ctx.model {
                args.extend(["--model".into(), m.to_string()]);
            }
            args.extend(ctx.gateway.map(Self::gateway_overrides).unwrap_or_default());
            args.extend(ctx.runtime.args.iter().cloned());
            // `--` ends the options: a prompt such as `--help` is the user's text.
            args.extend(["--".into(), ctx.prompt.to_string()]);
        }
        let mut env = BTreeMap::new();
        env.insert("CODEX_HOME".to_string(), home.display().to_string());
        let files = vec![
            FileSpec {
                path: home.join("config.toml"),
                contents: home_toml,
                in_workspace: false,
            },
            FileSpec {
                path: ws(ctx, ".codex/config.toml"),
                contents: toml,
                in_workspace: true,
            },
        ];
        // Keep a `codex login` working: Fracta's home links to the user's auth file.
        let links = user_codex_auth()
            .map(|target| {
                vec![LinkSpec {
                    link: home.join("auth.json"),
                    target,
                }]
            })
            .unwrap_or_default();
        Ok(LaunchSpec {
            program: self.binary().into(),
            args,
            env,
            env_remove: vec![],
            cwd: ctx.workspace.to_path_buf(),
            files,
            links,
            stdin: Stdin::Null,
            endpoint: None,
            ..LaunchSpec::default()
        })
    }

    /// `codex app-server --listen stdio://`: the same home, config and gateway as a batch
    /// run; the model as a `-c` override. (The runtime's `args` are `codex exec` flags and are
    /// not passed.)
    fn stream_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let mut spec = self.batch_launch(ctx)?;
        // Over stdio here; over WebSocket when Fracta must reach it through the network (a
        // Pod), with a capability token made per session. The process gets only the token's
        // SHA-256, as an env var its argv refers to.
        let listen = match ctx.session {
            Some(keys) => format!("ws://{}:{}", keys.host, keys.port),
            None => "stdio://".into(),
        };
        let mut args = vec!["app-server".to_string(), "--listen".into(), listen.clone()];
        if let Some(keys) = ctx.session {
            args.extend([
                "--ws-auth".into(),
                "capability-token".into(),
                "--ws-token-sha256".into(),
                format!("$({WS_TOKEN_DIGEST_ENV})"),
            ]);
            spec.env.insert(
                WS_TOKEN_DIGEST_ENV.into(),
                crate::secret::sha256_hex(&keys.secret),
            );
            spec.endpoint = self.session_endpoint(&keys.host, keys.port);
            // The seed: a TCP readiness probe; the app-server has no liveness endpoint.
            spec.served = Some(Served {
                port: keys.port,
                readiness: Some(Probe {
                    check: Check::Tcp { port: keys.port },
                    initial_delay_secs: 1,
                    period_secs: 2,
                    timeout_secs: None,
                }),
                liveness: None,
            });
            spec.secret_env = vec![SecretEnv {
                name: WS_TOKEN_DIGEST_ENV.into(),
                what: "the SHA-256 of the per-session capability token Fracta makes".into(),
                digest: true,
            }];
        }
        if let Some(m) = ctx.model {
            args.extend([
                "-c".into(),
                format!("model={}", Value::String(m.to_string())),
            ]);
        }
        args.extend(ctx.gateway.map(Self::gateway_overrides).unwrap_or_default());
        spec.args = args;
        spec.stdin = if ctx.session.is_some() {
            Stdin::Null
        } else {
            Stdin::Piped
        };
        Ok(spec)
    }

    fn stream_session(&self, resume_token: Option<&str>) -> Box<dyn StreamSession> {
        Box::new(super::codex_app::CodexAppSession::new(resume_token))
    }

    fn parser(&self) -> Box<dyn EventParser> {
        Box::new(CodexParser::default())
    }
}

/// `FRACTA_CODEX_TRANSPORT=ws`: run local Codex sessions as a Pod does, over
/// `codex app-server --listen ws://127.0.0.1:PORT` with a capability token, instead of stdio.
pub const CODEX_TRANSPORT_ENV: &str = "FRACTA_CODEX_TRANSPORT";

fn over_ws() -> bool {
    std::env::var(CODEX_TRANSPORT_ENV).is_ok_and(|v| v == "ws")
}

/// The env var that holds the SHA-256 (hex) of a WebSocket session's capability token.
pub const WS_TOKEN_DIGEST_ENV: &str = "FRACTA_WS_TOKEN_SHA256";

/// The user's own Codex login (`$CODEX_HOME/auth.json`, else `~/.codex/auth.json`), if any.
fn user_codex_auth() -> Option<std::path::PathBuf> {
    let home = std::env::var_os("CODEX_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".codex")))?;
    Some(home.join("auth.json")).filter(|p| p.is_file())
}

#[derive(Default)]
pub struct CodexParser {
    outcome: Outcome,
}

pub(crate) fn item_events(item: &Value, completed: bool, outcome: &mut Outcome) -> Vec<Event> {
    let id = str_at(item, "id").map(str::to_string);
    match str_at(item, "type").unwrap_or("") {
        "agent_message" if completed => {
            let text = str_at(item, "text").unwrap_or("").to_string();
            outcome.result = Some(text.clone());
            vec![Event::Message(MessageEvent {
                role: Role::Assistant,
                text,
            })]
        }
        "reasoning" if completed => vec![Event::Reasoning(TextEvent {
            text: str_at(item, "text").unwrap_or("").to_string(),
        })],
        "command_execution" => {
            if completed {
                let code = item.get("exit_code").and_then(Value::as_i64);
                vec![Event::ToolResult(ToolResultEvent {
                    id,
                    name: Some("command_execution".into()),
                    output: str_at(item, "aggregated_output").unwrap_or("").to_string(),
                    is_error: code.is_some_and(|c| c != 0)
                        || str_at(item, "status") == Some("failed"),
                })]
            } else {
                vec![Event::ToolCall(ToolCallEvent {
                    id,
                    name: "command_execution".into(),
                    input: json!({ "command": str_at(item, "command").unwrap_or("") }),
                })]
            }
        }
        "file_change" if completed => vec![
            Event::ToolCall(ToolCallEvent {
                id: id.clone(),
                name: "file_change".into(),
                input: item.get("changes").cloned().unwrap_or(Value::Null),
            }),
            Event::ToolResult(ToolResultEvent {
                id,
                name: Some("file_change".into()),
                output: str_at(item, "status").unwrap_or("").to_string(),
                is_error: str_at(item, "status") == Some("failed"),
            }),
        ],
        "mcp_tool_call" => {
            let name = format!(
                "{}/{}",
                str_at(item, "server").unwrap_or("?"),
                str_at(item, "tool").unwrap_or("?")
            );
            if completed {
                vec![Event::ToolResult(ToolResultEvent {
                    id,
                    name: Some(name),
                    output: item
                        .get("result")
                        .map(Value::to_string)
                        .or_else(|| item.get("error").map(Value::to_string))
                        .unwrap_or_default(),
                    is_error: item.get("error").is_some_and(|e| !e.is_null()),
                })]
            } else {
                vec![Event::ToolCall(ToolCallEvent {
                    id,
                    name,
                    input: item.get("arguments").cloned().unwrap_or(Value::Null),
                })]
            }
        }
        "web_search" if !completed => vec![Event::ToolCall(ToolCallEvent {
            id,
            name: "web_search".into(),
            input: json!({ "query": str_at(item, "query").unwrap_or("") }),
        })],
        // `codex exec` reports its warnings (a config warning, model metadata it lacks) as
        // error items; a turn that fails says so with `turn.failed` or a top-level `error`.
        "error" if completed => {
            let message = str_at(item, "message").unwrap_or("").to_string();
            vec![Event::Warning(ErrorEvent { message })]
        }
        "todo_list" | "reasoning" | "agent_message" | "file_change" | "web_search" | "error" => {
            vec![Event::Runtime(RuntimeEvent {
                name: format!("item/{}", str_at(item, "type").unwrap_or("")),
            })]
        }
        other => vec![Event::Runtime(RuntimeEvent {
            name: format!("item/{other}"),
        })],
    }
}

impl EventParser for CodexParser {
    fn parse_line(&mut self, line: &str) -> Parsed {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Parsed::unknown("not JSON");
        };
        match str_at(&v, "type").unwrap_or("") {
            "thread.started" => {
                let token = str_at(&v, "thread_id").unwrap_or("").to_string();
                self.outcome.resume_token = Some(token.clone());
                Parsed::known(vec![Event::Session(SessionEvent {
                    resume_token: token,
                    model: None,
                })])
            }
            "turn.started" => Parsed::known(vec![Event::Step(StepEvent {
                phase: StepPhase::Started,
            })]),
            "turn.completed" => {
                let usage = UsageEvent {
                    input_tokens: u64_at(&v, &["usage", "input_tokens"]),
                    output_tokens: u64_at(&v, &["usage", "output_tokens"]),
                    cached_tokens: u64_at(&v, &["usage", "cached_input_tokens"]),
                    cost_usd: None,
                };
                self.outcome.usage = usage.clone();
                self.outcome.success = Some(true);
                Parsed::known(vec![
                    Event::Step(StepEvent {
                        phase: StepPhase::Finished,
                    }),
                    Event::Usage(usage),
                ])
            }
            "turn.failed" => {
                let message = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("turn failed")
                    .to_string();
                self.outcome.success = Some(false);
                self.outcome.error = Some(message.clone());
                Parsed::known(vec![Event::Error(ErrorEvent { message })])
            }
            "error" => {
                let message = str_at(&v, "message").unwrap_or("error").to_string();
                // `Reconnecting... 2/5 (…)`: Codex retries the stream; the turn goes on.
                if message.starts_with("Reconnecting") {
                    return Parsed::known(vec![Event::Warning(ErrorEvent { message })]);
                }
                self.outcome.error = Some(message.clone());
                Parsed::known(vec![Event::Error(ErrorEvent { message })])
            }
            "item.started" | "item.updated" | "item.completed" => {
                let completed = str_at(&v, "type") == Some("item.completed");
                let Some(item) = v.get("item") else {
                    return Parsed::unknown("item event without an item");
                };
                let mut events = item_events(item, completed, &mut self.outcome);
                if str_at(&v, "type") == Some("item.updated") {
                    events.retain(|e| !matches!(e, Event::ToolCall(_)));
                    if events.is_empty() {
                        events.push(Event::Runtime(RuntimeEvent {
                            name: "item.updated".into(),
                        }));
                    }
                }
                Parsed::known(events)
            }
            "" => Parsed::unknown("JSON without a type"),
            other => Parsed::unknown(format!("unknown type `{other}`")),
        }
    }

    fn outcome(&self) -> &Outcome {
        &self.outcome
    }
}
