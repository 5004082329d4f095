//! The calls Fracta makes to the Kubernetes API: apply an agent's objects (server-side apply
//! under the `fracta` field manager, the Secret and ConfigMap owned by the workload so that
//! deleting it cleans them up), watch its Pod, follow its log, stop it and clean up.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{AsyncBufReadExt, Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, WatchEvent, WatchParams};
use kube::{Client, Config};
use serde::Serialize;

use crate::render::{FIELD_MANAGER, LABEL_AGENT, Rendered, Workload};

/// How often a call the API answered 5xx or 429 is tried in all.
const ATTEMPTS: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(String),
    #[error(
        "Kubernetes refused to {action} {object}: forbidden ({message}); the control plane's ServiceAccount needs the Role in deployment/k8s/manifests/fracta-controlplane.yaml"
    )]
    Forbidden {
        action: &'static str,
        object: String,
        message: String,
    },
    #[error("Kubernetes could not {action} {object}: conflict ({message})")]
    Conflict {
        action: &'static str,
        object: String,
        message: String,
    },
    #[error("Kubernetes could not {action} {object}: not found ({message})")]
    NotFound {
        action: &'static str,
        object: String,
        message: String,
    },
    #[error("Kubernetes answered {code} to {action} {object}: {message}")]
    Api {
        code: u16,
        action: &'static str,
        object: String,
        message: String,
    },
    #[error("cannot {action} {object}: {message}")]
    Other {
        action: &'static str,
        object: String,
        message: String,
    },
    #[error("the per-agent Secret needs `{0}`, which was not materialized")]
    MissingSecret(String),
}

impl KubeError {
    fn from_kube(e: kube::Error, action: &'static str, object: &str) -> Self {
        let object = object.to_string();
        match e {
            kube::Error::Api(s) => {
                let message = if s.message.is_empty() {
                    s.reason.clone()
                } else {
                    s.message.clone()
                };
                match s.code {
                    403 => KubeError::Forbidden {
                        action,
                        object,
                        message,
                    },
                    404 => KubeError::NotFound {
                        action,
                        object,
                        message,
                    },
                    409 => KubeError::Conflict {
                        action,
                        object,
                        message,
                    },
                    code => KubeError::Api {
                        code,
                        action,
                        object,
                        message,
                    },
                }
            }
            other => {
                // The whole chain: "client error (Connect): tcp connect error: Connection refused".
                let mut message = other.to_string();
                let mut source = std::error::Error::source(&other);
                while let Some(s) = source {
                    let s_text = s.to_string();
                    if !message.contains(&s_text) {
                        message.push_str(": ");
                        message.push_str(&s_text);
                    }
                    source = s.source();
                }
                KubeError::Other {
                    action,
                    object,
                    message,
                }
            }
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, KubeError::Api { code, .. } if *code >= 500 || *code == 429)
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, KubeError::NotFound { .. })
    }
}

/// Where an agent's workload stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// Not running yet (scheduling, pulling the image, waiting for its Secret).
    Pending {
        detail: Option<String>,
    },
    /// Its agent container runs in this Pod.
    Running {
        pod: String,
    },
    /// Its agent container ran and ended (its log is there to read): with a non-zero exit
    /// or an OOM kill, `failure` says so.
    Exited {
        pod: String,
        failure: Option<String>,
    },
    Succeeded,
    Failed {
        reason: String,
    },
}

/// A stream agent's Pod, ready: where its session server listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyPod {
    pub name: String,
    pub ip: String,
    pub port: u16,
}

/// A port on this machine that reaches a Pod's port through the API server (the
/// `pods/portforward` subresource), for a control plane outside the cluster that cannot reach
/// Pod IPs. Each connection to it opens its own forward; dropping it stops listening.
pub struct PortForward {
    pub addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waiting reasons that will not resolve by waiting longer.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerError",
    "CreateContainerConfigError",
    "RunContainerError",
];

