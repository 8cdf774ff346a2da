//! The `waymark` command: check, format, explain, simulate, test and run
//! journey scripts. Each subcommand lives in `cli/`; this file only parses
//! arguments and maps outcomes to exit codes (0 clean, 1 findings, 2 usage
//! or I/O errors).

#![forbid(unsafe_code)]

mod cli;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "waymark",
    version,
    about = "Journeys as code: check, test, simulate and run marketing journeys"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check journey scripts like a compiler: every error, with line, column and help.
    Check(cli::check::CheckArgs),
    /// Format journey scripts in the one canonical layout (comments kept).
    Fmt {
        /// Do not write; exit 1 if any file would change.
        #[arg(long)]
        check: bool,
        /// Files or directories (every `.journey` inside).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run every `test` block against the deployment in the same paths.
    Test {
        /// Files or directories.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Run the real engine on recorded events with a virtual clock.
    Simulate(cli::simulate::SimulateArgs),
    /// Run the daemon: HTTP ingestion, durable timers, delivery through channels.
    Run(cli::run::RunArgs),
    /// Explain a diagnostic code (e.g. `waymark explain E0101`), or list them all.
    Explain { code: Option<String> },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = match args.command {
        Command::Check(a) => cli::check::run(&a),
        Command::Fmt { check, paths } => cli::fmt::run(&paths, check),
        Command::Explain { code } => cli::explain::run(code.as_deref()),
        Command::Test { paths } => cli::test::run(&paths),
        Command::Simulate(a) => cli::simulate::run(&a),
        Command::Run(a) => cli::run::run(&a),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
