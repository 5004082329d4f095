//! `fracta spawn` from the command line, end to end with the real CLIs: task files and their
//! defaults, model resolution (tier, --model), errors caught before anything starts, the
//! live view without a terminal, and `logs` / `show` / `ps` on the result.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::Project;

const REVIEW: &str = "---\ndescription: Review the latest change\nruntime: codex\ntier: heavy\n---\nReview the latest commit and list REVIEW-BODY-MARKER issues.\n";

fn script(yaml: &str) -> Script {
    Script::parse(yaml, "test").unwrap()
}

/// A project whose model answers everything with `reply`.
fn project(reply: &str) -> Project {
    Project::new(script(&format!("fallback: {reply:?}\n")))
}

fn add_task(p: &Project, name: &str, text: &str) {
    let dir = p.path().join(".fracta/tasks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.md")), text).unwrap();
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// All request bodies the model server got, as one string per request.
fn bodies(p: &Project) -> Vec<String> {
    p.requests()
        .into_iter()
        .map(|r| r.body.to_string())
        .collect()
}

/// `s` as a regex matching itself.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if "\\.+*?()|[]{}^$#&-~".contains(c) {
                format!("\\{c}")
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Filters for values that change between runs: the project folder, agent ids (and their
/// short form), runtime session ids, times, ages and token counts.
pub(super) fn filters(p: &Project, ids: &[&str]) -> Vec<(String, String)> {
    // Agent worktrees: the project's folder in the user's state folder (named after the
    // temporary project folder and a digest of its path).
    let mut f = vec![];
    for dir in [Some(p.path().to_path_buf()), p.path().canonicalize().ok()]
        .into_iter()
        .flatten()
    {
        let root = dir.join("home/.local/state/fracta/worktrees");
        f.push((
            format!(
                r"{}/[a-z0-9_-]+-[0-9a-f]{{12}}",
                escape(&root.display().to_string())
            ),
            "[WORKTREES]".into(),
        ));
    }
    f.push((escape(&p.path().display().to_string()), "[PROJECT]".into()));
    if let Ok(c) = p.path().canonicalize() {
        f.push((escape(&c.display().to_string()), "[PROJECT]".into()));
    }
    for id in ids {
        f.push((escape(id), "[ID]".into()));
        f.push((escape(&id[id.len() - 6..]), "[SHORT]".into()));
    }
    f.extend(
        [
            (r"[0-9A-HJKMNP-TV-Z]{26}", "[ID]"),
            (
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
                "[UUID]",
            ),
            (
                r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?(\[[^\]]*\])?",
                "[TIME]",
            ),
            (r"\b\d\d:\d\d:\d\d\b", "[HMS]"),
            (r"\b\d+(s|m|h) +", "[AGE] "),
            (r", \d+[smhd](\d\d[smh])?\)", ", [TOOK])"),
            (r"pid \d+", "pid [PID]"),
            (r"\b\d+ (in|out|cached)\b", "N $1"),
            (r"\$\d+\.\d+", "$$[COST]"),
            (r"fracta/t-[0-9a-zA-Z]+", "fracta/t-[SUFFIX]"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string())),
    );
    f
}

macro_rules! snapshot {
    ($filters:expr, $name:expr, $value:expr) => {{
        let mut settings = insta::Settings::clone_current();
        for (re, with) in $filters {
            settings.add_filter(&re, with);
        }
        settings.bind(|| insta::assert_snapshot!($name, $value));
    }};
}

/// The agents recorded in the state store.
fn agents(p: &Project) -> Vec<Value> {
    p.json(&["ps", "--all", "--json"])
        .as_array()
        .unwrap()
        .clone()
}

// ---------------------------------------------------------------------------------------
// Task files.

