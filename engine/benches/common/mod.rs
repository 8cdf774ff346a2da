//! What the engine's bench binaries share: the deployment they check from
//! sources, records of values, and this process's memory.

// Each bench binary uses some of these.
#![allow(dead_code)]

use waymark_core::deployment::Deployment;
use waymark_dsl::source::Sources;
use waymark_dsl::value::Value;
use waymark_dsl::{Options, compile};

/// The deployment of `sources`, which must check clean.
pub fn deploy(sources: Sources) -> Deployment {
    let checked = compile(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    Deployment::new(checked.plan.expect("the bench deployment checks clean"))
}

/// A record of `pairs`.
pub fn record(pairs: &[(&str, Value)]) -> Value {
    Value::Record(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect::<waymark_dsl::value::Fields>(),
    )
}

/// A `/proc/self/status` memory field (`VmRSS:`, `VmHWM:`), KiB.
pub fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// This process's resident memory, KiB.
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}
