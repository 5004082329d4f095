//! The credential pipeline against the real CLIs: each runtime receives its secret the way
//! the seed says (Claude through the apiKeyHelper projection, Codex and OpenCode through
//! `bearer_env`), failures refuse the spawn with an actionable message, and no secret value
//! reaches any output Fracta writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::Project;

fn script(yaml: &str) -> Script {
    Script::parse(yaml, "test").unwrap()
}

/// Replace the project's fracta.yaml.
fn write_config(p: &Project, yaml: &str) {
    std::fs::write(p.path().join("fracta.yaml"), yaml.replace("{URL}", &p.url)).unwrap();
}

fn header(r: &fracta_model_server::RecordedRequest, name: &str) -> Option<String> {
    r.headers.get(name).cloned()
}

/// Does a model request carry `token` as its credential?
fn carries(r: &fracta_model_server::RecordedRequest, token: &str) -> bool {
    header(r, "x-api-key").as_deref() == Some(token)
        || header(r, "authorization") == Some(format!("Bearer {token}"))
}

const CODEX_PROVIDER: &str = r#"      native_config:
        model_provider: fake
        model_providers:
          fake:
            name: Fake
            base_url: {URL}/v1
            env_key: FAKE_OPENAI_KEY
            wire_api: responses
            request_max_retries: 0
            stream_max_retries: 0
"#;

#[test]
fn claude_api_key_helper_token_reaches_the_model_and_refreshes_on_ttl() {
    let p = Project::new(script(
        "rules:\n  - when: { contains: \"nap then answer\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Bash, input: { command: \"sleep 2\" } }]\nfallback: \"rested\"\n",
    ));
    // A helper that prints a new token every time it runs.
    let helper = p.path().join("helper.sh");
    let counter = p.path().join("count");
    std::fs::write(&helper, format!("#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; echo HELPER-TOKEN-$n\n", c = counter.display())).unwrap();
    std::process::Command::new("chmod")
        .args(["+x", helper.to_str().unwrap()])
        .status()
        .unwrap();
    write_config(
        &p,
        &format!(
            r#"auth:
  credentials:
    profiles:
      helper:
        runtime_auth_resolvers:
          tok:
            type: command
            command: "{}"
            ttl_ms: 500
        default_binding:
          type: claude_api_key_helper
          runtime_auth_resolver: tok
agents:
  agent_runtimes:
    claude:
      adapter: claude
      model: claude-sonnet-4-5
      auth_profile: helper
      env:
        ANTHROPIC_BASE_URL: "{{URL}}"
project:
  allowed_tools: [Read, "Bash(sleep *)"]
"#,
            helper.display()
        ),
    );
    // Its worktree stays, for the settings file to be read below.
    p.keep_worktrees();
    let (code, v) = p.spawn_json(&["--task", "nap", "--prompt", "nap then answer"]);
    assert_eq!(code, 0, "{v:#}");
    let reqs: Vec<_> = p
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/messages"))
        .collect();
    assert!(reqs.len() >= 2);
    assert!(
        reqs.iter()
            .all(|r| (1..10).any(|n| carries(r, &format!("HELPER-TOKEN-{n}")))),
        "{:#?}",
        reqs.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    // The TTL made Claude run the helper again during the run.
    let runs: u32 = std::fs::read_to_string(&counter)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        runs >= 2,
        "the helper ran {runs} time(s); a 500 ms TTL over a 2 s tool call should refresh it"
    );
    // The settings file carries the helper command, never a token.
    let settings = std::fs::read_to_string(
        Path::new(v["workspace"].as_str().unwrap()).join(".claude/settings.json"),
    )
    .unwrap();
    assert!(
        settings.contains("apiKeyHelper") && !settings.contains("HELPER-TOKEN"),
        "{settings}"
    );
}

