//! Reviewing and cleaning up agents' work: `fracta diff`, `fracta rm`, `fracta prune`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fracta_config::LoadedConfig;
use fracta_core::workspace;
use fracta_state::{AgentFilter, AgentRecord, AgentStatus, Store};

use super::agent::{open_store, run_failure};
use crate::cli::{DiffArgs, MergeArgs, PruneArgs, RmArgs};
use crate::exit::{self, Failure};

fn project_dir(cfg: &LoadedConfig) -> PathBuf {
    std::path::absolute(&cfg.dir).unwrap_or_else(|_| cfg.dir.clone())
}

/// Where an agent's branch left from: as recorded, else the project's default.
fn base_of(cfg: &LoadedConfig, a: &AgentRecord) -> String {
    a.meta
        .base
        .clone()
        .or_else(|| cfg.config.project.default_base_branch.clone())
        .unwrap_or_else(|| "main".into())
}

/// For an agent that ended having changed nothing (its branch and worktree were removed
/// then): saying so.
fn changed_nothing(cfg: &LoadedConfig, a: &AgentRecord) -> Option<String> {
    a.meta.unchanged_branch.as_ref().map(|b| {
        format!(
            "agent {} changed nothing (no commit beyond {}, nothing uncommitted): its branch {b} and worktree were removed when it ended",
            a.id,
            base_of(cfg, a)
        )
    })
}

fn agent(store: &dyn Store, id: &str) -> anyhow::Result<AgentRecord> {
    store.get_agent(id).map_err(|e| run_failure(e.into()))
}

