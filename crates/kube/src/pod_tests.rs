//! The network path of stream Pods, without a cluster: the rendered Pod of a Codex and an
//! OpenCode stream agent is run on this machine as a kubelet would run it — its env resolved
//! from the values, the agent's Secret and ConfigMap and the cluster's Secrets it references,
//! its init container's script run to put the files in place, `$(VAR)` expanded in its args,
//! its readiness probe run — with only its paths (`/workspace`, `/fracta`, `/data`) moved into
//! a temp folder and its port onto a free loopback one. Fracta's own transport and session code
//! then drive it over the network (WebSocket with the capability token; HTTP + SSE with the
//! password), against the scripted model server, for two turns that keep their context.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fracta_config::AdapterKind;
use fracta_core::adapter::{StreamSession, adapter_for};
use fracta_core::transport;
use fracta_model_server::{ModelServer, Script};
use fracta_state::{AgentRecord, Mode};
use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::sync::mpsc;

use crate::git_remote::GitRemote;
use crate::render::{Rendered, Workload, render};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Fail with instructions when the pinned CLIs are not installed: a test that cannot run its
/// CLI must not pass as if it had checked something.
fn require_clis() {
    for c in ["codex", "opencode"] {
        let p = repo_root().join("node_modules/.bin").join(c);
        assert!(
            p.is_file(),
            "{} is missing: run `npm ci` in the repository (scripts/setup.sh does)",
            p.display()
        );
    }
}

/// The test remote's token (a Secret `git`, key `token`, in the cluster).
const GIT_TOKEN: &str = "git-token-for-the-pod-tests";

/// The project's remote: `app`, whose `main` has a README.
fn remote() -> GitRemote {
    let remote = GitRemote::start("fracta-bot", GIT_TOKEN);
    remote.seed("app", &[("README.md", "# app\n")]);
    remote
}

fn config(url: &str, remote: &GitRemote) -> String {
    let repository = remote.url("app");
    format!(
        r#"
runtime:
  backend: kubernetes
project:
  repository: {repository}
  repository_credential: {{ profile: git, origin: token, username: fracta-bot }}
auth:
  credentials:
    profiles:
      git:
        auth_origins:
          token:
            type: secret_env
            env_name: GIT_TOKEN
            secret_ref: {{ name: git, key: token }}
      fake_openai:
        auth_origins:
          key:
            type: secret_env
            env_name: FAKE_OPENAI_KEY
            secret_ref: {{ name: fake-openai, key: api-key }}
        default_binding: {{ type: bearer_env, auth_origin: key, env_name: FAKE_OPENAI_KEY }}
agents:
  agent_runtimes:
    codex:
      adapter: codex
      model: gpt-5.5
      auth_profile: fake_openai
      native_config:
        model_provider: fake
        model_providers:
          fake:
            name: Fake
            base_url: {url}/v1
            env_key: FAKE_OPENAI_KEY
            wire_api: responses
            request_max_retries: 0
            stream_max_retries: 0
    opencode:
      adapter: opencode
      model: fake/m
      kubernetes:
        env:
          OPENCODE_DISABLE_MODELS_FETCH: "1"
          NPM_CONFIG_OFFLINE: "true"
      native_config:
        provider:
          fake:
            npm: "@ai-sdk/anthropic"
            options:
              baseURL: {url}/v1
              apiKey: sk-oc-test
            models:
              m:
                name: m
"#
    )
}

/// A stream Pod's container running on this machine.
struct LocalPod {
    child: tokio::process::Child,
    env: BTreeMap<String, String>,
    port: u16,
    /// The readiness probe's exec command, if it has one, as it would run in the container.
    probe: Option<Vec<String>>,
    /// Its log (stdout and stderr), as the API server serves it.
    log: PathBuf,
    _root: Option<tempfile::TempDir>,
}