#[test]
fn codex_bearer_env_from_command_output_reaches_the_model() {
    let p = Project::new(script("fallback: \"ok from codex\"\n"));
    write_config(
        &p,
        &format!(
            r#"auth:
  credentials:
    profiles:
      openai:
        auth_origins:
          key:
            type: command_output
            command: ["sh", "-c", "echo CODEX-BEARER-77"]
        default_binding:
          type: bearer_env
          auth_origin: key
          env_name: FAKE_OPENAI_KEY
agents:
  agent_runtimes:
    codex:
      adapter: codex
      model: gpt-5.5
      auth_profile: openai
{CODEX_PROVIDER}"#
        ),
    );
    let (code, v) = p.spawn_json(&["--task", "k", "--prompt", "hello"]);
    assert_eq!(code, 0, "{v:#}");
    let reqs = p.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| carries(r, "CODEX-BEARER-77")),
        "{:#?}",
        reqs.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
}

/// `http_header_token` takes its value from the request that asked the control plane to
/// spawn: `POST /v1/agents` with the header, and the real Codex CLI presents it to the model;
/// nothing Fracta writes holds it. Before, nothing passed the request's headers on and the
/// spawn failed ("this spawn has none") (issue 21, item 12).
#[test]
fn codex_bearer_env_from_an_http_header_reaches_the_model() {
    use super::harness::Serve;
    const S_HEADER: &str = "HEADER-BEARER-5c1e9a7d3b";
    let p = Project::new(script("fallback: \"ok from codex\"\n"));
    write_config(
        &p,
        &format!(
            r#"auth:
  credentials:
    profiles:
      openai:
        auth_origins:
          key:
            type: http_header_token
            header: X-Model-Token
        default_binding:
          type: bearer_env
          auth_origin: key
          env_name: FAKE_OPENAI_KEY
agents:
  agent_runtimes:
    codex:
      adapter: codex
      model: gpt-5.5
      auth_profile: openai
{CODEX_PROVIDER}"#
        ),
    );
    let server = Serve::start(&p);
    let http = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let v: Value = http
        .post(format!("{}/v1/agents", server.url))
        .bearer_auth(&server.token)
        .header("X-Model-Token", format!("Bearer {S_HEADER}"))
        .json(&serde_json::json!({ "task": "k", "prompt": "hello", "wait": true }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "succeeded", "{v:#}");
    let reqs = p.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| carries(r, S_HEADER)),
        "{:#?}",
        reqs.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    assert!(server.stop());
    let mut files = Vec::new();
    collect_files(&p.path().join(".fracta"), &mut files);
    assert!(files.iter().any(|f| f.ends_with("state.db")));
    for f in files {
        let s = f.to_string_lossy();
        if s.contains("/codex-home/") || s.contains("/.git/") {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !contains(&bytes, S_HEADER.as_bytes()),
            "the header's token leaked into {}",
            f.display()
        );
    }
}

