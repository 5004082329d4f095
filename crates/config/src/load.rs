//! Finding, reading and validating `fracta.yaml`.

use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::diagnostic::{Diagnostic, SourceCtx, explain_serde, valid_help};
use crate::expand;
use crate::kube_rules::{PodFields, check_pod_fields};
use crate::model::{AdapterKind, AuthOrigin, Binding, Config, Profile, RuntimeEntry, Scope};
use crate::spans::SpanMap;

/// The file name looked for in the working directory.
pub const DEFAULT_FILE: &str = "fracta.yaml";
/// The env var naming the config file.
pub const CONFIG_ENV: &str = "FRACTA_CONFIG";
/// Variables the seed forbids in a Claude agent's environment.
pub const CLAUDE_FORBIDDEN_ENV: &str = "CLAUDE_CODE_SIMPLE";

/// How the config file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Flag,
    Env,
    /// `./fracta.yaml`, or none found here or above.
    Default,
    /// In a parent folder of the current one (as git and cargo find theirs).
    Parent,
}

impl Found {
    fn describe(self) -> &'static str {
        match self {
            Found::Flag => "given with --config",
            Found::Env => "named by $FRACTA_CONFIG",
            Found::Default => "looked for in the current directory and its parents",
            Found::Parent => "found in a parent of the current directory",
        }
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {} not found ({})", path.display(), found.describe())]
    NotFound { path: PathBuf, found: Found },
    #[error("cannot read config file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render(.0))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The diagnostics, for `--json` output.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        match self {
            ConfigError::Invalid(d) => d.clone(),
            other => vec![
                Diagnostic::error(other.to_string()).with_help(other.help().unwrap_or_default()),
            ],
        }
    }

    pub fn help(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => {
                Some("create one with `fracta init`, or point at one with --config PATH or $FRACTA_CONFIG".into())
            }
            _ => None,
        }
    }
}

fn render(d: &[Diagnostic]) -> String {
    d.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where the config file is: `--config`, else `$FRACTA_CONFIG`, else `./fracta.yaml`, else
/// the nearest `fracta.yaml` in a parent folder (as git and cargo find theirs).
pub fn locate(flag: Option<&Path>) -> (PathBuf, Found) {
    if let Some(p) = flag {
        return (p.to_path_buf(), Found::Flag);
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(p) if !p.is_empty() => (PathBuf::from(p), Found::Env),
        _ => {
            let here = PathBuf::from(DEFAULT_FILE);
            if !here.is_file()
                && let Ok(cwd) = std::env::current_dir()
                && let Some(up) = cwd
                    .ancestors()
                    .skip(1)
                    .map(|d| d.join(DEFAULT_FILE))
                    .find(|p| p.is_file())
            {
                return (up, Found::Parent);
            }
            (here, Found::Default)
        }
    }
}

/// A validated config and where it came from.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    /// The config file, as given.
    pub path: PathBuf,
    /// The folder relative paths resolve against.
    pub dir: PathBuf,
    /// Non-fatal findings (deprecations, suspicious model ids).
    pub warnings: Vec<Diagnostic>,
    source: String,
}

/// Find and load the config file.
pub fn load(flag: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let (path, found) = locate(flag);
    load_path(&path, found)
}

