//! Adapter tests: the launch each adapter describes (argv, env, generated files) as insta
//! snapshots, and the parsers run over the transcripts captured from the real pinned CLIs
//! (`crates/core/fixtures/transcripts/<cli>/<case>.jsonl`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fracta_config::{AdapterKind, Project, RuntimeEntry};
use serde_json::{Value, json};

use super::{ApiKeyHelper, LaunchContext, Outcome, adapter_for};
use crate::launch::LaunchSpec;

const KINDS: [AdapterKind; 3] = [
    AdapterKind::Claude,
    AdapterKind::Codex,
    AdapterKind::Opencode,
];

fn name(kind: AdapterKind) -> &'static str {
    match kind {
        AdapterKind::Claude => "claude",
        AdapterKind::Codex => "codex",
        AdapterKind::Opencode => "opencode",
        AdapterKind::Gemini => "gemini",
        AdapterKind::Acp => "acp",
    }
}

/// The seed's allowed tools.
fn project() -> Project {
    Project {
        allowed_tools: [
            "Read",
            "Edit",
            "Write",
            "Glob",
            "Grep",
            "Bash(git *)",
            "Bash(go *)",
        ]
        .map(String::from)
        .to_vec(),
        ..Project::default()
    }
}

fn runtime(kind: AdapterKind, native: Option<Value>) -> RuntimeEntry {
    let mut rt: RuntimeEntry =
        serde_yaml_ng::from_str(&format!("adapter: {}", name(kind))).unwrap();
    rt.native_config = native;
    rt
}

/// What a launch looks like: what varies between cases is passed in, the rest is fixed.
#[derive(Default)]
struct Case {
    native: Option<Value>,
    helper: Option<ApiKeyHelper>,
    resume: Option<&'static str>,
    model: Option<&'static str>,
    args: Vec<String>,
}

fn launch(kind: AdapterKind, case: &Case) -> LaunchSpec {
    let mut rt = runtime(kind, case.native.clone());
    rt.args = case.args.clone();
    let project = project();
    let env = BTreeMap::from([("FAKE_KEY".to_string(), "sk-test".to_string())]);
    let ctx = LaunchContext {
        agent_id: "ag-0001",
        prompt: "Review the change and say what's wrong.",
        model: case.model,
        resume_token: case.resume,
        workspace: Path::new("/ws"),
        runtime_home: Path::new("/home/agent"),
        runtime_state: Path::new("/project/.fracta/runtimes/rt"),
        runtime: &rt,
        project: &project,
        env: &env,
        api_key_helper: case.helper.as_ref(),
        session: None,
        gateway: None,
    };
    adapter_for(kind).batch_launch(&ctx).unwrap()
}

/// Snapshot a launch: the spec (files listed by path; `links` depend on the user's own
/// Codex login, so they are checked and left out) and each generated file on its own.
fn snapshot_launch(label: &str, spec: &LaunchSpec) {
    for l in &spec.links {
        assert_eq!(
            l.link,
            PathBuf::from("/project/.fracta/runtimes/rt/codex-home/auth.json")
        );
    }
    let mut v = serde_json::to_value(spec).unwrap();
    let obj = v.as_object_mut().unwrap();
    obj.remove("links");
    for f in obj["files"].as_array_mut().unwrap() {
        f.as_object_mut().unwrap().remove("contents");
    }
    insta::assert_yaml_snapshot!(format!("{label}__spec"), v);
    for f in &spec.files {
        let file = f
            .path
            .strip_prefix("/")
            .unwrap()
            .display()
            .to_string()
            .replace('/', "_");
        insta::assert_snapshot!(format!("{label}__{file}"), f.contents);
    }
}

fn file<'a>(spec: &'a LaunchSpec, path: &str) -> &'a str {
    &spec
        .files
        .iter()
        .find(|f| f.path == Path::new(path))
        .unwrap_or_else(|| panic!("no {path} in {:?}", spec.files))
        .contents
}

// ---------------------------------------------------------------------------------------
// Generated launches.

/// Gemini CLI over ACP: `gemini --acp --model M`, its stdin piped, its settings file in the
/// workspace (API-key auth, nothing reaching for the network, subagents off), the
/// workspace trusted through the env.
#[test]
fn gemini_launch() {
    let spec = launch(
        AdapterKind::Gemini,
        &Case {
            model: Some("gemini-2.5-pro"),
            ..Case::default()
        },
    );
    snapshot_launch("gemini_plain", &spec);
    assert_eq!(spec.stdin, crate::launch::Stdin::Piped);
    let s: Value = serde_json::from_str(file(&spec, "/ws/.gemini/settings.json")).unwrap();
    assert_eq!(s["experimental"]["enableAgents"], false);
    assert_eq!(s["tools"]["exclude"], json!(["invoke_agent"]));
    // The session's init: the workspace and the tool rules (no gateway in this case).
    let init = &spec.session_init.as_ref().unwrap().0;
    assert_eq!(init["cwd"], "/ws");
    assert_eq!(init["allowed_tools"][0], "Read");
}

