//! `fracta render`: the Kubernetes objects a spawn would create, from the same flags as
//! spawn, with secrets as references. (The objects of every runtime × mode × credential form
//! are snapshot-tested and schema-checked in `crates/kube`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use super::support::Project;

const CONFIG: &str = r#"
runtime:
  backend: kubernetes
  kubernetes:
    image: registry.example/fracta/agent:1.2.3
    namespace: agents
auth:
  credentials:
    profiles:
      p:
        auth_origins:
          key: { type: secret_env, env_name: RENDER_TEST_KEY }
        default_binding: { type: bearer_env, auth_origin: key, env_name: OPENAI_API_KEY }
agents:
  default_runtime: claude
  agent_runtimes:
    claude:
      adapter: claude
    codex:
      adapter: codex
      model: gpt-5.5
      auth_profile: p
"#;

/// A kubeconfig whose API server does not answer (nothing listens on port 9).
fn unreachable_kubeconfig(token: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"http://127.0.0.1:9\"}}\ncontexts:\n- name: ctx\n  context: {{cluster: c, user: u, namespace: agents}}\ncurrent-context: ctx\nusers:\n- name: u\n  user: {{token: {token}}}\n"
    )
}

/// A git repository whose `origin` is the remote agents clone (the default of
/// `project.repository`).
fn with_origin(p: &Project) {
    for args in [
        &["init", "--quiet", "--initial-branch", "main"][..],
        &[
            "remote",
            "add",
            "origin",
            "https://git.example.com/acme/app.git",
        ][..],
    ] {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(p.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
}

fn project() -> Project {
    let p = Project::new();
    p.write("fracta.yaml", CONFIG);
    with_origin(&p);
    p
}

/// A project with no remote: refused, naming the key to set; with `project.repository`, the
/// clone takes it.
#[test]
fn render_without_a_remote_names_project_repository() {
    let p = Project::new();
    p.write("fracta.yaml", CONFIG);
    let out = p
        .fracta([
            "render",
            "--runtime",
            "codex",
            "--task",
            "t",
            "--prompt",
            "look",
        ])
        .run();
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("no `origin` remote"), "{out}");
    assert!(out.stderr.contains("set project.repository"), "{out}");

    p.write(
        "fracta.yaml",
        format!("{CONFIG}project:\n  repository: https://git.example.com/acme/other.git\n"),
    );
    let out = p
        .fracta([
            "render",
            "--runtime",
            "codex",
            "--task",
            "t",
            "--prompt",
            "look",
        ])
        .run();
    assert_eq!(out.code, 0, "{out}");
    assert!(
        out.stdout
            .contains("value: https://git.example.com/acme/other.git"),
        "{out}"
    );
}

#[test]
fn render_prints_the_objects_a_spawn_would_create() {
    let p = project();
    let out = p
        .fracta([
            "render",
            "--runtime",
            "codex",
            "--mode",
            "stream",
            "--task",
            "review",
            "--prompt",
            "look",
        ])
        .env("RENDER_TEST_KEY", "SENTINEL-RENDER-4242")
        .run();
    assert_eq!(out.code, 0, "{out}");
    assert!(!out.stdout.contains("SENTINEL-RENDER-4242"), "{out}");
    let id = out
        .stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("fracta.dev/agent-id: "))
        .unwrap()
        .to_string();
    let mut settings = p.settings();
    settings.add_filter(&id, "[AGENT-ID]");
    settings.add_filter(&id.to_ascii_lowercase(), "[agent-id]");
    settings.add_filter(
        &format!("fracta/review-{}", id[id.len() - 8..].to_ascii_lowercase()),
        "fracta/review-[last 8 of the id]",
    );
    settings.bind(|| insta::assert_snapshot!(out.stdout));

    // --json: one Kubernetes List.
    let v = p
        .fracta([
            "render",
            "--runtime",
            "codex",
            "--task",
            "review",
            "--prompt",
            "look",
            "--json",
        ])
        .run()
        .json();
    assert_eq!(v["kind"], "List");
    let kinds: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "PersistentVolumeClaim",
            "Secret",
            "ConfigMap",
            "NetworkPolicy",
            "Job"
        ]
    );
    // Nothing was recorded or started.
    let ps = p.fracta(["ps", "--all", "--json"]).run().json();
    assert_eq!(ps, serde_json::json!([]), "{ps}");
}