/// `fracta diff ID [--stat]`.
pub fn diff(cfg: &LoadedConfig, a: DiffArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(cfg)?;
    let agent = agent(store.as_ref(), &a.id)?;
    if let Some(msg) = changed_nothing(cfg, &agent) {
        eprintln!("{msg}");
        return Ok(ExitCode::SUCCESS);
    }
    let Some(branch) = agent.branch.as_deref() else {
        return Err(Failure::msg(
            exit::USAGE,
            format!(
                "agent {} has no branch (it ran outside a git repository, or on Kubernetes)",
                agent.id
            ),
        ));
    };
    let dir = project_dir(cfg);
    if !workspace::branch_exists(&dir, branch) {
        return Err(Failure::msg(
            exit::NOT_FOUND,
            format!("agent {}'s branch {branch} no longer exists", agent.id),
        ));
    }
    let base = base_of(cfg, &agent);
    let out = workspace::diff(&dir, &base, branch, a.stat)?;
    if out.is_empty() {
        eprintln!(
            "agent {} changed nothing on {branch} since {base}",
            agent.id
        );
    } else {
        println!("{out}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `fracta merge ID [--squash|--rebase] [--rm]`.
pub fn merge(cfg: &LoadedConfig, a: MergeArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(cfg)?;
    let agent = agent(store.as_ref(), &a.id)?;
    if !agent.status.is_terminal() {
        return Err(Failure::msg(
            exit::USAGE,
            format!(
                "agent {} is {}; merge its work once it has ended (or stop it)",
                agent.id,
                agent.status.as_str()
            ),
        ));
    }
    if let Some(msg) = changed_nothing(cfg, &agent) {
        println!("nothing to merge: {msg}");
        if a.rm {
            remove(cfg, store.as_ref(), &agent)?;
            println!("removed agent {}", agent.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let dir = project_dir(cfg);
    let Some(branch) = agent
        .branch
        .as_deref()
        .filter(|b| workspace::branch_exists(&dir, b))
    else {
        return Err(Failure::msg(
            exit::NOT_FOUND,
            format!("agent {} has no branch to merge", agent.id),
        ));
    };
    let how = if a.squash {
        workspace::MergeHow::Squash
    } else if a.rebase {
        workspace::MergeHow::Rebase
    } else {
        workspace::MergeHow::Merge
    };
    let message = format!("{} (fracta agent {})", agent.task, agent.id);
    let head = workspace::merge(
        &dir,
        branch,
        agent.workspace.as_deref().map(Path::new),
        how,
        &message,
    )
    .map_err(|e| match e {
        workspace::MergeError::Git(g) => anyhow::Error::new(g),
        refused => Failure::msg(exit::FAILURE, refused.to_string()),
    })?;
    let into = workspace::current_branch(&dir).unwrap_or_default();
    println!(
        "merged agent {} ({branch}) into {into}: {}",
        agent.id,
        &head[..head.len().min(12)]
    );
    if a.rm {
        remove(cfg, store.as_ref(), &agent)?;
        println!("removed agent {}", agent.id);
    }
    Ok(ExitCode::SUCCESS)
}

/// Why an agent may not be removed, if it may not.
fn refusal(cfg: &LoadedConfig, a: &AgentRecord, force: bool) -> anyhow::Result<Option<String>> {
    if !a.status.is_terminal() {
        return Ok(Some(format!(
            "agent {} is {}; stop it first (fracta stop {})",
            a.id,
            a.status.as_str(),
            a.id
        )));
    }
    if force {
        return Ok(None);
    }
    let dir = project_dir(cfg);
    if let Some(branch) = a.branch.as_deref()
        && workspace::branch_exists(&dir, branch)
    {
        let base = base_of(cfg, a);
        if !workspace::is_merged(&dir, branch, &base)? {
            return Ok(Some(format!(
                "agent {}'s branch {branch} has work that is not on {base}; review it (fracta diff {}), merge it, or pass --force",
                a.id, a.id
            )));
        }
    }
    Ok(None)
}

/// Remove an agent's worktree, branch, runtime home and record.
fn remove(cfg: &LoadedConfig, store: &dyn Store, a: &AgentRecord) -> anyhow::Result<()> {
    let dir = project_dir(cfg);
    workspace::remove(
        &dir,
        a.workspace.as_deref().map(Path::new),
        a.branch.as_deref(),
    )?;
    if let Some(home) = a.runtime_home.as_deref().map(Path::new)
        && home.exists()
    {
        std::fs::remove_dir_all(home)?;
    }
    store
        .delete_agent(&a.id)
        .map_err(|e| run_failure(e.into()))?;
    tracing::info!(agent = %a.id, "agent removed");
    Ok(())
}

/// `fracta rm ID [--force]`.
pub fn rm(cfg: &LoadedConfig, a: RmArgs) -> anyhow::Result<ExitCode> {
    let store = open_store(cfg)?;
    let agent = agent(store.as_ref(), &a.id)?;
    if let Some(why) = refusal(cfg, &agent, a.force)? {
        return Err(Failure::msg(exit::USAGE, why));
    }
    remove(cfg, store.as_ref(), &agent)?;
    println!(
        "removed agent {} ({}{})",
        agent.id,
        agent.task,
        agent
            .branch
            .as_deref()
            .map(|b| format!(", branch {b}"))
            .or_else(|| agent
                .meta
                .unchanged_branch
                .as_ref()
                .map(|_| ", which changed nothing".to_string()))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

/// `30m`, `12h`, `7d`, `2w` (and `s`), as seconds.
fn age(text: &str) -> Option<i64> {
    let t = text.trim();
    let (n, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit())?);
    let n: i64 = n.parse().ok()?;
    let secs = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    n.checked_mul(secs)
}

/// `fracta prune [--merged] [--older-than AGE] [--force] [--dry-run]`: every ended agent
/// that matches, each with the checks of `rm`; what it leaves, it says why.
pub fn prune(cfg: &LoadedConfig, a: PruneArgs) -> anyhow::Result<ExitCode> {
    let min_age = match a.older_than.as_deref() {
        Some(t) => Some(age(t).ok_or_else(|| {
            Failure::msg(
                exit::USAGE,
                format!("--older-than {t}: give a number and a unit, e.g. 30m, 12h, 7d, 2w"),
            )
        })?),
        None => None,
    };
    let store = open_store(cfg)?;
    let ended = store
        .list_agents(&AgentFilter {
            statuses: AgentStatus::ALL
                .into_iter()
                .filter(|s| s.is_terminal())
                .collect(),
            ..AgentFilter::default()
        })
        .map_err(|e| run_failure(e.into()))?;
    let now = jiff::Timestamp::now();
    let dir = project_dir(cfg);
    let (mut removed, mut kept) = (0, 0);
    for agent in ended {
        if let Some(min) = min_age {
            let at = agent.ended_at.unwrap_or(agent.updated_at);
            if now.duration_since(at).as_secs() < min {
                continue;
            }
        }
        if a.merged
            && let Some(branch) = agent.branch.as_deref()
            && workspace::branch_exists(&dir, branch)
            && !workspace::is_merged(&dir, branch, &base_of(cfg, &agent))?
        {
            continue;
        }
        if let Some(why) = refusal(cfg, &agent, a.force)? {
            println!("kept    {}: {why}", agent.id);
            kept += 1;
            continue;
        }
        if a.dry_run {
            println!("would remove {} ({})", agent.id, agent.task);
        } else {
            remove(cfg, store.as_ref(), &agent)?;
            println!("removed {} ({})", agent.id, agent.task);
        }
        removed += 1;
    }
    let verb = if a.dry_run { "would remove" } else { "removed" };
    println!("{verb} {removed} agent(s); kept {kept}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::age;

    #[test]
    fn ages_read_as_seconds() {
        assert_eq!(age("30m"), Some(1800));
        assert_eq!(age("12h"), Some(43_200));
        assert_eq!(age("7d"), Some(604_800));
        assert_eq!(age("2w"), Some(1_209_600));
        assert_eq!(age("7"), None);
        assert_eq!(age("d"), None);
        assert_eq!(age("3y"), None);
    }
}
