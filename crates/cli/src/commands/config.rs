//! `fracta config validate` and `fracta config show`.

use std::path::Path;
use std::process::ExitCode;

use fracta_config::{Diagnostic, LoadedConfig};
use serde::Serialize;

use crate::exit::{self, Failure};
use crate::output;

#[derive(Serialize)]
struct ValidateReport<'a> {
    valid: bool,
    file: String,
    diagnostics: &'a [Diagnostic],
}

fn env_lookup(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

pub fn validate(flag: Option<&Path>, json: bool) -> anyhow::Result<ExitCode> {
    let (path, _) = fracta_config::locate(flag);
    match fracta_config::load(flag) {
        Ok(cfg) => {
            let mut diags = cfg.warnings.clone();
            diags.extend(cfg.unset_variables(&env_lookup));
            if json {
                output::json(&ValidateReport {
                    valid: true,
                    file: path.display().to_string(),
                    diagnostics: &diags,
                })?;
            } else {
                output::diagnostics(&diags);
                let n = cfg.config.agents.agent_runtimes.len();
                println!(
                    "{} is valid: {n} runtime{}{}{}",
                    path.display(),
                    if n == 1 { "" } else { "s" },
                    cfg.default_runtime()
                        .map(|d| format!(", default `{d}`"))
                        .unwrap_or_default(),
                    if diags.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", {} warning{}",
                            diags.len(),
                            if diags.len() == 1 { "" } else { "s" }
                        )
                    }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if json => {
            let diags = e.diagnostics();
            output::json(&ValidateReport {
                valid: false,
                file: path.display().to_string(),
                diagnostics: &diags,
            })?;
            let code = if matches!(e, fracta_config::ConfigError::NotFound { .. }) {
                exit::NOT_FOUND
            } else {
                exit::USAGE
            };
            Err(Failure::reported(code))
        }
        Err(e) => Err(super::config_failure(&e)),
    }
}

pub fn show(cfg: &LoadedConfig, json: bool) -> anyhow::Result<ExitCode> {
    let view = cfg.show(&env_lookup);
    if json {
        output::json(&view)?;
    } else {
        print!(
            "# {} (resolved; secret values redacted)\n{}",
            cfg.path.display(),
            serde_yaml_ng::to_string(&view)?
        );
    }
    Ok(ExitCode::SUCCESS)
}
