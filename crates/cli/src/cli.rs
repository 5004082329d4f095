//! The command line: clap types only; each command's behaviour lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::ArgValueCompleter;

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
    #[command(flatten)]
    pub globals: Globals,

    #[command(subcommand)]
    pub command: Command,
}

/// The options every command takes.
#[derive(Debug, Args)]
pub struct Globals {
    /// The config file [default: $FRACTA_CONFIG, else ./fracta.yaml, else the nearest in a parent folder]
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl Cli {
    /// The command line, parsed: `fracta spawn …` with the spawn command's own arguments only,
    /// everything else (and a spawn line that does not parse, `--help`, `--version`) with the
    /// whole parser.
    pub fn parse_args() -> Cli {
        Self::parse_spawn(std::env::args_os()).unwrap_or_else(<Cli as clap::Parser>::parse)
    }

    /// `fracta spawn …` parsed by a parser of the global options and `spawn` alone. A spawn
    /// is on an agent's critical path, and building every command's arguments to parse one
    /// took ~0.3 ms of it. The arguments are the same definitions as the whole parser's;
    /// anything this parser does not accept as it is (help, version, an error, another
    /// command) is `None`, left to the whole parser and its messages.
    pub fn parse_spawn(args: impl IntoIterator<Item = std::ffi::OsString>) -> Option<Cli> {
        use clap::{ArgMatches, FromArgMatches};
        let args: Vec<std::ffi::OsString> = args.into_iter().collect();
        if args.get(1).and_then(|a| a.to_str()) != Some("spawn") {
            return None;
        }
        let spawn = SpawnArgs::augment_args(clap::Command::new("spawn"));
        let parser = Globals::augment_args(clap::Command::new("fracta")).subcommand(spawn);
        let mut matches: ArgMatches = parser.try_get_matches_from(args).ok()?;
        let globals = Globals::from_arg_matches_mut(&mut matches).ok()?;
        // The parser's one subcommand.
        let (_spawn, mut sub) = matches.remove_subcommand()?;
        let args = SpawnArgs::from_arg_matches_mut(&mut sub).ok()?;
        Some(Cli {
            globals,
            command: Command::Spawn(args),
        })
    }

    /// Whether the command was asked for `--json` (then its errors are JSON too).
    pub fn json(&self) -> bool {
        match &self.command {
            Command::Spawn(a) | Command::Render(a) => a.json,
            Command::Resume(a) => a.json,
            Command::Send(a) => a.json,
            Command::Steer(a) => a.json,
            Command::Attach(a) | Command::Stop(a) | Command::Show(a) => a.json,
            Command::Ps(a) => a.json,
            Command::Logs(a) => a.json,
            Command::Task(TaskCommand::List(a))
            | Command::Config(ConfigCommand::Validate(a) | ConfigCommand::Show(a)) => a.json,
            Command::Auth(AuthCommand::Check(a)) => a.json,
            Command::Dashboard(a) => a.json,
            Command::Doctor(a) => a.json,
            Command::Init(_)
            | Command::Diff(_)
            | Command::Merge(_)
            | Command::Rm(_)
            | Command::Prune(_)
            | Command::Serve(_)
            | Command::Mcp
            | Command::ModelServer(_)
            | Command::Completions(_) => false,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter fracta.yaml and an example task (never overwrites)
    Init(InitArgs),
    /// Check or print the configuration
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Start an agent on a task and follow it to the end
    Spawn(SpawnArgs),
    /// Print the Kubernetes objects a spawn would create (Secret, ConfigMap, Job or Pod), secrets
    /// as references, to review or diff; takes the same flags as spawn
    Render(SpawnArgs),
    /// Run a new turn of an ended agent's conversation, in the same workspace
    Resume(ResumeArgs),
    /// Send the next turn to a live stream session (run by `fracta serve`)
    Send(SendArgs),
    /// Add input to the turn in flight of a live Codex session (turn/steer)
    Steer(SteerArgs),
    /// Attach to a live stream session: each line you type is a turn, its events show live;
    /// Ctrl-C detaches and leaves the session running
    Attach(IdArgs),
    /// Stop a running agent and everything it started
    Stop(IdArgs),
    /// List agents (running first; children under their parent)
    Ps(PsArgs),
    /// Show one agent whole
    Show(IdArgs),
    /// Replay an agent's events
    Logs(LogsArgs),
    /// What an agent's branch changed since it left its base: the patch, or --stat
    Diff(DiffArgs),
    /// Bring an ended agent's branch into the branch checked out: a merge commit, --squash, or
    /// --rebase; refuses a dirty work tree, and a conflict changes nothing
    Merge(MergeArgs),
    /// Remove an ended agent: its worktree, branch, runtime home and record (refuses a branch
    /// with work not on its base unless --force)
    Rm(RmArgs),
    /// Remove ended agents in bulk (the same checks as rm): --merged, --older-than 7d
    Prune(PruneArgs),
    /// Work with tasks (.fracta/tasks/NAME.md)
    #[command(subcommand)]
    Task(TaskCommand),
    /// Check that this project is ready to run agents (CLIs and their versions, credentials,
    /// base branch, state store, serve), with the fix for each problem; exit 1 if one is broken
    Doctor(JsonArg),
    /// Check credentials: materialize each auth origin and run each resolver once
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Run the control plane: the HTTP API (/v1) and the MCP gateway (/mcp) on loopback, owning
    /// detached agents and every agent spawned through MCP
    Serve(ServeArgs),
    /// Print a link that opens the running control plane's dashboard (a live view of the agent
    /// forest) with a one-time login code
    Dashboard(DashboardArgs),
    /// Serve Fracta's MCP tools (spawn, status, wait, result, send, steer, stop, list) over
    /// stdio, for MCP clients that launch a command
    Mcp,
    /// Run the scripted model server (Anthropic Messages + OpenAI Responses) to try Fracta offline
    ModelServer(ModelServerArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) that completes
    /// commands, flags, agent ids and task names: `source <(fracta completions bash)`
    Completions(CompletionsArgs),
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum TierArg {
    Heavy,
    Medium,
    Light,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    Batch,
    Stream,
}

#[derive(Debug, Args)]
pub struct SpawnArgs {
    /// The task: .fracta/tasks/NAME.md, or any name with --prompt (free text is named by its
    /// slug: "fix bug #12" → fix-bug-12) [default with --prompt: the prompt's first words]
    #[arg(long, value_name = "NAME", required_unless_present = "prompt", add = ArgValueCompleter::new(crate::commands::completions::task_names))]
    pub task: Option<String>,
    /// Instructions (appended to the task file's body, or the whole task when there is no file)
    #[arg(long, value_name = "TEXT")]
    pub prompt: Option<String>,
    /// The runtime to use [default: the task's, else agents.default_runtime]
    #[arg(long, value_name = "RUNTIME")]
    pub runtime: Option<String>,
    /// Deprecated alias of --runtime
    #[arg(
        long = "host-type",
        value_name = "RUNTIME",
        hide = true,
        conflicts_with = "runtime"
    )]
    pub host_type: Option<String>,
    /// Model tier, mapped through the runtime's model_tiers
    #[arg(long, value_enum)]
    pub tier: Option<TierArg>,
    /// Model id (overrides tier and the runtime's model)
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// batch (run to completion) or stream
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// The branch (or commit) the agent's worktree branches from [default: the branch checked
    /// out, else project.default_base_branch]
    #[arg(long, value_name = "BRANCH")]
    pub base: Option<String>,
    /// Print one JSON object with the outcome instead of the live view
    #[arg(long)]
    pub json: bool,
    /// Hand the agent to the running control plane (`fracta serve`) and print its id at once
    #[arg(long)]
    pub detach: bool,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Agent id (or a unique prefix) of a stream session
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    /// The turn's text
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    /// Print one JSON object (like spawn's; `result` is this turn's final message)
    #[arg(long)]
    pub json: bool,
    /// Return at once (the turn is queued) instead of waiting for its end
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Debug, Args)]
pub struct SteerArgs {
    /// Agent id (or a unique prefix) of a live Codex stream session
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    /// The input to add to the turn in flight
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    /// Print the agent as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free one. The URL and the admin token are written to
    /// .fracta/serve.json for the CLI and other tools
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Print `{"url": …, "expires_in_secs": …}`
    #[arg(long)]
    pub json: bool,
    /// Also open the link in the default browser (xdg-open, or open on macOS)
    #[arg(long)]
    pub open: bool,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Agent id (or a unique prefix)
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    /// What to say next
    #[arg(long, value_name = "TEXT")]
    pub prompt: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Agent id (or a unique prefix)
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Agent id (a unique prefix or suffix, or @last)
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    /// Files changed and their +/− counts instead of the patch
    #[arg(long)]
    pub stat: bool,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Agent id (a unique prefix or suffix, or @last)
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    /// One commit with all of its changes
    #[arg(long, conflicts_with = "rebase")]
    pub squash: bool,
    /// Its commits replayed on top, then a fast-forward
    #[arg(long)]
    pub rebase: bool,
    /// Then remove the agent (worktree, branch, runtime home, record)
    #[arg(long)]
    pub rm: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Agent id (a unique prefix or suffix, or @last)
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    /// Remove it even if its branch has work that is not on its base
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Only agents whose branch is on its base already (or that have none)
    #[arg(long)]
    pub merged: bool,
    /// Only agents that ended longer ago than this: 30m, 12h, 7d, 2w
    #[arg(long, value_name = "AGE")]
    pub older_than: Option<String>,
    /// Remove agents whose branch has unmerged work too
    #[arg(long)]
    pub force: bool,
    /// Say what would be removed, and remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Include ended agents (default: active ones and the last day's)
    #[arg(long)]
    pub all: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Agent id (or a unique prefix)
    #[arg(add = ArgValueCompleter::new(crate::commands::completions::agent_ids))]
    pub id: String,
    /// Keep printing new events until the agent ends
    #[arg(long, short)]
    pub follow: bool,
    /// Print the runtime's raw lines instead of the normalized events
    #[arg(long)]
    pub raw: bool,
    /// One JSON object per event (JSON Lines)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Report, for every origin and resolver, success (with the secret's length and a short
    /// fingerprint, never the value) or why it failed. Exit 1 if any failed
    Check(AuthCheckArgs),
}

#[derive(Debug, Args)]
pub struct AuthCheckArgs {
    /// Only this profile
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// List the tasks in .fracta/tasks
    List(JsonArg),
}

#[derive(Debug, Args)]
pub struct ModelServerArgs {
    /// Address to listen on (loopback by default)
    #[arg(long, default_value = "127.0.0.1:8787", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
    /// The script (YAML or JSON) of replies; without one, every request gets a short text reply
    #[arg(long, value_name = "FILE")]
    pub script: Option<PathBuf>,
    /// Append every request received, as JSON Lines
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::Parser;