pub fn load_path(path: &Path, found: Found) -> Result<LoadedConfig, ConfigError> {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ConfigError::NotFound {
                path: path.to_path_buf(),
                found,
            });
        }
        Err(source) => {
            return Err(ConfigError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    parse(&src, path)
}

/// Parse and validate `src` as if read from `path`.
pub fn parse(src: &str, path: &Path) -> Result<LoadedConfig, ConfigError> {
    let spans = match SpanMap::try_parse(src) {
        Ok(s) => s,
        Err((msg, pos)) => {
            let empty = SpanMap::default();
            let ctx = SourceCtx {
                file: path,
                src,
                spans: &empty,
            };
            return Err(ConfigError::Invalid(vec![
                Diagnostic::error(format!("YAML syntax error: {msg}"))
                    .at(&ctx, "", Some(pos))
                    .with_help("check the indentation, and that each `key: value` has a space after the colon"),
            ]));
        }
    };
    let ctx = SourceCtx {
        file: path,
        src,
        spans: &spans,
    };

    if src.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    }) {
        return Err(ConfigError::Invalid(vec![
            Diagnostic::error("the config file is empty")
                .in_file(path)
                .with_help("a minimal config names one runtime:\nagents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n(or run `fracta init` for a commented starter)"),
        ]));
    }

    // YAML forbids a key twice in one mapping; the deserializer would keep the last and say
    // nothing (two `claude:` runtimes validating as one).
    let duplicates: Vec<Diagnostic> = spans
        .duplicates()
        .iter()
        .map(|d| {
            let at = |p: crate::spans::Pos| format!("{}:{}:{}", path.display(), p.line, p.column);
            Diagnostic::error(format!(
                "duplicate key `{}`: at {} and again at {}",
                d.key,
                at(d.first),
                at(d.again)
            ))
            .at(&ctx, &d.path, Some(d.again))
            .with_help("a key may appear once in a mapping (the later one would silently replace the earlier): merge the two entries, or rename one")
        })
        .collect();
    if !duplicates.is_empty() {
        return Err(ConfigError::Invalid(duplicates));
    }

    let de = serde_yaml_ng::Deserializer::from_str(src);
    let mut config: Config = match serde_path_to_error::deserialize(de) {
        Ok(c) => c,
        Err(e) => return Err(ConfigError::Invalid(vec![serde_diagnostic(&ctx, &e)])),
    };

    let mut diags = Vec::new();
    let runtimes_prefix = normalize_legacy(&mut config, &ctx, &mut diags);
    validate(&config, &ctx, runtimes_prefix, &mut diags);

    let (errors, warnings): (Vec<_>, Vec<_>) = diags.into_iter().partition(Diagnostic::is_error);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid(errors));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok(LoadedConfig {
        config,
        path: path.to_path_buf(),
        dir,
        warnings,
        source: src.to_string(),
    })
}

fn serde_diagnostic(
    ctx: &SourceCtx<'_>,
    e: &serde_path_to_error::Error<serde_yaml_ng::Error>,
) -> Diagnostic {
    let inner = e.inner();
    let path = e.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let raw = inner.to_string();
    let ex = explain_serde(&path, &raw);
    // Prefer our span map: it knows keys as well as values.
    let pos = if ex.at_key {
        ctx.spans.locate(&ex.key_path)
    } else {
        ctx.spans.locate_value(&ex.key_path)
    };
    let pos = pos.or_else(|| {
        inner.location().map(|l| crate::spans::Pos {
            line: l.line(),
            column: l.column(),
        })
    });
    let mut d = Diagnostic::error(ex.message).at(ctx, &ex.key_path, pos);
    d.help = ex.help;
    d
}

/// Fold the legacy top-level `runtimes:` into `agents.agent_runtimes`. Returns the key prefix
/// the effective runtimes were written under, for diagnostics.
fn normalize_legacy(
    config: &mut Config,
    ctx: &SourceCtx<'_>,
    diags: &mut Vec<Diagnostic>,
) -> &'static str {
    let Some(legacy) = config.runtimes.take() else {
        return "agents.agent_runtimes";
    };
    if config.agents.agent_runtimes.is_empty() {
        diags.push(
            Diagnostic::warning("`runtimes` is deprecated; move it under `agents.agent_runtimes`")
                .at_key(ctx, "runtimes"),
        );
        config.agents.agent_runtimes = legacy;
        "runtimes"
    } else {
        diags.push(
            Diagnostic::warning(
                "both `runtimes` (deprecated) and `agents.agent_runtimes` are set: `agents.agent_runtimes` wins and `runtimes` is ignored",
            )
            .at_key(ctx, "runtimes"),
        );
        "agents.agent_runtimes"
    }
}

/// `project.setup`: each command says something, and has time to run.
fn validate_setup(
    setup: &[crate::model::SetupCommand],
    ctx: &SourceCtx<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    for (i, c) in setup.iter().enumerate() {
        let at = format!("project.setup[{i}]");
        if c.run.trim().is_empty() {
            diags.push(
                Diagnostic::error("a setup command is empty")
                    .at_value(ctx, &at)
                    .with_help("write the command line to run in each new worktree, e.g. `- npm ci`, or remove the entry"),
            );
        }
        if c.timeout_secs == 0 {
            diags.push(
                Diagnostic::error("`timeout_secs` of a setup command must be at least 1")
                    .at_value(ctx, &format!("{at}.timeout_secs"))
                    .with_help(format!(
                        "leave it out for the default ({} s)",
                        crate::model::DEFAULT_SETUP_TIMEOUT_SECS
                    )),
            );
        }
    }
}

