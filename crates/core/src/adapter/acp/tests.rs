#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use serde_json::json;

fn init(allowed: &[&str]) -> AcpInit {
    AcpInit {
        cwd: "/w".into(),
        mcp_servers: vec![McpServer::Http {
            name: "fracta".into(),
            url: "http://127.0.0.1:1/mcp".into(),
            headers: vec![HttpHeader {
                name: "Authorization".into(),
                value: "Bearer T".into(),
            }],
        }],
        allowed_tools: allowed.iter().map(|s| s.to_string()).collect(),
    }
}

fn sent(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The real Gemini CLI's answers to a prompt whose shell command the rules do not allow
/// (`crates/core/fixtures/transcripts/gemini/acp-permission-denied.jsonl`): initialize →
/// session/new with the gateway → the prompt; the permission request is rejected and the
/// decision recorded; the streamed chunks join into one message; usage from its `_meta`.
#[test]
fn a_gemini_session_from_its_transcript() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/transcripts/gemini/acp-permission-denied.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let mut s = AcpSession::new(None, init(&["Read", "Bash(git *)"]));
    let open = sent(&s.open("please make file"));
    assert_eq!(open[0]["method"], "initialize");
    assert_eq!(open[0]["params"]["protocolVersion"], 1);
    let mut events = Vec::new();
    let mut out = Vec::new();
    for l in text.lines() {
        let p = s.parse_line(l);
        assert!(p.understood, "{l}");
        events.extend(p.events);
        out.extend(sent(&s.take_output()));
    }
    assert_eq!(out[0]["method"], "session/new");
    assert_eq!(out[0]["params"]["cwd"], "/w");
    assert_eq!(out[0]["params"]["mcpServers"][0]["type"], "http");
    assert_eq!(
        out[0]["params"]["mcpServers"][0]["headers"][0]["value"],
        "Bearer T"
    );
    assert_eq!(out[1]["method"], "session/prompt");
    assert_eq!(out[1]["params"]["prompt"][0]["text"], "please make file");
    // The permission request (id 0) is answered with the reject option.
    assert_eq!(out[2]["id"], 0);
    assert_eq!(out[2]["result"]["outcome"]["optionId"], "cancel");
    assert!(s.take_turn_end());
    let names: Vec<String> = events
        .iter()
        .map(|e| match e {
            Event::Runtime(r) => format!("runtime {}", r.name),
            other => other.kind().to_string(),
        })
        .collect();
    assert!(
        names.contains(
            &"runtime permission denied: touch made.txt (not in project.allowed_tools)".to_string()
        ),
        "{names:?}"
    );
    assert_eq!(s.outcome().result.as_deref(), Some("DONE"));
    assert_eq!(s.outcome().success, Some(true));
    assert!(s.outcome().usage.input_tokens > 1000);
    assert!(s.outcome().resume_token.is_some());
}

#[test]
fn permissions_follow_the_projects_tool_rules() {
    let allowed: Vec<String> = ["Read", "Edit", "Bash(git *)", "Bash(cargo test:*)"]
        .map(String::from)
        .to_vec();
    let call = |kind: &str, title: &str| json!({"kind": kind, "title": title});
    assert_eq!(
        allowing_rule(&allowed, &call("read", "a.txt")),
        Some("Read")
    );
    assert_eq!(
        allowing_rule(&allowed, &call("edit", "a.txt")),
        Some("Edit")
    );
    assert_eq!(
        allowing_rule(&allowed, &call("execute", "git status")),
        Some("Bash(git *)")
    );
    assert_eq!(
        allowing_rule(&allowed, &call("execute", "cargo test -p x")),
        Some("Bash(cargo test:*)")
    );
    assert_eq!(allowing_rule(&allowed, &call("execute", "gitx")), None);
    assert_eq!(allowing_rule(&allowed, &call("execute", "rm -rf /")), None);
    assert_eq!(allowing_rule(&allowed, &call("fetch", "http://x")), None);
    let raw = json!({"kind": "execute", "title": "run", "rawInput": {"command": "git log"}});
    assert_eq!(allowing_rule(&allowed, &raw), Some("Bash(git *)"));
    assert!(bash_pattern_matches("npm run *", "npm run build"));
    assert!(bash_pattern_matches("echo*done", "echo all done"));
    assert!(!bash_pattern_matches("echo*done", "echo all"));
}

