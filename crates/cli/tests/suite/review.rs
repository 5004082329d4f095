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
    let gone = p.run(&["show", i]);
    assert_eq!(gone.status.code(), Some(4));
    assert!(!Path::new(idle["workspace"].as_str().unwrap()).exists());
    assert!(
        !git(
            p.path(),
            &["rev-parse", "--verify", idle["branch"].as_str().unwrap()]
        )
        .0
    );

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
