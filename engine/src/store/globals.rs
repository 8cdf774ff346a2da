//! State shared by all users, `g`, and the inputs deferred by a batch that
//! used up its step budget, `i/{n}` (`n` big-endian, so they read back in
//! arrival order) until a later batch runs them.

use super::keys::{key, number_after_prefix, prefix_end};
use super::sealed::Seals;
use super::{Kv, Op, Result, Store, StoreError, decode, encode};
use waymark_core::machine::Globals;
use waymark_core::model::Input;

impl<K: Kv> Store<K> {
    pub fn globals(&self) -> Result<Globals> {
        Ok(self
            .kv
            .get(b"g")?
            .map(|b| decode(b"g", &b))
            .transpose()?
            .unwrap_or_default())
    }

    pub(super) fn write_globals(globals: &Globals, ops: &mut Vec<Op>) {
        ops.push(Op::Put(b"g".to_vec(), encode(globals)));
    }

    /// The inputs deferred by batches that used up their step budget, in
    /// the order they arrived, with their numbers.
    pub fn deferred_inputs(&self) -> Result<Vec<(u64, Input)>> {
        let mut out = Vec::new();
        for (k, sealed) in self.kv.range(b"i/", &prefix_end(b"i/"), usize::MAX)? {
            let n = number_after_prefix(&k).ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&k).into_owned(),
                message: "a deferred input's key ends with 8 bytes".into(),
            })?;
            // An erased person's inputs go with them (see `erase_user`).
            if let Some(v) = self.open_value(&k, &sealed)? {
                out.push((n, decode(&k, &v)?));
            }
        }
        Ok(out)
    }

    /// Forgets deferred inputs (an erased user's), by number.
    pub fn drop_deferred(&self, numbers: &[u64]) -> Result<()> {
        if numbers.is_empty() {
            return Ok(());
        }
        let ops = numbers
            .iter()
            .map(|n| Op::Delete(key("i", &[&n.to_be_bytes()])))
            .collect();
        self.kv.apply(ops)?;
        self.kv.flush()
    }

    /// The writes of deferred inputs: `resumed` ones (by number) go,
    /// `deferred` ones are kept.
    pub(super) fn write_deferred(
        deferred: &[(u64, Input)],
        resumed: &[u64],
        seals: &Seals<'_, K>,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        for n in resumed {
            ops.push(Op::Delete(key("i", &[&n.to_be_bytes()])));
        }
        for (n, input) in deferred {
            let k = key("i", &[&n.to_be_bytes()]);
            seals.put(input.user(), k, encode(input), ops)?;
        }
        Ok(())
    }
}
