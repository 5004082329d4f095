//! The typed shape of `fracta.yaml`: plain serde types, one per section of the Runtime
//! Configuration Guide. Behaviour (loading, validation, expansion) lives elsewhere.

use std::fmt;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// A whole `fracta.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub logging: Logging,
    #[serde(default)]
    pub runtime: RuntimeSection,
    #[serde(default)]
    pub agents: Agents,
    /// Legacy top-level runtime map; superseded by `agents.agent_runtimes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtimes: Option<IndexMap<String, RuntimeEntry>>,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub project: Project,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Log file; relative to the config file's folder. Default `.fracta/fracta.log`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<LogLevel>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Trace,
    Debug,
    #[default]
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// `runtime:` — where agents run and where state is kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeSection {
    #[serde(default)]
    pub backend: Backend,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubernetesSection>,
    #[serde(default)]
    pub state: StateSection,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Local,
    Kubernetes,
}

/// `runtime.kubernetes:` — cluster-wide settings for the Kubernetes backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSection {
    /// Default agent image; must contain the CLIs of every runtime it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Namespace for agent objects; default: the kubeconfig context's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// kubeconfig context; default: the current context (or in-cluster config).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Labels of the control plane's Pods: the only Pods each agent's NetworkPolicy lets reach
    /// its ports. Default: `app.kubernetes.io/name: fracta-controlplane` (the deployment file's).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub control_plane_labels: IndexMap<String, String>,
    /// How the control plane reaches a stream session's Pod: `auto` (its IP when that answers,
    /// else through the API server's port-forward), `pod_ip` or `port_forward`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_access: Option<SessionAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<IndexMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
    /// The PersistentVolumeClaim each agent gets for its workspace and runtime home.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_volume: Option<WorkspaceVolume>,
}

/// `runtime.kubernetes.workspace_volume`: each agent's claim, kept after its run (so that it
/// can be resumed) and deleted by `fracta rm`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceVolume {
    /// The StorageClass [default: the cluster's default].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// Its size, a Kubernetes quantity [default: `10Gi`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// How the control plane reaches a stream session's Pod.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionAccess {
    /// The Pod's IP when a connection to it succeeds, else the API server's port-forward.
    #[default]
    Auto,
    PodIp,
    PortForward,
}

/// The settings of an agent's Pod, from `runtime.kubernetes` with a runtime's own
/// `kubernetes` laid over it (a key set on the runtime replaces the cluster-wide one whole).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSettings {
    pub resources: Option<Resources>,
    pub node_selector: Option<IndexMap<String, String>>,
    pub tolerations: Option<Vec<Toleration>>,
    pub image_pull_secrets: Option<Vec<String>>,
    pub service_account: Option<String>,
    pub security_context: Option<SecurityContext>,
    pub runtime_class_name: Option<String>,
}

impl PodSettings {
    /// The settings for `runtime`'s agents.
    pub fn resolve(
        cluster: Option<&KubernetesSection>,
        runtime: Option<&RuntimeKubernetes>,
    ) -> Self {
        let c = cluster.cloned().unwrap_or_default();
        let r = runtime.cloned().unwrap_or_default();
        PodSettings {
            resources: r.resources.or(c.resources),
            node_selector: r.node_selector.or(c.node_selector),
            tolerations: r.tolerations.or(c.tolerations),
            image_pull_secrets: r.image_pull_secrets.or(c.image_pull_secrets),
            service_account: r.service_account.or(c.service_account),
            security_context: r.security_context.or(c.security_context),
            runtime_class_name: r.runtime_class_name.or(c.runtime_class_name),
        }
    }
}

/// Compute resources of the agent's containers: `requests` and `limits`, each a map of a
/// resource name (`cpu`, `memory`, `ephemeral-storage`, `nvidia.com/gpu`) to a Kubernetes
/// quantity (`500m`, `2Gi`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub requests: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub limits: IndexMap<String, String>,
}