/// Without a namespace in fracta.yaml, `render` uses the kubeconfig context's, as a spawn
/// does (it used to say `default`).
#[test]
fn render_uses_the_kubeconfig_namespace_as_spawn_does() {
    let p = Project::new();
    p.write("fracta.yaml", CONFIG.replace("    namespace: agents\n", ""));
    with_origin(&p);
    let kubeconfig = p.write("kubeconfig", unreachable_kubeconfig("t"));
    let v = p
        .fracta([
            "render",
            "--runtime",
            "codex",
            "--task",
            "review",
            "--prompt",
            "look",
            "--json",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .run()
        .json();
    for o in v["items"].as_array().unwrap() {
        assert_eq!(o["metadata"]["namespace"], "agents", "{o:#}");
    }
}

#[test]
fn render_refuses_what_kubernetes_cannot_run() {
    let p = project();
    let out = p
        .fracta([
            "render", "--mode", "stream", "--task", "review", "--prompt", "look",
        ])
        .run();
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("run locally only"), "{out}");
    let out = p
        .fracta([
            "render",
            "--runtime",
            "nope",
            "--task",
            "t",
            "--prompt",
            "x",
        ])
        .run();
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("unknown runtime `nope`"), "{out}");
}

/// `runtime.backend: kubernetes` without a cluster: no kubeconfig is a clear error before
/// anything is recorded; an API server that does not answer fails the recorded agent with
/// the reason (the calls themselves are tested against a mocked API in `crates/kube`).
#[test]
fn spawn_on_kubernetes_without_a_cluster_fails_saying_why() {
    let p = project();
    let out = p
        .fracta([
            "spawn",
            "--runtime",
            "codex",
            "--task",
            "review",
            "--prompt",
            "look",
        ])
        .env("RENDER_TEST_KEY", "SENTINEL-RENDER-4242")
        .env(
            "KUBECONFIG",
            p.join("missing-kubeconfig").display().to_string(),
        )
        .run();
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("kubeconfig"), "{out}");
    assert_eq!(
        p.fracta(["ps", "--all", "--json"]).run().json(),
        serde_json::json!([])
    );

    p.write("kubeconfig", unreachable_kubeconfig("SENTINEL-KUBE-TOKEN"));
    let out = p
        .fracta([
            "spawn",
            "--runtime",
            "codex",
            "--task",
            "review",
            "--prompt",
            "look",
            "--json",
        ])
        .env("RENDER_TEST_KEY", "SENTINEL-RENDER-4242")
        .env("KUBECONFIG", p.join("kubeconfig").display().to_string())
        .run();
    assert_eq!(out.code, 1, "{out}");
    let v = out.json();
    assert_eq!(v["status"], "failed", "{v:#}");
    let err = v["error"].as_str().unwrap();
    // The first object applied is the agent's NetworkPolicy (before its Pod can exist).
    assert!(err.contains("apply NetworkPolicy fracta-"), "{err}");
    for s in ["SENTINEL-RENDER-4242", "SENTINEL-KUBE-TOKEN"] {
        assert!(!out.stdout.contains(s) && !out.stderr.contains(s), "{out}");
    }
    // Resume runs on Kubernetes too; an agent that never started has nothing to resume.
    let out = p
        .fracta(["resume", v["id"].as_str().unwrap(), "--prompt", "again"])
        .run();
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("has no resume token"), "{out}");
}

/// The control plane runs batch agents and stream sessions on the Kubernetes backend too
/// (here it cannot reach the API server, and each agent fails saying so).
#[test]
fn the_control_plane_runs_agents_on_the_kubernetes_backend() {
    use super::harness::{Project as Live, Serve};
    let p = Live::new(fracta_model_server::Script::parse("fallback: ok\n", "k").unwrap());
    std::fs::write(
        p.path().join("fracta.yaml"),
        format!("{CONFIG}project:\n  repository: https://git.example.com/acme/app.git\n"),
    )
    .unwrap();
    std::fs::write(p.path().join("kubeconfig"), unreachable_kubeconfig("t")).unwrap();
    let kubeconfig = p.path().join("kubeconfig").display().to_string();
    let server = Serve::start_with(&p, &[("KUBECONFIG", &kubeconfig), ("RENDER_TEST_KEY", "k")]);
    let v = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--runtime",
        "codex",
        "--task",
        "t",
        "--prompt",
        "hi",
    ]);
    let a = p.wait_for_agent(v["id"].as_str().unwrap(), "failed", Duration::from_secs(30));
    let err = a["error"].as_str().unwrap();
    assert!(
        err.contains("cannot apply NetworkPolicy fracta-") && err.contains("Connection refused"),
        "{err}"
    );
    assert!(
        a["workspace"].is_null(),
        "no local worktree for a Kubernetes agent: {a:#}"
    );
    let s = p.json(&[
        "spawn",
        "--detach",
        "--json",
        "--runtime",
        "codex",
        "--mode",
        "stream",
        "--task",
        "t",
        "--prompt",
        "hi",
    ]);
    let a = p.wait_for_agent(s["id"].as_str().unwrap(), "failed", Duration::from_secs(30));
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("cannot apply NetworkPolicy fracta-"),
        "a stream session's objects, through the same backend: {a:#}"
    );
    assert!(server.stop());
}

