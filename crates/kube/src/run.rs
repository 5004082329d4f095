//! A batch agent on Kubernetes, end to end: render its objects, materialize the secrets its
//! Secret holds, apply, watch its Pod start, read its log into the same normalized events as
//! a local run (persisted before they are shown), take the Job's outcome, record the agent's
//! end with the reason, and clean up its objects.

use std::collections::BTreeMap;
use std::time::Duration;

use fracta_config::LoadedConfig;
use fracta_core::adapter::adapter_for;
use fracta_core::credentials::{RequestContext, materialize};
use fracta_core::error::RunError;
use fracta_core::launch::Gateway;
use fracta_core::record::{Observer, Recorder, RunEnd};
use fracta_core::redact::Redactor;
use fracta_core::remote::{RemoteBackend, RemoteRun};
use fracta_core::session::StepMonitor;
use fracta_state::{AgentPatch, AgentRecord, KubernetesRef, Mode};
use futures::StreamExt;

use crate::client::{KubeBackend, Phase};
use crate::render::{Rendered, SecretSource, Workload, render_with};

/// What a Kubernetes run records through and reads its config from (never the runner).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub cfg: &'a LoadedConfig,
    pub rec: &'a Recorder,
}

/// How long a Pod may take to start (scheduling, image pull) before the agent fails.
pub const START_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the Job may take to report its outcome once its log has ended.
pub const OUTCOME_TIMEOUT: Duration = Duration::from_secs(60);

