//! `waymark explain CODE`: what a diagnostic code means and how to fix it;
//! `waymark explain functions`: every built-in function, by group, with
//! its parameters, what it does and an example (the full reference with
//! results is docs/functions.md, generated from the same table).

use anyhow::{Result, bail};
use std::process::ExitCode;
use waymark_dsl::Code;
use waymark_stdlib::{BUILTINS, Group};

pub fn run(code: Option<&str>) -> Result<ExitCode> {
    match code {
        None => {
            for code in Code::ALL {
                println!("{code}  {}", code.title());
            }
            println!("\n`waymark explain functions` lists the built-in functions.");
        }
        Some("functions") => print!("{}", functions()),
        Some(text) => {
            let Ok(code) = text.parse::<Code>() else {
                bail!(
                    "no diagnostic code `{text}`; `waymark explain` lists them, `waymark explain functions` the functions"
                );
            };
            println!("{code}: {}\n\n{}", code.title(), code.explanation());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The built-in functions as `explain functions` prints them.
pub fn functions() -> String {
    let mut out = String::new();
    for group in Group::ALL {
        out.push_str(&format!("{}:\n", group.name()));
        for builtin in BUILTINS.iter().filter(|b| b.group == group) {
            let sig = &builtin.signature;
            out.push_str(&format!("  {}\n      {}\n", sig.display(), sig.doc));
            out.push_str(&format!(
                "      e.g. {} = {}\n",
                sig.example, sig.example_result
            ));
        }
        out.push('\n');
    }
    out.push_str(
        "Event arguments are written bare or quoted: count(order_paid, 30d), \
         count(\"Order Completed\", 30d), sum(\"Order Completed\".revenue, 30d).\n",
    );
    out
}
