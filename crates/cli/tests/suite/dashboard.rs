//! The dashboard in a real headless Chromium, against `fracta serve` and the real agent CLIs:
//! the login code and its session cookie, what is refused (no cookie, a forged one, no CSRF
//! token, an agent's gateway token), a tree spawned from the page appearing live (parent, then
//! its child), events streaming in and shown as text, the diff, send, steer, stop and resume
//! from the page, and a restart of `serve` the page reconnects to and resumes from. Each run
//! saves screenshots under `target/dashboard/`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fracta_model_server::Script;
use serde_json::{Value, json};

use super::browser::Browser;
use super::harness::{Project, Serve};

/// A login URL from `fracta dashboard --json`.
fn login_url(p: &Project) -> String {
    let v = p.json(&["dashboard", "--json"]);
    assert_eq!(v["expires_in_secs"], 120, "{v}");
    v["url"].as_str().unwrap().to_string()
}

/// Log the page in with a fresh code and wait until it is live.
fn log_in(b: &mut Browser, p: &Project) {
    let url = login_url(p);
    assert!(url.contains("/#code="), "{url}");
    b.goto(&url);
    b.wait("body[data-state=ready]");
    b.wait("#conn.live");
}

/// Spawn from the page's dialog; the new agent's id.
fn spawn_from_page(b: &mut Browser, task: &str, prompt: &str, runtime: &str, mode: &str) -> String {
    b.click("#spawn-open");
    b.fill("#spawn-task", task);
    b.fill("#spawn-prompt", prompt);
    b.fill("#spawn-runtime", runtime);
    b.call(json!({ "op": "select", "sel": "#spawn-mode", "value": mode }));
    b.eval("state.selected = null");
    b.click("#spawn-submit");
    b.wait_fn("state.selected !== null");
    let id = b.eval("state.selected").as_str().unwrap().to_string();
    b.wait(&node(&id));
    id
}

fn node(id: &str) -> String {
    format!(".node[data-id=\"{id}\"]")
}

fn node_status(id: &str, status: &str) -> String {
    format!(".node[data-id=\"{id}\"][data-status=\"{status}\"]")
}

/// Wait until the timeline shows an event whose text contains `needle`.
fn wait_timeline(b: &mut Browser, needle: &str) {
    let js = format!(
        "[...document.querySelectorAll('#timeline li')].some(li => li.textContent.includes({}))",
        json!(needle)
    );
    b.wait_fn(&js);
}

fn tree_script() -> Script {
    Script::parse(
        r#"rules:
  - name: parent-delegates
    when: { contains: "delegate to the child", has_tools: true }
    reply:
      tool_calls: [{ name: mcp__fracta__spawn, input: { task: child-task, prompt: "child work", runtime: claude, wait: true } }]
  - name: child-writes
    when: { contains: "child work", has_tools: true }
    reply:
      tool_calls: [{ name: Write, input: { file_path: "notes.txt", content: "from the child\n" } }]
  - name: child-answers
    when: { contains: "File created", has_tools: true }
    reply: { text: "CHILD says <script>window.pwned=1</script><img src=x onerror=\"window.pwned=2\">", hold: kid }
  - name: parent-concludes
    when: { contains: "CHILD says", has_tools: true }
    reply: "PARENT done"
fallback: "A title"
"#,
        "dashboard-tree",
    )
    .unwrap()
}

