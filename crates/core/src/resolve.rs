//! Resolution: a spawn request against the config — which task, runtime, mode and model —
//! into a queued agent record; and where a runtime's CLI is found.

use std::path::{Path, PathBuf};

use fracta_config::{LoadedConfig, Mode, RuntimeEntry, Tier};
use fracta_state::{AgentRecord, Store};

use crate::adapter::Adapter;
use crate::error::RunError;
use crate::task::{self, Task};

/// A request to start an agent.
#[derive(Debug, Clone, Default)]
pub struct SpawnRequest {
    pub task: String,
    pub prompt: Option<String>,
    pub runtime: Option<String>,
    pub tier: Option<Tier>,
    pub model: Option<String>,
    pub mode: Option<Mode>,
    pub parent_id: Option<String>,
    /// The branch (or any commit) its worktree branches from [default: its parent's branch,
    /// else the project's current branch, else `project.default_base_branch`, else `main`].
    pub base: Option<String>,
}

/// A resolved spawn: the runtime, task and the queued agent record.
pub struct Prepared {
    pub agent: AgentRecord,
    pub runtime_name: String,
    pub task: Task,
}

/// What a runtime whose adapter cannot serve a session in a Pod says on Kubernetes.
pub fn stream_local_only(adapter: &dyn Adapter) -> String {
    format!(
        "{0} stream sessions run locally only (the seed's capability table: K8s stream N/A for {0}); use --mode batch on Kubernetes, or runtime.backend: local",
        adapter.binary()
    )
}

/// The runtime entry `name`, or an error naming the valid ones.
pub fn runtime<'c>(cfg: &'c LoadedConfig, name: &str) -> Result<&'c RuntimeEntry, RunError> {
    let runtimes = &cfg.config.agents.agent_runtimes;
    runtimes.get(name).ok_or_else(|| {
        let valid: Vec<&str> = runtimes.keys().map(String::as_str).collect();
        RunError::Usage(format!(
            "unknown runtime `{name}`; {}",
            fracta_config::diagnostic::valid_help("runtimes", name, &valid)
        ))
    })
}

/// An agent's wall-clock budget in seconds: its own (its parent's, narrowed), else the
/// config's.
pub fn wall_clock_secs(cfg: &LoadedConfig, agent: &AgentRecord) -> u64 {
    agent
        .meta
        .budgets
        .and_then(|b| b.wall_clock_secs)
        .unwrap_or_else(|| cfg.config.agents.budgets.wall_clock_secs())
}

/// This machine's name, recorded on agents so that only this host judges their processes.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

fn state_mode(m: Mode) -> fracta_state::Mode {
    match m {
        Mode::Batch => fracta_state::Mode::Batch,
        Mode::Stream => fracta_state::Mode::Stream,
    }
}

/// The model of a tier on a runtime: asked for explicitly, a tier the runtime does not map is
/// an error naming the tiers it has; a task's default tier falls back to the runtime's model.
fn tier_model(
    runtime_name: &str,
    rt: &RuntimeEntry,
    tier: Tier,
    explicit: bool,
) -> Result<Option<String>, RunError> {
    match rt.model_tiers.get(tier) {
        Some(m) => Ok(Some(m.to_string())),
        None if explicit => {
            let have: Vec<&str> = Tier::ALL
                .into_iter()
                .filter(|t| rt.model_tiers.get(*t).is_some())
                .map(Tier::as_str)
                .collect();
            Err(RunError::Usage(format!(
                "runtime `{runtime_name}` has no model for tier `{}`; {}",
                tier.as_str(),
                if have.is_empty() {
                    format!(
                        "it has no model_tiers: pass --model, or set agents.agent_runtimes.{runtime_name}.model_tiers.{}",
                        tier.as_str()
                    )
                } else {
                    format!("its tiers: {}", have.join(", "))
                }
            )))
        }
        None => Ok(None),
    }
}

