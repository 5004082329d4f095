//! An agent placed on Kubernetes: render its objects, materialize the secrets its Secret
//! holds, apply, watch its Pod start, and hand the runner a workload — a Job whose log is its
//! output and whose outcome is its end, or a Pod serving its session — that the runner drives
//! and records as it does a local process. The workload cleans up its objects when it ends.

use std::collections::BTreeMap;
use std::time::Duration;

use fracta_config::LoadedConfig;
use fracta_core::adapter::adapter_for;
use fracta_core::backend::local::ExitInfo;
use fracta_core::credentials::{RequestContext, materialize};
use fracta_core::error::RunError;
use fracta_core::launch::Gateway;
use fracta_core::record::{Observer, Recorder};
use fracta_core::redact::Redactor;
use fracta_core::remote::{RemoteBackend, RemoteRun, Started};
use fracta_state::{AgentPatch, AgentRecord, KubernetesRef, Mode};
use futures::StreamExt;

use crate::client::{KubeBackend, Phase};
use crate::render::{Rendered, SecretSource, Workload, render_turn};

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
/// How long fetching an agent's pushed branch into the local repository may take.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(120);

/// Fetch `branch` from `repository` into the repository at `project_dir` (a spawn made from a
/// laptop: `fracta diff` and `git log` then see the agent's work as for a local agent). Git
/// uses the repository's own credentials, without prompting.
pub async fn fetch_branch(
    project_dir: &std::path::Path,
    repository: &str,
    branch: &str,
) -> Result<(), String> {
    let refspec = format!("+refs/heads/{branch}:refs/heads/{branch}");
    let run = tokio::process::Command::new("git")
        .args(["fetch", "--quiet", "--", repository, &refspec])
        .current_dir(project_dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(FETCH_TIMEOUT, run).await {
        Err(_) => Err(format!(
            "git fetch of {branch} from {repository} took more than {} s",
            FETCH_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("cannot run git: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!(
            "git fetch of {branch} from {repository}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

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

/// Place a recorded batch agent as a Kubernetes Job and wait until its container runs (or has
/// already ended: its log is still read). With `gateway`, the agent can spawn children through
/// Fracta's MCP gateway at that (in-cluster) URL. The runner drives the returned workload.
/// A stream agent's resumed turn runs this way too (one turn, as locally), on its claim.
pub async fn start_batch(
    ctx: Ctx<'_>,
    kube: &KubeBackend,
    agent: AgentRecord,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    observer: &mut dyn Observer,
) -> Result<Started, RunError> {
    if agent.mode == Mode::Stream && agent.resume_token.is_none() {
        return Err(RunError::Usage(
            "a stream agent on Kubernetes runs as a session (start_stream); only its resumed turns run as a Job".into(),
        ));
    }
    let Placed {
        agent,
        rendered,
        rt,
    } = match place(ctx, kube, agent, request, gateway, None, observer).await? {
        Ok(p) => p,
        Err(failed) => return Ok(Started::Failed(failed)),
    };
    let container = adapter_for(rt.adapter).binary();
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
    let fetch = fetch_target(ctx.cfg, &agent);
    Ok(Started::Running {
        agent,
        detail: format!("pod {pod}"),
        workload: Box::new(JobWorkload {
            fetch,
            log: Log::new(kube.clone(), pod, container.to_string()),
            kube: kube.clone(),
            rendered,
            exit_failure,
            tail: std::collections::VecDeque::new(),
            deleted: false,
        }),
        connect: None,
    })
}

/// A batch agent's Job, as the session loop drives it: its Pod's log is its output (stderr
/// included), its end the Job's outcome; stopping it deletes the Job. Its objects are
/// removed once it has ended.
pub struct JobWorkload {
    /// Where the agent's pushed branch is fetched to when it succeeds: the local project's
    /// repository, the remote and the branch (none in a cluster's control plane).
    fetch: Option<(std::path::PathBuf, String, String)>,
    kube: KubeBackend,
    rendered: Rendered,
    log: Log,
    /// How the container ended, when it had already ended before its log was read.
    exit_failure: Option<String>,
    /// The last log lines that were not the runtime's JSON (its stderr), for the error.
    tail: std::collections::VecDeque<String>,
    deleted: bool,
}

impl fracta_core::backend::Workload for JobWorkload {
    fn next_line(&mut self) -> futures::future::BoxFuture<'_, Option<String>> {
        Box::pin(async move {
            if self.deleted {
                return None;
            }
            let line = self.log.next().await?;
            if !line.trim_start().starts_with('{') && !line.trim().is_empty() {
                self.tail.push_back(line.clone());
                if self.tail.len() > 10 {
                    self.tail.pop_front();
                }
            }
            Some(line)
        })
    }

    /// Deleting the Job waits for `wait`, so the API sees one call after another.
    fn terminate(&mut self) {
        self.deleted = true;
    }

    fn wait(self: Box<Self>) -> futures::future::BoxFuture<'static, ExitInfo> {
        Box::pin(async move {
            let JobWorkload {
                fetch,
                kube,
                rendered,
                exit_failure,
                tail,
                deleted,
                ..
            } = *self;
            // The Job's own word on how it ended (none for a Job Fracta deleted).
            let outcome = if deleted {
                if let Err(e) = kube.stop(&rendered).await {
                    tracing::warn!("could not stop the agent's Job {}: {e}", rendered.name);
                }
                Phase::Failed {
                    reason: "stopped by Fracta".into(),
                }
            } else {
                job_outcome(&kube, &rendered.name).await
            };
            if let Err(e) = kube.clean_up(&rendered).await {
                tracing::warn!(
                    "could not clean up the agent's objects {}: {e}",
                    rendered.name
                );
            }
            if exit_failure.is_none()
                && matches!(outcome, Phase::Succeeded)
                && let Some((dir, repository, branch)) = fetch
                && let Err(e) = fetch_branch(&dir, &repository, &branch).await
            {
                tracing::warn!("the agent's branch is on the remote, but {e}");
            }
            let failure = exit_failure.or(match outcome {
                Phase::Succeeded => None,
                Phase::Failed { reason } => Some(reason),
                other => Some(format!("{other:?}")),
            });
            ExitInfo {
                code: failure.is_none().then_some(0),
                signal: deleted.then_some(15),
                stderr_tail: tail.into_iter().collect::<Vec<_>>().join("\n"),
                // How the container ended says more than the Job's summary of it.
                reason: failure.map(|f| format!("on Kubernetes: {f}")),
            }
        })
    }
}

/// The local repository a succeeded agent's branch is fetched into: the project's, when the
/// config's folder is in a git work tree (a laptop), with the agent's remote and branch.
fn fetch_target(
    cfg: &LoadedConfig,
    agent: &AgentRecord,
) -> Option<(std::path::PathBuf, String, String)> {
    fracta_core::workspace::current_branch(&cfg.dir)?;
    let c = crate::render::checkout(cfg, agent).ok()?;
    Some((cfg.dir.clone(), c.repository, c.branch))
}

/// The Job's outcome once its log has ended, waiting for it up to `OUTCOME_TIMEOUT`.
async fn job_outcome(kube: &KubeBackend, name: &str) -> Phase {
    let until = tokio::time::Instant::now() + OUTCOME_TIMEOUT;
    loop {
        match kube.job_outcome(name).await {
            Ok(Some(p)) => return p,
            Ok(None) if tokio::time::Instant::now() < until => {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(None) => {
                return Phase::Failed {
                    reason: format!(
                        "the Job reported no outcome within {} s of its log ending",
                        OUTCOME_TIMEOUT.as_secs()
                    ),
                };
            }
            Err(e) => {
                return Phase::Failed {
                    reason: e.to_string(),
                };
            }
        }
    }
}

/// A container's log, opened on first read. The opening is kept, so that a read cancelled by
/// the session loop's `select!` loses nothing.
struct Log {
    kube: KubeBackend,
    pod: String,
    container: String,
    stream: Option<LogStream>,
    opening: Option<futures::future::BoxFuture<'static, Option<LogStream>>>,
    opened: bool,
}

type LogStream = futures::stream::BoxStream<'static, Result<String, std::io::Error>>;

impl Log {
    fn new(kube: KubeBackend, pod: String, container: String) -> Self {
        Log {
            kube,
            pod,
            container,
            stream: None,
            opening: None,
            opened: false,
        }
    }

    /// The next line; `None` once the container has ended (or its log cannot be read).
    async fn next(&mut self) -> Option<String> {
        if !self.opened {
            let opening = self.opening.get_or_insert_with(|| {
                let (kube, pod, container) =
                    (self.kube.clone(), self.pod.clone(), self.container.clone());
                Box::pin(async move {
                    match kube.follow_log(&pod, &container).await {
                        Ok(s) => Some(s.boxed()),
                        Err(e) => {
                            tracing::warn!("cannot follow the log of Pod {pod}: {e}");
                            None
                        }
                    }
                })
            });
            self.stream = opening.await;
            self.opening = None;
            self.opened = true;
        }
        self.stream.as_mut()?.next().await.and_then(Result::ok)
    }
}

/// An agent whose objects are in the cluster, and what they are.
struct Placed {
    agent: AgentRecord,
    rendered: Rendered,
    rt: fracta_config::RuntimeEntry,
}

/// Render an agent's objects — a session's Pod with `session_secret` (its password or token
/// digest), else a Job — materialize its Secret's values, record where it runs and apply
/// them. `Err` is the agent recorded as failed, with why.
async fn place(
    ctx: Ctx<'_>,
    kube: &KubeBackend,
    agent: AgentRecord,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    session_secret: Option<&str>,
    observer: &mut dyn Observer,
) -> Result<Result<Placed, AgentRecord>, RunError> {
    let rendered = match render_turn(
        ctx.cfg,
        &agent,
        kube.namespace(),
        gateway,
        session_secret.is_some(),
    ) {
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
        session_secret.unwrap_or_default(),
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
    // Its branch, named as locally, from the base it was cloned at: once fetched, `fracta
    // diff` shows its work.
    let checkout = crate::render::checkout(ctx.cfg, &agent).ok();
    if let Some(c) = &checkout {
        meta.base = Some(c.base.clone());
    }
    let agent = ctx.rec.store.update_agent(
        &agent.id,
        &AgentPatch {
            branch: checkout.map(|c| Some(c.branch)),
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
        let _ = kube.clean_up(&rendered).await;
        return ctx
            .rec
            .fail_before_start(&agent, &e.to_string(), observer)
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
) -> Result<Started, RunError> {
    let _ = kube.clean_up(rendered).await;
    ctx.rec
        .fail_before_start(agent, why, observer)
        .map(Started::Failed)
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
    fn start<'a>(
        &'a self,
        run: RemoteRun<'a>,
    ) -> futures::future::BoxFuture<'a, Result<Started, RunError>> {
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
            let kube = match self.backend().await {
                Ok(kube) => kube,
                Err(e) => {
                    return recorder
                        .fail_before_start(&agent, &e.to_string(), observer)
                        .map(Started::Failed);
                }
            };
            // A live session is a Pod serving it; a batch agent's run, or a stream agent's
            // resumed turn (it has no inbox then, as locally), is a Job.
            if agent.mode == Mode::Stream && opts.inbox.is_some() {
                start_stream(ctx, kube, agent, &opts.request, gateway.as_ref(), observer).await
            } else {
                start_batch(ctx, kube, agent, &opts.request, gateway.as_ref(), observer).await
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

/// A stream agent's Pod, as the session loop drives it: its log is its output (the session
/// itself is spoken over the network), deleting it ends it: its container then stops the
/// server, commits what the agent left and pushes its branch, which is then fetched as a batch
/// agent's is. Its objects are removed once it has ended.
pub struct PodWorkload {
    kube: KubeBackend,
    rendered: Rendered,
    pod: String,
    container: String,
    log: Log,
    deleted: bool,
    /// Where the agent's pushed branch is fetched to (see `JobWorkload::fetch`).
    fetch: Option<(std::path::PathBuf, String, String)>,
    /// What the container's own wrapper said (its lines start `fracta: `): why the agent's
    /// work did not go out.
    said: std::collections::VecDeque<String>,
    /// The port-forward the session goes through, while it lasts.
    _forward: Option<crate::client::PortForward>,
}

/// How long, past its grace period, a deleted session's Pod may take to report its end.
pub const SESSION_END_MARGIN: Duration = Duration::from_secs(30);

impl fracta_core::backend::Workload for PodWorkload {
    fn next_line(&mut self) -> futures::future::BoxFuture<'_, Option<String>> {
        // The log ends when the container does.
        Box::pin(async move {
            let line = self.log.next().await?;
            if line.starts_with("fracta: ") {
                self.said.push_back(line.clone());
                if self.said.len() > 10 {
                    self.said.pop_front();
                }
            }
            Some(line)
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

    fn wait(self: Box<Self>) -> futures::future::BoxFuture<'static, ExitInfo> {
        Box::pin(async move {
            let PodWorkload {
                kube,
                rendered,
                pod,
                container,
                deleted,
                fetch,
                said,
                ..
            } = *self;
            let grace = u64::try_from(crate::render::SESSION_GRACE_SECS).unwrap_or(0);
            let end = kube
                .container_end(
                    &pod,
                    &container,
                    Duration::from_secs(grace) + SESSION_END_MARGIN,
                )
                .await;
            if let Err(e) = kube.clean_up(&rendered).await {
                tracing::warn!("could not clean up the session's objects: {e}");
            }
            let code = end.as_ref().ok().copied().flatten();
            if code == Some(0)
                && let Some((dir, repository, branch)) = fetch
                && let Err(e) = fetch_branch(&dir, &repository, &branch).await
            {
                tracing::warn!("the agent's branch is on the remote, but {e}");
            }
            let said: Vec<String> = said.into_iter().collect();
            // Its wrapper's last word on why it failed (the branch did not go out). It stays
            // in the stderr tail too: an agent already stopped keeps only that.
            let why = match (code, said.last()) {
                (Some(c), Some(why)) if c != 0 => Some(format!(
                    "on Kubernetes: the session's container exited {c}: {why}"
                )),
                _ => None,
            };
            ExitInfo {
                code,
                // A Pod Fracta deleted ended as a process it signalled would.
                signal: (deleted && code.is_none()).then_some(15),
                stderr_tail: match &end {
                    Err(e) => e.to_string(),
                    Ok(_) => said.join("\n"),
                },
                reason: why,
            }
        })
    }
}

/// How long a connection to a session Pod's IP may take before the control plane takes it
/// for unreachable (outside the cluster) and goes through the API server instead.
pub const POD_IP_TIMEOUT: Duration = Duration::from_secs(3);

/// Where the control plane talks to a ready session Pod: its IP and port, or (`port_forward`,
/// or `auto` when the IP does not answer, as from a laptop outside the cluster) a local port
/// forwarded through the API server.
pub async fn session_address(
    kube: &KubeBackend,
    ready: &crate::client::ReadyPod,
    access: fracta_config::SessionAccess,
) -> Result<(String, u16, Option<crate::client::PortForward>), crate::KubeError> {
    use fracta_config::SessionAccess;
    let direct = match access {
        SessionAccess::PodIp => true,
        SessionAccess::PortForward => false,
        // The Pod is Ready (its readiness probe passed), so its server listens: a connection
        // that fails or times out means its IP is not reachable from here.
        SessionAccess::Auto => matches!(
            tokio::time::timeout(
                POD_IP_TIMEOUT,
                tokio::net::TcpStream::connect((ready.ip.as_str(), ready.port))
            )
            .await,
            Ok(Ok(_))
        ),
    };
    if direct {
        return Ok((ready.ip.clone(), ready.port, None));
    }
    tracing::info!(
        "the session's Pod {} is not reachable at {}:{}: going through the API server's port-forward",
        ready.name,
        ready.ip,
        ready.port
    );
    let f = kube.forward_port(&ready.name, ready.port).await?;
    Ok(("127.0.0.1".into(), f.addr.port(), Some(f)))
}

/// How long a session's Pod may take to become ready.
pub const READY_TIMEOUT: Duration = Duration::from_secs(600);

/// Place a recorded stream agent as a Pod serving its session and wait until it is ready; the
/// runner then drives the session over the network (Codex: WebSocket with the capability
/// token; OpenCode: HTTP + SSE with the password) exactly as a local one.
pub async fn start_stream(
    ctx: Ctx<'_>,
    kube: &KubeBackend,
    agent: AgentRecord,
    request: &RequestContext,
    gateway: Option<&Gateway>,
    observer: &mut dyn Observer,
) -> Result<Started, RunError> {
    let secret = match fracta_core::secret::new_token() {
        Ok(s) => s,
        Err(e) => {
            return ctx
                .rec
                .fail_before_start(&agent, &e.to_string(), observer)
                .map(Started::Failed);
        }
    };
    ctx.rec.redactor.add(&secret);
    ctx.rec
        .redactor
        .add(&fracta_core::secret::sha256_hex(&secret));
    let Placed {
        agent,
        rendered,
        rt,
    } = match place(ctx, kube, agent, request, gateway, Some(&secret), observer).await? {
        Ok(p) => p,
        Err(failed) => return Ok(Started::Failed(failed)),
    };
    let adapter = adapter_for(rt.adapter);
    let container = adapter.binary();
    let fetch = fetch_target(ctx.cfg, &agent);
    let ready = match kube.wait_ready(&agent.id, container, READY_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => return abandon(ctx, kube, &rendered, &agent, &e, observer).await,
    };
    let access = ctx
        .cfg
        .config
        .runtime
        .kubernetes
        .as_ref()
        .and_then(|k| k.session_access)
        .unwrap_or_default();
    let (host, port, forward) = match session_address(kube, &ready, access).await {
        Ok(a) => a,
        Err(e) => {
            let why = format!(
                "cannot reach the session's Pod {} at {}:{} nor through the API server's port-forward: {e}",
                ready.name, ready.ip, ready.port
            );
            return abandon(ctx, kube, &rendered, &agent, &why, observer).await;
        }
    };
    let Some(endpoint) = adapter.session_endpoint(&host, port) else {
        let why = format!("{} serves no session over the network", adapter.binary());
        return abandon(ctx, kube, &rendered, &agent, &why, observer).await;
    };
    Ok(Started::Running {
        agent,
        detail: match &forward {
            None => format!("pod {} at {}:{}", ready.name, ready.ip, ready.port),
            Some(f) => format!(
                "pod {} port {} through the API server's port-forward at {}",
                ready.name, ready.port, f.addr
            ),
        },
        workload: Box::new(PodWorkload {
            log: Log::new(kube.clone(), ready.name.clone(), container.to_string()),
            kube: kube.clone(),
            rendered,
            pod: ready.name,
            container: container.to_string(),
            deleted: false,
            fetch,
            said: std::collections::VecDeque::new(),
            _forward: forward,
        }),
        connect: Some((endpoint, secret)),
    })
}
