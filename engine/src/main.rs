//! The `waymark` command with the built-in channel kinds. Everything it
//! does lives in the library (`waymark_engine::cli`), so a crate that adds
//! its own kinds builds the same command with [`waymark_engine::Waymark`].

#![forbid(unsafe_code)]

/// mimalloc: the engine makes and drops many small values on two threads
/// (events are parsed on one and applied on another), where glibc's
/// malloc took a third of `simulate`'s time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    waymark_engine::Waymark::new().main()
}
