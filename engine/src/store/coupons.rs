//! The store's secret, `K`, and the coupon-code index, `c/{coupon}/{code}`.
//! Codes are derived under the secret (32 random bytes made with the
//! store); the index says who holds each code issued, and is what keeps a
//! code from being issued twice: a commit that would is refused whole,
//! looked up as the commit is applied.
//! An erased user's codes stay taken, held by nobody (an empty value).

use super::keys::{key, user_part};
use super::{Kv, Op, Result, Store, StoreError};
use std::collections::HashSet;
use waymark_core::machine::CouponSecret;

/// A coupon code a batch issues, and to whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCode {
    pub coupon: String,
    pub code: String,
    pub user: String,
}

/// A code a batch issues, as the index holds it.
#[derive(Debug)]
pub(super) struct NewCode {
    key: Vec<u8>,
    coupon: String,
    code: String,
}

fn duplicate(coupon: &str, code: &str) -> StoreError {
    StoreError::DuplicateCoupon {
        coupon: coupon.into(),
        code: code.into(),
    }
}

/// Refuses a batch issuing a code that the index holds (one issued by a
/// batch applied before it): read as the batch is applied, by the thread
/// applying batches in order.
pub(super) fn refuse_issued<K: Kv>(kv: &K, codes: &[NewCode]) -> Result<()> {
    for c in codes {
        if kv.get(&c.key)?.is_some() {
            return Err(duplicate(&c.coupon, &c.code));
        }
    }
    Ok(())
}

impl<K: Kv> Store<K> {
    /// The secret coupon codes are derived under, made with the store.
    pub fn coupon_secret(&self) -> Result<CouponSecret> {
        let bytes = self.kv.get(b"K")?.ok_or_else(|| StoreError::Corrupt {
            key: "K".into(),
            message: "the store's secret is missing".into(),
        })?;
        <[u8; 32]>::try_from(bytes.as_slice())
            .map(CouponSecret)
            .map_err(|_| StoreError::Corrupt {
                key: "K".into(),
                message: format!("the secret is 32 bytes, found {}", bytes.len()),
            })
    }

    /// Who holds a coupon code: `Some("")` once its holder was erased.
    pub fn coupon_holder(&self, coupon: &str, code: &str) -> Result<Option<String>> {
        let k = key("c", &[&user_part(coupon), code.as_bytes()]);
        Ok(self
            .kv
            .get(&k)?
            .map(|v| String::from_utf8_lossy(&v).into_owned()))
    }

    /// The writes indexing `codes`, and the codes to look up in the
    /// index when they are applied ([`refuse_issued`]); refused with
    /// [`StoreError::DuplicateCoupon`] if a code is twice among them (a
    /// code is issued once per coupon, ever).
    pub(super) fn write_codes(codes: &[IssuedCode], ops: &mut Vec<Op>) -> Result<Vec<NewCode>> {
        let mut issued = HashSet::new();
        let mut new = Vec::with_capacity(codes.len());
        for c in codes {
            let k = key("c", &[&user_part(&c.coupon), c.code.as_bytes()]);
            if !issued.insert(k.clone()) {
                return Err(duplicate(&c.coupon, &c.code));
            }
            ops.push(Op::Put(k.clone(), c.user.as_bytes().to_vec()));
            new.push(NewCode {
                key: k,
                coupon: c.coupon.clone(),
                code: c.code.clone(),
            });
        }
        Ok(new)
    }

    /// The write keeping a code taken with no holder.
    pub(super) fn release_code(coupon: &str, code: &str) -> Op {
        Op::Put(key("c", &[&user_part(coupon), code.as_bytes()]), Vec::new())
    }
}
