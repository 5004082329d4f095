//! `fracta doctor`: is this project ready to run agents? The config loads; each runtime's CLI
//! is installed at the version Fracta was tested with; each credential origin and resolver
//! produces a secret (its length and fingerprint, never the value); the base branch a spawn
//! would use exists; the state store opens; and whether `fracta serve` is up. Every problem is
//! printed with its fix; the exit code is 1 when something is broken (a warning is not).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use fracta_config::{LoadedConfig, RuntimeEntry};
use fracta_core::adapter::{Adapter, adapter_for, parse_version};
use fracta_core::redact::Redactor;
use fracta_core::{resolve, workspace};
use fracta_server::discovery;
use serde::Serialize;

use super::client::Client;
use crate::exit::{self, Failure};
use crate::output::{self, DIM, GREEN, RED, YELLOW};

/// How long a CLI may take to print its version.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but not as Fracta was tested (an unpinned CLI version), or worth knowing.
    Warn,
    /// Broken: agents that need it will fail.
    Fail,
}

/// One finding. Every field is always present in `--json` (`fix` is null when there is
/// nothing to do).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// `config`, `runtime`, `credentials`, `git`, `state` or `serve`.
    pub area: &'static str,
    /// What was checked: a runtime's or a credential's name, the base branch, the store's path.
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Check {
    fn new(area: &'static str, name: impl Into<String>, status: Status, detail: String) -> Self {
        Check {
            area,
            name: name.into(),
            status,
            detail,
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = Some(fix.into());
        self
    }
}

#[derive(Debug, Serialize)]
struct Report {
    /// Nothing failed (warnings allowed).
    ok: bool,
    config: Option<String>,
    checks: Vec<Check>,
}

pub fn run(flag: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let (checks, config) = match fracta_config::load(flag) {
        Ok(cfg) => {
            crate::logging::init(&cfg);
            let path = cfg.path.display().to_string();
            (check_all(&cfg)?, Some(path))
        }
        Err(e) => {
            let (path, _) = fracta_config::locate(flag);
            let detail = e
                .diagnostics()
                .iter()
                .map(|d| d.to_string().trim_end().to_string())
                .collect::<Vec<_>>()
                .join("\n");
            let fix = match &e {
                fracta_config::ConfigError::NotFound { .. } => e.help().unwrap_or_default(),
                _ => "correct the file as each message says; `fracta config validate` checks it again".into(),
            };
            let c = Check::new("config", path.display().to_string(), Status::Fail, detail).fix(fix);
            (vec![c], None)
        }
    };
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    let report = Report { ok, config, checks };
    if json {
        output::json(&report)?;
    } else {
        print_human(&report);
    }
    if ok {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(Failure::reported(exit::FAILURE))
    }
}

fn check_all(cfg: &LoadedConfig) -> anyhow::Result<Vec<Check>> {
    let mut checks = vec![Check::new(
        "config",
        cfg.path.display().to_string(),
        Status::Ok,
        format!(
            "valid; {} runtime(s), {} credential profile(s)",
            cfg.config.agents.agent_runtimes.len(),
            cfg.config.auth.credentials.profiles.len()
        ),
    )];
    for w in &cfg.warnings {
        checks.push(Check::new(
            "config",
            cfg.path.display().to_string(),
            Status::Warn,
            w.to_string().trim_end().to_string(),
        ));
    }
    let rt = super::agent::runtime()?;
    let runtimes: Vec<(&String, &RuntimeEntry)> = cfg.config.agents.agent_runtimes.iter().collect();
    let clis = rt.block_on(futures::future::join_all(
        runtimes
            .iter()
            .map(|(name, entry)| check_cli(cfg, name, entry)),
    ));
    checks.extend(clis);
    checks.extend(check_credentials(cfg, &rt));
    checks.extend(check_base(cfg));
    checks.push(check_state(cfg));
    checks.push(check_serve(cfg));
    Ok(checks)
}

/// A runtime's CLI: found, runs, and is the version Fracta was tested with.
async fn check_cli(cfg: &LoadedConfig, name: &str, entry: &RuntimeEntry) -> Check {
    let adapter: &dyn Adapter = adapter_for(entry.adapter);
    let tested = adapter.tested_version();
    let pin_fix = format!(
        "install the tested version: `npm install -g {}@{tested}` (or `npm ci` in the Fracta repository, which pins it in package.json), or set `command:` on the runtime to one",
        adapter.npm_package()
    );
    let program = match resolve::locate_binary(cfg, entry, adapter) {
        Ok(p) => p,
        Err(why) => {
            let (detail, _) = why.split_once("; ").unwrap_or((&why, ""));
            let fix = match &entry.command {
                Some(c) => format!(
                    "correct `command: {c}` of agents.agent_runtimes.{name}, or remove it to use the CLI on PATH or in node_modules/.bin; {pin_fix}"
                ),
                None => pin_fix,
            };
            return Check::new("runtime", name, Status::Fail, detail.to_string()).fix(fix);
        }
    };
    if tested.is_empty() {
        // A generic ACP runtime runs the agent its `command` names: no version to compare.
        return Check::new(
            "runtime",
            name,
            Status::Ok,
            format!(
                "{} (no tested version: any agent that speaks ACP)",
                program.display()
            ),
        );
    }
    // What a spawn starts: a shim's native binary, with the shim's env.
    let native = adapter.native_start(&program);
    let started = native
        .as_ref()
        .map(|n| format!(", started as {}", n.program.display()))
        .unwrap_or_default();
    let mut version = tokio::process::Command::new(
        native
            .as_ref()
            .map_or(program.as_path(), |n| n.program.as_path()),
    );
    if let Some(n) = &native {
        for k in &n.env_remove {
            version.env_remove(k);
        }
        version.envs(n.env.iter().map(|(k, v)| (k, v)));
    }
    let out = tokio::time::timeout(
        VERSION_TIMEOUT,
        version
            .arg("--version")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await;
    let out = match out {
        Err(_) => {
            return Check::new(
                "runtime",
                name,
                Status::Fail,
                format!(
                    "`{} --version` did not answer within {}s",
                    program.display(),
                    VERSION_TIMEOUT.as_secs()
                ),
            )
            .fix(pin_fix);
        }
        Ok(Err(e)) => {
            return Check::new(
                "runtime",
                name,
                Status::Fail,
                format!("cannot run {}: {e}", program.display()),
            )
            .fix(pin_fix);
        }
        Ok(Ok(o)) => o,
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let found = parse_version(&text);
    match found {
        _ if !out.status.success() => Check::new(
            "runtime",
            name,
            Status::Fail,
            format!(
                "`{} --version` failed ({}): {}",
                program.display(),
                out.status,
                last_line(&text)
            ),
        )
        .fix(pin_fix),
        Some(v) if v == tested => Check::new(
            "runtime",
            name,
            Status::Ok,
            format!(
                "{} {v} (the version Fracta was tested with) at {}{started}",
                adapter.binary(),
                program.display()
            ),
        ),
        Some(v) => Check::new(
            "runtime",
            name,
            Status::Warn,
            format!(
                "{} {v} at {}{started}; Fracta was tested with {tested}, and another version may print events Fracta does not know",
                adapter.binary(),
                program.display()
            ),
        )
        .fix(pin_fix),
        None => Check::new(
            "runtime",
            name,
            Status::Warn,
            format!(
                "{} at {} printed no version ({}); Fracta was tested with {tested}",
                adapter.binary(),
                program.display(),
                last_line(&text)
            ),
        )
        .fix(pin_fix),
    }
}

fn last_line(text: &str) -> String {
    let l = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    l.chars().take(200).collect()
}

/// Each credential origin and resolver, run once (`fracta auth check`'s code).
fn check_credentials(cfg: &LoadedConfig, rt: &tokio::runtime::Runtime) -> Vec<Check> {
    let redactor = Redactor::with_secret_env();
    let results = match rt.block_on(fracta_core::credentials::check(cfg, None, &redactor)) {
        Ok(r) => r,
        Err(e) => return vec![Check::new("credentials", "-", Status::Fail, e)],
    };
    if results.is_empty() {
        return vec![Check::new(
            "credentials",
            "-",
            Status::Ok,
            "no credential profiles configured: each CLI uses its own login or the runtime's env"
                .into(),
        )];
    }
    results
        .into_iter()
        .map(|r| {
            let name = format!("{}.{} {}", r.profile, r.kind, r.name);
            let secret = match (r.length, &r.fingerprint) {
                (Some(l), Some(f)) => format!("{l} chars, sha256:{f}"),
                _ => String::new(),
            };
            let detail = [
                format!("({})", r.source),
                secret,
                r.detail.clone().unwrap_or_default(),
            ]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
            if r.ok {
                Check::new("credentials", name, Status::Ok, detail)
            } else {
                Check::new("credentials", name, Status::Fail, detail).fix(format!(
                    "make auth.credentials.profiles.{}.{} produce a secret (run its command by hand to see why it does not); `fracta auth check --profile {}` checks it again",
                    r.profile,
                    if r.kind == "origin" { format!("auth_origins.{}", r.name) } else { format!("runtime_auth_resolvers.{}", r.name) },
                    r.profile
                ))
            }
        })
        .collect()
}

/// The base a spawn would branch from (the branch checked out, else
/// `project.default_base_branch`, else `main`) and the configured default: both must exist.
fn check_base(cfg: &LoadedConfig) -> Vec<Check> {
    let dir = cfg.project_dir();
    let Some(top) = workspace::git_toplevel(&dir) else {
        return vec![
            Check::new(
                "git",
                dir.display().to_string(),
                Status::Warn,
                "not a git repository: each agent works in an empty folder under .fracta/workspaces, with no branch to review or merge".into(),
            )
            .fix("`git init` and commit, to give each agent a worktree and branch of the project"),
        ];
    };
    let branches = workspace::local_branches(&dir);
    let found = if branches.is_empty() {
        "it has no branches with commits".to_string()
    } else {
        format!("its branches: {}", branches.join(", "))
    };
    let mut out = Vec::new();
    let configured = cfg.config.project.default_base_branch.clone();
    if let Some(b) = &configured
        && !workspace::resolves_to_commit(&dir, b)
    {
        let fix = match branches.first() {
            Some(first) => format!(
                "set `project.default_base_branch: {}` in {}, or create the branch",
                workspace::current_branch(&dir).unwrap_or_else(|| first.clone()),
                cfg.path.display()
            ),
            None => "commit something first: agents branch from a commit".into(),
        };
        out.push(
            Check::new(
                "git",
                format!("project.default_base_branch {b}"),
                Status::Fail,
                format!(
                    "`{b}` is not a branch or commit in {}; {found}",
                    top.display()
                ),
            )
            .fix(fix),
        );
    }
    match workspace::current_branch(&dir) {
        Some(cur) if workspace::resolves_to_commit(&dir, &cur) => out.push(Check::new(
            "git",
            format!("base {cur}"),
            Status::Ok,
            "the branch checked out: agents branch from it unless given --base".into(),
        )),
        Some(cur) => out.push(
            Check::new(
                "git",
                format!("base {cur}"),
                Status::Fail,
                format!("the branch checked out, `{cur}`, has no commit yet"),
            )
            .fix("commit something first: agents branch from a commit"),
        ),
        None => {
            let b = configured.unwrap_or_else(|| "main".into());
            if workspace::resolves_to_commit(&dir, &b) {
                out.push(Check::new(
                    "git",
                    format!("base {b}"),
                    Status::Ok,
                    "HEAD is detached: agents branch from project.default_base_branch unless given --base".into(),
                ));
            } else if cfg.config.project.default_base_branch.is_none() {
                out.push(
                    Check::new(
                        "git",
                        format!("base {b}"),
                        Status::Fail,
                        format!(
                            "HEAD is detached and there is no `{b}` branch to branch from; {found}"
                        ),
                    )
                    .fix("check out a branch, or set `project.default_base_branch`"),
                );
            }
        }
    }
    out
}

/// The state store opens, at the schema version this build writes.
fn check_state(cfg: &LoadedConfig) -> Check {
    let path = cfg.state_path();
    let name = path.display().to_string();
    if !path.exists() {
        return Check::new(
            "state",
            name,
            Status::Ok,
            "not created yet (the first spawn creates it)".into(),
        );
    }
    match fracta_state::SqliteStore::open(&path) {
        Ok(store) => {
            use fracta_state::Store;
            let agents = store
                .list_agents(&fracta_state::AgentFilter::default())
                .map(|a| a.len());
            match agents {
                Ok(n) => Check::new(
                    "state",
                    name,
                    Status::Ok,
                    format!(
                        "opens; schema version {}, {n} agent(s) recorded",
                        fracta_state::SCHEMA_VERSION
                    ),
                ),
                Err(e) => Check::new("state", name, Status::Fail, format!("opens, but cannot be read: {e}"))
                    .fix("move the file aside (agents' records are lost to Fracta, their branches stay) and let the next spawn create a new one"),
            }
        }
        Err(e @ fracta_state::StoreError::SchemaTooNew { .. }) => {
            Check::new("state", name, Status::Fail, e.to_string())
                .fix("a newer Fracta wrote it: upgrade this one")
        }
        Err(e) => Check::new("state", name, Status::Fail, e.to_string()).fix(
            "check the file's permissions and that its folder is writable; a corrupt file can be moved aside",
        ),
    }
}

/// Whether a control plane runs for this project: its lock is held and it answers.
fn check_serve(cfg: &LoadedConfig) -> Check {
    let dir = std::path::absolute(cfg.fracta_dir()).unwrap_or_else(|_| cfg.fracta_dir());
    let file = discovery::path(&dir);
    // Taking the lock is the probe (released at once): only a live `serve` holds it.
    let held = discovery::lock_path(&dir).exists()
        && matches!(discovery::lock(&dir), Err(discovery::LockError::Held(_)));
    let info = discovery::read(&dir);
    let answers = Client::discover(cfg).is_some();
    match (held, info, answers) {
        (_, Some(i), true) => Check::new(
            "serve",
            "fracta serve",
            Status::Ok,
            format!("running (pid {}, {})", i.pid, i.url),
        ),
        (true, _, _) => Check::new(
            "serve",
            "fracta serve",
            Status::Warn,
            "holds the project's lock but does not answer its health check (starting, or hung)"
                .into(),
        )
        .fix("wait a moment; if it stays so, stop the `fracta serve` process and start it again"),
        (false, Some(i), false) => Check::new(
            "serve",
            "fracta serve",
            Status::Warn,
            format!(
                "not running; {} was left by one that died (pid {})",
                file.display(),
                i.pid
            ),
        )
        .fix(format!(
            "harmless (it is ignored); `fracta serve` replaces it, or remove {}",
            file.display()
        )),
        (false, None, _) => Check::new(
            "serve",
            "fracta serve",
            Status::Ok,
            "not running (needed only for --detach, stream sessions and MCP; start it with `fracta serve`)".into(),
        ),
    }
}

fn print_human(report: &Report) {
    let mut out = anstream::stdout().lock();
    for c in &report.checks {
        let (style, word) = match c.status {
            Status::Ok => (GREEN, "ok"),
            Status::Warn => (YELLOW, "warn"),
            Status::Fail => (RED, "FAIL"),
        };
        let mut lines = c.detail.lines();
        let first = lines.next().unwrap_or("");
        let _ = writeln!(
            out,
            "{style}{word:<4}{style:#}  {:<11} {}: {first}",
            c.area, c.name
        );
        for l in lines {
            let _ = writeln!(out, "{:19}{l}", "");
        }
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{:6}{DIM}fix:{DIM:#} {fix}", "");
        }
    }
    let fails = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .count();
    let warns = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Warn)
        .count();
    let _ = writeln!(out);
    let _ = match (fails, warns) {
        (0, 0) => writeln!(out, "{GREEN}all checks passed{GREEN:#}"),
        (0, w) => writeln!(out, "{YELLOW}ready, with {w} warning(s){YELLOW:#}"),
        (f, w) => writeln!(
            out,
            "{RED}{f} problem(s){RED:#}, {w} warning(s): agents that need what failed will not start"
        ),
    };
}
