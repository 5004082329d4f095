//! Fracta's overhead over running an agent CLI by hand.
//!
//! For each runtime (claude, codex, opencode) the same one-turn prompt runs against the
//! in-process scripted model server five ways, interleaved (each run rotates their order and
//! gives each the same quiet time before it) after one warm-up of each:
//! - direct: the CLI by hand in the repository itself, with the argv (`meta.command` of the
//!   first spawn), env and config files Fracta uses (copied into the repository), minus
//!   Fracta's MCP gateway: what a person compares Fracta with;
//! - direct + MCP: the same with the MCP wiring kept, pointed at an in-process MCP server that
//!   answers at once with Fracta's own tool list (taken from `fracta mcp`), in a worktree of
//!   its own: the CLI as a person would run it by hand with an MCP server, so that what the
//!   CLI's own MCP client costs is told apart from what Fracta adds;
//! - direct fresh: the same in a new git worktree, the fresh state every spawn gives the CLI
//!   (Codex's home is shared by a runtime's agents, `.fracta/runtimes/<name>/codex-home`);
//! - `fracta spawn --json`;
//! - the same in a project whose budgets leave the agent no child to spawn (`max_depth: 0`):
//!   Fracta then registers no MCP gateway, so this is Fracta without the CLI's MCP handshake.
//!
//! Prints medians, p90s, differences and ratios, and Fracta's own costs around the CLI process
//! (from the agent's `created_at` / `started_at` / `ended_at`).
//!
//! First, Fracta's own whole-process time: `fracta spawn` of an INSTANT STAND-IN CLI (the
//! `instant` runtime: a script that prints a recorded Codex turn and exits), against that
//! script run by hand.
//!
//! `CARGO_TARGET_DIR=... cargo bench -p fracta --bench overhead`
//! Env: `FRACTA_BENCH_RUNS` (default 7), `FRACTA_BENCH_RUNTIMES` (default `claude,codex,opencode`),
//! `FRACTA_BENCH_OWN_RUNS` (default 21; the instant CLI).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fracta_model_server::{ModelServer, Script};
use serde_json::Value;

mod common;

use common::{Project, git, repo_root};

const PROMPT: &str = "Reply with ok";

/// Quiet time before each measured run.
const SETTLE: Duration = Duration::from_millis(150);

