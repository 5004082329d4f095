//! Workspaces: in a git repository, a worktree on a new branch from the base branch, so
//! parallel agents never trample each other; elsewhere, a fresh folder.
//!
//! What happens on every spawn (find the repository, add the worktree, exclude Fracta's files,
//! see whether the agent left changes) runs in-process with libgit2: each `git` process costs
//! a few milliseconds, and a spawn's fixed cost is measured against the agent CLI's start-up.
//! Rarer steps (committing leftovers, marking tracked files skip-worktree) use the git CLI.

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
    #[error("{op} failed in {}: {message}", dir.display())]
    Lib {
        op: &'static str,
        dir: PathBuf,
        message: String,
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
    #[error(
        "not committed: {} hold(s) a secret value Fracta materialized for this agent; the work is left uncommitted in {}",
        files.join(", "),
        ws.display()
    )]
    SecretInWork { files: Vec<String>, ws: PathBuf },
}

#[derive(Debug, Clone)]
pub struct Workspace {
    pub path: PathBuf,
    /// The agent's branch, for git worktrees.
    pub branch: Option<String>,
    /// What the branch was made from (the base asked for, or the one found).
    pub base: String,
}

/// What a new worktree branches from.
#[derive(Debug, Clone)]
pub enum Base {
    /// This branch (or any revision naming a commit).
    Named(String),
    /// The branch the project has checked out, else `fallback` (a detached HEAD, no
    /// repository).
    Current { fallback: String },
}

/// Run the git CLI in `dir` (never prompting), whatever its exit.
fn git_run(dir: &Path, args: &[&str]) -> Result<std::process::Output, WorkspaceError> {
    Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_TERMINAL_PROMPT", "0")
        .output()
        .map_err(|source| WorkspaceError::Io {
            path: dir.to_path_buf(),
            source,
        })
}