/// Resolve a request into a queued agent record (nothing runs yet).
///
/// `store` is where a child's parent is read; a root agent's request needs none (`fracta spawn`
/// resolves it before the store is open).
pub fn prepare(
    cfg: &LoadedConfig,
    store: Option<&dyn Store>,
    req: &SpawnRequest,
) -> Result<Prepared, RunError> {
    let task = task::resolve(&cfg.tasks_dir(), &req.task, req.prompt.as_deref())?;
    if task.instructions.trim().is_empty() {
        return Err(RunError::Usage(format!(
            "task `{}` has no instructions; give some with --prompt",
            task.name
        )));
    }
    let runtime_name = match req.runtime.clone().or_else(|| task.defaults.runtime.clone()) {
        Some(r) => r,
        None => cfg.default_runtime().map(str::to_string).ok_or_else(|| {
            let valid: Vec<&str> = cfg.config.agents.agent_runtimes.keys().map(String::as_str).collect();
            RunError::Usage(if valid.is_empty() {
                "no runtimes are configured; add one under agents.agent_runtimes".into()
            } else {
                format!(
                    "which runtime? pass --runtime, or set agents.default_runtime; valid runtimes: {}",
                    fracta_config::diagnostic::one_of(&valid)
                )
            })
        })?,
    };
    let rt = runtime(cfg, &runtime_name)?;
    let mode = req
        .mode
        .or(task.defaults.mode)
        .unwrap_or(cfg.config.agents.default_mode);
    let tier = req.tier.or(task.defaults.tier);
    // What is asked for now beats the task's defaults: --model, then --tier, then the task's
    // model, then its tier, then the runtime's model.
    let model = match &req.model {
        Some(m) => Some(m.clone()),
        None => match req.tier {
            Some(t) => tier_model(&runtime_name, rt, t, true)?,
            None => None,
        },
    };
    let model = match model.or_else(|| task.defaults.model.clone()) {
        Some(m) => Some(m),
        None => match task.defaults.tier {
            Some(t) => tier_model(&runtime_name, rt, t, false)?,
            None => None,
        },
    }
    .or_else(|| rt.model.clone());
    let model = match model {
        Some(m) => Some(
            fracta_config::expand::expand_env(&m)
                .map_err(|e| RunError::Usage(format!("model: {e}")))?,
        ),
        None => None,
    };
    let mut agent = AgentRecord::new(
        &task.name,
        &runtime_name,
        rt.adapter.as_str(),
        state_mode(mode),
        &task.instructions,
    );
    if let Some(pid) = &req.parent_id {
        let Some(store) = store else {
            return Err(RunError::Usage(format!(
                "agent {pid}'s child is resolved without the state store that holds its parent"
            )));
        };
        let parent = store.get_agent(pid)?;
        agent = agent.with_parent(&parent);
    }
    agent.model = model;
    agent.host = Some(hostname());
    agent.meta.tier = tier.map(|t| t.as_str().to_string());
    agent.meta.base = req.base.clone();
    Ok(Prepared {
        agent,
        runtime_name,
        task,
    })
}

