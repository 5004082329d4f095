//! Credential profiles: materialize auth origins before spawn, project runtime resolvers,
//! and apply bindings. Every secret value is registered with the redactor the moment it exists.

use std::collections::BTreeMap;
use std::time::Duration;

use fracta_config::{AuthOrigin, Binding, LoadedConfig, Profile, RuntimeEntry, Scope};

use crate::launch::ApiKeyHelper;
use crate::redact::Redactor;

pub const DEFAULT_ORIGIN_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("auth origin `{origin}` of profile `{profile}`: {message}")]
    Origin {
        profile: String,
        origin: String,
        message: String,
    },
    #[error("runtime `{runtime}`: {message}")]
    Binding { runtime: String, message: String },
}

/// What a runtime's credential profile contributes to one launch.
#[derive(Debug, Default)]
pub struct ResolvedAuth {
    pub profile: Option<String>,
    /// The profile's `env` (expanded).
    pub profile_env: BTreeMap<String, String>,
    /// Env set by a `bearer_env` binding.
    pub binding_env: BTreeMap<String, String>,
    pub api_key_helper: Option<ApiKeyHelper>,
    pub require_env: Vec<String>,
    pub forbid_env: Vec<String>,
}

/// Where request-scoped secrets come from (the control plane passes the spawn request's
/// headers; a CLI spawn has none).
#[derive(Debug, Default, Clone)]
pub struct RequestContext {
    pub headers: BTreeMap<String, String>,
}

/// A profile's name, its entry and the binding in force.
pub type ProfileBinding<'a> = (&'a str, &'a Profile, Option<&'a Binding>);

/// A runtime's credential profile (its name and entry) and the binding in force: the
/// runtime's `auth_binding`, else the profile's `default_binding`. `None` without a profile.
pub fn profile_binding<'a>(
    cfg: &'a LoadedConfig,
    runtime_name: &str,
    rt: &'a RuntimeEntry,
) -> Result<Option<ProfileBinding<'a>>, CredentialError> {
    let Some(pname) = &rt.auth_profile else {
        if rt.auth_binding.is_some() {
            return Err(CredentialError::Binding {
                runtime: runtime_name.into(),
                message: "auth_binding needs an auth_profile".into(),
            });
        }
        return Ok(None);
    };
    let Some(profile) = cfg.config.auth.credentials.profiles.get(pname) else {
        return Err(CredentialError::Binding {
            runtime: runtime_name.into(),
            message: format!("auth_profile `{pname}` does not exist"),
        });
    };
    let binding = rt
        .auth_binding
        .as_ref()
        .or(profile.default_binding.as_ref());
    Ok(Some((pname.as_str(), profile, binding)))
}

/// The resolver a `claude_api_key_helper` binding names, as Claude's `apiKeyHelper`.
pub fn api_key_helper(
    runtime_name: &str,
    pname: &str,
    profile: &Profile,
    resolver: &str,
) -> Result<ApiKeyHelper, CredentialError> {
    let r = profile
        .runtime_auth_resolvers
        .get(resolver)
        .ok_or_else(|| CredentialError::Binding {
            runtime: runtime_name.into(),
            message: format!("resolver `{resolver}` is not in profile `{pname}`"),
        })?;
    Ok(ApiKeyHelper {
        command: r.command.clone(),
        ttl_ms: r.ttl_ms,
    })
}

/// The origin a `bearer_env` binding names; it must populate env vars (`scope: any`).
pub fn bearer_origin<'a>(
    runtime_name: &str,
    pname: &str,
    profile: &'a Profile,
    origin: &str,
    env_name: &str,
) -> Result<&'a AuthOrigin, CredentialError> {
    let o = profile
        .auth_origins
        .get(origin)
        .ok_or_else(|| CredentialError::Binding {
            runtime: runtime_name.into(),
            message: format!("origin `{origin}` is not in profile `{pname}`"),
        })?;
    if o.scope() == Scope::AgentRuntime {
        return Err(CredentialError::Origin {
            profile: pname.into(),
            origin: origin.into(),
            message: format!(
                "`scope: agent_runtime` does not populate env vars by itself, so it cannot fill {env_name}; use `scope: any`"
            ),
        });
    }
    Ok(o)
}