/// A Pod's phase, as far as the agent is concerned (its main container is `container`).
pub fn pod_phase(pod: &Pod, container: &str) -> Phase {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let Some(status) = &pod.status else {
        return Phase::Pending { detail: None };
    };
    let statuses = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for cs in statuses {
        let Some(state) = &cs.state else { continue };
        if let Some(w) = &state.waiting {
            let reason = w.reason.clone().unwrap_or_default();
            if FATAL_WAITING.contains(&reason.as_str()) {
                let what = if reason.contains("Image") {
                    format!("cannot pull image {}", cs.image)
                } else {
                    format!("cannot start container {}", cs.name)
                };
                return Phase::Failed {
                    reason: format!(
                        "{what}: {reason}{}",
                        w.message
                            .as_ref()
                            .map(|m| format!(" ({m})"))
                            .unwrap_or_default()
                    ),
                };
            }
        }
        if let Some(t) = &state.terminated
            && (cs.name == container || t.exit_code != 0)
        {
            let failure = if t.reason.as_deref() == Some("OOMKilled") {
                Some(format!(
                    "container {} was OOMKilled (exit {}): it needs more memory",
                    cs.name, t.exit_code
                ))
            } else if t.exit_code != 0 {
                Some(format!(
                    "container {} exited {}{}",
                    cs.name,
                    t.exit_code,
                    t.message
                        .as_ref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ))
            } else {
                None
            };
            if cs.name != container {
                // An init container failed: the agent never ran.
                return Phase::Failed {
                    reason: failure.unwrap_or_default(),
                };
            }
            return Phase::Exited { pod: name, failure };
        }
    }
    match status.phase.as_deref() {
        Some("Running") => Phase::Running { pod: name },
        Some("Succeeded") => Phase::Succeeded,
        Some("Failed") => Phase::Failed {
            reason: match (&status.reason, &status.message) {
                (Some(r), Some(m)) => format!("{r}: {m}"),
                (Some(r), None) => r.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => "the Pod failed".into(),
            },
        },
        _ => Phase::Pending {
            detail: status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.status == "False" && c.message.is_some())
                .and_then(|c| c.message.clone()),
        },
    }
}

/// The exit code of a Pod's container `container`, once it has ended.
/// Watch parameters whose watch the API server ends within `timeout` (at most 290 s, below
/// the client's read timeout).
fn watch_params(timeout: Duration) -> WatchParams {
    WatchParams::default().timeout(u32::try_from(timeout.as_secs()).unwrap_or(290).min(290))
}

/// An error event in a watch of `object`.
fn watch_error(e: kube::core::Status, object: String) -> KubeError {
    KubeError::Api {
        code: e.code,
        action: "watch",
        object,
        message: e.message,
    }
}

fn exit_code(pod: &Pod, container: &str) -> Option<i32> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?
        .state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// A Job's outcome from its conditions, if it has ended.
pub fn job_phase(job: &Job) -> Option<Phase> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    for c in conditions.iter().filter(|c| c.status == "True") {
        match c.type_.as_str() {
            "Complete" | "SuccessCriteriaMet" => return Some(Phase::Succeeded),
            "Failed" | "FailureTarget" => {
                let reason = match c.reason.as_deref() {
                    Some("DeadlineExceeded") => format!(
                        "deadline exceeded: the agent ran past its wall-clock budget ({} s)",
                        job.spec
                            .as_ref()
                            .and_then(|s| s.active_deadline_seconds)
                            .unwrap_or_default()
                    ),
                    Some(r) => format!(
                        "{r}{}",
                        c.message
                            .as_ref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    ),
                    None => "the Job failed".into(),
                };
                return Some(Phase::Failed { reason });
            }
            _ => {}
        }
    }
    None
}

/// The namespace agents go to, the same for `fracta render` and a spawn: `namespace` of
/// `runtime.kubernetes`, else the namespace of the kubeconfig's context (`context`, else the
/// current one), else the ServiceAccount's namespace inside a Pod, else `default`.
pub fn resolve_namespace(section: Option<&fracta_config::KubernetesSection>) -> String {
    if let Some(ns) = section.and_then(|s| s.namespace.clone()) {
        return ns;
    }
    if let Ok(kc) = kube::config::Kubeconfig::read() {
        let wanted = section
            .and_then(|s| s.context.clone())
            .or(kc.current_context.clone());
        if let Some(ctx) = kc
            .contexts
            .iter()
            .find(|c| Some(&c.name) == wanted.as_ref())
        {
            return ctx
                .context
                .as_ref()
                .and_then(|c| c.namespace.clone())
                .unwrap_or_else(|| "default".into());
        }
    }
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into())
}

/// The Kubernetes backend's client, bound to one namespace.
#[derive(Clone)]
pub struct KubeBackend {
    client: Client,
    namespace: String,
}