fn git_failed(dir: &Path, args: &[&str], out: &std::process::Output) -> WorkspaceError {
    WorkspaceError::Git {
        args: args.join(" "),
        dir: dir.to_path_buf(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    }
}

fn git(dir: &Path, args: &[&str]) -> Result<String, WorkspaceError> {
    let out = git_run(dir, args)?;
    if !out.status.success() {
        return Err(git_failed(dir, args, &out));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An I/O error on `p`.
fn io(p: &Path) -> impl FnOnce(std::io::Error) -> WorkspaceError {
    let path = p.to_path_buf();
    move |source| WorkspaceError::Io { path, source }
}

fn lib(op: &'static str, dir: &Path) -> impl FnOnce(git2::Error) -> WorkspaceError {
    let dir = dir.to_path_buf();
    move |e| WorkspaceError::Lib {
        op,
        dir,
        message: e.message().to_string(),
    }
}

/// The (non-bare) repository containing `dir`, if any. Found and opened in one walk up from
/// `dir` (`git2::Repository::discover` walks up to find it, then again to open it).
fn discover(dir: &Path) -> Option<git2::Repository> {
    git2::Repository::open_ext(
        dir,
        git2::RepositoryOpenFlags::empty(),
        std::iter::empty::<&std::ffi::OsStr>(),
    )
    .ok()
    .filter(|r| r.workdir().is_some())
    .map(frozen)
}

/// The repository at `path` (a worktree's folder, or its admin folder).
fn open(path: &Path) -> Result<git2::Repository, git2::Error> {
    git2::Repository::open(path).map(frozen)
}

/// `repo`, reading its config as it is now: libgit2 otherwise checks every config file
/// (system, global, the repository's, the worktree's) for a change, a `stat` each, at every
/// value it reads: some 250 `stat`s in a spawn. What Fracta writes to a config it writes
/// through a [`git2::Config`] of that one file. A config that cannot be read stays as it was.
fn frozen(repo: git2::Repository) -> git2::Repository {
    if let Ok(snapshot) = repo.config().and_then(|mut c| c.snapshot()) {
        let _ = repo.set_config(&snapshot);
    }
    repo
}

/// The URL of the `origin` remote of the repository containing `dir`.
pub fn origin_url(dir: &Path) -> Option<String> {
    let repo = discover(dir)?;
    let remote = repo.find_remote("origin").ok()?;
    remote.url().ok().map(str::to_string)
}

/// The branch checked out in the repository containing `dir` (none: not a repository, or a
/// detached HEAD).
pub fn current_branch(dir: &Path) -> Option<String> {
    checked_out(&discover(dir)?)
}

/// The branch `repo` has checked out (none: a detached HEAD).
fn checked_out(repo: &git2::Repository) -> Option<String> {
    // HEAD names its branch even before the first commit (an unborn branch).
    let head = repo.find_reference("HEAD").ok()?;
    let target = head.symbolic_target().ok()??;
    target.strip_prefix("refs/heads/").map(str::to_string)
}

/// What an agent's branch changed since it left its base (`git diff BASE...BRANCH`): a patch,
/// or with `stat` the files and their +/− counts.
pub fn diff(
    project_dir: &Path,
    base: &str,
    branch: &str,
    stat: bool,
) -> Result<String, WorkspaceError> {
    let range = format!("{base}...{branch}");
    let mut args = vec!["diff", "--no-color", "--no-ext-diff"];
    if stat {
        args.push("--stat");
    }
    args.extend([range.as_str(), "--"]);
    git(project_dir, &args)
}

/// What a branch changed since it left its base, counted: files, and lines added and removed
/// (a binary file counts as a file with no lines).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStat {
    pub files: usize,
    pub added: u64,
    pub removed: u64,
}

/// `git diff --numstat BASE...BRANCH`, summed.
pub fn diff_stat(project_dir: &Path, base: &str, branch: &str) -> Result<DiffStat, WorkspaceError> {
    let range = format!("{base}...{branch}");
    let args = [
        "diff",
        "--numstat",
        "--no-color",
        "--no-ext-diff",
        range.as_str(),
        "--",
    ];
    let out = git(project_dir, &args)?;
    let mut stat = DiffStat::default();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let mut cols = line.split('\t');
        stat.files += 1;
        stat.added += cols.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        stat.removed += cols.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    }
    Ok(stat)
}

/// Whether every commit of `branch` is already on `base`, so deleting it loses nothing.
pub fn is_merged(project_dir: &Path, branch: &str, base: &str) -> Result<bool, WorkspaceError> {
    let args = ["merge-base", "--is-ancestor", branch, base];
    let out = git_run(project_dir, &args)?;
    match out.status.code() {
        Some(0) => Ok(true),
        Some(1) => Ok(false),
        _ => Err(git_failed(project_dir, &args, &out)),
    }
}

/// An agent's worktree that holds nothing new (its branch has no commit beyond `base`, and
/// nothing uncommitted) is removed with its branch. Returns whether it was. `clean`: the
/// caller has just found nothing to commit there ([`commit_leftovers`]), so the status is not
/// read again.
///
/// On every run's end, so done in-process with libgit2 and one open of the worktree's
/// repository (what `git merge-base --is-ancestor`, `git status`, `git worktree remove`, `git
/// worktree prune` and `git branch -D` would do: five processes, ~5 ms of an instant CLI's
/// spawn). Where libgit2 cannot tell, the worktree is kept: a status it cannot read, or one
/// it reads differently from git (a file it takes for changed), counts as work.
///
/// `opened`: the worktree's repository, if the caller has it open already
/// ([`open_worktree`]).
pub fn remove_if_unchanged(
    worktree: &Path,
    opened: Option<OpenWorktree>,
    branch: &str,
    base: &str,
    clean: bool,
) -> Result<bool, WorkspaceError> {
    let (wt, ignored) = match opened {
        Some(o) => (o.repo, o.ignored.into_inner()),
        None => match open(worktree) {
            Ok(repo) => (repo, None),
            Err(_) => return Ok(false),
        },
    };
    let err = |op| lib(op, worktree);
    let commit = |rev: &str| {
        wt.revparse_single(&format!("{rev}^{{commit}}"))
            .map(|o| o.id())
            .map_err(err("reading a branch"))
    };
    let reference = format!("refs/heads/{branch}");
    let tip = commit(&reference)?;
    let onto = commit(base)?;
    let merged = tip == onto
        || wt
            .graph_descendant_of(onto, tip)
            .map_err(err("comparing branches"))?;
    if !merged || (!clean && repo_has_changes(&wt)) {
        return Ok(false);
    }
    // The worktree's admin folder (`.git/worktrees/<name>`) is what it names as its git dir.
    let common: PathBuf = wt.commondir().components().collect();
    let admin: PathBuf = wt.path().components().collect();
    let name = worktree
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let linked = admin.starts_with(&common) && admin != common;
    // What keeping it as a spare asks of the repository, read while its HEAD still names the
    // branch; then the branch's deletion (the longest part of the end, ~1 ms where freed
    // blocks are discarded) starts, and the rest overlaps it.
    let ready = linked
        .then(|| spare_ready(&wt, tip, ignored.filter(|_| clean)))
        .flatten();
    let deleting = delete_beside(Branch {
        repo: wt,
        reference,
        name: branch.to_string(),
        config: common.join("config"),
    })?;
    let spared = ready.is_some_and(|ignored| spare(worktree, &admin, tip, &ignored));
    let mut aside = Vec::new();
    if !spared {
        aside.push((
            worktree.to_path_buf(),
            worktree.with_file_name(format!(".{name}.discarded")),
        ));
        if linked {
            aside.push((admin, common.join(format!("fracta-discarded-{name}"))));
        }
    }
    if let Err(e) = discard(aside) {
        // The worktree stays: so does its branch, made again where it was.
        deleting.undo(&common, branch, tip);
        return Err(e);
    }
    deleting.finish_before_exit();
    Ok(true)
}

/// A branch being deleted on a thread of its own ([`delete_beside`]).
struct Deleting(Option<std::thread::JoinHandle<()>>);

impl Deleting {
    /// Waited for before the process exits ([`finish_discards`]).
    fn finish_before_exit(self) {
        if let Some(handle) = self.0 {
            let mut running = discards();
            running.retain(|h| !h.is_finished());
            running.push(handle);
        }
    }

    /// The branch `branch` of the repository at `common` back at `tip`, once its deletion
    /// is done: for a worktree that could not be removed after all.
    fn undo(self, common: &Path, branch: &str, tip: git2::Oid) {
        if let Some(handle) = self.0 {
            let _ = handle.join();
        }
        let made = git2::Repository::open(common).and_then(|repo| {
            repo.reference(
                &format!("refs/heads/{branch}"),
                tip,
                false,
                "fracta: kept with its worktree",
            )
            .map(drop)
        });
        if let Err(e) = made {
            tracing::warn!("could not make the branch {branch} again at {tip}: {e}");
        }
    }
}

/// Start deleting `branch` on a thread of its own; if no thread can start, delete it now.
fn delete_beside(branch: Branch) -> Result<Deleting, WorkspaceError> {
    // Handed over through a slot: if no thread can start, the branch is still here.
    let slot = std::sync::Arc::new(std::sync::Mutex::new(Some(branch)));
    let on_thread = slot.clone();
    let started = crate::beside::spawn("discard", move || {
        if let Some(branch) = on_thread.lock().ok().and_then(|mut b| b.take())
            && let Err(e) = branch.delete()
        {
            tracing::warn!("{e}");
        }
    });
    match started {
        Ok(handle) => Ok(Deleting(Some(handle))),
        Err(e) => {
            tracing::debug!("no thread to delete on ({e}); deleting now");
            if let Some(branch) = slot.lock().ok().and_then(|mut b| b.take()) {
                branch.delete()?;
            }
            Ok(Deleting(None))
        }
    }
}

/// A spare worktree's folder in the worktrees folder: `.spare-<name>`, its admin folder
/// inside it.
const SPARE_PREFIX: &str = ".spare-";
/// The admin folder of a spare worktree, kept in its folder while it waits.
const SPARE_ADMIN: &str = ".fracta-spare-admin";
/// Spare worktrees kept per project at most.
const MAX_SPARES: usize = 2;

/// Keep the worktree of an agent that changed nothing as a spare for the next spawn, instead
/// of deleting it: the next worktree from the same tree is then a rename and four small
/// files, not a checkout of every file of the project (and this one's files are not deleted
/// one by one). Whether it was kept; `false` leaves everything where it was, to be discarded.
///
/// Kept only if it holds exactly its commit's tree and Fracta's own files: HEAD at `tip`,
/// nothing changed or untracked, nothing ignored but Fracta's files (those its excludes file
/// lists) and their folders, no `--skip-worktree` entry; and while the project has fewer than
/// [`MAX_SPARES`]. Fracta's files stay, listed as before: the next agent's launch writes its
/// own over them (mostly the same files: left alone when the same, else written in place),
/// and the next [`keep_out_of_commits`] deletes those it does not write. Deleting them here
/// waited for the disk (a file and its folder, ~0.8 ms where freed blocks are discarded), and
/// the next launch made them again. The admin folder moves into the folder, which moves to
/// `.spare-<name>` in one rename: git no longer knows it (`git worktree list` and `prune` do
/// not see it), and no other process can take it half-moved.
///
/// `ignored`: what is ignored in it ([`spare_ready`]).
fn spare(worktree: &Path, admin: &Path, tip: git2::Oid, ignored: &[PathBuf]) -> bool {
    let (Some(root), Some(name)) = (worktree.parent(), worktree.file_name()) else {
        return false;
    };
    if spares(root).len() >= MAX_SPARES {
        return false;
    }
    let ours = listed(&std::fs::read_to_string(admin.join(EXCLUDE_FILE)).unwrap_or_default());
    if !ignored.iter().all(|p| only_ours(worktree, p, &ours)) {
        return false;
    }
    // Its `config.worktree` stays: the agent that takes it writes it again (in place: see
    // [`overwrite`]).
    let held = admin.join(SPARE_HELD);
    let inside = worktree.join(SPARE_ADMIN);
    let target = root.join(format!("{SPARE_PREFIX}{}", name.to_string_lossy()));
    let moved =
        overwrite(&held, &format!("{tip}\n")).is_ok() && std::fs::rename(admin, &inside).is_ok();
    if !moved {
        let _ = std::fs::remove_file(&held);
        return false;
    }
    if std::fs::rename(worktree, &target).is_err() {
        let _ = std::fs::rename(&inside, admin);
        return false;
    }
    true
}

/// What keeping the worktree `wt` as a spare ([`spare`]) asks of its repository, read while
/// its branch is still there: HEAD at `tip`, nothing changed or untracked, no
/// `--skip-worktree` entry. What is ignored in it, if so. `ignored`: what the status that
/// found nothing to commit showed ignored, if one just did; without it, a status is read here.
fn spare_ready(
    wt: &git2::Repository,
    tip: git2::Oid,
    ignored: Option<Vec<PathBuf>>,
) -> Option<Vec<PathBuf>> {
    if wt.head().ok().and_then(|h| h.target()) != Some(tip) {
        return None;
    }
    let ignored = match ignored {
        Some(paths) => paths,
        None => match survey(wt) {
            Some((false, paths)) => paths,
            _ => return None,
        },
    };
    wt.index()
        .is_ok_and(|index| index.iter().all(|e| e.flags_extended & SKIP_WORKTREE == 0))
        .then_some(ignored)
}

/// The files an excludes file of Fracta's lists (`/<path>` lines), relative to the worktree.
fn listed(exclude: &str) -> Vec<PathBuf> {
    exclude
        .lines()
        .filter_map(|l| l.strip_prefix('/'))
        .map(PathBuf::from)
        .filter(|p| {
            p.components()
                .all(|c| matches!(c, std::path::Component::Normal(_)))
        })
        .collect()
}

/// Whether the path `rel` in the worktree `ws` (one the status showed ignored: a file, or a
/// folder as one path) holds only Fracta's files `ours`: no other file, no link, nothing else.
fn only_ours(ws: &Path, rel: &Path, ours: &[PathBuf]) -> bool {
    let path = ws.join(rel);
    match std::fs::symlink_metadata(&path) {
        Ok(m) if m.is_file() => ours.iter().any(|o| o == rel),
        Ok(m) if m.is_dir() => std::fs::read_dir(&path).is_ok_and(|entries| {
            entries
                .into_iter()
                .all(|e| e.is_ok_and(|e| only_ours(ws, &rel.join(e.file_name()), ours)))
        }),
        Ok(_) => false,
        // Gone since the status: nothing left there.
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Delete the files `stale` of the worktree `ws` (Fracta's, that no launch writes any more),
/// and their folders left empty (`.codex`, say).
fn delete_ours(ws: &Path, stale: &[&PathBuf]) {
    for rel in stale {
        let file = ws.join(rel);
        if std::fs::remove_file(&file).is_err() {
            continue;
        }
        let mut dir = file.parent();
        while let Some(d) = dir.filter(|d| *d != ws) {
            if std::fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
    }
}

/// The index entry flag of `git update-index --skip-worktree` (in its extended flags).
const SKIP_WORKTREE: u16 = 1 << 14;
/// The file in a spare's admin folder naming the commit whose tree it holds.
const SPARE_HELD: &str = "fracta-spare-commit";

/// The spare worktrees in the worktrees folder `root`.
fn spares(root: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let n = e.file_name();
                    let n = n.to_string_lossy();
                    n.starts_with(SPARE_PREFIX) && !n.ends_with(".discarded")
                })
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Delete the spare worktrees of the project at `project_dir` (`fracta prune`); how many.
pub fn remove_spares(project_dir: &Path, fracta_dir: &Path, configured: Option<&Path>) -> usize {
    let Some(top) = git_toplevel(project_dir) else {
        return 0;
    };
    let root = worktrees_root(&top, fracta_dir, configured);
    let removed = spares(&root)
        .into_iter()
        .filter(|s| std::fs::remove_dir_all(s).is_ok())
        .count();
    // The project's folder in the user's state folder goes with them, if nothing else is there.
    remove_shared_parent(&root.join(SPARE_PREFIX));
    removed
}

/// Take a spare worktree that holds `tree` as the worktree at `path` (named `name`) on
/// `head_ref`: whether one was taken. A spare of another tree is deleted (the project moved
/// on); one another process took first is passed over.
fn take_spare(
    repo: &git2::Repository,
    root: &Path,
    name: &str,
    path: &Path,
    head_ref: &str,
    tree: git2::Oid,
) -> Result<bool, WorkspaceError> {
    for spare in spares(root) {
        let held = std::fs::read_to_string(spare.join(SPARE_ADMIN).join(SPARE_HELD))
            .ok()
            .and_then(|c| git2::Oid::from_str(c.trim()).ok())
            .and_then(|c| repo.find_commit(c).ok())
            .map(|c| c.tree_id());
        if held != Some(tree) {
            // Claimed by a rename (another process may take it first), then deleted on a
            // thread.
            let discarded = spare.with_extension("discarded");
            if std::fs::rename(&spare, &discarded).is_ok() {
                discard(vec![(discarded.clone(), discarded)])?;
            }
            continue;
        }
        if std::fs::rename(&spare, path).is_err() {
            continue;
        }
        let admin_root = repo.commondir().join("worktrees");
        std::fs::create_dir_all(&admin_root).map_err(io(&admin_root))?;
        let admin = admin_root.join(name);
        if std::fs::rename(path.join(SPARE_ADMIN), &admin).is_err() {
            // Not usable after all: the path is made afresh.
            std::fs::remove_dir_all(path).map_err(io(path))?;
            return Ok(false);
        }
        // The last agent's list of Fracta's files stays with its files: the launch writes
        // over them, then [`keep_out_of_commits`] deletes those it did not write. The file
        // that named the commit stays too (git reads neither), written over if this worktree
        // is kept again.
        link_worktree(repo, &admin, path, head_ref)?;
        return Ok(true);
    }
    Ok(false)
}

/// The branch of a worktree being discarded, deleted with it.
struct Branch {
    /// The worktree's repository, open.
    repo: git2::Repository,
    /// `refs/heads/<branch>`.
    reference: String,
    /// Its name (`<branch>`; its config section is `branch.<branch>.`).
    name: String,
    /// The repository's own config file.
    config: PathBuf,
}

impl Branch {
    /// Delete it as `git branch -D` does: the ref (libgit2 drops its reflog with it) and its
    /// section of the repository's own config. Not through libgit2's branch delete, whose
    /// check that no worktree has it checked out opens every worktree of the repository (one
    /// per agent not yet removed).
    fn delete(&self) -> Result<(), WorkspaceError> {
        self.repo
            .find_reference(&self.reference)
            .and_then(|mut r| r.delete())
            .map_err(lib("deleting the branch", &self.config))?;
        // Fracta writes no section for its branches: there is one only if someone set it (an
        // upstream, say). Without the branch's name anywhere in the file, libgit2's parse of
        // it is skipped (a dozen system calls more, on the end's path).
        if std::fs::read_to_string(&self.config).is_ok_and(|text| !text.contains(&self.name)) {
            return Ok(());
        }
        let section = format!("branch.{}.", self.name);
        if let Ok(mut config) = git2::Config::open(&self.config) {
            let names: Vec<String> = config
                .entries(None)
                .map(|mut entries| {
                    let mut names = Vec::new();
                    while let Some(Ok(e)) = entries.next() {
                        if let Some(n) = e.name().ok().filter(|n| n.starts_with(&section)) {
                            names.push(n.to_string());
                        }
                    }
                    names
                })
                .unwrap_or_default();
            for n in names {
                let _ = config.remove_multivar(&n, ".*");
            }
        }
        Ok(())
    }
}

/// Folders and branches being deleted on threads of their own ([`discard`],
/// [`delete_beside`]).
static DISCARDS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Move each folder of `aside` (from, to) out of the way, then delete them, each on a thread
/// of its own: the paths are free at once (a resume may make the worktree again there), and
/// the deletion, a system call per file, overlaps what follows (the end recorded, the output).
/// The project's folder of worktrees in the user's state folder stays, even empty: the next
/// spawn makes its worktree there (`fracta rm` and `prune` remove it with its last worktree).
///
/// Where the file system discards freed blocks, each folder deleted and many files wait for the
/// disk (the branch's two folders of refs ~0.5 ms, the worktree's ~0.5 ms on the 2-core VM);
/// the waits of separate threads overlap. [`finish_discards`] waits for them; the binary calls
/// it before it exits, and [`create`] before it makes a worktree (a resume makes the same
/// branch again). What no thread can start for is done here.
fn discard(aside: Vec<(PathBuf, PathBuf)>) -> Result<(), WorkspaceError> {
    let mut moved = Vec::new();
    for (from, to) in aside {
        match std::fs::rename(&from, &to) {
            Ok(()) => moved.push(to),
            // Not moved (another file system, say): deleted where it is.
            Err(_) => std::fs::remove_dir_all(&from).map_err(io(&from))?,
        }
    }
    for dir in moved {
        let on_thread = dir.clone();
        let started = crate::beside::spawn("discard", move || {
            if let Err(e) = std::fs::remove_dir_all(&on_thread) {
                tracing::warn!("{}", io(&on_thread)(e));
            }
        });
        match started {
            Ok(handle) => Deleting(Some(handle)).finish_before_exit(),
            Err(e) => {
                tracing::debug!("no thread to delete on ({e}); deleting now");
                std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
            }
        }
    }
    Ok(())
}

fn discards() -> std::sync::MutexGuard<'static, Vec<std::thread::JoinHandle<()>>> {
    DISCARDS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Wait until every folder [`discard`]ed so far is deleted.
pub fn finish_discards() {
    let handles: Vec<_> = std::mem::take(&mut *discards());
    for h in handles {
        let _ = h.join();
    }
}

/// The project's folder in the user's state folder goes with its last worktree.
fn remove_shared_parent(worktree: &Path) {
    if let Some(parent) = worktree.parent()
        && parent.parent() == state_home().map(|s| shared_root(&s)).as_deref()
    {
        let _ = std::fs::remove_dir(parent);
    }
}

/// How `merge` brings a branch in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeHow {
    /// A merge commit (`git merge --no-ff`).
    Merge,
    /// One commit with all of the branch's changes (`git merge --squash`, then commit).
    Squash,
    /// The branch's commits replayed on top (`git rebase`), then a fast-forward.
    Rebase,
}

/// Why a merge did not happen; the repository is as it was.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{0}")]
    Refused(String),
    #[error("merging {branch} into {into} conflicts in: {}; nothing was changed (merge it by hand, or ask the agent to rebase)", files.join(", "))]
    Conflict {
        branch: String,
        into: String,
        files: Vec<String>,
    },
    #[error(transparent)]
    Git(#[from] WorkspaceError),
}

/// Run git; `Ok(Err(stderr))` when it ran and failed.
fn git_try(dir: &Path, args: &[&str]) -> Result<Result<(), String>, WorkspaceError> {
    let out = git_run(dir, args)?;
    Ok(if out.status.success() {
        Ok(())
    } else {
        let mut e = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if e.is_empty() {
            e = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(e)
    })
}

fn git_ok(dir: &Path, args: &[&str]) -> Result<bool, WorkspaceError> {
    Ok(git_try(dir, args)?.is_ok())
}

/// Bring `branch` into the branch checked out at `project_dir`, as `how` says. Refuses a
/// work tree with changes; on a conflict it aborts and names the files, leaving nothing
/// half-done. Returns the new head commit.
pub fn merge(
    project_dir: &Path,
    branch: &str,
    worktree: Option<&Path>,
    how: MergeHow,
    message: &str,
) -> Result<String, MergeError> {
    let worktree = worktree.filter(|w| w.exists());
    let into = current_branch(project_dir)
        .ok_or_else(|| MergeError::Refused("the project has no branch checked out".into()))?;
    let dirty = git(
        project_dir,
        &["status", "--porcelain", "--untracked-files=no"],
    )?;
    if !dirty.is_empty() {
        return Err(MergeError::Refused(format!(
            "the project's work tree has changes on {into}; commit or stash them first:\n{dirty}"
        )));
    }
    // What went wrong, once git has been told to undo it: the conflicting files, else its
    // own words.
    let failed = |dir: &Path, stderr: String, undo: &[&str]| -> MergeError {
        let files: Vec<String> = git(dir, &["diff", "--name-only", "--diff-filter=U"])
            .map(|o| o.lines().map(str::to_string).collect())
            .unwrap_or_default();
        let _ = git_ok(dir, undo);
        if files.is_empty() {
            MergeError::Refused(format!(
                "git could not bring {branch} into {into}: {stderr}"
            ))
        } else {
            MergeError::Conflict {
                branch: branch.into(),
                into: into.clone(),
                files,
            }
        }
    };
    // The user's own identity when git has one; Fracta's otherwise.
    let has_identity = git(project_dir, &["config", "user.email"]).is_ok_and(|e| !e.is_empty());
    let run = |dir: &Path, args: &[&str]| -> Result<Result<(), String>, WorkspaceError> {
        let mut full: Vec<&str> = Vec::new();
        if !has_identity {
            full.extend([
                "-c",
                "user.name=fracta",
                "-c",
                "user.email=fracta@localhost",
            ]);
        }
        full.extend(args);
        git_try(dir, &full)
    };
    match how {
        MergeHow::Merge => {
            if let Err(e) = run(project_dir, &["merge", "--no-ff", "-m", message, branch])? {
                return Err(failed(project_dir, e, &["merge", "--abort"]));
            }
        }
        MergeHow::Squash => {
            if let Err(e) = run(project_dir, &["merge", "--squash", branch])? {
                return Err(failed(project_dir, e, &["reset", "--merge"]));
            }
            if let Err(e) = run(project_dir, &["commit", "-q", "-m", message])? {
                let _ = git_ok(project_dir, &["reset", "--merge"]);
                return Err(MergeError::Refused(format!(
                    "{branch} has nothing to squash onto {into}: {e}"
                )));
            }
        }
        MergeHow::Rebase => {
            // Replay the branch in a scratch worktree, so neither the project's nor the
            // agent's work tree moves until it has worked.
            let scratch = scratch_dir(project_dir)?;
            let scratch_s = scratch.display().to_string();
            git(
                project_dir,
                &["worktree", "add", "-q", "--detach", &scratch_s, branch],
            )?;
            let rebased = match run(&scratch, &["rebase", "-q", &into])? {
                Ok(()) => git(&scratch, &["rev-parse", "HEAD"]).map_err(MergeError::from),
                Err(e) => Err(failed(&scratch, e, &["rebase", "--abort"])),
            };
            let _ = git(project_dir, &["worktree", "remove", "--force", &scratch_s]);
            let rebased = rebased?;
            git(project_dir, &["merge", "-q", "--ff-only", &rebased])?;
            // The agent's branch is its rebased self (its worktree, if kept, follows it).
            git(
                project_dir,
                &["update-ref", &format!("refs/heads/{branch}"), &rebased],
            )?;
            if let Some(w) = worktree {
                git(w, &["reset", "-q", "--hard", &rebased])?;
            }
        }
    }
    Ok(git(project_dir, &["rev-parse", "HEAD"])?)
}

/// A fresh folder name for a scratch worktree, inside the repository's `.git` (never seen by
/// the user's tools).
fn scratch_dir(project_dir: &Path) -> Result<PathBuf, WorkspaceError> {
    let git_dir = git(project_dir, &["rev-parse", "--absolute-git-dir"])?;
    let name = format!("fracta-merge-{}", std::process::id());
    Ok(PathBuf::from(git_dir).join(name))
}

/// Whether a branch exists in the repository at `project_dir`.
pub fn branch_exists(project_dir: &Path, branch: &str) -> bool {
    discover(project_dir).is_some_and(|r| r.find_branch(branch, git2::BranchType::Local).is_ok())
}

/// Whether `rev` (a branch, tag or commit) names a commit in the repository at `project_dir`:
/// what a spawn needs of its base.
pub fn resolves_to_commit(project_dir: &Path, rev: &str) -> bool {
    discover(project_dir).is_some_and(|r| {
        r.revparse_single(&format!("{rev}^{{commit}}"))
            .and_then(|o| o.peel_to_commit())
            .is_ok()
    })
}

/// The local branches of the repository at `project_dir`, by name.
pub fn local_branches(project_dir: &Path) -> Vec<String> {
    discover(project_dir)
        .and_then(|r| {
            r.branches(Some(git2::BranchType::Local)).ok().map(|bs| {
                bs.flatten()
                    .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
                    .collect()
            })
        })
        .unwrap_or_default()
}

/// Remove an agent's worktree (its folder and git's record of it) and delete its branch.
/// Checking that nothing unmerged is lost is the caller's business.
pub fn remove(
    project_dir: &Path,
    worktree: Option<&Path>,
    branch: Option<&str>,
) -> Result<(), WorkspaceError> {
    if let Some(path) = worktree.filter(|w| w.exists()) {
        let w = path.display().to_string();
        if discover(project_dir).is_some() {
            git(
                project_dir,
                &["worktree", "remove", "--force", "--force", &w],
            )?;
            remove_shared_parent(path);
        } else {
            std::fs::remove_dir_all(&w).map_err(|source| WorkspaceError::Io {
                path: PathBuf::from(&w),
                source,
            })?;
        }
    }
    if discover(project_dir).is_some() {
        // A worktree removed by hand leaves git's record of it behind.
        git(project_dir, &["worktree", "prune"])?;
    }
    if let Some(b) = branch.filter(|b| branch_exists(project_dir, b)) {
        git(project_dir, &["branch", "-D", b])?;
    }
    Ok(())
}

/// The top of the git work tree containing `dir`, if any.
pub fn git_toplevel(dir: &Path) -> Option<PathBuf> {
    discover(dir).and_then(|r| r.workdir().map(|w| w.components().collect()))
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

/// The user's state folder: `$XDG_STATE_HOME`, else `~/.local/state` (none without a home).
fn state_home() -> Option<PathBuf> {
    user_dir("XDG_STATE_HOME", ".local/state")
}

/// A user's folder by the XDG rule: `$<var>` if absolute, else `$HOME/<in_home>` (none
/// without an absolute home).
fn user_dir(var: &str, in_home: &str) -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os(var).and_then(absolute).or_else(|| {
        std::env::var_os("HOME")
            .and_then(absolute)
            .map(|h| h.join(in_home))
    })
}

/// A repository's folder name under the worktrees root: its own name and a digest of its
/// path, so two checkouts of one project never share it.
fn project_key(top: &Path) -> String {
    let name = top
        .file_name()
        .map(|n| slug(&n.to_string_lossy()))
        .unwrap_or_else(|| "project".into());
    let digest = crate::secret::sha256_hex(&top.display().to_string());
    format!("{name}-{}", &digest[..12])
}

/// Where the worktrees of the repository whose top is `top` go: `configured`
/// (`project.worktrees_dir`), else `$XDG_STATE_HOME/fracta/worktrees/<project>-<digest>`
/// (`~/.local/state/…`), else (no home) `.fracta/worktrees` in the project.
///
/// Outside the repository by default: an agent CLI started in a folder inside the project
/// walks up from it and reads the project's own memory, ignore and MCP files on the way
/// (Claude Code reads `CLAUDE.md`, `CLAUDE.local.md`, `.mcp.json`, `.gitignore`, `.ignore`
/// and `.rgignore` of every folder up to `/`), which belong to the user's checkout, not
/// to the agent's branch; and a person's tools in the project (an editor's file watcher,
/// `rg --no-ignore`) no longer walk every agent's copy of it.
pub fn worktrees_root(top: &Path, fracta_dir: &Path, configured: Option<&Path>) -> PathBuf {
    root_in(state_home(), top, fracta_dir, configured)
}

/// [`worktrees_root`] with the state folder given.
fn root_in(
    state: Option<PathBuf>,
    top: &Path,
    fracta_dir: &Path,
    configured: Option<&Path>,
) -> PathBuf {
    if let Some(dir) = configured {
        return dir.to_path_buf();
    }
    state
        .map(|s| shared_root(&s).join(project_key(top)))
        .unwrap_or_else(|| fracta_dir.join("worktrees"))
}

/// The folder under the state folder that holds one folder per project.
fn shared_root(state: &Path) -> PathBuf {
    state.join("fracta").join("worktrees")
}

/// The branch of agent `id` on `task`: `fracta/<task slug>-<last 8 of the id>` (the same
/// locally and on Kubernetes).
pub fn branch_name(id: &str, task: &str) -> String {
    let short = id
        .get(id.len().saturating_sub(8)..)
        .unwrap_or(id)
        .to_ascii_lowercase();
    format!("fracta/{}-{short}", slug(task))
}

/// Create the workspace for agent `id` on `task`. `project_dir` is the config file's folder.
/// In a git repository it is a worktree under [`worktrees_root`] (`worktrees_dir` is
/// `project.worktrees_dir`); elsewhere a folder under `.fracta/workspaces`.
pub fn create(
    project_dir: &Path,
    fracta_dir: &Path,
    worktrees_dir: Option<&Path>,
    id: &str,
    task: &str,
    base: &Base,
) -> Result<Workspace, WorkspaceError> {
    // A resume makes its agent's branch again: one being deleted with its discarded worktree
    // is gone first.
    finish_discards();
    let repo = discover(project_dir);
    let base = match base {
        Base::Named(b) => b.clone(),
        Base::Current { fallback } => repo
            .as_ref()
            .and_then(checked_out)
            .unwrap_or_else(|| fallback.clone()),
    };
    let base = base.as_str();
    match repo {
        Some(repo) => {
            // libgit2 ends the work dir with a slash; components() drops it.
            let top: PathBuf = repo.workdir().unwrap_or(project_dir).components().collect();
            let Ok(base_commit) = repo
                .revparse_single(&format!("{base}^{{commit}}"))
                .and_then(|o| o.peel_to_commit())
            else {
                let found: Vec<String> = repo
                    .branches(Some(git2::BranchType::Local))
                    .map(|bs| {
                        bs.flatten()
                            .filter_map(|(b, _)| b.name().ok().flatten().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                let found = if found.is_empty() {
                    "no branches with commits".to_string()
                } else {
                    found.join(", ")
                };
                return Err(WorkspaceError::NoBaseBranch {
                    base: base.to_string(),
                    repo: top,
                    found,
                });
            };
            // After the base is found: a failed spawn leaves no folder behind.
            let path = worktrees_root(&top, fracta_dir, worktrees_dir).join(id);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|source| WorkspaceError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            let branch = branch_name(id, task);
            // Created here, so no other worktree has it checked out.
            let reference = repo
                .branch(&branch, &base_commit, false)
                .map_err(lib("creating branch", &top))?;
            let head = reference.get().name().unwrap_or_default().to_string();
            let root = path.parent().unwrap_or(&path);
            if !take_spare(&repo, root, id, &path, &head, base_commit.tree_id())? {
                add_worktree(&repo, id, &path, &head)?;
            }
            Ok(Workspace {
                path,
                branch: Some(branch),
                base: base.to_string(),
            })
        }
        None => {
            let path = fracta_dir.join("workspaces").join(id);
            std::fs::create_dir_all(&path).map_err(|source| WorkspaceError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(Workspace {
                path,
                branch: None,
                base: base.to_string(),
            })
        }
    }
}

/// `git worktree add PATH BRANCH` for a branch just created: the worktree's admin folder
/// (`.git/worktrees/NAME` with `gitdir`, `commondir` and `HEAD`), the `.git` file in PATH, and
/// a checkout of the branch. This is what libgit2's `git_worktree_add` writes, without its
/// check that no other worktree has the branch checked out: that check opens every worktree
/// of the repository, a cost that grew with each agent ever spawned there.
fn add_worktree(
    repo: &git2::Repository,
    name: &str,
    path: &Path,
    head_ref: &str,
) -> Result<(), WorkspaceError> {
    let admin_root = repo.commondir().join("worktrees");
    std::fs::create_dir_all(&admin_root).map_err(io(&admin_root))?;
    let admin = admin_root.join(name);
    // Both new: an existing one is an error, never reused.
    std::fs::create_dir(&admin).map_err(io(&admin))?;
    std::fs::create_dir(path).map_err(io(path))?;
    link_worktree(repo, &admin, path, head_ref)?;
    let wt = open(path).map_err(lib("opening the new worktree", path))?;
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout.safe();
    if filters_convert_nothing(&wt) {
        checkout.disable_filters(true);
    }
    wt.checkout_head(Some(&mut checkout))
        .map_err(lib("checking out the worktree", path))
}

/// The files that make `path` the linked worktree of `repo` whose admin folder is `admin`, on
/// `head_ref`: the `.git` file, the admin folder's `commondir`, `gitdir` and `HEAD`, and its
/// `config.worktree`.
fn link_worktree(
    repo: &git2::Repository,
    admin: &Path,
    path: &Path,
    head_ref: &str,
) -> Result<(), WorkspaceError> {
    let write = |p: PathBuf, text: String| overwrite(&p, &text).map_err(io(&p));
    write(path.join(".git"), format!("gitdir: {}\n", admin.display()))?;
    write(admin.join("commondir"), "../..\n".to_string())?;
    write(
        admin.join("gitdir"),
        format!("{}\n", path.join(".git").display()),
    )?;
    write(admin.join("HEAD"), format!("ref: {head_ref}\n"))?;
    // The excludes file that keeps Fracta's own files out of the agent's commits
    // ([`keep_out_of_commits`] writes it), named now with the other admin files: git reads a
    // worktree's `config.worktree` once `extensions.worktreeConfig` is on.
    if let Some(config) = worktree_config(&admin.join(EXCLUDE_FILE)) {
        if !repo
            .config()
            .and_then(|c| c.get_bool("extensions.worktreeConfig"))
            .unwrap_or(false)
        {
            git2::Config::open(&repo.commondir().join("config"))
                .and_then(|mut c| c.set_bool("extensions.worktreeConfig", true))
                .map_err(lib("setting extensions.worktreeConfig", path))?;
        }
        write(admin.join("config.worktree"), config)?;
    }
    Ok(())
}

/// Whether checking out `repo`'s HEAD through libgit2's filters would write every file as
/// stored. Its filters are the line-ending one and `ident`; each is asked for every file
/// checked out, and each asking looks up the file's attributes: a `realpath` of the file (a
/// `readlink` per folder of its path) and a `.gitattributes` looked for in each folder up
/// to the top. Two hundred readlinks for a project of twenty files; per file, what the
/// checkout's own writing costs.
///
/// They convert nothing where no attributes can apply (no `.gitattributes` in the tree, no
/// `info/attributes`, no `core.attributesFile` nor its default `~/.config/git/attributes`,
/// no `/etc/gitattributes`) and `core.autocrlf` is off: libgit2 then takes every file for
/// binary. Any doubt (a config it cannot read, an `autocrlf` of `input`) keeps them.
fn filters_convert_nothing(repo: &git2::Repository) -> bool {
    let user = user_dir("XDG_CONFIG_HOME", ".config").map(|c| c.join("git").join("attributes"));
    let outside = [user, Some(PathBuf::from("/etc/gitattributes"))];
    !outside.iter().flatten().any(|f| f.exists()) && repository_converts_nothing(repo)
}

/// [`filters_convert_nothing`], as far as the repository tells: its config, its
/// `info/attributes`, the `.gitattributes` of its HEAD's tree.
fn repository_converts_nothing(repo: &git2::Repository) -> bool {
    let Ok(config) = repo.config() else {
        return false;
    };
    let unset = |e: git2::Error| e.code() == git2::ErrorCode::NotFound;
    let autocrlf_off = config
        .get_bool("core.autocrlf")
        .map_or_else(unset, |on| !on);
    if !autocrlf_off
        || !config.get_path("core.attributesFile").is_err_and(unset)
        || repo.commondir().join("info").join("attributes").exists()
    {
        return false;
    }
    let Ok(tree) = repo.head().and_then(|h| h.peel_to_tree()) else {
        return false;
    };
    let mut attributes = false;
    let walked = tree.walk(git2::TreeWalkMode::PreOrder, |_, entry| {
        if entry.name_bytes() == b".gitattributes" {
            attributes = true;
            git2::TreeWalkResult::Abort
        } else {
            git2::TreeWalkResult::Ok
        }
    });
    !attributes && walked.is_ok()
}

/// The file in a worktree's admin folder (`.git/worktrees/<name>`) that lists Fracta's own
/// files in it: removed with the worktree.
const EXCLUDE_FILE: &str = "fracta-exclude";
/// The first line of [`EXCLUDE_FILE`].
const EXCLUDE_HEADER: &str = "# Written by fracta: runtime config, never committed\n";

/// Write `text` to the file `p` in place: an existing file is written over and then cut to
/// the new length, never emptied first. Emptying a file frees its block, and where the file
/// system discards freed blocks (this machine's does) that waits for the disk: up to 1 ms
/// for each of the four admin files of a spare worktree taken. A file of a few bytes keeps
/// its one block.
fn overwrite(p: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(p)?;
    f.write_all(text.as_bytes())?;
    f.set_len(text.len() as u64)
}

/// A worktree's `config.worktree` naming `exclude` as its excludes file (none for a path git's
/// config cannot hold on one line).
fn worktree_config(exclude: &Path) -> Option<String> {
    let path = exclude.to_str().filter(|p| !p.contains('\n'))?;
    let quoted = path.replace('\\', "\\\\").replace('"', "\\\"");
    Some(format!("[core]\n\texcludesFile = \"{quoted}\"\n"))
}

/// Keep the runtime files Fracta wrote into a worktree out of every commit made there, the
/// agent's own included: untracked ones through the worktree's own excludes file (in its admin
/// folder, named by its `config.worktree`), tracked ones (a repository that has its own
/// `.claude/settings.json`) with `--skip-worktree`.
///
/// A worktree Fracta made has its `config.worktree` already ([`create`]); one made before
/// (whose excludes file was in the agent's home) gets it here.
pub fn keep_out_of_commits(ws: &Path, files: &[PathBuf]) -> Result<(), WorkspaceError> {
    let rel: Vec<String> = files
        .iter()
        .filter_map(|p| p.strip_prefix(ws).ok())
        .map(|p| p.display().to_string())
        .collect();
    let linked = linked_git_dirs(ws);
    if rel.is_empty() && linked.is_none() {
        return Ok(());
    }
    let (admin, common_dir) = match linked {
        Some(dirs) => dirs,
        None => {
            let repo = open(ws).map_err(lib("opening worktree", ws))?;
            (repo.path().to_path_buf(), repo.commondir().to_path_buf())
        }
    };
    let exclude = admin.join(EXCLUDE_FILE);
    let old = std::fs::read_to_string(&exclude).unwrap_or_default();
    // Fracta's files in it that this launch did not write: an earlier launch's here (the
    // agent that left this worktree as a spare ran another runtime, say). Deleted, unless
    // the repository tracks them (then they are the project's).
    let written: Vec<&Path> = rel.iter().map(Path::new).collect();
    let before = listed(&old);
    let stale: Vec<&PathBuf> = before
        .iter()
        .filter(|p| !written.contains(&p.as_path()))
        .collect();
    let open_index = || git2::Index::open(&admin.join("index")).map_err(lib("reading index", ws));
    // Read once, if either step below needs it.
    let mut index = None;
    if !stale.is_empty() {
        let index = index.insert(open_index()?);
        let untracked: Vec<&PathBuf> = stale
            .into_iter()
            .filter(|p| index.get_path(p, 0).is_none())
            .collect();
        delete_ours(ws, &untracked);
    }
    if rel.is_empty() {
        if !before.is_empty() {
            overwrite(&exclude, EXCLUDE_HEADER).map_err(io(&exclude))?;
        }
        return Ok(());
    }
    let body = format!(
        "{EXCLUDE_HEADER}{}",
        rel.iter().map(|r| format!("/{r}\n")).collect::<String>()
    );
    let config_path = admin.join("config.worktree");
    let named = worktree_config(&exclude)
        .is_some_and(|c| std::fs::read_to_string(&config_path).is_ok_and(|old| old == c));
    // Done already for this worktree (a resumed turn, or the spare's last agent, wrote the
    // same files).
    if named && old == body {
        return Ok(());
    }
    overwrite(&exclude, &body).map_err(io(&exclude))?;
    if !named {
        // `config.worktree` is read only with `extensions.worktreeConfig` on (common config).
        let mut common = git2::Config::open(&common_dir.join("config"))
            .map_err(lib("reading repository config", ws))?;
        if !common
            .get_bool("extensions.worktreeConfig")
            .unwrap_or(false)
        {
            common
                .set_bool("extensions.worktreeConfig", true)
                .map_err(lib("setting extensions.worktreeConfig", ws))?;
        }
        let mut own =
            git2::Config::open(&config_path).map_err(lib("reading worktree config", ws))?;
        own.set_str("core.excludesFile", &exclude.display().to_string())
            .map_err(lib("setting core.excludesFile", ws))?;
    }
    // The ones the repository tracks (it has its own `.claude/settings.json`, say).
    let index = match index {
        Some(index) => index,
        None => open_index()?,
    };
    let tracked: Vec<&str> = rel
        .iter()
        .filter(|r| index.get_path(Path::new(r.as_str()), 0).is_some())
        .map(String::as_str)
        .collect();
    if !tracked.is_empty() {
        let mut args = vec!["update-index", "--skip-worktree", "--"];
        args.extend(tracked);
        git(ws, &args)?;
    }
    Ok(())
}

/// An agent's worktree, opened once for the checks at its run's end ([`commit_leftovers`],
/// then [`remove_if_unchanged`]): each open reads every config file of the repository.
pub fn open_worktree(ws: &Path) -> Option<OpenWorktree> {
    open(ws).ok().map(|repo| OpenWorktree {
        repo,
        ignored: std::cell::RefCell::new(None),
    })
}

/// [`open_worktree`]: the repository, and what its status showed ignored when
/// [`commit_leftovers`] found nothing to commit. [`remove_if_unchanged`] reads that instead
/// of a second status (each reads every file's metadata: ~10 ms for 500 files).
pub struct OpenWorktree {
    repo: git2::Repository,
    ignored: std::cell::RefCell<Option<Vec<PathBuf>>>,
}

/// The admin folder (`.git/worktrees/<name>`) and the common git folder of the linked
/// worktree `ws`, read from its `.git` file and the admin folder's `commondir` as git reads
/// them: no repository open (which reads every config file) for what needs two paths.
fn linked_git_dirs(ws: &Path) -> Option<(PathBuf, PathBuf)> {
    let dot_git = std::fs::read_to_string(ws.join(".git")).ok()?;
    let admin = ws.join(dot_git.strip_prefix("gitdir:")?.trim());
    // Relative to the admin folder (`../..`), as git writes it; the system resolves it.
    let common = std::fs::read_to_string(admin.join("commondir")).ok()?;
    let common = admin.join(common.trim());
    Some((admin, common))
}

/// Whether the agent left anything to commit: changed, staged or new files (Fracta's own
/// are excluded). A status that cannot be read counts as changes, so the commit path runs.
#[cfg(test)]
fn has_changes(ws: &Path) -> bool {
    open(ws).map_or(true, |repo| repo_has_changes(&repo))
}

/// [`has_changes`] of an open repository.
fn repo_has_changes(repo: &git2::Repository) -> bool {
    survey(repo).is_none_or(|(changed, _)| changed)
}

/// One status of a worktree: whether anything is changed, staged or new (Fracta's own files
/// are excluded), and what is ignored (a folder whose files all are, as one path). `None`: it
/// cannot be read.
fn survey(repo: &git2::Repository) -> Option<(bool, Vec<PathBuf>)> {
    let mut opts = git2::StatusOptions::new();
    // A file written in the same clock tick as the index is "racily clean": its stat data
    // cannot tell it unchanged, so every status reads and hashes it again, and a worktree
    // kept as a spare kept its index, and so its racy files, from spawn to spawn. A status
    // that had to hash such a file writes the index back (as `git status` does), once.
    opts.update_index(true)
        .include_untracked(true)
        .recurse_untracked_dirs(false)
        .include_ignored(true)
        .recurse_ignored_dirs(false);
    let statuses = repo.statuses(Some(&mut opts)).ok()?;
    let mut changed = false;
    let mut ignored = Vec::new();
    for e in statuses.iter() {
        if e.status() == git2::Status::IGNORED {
            ignored.push(PathBuf::from(
                String::from_utf8_lossy(e.path_bytes()).as_ref(),
            ));
        } else {
            changed = true;
        }
    }
    Some((changed, ignored))
}

/// Commit what the agent left uncommitted on its branch, leaving out the runtime config files
/// Fracta wrote. Returns the new commit, if there was anything to commit.
/// `opened`: the worktree's repository ([`open_worktree`]; none: it could not be opened, and
/// the git CLI decides).
pub fn commit_leftovers(
    ws: &Path,
    opened: Option<&OpenWorktree>,
    message: &str,
    exclude: &[PathBuf],
    holds_secret: &dyn Fn(&str) -> bool,
) -> Result<Option<String>, WorkspaceError> {
    // Nothing changed: the usual end of a question-and-answer turn.
    if let Some(o) = opened
        && let Some((false, ignored)) = survey(&o.repo)
    {
        *o.ignored.borrow_mut() = Some(ignored);
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
    // Fracta's commit never carries a secret it handed the agent: a staged file that holds
    // one stops the commit, and everything is left as the agent left it.
    let staged = git(ws, &["diff", "--cached", "--name-only", "--diff-filter=d"])?;
    let leaking: Vec<String> = staged
        .lines()
        .filter(|f| {
            std::fs::read(ws.join(f)).is_ok_and(|b| holds_secret(&String::from_utf8_lossy(&b)))
        })
        .map(str::to_string)
        .collect();
    if !leaking.is_empty() {
        let _ = git(ws, &["reset", "-q"]);
        return Err(WorkspaceError::SecretInWork {
            files: leaking,
            ws: ws.to_path_buf(),
        });
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
pub(crate) mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(slug("My Task!"), "my-task");
        assert_eq!(slug("///"), "task");
    }

    pub(crate) fn sh(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    pub(crate) fn repo(tracked: &[(&str, &str)]) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        sh(d.path(), &["init", "-q", "-b", "main"]);
        std::fs::write(d.path().join("README.md"), "hi\n").unwrap();
        for (p, c) in tracked {
            let f = d.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, c).unwrap();
        }
        sh(d.path(), &["add", "."]);
        sh(
            d.path(),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qm",
                "init",
            ],
        );
        d
    }

    /// The libgit2 worktree is one the git CLI (which the agent uses) fully understands, and
    /// Fracta's files stay out of `git status` and of the leftovers commit.
    #[test]
    fn worktree_excludes_and_leftovers_agree_with_the_git_cli() {
        let d = repo(&[(".claude/settings.json", "{\"theirs\": true}\n")]);
        let fracta = d.path().join(".fracta");
        // Outside the repository, as Fracta's default is.
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("worktrees");
        let ws = create(
            d.path(),
            &fracta,
            Some(&root),
            "01ABCDEFGH",
            "My task",
            &Base::Named("main".into()),
        )
        .unwrap();
        assert_eq!(ws.path, root.join("01ABCDEFGH"));
        let branch = ws.branch.clone().unwrap();
        assert_eq!(branch, "fracta/my-task-abcdefgh");
        assert_eq!(
            std::fs::read_to_string(ws.path.join("README.md")).unwrap(),
            "hi\n"
        );
        assert_eq!(sh(&ws.path, &["branch", "--show-current"]).trim(), branch);
        assert!(sh(d.path(), &["worktree", "list"]).contains("01ABCDEFGH"));
        assert_eq!(sh(&ws.path, &["status", "--porcelain"]), "");

        // Fracta writes its runtime files: an untracked one and one the repository tracks.
        let ours = [
            ws.path.join(".codex/config.toml"),
            ws.path.join(".claude/settings.json"),
        ];
        keep_out_of_commits(&ws.path, &ours).unwrap();
        for f in &ours {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, "fracta's\n").unwrap();
        }
        assert_eq!(sh(&ws.path, &["status", "--porcelain"]), "");
        assert!(!has_changes(&ws.path));
        assert_eq!(
            commit_leftovers(
                &ws.path,
                open_worktree(&ws.path).as_ref(),
                "leftovers",
                &ours,
                &|_| false
            )
            .unwrap(),
            None
        );
        // The main checkout is untouched by the worktree's settings: the same file there is
        // the user's, and shows.
        std::fs::create_dir_all(d.path().join(".codex")).unwrap();
        std::fs::write(d.path().join(".codex/config.toml"), "mine\n").unwrap();
        assert_eq!(
            sh(d.path(), &["status", "--porcelain", "--ignored=no"]),
            "?? .codex/\n"
        );

        // The agent's own work is seen and committed, Fracta's files are not.
        std::fs::write(ws.path.join("notes.txt"), "work\n").unwrap();
        assert!(has_changes(&ws.path));
        let commit = commit_leftovers(
            &ws.path,
            open_worktree(&ws.path).as_ref(),
            "leftovers",
            &ours,
            &|_| false,
        )
        .unwrap()
        .unwrap();
        let files = sh(&ws.path, &["show", "--name-only", "--format=", &commit]);
        assert_eq!(files.trim(), "notes.txt");
        // A second turn's exclusion is a no-op.
        keep_out_of_commits(&ws.path, &ours).unwrap();
    }

    /// A worktree's files are written as git would write them: through the line-ending
    /// filter where attributes or `core.autocrlf` ask for it, and straight (libgit2's filters
    /// skipped) where nothing can.
    #[test]
    fn line_endings_are_converted_where_asked_and_filters_skipped_where_nothing_can_apply() {
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("worktrees");
        let main = Base::Named("main".into());
        let make = |d: &Path, id: &str| {
            let fracta = d.join(".fracta");
            create(d, &fracta, Some(&root), id, "t", &main).unwrap()
        };
        let converts_nothing =
            |ws: &Workspace| repository_converts_nothing(&open(&ws.path).unwrap());

        // Nothing asks: every file as stored, and the filters are skipped.
        let plain = repo(&[("src/a.txt", "one\ntwo\n")]);
        let ws = make(plain.path(), "01PLAIN000");
        assert_eq!(
            std::fs::read(ws.path.join("src/a.txt")).unwrap(),
            b"one\ntwo\n"
        );
        assert!(converts_nothing(&ws));
        assert_eq!(sh(&ws.path, &["status", "--porcelain"]), "");

        // A `.gitattributes` deep in the tree asks for CRLF.
        let attributed = repo(&[
            ("src/a.txt", "one\ntwo\n"),
            ("src/deep/.gitattributes", "*.txt text eol=crlf\n"),
            ("src/deep/b.txt", "one\ntwo\n"),
        ]);
        let ws = make(attributed.path(), "01ATTRS000");
        assert!(!converts_nothing(&ws));
        assert_eq!(
            std::fs::read(ws.path.join("src/deep/b.txt")).unwrap(),
            b"one\r\ntwo\r\n"
        );
        assert_eq!(
            std::fs::read(ws.path.join("src/a.txt")).unwrap(),
            b"one\ntwo\n"
        );
        assert_eq!(sh(&ws.path, &["status", "--porcelain"]), "");

        // `core.autocrlf`, and the repository's own `info/attributes`.
        let autocrlf = repo(&[("a.txt", "one\ntwo\n")]);
        sh(autocrlf.path(), &["config", "core.autocrlf", "true"]);
        let ws = make(autocrlf.path(), "01CRLF0000");
        assert!(!converts_nothing(&ws));
        assert_eq!(
            std::fs::read(ws.path.join("a.txt")).unwrap(),
            b"one\r\ntwo\r\n"
        );
        let info = repo(&[("a.txt", "one\ntwo\n")]);
        let info_dir = info.path().join(".git/info");
        std::fs::create_dir_all(&info_dir).unwrap();
        std::fs::write(info_dir.join("attributes"), "a.txt eol=crlf\n").unwrap();
        let ws = make(info.path(), "01INFO0000");
        assert!(!converts_nothing(&ws));
        assert_eq!(
            std::fs::read(ws.path.join("a.txt")).unwrap(),
            b"one\r\ntwo\r\n"
        );
    }

    /// The in-process removal of an agent's worktree that changed nothing leaves what
    /// `git worktree remove` and `git branch -D` would: no folder, no admin folder, no branch,
    /// no branch config, nothing for `git worktree prune`. Any work (a new file, a changed
    /// one, a commit) keeps it.
    #[test]
    fn an_unchanged_worktree_is_removed_as_git_would_and_any_work_keeps_it() {
        let d = repo(&[("src/lib.rs", "fn a() {}\n")]);
        let fracta = d.path().join(".fracta");
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("worktrees");
        let main = Base::Named("main".into());
        let make = |id: &str| {
            let ws = create(d.path(), &fracta, Some(&root), id, "t", &main).unwrap();
            write_ours(&ws.path);
            let branch = ws.branch.unwrap();
            sh(
                d.path(),
                &["config", &format!("branch.{branch}.description"), "x"],
            );
            (ws.path, branch)
        };
        let branches = || sh(d.path(), &["branch", "--format=%(refname:short)"]);

        let (path, branch) = make("01AAAAAAAA");
        assert!(remove_if_unchanged(&path, None, &branch, "main", false).unwrap());
        // Moved aside at once; deleted, with the branch, on threads of their own.
        assert!(!path.exists());
        assert!(!d.path().join(".git/worktrees/01AAAAAAAA").exists());
        finish_discards();
        assert_eq!(branches().trim(), "main");
        assert!(!sh(d.path(), &["config", "--list"]).contains(&branch));
        assert!(!d.path().join(".git/logs/refs/heads").join(&branch).exists());
        assert_eq!(
            sh(d.path(), &["worktree", "list", "--porcelain"])
                .matches("worktree ")
                .count(),
            1
        );
        assert_eq!(sh(d.path(), &["worktree", "prune", "--dry-run", "-v"]), "");
        // Its folder waits for the next worktree as a spare, out of git's sight, with
        // Fracta's file (the next launch writes over it); nothing else is left once those
        // threads have run.
        assert_eq!(names(&root), [".spare-01AAAAAAAA"]);
        assert!(ours(&root.join(".spare-01AAAAAAAA")).exists());
        let git_dir: Vec<String> = std::fs::read_dir(d.path().join(".git"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("discarded"))
            .collect();
        assert!(git_dir.is_empty(), "{git_dir:?}");
        assert_eq!(
            std::fs::read_dir(d.path().join(".git/worktrees"))
                .unwrap()
                .count(),
            0
        );

        let kept = |id: &str, work: &dyn Fn(&Path)| {
            let (path, branch) = make(id);
            work(&path);
            assert!(
                !remove_if_unchanged(&path, None, &branch, "main", false).unwrap(),
                "{id}"
            );
            assert!(path.exists(), "{id}");
            assert!(branches().contains(&branch), "{id}");
        };
        kept("01BBBBBBBB", &|p| {
            std::fs::write(p.join("new.txt"), "n\n").unwrap()
        });
        kept("01CCCCCCCC", &|p| {
            std::fs::create_dir_all(p.join("deep/er")).unwrap();
            std::fs::write(p.join("deep/er/new.txt"), "n\n").unwrap();
        });
        kept("01DDDDDDDD", &|p| {
            std::fs::write(p.join("src/lib.rs"), "fn b() {}\n").unwrap()
        });
        kept("01EEEEEEEE", &|p| {
            std::fs::write(p.join("c.txt"), "c\n").unwrap();
            sh(p, &["add", "c.txt"]);
            sh(
                p,
                &[
                    "-c",
                    "user.name=t",
                    "-c",
                    "user.email=t@t",
                    "commit",
                    "-qm",
                    "c",
                ],
            );
        });
    }

    /// Agent `01AAAAAAAA`'s worktree of the repository at `project` (task `t`, from `main`),
    /// in a folder outside it that lives as long as the returned guard.
    fn worktree_outside(project: &Path) -> (tempfile::TempDir, Workspace) {
        let outside = tempfile::tempdir().unwrap();
        let ws = create(
            project,
            &project.join(".fracta"),
            Some(&outside.path().join("worktrees")),
            "01AAAAAAAA",
            "t",
            &Base::Named("main".into()),
        )
        .unwrap();
        (outside, ws)
    }

    /// A worktree that cannot be removed after all keeps its branch: the deletion started
    /// beside the removal is undone, the branch made again at its commit. Here the worktree's
    /// folder went during the run (deleted by hand), so moving it aside and deleting it both
    /// fail.
    #[test]
    fn a_worktree_that_cannot_be_removed_keeps_its_branch() {
        let d = repo(&[("src/lib.rs", "fn a() {}\n")]);
        let (_outside, ws) = worktree_outside(d.path());
        let branch = ws.branch.unwrap();
        let tip = sh(d.path(), &["rev-parse", &branch]);
        let opened = open_worktree(&ws.path).unwrap();
        opened.ignored.replace(Some(Vec::new()));
        std::fs::remove_dir_all(&ws.path).unwrap();
        assert!(remove_if_unchanged(&ws.path, Some(opened), &branch, "main", true).is_err());
        finish_discards();
        assert_eq!(sh(d.path(), &["rev-parse", &branch]), tip);
    }

    /// A file as new as the index (racily clean) is hashed by one status, which writes the
    /// index back; the next status finds it clean from its stat data and writes nothing.
    #[test]
    fn a_racily_clean_file_is_hashed_once_not_at_every_status() {
        let d = repo(&[("src/lib.rs", "fn a() {}\n")]);
        let (_outside, ws) = worktree_outside(d.path());
        let wt = git2::Repository::open(&ws.path).unwrap();
        let index = wt.path().join("index");
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        for f in [ws.path.join("src/lib.rs"), index.clone()] {
            let file = std::fs::File::options().append(true).open(&f).unwrap();
            file.set_modified(then).unwrap();
        }
        let modified = || std::fs::metadata(&index).unwrap().modified().unwrap();
        assert!(!survey(&wt).unwrap().0, "the worktree was found changed");
        let written = modified();
        assert!(written > then, "the index was not written back");
        assert!(!survey(&wt).unwrap().0, "the worktree was found changed");
        assert_eq!(modified(), written, "the index was written again");
    }

    /// Fracta's own runtime file in the worktree `ws`.
    fn ours(ws: &Path) -> PathBuf {
        ws.join(".codex/config.toml")
    }

    /// Fracta's own runtime file written into `ws`, excluded as on every run: not work.
    fn write_ours(ws: &Path) {
        keep_out_of_commits(ws, &[ours(ws)]).unwrap();
        std::fs::create_dir_all(ws.join(".codex")).unwrap();
        std::fs::write(ours(ws), "fracta's\n").unwrap();
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    /// The worktree of an agent that changed nothing is the next one's, when the project's
    /// tree is the same: what git sees of the new one is what a checkout would have made
    /// (its branch, its admin folder, a clean status, Fracta's excludes), and nothing of the
    /// last agent's is in it. A worktree with ignored files is not kept; a spare of an older
    /// tree is deleted; at most two wait.
    #[test]
    fn an_unchanged_worktree_is_the_next_ones_and_only_as_git_would_check_it_out() {
        let d = repo(&[(".gitignore", "target/\n"), ("src/lib.rs", "fn a() {}\n")]);
        let fracta = d.path().join(".fracta");
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("worktrees");
        let main = Base::Named("main".into());
        let make = |id: &str| {
            let ws = create(d.path(), &fracta, Some(&root), id, "t", &main).unwrap();
            write_ours(&ws.path);
            (ws.path, ws.branch.unwrap())
        };
        // As a run ends: nothing to commit, found by the status whose ignored paths then
        // decide whether the worktree is kept.
        let end = |(path, branch): &(PathBuf, String)| {
            let opened = open_worktree(path);
            let commit = commit_leftovers(path, opened.as_ref(), "m", &[ours(path)], &|_| false);
            assert_eq!(commit.unwrap(), None);
            assert!(remove_if_unchanged(path, opened, branch, "main", true).unwrap());
            finish_discards();
        };

        let a = make("01AAAAAAAA");
        end(&a);
        assert_eq!(names(&root), [".spare-01AAAAAAAA"]);
        let taken = create(d.path(), &fracta, Some(&root), "01BBBBBBBB", "t", &main).unwrap();
        assert_eq!(names(&root), ["01BBBBBBBB"]);
        // The last agent's Fracta files came with it, still kept out of git's sight.
        let admin = d.path().join(".git/worktrees/01BBBBBBBB");
        let excluded = || std::fs::read_to_string(admin.join(EXCLUDE_FILE)).unwrap();
        assert_eq!(excluded(), format!("{EXCLUDE_HEADER}/.codex/config.toml\n"));
        assert_eq!(
            sh(&taken.path, &["status", "--porcelain", "--ignored"]),
            "!! .codex/\n"
        );
        // A launch that writes other files: the last agent's are deleted, with their folder.
        let other = taken.path.join(".other/settings.json");
        keep_out_of_commits(&taken.path, std::slice::from_ref(&other)).unwrap();
        assert!(!taken.path.join(".codex").exists());
        assert_eq!(
            excluded(),
            format!("{EXCLUDE_HEADER}/.other/settings.json\n")
        );
        std::fs::create_dir_all(other.parent().unwrap()).unwrap();
        std::fs::write(&other, "{}").unwrap();
        write_ours(&taken.path);
        assert!(!other.exists());
        let b = (taken.path, taken.branch.unwrap());
        let (path, branch) = &b;
        assert_eq!(
            sh(path, &["branch", "--show-current"]).trim(),
            branch.as_str()
        );
        // Only Fracta's file, written for this agent, is there besides the project's.
        assert_eq!(
            sh(path, &["status", "--porcelain", "--ignored"]),
            "!! .codex/\n"
        );
        assert_eq!(
            std::fs::read_to_string(path.join("src/lib.rs")).unwrap(),
            "fn a() {}\n"
        );
        let list = sh(d.path(), &["worktree", "list", "--porcelain"]);
        assert!(
            list.contains(&format!("worktree {}", path.display())),
            "{list}"
        );
        assert!(
            list.contains(&format!("branch refs/heads/{branch}")),
            "{list}"
        );
        assert_eq!(sh(d.path(), &["worktree", "prune", "--dry-run", "-v"]), "");
        assert_eq!(
            std::fs::read_to_string(admin.join("gitdir"))
                .unwrap()
                .trim(),
            path.join(".git").display().to_string()
        );
        assert!(
            std::fs::read_to_string(admin.join("config.worktree"))
                .unwrap()
                .contains("01BBBBBBBB")
        );
        // Work on it is seen, and committed, as on any worktree.
        std::fs::write(path.join("notes.txt"), "work\n").unwrap();
        assert!(has_changes(path));
        std::fs::remove_file(path.join("notes.txt")).unwrap();

        // Ignored files (a build's output) are the last agent's: such a worktree is not kept.
        std::fs::create_dir_all(path.join("target")).unwrap();
        std::fs::write(path.join("target/out"), "built\n").unwrap();
        end(&b);
        assert!(names(&root).is_empty());

        // At most two wait.
        let (c, e, f) = (make("01CCCCCCCC"), make("01EEEEEEEE"), make("01FFFFFFFF"));
        end(&c);
        end(&e);
        end(&f);
        assert_eq!(names(&root), [".spare-01CCCCCCCC", ".spare-01EEEEEEEE"]);

        // The project moved on: its spares hold an older tree, and are deleted.
        std::fs::write(d.path().join("src/lib.rs"), "fn b() {}\n").unwrap();
        sh(
            d.path(),
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "commit",
                "-qam",
                "b",
            ],
        );
        let (path, _) = make("01GGGGGGGG");
        finish_discards();
        assert_eq!(names(&root), ["01GGGGGGGG"]);
        assert_eq!(
            std::fs::read_to_string(path.join("src/lib.rs")).unwrap(),
            "fn b() {}\n"
        );
        assert_eq!(sh(&path, &["status", "--porcelain"]), "");
    }

    /// A resume of an agent whose unchanged worktree was just discarded makes the same branch
    /// again while the old one may still be being deleted on its thread: it keeps the branch.
    #[test]
    fn a_worktree_made_again_at_once_keeps_its_branch() {
        let d = repo(&[("a.txt", "a\n")]);
        let fracta = d.path().join(".fracta");
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("worktrees");
        let main = Base::Named("main".into());
        for _ in 0..5 {
            let ws = create(d.path(), &fracta, Some(&root), "01AGAINAGAIN", "t", &main).unwrap();
            let branch = ws.branch.unwrap();
            assert!(remove_if_unchanged(&ws.path, None, &branch, "main", true).unwrap());
            let again = create(d.path(), &fracta, Some(&root), "01AGAINAGAIN", "t", &main).unwrap();
            finish_discards();
            assert!(branch_exists(d.path(), &branch));
            assert!(again.path.join("a.txt").exists());
            assert!(remove_if_unchanged(&again.path, None, &branch, "main", true).unwrap());
            finish_discards();
            assert!(!branch_exists(d.path(), &branch));
        }
    }

    /// The excludes file is named in `config.worktree` when the worktree is made, quoted as git
    /// reads it (a path with a quote and a backslash in it); a worktree made before, whose
    /// `config.worktree` names the old excludes file in the agent's home, is pointed at the new
    /// one. Either way the git CLI sees none of Fracta's files.
    #[test]
    fn the_excludes_file_is_named_at_creation_or_when_first_kept() {
        let d = repo(&[]);
        let fracta = d.path().join(".fracta");
        let outside = tempfile::tempdir().unwrap();
        let root = outside.path().join("we\"ird\\worktrees");
        let main = Base::Named("main".into());
        let ours = |ws: &Path| [ws.join(".codex/config.toml")];
        let write_ours = |ws: &Path| {
            std::fs::create_dir_all(ws.join(".codex")).unwrap();
            std::fs::write(ws.join(".codex/config.toml"), "fracta's\n").unwrap();
        };

        let ws = create(d.path(), &fracta, Some(&root), "01N", "t", &main).unwrap();
        let (admin, _) = linked_git_dirs(&ws.path).unwrap();
        let named = std::fs::read_to_string(admin.join("config.worktree")).unwrap();
        keep_out_of_commits(&ws.path, &ours(&ws.path)).unwrap();
        write_ours(&ws.path);
        assert_eq!(sh(&ws.path, &["status", "--porcelain"]), "");
        // Named once, at creation: keeping the files out did not rewrite it.
        assert_eq!(
            std::fs::read_to_string(admin.join("config.worktree")).unwrap(),
            named
        );

        let old = create(d.path(), &fracta, Some(&root), "01O", "t", &main).unwrap();
        let (admin, _) = linked_git_dirs(&old.path).unwrap();
        let home = outside.path().join("home-git-exclude");
        std::fs::write(&home, "# an older Fracta's\n").unwrap();
        std::fs::write(
            admin.join("config.worktree"),
            worktree_config(&home).unwrap(),
        )
        .unwrap();
        keep_out_of_commits(&old.path, &ours(&old.path)).unwrap();
        write_ours(&old.path);
        assert_eq!(sh(&old.path, &["status", "--porcelain"]), "");
        assert!(
            sh(&old.path, &["config", "--worktree", "core.excludesFile"]).contains(EXCLUDE_FILE)
        );
    }

    /// Without a base asked for, the worktree branches from what the project has checked out
    /// (found with the same open of the repository), else from the fallback.
    #[test]
    fn the_current_base_is_the_checked_out_branch_else_the_fallback() {
        let d = repo(&[]);
        let fracta = d.path().join(".fracta");
        let root = fracta.join("worktrees");
        let current = Base::Current {
            fallback: "main".into(),
        };
        let git = |args: &[&str]| sh(d.path(), args);
        git(&["checkout", "-q", "-b", "trunk"]);
        let ws = create(d.path(), &fracta, Some(&root), "01A", "t", &current).unwrap();
        assert_eq!(ws.base, "trunk");
        git(&["checkout", "-q", "--detach"]);
        let ws = create(d.path(), &fracta, Some(&root), "01B", "t", &current).unwrap();
        assert_eq!(ws.base, "main");
        let ws = create(
            d.path(),
            &fracta,
            Some(&root),
            "01C",
            "t",
            &Base::Named("trunk".into()),
        )
        .unwrap();
        assert_eq!(ws.base, "trunk");
    }

    #[test]
    fn a_missing_base_branch_names_the_ones_that_exist() {
        let d = repo(&[]);
        let fracta = d.path().join(".fracta");
        let e = create(
            d.path(),
            &fracta,
            Some(&fracta.join("worktrees")),
            "01X",
            "t",
            &Base::Named("develop".into()),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "base branch `develop` does not exist in {}; set project.default_base_branch to an existing branch (found: main)",
                d.path().display()
            )
        );
    }

    /// Worktrees go to the user's state folder, one folder per repository path; a configured
    /// folder wins; with no home they stay in the project's `.fracta`.
    #[test]
    fn worktrees_live_outside_the_repository() {
        let state = PathBuf::from("/home/u/.local/state");
        let fracta = Path::new("/src/My App/.fracta");
        let a = root_in(Some(state.clone()), Path::new("/src/My App"), fracta, None);
        let b = root_in(Some(state.clone()), Path::new("/tmp/My App"), fracta, None);
        assert!(
            a.starts_with("/home/u/.local/state/fracta/worktrees"),
            "{a:?}"
        );
        let name = a.file_name().unwrap().to_string_lossy().to_string();
        assert!(
            name.starts_with("my-app-") && name.len() == "my-app-".len() + 12,
            "{name}"
        );
        assert_ne!(a, b, "two checkouts of one project share a folder");
        let own = Path::new("/wt");
        assert_eq!(
            root_in(Some(state), Path::new("/src/x"), fracta, Some(own)),
            own
        );
        assert_eq!(
            root_in(None, Path::new("/src/x"), fracta, None),
            fracta.join("worktrees")
        );
    }
}