fn validate(config: &Config, ctx: &SourceCtx<'_>, rt_prefix: &str, diags: &mut Vec<Diagnostic>) {
    validate_setup(&config.project.setup, ctx, diags);
    if !config.project.setup.is_empty()
        && config.runtime.backend == crate::model::Backend::Kubernetes
    {
        diags.push(
            Diagnostic::warning(
                "`project.setup` is not run for agents on Kubernetes (runtime.backend: kubernetes), only for local ones",
            )
            .at_key(ctx, "project.setup")
            .with_help("bake what the agents need into their image"),
        );
    }
    let runtimes = &config.agents.agent_runtimes;
    let runtime_names: Vec<&str> = runtimes.keys().map(String::as_str).collect();
    let profiles = &config.auth.credentials.profiles;
    let profile_names: Vec<&str> = profiles.keys().map(String::as_str).collect();

    if let Some(d) = &config.agents.default_runtime
        && !runtimes.contains_key(d)
    {
        diags.push(
            Diagnostic::error(format!(
                "`default_runtime` names `{d}`, which is not a configured runtime"
            ))
            .at_value(ctx, "agents.default_runtime")
            .with_help(valid_help("runtimes", d, &runtime_names)),
        );
    }

    if let Some(url) = &config.project.repository
        && let Err(why) = crate::model::check_repository_url(url)
    {
        diags.push(
            Diagnostic::error(format!("`project.repository` {why}"))
                .at_value(ctx, "project.repository")
                .with_help("an https:// URL such as https://github.com/acme/app.git; give its token with project.repository_credential"),
        );
    }
    if let Some(c) = &config.project.repository_credential {
        match profiles.get(&c.profile) {
            None => diags.push(
                Diagnostic::error(format!(
                    "`profile` names `{}`, which is not a profile under auth.credentials.profiles",
                    c.profile
                ))
                .at_value(ctx, "project.repository_credential.profile")
                .with_help(valid_help("profiles", &c.profile, &profile_names)),
            ),
            Some(p) => {
                if !p.auth_origins.contains_key(&c.origin) {
                    let valid: Vec<&str> = p.auth_origins.keys().map(String::as_str).collect();
                    diags.push(
                        Diagnostic::error(format!(
                            "`origin` names `{}`, which is not an origin of profile `{}`",
                            c.origin, c.profile
                        ))
                        .at_value(ctx, "project.repository_credential.origin")
                        .with_help(valid_help("origins", &c.origin, &valid)),
                    );
                }
            }
        }
    }

    for (pname, profile) in profiles {
        let base = format!("auth.credentials.profiles.{pname}");
        if let Some(b) = &profile.default_binding {
            check_binding(
                b,
                profile,
                pname,
                &format!("{base}.default_binding"),
                ctx,
                diags,
            );
        }
    }

    for (name, rt) in runtimes {
        let base = format!("{rt_prefix}.{name}");
        let profile = match &rt.auth_profile {
            Some(p) => match profiles.get(p) {
                Some(prof) => Some((p.as_str(), prof)),
                None => {
                    diags.push(
                        Diagnostic::error(format!("`auth_profile` names `{p}`, which is not a profile under auth.credentials.profiles"))
                            .at_value(ctx, &format!("{base}.auth_profile"))
                            .with_help(valid_help("profiles", p, &profile_names)),
                    );
                    None
                }
            },
            None => None,
        };
        if let Some(b) = &rt.auth_binding {
            let path = format!("{base}.auth_binding");
            match profile {
                Some((pname, prof)) => check_binding(b, prof, pname, &path, ctx, diags),
                None if rt.auth_profile.is_none() => diags.push(
                    Diagnostic::error("`auth_binding` needs an `auth_profile` to take its resolver or origin from")
                        .at_key(ctx, &path)
                        .with_help(valid_help("profiles", "", &profile_names)),
                ),
                None => {}
            }
        }
        check_runtime_rules(name, rt, profile, &base, ctx, diags);
        if let Some(k) = &rt.kubernetes {
            check_pod_fields(
                &PodFields {
                    resources: k.resources.as_ref(),
                    node_selector: k.node_selector.as_ref(),
                    tolerations: k.tolerations.as_deref(),
                    image_pull_secrets: k.image_pull_secrets.as_deref(),
                    service_account: k.service_account.as_ref(),
                    security_context: k.security_context.as_ref(),
                    runtime_class_name: k.runtime_class_name.as_ref(),
                },
                &format!("{base}.kubernetes"),
                ctx,
                diags,
            );
        }
    }
    if let Some(k) = &config.runtime.kubernetes {
        check_pod_fields(
            &PodFields {
                resources: k.resources.as_ref(),
                node_selector: k.node_selector.as_ref(),
                tolerations: k.tolerations.as_deref(),
                image_pull_secrets: k.image_pull_secrets.as_deref(),
                service_account: k.service_account.as_ref(),
                security_context: k.security_context.as_ref(),
                runtime_class_name: k.runtime_class_name.as_ref(),
            },
            "runtime.kubernetes",
            ctx,
            diags,
        );
        if let Some(w) = &k.workspace_volume {
            if let Some(size) = &w.size
                && !crate::kube_rules::is_quantity(size)
            {
                diags.push(
                    Diagnostic::error(format!("`{size}` is not a Kubernetes quantity"))
                        .at_value(ctx, "runtime.kubernetes.workspace_volume.size")
                        .with_help("a size such as `10Gi` or `500Mi`"),
                );
            }
            if let Some(class) = &w.storage_class
                && !crate::kube_rules::is_dns_subdomain(class)
            {
                diags.push(
                    Diagnostic::error(format!("`{class}` is not a StorageClass name"))
                        .at_value(ctx, "runtime.kubernetes.workspace_volume.storage_class")
                        .with_help("lowercase letters, digits, `-` and `.`, as `kubectl get storageclass` lists them"),
                );
            }
        }
        for (key, v) in &k.control_plane_labels {
            let path = format!("runtime.kubernetes.control_plane_labels.{key}");
            if !crate::kube_rules::is_label_key(key) || !crate::kube_rules::is_label_value(v) {
                diags.push(
                    Diagnostic::error(format!("`{key}: {v}` is not a Kubernetes label"))
                        .at_key(ctx, &path)
                        .with_help("the labels of the control plane's Pods, e.g. `app.kubernetes.io/name: fracta-controlplane`"),
                );
            }
        }
    }
}

