//! Stream mode with the real CLIs — Claude Code (stream-json on stdin), Codex (`codex
//! app-server` JSON-RPC) and OpenCode (`opencode serve`, HTTP + SSE): one long-lived process
//! takes turn after turn and keeps its context, in the terminal (`spawn --mode stream`, a turn
//! per stdin line) and under the control plane (`spawn --detach` + `fracta send`); a session
//! killed under Fracta; Codex's `turn/steer`; idle sessions closed and resumable.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::{Project, Serve, pid_alive, wait_child};

fn script() -> Script {
    Script::parse(
        "rules:\n  - when: { contains: \"after the crash\", anywhere: true, has_tools: true }\n    reply: \"RESUMED\"\n  - when: { contains: \"first turn\", has_tools: true }\n    reply: \"ANSWER-ONE\"\n  - when: { contains: \"second turn\", has_tools: true }\n    reply: \"ANSWER-TWO\"\n  - when: { contains: \"third turn\", has_tools: true }\n    reply: \"ANSWER-THREE\"\n  - when: { contains: \"hold on\", has_tools: true }\n    reply: { text: \"late\", delay_ms: 60000 }\nfallback: \"fine\"\n",
        "stream",
    )
    .unwrap()
}

/// The model requests that carried a turn: the third carries the first two turns and answers.
fn assert_context_kept(p: &Project) {
    let thirds: Vec<String> = p
        .requests()
        .into_iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains("third turn"))
        .collect();
    assert!(!thirds.is_empty(), "no request for the third turn");
    let earlier = ["first turn", "ANSWER-ONE", "second turn", "ANSWER-TWO"];
    assert!(
        thirds.iter().any(|b| earlier.iter().all(|e| b.contains(e))),
        "no third-turn request carries the first two turns: {thirds:#?}"
    );
}

#[test]
fn a_terminal_session_takes_a_turn_per_line_and_keeps_its_context() {
    terminal_session("claude");
}

#[test]
fn a_codex_app_server_session_takes_a_turn_per_line_and_keeps_its_context() {
    terminal_session("codex");
}

#[test]
fn an_opencode_serve_session_takes_a_turn_per_line_and_keeps_its_context() {
    terminal_session("opencode");
}

/// The Pod's network path, here: `codex app-server --listen ws://127.0.0.1:PORT` with a
/// per-session capability token (the process gets only its SHA-256, as an env var).
#[test]
fn a_codex_session_over_websocket_takes_a_turn_per_line_and_keeps_its_context() {
    let (cmd, _p) = terminal_session_with("codex", &[("FRACTA_CODEX_TRANSPORT", "ws")]);
    assert!(cmd.contains("--listen ws://127.0.0.1:"), "{cmd}");
    assert!(
        cmd.contains("--ws-auth capability-token --ws-token-sha256 '$(FRACTA_WS_TOKEN_SHA256)'"),
        "{cmd}"
    );
}

fn terminal_session(runtime: &str) {
    terminal_session_with(runtime, &[]);
}

