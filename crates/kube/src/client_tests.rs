//! The exact API calls — method, path, query, body — a spawn, a status watch, a log follow, a
//! stop and a clean-up send, against a mocked API server (kube-rs's `tower_test` pattern),
//! including the API answering 403, 404, 409 and 500.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tower_test::mock;

use crate::client::{KubeBackend, KubeError, Phase};
use crate::render::{Rendered, render};
use crate::tests::{CONFIG, agent_for};

/// One call the mocked API expects, and its answer.
pub(crate) struct Expect {
    pub method: &'static str,
    /// Path and query, exactly.
    pub uri: String,
    pub status: u16,
    /// The answer's body; `None` echoes the request's body (as apply does).
    pub body: Option<String>,
    /// Answer only after the next expected call has been answered (a log that follows).
    pub hold: bool,
}

pub(crate) fn expect(method: &'static str, uri: &str, status: u16, body: Option<Value>) -> Expect {
    Expect {
        method,
        uri: uri.to_string(),
        status,
        body: body.map(|b| b.to_string()),
        hold: false,
    }
}

#[derive(Debug)]
pub(crate) struct Call {
    method: String,
    uri: String,
    content_type: String,
    body: String,
}

/// A client whose API server answers `script` in order and records every call.
pub(crate) fn mocked(script: Vec<Expect>) -> (KubeBackend, tokio::task::JoinHandle<Vec<Call>>) {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let task = tokio::spawn(async move {
        let mut calls = Vec::new();
        let mut held: Option<(mock::SendResponse<Response<Body>>, String)> = None;
        for e in script {
            let (req, send) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
                .await
                .unwrap_or_else(|_| panic!("no call came for {} {}", e.method, e.uri))
                .expect("the client is gone");
            let call = Call {
                method: req.method().to_string(),
                uri: req.uri().to_string(),
                content_type: req
                    .headers()
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
                body: String::from_utf8(req.into_body().collect_bytes().await.unwrap().to_vec())
                    .unwrap(),
            };
            assert_eq!(
                (call.method.as_str(), call.uri.as_str()),
                (e.method, e.uri.as_str()),
                "{call:#?}"
            );
            let body = e.body.unwrap_or_else(|| call.body.clone());
            let answer = |status: u16, body: String| {
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(body.into_bytes()))
                    .unwrap()
            };
            let earlier = held.take();
            if e.hold {
                held = Some((send, body));
            } else {
                send.send_response(answer(e.status, body));
            }
            if let Some((s, b)) = earlier {
                s.send_response(answer(200, b));
            }
            calls.push(call);
        }
        calls
    });
    (
        KubeBackend::new(kube::Client::new(service, "agents"), "agents"),
        task,
    )
}

pub(crate) fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

const NAME: &str = "fracta-01jagent0000000000000000ab";
const ID: &str = "01JAGENT0000000000000000AB";

fn apply_uri(group_path: &str, plural: &str) -> String {
    format!("{group_path}/namespaces/agents/{plural}/{NAME}?&force=true&fieldManager=fracta")
}

fn rendered(runtime: &str, adapter: &str) -> Rendered {
    let cfg = fracta_config::parse(CONFIG, std::path::Path::new("/p/fracta.yaml")).unwrap();
    render(
        &cfg,
        &agent_for(runtime, adapter, fracta_state::Mode::Batch),
        "agents",
    )
    .unwrap()
}

/// The Job as the API returns it after apply: with a uid.
fn created_job(r: &Rendered) -> Value {
    let mut v = r.objects().unwrap().pop().unwrap();
    v["metadata"]["uid"] = json!("uid-job-1");
    v
}

