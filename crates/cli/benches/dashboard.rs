//! The dashboard with a large forest: `FRACTA_BENCH_AGENTS` agents (default 200, in trees of
//! a root, 3 children and 6 grandchildren) and `FRACTA_BENCH_EVENTS` events (default 50,000;
//! a fifth of them on one agent, the rest spread evenly), seeded straight into the state
//! store, served by the real `fracta serve` and opened in headless Chromium (the browser
//! tests' driver: Debian's chromium and playwright-core, see crates/cli/tests/browser).
//!
//! Prints: the time to first render (the page's own clock, from navigation to the first
//! forest drawn, login exchange included), until every agent is shown, until the busiest
//! agent's whole timeline has streamed in, and until an agent added to the store by another
//! process shows (the page stays live); then the page's JS heap and Chromium's memory (the
//! proportional set size of every process of the browser).
//!
//! `cargo bench -p fracta --bench dashboard`

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/suite/browser.rs"]
mod browser;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fracta_state::{AgentRecord, AgentStatus, Mode, NewEvent, StateConfig};
use serde_json::{Value, json};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fracta(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fracta"));
    c.current_dir(dir)
        .env("HOME", dir.join("home"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

fn event(i: u64) -> NewEvent {
    match i % 5 {
        0 => NewEvent::new(
            "message",
            json!({ "type": "message", "role": "assistant", "text": format!("step {i}: reading the code and deciding what to change next") }),
        ),
        1 => NewEvent::new(
            "tool_call",
            json!({ "type": "tool_call", "id": format!("c{i}"), "name": "Read", "input": { "file_path": format!("src/file{i}.rs") } }),
        ),
        2 => NewEvent::new(
            "tool_result",
            json!({ "type": "tool_result", "id": format!("c{}", i - 1), "name": "Read", "output": "fn main() {\n    println!(\"hello\");\n}\n".repeat(4), "is_error": false }),
        ),
        3 => NewEvent::new("step", json!({ "type": "step", "phase": "finished" })),
        _ => NewEvent::new(
            "usage",
            json!({ "type": "usage", "input_tokens": 1200, "output_tokens": 80, "cached_tokens": 0 }),
        ),
    }
}

/// Seed the store: the busiest agent's id.
fn seed(dir: &Path, agents: u64, events: u64) -> String {
    let store =
        fracta_state::open_store(&StateConfig::sqlite(dir.join(".fracta/state.db"))).unwrap();
    let mut ids = vec![];
    let mut n = 0;
    let mut root = None::<AgentRecord>;
    let mut parent = None::<AgentRecord>;
    while n < agents {
        let rec = match n % 10 {
            0 => AgentRecord::new(format!("tree-{n}"), "claude", "claude", Mode::Batch, "p"),
            1 | 4 | 7 => {
                AgentRecord::new(format!("child-{n}"), "codex", "codex", Mode::Stream, "p")
                    .with_parent(root.as_ref().unwrap())
            }
            _ => AgentRecord::new(
                format!("grandchild-{n}"),
                "opencode",
                "opencode",
                Mode::Batch,
                "p",
            )
            .with_parent(parent.as_ref().unwrap()),
        };
        let rec = store.insert_agent(&rec).unwrap();
        let status = match n % 7 {
            0 => AgentStatus::Failed,
            1 => AgentStatus::Stopped,
            _ => AgentStatus::Succeeded,
        };
        let rec = store
            .modify_agent(&rec.id, &mut |a| {
                a.status = status;
                a.cost_usd = Some(0.001 * (n % 13) as f64);
                a.started_at = Some(a.created_at);
                a.ended_at = Some(a.created_at);
                a.result = Some(format!("result of agent {n}"));
            })
            .unwrap();
        match n % 10 {
            0 => root = Some(rec.clone()),
            1 | 4 | 7 => parent = Some(rec.clone()),
            _ => {}
        }
        ids.push(rec.id);
        n += 1;
    }
    let busiest = events / 5;
    let rest = (events - busiest) / (agents - 1).max(1);
    for (k, id) in ids.iter().enumerate() {
        let count = if k == 0 { busiest } else { rest };
        let mut i = 0;
        while i < count {
            let batch: Vec<NewEvent> = (i..(i + 1000).min(count)).map(event).collect();
            i += batch.len() as u64;
            store.append_events(id, &batch).unwrap();
        }
    }
    ids[0].clone()
}

/// Proportional set size (kB: shared pages split between the processes that share them) of
/// `pid`'s descendants, not `pid` itself.
fn descendants_pss_kb(pid: u32) -> (u64, u64) {
    let mut parent_of = std::collections::HashMap::new();
    let mut rss = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{p}/status")) else {
            continue;
        };
        for line in status.lines() {
            if let Some(v) = line.strip_prefix("PPid:") {
                parent_of.insert(p, v.trim().parse::<u32>().unwrap_or(0));
            }
            if let Some(v) = line.strip_prefix("VmRSS:") {
                let kb = v
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
                rss.insert(p, kb);
            }
        }
    }
    let below = |mut p: u32| {
        while let Some(&pp) = parent_of.get(&p) {
            if pp == pid {
                return true;
            }
            if pp <= 1 {
                return false;
            }
            p = pp;
        }
        false
    };
    rss.iter()
        .filter(|(p, _)| **p != pid && below(**p))
        .map(|(p, kb)| {
            let cmd = std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
            let renderer = cmd.contains("--type=renderer") && !cmd.contains("--top-chrome-webui");
            if std::env::var_os("FRACTA_BENCH_VERBOSE").is_some() {
                eprintln!(
                    "    {p}: {kb} kB {}",
                    cmd.replace('\0', " ").chars().take(120).collect::<String>()
                );
            }
            (*kb, if renderer { *kb } else { 0 })
        })
        .fold((0, 0), |(all, page), (kb, r)| (all + kb, page.max(r)))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` would pass nothing else either.
    let agents = env_num("FRACTA_BENCH_AGENTS", 200);
    let events = env_num("FRACTA_BENCH_EVENTS", 50_000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("home")).unwrap();
    std::fs::create_dir_all(root.join(".fracta")).unwrap();
    std::fs::write(
        root.join("fracta.yaml"),
        "agents:\n  default_runtime: claude\n  agent_runtimes:\n    claude:\n      adapter: claude\n      command: /bin/false\n",
    )
    .unwrap();
    let t = Instant::now();
    let busiest = seed(root, agents, events);
    println!(
        "seeded {agents} agents and {events} events in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let mut serve = fracta(root)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let file = root.join(".fracta/serve.json");
    let start = Instant::now();
    while !file.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "serve did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let out = fracta(root).args(["dashboard", "--json"]).output().unwrap();
    let login: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("fracta dashboard: {}", String::from_utf8_lossy(&out.stderr)));

    let mut b = browser::Browser::start();
    let t = Instant::now();
    b.goto(login["url"].as_str().unwrap());
    b.wait_fn(&format!("document.body.dataset.agents === '{agents}'"));
    let all_shown = t.elapsed();
    let first_render: f64 = b
        .eval("Number(document.body.dataset.firstRender)")
        .as_f64()
        .unwrap();
    let all_rendered_at = b
        .eval("Number(document.body.dataset.renderedAt)")
        .as_f64()
        .unwrap();
    let render_ms = b
        .eval("Number(document.body.dataset.renderMs)")
        .as_f64()
        .unwrap();

    let t = Instant::now();
    b.click(&format!(".node[data-id=\"{busiest}\"]"));
    b.wait_fn(&format!("state.lastSeq === {}", events / 5));
    let timeline = t.elapsed();

    // Another process adds an agent: the page shows it without a reload.
    let store =
        fracta_state::open_store(&StateConfig::sqlite(root.join(".fracta/state.db"))).unwrap();
    let t = Instant::now();
    store
        .insert_agent(&AgentRecord::new(
            "late",
            "claude",
            "claude",
            Mode::Batch,
            "p",
        ))
        .unwrap();
    b.wait_fn(&format!(
        "document.body.dataset.agents === '{}'",
        agents + 1
    ));
    let live = t.elapsed();

    let m = b.call(json!({ "op": "metrics" }));
    let heap_mb = m["JSHeapUsedSize"].as_f64().unwrap_or(0.0) / 1e6;
    let nodes = m["Nodes"].as_f64().unwrap_or(0.0);
    let (all_kb, page_kb) = descendants_pss_kb(b.pid());
    let (rss_mb, page_mb) = (all_kb as f64 / 1024.0, page_kb as f64 / 1024.0);
    println!("dashboard with {agents} agents and {events} events:");
    println!(
        "  time to first render (navigation to first forest, login included): {first_render:.0} ms"
    );
    println!(
        "  every agent shown: at {all_rendered_at:.0} ms on the page's clock ({} ms wall clock, the bench's polling included); drawing the forest takes {render_ms:.0} ms",
        all_shown.as_millis()
    );
    println!(
        "  busiest agent's {} events streamed in: {} ms (the page keeps the last 2,000 rows)",
        events / 5,
        timeline.as_millis()
    );
    println!(
        "  an agent added by another process shown after {} ms",
        live.as_millis()
    );
    println!(
        "  page JS heap: {heap_mb:.1} MB, DOM nodes: {nodes:.0}; memory (PSS) of the page's renderer process: {page_mb:.0} MB, of all Chromium's processes: {rss_mb:.0} MB"
    );
    drop(b);
    let _ = serve.kill();
    let _ = serve.wait();
}
