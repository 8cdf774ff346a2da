//! splitmix64 (Steele, Lea and Flood): its finalizer spreads a 64-bit
//! value's bits ([`splitmix64`]), and its generator ([`Rng`]) gives a fixed
//! stream from a seed. Nothing here is for secrets: the store hashes ids
//! with the finalizer (so its values must never change), and tests and
//! benchmarks draw the same traffic and kill points every run from the
//! generator, without a dependency.

/// splitmix64's finalizer: every bit of `z` reaches every bit of the result.
pub fn splitmix64(z: u64) -> u64 {
    let z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    let z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The splitmix64 generator: the same numbers from the same seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next number of the stream.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(self.0)
    }

    /// A number below `n` (`n` > 0; slightly biased, as a `%` is).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_is_splitmix64s_own() {
        // The first outputs for seed 0 of the reference implementation.
        let mut rng = Rng::new(0);
        assert_eq!(rng.next_u64(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(rng.next_u64(), 0x6e78_9e6a_a1b9_65f4);
        assert!((0..1000).all(|_| rng.below(7) < 7));
    }
}