#[tokio::test]
async fn a_batch_spawn_applies_the_job_then_its_owned_secret_and_config_map() {
    let r = rendered("codex_env", "codex");
    let (kube, calls) = mocked(vec![
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/api/v1", "persistentvolumeclaims"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/apis/batch/v1", "jobs"),
            200,
            Some(created_job(&r)),
        ),
        expect("PATCH", &apply_uri("/api/v1", "secrets"), 200, None),
        expect("PATCH", &apply_uri("/api/v1", "configmaps"), 200, None),
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
    ]);
    let values = BTreeMap::from([
        ("openai-api-key".to_string(), "SENTINEL-VALUE-1".to_string()),
        (
            "extra-api-token".to_string(),
            "SENTINEL-VALUE-2".to_string(),
        ),
        (
            "literal-secret-key".to_string(),
            "SENTINEL-VALUE-3".to_string(),
        ),
    ]);
    kube.apply(&r, &values).await.unwrap();
    let calls = calls.await.unwrap();
    for c in &calls {
        // Server-side apply, under Fracta's field manager.
        assert_eq!(c.content_type, "application/apply-patch+yaml", "{c:#?}");
    }
    // The NetworkPolicy comes before the Pod can exist, and is owned by the Job once it does.
    let np: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(np["kind"], "NetworkPolicy");
    assert!(np["metadata"].get("ownerReferences").is_none(), "{np:#}");
    // Then the claim, owned by nothing: it outlives the Job, for a resume.
    let pvc: Value = serde_json::from_str(&calls[1].body).unwrap();
    assert_eq!(pvc["kind"], "PersistentVolumeClaim");
    assert_eq!(pvc["spec"]["resources"]["requests"]["storage"], "10Gi");
    assert!(pvc["metadata"].get("ownerReferences").is_none(), "{pvc:#}");
    let np: Value = serde_json::from_str(&calls[5].body).unwrap();
    assert_eq!(np["metadata"]["ownerReferences"][0]["uid"], "uid-job-1");
    let calls = &calls[2..];
    let job: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(job["metadata"]["labels"]["fracta.dev/agent-id"], ID);
    assert!(
        !calls[0].body.contains("SENTINEL"),
        "a secret value in the Job"
    );
    let secret: Value = serde_json::from_str(&calls[1].body).unwrap();
    assert_eq!(secret["stringData"]["openai-api-key"], "SENTINEL-VALUE-1");
    let owner = &secret["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["uid"].as_str(),
            owner["name"].as_str()
        ),
        (Some("Job"), Some("uid-job-1"), Some(NAME))
    );
    let cm: Value = serde_json::from_str(&calls[2].body).unwrap();
    assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], "uid-job-1");
    assert!(
        !calls[2].body.contains("SENTINEL"),
        "a secret value in the ConfigMap"
    );
}

#[tokio::test]
async fn a_secret_value_that_was_not_materialized_is_an_error_not_a_blank() {
    let r = rendered("codex_env", "codex");
    let (kube, _calls) = mocked(vec![
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/api/v1", "persistentvolumeclaims"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/apis/batch/v1", "jobs"),
            200,
            Some(created_job(&r)),
        ),
    ]);
    let e = kube.apply(&r, &BTreeMap::new()).await.unwrap_err();
    assert!(matches!(e, KubeError::MissingSecret(_)), "{e}");
}

#[tokio::test]
async fn forbidden_and_conflict_answers_are_errors_that_say_what_to_do() {
    let r = rendered("codex", "codex");
    let (kube, _c) = mocked(vec![
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/api/v1", "persistentvolumeclaims"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/apis/batch/v1", "jobs"),
            403,
            Some(status(
                403,
                "Forbidden",
                "jobs.batch is forbidden: User \"system:serviceaccount:agents:default\" cannot patch resource \"jobs\"",
            )),
        ),
    ]);
    let e = kube.apply(&r, &BTreeMap::new()).await.unwrap_err();
    assert!(matches!(e, KubeError::Forbidden { .. }), "{e}");
    assert!(e.to_string().contains("fracta-controlplane.yaml"), "{e}");

    let (kube, _c) = mocked(vec![
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/api/v1", "persistentvolumeclaims"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/apis/batch/v1", "jobs"),
            409,
            Some(status(
                409,
                "Conflict",
                "Apply failed with 1 conflict: conflict with \"kubectl\"",
            )),
        ),
    ]);
    let e = kube.apply(&r, &BTreeMap::new()).await.unwrap_err();
    assert!(matches!(e, KubeError::Conflict { .. }), "{e}");
    assert!(e.to_string().contains(&format!("Job {NAME}")), "{e}");
}

