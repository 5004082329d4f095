//! Stream sessions: the latency Fracta adds to a turn, and the memory it holds per idle
//! session.
//!
//! Per runtime (codex: `codex app-server` JSON-RPC; claude: stream-json on stdin), against the
//! in-process scripted model server (every reply "ok"):
//! - direct: the CLI's own session protocol driven by hand over stdio — the same binary, home,
//!   config and env as Fracta's session — timing each turn from the request written to the
//!   turn's end (`turn/completed`, `result`);
//! - API: `POST /v1/agents/{id}/send` (wait for the turn's end) to a running `fracta serve`
//!   whose session of that runtime is idle;
//! - CLI: `fracta send ID --prompt ... --json` (adds the `fracta` process start).
//!
//! Then opens `FRACTA_BENCH_SESSIONS` (default 8) more idle Codex sessions and reports the
//! growth of `fracta serve`'s resident memory per session (the runtimes' own processes are
//! separate and not counted).
//!
//! `cargo bench -p fracta --bench session`; `FRACTA_BENCH_TURNS` (default 15).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Project, repo_root};
use fracta_model_server::{ModelServer, Script};
use serde_json::{Value, json};

struct Serve {
    child: Child,
    url: String,
    token: String,
    pid: u32,
}

impl Serve {
    fn start(p: &Project) -> Serve {
        let child = p
            .fracta(&["serve"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let file = p.path().join(".fracta/serve.json");
        let start = Instant::now();
        while !file.exists() {
            assert!(start.elapsed() < Duration::from_secs(30), "no serve.json");
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(50));
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        Serve {
            pid: child.id(),
            child,
            url: v["url"].as_str().unwrap().to_string(),
            token: v["token"].as_str().unwrap().to_string(),
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap()
    }

    fn send(&self, http: &reqwest::blocking::Client, id: &str, prompt: &str) -> Value {
        let r = http
            .post(format!("{}/v1/agents/{id}/send", self.url))
            .bearer_auth(&self.token)
            .json(&json!({ "prompt": prompt, "wait": true }))
            .send()
            .unwrap();
        assert!(r.status().is_success(), "{}", r.text().unwrap_or_default());
        r.json().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.child.wait();
    }
}

/// Spawn a detached stream session and wait for its first turn to end.
fn open_session(p: &Project, rt: &str) -> Value {
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--mode",
        "stream",
        "--runtime",
        rt,
        "--task",
        "bench",
        "--prompt",
        "turn 0",
    ]);
    let id = v["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let a = p.record(&id);
        if a["meta"]["turns"] == 1 && a["result"] == "ok" {
            return a;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "session never idle: {a:#}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A session driven by hand over its CLI's stdio protocol.
struct DirectSession {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    rt: String,
    thread: Option<String>,
    next_id: u64,
}

impl DirectSession {
    fn start(p: &Project, rt: &str, agent: &Value, model_url: &str) -> DirectSession {
        let ws = agent["workspace"].as_str().unwrap().to_string();
        let bin = repo_root().join("node_modules/.bin").join(rt);
        let mut c = Command::new(bin);
        c.current_dir(&ws).env_clear().envs(&p.env);
        match rt {
            "codex" => {
                c.args([
                    "app-server",
                    "--listen",
                    "stdio://",
                    "-c",
                    "model=\"gpt-5.5\"",
                ])
                .env(
                    "CODEX_HOME",
                    p.path().join(".fracta/runtimes/codex/codex-home"),
                )
                .env("FAKE_OPENAI_KEY", "sk-openai-test");
            }
            _ => {
                c.args([
                    "-p",
                    "--input-format",
                    "stream-json",
                    "--output-format",
                    "stream-json",
                    "--verbose",
                    "--settings",
                    &format!("{ws}/.claude/settings.json"),
                    "--model",
                    "claude-sonnet-4-5",
                ])
                .env("ANTHROPIC_BASE_URL", model_url)
                .env("ANTHROPIC_API_KEY", "sk-ant-test")
                .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
                .env("DISABLE_TELEMETRY", "1")
                .env("DISABLE_AUTOUPDATER", "1");
            }
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut s = DirectSession {
            stdin: child.stdin.take().unwrap(),
            stdout: BufReader::new(child.stdout.take().unwrap()),
            child,
            rt: rt.to_string(),
            thread: None,
            next_id: 10,
        };
        if rt == "codex" {
            s.write(json!({"id": 1, "method": "initialize", "params": {"clientInfo": {"name": "bench", "version": "0"}}}));
            s.write(json!({"method": "initialized"}));
            s.write(json!({"id": 2, "method": "thread/start", "params": {}}));
            while s.thread.is_none() {
                let v = s.read();
                if v["id"] == 2 {
                    s.thread = v["result"]["thread"]["id"].as_str().map(str::to_string);
                }
            }
        }
        s
    }

    fn write(&mut self, v: Value) {
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        assert!(
            self.stdout.read_line(&mut line).unwrap() > 0,
            "the CLI ended"
        );
        serde_json::from_str(&line).unwrap_or(Value::Null)
    }

    /// One turn, from the request written to the turn's end.
    fn turn(&mut self, prompt: &str) -> Duration {
        let t = Instant::now();
        if self.rt == "codex" {
            self.next_id += 1;
            let msg = json!({"id": self.next_id, "method": "turn/start", "params": {
                "threadId": self.thread, "input": [{"type": "text", "text": prompt}]}});
            self.write(msg);
            while self.read()["method"] != "turn/completed" {}
        } else {
            self.write(json!({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": prompt}]}}));
            while self.read()["type"] != "result" {}
        }
        t.elapsed()
    }
}

impl Drop for DirectSession {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The quiet time before each measured turn.
const GAP: Duration = Duration::from_millis(300);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let turns: usize = std::env::var("FRACTA_BENCH_TURNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15)
        .max(3);
    let sessions: usize = std::env::var("FRACTA_BENCH_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
        .max(1);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = tokio
        .block_on(ModelServer::start(
            Script::parse("fallback: \"ok\"\n", "bench").unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ))
        .unwrap();
    let url = server.url();
    // No child budget: sessions get no MCP gateway (it costs nothing per turn anyway).
    let p = Project::new(&url, true);
    // Every live session holds a running slot; leave room for all of them.
    let cfg = p.path().join("fracta.yaml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replacen("  budgets:\n", "  budgets:\n    max_running: 64\n", 1),
    )
    .unwrap();
    let serve = Serve::start(&p);
    let http = reqwest::blocking::Client::new();
    eprintln!("session bench: {turns} turns per way, model server {url}");
    println!(
        "{:<8} {:>12} {:>12} {:>12} {:>14} {:>9}",
        "runtime", "direct ms", "API ms", "CLI ms", "added/turn ms", "ratio"
    );
    for rt in ["codex", "claude"] {
        let agent = open_session(&p, rt);
        let id = agent["id"].as_str().unwrap().to_string();
        let mut direct = DirectSession::start(&p, rt, &agent, &url);
        // Warm both paths, then interleave.
        direct.turn("warm");
        serve.send(&http, &id, "warm");
        let (mut d, mut a, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..turns {
            // Claude does some work after a turn ends that delays a turn sent straight after
            // it (~45 ms); give every measured turn the same quiet time before it.
            std::thread::sleep(GAP);
            d.push(ms(direct.turn(&format!("turn {i}"))));
            std::thread::sleep(GAP);
            let t = Instant::now();
            let rec = serve.send(&http, &id, &format!("turn {i}"));
            a.push(ms(t.elapsed()));
            assert_eq!(rec["result"], "ok", "{rec:#}");
            std::thread::sleep(GAP);
            let t = Instant::now();
            let out = p
                .fracta(&["send", &id, "--prompt", &format!("cli turn {i}"), "--json"])
                .output()
                .unwrap();
            c.push(ms(t.elapsed()));
            assert!(out.status.success());
        }
        let (dm, am, cm) = (median(d), median(a), median(c));
        println!(
            "{rt:<8} {dm:>12.1} {am:>12.1} {cm:>12.1} {:>14.1} {:>9.3}",
            am - dm,
            am / dm
        );
    }
    // Memory per idle session, on Fracta's side.
    std::thread::sleep(Duration::from_millis(300));
    let before = serve.rss_kib();
    for _ in 0..sessions {
        open_session(&p, "codex");
    }
    std::thread::sleep(Duration::from_millis(300));
    let after = serve.rss_kib();
    println!(
        "fracta serve RSS: {before} KiB with 2 sessions, {after} KiB after {sessions} more idle codex sessions: {:.0} KiB per idle session",
        (after.saturating_sub(before)) as f64 / sessions as f64
    );
    drop(serve);
    tokio.block_on(server.shutdown());
}
