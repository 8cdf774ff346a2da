//! `waymark graph`: journeys, rules and tasks drawn from their checked
//! plan, as Mermaid, Graphviz DOT or SVG (laid out by Waymark itself).

use anyhow::{Result, bail};
use clap::Args;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use waymark_dsl::graph::{self, Format};

#[derive(Args)]
pub struct GraphArgs {
    /// Files or directories (every `.journey` inside, recursively).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Draw only this journey (or rule, or task); default: all of them.
    #[arg(long)]
    pub journey: Option<String>,
    /// mermaid, dot or svg.
    #[arg(long, default_value = "mermaid", value_parser = parse_format)]
    pub format: Format,
    /// Write here instead of standard output.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

fn parse_format(text: &str) -> Result<Format, String> {
    text.parse()
}

pub fn run(args: &GraphArgs) -> Result<ExitCode> {
    let Some(plan) = super::plan_of(&args.paths)? else {
        return Ok(ExitCode::from(1));
    };
    let flows = graph::flows(&plan, args.journey.as_deref());
    if flows.is_empty() {
        match &args.journey {
            Some(name) => {
                let mut names: Vec<&str> = plan.journeys.iter().map(|j| j.name.as_str()).collect();
                names.extend(plan.rules.iter().map(|r| r.name.as_str()));
                names.extend(plan.tasks.iter().map(|t| t.name.as_str()));
                bail!(
                    "no journey, rule or task `{name}` in these scripts (they have: {})",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    }
                )
            }
            None => bail!("these scripts declare no journey, rule or task to draw"),
        }
    }
    let drawing = args.format.render(&flows);
    match &args.output {
        Some(path) => std::fs::write(path, drawing)
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?,
        None => std::io::stdout().lock().write_all(drawing.as_bytes())?,
    }
    Ok(ExitCode::SUCCESS)
}