impl KubeBackend {
    /// In-cluster config in a Pod, else the kubeconfig (its `context`, if given); the namespace
    /// from `fracta.yaml`, else the context's.
    pub async fn connect(
        section: Option<&fracta_config::KubernetesSection>,
    ) -> Result<Self, KubeError> {
        let context = section.and_then(|s| s.context.clone());
        let config = match context {
            Some(c) => Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                context: Some(c.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| KubeError::Config(format!("kubeconfig context `{c}`: {e}")))?,
            None => Config::infer()
                .await
                .map_err(|e| KubeError::Config(e.to_string()))?,
        };
        let namespace = resolve_namespace(section);
        let client = Client::try_from(config).map_err(|e| KubeError::Config(e.to_string()))?;
        Ok(KubeBackend { client, namespace })
    }

    /// The same client, for the objects of another namespace (an agent's recorded one).
    #[must_use]
    pub fn in_namespace(self, namespace: impl Into<String>) -> Self {
        KubeBackend {
            client: self.client,
            namespace: namespace.into(),
        }
    }

    pub fn new(client: Client, namespace: impl Into<String>) -> Self {
        KubeBackend {
            client,
            namespace: namespace.into(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as kube::Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Server-side apply of one object, retried while the API answers 5xx or 429.
    async fn apply_one<K>(&self, obj: &K, name: &str, object: &str) -> Result<K, KubeError>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + Serialize
            + std::fmt::Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let api: Api<K> = self.api();
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        retry(|| async {
            api.patch(name, &pp, &Patch::Apply(obj))
                .await
                .map_err(|e| KubeError::from_kube(e, "apply", object))
        })
        .await
    }

    /// Create (or update) the agent's objects: its NetworkPolicy first (so that the Pod is
    /// never reachable from more than the control plane), then the workload, its Secret (with
    /// the values materialized for it) and ConfigMap, and the NetworkPolicy again, all three
    /// now owned by the workload (deleting it deletes them).
    pub async fn apply(
        &self,
        r: &Rendered,
        secret_values: &BTreeMap<String, String>,
    ) -> Result<(), KubeError> {
        let np_object = format!("NetworkPolicy {}", r.name);
        self.apply_one(&r.network_policy, &r.name, &np_object)
            .await?;
        // The claim is not owned by the workload: it outlives the run, for a resume.
        self.apply_one(
            &r.claim,
            &r.name,
            &format!("PersistentVolumeClaim {}", r.name),
        )
        .await?;
        let (uid, api_version, kind) = match &r.workload {
            Workload::Job(j) => {
                let out = self
                    .apply_one(j.as_ref(), &r.name, &format!("Job {}", r.name))
                    .await?;
                (out.metadata.uid, "batch/v1", "Job")
            }
            Workload::Pod(p) => {
                let out = self
                    .apply_one(p.as_ref(), &r.name, &format!("Pod {}", r.name))
                    .await?;
                (out.metadata.uid, "v1", "Pod")
            }
        };
        let owner = uid.map(|uid| {
            vec![OwnerReference {
                api_version: api_version.into(),
                kind: kind.into(),
                name: r.name.clone(),
                uid,
                block_owner_deletion: Some(true),
                controller: Some(false),
            }]
        });
        if let Some(secret) = &r.secret {
            let mut s: Secret = secret.clone();
            let mut data = BTreeMap::new();
            for key in r.secret_sources.keys() {
                let v = secret_values
                    .get(key)
                    .ok_or_else(|| KubeError::MissingSecret(key.clone()))?;
                data.insert(key.clone(), v.clone());
            }
            s.string_data = Some(data);
            s.metadata.owner_references.clone_from(&owner);
            self.apply_one(&s, &r.name, &format!("Secret {}", r.name))
                .await?;
        }
        let mut cm: ConfigMap = r.config_map.clone();
        cm.metadata.owner_references.clone_from(&owner);
        self.apply_one(&cm, &r.name, &format!("ConfigMap {}", r.name))
            .await?;
        if owner.is_some() {
            let mut np: NetworkPolicy = r.network_policy.clone();
            np.metadata.owner_references = owner;
            self.apply_one(&np, &r.name, &np_object).await?;
        }
        Ok(())
    }

    /// A watch of the agent's Pod (found by its label) that the API server ends within
    /// `timeout` (at most 290 s); `object` names it in errors.
    async fn watch_agent_pod(
        &self,
        agent_id: &str,
        timeout: Duration,
        object: &str,
    ) -> Result<impl Stream<Item = kube::Result<WatchEvent<Pod>>> + use<>, KubeError> {
        let wp = watch_params(timeout).labels(&format!("{LABEL_AGENT}={agent_id}"));
        self.watch_pods(&wp, "0", object).await
    }

    /// A watch of the Pods `wp` selects, from resource version `version`.
    async fn watch_pods(
        &self,
        wp: &WatchParams,
        version: &str,
        object: &str,
    ) -> Result<impl Stream<Item = kube::Result<WatchEvent<Pod>>> + use<>, KubeError> {
        let api: Api<Pod> = self.api();
        api.watch(wp, version)
            .await
            .map_err(|e| KubeError::from_kube(e, "watch", object))
    }

    /// Watch the agent's Pod until its agent container runs or it has ended; the phase, and
    /// the Pod's name once there is one.
    pub async fn wait_started(
        &self,
        agent_id: &str,
        container: &str,
        timeout: Duration,
    ) -> Result<(Phase, Option<String>), KubeError> {
        let object = format!("the Pod of agent {agent_id}");
        let stream = self.watch_agent_pod(agent_id, timeout, &object).await?;
        let mut stream = std::pin::pin!(stream);
        let mut last = Phase::Pending { detail: None };
        let mut pod = None;
        let until = tokio::time::Instant::now() + timeout;
        while let Ok(Some(ev)) = tokio::time::timeout_at(until, stream.next()).await {
            let ev = ev.map_err(|e| KubeError::from_kube(e, "watch", &object))?;
            match ev {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    pod.clone_from(&p.metadata.name);
                    last = pod_phase(&p, container);
                    if !matches!(last, Phase::Pending { .. }) {
                        return Ok((last, pod));
                    }
                }
                WatchEvent::Deleted(_) => {
                    return Ok((
                        Phase::Failed {
                            reason: "the Pod was deleted".into(),
                        },
                        pod,
                    ));
                }
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => return Err(watch_error(*e, object)),
            }
        }
        Ok((last, pod))
    }

    /// Watch a stream agent's Pod until it is Ready (its readiness probe passes): its name,
    /// IP and session port. A Pod that fails first is an error with the reason.
    pub async fn wait_ready(
        &self,
        agent_id: &str,
        container: &str,
        timeout: Duration,
    ) -> Result<ReadyPod, String> {
        let object = format!("the Pod of agent {agent_id}");
        let stream = self
            .watch_agent_pod(agent_id, timeout, &object)
            .await
            .map_err(|e| e.to_string())?;
        let mut stream = std::pin::pin!(stream);
        let until = tokio::time::Instant::now() + timeout;
        let mut last = None;
        while let Ok(Some(ev)) = tokio::time::timeout_at(until, stream.next()).await {
            let ev = ev.map_err(|e| KubeError::from_kube(e, "watch", &object).to_string())?;
            match ev {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    match pod_phase(&p, container) {
                        Phase::Failed { reason } => return Err(reason),
                        Phase::Exited { failure, .. } | Phase::Pending { detail: failure }
                            if failure.is_some() =>
                        {
                            last = failure;
                        }
                        Phase::Exited { .. } | Phase::Succeeded => {
                            return Err("the session's server ended before it was ready".into());
                        }
                        _ => {}
                    }
                    let ready = p
                        .status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|c| {
                            c.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        });
                    let ip = p.status.as_ref().and_then(|s| s.pod_ip.clone());
                    let port = p
                        .spec
                        .as_ref()
                        .and_then(|s| s.containers.iter().find(|c| c.name == container))
                        .and_then(|c| c.ports.as_ref())
                        .and_then(|ports| ports.first())
                        .and_then(|p| u16::try_from(p.container_port).ok());
                    if let (true, Some(ip), Some(port)) = (ready, ip, port) {
                        return Ok(ReadyPod {
                            name: p.metadata.name.clone().unwrap_or_default(),
                            ip,
                            port,
                        });
                    }
                }
                WatchEvent::Deleted(_) => return Err("the Pod was deleted".into()),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => return Err(e.message),
            }
        }
        Err(format!(
            "the session's Pod was not ready within {} s{}",
            timeout.as_secs(),
            last.map(|l| format!(": {l}")).unwrap_or_default()
        ))
    }

    /// Forward a local port to `port` of Pod `pod` through the API server. One forward is
    /// opened at once, so that a refusal (RBAC, a Pod gone) is an error here, not a session
    /// that hangs; its stream is the first connection's.
    pub async fn forward_port(&self, pod: &str, port: u16) -> Result<PortForward, KubeError> {
        let object = format!("Pod {pod} (port-forward to port {port})");
        let other = |message: String| KubeError::Other {
            action: "listen for",
            object: object.clone(),
            message,
        };
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| other(e.to_string()))?;
        let addr = listener.local_addr().map_err(|e| other(e.to_string()))?;
        let api: Api<Pod> = self.api();
        let first = api
            .portforward(pod, &[port])
            .await
            .map_err(|e| KubeError::from_kube(e, "open", &object))?;
        let pod = pod.to_string();
        let task = tokio::spawn(async move {
            let mut first = Some(first);
            while let Ok((mut conn, _)) = listener.accept().await {
                let forwarder = match first.take() {
                    Some(f) => Ok(f),
                    None => api.portforward(&pod, &[port]).await,
                };
                let pod = pod.clone();
                tokio::spawn(async move {
                    let mut forwarder = match forwarder {
                        Ok(f) => f,
                        Err(e) => {
                            tracing::warn!("port-forward to Pod {pod} port {port} failed: {e}");
                            return;
                        }
                    };
                    let Some(mut upstream) = forwarder.take_stream(port) else {
                        return;
                    };
                    if let Err(e) = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await {
                        tracing::debug!("port-forward to Pod {pod} port {port} ended: {e}");
                    }
                    forwarder.abort();
                });
            }
        });
        Ok(PortForward { addr, task })
    }

    /// How a Pod's agent container ended, waiting up to `timeout` for it to end (a deleted
    /// session's Pod stops its server and pushes the agent's branch first): its exit code, or
    /// `None` when the Pod is gone without saying (or did not end in time). A Pod being
    /// deleted is watched: the kubelet reports its containers' end, then removes it, and the
    /// watch's last event carries that end.
    pub async fn container_end(
        &self,
        name: &str,
        container: &str,
        timeout: Duration,
    ) -> Result<Option<i32>, KubeError> {
        let object = format!("Pod {name}");
        let api: Api<Pod> = self.api();
        let pod = match api.get(name).await {
            Ok(p) => p,
            Err(e) => {
                let e = KubeError::from_kube(e, "read", &object);
                return if e.is_not_found() { Ok(None) } else { Err(e) };
            }
        };
        if let Some(code) = exit_code(&pod, container) {
            return Ok(Some(code));
        }
        let version = pod.metadata.resource_version.unwrap_or_else(|| "0".into());
        let wp = watch_params(timeout).fields(&format!("metadata.name={name}"));
        let stream = self.watch_pods(&wp, &version, &object).await?;
        let mut stream = std::pin::pin!(stream);
        let until = tokio::time::Instant::now() + timeout;
        while let Ok(Some(ev)) = tokio::time::timeout_at(until, stream.next()).await {
            match ev.map_err(|e| KubeError::from_kube(e, "watch", &object))? {
                WatchEvent::Added(p) | WatchEvent::Modified(p) => {
                    if let Some(code) = exit_code(&p, container) {
                        return Ok(Some(code));
                    }
                }
                WatchEvent::Deleted(p) => return Ok(exit_code(&p, container)),
                WatchEvent::Bookmark(_) => {}
                WatchEvent::Error(e) => return Err(watch_error(*e, object)),
            }
        }
        Ok(None)
    }

    /// The agent container's log, line by line, from the start, following until it ends.
    pub async fn follow_log(
        &self,
        pod: &str,
        container: &str,
    ) -> Result<impl Stream<Item = Result<String, std::io::Error>> + use<>, KubeError> {
        let api: Api<Pod> = self.api();
        let lp = LogParams {
            container: Some(container.to_string()),
            follow: true,
            ..LogParams::default()
        };
        let reader = api
            .log_stream(pod, &lp)
            .await
            .map_err(|e| KubeError::from_kube(e, "follow the log of", &format!("Pod {pod}")))?;
        Ok(reader.lines().into_stream().map_err(std::io::Error::other))
    }

    /// The Job's outcome, once it has one.
    pub async fn job_outcome(&self, name: &str) -> Result<Option<Phase>, KubeError> {
        let api: Api<Job> = self.api();
        let job = retry(|| async {
            api.get(name)
                .await
                .map_err(|e| KubeError::from_kube(e, "read", &format!("Job {name}")))
        })
        .await?;
        Ok(job_phase(&job))
    }

    /// Stop the agent: delete its workload (its Pods, Secret and ConfigMap go with it). An
    /// object already gone is fine.
    pub async fn stop(&self, r: &Rendered) -> Result<(), KubeError> {
        let dp = DeleteParams::background();
        let res =
            match &r.workload {
                Workload::Job(_) => {
                    let api: Api<Job> = self.api();
                    retry(|| async {
                        api.delete(&r.name, &dp).await.map(|_| ()).map_err(|e| {
                            KubeError::from_kube(e, "delete", &format!("Job {}", r.name))
                        })
                    })
                    .await
                }
                Workload::Pod(_) => {
                    let api: Api<Pod> = self.api();
                    retry(|| async {
                        api.delete(&r.name, &dp).await.map(|_| ()).map_err(|e| {
                            KubeError::from_kube(e, "delete", &format!("Pod {}", r.name))
                        })
                    })
                    .await
                }
            };
        match res {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Stop an agent known only by its id (from another process): delete its Job or Pod,
    /// whichever it has.
    pub async fn stop_agent(&self, agent_id: &str) -> Result<(), KubeError> {
        let name = crate::render::object_name(agent_id);
        let dp = DeleteParams::background();
        let jobs: Api<Job> = self.api();
        let pods: Api<Pod> = self.api();
        for res in [
            jobs.delete(&name, &dp)
                .await
                .map(|_| ())
                .map_err(|e| KubeError::from_kube(e, "delete", &format!("Job {name}"))),
            pods.delete(&name, &dp)
                .await
                .map(|_| ())
                .map_err(|e| KubeError::from_kube(e, "delete", &format!("Pod {name}"))),
        ] {
            match res {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Delete the agent's claim: its workspace and runtime home (`fracta rm`). One already
    /// gone is fine.
    pub async fn delete_claim(&self, agent_id: &str) -> Result<(), KubeError> {
        let name = crate::render::object_name(agent_id);
        let api: Api<PersistentVolumeClaim> = self.api();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = KubeError::from_kube(e, "delete", &format!("PersistentVolumeClaim {name}"));
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    /// Delete a session's Pod (an already deleted one is fine).
    pub async fn stop_agent_pod(&self, pod: &str) -> Result<(), KubeError> {
        let api: Api<Pod> = self.api();
        match api.delete(pod, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = KubeError::from_kube(e, "delete", &format!("Pod {pod}"));
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }

    /// Remove everything of the agent: the workload, and its Secret and ConfigMap (owned by it,
    /// but deleted here too, so nothing waits on the garbage collector).
    pub async fn clean_up(&self, r: &Rendered) -> Result<(), KubeError> {
        self.stop(r).await?;
        let dp = DeleteParams::background();
        if r.secret.is_some() {
            let api: Api<Secret> = self.api();
            match api.delete(&r.name, &dp).await {
                Ok(_) => {}
                Err(e) => {
                    let e = KubeError::from_kube(e, "delete", &format!("Secret {}", r.name));
                    if !e.is_not_found() {
                        return Err(e);
                    }
                }
            }
        }
        let api: Api<ConfigMap> = self.api();
        match api.delete(&r.name, &dp).await {
            Ok(_) => {}
            Err(e) => {
                let e = KubeError::from_kube(e, "delete", &format!("ConfigMap {}", r.name));
                if !e.is_not_found() {
                    return Err(e);
                }
            }
        }
        let api: Api<NetworkPolicy> = self.api();
        match api.delete(&r.name, &dp).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = KubeError::from_kube(e, "delete", &format!("NetworkPolicy {}", r.name));
                if e.is_not_found() { Ok(()) } else { Err(e) }
            }
        }
    }
}

/// Try `f` up to `ATTEMPTS` times while it fails with a 5xx or 429.
async fn retry<T, F, Fut>(mut f: F) -> Result<T, KubeError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, KubeError>>,
{
    let mut attempt = 1;
    loop {
        match f().await {
            Err(e) if e.retryable() && attempt < ATTEMPTS => {
                tracing::warn!("{e}; trying again");
                tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt))).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}
