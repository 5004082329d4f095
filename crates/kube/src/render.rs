//! From an agent record to the Kubernetes objects that run it.

use std::collections::BTreeMap;

use fracta_config::{AuthOrigin, Binding, KubeEnvVar, LoadedConfig, RuntimeEntry};
use fracta_core::adapter::{AdapterError, ApiKeyHelper, LaunchContext, SessionKeys, adapter_for};
use fracta_core::credentials::{self, CredentialError};
use fracta_core::launch::{Check, LaunchSpec};
use fracta_state::{AgentRecord, Mode};
use indexmap::IndexMap;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapKeySelector, ConfigMapVolumeSource, Container, ContainerPort,
    EnvVar, EnvVarSource, ExecAction, LocalObjectReference, ObjectFieldSelector,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, Pod,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    Secret, SecretKeySelector, SecurityContext, TCPSocketAction, Toleration, Volume, VolumeMount,
    VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

/// The size of an agent's claim when `runtime.kubernetes.workspace_volume.size` is not set.
pub const DEFAULT_VOLUME_SIZE: &str = "10Gi";
/// Where the agent works in its container (on its claim).
pub const WORKSPACE: &str = "/workspace";
/// Fracta's private folder in the container (on its claim): the runtime's home and state.
pub const FRACTA_DIR: &str = "/fracta";
/// Where the init container finds the files the adapter writes (the agent's ConfigMap).
pub const FILES_DIR: &str = "/etc/fracta/files";
/// OpenCode's database folder in a Pod: the claim's `data` sub-folder (the seed shows an
/// `emptyDir`; on the claim, a resumed agent's conversation is still there).
pub const DATA_DIR: &str = "/data";
/// The agent image built from `deployment/docker/agent.Dockerfile` (all three CLIs).
pub const DEFAULT_IMAGE: &str = concat!("fracta/agent:", env!("CARGO_PKG_VERSION"));
/// Commands the default image has for a Claude `apiKeyHelper` resolver to call.
pub const DEFAULT_IMAGE_COMMANDS: &[&str] = &[
    "sh", "bash", "cat", "echo", "printf", "env", "node", "curl", "jq", "git",
];
/// The script git asks for the user name and token (`GIT_ASKPASS`), written by the clone
/// init container on Fracta's volume; it prints them from the env, so neither is in an
/// argument, a URL or a file.
pub const GIT_ASKPASS: &str = "/fracta/git-askpass";
/// The env var the token reaches git's `GIT_ASKPASS` script through.
pub const GIT_TOKEN_ENV: &str = "FRACTA_GIT_TOKEN";
/// The Secret key of the repository's token.
pub const GIT_TOKEN_KEY: &str = "git-token";
/// Server-side apply field manager.
pub const FIELD_MANAGER: &str = "fracta";

pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_AGENT: &str = "fracta.dev/agent-id";
pub const LABEL_TASK: &str = "fracta.dev/task";
pub const LABEL_RUNTIME: &str = "fracta.dev/runtime";
pub const LABEL_PARENT: &str = "fracta.dev/parent";
pub const LABEL_ROOT: &str = "fracta.dev/root";
/// The label of the control plane's Pods (deployment/k8s/manifests/fracta-controlplane.yaml),
/// the default peer of each agent's NetworkPolicy.
pub const CONTROL_PLANE_LABEL: (&str, &str) = ("app.kubernetes.io/name", "fracta-controlplane");

/// Stands in for the session secret while rendering; never applied.
const SESSION_PLACEHOLDER: &str = "session-secret";

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{0}")]
    Refused(String),
    #[error("runtime `{runtime}`: {message}")]
    Credentials { runtime: String, message: String },
    #[error(transparent)]
    Adapter(#[from] AdapterError),
    #[error(transparent)]
    Profile(#[from] CredentialError),
    #[error("cannot write the objects as YAML: {0}")]
    Yaml(String),
}

/// Where a value of the per-agent Secret comes from; the control plane fills it at spawn.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum SecretSource {
    /// Made by Fracta for this session.
    Session {
        what: String,
        /// The Secret holds the SHA-256 of the session's secret, not the secret.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        digest: bool,
    },
    /// The output of a `command_output` origin, run by the control plane.
    Command { profile: String, origin: String },
    /// An env var of the control plane (a `secret_env` origin without `secret_ref`, or a
    /// secret-looking profile `env` entry).
    Env { name: String },
    /// The agent's token for Fracta's MCP gateway (the control plane's).
    GatewayToken,
    /// A secret-looking literal in the config (a profile `env` entry with no `${VAR}`).
    Config { key: String },
    /// A header of the request that asked for the spawn (`http_header_token`).
    Header {
        profile: String,
        origin: String,
        header: String,
    },
}

impl SecretSource {
    /// What `fracta render` shows instead of the value.
    pub fn describe(&self) -> String {
        match self {
            SecretSource::Session { what, .. } => format!("<set at spawn: {what}>"),
            SecretSource::Command { profile, origin } => format!(
                "<set at spawn: output of command_output origin `{origin}` of profile `{profile}`>"
            ),
            SecretSource::Env { name } => {
                format!("<set at spawn: the control plane's env var {name}>")
            }
            SecretSource::Config { key } => format!("<set at spawn: {key} of fracta.yaml>"),
            SecretSource::GatewayToken => {
                "<set at spawn: the agent's token for Fracta's MCP gateway>".into()
            }
            SecretSource::Header {
                profile,
                origin,
                header,
            } => format!(
                "<set at spawn: header {header} of the spawn request (origin `{origin}` of profile `{profile}`)>"
            ),
        }
    }
}