/// `LaunchSpec::display_command`'s quoting, to compare our argv with `meta.command`.
fn display_command(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(|a| {
            if a.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./=:@".contains(c))
                && !a.is_empty()
            {
                a.to_string()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The direct invocation: program, argv, cwd and full environment, as Fracta builds them.
struct Direct {
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
}

/// Split `LaunchSpec::display_command` back into argv (bare words and `'…'` with `'\''`).
fn split_command(cmd: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = cmd.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            ' ' => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

/// Drop the `[mcp_servers.*]` tables (Fracta's gateway) from a Codex `config.toml`.
fn strip_mcp_toml(text: &str) -> String {
    let mut skip = false;
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            skip = t.starts_with("[mcp_servers");
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The CLI as a person would run it by hand: Fracta's argv (from `meta.command`), env and
/// config files, minus Fracta's MCP gateway (it lives inside the `fracta` process, so it is
/// gone once the spawn ends, and a hand-run CLI has no Fracta to talk to). The gateway's cost
/// therefore counts as Fracta's overhead.
fn direct_for(rt: &str, p: &Project, shown: &Value, url: &str) -> Direct {
    let ws = PathBuf::from(shown["workspace"].as_str().unwrap());
    match rt {
        "codex" => {
            let f = ws.join(".codex/config.toml");
            let t = std::fs::read_to_string(&f).unwrap();
            std::fs::write(&f, strip_mcp_toml(&t)).unwrap();
        }
        "opencode" => {
            let f = ws.join("opencode.json");
            let mut v: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
            if let Some(o) = v.as_object_mut() {
                o.remove("mcp");
            }
            std::fs::write(&f, serde_json::to_string_pretty(&v).unwrap() + "\n").unwrap();
        }
        _ => {}
    }
    // By hand in the repository itself, with Fracta's config files copied there (untracked).
    let repo = p.path().to_path_buf();
    for f in FRACTA_FILES {
        let from = ws.join(f);
        if from.is_file() {
            std::fs::create_dir_all(repo.join(f).parent().unwrap()).unwrap();
            std::fs::copy(&from, repo.join(f)).unwrap();
        }
    }
    let env = direct_env(rt, p, &repo, url);
    let command = shown["meta"]["command"].as_str().unwrap();
    let mut argv = split_command(command);
    assert_eq!(display_command(&argv[0], &argv[1..]), command);
    assert_eq!(argv.remove(0), rt, "{command}");
    let mut args = Vec::new();
    let mut it = argv.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--mcp-config" => {
                it.next();
            }
            "--strict-mcp-config" => {}
            // Codex's gateway overrides.
            "-c" => {
                let v = it.next().unwrap();
                if !v.starts_with("mcp_servers.fracta.") {
                    args.extend(["-c".to_string(), v]);
                }
            }
            _ => args.push(a.replace(&ws.display().to_string(), &repo.display().to_string())),
        }
    }
    eprintln!("  direct: {}", display_command(rt, &args));
    Direct::cli(rt, args, repo, env)
}

/// The runtime config files Fracta writes into a workspace.
const FRACTA_FILES: [&str; 3] = [
    ".claude/settings.json",
    ".codex/config.toml",
    "opencode.json",
];

/// The environment of a CLI run by hand in `ws`: the project's, plus the env Fracta gives
/// the runtime (the settings it pins, the model server's address and key, Codex's home).
fn direct_env(rt: &str, p: &Project, ws: &Path, url: &str) -> BTreeMap<String, String> {
    let home = p
        .path()
        .join(".fracta/runtimes")
        .join(rt)
        .join("codex-home");
    let mut env = p.env.clone();
    let extra: Vec<(&str, String)> = match rt {
        "claude" => vec![
            ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".into()),
            ("DISABLE_TELEMETRY", "1".into()),
            ("DISABLE_AUTOUPDATER", "1".into()),
            ("DISABLE_ERROR_REPORTING", "1".into()),
            ("ANTHROPIC_BASE_URL", url.into()),
            ("ANTHROPIC_API_KEY", "sk-ant-test".into()),
        ],
        "codex" => vec![
            ("CODEX_HOME", home.display().to_string()),
            ("FAKE_OPENAI_KEY", "sk-openai-test".into()),
        ],
        "opencode" => vec![
            ("OPENCODE_DISABLE_AUTOUPDATE", "1".into()),
            ("OPENCODE_DISABLE_SHARE", "1".into()),
            ("OPENCODE_DISABLE_MODELS_FETCH", "1".into()),
            ("NPM_CONFIG_OFFLINE", "true".into()),
        ],
        _ => unreachable!(),
    };
    for (k, v) in extra {
        env.insert(k.to_string(), v);
    }
    env.insert("PWD".into(), ws.display().to_string());
    env
}

/// The first `http://127.0.0.1:PORT/mcp` in `text`: Fracta's gateway as the CLI was given it.
fn gateway_url(text: &str) -> Option<String> {
    const HEAD: &str = "http://127.0.0.1:";
    let at = text.find(HEAD)?;
    let rest = &text[at + HEAD.len()..];
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    (digits > 0 && rest[digits..].starts_with("/mcp"))
        .then(|| format!("{HEAD}{}/mcp", &rest[..digits]))
}

/// The CLI by hand with the MCP wiring Fracta gave it (config files, `--mcp-config`, `-c`
/// overrides), pointed at `mcp_url` instead of the gateway, in a new worktree of its own so
/// that the plain direct runs keep their files without it. Built before `direct_for` strips
/// the gateway from the first spawn's files.
fn direct_mcp_for(rt: &str, p: &Project, shown: &Value, url: &str, mcp_url: &str) -> Direct {
    let old_ws = PathBuf::from(shown["workspace"].as_str().unwrap());
    let ws = p.dir.path().join("bench-mcp");
    new_worktree(p, "bench/mcp", &ws);
    let command = shown["meta"]["command"].as_str().unwrap();
    let mut argv = split_command(command);
    assert_eq!(argv.remove(0), rt, "{command}");
    // Fracta's own wiring: the files it wrote, and Claude's `--mcp-config` file.
    let mut texts: Vec<(PathBuf, String)> = FRACTA_FILES
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(old_ws.join(f)).ok()?;
            Some((ws.join(f), text))
        })
        .collect();
    let mcp_config = argv.iter().position(|a| a == "--mcp-config").map(|i| i + 1);
    if let Some(i) = mcp_config {
        let text = std::fs::read_to_string(&argv[i]).unwrap();
        let copy = p.dir.path().join("bench-mcp.json");
        argv[i] = copy.display().to_string();
        texts.push((copy, text));
    }
    let gateway = gateway_url(command)
        .or_else(|| texts.iter().find_map(|(_, t)| gateway_url(t)))
        .unwrap_or_else(|| panic!("no gateway URL in the {rt} spawn's command or files"));
    for (path, text) in texts {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text.replace(&gateway, mcp_url)).unwrap();
    }
    let (old, new) = (old_ws.display().to_string(), ws.display().to_string());
    let args: Vec<String> = argv
        .iter()
        .map(|a| a.replace(&gateway, mcp_url).replace(&old, &new))
        .collect();
    let mut env = direct_env(rt, p, &ws, url);
    env.insert("FRACTA_AGENT_TOKEN".into(), "bench-token".into());
    eprintln!("  direct + MCP: {}", display_command(rt, &args));
    Direct::cli(rt, args, ws, env)
}