#[tokio::test]
async fn server_errors_are_retried_then_reported() {
    let r = rendered("codex", "codex");
    let boom = || {
        Some(status(
            500,
            "InternalError",
            "etcdserver: request timed out",
        ))
    };
    // Two 500s, then the API recovers.
    let (kube, calls) = mocked(vec![
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/api/v1", "persistentvolumeclaims"),
            200,
            None,
        ),
        expect("PATCH", &apply_uri("/apis/batch/v1", "jobs"), 500, boom()),
        expect("PATCH", &apply_uri("/apis/batch/v1", "jobs"), 500, boom()),
        expect(
            "PATCH",
            &apply_uri("/apis/batch/v1", "jobs"),
            200,
            Some(created_job(&r)),
        ),
        expect("PATCH", &apply_uri("/api/v1", "configmaps"), 200, None),
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
    ]);
    kube.apply(&r, &BTreeMap::new()).await.unwrap();
    assert_eq!(calls.await.unwrap().len(), 7);
    // Three 500s: given up, with the API's words.
    let (kube, _c) = mocked(vec![
        expect(
            "PATCH",
            &apply_uri("/apis/networking.k8s.io/v1", "networkpolicies"),
            200,
            None,
        ),
        expect(
            "PATCH",
            &apply_uri("/api/v1", "persistentvolumeclaims"),
            200,
            None,
        ),
        expect("PATCH", &apply_uri("/apis/batch/v1", "jobs"), 500, boom()),
        expect("PATCH", &apply_uri("/apis/batch/v1", "jobs"), 500, boom()),
        expect("PATCH", &apply_uri("/apis/batch/v1", "jobs"), 500, boom()),
    ]);
    let e = kube.apply(&r, &BTreeMap::new()).await.unwrap_err();
    assert!(matches!(e, KubeError::Api { code: 500, .. }), "{e}");
    assert!(e.to_string().contains("etcdserver"), "{e}");
}

pub(crate) fn pod(phase: &str, container_state: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": NAME, "namespace": "agents", "resourceVersion": "7"},
           "status": {"phase": phase, "containerStatuses": [{
               "name": "codex", "image": "registry.example/fracta/agent-codex:1.2.3", "imageID": "",
               "ready": false, "restartCount": 0, "state": container_state}]}})
}

pub(crate) fn watch_body(events: &[(&str, Value)]) -> String {
    events
        .iter()
        .map(|(t, o)| json!({"type": t, "object": o}).to_string() + "\n")
        .collect()
}

fn watch_uri() -> String {
    format!(
        "/api/v1/namespaces/agents/pods?&watch=true&timeoutSeconds=60&labelSelector=fracta.dev%2Fagent-id%3D{ID}&allowWatchBookmarks=true&resourceVersion=0"
    )
}

