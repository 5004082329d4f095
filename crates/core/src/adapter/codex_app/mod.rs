//! A Codex stream session: `codex app-server`, driven over its JSON-RPC. The session sends
//! `initialize`, `initialized` and `thread/start` (or `thread/resume` with the agent's thread
//! id), then one `turn/start` per turn; `turn/steer` adds input to the turn in flight (it must
//! name that turn: `expectedTurnId`), `turn/interrupt` aborts it. Item notifications become
//! the same normalized events as `codex exec --json`'s.

pub mod wire;

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use serde_json::Value;

use super::codex::item_events;
use super::{EventParser, Outcome, Parsed, StreamSession, str_at, u64_at};
use crate::event::{
    ErrorEvent, Event, RuntimeEvent, SessionEvent, StepEvent, StepPhase, UsageEvent,
};
use wire::{
    ClientInfo, ErrorResponse, InitializeParams, Notification, Request, RpcError,
    ThreadResumeParams, ThreadStartParams, TurnInterruptParams, TurnStartParams, TurnSteerParams,
    UserInput,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Initialize,
    Thread,
    TurnStart,
    Steer,
    Interrupt,
}

#[derive(Default)]
pub struct CodexAppSession {
    resume: Option<String>,
    next_id: u64,
    requests: BTreeMap<u64, Pending>,
    thread_id: Option<String>,
    turn_id: Option<String>,
    /// Turns waiting for the thread to exist.
    queued: VecDeque<String>,
    output: Vec<String>,
    outcome: Outcome,
    turn_end: bool,
    /// The thread's token totals at the end of the previous turn, and now.
    total_before: UsageEvent,
    total: UsageEvent,
}

fn line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

fn text(prompt: &str) -> Vec<UserInput> {
    vec![UserInput::Text {
        text: prompt.to_string(),
    }]
}

/// `codex exec --json` names items in snake_case (`agent_message`, `aggregated_output`); the
/// app-server in camelCase. Translate an item's type and top-level keys.
fn snake_item(item: &Value) -> Value {
    fn snake(s: &str) -> String {
        let mut out = String::with_capacity(s.len() + 4);
        for c in s.chars() {
            if c.is_ascii_uppercase() {
                out.push('_');
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c);
            }
        }
        out
    }
    match item.as_object() {
        Some(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v.as_str()) {
                        ("type", Some(t)) => Value::String(snake(t)),
                        _ => v.clone(),
                    };
                    (snake(k), v)
                })
                .collect(),
        ),
        None => item.clone(),
    }
}

fn usage_at(v: &Value) -> UsageEvent {
    UsageEvent {
        input_tokens: u64_at(v, &["inputTokens"]),
        output_tokens: u64_at(v, &["outputTokens"]),
        cached_tokens: u64_at(v, &["cachedInputTokens"]),
        cost_usd: None,
    }
}

impl CodexAppSession {
    pub fn new(resume_token: Option<&str>) -> Self {
        CodexAppSession {
            resume: resume_token.map(str::to_string),
            next_id: 1,
            ..Self::default()
        }
    }

    fn request<P: Serialize>(&mut self, method: &'static str, params: P, kind: Pending) -> String {
        let id = self.next_id;
        self.next_id += 1;
        self.requests.insert(id, kind);
        line(&Request { id, method, params })
    }

    fn turn_start(&mut self, prompt: &str) -> String {
        let params = TurnStartParams {
            thread_id: self.thread_id.clone().unwrap_or_default(),
            input: text(prompt),
        };
        self.request("turn/start", params, Pending::TurnStart)
    }

    /// The turn could not run: record why and end it.
    fn fail_turn(&mut self, message: String) -> Vec<Event> {
        self.outcome.error = Some(message.clone());
        self.outcome.success = Some(false);
        self.turn_end = true;
        self.turn_id = None;
        vec![Event::Error(ErrorEvent { message })]
    }

