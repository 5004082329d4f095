//! `fracta task list`.

use std::process::ExitCode;

use fracta_config::LoadedConfig;

use crate::output;

pub fn list(cfg: &LoadedConfig, json: bool) -> anyhow::Result<ExitCode> {
    let tasks = fracta_core::task::list(&cfg.tasks_dir())?;
    if json {
        output::json(&tasks)?;
        return Ok(ExitCode::SUCCESS);
    }
    if tasks.is_empty() {
        println!(
            "no tasks in {}; create NAME.md there, or spawn with --task NAME --prompt TEXT",
            cfg.tasks_dir().display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for t in tasks {
        let defaults: Vec<String> = [
            t.defaults.runtime.as_ref().map(|r| format!("runtime={r}")),
            t.defaults.tier.map(|x| format!("tier={x}")),
            t.defaults.model.as_ref().map(|m| format!("model={m}")),
            t.defaults.mode.map(|m| format!("mode={m}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        println!(
            "{:<24} {}{}",
            t.name,
            t.defaults.description.as_deref().unwrap_or(""),
            if defaults.is_empty() {
                String::new()
            } else {
                format!("  [{}]", defaults.join(" "))
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
