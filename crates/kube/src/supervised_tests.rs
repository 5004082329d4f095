//! A batch agent spawned on the Kubernetes backend goes through the supervisor like a local
//! one: it gets its budgets, a gateway token (a Secret reference in its Job, the in-cluster
//! gateway URL in its MCP wiring), the same credential assertions, and the same recording.
//! The cluster is a mocked API server that answers by pattern and records every call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fracta_config::Budgets;
use fracta_core::runner::Runner;
use fracta_core::supervisor::{Caller, Supervisor};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use crate::client::KubeBackend;
use crate::client_tests::{pod, watch_body};
use crate::run::KubeRemote;
use crate::tests::CONFIG;

const IN_CLUSTER_GATEWAY: &str = "http://fracta-controlplane.agents.svc:7700/mcp";

/// One call the cluster received: method, path and query, body.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A cluster that runs every Job it is given to success with `lines` as its log, and says
/// each gateway token it finds in an agent's Secret to `tokens`.
fn cluster(lines: &'static [&'static str], tokens: Arc<Mutex<Vec<String>>>) -> (KubeBackend, Seen) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        let mut job = Value::Null;
        while let Some((req, send)) = handle.next_request().await {
            let method = req.method().to_string();
            let uri = req.uri().to_string();
            let path = req.uri().path().to_string();
            let body =
                String::from_utf8(req.into_body().collect_bytes().await.unwrap().to_vec()).unwrap();
            record
                .lock()
                .unwrap()
                .push((method.clone(), uri.clone(), body.clone()));
            let answer = match (method.as_str(), path.as_str()) {
                ("PATCH", p) if p.contains("/jobs/") => {
                    job = serde_json::from_str(&body).unwrap();
                    job["metadata"]["uid"] = json!("uid-job-1");
                    job.to_string()
                }
                ("PATCH", p) => {
                    if p.contains("/secrets/") {
                        let s: k8s_openapi::api::core::v1::Secret =
                            serde_json::from_str(&body).unwrap();
                        // Applied as `stringData` (the API server encodes it).
                        if let Some(t) = s.string_data.unwrap_or_default().get("fracta-agent-token") {
                            tokens.lock().unwrap().push(t.clone());
                        }
                    }
                    body
                }
                ("GET", p) if p.ends_with("/pods") => {
                    let running = pod("Running", json!({"running": {"startedAt": "2026-12-02T00:00:00Z"}}));
                    watch_body(&[("ADDED", running)])
                }
                ("GET", p) if p.ends_with("/log") => lines.join("\n") + "\n",
                ("GET", p) if p.contains("/jobs/") => {
                    let mut done = job.clone();
                    done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
                    done.to_string()
                }
                ("DELETE", _) => json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 200}).to_string(),
                other => panic!("unexpected call {other:?} {uri}"),
            };
            send.send_response(
                Response::builder()
                    .status(200)
                    .header("content-type", "application/json")
                    .body(Body::from(answer.into_bytes()))
                    .unwrap(),
            );
        }
    });
    (
        KubeBackend::new(kube::Client::new(service, "agents"), "agents"),
        seen,
    )
}

const LINES: &[&str] = &[
    r#"{"type":"thread.started","thread_id":"0199-thread"}"#,
    r#"{"type":"turn.started"}"#,
    r#"{"type":"item.completed","item":{"id":"i0","type":"agent_message","text":"LGTM"}}"#,
    r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":2}}"#,
];

/// A supervisor over a runner on a real state store whose remote backend is `kube`, hosting a
/// gateway as a foreground `fracta spawn` does.
fn supervisor(config: &str, dir: &std::path::Path, kube: KubeBackend) -> Arc<Supervisor> {
    let cfg = fracta_config::parse(config, &dir.join("fracta.yaml")).unwrap();
    let store =
        fracta_state::open_store(&fracta_state::StateConfig::sqlite(dir.join("state.db"))).unwrap();
    let runner = Runner::new(Arc::new(cfg), store);
    runner.set_remote(Arc::new(KubeRemote::with_backend(
        kube,
        Some(IN_CLUSTER_GATEWAY.into()),
    )));
    let sup = Supervisor::new(Arc::new(runner));
    sup.set_gateway_url("http://127.0.0.1:7700/mcp".into());
    sup
}