pub async fn resolve(
    cfg: &LoadedConfig,
    runtime_name: &str,
    rt: &RuntimeEntry,
    request: &RequestContext,
    redactor: &Redactor,
) -> Result<ResolvedAuth, CredentialError> {
    let mut out = ResolvedAuth::default();
    let Some((pname, profile, binding)) = profile_binding(cfg, runtime_name, rt)? else {
        return Ok(out);
    };
    out.profile = Some(pname.to_string());
    for (k, v) in &profile.env {
        let val = fracta_config::expand::expand_env(v).map_err(|e| CredentialError::Binding {
            runtime: runtime_name.into(),
            message: format!("auth.credentials.profiles.{pname}.env.{k}: {e}"),
        })?;
        if crate::env::is_secret_env(k, v) {
            redactor.add(&val);
        }
        out.profile_env.insert(k.clone(), val);
    }
    out.require_env = profile.assertions.require_env.clone();
    out.forbid_env = profile.assertions.forbid_env.clone();

    match binding {
        None => {}
        Some(Binding::ClaudeApiKeyHelper {
            runtime_auth_resolver,
        }) => {
            out.api_key_helper = Some(api_key_helper(
                runtime_name,
                pname,
                profile,
                runtime_auth_resolver,
            )?);
        }
        Some(Binding::BearerEnv {
            auth_origin,
            env_name,
        }) => {
            let origin = bearer_origin(runtime_name, pname, profile, auth_origin, env_name)?;
            let value = materialize(pname, auth_origin, origin, request, redactor).await?;
            out.binding_env.insert(env_name.clone(), value);
        }
    }
    Ok(out)
}

/// Produce an origin's secret value now.
pub async fn materialize(
    profile: &str,
    name: &str,
    origin: &AuthOrigin,
    request: &RequestContext,
    redactor: &Redactor,
) -> Result<String, CredentialError> {
    let err = |message: String| CredentialError::Origin {
        profile: profile.into(),
        origin: name.into(),
        message,
    };
    let value = match origin {
        AuthOrigin::SecretEnv { env_name, .. } => match std::env::var(env_name) {
            Ok(v) if !v.is_empty() => v,
            _ => {
                return Err(err(format!(
                    "reads ${env_name} from Fracta's environment, and it is not set; export it before spawning"
                )));
            }
        },
        AuthOrigin::CommandOutput {
            command,
            timeout_ms,
            ..
        } => {
            let timeout = timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_ORIGIN_TIMEOUT);
            run_origin_command(command, timeout, redactor)
                .await
                .map_err(err)?
        }
        AuthOrigin::HttpHeaderToken { header, .. } => {
            let h = header
                .as_deref()
                .unwrap_or("authorization")
                .to_ascii_lowercase();
            match request.headers.get(&h) {
                Some(v) => v
                    .strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .unwrap_or(v)
                    .trim()
                    .to_string(),
                None => {
                    let own = if h == "authorization" {
                        " (the `authorization` header of a control-plane request carries Fracta's own token and is never passed on: set the origin's `header`, e.g. `X-Model-Token`)"
                    } else {
                        ""
                    };
                    return Err(err(format!(
                        "takes its token from the `{h}` header of the HTTP request that spawns the agent (POST /v1/agents or the MCP `spawn` tool), and this spawn has none{own}; a spawn from the command line carries no request headers"
                    )));
                }
            }
        }
    };
    redactor.add(&value);
    Ok(value)
}

