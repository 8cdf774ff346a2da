//! A Bloom filter over the message ids the store holds, so that a fresh
//! event — nearly every event — is known to be fresh without a read of
//! the store. A "maybe" is checked against the store, so the filter
//! changes no answer: it must only never miss an id the store has.
//! [`super::dedup`] builds it from a scan of the ids on first use, adds
//! every id it writes, and rebuilds it when ids are pruned (a Bloom filter
//! cannot forget). Its memory is bounded by the cap it is made with; past
//! that it only answers "maybe" more often.

/// Bits per expected id (about 0.1% false "maybe" with 7 probes).
const BITS_PER_ID: usize = 16;
const PROBES: u64 = 7;
const MIN_BITS: usize = 1 << 20;

#[derive(Debug)]
pub struct SeenFilter {
    /// Each layer twice the size of the one before; new ids go to the
    /// last. Growing adds a layer instead of rereading every id.
    layers: Vec<Layer>,
    /// The most bits its layers take together.
    max_bits: usize,
}

#[derive(Debug)]
struct Layer {
    bits: Vec<u64>,
    /// Ids added, to know when it is full.
    ids: usize,
}

impl Layer {
    fn new(bits: usize) -> Layer {
        Layer {
            bits: vec![0; bits.div_ceil(64)],
            ids: 0,
        }
    }

    fn positions(&self, id: &[u8]) -> impl Iterator<Item = usize> + use<> {
        let (h1, h2) = hashes(id);
        let m = (self.bits.len() * 64) as u64;
        (0..PROBES).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) % m) as usize)
    }

    fn is_full(&self) -> bool {
        self.ids * BITS_PER_ID >= self.bits.len() * 64
    }
}

/// Two 64-bit hashes of an id for double hashing: the stable id hash
/// (cheap, and already good at spreading), and a second mixed from it.
/// Ids whose 64-bit hashes collide share every probe; with 64 bits that
/// is negligible next to the filter's own false "maybe".
fn hashes(id: &[u8]) -> (u64, u64) {
    let h1 = super::dedup::id_hash(id);
    let mut z = h1 ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (h1, (z ^ (z >> 31)) | 1)
}

impl SeenFilter {
    /// A filter sized for `expected` ids, growing to at most `max_bytes`.
    pub fn with_capacity(expected: usize, max_bytes: usize) -> SeenFilter {
        let max_bits = max_bytes.saturating_mul(8).max(64);
        let bits = expected
            .saturating_mul(BITS_PER_ID)
            .clamp(MIN_BITS.min(max_bits), max_bits);
        SeenFilter {
            layers: vec![Layer::new(bits)],
            max_bits,
        }
    }

    /// A filter sized for exactly `ids` ids, however few (a run's, whose
    /// ids are known and fixed).
    pub fn exact(ids: usize) -> SeenFilter {
        let bits = ids.saturating_mul(BITS_PER_ID).max(64);
        SeenFilter {
            layers: vec![Layer::new(bits)],
            max_bits: bits,
        }
    }

    fn bits(&self) -> usize {
        self.layers.iter().map(|l| l.bits.len() * 64).sum()
    }

    /// The memory its bits take.
    pub fn bytes(&self) -> usize {
        self.bits() / 8
    }

    pub fn insert(&mut self, id: &[u8]) {
        let full = self.layers.last().is_none_or(Layer::is_full);
        let size = self
            .layers
            .last()
            .map_or(MIN_BITS, |l| 2 * l.bits.len() * 64);
        if full && self.bits() + size <= self.max_bits {
            self.layers.push(Layer::new(size));
        }
        let layer = self.layers.last_mut().expect("a filter has a layer");
        for p in layer.positions(id) {
            layer.bits[p / 64] |= 1 << (p % 64);
        }
        layer.ids += 1;
    }

    /// False only if `id` was never inserted.
    pub fn maybe_contains(&self, id: &[u8]) -> bool {
        self.layers.iter().any(|layer| {
            layer
                .positions(id)
                .all(|p| layer.bits[p / 64] & (1 << (p % 64)) != 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_misses_an_inserted_id_and_rarely_says_maybe_for_others() {
        let mut f = SeenFilter::with_capacity(100_000, 64 << 20);
        for i in 0..100_000 {
            f.insert(format!("msg-{i}").as_bytes());
        }
        assert!((0..100_000).all(|i| f.maybe_contains(format!("msg-{i}").as_bytes())));
        let false_maybe = (0..100_000)
            .filter(|i| f.maybe_contains(format!("other-{i}").as_bytes()))
            .count();
        assert!(false_maybe < 1_000, "{false_maybe} of 100,000");
        // Five times what it was sized for: it grows, and stays useful.
        for i in 0..400_000 {
            f.insert(format!("more-{i}").as_bytes());
        }
        assert!(f.layers.len() > 1);
        assert!((0..400_000).all(|i| f.maybe_contains(format!("more-{i}").as_bytes())));
        let false_maybe = (0..100_000)
            .filter(|i| f.maybe_contains(format!("other-{i}").as_bytes()))
            .count();
        assert!(false_maybe < 3_000, "{false_maybe} of 100,000");
    }
}