/// A toleration of the agent's Pod (Kubernetes' own fields, in snake_case).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<TolerationOperator>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toleration_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    Exists,
    Equal,
}

impl TolerationOperator {
    pub fn as_str(self) -> &'static str {
        match self {
            TolerationOperator::Exists => "Exists",
            TolerationOperator::Equal => "Equal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    pub fn as_str(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }
}

/// Who the agent runs as and what it may do. The first five are the Pod's (they hold for
/// the init container too); the rest are set on each container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityContext {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fs_group: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seccomp_profile: Option<SeccompProfile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_privilege_escalation: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// Linux capabilities dropped from each container (`[ALL]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drop_capabilities: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SeccompProfile {
    RuntimeDefault,
    Unconfined,
}

impl SeccompProfile {
    pub fn as_str(self) -> &'static str {
        match self {
            SeccompProfile::RuntimeDefault => "RuntimeDefault",
            SeccompProfile::Unconfined => "Unconfined",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    #[serde(default)]
    pub driver: StateDriver,
    #[serde(default)]
    pub sqlite: SqliteSection,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateDriver {
    #[default]
    Sqlite,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSection {
    /// Database file; relative to the config file's folder. Default `.fracta/state.db`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `agents:` — the runtimes and their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agents {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_runtime: Option<String>,
    #[serde(default)]
    pub default_mode: Mode,
    #[serde(default)]
    pub agent_runtimes: IndexMap<String, RuntimeEntry>,
    /// Limits that keep an agent tree from running away.
    #[serde(default, skip_serializing_if = "Budgets::is_empty")]
    pub budgets: Budgets,
    /// A stream session with no turn for this long is closed (recorded, resumable later).
    /// Default 900 (15 minutes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_idle_timeout_secs: Option<u64>,
}

/// `agents.budgets`: limits for agent trees. A spawn may ask for less, never for more than its
/// parent has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    /// How deep a tree may grow (a root agent is depth 0). Default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// How many children one agent may spawn. Default 8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_children: Option<u32>,
    /// How many agents may run at once; the rest queue. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Wall-clock limit per agent run, in seconds. Default 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clock_secs: Option<u64>,
}

impl Budgets {
    pub const DEFAULT_MAX_DEPTH: u32 = 3;
    pub const DEFAULT_MAX_CHILDREN: u32 = 8;
    pub const DEFAULT_MAX_RUNNING: u32 = 4;
    pub const DEFAULT_WALL_CLOCK_SECS: u64 = 3600;

    pub fn is_empty(&self) -> bool {
        *self == Budgets::default()
    }

    pub fn max_depth(&self) -> u32 {
        self.max_depth.unwrap_or(Self::DEFAULT_MAX_DEPTH)
    }

    pub fn max_children(&self) -> u32 {
        self.max_children.unwrap_or(Self::DEFAULT_MAX_CHILDREN)
    }

    pub fn max_running(&self) -> u32 {
        self.max_running.unwrap_or(Self::DEFAULT_MAX_RUNNING)
    }

    pub fn wall_clock_secs(&self) -> u64 {
        self.wall_clock_secs
            .unwrap_or(Self::DEFAULT_WALL_CLOCK_SECS)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Batch,
    Stream,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::Stream => "stream",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which agent CLI a runtime drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdapterKind {
    Claude,
    Codex,
    Opencode,
    /// Gemini CLI, over the Agent Client Protocol (`gemini --acp`).
    Gemini,
    /// Any agent that speaks the Agent Client Protocol on its stdio; the runtime's
    /// `command` and `args` start it (e.g. `opencode` with `args: [acp]`).
    Acp,
}

impl AdapterKind {
    pub const ALL: [AdapterKind; 5] = [
        AdapterKind::Claude,
        AdapterKind::Codex,
        AdapterKind::Opencode,
        AdapterKind::Gemini,
        AdapterKind::Acp,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdapterKind::Claude => "claude",
            AdapterKind::Codex => "codex",
            AdapterKind::Opencode => "opencode",
            AdapterKind::Gemini => "gemini",
            AdapterKind::Acp => "acp",
        }
    }
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The three model tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Heavy,
    Medium,
    Light,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Heavy, Tier::Medium, Tier::Light];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Heavy => "heavy",
            Tier::Medium => "medium",
            Tier::Light => "light",
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelTiers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heavy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub medium: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub light: Option<String>,
}

impl ModelTiers {
    pub fn get(&self, tier: Tier) -> Option<&str> {
        match tier {
            Tier::Heavy => self.heavy.as_deref(),
            Tier::Medium => self.medium.as_deref(),
            Tier::Light => self.light.as_deref(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.heavy.is_none() && self.medium.is_none() && self.light.is_none()
    }
}

/// One entry under `agents.agent_runtimes`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEntry {
    pub adapter: AdapterKind,
    /// Default model (overridden by tier or per spawn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "ModelTiers::is_empty")]
    pub model_tiers: ModelTiers,
    /// Environment injected into local agent processes; values may use `${VAR}`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_profile: Option<String>,
    /// Overrides the profile's `default_binding` for this runtime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_binding: Option<Binding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<RuntimeKubernetes>,
    /// The CLI to run; default: the adapter's binary (PATH, then the project's node_modules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Extra CLI arguments, appended to the adapter's own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Merged into the runtime's own config file that Fracta writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub native_config: Option<serde_json::Value>,
    /// OpenCode step limit per send (the seed's hard-coded 20, made configurable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
}

/// `kubernetes:` on a runtime entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeKubernetes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "KubeEnv::is_empty")]
    pub env: KubeEnv,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<IndexMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<Toleration>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secrets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_context: Option<SecurityContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class_name: Option<String>,
}

/// Kubernetes env for a runtime. The seed shows both a `NAME: value` map and a list of
/// `{name, value}` / `{name, valueFrom}` items; both load, and keep their form.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum KubeEnv {
    Map(IndexMap<String, String>),
    List(Vec<KubeEnvVar>),
}

impl Default for KubeEnv {
    fn default() -> Self {
        KubeEnv::Map(IndexMap::new())
    }
}

impl KubeEnv {
    pub fn is_empty(&self) -> bool {
        match self {
            KubeEnv::Map(m) => m.is_empty(),
            KubeEnv::List(l) => l.is_empty(),
        }
    }