async fn run_origin_command(
    command: &[String],
    timeout: Duration,
    redactor: &Redactor,
) -> Result<String, String> {
    let Some((prog, args)) = command.split_first() else {
        return Err("`command` is empty".into());
    };
    let child = tokio::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run `{prog}`: {e}"))?;
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(format!("`{prog}` failed: {e}")),
        Err(_) => {
            return Err(format!(
                "`{prog}` did not finish within {} ms",
                timeout.as_millis()
            ));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    // Register before anything else can print it.
    redactor.add(&stdout);
    let stderr = redactor.redact(String::from_utf8_lossy(&out.stderr).trim());
    if !out.status.success() {
        return Err(format!(
            "`{prog}` exited with {}{}",
            out.status
                .code()
                .map(|c| format!("exit code {c}"))
                .unwrap_or_else(|| "a signal".into()),
            if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            }
        ));
    }
    if stdout.is_empty() {
        return Err(format!(
            "`{prog}` printed nothing on stdout{}",
            if stderr.is_empty() {
                String::new()
            } else {
                format!(" (stderr: {stderr})")
            }
        ));
    }
    Ok(stdout)
}

/// Check a profile's assertions against the final env.
pub fn check_assertions(
    auth: &ResolvedAuth,
    runtime: &str,
    env: &BTreeMap<String, String>,
) -> Result<(), CredentialError> {
    let profile = auth.profile.as_deref().unwrap_or("-");
    for k in &auth.require_env {
        if env.get(k).is_none_or(|v| v.is_empty()) {
            return Err(CredentialError::Binding {
                runtime: runtime.into(),
                message: format!(
                    "profile `{profile}` requires `{k}` in the agent's environment (assertions.require_env), and it is not set"
                ),
            });
        }
    }
    for k in &auth.forbid_env {
        if env.contains_key(k) {
            return Err(CredentialError::Binding {
                runtime: runtime.into(),
                message: format!(
                    "profile `{profile}` forbids `{k}` in the agent's environment (assertions.forbid_env), and it is set; unset it"
                ),
            });
        }
    }
    Ok(())
}

/// The assertions of a runtime's profile alone (nothing materialized), for a backend that
/// checks the env it will hand a container by name (Kubernetes).
pub fn assertions(
    cfg: &LoadedConfig,
    runtime_name: &str,
    rt: &RuntimeEntry,
) -> Result<ResolvedAuth, CredentialError> {
    let mut out = ResolvedAuth::default();
    if let Some((pname, profile, _)) = profile_binding(cfg, runtime_name, rt)? {
        out.profile = Some(pname.to_string());
        out.require_env = profile.assertions.require_env.clone();
        out.forbid_env = profile.assertions.forbid_env.clone();
    }
    Ok(out)
}

/// Check the env that will reach the agent's CLI: what its adapter forbids (Claude Code's
/// `CLAUDE_CODE_SIMPLE`), then the profile's assertions. The same check for every backend.
pub fn check_env(
    auth: &ResolvedAuth,
    runtime: &str,
    adapter: &dyn crate::adapter::Adapter,
    env: &BTreeMap<String, String>,
) -> Result<(), CredentialError> {
    for (name, why) in adapter.forbidden_env() {
        if env.contains_key(*name) {
            return Err(CredentialError::Binding {
                runtime: runtime.into(),
                message: format!("{name} is set in the agent's environment; {why}: unset it"),
            });
        }
    }
    check_assertions(auth, runtime, env)
}

/// Unused profiles are fine; this only exists so callers can name one.
pub fn profile<'a>(cfg: &'a LoadedConfig, name: &str) -> Option<&'a Profile> {
    cfg.config.auth.credentials.profiles.get(name)
}

/// The result of checking one origin or resolver (`fracta auth check`). Never the value.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    pub profile: String,
    /// `origin` or `resolver`.
    pub kind: &'static str,
    pub name: String,
    /// The source type (`command_output`, `secret_env`, `http_header_token`, `command`).
    pub source: &'static str,
    pub ok: bool,
    /// Length of the secret, when one was produced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<usize>,
    /// First 8 hex digits of the secret's SHA-256: enough to compare, useless to an attacker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub fn fingerprint(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Materialize every origin and run every resolver of the named profiles (all when `only` is
