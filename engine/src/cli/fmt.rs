//! `waymark fmt`: rewrite files in the canonical layout, or with `--check`
//! list the files that would change.

use anyhow::{Context as _, Result};
use std::path::PathBuf;
use std::process::ExitCode;
use waymark_dsl::render;

pub fn run(paths: &[PathBuf], check: bool) -> Result<ExitCode> {
    let files = super::journey_files(paths)?;
    let mut unformatted = 0;
    let mut broken = 0;
    for file in &files {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        let name = file.display().to_string();
        match waymark_dsl::fmt::format_source(&name, &text) {
            Ok(formatted) if formatted == text => {}
            Ok(_) if check => {
                println!("{name} is not formatted");
                unformatted += 1;
            }
            Ok(formatted) => {
                std::fs::write(file, formatted)
                    .with_context(|| format!("cannot write {}", file.display()))?;
                println!("formatted {name}");
            }
            Err(diagnostics) => {
                let mut sources = waymark_dsl::Sources::new();
                sources.add(name, text);
                eprint!("{}", render::human(&sources, &diagnostics));
                broken += 1;
            }
        }
    }
    Ok(if unformatted + broken > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