impl LocalPod {
    /// What the kubelet does to a deleted Pod: `SIGTERM` to the container's first process,
    /// then (past its grace period) `SIGKILL`. Its exit code, if it exited by itself.
    async fn delete(&mut self) -> Option<i32> {
        let pid = self.child.id()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let grace = Duration::from_secs(crate::render::SESSION_GRACE_SECS as u64);
        match tokio::time::timeout(grace, self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => None,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LocalPod {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            fracta_core::backend::local::signal_group(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// The laptop: the project's repository, pulled from the remote with its own credentials.
fn laptop(remote: &GitRemote) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let git = crate::git_remote::git;
    git(dir.path(), &["init", "--quiet", "--initial-branch", "main"]);
    give_credentials(dir.path());
    git(dir.path(), &["pull", "--quiet", &remote.url("app"), "main"]);
    dir
}

/// Git in `repo` answers the remote's Basic auth with the test token.
fn give_credentials(repo: &Path) {
    crate::git_remote::git(
        repo,
        &[
            "config",
            "credential.helper",
            &format!("!f() {{ echo username=fracta-bot; echo password={GIT_TOKEN}; }}; f"),
        ],
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Run the Pod's agent container as a kubelet would (see the module's comment).
fn run_locally(
    r: &Rendered,
    secret_values: &BTreeMap<String, String>,
    cluster_secrets: &BTreeMap<(&str, &str), &str>,
) -> LocalPod {
    let root = tempfile::tempdir().unwrap();
    let mut pod = run_locally_on(r, secret_values, cluster_secrets, root.path());
    pod._root = Some(root);
    pod
}

/// `run_locally`, with the agent's claim (its `/workspace`, `/fracta` and `/data`) at `root`.
fn run_locally_on(
    r: &Rendered,
    secret_values: &BTreeMap<String, String>,
    cluster_secrets: &BTreeMap<(&str, &str), &str>,
    root: &Path,
) -> LocalPod {
    let Workload::Pod(pod) = &r.workload else {
        panic!("a stream agent is a Pod")
    };
    let pod: &Pod = pod;
    let spec = pod.spec.as_ref().unwrap();
    let container: &Container = &spec.containers[0];
    let pod_port = container.ports.as_ref().unwrap()[0].container_port;
    let port = free_port();
    let moved = |s: &str| -> String {
        // One pass: placeholders first, so a moved path is not moved again.
        const DIRS: [&str; 4] = ["/etc/fracta/files", "/workspace", "/fracta", "/data"];
        let mut s = s.to_string();
        for (i, dir) in DIRS.iter().enumerate() {
            s = s.replace(dir, &format!("\u{0}{i}\u{0}"));
        }
        for (i, dir) in DIRS.iter().enumerate() {
            let local = root.join(dir.trim_start_matches('/'));
            s = s.replace(&format!("\u{0}{i}\u{0}"), &local.display().to_string());
        }
        s.replace(&format!("0.0.0.0:{pod_port}"), &format!("127.0.0.1:{port}"))
    };
    for dir in ["workspace", "fracta", "data", "etc/fracta/files", "home"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    // The ConfigMap volume, then the init container's own script.
    let data = r.config_map.data.clone().unwrap_or_default();
    for (k, v) in &data {
        std::fs::write(root.join("etc/fracta/files").join(k), v).unwrap();
    }
    // The container's env, resolved as the kubelet does.
    let resolve = |c: &Container| -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for e in c.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => moved(v),
                (None, Some(from)) => {
                    if let Some(s) = &from.secret_key_ref {
                        if s.name == r.name {
                            secret_values[&s.key].clone()
                        } else {
                            cluster_secrets[&(s.name.as_str(), s.key.as_str())].to_string()
                        }
                    } else if let Some(c) = &from.config_map_key_ref {
                        assert_eq!(c.name, r.name);
                        data[&c.key].clone()
                    } else {
                        continue;
                    }
                }
                (None, None) => String::new(),
            };
            env.insert(e.name.clone(), value);
        }
        env
    };
    // The init containers, in order: the clone, then the files.
    for init in spec.init_containers.iter().flatten() {
        let cmd = init.command.as_ref().unwrap();
        assert_eq!(cmd[..2], ["sh".to_string(), "-c".to_string()]);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(moved(&cmd[2]))
            .envs(resolve(init))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "init {}: {}",
            init.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The clone: the remote's files, on the agent's branch.
    let ws = root.join("workspace");
    assert_eq!(
        std::fs::read_to_string(ws.join("README.md")).unwrap(),
        "# app\n"
    );
    let branch = crate::git_remote::git(&ws, &["branch", "--show-current"]);
    assert!(branch.starts_with("fracta/"), "{branch}");
    let env = resolve(container);
    // What the image provides.
    let bin = repo_root().join("node_modules/.bin");
    let mut image_env = env.clone();
    image_env.insert(
        "PATH".into(),
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    image_env.insert("HOME".into(), root.join("home").display().to_string());
    // The container's command (Fracta's wrapper around the server), then its args.
    let command = container.command.as_ref().unwrap();
    assert_eq!(command[..2], ["sh".to_string(), "-c".to_string()]);
    let args: Vec<String> = command[1..]
        .iter()
        .map(|a| moved(a))
        .chain(
            container
                .args
                .iter()
                .flatten()
                .map(|a| moved(&fracta_core::launch::expand_env_refs(a, &env))),
        )
        .map(|a| {
            if a == pod_port.to_string() {
                port.to_string()
            } else {
                a
            }
        })
        .map(|a| {
            if a == "0.0.0.0" {
                "127.0.0.1".into()
            } else {
                a
            }
        })
        .collect();
    let workdir = moved(container.working_dir.as_deref().unwrap());
    let log = root.join(format!("container-{port}.log"));
    let out = std::fs::File::create(&log).unwrap();
    let child = tokio::process::Command::new("sh")
        .args(&args)
        .current_dir(&workdir)
        .env_clear()
        .envs(&image_env)
        .env("PWD", &workdir)
        .stdin(std::process::Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        // Its own group, so the whole container goes at the end (the npm wrapper and the
        // native binary it starts), as it would with its Pod.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let probe = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.exec.as_ref())
        .and_then(|e| e.command.clone())
        .map(|c| {
            c.into_iter()
                .map(|a| a.replace(&format!(":{pod_port}/"), &format!(":{port}/")))
                .collect()
        });
    LocalPod {
        child,
        env: image_env,
        port,
        probe,
        log,
        _root: None,
    }
}

/// Run the probe command as the kubelet would in the container (with its env).
async fn probe_passes(pod: &LocalPod, env: &BTreeMap<String, String>) -> bool {
    let cmd = pod.probe.as_ref().unwrap();
    let run = tokio::process::Command::new(&cmd[0])
        .args(&cmd[1..])
        .env_clear()
        .envs(env)
        .kill_on_drop(true)
        .status();
    // The probe's timeoutSeconds.
    matches!(
        tokio::time::timeout(Duration::from_secs(5), run).await,
        Ok(Ok(s)) if s.success()
    )
}

/// Drive a session over its transport for each of `turns`; the result of each.
async fn converse(
    mut session: Box<dyn StreamSession>,
    out: mpsc::UnboundedSender<String>,
    mut said: mpsc::UnboundedReceiver<String>,
    turns: &[&str],
) -> Vec<Option<String>> {
    let mut results = Vec::new();
    for (i, t) in turns.iter().enumerate() {
        let msgs = if i == 0 {
            session.open(t)
        } else {
            session.send(t)
        };
        for m in msgs {
            out.send(m).unwrap();
        }
        loop {
            let m = tokio::time::timeout(Duration::from_secs(90), said.recv())
                .await
                .expect("the session said nothing for 90 s")
                .expect("the transport ended");
            let parsed = session.parse_line(&m);
            for e in &parsed.events {
                assert!(
                    !matches!(e, fracta_core::event::Event::Error(_)),
                    "the session failed: {e:?} ({m})"
                );
            }
            for o in session.take_output() {
                out.send(o).unwrap();
            }
            if session.take_turn_end() {
                break;
            }
        }
        results.push(session.outcome().result.clone());
    }
    results
}

fn agent(runtime: &str) -> AgentRecord {
    let mut a = AgentRecord::new("chat", runtime, runtime, Mode::Stream, "first turn");
    a.model = Some(
        if runtime == "codex" {
            "gpt-5.5"
        } else {
            "fake/m"
        }
        .into(),
    );
    a
}

async fn model_server() -> ModelServer {
    let script = Script::parse(
        "rules:\n  - when: { contains: \"first turn\", has_tools: true }\n    reply: \"ANSWER-ONE\"\n  - when: { contains: \"second turn\", has_tools: true }\n    reply: \"ANSWER-TWO\"\nfallback: \"fine\"\n",
        "pod",
    )
    .unwrap();
    ModelServer::start(script, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn assert_second_turn_carries_the_first(server: &ModelServer) {
    let bodies: Vec<String> = server
        .model_requests()
        .into_iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains("second turn"))
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("first turn") && b.contains("ANSWER-ONE")),
        "no second-turn request carries the first turn: {bodies:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_stream_pod_is_reached_over_websocket_with_its_capability_token() {
    require_clis();
    let server = model_server().await;
    let remote = remote();
    let cfg =
        fracta_config::parse(&config(&server.url(), &remote), Path::new("/p/fracta.yaml")).unwrap();
    let r = render(&cfg, &agent("codex"), "agents").unwrap();
    // The control plane's side: the token it keeps; the Pod's Secret holds its digest.
    let token = fracta_core::secret::new_token().unwrap();
    let values = BTreeMap::from([(
        "fracta-ws-token-sha256".to_string(),
        fracta_core::secret::sha256_hex(&token),
    )]);
    let cluster = BTreeMap::from([
        (("fake-openai", "api-key"), "sk-openai-test"),
        (("git", "token"), GIT_TOKEN),
    ]);
    let pod = run_locally(&r, &values, &cluster);
    assert!(
        pod.probe.is_none(),
        "codex's readiness probe is a TCP probe"
    );
    let url = format!("ws://127.0.0.1:{}", pod.port);
    // A wrong token is refused.
    let (_o, out_rx) = mpsc::unbounded_channel();
    let (said_tx, mut said_rx) = mpsc::unbounded_channel();
    transport::codex_ws(
        transport::CodexWsTarget {
            url: url.clone(),
            token: "forged".into(),
        },
        out_rx,
        said_tx,
    )
    .await;
    let refused = said_rx.recv().await.unwrap();
    assert!(refused.contains("401"), "{refused}");
    // The right one carries the session.
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (said_tx, said_rx) = mpsc::unbounded_channel();
    tokio::spawn(transport::codex_ws(
        transport::CodexWsTarget { url, token },
        out_rx,
        said_tx,
    ));
    let session = adapter_for(AdapterKind::Codex).stream_session(None);
    let results = converse(session, out_tx, said_rx, &["first turn", "second turn"]).await;
    assert_eq!(
        results,
        [Some("ANSWER-ONE".into()), Some("ANSWER-TWO".into())]
    );
    assert_second_turn_carries_the_first(&server);
    // The cluster Secret's key reached the model as the provider's credential.
    assert!(
        server.model_requests().iter().all(|r| r
            .headers
            .get("authorization")
            .is_some_and(|h| h.contains("sk-openai-test"))),
        "the key from secretKeyRef did not reach the model"
    );
    drop(pod);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opencode_stream_pod_is_reached_over_http_with_its_password_and_its_probe_passes() {
    require_clis();
    let server = model_server().await;
    let remote = remote();
    let cfg =
        fracta_config::parse(&config(&server.url(), &remote), Path::new("/p/fracta.yaml")).unwrap();
    let r = render(&cfg, &agent("opencode"), "agents").unwrap();
    let password = fracta_core::secret::new_token().unwrap();
    let values = BTreeMap::from([("opencode-server-password".to_string(), password.clone())]);
    let mut pod = run_locally(
        &r,
        &values,
        &BTreeMap::from([(("git", "token"), GIT_TOKEN)]),
    );
    let url = format!("http://127.0.0.1:{}", pod.port);
    // The readiness probe, as the kubelet runs it: passes once the server is up, with the
    // password from the container's env; fails with another password.
    let until = tokio::time::Instant::now() + Duration::from_secs(90);
    while !probe_passes(&pod, &pod.env).await {
        assert!(
            tokio::time::Instant::now() < until,
            "the readiness probe never passed; opencode exited: {:?}",
            pod.child.try_wait()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut wrong = pod.env.clone();
    wrong.insert("OPENCODE_SERVER_PASSWORD".into(), "forged".into());
    assert!(
        !probe_passes(&pod, &wrong).await,
        "the probe passed with a wrong password"
    );

    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (said_tx, said_rx) = mpsc::unbounded_channel();
    tokio::spawn(transport::opencode(
        transport::OpenCodeTarget {
            url,
            password,
            resume: None,
            title: "ag-0001: first turn".into(),
        },
        out_rx,
        said_tx,
    ));
    let session = adapter_for(AdapterKind::Opencode).stream_session(None);
    let results = converse(session, out_tx, said_rx, &["first turn", "second turn"]).await;
    assert_eq!(
        results,
        [Some("ANSWER-ONE".into()), Some("ANSWER-TWO".into())]
    );
    assert_second_turn_carries_the_first(&server);
    // Its database is on the /data volume.
    assert_eq!(
        pod.env
            .get("OPENCODE_DB")
            .map(|p| p.ends_with("data/opencode.db")),
        Some(true)
    );
}

/// A Codex stream agent under the control plane on Kubernetes, end to end without a cluster:
/// the API (mocked) takes its Pod, Secret and ConfigMap; the Pod runs on this machine as a
/// kubelet would run it (from exactly what was applied, on a folder that stands for its
/// claim); the watch reports it ready; the runner's own session loop drives it over WebSocket
/// for two turns, the first writing a file; closing the session deletes the Pod, whose
/// container (`SIGTERM`, as the kubelet sends) stops the server, commits the file and pushes
/// the agent's branch; the agent ends `succeeded`, its objects cleaned up, and the laptop's
/// repository gets the branch. Then `fracta resume` of the closed session runs a new turn on
/// the same claim that carries the first and reads the file the session wrote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_codex_stream_session_pushes_its_branch_when_closed_and_resumes_on_its_claim() {
    stream_agent_as_a_pod("codex", false).await;
}

/// The same for OpenCode (HTTP + SSE with the session's password; its database on the claim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opencode_stream_session_pushes_its_branch_when_closed_and_resumes_on_its_claim() {
    stream_agent_as_a_pod("opencode", false).await;
}

/// A closed session whose branch the remote refuses (another commit is there already): the
/// agent fails, and its error says which branch could not be pushed where, with git's reason
/// and the key to check; the work stays on the claim, and no secret is in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_session_whose_push_is_refused_fails_with_the_reason() {
    stream_agent_as_a_pod("codex", true).await;
}

/// A tool call that runs `command` in the agent's workspace, for `runtime`.
fn shell_call(runtime: &str, command: &str) -> String {
    match runtime {
        "codex" => format!("{{ name: exec_command, input: {{ cmd: {command:?} }} }}"),
        _ => format!("{{ name: bash, input: {{ command: {command:?}, description: \"run\" }} }}"),
    }
}

async fn stream_agent_as_a_pod(runtime: &str, push_refused: bool) {
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};
    use tower_test::mock;

    require_clis();
    // The first turn writes a file (its content is not in the command that writes it); the
    // resumed turn reads it back.
    let script = Script::parse(
        &format!(
            "rules:\n  - when: {{ contains: \"first turn\", has_tools: true }}\n    reply:\n      tool_calls: [{}]\n  - when: {{ contains: \"second turn\", has_tools: true }}\n    reply: \"ANSWER-TWO\"\n  - when: {{ contains: \"third turn\", has_tools: true }}\n    reply:\n      tool_calls: [{}]\n  - when: {{ contains: \"third turn\", anywhere: true, has_tools: true }}\n    reply: \"ANSWER-THREE\"\n  - when: {{ contains: \"first turn\", anywhere: true, has_tools: true }}\n    reply: \"ANSWER-ONE\"\nfallback: \"A title\"\n",
            shell_call(runtime, "printf 'FROM-THE-%s' SESSION > hello.txt"),
            shell_call(runtime, "cat hello.txt"),
        ),
        "session",
    )
    .unwrap();
    let server = ModelServer::start(script, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let remote = remote();
    let dir = laptop(&remote);
    let git = crate::git_remote::git;
    // OpenCode runs a shell command only if the project allows it.
    let cfg_text = config(&server.url(), &remote).replace(
        "project:\n",
        "project:\n  allowed_tools: [Bash, Read, Write, Edit]\n",
    );
    let cfg = fracta_config::parse(&cfg_text, &dir.path().join("fracta.yaml")).unwrap();
    let store = fracta_state::open_store(&fracta_state::StateConfig::sqlite(
        dir.path().join(".fracta-state.db"),
    ))
    .unwrap();
    let runner = Arc::new(fracta_core::runner::Runner::new(
        Arc::new(cfg.clone()),
        store,
    ));
    let prepared = runner
        .prepare(&fracta_core::resolve::SpawnRequest {
            task: "chat".into(),
            prompt: Some("first turn: write the file".into()),
            runtime: Some(runtime.into()),
            mode: Some(fracta_config::Mode::Stream),
            ..Default::default()
        })
        .unwrap();
    let agent = runner.record(prepared).unwrap();
    let id = agent.id.clone();
    let name = crate::render::object_name(&id);
    // What the control plane will apply, rendered here too, to run the Pod locally.
    let rendered = render(&cfg, &agent, "agents").unwrap();

    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let kube = crate::client::KubeBackend::new(kube::Client::new(service, "agents"), "agents");
    let ok = |body: String| {
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(Body::from(body.into_bytes()))
            .unwrap()
    };
    let gone = || {
        Response::builder()
            .status(404)
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"})
                    .to_string()
                    .into_bytes(),
            ))
            .unwrap()
    };
    // The agent's claim, the same for its session's Pod and its resumed turn's Job.
    let claim = tempfile::tempdir().unwrap();
    let calls: Arc<Mutex<Vec<String>>> = Arc::default();
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    tokio::spawn({
        let name = name.clone();
        let container = runtime.to_string();
        let claim = claim.path().to_path_buf();
        let calls = Arc::clone(&calls);
        let logs = Arc::clone(&logs);
        async move {
            let cluster = BTreeMap::from([
                (("fake-openai", "api-key"), "sk-openai-test"),
                (("git", "token"), GIT_TOKEN),
            ]);
            let mut secret_values = BTreeMap::new();
            let mut pod: Option<LocalPod> = None;
            // How the deleted Pod's container ended.
            let mut pod_exit: Option<i32> = None;
            let mut held_log = None;
            let mut job = Value::Null;
            let mut job_rendered: Option<Rendered> = None;
            let mut job_run: Option<std::process::Output> = None;
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().clone();
                let path = req.uri().path().to_string();
                let body =
                    String::from_utf8(req.into_body().collect_bytes().await.unwrap().to_vec())
                        .unwrap();
                calls.lock().unwrap().push(format!("{method} {path}"));
                match (method.as_str(), path.as_str()) {
                    ("PATCH", p) if p.ends_with(&format!("/pods/{name}")) => {
                        let mut v: Value = serde_json::from_str(&body).unwrap();
                        v["metadata"]["uid"] = json!("uid-pod-1");
                        send.send_response(ok(v.to_string()));
                    }
                    ("PATCH", p) if p.ends_with(&format!("/jobs/{name}")) => {
                        job = serde_json::from_str(&body).unwrap();
                        job["metadata"]["uid"] = json!("uid-job-1");
                        let j: k8s_openapi::api::batch::v1::Job =
                            serde_json::from_value(job.clone()).unwrap();
                        job_rendered = Some(Rendered {
                            workload: Workload::Job(Box::new(j)),
                            ..render_stub(&name)
                        });
                        send.send_response(ok(job.to_string()));
                    }
                    ("PATCH", p) if p.contains("/secrets/") => {
                        let v: Value = serde_json::from_str(&body).unwrap();
                        for (k, val) in v["stringData"].as_object().unwrap() {
                            secret_values.insert(k.clone(), val.as_str().unwrap().to_string());
                        }
                        send.send_response(ok(body));
                    }
                    ("PATCH", p) if p.contains("/configmaps/") => {
                        // Everything is applied: the kubelet starts the Pod, or runs the
                        // Job's Pod to its end, on the agent's claim.
                        if let Some(mut r) = job_rendered.take() {
                            r.config_map = serde_json::from_str(&body).unwrap();
                            let root = claim.clone();
                            let cluster: BTreeMap<(&str, &str), &str> = cluster.clone();
                            let out = tokio::task::spawn_blocking(move || {
                                run_job_locally_with(&r, "unused", &cluster, &root)
                            })
                            .await
                            .unwrap();
                            logs.lock().unwrap().push(format!(
                                "{}{}",
                                String::from_utf8_lossy(&out.stdout),
                                String::from_utf8_lossy(&out.stderr)
                            ));
                            job_run = Some(out);
                        } else {
                            pod = Some(run_locally_on(&rendered, &secret_values, &cluster, &claim));
                        }
                        send.send_response(ok(body));
                    }
                    ("PATCH", _) => send.send_response(ok(body)),
                    ("GET", p) if p.ends_with("/pods") && job_run.is_some() => {
                        let code = job_run.as_ref().unwrap().status.code().unwrap_or(1);
                        let done = json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": name, "namespace": "agents", "resourceVersion": "9"},
                            "status": {"phase": if code == 0 { "Succeeded" } else { "Failed" },
                                "containerStatuses": [{"name": container, "image": "i", "imageID": "",
                                    "ready": false, "restartCount": 0,
                                    "state": {"terminated": {"exitCode": code}}}]}});
                        send.send_response(ok(
                            json!({"type": "ADDED", "object": done}).to_string() + "\n"
                        ));
                    }
                    ("GET", p) if p.ends_with("/pods") => {
                        let port = pod.as_ref().unwrap().port;
                        // Ready once its server listens, as its readiness probe would say.
                        let until = tokio::time::Instant::now() + Duration::from_secs(90);
                        while tokio::net::TcpStream::connect(("127.0.0.1", port))
                            .await
                            .is_err()
                        {
                            assert!(
                                tokio::time::Instant::now() < until,
                                "the session's server never listened: {}",
                                pod.as_ref().unwrap().log()
                            );
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        let ready = json!({"apiVersion": "v1", "kind": "Pod",
                        "metadata": {"name": name, "namespace": "agents"},
                        "spec": {"containers": [{"name": container, "ports": [{"containerPort": port}]}]},
                        "status": {"phase": "Running", "podIP": "127.0.0.1",
                            "conditions": [{"type": "Ready", "status": "True"}]}});
                        send.send_response(ok(json!({"type": "ADDED", "object": ready})
                            .to_string()
                            + "\n"));
                    }
                    ("GET", p) if p.ends_with("/log") => match &job_run {
                        Some(out) => send.send_response(ok(String::from_utf8_lossy(&out.stdout)
                            .to_string())),
                        None => held_log = Some(send),
                    },
                    ("DELETE", p) if p.ends_with(&format!("/pods/{name}")) && pod.is_some() => {
                        // The kubelet stops the container, which has the grace period to end.
                        let mut p = pod.take().unwrap();
                        pod_exit = p.delete().await;
                        let log = p.log();
                        logs.lock().unwrap().push(log.clone());
                        drop(p);
                        send.send_response(ok(
                            json!({"kind": "Status", "status": "Success"}).to_string()
                        ));
                        if let Some(l) = held_log.take() {
                            l.send_response(ok(log));
                        }
                    }
                    ("GET", p) if p.ends_with(&format!("/pods/{name}")) => match pod_exit.take() {
                        // Its end, as the kubelet reports it before the Pod is removed.
                        Some(code) => send.send_response(ok(json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": name, "namespace": "agents", "resourceVersion": "8"},
                            "status": {"phase": if code == 0 { "Succeeded" } else { "Failed" },
                                "containerStatuses": [{"name": container, "image": "i", "imageID": "",
                                    "ready": false, "restartCount": 0,
                                    "state": {"terminated": {"exitCode": code}}}]}})
                        .to_string())),
                        None => send.send_response(gone()),
                    },
                    ("GET", p) if p.ends_with(&format!("/jobs/{name}")) => {
                        let ok_run = job_run.as_ref().unwrap().status.success();
                        let mut done = job.clone();
                        done["status"] = json!({"conditions": [{"type": if ok_run { "Complete" } else { "Failed" }, "status": "True"}]});
                        send.send_response(ok(done.to_string()));
                    }
                    ("DELETE", p)
                        if p.ends_with(&format!("/pods/{name}"))
                            || (p.ends_with(&format!("/jobs/{name}")) && job_run.is_none()) =>
                    {
                        send.send_response(gone())
                    }
                    ("DELETE", _) => send.send_response(ok(
                        json!({"kind": "Status", "status": "Success"}).to_string(),
                    )),
                    other => panic!("unexpected call {other:?}"),
                }
            }
        }
    });

