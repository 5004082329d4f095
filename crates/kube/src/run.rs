//! A batch agent on Kubernetes, end to end: render its objects, materialize the secrets its
//! Secret holds, apply, watch its Pod start, read its log into the same normalized events as
//! a local run (persisted before they are shown), take the Job's outcome, record the agent's
//! end with the reason, and clean up its objects.

use std::collections::BTreeMap;
use std::time::Duration;

use fracta_core::adapter::adapter_for;
use fracta_core::credentials::{RequestContext, materialize};
use fracta_core::event::{ErrorEvent, Event};
use fracta_core::runner::{Observer, RunError, Runner};
use fracta_state::{AgentPatch, AgentRecord, AgentStatus, Mode, UsageRecord};
use futures::StreamExt;
use serde_json::json;

use crate::client::{KubeBackend, Phase};
use crate::render::{Rendered, SecretSource, Workload, render_with};
use fracta_core::runner::Gateway;

/// How long a Pod may take to start (scheduling, image pull) before the agent fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the Job may take to report its outcome once its log has ended.
pub const OUTCOME_TIMEOUT: Duration = Duration::from_secs(60);

/// The values of the agent's Secret, made now. Every value is registered with the redactor.
pub async fn materialize_secrets(
    runner: &Runner,
    r: &Rendered,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    session_secret: &str,
) -> Result<BTreeMap<String, String>, String> {
    let profiles = &runner.cfg.config.auth.credentials.profiles;
    let mut out = BTreeMap::new();
    for (key, source) in &r.secret_sources {
        let value = match source {
            SecretSource::Session { digest: true, .. } => {
                fracta_core::adapter::codex::sha256_hex(session_secret)
            }
            SecretSource::Session { .. } => session_secret.to_string(),
            SecretSource::GatewayToken => match gateway {
                Some(g) => g.token.clone(),
                None => {
                    return Err("the agent's Secret needs a gateway token, and it has none".into());
                }
            },
            SecretSource::Env { name } => match std::env::var(name) {
                Ok(v) if !v.is_empty() => v,
                _ => {
                    return Err(format!(
                        "the agent's Secret takes `{key}` from ${name}, which is not set in Fracta's environment"
                    ));
                }
            },
            SecretSource::Config { key: path } => {
                let mut parts = path.split('.');
                let (Some(p), Some(k)) = (parts.nth(3), parts.nth(1)) else {
                    return Err(format!("no config entry {path}"));
                };
                profiles
                    .get(p)
                    .and_then(|pr| pr.env.get(k))
                    .cloned()
                    .ok_or_else(|| format!("no config entry {path}"))?
            }
            SecretSource::Command { profile, origin }
            | SecretSource::Header {
                profile, origin, ..
            } => {
                let o = profiles
                    .get(profile)
                    .and_then(|p| p.auth_origins.get(origin))
                    .ok_or_else(|| format!("no origin `{origin}` in profile `{profile}`"))?;
                materialize(profile, origin, o, request, &runner.redactor)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        runner.redactor.add(&value);
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// Run a recorded batch agent as a Kubernetes Job, to its end. With `gateway`, the agent can
/// spawn children through Fracta's MCP gateway at that (in-cluster) URL.
pub async fn run_batch(
    runner: &Runner,
    kube: &KubeBackend,
    agent: AgentRecord,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    observer: &mut dyn Observer,
) -> Result<AgentRecord, RunError> {
    if agent.mode != Mode::Batch {
        return Err(RunError::Usage(
            "a stream agent on Kubernetes runs as a session (run_stream), not as a Job".into(),
        ));
    }
    let Placed {
        agent,
        rendered,
        rt,
    } = match place(runner, kube, agent, request, gateway, "", observer).await? {
        Ok(p) => p,
        Err(failed) => return Ok(failed),
    };
    let kind = rt.adapter;
    let container = adapter_for(kind).binary();
    let (phase, pod) = match kube.wait_started(&agent.id, container, START_TIMEOUT).await {
        Ok(p) => p,
        Err(e) => return abandon(runner, kube, &rendered, &agent, &e.to_string(), observer).await,
    };
    // A container that already ended still has its log: read it (the runtime's own error
    // events are there), then say how it ended.
    let mut exit_failure = None;
    let pod = match (phase, pod) {
        (Phase::Exited { pod, failure }, _) => {
            exit_failure = failure;
            pod
        }
        (Phase::Failed { reason }, _) => {
            return abandon(runner, kube, &rendered, &agent, &reason, observer).await;
        }
        (Phase::Pending { detail }, _) => {
            let why = format!(
                "the agent's Pod did not start within {} s{}",
                START_TIMEOUT.as_secs(),
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            );
            return abandon(runner, kube, &rendered, &agent, &why, observer).await;
        }
        (_, Some(pod)) => pod,
        (_, None) => {
            let why = "the agent's Pod has no name";
            return abandon(runner, kube, &rendered, &agent, why, observer).await;
        }
    };
    let agent = mark_running(runner, &agent, format!("pod {pod}"), observer)?;

    let mut parser = adapter_for(kind).parser();
    let mut log_tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    // OpenCode safety, as locally: past max_steps the Job is deleted and the agent fails.
    let mut monitor = fracta_core::runner::StepMonitor::for_runtime(&rt);
    let mut aborted: Option<String> = None;
    match kube.follow_log(&pod, container).await {
        Ok(lines) => {
            let mut lines = std::pin::pin!(lines);
            while let Some(line) = lines.next().await {
                let Ok(line) = line else { break };
                if line.trim().is_empty() {
                    continue;
                }
                let parsed = parser.parse_line(&line);
                // The log holds stderr too: keep the last lines the parser did not know, for
                // the error.
                if !parsed.understood {
                    log_tail.push_back(line.clone());
                    if log_tail.len() > 10 {
                        log_tail.pop_front();
                    }
                }
                runner.record_events(
                    &agent,
                    &parsed.events,
                    Some(&line),
                    parsed.understood,
                    observer,
                )?;
                if let Some(why) = monitor
                    .as_mut()
                    .and_then(|m| m.observe(&agent.id, &parsed.events))
                {
                    runner.record_error(&agent, &why, observer)?;
                    aborted = Some(why);
                    if let Err(e) = kube.stop(&rendered).await {
                        tracing::warn!(agent = %agent.id, "could not stop the agent's Job: {e}");
                    }
                    break;
                }
            }
        }
        Err(e) => runner.record_error(&agent, &e.to_string(), observer)?,
    }
    // The Job's own word on how it ended (none for a Job Fracta deleted).
    let until = tokio::time::Instant::now() + OUTCOME_TIMEOUT;
    let outcome = if aborted.is_some() {
        Phase::Failed {
            reason: "stopped by Fracta".into(),
        }
    } else {
        loop {
            match kube.job_outcome(&rendered.name).await {
                Ok(Some(p)) => break p,
                Ok(None) if tokio::time::Instant::now() < until => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Ok(None) => {
                    break Phase::Failed {
                        reason: format!(
                            "the Job reported no outcome within {} s of its log ending",
                            OUTCOME_TIMEOUT.as_secs()
                        ),
                    };
                }
                Err(e) => {
                    break Phase::Failed {
                        reason: e.to_string(),
                    };
                }
            }
        }
    };
    if let Err(e) = kube.clean_up(&rendered).await {
        tracing::warn!(agent = %agent.id, "could not clean up the agent's objects: {e}");
    }
    let o = parser.outcome();
    let succeeded = outcome == Phase::Succeeded
        && exit_failure.is_none()
        && aborted.is_none()
        && o.success != Some(false);
    let error = (!succeeded).then(|| {
        let mut parts = Vec::new();
        if let Some(why) = &aborted {
            parts.push(why.clone());
        }
        // How the container ended says more than the Job's summary of it.
        if let Some(f) = exit_failure.as_ref().or(match &outcome {
            Phase::Failed { reason } => Some(reason),
            _ => None,
        }) {
            parts.push(format!("{} on Kubernetes: {f}", agent.adapter));
        }
        if !log_tail.is_empty() {
            parts.push(format!(
                "log: {}",
                runner
                    .redactor
                    .redact(&log_tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            ));
        }
        if let Some(e) = &o.error {
            parts.push(format!("runtime error: {}", runner.redactor.redact(e)));
        }
        if parts.is_empty() {
            parts.push("the agent did not succeed".into());
        }
        parts.join("; ")
    });
    runner.store.record_usage(&UsageRecord {
        agent_id: agent.id.clone(),
        turn: 1,
        model: o.model.clone().or(agent.model.clone()),
        input_tokens: o.usage.input_tokens,
        output_tokens: o.usage.output_tokens,
        cached_tokens: o.usage.cached_tokens,
        cost_usd: o.cost_usd,
        at: jiff::Timestamp::now(),
    })?;
    let to = if succeeded {
        AgentStatus::Succeeded
    } else {
        AgentStatus::Failed
    };
    runner.store.transition(
        &agent.id,
        &AgentStatus::ACTIVE,
        to,
        &AgentPatch {
            resume_token: o.resume_token.clone().map(Some),
            result: o.result.clone().map(|r| Some(runner.redactor.redact(&r))),
            error: error.clone().map(Some),
            ..AgentPatch::default()
        },
    )?;
    let rec = runner.store.get_agent(&agent.id)?;
    let mut evs = Vec::new();
    if let Some(e) = &error
        && o.error.is_none()
    {
        evs.push(Event::Error(ErrorEvent { message: e.clone() }));
    }
    evs.push(Event::status(rec.status.as_str(), error));
    runner.record_events(&rec, &evs, None, true, observer)?;
    Ok(rec)
}

/// An agent whose objects are in the cluster, and what they are.
struct Placed {
    agent: AgentRecord,
    rendered: Rendered,
    rt: fracta_config::RuntimeEntry,
}

/// Render an agent's objects, materialize its Secret's values (`session_secret` for a
/// session's password or token digest), record where it runs and apply them. `Err` is the
/// agent recorded as failed, with why.
async fn place(
    runner: &Runner,
    kube: &KubeBackend,
    agent: AgentRecord,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    session_secret: &str,
    observer: &mut dyn Observer,
) -> Result<Result<Placed, AgentRecord>, RunError> {
    let rendered = match render_with(&runner.cfg, &agent, kube.namespace(), gateway) {
        Ok(r) => r,
        Err(e) => {
            return runner
                .fail_before_start(&agent, &e.to_string(), observer)
                .map(Err);
        }
    };
    // `render` refuses an unknown runtime, so this lookup finds it.
    let Some(rt) = runner
        .cfg
        .config
        .agents
        .agent_runtimes
        .get(&agent.runtime)
        .cloned()
    else {
        let why = format!("unknown runtime `{}`", agent.runtime);
        return runner.fail_before_start(&agent, &why, observer).map(Err);
    };
    let values =
        match materialize_secrets(runner, &rendered, request, gateway, session_secret).await {
            Ok(v) => v,
            Err(e) => return runner.fail_before_start(&agent, &e, observer).map(Err),
        };
    let mut meta = agent.meta.clone();
    match rendered.workload {
        Workload::Job(_) => {
            meta["kubernetes"] = json!({ "namespace": kube.namespace(), "job": rendered.name });
        }
        Workload::Pod(_) => {
            meta["kubernetes"] = json!({ "namespace": kube.namespace(), "pod": rendered.name });
            meta["turns"] = json!(1);
        }
    }
    let agent = runner.store.update_agent(
        &agent.id,
        &AgentPatch {
            // Not a process of this host: local reconciling leaves it alone.
            host: Some(Some(format!(
                "{}{}",
                fracta_core::runner::REMOTE_HOST_PREFIX,
                kube.namespace()
            ))),
            meta: Some(meta),
            ..AgentPatch::default()
        },
    )?;
    if let Err(e) = kube.apply(&rendered, &values).await {
        return abandon(runner, kube, &rendered, &agent, &e.to_string(), observer)
            .await
            .map(Err);
    }
    Ok(Ok(Placed {
        agent,
        rendered,
        rt,
    }))
}

/// Remove the agent's objects and record that it failed, and why.
async fn abandon(
    runner: &Runner,
    kube: &KubeBackend,
    rendered: &Rendered,
    agent: &AgentRecord,
    why: &str,
    observer: &mut dyn Observer,
) -> Result<AgentRecord, RunError> {
    let _ = kube.clean_up(rendered).await;
    runner.fail_before_start(agent, why, observer)
}

/// The agent's CLI runs (in `detail`): record it.
fn mark_running(
    runner: &Runner,
    agent: &AgentRecord,
    detail: String,
    observer: &mut dyn Observer,
) -> Result<AgentRecord, RunError> {
    runner.store.transition(
        &agent.id,
        &[AgentStatus::Queued, AgentStatus::Starting],
        AgentStatus::Running,
        &AgentPatch {
            started_at: Some(Some(jiff::Timestamp::now())),
            ..AgentPatch::default()
        },
    )?;
    let agent = runner.store.get_agent(&agent.id)?;
    runner.record_events(
        &agent,
        &[Event::status("running", Some(detail))],
        None,
        true,
        observer,
    )?;
    Ok(agent)
}

/// The Kubernetes backend as the runner sees it: it connects on first use, so a config that
/// names the backend costs nothing until an agent runs there.
pub struct KubeRemote {
    section: Option<fracta_config::KubernetesSection>,
    backend: tokio::sync::OnceCell<KubeBackend>,
    /// Where agents in the cluster reach this control plane's MCP gateway.
    gateway_url: Option<String>,
}

/// The env var that tells the control plane its MCP gateway's in-cluster URL (the deployment
/// file sets it to its Service); without it, agents in the cluster get no gateway.
pub const GATEWAY_URL_ENV: &str = "FRACTA_GATEWAY_URL";

impl KubeRemote {
    pub fn new(section: Option<fracta_config::KubernetesSection>) -> Self {
        KubeRemote {
            section,
            backend: tokio::sync::OnceCell::new(),
            gateway_url: std::env::var(GATEWAY_URL_ENV)
                .ok()
                .filter(|u| !u.is_empty()),
        }
    }

    /// The control plane's gateway, at the URL the cluster reaches it by (none without one).
    fn in_cluster(&self, gateway: Option<&Gateway>) -> Option<Gateway> {
        Some(Gateway {
            url: self.gateway_url.clone()?,
            token: gateway?.token.clone(),
        })
    }

    async fn backend(&self) -> Result<&KubeBackend, crate::KubeError> {
        self.backend
            .get_or_try_init(|| KubeBackend::connect(self.section.as_ref()))
            .await
    }
}

impl fracta_core::runner::RemoteBackend for KubeRemote {
    fn run_batch<'a>(
        &'a self,
        runner: &'a Runner,
        agent: AgentRecord,
        gateway: Option<&'a Gateway>,
        observer: &'a mut dyn Observer,
    ) -> futures::future::BoxFuture<'a, Result<AgentRecord, RunError>> {
        let gateway = self.in_cluster(gateway);
        Box::pin(async move {
            match self.backend().await {
                Ok(kube) => {
                    run_batch(
                        runner,
                        kube,
                        agent,
                        &RequestContext::default(),
                        gateway.as_ref(),
                        observer,
                    )
                    .await
                }
                Err(e) => runner.fail_before_start(&agent, &e.to_string(), observer),
            }
        })
    }

    fn run_stream<'a>(
        &'a self,
        runner: &'a Runner,
        agent: AgentRecord,
        opts: &'a fracta_core::runner::RunOptions,
        observer: &'a mut dyn Observer,
    ) -> futures::future::BoxFuture<'a, Result<AgentRecord, RunError>> {
        let gateway = self.in_cluster(opts.gateway.as_ref());
        Box::pin(async move {
            match self.backend().await {
                Ok(kube) => run_stream(runner, kube, agent, gateway.as_ref(), opts, observer).await,
                Err(e) => runner.fail_before_start(&agent, &e.to_string(), observer),
            }
        })
    }

    fn stop<'a>(
        &'a self,
        agent: &'a AgentRecord,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let kube = self.backend().await.map_err(|e| e.to_string())?;
            kube.stop_agent(&agent.id).await.map_err(|e| e.to_string())
        })
    }
}