    /// Both forms as a list of variables, in order.
    pub fn to_list(&self) -> Vec<KubeEnvVar> {
        match self {
            KubeEnv::Map(m) => m
                .iter()
                .map(|(k, v)| KubeEnvVar {
                    name: k.clone(),
                    value: Some(v.clone()),
                    value_from: None,
                })
                .collect(),
            KubeEnv::List(l) => l.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for KubeEnv {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = KubeEnv;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of NAME: value, or a list of {name, value} / {name, valueFrom}")
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<KubeEnv, E> {
                Ok(KubeEnv::default())
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<KubeEnv, A::Error> {
                IndexMap::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(KubeEnv::Map)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<KubeEnv, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(KubeEnv::List)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeEnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, rename = "valueFrom", skip_serializing_if = "Option::is_none")]
    pub value_from: Option<KubeEnvSource>,
}

/// A Kubernetes `valueFrom`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubeEnvSource {
    #[serde(
        default,
        rename = "secretKeyRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub secret_key_ref: Option<KeyRef>,
    #[serde(
        default,
        rename = "configMapKeyRef",
        skip_serializing_if = "Option::is_none"
    )]
    pub config_map_key_ref: Option<KeyRef>,
    #[serde(default, rename = "fieldRef", skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRef {
    pub name: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRef {
    #[serde(rename = "fieldPath")]
    pub field_path: String,
}

/// `auth:`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default)]
    pub credentials: Credentials,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    #[serde(default)]
    pub profiles: IndexMap<String, Profile>,
}

/// `auth.credentials.profiles.<name>`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Secrets Fracta materializes before spawn.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub auth_origins: IndexMap<String, AuthOrigin>,
    /// Commands the agent itself runs to get a token.
    #[serde(default)]
    pub runtime_auth_resolvers: IndexMap<String, Resolver>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub env: IndexMap<String, String>,
    #[serde(default, skip_serializing_if = "Assertions::is_empty")]
    pub assertions: Assertions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_binding: Option<Binding>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Assertions {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require_env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forbid_env: Vec<String>,
}

impl Assertions {
    pub fn is_empty(&self) -> bool {
        self.require_env.is_empty() && self.forbid_env.is_empty()
    }
}

/// Where a materialized secret may be used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Materializes at spawn time in every topology.
    #[default]
    Any,
    /// Only reachable through a runtime helper projection; never populates env by itself.
    AgentRuntime,
}