/// What runs an agent: its workload, the files it needs and the secrets it references.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub namespace: String,
    /// The name of every object of this agent: `fracta-<agent id, lowercase>`.
    pub name: String,
    pub secret: Option<Secret>,
    pub secret_sources: BTreeMap<String, SecretSource>,
    pub config_map: ConfigMap,
    /// The agent's workspace and runtime home: kept after the run (not owned by the
    /// workload), so that a resume continues on it; deleted by `fracta rm`.
    pub claim: PersistentVolumeClaim,
    /// Lets only the control plane reach the agent Pod's ports (a batch Job's Pod serves
    /// none, so nothing may reach it).
    pub network_policy: NetworkPolicy,
    pub workload: Workload,
}

#[derive(Debug, Clone)]
pub enum Workload {
    /// A batch agent.
    Job(Box<Job>),
    /// A stream agent: its session's server.
    Pod(Box<Pod>),
}

impl Rendered {
    /// The objects in the order they are created, each with `apiVersion` and `kind`.
    pub fn objects(&self) -> Result<Vec<serde_json::Value>, RenderError> {
        let mut out = vec![typed(&self.claim, "v1", "PersistentVolumeClaim")?];
        if let Some(s) = &self.secret {
            out.push(typed(s, "v1", "Secret")?);
        }
        out.push(typed(&self.config_map, "v1", "ConfigMap")?);
        out.push(typed(
            &self.network_policy,
            "networking.k8s.io/v1",
            "NetworkPolicy",
        )?);
        out.push(match &self.workload {
            Workload::Job(j) => typed(j.as_ref(), "batch/v1", "Job")?,
            Workload::Pod(p) => typed(p.as_ref(), "v1", "Pod")?,
        });
        Ok(out)
    }

    /// The objects as YAML documents.
    pub fn to_yaml(&self) -> Result<String, RenderError> {
        let mut text = String::new();
        for o in self.objects()? {
            text.push_str("---\n");
            text.push_str(
                &serde_yaml_ng::to_string(&o).map_err(|e| RenderError::Yaml(e.to_string()))?,
            );
        }
        Ok(text)
    }

    /// The objects as a Kubernetes `List`.
    pub fn to_list(&self) -> Result<serde_json::Value, RenderError> {
        Ok(serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": self.objects()? }))
    }
}

/// k8s-openapi's types serialize without `apiVersion`/`kind` through serde_yaml; add them.
fn typed<T: Serialize>(
    v: &T,
    api_version: &str,
    kind: &str,
) -> Result<serde_json::Value, RenderError> {
    let mut json = serde_json::to_value(v).map_err(|e| RenderError::Yaml(e.to_string()))?;
    if let Some(m) = json.as_object_mut() {
        let mut out = serde_json::Map::new();
        out.insert("apiVersion".into(), api_version.into());
        out.insert("kind".into(), kind.into());
        for (k, v) in std::mem::take(m) {
            if k != "apiVersion" && k != "kind" {
                out.insert(k, v);
            }
        }
        *m = out;
    }
    Ok(json)
}

/// The agent's object name.
pub fn object_name(agent_id: &str) -> String {
    format!("fracta-{}", agent_id.to_ascii_lowercase())
}

/// A label value: at most 63 of `[A-Za-z0-9._-]`, starting and ending alphanumeric.
pub fn label_value(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The labels every object of the agent carries.
pub fn labels(agent: &AgentRecord) -> BTreeMap<String, String> {
    let mut l = BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), "fracta".to_string()),
        (LABEL_AGENT.to_string(), label_value(&agent.id)),
        (LABEL_TASK.to_string(), label_value(&agent.task)),
        (LABEL_RUNTIME.to_string(), label_value(&agent.runtime)),
        (LABEL_ROOT.to_string(), label_value(&agent.root_id)),
    ]);
    if let Some(p) = &agent.parent_id {
        l.insert(LABEL_PARENT.to_string(), label_value(p));
    }
    l
}

/// How one env var of the container gets its value.
#[derive(Debug, Clone)]
enum EnvValue {
    Value(String),
    /// A key of the agent's own Secret.
    AgentSecret(String),
    /// A key of the agent's ConfigMap.
    AgentConfig(String),
    From(Box<EnvVarSource>),
}

/// The Kubernetes side of a runtime's credential profile.
#[derive(Default)]
struct KubeAuth {
    env: Vec<(String, EnvValue)>,
    secrets: BTreeMap<String, SecretSource>,
    api_key_helper: Option<ApiKeyHelper>,
}

/// A Secret key for an env var: `OPENAI_API_KEY` → `openai-api-key`.
fn secret_key(env_name: &str) -> String {
    env_name.to_ascii_lowercase().replace('_', "-")
}

