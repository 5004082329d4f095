//! The everyday loop after an agent ran: review its work (`diff`), merge it (git), clean up
//! (`rm`, `prune`), with the real Claude Code writing a file through the scripted model.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use fracta_model_server::Script;
use serde_json::Value;

use super::harness::Project;

fn git(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@t"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn diff_shows_the_agents_work_and_rm_and_prune_keep_what_is_not_merged() {
    let p = Project::new(
        Script::parse(
            "rules:\n  - when: { contains: \"write the file\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Write, input: { file_path: \"hello.txt\", content: \"REVIEW-ME\\n\" } }]\nfallback: \"Done.\"\n",
            "t",
        )
        .unwrap(),
    );
    let (code, writer) = p.spawn_json(&["--runtime", "claude", "--prompt", "write the file"]);
    assert_eq!(code, 0, "{writer:#}");
    let (code, idle) = p.spawn_json(&["--runtime", "claude", "--prompt", "just say done"]);
    assert_eq!(code, 0, "{idle:#}");
    let (w, i) = (writer["id"].as_str().unwrap(), idle["id"].as_str().unwrap());
    let branch = writer["branch"].as_str().unwrap().to_string();

    // diff: the stat names the file, the patch carries its content; nothing for the other.
    let out = p.run(&["diff", w, "--stat"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("hello.txt") && stdout.contains("1 insertion"),
        "{stdout}"
    );
    let out = p.run(&["diff", w]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains("+REVIEW-ME"), "{stdout}");
    assert!(
        !stdout.contains(".claude/settings.json"),
        "Fracta's files are not the agent's work"
    );
    let out = p.run(&["diff", i]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success() && stdout.trim().is_empty(), "{stdout}");
    assert!(stderr.contains("changed nothing"), "{stderr}");

    // rm refuses work that is not on its base, and prune keeps it, saying why.
    let out = p.run(&["rm", w]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("not on main") && stderr.contains("fracta diff"),
        "{stderr}"
    );
    let out = p.run(&["prune", "--dry-run"]);
    let (stdout, _) = text(&out);
    assert!(stdout.contains(&format!("would remove {i}")), "{stdout}");
    assert!(stdout.contains(&format!("kept    {w}")), "{stdout}");
    let out = p.run(&["prune", "--merged"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("removed {i}")), "{stdout}");
    assert!(
        !stdout.contains(w),
        "an unmerged agent is not even considered: {stdout}"
    );
    // The idle agent's worktree was kept for the next spawn: prune deletes it.
    assert!(stdout.contains("removed 1 spare worktree(s)"), "{stdout}");
    let gone = p.run(&["show", i]);
    assert_eq!(gone.status.code(), Some(4));

    // Merged by hand, the writer's branch is on main: rm removes worktree, branch and record.
    assert!(git(p.path(), &["merge", "-q", "--no-edit", &branch]).0);
    let out = p.run(&["rm", w]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("removed agent {w}")), "{stdout}");
    assert!(!Path::new(writer["workspace"].as_str().unwrap()).exists());
    assert!(
        !git(p.path(), &["rev-parse", "--verify", &branch]).0,
        "branch deleted"
    );
    let (_, worktrees) = git(p.path(), &["worktree", "list"]);
    assert_eq!(worktrees.lines().count(), 1, "{worktrees}");
    assert_eq!(p.run(&["show", w]).status.code(), Some(4));
    let all: Value = p.json(&["ps", "--all", "--json"]);
    assert_eq!(all, serde_json::json!([]), "{all:#}");
}

