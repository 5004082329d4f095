//! Agents spawn agents through Fracta's MCP gateway, against the real CLIs: each runtime as
//! parent with a child on another runtime, budgets, tokens, and tree stop.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::{Project, pid_alive, wait_child};

/// The parent's tool call of Fracta's `spawn`, as each CLI names it.
fn spawn_call(parent: &str, child_runtime: &str, wait: bool) -> String {
    let input = format!(
        "{{ task: child-task, prompt: \"child work for {child_runtime}\", runtime: {child_runtime}, wait: {wait} }}"
    );
    match parent {
        "claude" => format!("{{ name: mcp__fracta__spawn, input: {input} }}"),
        "codex" => format!("{{ name: spawn, namespace: mcp__fracta, input: {input} }}"),
        "opencode" => format!("{{ name: fracta_spawn, input: {input} }}"),
        _ => unreachable!(),
    }
}

fn tree_script(parent: &str, child: &str) -> Script {
    Script::parse(
        &format!(
            r#"rules:
  - name: parent-delegates
    when: {{ contains: "delegate to {child}", has_tools: true }}
    reply:
      tool_calls: [{call}]
  - name: child-answers
    when: {{ contains: "child work for {child}", has_tools: true }}
    reply: "CHILD-RESULT-FROM-{child}"
  - name: parent-concludes
    when: {{ contains: "CHILD-RESULT-FROM-{child}", has_tools: true }}
    reply: "The {child} child answered: CHILD-RESULT-FROM-{child}"
fallback: "A title"
"#,
            call = spawn_call(parent, child, true)
        ),
        "tree",
    )
    .unwrap()
}