fn request() -> fracta_core::resolve::SpawnRequest {
    fracta_core::resolve::SpawnRequest {
        task: "review".into(),
        prompt: Some("Review the change.".into()),
        runtime: Some("codex".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_kubernetes_batch_agent_gets_budgets_gateway_and_recording_from_the_supervisor() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let (kube, seen) = cluster(LINES, Arc::clone(&tokens));
    let sup = supervisor(CONFIG, dir.path(), kube);
    let asked = Budgets {
        max_depth: Some(2),
        max_children: Some(3),
        max_running: None,
        wall_clock_secs: Some(900),
    };
    let rec = sup.spawn(&Caller::User, request(), &asked).unwrap();
    // Budgets: recorded with the agent, as for a local one.
    let b = rec.meta.budgets.expect("budgets recorded");
    assert_eq!(b.max_depth, Some(2), "{:#?}", rec.meta);
    assert_eq!(b.max_children, Some(3));
    assert_eq!(b.wall_clock_secs, Some(900));
    let done = sup.wait(&rec.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        done.status,
        fracta_state::AgentStatus::Succeeded,
        "{done:#?}"
    );
    assert_eq!(done.result.as_deref(), Some("LGTM"));
    assert_eq!(done.resume_token.as_deref(), Some("0199-thread"));
    assert_eq!(done.usage.input_tokens, 10);
    assert!(
        done.host.as_deref().unwrap().starts_with("kubernetes/"),
        "{done:#?}"
    );

    // The gateway: the Job takes the agent's token from its Secret and is wired to the
    // in-cluster gateway URL; the Secret held a token the supervisor had issued to it.
    let calls = seen.lock().unwrap().clone();
    let job = calls
        .iter()
        .find(|(m, u, _)| m == "PATCH" && u.contains("/jobs/"))
        .map(|(_, _, b)| serde_json::from_str::<Value>(b).unwrap())
        .expect("the Job was applied");
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().unwrap();
    let token_env = env
        .iter()
        .find(|e| e["name"] == "FRACTA_AGENT_TOKEN")
        .expect("the agent's token env");
    assert_eq!(
        token_env["valueFrom"]["secretKeyRef"]["key"], "fracta-agent-token",
        "{token_env:#}"
    );
    assert!(
        container.to_string().contains(IN_CLUSTER_GATEWAY),
        "the Job's MCP wiring names the in-cluster gateway: {container:#}"
    );
    let tokens = tokens.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1, "one gateway token in the Secret");
    assert_eq!(tokens[0].len(), 64);
    // Retired with the run: it opens nothing now.
    assert_eq!(sup.authenticate(&tokens[0]), None);
    // Only the Secret holds it: no other object carries it.
    for (_, uri, body) in &calls {
        if !uri.contains("/secrets/") {
            assert!(!body.contains(&tokens[0]), "{uri} carries the token");
        }
    }

    // Recording: every log line an event, in order, with its raw line, then the end.
    let events = sup.runner.store.events(&done.id, 0, None).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message", "status", "session", "step", "message", "step", "usage", "status"
        ],
        "{events:#?}"
    );
    assert!(events.iter().any(|e| e.raw.as_deref() == Some(LINES[0])));
    assert_eq!(events.last().unwrap().payload["status"], "succeeded");
}

/// The profile's assertions hold on Kubernetes too, on the env the container would get: a
/// `forbid_env` the runtime's `kubernetes.env` sets fails the agent before anything is
/// applied.
#[tokio::test]
async fn a_kubernetes_agent_is_refused_by_the_same_assertions_as_a_local_one() {
    let dir = tempfile::tempdir().unwrap();
    let (kube, seen) = cluster(LINES, Arc::default());
    let config = CONFIG.replace(
        "      openai_secret:\n        auth_origins:",
        "      openai_secret:\n        assertions:\n          forbid_env: [RUST_LOG]\n        auth_origins:",
    );
    assert_ne!(config, CONFIG);
    let sup = supervisor(&config, dir.path(), kube);
    let rec = sup
        .spawn(&Caller::User, request(), &Budgets::default())
        .unwrap();
    let done = sup.wait(&rec.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.status, fracta_state::AgentStatus::Failed);
    let err = done.error.unwrap();
    assert!(
        err.contains("forbids `RUST_LOG`") && err.contains("assertions.forbid_env"),
        "{err}"
    );
    assert!(seen.lock().unwrap().is_empty(), "nothing was applied");
}

/// `fracta resume` on Kubernetes: a new Job on the agent's claim, given the runtime's resume
/// token and the new prompt; the claim is applied again, never deleted, and the agent ends
/// its second turn recorded like the first.
#[tokio::test]
async fn a_kubernetes_batch_agent_is_resumed_by_a_new_job_on_its_claim() {
    let dir = tempfile::tempdir().unwrap();
    let (kube, seen) = cluster(LINES, Arc::default());
    let sup = supervisor(CONFIG, dir.path(), kube);
    let rec = sup
        .spawn(&Caller::User, request(), &Budgets::default())
        .unwrap();
    let done = sup.wait(&rec.id, Duration::from_secs(30)).await.unwrap();
    assert_eq!(done.status, fracta_state::AgentStatus::Succeeded);
    assert!(
        done.branch
            .as_deref()
            .unwrap()
            .starts_with("fracta/review-")
    );
    let first = seen.lock().unwrap().len();
    let again = sup
        .runner
        .resume(&rec.id, "And the tests?", &mut fracta_core::record::Quiet)
        .await
        .unwrap();
    assert_eq!(
        again.status,
        fracta_state::AgentStatus::Succeeded,
        "{again:#?}"
    );
    assert_eq!(again.meta.turns, 2);
    assert_eq!(
        again.prompt, "Review the change.",
        "the record keeps the first prompt"
    );
    let calls = seen.lock().unwrap().clone();
    let second = &calls[first..];
    let claim = second
        .iter()
        .filter(|(m, u, _)| m == "PATCH" && u.contains("/persistentvolumeclaims/"))
        .count();
    assert_eq!(claim, 1, "the same claim, applied again: {second:#?}");
    assert!(
        !calls
            .iter()
            .any(|(m, u, _)| m == "DELETE" && u.contains("/persistentvolumeclaims/")),
        "the claim is kept"
    );
    let job = second
        .iter()
        .find(|(m, u, _)| m == "PATCH" && u.contains("/jobs/"))
        .map(|(_, _, b)| b.clone())
        .expect("a new Job");
    assert!(
        job.contains("0199-thread"),
        "the Job resumes the thread: {job}"
    );
    assert!(job.contains("And the tests?"), "{job}");
    let events = sup.runner.store.events(&rec.id, 0, None).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "message" && e.payload.to_string().contains("And the tests?")),
        "{events:#?}"
    );
}