fn plan_auth(
    cfg: &LoadedConfig,
    runtime: &str,
    rt: &RuntimeEntry,
) -> Result<KubeAuth, RenderError> {
    let err = |message: String| RenderError::Credentials {
        runtime: runtime.to_string(),
        message,
    };
    let mut out = KubeAuth::default();
    let Some((pname, profile, binding)) = credentials::profile_binding(cfg, runtime, rt)? else {
        return Ok(out);
    };
    for (k, v) in &profile.env {
        if fracta_core::env::is_secret_env(k, v) {
            let refs = fracta_config::expand::references(v);
            let source = match refs.first() {
                Some(r) => SecretSource::Env {
                    name: r.name.to_string(),
                },
                None => SecretSource::Config {
                    key: format!("auth.credentials.profiles.{pname}.env.{k}"),
                },
            };
            let key = secret_key(k);
            out.secrets.insert(key.clone(), source);
            out.env.push((k.clone(), EnvValue::AgentSecret(key)));
        } else {
            let val = fracta_config::expand::expand_env(v)
                .map_err(|e| err(format!("auth.credentials.profiles.{pname}.env.{k}: {e}")))?;
            out.env.push((k.clone(), EnvValue::Value(val)));
        }
    }
    match binding {
        None => {}
        Some(Binding::ClaudeApiKeyHelper {
            runtime_auth_resolver,
        }) => {
            out.api_key_helper = Some(credentials::api_key_helper(
                runtime,
                pname,
                profile,
                runtime_auth_resolver,
            )?);
        }
        Some(Binding::BearerEnv {
            auth_origin,
            env_name,
        }) => {
            let origin =
                credentials::bearer_origin(runtime, pname, profile, auth_origin, env_name)?;
            let key = secret_key(env_name);
            let value = match origin {
                AuthOrigin::SecretEnv {
                    secret_ref: Some(r),
                    ..
                } => EnvValue::From(Box::new(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: r.name.clone(),
                        key: r.key.clone(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                })),
                AuthOrigin::SecretEnv { env_name: from, .. } => {
                    out.secrets
                        .insert(key.clone(), SecretSource::Env { name: from.clone() });
                    EnvValue::AgentSecret(key)
                }
                AuthOrigin::CommandOutput { .. } => {
                    out.secrets.insert(
                        key.clone(),
                        SecretSource::Command {
                            profile: pname.to_string(),
                            origin: auth_origin.clone(),
                        },
                    );
                    EnvValue::AgentSecret(key)
                }
                AuthOrigin::HttpHeaderToken { header, .. } => {
                    out.secrets.insert(
                        key.clone(),
                        SecretSource::Header {
                            profile: pname.to_string(),
                            origin: auth_origin.clone(),
                            header: header.clone().unwrap_or_else(|| "Authorization".into()),
                        },
                    );
                    EnvValue::AgentSecret(key)
                }
            };
            out.env.push((env_name.clone(), value));
        }
    }
    Ok(out)
}

fn kube_env_var(v: &KubeEnvVar) -> (String, EnvValue) {
    let value = match (&v.value, &v.value_from) {
        (_, Some(from)) => EnvValue::From(Box::new(EnvVarSource {
            secret_key_ref: from.secret_key_ref.as_ref().map(|r| SecretKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: r.optional,
            }),
            config_map_key_ref: from
                .config_map_key_ref
                .as_ref()
                .map(|r| ConfigMapKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: r.optional,
                }),
            field_ref: from.field_ref.as_ref().map(|f| ObjectFieldSelector {
                api_version: None,
                field_path: f.field_path.clone(),
            }),
            ..EnvVarSource::default()
        })),
        (Some(val), None) => EnvValue::Value(val.clone()),
        (None, None) => EnvValue::Value(String::new()),
    };
    (v.name.clone(), value)
}

/// Where the agent's clone comes from and what it is called there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub repository: String,
    pub base: String,
    pub branch: String,
}

/// The remote, base branch and branch of `agent`'s clone: `project.repository`, else the
/// local repository's `origin`; the agent's base as locally (`--base`, else the branch the
/// project has checked out, else `project.default_base_branch`, else `main`); its branch
/// named as locally.
pub fn checkout(cfg: &LoadedConfig, agent: &AgentRecord) -> Result<Checkout, RenderError> {
    let project = &cfg.config.project;
    let repository = match &project.repository {
        Some(r) => r.clone(),
        None => {
            let url = fracta_core::workspace::origin_url(&cfg.dir).ok_or_else(|| {
                RenderError::Refused(format!(
                    "an agent on Kubernetes clones the project's remote, and {} has no `origin` remote; set project.repository in {} to the https:// URL to clone",
                    cfg.dir.display(),
                    cfg.path.display()
                ))
            })?;
            fracta_config::check_repository_url(&url).map_err(|why| {
                RenderError::Refused(format!(
                    "the `origin` remote of {} {why}; set project.repository in {} to the https:// URL to clone",
                    cfg.dir.display(),
                    cfg.path.display()
                ))
            })?;
            url
        }
    };
    let base = agent
        .meta
        .base
        .clone()
        .or_else(|| fracta_core::workspace::current_branch(&cfg.dir))
        .or_else(|| project.default_base_branch.clone())
        .unwrap_or_else(|| "main".into());
    let branch = agent
        .branch
        .clone()
        .unwrap_or_else(|| fracta_core::workspace::branch_name(&agent.id, &agent.task));
    Ok(Checkout {
        repository,
        base,
        branch,
    })
}

/// The clone init container's script: the base branch into `/workspace`, then the agent's
/// branch from it. A workspace that already has a clone (a resumed agent's claim) is kept.
/// The token reaches git through `GIT_ASKPASS`, never in an argument or the URL.
fn clone_script() -> String {
    format!(
        r#"set -eu
printf '%s\n' '#!/bin/sh' 'case "$1" in' \
  '  Username*) printf "%s\n" "${{FRACTA_GIT_USERNAME:-x-access-token}}" ;;' \
  '  *) printf "%s\n" "${{{GIT_TOKEN_ENV}:-}}" ;;' 'esac' > {GIT_ASKPASS}
chmod 700 {GIT_ASKPASS}
if [ -d {WORKSPACE}/.git ]; then
  echo "fracta: {WORKSPACE} already has a clone; keeping it"
  exit 0
fi
if ! err=$(git clone --quiet --branch "$FRACTA_GIT_BASE" -- "$FRACTA_GIT_REPOSITORY" {WORKSPACE} 2>&1); then
  echo "fracta: cannot clone $FRACTA_GIT_REPOSITORY at branch $FRACTA_GIT_BASE (project.repository, project.repository_credential): $err" >&2
  exit 1
fi
git -C {WORKSPACE} checkout --quiet -b "$FRACTA_GIT_BRANCH"
echo "fracta: cloned $FRACTA_GIT_REPOSITORY at $FRACTA_GIT_BASE into {WORKSPACE} on branch $FRACTA_GIT_BRANCH"
"#
    )
}

