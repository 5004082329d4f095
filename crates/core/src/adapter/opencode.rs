//! OpenCode: `opencode run --format json -- PROMPT` (resume with `--session ID`), configured by
//! `opencode.json` in the workspace: permissions from `project.allowed_tools`, the seed's
//! `task: deny` (no subagents behind Fracta's back), merged with the runtime's `native_config`.

use std::collections::BTreeMap;

use fracta_config::AdapterKind;
use serde_json::{Map, Value, json};

use super::{
    Adapter, AdapterError, EventParser, LaunchContext, Outcome, Parsed, StreamSession, merge_json,
    str_at, u64_at, ws,
};
use crate::event::{
    ErrorEvent, Event, MessageEvent, Role, RuntimeEvent, SessionEvent, StepEvent, StepPhase,
    TextEvent, ToolCallEvent, ToolResultEvent, UsageEvent,
};
use crate::launch::{
    Check, Endpoint, EnvFile, FileSpec, LaunchSpec, Probe, SecretEnv, Served, Stdin,
};

pub struct OpenCode;

/// The env var `opencode serve` takes its password from.
pub const PASSWORD_ENV: &str = "OPENCODE_SERVER_PASSWORD";
/// A session's database, in the agent's runtime home (`OPENCODE_DB`); a later batch resume
/// of that agent uses it too.
pub const DB_FILE: &str = "opencode.db";

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
            // OpenCode's snapshots (a second git repository of the project, `git add` of the
            // whole workspace at every step, for its own undo) duplicate what the agent's
            // worktree and branch keep; they cost each run ~100 ms and more in a big project.
            "snapshot": false,
            "permission": Self::permissions(&ctx.project.allowed_tools),
        });
        if let Some(g) = ctx.gateway {
            // The gateway takes the agent's bearer token, never OAuth: `oauth: false` also
            // spares OpenCode ~100 ms of OAuth set-up between connecting and listing tools.
            cfg["mcp"] = json!({ "fracta": {
                "type": "remote",
                "url": g.url,
                "enabled": true,
                "headers": { "Authorization": format!("Bearer {{env:{}}}", crate::env::AGENT_TOKEN_ENV) },
                "oauth": false,
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
        // OpenCode's `task` tool (its subagents) unless the project allows native subagents.
        cfg["permission"]["task"] = json!(if ctx.project.allow_native_subagents {
            "allow"
        } else {
            "deny"
        });
        cfg
    }
}

impl Adapter for OpenCode {
    fn kind(&self) -> AdapterKind {
        AdapterKind::Opencode
    }

    fn session_endpoint(&self, host: &str, port: u16) -> Option<Endpoint> {
        Some(Endpoint::OpenCodeHttp {
            url: format!("http://{host}:{port}"),
            password_env: PASSWORD_ENV.into(),
        })
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            steer: false,
            stream_on_kubernetes: true,
            // The seed's OpenCode safety: step monitoring, 20 steps by default.
            default_max_steps: Some(super::DEFAULT_MAX_STEPS),
            networked_session: true,
            pod_port: Some(4096),
            stdio_session: false,
        }
    }

    fn binary(&self) -> &'static str {
        "opencode"
    }

    fn npm_package(&self) -> &'static str {
        "opencode-ai"
    }

    fn tested_version(&self) -> &'static str {
        "1.18.33"
    }

    fn batch_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let cfg = serde_json::to_string_pretty(&Self::config(ctx))
            .map_err(|e| AdapterError::Other(format!("cannot render opencode.json: {e}")))?;
        let mut args = vec!["run".to_string(), "--format".into(), "json".into()];
        if let Some(m) = ctx.model {
            args.extend(["--model".into(), m.to_string()]);
        }
        match ctx.resume_token {
            Some(t) => args.extend(["--session".into(), t.to_string()]),
            // A new session with a title of its own: without one OpenCode asks the model for
            // a title, one more model request (tokens, and ~300 ms of its CPU) per agent.
            // One argument, `--title=…`: the value is never read as an option.
            None => args.push(format!(
                "--title={}",
                super::session_title(ctx.agent_id, ctx.prompt)
            )),
        }
        args.extend(ctx.runtime.args.iter().cloned());
        // `--` ends the options: OpenCode's `run` takes what follows it as the message, so a
        // prompt such as `--help` is the user's text.
        args.extend(["--".into(), ctx.prompt.to_string()]);
        let mut env: BTreeMap<String, String> = QUIET_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        // An agent that began as a session keeps its conversation in its own database.
        let db = ctx.runtime_home.join(DB_FILE);
        if ctx.resume_token.is_some() && db.is_file() {
            env.insert("OPENCODE_DB".into(), db.display().to_string());
        }
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
            endpoint: None,
            // Its database, where it lives in a Pod: a writable volume of its own, in a Job as
            // in a session's Pod (the seed's `OPENCODE_DB=/data/opencode.db` points there).
            state_env: vec![EnvFile {
                name: "OPENCODE_DB".into(),
                file: DB_FILE.into(),
            }],
            ..LaunchSpec::default()
        })
    }

    /// `opencode serve` on the session's loopback port, with its own password (basic auth on
    /// every call), its database in the agent's runtime home, and its config in
    /// `OPENCODE_CONFIG_CONTENT` (nothing is written in the workspace).
    fn stream_launch(&self, ctx: &LaunchContext<'_>) -> Result<LaunchSpec, AdapterError> {
        let Some(keys) = ctx.session else {
            return Err(AdapterError::Other(
                "an opencode session needs a port and a password".into(),
            ));
        };
        let mut cfg = Self::config(ctx);
        if let Some(m) = ctx.model {
            cfg["model"] = json!(m);
        }
        let mut env: BTreeMap<String, String> = QUIET_ENV
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.insert(PASSWORD_ENV.into(), keys.secret.clone());
        env.insert(
            "OPENCODE_DB".into(),
            ctx.runtime_home.join(DB_FILE).display().to_string(),
        );
        env.insert("OPENCODE_CONFIG_CONTENT".into(), cfg.to_string());
        Ok(LaunchSpec {
            program: self.binary().into(),
            args: vec![
                "serve".into(),
                "--port".into(),
                keys.port.to_string(),
                "--hostname".into(),
                keys.host.clone(),
            ],
            env,
            env_remove: vec![],
            cwd: ctx.workspace.to_path_buf(),
            files: vec![],
            links: vec![],
            stdin: Stdin::Null,
            endpoint: self.session_endpoint(&keys.host, keys.port),
            served: Some(Served {
                port: keys.port,
                readiness: Some(health_probe(keys.port, 3, 5)),
                liveness: Some(health_probe(keys.port, 5, 10)),
            }),
            secret_env: vec![SecretEnv {
                name: PASSWORD_ENV.into(),
                what: "the per-session password Fracta makes".into(),
                digest: false,
            }],
            config_env: vec![EnvFile {
                name: "OPENCODE_CONFIG_CONTENT".into(),
                file: "opencode-config.json".into(),
            }],
            state_env: vec![EnvFile {
                name: "OPENCODE_DB".into(),
                file: DB_FILE.into(),
            }],
            session_init: None,
        })
    }

    fn stream_session(&self, _resume_token: Option<&str>) -> Box<dyn StreamSession> {
        Box::new(OpenCodeSession::default())
    }

    fn parser(&self) -> Box<dyn EventParser> {
        Box::new(OpenCodeParser::default())
    }
}

