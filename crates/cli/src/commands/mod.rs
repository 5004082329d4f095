//! One module per command.

mod agent;
mod auth;
mod client;
pub mod completions;
mod config;
mod dashboard;
mod doctor;
mod init;
mod model_server;
mod render;
mod review;
mod serve;
mod task;

use std::process::ExitCode;

use fracta_config::{ConfigError, LoadedConfig};

use crate::cli::{AuthCommand, Cli, Command, ConfigCommand, TaskCommand};
use crate::exit::{self, Failure};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_path = cli.globals.config.as_deref();
    match cli.command {
        Command::Init(args) => init::run(args),
        Command::Config(ConfigCommand::Validate(a)) => config::validate(config_path, a.json),
        Command::Config(ConfigCommand::Show(a)) => config::show(&load(config_path)?, a.json),
        Command::Completions(a) => completions::run(a),
        Command::Doctor(a) => doctor::run(config_path, a.json),
        Command::Spawn(a) => agent::spawn(load(config_path)?, a),
        Command::Render(a) => render::run(load(config_path)?, a),
        Command::Resume(a) => agent::resume(load(config_path)?, a),
        Command::Stop(a) => agent::stop(load(config_path)?, a),
        Command::Send(a) => agent::send(load(config_path)?, a),
        Command::Steer(a) => agent::steer(load(config_path)?, a),
        Command::Attach(a) => agent::attach(load(config_path)?, a),
        Command::Ps(a) => agent::ps(load(config_path)?, a),
        Command::Show(a) => agent::show(load(config_path)?, a),
        Command::Logs(a) => agent::logs(load(config_path)?, a),
        Command::Diff(a) => review::diff(&load(config_path)?, a),
        Command::Merge(a) => review::merge(&load(config_path)?, a),
        Command::Rm(a) => review::rm(&load(config_path)?, a),
        Command::Prune(a) => review::prune(&load(config_path)?, a),
        Command::Task(TaskCommand::List(a)) => task::list(&load(config_path)?, a.json),
        Command::ModelServer(a) => model_server::run(a),
        Command::Mcp => agent::mcp_stdio(load(config_path)?),
        Command::Serve(a) => serve::run(load(config_path)?, a),
        Command::Dashboard(a) => dashboard::run(&load(config_path)?, &a),
        Command::Auth(AuthCommand::Check(a)) => auth::check(&load(config_path)?, a),
    }
}

/// Load the config for a command, printing diagnostics and warnings, and start logging.
pub fn load(flag: Option<&std::path::Path>) -> anyhow::Result<LoadedConfig> {
    match fracta_config::load(flag) {
        Ok(cfg) => {
            crate::output::diagnostics(&cfg.warnings);
            crate::logging::init(&cfg);
            tracing::debug!(config = %cfg.path.display(), "config loaded");
            Ok(cfg)
        }
        Err(e) => Err(config_failure(&e)),
    }
}

/// Print a config error in full and return the matching exit code.
pub fn config_failure(e: &ConfigError) -> anyhow::Error {
    match e {
        ConfigError::Invalid(d) => {
            crate::output::diagnostics(d);
            Failure::reported(exit::USAGE)
        }
        ConfigError::NotFound { .. } => {
            let msg = match e.help() {
                Some(h) => format!("{e}\n  = help: {h}"),
                None => e.to_string(),
            };
            Failure::msg(exit::NOT_FOUND, msg)
        }
        ConfigError::Io { .. } => Failure::msg(exit::FAILURE, e.to_string()),
    }
}
