//! `waymark check`: every diagnostic of a deployment, for people or as JSON.

use anyhow::Result;
use clap::{Args, ValueEnum};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use waymark_dsl::{Options, compile, render};

#[derive(Args)]
pub struct CheckArgs {
    /// Files or directories (every `.journey` inside, recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Treat warnings as errors (exit 1 on any).
    #[arg(long)]
    pub deny_warnings: bool,
    /// Check `send` steps against the channels this config defines.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Human,
    Json,
}

pub fn run(args: &CheckArgs, registry: &crate::channels::Registry) -> Result<ExitCode> {
    let catalog = match &args.config {
        None => None,
        Some(path) => {
            // Sends are checked against the channels' kinds and fields, never
            // their secrets: CI lints against the production config without them.
            let flags = crate::config::Flags {
                secrets_unset_ok: true,
                ..Default::default()
            };
            let Some(config) = super::load_config(Some(path), &flags, registry)? else {
                return Ok(ExitCode::from(2));
            };
            // With no channels configured every channel is a `log` channel: nothing to check.
            (!config.channels.is_empty()).then(|| crate::daemon::catalog(&config, registry))
        }
    };
    let files = super::journey_files(&args.paths)?;
    let checked = compile(
        super::load(&files)?,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: catalog.as_ref(),
        },
    );
    let mut stdout = std::io::stdout().lock();
    match args.format {
        Format::Json => writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&render::json(&checked.sources, &checked.diagnostics))?
        )?,
        Format::Human => {
            write!(
                stdout,
                "{}",
                render::human(&checked.sources, &checked.diagnostics)
            )?;
            eprintln!("{}", render::summary(files.len(), &checked.diagnostics));
        }
    }
    let failed = checked.has_errors() || (args.deny_warnings && !checked.diagnostics.is_empty());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