/// A generic ACP runtime is its `command` and `args`; without a `command` it cannot start.
#[test]
fn acp_launch_is_the_runtimes_command() {
    let mut rt: RuntimeEntry =
        serde_yaml_ng::from_str("adapter: acp\ncommand: qwen\nargs: [--acp]").unwrap();
    let project = project();
    let env = BTreeMap::new();
    let ctx = |rt: &RuntimeEntry| -> Result<LaunchSpec, super::AdapterError> {
        let gw = crate::launch::Gateway {
            url: "http://127.0.0.1:9/mcp".into(),
            token: "TOKEN-1".into(),
        };
        let ctx = LaunchContext {
            agent_id: "ag-0001",
            prompt: "p",
            model: None,
            resume_token: None,
            workspace: Path::new("/ws"),
            runtime_home: Path::new("/home/agent"),
            runtime_state: Path::new("/project/.fracta/runtimes/rt"),
            runtime: rt,
            project: &project,
            env: &env,
            api_key_helper: None,
            session: None,
            gateway: Some(&gw),
        };
        adapter_for(AdapterKind::Acp).stream_launch(&ctx)
    };
    let spec = ctx(&rt).unwrap();
    assert_eq!(spec.display_command(), "qwen --acp");
    let init = &spec.session_init.as_ref().unwrap().0;
    assert_eq!(
        init["mcp_servers"][0]["headers"][0]["value"],
        "Bearer TOKEN-1"
    );
    // The token is in no rendering of the spec.
    assert!(!serde_json::to_string(&spec).unwrap().contains("TOKEN-1"));
    assert!(!format!("{spec:?}").contains("TOKEN-1"));
    rt.command = None;
    let e = ctx(&rt).unwrap_err().to_string();
    assert!(e.contains("needs `command`"), "{e}");
}

#[test]
fn claude_launch() {
    let spec = launch(
        AdapterKind::Claude,
        &Case {
            model: Some("claude-sonnet-4-5"),
            ..Case::default()
        },
    );
    snapshot_launch("claude_plain", &spec);
    let s: Value = serde_json::from_str(file(&spec, "/ws/.claude/settings.json")).unwrap();
    assert_eq!(
        s["permissions"]["allow"],
        json!([
            "Read",
            "Edit",
            "Write",
            "Glob",
            "Grep",
            "Bash(git *)",
            "Bash(go *)"
        ])
    );
    assert!(s.get("apiKeyHelper").is_none());
    assert!(!spec.env.contains_key("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"));
    // The settings file is also passed with --settings (project settings need trust).
    let i = spec.args.iter().position(|a| a == "--settings").unwrap();
    assert_eq!(spec.args[i + 1], "/ws/.claude/settings.json");
    assert_eq!(spec.stdin, crate::launch::Stdin::Null);
}

#[test]
fn claude_launch_with_api_key_helper() {
    let spec = launch(
        AdapterKind::Claude,
        &Case {
            helper: Some(ApiKeyHelper {
                command: "fracta auth helper --runtime claude".into(),
                ttl_ms: Some(300_000),
            }),
            ..Case::default()
        },
    );
    snapshot_launch("claude_helper", &spec);
    let s: Value = serde_json::from_str(file(&spec, "/ws/.claude/settings.json")).unwrap();
    assert_eq!(s["apiKeyHelper"], "fracta auth helper --runtime claude");
    assert_eq!(spec.env["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"], "300000");
}

#[test]
fn claude_launch_with_native_config() {
    let spec = launch(
        AdapterKind::Claude,
        &Case {
            native: Some(json!({
                "env": { "ANTHROPIC_BASE_URL": "http://127.0.0.1:9" },
                "permissions": { "allow": ["Read", "WebFetch"], "deny": ["Bash(rm *)"] },
                "model": "claude-opus-4-8",
            })),
            ..Case::default()
        },
    );
    snapshot_launch("claude_native", &spec);
    let s: Value = serde_json::from_str(file(&spec, "/ws/.claude/settings.json")).unwrap();
    // Arrays gain the items they lack, without duplicates.
    assert_eq!(
        s["permissions"]["allow"],
        json!([
            "Read",
            "Edit",
            "Write",
            "Glob",
            "Grep",
            "Bash(git *)",
            "Bash(go *)",
            "WebFetch"
        ])
    );
    // The native subagent tool is denied beside what the runtime denies.
    assert_eq!(
        s["permissions"]["deny"],
        json!(["Bash(rm *)", "Task", "Agent"])
    );
    assert_eq!(s["env"]["ANTHROPIC_BASE_URL"], "http://127.0.0.1:9");
}