    fn response(&mut self, id: u64, v: &Value) -> Parsed {
        let kind = self.requests.remove(&id);
        if let Some(err) = v.get("error") {
            let message = format!(
                "codex app-server refused {}: {}",
                match kind {
                    Some(Pending::Initialize) => "initialize",
                    Some(Pending::Thread) => "the thread",
                    Some(Pending::TurnStart) => "turn/start",
                    Some(Pending::Steer) => "turn/steer",
                    Some(Pending::Interrupt) => "turn/interrupt",
                    None => "a request",
                },
                str_at(err, "message").unwrap_or("no reason given")
            );
            return match kind {
                Some(Pending::Initialize | Pending::Thread | Pending::TurnStart) => {
                    self.queued.clear();
                    Parsed::known(self.fail_turn(message))
                }
                _ => Parsed::known(vec![Event::Error(ErrorEvent { message })]),
            };
        }
        let result = v.get("result").unwrap_or(&Value::Null);
        match kind {
            Some(Pending::Thread) => {
                let Some(tid) = result.pointer("/thread/id").and_then(Value::as_str) else {
                    return Parsed::known(
                        self.fail_turn("codex app-server started no thread".into()),
                    );
                };
                self.thread_id = Some(tid.to_string());
                self.outcome.resume_token = Some(tid.to_string());
                let model = str_at(result, "model").map(str::to_string);
                if let Some(m) = &model {
                    self.outcome.model = Some(m.clone());
                }
                if let Some(p) = self.queued.pop_front() {
                    let l = self.turn_start(&p);
                    self.output.push(l);
                }
                Parsed::known(vec![Event::Session(SessionEvent {
                    resume_token: tid.to_string(),
                    model,
                })])
            }
            Some(Pending::TurnStart) => {
                if let Some(t) = result.pointer("/turn/id").and_then(Value::as_str) {
                    self.turn_id = Some(t.to_string());
                }
                Parsed::known(vec![])
            }
            _ => Parsed::known(vec![]),
        }
    }