fn agents(p: &Project) -> Vec<Value> {
    p.json(&["ps", "--all", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

fn parent_spawns_child(parent: &str, child: &str) {
    let p = Project::new(tree_script(parent, child));
    let (code, v) = p.spawn_json(&[
        "--task",
        "boss",
        "--runtime",
        parent,
        "--prompt",
        &format!("delegate to {child}"),
    ]);
    assert_eq!(code, 0, "{v:#}\n{:#?}", p.events(v["id"].as_str().unwrap()));
    assert_eq!(
        v["result"],
        format!("The {child} child answered: CHILD-RESULT-FROM-{child}")
    );
    let all = agents(&p);
    assert_eq!(all.len(), 2, "{all:#?}");
    let kid = all.iter().find(|a| a["id"] != v["id"]).unwrap();
    let kid = p.agent(kid["id"].as_str().unwrap());
    assert_eq!(kid["parent_id"], v["id"]);
    assert_eq!(kid["runtime"], child);
    assert_eq!(kid["status"], "succeeded", "{kid:#}");
    assert_eq!(kid["result"], format!("CHILD-RESULT-FROM-{child}"));
    assert_eq!(kid["depth"], 1);
    // The child's worktree branched from its parent's branch: a tree builds on its own work.
    assert_eq!(kid["meta"]["base"], v["branch"], "{kid:#}");
    // The parent saw the child's id and result in the tool result.
    let events = p.events(v["id"].as_str().unwrap());
    let tool_result = events
        .iter()
        .find(|e| e["kind"] == "tool_result")
        .unwrap()
        .to_string();
    assert!(
        tool_result.contains(kid["id"].as_str().unwrap()),
        "{tool_result}"
    );
    // The tree shows the child under its parent.
    let out = p.run(&["ps", "--all"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let kid_id = kid["id"].as_str().unwrap();
    assert!(
        text.contains(&format!("\n  {}", &kid_id[kid_id.len() - 6..])),
        "{text}"
    );
    let model_requests = p.requests();
    assert!(!model_requests.is_empty());
    // The parent's first model request already offers Fracta's tools: the CLI waited for the
    // gateway at start-up (Claude's `alwaysLoad`). Claude and OpenCode list them as tools;
    // Codex names its MCP servers as deferred tool namespaces in the instructions.
    let first = model_requests
        .iter()
        .find(|r| r.rule.as_deref() == Some("parent-delegates"))
        .unwrap();
    let (tools, spawn_tool) = match parent {
        "claude" => (first.body["tools"].to_string(), "\"mcp__fracta__spawn\""),
        "codex" => (first.body["input"].to_string(), "- mcp__fracta: "),
        _ => (first.body["tools"].to_string(), "\"fracta_spawn\""),
    };
    assert!(
        tools.contains(spawn_tool),
        "{parent}'s first request lacks {spawn_tool}: {tools}"
    );
    // No token in any output or in the store.
    // The database and its write-ahead log, if one is left.
    let mut db = std::fs::read(p.path().join(".fracta/state.db")).unwrap();
    db.extend(std::fs::read(p.path().join(".fracta/state.db-wal")).unwrap_or_default());
    for e in &events {
        assert!(
            !e.to_string().to_lowercase().contains("bearer "),
            "a token reached an event: {e}"
        );
    }
    assert!(!String::from_utf8_lossy(&db).contains("FRACTA_AGENT_TOKEN="));
}

#[test]
fn claude_parent_spawns_a_codex_child() {
    parent_spawns_child("claude", "codex");
}

#[test]
fn codex_parent_spawns_an_opencode_child() {
    parent_spawns_child("codex", "opencode");
}

#[test]
fn opencode_parent_spawns_a_claude_child() {
    parent_spawns_child("opencode", "claude");
}

#[test]
fn a_spawn_over_budget_is_a_tool_error_naming_the_budget() {
    // Two spawn calls in one turn against `max_children: 1`: the first child starts, the
    // second call is refused, naming the budget (even though a model's calls may run at once).
    let call = |n: u32| {
        format!(
            "{{ name: mcp__fracta__spawn, input: {{ task: child-task, prompt: \"child work {n}\", runtime: claude }} }}"
        )
    };
    let p = Project::new(
        Script::parse(
            &format!(
                "rules:\n  - when: {{ contains: \"delegate twice\", has_tools: true }}\n    times: 1\n    reply:\n      tool_calls: [{}, {}]\nfallback: \"done\"\n",
                call(1),
                call(2)
            ),
            "t",
        )
        .unwrap(),
    );
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(
        p.path().join("fracta.yaml"),
        cfg.replace("agents:\n", "agents:\n  budgets:\n    max_children: 1\n"),
    )
    .unwrap();
    let (_code, v) = p.spawn_json(&["--task", "boss", "--prompt", "delegate twice"]);
    let events = p.events(v["id"].as_str().unwrap());
    let results: Vec<&Value> = events
        .iter()
        .filter(|e| e["kind"] == "tool_result")
        .collect();
    assert_eq!(results.len(), 2, "{events:#?}");
    let refused: Vec<&str> = results
        .iter()
        .filter(|e| e["payload"]["is_error"] == true)
        .map(|e| e["payload"]["output"].as_str().unwrap())
        .collect();
    assert_eq!(refused.len(), 1, "{results:#?}");
    assert!(
        refused[0].contains("max_children") && refused[0].contains("budget"),
        "{}",
        refused[0]
    );
    assert_eq!(agents(&p).len(), 2, "one child may be recorded");
}

/// While a parent runs, its gateway refuses requests without a token or with a forged one.
#[test]
fn the_gateway_refuses_missing_and_forged_tokens() {
    let p = Project::new(
        Script::parse(
            "rules:\n  - when: { contains: \"hold on\", has_tools: true }\n    reply: { text: \"late\", delay_ms: 60000 }\nfallback: \"t\"\n",
            "t",
        )
        .unwrap(),
    );
    let mut child = p.start(&["spawn", "--json", "--task", "slow", "--prompt", "hold on"]);
    let a = p.wait_for_status("running", Duration::from_secs(60));
    let full = p.agent(a["id"].as_str().unwrap());
    let mcp: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(full["runtime_home"].as_str().unwrap()).join("claude-mcp.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let url = mcp["mcpServers"]["fracta"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        mcp.to_string().contains("${FRACTA_AGENT_TOKEN}"),
        "the token must not be written: {mcp}"
    );
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#;
    let post = |auth: Option<&str>| {
        p.rt.block_on(async {
            let c = reqwest::Client::new();
            let mut r = c
                .post(&url)
                .header("content-type", "application/json")
                .header("accept", "application/json, text/event-stream")
                .body(body);
            if let Some(a) = auth {
                r = r.header("authorization", a);
            }
            r.send().await.unwrap().status().as_u16()
        })
    };
    assert_eq!(post(None), 401);
    assert_eq!(post(Some("Bearer forged-token-0000")), 401);
    p.run(&["stop", a["id"].as_str().unwrap()]);
    wait_child(&mut child, Duration::from_secs(30));
}

/// Stopping a parent stops the child it is waiting for.
#[test]
fn stopping_a_parent_stops_its_children() {
    let p = Project::new(
        Script::parse(
            &format!(
                "rules:\n  - when: {{ contains: \"delegate slowly\", has_tools: true }}\n    reply:\n      tool_calls: [{}]\n  - when: {{ contains: \"child work for codex\" }}\n    repeat: true\n    reply: {{ text: \"late\", delay_ms: 60000 }}\nfallback: \"t\"\n",
                spawn_call("claude", "codex", true)
            ),
            "t",
        )
        .unwrap(),
    );
    let mut parent_proc = p.start(&[
        "spawn",
        "--json",
        "--task",
        "boss",
        "--prompt",
        "delegate slowly",
    ]);
    let start = std::time::Instant::now();
    let (parent, kid) = loop {
        let all = agents(&p);
        if let (Some(par), Some(k)) = (
            all.iter().find(|a| a["parent_id"].is_null()),
            all.iter()
                .find(|a| !a["parent_id"].is_null() && a["status"] == "running"),
        ) {
            break (par.clone(), k.clone());
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "the child never started: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let kid_pid = p.agent(kid["id"].as_str().unwrap())["pid"]
        .as_i64()
        .unwrap();
    let out = p.run(&["stop", parent["id"].as_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wait_child(&mut parent_proc, Duration::from_secs(30));
    assert_eq!(status.code(), Some(3));
    assert_eq!(p.agent(kid["id"].as_str().unwrap())["status"], "stopped");
    assert_eq!(p.agent(parent["id"].as_str().unwrap())["status"], "stopped");
    assert!(
        !pid_alive(kid_pid),
        "the child's CLI survived its parent's stop"
    );
}

/// `max_running: 2`: a parent and its first child run; the second child waits, queued, until a
/// slot frees. A child asking for more depth than it may have gets its parent's less.
#[test]
fn agents_over_max_running_queue_and_children_never_get_more_than_their_parent() {
    let call = |n: u32, extra: &str| {
        format!(
            "{{ name: mcp__fracta__spawn, input: {{ task: child-task, prompt: \"child work {n}\", runtime: claude{extra} }} }}"
        )
    };
    let p = Project::new(
        Script::parse(
            &format!(
                "rules:\n  - when: {{ contains: \"delegate twice\", has_tools: true }}\n    times: 1\n    reply:\n      tool_calls: [{}, {}]\n  - when: {{ contains: \"child work 1\", has_tools: true }}\n    reply: {{ text: \"one done\", delay_ms: 500 }}\n  - when: {{ contains: \"delegate twice\", anywhere: true, has_tools: true }}\n    reply: {{ text: \"parent done\", hold: parent }}\nfallback: \"done\"\n",
                call(1, ", max_depth: 9"),
                call(2, "")
            ),
            "t",
        )
        .unwrap(),
    );
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(
        p.path().join("fracta.yaml"),
        cfg.replace(
            "agents:\n",
            "agents:\n  budgets:\n    max_running: 2\n    max_depth: 2\n",
        ),
    )
    .unwrap();
    // The parent holds its slot (its model holds its last answer) until both children have
    // ended: then the order of the children says everything, however slow the machine.
    let mut spawn = p.start(&[
        "spawn",
        "--json",
        "--task",
        "boss",
        "--prompt",
        "delegate twice",
    ]);
    let start = std::time::Instant::now();
    loop {
        let store = p.store();
        let all = store
            .list_agents(&fracta_state::AgentFilter::default())
            .unwrap();
        let ended = all
            .iter()
            .filter(|a| a.parent_id.is_some() && a.status.is_terminal())
            .count();
        if ended == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the children did not both end: {all:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    p.server().release("parent");
    let status = wait_child(&mut spawn, Duration::from_secs(120));
    let mut out = String::new();
    std::io::Read::read_to_string(spawn.stdout.as_mut().unwrap(), &mut out).unwrap();
    let root: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status.code(), Some(0), "{root:#}");
    let children: Vec<Value> = agents(&p)
        .into_iter()
        .filter(|a| a["id"] != root["id"])
        .map(|a| p.agent(a["id"].as_str().unwrap()))
        .collect();
    assert_eq!(children.len(), 2);
    let by_prompt = |n: &str| {
        children
            .iter()
            .find(|c| c["prompt"].as_str().unwrap().contains(n))
            .unwrap()
    };
    let (one, two) = (by_prompt("child work 1"), by_prompt("child work 2"));
    assert_eq!(one["status"], "succeeded", "{one:#}");
    assert_eq!(two["status"], "succeeded", "{two:#}");
    // The second child started only once the first had ended: the parent, still running, held
    // the other slot.
    let t = |v: &Value, k: &str| v[k].as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    assert!(
        t(two, "started_at") >= t(one, "ended_at"),
        "second child started {} before the first ended {}",
        two["started_at"],
        one["ended_at"],
    );
    // Asked for max_depth 9 under a parent limited to 2: it got 2.
    assert_eq!(one["meta"]["budgets"]["max_depth"], 2, "{:#}", one["meta"]);
}