/// Returns the session's recorded command and its project.
fn terminal_session_with(runtime: &str, env: &[(&str, &str)]) -> (String, Project) {
    let p = Project::new(script());
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
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"second turn\nthird turn\n").unwrap();
    } // end of input: the session closes after its last turn
    let status = wait_child(&mut child, Duration::from_secs(120));
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded", "{v:#}");
    assert_eq!(v["mode"], "stream");
    assert_eq!(v["result"], "ANSWER-THREE");
    assert_context_kept(&p);
    // Three turns, three model requests: nothing on the side (OpenCode asks the model for a
    // session title unless the session is given one).
    let asked = p.asked();
    assert_eq!(asked.len(), 3, "{asked:#?}");
    // Usage is the sum of the three turns' (each request carries the CLI's whole prompt).
    let input = v["usage"]["input_tokens"].as_u64().unwrap();
    let one_turn = match runtime {
        "claude" => 20_000,
        "codex" => 10_000,
        _ => 5_000,
    };
    assert!(
        input > 2 * one_turn,
        "three turns' tokens, not the last one's: {v:#}"
    );
    // One process served all three turns.
    let events = p.events(v["id"].as_str().unwrap());
    let started = events
        .iter()
        .filter(|e| e["payload"]["status"] == "running")
        .count();
    assert_eq!(started, 1, "{events:#?}");
    let users: Vec<&str> = events
        .iter()
        .filter(|e| e["payload"]["type"] == "message" && e["payload"]["role"] == "user")
        .map(|e| e["payload"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["first turn", "second turn", "third turn"]);
    let cmd = p.agent(v["id"].as_str().unwrap())["meta"]["command"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    (cmd, p)
}

#[test]
fn a_detached_session_takes_sends_and_a_killed_session_fails_and_resumes() {
    detached_session("claude");
}

#[test]
fn a_detached_codex_session_takes_sends_and_a_killed_one_fails_and_resumes() {
    detached_session("codex");
}

#[test]
fn a_detached_opencode_session_takes_sends_and_a_killed_one_fails_and_resumes() {
    detached_session("opencode");
}

fn detached_session(runtime: &str) {
    let p = Project::new(script());
    let server = Serve::start(&p);
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--runtime",
        runtime,
        "--task",
        "chat",
        "--prompt",
        "first turn",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    let two = p.json(&["send", &id, "--prompt", "second turn", "--json"]);
    assert_eq!(two["result"], "ANSWER-TWO", "{two:#}");
    assert_eq!(
        two["status"], "running",
        "the session lives on between turns"
    );
    let three = p.json(&["send", &id, "--prompt", "third turn", "--json"]);
    assert_eq!(three["result"], "ANSWER-THREE");
    assert_context_kept(&p);

    // A batch agent has no session: a clear error.
    let (_, batch) = p.spawn_json(&[
        "--runtime",
        runtime,
        "--task",
        "one-shot",
        "--prompt",
        "first turn",
    ]);
    let out = p.run(&["send", batch["id"].as_str().unwrap(), "--prompt", "more"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no live stream session"), "{err}");

    // The session's process killed under Fracta: failed, with the signal; resumable.
    let pid = p.agent(&id)["pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let start = Instant::now();
    let failed = loop {
        let a = p.agent(&id);
        if a["status"] == "failed" {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{a:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        failed["error"].as_str().unwrap().contains("SIGKILL"),
        "{failed:#}"
    );
    assert!(!pid_alive(pid));
    let out = p.run(&["send", &id, "--prompt", "more"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "an ended session takes no sends"
    );
    let again = p.json(&["resume", &id, "--prompt", "after the crash", "--json"]);
    assert_eq!(again["result"], "RESUMED", "{again:#}");
    assert_eq!(
        again["resume_token"], three["resume_token"],
        "the same conversation"
    );
    assert!(server.stop());
}

/// `fracta steer`: input added to the Codex turn in flight reaches the model in the same turn
/// (`turn/steer` naming that turn); other runtimes say they cannot.
#[test]
fn codex_steer_adds_input_to_the_turn_in_flight() {
    codex_steer(&[]);
}

#[test]
fn codex_steer_over_websocket_adds_input_to_the_turn_in_flight() {
    codex_steer(&[("FRACTA_CODEX_TRANSPORT", "ws")]);
}

fn codex_steer(env: &[(&str, &str)]) {
    let script = Script::parse(
        "rules:\n  - when: { contains: \"EXTRA-INPUT\" }\n    reply: \"STEERED\"\n  - when: { contains: \"steer me\" }\n    reply: { text: \"HELD\", hold: steer }\nfallback: \"fine\"\n",
        "steer",
    )
    .unwrap();
    let p = Project::new(script);
    let server = Serve::start_with(&p, env);
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--runtime",
        "codex",
        "--task",
        "chat",
        "--prompt",
        "steer me",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    assert!(
        p.rt.block_on(p.server().wait_for_hold("steer", Duration::from_secs(60))),
        "the turn never reached the model"
    );
    let steered = p.json(&["steer", &id, "--prompt", "EXTRA-INPUT", "--json"]);
    assert_eq!(steered["status"], "running", "{steered:#}");
    p.server().release("steer");
    let start = Instant::now();
    let done = loop {
        let a = p.agent(&id);
        if a["meta"]["turns"] == 1 && a["result"].is_string() {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{a:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["result"], "STEERED", "{done:#}");
    // One turn: the steering input went to the model inside the turn that was in flight.
    let reqs: Vec<String> = p
        .requests()
        .into_iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains("steer me"))
        .collect();
    assert!(
        reqs.iter().any(|b| b.contains("EXTRA-INPUT")),
        "the model never saw the steering input: {reqs:#?}"
    );
    let events = p.events(&id);
    let users: Vec<&str> = events
        .iter()
        .filter(|e| e["payload"]["type"] == "message" && e["payload"]["role"] == "user")
        .map(|e| e["payload"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["steer me", "EXTRA-INPUT"]);
    // With no turn in flight there is nothing to steer.
    let out = p.run(&["steer", &id, "--prompt", "late"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no turn is in flight"), "{err}");

    // Steering any other runtime is a clear error.
    let claude = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--task",
        "chat",
        "--prompt",
        "first turn",
    ]);
    let out = p.run(&["steer", claude["id"].as_str().unwrap(), "--prompt", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot take input into a turn in flight (turn/steer)")
            && err.contains("runs claude"),
        "{err}"
    );
    assert!(server.stop());
}

/// One JSON-RPC request to `fracta mcp` over its stdio; its answer.
fn mcp_call(
    stdin: &mut impl Write,
    out: &mut impl std::io::BufRead,
    id: u64,
    method: &str,
    params: Value,
) -> Value {
    let req = serde_json::json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
    writeln!(stdin, "{req}").unwrap();
    stdin.flush().unwrap();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "fracta mcp closed");
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["id"] == id {
            return v;
        }
    }
}

/// The text of a `tools/call` answer (and that it is no error).
fn tool_ok(v: &Value) -> Value {
    assert_ne!(v["result"]["isError"], true, "{v:#}");
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    serde_json::from_str(text).unwrap()
}

/// The MCP `steer` tool (here on `fracta mcp`'s stdio) adds input to a Codex stream child's
/// turn in flight, as `fracta steer` does. It was a stub that refused (issue 21, item 8).
#[test]
fn mcp_steer_adds_input_to_a_codex_turn_in_flight() {
    let script = Script::parse(
        "rules:\n  - when: { contains: \"EXTRA-INPUT\" }\n    reply: \"STEERED\"\n  - when: { contains: \"steer me\" }\n    reply: { text: \"HELD\", hold: steer }\nfallback: \"fine\"\n",
        "mcp-steer",
    )
    .unwrap();
    let p = Project::new(script);
    let mut child = p
        .command(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let init = serde_json::json!({
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": { "name": "test", "version": "0" }
    });
    mcp_call(&mut stdin, &mut out, 1, "initialize", init);
    writeln!(
        stdin,
        "{}",
        serde_json::json!({ "jsonrpc": "2.0", "method": "notifications/initialized" })
    )
    .unwrap();
    let spawn = serde_json::json!({ "name": "spawn", "arguments": {
        "task": "chat", "prompt": "steer me", "runtime": "codex", "mode": "stream"
    } });
    let agent = tool_ok(&mcp_call(&mut stdin, &mut out, 2, "tools/call", spawn));
    let id = agent["id"].as_str().unwrap().to_string();
    assert!(
        p.rt.block_on(p.server().wait_for_hold("steer", Duration::from_secs(60))),
        "the turn never reached the model"
    );
    let steer = serde_json::json!({ "name": "steer", "arguments": {
        "agent_id": id, "prompt": "EXTRA-INPUT"
    } });
    let steered = tool_ok(&mcp_call(&mut stdin, &mut out, 3, "tools/call", steer));
    assert_eq!(steered["status"], "running", "{steered:#}");
    p.server().release("steer");
    // Bounded, so a broken run fails instead of hanging; not a measure of speed.
    let start = Instant::now();
    let done = loop {
        let a = p.agent(&id);
        if a["meta"]["turns"] == 1 && a["result"].is_string() {
            break a;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{a:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(done["result"], "STEERED", "{done:#}");
    assert!(
        p.requests()
            .iter()
            .map(|r| r.body.to_string())
            .any(|b| b.contains("steer me") && b.contains("EXTRA-INPUT")),
        "the model never saw the steering input in the turn"
    );
    let stop = serde_json::json!({ "name": "stop", "arguments": { "agent_id": id } });
    tool_ok(&mcp_call(&mut stdin, &mut out, 4, "tools/call", stop));
    drop(stdin);
    wait_child(&mut child, Duration::from_secs(60));
}

/// The wall-clock budget is one turn's: a session waiting for its next turn longer than
/// `wall_clock_secs` is not failed for it; its idle timeout closes it (it used to be failed,
/// and its Pod on Kubernetes killed by activeDeadlineSeconds, while still in use).
#[test]
fn a_session_outlives_the_wall_clock_budget_between_turns() {
    let p = Project::new(script());
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(
        p.path().join("fracta.yaml"),
        cfg.replacen(
            "agents:\n",
            "agents:\n  stream_idle_timeout_secs: 10\n  budgets: { wall_clock_secs: 6 }\n",
            1,
        ),
    )
    .unwrap();
    let mut child = p
        .command(&[
            "spawn",
            "--mode",
            "stream",
            "--json",
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
    let stdin = child.stdin.take();
    let status = wait_child(&mut child, Duration::from_secs(120));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded", "{v:#}");
    let events = p.events(v["id"].as_str().unwrap());
    assert!(
        events.iter().any(|e| e["payload"]["status"] == "idle"),
        "closed by its idle timeout: {events:#?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| e.to_string().contains("budget exceeded")),
        "{events:#?}"
    );
}

/// `agents.stream_idle_timeout_secs`: a session with no next turn is closed, recorded with
/// why, and can be resumed later.
#[test]
fn an_idle_session_is_closed_and_resumable() {
    let p = Project::new(script());
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(
        p.path().join("fracta.yaml"),
        cfg.replacen("agents:\n", "agents:\n  stream_idle_timeout_secs: 1\n", 1),
    )
    .unwrap();
    // stdin stays open (no more turns, no end of input): only the idle timeout ends it.
    let mut child = p
        .command(&[
            "spawn",
            "--mode",
            "stream",
            "--json",
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
    let stdin = child.stdin.take();
    let status = wait_child(&mut child, Duration::from_secs(120));
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["result"], "ANSWER-ONE");
    let events = p.events(v["id"].as_str().unwrap());
    let idle = events
        .iter()
        .find(|e| e["payload"]["status"] == "idle")
        .expect("an idle event");
    assert!(
        idle["payload"]["detail"]
            .as_str()
            .unwrap()
            .contains("session closed"),
        "{idle:#}"
    );
    let again = p.json(&[
        "resume",
        v["id"].as_str().unwrap(),
        "--prompt",
        "after the crash",
        "--json",
    ]);
    assert_eq!(again["result"], "RESUMED");
}

/// `fracta attach`: a typed line is the session's next turn and its events show live; the
/// attach ends when the session does (here: stopped from another terminal).
#[test]
fn attach_sends_typed_lines_and_shows_the_session_live() {
    let p = Project::new(script());
    let server = Serve::start(&p);
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--task",
        "chat",
        "--prompt",
        "first turn",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while p.agent(&id)["result"] != "ANSWER-ONE" {
        assert!(start.elapsed() < Duration::from_secs(60), "no first turn");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut attach = p
        .command(&["attach", &id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = attach.stdin.take().unwrap();
    stdin.write_all(b"second turn\n").unwrap();
    stdin.flush().unwrap();
    let start = Instant::now();
    while p.agent(&id)["result"] != "ANSWER-TWO" {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the typed turn was not sent"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let stopped = p.json(&["stop", &id, "--json"]);
    assert_eq!(stopped["status"], "stopped");
    let status = wait_child(&mut attach, Duration::from_secs(30));
    drop(stdin);
    let out = attach.wait_with_output().unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "attach ends with the session's outcome (stopped)"
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains("user: second turn"), "{shown}");
    assert!(shown.contains("assistant: ANSWER-TWO"), "{shown}");
    assert!(server.stop());
}

/// The control plane restarted while a session is idle: the session is closed and recorded as
/// ended (not lost), and resumes under the new control plane.
#[test]
fn a_control_plane_restart_closes_an_idle_session_which_resumes() {
    let p = Project::new(script());
    let server = Serve::start(&p);
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--runtime",
        "codex",
        "--task",
        "chat",
        "--prompt",
        "first turn",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    while p.agent(&id)["result"] != "ANSWER-ONE" {
        assert!(start.elapsed() < Duration::from_secs(60), "no first turn");
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = p.agent(&id)["pid"].as_i64().unwrap();
    assert!(server.stop(), "fracta serve ends cleanly on SIGTERM");
    let ended = p.agent(&id);
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert!(!pid_alive(pid), "the app-server is gone");
    let events = p.events(&id);
    assert!(
        events.iter().any(|e| e["payload"]["status"] == "idle"
            && e["payload"]["detail"]
                .as_str()
                .unwrap_or("")
                .contains("session closed")),
        "{events:#?}"
    );
    let server = Serve::start(&p);
    let again = p.json(&["resume", &id, "--prompt", "after the crash", "--json"]);
    assert_eq!(again["result"], "RESUMED", "{again:#}");
    assert_eq!(again["resume_token"], ended["resume_token"]);
    assert!(server.stop());
}

/// Step monitoring in an OpenCode session: a turn whose model keeps calling tools is aborted
/// (`POST /session/:id/abort`) once it passes `max_steps`, with the reason recorded and the
/// warnings logged; the session goes on and takes its next turn.
#[test]
fn an_opencode_session_turn_past_max_steps_is_aborted_and_the_session_goes_on() {
    let p = Project::with_keys(
        Script::parse(
            "rules:\n  - when: { contains: \"second turn\", has_tools: true }\n    reply: \"ANSWER-TWO\"\n  - when: { contains: \"loop forever\", anywhere: true, has_tools: true }\n    repeat: true\n    reply:\n      tool_calls: [{ name: bash, input: { command: \"git status\", description: \"look\" } }]\nfallback: \"A title\"\n",
            "loop",
        )
        .unwrap(),
        "      max_steps: 6\n",
    );
    let mut child = p
        .command(&[
            "spawn",
            "--mode",
            "stream",
            "--json",
            "--runtime",
            "opencode",
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
    let status = wait_child(&mut child, Duration::from_secs(120));
    let out = child.wait_with_output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        status.success(),
        "{v:#} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = p.events(v["id"].as_str().unwrap());
    let brief: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", e["kind"], e["payload"]))
        .collect();
    assert_eq!(v["result"], "ANSWER-TWO", "{v:#} {brief:#?}");
    assert!(
        events.iter().any(|e| e["kind"] == "error"
            && e["payload"]["message"]
                .as_str()
                .unwrap_or("")
                .contains("more than 6 steps (max_steps)")),
        "{events:#?}"
    );
    let steps = events
        .iter()
        .filter(|e| e["kind"] == "step" && e["payload"]["phase"] == "started")
        .count();
    assert!(
        (8..=11).contains(&steps),
        "the first turn stopped soon after the limit, then one step: {steps} steps"
    );
    let log = std::fs::read_to_string(p.path().join(".fracta/fracta.log")).unwrap();
    assert!(log.contains("opencode has taken 5 steps"), "{log}");
}