/// The values of the agent's Secret, made now. Every value is registered with the redactor.
pub async fn materialize_secrets(
    cfg: &LoadedConfig,
    redactor: &Redactor,
    r: &Rendered,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    session_secret: &str,
) -> Result<BTreeMap<String, String>, String> {
    let profiles = &cfg.config.auth.credentials.profiles;
    let mut out = BTreeMap::new();
    for (key, source) in &r.secret_sources {
        let value = match source {
            SecretSource::Session { digest: true, .. } => {
                fracta_core::secret::sha256_hex(session_secret)
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
                materialize(profile, origin, o, request, redactor)
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        redactor.add(&value);
        out.insert(key.clone(), value);
    }
    Ok(out)
}

/// Run a recorded batch agent as a Kubernetes Job, to its end. With `gateway`, the agent can
/// spawn children through Fracta's MCP gateway at that (in-cluster) URL.
pub async fn run_batch(
    ctx: Ctx<'_>,
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
    } = match place(ctx, kube, agent, request, gateway, "", observer).await? {
        Ok(p) => p,
        Err(failed) => return Ok(failed),
    };
    let kind = rt.adapter;
    let container = adapter_for(kind).binary();
    let (phase, pod) = match kube.wait_started(&agent.id, container, START_TIMEOUT).await {
        Ok(p) => p,
        Err(e) => return abandon(ctx, kube, &rendered, &agent, &e.to_string(), observer).await,
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
            return abandon(ctx, kube, &rendered, &agent, &reason, observer).await;
        }
        (Phase::Pending { detail }, _) => {
            let why = format!(
                "the agent's Pod did not start within {} s{}",
                START_TIMEOUT.as_secs(),
                detail.map(|d| format!(": {d}")).unwrap_or_default()
            );
            return abandon(ctx, kube, &rendered, &agent, &why, observer).await;
        }
        (_, Some(pod)) => pod,
        (_, None) => {
            let why = "the agent's Pod has no name";
            return abandon(ctx, kube, &rendered, &agent, why, observer).await;
        }
    };
    let agent = mark_running(ctx, &agent, format!("pod {pod}"), observer)?;

    let mut parser = adapter_for(kind).parser();
    let mut log_tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    // OpenCode safety, as locally: past max_steps the Job is deleted and the agent fails.
    let adapter = adapter_for(kind);
    let mut monitor = adapter
        .capabilities()
        .max_steps(&rt)
        .map(|limit| StepMonitor::new(adapter.binary(), limit));
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
                ctx.rec.persist(
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
                    ctx.rec.error(&agent, &why, observer)?;
                    aborted = Some(why);
                    if let Err(e) = kube.stop(&rendered).await {
                        tracing::warn!(agent = %agent.id, "could not stop the agent's Job: {e}");
                    }
                    break;
                }
            }
        }
        Err(e) => ctx.rec.error(&agent, &e.to_string(), observer)?,
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
                ctx.rec
                    .redactor
                    .redact(&log_tail.iter().cloned().collect::<Vec<_>>().join("\n"))
            ));
        }
        if let Some(e) = &o.error {
            parts.push(format!("runtime error: {}", ctx.rec.redactor.redact(e)));
        }
        if parts.is_empty() {
            parts.push("the agent did not succeed".into());
        }
        parts.join("; ")
    });
    let detail = error.clone();
    ctx.rec.end_run(
        &agent.id,
        RunEnd {
            usage_turn: Some(1),
            outcome: o,
            succeeded,
            error,
            exit_code: None,
            signal: None,
            stderr_tail: None,
            commit: None,
            detail,
        },
        observer,
    )
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
    ctx: Ctx<'_>,
    kube: &KubeBackend,
    agent: AgentRecord,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    session_secret: &str,
    observer: &mut dyn Observer,
) -> Result<Result<Placed, AgentRecord>, RunError> {
    let rendered = match render_with(ctx.cfg, &agent, kube.namespace(), gateway) {
        Ok(r) => r,
        Err(e) => {
            return ctx
                .rec
                .fail_before_start(&agent, &e.to_string(), observer)
                .map(Err);
        }
    };
    // `render` refuses an unknown runtime, so this lookup finds it.
    let Some(rt) = ctx
        .cfg
        .config
        .agents
        .agent_runtimes
        .get(&agent.runtime)
        .cloned()
    else {
        let why = format!("unknown runtime `{}`", agent.runtime);
        return ctx.rec.fail_before_start(&agent, &why, observer).map(Err);
    };
    let values = match materialize_secrets(
        ctx.cfg,
        &ctx.rec.redactor,
        &rendered,
        request,
        gateway,
        session_secret,
    )
    .await
    {
        Ok(v) => v,
        Err(e) => return ctx.rec.fail_before_start(&agent, &e, observer).map(Err),
    };
    let mut meta = agent.meta.clone();
    let mut at = KubernetesRef {
        namespace: kube.namespace().to_string(),
        ..KubernetesRef::default()
    };
    match rendered.workload {
        Workload::Job(_) => at.job = Some(rendered.name.clone()),
        Workload::Pod(_) => {
            at.pod = Some(rendered.name.clone());
            meta.turns = 1;
        }
    }
    meta.kubernetes = Some(at);
    let agent = ctx.rec.store.update_agent(
        &agent.id,
        &AgentPatch {
            // Not a process of this host: local reconciling leaves it alone.
            host: Some(Some(format!(
                "{}{}",
                fracta_core::remote::REMOTE_HOST_PREFIX,
                kube.namespace()
            ))),
            meta: Some(meta),
            ..AgentPatch::default()
        },
    )?;
    if let Err(e) = kube.apply(&rendered, &values).await {
        return abandon(ctx, kube, &rendered, &agent, &e.to_string(), observer)
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
    ctx: Ctx<'_>,
    kube: &KubeBackend,
    rendered: &Rendered,
    agent: &AgentRecord,
    why: &str,
    observer: &mut dyn Observer,
) -> Result<AgentRecord, RunError> {
    let _ = kube.clean_up(rendered).await;
    ctx.rec.fail_before_start(agent, why, observer)
}

/// The agent's CLI runs (in `detail`): record it.
fn mark_running(
    ctx: Ctx<'_>,
    agent: &AgentRecord,
    detail: String,
    observer: &mut dyn Observer,
) -> Result<AgentRecord, RunError> {
    let patch = AgentPatch {
        started_at: Some(Some(jiff::Timestamp::now())),
        ..AgentPatch::default()
    };
    Ok(ctx.rec.mark_running(agent, &patch, detail, observer)?.1)
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

    /// A backend already connected to `kube`, whose agents reach the gateway at `gateway_url`
    /// (none: they get no gateway).
    pub fn with_backend(kube: KubeBackend, gateway_url: Option<String>) -> Self {
        KubeRemote {
            section: None,
            backend: tokio::sync::OnceCell::new_with(Some(kube)),
            gateway_url,
        }
    }

    /// Connect now (a foreground spawn checks the cluster before it records anything).
    pub async fn connect(&self) -> Result<(), crate::KubeError> {
        self.backend().await.map(drop)
    }

    async fn backend(&self) -> Result<&KubeBackend, crate::KubeError> {
        self.backend
            .get_or_try_init(|| KubeBackend::connect(self.section.as_ref()))
            .await
    }
}

impl RemoteBackend for KubeRemote {
    fn run_batch<'a>(
        &'a self,
        run: RemoteRun<'a>,
    ) -> futures::future::BoxFuture<'a, Result<AgentRecord, RunError>> {
        let gateway = self.in_cluster(run.opts.gateway.as_ref());
        Box::pin(async move {
            let RemoteRun {
                cfg,
                recorder,
                agent,
                opts,
                observer,
            } = run;
            let ctx = Ctx { cfg, rec: recorder };
            match self.backend().await {
                Ok(kube) => {
                    run_batch(ctx, kube, agent, &opts.request, gateway.as_ref(), observer).await
                }
                Err(e) => recorder.fail_before_start(&agent, &e.to_string(), observer),
            }
        })
    }

    fn run_stream<'a>(
        &'a self,
        run: RemoteRun<'a>,
    ) -> futures::future::BoxFuture<'a, Result<AgentRecord, RunError>> {
        let gateway = self.in_cluster(run.opts.gateway.as_ref());
        Box::pin(async move {
            let RemoteRun {
                cfg,
                recorder,
                agent,
                opts,
                observer,
            } = run;
            let ctx = Ctx { cfg, rec: recorder };
            match self.backend().await {
                Ok(kube) => run_stream(ctx, kube, agent, gateway.as_ref(), opts, observer).await,
                Err(e) => recorder.fail_before_start(&agent, &e.to_string(), observer),
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

/// A stream agent's Pod, as the session loop drives it: its log is its output (the session itself
/// is spoken over the network), deleting it ends it.
pub struct PodWorkload {
    kube: KubeBackend,
    pod: String,
    container: String,
    log: Option<futures::stream::BoxStream<'static, Result<String, std::io::Error>>>,
    /// The log being opened: kept here, so that a `next_line` cancelled by the session loop's
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
    ctx: Ctx<'_>,
    kube: &KubeBackend,
    agent: AgentRecord,
    gateway: Option<&Gateway>,
    opts: &fracta_core::session::RunOptions,
    observer: &mut dyn Observer,
) -> Result<AgentRecord, RunError> {
    let secret = match fracta_core::secret::new_token() {
        Ok(s) => s,
        Err(e) => return ctx.rec.fail_before_start(&agent, &e.to_string(), observer),
    };
    ctx.rec.redactor.add(&secret);
    ctx.rec
        .redactor
        .add(&fracta_core::secret::sha256_hex(&secret));
    let Placed {
        agent,
        rendered,
        rt,
    } = match place(ctx, kube, agent, &opts.request, gateway, &secret, observer).await? {
        Ok(p) => p,
        Err(failed) => return Ok(failed),
    };
    let container = adapter_for(rt.adapter).binary();
    let ready = match kube.wait_ready(&agent.id, container, READY_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => return abandon(ctx, kube, &rendered, &agent, &e, observer).await,
    };
    let adapter = adapter_for(rt.adapter);
    let Some(endpoint) = adapter.session_endpoint(&ready.ip, ready.port) else {
        let why = format!("{} serves no session over the network", adapter.binary());
        return abandon(ctx, kube, &rendered, &agent, &why, observer).await;
    };
    let detail = format!("pod {} at {}:{}", ready.name, ready.ip, ready.port);
    let agent = mark_running(ctx, &agent, detail, observer)?;
    let prompt = agent.prompt.clone();
    let work = PodWorkload {
        kube: kube.clone(),
        pod: ready.name,
        container: container.to_string(),
        log: None,
        opening: None,
        log_opened: false,
        deleted: false,
    };
    // A session's life is governed by its idle timeout, turn by turn, not by the wall clock
    // of one run; the agent's budget still bounds it.
    let wall_clock = Duration::from_secs(
        agent
            .meta
            .budgets
            .and_then(|b| b.wall_clock_secs)
            .unwrap_or_else(|| ctx.cfg.config.agents.budgets.wall_clock_secs()),
    );
    let done = fracta_core::session::drive(
        ctx.rec,
        agent,
        adapter,
        fracta_core::session::Launched {
            turn: 1,
            prompt: &prompt,
            resume_token: None,
            stream: true,
            stdin: None,
            connect: Some((endpoint, secret)),
            files: &[],
            wall_clock,
            max_steps: adapter.capabilities().max_steps(&rt),
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