#[test]
fn claude_resume_launch() {
    let spec = launch(
        AdapterKind::Claude,
        &Case {
            resume: Some("da76a7d9-7972-4dfb-b246-c3d549ba26dd"),
            model: Some("claude-sonnet-4-5"),
            args: vec!["--max-turns".into(), "5".into()],
            ..Case::default()
        },
    );
    snapshot_launch("claude_resume", &spec);
    let i = spec.args.iter().position(|a| a == "--resume").unwrap();
    assert_eq!(spec.args[i + 1], "da76a7d9-7972-4dfb-b246-c3d549ba26dd");
    // The runtime's own args come last among the options, then `--` and the prompt.
    let n = spec.args.len();
    assert_eq!(
        spec.args[n - 4..],
        [
            "--max-turns",
            "5",
            "--",
            "Review the change and say what's wrong."
        ]
    );
}

fn codex_provider() -> Value {
    json!({
        "model_provider": "fake",
        "model_providers": { "fake": {
            "name": "Fake",
            "base_url": "http://127.0.0.1:9/v1",
            "env_key": "FAKE_KEY",
            "wire_api": "responses",
            "request_max_retries": 0,
            "stream_max_retries": 0,
        }},
        "analytics": { "enabled": false },
        "features": { "plugins": false },
        "notify": null,
    })
}

#[test]
fn codex_launch() {
    let spec = launch(
        AdapterKind::Codex,
        &Case {
            model: Some("gpt-5.5"),
            ..Case::default()
        },
    );
    snapshot_launch("codex_plain", &spec);
    // Both copies are the same config.
    assert_eq!(
        file(&spec, "/project/.fracta/runtimes/rt/codex-home/config.toml"),
        file(&spec, "/ws/.codex/config.toml")
    );
    assert_eq!(
        spec.env["CODEX_HOME"],
        "/project/.fracta/runtimes/rt/codex-home"
    );
    let cfg: toml::Table = toml::from_str(file(&spec, "/ws/.codex/config.toml")).unwrap();
    assert_eq!(cfg["sandbox_mode"].as_str(), Some("workspace-write"));
    assert_eq!(cfg["approval_policy"].as_str(), Some("never"));
    // No plugin marketplace sync holding the first turn (docs/src/cli-behaviour.md).
    assert_eq!(cfg["features"]["plugins"].as_bool(), Some(false));
    assert_eq!(spec.args[..3], ["exec", "--json", "--skip-git-repo-check"]);
    assert_eq!(
        spec.args.last().unwrap(),
        "Review the change and say what's wrong."
    );
    assert_eq!(spec.stdin, crate::launch::Stdin::Null);
}

#[test]
fn codex_launch_with_native_config() {
    let spec = launch(
        AdapterKind::Codex,
        &Case {
            native: Some(codex_provider()),
            model: Some("gpt-5.5"),
            ..Case::default()
        },
    );
    snapshot_launch("codex_native", &spec);
    assert_eq!(
        file(&spec, "/project/.fracta/runtimes/rt/codex-home/config.toml"),
        file(&spec, "/ws/.codex/config.toml")
    );
    let cfg: toml::Table = toml::from_str(file(
        &spec,
        "/project/.fracta/runtimes/rt/codex-home/config.toml",
    ))
    .unwrap();
    assert_eq!(cfg["model_provider"].as_str(), Some("fake"));
    assert_eq!(
        cfg["model_providers"]["fake"]["base_url"].as_str(),
        Some("http://127.0.0.1:9/v1")
    );
    // Fracta's own keys survive the merge; nulls (no TOML equivalent) are dropped.
    assert_eq!(cfg["sandbox_mode"].as_str(), Some("workspace-write"));
    assert!(!cfg.contains_key("notify"));
}

#[test]
fn codex_native_config_can_turn_plugins_back_on() {
    let spec = launch(
        AdapterKind::Codex,
        &Case {
            native: Some(json!({ "features": { "plugins": true, "apps": false } })),
            ..Case::default()
        },
    );
    let cfg: toml::Table = toml::from_str(file(&spec, "/ws/.codex/config.toml")).unwrap();
    assert_eq!(cfg["features"]["plugins"].as_bool(), Some(true));
    assert_eq!(cfg["features"]["apps"].as_bool(), Some(false));
}

