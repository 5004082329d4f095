//! Logs go to `logging.file` (default `.fracta/fracta.log`) at `logging.level`; `FRACTA_LOG`
//! overrides the level (any tracing filter directive, e.g. `debug` or `fracta_core=trace`).

use std::fs::OpenOptions;
use std::sync::Arc;

use fracta_config::LoadedConfig;
use tracing_subscriber::EnvFilter;

pub const LOG_ENV: &str = "FRACTA_LOG";

/// Start logging to the config's log file. A log file that cannot be opened is reported on
/// stderr (never silently dropped) and the command goes on without a log.
pub fn init(cfg: &LoadedConfig) {
    let level = cfg.config.logging.level.unwrap_or_default().as_str();
    let filter = match std::env::var(LOG_ENV) {
        Ok(s) if !s.trim().is_empty() => EnvFilter::try_new(&s).unwrap_or_else(|e| {
            crate::output::warning(&format!(
                "{LOG_ENV}={s} is not a valid filter ({e}); using `{level}`"
            ));
            EnvFilter::new(level)
        }),
        _ => EnvFilter::new(level),
    };
    let path = cfg.log_path();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = match OpenOptions::new().create(true).append(true).open(&path) {
        Ok(f) => f,
        Err(e) => {
            crate::output::warning(&format!(
                "cannot open log file {}: {e}; logging is off",
                path.display()
            ));
            return;
        }
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(Arc::new(file))
        .with_ansi(false)
        .with_target(true)
        .try_init();
}
