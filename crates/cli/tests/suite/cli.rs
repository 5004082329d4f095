//! The command line itself: `--help`, completions, exit codes, colour and the stdout/stderr
//! split.

use crate::suite::support::Project;

#[test]
fn help_lists_the_commands_and_the_exit_codes() {
    let p = Project::new();
    let out = p.fracta(["--help"]).run();
    assert_eq!(out.code, 0, "{out}");
    for code in [
        "0  success",
        "1  failure",
        "2  invalid",
        "3  the agent was stopped",
        "4  not found",
    ] {
        assert!(
            out.stdout.contains(code),
            "--help lacks exit code `{code}`:\n{out}"
        );
    }
    for cmd in ["init", "config", "completions"] {
        assert!(
            out.stdout.contains(&format!("  {cmd} ")),
            "--help lacks `{cmd}`:\n{out}"
        );
    }
    insta::assert_snapshot!(out.stdout);
}

#[test]
fn every_subcommand_has_help() {
    let p = Project::new();
    for args in [
        &["init", "--help"][..],
        &["config", "--help"],
        &["config", "validate", "--help"],
        &["config", "show", "--help"],
        &["completions", "--help"],
    ] {
        let out = p.fracta(args).run();
        assert_eq!(out.code, 0, "{args:?}: {out}");
        assert!(out.stdout.contains("Usage: fracta"), "{args:?}: {out}");
    }
    let out = p.fracta(["config", "validate", "--help"]).run();
    assert!(out.stdout.contains("--json"), "{out}");
    assert!(out.stdout.contains("--config"), "{out}");
}

#[test]
fn version() {
    let p = Project::new();
    let out = p.fracta(["--version"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.stdout,
        format!("fracta {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// On Linux with glibc the executable is linked statically (scripts/rustc-wrapper.sh, run by
/// Cargo through .cargo/config.toml): no program interpreter, so no loader and no shared
/// libraries at each start. Fails if the wrapper is bypassed or finds no static glibc.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_executable_is_linked_statically() {
    let elf = std::fs::read(env!("CARGO_BIN_EXE_fracta")).unwrap();
    assert_eq!(&elf[..5], b"\x7fELF\x02", "a 64-bit ELF file");
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(elf[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let types: Vec<u32> = (0..phnum)
        .map(|i| {
            let o = phoff + i * phentsize;
            u32::from_le_bytes(elf[o..o + 4].try_into().unwrap())
        })
        .collect();
    const PT_LOAD: u32 = 1;
    const PT_DYNAMIC: u32 = 2;
    const PT_INTERP: u32 = 3;
    assert!(types.contains(&PT_LOAD), "program headers: {types:?}");
    assert!(
        !types.contains(&PT_INTERP) && !types.contains(&PT_DYNAMIC),
        "fracta is linked dynamically (program headers {types:?}): was it built without \
         scripts/rustc-wrapper.sh, or without glibc's libc.a?"
    );
}

#[test]
fn invalid_usage_exits_2_on_stderr() {
    let p = Project::new();
    for args in [
        &["no-such-command"][..],
        &["config", "validate", "--no-such-flag"],
        &[],
    ] {
        let out = p.fracta(args).run();
        assert_eq!(out.code, 2, "{args:?}: {out}");
        assert_eq!(out.stdout, "", "{args:?}: {out}");
        assert!(out.stderr.contains("Usage"), "{args:?}: {out}");
    }
}

#[test]
fn completions_for_every_shell() {
    let p = Project::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = p.fracta(["completions", shell]).run();
        assert_eq!(out.code, 0, "{shell}: {out}");
        assert!(out.stdout.contains("fracta"), "{shell}: {out}");
        // The script asks `fracta` for candidates (dynamic completion: ids, task names).
        assert!(out.stdout.contains("COMPLETE"), "{shell}: {out}");
        assert_eq!(out.stderr, "", "{shell}: {out}");
    }
    let out = p.fracta(["completions", "bash"]).run();
    assert!(
        out.stdout.contains("-F _clap_complete_fracta fracta"),
        "{out}"
    );

    let out = p.fracta(["completions", "tcsh"]).run();
    assert_eq!(out.code, 2, "{out}");
}

#[test]
fn the_bash_completion_script_is_valid_bash() {
    let p = Project::new();
    let out = p.fracta(["completions", "bash"]).run();
    p.write("fracta.bash", &out.stdout);
    let Ok(status) = std::process::Command::new("bash")
        .args(["-n", "fracta.bash"])
        .current_dir(p.path())
        .status()
    else {
        eprintln!("skipping: no bash");
        return;
    };
    assert!(status.success(), "bash -n rejected the completion script");
}

// ---- colour --------------------------------------------------------------------------------

const ESC: char = '\x1b';

#[test]
fn no_colour_with_no_color_set() {
    let p = Project::new();
    p.write(
        "fracta.yaml",
        "agents:\n  agent_runtimes:\n    c:\n      adapter: claud\n",
    );
    // NO_COLOR wins even over CLICOLOR_FORCE.
    let out = p
        .fracta(["config", "validate"])
        .env("NO_COLOR", "1")
        .env("CLICOLOR_FORCE", "1")
        .run();
    assert_eq!(out.code, 2, "{out}");
    assert!(!out.stderr.contains(ESC), "{out:?}");
    assert!(!out.stdout.contains(ESC), "{out:?}");
}

#[test]
fn no_colour_when_not_a_terminal() {
    let p = Project::new();
    p.write(
        "fracta.yaml",
        "agents:\n  agent_runtimes:\n    c:\n      adapter: claud\n",
    );
    let out = p
        .fracta(["config", "validate"])
        .color()
        .env("TERM", "xterm-256color")
        .run();
    assert_eq!(out.code, 2, "{out}");
    assert!(!out.stderr.contains(ESC), "{out:?}");

    // Control: the same run, forced, does colour — so the check above can fail.
    let forced = p
        .fracta(["config", "validate"])
        .color()
        .env("CLICOLOR_FORCE", "1")
        .run();
    assert!(forced.stderr.contains(ESC), "{forced:?}");
}

#[test]
fn colour_on_a_terminal_unless_no_color() {
    let p = Project::new();
    let Some(tty) = p.fracta_in_terminal(&["config", "validate"], false) else {
        return;
    };
    assert_eq!(tty.code, 4, "{tty:?}");
    assert!(tty.stdout.contains(&format!("{ESC}[")), "{tty:?}");

    let Some(tty) = p.fracta_in_terminal(&["config", "validate"], true) else {
        return;
    };
    assert_eq!(tty.code, 4, "{tty:?}");
    assert!(!tty.stdout.contains(ESC), "{tty:?}");
}

// ---- stdout is for data, stderr for diagnostics --------------------------------------------

#[test]
fn warnings_go_to_stderr_and_json_stays_parseable() {
    let p = Project::new();
    p.write(
        "fracta.yaml",
        "runtimes:\n  codex:\n    adapter: codex\n    env:\n      OPENAI_API_KEY: \"${OPENAI_API_KEY}\"\n",
    );
    let out = p.fracta(["config", "show", "--json"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("deprecated"), "{out}");
    out.json();
    let out = p.fracta(["config", "validate", "--json"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert_eq!(
        out.json()["diagnostics"].as_array().unwrap().len(),
        2,
        "{out}"
    );
}
