//! `fracta doctor` against the real CLIs (node_modules/.bin): a ready project, then one with
//! each kind of problem, each printed with its fix.

#![allow(clippy::unwrap_used)]

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::{Project, Serve};

fn project(auth: &str) -> Project {
    let p = Project::new(Script::parse("fallback: \"Done.\"\n", "t").unwrap());
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(p.path().join("fracta.yaml"), format!("{cfg}{auth}")).unwrap();
    p
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// The project folder, the Fracta repository (where node_modules/.bin is) and versions vary.
fn snapshot(p: &Project, name: &str, text: &str) {
    let mut s = insta::Settings::clone_current();
    s.add_filter(&escape(&p.path().display().to_string()), "[PROJECT]");
    if let Ok(c) = p.path().canonicalize() {
        s.add_filter(&escape(&c.display().to_string()), "[PROJECT]");
    }
    s.add_filter(r"/\S*/node_modules/\.bin/", "[BIN]/");
    s.add_filter(
        r"/\S*/node_modules/@openai/codex-[a-z0-9]+-[a-z0-9]+/vendor/[a-z0-9_-]+/",
        "[CODEX_PLATFORM_PACKAGE]/vendor/[TARGET]/",
    );
    s.add_filter(r"\b\d+\.\d+\.\d+\b", "[VERSION]");
    s.add_filter(r"sha256:[0-9a-f]{8}", "sha256:[FP]");
    s.add_filter(r"pid \d+", "pid [PID]");
    s.add_filter(r"http://127\.0\.0\.1:\d+", "http://[ADDR]");
    s.bind(|| insta::assert_snapshot!(name, text));
}

const GOOD_AUTH: &str = r#"auth:
  credentials:
    profiles:
      team:
        auth_origins:
          key:
            type: command_output
            command: ["sh", "-c", "echo DOCTOR-SECRET-42"]
"#;

#[test]
fn doctor_passes_a_ready_project_and_never_prints_a_secret() {
    let p = project(GOOD_AUTH);
    let out = p.run(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("DOCTOR-SECRET-42"), "{stdout}");
    // The secret's length (16 chars + newline trimmed) and its fingerprint, nothing more.
    assert!(
        stdout.contains("16 chars, sha256:"),
        "length and fingerprint: {stdout}"
    );
    for v in ["2.1.197", "0.169.0", "1.18.33"] {
        assert!(stdout.contains(v), "the pinned CLI {v} is found: {stdout}");
    }
    snapshot(&p, "doctor_ready", &stdout);

    let v: Value = p.json(&["doctor", "--json"]);
    assert_eq!(v["ok"], true, "{v:#}");
    let checks = v["checks"].as_array().unwrap();
    for c in checks {
        for k in ["area", "name", "status", "detail", "fix"] {
            assert!(c.get(k).is_some(), "every field is present: {c}");
        }
    }
    let areas: Vec<&str> = checks.iter().map(|c| c["area"].as_str().unwrap()).collect();
    for a in ["config", "runtime", "credentials", "git", "state", "serve"] {
        assert!(areas.contains(&a), "{a} is checked: {v:#}");
    }

    // With `fracta serve` up, doctor says so.
    let serve = Serve::start(&p);
    let v: Value = p.json(&["doctor", "--json"]);
    let s = checks_of(&v, "serve");
    assert_eq!(s[0]["status"], "ok", "{v:#}");
    assert!(
        s[0]["detail"].as_str().unwrap().starts_with("running (pid"),
        "{v:#}"
    );
    assert!(serve.stop());
}

fn checks_of<'v>(v: &'v Value, area: &str) -> Vec<&'v Value> {
    v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["area"] == area)
        .collect()
}

#[test]
fn doctor_names_each_problem_with_its_fix_and_exits_1() {
    let p = project(
        r#"auth:
  credentials:
    profiles:
      broken:
        auth_origins:
          key:
            type: command_output
            command: ["sh", "-c", "echo no login >&2; exit 3"]
"#,
    );
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    let bin = super::harness::repo_root().join("node_modules/.bin");
    // Claude's runtime run by a CLI of another version (OpenCode's, a real one); Codex's CLI
    // missing; a default base branch that does not exist.
    let cfg = cfg
        .replacen(
            "      adapter: claude\n",
            &format!(
                "      adapter: claude\n      command: {}\n",
                bin.join("opencode").display()
            ),
            1,
        )
        .replacen(
            "      adapter: codex\n",
            "      adapter: codex\n      command: /nonexistent/codex\n",
            1,
        )
        .replace("default_base_branch: main", "default_base_branch: trunk");
    std::fs::write(p.path().join("fracta.yaml"), cfg).unwrap();
    // A state store that is not a database.
    std::fs::create_dir_all(p.path().join(".fracta")).unwrap();
    std::fs::write(
        p.path().join(".fracta/state.db"),
        "not sqlite at all, ".repeat(100),
    )
    .unwrap();

    let out = p.run(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    snapshot(&p, "doctor_problems", &stdout);

    let out = p.run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], false);
    let status = |area: &str, name: &str| -> String {
        checks_of(&v, area)
            .into_iter()
            .find(|c| c["name"].as_str().unwrap().contains(name))
            .unwrap_or_else(|| panic!("no {area} {name}: {v:#}"))["status"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(status("runtime", "claude"), "warn", "another version");
    assert_eq!(status("runtime", "codex"), "fail", "not installed");
    assert_eq!(status("runtime", "opencode"), "ok");
    assert_eq!(status("credentials", "broken"), "fail");
    assert_eq!(status("git", "trunk"), "fail");
    assert_eq!(status("state", "state.db"), "fail");
    for c in v["checks"].as_array().unwrap() {
        if c["status"] != "ok" {
            assert!(c["fix"].is_string(), "a problem comes with its fix: {c}");
        }
    }
}

#[test]
fn doctor_without_a_config_says_how_to_make_one() {
    let p = project("");
    std::fs::remove_file(p.path().join("fracta.yaml")).unwrap();
    let out = p.run(&["doctor"]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("not found") && stdout.contains("fracta init"),
        "{stdout}"
    );
}
