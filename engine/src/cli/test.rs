//! `waymark test`: check the scripts, then run every `test` block against
//! the deployment in the same paths; exit 1 on any failure.

use crate::testing;
use anyhow::Result;
use std::path::PathBuf;
use std::process::ExitCode;

pub fn run(paths: &[PathBuf]) -> Result<ExitCode> {
    let Some(plan) = super::plan_of(paths)? else {
        return Ok(ExitCode::from(1));
    };
    let (mut passed, mut failed) = (0, 0);
    for test in &plan.tests {
        let outcome = testing::run(&plan, test)?;
        if outcome.failures.is_empty() {
            passed += 1;
            println!("test \"{}\" ... ok", outcome.name);
            continue;
        }
        failed += 1;
        println!(
            "test \"{}\" ... FAILED ({})",
            outcome.name, outcome.location
        );
        for f in &outcome.failures {
            println!("  {}: {}", f.location, f.expectation);
            println!("    but {}", f.found);
        }
        println!("  what happened:");
        for r in &outcome.records {
            println!("    {}", testing::describe(r, outcome.zone));
        }
    }
    if plan.tests.is_empty() {
        println!("no test blocks in the scripts");
    }
    println!("tests: {passed} passed, {failed} failed");
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
