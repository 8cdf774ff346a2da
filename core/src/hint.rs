//! Fetch hints: asking the processor to start bringing a value's memory
//! into its caches while it works on something else. A run over many
//! users in memory waits mostly on main memory (a user's state is a few
//! cache lines spread over the heap); starting the next users' fetches
//! early overlaps those waits. A hint never changes what the program
//! does, only when memory arrives; on a target without one it does
//! nothing.

use waymark_dsl::names::NameMap;

/// Starts fetching the cache line that holds `value`.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    #[cfg(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse"
    ))]
    safe_arch::prefetch_t0(value);
    #[cfg(not(all(
        any(target_arch = "x86", target_arch = "x86_64"),
        target_feature = "sse"
    )))]
    let _ = value;
}

/// Starts fetching a [`NameMap`]'s entries (each name's length and place,
/// and the values kept in place).
pub fn prefetch_entries<V>(map: &NameMap<V>) {
    if let Some(first) = map.as_slice().first() {
        prefetch(first);
    }
}

/// Starts fetching the bytes of a [`NameMap`]'s names, when there are a
/// few (the entries must be fetched already, or this waits for them).
pub fn prefetch_name_bytes<V>(map: &NameMap<V>) {
    for (k, _) in map.as_slice().iter().take(8) {
        if let Some(b) = k.as_bytes().first() {
            prefetch(b);
        }
    }
}

/// Starts fetching every cache line of `bytes`, up to `most` bytes of it.
pub fn prefetch_bytes(bytes: &[u8], most: usize) {
    for line in bytes[..bytes.len().min(most)].chunks(64) {
        prefetch(&line[0]);
    }
}