async fn watched(events: &[(&str, Value)]) -> Phase {
    let (kube, calls) = mocked(vec![Expect {
        method: "GET",
        uri: watch_uri(),
        status: 200,
        body: Some(watch_body(events)),
        hold: false,
    }]);
    let (phase, pod) = kube
        .wait_started(ID, "codex", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(pod.as_deref(), Some(NAME));
    calls.await.unwrap();
    phase
}

#[tokio::test]
async fn the_status_watch_maps_pod_states_to_the_agent() {
    let pending = pod(
        "Pending",
        json!({"waiting": {"reason": "ContainerCreating"}}),
    );
    let running = pod(
        "Running",
        json!({"running": {"startedAt": "2026-11-30T00:00:00Z"}}),
    );
    assert_eq!(
        watched(&[("ADDED", pending.clone()), ("MODIFIED", running)]).await,
        Phase::Running { pod: NAME.into() }
    );
    let pull = pod(
        "Pending",
        json!({"waiting": {"reason": "ErrImagePull", "message": "manifest unknown"}}),
    );
    let Phase::Failed { reason } = watched(&[("ADDED", pending), ("MODIFIED", pull)]).await else {
        panic!("an image pull error is a failure")
    };
    assert!(
        reason.contains("cannot pull image registry.example/fracta/agent-codex:1.2.3")
            && reason.contains("manifest unknown"),
        "{reason}"
    );
    let oom = pod(
        "Failed",
        json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
    );
    let Phase::Exited {
        failure: Some(reason),
        ..
    } = watched(&[("ADDED", oom)]).await
    else {
        panic!("an OOM kill is a failure")
    };
    assert!(reason.contains("OOMKilled (exit 137)"), "{reason}");
}

#[tokio::test]
async fn job_deadline_exceeded_is_a_failure_naming_the_budget() {
    let r = rendered("codex", "codex");
    let mut job = created_job(&r);
    job["status"] = json!({"conditions": [{"type": "Failed", "status": "True",
        "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]});
    let (kube, _c) = mocked(vec![expect(
        "GET",
        &format!("/apis/batch/v1/namespaces/agents/jobs/{NAME}"),
        200,
        Some(job),
    )]);
    let Some(Phase::Failed { reason }) = kube.job_outcome(NAME).await.unwrap() else {
        panic!("a failed Job")
    };
    assert!(reason.contains("wall-clock budget (3600 s)"), "{reason}");
}

/// The agent's log becomes the same normalized events as a local run's stdout.
#[tokio::test]
async fn the_log_follow_feeds_the_runtime_parser() {
    let lines = [
        r#"{"type":"thread.started","thread_id":"0199-thread"}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.completed","item":{"id":"i0","type":"agent_message","text":"done"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":2}}"#,
    ];
    let (kube, calls) = mocked(vec![Expect {
        method: "GET",
        uri: format!("/api/v1/namespaces/agents/pods/{NAME}/log?&container=codex&follow=true"),
        status: 200,
        body: Some(lines.join("\n") + "\n"),
        hold: false,
    }]);
    let log = kube.follow_log(NAME, "codex").await.unwrap();
    let got: Vec<String> = log.map(|l| l.unwrap()).collect().await;
    calls.await.unwrap();
    assert_eq!(got, lines);
    let mut parser = fracta_core::adapter::adapter_for(fracta_config::AdapterKind::Codex).parser();
    let kinds: Vec<String> = got
        .iter()
        .flat_map(|l| parser.parse_line(l).events)
        .map(|e| e.kind().to_string())
        .collect();
    assert_eq!(kinds, ["session", "step", "message", "step", "usage"]);
    assert_eq!(parser.outcome().result.as_deref(), Some("done"));
    assert_eq!(
        parser.outcome().resume_token.as_deref(),
        Some("0199-thread")
    );
}

#[tokio::test]
async fn stop_and_clean_up_delete_in_the_background_and_a_missing_object_is_fine() {
    let r = rendered("codex_env", "codex");
    let gone = || Some(status(404, "NotFound", "jobs.batch \"x\" not found"));
    let (kube, calls) = mocked(vec![
        expect(
            "DELETE",
            &format!("/apis/batch/v1/namespaces/agents/jobs/{NAME}?"),
            404,
            gone(),
        ),
        expect(
            "DELETE",
            &format!("/api/v1/namespaces/agents/secrets/{NAME}?"),
            200,
            Some(status(200, "", "")),
        ),
        expect(
            "DELETE",
            &format!("/api/v1/namespaces/agents/configmaps/{NAME}?"),
            404,
            gone(),
        ),
        expect(
            "DELETE",
            &format!("/apis/networking.k8s.io/v1/namespaces/agents/networkpolicies/{NAME}?"),
            200,
            Some(status(200, "", "")),
        ),
    ]);
    kube.clean_up(&r).await.unwrap();
    let calls = calls.await.unwrap();
    let body: Value = serde_json::from_str(&calls[0].body).unwrap();
    assert_eq!(body["propagationPolicy"], "Background");
    // Any other failure is reported.
    let (kube, _c) = mocked(vec![expect(
        "DELETE",
        &format!("/apis/batch/v1/namespaces/agents/jobs/{NAME}?"),
        403,
        Some(status(403, "Forbidden", "cannot delete jobs")),
    )]);
    let e = kube.stop(&r).await.unwrap_err();
    assert!(matches!(e, KubeError::Forbidden { .. }), "{e}");
}

/// A runner on a real state store, with the test config.
fn runner(dir: &std::path::Path) -> fracta_core::runner::Runner {
    let cfg = fracta_config::parse(CONFIG, &dir.join("fracta.yaml")).unwrap();
    let store =
        fracta_state::open_store(&fracta_state::StateConfig::sqlite(dir.join("state.db"))).unwrap();
    fracta_core::runner::Runner::new(std::sync::Arc::new(cfg), store)
}

fn recorded(r: &fracta_core::runner::Runner, runtime: &str) -> fracta_state::AgentRecord {
    let prepared = r
        .prepare(&fracta_core::resolve::SpawnRequest {
            task: "review".into(),
            prompt: Some("Review the change.".into()),
            runtime: Some(runtime.into()),
            ..Default::default()
        })
        .unwrap();
    r.record(prepared).unwrap()
}

/// A recorded codex batch agent, the Job the API answers its apply with, and the calls that
/// create its objects and watch its Pod (which the watch reports as `pod`).
struct BatchRun {
    _dir: tempfile::TempDir,
    runner: fracta_core::runner::Runner,
    agent: fracta_state::AgentRecord,
    name: String,
    job: Value,
}

impl BatchRun {
    fn new() -> Self {
        Self::of("codex")
    }

    fn of(runtime: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runner = runner(dir.path());
        let agent = recorded(&runner, runtime);
        let name = crate::render::object_name(&agent.id);
        let cfg = fracta_config::parse(CONFIG, &dir.path().join("fracta.yaml")).unwrap();
        let job = created_job(&render(&cfg, &agent, "agents").unwrap());
        BatchRun {
            _dir: dir,
            runner,
            agent,
            name,
            job,
        }
    }

    /// Apply the Job (answered with a uid) and the ConfigMap, then watch the Pod.
    fn start_calls(&self, mut pod: Value, pod_name: &str) -> Vec<Expect> {
        let name = &self.name;
        let apply = |group: &str, plural: &str| {
            format!("{group}/namespaces/agents/{plural}/{name}?&force=true&fieldManager=fracta")
        };
        let mut job = self.job.clone();
        job["metadata"]["uid"] = json!("uid-job-1");
        pod["metadata"]["name"] = json!(pod_name);
        let np = apply("/apis/networking.k8s.io/v1", "networkpolicies");
        vec![
            expect("PATCH", &np, 200, None),
            expect(
                "PATCH",
                &apply("/api/v1", "persistentvolumeclaims"),
                200,
                None,
            ),
            expect("PATCH", &apply("/apis/batch/v1", "jobs"), 200, Some(job)),
            expect("PATCH", &apply("/api/v1", "configmaps"), 200, None),
            expect("PATCH", &np, 200, None),
            Expect {
                method: "GET",
                uri: format!(
                    "/api/v1/namespaces/agents/pods?&watch=true&timeoutSeconds=290&labelSelector=fracta.dev%2Fagent-id%3D{}&allowWatchBookmarks=true&resourceVersion=0",
                    self.agent.id
                ),
                status: 200,
                body: Some(watch_body(&[("ADDED", pod)])),
                hold: false,
            },
        ]
    }

    /// The agent container's log, followed: `lines`.
    fn log_call(&self, pod_name: &str, container: &str, lines: &[&str]) -> Expect {
        Expect {
            method: "GET",
            uri: format!(
                "/api/v1/namespaces/agents/pods/{pod_name}/log?&container={container}&follow=true"
            ),
            status: 200,
            body: Some(lines.join("\n") + "\n"),
            hold: false,
        }
    }

    /// The Job read for its outcome, answered as `job`.
    fn outcome_call(&self, job: Value) -> Expect {
        expect(
            "GET",
            &format!("/apis/batch/v1/namespaces/agents/jobs/{}", self.name),
            200,
            Some(job),
        )
    }

    /// Delete the Job (200), the ConfigMap (`cm_status`) and the NetworkPolicy (200; a
    /// ConfigMap answer other than 200 or 404 ends the clean-up before it).
    fn clean_up_calls(&self, cm_status: u16) -> Vec<Expect> {
        let mut calls = vec![
            expect(
                "DELETE",
                &format!("/apis/batch/v1/namespaces/agents/jobs/{}?", self.name),
                200,
                Some(status(200, "", "")),
            ),
            expect(
                "DELETE",
                &format!("/api/v1/namespaces/agents/configmaps/{}?", self.name),
                cm_status,
                Some(status(cm_status, "", "")),
            ),
        ];
        if cm_status == 200 || cm_status == 404 {
            calls.push(expect(
                "DELETE",
                &format!(
                    "/apis/networking.k8s.io/v1/namespaces/agents/networkpolicies/{}?",
                    self.name
                ),
                200,
                Some(status(200, "", "")),
            ));
        }
        calls
    }

    async fn run(
        self,
        calls: Vec<Expect>,
    ) -> (
        fracta_core::runner::Runner,
        fracta_state::AgentRecord,
        tempfile::TempDir,
    ) {
        let (kube, answered) = mocked(calls);
        // The runner places it through the Kubernetes backend and drives it as a local one.
        self.runner
            .set_remote(std::sync::Arc::new(crate::run::KubeRemote::with_backend(
                kube, None,
            )));
        let rec = self
            .runner
            .run_recorded(
                self.agent,
                &fracta_core::session::RunOptions::default(),
                &mut fracta_core::record::Quiet,
            )
            .await
            .unwrap();
        answered.await.unwrap();
        (self.runner, rec, self._dir)
    }
}

/// `fracta spawn` on the Kubernetes backend, call by call: apply, watch the Pod start, follow
/// its log into the store, read the Job's outcome, clean up.
#[tokio::test]
async fn a_batch_agent_runs_as_a_job_and_its_log_becomes_its_events() {
    let b = BatchRun::new();
    let name = b.name.clone();
    let pod_name = format!("{name}-x7k2p");
    let running = pod(
        "Running",
        json!({"running": {"startedAt": "2026-11-30T00:00:00Z"}}),
    );
    let lines = [
        r#"{"type":"thread.started","thread_id":"0199-thread"}"#,
        r#"{"type":"turn.started"}"#,
        r#"{"type":"item.completed","item":{"id":"i0","type":"agent_message","text":"LGTM"}}"#,
        r#"{"type":"turn.completed","usage":{"input_tokens":10,"cached_input_tokens":0,"output_tokens":2}}"#,
    ];
    let mut done = b.job.clone();
    done["status"] = json!({"conditions": [{"type": "Complete", "status": "True"}]});
    let mut calls = b.start_calls(running, &pod_name);
    calls.push(b.log_call(&pod_name, "codex", &lines));
    calls.push(b.outcome_call(done));
    calls.extend(b.clean_up_calls(200));
    let (runner, rec, _dir) = b.run(calls).await;
    assert_eq!(rec.status, fracta_state::AgentStatus::Succeeded, "{rec:#?}");
    assert_eq!(rec.result.as_deref(), Some("LGTM"));
    assert_eq!(rec.resume_token.as_deref(), Some("0199-thread"));
    assert_eq!(rec.usage.input_tokens, 10);
    let events = runner.store.events(&rec.id, 0, None).unwrap();
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "message", "status", "session", "step", "message", "step", "usage", "status"
        ]
    );
    // Each event keeps the log line it came from.
    assert_eq!(events[2].raw.as_deref(), Some(lines[0]));
}

/// An image that cannot be pulled fails the agent with the reason, and its objects are
/// removed.
#[tokio::test]
async fn an_image_pull_error_fails_the_agent_and_cleans_up() {
    let b = BatchRun::new();
    let pull = pod(
        "Pending",
        json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
    );
    let mut calls = b.start_calls(pull, &b.name.clone());
    calls.extend(b.clean_up_calls(404));
    let (_runner, rec, _dir) = b.run(calls).await;
    assert_eq!(rec.status, fracta_state::AgentStatus::Failed);
    let err = rec.error.unwrap();
    assert!(
        err.contains("cannot pull image") && err.contains("ImagePullBackOff"),
        "{err}"
    );
}

/// `fracta stop` from another process knows only the agent's id: its Job and its Pod are
/// deleted, whichever exists.
#[tokio::test]
async fn stopping_by_id_deletes_the_job_or_the_pod() {
    let gone = || Some(status(404, "NotFound", "not found"));
    let (kube, calls) = mocked(vec![
        expect(
            "DELETE",
            &format!("/apis/batch/v1/namespaces/agents/jobs/{NAME}?"),
            200,
            Some(status(200, "", "")),
        ),
        expect(
            "DELETE",
            &format!("/api/v1/namespaces/agents/pods/{NAME}?"),
            404,
            gone(),
        ),
    ]);
    kube.stop_agent(ID).await.unwrap();
    let calls = calls.await.unwrap();
    let body: Value = serde_json::from_str(&calls[1].body).unwrap();
    assert_eq!(body["propagationPolicy"], "Background");
}

/// A CLI that fails: its log is still read (the runtime's own error event is recorded), and
/// the agent's error says how the container ended, the runtime's error and the log's tail.
#[tokio::test]
async fn a_failing_cli_is_recorded_with_its_exit_its_error_and_its_log_tail() {
    let b = BatchRun::new();
    let name = b.name.clone();
    let pod_name = format!("{name}-q9z8w");
    let exited = pod(
        "Failed",
        json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
    );
    let lines = [
        r#"{"type":"thread.started","thread_id":"0199-thread"}"#,
        r#"{"type":"turn.failed","error":{"message":"unexpected status 500 Internal Server Error"}}"#,
        "Error: stream disconnected before completion",
    ];
    let mut failed = b.job.clone();
    failed["status"] = json!({"conditions": [{"type": "Failed", "status": "True",
        "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
    let mut calls = b.start_calls(exited, &pod_name);
    calls.push(b.log_call(&pod_name, "codex", &lines));
    calls.push(b.outcome_call(failed));
    calls.extend(b.clean_up_calls(200));
    let (runner, rec, _dir) = b.run(calls).await;
    assert_eq!(rec.status, fracta_state::AgentStatus::Failed);
    let err = rec.error.clone().unwrap();
    for part in [
        "container codex exited 1",
        "unexpected status 500",
        "stream disconnected before completion",
    ] {
        assert!(err.contains(part), "{part} missing from: {err}");
    }
    let events = runner.store.events(&rec.id, 0, None).unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "error" && e.payload.to_string().contains("unexpected status 500")),
        "{events:#?}"
    );
}

/// OpenCode safety on Kubernetes: past the runtime's `max_steps` (2 here) the Job is deleted
/// and the agent fails saying why.
#[tokio::test]
async fn an_opencode_job_past_max_steps_is_deleted_and_fails_saying_why() {
    let b = BatchRun::of("opencode_plain");
    let name = b.name.clone();
    let pod_name = format!("{name}-s7t3p");
    let mut running = pod(
        "Running",
        json!({"running": {"startedAt": "2026-11-30T00:00:00Z"}}),
    );
    running["status"]["containerStatuses"][0]["name"] = json!("opencode");
    let step = r#"{"type":"step_start","sessionID":"ses_1","part":{"type":"step-start"}}"#;
    let mut calls = b.start_calls(running, &pod_name);
    calls.push(b.log_call(&pod_name, "opencode", &[step; 5]));
    // The abort: the Job deleted; then the clean-up.
    calls.push(expect(
        "DELETE",
        &format!("/apis/batch/v1/namespaces/agents/jobs/{name}?"),
        200,
        Some(status(200, "", "")),
    ));
    calls.extend(b.clean_up_calls(404));
    let (runner, rec, _dir) = b.run(calls).await;
    assert_eq!(rec.status, fracta_state::AgentStatus::Failed);
    let err = rec.error.clone().unwrap();
    assert!(err.contains("more than 2 steps (max_steps)"), "{err}");
    let steps = runner
        .store
        .events(&rec.id, 0, None)
        .unwrap()
        .iter()
        .filter(|e| e.kind == "step")
        .count();
    assert_eq!(steps, 3, "the log was read up to the step past the limit");
}

/// A port-forward the API refuses (the Role lacks `pods/portforward`) is an error saying
/// what to do, before any session is attempted.
#[tokio::test]
async fn a_refused_port_forward_says_which_rbac_is_missing() {
    let (kube, _c) = mocked(vec![expect(
        "GET",
        &format!("/api/v1/namespaces/agents/pods/{NAME}/portforward?&ports=8080"),
        403,
        Some(status(
            403,
            "Forbidden",
            "pods \"x\" is forbidden: cannot create resource \"pods/portforward\"",
        )),
    )]);
    let Err(e) = kube.forward_port(NAME, 8080).await else {
        panic!("the forward was not refused")
    };
    assert!(matches!(e, KubeError::Forbidden { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("port-forward") && msg.contains("fracta-controlplane.yaml"),
        "{msg}"
    );
}

/// Clean-up leaves the claim (the mocked API above would fail on any other call); `fracta rm`
/// deletes it, and one already gone is fine.
#[tokio::test]
async fn the_claim_outlives_clean_up_and_is_deleted_by_delete_claim() {
    let uri = format!("/api/v1/namespaces/agents/persistentvolumeclaims/{NAME}?");
    let (kube, calls) = mocked(vec![
        expect("DELETE", &uri, 200, Some(status(200, "", ""))),
        expect(
            "DELETE",
            &uri,
            404,
            Some(status(
                404,
                "NotFound",
                "persistentvolumeclaims \"x\" not found",
            )),
        ),
    ]);
    kube.delete_claim(ID).await.unwrap();
    kube.delete_claim(ID).await.unwrap();
    assert_eq!(calls.await.unwrap().len(), 2);
}

/// A deleted session Pod's end: read at once when the container has already ended; else
/// watched from the Pod's version until the kubelet reports it — here only in the Pod's last
/// state, on its deletion; a Pod already gone says nothing.
#[tokio::test]
async fn a_deleted_session_pods_exit_is_read_or_watched_until_it_is_reported() {
    let pod_uri = format!("/api/v1/namespaces/agents/pods/{NAME}");
    let running = pod(
        "Running",
        json!({"running": {"startedAt": "2026-11-30T00:00:00Z"}}),
    );
    let pushed_not = pod(
        "Failed",
        json!({"terminated": {"exitCode": 1, "reason": "Error"}}),
    );
    let (kube, calls) = mocked(vec![
        expect("GET", &pod_uri, 200, Some(running.clone())),
        Expect {
            method: "GET",
            uri: format!(
                "/api/v1/namespaces/agents/pods?&watch=true&timeoutSeconds=60&fieldSelector=metadata.name%3D{NAME}&allowWatchBookmarks=true&resourceVersion=7"
            ),
            status: 200,
            body: Some(watch_body(&[
                ("MODIFIED", running),
                ("DELETED", pushed_not),
            ])),
            hold: false,
        },
    ]);
    let end = kube
        .container_end(NAME, "codex", Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(end, Some(1));
    calls.await.unwrap();

    let done = pod(
        "Succeeded",
        json!({"terminated": {"exitCode": 0, "reason": "Completed"}}),
    );
    let (kube, calls) = mocked(vec![expect("GET", &pod_uri, 200, Some(done))]);
    assert_eq!(
        kube.container_end(NAME, "codex", Duration::from_secs(60))
            .await
            .unwrap(),
        Some(0)
    );
    assert_eq!(
        calls.await.unwrap().len(),
        1,
        "no watch for an ended container"
    );

    let (kube, calls) = mocked(vec![expect(
        "GET",
        &pod_uri,
        404,
        Some(status(404, "NotFound", "pods not found")),
    )]);
    assert_eq!(
        kube.container_end(NAME, "codex", Duration::from_secs(60))
            .await
            .unwrap(),
        None
    );
    calls.await.unwrap();
}