fn check_binding(
    b: &Binding,
    profile: &Profile,
    pname: &str,
    path: &str,
    ctx: &SourceCtx<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    match b {
        Binding::ClaudeApiKeyHelper {
            runtime_auth_resolver,
        } => {
            if !profile
                .runtime_auth_resolvers
                .contains_key(runtime_auth_resolver)
            {
                let valid: Vec<&str> = profile
                    .runtime_auth_resolvers
                    .keys()
                    .map(String::as_str)
                    .collect();
                diags.push(
                    Diagnostic::error(format!(
                        "`runtime_auth_resolver` names `{runtime_auth_resolver}`, which is not a resolver of profile `{pname}`"
                    ))
                    .at_value(ctx, &format!("{path}.runtime_auth_resolver"))
                    .with_help(valid_help("resolvers", runtime_auth_resolver, &valid)),
                );
            }
        }
        Binding::BearerEnv { auth_origin, .. } => {
            if !profile.auth_origins.contains_key(auth_origin) {
                let valid: Vec<&str> = profile.auth_origins.keys().map(String::as_str).collect();
                diags.push(
                    Diagnostic::error(format!("`auth_origin` names `{auth_origin}`, which is not an origin of profile `{pname}`"))
                        .at_value(ctx, &format!("{path}.auth_origin"))
                        .with_help(valid_help("origins", auth_origin, &valid)),
                );
            }
        }
    }
}