    let bare = remote.bare("app");
    let branch = fracta_core::workspace::branch_name(&id, "chat");
    if push_refused {
        // Someone else's commit on the agent's branch: the session's push is not a
        // fast-forward.
        let other = git(
            &bare,
            &["commit-tree", "main^{tree}", "-p", "main", "-m", "other"],
        );
        git(
            &bare,
            &["update-ref", &format!("refs/heads/{branch}"), &other],
        );
    }
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let opts = fracta_core::session::RunOptions {
        inbox: Some(Arc::new(tokio::sync::Mutex::new(rx))),
        ..Default::default()
    };
    runner.set_remote(Arc::new(crate::run::KubeRemote::with_backend(kube, None)));
    let run = {
        let runner = Arc::clone(&runner);
        tokio::spawn(async move {
            runner
                .run_recorded(agent, &opts, &mut fracta_core::record::Quiet)
                .await
        })
    };
    if push_refused {
        // No more turns: the session closes after its first.
        drop(tx);
        let rec = tokio::time::timeout(Duration::from_secs(180), run)
            .await
            .expect("the session never ended")
            .unwrap()
            .unwrap();
        assert_eq!(rec.status, fracta_state::AgentStatus::Failed, "{rec:#?}");
        let err = rec.error.clone().unwrap();
        assert!(
            err.contains(&format!(
                "cannot push branch {branch} to {} (project.repository_credential)",
                remote.url("app")
            )),
            "{err}"
        );
        assert!(err.contains("rejected"), "{err}");
        assert_eq!(err.matches("cannot push branch").count(), 1, "{err}");
        // The record keeps the wrapper's word in its stderr tail too.
        assert!(
            rec.meta
                .stderr_tail
                .as_deref()
                .is_some_and(|t| t.contains("cannot push branch")),
            "{rec:#?}"
        );
        assert!(!err.contains(GIT_TOKEN), "{err}");
        // The work is kept on the claim, committed; the remote keeps the other commit.
        let ws = claim.path().join("workspace");
        assert_eq!(
            std::fs::read_to_string(ws.join("hello.txt")).unwrap(),
            "FROM-THE-SESSION"
        );
        assert_eq!(git(&ws, &["show", "HEAD:hello.txt"]), "FROM-THE-SESSION");
        assert_eq!(git(&bare, &["log", "-1", "--format=%s", &branch]), "other");
        return;
    }
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tx.send(fracta_core::session::StreamTurn {
        prompt: "second turn".into(),
        done: Some(done_tx),
    })
    .await
    .unwrap();
    let two = match tokio::time::timeout(Duration::from_secs(120), done_rx)
        .await
        .expect("the second turn never ended")
    {
        Ok(two) => two,
        Err(_) => {
            let r = run.await;
            let ev = runner.store.events(&id, 0, None).unwrap();
            panic!(
                "the session ended early: {:?}\n{:#?}\n{:?}",
                r.map(|r| r.map(|a| a.error)),
                ev.iter()
                    .map(|e| (e.kind.clone(), e.payload.to_string()))
                    .collect::<Vec<_>>(),
                logs.lock().unwrap()
            )
        }
    };
    assert_eq!(two.result.as_deref(), Some("ANSWER-TWO"), "{two:#?}");
    assert_eq!(two.status, fracta_state::AgentStatus::Running);
    drop(tx); // no more turns: the session closes
    let rec = tokio::time::timeout(Duration::from_secs(180), run)
        .await
        .expect("the session never ended")
        .unwrap()
        .unwrap();
    assert_eq!(
        rec.status,
        fracta_state::AgentStatus::Succeeded,
        "{rec:#?}\n{:?}",
        logs.lock().unwrap()
    );
    assert!(rec.resume_token.is_some(), "{rec:#?}");
    assert_second_turn_carries_the_first(&server);
    let kinds: Vec<String> = calls.lock().unwrap().clone();
    assert_eq!(
        kinds,
        [
            format!("PATCH /apis/networking.k8s.io/v1/namespaces/agents/networkpolicies/{name}"),
            format!("PATCH /api/v1/namespaces/agents/persistentvolumeclaims/{name}"),
            format!("PATCH /api/v1/namespaces/agents/pods/{name}"),
            format!("PATCH /api/v1/namespaces/agents/secrets/{name}"),
            format!("PATCH /api/v1/namespaces/agents/configmaps/{name}"),
            format!("PATCH /apis/networking.k8s.io/v1/namespaces/agents/networkpolicies/{name}"),
            "GET /api/v1/namespaces/agents/pods".to_string(),
            format!("GET /api/v1/namespaces/agents/pods/{name}/log"),
            format!("DELETE /api/v1/namespaces/agents/pods/{name}"),
            format!("GET /api/v1/namespaces/agents/pods/{name}"),
            format!("DELETE /api/v1/namespaces/agents/pods/{name}"),
            format!("DELETE /api/v1/namespaces/agents/secrets/{name}"),
            format!("DELETE /api/v1/namespaces/agents/configmaps/{name}"),
            format!("DELETE /apis/networking.k8s.io/v1/namespaces/agents/networkpolicies/{name}"),
        ]
    );
    // On the remote: the agent's branch, one commit past main, by fracta, with the file and
    // without the runtime's config Fracta wrote.
    assert_eq!(rec.branch.as_deref(), Some(branch.as_str()));
    assert_eq!(
        git(&bare, &["show", &format!("{branch}:hello.txt")]),
        "FROM-THE-SESSION"
    );
    assert_eq!(
        git(&bare, &["rev-list", "--count", &format!("main..{branch}")]),
        "1"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae> %s", &branch]),
        format!("fracta <fracta@localhost> fracta: chat ({id})")
    );
    assert_eq!(
        git(&bare, &["show", "--name-only", "--format=", &branch]),
        "hello.txt"
    );
    // The laptop has the branch: `fracta diff` sees the session's work.
    let stat = fracta_core::workspace::diff_stat(dir.path(), "main", &branch).unwrap();
    assert_eq!(stat.files, 1, "{stat:?}");