#[test]
fn opencode_bearer_env_from_secret_env_reaches_the_model() {
    let p = Project::new(script("fallback: \"ok from opencode\"\n"));
    write_config(
        &p,
        r#"auth:
  credentials:
    profiles:
      opencode_bedrock:
        auth_origins:
          seeded_token:
            type: secret_env
            scope: any
            env_name: SEEDED_TOKEN_FOR_TEST
        env:
          AWS_REGION: ap-southeast-2
        default_binding:
          type: bearer_env
          auth_origin: seeded_token
          env_name: AWS_BEARER_TOKEN_BEDROCK
agents:
  agent_runtimes:
    opencode:
      adapter: opencode
      model: fake/m
      auth_profile: opencode_bedrock
      env:
        OPENCODE_DISABLE_MODELS_FETCH: "1"
        NPM_CONFIG_OFFLINE: "true"
      native_config:
        provider:
          fake:
            npm: "@ai-sdk/anthropic"
            options:
              baseURL: "{URL}/v1"
              apiKey: "{env:AWS_BEARER_TOKEN_BEDROCK}"
            models:
              m:
                name: m
"#,
    );
    let out = p
        .command(&["spawn", "--json", "--task", "k", "--prompt", "hello"])
        .env("SEEDED_TOKEN_FOR_TEST", "OC-BEARER-55")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    let reqs = p.requests();
    assert!(
        !reqs.is_empty() && reqs.iter().all(|r| carries(r, "OC-BEARER-55")),
        "{:#?}",
        reqs.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
}

/// Gemini CLI's `GEMINI_API_KEY` through `bearer_env`: the secret from Fracta's environment
/// reaches the Gemini API as its `x-goog-api-key`, and nowhere in Fracta's records.
#[test]
fn gemini_bearer_env_from_secret_env_reaches_the_model() {
    let p = Project::new(script("fallback: \"ok from gemini\"\n"));
    write_config(
        &p,
        r#"auth:
  credentials:
    profiles:
      google:
        auth_origins:
          gemini:
            type: secret_env
            scope: any
            env_name: SEEDED_GEMINI_FOR_TEST
        default_binding:
          type: bearer_env
          auth_origin: gemini
          env_name: GEMINI_API_KEY
agents:
  agent_runtimes:
    gemini:
      adapter: gemini
      model: gemini-2.5-pro
      auth_profile: google
      env:
        GOOGLE_GEMINI_BASE_URL: "{URL}"
"#,
    );
    let out = p
        .command(&["spawn", "--json", "--task", "k", "--prompt", "hello"])
        .env("SEEDED_GEMINI_FOR_TEST", "GM-BEARER-77")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v:#}");
    assert_eq!(v["result"], "ok from gemini", "{v:#}");
    let reqs = p.requests();
    assert!(
        !reqs.is_empty()
            && reqs
                .iter()
                .all(|r| header(r, "x-goog-api-key").as_deref() == Some("GM-BEARER-77")),
        "{:#?}",
        reqs.iter().map(|r| &r.headers).collect::<Vec<_>>()
    );
    let logs = p.run(&["logs", v["id"].as_str().unwrap(), "--json"]);
    assert!(!String::from_utf8_lossy(&logs.stdout).contains("GM-BEARER-77"));
}

/// Each failure refuses the spawn before the CLI starts, names what is wrong, and leaves no
/// agent running.
#[test]
fn credential_failures_refuse_the_spawn() {
    let p = Project::new(script("fallback: \"never\"\n"));
    let base = |profile: &str| {
        format!(
            r#"auth:
  credentials:
    profiles:
{profile}
agents:
  agent_runtimes:
    codex:
      adapter: codex
      model: gpt-5.5
      auth_profile: p
{CODEX_PROVIDER}"#
        )
    };
    let cases: &[(&str, &str, &[&str])] = &[
        (
            "failing command_output",
            "      p:\n        auth_origins:\n          k: { type: command_output, command: [\"sh\", \"-c\", \"echo helper broke >&2; exit 7\"] }\n        default_binding: { type: bearer_env, auth_origin: k, env_name: FAKE_OPENAI_KEY }",
            &["origin `k`", "profile `p`", "exit code 7", "helper broke"],
        ),
        (
            "empty command_output",
            "      p:\n        auth_origins:\n          k: { type: command_output, command: [\"true\"] }\n        default_binding: { type: bearer_env, auth_origin: k, env_name: FAKE_OPENAI_KEY }",
            &["origin `k`", "printed nothing"],
        ),
        (
            "timed out command_output",
            "      p:\n        auth_origins:\n          k: { type: command_output, command: [\"sleep\", \"5\"], timeout_ms: 300 }\n        default_binding: { type: bearer_env, auth_origin: k, env_name: FAKE_OPENAI_KEY }",
            &["origin `k`", "300 ms"],
        ),
        (
            "missing secret_env",
            "      p:\n        auth_origins:\n          k: { type: secret_env, env_name: NOT_SET_ANYWHERE_42 }\n        default_binding: { type: bearer_env, auth_origin: k, env_name: FAKE_OPENAI_KEY }",
            &["NOT_SET_ANYWHERE_42", "not set"],
        ),
        (
            "http_header_token on the command line",
            "      p:\n        auth_origins:\n          k: { type: http_header_token, header: X-Model-Token }\n        default_binding: { type: bearer_env, auth_origin: k, env_name: FAKE_OPENAI_KEY }",
            &[
                "origin `k`",
                "profile `p`",
                "`x-model-token` header",
                "POST /v1/agents",
                "command line",
            ],
        ),
        (
            "require_env absent",
            "      p:\n        env: { FAKE_OPENAI_KEY: x }\n        assertions: { require_env: [AWS_REGION_FOR_TEST] }",
            &[
                "AWS_REGION_FOR_TEST",
                "profile `p`",
                "runtime `codex`",
                "require_env",
            ],
        ),
        (
            "forbid_env present",
            "      p:\n        env: { FAKE_OPENAI_KEY: x, DANGEROUS_FLAG: \"1\" }\n        assertions: { forbid_env: [DANGEROUS_FLAG] }",
            &[
                "DANGEROUS_FLAG",
                "profile `p`",
                "runtime `codex`",
                "forbid_env",
            ],
        ),
    ];
    for (name, profile, needles) in cases {
        write_config(&p, &base(profile));
        let (code, v) = p.spawn_json(&["--task", "refused", "--prompt", "hi"]);
        assert_eq!(code, 1, "{name}: {v:#}");
        assert_eq!(v["status"], "failed", "{name}");
        let err = v["error"].as_str().unwrap();
        for n in *needles {
            assert!(err.contains(n), "{name}: `{n}` missing from: {err}");
        }
        assert!(
            v["exit_code"].is_null(),
            "{name}: the CLI should never have started"
        );
    }
    assert!(
        p.requests().is_empty(),
        "no refused spawn may reach the model"
    );
    let ps = p.json(&["ps", "--all", "--json"]);
    assert!(
        ps.as_array()
            .unwrap()
            .iter()
            .all(|a| a["status"] == "failed")
    );

    // A failing helper that prints a secret of Fracta's environment on its stderr: the
    // error says how it failed, with the secret masked, in the output, the store and the log.
    write_config(
        &p,
        &base(
            "      p:\n        auth_origins:\n          k: { type: command_output, command: [\"sh\", \"-c\", \"echo token was $HELPER_API_TOKEN >&2; exit 3\"] }\n        default_binding: { type: bearer_env, auth_origin: k, env_name: FAKE_OPENAI_KEY }",
        ),
    );
    let sentinel = "SENTINEL-HELPER-STDERR-7731";
    for args in [
        &["spawn", "--json", "--task", "refused", "--prompt", "hi"][..],
        &["auth", "check"][..],
    ] {
        let out = p
            .command(args)
            .env("HELPER_API_TOKEN", sentinel)
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(!out.status.success(), "{args:?}: {stdout}{stderr}");
        assert!(
            !stdout.contains(sentinel) && !stderr.contains(sentinel),
            "{args:?} shows the helper's secret: {stdout}{stderr}"
        );
        assert!(
            format!("{stdout}{stderr}").contains("token was [REDACTED]"),
            "{args:?}: {stdout}{stderr}"
        );
    }
    let mut db = std::fs::read(p.path().join(".fracta/state.db")).unwrap();
    db.extend(std::fs::read(p.path().join(".fracta/state.db-wal")).unwrap_or_default());
    assert!(
        !String::from_utf8_lossy(&db).contains(sentinel),
        "the store holds it"
    );
    let log = std::fs::read_to_string(p.path().join(".fracta/fracta.log")).unwrap_or_default();
    assert!(!log.contains(sentinel), "the log holds it");
}

/// Plant distinct sentinel secrets in every origin type and in `${VAR}` env, run agents on
/// all three runtimes through success and failure paths (including a model that makes the
/// agent print its environment), and search everything Fracta wrote for them.
#[test]
fn no_secret_reaches_any_output() {
    const S_CMD: &str = "SENTINEL-CMDOUT-9f3a1c";
    const S_ENV: &str = "SENTINEL-SECRETENV-77b2e0";
    const S_VAR: &str = "SENTINEL-DOLLARVAR-5d4c3b";
    const S_HELPER: &str = "SENTINEL-HELPER-aa01";
    let p = Project::new(script(
        "rules:\n  - when: { contains: \"show env claude\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Bash, input: { command: \"echo $ANTHROPIC_API_KEY $MY_API_TOKEN\" } }]\n  - when: { contains: \"show env codex\", has_tools: true }\n    reply:\n      tool_calls: [{ name: exec_command, input: { cmd: \"echo $FAKE_OPENAI_KEY $MY_API_TOKEN GATEWAYTOKEN $FRACTA_AGENT_TOKEN\" } }]\n  - when: { contains: \"show env opencode\", has_tools: true }\n    reply:\n      tool_calls: [{ name: bash, input: { command: \"echo $AWS_BEARER_TOKEN_BEDROCK $MY_API_TOKEN GATEWAYTOKEN $FRACTA_AGENT_TOKEN\", description: \"print\" } }]\n  - when: { contains: \"fail please\" }\n    repeat: true\n    reply: { error: { status: 500, message: \"outage\", should_retry: false, retry_after_ms: 0 } }\nfallback: \"done\"\n",
    ));
    let helper = p.path().join("helper.sh");
    std::fs::write(&helper, format!("#!/bin/sh\necho {S_HELPER}\n")).unwrap();
    // The origin command prints a secret it holds (the config names the command, not the value).
    let secret_file = p.path().join("secret.txt");
    std::fs::write(&secret_file, S_CMD).unwrap();
    std::process::Command::new("chmod")
        .args(["+x", helper.to_str().unwrap()])
        .status()
        .unwrap();
    write_config(
        &p,
        &format!(
            r#"logging:
  level: trace
auth:
  credentials:
    profiles:
      claude_p:
        auth_origins:
          k: {{ type: command_output, command: ["cat", "{secret}"] }}
        runtime_auth_resolvers:
          h: {{ type: command, command: "{helper}", ttl_ms: 60000 }}
        default_binding: {{ type: bearer_env, auth_origin: k, env_name: ANTHROPIC_API_KEY }}
      codex_p:
        auth_origins:
          k: {{ type: secret_env, env_name: LEAK_TEST_SECRET }}
        default_binding: {{ type: bearer_env, auth_origin: k, env_name: FAKE_OPENAI_KEY }}
      opencode_p:
        auth_origins:
          k: {{ type: command_output, command: ["cat", "{secret}"] }}
        default_binding: {{ type: bearer_env, auth_origin: k, env_name: AWS_BEARER_TOKEN_BEDROCK }}
agents:
  agent_runtimes:
    claude:
      adapter: claude
      model: claude-sonnet-4-5
      auth_profile: claude_p
      env:
        ANTHROPIC_BASE_URL: "{{URL}}"
        MY_API_TOKEN: "${{LEAK_TEST_VAR}}"
    claude_helper:
      adapter: claude
      model: claude-sonnet-4-5
      auth_profile: claude_p
      auth_binding: {{ type: claude_api_key_helper, runtime_auth_resolver: h }}
      env:
        ANTHROPIC_BASE_URL: "{{URL}}"
    codex:
      adapter: codex
      model: gpt-5.5
      auth_profile: codex_p
      env:
        MY_API_TOKEN: "${{LEAK_TEST_VAR}}"
{CODEX_PROVIDER}    opencode:
      adapter: opencode
      model: fake/m
      auth_profile: opencode_p
      env:
        MY_API_TOKEN: "${{LEAK_TEST_VAR}}"
        OPENCODE_DISABLE_MODELS_FETCH: "1"
        NPM_CONFIG_OFFLINE: "true"
      native_config:
        provider:
          fake:
            npm: "@ai-sdk/anthropic"
            options:
              baseURL: "{{URL}}/v1"
              apiKey: "{{env:AWS_BEARER_TOKEN_BEDROCK}}"
            models:
              m:
                name: m
project:
  allowed_tools: [Read, Write, "Bash(echo *)"]
"#,
            helper = helper.display(),
            secret = secret_file.display()
        ),
    );
    let mut outputs: Vec<(String, String)> = Vec::new();
    let mut run = |args: &[&str]| {
        let out = p
            .command(args)
            .env("LEAK_TEST_SECRET", S_ENV)
            .env("LEAK_TEST_VAR", S_VAR)
            .output()
            .unwrap();
        outputs.push((
            format!("{args:?} stdout"),
            String::from_utf8_lossy(&out.stdout).to_string(),
        ));
        outputs.push((
            format!("{args:?} stderr"),
            String::from_utf8_lossy(&out.stderr).to_string(),
        ));
        out
    };
    for rt in ["claude", "codex", "opencode"] {
        let ok = run(&[
            "spawn",
            "--json",
            "--task",
            "env",
            "--runtime",
            rt,
            "--prompt",
            &format!("show env {rt}"),
        ]);
        assert!(
            ok.status.success(),
            "{rt}: {}",
            String::from_utf8_lossy(&ok.stdout)
        );
        let failed = run(&[
            "spawn",
            "--json",
            "--task",
            "env",
            "--runtime",
            rt,
            "--prompt",
            "fail please",
        ]);
        assert_eq!(failed.status.code(), Some(1), "{rt}");
        // Also the plain (non-JSON) live view.
        run(&[
            "spawn",
            "--task",
            "env",
            "--runtime",
            rt,
            "--prompt",
            &format!("show env {rt}"),
        ]);
    }
    let helper_run = run(&[
        "spawn",
        "--json",
        "--task",
        "h",
        "--runtime",
        "claude_helper",
        "--prompt",
        "hello",
    ]);
    assert!(helper_run.status.success());
    run(&["auth", "check"]);
    run(&["auth", "check", "--json"]);
    run(&["config", "show"]);
    run(&["config", "show", "--json"]);
    run(&["config", "validate", "--json"]);
    let ps = run(&["ps", "--all", "--json"]);
    run(&["ps", "--all"]);
    let ids: Vec<String> = serde_json::from_slice::<Value>(&ps.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        for args in [
            vec!["logs", id],
            vec!["logs", id, "--json"],
            vec!["logs", id, "--raw"],
            vec!["show", id, "--json"],
            vec!["show", id],
        ] {
            run(&args);
        }
    }
    // The secrets did reach the model (the pipeline works) and the agents printed them...
    assert!(p.requests().iter().any(|r| carries(r, S_CMD)));
    assert!(
        p.requests()
            .iter()
            .any(|r| r.body.to_string().contains(S_VAR)),
        "the agents printed their env to the model"
    );
    // The agent's own gateway token reached the agent (it printed it to the model)...
    let gateway_tokens: Vec<String> = p
        .requests()
        .iter()
        .flat_map(|r| {
            let body = r.body.to_string();
            body.split("GATEWAYTOKEN ")
                .skip(1)
                .map(|rest| {
                    rest.chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect::<String>()
                })
                .filter(|t| t.len() >= 16)
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        !gateway_tokens.is_empty(),
        "an agent printed its gateway token: {:?}",
        p.requests()
            .iter()
            .map(|r| r.body.to_string())
            .filter_map(|b| b
                .find("GATEWAYTOKEN")
                .map(|i| b[i..(i + 400).min(b.len())].to_string()))
            .collect::<Vec<_>>()
    );
    // ...but nothing Fracta wrote contains any of them.
    let mut sentinels: Vec<&str> = vec![S_CMD, S_ENV, S_VAR, S_HELPER];
    sentinels.extend(gateway_tokens.iter().map(String::as_str));
    for (name, text) in &outputs {
        for s in &sentinels {
            assert!(!text.contains(s), "{s} leaked into {name}:\n{text}");
        }
    }
    let fracta_dir = p.path().join(".fracta");
    let mut files = Vec::new();
    collect_files(&fracta_dir, &mut files);
    // The agents' worktrees (and the files Fracta wrote there), in the user's state folder.
    let worktrees = p.path().join("home/.local/state/fracta/worktrees");
    assert!(
        worktrees.is_dir(),
        "no worktrees in {}",
        worktrees.display()
    );
    collect_files(&worktrees, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("state.db"))
            && files.iter().any(|f| f.ends_with("fracta.log"))
    );
    for f in files {
        let s = f.to_string_lossy();
        // The runtimes' own private state (Codex home) is theirs, not Fracta's output.
        if s.contains("/codex-home/") || s.contains("/.git/") {
            continue;
        }
        let bytes = std::fs::read(&f).unwrap();
        for sentinel in &sentinels {
            assert!(
                !contains(&bytes, sentinel.as_bytes()),
                "{sentinel} leaked into {}",
                f.display()
            );
        }
    }
}

fn collect_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            collect_files(&p, out);
        } else if ft.is_file() {
            out.push(p);
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn claude_code_simple_in_the_final_env_is_refused() {
    let p = Project::new(script("fallback: \"never\"\n"));
    let out = p
        .command(&["spawn", "--json", "--task", "t", "--prompt", "hi"])
        .env("CLAUDE_CODE_SIMPLE", "1")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{v:#}");
    assert!(
        v["error"].as_str().unwrap().contains("CLAUDE_CODE_SIMPLE"),
        "{v:#}"
    );
    assert!(p.requests().is_empty());
}

/// The agent commits with `git add -A` itself: Fracta's runtime files stay out of its branch.
#[test]
fn an_agents_own_commit_cannot_carry_fractas_files() {
    let p = Project::new(script(
        "rules:\n  - when: { contains: \"commit everything\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Write, input: { file_path: work.txt, content: \"work\\n\" } }]\n  - when: { contains: \"File created\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Bash, input: { command: \"git add -A && git -c user.name=a -c user.email=a@a commit -qm agent-commit\" } }]\nfallback: \"committed\"\n",
    ));
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(p.path().join("fracta.yaml"), cfg.clone()).unwrap();
    let (code, v) = p.spawn_json(&["--task", "c", "--prompt", "commit everything"]);
    assert_eq!(code, 0, "{v:#}");
    let branch = v["branch"].as_str().unwrap();
    let events = p.events(v["id"].as_str().unwrap());
    assert_eq!(
        p.show_file(branch, "work.txt").as_deref(),
        Some("work\n"),
        "the agent's own commit is on its branch: {events:#?}"
    );
    assert!(
        p.show_file(branch, ".claude/settings.json").is_none(),
        "Fracta's settings.json was committed by the agent"
    );
}

#[test]
fn auth_check_reports_length_and_fingerprint_never_the_value() {
    let p = Project::new(script("fallback: \"never\"\n"));
    std::fs::write(p.path().join("tok.txt"), "SENTINEL-AUTHCHECK-31337").unwrap();
    write_config(
        &p,
        &format!(
            r#"auth:
  credentials:
    profiles:
      p:
        auth_origins:
          good: {{ type: command_output, command: ["cat", "{tok}"] }}
          env: {{ type: secret_env, env_name: AUTHCHECK_ENV }}
          broken: {{ type: command_output, command: ["sh", "-c", "echo cannot reach vault >&2; exit 2"] }}
        runtime_auth_resolvers:
          helper: {{ type: command, command: "cat {tok}", ttl_ms: 60000 }}
agents:
  agent_runtimes:
    claude: {{ adapter: claude }}
"#,
            tok = p.path().join("tok.txt").display()
        ),
    );
    let out = p
        .command(&["auth", "check"])
        .env("AUTHCHECK_ENV", "SENTINEL-ENV-424242")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a failed origin makes the check fail:\n{text}"
    );
    assert!(
        text.contains("ok     p.origin good (command_output)  24 chars, sha256:"),
        "{text}"
    );
    assert!(
        text.contains("ok     p.origin env (secret_env)  19 chars, sha256:"),
        "{text}"
    );
    assert!(
        text.contains("FAILED p.origin broken") && text.contains("cannot reach vault"),
        "{text}"
    );
    assert!(
        text.contains("ok     p.resolver helper (command)  24 chars"),
        "{text}"
    );
    let json = p
        .command(&["auth", "check", "--json"])
        .env("AUTHCHECK_ENV", "SENTINEL-ENV-424242")
        .output()
        .unwrap();
    let all = format!(
        "{text}{}{}",
        String::from_utf8_lossy(&json.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains("SENTINEL-AUTHCHECK-31337") && !all.contains("SENTINEL-ENV-424242"),
        "{all}"
    );
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 4);
}
