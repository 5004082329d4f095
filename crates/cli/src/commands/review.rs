//! Reviewing and cleaning up agents' work: `fracta diff`, `fracta rm`, `fracta prune`.

use std::process::ExitCode;

use fracta_config::LoadedConfig;
use fracta_core::review::{ReviewError, base_of, refusal};
use fracta_core::workspace;
use fracta_state::{AgentFilter, AgentRecord, AgentStatus, Store};

use super::agent::{open_store, run_failure};
use crate::cli::{DiffArgs, MergeArgs, PruneArgs, RmArgs};
use crate::exit::{self, Failure};

/// A review error as the CLI reports it (exit code and message).
fn review_failure(e: ReviewError) -> anyhow::Error {
    match e {
        ReviewError::NotEnded(m) => Failure::msg(exit::USAGE, m),
        e @ ReviewError::NoBranch { .. } => Failure::msg(exit::NOT_FOUND, e.to_string()),
        ReviewError::Refused(m) => Failure::msg(exit::FAILURE, m),
        ReviewError::Store(e) => run_failure(e.into()),
        e => anyhow::Error::new(e),
    }
}

fn remove(cfg: &LoadedConfig, store: &dyn Store, a: &AgentRecord) -> anyhow::Result<()> {
    if let Some(at) = &a.meta.kubernetes {
        delete_claim(cfg, a, &at.namespace)?;
    }
    fracta_core::review::remove(cfg, store, a).map_err(review_failure)
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

/// A Kubernetes agent's claim (its workspace and runtime home), kept after its run for a
/// resume, goes with the agent. When the cluster refuses, the record stays, so that `rm`
/// can be run again.
fn delete_claim(cfg: &LoadedConfig, a: &AgentRecord, namespace: &str) -> anyhow::Result<()> {
    let name = fracta_kube::render::object_name(&a.id);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let kube = fracta_kube::KubeBackend::connect(cfg.config.runtime.kubernetes.as_ref())
            .await?
            .in_namespace(namespace);
        kube.delete_claim(&a.id).await
    })
    .map_err(|e| {
        Failure::msg(
            exit::FAILURE,
            format!(
                "cannot delete agent {}'s PersistentVolumeClaim {name} in namespace {namespace}: {e}; the agent is kept (run `fracta rm {}` again once the cluster answers)",
                a.id, a.id
            ),
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
    let dir = cfg.project_dir();
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
    if let Some(msg) = changed_nothing(cfg, &agent) {
        println!("nothing to merge: {msg}");
        if a.rm {
            remove(cfg, store.as_ref(), &agent)?;
            println!("removed agent {}", agent.id);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let how = if a.squash {
        workspace::MergeHow::Squash
    } else if a.rebase {
        workspace::MergeHow::Rebase
    } else {
        workspace::MergeHow::Merge
    };
    let m = fracta_core::review::merge(cfg, &agent, how).map_err(review_failure)?;
    println!(
        "merged agent {} ({}) into {}: {}",
        agent.id,
        m.branch,
        m.into,
        &m.head[..m.head.len().min(12)]
    );
    if a.rm {
        remove(cfg, store.as_ref(), &agent)?;
        println!("removed agent {}", agent.id);
    }
    Ok(ExitCode::SUCCESS)
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
    let dir = cfg.project_dir();
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
    if !a.dry_run {
        // The worktrees kept for the next spawns (of agents that changed nothing) go too.
        let configured = cfg
            .worktrees_dir()
            .map(|d| std::path::absolute(&d).unwrap_or(d));
        let spares = workspace::remove_spares(&dir, &cfg.fracta_dir(), configured.as_deref());
        if spares > 0 {
            println!("removed {spares} spare worktree(s)");
        }
    }
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
