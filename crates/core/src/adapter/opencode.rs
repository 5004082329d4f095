//! OpenCode: `opencode run --format json PROMPT` (resume with `--session ID`), configured by
//! `opencode.json` in the workspace: permissions from `project.allowed_tools`, the seed's
//! `task: deny` (no subagents behind Fracta's back), merged with the runtime's `native_config`.

use std::collections::BTreeMap;

use fracta_config::AdapterKind;
use serde_json::{Map, Value, json};

use super::{
    Adapter, AdapterError, EventParser, LaunchContext, Outcome, Parsed, merge_json, str_at, u64_at,
    ws,
};
use crate::event::{
    ErrorEvent, Event, MessageEvent, Role, RuntimeEvent, SessionEvent, StepEvent, StepPhase,
    TextEvent, ToolCallEvent, ToolResultEvent, UsageEvent,
};
use crate::launch::{FileSpec, LaunchSpec, Stdin};

pub struct OpenCode;

/// Keep OpenCode from reaching for the network on its own.
const QUIET_ENV: &[(&str, &str)] = &[
    ("OPENCODE_DISABLE_AUTOUPDATE", "1"),
    ("OPENCODE_DISABLE_SHARE", "1"),
];

impl OpenCode {
    /// OpenCode permissions from Claude-style tool rules: `Edit`/`Write` → `edit`, `Bash` or
    /// `Bash(pattern)` → `bash`, `WebFetch` → `webfetch`; anything not allowed is denied (a
    /// batch run cannot answer a prompt). `task` is always denied.
    pub fn permissions(allowed: &[String]) -> Value {
        let mut edit = "deny";
        let mut webfetch = "deny";
        let mut bash_all = false;
        let mut bash: Map<String, Value> = Map::new();
        for rule in allowed {
            let (tool, pattern) = match rule.split_once('(') {
                Some((t, rest)) => (t.trim(), Some(rest.trim_end_matches(')').trim())),
                None => (rule.trim(), None),
            };
            match (tool, pattern) {
                ("Edit" | "Write" | "MultiEdit" | "NotebookEdit", _) => edit = "allow",
                ("WebFetch", _) => webfetch = "allow",
                ("Bash", None | Some("*" | "")) => bash_all = true,
                ("Bash", Some(p)) => {
                    // Claude's `git:*` prefix form is OpenCode's `git *`.
                    let p = p
                        .strip_suffix(":*")
                        .map(|x| format!("{x} *"))
                        .unwrap_or_else(|| p.to_string());
                    bash.insert(p, json!("allow"));
                }
                _ => {}
            }
        }
        let bash = if bash_all {
            json!("allow")
        } else {
            bash.insert("*".into(), json!("deny"));
            Value::Object(bash)
        };
        json!({ "edit": edit, "bash": bash, "webfetch": webfetch, "task": "deny" })
    }

    pub fn config(ctx: &LaunchContext<'_>) -> Value {
        let mut cfg = json!({
            "$schema": "https://opencode.ai/config.json",
            "autoupdate": false,
            "share": "disabled",
            "permission": Self::permissions(&ctx.project.allowed_tools),
        });
        if let Some(g) = ctx.gateway {
            cfg["mcp"] = json!({ "fracta": {
                "type": "remote",
                "url": g.url,
                "enabled": true,
                "headers": { "Authorization": format!("Bearer {{env:{}}}", crate::runner::AGENT_TOKEN_ENV) },
            } });
        }
        if let Some(native) = &ctx.runtime.native_config {
            merge_json(&mut cfg, native);
        }
        // The seed's safety rule holds whatever native_config says.
        // (`permission: "allow"` is OpenCode's short form for every tool.)
        if let Some(all) = cfg["permission"].as_str().map(str::to_string) {
            cfg["permission"] = json!({ "edit": all, "bash": all, "webfetch": all });
        }
        if !cfg["permission"].is_object() {
            cfg["permission"] = json!({});
        }
        cfg["permission"]["task"] = json!("deny");
        cfg
    }
}