/// `auth_origins.<name>`: a secret Fracta materializes before spawn.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthOrigin {
    /// Run a command (argv, never a shell string); its trimmed stdout is the secret.
    CommandOutput {
        scope: Scope,
        command: Vec<String>,
        /// How long the command may run; default 30 s.
        #[serde(skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
    },
    /// Locally: Fracta's own env var `env_name`; on Kubernetes: a `secretKeyRef`.
    SecretEnv {
        scope: Scope,
        env_name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        secret_ref: Option<SecretRef>,
    },
    /// A token taken from an HTTP header of the request that asked the control plane to spawn.
    HttpHeaderToken {
        scope: Scope,
        /// Header name; default `Authorization` (a `Bearer ` prefix is stripped).
        #[serde(skip_serializing_if = "Option::is_none")]
        header: Option<String>,
    },
}

impl AuthOrigin {
    pub fn scope(&self) -> Scope {
        match self {
            AuthOrigin::CommandOutput { scope, .. }
            | AuthOrigin::SecretEnv { scope, .. }
            | AuthOrigin::HttpHeaderToken { scope, .. } => *scope,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            AuthOrigin::CommandOutput { .. } => "command_output",
            AuthOrigin::SecretEnv { .. } => "secret_env",
            AuthOrigin::HttpHeaderToken { .. } => "http_header_token",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum OriginType {
    CommandOutput,
    SecretEnv,
    HttpHeaderToken,
}

/// The flat form an origin is read in, so that every key keeps its own location.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOrigin {
    #[serde(rename = "type")]
    kind: OriginType,
    #[serde(default)]
    scope: Scope,
    #[serde(default, deserialize_with = "opt_argv")]
    command: Option<Vec<String>>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    env_name: Option<String>,
    #[serde(default)]
    secret_ref: Option<SecretRef>,
    #[serde(default)]
    header: Option<String>,
}

/// A conversion error about one key below the current one: `key_error("env_name", "...")`.
/// The loader moves the diagnostic onto that key (see `diagnostic::split_sub_key`).
pub(crate) fn key_error(key: &str, msg: impl fmt::Display) -> String {
    format!("`{key}`: {msg}")
}

fn not_for(key: &str, present: bool, kind: &str) -> Result<(), String> {
    if present {
        return Err(key_error(key, format!("is not a field of `type: {kind}`")));
    }
    Ok(())
}

impl TryFrom<RawOrigin> for AuthOrigin {
    type Error = String;
    fn try_from(r: RawOrigin) -> Result<Self, String> {
        match r.kind {
            OriginType::CommandOutput => {
                not_for("env_name", r.env_name.is_some(), "command_output")?;
                not_for("secret_ref", r.secret_ref.is_some(), "command_output")?;
                not_for("header", r.header.is_some(), "command_output")?;
                let command = r.command.ok_or_else(|| {
                    "missing field `command` (required for `type: command_output`)".to_string()
                })?;
                Ok(AuthOrigin::CommandOutput {
                    scope: r.scope,
                    command,
                    timeout_ms: r.timeout_ms,
                })
            }
            OriginType::SecretEnv => {
                not_for("command", r.command.is_some(), "secret_env")?;
                not_for("timeout_ms", r.timeout_ms.is_some(), "secret_env")?;
                not_for("header", r.header.is_some(), "secret_env")?;
                let env_name = r.env_name.ok_or_else(|| {
                    "missing field `env_name` (required for `type: secret_env`)".to_string()
                })?;
                Ok(AuthOrigin::SecretEnv {
                    scope: r.scope,
                    env_name,
                    secret_ref: r.secret_ref,
                })
            }
            OriginType::HttpHeaderToken => {
                not_for("command", r.command.is_some(), "http_header_token")?;
                not_for("timeout_ms", r.timeout_ms.is_some(), "http_header_token")?;
                not_for("env_name", r.env_name.is_some(), "http_header_token")?;
                not_for("secret_ref", r.secret_ref.is_some(), "http_header_token")?;
                Ok(AuthOrigin::HttpHeaderToken {
                    scope: r.scope,
                    header: r.header,
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for AuthOrigin {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawOrigin::deserialize(d)?
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    /// Kubernetes Secret name.
    pub name: String,
    /// Key within the Secret.
    pub key: String,
}

/// `runtime_auth_resolvers.<name>`: a command that runs inside the agent to get a token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resolver {
    #[serde(rename = "type")]
    pub kind: ResolverType,
    /// A shell command line, run by the agent CLI (e.g. Claude's apiKeyHelper).
    pub command: String,
    /// How long a token stays fresh before the helper runs again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolverType {
    Command,
}

/// How a secret reaches the agent CLI.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Binding {
    /// Project a runtime resolver into Claude's `settings.json` as `apiKeyHelper`.
    ClaudeApiKeyHelper { runtime_auth_resolver: String },
    /// Put an origin's value into env var `env_name` of the agent process.
    BearerEnv {
        auth_origin: String,
        env_name: String,
    },
}

impl Binding {
    pub fn type_name(&self) -> &'static str {
        match self {
            Binding::ClaudeApiKeyHelper { .. } => "claude_api_key_helper",
            Binding::BearerEnv { .. } => "bearer_env",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum BindingType {
    ClaudeApiKeyHelper,
    BearerEnv,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBinding {
    #[serde(rename = "type")]
    kind: BindingType,
    #[serde(default)]
    runtime_auth_resolver: Option<String>,
    #[serde(default)]
    auth_origin: Option<String>,
    #[serde(default)]
    env_name: Option<String>,
}

impl TryFrom<RawBinding> for Binding {
    type Error = String;
    fn try_from(r: RawBinding) -> Result<Self, String> {
        match r.kind {
            BindingType::ClaudeApiKeyHelper => {
                not_for(
                    "auth_origin",
                    r.auth_origin.is_some(),
                    "claude_api_key_helper",
                )?;
                not_for("env_name", r.env_name.is_some(), "claude_api_key_helper")?;
                let runtime_auth_resolver = r.runtime_auth_resolver.ok_or_else(|| {
                    "missing field `runtime_auth_resolver` (required for `type: claude_api_key_helper`)".to_string()
                })?;
                Ok(Binding::ClaudeApiKeyHelper {
                    runtime_auth_resolver,
                })
            }
            BindingType::BearerEnv => {
                not_for(
                    "runtime_auth_resolver",
                    r.runtime_auth_resolver.is_some(),
                    "bearer_env",
                )?;
                let auth_origin = r.auth_origin.ok_or_else(|| {
                    "missing field `auth_origin` (required for `type: bearer_env`)".to_string()
                })?;
                let env_name = r.env_name.ok_or_else(|| {
                    "missing field `env_name` (required for `type: bearer_env`)".to_string()
                })?;
                Ok(Binding::BearerEnv {
                    auth_origin,
                    env_name,
                })
            }
        }
    }
}

impl<'de> Deserialize<'de> for Binding {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawBinding::deserialize(d)?
            .try_into()
            .map_err(serde::de::Error::custom)
    }
}

/// `project:`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Branch agent worktrees start from; default `main`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_base_branch: Option<String>,
    /// Tools agents may use without asking (Claude permission rules).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_tools: Vec<String>,
    /// Let agents use their CLI's own subagents (Claude Code's Task/Agent tool, Codex's
    /// multi-agent tools, OpenCode's `task`, Gemini CLI's subagents). Default false: a
    /// native subagent runs outside Fracta's budgets and records, so children are spawned
    /// through Fracta's MCP gateway instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_native_subagents: bool,
    /// Commands run in each new worktree before its agent starts (`npm ci`), in order, each
    /// with `sh -c` and a timeout; the first that fails fails the agent before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup: Vec<SetupCommand>,
    /// Folder for agent worktrees (each in `<folder>/<agent id>`); relative to the config
    /// file's folder. Default: `$XDG_STATE_HOME/fracta/worktrees/<project>-<digest>`
    /// (`~/.local/state/…`), outside the repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worktrees_dir: Option<String>,
    /// The remote an agent on Kubernetes clones into its workspace and pushes its branch to
    /// [default: the local repository's `origin`]. An `https://` or `http://` URL without
    /// credentials in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The secret git uses for `repository`: an origin of a credential profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_credential: Option<RepositoryCredential>,
}

/// The timeout of a setup command that names none.
pub const DEFAULT_SETUP_TIMEOUT_SECS: u64 = 600;

/// One of `project.setup`: a shell command line, written as a string (`- npm ci`) or with its
/// own timeout (`- { run: npm ci, timeout_secs: 900 }`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SetupCommand {
    /// Run with `sh -c` in the agent's worktree.
    pub run: String,
    /// Seconds before it is killed and the agent fails [default: 600].
    pub timeout_secs: u64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetupCommand {
    run: String,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

impl<'de> Deserialize<'de> for SetupCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = SetupCommand;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a command line (`npm ci`) or `{ run: ..., timeout_secs: ... }`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(SetupCommand {
                    run: v.to_string(),
                    timeout_secs: DEFAULT_SETUP_TIMEOUT_SECS,
                })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                let raw = RawSetupCommand::deserialize(
                    serde::de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(SetupCommand {
                    run: raw.run,
                    timeout_secs: raw.timeout_secs.unwrap_or(DEFAULT_SETUP_TIMEOUT_SECS),
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// Why `url` cannot be `project.repository`: not http(s), or a secret written into it.
pub fn check_repository_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(
            "is not an https:// or http:// URL (agents on Kubernetes clone over HTTP with a token)",
        )?;
    let authority = rest.split('/').next().unwrap_or(rest);
    if authority.contains('@') {
        return Err("has credentials in it; a URL lands in manifests and logs, so give the token with project.repository_credential".into());
    }
    if authority.is_empty() {
        return Err("has no host".into());
    }
    Ok(())
}

/// `project.repository_credential`: `auth.credentials.profiles.<profile>.auth_origins.<origin>`
/// gives the token; git is handed it through `GIT_ASKPASS`, never in a URL or an argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryCredential {
    pub profile: String,
    pub origin: String,
    /// The user name git sends with the token [default: `x-access-token`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
}

/// The message the seed gives for `command_output.command` written as a string.
pub const ARGV_NOT_STRING: &str = "`command` MUST be a YAML array, not a string (e.g. command: [\"bedrock-auth-helper\", \"--flag\"])";

/// Deserialize an argv that must be a YAML sequence of strings.
fn argv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a YAML array of strings")
        }
        fn visit_str<E: serde::de::Error>(self, _v: &str) -> Result<Self::Value, E> {
            Err(E::custom(ARGV_NOT_STRING))
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            let v = Vec::<String>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
            if v.is_empty() {
                return Err(serde::de::Error::custom(
                    "`command` must name at least the program to run",
                ));
            }
            Ok(v)
        }
    }
    d.deserialize_any(V)
}

fn opt_argv<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    argv(d).map(Some)
}
