//! `project.setup`: commands run in a new worktree before the real agent CLI starts, their
//! output recorded as `setup` events; a failing one fails the agent before it starts.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use fracta_model_server::Script;

use super::harness::Project;

fn project_with_setup(setup: &str) -> Project {
    let p = Project::new(Script::parse("fallback: \"Done.\"\n", "t").unwrap());
    let cfg = std::fs::read_to_string(p.path().join("fracta.yaml")).unwrap();
    std::fs::write(
        p.path().join("fracta.yaml"),
        format!("{cfg}  setup:\n{setup}"),
    )
    .unwrap();
    p
}

#[test]
fn setup_runs_in_the_new_worktree_before_the_agent_and_is_in_its_logs() {
    let p = project_with_setup(
        "    - echo SETUP-OUTPUT-1 && git rev-parse --abbrev-ref HEAD > setup-marker.txt\n    - { run: \"echo second-step >&2\", timeout_secs: 30 }\n",
    );
    let (code, v) = p.spawn_json(&["--runtime", "claude", "--prompt", "just say done"]);
    assert_eq!(code, 0, "{v:#}");
    let id = v["id"].as_str().unwrap();
    // It ran in the agent's worktree, on the agent's branch.
    let ws = Path::new(v["workspace"].as_str().unwrap());
    let marker = std::fs::read_to_string(ws.join("setup-marker.txt")).unwrap();
    assert_eq!(marker.trim(), v["branch"].as_str().unwrap());

    let events = p.events(id);
    let text = serde_json::to_string(&events).unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| serde_json::to_string(e).unwrap())
        .collect();
    // Before the agent's CLI started: the two setup calls and their results come before the
    // `running` status.
    let pos = |needle: &str| kinds.iter().position(|k| k.contains(needle));
    let first_output = pos("SETUP-OUTPUT-1").unwrap_or_else(|| panic!("{text}"));
    let second = pos("second-step").unwrap_or_else(|| panic!("{text}"));
    let running = pos("\"running\"").unwrap_or_else(|| panic!("{text}"));
    assert!(first_output < second && second < running, "{text}");
    assert!(text.contains("\"setup\""), "{text}");

    // `fracta logs` shows them to a person too.
    let out = p.run(&["logs", id]);
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("setup"), "{human}");
    assert!(human.contains("SETUP-OUTPUT-1"), "{human}");
}

#[test]
fn a_failing_setup_command_fails_the_agent_before_it_starts_with_its_exit_code_and_output() {
    let p = project_with_setup(
        "    - echo fine\n    - \"echo npm ERR! missing dependency left-pad >&2; exit 7\"\n    - echo never-runs\n",
    );
    let (code, v) = p.spawn_json(&["--runtime", "claude", "--prompt", "just say done"]);
    assert_eq!(code, 1, "{v:#}");
    assert_eq!(v["status"], "failed", "{v:#}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains("setup command 2 of 3")
            && error.contains("exited with code 7")
            && error.contains("missing dependency left-pad"),
        "{error}"
    );
    assert!(
        p.requests().is_empty(),
        "the agent's CLI never started: {:?}",
        p.requests().len()
    );
    let text = serde_json::to_string(&p.events(v["id"].as_str().unwrap())).unwrap();
    assert!(!text.contains("never-runs\\n"), "{text}");

    // The human spawn output says why, too.
    let out = p.run(&["spawn", "--runtime", "claude", "--prompt", "again"]);
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all.contains("exited with code 7"), "{all}");
}

#[test]
fn a_setup_command_that_overstays_its_timeout_is_killed_and_fails_the_agent() {
    let p = project_with_setup("    - { run: \"sleep 60\", timeout_secs: 1 }\n");
    let (code, v) = p.spawn_json(&["--runtime", "claude", "--prompt", "just say done"]);
    assert_eq!(code, 1, "{v:#}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("did not finish within 1 s"),
        "{v:#}"
    );
}

/// The pid a long setup command wrote into its worktree, once it has.
fn setup_pid(p: &Project) -> i64 {
    let start = std::time::Instant::now();
    loop {
        // Worktrees live in the user's state folder: <project>-<digest>/<agent id>.
        let root = p.path().join("home/.local/state/fracta/worktrees");
        for project in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for d in std::fs::read_dir(project.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(text) = std::fs::read_to_string(d.path().join("setup.pid"))
                    && let Ok(pid) = text.trim().parse()
                {
                    return pid;
                }
            }
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(60),
            "the setup command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// `fracta stop` while a setup command runs kills it (its whole group) and the agent ends
/// stopped, without starting; Ctrl-C on the foreground spawn does the same.
#[test]
fn stopping_an_agent_during_setup_kills_the_command_and_the_agent_never_starts() {
    use super::harness::{pid_alive, wait_child};
    let p = project_with_setup("    - \"echo $$ > setup.pid; exec sleep 300\"\n");
    let mut spawn = p.start(&["spawn", "--runtime", "claude", "--prompt", "just say done"]);
    let pid = setup_pid(&p);
    let out = p.run(&["stop", "@last"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = wait_child(&mut spawn, std::time::Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "the spawn ends as stopped");
    let start = std::time::Instant::now();
    while pid_alive(pid) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the setup command still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let a = p.json(&["show", "@last", "--json"]);
    assert_eq!(a["status"], "stopped", "{a:#}");
    assert!(p.requests().is_empty(), "the agent's CLI never started");

    // Ctrl-C at the terminal, on a foreground spawn in its setup.
    let root = p.path().join("home/.local/state/fracta/worktrees");
    for project in std::fs::read_dir(&root).into_iter().flatten().flatten() {
        for d in std::fs::read_dir(project.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let _ = std::fs::remove_file(d.path().join("setup.pid"));
        }
    }
    let mut spawn = p.start(&["spawn", "--runtime", "claude", "--prompt", "again"]);
    let pid = setup_pid(&p);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(spawn.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = wait_child(&mut spawn, std::time::Duration::from_secs(60));
    assert_eq!(status.code(), Some(3), "the spawn ends as stopped");
    let start = std::time::Instant::now();
    while pid_alive(pid) {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "the setup command still runs"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let a = p.json(&["show", "@last", "--json"]);
    assert_eq!(a["status"], "stopped", "{a:#}");
    assert!(
        a["error"]
            .as_str()
            .unwrap()
            .contains("during project.setup"),
        "{a:#}"
    );
}