#[test]
fn task_files_set_defaults_and_reach_the_model() {
    let p = project("Reviewed.");
    add_task(&p, "review", REVIEW);
    add_task(&p, "plain", "Just a body, no front matter.\n");

    let out = p.run(&["task", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    snapshot!(filters(&p, &[]), "task_list", stdout(&out));
    let out = p.run(&["task", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    snapshot!(
        filters(&p, &[]),
        "task_list_json",
        serde_json::to_string_pretty(&v).unwrap()
    );

    // The task's runtime (codex) is the default, and its body reaches the model.
    let (code, v) = p.spawn_json(&["--task", "review"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["runtime"], "codex");
    assert_eq!(v["task"], "review");
    assert_eq!(v["result"], "Reviewed.");
    // tier heavy, but codex has no model_tiers: the runtime's model.
    assert_eq!(v["model"], "gpt-5.5");
    assert!(
        bodies(&p)
            .iter()
            .any(|b| b.contains("REVIEW-BODY-MARKER") && b.contains("gpt-5.5")),
        "the task body did not reach the model"
    );
    let shown = p.agent(v["id"].as_str().unwrap());
    assert_eq!(shown["meta"]["tier"], "heavy", "{shown:#}");
    assert_eq!(
        shown["prompt"],
        "Review the latest commit and list REVIEW-BODY-MARKER issues."
    );

    // --prompt is appended to the body.
    let (code, v) = p.spawn_json(&["--task", "review", "--prompt", "APPENDED-MARKER"]);
    assert_eq!(code, 0, "{v:#}");
    let shown = p.agent(v["id"].as_str().unwrap());
    assert_eq!(
        shown["prompt"],
        "Review the latest commit and list REVIEW-BODY-MARKER issues.\n\nAPPENDED-MARKER"
    );
    assert!(
        bodies(&p).iter().any(|b| b.contains("REVIEW-BODY-MARKER")
            && b.contains("APPENDED-MARKER")
            && b.find("REVIEW-BODY-MARKER") < b.find("APPENDED-MARKER")),
        "body + prompt did not reach the model"
    );

    // --runtime overrides the task's runtime.
    let (code, v) = p.spawn_json(&["--task", "review", "--runtime", "claude"]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["runtime"], "claude");
    assert_eq!(v["adapter"], "claude");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert!(
        p.requests()
            .iter()
            .any(|r| r.path.ends_with("/messages")
                && r.body.to_string().contains("REVIEW-BODY-MARKER")),
        "the claude run's request did not carry the task body"
    );
    assert_eq!(agents(&p).len(), 3);
}

// ---------------------------------------------------------------------------------------
// Model resolution.

/// The `model` of the model requests whose body contains `needle`.
fn models_for(p: &Project, needle: &str) -> Vec<String> {
    p.requests()
        .into_iter()
        .filter(|r| r.body.to_string().contains(needle))
        .filter_map(|r| r.body["model"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn tier_maps_through_model_tiers_and_model_wins() {
    let p = project("ok");
    let cfg_path = p.path().join("fracta.yaml");
    let cfg = std::fs::read_to_string(&cfg_path).unwrap();
    let cfg = cfg.replacen(
        "      model: claude-sonnet-4-5\n",
        "      model: claude-sonnet-4-5\n      model_tiers:\n        heavy: H-MODEL\n        light: L-MODEL\n",
        1,
    );
    assert!(cfg.contains("H-MODEL"));
    std::fs::write(&cfg_path, cfg).unwrap();

    let (code, v) = p.spawn_json(&[
        "--task",
        "t",
        "--runtime",
        "claude",
        "--tier",
        "heavy",
        "--prompt",
        "TIER-HEAVY-RUN",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["model"], "H-MODEL");
    let m = models_for(&p, "TIER-HEAVY-RUN");
    assert!(!m.is_empty() && m.iter().all(|m| m == "H-MODEL"), "{m:?}");

    let (code, v) = p.spawn_json(&[
        "--task",
        "t",
        "--tier",
        "heavy",
        "--model",
        "X-MODEL",
        "--prompt",
        "MODEL-FLAG-RUN",
    ]);
    assert_eq!(code, 0, "{v:#}");
    assert_eq!(v["runtime"], "claude");
    assert_eq!(v["model"], "X-MODEL");
    let m = models_for(&p, "MODEL-FLAG-RUN");
    assert!(!m.is_empty() && m.iter().all(|m| m == "X-MODEL"), "{m:?}");
}

// ---------------------------------------------------------------------------------------
// Errors before anything starts.

#[test]
fn bad_requests_fail_before_anything_starts() {
    let p = project("ok");
    add_task(&p, "review", REVIEW);

    let out = p.run(&[
        "spawn",
        "--task",
        "t",
        "--prompt",
        "x",
        "--runtime",
        "claud",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("unknown runtime `claud`"), "{err}");
    for rt in ["claude", "codex", "opencode"] {
        assert!(err.contains(rt), "{err}");
    }
    assert!(err.contains("did you mean `claude`?"), "{err}");

    let out = p.run(&["spawn", "--task", "nosuch"]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("no task `nosuch`"), "{err}");
    assert!(err.contains("known tasks: review"), "{err}");

    let out = p.run(&["spawn", "--task", "t", "--prompt", "x", "--tier", "huge"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("huge"), "{err}");
    for t in ["heavy", "medium", "light"] {
        assert!(err.contains(t), "{err}");
    }

    // Free text is named by its slug, so a name cannot walk out of the tasks folder; one with
    // nothing to name it by is refused.
    let out = p.run(&["spawn", "--task", "../..", "--prompt", "x"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("invalid task name"),
        "{}",
        stderr(&out)
    );

    let out = p.run(&[
        "spawn",
        "--task",
        "t",
        "--prompt",
        "x",
        "--runtime",
        "claude",
        "--host-type",
        "codex",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    assert_eq!(agents(&p), Vec::<Value>::new());
    assert!(p.requests().is_empty());
}

#[test]
fn host_type_is_a_deprecated_alias_of_runtime() {
    let p = project("ok");
    let out = p.run(&[
        "spawn",
        "--json",
        "--task",
        "t",
        "--prompt",
        "HOST-TYPE-RUN",
        "--host-type",
        "codex",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("warning") && err.contains("--host-type is deprecated; use --runtime"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["runtime"], "codex");
    assert!(!models_for(&p, "HOST-TYPE-RUN").is_empty());
}

// ---------------------------------------------------------------------------------------
// Live view, logs, show, ps.

/// The agent branches from the branch the project has checked out (not an assumed `main`),
/// or from `--base`; where it branched from is kept with it.
#[test]
fn the_agent_branches_from_the_current_branch_or_base() {
    let p = project("Done.");
    p.keep_worktrees();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .current_dir(p.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["checkout", "-q", "-b", "feature-x"]);
    std::fs::write(p.path().join("FEATURE.md"), "x\n").unwrap();
    git(&["add", "FEATURE.md"]);
    git(&["commit", "-q", "-m", "feature"]);
    let feature = git(&["rev-parse", "feature-x"]);
    let spawn = |extra: &[&str]| {
        let mut args = vec!["spawn", "--json", "--runtime", "claude", "--prompt", "look"];
        args.extend_from_slice(extra);
        let out = p.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v
    };
    let on_feature = spawn(&[]);
    let branch = on_feature["branch"].as_str().unwrap();
    assert_eq!(
        git(&["merge-base", branch, "feature-x"]),
        feature,
        "branched from feature-x"
    );
    assert_eq!(
        p.agent(on_feature["id"].as_str().unwrap())["meta"]["base"],
        "feature-x"
    );
    let from_main = spawn(&["--base", "main"]);
    let branch = from_main["branch"].as_str().unwrap();
    assert_eq!(
        git(&["merge-base", branch, "main"]),
        git(&["rev-parse", "main"])
    );
    assert_ne!(
        git(&["merge-base", branch, "feature-x"]),
        feature,
        "not from feature-x"
    );
    // A base that does not exist fails the agent, naming the branches there are.
    let out = p.run(&[
        "spawn",
        "--json",
        "--runtime",
        "claude",
        "--prompt",
        "x",
        "--base",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("nope") && err.contains("feature-x"), "{err}");
}

/// `spawn --prompt TEXT` needs no `--task`: the task is named after the prompt's first words,
/// and a free-text `--task` by its slug; both name the agent's branch.
#[test]
fn a_prompt_alone_names_its_task() {
    let p = project("Done.");
    p.keep_worktrees();
    let out = p.run(&[
        "spawn",
        "--json",
        "--runtime",
        "claude",
        "--prompt",
        "Fix bug #12, quickly",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "fix-bug-12-quickly", "{v:#}");
    assert!(
        v["branch"]
            .as_str()
            .unwrap()
            .starts_with("fracta/fix-bug-12-quickly-"),
        "{v:#}"
    );
    let out = p.run(&[
        "spawn",
        "--json",
        "--runtime",
        "claude",
        "--task",
        "Tidy up: the README",
        "--prompt",
        "x",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["task"], "tidy-up-the-readme", "{v:#}");
    // Neither a task nor a prompt: a usage error saying what is missing.
    let out = p.run(&["spawn"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--task"), "{}", stderr(&out));
}

#[test]
fn plain_spawn_then_logs_show_ps() {
    let p = project("All done: LIVE-RESULT.");
    let out = p.run(&[
        "spawn",
        "--task",
        "t",
        "--prompt",
        "say LIVE-PROMPT",
        "--runtime",
        "claude",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    // No terminal: plain progress lines, then the outcome.
    let id = text
        .lines()
        .find_map(|l| l.strip_prefix("succeeded  agent "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no outcome line in:\n{text}"))
        .to_string();
    let short = &id[id.len() - 6..];
    assert!(text.starts_with(&format!("[claude {short}] ")), "{text}");
    assert!(
        text.contains(&format!(
            "[claude {short}] assistant: All done: LIVE-RESULT."
        )),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "escape codes without a terminal:\n{text}"
    );
    assert!(text.contains("\nAll done: LIVE-RESULT.\n"), "{text}");
    let f = filters(&p, &[&id]);
    snapshot!(f.clone(), "live_view", text);
    // The short id the live view shows names the agent, and so does `@last`.
    for name in [short, "@last"] {
        let shown = p.json(&["show", name, "--json"]);
        assert_eq!(shown["id"], id.as_str(), "{name}: {shown:#}");
    }

    // logs: text.
    let out = p.run(&["logs", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let logs = stdout(&out);
    assert!(logs.contains("assistant: All done: LIVE-RESULT."), "{logs}");
    snapshot!(f.clone(), "logs_text", logs);

    // --raw: only the CLI's own JSON lines.
    let out = p.run(&["logs", &id, "--raw"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let raw = stdout(&out);
    let types: Vec<String> = raw
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            v["type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(types.first().map(String::as_str), Some("system"), "{raw}");
    assert_eq!(types.last().map(String::as_str), Some("result"), "{raw}");

    // --json: one stored event per line.
    let events = p.events(&id);
    assert!(events.len() >= types.len(), "{events:#?}");
    assert_eq!(events.last().unwrap()["kind"], "status");
    assert!(events.iter().all(|e| e["kind"] != "unknown"), "{events:#?}");

    // show: text.
    let out = p.run(&["show", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let show = stdout(&out);
    for l in [
        "status        succeeded",
        "task          t",
        "runtime       claude (claude)",
        "model         claude-sonnet-4-5",
        "result        All done: LIVE-RESULT.",
    ] {
        assert!(show.contains(l), "{l:?} not in:\n{show}");
    }
    snapshot!(f.clone(), "show_text", show);

    // ps: text.
    let out = p.run(&["ps"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ps = stdout(&out);
    assert!(ps.starts_with("ID "), "{ps}");
    assert!(ps.contains(short), "the short id: {ps}");
    snapshot!(f, "ps_text", ps);
}

#[test]
fn logs_and_show_of_an_unknown_agent_fail_with_not_found() {
    let p = project("ok");
    for cmd in ["logs", "show"] {
        let out = p.run(&[cmd, "01NOSUCHAGENT0000000000000"]);
        assert_eq!(out.status.code(), Some(4), "{cmd}: {}", stderr(&out));
    }
}

/// An agent whose budgets leave no room for a child gets no MCP gateway (it could only refuse,
/// and the CLI would pay for the MCP handshake at start-up); with room, it gets one.
#[test]
fn the_gateway_is_registered_only_where_a_child_could_be_spawned() {
    for (budgets, registered) in [("    max_depth: 0\n", false), ("    max_depth: 1\n", true)] {
        let p = project("done");
        let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
        let cfg = cfg.replacen("agents:\n", &format!("agents:\n  budgets:\n{budgets}"), 1);
        std::fs::write(p.path().join("fracta.yaml"), cfg).unwrap();
        for rt in ["claude", "codex"] {
            let (code, v) = p.spawn_json(&["--task", "t", "--prompt", "hi", "--runtime", rt]);
            assert_eq!(code, 0, "{v:#}");
            let command = p.agent(v["id"].as_str().unwrap())["meta"]["command"]
                .as_str()
                .unwrap()
                .to_string();
            let wired = command.contains("--mcp-config") || command.contains("mcp_servers.fracta");
            assert_eq!(wired, registered, "{budgets}{rt}: {command}");
        }
        let offered = bodies(&p).iter().any(|b| b.contains("mcp__fracta"));
        assert_eq!(offered, registered, "{budgets}: tools offered to the model");
    }
}