/// `fracta merge`: a merge commit, `--squash` (and `--rm`), `--rebase`; a dirty work tree is
/// refused and a conflict names its files and changes nothing.
#[test]
fn merge_brings_the_agents_work_in_and_a_conflict_changes_nothing() {
    let write = |n: &str, file: &str, content: &str| {
        format!(
            "  - when: {{ contains: \"write {n}\", has_tools: true }}\n    reply:\n      tool_calls: [{{ name: Write, input: {{ file_path: \"{file}\", content: \"{content}\\n\" }} }}]\n"
        )
    };
    let script = format!(
        "rules:\n{}{}{}{}fallback: \"Done.\"\n",
        write("one", "one.txt", "ONE"),
        write("two", "two.txt", "TWO"),
        write("three", "one.txt", "CLASH"),
        write("four", "four.txt", "FOUR"),
    );
    let p = Project::new(Script::parse(&script, "t").unwrap());
    let spawn = |what: &str| {
        let (code, v) = p.spawn_json(&["--runtime", "claude", "--prompt", what]);
        assert_eq!(code, 0, "{v:#}");
        v["id"].as_str().unwrap().to_string()
    };
    let (one, two, three, four) = (
        spawn("write one"),
        spawn("write two"),
        spawn("write three"),
        spawn("write four"),
    );
    let head = || git(p.path(), &["rev-parse", "HEAD"]).1;

    // A dirty work tree is refused before anything happens.
    std::fs::write(p.path().join("README.md"), "edited\n").unwrap();
    let out = p.run(&["merge", &one]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("commit or stash"), "{stderr}");
    assert!(git(p.path(), &["checkout", "README.md"]).0);

    let out = p.run(&["merge", &one]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("into main"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(p.path().join("one.txt")).unwrap(),
        "ONE\n"
    );
    let parents = git(p.path(), &["rev-list", "--parents", "-n", "1", "HEAD"]).1;
    assert_eq!(
        parents.split_whitespace().count(),
        3,
        "a merge commit: {parents}"
    );

    let out = p.run(&["merge", &two, "--squash", "--rm"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(p.path().join("two.txt")).unwrap(),
        "TWO\n"
    );
    let parents = git(p.path(), &["rev-list", "--parents", "-n", "1", "HEAD"]).1;
    assert_eq!(
        parents.split_whitespace().count(),
        2,
        "one squashed commit: {parents}"
    );
    assert_eq!(p.run(&["show", &two]).status.code(), Some(4), "removed");

    // one.txt again, other content: a conflict names the file and leaves main as it was.
    let before = head();
    let out = p.run(&["merge", &three]);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("conflicts in: one.txt"), "{stderr}");
    assert_eq!(head(), before);
    assert!(
        !p.path().join(".git/MERGE_HEAD").exists(),
        "no merge left half-done"
    );
    assert!(
        git(p.path(), &["status", "--porcelain", "--untracked-files=no"])
            .1
            .is_empty()
    );
    let out = p.run(&["merge", &three, "--rebase"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    assert_eq!(head(), before);

    // A rebase replays the agent's commit on main and fast-forwards: no merge commit.
    let out = p.run(&["merge", &four, "--rebase"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let parents = git(p.path(), &["rev-list", "--parents", "-n", "1", "HEAD"]).1;
    assert_eq!(parents.split_whitespace().count(), 2, "{parents}");
    assert_eq!(
        std::fs::read_to_string(p.path().join("four.txt")).unwrap(),
        "FOUR\n"
    );
    // Its branch now sits on main, so rm takes it without --force.
    let out = p.run(&["rm", &four]);
    assert!(out.status.success(), "{}", text(&out).1);
}

/// Fracta's own commit of an agent's work never carries a secret it handed the agent: a file
/// holding the runtime's API key (planted by the model) stays uncommitted, and the agent's
/// record says which file and why.
#[test]
fn fractas_commit_refuses_a_file_holding_a_secret() {
    // `sk-ant-test` is the Claude runtime's ANTHROPIC_API_KEY in the test config.
    let p = Project::new(
        Script::parse(
            "rules:\n  - when: { contains: \"leak it\", has_tools: true }\n    reply:\n      tool_calls: [{ name: Write, input: { file_path: \"leak.txt\", content: \"key=sk-ant-test\\n\" } }, { name: Write, input: { file_path: \"fine.txt\", content: \"fine\\n\" } }]\nfallback: \"Done.\"\n",
            "t",
        )
        .unwrap(),
    );
    let out = p.run(&[
        "spawn",
        "--json",
        "--runtime",
        "claude",
        "--prompt",
        "leak it",
    ]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stdout.contains("sk-ant-test") && !stderr.contains("sk-ant-test"));
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let (id, branch) = (v["id"].as_str().unwrap(), v["branch"].as_str().unwrap());
    let ws = Path::new(v["workspace"].as_str().unwrap());
    // Nothing was committed: the branch is where it started, the work is still there.
    assert!(!git(p.path(), &["cat-file", "-e", &format!("{branch}:leak.txt")]).0);
    assert!(!git(p.path(), &["cat-file", "-e", &format!("{branch}:fine.txt")]).0);
    assert!(ws.join("leak.txt").is_file() && ws.join("fine.txt").is_file());
    let events = p.events(id);
    let said = events
        .iter()
        .find(|e| e["kind"] == "error")
        .unwrap_or_else(|| panic!("{events:#?}"))
        .to_string();
    assert!(
        said.contains("not committed") && said.contains("leak.txt"),
        "{said}"
    );
    assert!(!said.contains("fine.txt"), "{said}");
    for e in &events {
        assert!(!e.to_string().contains("sk-ant-test"), "{e}");
    }
}

/// An agent that ended having changed nothing leaves no branch and no worktree; its record
/// stays and says so, `diff` and `merge` say there is nothing, `resume` makes its worktree
/// again, and `rm` removes the record.
#[test]
fn an_agent_that_changed_nothing_leaves_no_branch() {
    let p = Project::new(Script::parse("fallback: \"Nothing to do.\"\n", "t").unwrap());
    let (code, v) = p.spawn_json(&["--runtime", "claude", "--prompt", "look around"]);
    assert_eq!(code, 0, "{v:#}");
    let id = v["id"].as_str().unwrap();
    assert!(v["branch"].is_null(), "{v:#}");
    assert!(v["workspace"].is_null(), "{v:#}");
    let (_, branches) = git(p.path(), &["branch", "--list", "fracta/*"]);
    assert_eq!(branches.trim(), "", "no fracta branch is left");
    let (_, worktrees) = git(p.path(), &["worktree", "list"]);
    assert_eq!(worktrees.lines().count(), 1, "{worktrees}");
    let rec = p.agent(id);
    let removed = rec["meta"]["unchanged_branch"].as_str().unwrap();
    assert!(removed.starts_with("fracta/look-around-"), "{rec:#}");
    assert_eq!(rec["status"], "succeeded");

    let out = p.run(&["diff", id]);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success() && stdout.is_empty(),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("changed nothing") && stderr.contains(removed),
        "{stderr}"
    );
    let out = p.run(&["merge", id]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("nothing to merge"), "{stdout}");

    // Resumed, it works in a worktree made again from its base; still changing nothing, it
    // leaves none again.
    let out = p.run(&["resume", id, "--prompt", "and now?", "--json"]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}{stderr}");
    let after: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(after["status"], "succeeded", "{after:#}");
    assert!(after["branch"].is_null(), "{after:#}");
    let (_, branches) = git(p.path(), &["branch", "--list", "fracta/*"]);
    assert_eq!(branches.trim(), "");

    let out = p.run(&["rm", id]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("which changed nothing"), "{stdout}");
    assert_eq!(p.run(&["show", id]).status.code(), Some(4));
}

/// Agent worktrees live outside the repository: in the user's state folder, one folder per
/// project, or where `project.worktrees_dir` says; `rm` removes them (and the project's
/// folder with its last worktree), and the project's own checkout never sees them.
#[test]
fn worktrees_live_outside_the_repository_and_rm_removes_them() {
    let p = Project::new(Script::parse("fallback: \"Done.\"\n", "t").unwrap());
    p.keep_worktrees(); // (an agent that changes nothing keeps no worktree)
    let (code, a) = p.spawn_json(&["--runtime", "claude", "--prompt", "just say done"]);
    assert_eq!(code, 0, "{a:#}");
    let id = a["id"].as_str().unwrap();
    let ws = Path::new(a["workspace"].as_str().unwrap()).to_path_buf();
    let shared = p.path().join("home/.local/state/fracta/worktrees");
    let project_folder = ws.parent().unwrap();
    assert_eq!(ws.file_name().unwrap(), id);
    assert_eq!(project_folder.parent().unwrap(), shared, "{}", ws.display());
    assert!(ws.join("README.md").is_file());
    assert!(!p.path().join(".fracta/worktrees").exists());
    let (_, status) = git(p.path(), &["status", "--porcelain", "--ignored=no"]);
    // (The harness leaves its fracta.yaml uncommitted.)
    assert_eq!(
        status, "?? fracta.yaml\n",
        "the project's checkout is untouched"
    );
    let (_, list) = git(p.path(), &["worktree", "list"]);
    assert!(list.contains(&ws.display().to_string()), "{list}");

    let out = p.run(&["rm", "--force", id]); // (the setup file is work of its own)
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(!ws.exists() && !project_folder.exists(), "{}", ws.display());
    let (_, list) = git(p.path(), &["worktree", "list"]);
    assert_eq!(list.lines().count(), 1, "{list}");

    // `project.worktrees_dir` puts them where the user says.
    let elsewhere = tempfile::tempdir().unwrap();
    let own = elsewhere.path().join("agents' worktrees");
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(
        p.path().join("fracta.yaml"),
        format!("{cfg}  worktrees_dir: \"{}\"\n", own.display()),
    )
    .unwrap();
    let (code, b) = p.spawn_json(&["--runtime", "claude", "--prompt", "just say done"]);
    assert_eq!(code, 0, "{b:#}");
    let id = b["id"].as_str().unwrap();
    assert_eq!(
        b["workspace"].as_str().unwrap(),
        own.join(id).display().to_string()
    );
    let out = p.run(&["rm", "--force", id]); // (the setup file is work of its own)
    assert!(out.status.success(), "{}", text(&out).1);
    assert!(!own.join(id).exists());
}
