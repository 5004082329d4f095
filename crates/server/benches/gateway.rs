//! The MCP gateway's speed, over real HTTP on loopback, with the real store, workspaces and
//! process launch.
//!
//! - `spawn`: an agent's `tools/call spawn` round trip (the child recorded, its id returned),
//!   and the time from the call to the child's process having started (`started_at`), next to
//!   the bare cost of starting that process (the child's CLI is `/bin/true`, so what is measured
//!   is Fracta, not an agent CLI). Median and p99.
//! - `status`: `tools/call status` calls per second, from 8 concurrent clients.
//!
//! `cargo bench -p fracta-server --bench gateway` (env `FRACTA_BENCH_SPAWNS`, default 200;
//! `FRACTA_BENCH_SECS`, default 3). Targets: spawn accepted < 10 ms median beyond the child's
//! process start; >= 2,000 status calls per second on a 2-core machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fracta_core::resolve::SpawnRequest;
use fracta_core::runner::Runner;
use fracta_core::supervisor::{Caller, Supervisor};
use serde_json::{Value, json};

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "git {args:?}");
}

fn project() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    git(root, &["init", "-q", "-b", "main"]);
    std::fs::write(root.join("README.md"), "bench\n").unwrap();
    std::fs::write(root.join(".gitignore"), ".fracta/\n").unwrap();
    git(root, &["add", "."]);
    git(
        root,
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "init",
        ],
    );
    // Worktrees in the (temporary) project, not in the user's state folder.
    std::fs::write(
        root.join("fracta.yaml"),
        "agents:\n  default_runtime: quick\n  budgets:\n    max_children: 100000\n    max_running: 64\n  agent_runtimes:\n    quick:\n      adapter: claude\n      command: /bin/true\nproject:\n  worktrees_dir: .fracta/worktrees\n",
    )
    .unwrap();
    d
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(name: &str, mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let med = pct(&v, 50.0);
    println!(
        "{name:<44} median {med:>7.2} ms   p99 {:>7.2} ms   (n={})",
        pct(&v, 99.0),
        v.len()
    );
    med
}

struct Mcp {
    http: reqwest::Client,
    url: String,
    token: String,
    id: AtomicU64,
}

impl Mcp {
    async fn call(&self, tool: &str, args: Value) -> Value {
        let id = self.id.fetch_add(1, Ordering::Relaxed);
        let r = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": { "name": tool, "arguments": args }
            }))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let v: Value = r.json().await.unwrap();
        let text = v["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_else(|| panic!("{v}"));
        assert_ne!(v["result"]["isError"], true, "{text}");
        serde_json::from_str(text).unwrap()
    }
}

fn main() {
    let spawns: usize = std::env::var("FRACTA_BENCH_SPAWNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let secs: u64 = std::env::var("FRACTA_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    if let Ok(f) = std::env::var("FRACTA_BENCH_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(f))
            .with_writer(std::io::stderr)
            .try_init();
    }
    let dir = project();
    let cfg = fracta_config::load(Some(&dir.path().join("fracta.yaml"))).unwrap();
    let store =
        fracta_state::open_store(&fracta_state::StateConfig::sqlite(cfg.state_path())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sup = Supervisor::new(Arc::new(Runner::new(Arc::new(cfg), store)));
        let gw = fracta_server::start(Arc::clone(&sup), ([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        // The caller: a root agent, acting through its own gateway token.
        let root = sup
            .spawn(
                &Caller::User,
                SpawnRequest {
                    task: "root".into(),
                    prompt: Some("bench".into()),
                    ..SpawnRequest::default()
                },
                &fracta_config::Budgets::default(),
            )
            .unwrap();
        sup.wait(&root.id, Duration::from_secs(30)).await.unwrap();
        let mcp = Arc::new(Mcp {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            url: gw.url(),
            token: sup.issue_token(&root.id).unwrap(),
            id: AtomicU64::new(1),
        });

        // The bare process start of the child's CLI, for comparison.
        let mut bare = vec![];
        for _ in 0..spawns.min(100) {
            let t = Instant::now();
            let mut c = tokio::process::Command::new("/bin/true").spawn().unwrap();
            bare.push(t.elapsed().as_secs_f64() * 1e3);
            c.wait().await.unwrap();
        }

        let mut accepted = vec![];
        let mut started = vec![];
        for i in 0..spawns + 5 {
            let t0 = Instant::now();
            let wall0 = jiff::Timestamp::now();
            let child = mcp
                .call("spawn", json!({ "task": "child", "prompt": format!("child {i}") }))
                .await;
            let took = t0.elapsed().as_secs_f64() * 1e3;
            let id = child["id"].as_str().unwrap().to_string();
            let done = sup.wait(&id, Duration::from_secs(30)).await.unwrap();
            if i < 5 {
                continue; // warm-up
            }
            accepted.push(took);
            if let Some(s) = done.started_at {
                started.push(s.duration_since(wall0).as_secs_f64() * 1e3);
            }
        }

        println!();
        println!("MCP gateway over HTTP on loopback ({spawns} spawns):");
        let bare_med = summary("child process start alone (/bin/true)", bare);
        let acc_med = summary("spawn tool call: child recorded, id returned", accepted);
        let start_med = summary("spawn tool call → child's process started", started);
        println!(
            "spawn accepted in {acc_med:.2} ms median (target < 10 ms; the child's process starts after the answer, {start_med:.2} ms after the call, of which {bare_med:.2} ms is the bare process start)"
        );

        // Status throughput: 8 clients for `secs` seconds.
        let count = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = vec![];
        for _ in 0..8 {
            let mcp = Arc::clone(&mcp);
            let count = Arc::clone(&count);
            let id = root.id.clone();
            tasks.push(tokio::spawn(async move {
                while Instant::now() < deadline {
                    let v = mcp.call("status", json!({ "agent_id": id })).await;
                    assert_eq!(v["id"], id.as_str());
                    count.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        let t = Instant::now();
        for task in tasks {
            task.await.unwrap();
        }
        let n = count.load(Ordering::Relaxed);
        let per_sec = n as f64 / t.elapsed().as_secs_f64();
        println!(
            "status tool calls: {n} in {:.1} s from 8 clients = {per_sec:.0} calls/s (target >= 2000)",
            t.elapsed().as_secs_f64()
        );
        gw.shutdown().await;
    });
}