#[test]
fn codex_native_config_that_is_not_toml_is_an_error() {
    let rt = runtime(AdapterKind::Codex, Some(json!(["not", "a", "table"])));
    let project = project();
    let env = BTreeMap::new();
    let ctx = LaunchContext {
        agent_id: "ag-0001",
        prompt: "p",
        model: None,
        resume_token: None,
        workspace: Path::new("/ws"),
        runtime_home: Path::new("/home/agent"),
        runtime_state: Path::new("/project/.fracta/runtimes/rt"),
        runtime: &rt,
        project: &project,
        env: &env,
        api_key_helper: None,
        session: None,
        gateway: None,
    };
    let e = adapter_for(AdapterKind::Codex)
        .batch_launch(&ctx)
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("invalid native_config for runtime codex"),
        "{e}"
    );
}

#[test]
fn codex_resume_launch() {
    let spec = launch(
        AdapterKind::Codex,
        &Case {
            native: Some(codex_provider()),
            resume: Some("019b0c4e-5b5e-7d10-9a0b-3f7e0c1d2e3f"),
            model: Some("gpt-5.5"),
            ..Case::default()
        },
    );
    snapshot_launch("codex_resume", &spec);
    assert_eq!(
        spec.args[..4],
        ["exec", "resume", "--json", "--skip-git-repo-check"]
    );
    // `exec resume` has no --sandbox flag: the sandbox must come from config.toml.
    assert!(!spec.args.iter().any(|a| a == "--sandbox"));
    let cfg: toml::Table = toml::from_str(file(
        &spec,
        "/project/.fracta/runtimes/rt/codex-home/config.toml",
    ))
    .unwrap();
    assert_eq!(cfg["sandbox_mode"].as_str(), Some("workspace-write"));
    let n = spec.args.len();
    assert_eq!(
        spec.args[n - 3..],
        [
            "--",
            "019b0c4e-5b5e-7d10-9a0b-3f7e0c1d2e3f",
            "Review the change and say what's wrong."
        ]
    );
}

#[test]
fn opencode_launch() {
    let spec = launch(
        AdapterKind::Opencode,
        &Case {
            model: Some("fake/m"),
            ..Case::default()
        },
    );
    snapshot_launch("opencode_plain", &spec);
    let c: Value = serde_json::from_str(file(&spec, "/ws/opencode.json")).unwrap();
    assert_eq!(
        c["permission"],
        json!({
            "edit": "allow",
            "bash": { "git *": "allow", "go *": "allow", "*": "deny" },
            "webfetch": "deny",
            "task": "deny",
        })
    );
    assert_eq!(spec.stdin, crate::launch::Stdin::Null);
}

#[test]
fn opencode_launch_with_native_config_keeps_task_denied() {
    let spec = launch(
        AdapterKind::Opencode,
        &Case {
            native: Some(json!({
                "model": "fake/m",
                "provider": { "fake": {
                    "npm": "@ai-sdk/anthropic",
                    "options": { "baseURL": "http://127.0.0.1:9/v1", "apiKey": "sk-oc" },
                    "models": { "m": { "name": "m" } },
                }},
                "permission": { "task": "allow", "webfetch": "allow" },
            })),
            ..Case::default()
        },
    );
    snapshot_launch("opencode_native", &spec);
    let c: Value = serde_json::from_str(file(&spec, "/ws/opencode.json")).unwrap();
    assert_eq!(c["permission"]["task"], "deny");
    assert_eq!(c["permission"]["webfetch"], "allow");
    assert_eq!(
        c["provider"]["fake"]["options"]["baseURL"],
        "http://127.0.0.1:9/v1"
    );
}

/// OpenCode accepts `"permission": "allow"` (one action for every tool). A native_config
/// that says so must not crash the launch, and `task` must stay denied.
#[test]
fn opencode_native_config_with_a_string_permission_keeps_task_denied() {
    let spec = launch(
        AdapterKind::Opencode,
        &Case {
            native: Some(json!({ "permission": "allow" })),
            ..Case::default()
        },
    );
    let c: Value = serde_json::from_str(file(&spec, "/ws/opencode.json")).unwrap();
    assert_eq!(c["permission"]["task"], "deny", "{c:#}");
}

