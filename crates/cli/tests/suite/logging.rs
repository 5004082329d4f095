//! Logs: `logging.file` (default `.fracta/fracta.log`) at `logging.level`; `FRACTA_LOG`
//! overrides the level.

use crate::suite::support::Project;

const MINIMAL: &str = "agents:\n  agent_runtimes:\n    claude:\n      adapter: claude\n";

#[test]
fn a_command_writes_the_default_log_file() {
    let p = Project::new();
    p.write("fracta.yaml", MINIMAL);
    let out = p.fracta(["config", "show"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert!(p.exists(".fracta/fracta.log"), "{out}");
    // At the default level (info) the debug line is not there.
    assert!(!p.read(".fracta/fracta.log").contains("config loaded"));
}

#[test]
fn fracta_log_overrides_the_level() {
    let p = Project::new();
    p.write("fracta.yaml", MINIMAL);
    let out = p
        .fracta(["config", "show"])
        .env("FRACTA_LOG", "debug")
        .run();
    assert_eq!(out.code, 0, "{out}");
    let log = p.read(".fracta/fracta.log");
    assert!(log.contains("DEBUG"), "{log}");
    assert!(log.contains("config loaded"), "{log}");
    // Logs never go to the terminal.
    assert!(!out.stderr.contains("config loaded"), "{out}");
    assert!(!out.stdout.contains("config loaded"), "{out}");
    // No colour codes in the file.
    assert!(!log.contains('\x1b'), "{log:?}");
}

#[test]
fn logging_level_and_file_come_from_the_config() {
    let p = Project::new();
    p.write(
        "fracta.yaml",
        format!("logging:\n  file: logs/custom.log\n  level: debug\n{MINIMAL}"),
    );
    let out = p.fracta(["config", "show"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert!(!p.exists(".fracta/fracta.log"));
    let log = p.read("logs/custom.log");
    assert!(log.contains("config loaded"), "{log}");

    // FRACTA_LOG can lower it, too.
    std::fs::remove_file(p.join("logs/custom.log")).unwrap();
    let out = p.fracta(["config", "show"]).env("FRACTA_LOG", "warn").run();
    assert_eq!(out.code, 0, "{out}");
    assert!(!p.read("logs/custom.log").contains("config loaded"));
}

#[test]
fn an_invalid_fracta_log_is_a_warning_not_a_failure() {
    let p = Project::new();
    p.write("fracta.yaml", MINIMAL);
    let out = p
        .fracta(["config", "show"])
        .env("FRACTA_LOG", "not a [valid filter")
        .run();
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("FRACTA_LOG"), "{out}");
}

#[test]
fn an_unwritable_log_file_is_reported_and_the_command_goes_on() {
    let p = Project::new();
    // A folder where the log file should be.
    std::fs::create_dir_all(p.join(".fracta/fracta.log")).unwrap();
    p.write("fracta.yaml", MINIMAL);
    let out = p.fracta(["config", "show"]).run();
    assert_eq!(out.code, 0, "{out}");
    assert!(out.stderr.contains("cannot open log file"), "{out}");
}
