//! The command line: clap types only; each command's behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  success (for spawn/resume: the agent succeeded)
  1  failure (the agent failed, or the operation did)
  2  invalid usage or invalid configuration
  3  the agent was stopped
  4  not found (no such agent, task or config file)";

#[derive(Debug, Parser)]
#[command(
    name = "fracta",
    version,
    about = "Run AI coding agents (Claude Code, Codex, OpenCode) on tasks, and record everything they do",
    long_about = "Fracta starts an agent CLI (claude, codex or opencode) on a task in its own workspace, \
wires its credentials, tools and permissions, records every event in a state store, and lets it be \
resumed and stopped.\n\nStart with `fracta init`, then `fracta config validate`.",
    after_help = EXIT_CODES,
    propagate_version = true
)]
pub struct Cli {
    /// The config file [default: $FRACTA_CONFIG, else ./fracta.yaml]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter fracta.yaml and an example task (never overwrites)
    Init(InitArgs),
    /// Check or print the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to initialise [default: the current folder]
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and check the config; list problems and unset ${VAR}s. Exit 0 when valid, 2 when not
    Validate(JsonArg),
    /// Print the resolved config, defaults filled in and secret values redacted
    Show(JsonArg),
}

#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print JSON for machines instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
