//! Reviewing an ended agent's work: its base branch, merging its branch, and removing it
//! (worktree, branch, runtime home, record) once nothing unmerged would be lost. One place for
//! the CLI (`fracta merge`, `rm`, `prune`) and the control plane's API.

use std::path::{Path, PathBuf};

use fracta_config::LoadedConfig;
use fracta_state::{AgentRecord, Store, StoreError};

use crate::workspace::{self, MergeError, MergeHow, WorkspaceError};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// The agent still runs.
    #[error("{0}")]
    NotEnded(String),
    /// The agent has no branch left to merge.
    #[error("agent {id} has no branch to merge")]
    NoBranch { id: String },
    /// The merge was refused (a dirty work tree, a conflict): nothing was changed.
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error("cannot remove {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where an agent's branch left from: as recorded, else the project's default.
pub fn base_of(cfg: &LoadedConfig, a: &AgentRecord) -> String {
    a.meta
        .base
        .clone()
        .or_else(|| cfg.config.project.default_base_branch.clone())
        .unwrap_or_else(|| "main".into())
}

/// A merged branch: the new head commit of the branch it went into.
#[derive(Debug, Clone)]
pub struct Merged {
    pub branch: String,
    pub into: String,
    pub head: String,
}

/// Bring an ended agent's branch into the branch checked out in the project.
pub fn merge(
    cfg: &LoadedConfig,
    agent: &AgentRecord,
    how: MergeHow,
) -> Result<Merged, ReviewError> {
    if !agent.status.is_terminal() {
        return Err(ReviewError::NotEnded(format!(
            "agent {} is {}; merge its work once it has ended (or stop it)",
            agent.id,
            agent.status.as_str()
        )));
    }
    let dir = cfg.project_dir();
    let Some(branch) = agent
        .branch
        .as_deref()
        .filter(|b| workspace::branch_exists(&dir, b))
    else {
        return Err(ReviewError::NoBranch {
            id: agent.id.clone(),
        });
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
        MergeError::Git(g) => ReviewError::Workspace(g),
        refused => ReviewError::Refused(refused.to_string()),
    })?;
    Ok(Merged {
        branch: branch.to_string(),
        into: workspace::current_branch(&dir).unwrap_or_default(),
        head,
    })
}

/// Why an agent may not be removed, if it may not: it still runs, or (unless `force`) its
/// branch has work that is not on its base.
pub fn refusal(
    cfg: &LoadedConfig,
    a: &AgentRecord,
    force: bool,
) -> Result<Option<String>, WorkspaceError> {
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
    let dir = cfg.project_dir();
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

/// Remove an agent's worktree, branch, runtime home and record (check [`refusal`] first).
pub fn remove(cfg: &LoadedConfig, store: &dyn Store, a: &AgentRecord) -> Result<(), ReviewError> {
    let dir = cfg.project_dir();
    workspace::remove(
        &dir,
        a.workspace.as_deref().map(Path::new),
        a.branch.as_deref(),
    )?;
    if let Some(home) = a.runtime_home.as_deref().map(Path::new)
        && home.exists()
    {
        std::fs::remove_dir_all(home).map_err(|source| ReviewError::Io {
            path: home.to_path_buf(),
            source,
        })?;
    }
    store.delete_agent(&a.id)?;
    tracing::info!(agent = %a.id, "agent removed");
    Ok(())
}