/// A stream agent's Pod, as the runner drives it: its log is its output (the session itself
/// is spoken over the network), deleting it ends it.
pub struct PodWorkload {
    kube: KubeBackend,
    pod: String,
    container: String,
    log: Option<futures::stream::BoxStream<'static, Result<String, std::io::Error>>>,
    /// The log being opened: kept here, so that a `next_line` cancelled by the runner's
    /// `select!` loses nothing.
    opening: Option<futures::future::BoxFuture<'static, Option<LogStream>>>,
    log_opened: bool,
    deleted: bool,
}

type LogStream = futures::stream::BoxStream<'static, Result<String, std::io::Error>>;

impl fracta_core::backend::Workload for PodWorkload {
    fn next_line(&mut self) -> futures::future::BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            if !self.log_opened {
                let opening = self.opening.get_or_insert_with(|| {
                    let (kube, pod, container) =
                        (self.kube.clone(), self.pod.clone(), self.container.clone());
                    Box::pin(async move {
                        match kube.follow_log(&pod, &container).await {
                            Ok(s) => Some(s.boxed()),
                            Err(e) => {
                                tracing::warn!("cannot follow the session Pod's log: {e}");
                                None
                            }
                        }
                    })
                });
                self.log = opening.await;
                self.opening = None;
                self.log_opened = true;
            }
            match self.log.as_mut() {
                // The log ends when the container does.
                Some(log) => log.next().await.and_then(Result::ok),
                None => None,
            }
        })
    }

    fn terminate(&mut self) {
        self.deleted = true;
        let kube = self.kube.clone();
        let pod = self.pod.clone();
        tokio::spawn(async move {
            if let Err(e) = kube.stop_agent_pod(&pod).await {
                tracing::warn!("could not delete the session's Pod {pod}: {e}");
            }
        });
    }

    fn wait(
        self: Box<Self>,
    ) -> futures::future::BoxFuture<'static, fracta_core::backend::local::ExitInfo> {
        Box::pin(async move {
            let code = self.kube.pod_exit(&self.pod, &self.container).await;
            fracta_core::backend::local::ExitInfo {
                code: code.as_ref().ok().copied().flatten(),
                // A Pod Fracta deleted ended as a process it signalled would.
                signal: (self.deleted && !matches!(code, Ok(Some(_)))).then_some(15),
                stderr_tail: match code {
                    Err(e) => e.to_string(),
                    Ok(_) => String::new(),
                },
            }
        })
    }
}

