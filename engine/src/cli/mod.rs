//! The `waymark` command: its arguments, one module per subcommand, and the
//! file loading they share. It lives in the library so that a crate adding
//! its own channel kinds can run the same command (see [`crate::Waymark`]).

pub mod check;
pub mod deploy;
pub mod explain;
pub mod fmt;
pub mod graph;
mod json_log;
mod progress;
mod report;
pub mod run;
pub mod simulate;
pub mod test;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use waymark_dsl::Sources;

/// The `.journey` files a list of paths names: files as given, directories
/// searched recursively, in a stable (sorted) order. A directory without
/// any `.journey` file is an error naming it: a mistyped path must not
/// pass as a clean deployment of zero files.
pub fn journey_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for path in paths {
        let found = journey_files_under(path)?;
        anyhow::ensure!(
            !found.is_empty(),
            "no `.journey` files in {}",
            path.display()
        );
        out.extend(found);
    }
    out.dedup();
    Ok(out)
}

/// The `.journey` files one path names: the file itself, or every
/// `.journey` file under a directory (recursively, sorted; none is not an
/// error here).
pub fn journey_files_under(path: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = Vec::new();
    if meta.is_dir() {
        collect(path, &mut out)?;
    } else {
        out.push(path.to_path_buf());
    }
    Ok(out)
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "journey") {
            out.push(path);
        }
    }
    Ok(())
}

/// Checks the `.journey` files under `paths`; prints the diagnostics and
/// returns `None` when they have errors, else the plan.
pub fn plan_of(paths: &[PathBuf]) -> Result<Option<waymark_dsl::plan::Plan>> {
    let files = journey_files(paths)?;
    let options = waymark_dsl::Options {
        functions: waymark_stdlib::stdlib(),
        channels: None,
    };
    let checked = waymark_dsl::compile(load(&files)?, options);
    if checked.plan.is_none() {
        print!(
            "{}",
            waymark_dsl::render::human(&checked.sources, &checked.diagnostics)
        );
        eprintln!(
            "{}",
            waymark_dsl::render::summary(files.len(), &checked.diagnostics)
        );
    }
    Ok(checked.plan)
}

/// The configuration layers, validated; prints every error (with its TOML
/// path) and returns `None` when there are any.
pub fn load_config(
    path: Option<&Path>,
    flags: &crate::config::Flags,
    registry: &crate::channels::Registry,
) -> Result<Option<crate::config::Config>> {
    let file = match path {
        Some(p) => Some((
            p.display().to_string(),
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )),
        None => None,
    };
    let env: std::collections::BTreeMap<String, String> = std::env::vars().collect();
    match crate::config::load(
        file.as_ref().map(|(n, t)| (n.as_str(), t.as_str())),
        &env,
        flags,
        registry,
    ) {
        Ok(config) => Ok(Some(config)),
        Err(errors) => {
            for e in &errors {
                eprintln!("config error: {e}");
            }
            Ok(None)
        }
    }
}

/// Reads files into a deployment's sources, named by their paths. The one
/// place scripts are read from disk; [`waymark_dsl::compile`] puts them in
/// its own order.
pub fn load(files: &[PathBuf]) -> Result<Sources> {
    let mut sources = Sources::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        sources.add(file.display().to_string(), text);
    }
    Ok(sources)
}

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
    Check(check::CheckArgs),
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
    /// Draw journeys, rules and tasks from their plan: Mermaid, Graphviz DOT or SVG.
    Graph(graph::GraphArgs),
    /// Run the real engine on recorded events with a virtual clock.
    Simulate(simulate::SimulateArgs),
    /// Deploy scripts to a running daemon: shows the source diff, the steps changed and the users they reach, then deploys (unless --dry-run).
    Deploy(deploy::DeployArgs),
    /// Run the daemon: HTTP ingestion, durable timers, delivery through channels.
    Run(run::RunArgs),
    /// Explain a diagnostic code (e.g. `waymark explain E0101`), list them all, or list the built-in functions (`waymark explain functions`).
    Explain { code: Option<String> },
}

/// Parses the command line and runs the subcommand with the channel kinds
/// of `registry`; the exit code is 0 clean, 1 findings, 2 usage or I/O errors.
pub fn main(registry: crate::channels::Registry) -> ExitCode {
    without_huge_pages();
    let args = Args::parse();
    let outcome = match args.command {
        Command::Check(a) => check::run(&a, &registry),
        Command::Fmt { check, paths } => fmt::run(&paths, check),
        Command::Explain { code } => explain::run(code.as_deref()),
        Command::Test { paths } => test::run(&paths),
        Command::Graph(a) => graph::run(&a),
        Command::Simulate(a) => simulate::run(&a),
        Command::Deploy(a) => deploy::run(&a),
        Command::Run(a) => run::run(&a, registry),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Turns transparent huge pages off for this process (on Linux; elsewhere
/// it does nothing), before it has made most of its memory. Where the
/// system lets the allocator ask for them (`madvise`, or `always`), each
/// first touch of a new 2 MiB page is zeroed (and, when free memory is
/// fragmented, compacted) in one go, and whichever thread touched it
/// waits:
///
/// - the daemon's writer and commit threads stalled 5-9 ms at a time, a
///   few dozen times in 10 s of `/v1/track` at 10k calls/s (seen with
///   `perf` as `clear_page_erms` under `do_huge_pmd_anonymous_page`).
///   Without them, p99 of those calls went from 11.7-73 ms to 5.5-7.3 ms
///   in most runs (about one run in four still has a stall of 40-90 ms,
///   not this one), while the daemon's `/v1/batch` and peers-workload
///   rates stayed within noise and its memory dropped by ~25 MiB;
/// - a preview (`simulate`) makes its memory once, in a short run: the
///   peers harness, which runs two other engines between its runs, went
///   from 1,003,878 to 1,327,650 events/s without them.
fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
}