#[test]
fn opencode_permission_mapping() {
    use super::opencode::OpenCode;
    let p = |rules: &[&str]| {
        OpenCode::permissions(&rules.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    };
    assert_eq!(
        p(&[]),
        json!({"edit": "deny", "bash": {"*": "deny"}, "webfetch": "deny", "task": "deny"})
    );
    assert_eq!(
        p(&["Bash", "MultiEdit", "WebFetch", "Task"]),
        json!({"edit": "allow", "bash": "allow", "webfetch": "allow", "task": "deny"})
    );
    assert_eq!(
        p(&["Bash(git:*)", "Bash(npm test)"])["bash"],
        json!({"git *": "allow", "npm test": "allow", "*": "deny"})
    );
    assert_eq!(p(&["Bash(*)"])["bash"], "allow");
}

/// A new OpenCode session is given its title, so OpenCode does not ask the model for one (a
/// second model request per agent); OpenCode's own snapshots are off.
#[test]
fn opencode_new_session_has_a_title_and_no_snapshots() {
    let spec = launch(AdapterKind::Opencode, &Case::default());
    let titles: Vec<&String> = spec
        .args
        .iter()
        .filter(|a| a.starts_with("--title"))
        .collect();
    assert_eq!(
        titles,
        [&format!(
            "--title={}",
            super::session_title("ag-0001", "Review the change and say what's wrong.")
        )],
        "{:?}",
        spec.args
    );
    let c: Value = serde_json::from_str(file(&spec, "/ws/opencode.json")).unwrap();
    assert_eq!(c["snapshot"], false, "{c:#}");
    assert_eq!(super::session_title("a-1", "fix it"), "a-1: fix it");
    assert_eq!(
        super::session_title("a-1", "\n  \n  first line  \nsecond"),
        "a-1: first line"
    );
    assert_eq!(super::session_title("a-1", " \n "), "a-1");
    let long = "é".repeat(60);
    assert_eq!(
        super::session_title("a-1", &long),
        format!("a-1: {}...", "é".repeat(50))
    );
}

#[test]
fn opencode_resume_launch() {
    let spec = launch(
        AdapterKind::Opencode,
        &Case {
            resume: Some("ses_4f1c2a9b3ffeYy1kQ2Zq3x9V8w"),
            model: Some("fake/m"),
            ..Case::default()
        },
    );
    snapshot_launch("opencode_resume", &spec);
    // The session has its title already.
    assert!(
        !spec.args.iter().any(|a| a.starts_with("--title")),
        "{:?}",
        spec.args
    );
    let i = spec.args.iter().position(|a| a == "--session").unwrap();
    assert_eq!(spec.args[i + 1], "ses_4f1c2a9b3ffeYy1kQ2Zq3x9V8w");
    assert_eq!(
        spec.args.last().unwrap(),
        "Review the change and say what's wrong."
    );
}

/// Untrusted text never reaches a CLI as an option: every batch launch, plain or resumed,
/// ends its options with `--` before the prompt, and nothing after `--` is Fracta's.
#[test]
fn batch_launches_end_options_before_the_prompt() {
    let resumes = [
        (AdapterKind::Claude, "da76a7d9-7972-4dfb-b246-c3d549ba26dd"),
        (AdapterKind::Codex, "019b0c4e-5b5e-7d10-9a0b-3f7e0c1d2e3f"),
        (AdapterKind::Opencode, "ses_4f1c2a9b3ffeYy1kQ2Zq3x9V8w"),
    ];
    for (kind, token) in resumes {
        for resume in [None, Some(token)] {
            let spec = launch(
                kind,
                &Case {
                    resume,
                    args: vec!["--verbose".into()],
                    ..Case::default()
                },
            );
            let dash = spec
                .args
                .iter()
                .position(|a| a == "--")
                .unwrap_or_else(|| panic!("{kind:?} {resume:?}: no `--` in {:?}", spec.args));
            let after: Vec<&str> = spec.args[dash + 1..].iter().map(String::as_str).collect();
            // Codex resumes name the thread positionally; the prompt is always last.
            let want: Vec<&str> = match (kind, resume) {
                (AdapterKind::Codex, Some(t)) => vec![t, "Review the change and say what's wrong."],
                _ => vec!["Review the change and say what's wrong."],
            };
            assert_eq!(after, want, "{kind:?} {resume:?}: {:?}", spec.args);
        }
    }
}

/// Claude's stream launch takes its turns on stdin: neither the prompt nor `--` is in argv.
#[test]
fn claude_stream_launch_has_no_prompt_in_argv() {
    let rt = runtime(AdapterKind::Claude, None);
    let project = project();
    let env = BTreeMap::new();
    let ctx = LaunchContext {
        agent_id: "ag-0001",
        prompt: "--help",
        model: None,
        resume_token: None,
        workspace: Path::new("/ws"),
        runtime_home: Path::new("/home/agent"),
        runtime_state: Path::new("/project/.fracta/runtimes/rt"),
        runtime: &rt,
        project: &project,
        env: &env,
        api_key_helper: None,
        session: None,
        gateway: None,
    };
    let spec = adapter_for(AdapterKind::Claude)
        .stream_launch(&ctx)
        .unwrap();
    assert_eq!(spec.args[..3], ["-p", "--input-format", "stream-json"]);
    assert!(
        !spec.args.iter().any(|a| a == "--" || a == "--help"),
        "{:?}",
        spec.args
    );
    assert_eq!(spec.stdin, crate::launch::Stdin::Piped);
}

/// `LaunchContext::gateway` says the gateway is registered in the runtime's config as MCP
/// server `fracta`, with the token only in `FRACTA_AGENT_TOKEN`.
#[test]
fn gateway_is_registered_as_mcp_server_fracta() {
    let gw = crate::launch::Gateway {
        url: "http://127.0.0.1:9/mcp".into(),
        token: "secret-agent-token".into(),
    };
    for kind in KINDS {
        let rt = runtime(kind, None);
        let project = project();
        let env = BTreeMap::new();
        let ctx = LaunchContext {
            agent_id: "ag-0001",
            prompt: "p",
            model: None,
            resume_token: None,
            workspace: Path::new("/ws"),
            runtime_home: Path::new("/home/agent"),
            runtime_state: Path::new("/project/.fracta/runtimes/rt"),
            runtime: &rt,
            project: &project,
            env: &env,
            api_key_helper: None,
            session: None,
            gateway: Some(&gw),
        };
        let spec = adapter_for(kind).batch_launch(&ctx).unwrap();
        let all: String = spec
            .files
            .iter()
            .map(|f| f.contents.as_str())
            .chain(spec.args.iter().map(String::as_str))
            .collect();
        assert!(
            all.contains("http://127.0.0.1:9/mcp"),
            "{kind:?}: gateway not registered"
        );
        assert!(
            !all.contains("secret-agent-token"),
            "{kind:?}: token written"
        );
        if kind == AdapterKind::Codex {
            // The shared Codex home holds only the runtime's static config; the gateway (which
            // differs per control plane) comes as `-c` overrides, and the workspace copy is
            // the complete file.
            let home: toml::Table = toml::from_str(file(
                &spec,
                "/project/.fracta/runtimes/rt/codex-home/config.toml",
            ))
            .unwrap();
            assert!(!home.contains_key("mcp_servers"), "{home}");
            let ws: toml::Table = toml::from_str(file(&spec, "/ws/.codex/config.toml")).unwrap();
            let entry = &ws["mcp_servers"]["fracta"];
            assert_eq!(entry["url"].as_str(), Some("http://127.0.0.1:9/mcp"));
            let overrides: Vec<&str> = spec
                .args
                .windows(2)
                .filter(|w| w[0] == "-c")
                .map(|w| w[1].as_str())
                .collect();
            assert_eq!(
                overrides,
                [
                    r#"mcp_servers.fracta.url="http://127.0.0.1:9/mcp""#,
                    r#"mcp_servers.fracta.bearer_token_env_var="FRACTA_AGENT_TOKEN""#,
                    r#"mcp_servers.fracta.default_tools_approval_mode="approve""#,
                ]
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parsers over the captured transcripts.

fn transcripts(kind: AdapterKind) -> Vec<(String, PathBuf)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/transcripts")
        .join(name(kind));
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| {
            let case = p.file_stem().unwrap().to_string_lossy().to_string();
            (case, p)
        })
        .collect();
    v.sort();
    assert!(v.len() >= 4, "too few transcripts in {}", dir.display());
    v
}

/// Feed a transcript through a fresh parser: the normalized events (one JSON per line,
/// prefixed with the source line number), the lines not understood, and the outcome.
fn parse_transcript(kind: AdapterKind, path: &Path) -> (String, Vec<String>, Outcome) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut parser = adapter_for(kind).parser();
    let mut out = String::new();
    let mut not_understood = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parser.parse_line(line);
        if !parsed.understood {
            let v: Value = serde_json::from_str(line).unwrap_or(Value::Null);
            not_understood.push(format!(
                "{}:{}: type {}",
                path.display(),
                i + 1,
                v.get("type").unwrap_or(&Value::Null)
            ));
        }
        for e in parsed.events {
            out.push_str(&format!(
                "{:>2} {}\n",
                i + 1,
                serde_json::to_string(&e).unwrap()
            ));
        }
    }
    (out, not_understood, parser.outcome().clone())
}

fn outcome_text(o: &Outcome) -> String {
    serde_json::to_string_pretty(&json!({
        "resume_token": o.resume_token,
        "model": o.model,
        "result": o.result,
        "usage": o.usage,
        "cost_usd": o.cost_usd,
        "error": o.error,
        "success": o.success,
    }))
    .unwrap()
}

fn check_transcripts(kind: AdapterKind) {
    for (case, path) in transcripts(kind) {
        let (events, not_understood, outcome) = parse_transcript(kind, &path);
        assert!(
            not_understood.is_empty(),
            "lines of a real {} transcript were not understood:\n{}",
            name(kind),
            not_understood.join("\n")
        );
        insta::assert_snapshot!(
            format!("transcript_{}_{case}", name(kind)),
            format!("{events}--- outcome\n{}\n", outcome_text(&outcome))
        );
        let o = &outcome;
        assert!(
            o.resume_token.as_deref().is_some_and(|t| !t.is_empty()),
            "{case}: no resume token: {o:?}"
        );
        if case == "http500" {
            assert_eq!(o.success, Some(false), "{case}: {o:?}");
            assert!(
                o.error.as_deref().is_some_and(|e| !e.is_empty()),
                "{case}: no error message: {o:?}"
            );
            assert!(o.result.is_none(), "{case}: {o:?}");
        } else {
            assert!(
                o.result.as_deref().is_some_and(|r| !r.trim().is_empty()),
                "{case}: no result text: {o:?}"
            );
            assert_ne!(o.success, Some(false), "{case}: {o:?}");
            assert!(o.error.is_none(), "{case}: {o:?}");
            // Every successful fixture reported token usage.
            assert!(
                o.usage.input_tokens > 0 && o.usage.output_tokens > 0,
                "{case}: usage missing: {o:?}"
            );
        }
        // The resume case continues the conversation of its first turn.
        if case == "resume" {
            let turn1 = path.with_file_name("resume.turn1.jsonl");
            let (_, _, first) = parse_transcript(kind, &turn1);
            assert_eq!(first.resume_token, o.resume_token, "{case}");
        }
    }
}

#[test]
fn claude_transcripts() {
    check_transcripts(AdapterKind::Claude);
}

#[test]
fn codex_transcripts() {
    check_transcripts(AdapterKind::Codex);
}

#[test]
fn opencode_transcripts() {
    check_transcripts(AdapterKind::Opencode);
}

#[test]
fn runtimes_report_success_explicitly() {
    // A run succeeds only on the runtime's completion event (OpenCode: a final step_finish).
    for kind in [
        AdapterKind::Claude,
        AdapterKind::Codex,
        AdapterKind::Opencode,
    ] {
        for (case, path) in transcripts(kind) {
            if case != "http500" {
                let (_, _, o) = parse_transcript(kind, &path);
                assert_eq!(o.success, Some(true), "{kind:?} {case}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parser robustness.

/// Garbage is flagged, never fatal.
#[test]
fn parsers_flag_garbage() {
    let garbage = [
        "",
        "   ",
        "not json",
        "{",
        "}",
        "null",
        "42",
        "-1.5e400",
        "true",
        "\"a string\"",
        "[]",
        "[{\"type\":\"result\"}]",
        "{}",
        "{\"type\":null}",
        "{\"type\":42}",
        "{\"type\":[\"text\"]}",
        "{\"type\":\"\"}",
        "{\"type\":\"no-such-type\"}",
        "{\"typ\":\"result\"}",
        "\u{feff}{\"type\":\"result\"",
        "\u{0}\u{1}\u{7f}",
        "{\"type\":\"text\"}garbage",
    ];
    for kind in KINDS {
        for g in garbage {
            let mut p = adapter_for(kind).parser();
            let parsed = p.parse_line(g);
            assert!(!parsed.understood, "{kind:?} understood {g:?}");
            assert!(
                parsed
                    .events
                    .iter()
                    .any(|e| matches!(e, crate::event::Event::Unknown(_))),
                "{kind:?} {g:?}: no Unknown event"
            );
        }
    }
}

/// Lines of a known type but odd shapes: whatever comes out, nothing panics.
#[test]
fn parsers_survive_odd_shapes() {
    let odd = [
        r#"{"type":"system"}"#,
        r#"{"type":"system","subtype":42}"#,
        r#"{"type":"system","subtype":"init","session_id":7,"model":[]}"#,
        r#"{"type":"assistant"}"#,
        r#"{"type":"assistant","message":null}"#,
        r#"{"type":"assistant","message":{"content":"text, not blocks"}}"#,
        r#"{"type":"assistant","message":{"content":[null,1,{"type":"tool_use"},{"type":"text","text":5}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","content":{"a":1}}]}}"#,
        r#"{"type":"user","message":{"content":[{"type":"tool_result","content":[1,{"text":null}]}]}}"#,
        r#"{"type":"result"}"#,
        r#"{"type":"result","usage":"lots","total_cost_usd":"free","is_error":"yes","subtype":null}"#,
        r#"{"type":"result","usage":{"input_tokens":-5,"output_tokens":1.5e300}}"#,
        r#"{"type":"thread.started"}"#,
        r#"{"type":"turn.completed","usage":null}"#,
        r#"{"type":"turn.failed","error":"plain string"}"#,
        r#"{"type":"error"}"#,
        r#"{"type":"item.started"}"#,
        r#"{"type":"item.completed","item":42}"#,
        r#"{"type":"item.completed","item":{"type":"command_execution","exit_code":"x"}}"#,
        r#"{"type":"item.updated","item":{"type":"mcp_tool_call"}}"#,
        r#"{"type":"item.completed","item":{"type":"mcp_tool_call","error":null,"result":null}}"#,
        r#"{"type":"step_start","sessionID":5}"#,
        r#"{"type":"text","part":"str"}"#,
        r#"{"type":"tool_use","part":{"state":[]}}"#,
        r#"{"type":"tool_use","part":{"state":{"status":"error","error":{"x":1}}}}"#,
        r#"{"type":"step_finish","part":{"tokens":{"input":-1,"cache":"x"},"cost":"NaN"}}"#,
        r#"{"type":"error","error":null}"#,
        r#"{"type":"error","error":{"data":{"message":3}}}"#,
    ];
    for kind in KINDS {
        let mut p = adapter_for(kind).parser();
        for line in odd {
            let parsed = p.parse_line(line);
            if !parsed.understood {
                assert!(
                    parsed
                        .events
                        .iter()
                        .any(|e| matches!(e, crate::event::Event::Unknown(_)))
                );
            }
            for e in &parsed.events {
                let _ = e.summary();
            }
        }
        let _ = p.outcome();
    }
}

/// A small deterministic PRNG (xorshift64*), so the fuzz below needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(f64::from_bits(rng.next() >> 2)),
        4 => json!(["", "text", "result", "error", "init", "é\u{0}\n", "item_1"][rng.below(7)]),
        5 => Value::Array(
            (0..rng.below(3))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.below(4))
                .map(|_| {
                    let k =
                        ["type", "text", "item", "part", "usage", "content", "state"][rng.below(7)];
                    (k.to_string(), random_value(rng, depth + 1))
                })
                .collect(),
        ),
    }
}

/// Every node of `v`, by JSON pointer.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push(p.clone());
                pointers(c, p, out);
            }
        }
        _ => {}
    }
}

