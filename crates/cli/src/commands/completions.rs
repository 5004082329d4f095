//! Shell completion. `fracta completions SHELL` prints a script that asks `fracta` itself for
//! candidates as you type (clap_complete's dynamic completion: `COMPLETE=SHELL fracta -- …`),
//! so agent ids and task names complete from this project: its state store and
//! `.fracta/tasks`.

use std::ffi::OsStr;
use std::process::ExitCode;

use clap_complete::CompletionCandidate;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
use fracta_state::{AgentFilter, Store};

use crate::cli::CompletionsArgs;

/// The variable that turns a run of `fracta` into a completion request.
pub const COMPLETE_VAR: &str = "COMPLETE";

pub fn run(a: CompletionsArgs) -> anyhow::Result<ExitCode> {
    let shell: &dyn EnvCompleter = match a.shell {
        clap_complete::Shell::Bash => &Bash,
        clap_complete::Shell::Elvish => &Elvish,
        clap_complete::Shell::Fish => &Fish,
        clap_complete::Shell::PowerShell => &Powershell,
        clap_complete::Shell::Zsh => &Zsh,
        other => anyhow::bail!("no completion script for {other}"),
    };
    let mut out = std::io::stdout().lock();
    shell.write_registration(COMPLETE_VAR, "fracta", "fracta", "fracta", &mut out)?;
    Ok(ExitCode::SUCCESS)
}

/// The project's state store, if it has one (never created by completing).
fn store() -> Option<std::sync::Arc<dyn Store>> {
    let cfg = fracta_config::load(None).ok()?;
    let path = cfg.state_path();
    if !path.exists() {
        return None;
    }
    fracta_state::open_store(&fracta_state::StateConfig::sqlite(path)).ok()
}

/// Agent ids: the full id, and the short one the live view shows (its last six characters),
/// each starting with what was typed; `@last` too. Each with its task and status.
pub fn agent_ids(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().to_ascii_uppercase();
    let mut out = Vec::new();
    if "@LAST".starts_with(&typed) {
        out.push(
            CompletionCandidate::new(fracta_state::LAST)
                .help(Some("the agent started last".into())),
        );
    }
    let Some(store) = store() else {
        return out;
    };
    let Ok(agents) = store.list_agents(&AgentFilter::default()) else {
        return out;
    };
    for a in agents {
        let help = format!("{} ({}, {})", a.task, a.runtime, a.status.as_str());
        let short = super::agent::short(&a.id);
        if a.id.starts_with(&typed) {
            out.push(CompletionCandidate::new(&a.id).help(Some(help.clone().into())));
        }
        if !typed.is_empty() && short.starts_with(&typed) && short != a.id {
            out.push(CompletionCandidate::new(short).help(Some(help.into())));
        }
    }
    out
}

/// Task names: the task files in `.fracta/tasks`, and tasks agents ran.
pub fn task_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let typed = current.to_string_lossy().to_string();
    let mut names = std::collections::BTreeMap::new();
    if let Ok(cfg) = fracta_config::load(None)
        && let Ok(dir) = std::fs::read_dir(cfg.tasks_dir())
    {
        for e in dir.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "md")
                && let Some(stem) = p.file_stem()
            {
                names.insert(stem.to_string_lossy().to_string(), "task file");
            }
        }
    }
    if let Some(store) = store()
        && let Ok(tasks) = store.list_tasks()
    {
        for t in tasks {
            names.entry(t.name).or_insert("ran before");
        }
    }
    names
        .into_iter()
        .filter(|(n, _)| n.starts_with(&typed))
        .map(|(n, why)| CompletionCandidate::new(n).help(Some(why.into())))
        .collect()
}