    // The closed session resumed: one turn, as a Job on the same claim, that continues the
    // conversation and finds the file the session wrote.
    let again = tokio::time::timeout(
        Duration::from_secs(180),
        runner.resume(
            &id,
            "third turn: what is in hello.txt?",
            &mut fracta_core::record::Quiet,
        ),
    )
    .await
    .expect("the resumed turn never ended")
    .unwrap();
    assert_eq!(
        again.status,
        fracta_state::AgentStatus::Succeeded,
        "{again:#?}\n{:?}",
        logs.lock().unwrap()
    );
    assert_eq!(again.result.as_deref(), Some("ANSWER-THREE"), "{again:#?}");
    assert!(again.meta.turns > rec.meta.turns, "{again:#?}");
    let third: Vec<String> = server
        .model_requests()
        .into_iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains("third turn"))
        .collect();
    assert!(
        third
            .iter()
            .any(|b| b.contains("first turn") && b.contains("ANSWER-TWO")),
        "the resumed turn does not carry the session's turns: {third:#?}"
    );
    assert!(
        third.iter().any(|b| b.contains("FROM-THE-SESSION")),
        "the resumed turn did not read the session's file: {third:#?}"
    );
    let applied = calls.lock().unwrap().clone();
    assert!(
        applied.contains(&format!(
            "PATCH /apis/batch/v1/namespaces/agents/jobs/{name}"
        )),
        "{applied:#?}"
    );
    // Nothing new to commit: the branch keeps its one commit.
    assert_eq!(
        git(&bare, &["rev-list", "--count", &format!("main..{branch}")]),
        "1"
    );
    // No secret in the containers' logs or the agent's events.
    let events = runner.store.events(&id, 0, None).unwrap();
    let events =
        serde_json::to_string(&events.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    for s in [GIT_TOKEN, "sk-openai-test"] {
        assert!(!events.contains(s), "an event holds a secret");
        for l in logs.lock().unwrap().iter() {
            assert!(!l.contains(s), "a log holds a secret: {l}");
        }
    }
}