    fn argv(line: &[&str]) -> Vec<std::ffi::OsString> {
        std::iter::once("fracta")
            .chain(line.iter().copied())
            .map(Into::into)
            .collect()
    }

    /// Every spawn line the short parser takes, it reads as the whole parser does.
    #[test]
    fn a_spawn_line_is_read_as_the_whole_parser_reads_it() {
        let lines: &[&[&str]] = &[
            &["spawn", "--task", "t"],
            &[
                "spawn",
                "--json",
                "--runtime",
                "instant",
                "--prompt",
                "Reply with ok",
            ],
            &[
                "spawn", "--task", "fix-bug", "--tier", "light", "--mode", "stream",
            ],
            &[
                "spawn",
                "--prompt",
                "fix the --help text",
                "--model",
                "m",
                "--base",
                "dev",
            ],
            &["spawn", "--prompt=x", "--config", "other.yaml", "--detach"],
            &["spawn", "--config=a.yaml", "--json", "--task", "t"],
        ];
        for line in lines {
            let short = Cli::parse_spawn(argv(line))
                .unwrap_or_else(|| panic!("{line:?} was left to the whole parser"));
            let whole = Cli::try_parse_from(argv(line)).unwrap();
            assert_eq!(format!("{short:?}"), format!("{whole:?}"), "{line:?}");
        }
    }

    /// Help, version, errors and other commands are the whole parser's (its messages).
    #[test]
    fn anything_else_is_left_to_the_whole_parser() {
        let lines: &[&[&str]] = &[
            &[],
            &["spawn"],
            &["ps"],
            &["render", "--json"],
            &["--config", "a.yaml", "spawn"],
            &["spawn", "--help"],
            &["spawn", "-h"],
            &["spawn", "--version"],
            &["spawn", "-V"],
            &["spawn", "--tier", "huge"],
            &["spawn", "--no-such-flag"],
            &["spawn", "extra"],
            &["spawn", "--mode"],
        ];
        for line in lines {
            assert!(Cli::parse_spawn(argv(line)).is_none(), "{line:?}");
        }
    }
}