/// A Claude stream spawn on the Kubernetes backend is refused with the seed's reason.
#[test]
fn a_claude_stream_spawn_on_kubernetes_is_refused_with_the_seeds_reason() {
    let p = project();
    let out = p
        .fracta([
            "spawn",
            "--mode",
            "stream",
            "--runtime",
            "claude",
            "--task",
            "t",
            "--prompt",
            "hi",
        ])
        .run();
    assert_eq!(out.code, 2, "{out}");
    assert!(out.stderr.contains("K8s stream N/A for claude"), "{out}");
}

/// An ACP agent talks over its stdio, which a Pod does not offer: a spawn (batch as well as
/// stream) and a render of one on the Kubernetes backend are refused with the reason.
#[test]
fn an_acp_spawn_or_render_on_kubernetes_is_refused_with_the_reason() {
    let p = Project::new();
    p.write(
        "fracta.yaml",
        CONFIG.replace(
            "  agent_runtimes:\n",
            "  agent_runtimes:\n    gemini:\n      adapter: gemini\n",
        ),
    );
    for cmd in ["spawn", "render"] {
        let out = p
            .fracta([cmd, "--runtime", "gemini", "--task", "t", "--prompt", "hi"])
            .run();
        assert_eq!(out.code, 2, "{cmd}: {out}");
        assert!(
            out.stderr
                .contains("runtime `gemini` cannot run on Kubernetes")
                && out.stderr.contains("stdin/stdout"),
            "{cmd}: {out}"
        );
    }
}

/// A stand-in API server: answers every request with `status` and a JSON `Status`, and
/// records each request line.
fn fake_api(status: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            record.lock().unwrap().push(line.trim().to_string());
            let mut length = 0;
            loop {
                let mut h = String::new();
                reader.read_line(&mut h).unwrap();
                if h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer = serde_json::json!({"kind": "Status", "apiVersion": "v1",
                "status": if status < 300 { "Success" } else { "Failure" },
                "reason": if status == 403 { "Forbidden" } else { "" },
                "message": if status == 403 { "persistentvolumeclaims is forbidden" } else { "" },
                "code": status})
            .to_string();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, seen)
}

/// `fracta rm` of a Kubernetes agent deletes its claim (kept after the run for a resume) in
/// the namespace it ran in; when the cluster refuses, the agent is kept and rm says why.
#[test]
fn rm_deletes_a_kubernetes_agents_claim() {
    use super::harness::Project as Live;
    let p = Live::new(fracta_model_server::Script::parse("fallback: ok\n", "k").unwrap());
    let store = p.store();
    let mut a =
        fracta_state::AgentRecord::new("t", "codex", "codex", fracta_state::Mode::Batch, "hi");
    a.status = fracta_state::AgentStatus::Succeeded;
    a.meta.kubernetes = Some(fracta_state::KubernetesRef {
        namespace: "team-a".into(),
        job: Some(format!("fracta-{}", a.id.to_ascii_lowercase())),
        pod: None,
    });
    let a = store.insert_agent(&a).unwrap();
    let claim = format!(
        "/api/v1/namespaces/team-a/persistentvolumeclaims/fracta-{}",
        a.id.to_ascii_lowercase()
    );

    // Refused: the agent stays.
    let (url, seen) = fake_api(403);
    std::fs::write(
        p.path().join("kubeconfig"),
        unreachable_kubeconfig("t").replace("http://127.0.0.1:9", &url),
    )
    .unwrap();
    let out = p
        .command(&["rm", &a.id])
        .env("KUBECONFIG", p.path().join("kubeconfig"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cannot delete agent"), "{stderr}");
    assert!(stderr.contains("forbidden"), "{stderr}");
    assert!(
        seen.lock().unwrap()[0].starts_with(&format!("DELETE {claim}")),
        "{seen:?}"
    );
    assert!(store.get_agent(&a.id).is_ok());

    // Deleted: the agent goes too.
    let (url, seen) = fake_api(200);
    std::fs::write(
        p.path().join("kubeconfig"),
        unreachable_kubeconfig("t").replace("http://127.0.0.1:9", &url),
    )
    .unwrap();
    let out = p
        .command(&["rm", &a.id])
        .env("KUBECONFIG", p.path().join("kubeconfig"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "{seen:?}");
    assert!(
        seen.lock().unwrap()[0].starts_with(&format!("DELETE {claim}")),
        "{seen:?}"
    );
    assert!(store.get_agent(&a.id).is_err());
}