/// Fracta's MCP tools as `tools/list` gives them, from `fracta mcp` over stdio.
fn fracta_tools(p: &Project) -> Value {
    let mut child = p
        .fracta(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ];
    {
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["id"] == 2)
        .map(|v| v["result"]["tools"].clone())
        .filter(Value::is_array)
        .expect("`fracta mcp` listed no tools")
}

/// An MCP server (streamable HTTP, JSON answers) that answers at once with `tools`: what the
/// CLI connects to in the direct + MCP runs. Returns its URL.
async fn start_mcp_stub(tools: Value) -> String {
    use axum::Json;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};

    async fn rpc(State(tools): State<Arc<Value>>, Json(req): Json<Value>) -> Response {
        let Some(id) = req.get("id").cloned() else {
            return StatusCode::ACCEPTED.into_response();
        };
        let result = match req["method"].as_str() {
            Some("initialize") => serde_json::json!({
                "protocolVersion": req["params"]["protocolVersion"],
                "capabilities": { "tools": {} },
                "serverInfo": { "name": "fracta", "version": env!("CARGO_PKG_VERSION") },
            }),
            Some("tools/list") => serde_json::json!({ "tools": *tools }),
            _ => serde_json::json!({}),
        };
        Json(serde_json::json!({ "jsonrpc": "2.0", "id": id, "result": result })).into_response()
    }
    let app = axum::Router::new()
        .route(
            "/mcp",
            axum::routing::post(rpc)
                .get(|| async { StatusCode::METHOD_NOT_ALLOWED })
                .delete(|| async { StatusCode::METHOD_NOT_ALLOWED }),
        )
        .with_state(Arc::new(tools));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/mcp")
}

impl Direct {
    /// The project's pinned `rt` CLI (`node_modules/.bin`), run with `args` in `cwd`.
    fn cli(rt: &str, args: Vec<String>, cwd: PathBuf, env: BTreeMap<String, String>) -> Direct {
        Direct {
            program: repo_root().join("node_modules/.bin").join(rt),
            args,
            cwd,
            env,
        }
    }
}