/// How long a session's Pod has, once it is deleted, to stop its server, commit what the
/// agent left and push its branch (its `terminationGracePeriodSeconds`).
pub const SESSION_GRACE_SECS: i64 = 120;

/// The end of every agent container's command: commit what the agent left in `/workspace`
/// (as locally: Fracta's own files left out, nothing that holds a secret the container was
/// given, `fracta` as the author) and push its branch to the remote. Quiet when it works; a
/// failure says why on stderr (a line starting `fracta: `) and exits 1.
fn commit_and_push(exclude: &[String], secret_names: &[String]) -> String {
    let restore: String = exclude
        .iter()
        .map(|p| {
            format!(
                "  git restore --staged --quiet -- {} 2>/dev/null || true\n",
                sh_quote(p)
            )
        })
        .collect();
    let names = secret_names.join(" ");
    format!(
        r#"cd {WORKSPACE}
if [ -n "$(git status --porcelain)" ]; then
  git add -A -- .
{restore}  if ! git diff --cached --quiet; then
    leak=""
    for n in {names}; do
      eval "v=\${{$n:-}}"
      [ -n "$v" ] || continue
      f=$(git diff --cached --name-only --diff-filter=d -z | xargs -0 -r grep -lF -e "$v" -- 2>/dev/null || true)
      [ -z "$f" ] || leak="$leak $f"
    done
    if [ -n "$leak" ]; then
      git reset -q
      echo "fracta: not committing the agent's work: these files hold a secret it was given:$leak" >&2
      exit 1
    fi
    git -c user.name=fracta -c user.email=fracta@localhost commit --quiet --no-verify -m "$FRACTA_COMMIT_MESSAGE"
  fi
fi
if ! err=$(git push --quiet origin "HEAD:refs/heads/$FRACTA_GIT_BRANCH" 2>&1); then
  echo "fracta: cannot push branch $FRACTA_GIT_BRANCH to $FRACTA_GIT_REPOSITORY (project.repository_credential): $(printf '%s' "$err" | tr '\n' ' ')" >&2
  exit 1
fi
"#
    )
}

/// The batch container's command around the agent's: run it (without the git token in its
/// env), and when it succeeds commit what it left and push its branch (`commit_and_push`).
fn branch_out_script(exclude: &[String], secret_names: &[String]) -> String {
    format!(
        r#"env -u {GIT_TOKEN_ENV} "$@"
rc=$?
[ "$rc" -eq 0 ] || exit "$rc"
{}"#,
        commit_and_push(exclude, secret_names)
    )
}

/// A session container's command around the agent's server: serve (without the git token in
/// its env) until the server ends or the Pod is deleted (`SIGTERM`, which stops the server),
/// then commit what the agent left and push its branch (`commit_and_push`), as a batch agent
/// does at its end. It ends 0 when the branch went out and the server ended as asked (or on
/// its own with 0); else with the server's code, or 1 with why on stderr.
fn session_script(exclude: &[String], secret_names: &[String]) -> String {
    format!(
        r#"env -u {GIT_TOKEN_ENV} "$@" &
pid=$!
asked=0
trap 'asked=1; kill -TERM "$pid" 2>/dev/null || true' TERM INT HUP
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break
done
trap '' TERM INT HUP
[ "$asked" -eq 0 ] || rc=0
{}exit "$rc"
"#,
        commit_and_push(exclude, secret_names)
    )
}

/// How the repository's token reaches the container: the origin that
/// `project.repository_credential` names, turned into a Secret reference.
fn git_token(
    cfg: &LoadedConfig,
    secrets: &mut BTreeMap<String, SecretSource>,
) -> Result<Option<EnvValue>, RenderError> {
    let Some(c) = &cfg.config.project.repository_credential else {
        return Ok(None);
    };
    let refused = |m: String| RenderError::Refused(format!("project.repository_credential: {m}"));
    let profile = cfg
        .config
        .auth
        .credentials
        .profiles
        .get(&c.profile)
        .ok_or_else(|| {
            refused(format!(
                "no profile `{}` under auth.credentials.profiles",
                c.profile
            ))
        })?;
    let origin = profile.auth_origins.get(&c.origin).ok_or_else(|| {
        refused(format!(
            "no origin `{}` in profile `{}`",
            c.origin, c.profile
        ))
    })?;
    Ok(Some(origin_value(
        &c.profile,
        &c.origin,
        origin,
        GIT_TOKEN_KEY,
        secrets,
    )))
}

/// An origin's value in a container: a `secretKeyRef` to the cluster's Secret it names, or a
/// key of the agent's Secret that the control plane fills at spawn.
fn origin_value(
    pname: &str,
    oname: &str,
    origin: &AuthOrigin,
    key: &str,
    secrets: &mut BTreeMap<String, SecretSource>,
) -> EnvValue {
    let source = match origin {
        AuthOrigin::SecretEnv {
            secret_ref: Some(r),
            ..
        } => {
            return EnvValue::From(Box::new(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: None,
                }),
                ..EnvVarSource::default()
            }));
        }
        AuthOrigin::SecretEnv { env_name, .. } => SecretSource::Env {
            name: env_name.clone(),
        },
        AuthOrigin::CommandOutput { .. } => SecretSource::Command {
            profile: pname.to_string(),
            origin: oname.to_string(),
        },
        AuthOrigin::HttpHeaderToken { header, .. } => SecretSource::Header {
            profile: pname.to_string(),
            origin: oname.to_string(),
            header: header.clone().unwrap_or_else(|| "Authorization".into()),
        },
    };
    secrets.insert(key.to_string(), source);
    EnvValue::AgentSecret(key.to_string())
}