/// The seed's per-runtime rules.
fn check_runtime_rules(
    name: &str,
    rt: &RuntimeEntry,
    profile: Option<(&str, &Profile)>,
    base: &str,
    ctx: &SourceCtx<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let binding = rt
        .auth_binding
        .as_ref()
        .or(profile.and_then(|(_, p)| p.default_binding.as_ref()));
    if rt.adapter == AdapterKind::Claude {
        if rt.env.contains_key(CLAUDE_FORBIDDEN_ENV) {
            diags.push(
                Diagnostic::error(format!("`{CLAUDE_FORBIDDEN_ENV}` must not be set for a claude runtime"))
                    .at_key(ctx, &format!("{base}.env.{CLAUDE_FORBIDDEN_ENV}"))
                    .with_help("it stops Claude Code from loading .claude/settings.json, where Fracta puts permissions, MCP and the API key helper; remove it"),
            );
        }
        if let Some((pname, p)) = profile
            && p.env.contains_key(CLAUDE_FORBIDDEN_ENV)
        {
            diags.push(
                Diagnostic::error(format!(
                    "profile `{pname}` sets `{CLAUDE_FORBIDDEN_ENV}`, which must not reach claude runtime `{name}`"
                ))
                .at_key(ctx, &format!("auth.credentials.profiles.{pname}.env.{CLAUDE_FORBIDDEN_ENV}"))
                .with_help("it stops Claude Code from loading .claude/settings.json; remove it"),
            );
        }
    } else if let Some(Binding::ClaudeApiKeyHelper { .. }) = binding {
        diags.push(
            Diagnostic::error(format!(
                "runtime `{name}` uses adapter `{}`, but its binding `claude_api_key_helper` only works for Claude",
                rt.adapter
            ))
            .at_key(ctx, &format!("{base}.{}", if rt.auth_binding.is_some() { "auth_binding" } else { "auth_profile" }))
            .with_help("bind the secret with `type: bearer_env` and an `auth_origin` instead"),
        );
    }
    if rt.adapter == AdapterKind::Acp && rt.command.is_none() {
        diags.push(
            Diagnostic::error(format!(
                "runtime `{name}` uses adapter `acp`, which needs the `command` that starts the agent"
            ))
            .at_key(ctx, &format!("{base}.adapter"))
            .with_help("set `command:` (and `args:`), e.g. `command: opencode` with `args: [acp]`, or `command: qwen` with `args: [--acp]`"),
        );
    }
    if rt.adapter == AdapterKind::Opencode
        && let (Some(Binding::BearerEnv { auth_origin, .. }), Some((pname, p))) = (binding, profile)
        && let Some(origin) = p.auth_origins.get(auth_origin)
        && (origin.scope() == Scope::AgentRuntime)
    {
        diags.push(
            Diagnostic::error(format!(
                "opencode runtime `{name}` is bound to origin `{auth_origin}` with `scope: agent_runtime`, which only a runtime helper can project; OpenCode needs a concrete token value at spawn time"
            ))
            .at_value(ctx, &format!("auth.credentials.profiles.{pname}.auth_origins.{auth_origin}.scope"))
            .with_help("use `scope: any` with a `command_output` or `secret_env` origin"),
        );
    }
    if rt.adapter == AdapterKind::Opencode {
        let region = rt
            .env
            .get("AWS_REGION")
            .or_else(|| profile.and_then(|(_, p)| p.env.get("AWS_REGION")))
            .and_then(|r| expand::expand_env(r).ok());
        if region.as_deref() == Some("ap-southeast-2") {
            let mut models: Vec<(String, &str)> = Vec::new();
            if let Some(m) = &rt.model {
                models.push((format!("{base}.model"), m));
            }
            for t in crate::model::Tier::ALL {
                if let Some(m) = rt.model_tiers.get(t) {
                    models.push((format!("{base}.model_tiers.{t}"), m));
                }
            }
            for (path, m) in models {
                if let Some(fixed) = bedrock_au_model(m) {
                    diags.push(
                        Diagnostic::warning(format!(
                            "model `{m}` lacks the `au.` prefix that Bedrock needs in ap-southeast-2"
                        ))
                        .at_value(ctx, &path)
                        .with_help(format!("use `{fixed}` (OpenCode's own `apac.` id is invalid in this region)")),
                    );
                }
            }
        }
    }
}