#[test]
fn a_tree_spawned_from_the_page_appears_live_and_only_the_session_opens_it() {
    let p = Project::new(tree_script());
    let serve = Serve::start(&p);
    let url = serve.url.clone();
    let mut b = Browser::start();

    // No login code, no cookie: the page says how to log in, the API refuses.
    assert_eq!(b.goto(&format!("{url}/")), 200);
    b.wait("#login");
    let msg = b.text("#login");
    assert!(msg.contains("fracta dashboard"), "{msg}");
    let r = b.fetch(&format!("{url}/v1/agents"), "GET", json!({}), None);
    assert_eq!(r["status"], 401, "{r}");
    assert_eq!(r["json"]["error"]["code"], "unauthorized", "{r}");
    // A forged cookie is refused, and so is a made-up login code.
    b.call(json!({ "op": "addCookie", "name": "fracta_session", "value": "forged", "url": url }));
    let r = b.fetch(&format!("{url}/v1/agents"), "GET", json!({}), None);
    assert_eq!(r["status"], 401, "{r}");
    assert_eq!(r["json"]["error"]["code"], "unauthorized", "{r}");
    b.call(json!({ "op": "newContext" }));
    b.goto(&format!("{url}/#code=0123abcd"));
    b.wait("body[data-state=login-refused]");
    assert!(b.text("#login").contains("unknown, used or expired"));

    // The code works once: in a fresh browser context, it logs in and leaves the address bar.
    b.call(json!({ "op": "newContext" }));
    let login = login_url(&p);
    b.goto(&login);
    b.wait("body[data-state=ready]");
    let at = b.call(json!({ "op": "url" }));
    assert_eq!(at, format!("{url}/"), "the code left the URL");
    let cookies = b.call(json!({ "op": "cookies" }));
    let c = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "fracta_session")
        .unwrap_or_else(|| panic!("{cookies:#}"));
    assert_eq!(c["httpOnly"], true, "{c}");
    assert_eq!(c["sameSite"], "Strict", "{c}");
    assert_eq!(
        b.eval("document.cookie"),
        "",
        "HttpOnly: the page cannot read it"
    );
    let html = b.eval("document.documentElement.outerHTML");
    assert!(
        !html.as_str().unwrap().contains(&serve.token),
        "the admin token is not in the page"
    );
    let again = b.fetch(
        &format!("{url}/dashboard/session"),
        "POST",
        json!({ "Content-Type": "application/json" }),
        Some(&json!({ "code": login.rsplit('=').next().unwrap() }).to_string()),
    );
    assert_eq!(again["status"], 401, "a used code: {again}");
    // With the cookie the API answers; a change without the CSRF token (or a wrong one) is
    // refused.
    let r = b.fetch(&format!("{url}/v1/agents"), "GET", json!({}), None);
    assert_eq!(r["status"], 200, "{r}");
    let body = json!({ "task": "sneaky", "prompt": "x" }).to_string();
    for headers in [
        json!({ "Content-Type": "application/json" }),
        json!({ "Content-Type": "application/json", "X-CSRF-Token": "forged" }),
    ] {
        let r = b.fetch(&format!("{url}/v1/agents"), "POST", headers, Some(&body));
        assert_eq!(r["status"], 403, "{r}");
        assert_eq!(r["json"]["error"]["code"], "forbidden", "{r}");
    }
    assert!(
        p.json(&["ps", "--all", "--json"])
            .as_array()
            .unwrap()
            .is_empty()
    );
    // (The browser logs each refused request as a console error.)
    b.problems();
    // The page's answers carry a strict CSP and refuse framing.
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .build()
        .unwrap();
    let page = http.get(format!("{url}/")).send().unwrap();
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    b.wait("#conn.live");

    // A tree spawned from the page: the parent shows first, then its child under it.
    let parent = spawn_from_page(&mut b, "boss", "delegate to the child", "claude", "batch");
    assert_eq!(
        b.eval("document.querySelectorAll('#forest .node').length"),
        1
    );
    assert!(
        p.rt.block_on(p.server().wait_for_hold("kid", Duration::from_secs(120))),
        "the child never asked the model"
    );
    let child_sel = format!("li[data-agent=\"{parent}\"] > ul[role=group] .node");
    b.wait(&child_sel);
    let child = b
        .eval(&format!(
            "document.querySelector({}).dataset.id",
            json!(child_sel)
        ))
        .as_str()
        .unwrap()
        .to_string();
    b.wait(&node_status(&parent, "running"));
    b.wait(&node_status(&child, "running"));
    // Events stream into the parent's timeline as they are persisted.
    b.click(&node(&parent));
    wait_timeline(&mut b, "delegate to the child");
    b.wait("#timeline li[data-kind=tool_call]");

    // An agent's gateway token opens neither the API nor the dashboard.
    let pid = p.store().get_agent(&parent).unwrap().pid.unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let agent_token = String::from_utf8_lossy(&environ)
        .split('\0')
        .find_map(|kv| kv.strip_prefix("FRACTA_AGENT_TOKEN=").map(str::to_string))
        .expect("the parent's CLI has its gateway token");
    let mcp = http
        .post(format!("{url}/mcp"))
        .bearer_auth(&agent_token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({ "jsonrpc": "2.0", "id": 1, "method": "ping" }))
        .send()
        .unwrap();
    assert_ne!(mcp.status(), 401, "the token is a live agent's");
    let api = http
        .get(format!("{url}/v1/agents"))
        .bearer_auth(&agent_token)
        .send()
        .unwrap();
    assert_eq!(api.status(), 401);
    let err: Value = api.json().unwrap();
    assert_eq!(err["error"]["code"], "unauthorized", "{err}");
    for (cookie, path) in [
        (format!("fracta_session={agent_token}"), "/v1/agents"),
        (
            format!("fracta_session={agent_token}"),
            "/dashboard/session",
        ),
    ] {
        let r = http
            .get(format!("{url}{path}"))
            .header("cookie", cookie)
            .send()
            .unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    let r = http
        .post(format!("{url}/dashboard/session"))
        .json(&json!({ "code": agent_token }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);

    b.screenshot("forest.png");
    p.server().release("kid");
    b.wait(&node_status(&child, "succeeded"));
    b.wait(&node_status(&parent, "succeeded"));
    assert!(b.text(&node(&parent)).contains("tree $"), "the tree's cost");
    wait_timeline(&mut b, "PARENT done");

    // The child's answer holds markup: it shows as text, and nothing of it runs.
    b.click(&node(&child));
    wait_timeline(&mut b, "CHILD says <script>window.pwned=1</script>");
    assert_eq!(b.eval("typeof window.pwned"), "undefined");
    assert_eq!(
        b.eval("document.querySelectorAll('#timeline script, #timeline img').length"),
        0
    );
    // The tool's result is folded under its call.
    b.call(json!({ "op": "wait", "sel": "#timeline details.call details.result", "state": "attached" }));
    // The child's branch against its base: the file it wrote.
    b.click("#tab-diff");
    b.wait("#diff-files details");
    let diff = b.text("#diff-pane");
    assert!(
        diff.contains("notes.txt") && diff.contains("+from the child"),
        "{diff}"
    );
    b.screenshot("agent-diff.png");
    b.click("#tab-timeline");
    let shot = b.screenshot("agent.png");
    // The README's picture: `FRACTA_UPDATE_SCREENSHOT=1` refreshes docs/src/dashboard.png.
    if std::env::var_os("FRACTA_UPDATE_SCREENSHOT").is_some() {
        let docs = super::harness::repo_root().join("docs/src/dashboard.png");
        std::fs::copy(&shot, docs).unwrap();
    }
    // Keyboard: the tree takes focus, arrows move, Enter opens.
    b.call(json!({ "op": "focus", "sel": node(&child) }));
    b.call(json!({ "op": "press", "key": "ArrowUp" }));
    b.call(json!({ "op": "press", "key": "Enter" }));
    b.wait_fn(&format!("state.selected === {}", json!(parent)));
    b.click(&node(&child));
    b.wait_fn(&format!("state.selected === {}", json!(child)));
    // Review from the page: removing it is refused while its work is not on its base; merged
    // into the checked-out branch, then removed (forced: its base is its parent's branch).
    b.click("#act-remove");
    b.wait_fn("document.getElementById('action-msg').textContent.startsWith('remove failed')");
    let why = b.text("#action-msg");
    assert!(why.contains("has work that is not on"), "{why}");
    b.call(json!({ "op": "select", "sel": "#merge-how", "value": "squash" }));
    b.click("#act-merge");
    b.wait_fn("document.getElementById('action-msg').textContent.startsWith('merged ')");
    let merged = b.text("#action-msg");
    assert!(merged.contains("into main"), "{merged}");
    assert_eq!(
        p.show_file("main", "notes.txt").as_deref(),
        Some("from the child\n")
    );
    b.click("#remove-force");
    b.click("#act-remove");
    b.wait(&node(&parent));
    b.call(json!({ "op": "wait", "sel": node(&child), "state": "detached" }));
    assert!(p.store().get_agent(&child).is_err(), "the record is gone");

    // (The refused removal is logged by the browser as a failed request.)
    let problems = b.problems();
    let real: Vec<&String> = problems.iter().filter(|m| !m.contains("409")).collect();
    assert!(real.is_empty(), "{problems:#?}");
}

fn chat_script() -> Script {
    Script::parse(
        r#"rules:
  - when: { contains: "chat with me" }
    reply: "HELLO-1"
  - when: { contains: "SECOND-TURN" }
    repeat: true
    reply: "HELLO-2"
  - when: { contains: "EXTRA-INPUT" }
    reply: "STEERED"
  - when: { contains: "steer me" }
    reply: { text: "HELD", hold: steer }
fallback: "fine"
"#,
        "dashboard-chat",
    )
    .unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn send_steer_stop_and_resume_work_from_the_page_across_a_restart_of_serve() {
    let p = Project::new(chat_script());
    // With no control plane, `fracta dashboard` says how to start one.
    let out = p.run(&["dashboard"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("fracta serve"), "{err}");
    let listen = format!("127.0.0.1:{}", free_port());
    let serve = Serve::start_args(&p, &["--listen", &listen], &[]);
    let mut b = Browser::start();
    log_in(&mut b, &p);

    // A Claude stream session: waiting for input after its first turn; steer is disabled
    // with the reason; send works.
    let chat = spawn_from_page(&mut b, "chat", "chat with me", "claude", "stream");
    b.wait(&node_status(&chat, "waiting for input"));
    wait_timeline(&mut b, "HELLO-1");
    assert_eq!(
        b.eval("document.getElementById('act-steer').disabled"),
        true
    );
    let why = b.text("#steer-why");
    assert!(
        why.contains("cannot take input into a turn in flight"),
        "{why}"
    );
    b.fill("#send-text", "SECOND-TURN");
    b.click("#act-send");
    wait_timeline(&mut b, "HELLO-2");
    b.wait(&node_status(&chat, "waiting for input"));

    // A Codex session steered from the page while its turn is in flight.
    let codex = spawn_from_page(&mut b, "steered", "steer me", "codex", "stream");
    assert!(
        p.rt.block_on(p.server().wait_for_hold("steer", Duration::from_secs(120))),
        "the turn never reached the model"
    );
    b.wait(&node_status(&codex, "running"));
    b.wait_fn("!document.getElementById('act-steer').disabled");
    b.fill("#steer-text", "EXTRA-INPUT");
    b.click("#act-steer");
    b.wait_fn("document.getElementById('action-msg').textContent === 'steer: done'");
    p.server().release("steer");
    wait_timeline(&mut b, "STEERED");
    wait_timeline(&mut b, "EXTRA-INPUT");

    // Stop from the page.
    b.click(&node(&chat));
    b.wait_fn("!document.getElementById('act-stop').disabled");
    b.click("#act-stop");
    b.wait(&node_status(&chat, "stopped"));

    // serve restarts on the same address: the page reconnects by itself, resuming from the
    // last event id it had, and its session cookie still works.
    assert!(serve.stop(), "serve shut down cleanly");
    b.wait("#conn.down");
    let serve = Serve::start_args(&p, &["--listen", &listen], &[]);
    b.wait_fn("document.getElementById('conn').dataset.resumedFrom !== ''");
    b.wait("#conn.live");
    // The Codex session was closed by the shutdown: it shows as ended.
    b.wait_fn(&format!(
        "!['running','starting','queued'].includes(state.agents.get({}).agent.status)",
        json!(codex)
    ));
    // An agent started meanwhile by the CLI appears without a reload.
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--task",
        "from-cli",
        "--prompt",
        "SECOND-TURN",
    ]);
    let cli_id = v["id"].as_str().unwrap().to_string();
    b.wait(&node_status(&cli_id, "succeeded"));

    // Resume the stopped chat from the page: a new turn of its conversation.
    b.click(&node(&chat));
    b.wait_fn("!document.getElementById('act-resume').disabled");
    b.fill("#resume-text", "SECOND-TURN again");
    b.click("#act-resume");
    b.wait(&node_status(&chat, "succeeded"));
    b.wait_fn(
        "[...document.querySelectorAll('#timeline li')].filter(li => li.textContent.includes('HELLO-2')).length >= 2",
    );
    let problems = b.problems();
    // The restart itself makes the browser log its failed reconnects.
    let real: Vec<&String> = problems
        .iter()
        .filter(|m| {
            !m.contains("ERR_CONNECTION_REFUSED")
                && !m.contains("ERR_EMPTY_RESPONSE")
                && !m.contains("ERR_INCOMPLETE_CHUNKED_ENCODING")
        })
        .collect();
    assert!(real.is_empty(), "{problems:#?}");
    drop(serve);
}