/// Render the objects that run `agent` (as `Runner::prepare` made it) in `namespace`.
pub fn render(
    cfg: &LoadedConfig,
    agent: &AgentRecord,
    namespace: &str,
) -> Result<Rendered, RenderError> {
    render_with(cfg, agent, namespace, None)
}

/// `render`, with Fracta's MCP gateway registered in the runtime's config (as server
/// `fracta`; the agent's token reaches the container from its Secret, as `FRACTA_AGENT_TOKEN`).
pub fn render_with(
    cfg: &LoadedConfig,
    agent: &AgentRecord,
    namespace: &str,
    gateway: Option<&fracta_core::launch::Gateway>,
) -> Result<Rendered, RenderError> {
    render_turn(cfg, agent, namespace, gateway, agent.mode == Mode::Stream)
}

/// `render_with`, as a session's Pod (`session`) or as a Job running one turn. A stream
/// agent's resumed turn is a Job, as locally a resumed session runs one turn of the batch CLI
/// (with the runtime's resume token, on the same claim).
pub fn render_turn(
    cfg: &LoadedConfig,
    agent: &AgentRecord,
    namespace: &str,
    gateway: Option<&fracta_core::launch::Gateway>,
    session: bool,
) -> Result<Rendered, RenderError> {
    let rt = cfg
        .config
        .agents
        .agent_runtimes
        .get(&agent.runtime)
        .ok_or_else(|| RenderError::Refused(format!("unknown runtime `{}`", agent.runtime)))?;
    let stream = session;
    let adapter = fracta_core::adapter::adapter_for(rt.adapter);
    if adapter.capabilities().stdio_session {
        return Err(RenderError::Refused(format!(
            "runtime `{}` cannot run on Kubernetes: {}",
            agent.runtime,
            fracta_core::adapter::acp::NOT_ON_KUBERNETES
        )));
    }
    if stream && !adapter.capabilities().stream_on_kubernetes {
        return Err(RenderError::Refused(format!(
            "runtime `{}`: {}",
            agent.runtime,
            fracta_core::resolve::stream_local_only(adapter)
        )));
    }
    let image = rt
        .kubernetes
        .as_ref()
        .and_then(|k| k.image.clone())
        .or_else(|| {
            cfg.config
                .runtime
                .kubernetes
                .as_ref()
                .and_then(|k| k.image.clone())
        })
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string());
    let auth = plan_auth(cfg, &agent.runtime, rt)?;
    if let Some(h) = &auth.api_key_helper {
        let program = h.command.split_whitespace().next().unwrap_or("");
        let base = program.rsplit('/').next().unwrap_or(program);
        if image == DEFAULT_IMAGE && !DEFAULT_IMAGE_COMMANDS.contains(&base) {
            return Err(RenderError::Credentials {
                runtime: agent.runtime.clone(),
                message: format!(
                    "the apiKeyHelper resolver runs `{program}` inside the agent's container, and the default image {DEFAULT_IMAGE} does not have it (it has: {}); build an image FROM it that does and set agents.agent_runtimes.{}.kubernetes.image",
                    DEFAULT_IMAGE_COMMANDS.join(", "),
                    agent.runtime
                ),
            });
        }
    }

    let adapter = adapter_for(rt.adapter);
    let keys = match adapter.capabilities().pod_port {
        Some(port) if stream => Some(SessionKeys {
            host: "0.0.0.0".into(),
            port,
            secret: SESSION_PLACEHOLDER.into(),
        }),
        None if stream => {
            return Err(RenderError::Refused(format!(
                "runtime `{}`: {}",
                agent.runtime,
                fracta_core::resolve::stream_local_only(adapter)
            )));
        }
        _ => None,
    };
    let literal_env: BTreeMap<String, String> = auth
        .env
        .iter()
        .filter_map(|(k, v)| match v {
            EnvValue::Value(s) => Some((k.clone(), s.clone())),
            _ => None,
        })
        .collect();
    let workspace = std::path::PathBuf::from(WORKSPACE);
    let home = std::path::PathBuf::from(FRACTA_DIR).join("home");
    let state = std::path::PathBuf::from(FRACTA_DIR).join("state");
    let project = &cfg.config.project;
    let ctx = LaunchContext {
        agent_id: &agent.id,
        prompt: &agent.prompt,
        model: agent.model.as_deref(),
        resume_token: agent.resume_token.as_deref(),
        workspace: &workspace,
        runtime_home: &home,
        runtime_state: &state,
        runtime: rt,
        project,
        env: &literal_env,
        api_key_helper: auth.api_key_helper.as_ref(),
        gateway,
        session: keys.as_ref(),
    };
    let spec: LaunchSpec = if stream {
        adapter.stream_launch(&ctx)?
    } else {
        adapter.batch_launch(&ctx)?
    };

    let name = object_name(&agent.id);
    let labels = labels(agent);
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };

    // The files the adapter writes, copied into place by an init container.
    let mut data = BTreeMap::new();
    let mut script = vec!["set -eu".to_string()];
    for (i, f) in spec.files.iter().enumerate() {
        let key = format!("file-{i}");
        data.insert(key.clone(), f.contents.clone());
        let path = f.path.display().to_string();
        let dir = f
            .path
            .parent()
            .map_or_else(|| "/".to_string(), |d| d.display().to_string());
        script.push(format!(
            "mkdir -p {} && cp {FILES_DIR}/{key} {}",
            sh_quote(&dir),
            sh_quote(&path)
        ));
    }

    // The container's env: the adapter's, the profile's, the runtime's `kubernetes.env`, then
    // the binding (later wins, as locally).
    let mut secrets = auth.secrets.clone();
    let checkout = checkout(cfg, agent)?;
    let git_token = git_token(cfg, &mut secrets)?;
    let mut env: IndexMap<String, EnvValue> = IndexMap::new();
    for (k, v) in &spec.env {
        let value = if let Some(se) = spec.secret_env.iter().find(|s| &s.name == k) {
            let key = secret_key(k);
            secrets.insert(
                key.clone(),
                SecretSource::Session {
                    what: se.what.clone(),
                    digest: se.digest,
                },
            );
            EnvValue::AgentSecret(key)
        } else if let Some(c) = spec.config_env.iter().find(|c| &c.name == k) {
            data.insert(c.file.clone(), v.clone());
            EnvValue::AgentConfig(c.file.clone())
        } else if let Some(st) = spec.state_env.iter().find(|s| &s.name == k) {
            EnvValue::Value(format!("{DATA_DIR}/{}", st.file))
        } else {
            EnvValue::Value(v.clone())
        };
        env.insert(k.clone(), value);
    }
    // The runtime's state files live on the claim's `/data` in every workload, also where the
    // adapter names none for this launch (OpenCode's batch run names its database only to
    // resume a local session's): a resumed turn finds the conversation there.
    for st in &spec.state_env {
        env.entry(st.name.clone())
            .or_insert_with(|| EnvValue::Value(format!("{DATA_DIR}/{}", st.file)));
    }
    let (binding, profile_env): (Vec<_>, Vec<_>) = auth.env.iter().cloned().partition(|(k, _)| {
        matches!(
            rt.auth_binding.as_ref().or_else(|| rt
                .auth_profile
                .as_ref()
                .and_then(|p| cfg.config.auth.credentials.profiles.get(p))
                .and_then(|p| p.default_binding.as_ref())),
            Some(Binding::BearerEnv { env_name, .. }) if env_name == k
        )
    });
    for (k, v) in profile_env {
        env.insert(k, v);
    }
    if let Some(k) = &rt.kubernetes {
        for v in k.env.to_list() {
            let (k, v) = kube_env_var(&v);
            env.insert(k, v);
        }
    }
    for (k, v) in binding {
        env.insert(k, v);
    }
    if gateway.is_some() {
        let key = secret_key(fracta_core::env::AGENT_TOKEN_ENV);
        secrets.insert(key.clone(), SecretSource::GatewayToken);
        env.insert(
            fracta_core::env::AGENT_TOKEN_ENV.to_string(),
            EnvValue::AgentSecret(key),
        );
    }
    for r in &spec.env_remove {
        env.shift_remove(r);
    }
    // The same checks as a local launch, on the env this container will really get: what
    // the adapter forbids (CLAUDE_CODE_SIMPLE), the profile's require_env and forbid_env. A
    // value from a Secret counts as set.
    let names: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| match v {
            EnvValue::Value(s) => (k.clone(), s.clone()),
            _ => (k.clone(), "(from a Secret or ConfigMap)".to_string()),
        })
        .collect();
    let assertions = fracta_core::credentials::assertions(cfg, &agent.runtime, rt)?;
    fracta_core::credentials::check_env(&assertions, &agent.runtime, adapter, &names)?;
    // The names whose value is a secret: a commit of the agent's work must not hold one.
    let mut secret_names: Vec<String> = env
        .iter()
        .filter(|(_, v)| match v {
            EnvValue::AgentSecret(_) => true,
            EnvValue::From(f) => f.secret_key_ref.is_some(),
            _ => false,
        })
        .map(|(k, _)| k.clone())
        .collect();
    let mut env: Vec<EnvVar> = env.into_iter().map(|(k, v)| env_var(&name, k, v)).collect();
    // The clone: its env names the remote, the branches and (from a Secret) the token.
    let mut clone_env = vec![
        (
            "FRACTA_GIT_REPOSITORY".to_string(),
            EnvValue::Value(checkout.repository.clone()),
        ),
        (
            "FRACTA_GIT_BASE".to_string(),
            EnvValue::Value(checkout.base.clone()),
        ),
        (
            "FRACTA_GIT_BRANCH".to_string(),
            EnvValue::Value(checkout.branch.clone()),
        ),
        (
            "GIT_ASKPASS".to_string(),
            EnvValue::Value(GIT_ASKPASS.to_string()),
        ),
        (
            "GIT_TERMINAL_PROMPT".to_string(),
            EnvValue::Value("0".to_string()),
        ),
    ];
    if let Some(c) = &cfg.config.project.repository_credential
        && let Some(u) = &c.username
    {
        clone_env.push((
            "FRACTA_GIT_USERNAME".to_string(),
            EnvValue::Value(u.clone()),
        ));
    }
    if let Some(t) = git_token {
        clone_env.push((GIT_TOKEN_ENV.to_string(), t));
    }
    let clone_env: Vec<EnvVar> = clone_env
        .into_iter()
        .map(|(k, v)| env_var(&name, k, v))
        .collect();
    // An agent's branch goes out at its end (a Job's) or its session's: its container has
    // what git needs to push (the agent's own process runs without the token).
    env.extend(clone_env.iter().cloned());
    env.push(EnvVar {
        name: "FRACTA_COMMIT_MESSAGE".into(),
        value: Some(format!("fracta: {} ({})", agent.task, agent.id)),
        value_from: None,
    });
    secret_names.push(GIT_TOKEN_ENV.to_string());

    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    };
    // One claim holds them all: `/workspace`, `/fracta` (and `/data`) are its sub-folders.
    let on_claim = |sub: &str, path: &str| VolumeMount {
        name: "agent".into(),
        mount_path: path.into(),
        sub_path: Some(sub.into()),
        ..VolumeMount::default()
    };
    let mut volumes = vec![
        Volume {
            name: "agent".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: name.clone(),
                read_only: None,
            }),
            ..Volume::default()
        },
        Volume {
            name: "files".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.clone(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        on_claim("workspace", WORKSPACE),
        on_claim("fracta", FRACTA_DIR),
    ];
    let exclude: Vec<String> = spec
        .files
        .iter()
        .filter(|f| f.in_workspace)
        .filter_map(|f| {
            f.path
                .strip_prefix(WORKSPACE)
                .ok()
                .map(|p| p.display().to_string())
        })
        .collect();
    let mut container = Container {
        name: adapter.binary().into(),
        image: Some(image.clone()),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            if stream {
                session_script(&exclude, &secret_names)
            } else {
                branch_out_script(&exclude, &secret_names)
            },
            if stream {
                "fracta-session".into()
            } else {
                "fracta-agent".into()
            },
            spec.program.clone(),
        ]),
        args: Some(spec.args.clone()),
        working_dir: Some(WORKSPACE.into()),
        ..Container::default()
    };
    if let Some(served) = &spec.served {
        container.ports = Some(vec![ContainerPort {
            container_port: i32::from(served.port),
            name: Some("session".into()),
            ..ContainerPort::default()
        }]);
        container.readiness_probe = served.readiness.as_ref().map(probe);
        container.liveness_probe = served.liveness.as_ref().map(probe);
    }
    // A `kubernetes.env` value that points into `/data` (the seed's `OPENCODE_DB=/data/...`)
    // gets the folder in every workload, a batch Job's as a session's Pod. It is on the claim
    // (the seed shows an `emptyDir`), so that OpenCode's database, and with it the agent's
    // conversation, is still there when the agent is resumed.
    let env_uses_data = rt.kubernetes.as_ref().is_some_and(|k| {
        k.env.to_list().iter().any(|v| {
            v.value
                .as_deref()
                .is_some_and(|p| p == DATA_DIR || p.starts_with(&format!("{DATA_DIR}/")))
        })
    });
    if !spec.state_env.is_empty() || env_uses_data {
        mounts.push(on_claim("data", DATA_DIR));
    }
    container.env = Some(env);
    container.volume_mounts = Some(mounts.clone());
    let files = !spec.files.is_empty();
    if !files {
        volumes.retain(|v| v.name != "files");
    }
    let clone = Container {
        name: "clone".into(),
        image: Some(image.clone()),
        command: Some(vec!["sh".into(), "-c".into(), clone_script()]),
        env: Some(clone_env),
        // Its stderr (why the clone failed) becomes the Pod's termination message, which
        // the agent's error quotes.
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        volume_mounts: Some(vec![
            on_claim("workspace", WORKSPACE),
            on_claim("fracta", FRACTA_DIR),
        ]),
        ..Container::default()
    };
    let mut init: Vec<Container> = std::iter::once(clone)
        .chain(files.then(|| {
            Container {
                name: "files".into(),
                image: Some(image),
                command: Some(vec!["sh".into(), "-c".into(), script.join("\n")]),
                volume_mounts: Some(
                    mounts
                        .into_iter()
                        .chain([mount("files", FILES_DIR)])
                        .collect(),
                ),
                ..Container::default()
            }
        }))
        .collect();
    let settings = fracta_config::PodSettings::resolve(
        cfg.config.runtime.kubernetes.as_ref(),
        rt.kubernetes.as_ref(),
    );
    let resources = settings.resources.as_ref().map(resource_requirements);
    let container_security = settings
        .security_context
        .as_ref()
        .and_then(container_security_context);
    for c in std::iter::once(&mut container).chain(init.iter_mut()) {
        c.resources.clone_from(&resources);
        c.security_context.clone_from(&container_security);
    }
    let ports: Vec<i32> = container
        .ports
        .iter()
        .flatten()
        .map(|p| p.container_port)
        .collect();
    let wall_clock = fracta_core::resolve::wall_clock_secs(cfg, agent);
    let deadline = i64::try_from(wall_clock).unwrap_or(i64::MAX);
    let pod_spec = PodSpec {
        restart_policy: Some("Never".into()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        init_containers: Some(init),
        containers: vec![container],
        volumes: Some(volumes),
        // A session's Pod lives while the session is used: the control plane closes it (and
        // deletes the Pod) after its idle timeout; the wall-clock budget is each turn's, kept
        // by the session loop. A Job's one turn is bounded here too.
        active_deadline_seconds: None,
        // A session's Pod, deleted, stops its server and pushes the agent's branch first.
        termination_grace_period_seconds: stream.then_some(SESSION_GRACE_SECS),
        node_selector: settings
            .node_selector
            .as_ref()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        tolerations: settings
            .tolerations
            .as_ref()
            .map(|ts| ts.iter().map(toleration).collect()),
        image_pull_secrets: settings.image_pull_secrets.as_ref().map(|s| {
            s.iter()
                .map(|name| LocalObjectReference { name: name.clone() })
                .collect()
        }),
        service_account_name: settings.service_account.clone(),
        security_context: settings
            .security_context
            .as_ref()
            .and_then(pod_security_context),
        runtime_class_name: settings.runtime_class_name.clone(),
        ..PodSpec::default()
    };
    let control_plane: BTreeMap<String, String> = match cfg
        .config
        .runtime
        .kubernetes
        .as_ref()
        .map(|k| &k.control_plane_labels)
    {
        Some(l) if !l.is_empty() => l.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        _ => BTreeMap::from([(
            CONTROL_PLANE_LABEL.0.to_string(),
            CONTROL_PLANE_LABEL.1.to_string(),
        )]),
    };
    let network_policy = NetworkPolicy {
        metadata: meta(&name),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    LABEL_AGENT.to_string(),
                    label_value(&agent.id),
                )])),
                match_expressions: None,
            }),
            policy_types: Some(vec!["Ingress".into()]),
            // No rule: no ingress at all. A session's port: from the control plane only.
            ingress: Some(if ports.is_empty() {
                Vec::new()
            } else {
                vec![NetworkPolicyIngressRule {
                    from: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(LabelSelector {
                            match_labels: Some(control_plane),
                            match_expressions: None,
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(
                        ports
                            .iter()
                            .map(|p| NetworkPolicyPort {
                                port: Some(IntOrString::Int(*p)),
                                protocol: Some("TCP".into()),
                                end_port: None,
                            })
                            .collect(),
                    ),
                }]
            }),
            egress: None,
        }),
    };
    let workload = if stream {
        Workload::Pod(Box::new(Pod {
            metadata: meta(&name),
            spec: Some(pod_spec),
            status: None,
        }))
    } else {
        Workload::Job(Box::new(Job {
            metadata: meta(&name),
            spec: Some(JobSpec {
                // Fracta decides about retries.
                backoff_limit: Some(0),
                active_deadline_seconds: Some(deadline),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels.clone()),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(pod_spec),
                },
                ..JobSpec::default()
            }),
            status: None,
        }))
    };
    let secret = (!secrets.is_empty()).then(|| Secret {
        metadata: meta(&name),
        type_: Some("Opaque".into()),
        string_data: Some(
            secrets
                .iter()
                .map(|(k, s)| (k.clone(), s.describe()))
                .collect(),
        ),
        ..Secret::default()
    });
    let volume = cfg
        .config
        .runtime
        .kubernetes
        .as_ref()
        .and_then(|k| k.workspace_volume.clone())
        .unwrap_or_default();
    let claim = PersistentVolumeClaim {
        metadata: meta(&name),
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: volume.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(volume.size.unwrap_or_else(|| DEFAULT_VOLUME_SIZE.into())),
                )])),
                limits: None,
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    };
    Ok(Rendered {
        namespace: namespace.to_string(),
        name: name.clone(),
        claim,
        secret,
        secret_sources: secrets,
        config_map: ConfigMap {
            metadata: meta(&name),
            data: Some(data),
            ..ConfigMap::default()
        },
        network_policy,
        workload,
    })
}