/// A stand-in for the API server's `pods/{name}/portforward` subresource: the WebSocket
/// `v4.channel.k8s.io` protocol (each port's data and error channels announced with the port
/// number, then frames prefixed with their channel), forwarding to `target` on this machine.
/// Returns its URL and the paths it was asked for.
#[allow(clippy::result_large_err)] // the handshake callback's type is tungstenite's
async fn port_forward_api(target: u16) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use futures::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let record = std::sync::Arc::clone(&record);
            tokio::spawn(async move {
                let mut port = 0u16;
                let ws =
                    tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut res: Response| {
                        record.lock().unwrap().push(req.uri().to_string());
                        port = req
                            .uri()
                            .query()
                            .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("ports=")))
                            .and_then(|p| p.parse().ok())
                            .unwrap_or(0);
                        res.headers_mut().insert(
                            "sec-websocket-protocol",
                            "v4.channel.k8s.io".parse().unwrap(),
                        );
                        Ok(res)
                    })
                    .await
                    .unwrap();
                let (mut sink, mut stream) = ws.split();
                let [lo, hi] = port.to_le_bytes();
                sink.send(Message::binary(vec![0, lo, hi])).await.unwrap();
                sink.send(Message::binary(vec![1, lo, hi])).await.unwrap();
                let Ok(pod) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await else {
                    return;
                };
                let (mut from_pod, mut to_pod) = pod.into_split();
                let up = tokio::spawn(async move {
                    while let Some(Ok(m)) = stream.next().await {
                        if let Message::Binary(b) = m
                            && b.first() == Some(&0)
                            && to_pod.write_all(&b[1..]).await.is_err()
                        {
                            break;
                        }
                    }
                });
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    match from_pod.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            let mut frame = vec![0u8];
                            frame.extend_from_slice(&buf[..n]);
                            if sink.send(Message::binary(frame)).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                up.abort();
            });
        }
    });
    (url, seen)
}

