//! An in-memory backend: `simulate`, `test` and the engine's tests use it
//! where durability does not matter.

use super::{Kv, Op, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// Clones share the same map (a handle, like `SledKv`).
#[derive(Debug, Default, Clone)]
pub struct MemoryKv {
    map: Arc<RwLock<BTreeMap<Vec<u8>, Vec<u8>>>>,
    keys: Arc<super::sealed::MemoryKeys>,
}

impl Kv for MemoryKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self
            .map
            .read()
            .expect("no panics while holding the lock")
            .get(key)
            .cloned())
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        let mut map = self.map.write().expect("no panics while holding the lock");
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    map.insert(k, v);
                }
                Op::Delete(k) => {
                    map.remove(&k);
                }
            }
        }
        Ok(())
    }

    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = self.map.read().expect("no panics while holding the lock");
        Ok(map
            .range(from.to_vec()..to.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn range_rev(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let map = self.map.read().expect("no panics while holding the lock");
        Ok(map
            .range(from.to_vec()..to.to_vec())
            .rev()
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn keys(&self) -> &dyn super::sealed::KeyTable {
        self.keys.as_ref()
    }
}