    fn notification(&mut self, method: &str, params: &Value) -> Parsed {
        match method {
            "thread/started" => Parsed::known(vec![]),
            "turn/started" => {
                if let Some(t) = params.pointer("/turn/id").and_then(Value::as_str) {
                    self.turn_id = Some(t.to_string());
                }
                self.outcome.result = None;
                self.outcome.error = None;
                self.outcome.success = None;
                Parsed::known(vec![Event::Step(StepEvent {
                    phase: StepPhase::Started,
                })])
            }
            "turn/completed" => {
                let turn = params.get("turn").unwrap_or(&Value::Null);
                let usage = UsageEvent {
                    input_tokens: self
                        .total
                        .input_tokens
                        .saturating_sub(self.total_before.input_tokens),
                    output_tokens: self
                        .total
                        .output_tokens
                        .saturating_sub(self.total_before.output_tokens),
                    cached_tokens: self
                        .total
                        .cached_tokens
                        .saturating_sub(self.total_before.cached_tokens),
                    cost_usd: None,
                };
                self.total_before = self.total.clone();
                self.outcome.usage = usage.clone();
                self.turn_end = true;
                self.turn_id = None;
                let mut events = vec![
                    Event::Step(StepEvent {
                        phase: StepPhase::Finished,
                    }),
                    Event::Usage(usage),
                ];
                match str_at(turn, "status").unwrap_or("") {
                    "completed" => self.outcome.success = Some(true),
                    status => {
                        let message = turn
                            .pointer("/error/message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("the turn ended {status}"));
                        self.outcome.success = Some(false);
                        self.outcome.error = Some(message.clone());
                        events.push(Event::Error(ErrorEvent { message }));
                    }
                }
                Parsed::known(events)
            }
            "item/started" | "item/completed" => {
                let Some(item) = params.get("item") else {
                    return Parsed::unknown("item notification without an item");
                };
                let completed = method == "item/completed";
                let item = snake_item(item);
                if str_at(&item, "type") == Some("user_message") {
                    // Fracta recorded the prompt when it sent it.
                    return Parsed::known(vec![]);
                }
                Parsed::known(item_events(&item, completed, &mut self.outcome))
            }
            "thread/tokenUsage/updated" => {
                if let Some(t) = params.pointer("/tokenUsage/total") {
                    self.total = usage_at(t);
                }
                Parsed::known(vec![])
            }
            "error" => {
                let message = params
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("codex reported an error")
                    .to_string();
                let retrying = params.get("willRetry").and_then(Value::as_bool) == Some(true);
                if retrying {
                    // Codex tries again: the turn goes on, so this is a warning.
                    return Parsed::known(vec![Event::Warning(ErrorEvent {
                        message: format!("{message} (retrying)"),
                    })]);
                }
                self.outcome.error = Some(message.clone());
                Parsed::known(vec![Event::Error(ErrorEvent { message })])
            }
            // Warnings that do not end the turn: their text, not only their name.
            "configWarning" | "deprecationNotice" | "warning" => {
                let text = |k: &str| str_at(params, k).filter(|t| !t.trim().is_empty());
                let mut message = text("summary")
                    .or_else(|| text("message"))
                    .unwrap_or(method)
                    .to_string();
                if let Some(d) = text("details") {
                    message = format!("{message}: {d}");
                }
                if let Some(p) = text("path") {
                    message = format!("{message} ({p})");
                }
                Parsed::known(vec![Event::Warning(ErrorEvent { message })])
            }
            // Streaming deltas: the completed item carries the whole text.
            m if m.ends_with("Delta") || m.ends_with("/delta") => Parsed::known(vec![]),
            other => Parsed::known(vec![Event::Runtime(RuntimeEvent {
                name: other.to_string(),
            })]),
        }
    }
}

impl EventParser for CodexAppSession {
    fn parse_line(&mut self, line_: &str) -> Parsed {
        let Ok(v) = serde_json::from_str::<Value>(line_) else {
            return Parsed::unknown("not JSON");
        };
        // The WebSocket transport's own word: it could not connect, or the connection ended.
        if str_at(&v, "type") == Some("fracta.error") {
            let message = str_at(&v, "message")
                .unwrap_or("the app-server connection failed")
                .to_string();
            self.outcome.error = Some(message.clone());
            self.outcome.success = Some(false);
            if self.turn_id.take().is_some() || !self.queued.is_empty() {
                self.turn_end = true;
            }
            return Parsed::known(vec![Event::Error(ErrorEvent { message })]);
        }
        let method = str_at(&v, "method").map(str::to_string);
        match (v.get("id"), method) {
            // A request of the server's (an approval, a question): Fracta's agents run
            // without prompts, so it is declined with a reason.
            (Some(id), Some(m)) => {
                self.output.push(line(&ErrorResponse {
                    id: id.clone(),
                    error: RpcError {
                        code: -32601,
                        message: format!("fracta does not answer {m} (agents run without prompts)"),
                    },
                }));
                Parsed::known(vec![Event::Runtime(RuntimeEvent {
                    name: format!("request {m} declined"),
                })])
            }
            (Some(id), None) => match id.as_u64() {
                Some(id) => self.response(id, &v),
                None => Parsed::unknown("response to an id Fracta never used"),
            },
            (None, Some(m)) => {
                let params = v.get("params").cloned().unwrap_or(Value::Null);
                self.notification(&m, &params)
            }
            (None, None) => Parsed::unknown("neither a request, a response nor a notification"),
        }
    }

    fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    fn take_turn_end(&mut self) -> bool {
        std::mem::take(&mut self.turn_end)
    }
}

impl StreamSession for CodexAppSession {
    fn open(&mut self, prompt: &str) -> Vec<String> {
        let init = self.request(
            "initialize",
            InitializeParams {
                client_info: ClientInfo {
                    name: "fracta".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                },
            },
            Pending::Initialize,
        );
        let initialized = line(&Notification {
            method: "initialized",
        });
        let thread = match self.resume.clone() {
            Some(t) => self.request(
                "thread/resume",
                ThreadResumeParams { thread_id: t },
                Pending::Thread,
            ),
            None => self.request(
                "thread/start",
                ThreadStartParams::default(),
                Pending::Thread,
            ),
        };
        self.queued.push_back(prompt.to_string());
        vec![init, initialized, thread]
    }

    fn send(&mut self, prompt: &str) -> Vec<String> {
        if self.thread_id.is_none() {
            self.queued.push_back(prompt.to_string());
            return Vec::new();
        }
        vec![self.turn_start(prompt)]
    }