/// From outside the cluster a session Pod's IP does not answer: the control plane reaches the
/// session through the API server's port-forward instead, and the real Codex app-server
/// (the rendered Pod, run here) carries two turns over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_pod_whose_ip_does_not_answer_is_reached_through_the_api_servers_port_forward() {
    require_clis();
    let server = model_server().await;
    let remote = remote();
    let cfg =
        fracta_config::parse(&config(&server.url(), &remote), Path::new("/p/fracta.yaml")).unwrap();
    let r = render(&cfg, &agent("codex"), "agents").unwrap();
    let token = fracta_core::secret::new_token().unwrap();
    let values = BTreeMap::from([(
        "fracta-ws-token-sha256".to_string(),
        fracta_core::secret::sha256_hex(&token),
    )]);
    let cluster = BTreeMap::from([
        (("fake-openai", "api-key"), "sk-openai-test"),
        (("git", "token"), GIT_TOKEN),
    ]);
    let pod = run_locally(&r, &values, &cluster);
    let (api_url, seen) = port_forward_api(pod.port).await;
    let kube = crate::client::KubeBackend::new(
        kube::Client::try_from(kube::Config::new(api_url.parse().unwrap())).unwrap(),
        "agents",
    );
    // The Pod's IP as the watch reports it, here an address nothing answers on (TEST-NET-1).
    let ready = crate::client::ReadyPod {
        name: r.name.clone(),
        ip: "192.0.2.1".into(),
        port: 8080,
    };
    let (host, port, forward) =
        crate::run::session_address(&kube, &ready, fracta_config::SessionAccess::Auto)
            .await
            .unwrap();
    assert_eq!(host, "127.0.0.1");
    assert!(forward.is_some());
    // The app-server is up once its port answers through the forward.
    let url = format!("ws://{host}:{port}");
    let (out_tx, out_rx) = mpsc::unbounded_channel();
    let (said_tx, said_rx) = mpsc::unbounded_channel();
    let until = tokio::time::Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(("127.0.0.1", pod.port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < until,
            "codex app-server never listened"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::spawn(transport::codex_ws(
        transport::CodexWsTarget { url, token },
        out_rx,
        said_tx,
    ));
    let session = adapter_for(AdapterKind::Codex).stream_session(None);
    let results = converse(session, out_tx, said_rx, &["first turn", "second turn"]).await;
    assert_eq!(
        results,
        [Some("ANSWER-ONE".into()), Some("ANSWER-TWO".into())]
    );
    assert_second_turn_carries_the_first(&server);
    let paths = seen.lock().unwrap().clone();
    assert!(!paths.is_empty(), "nothing went through the port-forward");
    assert!(
        paths.iter().all(|p| p.starts_with(&format!(
            "/api/v1/namespaces/agents/pods/{}/portforward?",
            r.name
        )) && p.contains("ports=8080")),
        "{paths:#?}"
    );
    drop(forward);
    // A Pod IP that answers is used as it is.
    let reachable = crate::client::ReadyPod {
        name: r.name.clone(),
        ip: "127.0.0.1".into(),
        port: pod.port,
    };
    let (host, port, forward) =
        crate::run::session_address(&kube, &reachable, fracta_config::SessionAccess::Auto)
            .await
            .unwrap();
    assert_eq!((host.as_str(), port), ("127.0.0.1", pod.port));
    assert!(forward.is_none());
    drop(pod);
}

/// The clone init container, run here with `token` as the cluster's `git` Secret.
fn run_clone(r: &Rendered, token: &str) -> (std::process::Output, tempfile::TempDir) {
    let Workload::Pod(pod) = &r.workload else {
        panic!("a stream agent is a Pod")
    };
    let init = &pod.spec.as_ref().unwrap().init_containers.as_ref().unwrap()[0];
    assert_eq!(init.name, "clone");
    let root = tempfile::tempdir().unwrap();
    let moved = |s: &str| {
        s.replace(
            "/workspace",
            &root.path().join("workspace").display().to_string(),
        )
        .replace("/fracta", &root.path().join("fracta").display().to_string())
    };
    for d in ["workspace", "fracta"] {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(moved(&init.command.as_ref().unwrap()[2]));
    for e in init.env.iter().flatten() {
        let v = match &e.value {
            Some(v) => moved(v),
            None => {
                let s = e
                    .value_from
                    .as_ref()
                    .unwrap()
                    .secret_key_ref
                    .as_ref()
                    .unwrap();
                assert_eq!((s.name.as_str(), s.key.as_str()), ("git", "token"));
                token.to_string()
            }
        };
        cmd.env(&e.name, v);
    }
    (cmd.output().unwrap(), root)
}

/// A wrong token: the clone fails and says what it could not clone and which keys to check,
/// with git's own reason; the token is in no argument, URL or output.
#[test]
fn a_wrong_git_token_fails_the_clone_with_a_clear_reason_and_no_secret() {
    let remote = remote();
    let cfg = fracta_config::parse(
        &config("http://127.0.0.1:9", &remote),
        Path::new("/p/fracta.yaml"),
    )
    .unwrap();
    let r = render(&cfg, &agent("codex"), "agents").unwrap();
    let (out, _root) = run_clone(&r, "wrong-token-31337");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "cannot clone {} at branch main",
            remote.url("app")
        )),
        "{stderr}"
    );
    assert!(stderr.contains("project.repository_credential"), "{stderr}");
    assert!(stderr.contains("Authentication failed"), "{stderr}");
    assert!(!stderr.contains("wrong-token-31337"), "{stderr}");
    let yaml = r.to_yaml().unwrap();
    assert!(!yaml.contains(GIT_TOKEN), "{yaml}");

    // The right one clones, on the agent's branch.
    let (out, root) = run_clone(&r, GIT_TOKEN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ws = root.path().join("workspace");
    assert!(ws.join("README.md").is_file());
    assert_eq!(
        crate::git_remote::git(&ws, &["branch", "--show-current"]),
        fracta_core::workspace::branch_name(&r.name["fracta-".len()..], "chat")
    );
}

/// A batch agent's Job, run here as a kubelet would (see the module's comment): its init
/// containers, then its container to its end. Every key of the agent's Secret gets `secret`.
fn run_job_locally(
    r: &Rendered,
    secret: &str,
    git_token: &str,
    root: &Path,
) -> std::process::Output {
    run_job_locally_with(
        r,
        secret,
        &BTreeMap::from([(("git", "token"), git_token)]),
        root,
    )
}

