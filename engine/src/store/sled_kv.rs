//! The sled backend. Everything lives in one tree with key prefixes, so a
//! batch is one `apply_batch` — atomic, and far cheaper than sled's
//! multi-tree transactions. sled buffers writes until `flush`; the shell
//! acknowledges inputs only after the flush that covers them.

use super::{Kv, Op, Result, StoreError};
use std::path::Path;

#[derive(Debug, Clone)]
pub struct SledKv {
    db: sled::Db,
}

fn backend(e: sled::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// An error opening the store at `path`: sled reports a lock another
/// process holds only as an I/O error whose text says so.
fn opening(path: &Path, e: sled::Error) -> StoreError {
    match &e {
        sled::Error::Io(io) if io.to_string().contains("could not acquire lock") => {
            StoreError::InUse {
                path: path.display().to_string(),
            }
        }
        _ => backend(e),
    }
}

impl SledKv {
    pub fn open(path: &Path) -> Result<SledKv> {
        let db = sled::Config::new()
            .path(path)
            .open()
            .map_err(|e| opening(path, e))?;
        Ok(SledKv { db })
    }

    /// Like [`SledKv::open`], with sled's page cache bounded to `bytes`
    /// (sled's default is 1 GiB). Resident memory for a large store — a
    /// million pending timers — is bounded by this cache, not by the data.
    pub fn open_with_cache(path: &Path, bytes: u64) -> Result<SledKv> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(bytes)
            .open()
            .map_err(|e| opening(path, e))?;
        Ok(SledKv { db })
    }

    /// A store in a temporary directory, removed when dropped.
    pub fn temporary() -> Result<SledKv> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        Ok(SledKv { db })
    }
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.db.get(key).map_err(backend)?.map(|v| v.to_vec()))
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(k, v),
                Op::Delete(k) => batch.remove(k),
            }
        }
        self.db.apply_batch(batch).map_err(backend)
    }

    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.db
            .range(from..to)
            .take(limit)
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(backend))
            .collect()
    }

    fn count(&self, from: &[u8], to: &[u8]) -> Result<usize> {
        let mut n = 0;
        for item in self.db.range(from..to) {
            item.map_err(backend)?;
            n += 1;
        }
        Ok(n)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush().map(|_| ()).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_open_elsewhere_is_reported_as_in_use() {
        let dir = std::env::temp_dir().join(format!("waymark-inuse-{}", std::process::id()));
        let _first = SledKv::open(&dir).unwrap();
        // sled's lock is a file lock, which a second open in the same
        // process also fails to take.
        match SledKv::open(&dir) {
            Err(StoreError::InUse { path }) => assert_eq!(path, dir.display().to_string()),
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(_first);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
