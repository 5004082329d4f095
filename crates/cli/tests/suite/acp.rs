//! Agents that speak the Agent Client Protocol, against the real pinned CLIs and the scripted
//! model server: Gemini CLI (`adapter: gemini`, `gemini --acp`, the Gemini API) and OpenCode
//! through the generic `adapter: acp` (`opencode acp`). Batch runs, resume through
//! `session/load`, stream sessions that keep their context, permission decisions, the step
//! limit, native subagents kept from the model, and agent trees through the MCP gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use fracta_model_server::{Api, Script};
use serde_json::Value;

use super::harness::{Project, wait_child};

fn script() -> Script {
    Script::parse(
        r#"rules:
  - name: shell
    when: { contains: "make a file", has_tools: true }
    reply:
      tool_calls:
        - { name: run_shell_command, input: { command: "touch made.txt" } }
        - { name: run_shell_command, input: { command: "git tag acp-tag" } }
  - when: { contains: "first turn", has_tools: true }
    reply: "ANSWER-ONE"
  - when: { contains: "second turn", has_tools: true }
    reply: "ANSWER-TWO"
  - when: { contains: "third turn", has_tools: true }
    reply: "ANSWER-THREE"
  - name: loop
    when: { contains: "loop forever", anywhere: true, has_tools: true }
    repeat: true
    reply:
      tool_calls: [{ name: run_shell_command, input: { command: "git status" } }]
fallback: "fine"
"#,
        "acp",
    )
    .unwrap()
}

fn events_of(p: &Project, v: &Value) -> Vec<Value> {
    p.events(v["id"].as_str().unwrap())
}

fn runtime_names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["kind"] == "runtime")
        .map(|e| e["payload"]["name"].as_str().unwrap_or("").to_string())
        .collect()
}

/// The requests of a turn: those whose body mentions `needle`.
fn bodies_with(p: &Project, needle: &str) -> Vec<String> {
    p.requests()
        .into_iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains(needle))
        .collect()
}

/// A batch run: one `session/prompt`, the answer recorded, the agent's stdin closed and the
/// run succeeded. For Gemini, also: the API key of the runtime reached the model (Gemini's
/// `x-goog-api-key`), the settings file stays out of the agent's commit, and its subagent
/// tool is not offered to the model.
fn batch(runtime: &str) -> Project {
    let p = Project::with_acp(script(), "");
    p.keep_worktrees(); // (an agent that changes nothing keeps no branch)
    let (code, v) = p.spawn_json(&[
        "--runtime",
        runtime,
        "--task",
        "t",
        "--prompt",
        "first turn",
    ]);
    assert_eq!(code, 0, "{v:#}\n{:#?}", events_of(&p, &v));
    assert_eq!(v["status"], "succeeded", "{v:#}");
    assert_eq!(v["result"], "ANSWER-ONE");
    let events = events_of(&p, &v);
    assert!(
        events.iter().any(|e| e["kind"] == "session"),
        "no session: {events:#?}"
    );
    let answers: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "message" && e["payload"]["role"] == "assistant")
        .collect();
    assert_eq!(
        answers.len(),
        1,
        "one message, its chunks joined: {answers:#?}"
    );
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0, "{v:#}");
    p
}

#[test]
fn a_gemini_batch_run_answers_with_its_credentials_and_no_subagents() {
    let p = batch("gemini");
    let reqs = p.requests();
    let turn: Vec<_> = reqs
        .iter()
        .filter(|r| r.api == Some(Api::Gemini) && r.path.ends_with(":streamGenerateContent"))
        .collect();
    assert!(!turn.is_empty(), "{reqs:#?}");
    for r in &turn {
        assert_eq!(r.model(), Some("gemini-2.5-pro"));
        assert_eq!(
            r.headers.get("x-goog-api-key").map(String::as_str),
            Some("gm-test-key")
        );
        let tools = r.body["tools"].to_string();
        assert!(tools.contains("run_shell_command"), "{tools}");
        assert!(
            !tools.contains("invoke_agent"),
            "Gemini's subagent tool was offered: {tools}"
        );
    }
    let agent = p.json(&["ps", "--all", "--json"])[0].clone();
    let branch = agent["branch"].as_str().unwrap();
    assert_eq!(p.show_file(branch, ".gemini/settings.json"), None);
}