/// `run_job_locally`, with the cluster's Secrets the Job references.
fn run_job_locally_with(
    r: &Rendered,
    secret: &str,
    cluster: &BTreeMap<(&str, &str), &str>,
    root: &Path,
) -> std::process::Output {
    let Workload::Job(job) = &r.workload else {
        panic!("a batch agent is a Job")
    };
    let spec = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    let moved = |s: &str| -> String {
        const DIRS: [&str; 4] = ["/etc/fracta/files", "/workspace", "/fracta", "/data"];
        let mut s = s.to_string();
        for (i, dir) in DIRS.iter().enumerate() {
            s = s.replace(dir, &format!("\u{0}{i}\u{0}"));
        }
        for (i, dir) in DIRS.iter().enumerate() {
            let local = root.join(dir.trim_start_matches('/'));
            s = s.replace(&format!("\u{0}{i}\u{0}"), &local.display().to_string());
        }
        s
    };
    for dir in ["workspace", "fracta", "data", "etc/fracta/files", "home"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    let data = r.config_map.data.clone().unwrap_or_default();
    for (k, v) in &data {
        std::fs::write(root.join("etc/fracta/files").join(k), v).unwrap();
    }
    let resolve = |c: &Container| -> BTreeMap<String, String> {
        let mut env = BTreeMap::new();
        for e in c.env.iter().flatten() {
            let value = match (&e.value, &e.value_from) {
                (Some(v), _) => moved(v),
                (None, Some(from)) => {
                    if let Some(s) = &from.secret_key_ref {
                        if s.name == r.name {
                            secret.to_string()
                        } else {
                            cluster[&(s.name.as_str(), s.key.as_str())].to_string()
                        }
                    } else if let Some(c) = &from.config_map_key_ref {
                        data[&c.key].clone()
                    } else {
                        continue;
                    }
                }
                (None, None) => String::new(),
            };
            env.insert(e.name.clone(), value);
        }
        env
    };
    let bin = repo_root().join("node_modules/.bin");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |c: &Container| {
        let env = resolve(c);
        let mut argv: Vec<String> = c.command.iter().flatten().map(|a| moved(a)).collect();
        argv.extend(
            c.args
                .iter()
                .flatten()
                .map(|a| moved(&fracta_core::launch::expand_env_refs(a, &env))),
        );
        let workdir = c
            .working_dir
            .as_deref()
            .map_or_else(|| root.display().to_string(), &moved);
        std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .current_dir(&workdir)
            .env_clear()
            .envs(&env)
            .env("PATH", &path)
            .env("HOME", root.join("home"))
            .env("PWD", &workdir)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for init in spec.init_containers.iter().flatten() {
        let out = run(init);
        if !out.status.success() {
            return out;
        }
    }
    run(&spec.containers[0])
}

fn claude_job_config(model: &str, remote: &GitRemote) -> String {
    let repository = remote.url("app");
    format!(
        r#"
runtime:
  backend: kubernetes
project:
  repository: {repository}
  repository_credential: {{ profile: git, origin: token, username: fracta-bot }}
  allowed_tools: [Read, Write, Edit]
auth:
  credentials:
    profiles:
      git:
        auth_origins:
          token:
            type: secret_env
            env_name: GIT_TOKEN
            secret_ref: {{ name: git, key: token }}
agents:
  agent_runtimes:
    claude:
      adapter: claude
      model: claude-sonnet-4-5
      kubernetes:
        env:
          ANTHROPIC_BASE_URL: {model}
          ANTHROPIC_API_KEY: sk-ant-test
"#
    )
}

/// The branch out: the rendered Job of a real Claude Code batch agent, run here, clones the
/// project's remote (an authenticated git server), writes a file through the scripted model,
/// and at its end its work is committed as locally and its branch pushed to the remote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_clones_the_remote_and_pushes_its_branch_with_the_agents_commit() {
    let script = Script::parse(
        "rules:\n  - when: { contains: \"write the file\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Write, input: { file_path: \"hello.txt\", content: \"FROM-THE-POD\\n\" } }]\nfallback: \"Done.\"\n",
        "job",
    )
    .unwrap();
    let server = ModelServer::start(script, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let remote = remote();
    let cfg = fracta_config::parse(
        &claude_job_config(&server.url(), &remote),
        Path::new("/p/fracta.yaml"),
    )
    .unwrap();
    let mut a = AgentRecord::new("greet", "claude", "claude", Mode::Batch, "write the file");
    a.model = Some("claude-sonnet-4-5".into());
    let r = render(&cfg, &a, "agents").unwrap();
    let yaml = r.to_yaml().unwrap();
    assert!(!yaml.contains(GIT_TOKEN), "{yaml}");
    let root = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking({
        let r = r.clone();
        let root = root.path().to_path_buf();
        move || run_job_locally(&r, "sk-ant-test", GIT_TOKEN, &root)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stdout.contains(GIT_TOKEN) && !stderr.contains(GIT_TOKEN));
    // On the remote: the agent's branch, one commit past main, by fracta, with the file.
    let branch = fracta_core::workspace::branch_name(&a.id, "greet");
    let bare = remote.bare("app");
    let git = crate::git_remote::git;
    assert_eq!(
        git(&bare, &["show", &format!("{branch}:hello.txt")]),
        "FROM-THE-POD"
    );
    assert_eq!(
        git(&bare, &["rev-list", "--count", &format!("main..{branch}")]),
        "1"
    );
    assert_eq!(
        git(&bare, &["log", "-1", "--format=%an <%ae> %s", &branch]),
        format!("fracta <fracta@localhost> fracta: greet ({})", a.id)
    );
    // Fracta's own files stayed out of the commit.
    let files = git(&bare, &["show", "--name-only", "--format=", &branch]);
    assert_eq!(files, "hello.txt");
    // A laptop's repository (with its own credentials for the remote) fetches the branch,
    // and sees the agent's work as `fracta diff` shows it.
    let laptop = tempfile::tempdir().unwrap();
    git(
        laptop.path(),
        &["init", "--quiet", "--initial-branch", "main"],
    );
    let no_credentials = crate::run::fetch_branch(laptop.path(), &remote.url("app"), &branch)
        .await
        .unwrap_err();
    assert!(no_credentials.contains(&branch), "{no_credentials}");
    assert!(!no_credentials.contains(GIT_TOKEN), "{no_credentials}");
    give_credentials(laptop.path());
    git(
        laptop.path(),
        &["pull", "--quiet", &remote.url("app"), "main"],
    );
    crate::run::fetch_branch(laptop.path(), &remote.url("app"), &branch)
        .await
        .unwrap();
    let stat = fracta_core::workspace::diff_stat(laptop.path(), "main", &branch).unwrap();
    assert_eq!(stat.files, 1, "{stat:?}");

    // Resumed: a new Job on the same claim (the same folders here) continues the
    // conversation, with the workspace as the first Job left it.
    let session = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v["session_id"].as_str().map(str::to_string))
        .expect("claude reported its session");
    let mut resumed = a.clone();
    resumed.prompt = "second turn: what did you write?".into();
    resumed.resume_token = Some(session);
    resumed.branch = Some(branch.clone());
    let r2 = render(&cfg, &resumed, "agents").unwrap();
    let out = tokio::task::spawn_blocking({
        let root = root.path().to_path_buf();
        move || run_job_locally(&r2, "sk-ant-test", GIT_TOKEN, &root)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"session_id\""), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(root.path().join("workspace/hello.txt")).unwrap(),
        "FROM-THE-POD\n"
    );
    let bodies: Vec<String> = server
        .model_requests()
        .iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains("second turn"))
        .collect();
    assert!(!bodies.is_empty(), "the second turn reached the model");
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("write the file") && b.contains("FROM-THE-POD")),
        "the resumed turn carries the first: {bodies:?}"
    );
    // The branch on the remote still has the agent's commit (nothing new to commit).
    assert_eq!(
        git(&bare, &["rev-list", "--count", &format!("main..{branch}")]),
        "1"
    );
}