/// For an `amazon-bedrock/` model id without the `au.` prefix, the corrected id.
pub fn bedrock_au_model(model: &str) -> Option<String> {
    let id = model.strip_prefix("amazon-bedrock/")?;
    if id.starts_with("au.") || id.starts_with("${") {
        return None;
    }
    let bare = id
        .strip_prefix("apac.")
        .or_else(|| id.strip_prefix("global."))
        .unwrap_or(id);
    Some(format!("amazon-bedrock/au.{bare}"))
}

impl LoadedConfig {
    /// The project's folder (the config file's), absolute.
    pub fn project_dir(&self) -> PathBuf {
        std::path::absolute(&self.dir).unwrap_or_else(|_| self.dir.clone())
    }

    /// The `.fracta/` folder beside the config file.
    pub fn fracta_dir(&self) -> PathBuf {
        self.dir.join(".fracta")
    }

    pub fn tasks_dir(&self) -> PathBuf {
        self.fracta_dir().join("tasks")
    }

    fn resolve(&self, p: &str) -> PathBuf {
        let expanded = expand::expand_env(p).unwrap_or_else(|_| p.to_string());
        let path = Path::new(&expanded);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.dir.join(path)
        }
    }

    pub fn state_path(&self) -> PathBuf {
        match &self.config.runtime.state.sqlite.path {
            Some(p) => self.resolve(p),
            None => self.fracta_dir().join("state.db"),
        }
    }

    /// `project.worktrees_dir`, resolved (none: the default, outside the repository).
    pub fn worktrees_dir(&self) -> Option<PathBuf> {
        self.config
            .project
            .worktrees_dir
            .as_deref()
            .map(|p| self.resolve(p))
    }

    pub fn log_path(&self) -> PathBuf {
        match &self.config.logging.file {
            Some(p) => self.resolve(p),
            None => self.fracta_dir().join("fracta.log"),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every `${VAR}` without a default that is unset now, with the key path using it.
    pub fn unset_variables(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<Diagnostic> {
        let spans = SpanMap::parse(&self.source);
        let ctx = SourceCtx {
            file: &self.path,
            src: &self.source,
            spans: &spans,
        };
        let mut out = Vec::new();
        let value = match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&self.source) {
            Ok(v) => v,
            Err(_) => return out,
        };
        walk_strings(&value, "", &mut |path, s| {
            for r in expand::references(s) {
                if r.default.is_none() && lookup(r.name).is_none() {
                    out.push(
                        Diagnostic::warning(format!("`${{{}}}` is not set", r.name))
                            .at_value(&ctx, path)
                            .with_help("a spawn that needs this value will fail until it is set; others are unaffected"),
                    );
                }
            }
        });
        out
    }

    /// The effective default runtime: `agents.default_runtime`, or the only runtime there is.
    pub fn default_runtime(&self) -> Option<&str> {
        match &self.config.agents.default_runtime {
            Some(d) => Some(d),
            None if self.config.agents.agent_runtimes.len() == 1 => self
                .config
                .agents
                .agent_runtimes
                .keys()
                .next()
                .map(String::as_str),
            None => None,
        }
    }

    /// Which origins of a profile are bound anywhere, for `auth check` and spawns.
    pub fn origin(&self, profile: &str, origin: &str) -> Option<&AuthOrigin> {
        self.config
            .auth
            .credentials
            .profiles
            .get(profile)?
            .auth_origins
            .get(origin)
    }
}

fn walk_strings(v: &serde_yaml_ng::Value, path: &str, f: &mut dyn FnMut(&str, &str)) {
    match v {
        serde_yaml_ng::Value::String(s) => f(path, s),
        serde_yaml_ng::Value::Sequence(seq) => {
            for (i, item) in seq.iter().enumerate() {
                walk_strings(item, &format!("{path}[{i}]"), f);
            }
        }
        serde_yaml_ng::Value::Mapping(m) => {
            for (k, item) in m {
                let key = match k {
                    serde_yaml_ng::Value::String(s) => s.clone(),
                    other => serde_yaml_ng::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                walk_strings(item, &crate::spans::join(path, &key), f);
            }
        }
        serde_yaml_ng::Value::Tagged(t) => walk_strings(&t.value, path, f),
        _ => {}
    }
}