#[test]
fn an_opencode_acp_batch_run_answers() {
    let p = batch("opencode-acp");
    // One turn, one model request: its config turns OpenCode's title request off.
    let asked = p.asked();
    assert_eq!(asked.len(), 1, "{asked:#?}");
}

/// Sleep until the wall clock's minute changes.
fn next_minute() {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::thread::sleep(Duration::from_secs(61 - secs % 60));
}

/// Resume through `session/load`: the second turn's request carries the first turn.
fn resume(runtime: &str) {
    let p = Project::with_acp(script(), "");
    let (code, v) = p.spawn_json(&[
        "--runtime",
        runtime,
        "--task",
        "t",
        "--prompt",
        "first turn",
    ]);
    assert_eq!(code, 0, "{v:#}");
    let id = v["id"].as_str().unwrap();
    if runtime == "gemini" {
        // Gemini CLI 0.61 names a session's file by the minute it was written and its short
        // id; loading the session in that same minute writes a new, empty file over it, and
        // the session is lost ("No previous sessions found"). A person resumes later.
        next_minute();
    }
    let two = p.json(&["resume", id, "--prompt", "second turn", "--json"]);
    assert_eq!(two["status"], "succeeded", "{two:#}\n{:#?}", p.events(id));
    assert_eq!(two["result"], "ANSWER-TWO");
    let seconds = bodies_with(&p, "second turn");
    assert!(
        seconds
            .iter()
            .any(|b| b.contains("first turn") && b.contains("ANSWER-ONE")),
        "the resumed turn lost the first one: {seconds:#?}"
    );
}

#[test]
fn a_gemini_agent_resumes_with_its_context() {
    resume("gemini");
}

#[test]
fn an_opencode_acp_agent_resumes_with_its_context() {
    resume("opencode-acp");
}

/// A stream session in the terminal: one process, a `session/prompt` per line, context kept.
fn stream(runtime: &str) {
    let p = Project::with_acp(script(), "");
    let mut child = p
        .command(&[
            "spawn",
            "--mode",
            "stream",
            "--json",
            "--runtime",
            runtime,
            "--task",
            "chat",
            "--prompt",
            "first turn",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"second turn\nthird turn\n").unwrap();
    }
    let status = wait_child(&mut child, Duration::from_secs(180));
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded", "{v:#}");
    assert_eq!(v["mode"], "stream");
    assert_eq!(v["result"], "ANSWER-THREE");
    let thirds = bodies_with(&p, "third turn");
    assert!(
        thirds.iter().any(
            |b| ["first turn", "ANSWER-ONE", "second turn", "ANSWER-TWO"]
                .iter()
                .all(|e| b.contains(e))
        ),
        "no third-turn request carries the first two turns: {thirds:#?}"
    );
    let events = events_of(&p, &v);
    let started = events
        .iter()
        .filter(|e| e["payload"]["status"] == "running")
        .count();
    assert_eq!(started, 1, "one process served the turns: {events:#?}");
}

#[test]
fn a_gemini_stream_session_keeps_its_context_over_three_turns() {
    stream("gemini");
}

#[test]
fn an_opencode_acp_stream_session_keeps_its_context_over_three_turns() {
    stream("opencode-acp");
}

/// Gemini asks before a shell command: Fracta answers from `project.allowed_tools`
/// (`Bash(git *)` allows `git tag`, nothing allows `touch`), and records each decision.
#[test]
fn gemini_permission_requests_are_answered_from_the_allowed_tools_and_recorded() {
    let p = Project::with_acp(script(), "");
    p.keep_worktrees(); // (an agent that changes nothing keeps no branch)
    let (code, v) = p.spawn_json(&[
        "--runtime",
        "gemini",
        "--task",
        "t",
        "--prompt",
        "make a file",
    ]);
    assert_eq!(code, 0, "{v:#}");
    let events = events_of(&p, &v);
    let names = runtime_names(&events);
    assert!(
        names
            .iter()
            .any(|n| n == "permission denied: touch made.txt (not in project.allowed_tools)"),
        "{names:#?}"
    );
    assert!(
        names
            .iter()
            .any(|n| n == "permission allowed: git tag acp-tag (by Bash(git *))"),
        "{names:#?}"
    );
    let ws = std::path::PathBuf::from(
        p.agent(v["id"].as_str().unwrap())["workspace"]
            .as_str()
            .unwrap(),
    );
    assert!(!ws.join("made.txt").exists(), "a denied command ran");
    let tags = std::process::Command::new("git")
        .args(["tag", "--list"])
        .current_dir(&ws)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&tags.stdout).contains("acp-tag"),
        "the allowed command did not run"
    );
}