/// The whole path, with no cluster: a spawn through the supervisor on the Kubernetes backend
/// (the mocked API as the cluster; each Job it is given run here as a kubelet would, on one
/// folder that stands for the agent's claim), a real Claude Code agent, an authenticated git
/// remote. The agent's clone has the repository's files, its commit reaches the remote on its
/// branch, the laptop's repository gets the branch, `fracta resume` continues on the same
/// claim, and no secret is in any applied object, event or log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_path_spawn_push_fetch_and_resume_on_the_mocked_cluster() {
    use fracta_core::supervisor::{Caller, Supervisor};
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};
    use tower_test::mock;

    let script = Script::parse(
        "rules:\n  - when: { contains: \"write the file\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Write, input: { file_path: \"hello.txt\", content: \"FROM-THE-POD\\n\" } }]\nfallback: \"Done.\"\n",
        "whole",
    )
    .unwrap();
    let server = ModelServer::start(script, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let remote = remote();
    let dir = laptop(&remote);
    let git = crate::git_remote::git;
    let cfg = fracta_config::parse(
        &claude_job_config(&server.url(), &remote),
        &dir.path().join("fracta.yaml"),
    )
    .unwrap();

    // The cluster.
    let claim = tempfile::tempdir().unwrap();
    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;
    let seen: Seen = Arc::default();
    let logs: Arc<Mutex<Vec<String>>> = Arc::default();
    let wrong_token = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn({
        let wrong_token = Arc::clone(&wrong_token);
        let seen = Arc::clone(&seen);
        let logs = Arc::clone(&logs);
        let claim = claim.path().to_path_buf();
        async move {
            let mut job = Value::Null;
            let mut rendered: Option<Rendered> = None;
            let mut run: Option<std::process::Output> = None;
            while let Some((req, send)) = handle.next_request().await {
                let method = req.method().to_string();
                let uri = req.uri().to_string();
                let path = req.uri().path().to_string();
                let body =
                    String::from_utf8(req.into_body().collect_bytes().await.unwrap().to_vec())
                        .unwrap();
                seen.lock()
                    .unwrap()
                    .push((method.clone(), uri.clone(), body.clone()));
                let name = path.rsplit('/').next().unwrap_or("").to_string();
                let answer = match (method.as_str(), path.as_str()) {
                    ("PATCH", p) if p.contains("/jobs/") => {
                        job = serde_json::from_str(&body).unwrap();
                        job["metadata"]["uid"] = json!("uid-job");
                        let j: k8s_openapi::api::batch::v1::Job =
                            serde_json::from_value(job.clone()).unwrap();
                        rendered = Some(Rendered {
                            workload: Workload::Job(Box::new(j)),
                            ..render_stub(&name)
                        });
                        job.to_string()
                    }
                    ("PATCH", p) if p.contains("/configmaps/") => {
                        // Everything is applied: the kubelet runs the Job's Pod to its end.
                        let cm: k8s_openapi::api::core::v1::ConfigMap =
                            serde_json::from_str(&body).unwrap();
                        let mut r = rendered.take().unwrap();
                        r.config_map = cm;
                        // Each agent's own claim.
                        let root = claim.join(&r.name);
                        let token = if wrong_token.load(std::sync::atomic::Ordering::SeqCst) {
                            "WRONG-TOKEN-31337"
                        } else {
                            GIT_TOKEN
                        };
                        let out = tokio::task::spawn_blocking(move || {
                            run_job_locally(&r, "sk-ant-test", token, &root)
                        })
                        .await
                        .unwrap();
                        logs.lock().unwrap().push(format!(
                            "{}{}",
                            String::from_utf8_lossy(&out.stdout),
                            String::from_utf8_lossy(&out.stderr)
                        ));
                        run = Some(out);
                        body
                    }
                    ("PATCH", _) => body,
                    ("GET", p) if p.ends_with("/pods") && failed_clone(run.as_ref().unwrap()) => {
                        // The clone init container failed; with FallbackToLogsOnError its
                        // log's tail is its termination message.
                        let out = run.as_ref().unwrap();
                        let pod = json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "fracta-pod", "namespace": "agents", "resourceVersion": "7"},
                            "status": {"phase": "Failed",
                                "initContainerStatuses": [{"name": "clone", "image": "i", "imageID": "",
                                    "ready": false, "restartCount": 0,
                                    "state": {"terminated": {"exitCode": 1, "reason": "Error",
                                        "message": String::from_utf8_lossy(&out.stderr).trim()}}}]}});
                        json!({"type": "ADDED", "object": pod}).to_string() + "\n"
                    }
                    ("GET", p) if p.ends_with("/pods") => {
                        let code = run.as_ref().unwrap().status.code().unwrap_or(1);
                        let pod = json!({"apiVersion": "v1", "kind": "Pod",
                            "metadata": {"name": "fracta-pod", "namespace": "agents", "resourceVersion": "7"},
                            "status": {"phase": if code == 0 { "Succeeded" } else { "Failed" },
                                "containerStatuses": [{"name": "claude", "image": "i", "imageID": "",
                                    "ready": false, "restartCount": 0,
                                    "state": {"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}}}]}});
                        json!({"type": "ADDED", "object": pod}).to_string() + "\n"
                    }
                    ("GET", p) if p.ends_with("/log") => {
                        String::from_utf8_lossy(&run.as_ref().unwrap().stdout).to_string()
                    }
                    ("GET", p) if p.contains("/jobs/") => {
                        let ok = run.as_ref().unwrap().status.success();
                        let mut done = job.clone();
                        done["status"] = json!({"conditions": [{"type": if ok { "Complete" } else { "Failed" }, "status": "True", "reason": "BackoffLimitExceeded"}]});
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
        }
    });
    let kube = crate::client::KubeBackend::new(kube::Client::new(service, "agents"), "agents");
    let store = fracta_state::open_store(&fracta_state::StateConfig::sqlite(
        dir.path().join("state.db"),
    ))
    .unwrap();
    let runner = fracta_core::runner::Runner::new(Arc::new(cfg), store);
    runner.set_remote(Arc::new(crate::run::KubeRemote::with_backend(kube, None)));
    let sup = Supervisor::new(Arc::new(runner));
    let rec = sup
        .spawn(
            &Caller::User,
            fracta_core::resolve::SpawnRequest {
                task: "greet".into(),
                prompt: Some("write the file".into()),
                runtime: Some("claude".into()),
                ..Default::default()
            },
            &fracta_config::Budgets::default(),
        )
        .unwrap();
    let done = sup.wait(&rec.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(
        done.status,
        fracta_state::AgentStatus::Succeeded,
        "{done:#?}\n{:?}",
        logs.lock().unwrap()
    );
    let branch = done.branch.clone().unwrap();
    assert_eq!(
        branch,
        fracta_core::workspace::branch_name(&rec.id, "greet")
    );
    // The clone had the repository's files; the agent's file is on the remote's branch.
    let claim = claim
        .path()
        .join(format!("fracta-{}", rec.id.to_ascii_lowercase()));
    assert!(claim.join("workspace/README.md").is_file());
    let bare = remote.bare("app");
    assert_eq!(
        git(&bare, &["show", &format!("{branch}:hello.txt")]),
        "FROM-THE-POD"
    );
    // The laptop has the branch: `fracta diff` sees the agent's work.
    let stat = fracta_core::workspace::diff_stat(dir.path(), "main", &branch).unwrap();
    assert_eq!(stat.files, 1, "{stat:?}");

    // Resumed on the same claim: the conversation goes on.
    let again = sup
        .runner
        .resume(
            &rec.id,
            "second turn: what did you write?",
            &mut fracta_core::record::Quiet,
        )
        .await
        .unwrap();
    assert_eq!(
        again.status,
        fracta_state::AgentStatus::Succeeded,
        "{again:#?}"
    );
    assert_eq!(again.meta.turns, 2);
    let bodies: Vec<String> = server
        .model_requests()
        .iter()
        .map(|r| r.body.to_string())
        .filter(|b| b.contains("second turn"))
        .collect();
    assert!(
        bodies
            .iter()
            .any(|b| b.contains("write the file") && b.contains("FROM-THE-POD")),
        "the resumed turn carries the first: {bodies:?}"
    );
    assert!(claim.join("workspace/hello.txt").is_file());

    // A wrong git token: the spawn fails, saying what it could not clone and why.
    wrong_token.store(true, std::sync::atomic::Ordering::SeqCst);
    let rec = sup
        .spawn(
            &Caller::User,
            fracta_core::resolve::SpawnRequest {
                task: "other".into(),
                prompt: Some("write the file".into()),
                runtime: Some("claude".into()),
                ..Default::default()
            },
            &fracta_config::Budgets::default(),
        )
        .unwrap();
    let failed = sup.wait(&rec.id, Duration::from_secs(120)).await.unwrap();
    assert_eq!(failed.status, fracta_state::AgentStatus::Failed);
    let err = failed.error.clone().unwrap();
    assert!(err.contains("container clone exited 1"), "{err}");
    assert!(
        err.contains(&format!(
            "cannot clone {} at branch main",
            remote.url("app")
        )),
        "{err}"
    );
    assert!(err.contains("Authentication failed"), "{err}");
    assert!(!err.contains("WRONG-TOKEN-31337"), "{err}");

    // No secret anywhere: applied objects (but the agent's own Secret), events, logs.
    let events = sup.runner.store.events(&rec.id, 0, None).unwrap();
    let events =
        serde_json::to_string(&events.iter().map(|e| &e.payload).collect::<Vec<_>>()).unwrap();
    for s in [GIT_TOKEN, "WRONG-TOKEN-31337"] {
        assert!(!events.contains(s), "an event holds a secret");
        for (_, uri, body) in seen.lock().unwrap().iter() {
            assert!(
                uri.contains("/secrets/") || !body.contains(s),
                "{uri} holds a secret"
            );
        }
        for l in logs.lock().unwrap().iter() {
            assert!(!l.contains(s), "a log holds a secret");
        }
    }
}

/// Whether a locally run Job stopped at its clone (its init container's message).
fn failed_clone(out: &std::process::Output) -> bool {
    !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("fracta: cannot clone")
}

/// A `Rendered` whose only use is to carry the applied Job and ConfigMap to `run_job_locally`.
fn render_stub(name: &str) -> Rendered {
    let mut a = AgentRecord::new("x", "codex", "codex", Mode::Batch, "x");
    a.id = name.trim_start_matches("fracta-").to_uppercase();
    let cfg = fracta_config::parse(
        "runtime:\n  backend: kubernetes\nproject:\n  repository: https://example.com/r.git\nagents:\n  agent_runtimes:\n    codex:\n      adapter: codex\n",
        Path::new("/p/fracta.yaml"),
    )
    .unwrap();
    let mut r = render(&cfg, &a, "agents").unwrap();
    r.name = name.to_string();
    r
}

/// The wrapper does not commit a file that holds a secret the container was given (here the
/// git token, written by the agent through the scripted model): the Job fails saying which
/// file, nothing is pushed, and the token is not in its output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_job_does_not_commit_a_file_holding_a_secret() {
    let script = Script::parse(
        &format!(
            "rules:\n  - when: {{ contains: \"write the file\", has_tools: true }}\n    reply:\n      tool_calls: [{{ name: Write, input: {{ file_path: \"leak.txt\", content: \"{GIT_TOKEN}\\n\" }} }}]\nfallback: \"Done.\"\n"
        ),
        "leak",
    )
    .unwrap();
    let server = ModelServer::start(script, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let remote = remote();
    let cfg = fracta_config::parse(
        &claude_job_config(&server.url(), &remote),
        Path::new("/p/fracta.yaml"),
    )
    .unwrap();
    let mut a = AgentRecord::new("leak", "claude", "claude", Mode::Batch, "write the file");
    a.model = Some("claude-sonnet-4-5".into());
    let r = render(&cfg, &a, "agents").unwrap();
    let root = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking({
        let root = root.path().to_path_buf();
        move || run_job_locally(&r, "sk-ant-test", GIT_TOKEN, &root)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "not committing the agent's work: these files hold a secret it was given: leak.txt"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains(GIT_TOKEN), "{stderr}");
    // The file is left as the agent left it; nothing reached the remote.
    assert!(root.path().join("workspace/leak.txt").is_file());
    let branches = crate::git_remote::git(&remote.bare("app"), &["branch", "--list"]);
    assert!(!branches.contains("fracta/"), "{branches}");
}
