//! `fracta serve`, the control plane, with the real CLIs: the HTTP API and its token, detached
//! spawns, CLI commands that go through a running control plane, the SSE stream, and a
//! control plane killed with SIGKILL mid-tree then started again.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::{Project, Serve, pid_alive, wait_child};

/// A model that answers "hold on" only after a minute (so the agent stays running) and
/// everything else at once.
fn holding_script(extra_rules: &str) -> Script {
    Script::parse(
        &format!(
            "rules:\n{extra_rules}  - when: {{ contains: \"hold on\", has_tools: true }}\n    reply: {{ text: \"late\", delay_ms: 60000 }}\nfallback: \"fine\"\n"
        ),
        "serve",
    )
    .unwrap()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn detached_agents_are_run_listed_followed_and_stopped_by_the_control_plane() {
    let p = Project::new(holding_script(""));
    // Without a control plane, --detach says how to start one.
    let out = p.run(&["spawn", "--detach", "--task", "t", "--prompt", "x"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fracta serve"), "{err}");

    let server = Serve::start(&p);
    let (url, token) = (server.url.clone(), server.token.clone());
    let mode = std::fs::metadata(p.path().join(".fracta/serve.json"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600, "the discovery file holds the admin token");

    // The API wants the admin token; the OpenAPI document and the health check do not.
    let c = http();
    assert_eq!(
        c.get(format!("{url}/v1/agents")).send().unwrap().status(),
        401
    );
    assert_eq!(
        c.get(format!("{url}/v1/agents"))
            .bearer_auth("forged")
            .send()
            .unwrap()
            .status(),
        401
    );
    let doc: Value = c
        .get(format!("{url}/v1/openapi.json"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/v1/agents/{id}/events/stream"].is_object());

    // A detached spawn returns at once; the agent runs under the control plane.
    let v = p.json(&[
        "spawn", "--detach", "--json", "--task", "slow", "--prompt", "hold on",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    wait_until("the agent to run", Duration::from_secs(60), || {
        p.agent(&id)["status"] == "running"
    });
    let listed: Vec<Value> = c
        .get(format!("{url}/v1/agents"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(listed.iter().any(|a| a["id"] == id.as_str()), "{listed:#?}");
    let ps = p.json(&["ps", "--json"]);
    assert!(
        ps.as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == id.as_str())
    );

    // `logs --follow` goes through the SSE stream and ends when the agent ends: stop it.
    let mut follow = p.start(&["logs", &id, "--follow", "--json"]);
    std::thread::sleep(Duration::from_millis(500));
    let stop = p.json(&["stop", &id, "--json"]);
    assert_eq!(stop["status"], "stopped", "{stop:#}");
    let status = wait_child(&mut follow, Duration::from_secs(30));
    assert!(status.success());
    let out = follow.wait_with_output().unwrap();
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let seqs: Vec<u64> = lines.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "in order, none missing"
    );
    assert_eq!(lines[0]["kind"], "message");
    assert!(
        lines.iter().any(|e| e["payload"]["status"] == "stopped"),
        "{lines:#?}"
    );

    // The same events over the API, resuming after a seq.
    let after: Vec<Value> = c
        .get(format!("{url}/v1/agents/{id}/events?after=1"))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(after.len(), lines.len() - 1);
    assert_eq!(
        c.get(format!("{url}/v1/agents/NOSUCHAGENT"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .status(),
        404
    );

    // SIGTERM: the control plane ends and takes its discovery file with it.
    assert!(server.stop());
    assert!(!p.path().join(".fracta/serve.json").exists());
    // And the CLI works on the store again.
    assert_eq!(p.agent(&id)["status"], "stopped");
}

/// SIGKILL the control plane while a parent waits on a child that the model holds open, then
/// start it again: no agent is left queued, starting or running, and no agent process lives on.
#[test]
fn a_control_plane_killed_mid_tree_is_reconciled_on_restart() {
    let spawn_child = "  - when: { contains: \"delegate\", has_tools: true }\n    times: 1\n    reply:\n      tool_calls: [{ name: mcp__fracta__spawn, input: { task: child, prompt: \"hold on\", runtime: claude, wait: true } }]\n";
    let p = Project::new(holding_script(spawn_child));
    let server = Serve::start(&p);
    let v = p.json(&[
        "spawn", "--detach", "--json", "--task", "boss", "--prompt", "delegate",
    ]);
    let parent = v["id"].as_str().unwrap().to_string();
    let mut pids = vec![];
    wait_until("parent and child to run", Duration::from_secs(90), || {
        let all = p.json(&["ps", "--all", "--json"]);
        let running: Vec<&Value> = all
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["status"] == "running")
            .collect();
        running.len() == 2
    });
    for a in p.json(&["ps", "--all", "--json"]).as_array().unwrap() {
        let full = p.agent(a["id"].as_str().unwrap());
        pids.push(full["pid"].as_i64().unwrap());
    }
    assert!(pids.iter().all(|&pid| pid_alive(pid)));

    server.kill();
    // The discovery file is left behind by a killed control plane; the CLI sees through it.
    assert!(p.path().join(".fracta/serve.json").exists());

    let server = Serve::start(&p);
    let agents = p.json(&["ps", "--all", "--json"]);
    let agents = agents.as_array().unwrap();
    assert_eq!(agents.len(), 2, "{agents:#?}");
    for a in agents {
        assert_eq!(a["status"], "lost", "{a:#}");
        assert!(
            a["error"].as_str().unwrap_or("").contains("is gone"),
            "the record says why: {a:#}"
        );
    }
    assert!(agents.iter().any(|a| a["id"] == parent.as_str()));
    wait_until("the orphaned CLIs to end", Duration::from_secs(15), || {
        pids.iter().all(|&pid| !pid_alive(pid))
    });
    assert!(server.stop());
}

/// One control plane per project: a second `serve` fails at once naming the first, and
/// leaves its discovery file alone (the first stays reachable, and removes it on exit).
#[test]
fn a_second_control_plane_in_the_project_is_refused() {
    let p = Project::new(holding_script(""));
    let first = Serve::start(&p);
    let file = p.path().join(".fracta/serve.json");
    let before = std::fs::read_to_string(&file).unwrap();
    let info: Value = serde_json::from_str(&before).unwrap();
    let pid = info["pid"].as_u64().unwrap();

    let mut second = p.start(&["serve"]);
    let status = wait_child(&mut second, Duration::from_secs(30));
    let out = second.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("already running")
            && err.contains(&format!("pid {pid}"))
            && err.contains(&first.url),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // The first is still the project's control plane.
    let out = p.run(&["ps", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(pid_alive(pid as i64));
    assert!(first.stop());
    assert!(
        !file.exists(),
        "the first control plane removes its file on exit"
    );
}

/// A real Claude agent run through `fracta serve` shows on its `/metrics`, read back with
/// Prometheus' OpenMetrics parser (Python `prometheus_client`): the agent by runtime and
/// status, its spawn, its turn and the tokens the model server reported, and the API calls
/// that made it.
#[test]
fn a_real_agent_run_shows_on_the_control_planes_metrics() {
    let p = Project::new(holding_script(""));
    let server = Serve::start(&p);
    let v = p.json(&[
        "spawn", "--detach", "--json", "--task", "t", "--prompt", "say fine",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    p.wait_for_agent(&id, "succeeded", Duration::from_secs(120));
    let res = http()
        .get(format!("{}/metrics", server.url))
        .send()
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().unwrap();
    assert!(!text.contains(&id), "no series per agent:\n{text}");
    const SCRIPT: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    let mut child = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected /metrics (pip install -r scripts/requirements-ci.txt installs it): {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)> =
        serde_json::from_slice(&out.stdout).unwrap();
    let get = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    assert_eq!(
        get(
            "fracta_agents",
            &[("runtime", "claude"), ("status", "succeeded")]
        ),
        1.0
    );
    assert_eq!(
        get(
            "fracta_spawns_total",
            &[("runtime", "claude"), ("mode", "batch")]
        ),
        1.0
    );
    assert_eq!(get("fracta_turns_total", &[("runtime", "claude")]), 1.0);
    assert!(
        get(
            "fracta_tokens_total",
            &[("runtime", "claude"), ("kind", "input")]
        ) > 0.0
    );
    assert!(
        get(
            "fracta_tokens_total",
            &[("runtime", "claude"), ("kind", "output")]
        ) > 0.0
    );
    assert_eq!(get("fracta_queue_length", &[]), 0.0);
    assert!(
        get(
            "fracta_api_request_duration_seconds_count",
            &[
                ("method", "POST"),
                ("route", "/v1/agents"),
                ("status", "201")
            ]
        ) >= 1.0
    );
    assert!(server.stop());
}

fn wait_for_text(buf: &std::sync::Arc<std::sync::Mutex<String>>, needle: &str) -> String {
    let start = Instant::now();
    loop {
        let text = buf.lock().unwrap().clone();
        if text.contains(needle) {
            return text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "serve never printed {needle:?}:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `fracta serve` says on stderr when each agent starts and ends (id, runtime, task, status,
/// why); it takes a changed valid fracta.yaml for new spawns, and keeps its config when the
/// file becomes invalid, naming the file, line and column.
#[test]
fn serve_logs_agents_and_reloads_a_valid_config_but_keeps_its_own_over_an_invalid_one() {
    let p = Project::new(holding_script(""));
    let mut serve = Serve::start(&p);
    let log = serve.stderr();
    let spawn = |runtime: &str, prompt: &str| {
        p.run(&[
            "spawn",
            "--detach",
            "--json",
            "--runtime",
            runtime,
            "--task",
            "chore",
            "--prompt",
            prompt,
        ])
    };
    let out = spawn("claude", "say fine");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = wait_for_text(
        &log,
        &format!("agent {id} (claude, task chore) ended succeeded"),
    );
    assert!(
        text.contains(&format!("agent {id} (claude, task chore) started (pid ")),
        "{text}"
    );
    // A failure says why.
    std::fs::write(
        p.path().join("fracta.yaml"),
        std::fs::read_to_string(p.path().join("fracta.yaml"))
            .unwrap()
            .replacen("    claude:\n      adapter: claude\n", "    claude:\n      adapter: claude\n      command: /nonexistent/claude\n", 1)
            .replacen("  agent_runtimes:\n", "  agent_runtimes:\n    second:\n      adapter: claude\n      command: /nonexistent/claude\n", 1),
    )
    .unwrap();
    // Reloaded: the new runtime is accepted (once the change is seen).
    wait_for_text(&log, "fracta.yaml changed: reloaded");
    let out = spawn("second", "say fine");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let text = wait_for_text(
        &log,
        &format!("agent {second} (second, task chore) ended failed"),
    );
    assert!(text.contains("/nonexistent/claude"), "the reason: {text}");

    // An invalid change: said, with where; the config in use stays (`second` still works).
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(
        p.path().join("fracta.yaml"),
        cfg.replacen("adapter: codex", "adapter: codx", 1),
    )
    .unwrap();
    let text = wait_for_text(&log, "is not valid: still using the config loaded before");
    let line = cfg
        .lines()
        .position(|l| l.contains("adapter: codex"))
        .unwrap()
        + 1;
    assert!(
        text.contains(&format!("fracta.yaml:{line}:16")) && text.contains("codx"),
        "{text}"
    );
    // The CLI itself refuses the invalid file; the control plane's API still takes a spawn
    // on the config it kept.
    let r = http()
        .post(format!("{}/v1/agents", serve.url))
        .bearer_auth(&serve.token)
        .json(&serde_json::json!({ "task": "chore", "prompt": "say fine", "runtime": "second" }))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let third = r.json::<Value>().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    wait_for_text(
        &log,
        &format!("agent {third} (second, task chore) ended failed"),
    );
    assert!(serve.stop());
}

/// Ctrl-C on `fracta serve` (SIGINT to its process group, as a terminal sends it) closes an
/// idle stream session as "session closed", resumable, as the README says: not
/// "stopped (interrupted)".
#[test]
fn ctrl_c_on_serve_closes_an_idle_codex_session_resumable() {
    ctrl_c_on_serve_closes_an_idle_session("codex");
}

#[test]
fn ctrl_c_on_serve_closes_an_idle_claude_session_resumable() {
    ctrl_c_on_serve_closes_an_idle_session("claude");
}

fn ctrl_c_on_serve_closes_an_idle_session(rt: &str) {
    let p = Project::new(Script::parse(
        "rules:\n  - when: { contains: \"first turn\", has_tools: true }\n    reply: \"ANSWER-ONE\"\n  - when: { contains: \"after ctrl-c\", anywhere: true, has_tools: true }\n    reply: \"RESUMED\"\nfallback: \"fine\"\n",
        "ctrlc",
    )
    .unwrap());
    let mut serve = Serve::start_as_job(&p);
    let log = serve.stderr();
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--runtime",
        rt,
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
    assert!(serve.interrupt(), "fracta serve ends cleanly on Ctrl-C");
    let ended = p.agent(&id);
    assert_eq!(ended["status"], "succeeded", "{ended:#}");
    assert!(ended["error"].is_null(), "{ended:#}");
    assert!(!pid_alive(pid), "the {rt} session's process is gone");
    let events = p.events(&id);
    let text = serde_json::to_string(&events).unwrap();
    assert!(
        text.contains("fracta is shutting down: session closed; resume it later"),
        "{text}"
    );
    assert!(!text.contains("interrupted"), "{text}");
    // Said before serve exited; read by the log's own thread, which may not have got to it.
    wait_for_text(
        &log,
        &format!("agent {id} ({rt}, task chat) ended succeeded"),
    );
    // Resumable.
    let serve = Serve::start(&p);
    let again = p.json(&["resume", &id, "--prompt", "after ctrl-c", "--json"]);
    assert_eq!(again["result"], "RESUMED", "{again:#}");
    assert!(serve.stop());
}
