//! Batch mode against the real agent CLIs (claude, codex, opencode), driven offline by the
//! scripted model server: success, a tool that writes a file, resume, stop, a crashing CLI,
//! the model answering 500, a missing CLI, and Fracta itself killed mid-run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::{Project, pid_alive, wait_child};

/// The tool call that writes `hello.txt` containing `hi`, as each CLI names it.
fn write_tool(rt: &str) -> &'static str {
    match rt {
        "claude" => r#"{ name: Write, input: { file_path: "hello.txt", content: "hi" } }"#,
        "codex" => r#"{ name: exec_command, input: { cmd: "printf hi > hello.txt" } }"#,
        "opencode" => r#"{ name: write, input: { filePath: "hello.txt", content: "hi" } }"#,
        _ => unreachable!(),
    }
}

fn script(yaml: &str) -> Script {
    Script::parse(yaml, "test").unwrap()
}

/// Requests that carry tools: the agent's own turns (OpenCode also asks for a title).
fn turns(p: &Project) -> Vec<Value> {
    p.requests()
        .into_iter()
        .filter(|r| {
            r.body
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty())
        })
        .map(|r| r.body)
        .collect()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_string())
        .collect()
}

fn success(rt: &str) {
    let p = Project::new(script(&format!(
        "rules:\n  - when: {{ contains: \"say hello {rt}\", has_tools: true }}\n    reply: \"Hello from the scripted model ({rt}).\"\nfallback: \"A title\"\n"
    )));
    let (code, v) = p.spawn_json(&[
        "--task",
        "greet",
        "--runtime",
        rt,
        "--prompt",
        &format!("say hello {rt}"),
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["status"], "succeeded");
    assert_eq!(v["runtime"], rt);
    assert_eq!(v["adapter"], rt);
    assert_eq!(v["mode"], "batch");
    assert_eq!(
        v["result"],
        format!("Hello from the scripted model ({rt}).")
    );
    assert!(
        v["resume_token"].as_str().is_some_and(|t| !t.is_empty()),
        "{v:#}"
    );
    // It changed nothing: its branch is gone, and its record says which it was.
    assert!(v["branch"].is_null(), "{v:#}");
    let rec = p.agent(v["id"].as_str().unwrap());
    assert!(
        rec["meta"]["unchanged_branch"]
            .as_str()
            .unwrap()
            .starts_with("fracta/greet-"),
        "{rec:#}"
    );
    assert_eq!(v["exit_code"], 0);
    assert!(v["usage"]["input_tokens"].as_u64().unwrap() > 0, "{v:#}");
    // Every event persisted, in order, with the raw line beside it.
    let events = p.events(v["id"].as_str().unwrap());
    let k = kinds(&events);
    assert!(
        k.contains(&"session".to_string())
            && k.contains(&"message".to_string())
            && k.contains(&"usage".to_string()),
        "{k:?}"
    );
    assert_eq!(k.last().unwrap(), "status");
    // The prompt first (written once the CLI was started), then the CLI's own.
    assert_eq!(events[0]["payload"]["type"], "message", "{events:#?}");
    assert_eq!(events[0]["payload"]["role"], "user");
    assert_eq!(k[1], "status", "running, then the CLI's events: {k:?}");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
    assert!(
        events
            .iter()
            .any(|e| e["raw"].is_string() && e["parsed"] == true)
    );
    assert!(
        events.iter().all(|e| e["kind"] != "unknown"),
        "a real CLI line was not understood: {events:#?}"
    );
    // The model received the task.
    assert!(
        turns(&p)
            .iter()
            .any(|b| b.to_string().contains(&format!("say hello {rt}")))
    );
    // One turn, one model request: nothing on the side (OpenCode asks the model for a
    // session title unless it is given one).
    let asked = p.asked();
    assert_eq!(asked.len(), 1, "{asked:#?}");
}

fn tool_write(rt: &str) {
    let p = Project::new(script(&format!(
        "rules:\n  - when: {{ contains: \"write the file {rt}\", has_tools: true }}\n    reply:\n      tool_calls: [{}]\nfallback: \"Wrote hello.txt.\"\n",
        write_tool(rt)
    )));
    let (code, v) = p.spawn_json(&[
        "--task",
        "write",
        "--runtime",
        rt,
        "--prompt",
        &format!("write the file {rt}"),
    ]);
    assert_eq!(code, 0, "{v:#}");
    let ws = std::path::Path::new(v["workspace"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(ws.join("hello.txt")).unwrap(), "hi");
    // On the agent's branch, without the runtime config Fracta wrote.
    let branch = v["branch"].as_str().unwrap();
    assert_eq!(p.show_file(branch, "hello.txt").as_deref(), Some("hi"));
    for f in [
        ".claude/settings.json",
        ".codex/config.toml",
        "opencode.json",
    ] {
        assert!(
            p.show_file(branch, f).is_none(),
            "{f} was committed to {branch}"
        );
    }
    let events = p.events(v["id"].as_str().unwrap());
    let k = kinds(&events);
    assert!(
        k.contains(&"tool_call".to_string()) && k.contains(&"tool_result".to_string()),
        "{k:?}"
    );
}

/// Codex from npm is a Node shim (`bin/codex.js`) in front of a native binary; Fracta starts
/// the binary itself (starting Node costs 80–120 ms a run), with the env the shim gives it. A
/// `node` first on PATH that fails any run it starts shows the shim was not started; what the
/// agent's shell sees shows the shim's env reached the binary.
#[test]
fn codex_starts_its_native_binary_not_its_node_shim() {
    use std::os::unix::fs::PermissionsExt;
    let p = Project::new(script(
        r#"rules:
  - when: { contains: "show the shim env", has_tools: true }
    reply:
      tool_calls: [{ name: exec_command, input: { cmd: "printf '%s|%s|%s' \"$CODEX_MANAGED_BY_NPM\" \"$CODEX_MANAGED_BY_PNPM\" \"$CODEX_MANAGED_PACKAGE_ROOT\" > managed.txt" } }]
fallback: "Shown."
"#,
    ));
    let tripwire = p.path().join("home/tripwire");
    std::fs::create_dir_all(&tripwire).unwrap();
    let node = tripwire.join("node");
    std::fs::write(&node, "#!/bin/sh\necho 'node was started' >&2\nexit 97\n").unwrap();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        tripwire.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = p
        .command(&[
            "spawn",
            "--json",
            "--task",
            "shim",
            "--runtime",
            "codex",
            "--prompt",
            "show the shim env",
        ])
        .env("PATH", path)
        .env("CODEX_MANAGED_BY_PNPM", "1")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["result"], "Shown.", "{v:#}");
    let ws = std::path::Path::new(v["workspace"].as_str().unwrap());
    let shown = std::fs::read_to_string(ws.join("managed.txt")).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../node_modules/@openai/codex")
        .canonicalize()
        .unwrap();
    // As the shim does, the other package managers' markers are taken away.
    assert_eq!(shown, format!("1||{}", root.display()));
    let log = std::fs::read_to_string(p.path().join(".fracta/fracta.log")).unwrap();
    assert!(
        log.contains("starting the CLI's native binary, not its npm shim"),
        "{log}"
    );
}

fn resume(rt: &str) {
    let p = Project::new(script(&format!(
        "rules:\n  - when: {{ contains: \"first turn {rt}\", has_tools: true }}\n    reply: \"FIRST-ANSWER-{rt}\"\n  - when: {{ contains: \"second turn {rt}\", has_tools: true }}\n    reply: \"SECOND-ANSWER-{rt}\"\nfallback: \"A title\"\n"
    )));
    let (code, v) = p.spawn_json(&[
        "--task",
        "chat",
        "--runtime",
        rt,
        "--prompt",
        &format!("first turn {rt}"),
    ]);
    assert_eq!(code, 0, "{v:#}");
    let id = v["id"].as_str().unwrap().to_string();
    let out = p.run(&[
        "resume",
        &id,
        "--prompt",
        &format!("second turn {rt}"),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["id"], id);
    assert_eq!(r["status"], "succeeded");
    assert_eq!(r["result"], format!("SECOND-ANSWER-{rt}"));
    assert_eq!(r["workspace"], v["workspace"]);
    assert_eq!(
        r["resume_token"], v["resume_token"],
        "the conversation changed identity"
    );
    // The model saw the first turn in the second request.
    let last = turns(&p).last().unwrap().to_string();
    assert!(last.contains(&format!("second turn {rt}")), "{last}");
    assert!(
        last.contains(&format!("first turn {rt}")) && last.contains(&format!("FIRST-ANSWER-{rt}")),
        "the resumed turn lost the first one"
    );
    // Usage is per turn, and totals add up.
    let a = p.agent(&id);
    assert!(
        a["usage"]["input_tokens"].as_u64().unwrap()
            >= v["usage"]["input_tokens"].as_u64().unwrap()
    );
}

/// A reply the model holds back for a minute, so the CLI is mid-turn.
fn slow_script(rt: &str) -> Script {
    script(&format!(
        "rules:\n  - when: {{ contains: \"take your time {rt}\", has_tools: true }}\n    repeat: true\n    reply: {{ text: \"late\", delay_ms: 60000 }}\nfallback: \"A title\"\n"
    ))
}

/// Start a slow spawn in the background and wait until the model has the CLI's request.
fn start_slow(p: &Project, rt: &str) -> (std::process::Child, Value) {
    let child = p.start(&[
        "spawn",
        "--json",
        "--task",
        "slow",
        "--runtime",
        rt,
        "--prompt",
        &format!("take your time {rt}"),
    ]);
    let agent = p.wait_for_status("running", Duration::from_secs(60));
    let start = std::time::Instant::now();
    while turns(p).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the CLI never called the model"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let full = p.agent(agent["id"].as_str().unwrap());
    (child, full)
}

fn stop(rt: &str) {
    let p = Project::new(slow_script(rt));
    let (mut child, a) = start_slow(&p, rt);
    let pid = a["pid"].as_i64().unwrap();
    assert!(pid_alive(pid));
    let t = std::time::Instant::now();
    let out = p.run(&["stop", a["id"].as_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wait_child(&mut child, Duration::from_secs(20));
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "stop took {:?}",
        t.elapsed()
    );
    assert_eq!(status.code(), Some(3), "a stopped agent's spawn exits 3");
    assert!(!pid_alive(pid), "the CLI survived the stop");
    let after = p.agent(a["id"].as_str().unwrap());
    assert_eq!(after["status"], "stopped", "{after:#}");
    assert!(
        p.json(&["ps", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x["status"] != "running")
    );
}

fn crash(rt: &str) {
    let p = Project::new(slow_script(rt));
    let (mut child, a) = start_slow(&p, rt);
    let pid = a["pid"].as_i64().unwrap();
    // The CLI dies under Fracta.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(1));
    let after = p.agent(a["id"].as_str().unwrap());
    assert_eq!(after["status"], "failed", "{after:#}");
    let err = after["error"].as_str().unwrap();
    assert!(err.contains("signal 9"), "{err}");
    // OpenCode prints its session id only with its first event, after the model answers; a
    // crash before that leaves no conversation to resume.
    if rt != "opencode" {
        assert!(
            after["resume_token"].is_string(),
            "a crashed agent stays resumable: {after:#}"
        );
    }
}

fn http500(rt: &str) {
    let p = Project::new(script(
        "rules:\n  - repeat: true\n    reply: { error: { status: 500, message: \"scripted outage\", should_retry: false, retry_after_ms: 0 } }\n",
    ));
    let t = std::time::Instant::now();
    let (code, v) = p.spawn_json(&[
        "--task",
        "doomed",
        "--runtime",
        rt,
        "--prompt",
        "this will fail",
    ]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["status"], "failed");
    assert_ne!(v["exit_code"], 0);
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("runtime error"),
        "the runtime's own error is recorded: {err}"
    );
    // Claude's every-run warning about an untrusted workspace does not bury the cause.
    assert!(
        !err.contains("not been trusted"),
        "noise in the error: {err}"
    );
    let events = p.events(v["id"].as_str().unwrap());
    assert!(kinds(&events).contains(&"error".to_string()));
    eprintln!(
        "{rt}: failed after {:?} and {} model requests",
        t.elapsed(),
        p.requests().len()
    );
}

fn missing_cli(rt: &str) {
    let p = Project::new(script("fallback: unused\n"));
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    let cfg = cfg.replace(
        &format!("    {rt}:\n      adapter: {rt}\n"),
        &format!("    {rt}:\n      adapter: {rt}\n      command: not-installed-{rt}\n"),
    );
    std::fs::write(p.path().join("fracta.yaml"), cfg).unwrap();
    let (code, v) = p.spawn_json(&["--task", "nope", "--runtime", rt, "--prompt", "hi"]);
    assert_eq!(code, 1);
    assert_eq!(v["status"], "failed");
    // It failed before anything ran: never started, no model request made.
    assert_eq!(v["started_at"], Value::Null, "{v:#}");
    assert!(p.requests().is_empty());
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains(&format!("not-installed-{rt}"))
            && err.contains("not installed")
            && err.contains("npm"),
        "{err}"
    );
    assert!(p.requests().is_empty());
    // Its prompt is still its first event (written before a CLI that starts is started, and
    // before the failure of one that cannot), then why it failed.
    let events = p.events(v["id"].as_str().unwrap());
    assert_eq!(events[0]["payload"]["type"], "message", "{events:#?}");
    assert_eq!(events[0]["payload"]["role"], "user");
    assert_eq!(events[0]["payload"]["text"], "hi");
    assert!(
        kinds(&events[1..]).contains(&"error".to_string()),
        "{events:#?}"
    );
}

/// Fracta itself killed: the agent is found and marked, its CLI stopped (no ghost runs).
fn fracta_killed(rt: &str) {
    let p = Project::new(slow_script(rt));
    let (mut child, a) = start_slow(&p, rt);
    let cli_pid = a["pid"].as_i64().unwrap();
    child.kill().unwrap(); // SIGKILL to the fracta process
    let _ = child.wait();
    let list = p.json(&["ps", "--json"]);
    let me = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["id"] == a["id"])
        .unwrap();
    assert_eq!(me["status"], "lost", "{me:#}");
    assert!(me["error"].as_str().unwrap().contains("lost"));
    let start = std::time::Instant::now();
    while pid_alive(cli_pid) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the orphaned CLI is still running"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A prompt that looks like an option is the user's text: it reaches the model as the task,
/// and the CLI neither prints its help nor takes the next option as the option's value.
fn prompt_like_an_option(rt: &str) {
    let p = Project::new(script(
        "rules:\n  - when: { contains: \"--help\", has_tools: true }\n    repeat: true\n    reply: \"ANSWERED-HELP\"\n  - when: { contains: \"--system-prompt\", has_tools: true }\n    reply: \"ANSWERED-SYSTEM-PROMPT\"\nfallback: \"A title\"\n",
    ));
    let mut last = String::new();
    for (prompt, answer) in [
        ("--help", "ANSWERED-HELP"),
        ("--system-prompt", "ANSWERED-SYSTEM-PROMPT"),
    ] {
        let (code, v) = p.spawn_json(&[
            "--task",
            "opt",
            "--runtime",
            rt,
            &format!("--prompt={prompt}"),
        ]);
        assert_eq!(code, 0, "{prompt}: {v:#}");
        assert_eq!(v["status"], "succeeded", "{prompt}: {v:#}");
        assert_eq!(v["result"], answer, "{prompt}: {v:#}");
        // The model was asked with the prompt as the user's own text.
        assert!(
            turns(&p).iter().any(|b| {
                fracta_model_server::last_user_text(b)
                    .is_some_and(|t| t.contains(prompt) && !t.contains("--output-format"))
            }),
            "{prompt} never reached the model as the user's text"
        );
        last = v["id"].as_str().unwrap().to_string();
    }
    // A resumed run too (Codex: `exec resume -- THREAD PROMPT`).
    let out = p.run(&["resume", &last, "--prompt=--help", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["status"], "succeeded", "{r:#}");
    assert_eq!(r["result"], "ANSWERED-HELP", "{r:#}");
}

/// A CLI that exits 0 without a word (`command: /bin/true`) did not complete a run: batch or
/// stream, the agent fails saying the runtime's completion event never came.
fn exit_0_without_completion(rt: &str) {
    let p = Project::new(script("fallback: unused\n"));
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    let cfg = cfg.replace(
        &format!("    {rt}:\n      adapter: {rt}\n"),
        &format!("    {rt}:\n      adapter: {rt}\n      command: /bin/true\n"),
    );
    std::fs::write(p.path().join("fracta.yaml"), cfg).unwrap();
    for mode in ["batch", "stream"] {
        let (code, v) = p.spawn_json(&[
            "--task",
            "silent",
            "--runtime",
            rt,
            "--mode",
            mode,
            "--prompt",
            "hi",
        ]);
        assert_eq!(code, 1, "{mode}: {v:#}");
        assert_eq!(v["status"], "failed", "{mode}: {v:#}");
        assert_eq!(v["mode"], mode);
        let err = v["error"].as_str().unwrap();
        assert!(
            err.contains("the CLI exited 0 without its completion event (no result)"),
            "{mode}: {err}"
        );
    }
    assert!(p.requests().is_empty());
}

/// The terminal of a foreground spawn closed (SIGHUP): Fracta stops the agent as for SIGTERM,
/// records why, takes the CLI's whole process group down, and exits.
fn sighup(rt: &str) {
    let p = Project::new(slow_script(rt));
    let (mut child, a) = start_slow(&p, rt);
    let cli_pid = a["pid"].as_i64().unwrap();
    assert!(pid_alive(cli_pid));
    let group = nix::unistd::Pid::from_raw(cli_pid as i32);
    assert!(
        nix::sys::signal::killpg(group, None).is_ok(),
        "the CLI leads its own process group"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(30));
    assert_ne!(status.code(), Some(0), "{status:?}");
    let after = p.agent(a["id"].as_str().unwrap());
    assert_eq!(after["status"], "stopped", "{after:#}");
    assert!(
        after["error"]
            .as_str()
            .is_some_and(|e| e.contains("fracta received SIGHUP")),
        "{after:#}"
    );
    // The CLI's process group is gone, not left working unsupervised.
    let start = std::time::Instant::now();
    while nix::sys::signal::killpg(group, None).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the CLI's process group survived SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The wall-clock budget ends a run that overstays it (batch or stream; the model holds its
/// reply) as a failure that names the budget, never as a success or a bare exit code.
fn wall_clock_budget(rt: &str) {
    let p = Project::new(slow_script(rt));
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    let cfg = cfg.replacen(
        "agents:\n",
        "agents:\n  budgets: { wall_clock_secs: 2 }\n",
        1,
    );
    std::fs::write(p.path().join("fracta.yaml"), cfg).unwrap();
    for mode in ["batch", "stream"] {
        let (code, v) = p.spawn_json(&[
            "--task",
            "slow",
            "--runtime",
            rt,
            "--mode",
            mode,
            "--prompt",
            &format!("take your time {rt}"),
        ]);
        assert_eq!(code, 1, "{mode}: {v:#}");
        assert_eq!(v["status"], "failed", "{mode}: {v:#}");
        let err = v["error"].as_str().unwrap();
        assert!(
            err.contains("budget exceeded: wall_clock_secs"),
            "{mode}: {err}"
        );
    }
}

macro_rules! per_runtime {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[test]
                fn claude() {
                    super::$scenario("claude")
                }
                #[test]
                fn codex() {
                    super::$scenario("codex")
                }
                #[test]
                fn opencode() {
                    super::$scenario("opencode")
                }
            }
        )*
    };
}

per_runtime!(
    success,
    tool_write,
    resume,
    stop,
    crash,
    http500,
    missing_cli,
    fracta_killed,
    prompt_like_an_option,
    exit_0_without_completion,
    sighup,
    wall_clock_budget
);

/// OpenCode safety: a model that keeps calling tools is stopped once OpenCode passes the
/// runtime's `max_steps`; the agent fails saying so, with a warning at each fifth step.
#[test]
fn opencode_past_max_steps_is_aborted() {
    let p = Project::with_keys(
        script(
            "rules:\n  - when: { contains: \"loop forever\", anywhere: true, has_tools: true }\n    repeat: true\n    reply:\n      tool_calls: [{ name: bash, input: { command: \"git status\", description: \"look\" } }]\nfallback: \"A title\"\n",
        ),
        "      max_steps: 6\n",
    );
    let (code, v) = p.spawn_json(&[
        "--task",
        "loop",
        "--runtime",
        "opencode",
        "--prompt",
        "loop forever",
    ]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["status"], "failed");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("more than 6 steps (max_steps)"), "{err}");
    let events = p.events(v["id"].as_str().unwrap());
    let steps = events
        .iter()
        .filter(|e| e["kind"] == "step" && e["payload"]["phase"] == "started")
        .count();
    assert!(
        (7..=9).contains(&steps),
        "stopped soon after the limit: {steps} steps"
    );
    let log = std::fs::read_to_string(p.path().join(".fracta/fracta.log")).unwrap();
    assert!(log.contains("opencode has taken 5 steps"), "{log}");
}

/// OpenCode's model stream that drops mid-answer, again and again: whatever ends the run (its
/// own retries giving up, or the step limit), the error names the disconnect, not only a step
/// count.
#[test]
fn opencode_mid_stream_disconnect_is_named() {
    let p = Project::with_keys(
        script(
            "fallback: { text: \"a fairly long answer that never arrives whole\", drop_connection: true }\n",
        ),
        "      max_steps: 3\n",
    );
    let (code, v) = p.spawn_json(&[
        "--task",
        "drop",
        "--runtime",
        "opencode",
        "--prompt",
        "hello",
    ]);
    assert_eq!(code, 1, "{v:#}");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("restarted a step that never finished")
            && err.contains("the model's answer broke off"),
        "the step limit alone hides the cause: {err}"
    );
}