/// `GET /global/health` answers 401 without the password, and an httpGet probe's headers are
/// plain text in a Pod spec, so the probe runs in the container and reads the password from
/// its env: `node` is in every image that runs opencode from npm.
fn health_probe(port: u16, initial_delay_secs: i32, period_secs: i32) -> Probe {
    let script = format!(
        "fetch('http://127.0.0.1:{port}/global/health',{{headers:{{authorization:'Basic '+Buffer.from('opencode:'+process.env.{PASSWORD_ENV}).toString('base64')}}}}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
    );
    Probe {
        check: Check::Exec {
            command: vec!["node".into(), "-e".into(), script],
        },
        initial_delay_secs,
        period_secs,
        timeout_secs: Some(5),
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
            "step_start" => {
                // Another step: the run goes on, whatever the last one said.
                if self.outcome.success == Some(true) {
                    self.outcome.success = None;
                }
                events.push(Event::Step(StepEvent {
                    phase: StepPhase::Started,
                }));
            }
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
                // OpenCode's completion event: a step that finished for any reason but to
                // call tools (`stop`, `length`, ...) ends the run, unless an error came first.
                if str_at(part, "reason") != Some("tool-calls") && self.outcome.success.is_none() {
                    self.outcome.success = Some(true);
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

/// An `opencode serve` session: turns go to the transport as `{"op":"prompt"}` messages; what
/// comes back are the server's bus events for this session (`message.part.updated`,
/// `session.idle`, `session.error`, …) and the transport's own `fracta.*` messages.
#[derive(Default)]
pub struct OpenCodeSession {
    outcome: Outcome,
    cost: f64,
    in_turn: bool,
    /// The server said it was busy with this turn (an `idle` before that is a late one, e.g.
    /// from aborting the turn before).
    busy: bool,
    turn_end: bool,
    /// Messages of the user's (their parts are the prompts Fracta recorded itself).
    user_messages: std::collections::BTreeSet<String>,
    /// Tool calls already shown as started.
    calls: std::collections::BTreeSet<String>,
}

impl OpenCodeSession {
    fn turn(&mut self, prompt: &str) -> Vec<String> {
        self.in_turn = true;
        self.busy = false;
        self.outcome.result = None;
        self.outcome.error = None;
        self.outcome.success = None;
        self.outcome.usage = UsageEvent::default();
        vec![json!({ "op": "prompt", "text": prompt }).to_string()]
    }

    fn fail(&mut self, message: String) -> Vec<Event> {
        self.outcome.error = Some(message.clone());
        self.outcome.success = Some(false);
        if self.in_turn {
            self.in_turn = false;
            self.turn_end = true;
        }
        vec![Event::Error(ErrorEvent { message })]
    }

    fn part(&mut self, part: &Value) -> Vec<Event> {
        if str_at(part, "messageID").is_some_and(|m| self.user_messages.contains(m)) {
            return vec![];
        }
        let done = part.pointer("/time/end").is_some();
        match str_at(part, "type").unwrap_or("") {
            "step-start" => vec![Event::Step(StepEvent {
                phase: StepPhase::Started,
            })],
            "step-finish" => {
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
                    // The session's running total (per-turn deltas are taken when a turn ends).
                    self.cost += c;
                    self.outcome.cost_usd = Some(self.cost);
                }
                vec![
                    Event::Step(StepEvent {
                        phase: StepPhase::Finished,
                    }),
                    Event::Usage(usage),
                ]
            }
            "text" if done => {
                let text = str_at(part, "text").unwrap_or("").to_string();
                self.outcome.result = Some(text.clone());
                vec![Event::Message(MessageEvent {
                    role: Role::Assistant,
                    text,
                })]
            }
            "reasoning" if done => vec![Event::Reasoning(TextEvent {
                text: str_at(part, "text").unwrap_or("").to_string(),
            })],
            "tool" => {
                let state = part.get("state").unwrap_or(&Value::Null);
                let id = str_at(part, "callID").map(str::to_string);
                let name = str_at(part, "tool").unwrap_or("").to_string();
                let status = str_at(state, "status").unwrap_or("");
                let mut events = Vec::new();
                let key = id.clone().unwrap_or_default();
                if status != "pending" && self.calls.insert(key) {
                    events.push(Event::ToolCall(ToolCallEvent {
                        id: id.clone(),
                        name: name.clone(),
                        input: state.get("input").cloned().unwrap_or(Value::Null),
                    }));
                }
                if status == "completed" || status == "error" {
                    events.push(Event::ToolResult(ToolResultEvent {
                        id,
                        name: Some(name),
                        output: str_at(state, "output")
                            .or_else(|| str_at(state, "error"))
                            .unwrap_or("")
                            .to_string(),
                        is_error: status == "error",
                    }));
                }
                events
            }
            _ => vec![],
        }
    }
}

impl EventParser for OpenCodeSession {
    fn parse_line(&mut self, line: &str) -> Parsed {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            return Parsed::unknown("not JSON");
        };
        let props = v.get("properties").unwrap_or(&Value::Null);
        match str_at(&v, "type").unwrap_or("") {
            "fracta.session" => {
                let sid = str_at(&v, "sessionID").unwrap_or("").to_string();
                self.outcome.resume_token = Some(sid.clone());
                Parsed::known(vec![Event::Session(SessionEvent {
                    resume_token: sid,
                    model: None,
                })])
            }
            "fracta.error" => {
                let message = str_at(&v, "message").unwrap_or("session error").to_string();
                Parsed::known(self.fail(message))
            }
            "message.updated" => {
                let info = props.get("info").unwrap_or(&Value::Null);
                if str_at(info, "role") == Some("user")
                    && let Some(id) = str_at(info, "id")
                {
                    self.user_messages.insert(id.to_string());
                }
                Parsed::known(vec![])
            }
            "message.part.updated" => {
                let part = props.get("part").unwrap_or(&Value::Null);
                Parsed::known(self.part(part))
            }
            "session.error" => {
                let e = props.get("error").unwrap_or(&Value::Null);
                let message = e
                    .pointer("/data/message")
                    .and_then(Value::as_str)
                    .or_else(|| str_at(e, "name"))
                    .map(str::to_string)
                    .unwrap_or_else(|| e.to_string());
                // The turn ends with the `session.idle` that follows.
                self.outcome.error = Some(message.clone());
                self.outcome.success = Some(false);
                Parsed::known(vec![Event::Error(ErrorEvent { message })])
            }
            "session.status" => {
                if props.pointer("/status/type").and_then(Value::as_str) == Some("busy") {
                    self.busy = true;
                }
                Parsed::known(vec![])
            }
            "session.idle" => {
                if self.in_turn && self.busy {
                    self.in_turn = false;
                    self.turn_end = true;
                    if self.outcome.success.is_none() {
                        self.outcome.success = Some(true);
                    }
                }
                Parsed::known(vec![])
            }
            // Deltas and status flips: the completed parts and `session.idle` carry it all.
            "message.part.delta" | "session.updated" | "session.diff" | "session.created" => {
                Parsed::known(vec![])
            }
            "" => Parsed::unknown("JSON without a type"),
            other => Parsed::known(vec![Event::Runtime(RuntimeEvent {
                name: other.to_string(),
            })]),
        }
    }

    fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    fn take_turn_end(&mut self) -> bool {
        std::mem::take(&mut self.turn_end)
    }
}

impl StreamSession for OpenCodeSession {
    fn open(&mut self, prompt: &str) -> Vec<String> {
        self.turn(prompt)
    }
    fn send(&mut self, prompt: &str) -> Vec<String> {
        self.turn(prompt)
    }
    fn interrupt(&mut self) -> Vec<String> {
        vec![json!({ "op": "abort" }).to_string()]
    }
}
