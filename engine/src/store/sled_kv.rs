//! The sled backend. Everything lives in one tree with key prefixes, so a
//! batch is one `apply_batch` — atomic, and far cheaper than sled's
//! multi-tree transactions. sled buffers writes until `flush`; the shell
//! acknowledges inputs only after the flush that covers them.

use super::{Kv, Op, Result, StoreError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// A sled database, shared by every clone. sled refuses every operation
/// for good once a write or flush fails (a full disk, say), so the writer
/// can [`SledKv::reopen`] it in place: each clone then uses the new one.
#[derive(Debug, Clone)]
pub struct SledKv {
    db: Arc<RwLock<Option<sled::Db>>>,
    /// The per-user keys: `user-keys` in the store's directory, or in
    /// memory for a temporary store.
    keys: Arc<dyn super::sealed::KeyTable>,
    /// Where it lives and its cache size, to reopen it; `None` when temporary.
    path: Option<PathBuf>,
    cache: Option<u64>,
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

fn open_at(path: &Path, cache: Option<u64>) -> Result<sled::Db> {
    let mut config = sled::Config::new().path(path);
    if let Some(bytes) = cache {
        config = config.cache_capacity(bytes);
    }
    config.open().map_err(|e| opening(path, e))
}

impl SledKv {
    fn over(db: sled::Db, path: Option<&Path>, cache: Option<u64>) -> Result<SledKv> {
        let keys: Arc<dyn super::sealed::KeyTable> = match path {
            Some(dir) => Arc::new(
                super::sealed::FileKeys::open(&dir.join("user-keys")).map_err(|e| {
                    StoreError::Backend(format!("opening {}/user-keys: {e}", dir.display()))
                })?,
            ),
            None => Arc::new(super::sealed::MemoryKeys::default()),
        };
        Ok(SledKv {
            keys,
            db: Arc::new(RwLock::new(Some(db))),
            path: path.map(Path::to_path_buf),
            cache,
        })
    }

    pub fn open(path: &Path) -> Result<SledKv> {
        SledKv::over(open_at(path, None)?, Some(path), None)
    }

    /// Like [`SledKv::open`], with sled's page cache bounded to `bytes`
    /// (sled's default is 1 GiB). Resident memory for a large store — a
    /// million pending timers — is bounded by this cache, not by the data.
    pub fn open_with_cache(path: &Path, bytes: u64) -> Result<SledKv> {
        SledKv::over(open_at(path, Some(bytes))?, Some(path), Some(bytes))
    }

    /// A store in a temporary directory, removed when dropped.
    pub fn temporary() -> Result<SledKv> {
        let db = sled::Config::new()
            .temporary(true)
            .open()
            .map_err(backend)?;
        SledKv::over(db, None, None)
    }

    /// Closes the database and opens it again from what is on disk: what
    /// the last successful flush made durable. Every clone uses the new
    /// one; until it is open, their operations fail.
    pub fn reopen(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Err(StoreError::Backend(
                "a temporary store cannot be reopened".into(),
            ));
        };
        let mut slot = self.db.write().unwrap_or_else(|p| p.into_inner());
        // The old one must be gone, and its file lock released, first.
        drop(slot.take());
        *slot = Some(open_at(path, self.cache)?);
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&sled::Db) -> sled::Result<T>) -> Result<T> {
        let slot = self.db.read().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(db) => f(db).map_err(backend),
            None => Err(StoreError::Backend(
                "the store is closed after a failure and not yet reopened".into(),
            )),
        }
    }
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.with(|db| Ok(db.get(key)?.map(|v| v.to_vec())))
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        let mut batch = sled::Batch::default();
        for op in ops {
            match op {
                Op::Put(k, v) => batch.insert(k, v),
                Op::Delete(k) => batch.remove(k),
            }
        }
        self.with(|db| db.apply_batch(batch))
    }

    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with(|db| {
            db.range(from..to)
                .take(limit)
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect()
        })
    }

    fn range_rev(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.with(|db| {
            db.range(from..to)
                .rev()
                .take(limit)
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())))
                .collect()
        })
    }

    fn count(&self, from: &[u8], to: &[u8]) -> Result<usize> {
        self.with(|db| {
            let mut n = 0;
            for item in db.range(from..to) {
                item?;
                n += 1;
            }
            Ok(n)
        })
    }

    fn flush(&self) -> Result<()> {
        self.with(|db| db.flush().map(|_| ()))
    }

    fn keys(&self) -> &dyn super::sealed::KeyTable {
        self.keys.as_ref()
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

    #[test]
    fn a_reopened_store_serves_every_clone_from_disk() {
        let dir = std::env::temp_dir().join(format!("waymark-reopen-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kv = SledKv::open(&dir).unwrap();
        let clone = kv.clone();
        kv.apply(vec![Op::Put(b"k".to_vec(), b"v".to_vec())])
            .unwrap();
        kv.flush().unwrap();
        // The lock of the old database is released, or this would be InUse.
        kv.reopen().unwrap();
        assert_eq!(clone.get(b"k").unwrap(), Some(b"v".to_vec()));
        clone
            .apply(vec![Op::Put(b"k2".to_vec(), b"v2".to_vec())])
            .unwrap();
        assert_eq!(kv.get(b"k2").unwrap(), Some(b"v2".to_vec()));
        assert!(SledKv::temporary().unwrap().reopen().is_err());
        drop((kv, clone));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
