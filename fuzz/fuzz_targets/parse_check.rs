//! Fuzz target: any UTF-8 text, checked as a one-file deployment and its
//! diagnostics rendered for people and as JSON. Nothing may panic, overflow
//! the stack or take long, whatever the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use waymark_dsl::{Options, compile};
use waymark_dsl::{Sources, render};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = Sources::new();
    sources.add("fuzz.journey", text);
    let checked = compile(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    let _ = render::human(&checked.sources, &checked.diagnostics);
    let _ = render::json(&checked.sources, &checked.diagnostics);
});
