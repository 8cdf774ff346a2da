//! The `waymark` command with the built-in channel kinds. Everything it
//! does lives in the library (`waymark_engine::cli`), so a crate that adds
//! its own kinds builds the same command with [`waymark_engine::Waymark`].

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    waymark_engine::Waymark::new().main()
}
