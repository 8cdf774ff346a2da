//! Coupon codes: `CART10-7KX2P9QAM3`. The `n`th code issued of a coupon is
//! `n` put through a keyed permutation of 50-bit numbers (an 8-round
//! Feistel network whose round function is HMAC-SHA256 under the store's
//! secret and the coupon's name), written in 10 characters of Crockford-like
//! base32 without look-alikes. A permutation never maps two numbers to one,
//! so codes of one coupon are unique as long as `n` never repeats (the
//! count of codes issued is shared state, committed with the coupon); and
//! without the secret, one code says nothing about any other. The store's
//! uniqueness index (`c/…`) checks it again at commit.

use hmac::{KeyInit, Mac};
use sha2::Sha256;

/// The secret codes are derived under: random per store in the daemon, a
/// fixed seed in `simulate` and `test` so their codes are reproducible.
#[derive(Clone, PartialEq, Eq)]
pub struct CouponSecret(pub [u8; 32]);

impl Default for CouponSecret {
    /// The fixed seed of previews and tests.
    fn default() -> CouponSecret {
        CouponSecret(*b"waymark preview coupon secret 01")
    }
}

impl std::fmt::Debug for CouponSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CouponSecret(…)")
    }
}

const HALF_BITS: u32 = 25;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;
const ROUNDS: u8 = 8;
/// Codes per coupon before the numbers wrap around: 2⁵⁰.
pub const CODES_PER_COUPON: u64 = 1 << (2 * HALF_BITS);
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// The `n`th code of `coupon` (`n` < [`CODES_PER_COUPON`]).
pub fn coupon_code(secret: &CouponSecret, coupon: &str, n: u64) -> String {
    let keyed =
        hmac::Hmac::<Sha256>::new_from_slice(&secret.0).expect("HMAC takes a key of any length");
    let n = n % CODES_PER_COUPON;
    let (mut left, mut right) = (n >> HALF_BITS, n & HALF_MASK);
    for round in 0..ROUNDS {
        let mut mac = keyed.clone();
        mac.update(coupon.as_bytes());
        mac.update(&[0, round]);
        mac.update(&right.to_be_bytes());
        let digest = mac.finalize().into_bytes();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let f = u64::from_be_bytes(first) & HALF_MASK;
        (left, right) = (right, left ^ f);
    }
    let mut x = (left << HALF_BITS) | right;
    let mut code = String::with_capacity(coupon.len() + 11);
    code.push_str(coupon);
    code.push('-');
    let mut chars = [0u8; 10];
    for c in chars.iter_mut().rev() {
        *c = ALPHABET[(x & 31) as usize];
        x >>= 5;
    }
    code.extend(chars.iter().map(|&c| c as char));
    code
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_of_one_coupon_never_repeat() {
        let secret = CouponSecret::default();
        let mut seen = HashSet::new();
        for n in 0..200_000 {
            assert!(
                seen.insert(coupon_code(&secret, "CART10", n)),
                "code {n} repeats"
            );
        }
    }

    #[test]
    fn the_permutation_is_a_bijection_on_a_sample_of_its_domain() {
        // Numbers far apart, near the top of the domain and around a half's
        // boundary: all distinct codes, all of the same shape.
        let secret = CouponSecret([7; 32]);
        let ns: Vec<u64> = (0..1000)
            .map(|i| i * 1_125_899_906_842 % CODES_PER_COUPON)
            .chain((0..1000).map(|i| CODES_PER_COUPON - 1 - i))
            .chain((0..1000).map(|i| HALF_MASK - 500 + i))
            .collect();
        let codes: HashSet<String> = ns.iter().map(|&n| coupon_code(&secret, "W", n)).collect();
        let distinct: HashSet<u64> = ns.iter().copied().collect();
        assert_eq!(codes.len(), distinct.len());
        assert!(codes.iter().all(|c| c.len() == 12 && c.starts_with("W-")));
    }

    #[test]
    fn another_secret_gives_other_codes() {
        let a = CouponSecret([1; 32]);
        let b = CouponSecret([2; 32]);
        let same = (0..1000)
            .filter(|&n| coupon_code(&a, "C", n) == coupon_code(&b, "C", n))
            .count();
        assert_eq!(same, 0);
        assert_eq!(coupon_code(&a, "C", 5), coupon_code(&a, "C", 5));
        assert_ne!(coupon_code(&a, "C", 5), coupon_code(&a, "D", 5)[..]);
    }
}