/// None) once.
pub async fn check(
    cfg: &LoadedConfig,
    only: Option<&str>,
    redactor: &Redactor,
) -> Result<Vec<CheckResult>, String> {
    let profiles = &cfg.config.auth.credentials.profiles;
    if let Some(p) = only
        && !profiles.contains_key(p)
    {
        let valid: Vec<&str> = profiles.keys().map(String::as_str).collect();
        return Err(format!(
            "no profile `{p}`; {}",
            fracta_config::diagnostic::valid_help("profiles", p, &valid)
        ));
    }
    let mut out = Vec::new();
    for (pname, profile) in profiles
        .iter()
        .filter(|(n, _)| only.is_none_or(|o| o == n.as_str()))
    {
        for (oname, origin) in &profile.auth_origins {
            let base = CheckResult {
                profile: pname.clone(),
                kind: "origin",
                name: oname.clone(),
                source: origin.type_name(),
                ok: false,
                length: None,
                fingerprint: None,
                detail: None,
            };
            if matches!(origin, AuthOrigin::HttpHeaderToken { .. }) {
                out.push(CheckResult {
                    ok: true,
                    detail: Some(
                        "not checked: its token comes with a control-plane spawn request".into(),
                    ),
                    ..base
                });
                continue;
            }
            out.push(
                match materialize(pname, oname, origin, &RequestContext::default(), redactor).await
                {
                    Ok(v) => CheckResult {
                        ok: true,
                        length: Some(v.len()),
                        fingerprint: Some(fingerprint(&v)),
                        ..base
                    },
                    Err(e) => CheckResult {
                        detail: Some(redactor.redact(&e.to_string())),
                        ..base
                    },
                },
            );
        }
        for (rname, r) in &profile.runtime_auth_resolvers {
            let base = CheckResult {
                profile: pname.clone(),
                kind: "resolver",
                name: rname.clone(),
                source: "command",
                ok: false,
                length: None,
                fingerprint: None,
                detail: None,
            };
            let argv = vec!["sh".to_string(), "-c".to_string(), r.command.clone()];
            out.push(
                match run_origin_command(&argv, DEFAULT_ORIGIN_TIMEOUT, redactor).await {
                    Ok(v) => CheckResult {
                        ok: true,
                        length: Some(v.len()),
                        fingerprint: Some(fingerprint(&v)),
                        detail: Some(format!(
                            "runs inside the agent{}",
                            r.ttl_ms
                                .map(|t| format!(", again every {t} ms"))
                                .unwrap_or_default()
                        )),
                        ..base
                    },
                    Err(e) => CheckResult {
                        detail: Some(e.replace("`sh`", &format!("`{}`", r.command))),
                        ..base
                    },
                },
            );
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn http_header_token_comes_from_the_spawn_request() {
        let r = Redactor::new();
        let origin = AuthOrigin::HttpHeaderToken {
            scope: fracta_config::Scope::Any,
            header: None,
        };
        let mut req = RequestContext::default();
        // A spawn with no request (the command line): an error naming the origin, where its
        // value comes from, and why `authorization` is never passed on.
        let e = materialize("p", "h", &origin, &req, &r).await.unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("auth origin `h` of profile `p`"), "{msg}");
        assert!(msg.contains("POST /v1/agents"), "{msg}");
        assert!(msg.contains("command line"), "{msg}");
        assert!(msg.contains("never passed on"), "{msg}");
        req.headers
            .insert("authorization".into(), "Bearer tok-from-header-123".into());
        assert_eq!(
            materialize("p", "h", &origin, &req, &r).await.unwrap(),
            "tok-from-header-123"
        );
        assert_eq!(r.redact("x tok-from-header-123 y"), "x [REDACTED] y");
    }

    #[test]
    fn fingerprints_are_short_and_stable() {
        assert_eq!(fingerprint("secret"), fingerprint("secret"));
        assert_eq!(fingerprint("secret").len(), 8);
        assert_ne!(fingerprint("secret"), fingerprint("secret2"));
    }
}
