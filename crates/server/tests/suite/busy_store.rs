//! While another connection holds the state database's write lock, and a write of the control
//! plane waits for it, the control plane keeps answering: its health check, the MCP `status`
//! tool and an SSE stream, for another agent, each within a second.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fracta_core::runner::Runner;
use fracta_core::supervisor::Supervisor;
use fracta_state::{AgentRecord, AgentStatus, Mode, NewEvent, SqliteStore, Store};
use serde_json::{Value, json};

/// How long the other connection holds the write lock.
const HOLD: Duration = Duration::from_secs(3);
/// How soon each read must answer meanwhile (the requirement itself).
const BOUND: Duration = Duration::from_secs(1);

const CONFIG: &str = "agents:\n  default_runtime: quick\n  agent_runtimes:\n    quick:\n      adapter: claude\n      command: /bin/true\n";

/// Hold an exclusive write lock on the database from a connection of our own for `HOLD`.
/// Returns once the lock is held; the receiver gets the instant just before the release.
fn hold_write_lock(db: &std::path::Path) -> mpsc::Receiver<Instant> {
    let (locked_tx, locked_rx) = mpsc::channel();
    let (released_tx, released_rx) = mpsc::channel();
    let db = db.to_path_buf();
    std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked_tx.send(()).unwrap();
        std::thread::sleep(HOLD);
        released_tx.send(Instant::now()).unwrap();
        conn.execute_batch("COMMIT").unwrap();
    });
    locked_rx.recv().unwrap();
    released_rx
}

/// The time to an answer of `GET /v1/health`.
async fn health(http: &reqwest::Client, base: &str, admin: &str) -> Duration {
    let t = Instant::now();
    let r = http
        .get(format!("{base}/v1/health"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ok"], true, "{v}");
    t.elapsed()
}

/// The time to an answer of the MCP `status` tool for `id`, called as that agent.
async fn mcp_status(http: &reqwest::Client, base: &str, token: &str, id: &str) -> Duration {
    let t = Instant::now();
    let r = http
        .post(format!("{base}{}", fracta_server::MCP_PATH))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": { "name": "status", "arguments": { "agent_id": id } }
        }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let v: Value = r.json().await.unwrap();
    assert_ne!(v["result"]["isError"], true, "{v}");
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    let agent: Value = serde_json::from_str(text).unwrap();
    assert_eq!(agent["id"], id, "{agent}");
    t.elapsed()
}

/// The time until the SSE stream of `id` has delivered its stored events `1..=last`.
async fn sse_events(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    id: &str,
    last: u64,
) -> Duration {
    let t = Instant::now();
    let mut r = http
        .get(format!("{base}/v1/agents/{id}/events/stream"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let want = format!("id: {id}:{last}\n");
    let mut got = String::new();
    while !got.contains(&want) {
        let chunk = r
            .chunk()
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("stream ended early: {got}"));
        got.push_str(&String::from_utf8_lossy(&chunk));
    }
    for seq in 1..=last {
        assert!(got.contains(&format!("id: {id}:{seq}\n")), "{got}");
    }
    t.elapsed()
}

/// The acceptance criterion: a write lock held elsewhere for 3 s stalls only the write that
/// waits for it (here an agent's spawn through the API); health, MCP `status` and an SSE
/// stream of another agent keep answering within 1 s, and the spawn succeeds once the lock
/// is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_write_lock_stalls_no_reader() {
    let dir = tempfile::tempdir().unwrap();
    let yaml_path = dir.path().join("fracta.yaml");
    std::fs::write(&yaml_path, CONFIG).unwrap();
    let cfg = fracta_config::parse(CONFIG, &yaml_path).unwrap();
    let db = dir.path().join("state.db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&db).unwrap());

    // Another agent, with events already stored (ended, so each stream of it ends after them).
    let mut other = AgentRecord::new("other", "quick", "claude", Mode::Batch, "be there");
    other.status = AgentStatus::Succeeded;
    let other = store.insert_agent(&other).unwrap();
    let events = [
        NewEvent::new("message", json!({ "text": "one" })),
        NewEvent::new("message", json!({ "text": "two" })),
    ];
    assert_eq!(store.append_events(&other.id, &events).unwrap(), [1, 2]);

    let sup = Supervisor::new(Arc::new(Runner::new(Arc::new(cfg), Arc::clone(&store))));
    let token = sup.issue_token(&other.id).unwrap();
    let admin = "admin-token".to_string();
    let server = fracta_server::start_control_plane(
        Arc::clone(&sup),
        ([127, 0, 0, 1], 0).into(),
        admin.clone(),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // Each answers before the lock, too.
    health(&http, &base, &admin).await;
    mcp_status(&http, &base, &token, &other.id).await;
    sse_events(&http, &base, &admin, &other.id, 2).await;

    let released = hold_write_lock(&db);
    // A write of the control plane that must wait for the lock: recording a spawned agent.
    let spawn = {
        let (http, base, admin) = (http.clone(), base.clone(), admin.clone());
        tokio::spawn(async move {
            let r = http
                .post(format!("{base}/v1/agents"))
                .bearer_auth(&admin)
                .json(&json!({ "task": "blocked", "prompt": "wait for the lock" }))
                .send()
                .await
                .unwrap();
            let done = Instant::now();
            let status = r.status();
            let body: Value = r.json().await.unwrap();
            (done, status, body)
        })
    };

    // Probe the whole time the lock is held, so the probes overlap the waiting write.
    let mut rounds = 0;
    let release = loop {
        let took = health(&http, &base, &admin).await;
        assert!(
            took < BOUND,
            "GET /v1/health took {took:?} while the lock was held"
        );
        let took = mcp_status(&http, &base, &token, &other.id).await;
        assert!(
            took < BOUND,
            "MCP status took {took:?} while the lock was held"
        );
        let took = sse_events(&http, &base, &admin, &other.id, 2).await;
        assert!(
            took < BOUND,
            "the SSE stream took {took:?} while the lock was held"
        );
        rounds += 1;
        if let Ok(at) = released.try_recv() {
            break at;
        }
    };
    assert!(
        rounds >= 2,
        "only {rounds} round(s) of probes during the lock"
    );

    let (done, status, body) = spawn.await.unwrap();
    assert_eq!(status, reqwest::StatusCode::CREATED, "{body}");
    assert!(
        done >= release,
        "the spawn answered before the lock was released"
    );
    let id = body["id"].as_str().unwrap();
    assert_eq!(store.get_agent(id).unwrap().task, "blocked");

    server.shutdown().await;
}
