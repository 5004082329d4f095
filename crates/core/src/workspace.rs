//! Workspaces: in a git repository, a worktree on a new branch from the base branch, so
//! parallel agents never trample each other; elsewhere, a fresh folder.

use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    #[error("cannot create workspace {}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("git {args} failed in {}: {stderr}", dir.display())]
    Git {
        args: String,
        dir: PathBuf,
        stderr: String,
    },
    #[error(
        "base branch `{base}` does not exist in {}; set project.default_base_branch to an existing branch (found: {found})",
        repo.display()
    )]
    NoBaseBranch {
        base: String,
        repo: PathBuf,
        found: String,
    },
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub path: PathBuf,
    /// The agent's branch, for git worktrees.
    pub branch: Option<String>,
}

fn git(dir: &Path, args: &[&str]) -> Result<String, WorkspaceError> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|source| WorkspaceError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    if !out.status.success() {
        return Err(WorkspaceError::Git {
            args: args.join(" "),
            dir: dir.to_path_buf(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The top of the git work tree containing `dir`, if any.
pub fn git_toplevel(dir: &Path) -> Option<PathBuf> {
    git(dir, &["rev-parse", "--show-toplevel"])
        .ok()
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

/// Keep Fracta's own files (worktrees, state, logs) out of the project's `git status`, while
/// task files stay committable. Written once; a file the user changed is left alone.
pub fn ensure_fracta_ignore(fracta_dir: &Path) {
    let p = fracta_dir.join(".gitignore");
    if !p.exists() {
        let _ = std::fs::create_dir_all(fracta_dir);
        let _ = std::fs::write(
            &p,
            "# Written by fracta: ignore its state, keep tasks.\n*\n!.gitignore\n!tasks/\n!tasks/**\n",
        );
    }
}

/// A short, branch-safe form of a task name.
fn slug(task: &str) -> String {
    let s: String = task
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let s = s.trim_matches('-');
    if s.is_empty() {
        "task".to_string()
    } else {
        s.chars().take(40).collect()
    }
}

/// Create the workspace for agent `id` on `task`. `project_dir` is the config file's folder;
/// workspaces live under `root` (`.fracta/worktrees` or `.fracta/workspaces`).
pub fn create(
    project_dir: &Path,
    fracta_dir: &Path,
    id: &str,
    task: &str,
    base: &str,
) -> Result<Workspace, WorkspaceError> {
    let short = id
        .get(id.len().saturating_sub(8)..)
        .unwrap_or(id)
        .to_ascii_lowercase();
    match git_toplevel(project_dir) {
        Some(top) => {
            let path = fracta_dir.join("worktrees").join(id);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| WorkspaceError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            let branch = format!("fracta/{}-{short}", slug(task));
            let p = path.to_string_lossy().to_string();
            if let Err(e) = git(
                &top,
                &["worktree", "add", "--quiet", "-b", &branch, &p, base],
            ) {
                // Only now ask why: a missing base branch is the usual reason.
                let base_exists = git(
                    &top,
                    &[
                        "rev-parse",
                        "--verify",
                        "--quiet",
                        &format!("{base}^{{commit}}"),
                    ],
                )
                .is_ok();
                if base_exists {
                    return Err(e);
                }
                let found = git(&top, &["branch", "--format=%(refname:short)"]).unwrap_or_default();
                let found = if found.is_empty() {
                    "no branches with commits".to_string()
                } else {
                    found.replace('\n', ", ")
                };
                return Err(WorkspaceError::NoBaseBranch {
                    base: base.to_string(),
                    repo: top,
                    found,
                });
            }
            Ok(Workspace {
                path,
                branch: Some(branch),
            })
        }
        None => {
            let path = fracta_dir.join("workspaces").join(id);
            std::fs::create_dir_all(&path).map_err(|source| WorkspaceError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(Workspace { path, branch: None })
        }
    }
}

/// Keep the runtime files Fracta wrote into a worktree out of every commit made there, the
/// agent's own included: untracked ones through a per-worktree excludes file, tracked ones
/// (a repository that has its own `.claude/settings.json`) with `--skip-worktree`.
pub fn keep_out_of_commits(
    ws: &Path,
    home: &Path,
    files: &[PathBuf],
) -> Result<(), WorkspaceError> {
    let rel: Vec<String> = files
        .iter()
        .filter_map(|p| p.strip_prefix(ws).ok())
        .map(|p| p.display().to_string())
        .collect();
    if rel.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(home).map_err(|source| WorkspaceError::Io {
        path: home.to_path_buf(),
        source,
    })?;
    let exclude = home.join("git-exclude");
    let body = format!(
        "# Written by fracta: runtime config, never committed\n{}",
        rel.iter().map(|r| format!("/{r}\n")).collect::<String>()
    );
    // Done already for this worktree (a resumed turn writes the same files).
    if std::fs::read_to_string(&exclude).is_ok_and(|old| old == body) {
        return Ok(());
    }
    std::fs::write(&exclude, body).map_err(|source| WorkspaceError::Io {
        path: exclude.clone(),
        source,
    })?;
    git(ws, &["config", "extensions.worktreeConfig", "true"])?;
    git(
        ws,
        &[
            "config",
            "--worktree",
            "core.excludesFile",
            &exclude.display().to_string(),
        ],
    )?;
    // The ones the repository tracks (it has its own `.claude/settings.json`, say).
    let mut args = vec!["ls-files", "-z", "--"];
    args.extend(rel.iter().map(String::as_str));
    let tracked = git(ws, &args)?;
    let tracked: Vec<&str> = tracked.split('\0').filter(|t| !t.is_empty()).collect();
    if !tracked.is_empty() {
        let mut args = vec!["update-index", "--skip-worktree", "--"];
        args.extend(tracked);
        git(ws, &args)?;
    }
    Ok(())
}

/// Commit what the agent left uncommitted on its branch, leaving out the runtime config files
/// Fracta wrote. Returns the new commit, if there was anything to commit.
pub fn commit_leftovers(
    ws: &Path,
    message: &str,
    exclude: &[PathBuf],
) -> Result<Option<String>, WorkspaceError> {
    // Nothing changed (the usual end of a question-and-answer turn): one git call.
    if git(ws, &["status", "--porcelain", "--untracked-files=normal"])?.is_empty() {
        return Ok(None);
    }
    // Fracta's files are already excluded (`keep_out_of_commits`); naming them in `git add`
    // would be an error, so stage everything and then make sure none of them is staged.
    git(ws, &["add", "-A", "--", "."])?;
    for p in exclude {
        if let Ok(rel) = p.strip_prefix(ws) {
            let _ = git(
                ws,
                &[
                    "restore",
                    "--staged",
                    "--quiet",
                    "--",
                    &rel.display().to_string(),
                ],
            );
        }
    }
    if git(ws, &["diff", "--cached", "--quiet"]).is_ok() {
        return Ok(None);
    }
    git(
        ws,
        &[
            "-c",
            "user.name=fracta",
            "-c",
            "user.email=fracta@localhost",
            "commit",
            "--quiet",
            "--no-verify",
            "-m",
            message,
        ],
    )?;
    git(ws, &["rev-parse", "HEAD"]).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("My Task!"), "my-task");
        assert_eq!(slug("///"), "task");
    }
}
