//! `fracta init`: a commented starter `fracta.yaml` and an example task.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::InitArgs;
use crate::exit::{self, Failure};

pub const STARTER_CONFIG: &str = include_str!("../../templates/fracta.yaml");
pub const STARTER_TASK: &str = include_str!("../../templates/hello.md");

pub fn run(args: InitArgs) -> anyhow::Result<ExitCode> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let config = dir.join(fracta_config::load::DEFAULT_FILE);
    let task = dir.join(".fracta").join("tasks").join("hello.md");
    let existing: Vec<String> = [&config, &task]
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Failure::msg(
            exit::FAILURE,
            format!(
                "not overwriting existing {}; move it away first if you want a fresh start",
                existing.join(" and ")
            ),
        ));
    }
    std::fs::create_dir_all(task.parent().unwrap_or(&dir))?;
    // The repository's own branch, not an assumed `main` (a `master` repository, a project
    // on `trunk`): agents branch from it when no other base is asked for.
    let branch = fracta_core::workspace::current_branch(&dir).unwrap_or_else(|| "main".into());
    let starter = STARTER_CONFIG.replacen(
        "default_base_branch: main ",
        &format!("default_base_branch: {branch} "),
        1,
    );
    std::fs::write(&config, starter)?;
    std::fs::write(&task, STARTER_TASK)?;
    println!("wrote {}", config.display());
    println!("wrote {}", task.display());
    println!("next: `fracta config validate`, then `fracta spawn --task hello`");
    Ok(ExitCode::SUCCESS)
}
