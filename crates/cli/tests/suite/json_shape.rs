//! One shape of an agent: `ps --json`, `show --json` and the HTTP API answer the same
//! object for the same agent, and `--json` errors are JSON on stdout. Runs no agent: the
//! records are written to the project's store directly.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fracta_model_server::Script;
use fracta_state::{AgentRecord, AgentStatus, Mode, Usage};
use serde_json::Value;

use super::harness::{Project, Serve};

fn project() -> Project {
    Project::new(Script::parse("fallback: unused\n", "json").unwrap())
}

/// A succeeded root with float-noisy cost, and a failed child of it.
fn seed(p: &Project) -> (AgentRecord, AgentRecord) {
    // Any command creates the store.
    assert!(p.run(&["ps", "--json"]).status.success());
    let store = p.store();
    let mut root = AgentRecord::new("review", "claude", "claude", Mode::Batch, "look");
    root.status = AgentStatus::Succeeded;
    root.model = Some("claude-sonnet-4-5".into());
    root.result = Some("all good".into());
    root.usage = Usage {
        input_tokens: 1200,
        output_tokens: 34,
        cached_tokens: 5,
    };
    root.cost_usd = Some(0.0001 + 0.0002); // 0.00030000000000000003
    root.exit_code = Some(0);
    root.started_at = Some(root.created_at);
    root.ended_at = Some(root.created_at);
    let mut kid =
        AgentRecord::new("part", "codex", "codex", Mode::Stream, "do it").with_parent(&root);
    kid.status = AgentStatus::Failed;
    kid.error = Some("it broke".into());
    kid.pid = Some(12345);
    let root = store.insert_agent(&root).unwrap();
    let kid = store.insert_agent(&kid).unwrap();
    (root, kid)
}

fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list:#}"))
}

const KEYS: [&str; 25] = [
    "schema",
    "id",
    "parent_id",
    "root_id",
    "depth",
    "task",
    "runtime",
    "adapter",
    "mode",
    "model",
    "status",
    "resume_token",
    "workspace",
    "branch",
    "changed_nothing",
    "result",
    "error",
    "exit_code",
    "signal",
    "usage",
    "cost_usd",
    "created_at",
    "started_at",
    "ended_at",
    "updated_at",
];

#[test]
fn ps_show_and_the_http_api_give_one_json_object_per_agent() {
    let p = project();
    let (root, kid) = seed(&p);

    let shown = p.json(&["show", &root.id, "--json"]);
    let listed = p.json(&["ps", "--all", "--json"]);
    assert_eq!(find(&listed, &root.id), &shown);
    let keys: Vec<&str> = shown
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, KEYS, "{shown:#}");
    assert_eq!(shown["schema"], "fracta.agent.v1");
    assert!(shown["parent_id"].is_null(), "{shown:#}");
    assert_eq!(shown["root_id"], root.id.as_str());
    assert_eq!(shown["depth"], 0);
    // Money: a decimal string with six places, no float noise.
    assert_eq!(shown["cost_usd"], "0.000300", "{shown:#}");
    assert_eq!(
        shown["usage"],
        serde_json::json!({ "input_tokens": 1200, "output_tokens": 34, "cached_tokens": 5 })
    );
    for k in ["meta", "prompt", "pid", "runtime_home"] {
        assert!(shown.get(k).is_none(), "{k} in {shown:#}");
    }
    let kid_shown = p.json(&["show", &kid.id, "--json"]);
    assert_eq!(find(&listed, &kid.id), &kid_shown);
    assert_eq!(kid_shown["parent_id"], root.id.as_str());
    assert_eq!(kid_shown["depth"], 1);
    assert!(kid_shown["cost_usd"].is_null());
    assert_eq!(kid_shown["mode"], "stream");

    // The control plane answers the same object, and the CLI goes through it unchanged.
    let server = Serve::start(&p);
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let get = |path: &str| -> Value {
        http.get(format!("{}{path}", server.url))
            .bearer_auth(&server.token)
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(get(&format!("/v1/agents/{}", root.id)), shown);
    assert_eq!(get(&format!("/v1/agents/{}", kid.id)), kid_shown);
    let api_list = get("/v1/agents?all=true");
    assert_eq!(find(&api_list, &root.id), &shown);
    let via_server = p.json(&["ps", "--all", "--json"]);
    assert_eq!(find(&via_server, &root.id), &shown);
    assert_eq!(find(&via_server, &kid.id), &kid_shown);

    // An error answer of the API carries the same error shape the CLI prints.
    let r = http
        .get(format!("{}/v1/agents/NOSUCHAGENT", server.url))
        .bearer_auth(&server.token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body:#}");
    let out = p.run(&["send", "NOSUCHAGENT", "--prompt", "hi", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "not_found", "{v:#}");
    assert_eq!(v["error"]["message"], body["error"]["message"]);
    assert!(server.stop());
}

#[test]
fn errors_under_json_are_a_json_object_on_stdout_with_the_usual_exit_code() {
    let p = project();
    assert!(p.run(&["ps", "--json"]).status.success());
    let out = p.run(&["show", "01NOSUCHAGENT0000000000000", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON on stdout ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    assert_eq!(v["error"]["code"], "not_found", "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("01NOSUCHAGENT"),
        "{v:#}"
    );
    assert_eq!(v.as_object().unwrap().len(), 1, "{v:#}");

    // Usage errors: exit 2, code `usage`.
    let out = p.run(&[
        "spawn",
        "--json",
        "--task",
        "t",
        "--prompt",
        "x",
        "--runtime",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "usage", "{v:#}");

    // A failure of the operation: exit 1, code `failed`.
    let out = p.run(&[
        "spawn", "--detach", "--json", "--task", "t", "--prompt", "x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["code"], "failed", "{v:#}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("fracta serve"),
        "{v:#}"
    );

    // Without --json: unchanged, the message on stderr and nothing on stdout.
    let out = p.run(&["show", "01NOSUCHAGENT0000000000000"]);
    assert_eq!(out.status.code(), Some(4));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error: "));
}