/// Where an agent CLI is found: the runtime's `command`, else PATH, else the project's
/// `node_modules/.bin` (beside the config, or above the fracta executable).
pub fn locate_binary(
    cfg: &LoadedConfig,
    rt: &RuntimeEntry,
    adapter: &dyn Adapter,
) -> Result<PathBuf, String> {
    let install = if rt.adapter == fracta_config::AdapterKind::Acp {
        "install the agent, or set the runtime's `command:` to where it is".to_string()
    } else {
        format!(
            "install it with `npm ci` in the Fracta repository (pinned in package.json), or `npm install -g {}`, or set `command:` on the runtime",
            adapter.npm_package()
        )
    };
    let name = rt
        .command
        .clone()
        .unwrap_or_else(|| adapter.binary().to_string());
    let name = fracta_config::expand::expand_env(&name).unwrap_or(name);
    if name.contains('/') {
        let p = if Path::new(&name).is_absolute() {
            PathBuf::from(&name)
        } else {
            cfg.dir.join(&name)
        };
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "the {} CLI `{}` does not exist; {install}",
                adapter.binary(),
                p.display()
            ))
        };
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    // A generic ACP runtime names its agent's CLI in `command`; the project's pinned CLIs
    // are candidates for it too.
    if rt.command.is_none() || rt.adapter == fracta_config::AdapterKind::Acp {
        let mut roots: Vec<PathBuf> = cfg.dir.canonicalize().ok().into_iter().collect();
        if let Ok(exe) = std::env::current_exe() {
            roots.push(exe);
        }
        for root in roots {
            for anc in root.ancestors() {
                dirs.push(anc.join("node_modules").join(".bin"));
            }
        }
    }
    for d in dirs {
        let p = d.join(&name);
        if crate::launch::is_executable(&p) {
            return Ok(p);
        }
    }
    Err(format!(
        "the {} CLI (`{name}`) is not installed: it is not on PATH nor in node_modules/.bin; {install}",
        adapter.binary()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn setup() -> (tempfile::TempDir, LoadedConfig, fracta_state::SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = fracta_config::parse(
            "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n      model: RT-MODEL\n      model_tiers:\n        heavy: H-MODEL\n",
            &dir.path().join("fracta.yaml"),
        )
        .unwrap();
        let tasks = cfg.tasks_dir();
        std::fs::create_dir_all(&tasks).unwrap();
        std::fs::write(
            tasks.join("pinned.md"),
            "---\nmodel: TASK-MODEL\n---\nDo it.\n",
        )
        .unwrap();
        (
            dir,
            cfg,
            fracta_state::SqliteStore::open_in_memory().unwrap(),
        )
    }

    /// A generic ACP runtime's missing agent is named by its `command`, with no npm advice.
    #[test]
    fn a_missing_acp_agent_is_named_by_its_command() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = fracta_config::parse(
            "agents:\n  agent_runtimes:\n    q:\n      adapter: acp\n      command: no-such-acp-agent-xyz\n      args: [--acp]\n",
            &dir.path().join("fracta.yaml"),
        )
        .unwrap();
        let rt = runtime(&cfg, "q").unwrap();
        let e = locate_binary(&cfg, rt, crate::adapter::adapter_for(rt.adapter)).unwrap_err();
        assert!(e.contains("`no-such-acp-agent-xyz`"), "{e}");
        assert!(
            e.contains("set the runtime's `command:`") && !e.contains("npm"),
            "{e}"
        );
    }

    /// An explicit `--tier` the runtime does not map is an error naming the tiers it has
    /// (it was silently ignored).
    #[test]
    fn an_unmapped_tier_is_an_error_naming_the_tiers() {
        let (_d, cfg, store) = setup();
        let req = SpawnRequest {
            task: "t".into(),
            prompt: Some("x".into()),
            tier: Some(Tier::Light),
            ..SpawnRequest::default()
        };
        let Err(RunError::Usage(e)) = prepare(&cfg, Some(&store), &req) else {
            panic!("an unmapped tier was accepted");
        };
        assert!(
            e.contains("no model for tier `light`") && e.contains("its tiers: heavy"),
            "{e}"
        );
    }

    /// What is asked for now beats the task's defaults: `--tier` over the task file's model
    /// (the task's model used to win).
    #[test]
    fn an_explicit_tier_beats_the_tasks_model() {
        let (_d, cfg, store) = setup();
        let mut req = SpawnRequest {
            task: "pinned".into(),
            tier: Some(Tier::Heavy),
            ..SpawnRequest::default()
        };
        assert_eq!(
            prepare(&cfg, Some(&store), &req)
                .unwrap()
                .agent
                .model
                .as_deref(),
            Some("H-MODEL")
        );
        req.tier = None;
        assert_eq!(
            prepare(&cfg, Some(&store), &req)
                .unwrap()
                .agent
                .model
                .as_deref(),
            Some("TASK-MODEL")
        );
        req.model = Some("ASKED".into());
        req.tier = Some(Tier::Heavy);
        assert_eq!(
            prepare(&cfg, Some(&store), &req)
                .unwrap()
                .agent
                .model
                .as_deref(),
            Some("ASKED")
        );
    }
}
