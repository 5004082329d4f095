//! `fracta`: the binary edge. Parses arguments, runs one command, prints the whole error chain
//! once and turns the outcome into an exit code.

mod cli;
mod commands;
mod exit;
mod logging;
mod output;
mod signals;
mod view;

use std::process::ExitCode;

use fracta_api::{ApiErrorBody, ErrorCode, ErrorDetail};

use crate::exit::Failure;

fn main() -> ExitCode {
    // `COMPLETE=bash fracta -- fracta show 01M…`: the shell asking for candidates (the
    // script `fracta completions SHELL` prints does); answered here, before anything else.
    clap_complete::CompleteEnv::with_factory(|| {
        use clap::CommandFactory;
        cli::Cli::command()
    })
    .var(commands::completions::COMPLETE_VAR)
    .complete();
    let cli = cli::Cli::parse_args();
    let json = cli.json();
    let outcome = commands::run(cli);
    // Worktrees of agents that changed nothing are deleted on threads of their own, after
    // they were moved out of the way: done before the process ends.
    fracta_core::workspace::finish_discards();
    match outcome {
        Ok(code) => code,
        Err(err) => {
            if let Some(f) = err.downcast_ref::<Failure>() {
                if !f.already_reported {
                    report(&err, f.error_code(), json);
                }
                return ExitCode::from(f.code);
            }
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            report(&err, ErrorCode::Failed, json);
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// With `--json`, the error as JSON on stdout (the HTTP API's error shape); else the chain on
/// stderr.
fn report(err: &anyhow::Error, code: ErrorCode, json: bool) {
    if !json {
        return output::error_chain(err);
    }
    let body = ApiErrorBody {
        error: ErrorDetail {
            code,
            message: format!("{err:#}"),
        },
    };
    if output::json(&body).is_err() {
        output::error_chain(err);
    }
}

/// A closed stdout (`fracta ps | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
