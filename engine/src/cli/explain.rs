//! `waymark explain CODE`: what a diagnostic code means and how to fix it.

use anyhow::{Result, bail};
use std::process::ExitCode;
use waymark_dsl::Code;

pub fn run(code: Option<&str>) -> Result<ExitCode> {
    match code {
        None => {
            for code in Code::ALL {
                println!("{code}  {}", code.title());
            }
        }
        Some(text) => {
            let Ok(code) = text.parse::<Code>() else {
                bail!("no diagnostic code `{text}`; `waymark explain` lists them");
            };
            println!("{code}: {}\n\n{}", code.title(), code.explanation());
        }
    }
    Ok(ExitCode::SUCCESS)
}