/// A container's env var, its value from the agent's Secret or ConfigMap by key.
fn env_var(agent_object: &str, name: String, v: EnvValue) -> EnvVar {
    match v {
        EnvValue::Value(value) => EnvVar {
            name,
            value: Some(value),
            value_from: None,
        },
        EnvValue::AgentSecret(key) => EnvVar {
            name,
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: agent_object.to_string(),
                    key,
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        },
        EnvValue::AgentConfig(key) => EnvVar {
            name,
            value: None,
            value_from: Some(EnvVarSource {
                config_map_key_ref: Some(ConfigMapKeySelector {
                    name: agent_object.to_string(),
                    key,
                    optional: None,
                }),
                ..EnvVarSource::default()
            }),
        },
        EnvValue::From(from) => EnvVar {
            name,
            value: None,
            value_from: Some(*from),
        },
    }
}

fn resource_requirements(r: &fracta_config::Resources) -> ResourceRequirements {
    let map = |m: &IndexMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect()
        })
    };
    ResourceRequirements {
        requests: map(&r.requests),
        limits: map(&r.limits),
        claims: None,
    }
}

fn toleration(t: &fracta_config::Toleration) -> Toleration {
    Toleration {
        key: t.key.clone(),
        operator: t.operator.map(|o| o.as_str().to_string()),
        value: t.value.clone(),
        effect: t.effect.map(|e| e.as_str().to_string()),
        toleration_seconds: t.toleration_seconds,
    }
}

