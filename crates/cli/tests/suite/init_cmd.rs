//! `fracta init`: a starter config and task that validate, and never an overwrite.

use crate::suite::support::Project;

#[test]
fn init_writes_a_starter_config_and_task() {
    let p = Project::new();
    let out = p.fracta(["init"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert!(p.exists("fracta.yaml"));
    assert!(p.exists(".fracta/tasks/hello.md"));
    assert_eq!(out.stderr, "", "{out}");
    p.snapshot(|| insta::assert_snapshot!(out.transcript()));

    // The starter config is commented, and the task has front matter and a body.
    let cfg = p.read("fracta.yaml");
    assert!(
        cfg.lines()
            .filter(|l| l.trim_start().starts_with('#'))
            .count()
            > 10
    );
    let task = p.read(".fracta/tasks/hello.md");
    assert!(task.starts_with("---\n"), "{task}");
    assert!(task.contains("description:"), "{task}");
}

#[test]
fn init_into_a_named_folder() {
    let p = Project::new();
    let out = p.fracta(["init", "sub/project"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert!(p.exists("sub/project/fracta.yaml"));
    assert!(p.exists("sub/project/.fracta/tasks/hello.md"));
    assert!(!p.exists("fracta.yaml"));
}

#[test]
fn the_starter_config_validates() {
    let p = Project::new();
    assert_eq!(p.fracta(["init"]).run().code, 0);

    // It references ${OPENAI_API_KEY}: unset, that is a warning on stderr, not an error.
    let out = p.fracta(["config", "validate"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("OPENAI_API_KEY"), "{out}");
    p.snapshot(|| insta::assert_snapshot!(out.transcript()));

    // Set, there is nothing to warn about.
    let out = p
        .fracta(["config", "validate"])
        .env("OPENAI_API_KEY", "sk-test")
        .run();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(out.stderr, "", "{out}");

    let out = p.fracta(["config", "validate", "--json"]).run();
    assert_eq!(out.code, 0, "{out}");
    let v = out.json();
    assert_eq!(v["valid"], true, "{out}");
    assert_eq!(v["diagnostics"][0]["severity"], "warning", "{out}");
    assert_eq!(
        v["diagnostics"][0]["key_path"], "agents.agent_runtimes.codex.env.OPENAI_API_KEY",
        "{out}"
    );
}

#[test]
fn init_refuses_to_overwrite() {
    let p = Project::new();
    assert_eq!(p.fracta(["init"]).run().code, 0);
    p.write("fracta.yaml", "# mine\n");
    p.write(".fracta/tasks/hello.md", "my task\n");

    let out = p.fracta(["init"]).run();
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("fracta.yaml"), "{out}");
    assert_eq!(out.stdout, "", "{out}");
    assert_eq!(p.read("fracta.yaml"), "# mine\n");
    assert_eq!(p.read(".fracta/tasks/hello.md"), "my task\n");
    p.snapshot(|| insta::assert_snapshot!(out.transcript()));
}

#[test]
fn init_refuses_when_only_the_task_exists() {
    let p = Project::new();
    p.write(".fracta/tasks/hello.md", "my task\n");
    let out = p.fracta(["init"]).run();
    assert_ne!(out.code, 0, "{out}");
    assert!(out.stderr.contains("hello.md"), "{out}");
    // Nothing half-written.
    assert!(!p.exists("fracta.yaml"), "{out}");
    assert_eq!(p.read(".fracta/tasks/hello.md"), "my task\n");
}

/// In a repository whose branch is not `main`, the starter config names that branch.
#[test]
fn init_names_the_repositorys_own_branch() {
    let p = Project::new();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(p.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {out:?}");
    };
    git(&["init", "-q", "-b", "trunk"]);
    let out = p.fracta(["init"]).run();
    assert_eq!(out.code, 0, "{out}");
    let cfg = p.read("fracta.yaml");
    assert!(cfg.contains("  default_base_branch: trunk  #"), "{cfg}");
    assert!(!cfg.contains("default_base_branch: main"), "{cfg}");
}
