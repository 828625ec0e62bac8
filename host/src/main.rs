//! `tdquant` — the command-line front end of tdquant-host. The subcommands
//! are in `cli/`, one file each.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    tdquant_host::app::tune_runtime();
    match cli::Cli::parse().run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", cli::error_message(&e));
            ExitCode::FAILURE
        }
    }
}