    fn steer(&mut self, prompt: &str) -> Result<Vec<String>, String> {
        let (Some(thread_id), Some(turn_id)) = (self.thread_id.clone(), self.turn_id.clone())
        else {
            return Err(
                "no turn is in flight to steer; send the input as the next turn (fracta send)"
                    .into(),
            );
        };
        let params = TurnSteerParams {
            thread_id,
            expected_turn_id: turn_id,
            input: text(prompt),
        };
        Ok(vec![self.request("turn/steer", params, Pending::Steer)])
    }

    fn interrupt(&mut self) -> Vec<String> {
        match (self.thread_id.clone(), self.turn_id.clone()) {
            (Some(thread_id), Some(turn_id)) => vec![self.request(
                "turn/interrupt",
                TurnInterruptParams { thread_id, turn_id },
                Pending::Interrupt,
            )],
            _ => Vec::new(),
        }
    }

    fn take_output(&mut self) -> Vec<String> {
        std::mem::take(&mut self.output)
    }
}

/// Sample requests of every kind Fracta sends, for the schema test.
pub fn sample_requests() -> Vec<Value> {
    let mut s = CodexAppSession::new(None);
    let mut out: Vec<String> = s.open("first");
    s.thread_id = Some("t".into());
    s.turn_id = Some("u".into());
    out.extend(s.send("next"));
    out.extend(s.steer("steer").unwrap_or_default());
    out.extend(s.interrupt());
    let mut r = CodexAppSession::new(Some("thread-1"));
    out.extend(r.open("again"));
    out.iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::path::PathBuf;

    /// The pinned `codex` from the repository's `node_modules`.
    fn codex() -> Option<PathBuf> {
        let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/codex");
        p.is_file().then_some(p)
    }

    fn schema(dir: &std::path::Path, name: &str) -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    }