/// A model that keeps calling tools: past `max_steps` tool calls the run is cancelled and
/// fails, naming the limit.
#[test]
fn a_gemini_run_past_max_steps_is_aborted() {
    let p = Project::with_acp(script(), "      max_steps: 3\n");
    let (code, v) = p.spawn_json(&[
        "--runtime",
        "gemini",
        "--task",
        "t",
        "--prompt",
        "loop forever",
    ]);
    assert_ne!(code, 0, "{v:#}");
    assert_eq!(v["status"], "failed", "{v:#}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or("")
            .contains("more than 3 steps (max_steps)"),
        "{v:#}"
    );
    let calls = events_of(&p, &v)
        .iter()
        .filter(|e| e["kind"] == "tool_call")
        .count();
    assert!((4..=6).contains(&calls), "{calls} tool calls");
}

/// Agent trees across ACP and the others, through Fracta's MCP gateway: the parent's
/// `spawn` call (as its CLI names it) starts the child, waits for it, and the parent answers
/// with the child's result.
fn tree(parent: &str, call: &str, child: &str) {
    let p = Project::with_acp(
        Script::parse(
            &format!(
                r#"rules:
  - name: parent-delegates
    when: {{ contains: "delegate to {child}", has_tools: true }}
    reply:
      tool_calls: [{{ {call}, input: {{ task: child-task, prompt: "child work for {child}", runtime: {child}, wait: true }} }}]
  - name: child-answers
    when: {{ contains: "child work for {child}", has_tools: true }}
    reply: "CHILD-RESULT-FROM-{child}"
  - name: parent-concludes
    when: {{ contains: "CHILD-RESULT-FROM-{child}", has_tools: true }}
    reply: "The child answered: CHILD-RESULT-FROM-{child}"
fallback: "A title"
"#
            ),
            "tree",
        )
        .unwrap(),
        "",
    );
    let (code, v) = p.spawn_json(&[
        "--task",
        "boss",
        "--runtime",
        parent,
        "--prompt",
        &format!("delegate to {child}"),
    ]);
    assert_eq!(code, 0, "{v:#}\n{:#?}", events_of(&p, &v));
    assert_eq!(
        v["result"],
        format!("The child answered: CHILD-RESULT-FROM-{child}"),
        "{v:#}\n{:#?}",
        events_of(&p, &v)
    );
    let all = p.json(&["ps", "--all", "--json"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2, "{all:#?}");
    let kid = all.iter().find(|a| a["id"] != v["id"]).unwrap();
    let kid = p.agent(kid["id"].as_str().unwrap());
    assert_eq!(kid["parent_id"], v["id"]);
    assert_eq!(kid["runtime"], child);
    assert_eq!(kid["status"], "succeeded", "{kid:#}");
    for e in events_of(&p, &v) {
        assert!(
            !e.to_string().to_lowercase().contains("bearer "),
            "a token reached an event: {e}"
        );
    }
}

#[test]
fn a_gemini_parent_spawns_a_codex_child() {
    tree("gemini", "name: mcp_fracta_spawn", "codex");
}

#[test]
fn a_claude_parent_spawns_a_gemini_child() {
    tree("claude", "name: mcp__fracta__spawn", "gemini");
}

/// In a stream session, a turn past `max_steps` is cancelled (`session/cancel`) with the
/// reason recorded, and the session takes its next turn.
#[test]
fn a_gemini_session_turn_past_max_steps_is_cancelled_and_the_session_goes_on() {
    let p = Project::with_acp(script(), "      max_steps: 3\n");
    let mut child = p
        .command(&[
            "spawn",
            "--mode",
            "stream",
            "--json",
            "--runtime",
            "gemini",
            "--task",
            "loop",
            "--prompt",
            "loop forever",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"second turn\n").unwrap();
    }
    let status = wait_child(&mut child, Duration::from_secs(180));
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status.success(),
        "{v:#} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = events_of(&p, &v);
    assert_eq!(v["result"], "ANSWER-TWO", "{v:#} {events:#?}");
    assert!(
        events.iter().any(|e| e["kind"] == "error"
            && e["payload"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("more than 3 steps (max_steps)")),
        "{events:#?}"
    );
}