/// The Pod-wide part of `security_context`; `None` when it sets none of it.
fn pod_security_context(s: &fracta_config::SecurityContext) -> Option<PodSecurityContext> {
    let out = PodSecurityContext {
        run_as_user: s.run_as_user,
        run_as_group: s.run_as_group,
        run_as_non_root: s.run_as_non_root,
        fs_group: s.fs_group,
        seccomp_profile: s.seccomp_profile.map(|p| SeccompProfile {
            type_: p.as_str().to_string(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    };
    (out != PodSecurityContext::default()).then_some(out)
}

/// The per-container part of `security_context`; `None` when it sets none of it.
fn container_security_context(s: &fracta_config::SecurityContext) -> Option<SecurityContext> {
    let out = SecurityContext {
        allow_privilege_escalation: s.allow_privilege_escalation,
        read_only_root_filesystem: s.read_only_root_filesystem,
        capabilities: (!s.drop_capabilities.is_empty()).then(|| Capabilities {
            add: None,
            drop: Some(s.drop_capabilities.clone()),
        }),
        ..SecurityContext::default()
    };
    (out != SecurityContext::default()).then_some(out)
}

/// A Kubernetes probe for what the adapter says to check.
fn probe(p: &fracta_core::launch::Probe) -> Probe {
    let mut out = Probe {
        initial_delay_seconds: Some(p.initial_delay_secs),
        period_seconds: Some(p.period_secs),
        timeout_seconds: p.timeout_secs,
        ..Probe::default()
    };
    match &p.check {
        Check::Tcp { port } => {
            out.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(i32::from(*port)),
                host: None,
            });
        }
        Check::Exec { command } => {
            out.exec = Some(ExecAction {
                command: Some(command.clone()),
            });
        }
    }
    out
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
