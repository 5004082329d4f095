//! One control plane under load: it holds `FRACTA_BENCH_IDLE` idle stream sessions (default
//! 1,000) and `FRACTA_BENCH_BUSY` running batch agents (default 200) while 8 clients poll the
//! MCP `status` tool for `FRACTA_BENCH_SECS` seconds (default 10).
//!
//! The agents' CLI is an instant stand-in, because what is measured is Fracta, not an agent:
//! a shell script that speaks Claude Code's stream-json (each line it reads is a turn it
//! answers at once, then it waits for the next; an idle session), and one that only sleeps
//! (a running batch agent). The real CLIs are tested everywhere else.
//!
//! Prints the spawns accepted per second (recorded and queued to start), how long until every
//! agent ran, MCP `status` latency (median, p99) and rate, and the control plane's own
//! resident memory per agent (its children's is theirs).
//!
//! `cargo bench -p fracta-server --bench scale`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fracta_core::resolve::SpawnRequest;
use fracta_core::runner::Runner;
use fracta_core::session::Shutdown;
use fracta_core::supervisor::{Caller, Supervisor};
use fracta_state::{AgentFilter, AgentStatus, Mode};
use serde_json::{Value, json};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn script(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A project outside git (plain workspace folders), with the two stand-in CLIs.
fn project(agents: u64) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    script(
        &root.join("instant-session"),
        r#"while read -r line; do
  echo '{"type":"system","subtype":"init","session_id":"bench-session"}'
  echo '{"type":"result","subtype":"success","is_error":false,"result":"ok","session_id":"bench-session","usage":{"input_tokens":1,"output_tokens":1}}'
done"#,
    );
    script(&root.join("busy-agent"), "exec sleep 3600");
    std::fs::write(
        root.join("fracta.yaml"),
        format!(
            "agents:\n  default_runtime: idle\n  budgets:\n    max_children: 100000\n    max_running: {}\n  agent_runtimes:\n    idle:\n      adapter: claude\n      command: ./instant-session\n    busy:\n      adapter: claude\n      command: ./busy-agent\n",
            agents + 10
        ),
    )
    .unwrap();
    d
}

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn main() {
    let idle = env_num("FRACTA_BENCH_IDLE", 1000);
    let busy = env_num("FRACTA_BENCH_BUSY", 200);
    let secs = env_num("FRACTA_BENCH_SECS", 10);
    let dir = project(idle + busy);
    let cfg = fracta_config::load(Some(&dir.path().join("fracta.yaml"))).unwrap();
    let store =
        fracta_state::open_store(&fracta_state::StateConfig::sqlite(cfg.state_path())).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let sup = Supervisor::new(Arc::new(Runner::new(Arc::new(cfg), Arc::clone(&store))));
        let plane = fracta_server::start_control_plane(
            Arc::clone(&sup),
            ([127, 0, 0, 1], 0).into(),
            "bench-admin-token".into(),
        )
        .await
        .unwrap();
        let rss0 = rss_kib();

        // Spawns: every one recorded and handed to the supervisor (its start follows).
        let t0 = Instant::now();
        let mut ids = Vec::new();
        for i in 0..idle + busy {
            let session = i < idle;
            let req = SpawnRequest {
                task: if session { "session" } else { "work" }.into(),
                prompt: Some(format!("turn {i}")),
                runtime: Some(if session { "idle" } else { "busy" }.into()),
                mode: Some(if session {
                    fracta_config::Mode::Stream
                } else {
                    fracta_config::Mode::Batch
                }),
                ..SpawnRequest::default()
            };
            ids.push(
                sup.spawn(&Caller::User, req, &fracta_config::Budgets::default())
                    .unwrap()
                    .id,
            );
        }
        let spawn_secs = t0.elapsed().as_secs_f64();

        // Until every session has answered its first turn and every batch agent runs.
        let until = Instant::now() + Duration::from_secs(600);
        loop {
            let all = store
                .list_agents(&AgentFilter {
                    statuses: vec![AgentStatus::Running],
                    ..AgentFilter::default()
                })
                .unwrap();
            let sessions = all
                .iter()
                .filter(|a| a.mode == Mode::Stream && a.result.is_some())
                .count() as u64;
            let working = all.iter().filter(|a| a.mode == Mode::Batch).count() as u64;
            if sessions == idle && working == busy {
                break;
            }
            assert!(
                Instant::now() < until,
                "not all up after 600 s: {sessions}/{idle} sessions idle, {working}/{busy} running"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let up_secs = t0.elapsed().as_secs_f64();
        let rss1 = rss_kib();

        // MCP status, polled by 8 clients, each acting as one of 100 agents.
        let url = format!("http://{}/mcp", plane.addr);
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let sample: Vec<(String, String)> = ids
            .iter()
            .step_by(((idle + busy) / 100).max(1) as usize)
            .map(|id| (id.clone(), sup.issue_token(id).unwrap()))
            .collect();
        let sample = Arc::new(sample);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let calls = Arc::new(AtomicU64::new(0));
        let mut clients = Vec::new();
        for c in 0..8usize {
            let (http, url, sample, calls) = (
                http.clone(),
                url.clone(),
                Arc::clone(&sample),
                Arc::clone(&calls),
            );
            clients.push(tokio::spawn(async move {
                let mut lat = Vec::new();
                let mut k = c;
                while Instant::now() < deadline {
                    let (id, token) = &sample[k % sample.len()];
                    k += 8;
                    let n = calls.fetch_add(1, Ordering::Relaxed);
                    let t = Instant::now();
                    let r = http
                        .post(&url)
                        .bearer_auth(token)
                        .header("accept", "application/json, text/event-stream")
                        .json(&json!({
                            "jsonrpc": "2.0", "id": n, "method": "tools/call",
                            "params": { "name": "status", "arguments": { "agent_id": id } }
                        }))
                        .send()
                        .await
                        .unwrap();
                    let v: Value = r.json().await.unwrap();
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                    assert_ne!(v["result"]["isError"], true, "{v}");
                }
                lat
            }));
        }
        let t = Instant::now();
        let mut lat = Vec::new();
        for c in clients {
            lat.extend(c.await.unwrap());
        }
        let poll_secs = t.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);

        let n = idle + busy;
        println!();
        println!("One fracta serve: {idle} idle stream sessions + {busy} running batch agents");
        println!(
            "spawns accepted: {n} in {spawn_secs:.2} s = {:.0} spawns/s (recorded, queued to start)",
            n as f64 / spawn_secs
        );
        println!("all {n} agents up (sessions idle after their first turn, batch agents running) after {up_secs:.1} s");
        println!(
            "MCP status: {} calls from 8 clients in {poll_secs:.1} s = {:.0} calls/s; median {:.2} ms, p99 {:.2} ms",
            lat.len(),
            lat.len() as f64 / poll_secs,
            pct(&lat, 50.0),
            pct(&lat, 99.0)
        );
        println!(
            "control plane resident memory: {:.1} MiB before, {:.1} MiB with them = {:.1} KiB per agent (its own; each agent's CLI process is its own)",
            rss0 as f64 / 1024.0,
            rss1 as f64 / 1024.0,
            rss1.saturating_sub(rss0) as f64 / n as f64
        );

        // Shut down as `fracta serve` does: idle sessions close, busy agents stop.
        sup.shut_down(Shutdown::Terminate("bench"));
        sup.close_sessions(Duration::from_secs(60)).await;
        for id in sup.live_ids() {
            let _ = sup.stop_tree(&id).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(120), sup.wait_all()).await;
        plane.shutdown().await;
    });
}