/// How long a session's Pod may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Run a recorded stream agent as a Pod: apply it, wait until it is ready, then drive its
/// session over the network (Codex: WebSocket with the capability token; OpenCode: HTTP + SSE
/// with the password) exactly as a local session; clean up at the end.
pub async fn run_stream(
    runner: &Runner,
    kube: &KubeBackend,
    agent: AgentRecord,
    gateway: Option<&Gateway>,
    opts: &fracta_core::runner::RunOptions,
    observer: &mut dyn Observer,
) -> Result<AgentRecord, RunError> {
    let secret = fracta_core::control_plane::new_token();
    runner.redactor.add(&secret);
    runner
        .redactor
        .add(&fracta_core::adapter::codex::sha256_hex(&secret));
    let Placed {
        agent,
        rendered,
        rt,
    } = match place(
        runner,
        kube,
        agent,
        &opts.request,
        gateway,
        &secret,
        observer,
    )
    .await?
    {
        Ok(p) => p,
        Err(failed) => return Ok(failed),
    };
    let container = adapter_for(rt.adapter).binary();
    let ready = match kube.wait_ready(&agent.id, container, READY_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => return abandon(runner, kube, &rendered, &agent, &e, observer).await,
    };
    let endpoint = match rt.adapter {
        fracta_config::AdapterKind::Codex => fracta_core::launch::Endpoint::CodexWs {
            url: format!("ws://{}:{}", ready.ip, ready.port),
            digest_env: String::new(),
        },
        _ => fracta_core::launch::Endpoint::OpenCodeHttp {
            url: format!("http://{}:{}", ready.ip, ready.port),
            password_env: String::new(),
        },
    };
    let detail = format!("pod {} at {}:{}", ready.name, ready.ip, ready.port);
    let agent = mark_running(runner, &agent, detail, observer)?;
    let prompt = agent.prompt.clone();
    runner.record_events(
        &agent,
        &[Event::Message(fracta_core::event::MessageEvent {
            role: fracta_core::event::Role::User,
            text: prompt.clone(),
        })],
        None,
        true,
        observer,
    )?;
    let work = PodWorkload {
        kube: kube.clone(),
        pod: ready.name,
        container: container.to_string(),
        log: None,
        opening: None,
        log_opened: false,
        deleted: false,
    };
    let done = runner
        .drive(
            agent,
            &rt,
            fracta_core::runner::Launched {
                turn: 1,
                prompt: &prompt,
                resume_token: None,
                stream: true,
                stdin: None,
                connect: Some((endpoint, secret)),
                files: &[],
            },
            Box::new(work),
            opts,
            observer,
        )
        .await;
    if let Err(e) = kube.clean_up(&rendered).await {
        tracing::warn!("could not clean up the session's objects: {e}");
    }
    done
}
