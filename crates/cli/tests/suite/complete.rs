//! Shell completion through the real bash: the script `fracta completions bash` prints asks
//! `fracta` for candidates, which include the ids of this project's agents (full, and the
//! short suffix the live view shows) and its task names.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use fracta_model_server::Script;

use super::harness::Project;

/// What bash completes for `words` (the last one being typed), through the registered
/// function, as a person pressing Tab would get.
fn complete(p: &Project, words: &[&str]) -> Vec<String> {
    let bin = Path::new(env!("CARGO_BIN_EXE_fracta")).parent().unwrap();
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source <(fracta completions bash) || exit 9\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_TYPE=9\n_clap_complete_fracta fracta '{cur}' '{prev}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        words = quoted.join(" "),
        cword = words.len() - 1,
        cur = words[words.len() - 1],
        prev = words[words.len() - 2],
    );
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(p.path())
        .env("PATH", path)
        .env("HOME", p.path().join("home"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn bash_completes_agent_ids_and_task_names() {
    let p = Project::new(Script::parse("fallback: \"Done.\"\n", "t").unwrap());
    let tasks = p.path().join(".fracta/tasks");
    std::fs::create_dir_all(&tasks).unwrap();
    std::fs::write(tasks.join("deploy-docs.md"), "Deploy the docs.\n").unwrap();
    let (code, v) = p.spawn_json(&["--runtime", "claude", "--prompt", "look around"]);
    assert_eq!(code, 0, "{v:#}");
    let id = v["id"].as_str().unwrap();
    let short = &id[id.len() - 6..];

    let all = complete(&p, &["fracta", "show", ""]);
    assert!(all.contains(&id.to_string()), "{all:?}");
    assert!(all.contains(&"@last".to_string()), "{all:?}");
    // The short id the live view shows, typed in part (any case).
    let by_short = complete(&p, &["fracta", "diff", &short[..3].to_ascii_lowercase()]);
    assert_eq!(by_short, vec![short.to_string()], "{by_short:?}");
    let by_prefix = complete(&p, &["fracta", "logs", &id[..8]]);
    assert_eq!(by_prefix, vec![id.to_string()]);

    let tasks = complete(&p, &["fracta", "spawn", "--task", ""]);
    assert!(tasks.contains(&"deploy-docs".to_string()), "{tasks:?}");
    assert!(tasks.contains(&"look-around".to_string()), "{tasks:?}");
    let one = complete(&p, &["fracta", "spawn", "--task", "dep"]);
    assert_eq!(one, vec!["deploy-docs".to_string()]);
    // Commands still complete as before.
    let cmds = complete(&p, &["fracta", "doc"]);
    assert_eq!(cmds, vec!["doctor".to_string()]);
}