fn run_direct(d: &Direct) -> Duration {
    let t = Instant::now();
    let out = Command::new(&d.program)
        .args(&d.args)
        .current_dir(&d.cwd)
        .env_clear()
        .envs(&d.env)
        .stdin(Stdio::null())
        .process_group(0)
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "direct {} failed: {:?}\n{}\n{}",
        d.program.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

/// `git worktree add` of a new `branch` from main at `ws`.
fn new_worktree(p: &Project, branch: &str, ws: &Path) {
    git(
        p.path(),
        &[
            "worktree",
            "add",
            "--quiet",
            "-b",
            branch,
            &ws.display().to_string(),
            "main",
        ],
    );
}

/// The same invocation in fresh state, as every `fracta spawn` gets it: a new git worktree
/// (a new cwd for the CLI).
/// Prepared untimed, so timing it isolates the CLI's own cost of starting fresh.
fn fresh_copy(d: &Direct, p: &Project, i: usize) -> Direct {
    // Outside the repository, as Fracta's own worktrees are.
    let ws = p.dir.path().join(format!("bench-fresh/{i}"));
    new_worktree(p, &format!("bench/fresh-{i}"), &ws);
    for f in FRACTA_FILES {
        let from = d.cwd.join(f);
        if from.is_file() {
            std::fs::create_dir_all(ws.join(f).parent().unwrap()).unwrap();
            std::fs::copy(&from, ws.join(f)).unwrap();
        }
    }
    let old_ws = d.cwd.display().to_string();
    let new_ws = ws.display().to_string();
    let args = d.args.iter().map(|a| a.replace(&old_ws, &new_ws)).collect();
    let mut env = d.env.clone();
    env.insert("PWD".into(), new_ws);
    Direct {
        program: d.program.clone(),
        args,
        cwd: ws,
        env,
    }
}

/// Fixed costs of one `fracta spawn`, from the agent's timestamps and the bench's clock.
#[derive(Default, Clone, Copy)]
struct Phases {
    /// `fracta` exec → CLI started (`started_at`).
    before: f64,
    /// Agent recorded (`created_at`) → CLI started.
    created_to_started: f64,
    /// CLI started → agent ended (`started_at` → `ended_at`, includes the leftovers commit).
    cli: f64,
    /// Agent ended (`ended_at`) → `fracta` exited.
    after: f64,
}

fn ts(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

fn run_fracta(p: &Project, rt: &str) -> (Duration, Value, Phases) {
    let wall0 = jiff::Timestamp::now();
    let t = Instant::now();
    let out = p
        .fracta(&[
            "spawn",
            "--json",
            "--task",
            "bench",
            "--runtime",
            rt,
            "--prompt",
            PROMPT,
        ])
        .output()
        .unwrap();
    let took = t.elapsed();
    let wall1 = jiff::Timestamp::now();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "spawn printed no JSON ({e}); exit {:?}\n{}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert_eq!(v["status"], "succeeded", "{v:#}");
    let shown = p.record(v["id"].as_str().unwrap());
    let ms = |a: jiff::Timestamp, b: jiff::Timestamp| b.duration_since(a).as_secs_f64() * 1e3;
    let started = ts(&shown["started_at"]);
    let phases = Phases {
        before: ms(wall0, started),
        created_to_started: ms(ts(&shown["created_at"]), started),
        cli: ms(started, ts(&shown["ended_at"])),
        after: ms(ts(&shown["ended_at"]), wall1),
    };
    (took, shown, phases)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn median(v: &[f64]) -> f64 {
    let s = sorted(v.to_vec());
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The median over runs of `f(a[i], b[i])` (a run's variants are measured one after another,
/// so a slow minute slows both), with its 90 % bootstrap interval: 2,000 resamples of the runs
/// with replacement, from a fixed seed so that a pass prints the same interval for the same
/// figures. On a shared machine, single medians move by 5–15 % between passes; the interval
/// says how far this pass's runs alone would let the figure move.
fn paired(a: &[f64], b: &[f64], f: impl Fn(f64, f64) -> f64) -> (f64, f64, f64) {
    let per_run: Vec<f64> = a.iter().zip(b).map(|(x, y)| f(*x, *y)).collect();
    let n = per_run.len();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        // xorshift64: plenty for picking runs.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let resampled = sorted(
        (0..2000)
            .map(|_| {
                let pick: Vec<f64> = (0..n)
                    .map(|_| per_run[(next() % n as u64) as usize])
                    .collect();
                median(&pick)
            })
            .collect(),
    );
    (
        median(&per_run),
        pct(&resampled, 5.0),
        pct(&resampled, 95.0),
    )
}

/// A paired ratio as `1.05 (0.98–1.12)`.
fn ratio_ci(a: &[f64], b: &[f64]) -> String {
    let (m, lo, hi) = paired(a, b, |x, y| x / y);
    format!("{m:.3} ({lo:.2}–{hi:.2})")
}

struct Row {
    rt: String,
    direct: Vec<f64>,
    /// The CLI by hand with an instant MCP server wired in.
    direct_mcp: Vec<f64>,
    fresh: Vec<f64>,
    fracta: Vec<f64>,
    /// `fracta spawn` of an agent that gets no gateway (`max_depth: 0`).
    leaf: Vec<f64>,
    phases: Vec<Phases>,
    /// `fracta ps --json`: process start, config load, state open, and nothing else.
    ps: Vec<f64>,
}

fn bench_runtime(rt: &str, runs: usize, url: &str, mcp_url: &str) -> Row {
    let p = Project::new(url, false);
    let leaf = Project::new(url, true);
    // Warm-up of Fracta; its workspace and files are what the direct runs reuse. An agent
    // that changes nothing leaves no worktree, so for this one spawn a setup command leaves
    // a file there (committed as the agent's work); the measured spawns have no setup.
    let cfg_path = p.path().join("fracta.yaml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let keep = cfg.replacen(
        "project:\n",
        "project:\n  setup: [\"echo kept > .bench-keep\"]\n",
        1,
    );
    assert_ne!(keep, cfg, "the bench config has a project section");
    std::fs::write(&cfg_path, keep).unwrap();
    let (_, shown, _) = run_fracta(&p, rt);
    std::fs::write(&cfg_path, cfg).unwrap();
    assert!(
        shown["workspace"].is_string(),
        "the warm-up spawn kept its worktree: {shown:#}"
    );
    run_fracta(&leaf, rt);
    let m = direct_mcp_for(rt, &p, &shown, url, mcp_url);
    let d = direct_for(rt, &p, &shown, url);
    run_direct(&m);
    run_direct(&d);
    run_direct(&fresh_copy(&d, &p, 0));
    let mut row = Row {
        rt: rt.to_string(),
        direct: vec![],
        direct_mcp: vec![],
        fresh: vec![],
        fracta: vec![],
        leaf: vec![],
        phases: vec![],
        ps: vec![],
    };
    for i in 0..runs {
        let f = fresh_copy(&d, &p, i + 1);
        // Each run starts the order one place further along, and each measurement starts
        // after the same quiet time, so that what one leaves behind (a CLI's background
        // helpers, page cache, the model server's state) falls on all four alike.
        let (mut a, mut c, mut b, mut l, mut am) = Default::default();
        let mut ph = Phases::default();
        for k in 0..5 {
            std::thread::sleep(SETTLE);
            match (i + k) % 5 {
                0 => a = run_direct(&d),
                1 => c = run_direct(&f),
                2 => (b, _, ph) = run_fracta(&p, rt),
                3 => am = run_direct(&m),
                _ => (l, _, _) = run_fracta(&leaf, rt),
            }
        }
        let t = Instant::now();
        let ps = p.fracta(&["ps", "--all", "--json"]).output().unwrap();
        assert!(ps.status.success());
        row.ps.push(ms(t.elapsed()));
        eprintln!(
            "  {rt} run {}/{runs}: direct {:.0} ms, direct fresh {:.0} ms, direct + MCP {:.0} ms, fracta {:.0} ms, fracta (no gateway) {:.0} ms",
            i + 1,
            ms(a),
            ms(c),
            ms(am),
            ms(b),
            ms(l)
        );
        row.direct_mcp.push(ms(am));
        row.leaf.push(ms(l));
        row.direct.push(ms(a));
        row.fresh.push(ms(c));
        row.fracta.push(ms(b));
        row.phases.push(ph);
    }
    row
}

/// Fracta's own whole-process cost: `fracta spawn` of the instant stand-in CLI (a script that
/// prints a recorded Codex turn at once), interleaved with that script run by hand.
struct Own {
    /// `fracta spawn --json --runtime instant`, whole process.
    spawn: Vec<f64>,
    /// The instant CLI by hand (its own start-up: `sh` and `cat`).
    by_hand: Vec<f64>,
    phases: Vec<Phases>,
}

fn bench_own(url: &str, runs: usize) -> Own {
    let p = Project::new(url, false);
    let cli = common::instant_cli();
    let by_hand = || {
        let t = Instant::now();
        let out = Command::new(&cli)
            .args(["exec", "--json", "--", PROMPT])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success());
        ms(t.elapsed())
    };
    // Warm-up: the first spawn creates the state store and Codex's home.
    run_fracta(&p, "instant");
    by_hand();
    let mut own = Own {
        spawn: vec![],
        by_hand: vec![],
        phases: vec![],
    };
    for i in 0..runs {
        for k in 0..2 {
            std::thread::sleep(Duration::from_millis(50));
            if (i + k) % 2 == 0 {
                let (took, _, ph) = run_fracta(&p, "instant");
                own.spawn.push(ms(took));
                own.phases.push(ph);
            } else {
                own.by_hand.push(by_hand());
            }
        }
    }
    own
}

/// Print a table: a title, then one line per runtime, each column as wide as its header.
fn table(title: &str, headers: &[&str], rows: &[Row], cells: impl Fn(&Row) -> Vec<String>) {
    println!();
    println!("{title}");
    let mut line = format!("{:<9}", "runtime");
    for h in headers {
        line.push_str(&format!(" {h:>w$}", w = h.chars().count().max(7)));
    }
    println!("{line}");
    for r in rows {
        let mut line = format!("{:<9}", r.rt);
        for (h, c) in headers.iter().zip(cells(r)) {
            line.push_str(&format!(" {c:>w$}", w = h.chars().count().max(7)));
        }
        println!("{line}");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing useful. Ignore both.
    let runs: usize = std::env::var("FRACTA_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(7)
        .max(1);
    let runtimes =
        std::env::var("FRACTA_BENCH_RUNTIMES").unwrap_or_else(|_| "claude,codex,opencode".into());
    for b in ["claude", "codex", "opencode"] {
        let p = repo_root().join("node_modules/.bin").join(b);
        assert!(
            p.exists(),
            "{} is missing: run `npm ci` in {}",
            p.display(),
            repo_root().display()
        );
    }
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let script = Script::parse("fallback: \"ok\"\n", "bench").unwrap();
    let server = tokio
        .block_on(ModelServer::start(script, "127.0.0.1:0".parse().unwrap()))
        .unwrap();
    let url = server.url();
    eprintln!("overhead bench: {runs} runs per runtime, prompt {PROMPT:?}, model server {url}");
    let tools = fracta_tools(&Project::new(&url, false));
    let mcp_url = tokio.block_on(start_mcp_stub(tools));
    eprintln!("instant MCP server with Fracta's tools: {mcp_url}");

    let own_runs: usize = std::env::var("FRACTA_BENCH_OWN_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21)
        .max(1);
    eprintln!(
        "Fracta's own time: {own_runs} × (fracta spawn of the instant CLI, the instant CLI by hand)"
    );
    let own = bench_own(&url, own_runs);

    let mut rows = Vec::new();
    for rt in runtimes.split(',').map(str::trim).filter(|r| !r.is_empty()) {
        eprintln!(
            "{rt}: warm-up, then {runs} × (direct, direct fresh, direct + MCP, fracta, fracta without gateway)"
        );
        rows.push(bench_runtime(rt, runs, &url, &mcp_url));
        server.clear_requests();
    }

    let ms0 = |v: f64| format!("{v:.0}");
    let ratio = |v: f64| format!("{v:.3}");
    table(
        &format!("Wall clock per one-turn run, {runs} runs each (ms):"),
        &[
            "direct med",
            "fracta med",
            "diff",
            "ratio",
            "direct p90",
            "fracta p90",
            "fresh med",
            "fresh p90",
            "fracta/fresh",
            "paired ratio (90% interval)",
        ],
        &rows,
        |r| {
            let (dm, fm, xm) = (median(&r.direct), median(&r.fracta), median(&r.fresh));
            vec![
                ms0(dm),
                ms0(fm),
                ms0(fm - dm),
                ratio(fm / dm),
                ms0(pct(&sorted(r.direct.clone()), 90.0)),
                ms0(pct(&sorted(r.fracta.clone()), 90.0)),
                ms0(xm),
                ms0(pct(&sorted(r.fresh.clone()), 90.0)),
                ratio(fm / xm),
                ratio_ci(&r.fracta, &r.direct),
            ]
        },
    );
    table(
        "Without the MCP gateway (budgets leave the agent no child: max_depth 0), ms:",
        &["direct med", "leaf med", "diff", "ratio", "leaf p90"],
        &rows,
        |r| {
            let (dm, lm) = (median(&r.direct), median(&r.leaf));
            vec![
                ms0(dm),
                ms0(lm),
                ms0(lm - dm),
                ratio(lm / dm),
                ms0(pct(&sorted(r.leaf.clone()), 90.0)),
            ]
        },
    );
    table(
        "The CLI by hand with an MCP server wired in (one that answers at once, with Fracta's tools), ms:",
        &[
            "direct med",
            "direct+MCP med",
            "CLI MCP cost",
            "fracta med",
            "fracta - d+MCP",
            "fracta/d+MCP",
        ],
        &rows,
        |r| {
            let (dm, mm, fm) = (median(&r.direct), median(&r.direct_mcp), median(&r.fracta));
            vec![
                ms0(dm),
                ms0(mm),
                ms0(mm - dm),
                ms0(fm),
                ms0(fm - mm),
                ratio(fm / mm),
            ]
        },
    );
    table(
        "Fracta's own costs around the CLI (medians, ms):",
        &[
            "exec→CLI start",
            "recorded→CLI start",
            "CLI→ended",
            "ended→exit",
            "fracta ps",
        ],
        &rows,
        |r| {
            let col = |f: fn(&Phases) -> f64| median(&r.phases.iter().map(f).collect::<Vec<_>>());
            vec![
                ms0(col(|p| p.before)),
                ms0(col(|p| p.created_to_started)),
                ms0(col(|p| p.cli)),
                ms0(col(|p| p.after)),
                ms0(median(&r.ps)),
            ]
        },
    );
    println!();
    println!(
        "Fracta's own time: `fracta spawn` of the INSTANT STAND-IN CLI (a script printing a recorded Codex turn), {own_runs} runs (ms):"
    );
    let (sm, hm) = (median(&own.spawn), median(&own.by_hand));
    let col = |f: fn(&Phases) -> f64| median(&own.phases.iter().map(f).collect::<Vec<_>>());
    println!(
        "  whole process: median {sm:.1}, p90 {:.1}; the instant CLI by hand {hm:.1}; Fracta's own (spawn - by hand) {:.1}",
        pct(&sorted(own.spawn.clone()), 90.0),
        sm - hm
    );
    let (om, lo, hi) = paired(&own.spawn, &own.by_hand, |s, h| s - h);
    println!(
        "  Fracta's own, paired (each spawn less the by-hand run beside it): median {om:.1}, 90% interval {lo:.1}–{hi:.1}"
    );
    println!(
        "  exec→CLI start {:.1}, recorded→CLI start {:.1}, CLI→ended {:.1}, ended→exit {:.1}",
        col(|p| p.before),
        col(|p| p.created_to_started),
        col(|p| p.cli),
        col(|p| p.after)
    );
    println!();
    println!(
        "direct: the CLI run by hand IN THE REPOSITORY with Fracta's argv, env and config files (copied there), and the first spawn's Codex home."
    );
    println!(
        "  `codex` by hand is npm's Node shim, which starts Codex's native binary; Fracta starts that binary itself (80-120 ms less a run)."
    );
    println!(
        "fresh: the same, but each run in a new git worktree outside the repository, as every spawn gets."
    );
    println!(
        "direct+MCP: direct with Fracta's MCP wiring kept but pointed at an in-process MCP server that answers at once; CLI MCP cost: direct+MCP - direct."
    );
    println!(
        "paired ratio: the median of each run's fracta / direct (a run's variants are measured one after another), with its 90% bootstrap interval."
    );
    println!(
        "fracta: `fracta spawn --json` with the MCP gateway registered (the CLI connects to it at start-up); leaf: the same without it."
    );
    println!(
        "exec→CLI start: spawning `fracta` → the agent's started_at; recorded→CLI start: created_at → started_at;"
    );
    println!(
        "CLI→ended: started_at → ended_at (the CLI's run plus the leftovers commit); ended→exit: ended_at → `fracta` exited;"
    );
    println!("fracta ps: one `fracta ps --all --json` (process start, config load, state open).");
    tokio.block_on(server.shutdown());
}