/// Resume goes through `session/load` when the agent advertises it (the replayed history is
/// not recorded again), and is a clear error when it does not.
#[test]
fn resume_loads_the_session_or_says_why_it_cannot() {
    let mut s = AcpSession::new(Some("S1"), init(&[]));
    s.open("again");
    s.parse_line(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{"loadSession":true}}}"#);
    let load = sent(&s.take_output());
    assert_eq!(load[0]["method"], "session/load");
    assert_eq!(load[0]["params"]["sessionId"], "S1");
    let replay = s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"old"}}}}"#);
    assert!(replay.events.is_empty());
    let p = s.parse_line(r#"{"jsonrpc":"2.0","id":2,"result":null}"#);
    assert!(matches!(&p.events[0], Event::Session(e) if e.resume_token == "S1"));
    let prompt = sent(&s.take_output());
    assert_eq!(prompt[0]["method"], "session/prompt");
    assert_eq!(prompt[0]["params"]["sessionId"], "S1");
    // Gemini CLI replays the history after its answer, until it lists its commands.
    s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"OLD"}}}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S1","update":{"sessionUpdate":"available_commands_update","availableCommands":[]}}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S1","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"NEW"}}}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}"#);
    assert_eq!(s.outcome().result.as_deref(), Some("NEW"));

    let mut s = AcpSession::new(Some("S1"), init(&[]));
    s.open("again");
    let p = s.parse_line(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1,"agentCapabilities":{},"agentInfo":{"name":"qwen"}}}"#);
    assert!(s.take_turn_end());
    let Event::Error(e) = &p.events[0] else {
        panic!("{:?}", p.events)
    };
    assert!(
        e.message.contains("qwen does not advertise `loadSession`"),
        "{}",
        e.message
    );
}

/// Tool calls are steps (the step limit counts them) with their results; plans are kept; a
/// cancel names the session; a turn cancelled ends as one.
#[test]
fn tool_calls_plans_and_cancel() {
    let mut s = AcpSession::new(None, init(&[]));
    s.open("go");
    s.parse_line(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","id":2,"result":{"sessionId":"S"}}"#);
    s.take_output();
    let p = s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S","update":{"sessionUpdate":"tool_call","toolCallId":"c1","title":"ls","kind":"execute","status":"in_progress","rawInput":{"command":"ls"}}}}"#);
    assert!(matches!(
        p.events[0],
        Event::Step(StepEvent {
            phase: StepPhase::Started
        })
    ));
    assert!(matches!(&p.events[1], Event::ToolCall(c) if c.name == "ls"));
    let p = s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S","update":{"sessionUpdate":"tool_call_update","toolCallId":"c1","status":"completed","content":[{"type":"content","content":{"type":"text","text":"a.txt"}}]}}}"#);
    assert!(matches!(&p.events[0], Event::ToolResult(r) if r.output == "a.txt" && !r.is_error));
    let p = s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S","update":{"sessionUpdate":"plan","entries":[{"content":"look","status":"completed"},{"content":"fix","status":"pending"}]}}}"#);
    assert!(matches!(&p.events[0], Event::Runtime(r) if r.name == "plan: [x] look; [ ] fix"));
    let cancel = sent(&s.interrupt());
    assert_eq!(cancel[0]["method"], "session/cancel");
    assert_eq!(cancel[0]["params"]["sessionId"], "S");
    assert!(cancel[0].get("id").is_none(), "a notification");
    s.parse_line(r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"cancelled"}}"#);
    assert!(s.take_turn_end());
    assert_eq!(s.outcome().success, Some(false));
    // Something the agent asks that Fracta does not offer is declined, never left hanging.
    s.parse_line(r#"{"jsonrpc":"2.0","id":7,"method":"fs/read_text_file","params":{}}"#);
    let ans = sent(&s.take_output());
    assert_eq!(ans[0]["id"], 7);
    assert_eq!(ans[0]["error"]["code"], -32601);
}

/// Qwen Code (seen with 0.15.10 over ACP) reports usage in its chunks' `_meta`.
#[test]
fn usage_from_the_updates_meta() {
    let mut s = AcpSession::new(None, init(&[]));
    s.open("go");
    s.parse_line(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":1}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","id":2,"result":{"sessionId":"S"}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":"hi"}}}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","method":"session/update","params":{"sessionId":"S","update":{"sessionUpdate":"agent_message_chunk","content":{"type":"text","text":""},"_meta":{"usage":{"inputTokens":19304,"outputTokens":3,"totalTokens":19307,"thoughtTokens":0,"cachedReadTokens":7}}}}}"#);
    s.parse_line(r#"{"jsonrpc":"2.0","id":3,"result":{"stopReason":"end_turn"}}"#);
    let u = &s.outcome().usage;
    assert_eq!(
        (u.input_tokens, u.output_tokens, u.cached_tokens),
        (19304, 3, 7)
    );
    assert_eq!(s.outcome().result.as_deref(), Some("hi"));
}
