//! `fracta`: the binary edge. Parses arguments, runs one command, prints the whole error chain
//! once and turns the outcome into an exit code.

mod cli;
mod commands;
mod exit;
mod logging;
mod output;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::Failure;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            if let Some(f) = err.downcast_ref::<Failure>() {
                if !f.already_reported {
                    output::error_chain(&err);
                }
                return ExitCode::from(f.code);
            }
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            output::error_chain(&err);
            ExitCode::from(exit::FAILURE)
        }
    }
}

/// A closed stdout (`fracta ps | head`) is not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