impl Adapter for OpenCode {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Opencode
    }

    fn binary(&self) -> &'static str {
        "opencode"
    }

    fn npm_package(&self) -> &'static str {
        "opencode-ai"
    }

    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let cfg = serde_json::to_string_pretty(&Self::config(ctx))
            .map_err(|e| AdapterError::Other(format!("cannot render opencode.json: {e}")))?;
        let mut args = vec!["run".to_string(), "--format".into(), "json".into()];
        if let Some(m) = ctx.model {
            args.extend(["--model".into(), m.to_string()]);
        }
        if let Some(t) = ctx.resume_token {
            args.extend(["--session".into(), t.to_string()]);
        }
        args.extend(ctx.runtime.args.iter().cloned());
        args.push(ctx.prompt.to_string());
        let env: BTreeMap<String, String> = QUIET_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Ok(LaunchSpec {
            program: self.binary().into(),
            args,
            env,
            env_remove: vec![],
            cwd: ctx.workspace.to_path_buf(),
            files: vec![FileSpec {
                path: ws(ctx, "opencode.json"),
                contents: cfg + "\n",
                in_workspace: true,
            }],
            links: vec![],
            stdin: Stdin::Null,
        })
    }

    fn parser(&self) -> Box<dyn EventParser> {
        Box::new(OpenCodeParser::default())
    }
}

#[derive(Default)]
pub struct OpenCodeParser {
    outcome: Outcome,
    cost: f64,
    saw_cost: bool,
}

impl EventParser for OpenCodeParser {
    fn parse_line(&mut self, line: &str) -> Parsed {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Parsed::unknown("not JSON");
        };
        let mut events = Vec::new();
        if self.outcome.resume_token.is_none()
            && let Some(sid) = str_at(&v, "sessionID")
        {
            self.outcome.resume_token = Some(sid.to_string());
            events.push(Event::Session(SessionEvent {
                resume_token: sid.to_string(),
                model: None,
            }));
        }
        let part = v.get("part").unwrap_or(&Value::Null);
        match str_at(&v, "type").unwrap_or("") {
            "step_start" => events.push(Event::Step(StepEvent {
                phase: StepPhase::Started,
            })),
            "text" => {
                let text = str_at(part, "text").unwrap_or("").to_string();
                self.outcome.result = Some(text.clone());
                events.push(Event::Message(MessageEvent {
                    role: Role::Assistant,
                    text,
                }));
            }
            "reasoning" => events.push(Event::Reasoning(TextEvent {
                text: str_at(part, "text").unwrap_or("").to_string(),
            })),
            "tool_use" => {
                let state = part.get("state").unwrap_or(&Value::Null);
                let id = str_at(part, "callID").map(str::to_string);
                let name = str_at(part, "tool").unwrap_or("").to_string();
                events.push(Event::ToolCall(ToolCallEvent {
                    id: id.clone(),
                    name: name.clone(),
                    input: state.get("input").cloned().unwrap_or(Value::Null),
                }));
                let status = str_at(state, "status").unwrap_or("");
                if status == "completed" || status == "error" {
                    let output = str_at(state, "output")
                        .or_else(|| str_at(state, "error"))
                        .unwrap_or("")
                        .to_string();
                    events.push(Event::ToolResult(ToolResultEvent {
                        id,
                        name: Some(name),
                        output,
                        is_error: status == "error",
                    }));
                }
            }
            "step_finish" => {
                let usage = UsageEvent {
                    input_tokens: u64_at(part, &["tokens", "input"]),
                    output_tokens: u64_at(part, &["tokens", "output"]),
                    cached_tokens: u64_at(part, &["tokens", "cache", "read"]),
                    cost_usd: part.get("cost").and_then(Value::as_f64),
                };
                let u = &mut self.outcome.usage;
                u.input_tokens += usage.input_tokens;
                u.output_tokens += usage.output_tokens;
                u.cached_tokens += usage.cached_tokens;
                if let Some(c) = usage.cost_usd {
                    self.cost += c;
                    self.saw_cost = true;
                    self.outcome.cost_usd = Some(self.cost);
                }
                events.push(Event::Step(StepEvent {
                    phase: StepPhase::Finished,
                }));
                events.push(Event::Usage(usage));
            }
            "error" => {
                let e = v.get("error").unwrap_or(&Value::Null);
                let message = e
                    .pointer("/data/message")
                    .and_then(Value::as_str)
                    .or_else(|| str_at(e, "message"))
                    .or_else(|| str_at(e, "name"))
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                self.outcome.error = Some(message.clone());
                self.outcome.success = Some(false);
                events.push(Event::Error(ErrorEvent { message }));
            }
            "" => return Parsed::unknown("JSON without a type"),
            other if other.starts_with("step") || other == "snapshot" || other == "patch" => events
                .push(Event::Runtime(RuntimeEvent {
                    name: other.to_string(),
                })),
            other => {
                let mut p = Parsed::unknown(format!("unknown type `{other}`"));
                events.append(&mut p.events);
                return Parsed {
                    events,
                    understood: false,
                };
            }
        }
        Parsed::known(events)
    }

    fn outcome(&self) -> &Outcome {
        &self.outcome
    }
}
