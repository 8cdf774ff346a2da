//! `waymark run`: load the configuration layers, validate them, start the daemon.

use crate::channels::Registry;
use crate::config::{Flags, LogFormat};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use waymark_core::clock::SystemClock;

#[derive(Args)]
pub struct RunArgs {
    /// A TOML config file (layered over the embedded default).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:7878.
    #[arg(long)]
    pub listen: Option<String>,
    /// Where the store lives.
    #[arg(long)]
    pub data_dir: Option<String>,
    /// The journey scripts to deploy.
    #[arg(long)]
    pub scripts: Option<String>,
    /// `text` or `json` logs (on stderr).
    #[arg(long)]
    pub log_format: Option<String>,
}

pub fn run(args: &RunArgs, registry: Registry) -> Result<ExitCode> {
    let flags = Flags {
        listen: args.listen.clone(),
        data_dir: args.data_dir.clone(),
        scripts: args.scripts.clone(),
        log_format: args.log_format.clone(),
        secrets_unset_ok: false,
    };
    let Some(config) = super::load_config(args.config.as_deref(), &flags, &registry)? else {
        return Ok(ExitCode::from(2));
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&config.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour only for a person at a terminal: escapes in a log file or
        // a journald stream are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(super::json_log::JsonLines::new(Arc::new(SystemClock)))
            .init(),
        LogFormat::Text => builder.init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match runtime.block_on(crate::daemon::run(config, registry)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(1))
        }
    }
}