    fn methods(schema: &Value) -> Vec<String> {
        schema["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|v| {
                v.pointer("/properties/method/enum/0")
                    .and_then(Value::as_str)
            })
            .map(str::to_string)
            .collect()
    }

    /// Our requests, checked against the protocol schema the pinned CLI generates: a CLI
    /// upgrade that changes `initialize`, `thread/start`, `thread/resume`, `turn/start`,
    /// `turn/steer` or `turn/interrupt`, or drops a notification we read, fails here.
    #[test]
    fn requests_match_the_pinned_app_server_schema() {
        let Some(codex) = codex() else {
            panic!("the pinned codex CLI is missing: run `npm ci` (scripts/setup.sh does)");
        };
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(codex)
            .args(["app-server", "generate-json-schema", "--out"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let client = schema(dir.path(), "ClientRequest.json");
        let validator = jsonschema::validator_for(&client).unwrap();
        let samples = sample_requests();
        let sent: Vec<&str> = samples
            .iter()
            .filter_map(|r| r.get("method").and_then(Value::as_str))
            .collect();
        for m in [
            "initialize",
            "thread/start",
            "thread/resume",
            "turn/start",
            "turn/steer",
            "turn/interrupt",
        ] {
            assert!(sent.contains(&m), "no sample of {m}: {sent:?}");
        }
        for r in samples.iter().filter(|r| r.get("id").is_some()) {
            let errors: Vec<String> = validator
                .iter_errors(r)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(
                errors.is_empty(),
                "{r} does not match the schema: {errors:#?}"
            );
        }
        // The check has teeth: a steer without the turn it expects is refused.
        let bad = serde_json::json!({"id": 9, "method": "turn/steer", "params": {"threadId": "t", "input": []}});
        assert!(!validator.is_valid(&bad));
        // `initialized` is the client's one notification.
        let notes = schema(dir.path(), "ClientNotification.json");
        assert!(methods(&notes).contains(&"initialized".to_string()));
        let server = methods(&schema(dir.path(), "ServerNotification.json"));
        for n in wire::NOTIFICATIONS {
            assert!(
                server.contains(&n.to_string()),
                "the server no longer sends {n}"
            );
        }
        // The fields we read of them.
        let defs = schema(dir.path(), "ServerNotification.json")["definitions"].clone();
        let props = |name: &str| -> Vec<String> {
            defs[name]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("no {name} in the schema"))
                .keys()
                .cloned()
                .collect()
        };
        assert!(props("TurnCompletedNotification").contains(&"turn".to_string()));
        assert!(props("Turn").contains(&"status".to_string()));
        assert!(props("Turn").contains(&"error".to_string()));
        assert!(props("ThreadTokenUsageUpdatedNotification").contains(&"tokenUsage".to_string()));
        assert!(props("TokenUsageBreakdown").contains(&"inputTokens".to_string()));
        assert!(props("TokenUsageBreakdown").contains(&"cachedInputTokens".to_string()));
        assert!(props("ItemCompletedNotification").contains(&"item".to_string()));
        for (n, field) in [
            ("ConfigWarningNotification", "summary"),
            ("ConfigWarningNotification", "details"),
            ("DeprecationNoticeNotification", "summary"),
            ("WarningNotification", "message"),
        ] {
            assert!(props(n).contains(&field.to_string()), "{n}.{field}");
        }
    }

    /// Codex's warnings are warnings, with their text (not a bare `(configWarning)`), and a
    /// retried error does not end the turn.
    #[test]
    fn warnings_keep_their_text_and_do_not_fail_the_turn() {
        let mut s = CodexAppSession::new(None);
        let cases = [
            (
                r#"{"method":"configWarning","params":{"summary":"unknown key `foo`","details":"remove it","path":"/h/.codex/config.toml"}}"#,
                "unknown key `foo`: remove it (/h/.codex/config.toml)",
            ),
            (
                r#"{"method":"deprecationNotice","params":{"summary":"`bar` is deprecated"}}"#,
                "`bar` is deprecated",
            ),
            (
                r#"{"method":"warning","params":{"message":"model metadata not found"}}"#,
                "model metadata not found",
            ),
            (
                r#"{"method":"error","params":{"error":{"message":"stream broke"},"willRetry":true}}"#,
                "stream broke (retrying)",
            ),
        ];
        for (line, text) in cases {
            let p = s.parse_line(line);
            assert_eq!(
                p.events,
                vec![Event::Warning(ErrorEvent {
                    message: text.into()
                })],
                "{line}"
            );
        }
        assert_eq!(s.outcome.error, None);
    }

    #[test]
    fn a_turn_starts_once_the_thread_exists_and_steers_name_it() {
        let mut s = CodexAppSession::new(None);
        let open = s.open("hello");
        assert_eq!(open.len(), 3, "initialize, initialized, thread/start");
        assert!(s.steer("x").is_err(), "nothing to steer yet");
        let p = s.parse_line(r#"{"id":2,"result":{"thread":{"id":"T1"},"model":"m"}}"#);
        assert!(matches!(p.events[0], Event::Session(_)));
        let out = s.take_output();
        assert_eq!(out.len(), 1);
        let v: Value = serde_json::from_str(&out[0]).unwrap();
        assert_eq!(v["method"], "turn/start");
        assert_eq!(v["params"]["threadId"], "T1");
        assert_eq!(v["params"]["input"][0]["text"], "hello");
        s.parse_line(r#"{"method":"turn/started","params":{"threadId":"T1","turn":{"id":"U1"}}}"#);
        let steer: Value = serde_json::from_str(&s.steer("more").unwrap()[0]).unwrap();
        assert_eq!(steer["params"]["expectedTurnId"], "U1");
        s.parse_line(r#"{"method":"item/completed","params":{"item":{"type":"agentMessage","id":"a","text":"done"}}}"#);
        s.parse_line(r#"{"method":"thread/tokenUsage/updated","params":{"tokenUsage":{"total":{"inputTokens":10,"outputTokens":2,"cachedInputTokens":1}}}}"#);
        s.parse_line(
            r#"{"method":"turn/completed","params":{"turn":{"id":"U1","status":"completed"}}}"#,
        );
        assert!(s.take_turn_end());
        assert_eq!(s.outcome().result.as_deref(), Some("done"));
        assert_eq!(s.outcome().usage.input_tokens, 10);
        // A server request is declined, never left hanging.
        s.parse_line(r#"{"id":"r1","method":"item/commandExecution/requestApproval","params":{}}"#);
        let ans: Value = serde_json::from_str(&s.take_output()[0]).unwrap();
        assert_eq!(ans["id"], "r1");
        assert!(ans["error"]["message"].as_str().unwrap().contains("fracta"));
    }
}