/// Real lines with one value swapped for a random one, and real lines cut short: no panic;
/// a cut line is not JSON, so it is not understood.
#[test]
fn parsers_survive_mutated_real_lines() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for kind in KINDS {
        for (_, path) in transcripts(kind) {
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let Ok(v) = serde_json::from_str::<Value>(line) else {
                    continue;
                };
                let mut ptrs = Vec::new();
                pointers(&v, String::new(), &mut ptrs);
                for _ in 0..40 {
                    let mut m = v.clone();
                    if let Some(p) = ptrs.get(rng.below(ptrs.len())) {
                        *m.pointer_mut(p).unwrap() = random_value(&mut rng, 0);
                    }
                    let mut parser = adapter_for(kind).parser();
                    for e in parser.parse_line(&m.to_string()).events {
                        let _ = e.summary();
                    }
                }
                let chars: Vec<char> = line.chars().collect();
                for _ in 0..20 {
                    let cut: String = chars[..rng.below(chars.len())].iter().collect();
                    let mut parser = adapter_for(kind).parser();
                    assert!(
                        !parser.parse_line(&cut).understood,
                        "{kind:?} understood a cut line: {cut}"
                    );
                }
            }
        }
        // Pure noise.
        let mut parser = adapter_for(kind).parser();
        for _ in 0..500 {
            let v = random_value(&mut rng, 0);
            let parsed = parser.parse_line(&v.to_string());
            if !v.is_object() {
                assert!(!parsed.understood, "{kind:?} understood {v}");
            }
        }
    }
}

/// `codex exec` reports its warnings as error items and the turn goes on: they are warnings
/// (a failed turn says so with `turn.failed` or a top-level `error`).
#[test]
fn a_codex_exec_error_item_is_a_warning() {
    use crate::event::{ErrorEvent, Event};
    let mut p = adapter_for(AdapterKind::Codex).parser();
    let parsed = p.parse_line(
        r#"{"type":"item.completed","item":{"id":"item_0","type":"error","message":"Model metadata for `m` not found"}}"#,
    );
    assert_eq!(
        parsed.events,
        vec![Event::Warning(ErrorEvent {
            message: "Model metadata for `m` not found".into()
        })]
    );
    assert_eq!(p.outcome().error, None);
    assert_eq!(
        parsed.events[0].summary(),
        "warning: Model metadata for `m` not found"
    );
    // A stream Codex retries is a warning too.
    let parsed =
        p.parse_line(r#"{"type":"error","message":"Reconnecting... 1/5 (stream disconnected)"}"#);
    assert!(
        matches!(parsed.events[..], [Event::Warning(_)]),
        "{:?}",
        parsed.events
    );
    assert_eq!(p.outcome().error, None);
}
