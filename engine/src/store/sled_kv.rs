//! The sled backend. Everything lives in one tree with key prefixes.
//! A batch is appended to a write-ahead log and kept in a write buffer
//! ([`write_ahead`](super::write_ahead)); [`Kv::flush`] syncs the log, and
//! the shell acknowledges inputs only after the flush that covers them
//! (group commit). The buffer goes to sled when it reaches its bound
//! (`store_write_buffer_bytes`) or its oldest write is [`OLDEST_WRITE`]
//! old, on a thread of its own, while a new one
//! fills: sled's own per-key cost is paid once per key a buffer holds, in
//! key order, off the path of any request.

use super::write_ahead::{self, Buffer, Log, Segment};
use super::{Kv, Op, Result, StoreError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// The write buffer's bound unless configured: sled gets the buffer's
/// writes once it holds this much (keys, values and their bookkeeping).
/// Up to twice this is held while one buffer is being checkpointed.
pub const DEFAULT_WRITE_BUFFER_BYTES: usize = 16 << 20;

/// A sled database, shared by every clone. sled refuses every operation
/// for good once a write or flush fails (a full disk, say), and so does
/// the log once a write to it fails, so the writer can [`SledKv::reopen`]
/// the store in place: each clone then uses the new one.
#[derive(Clone)]
pub struct SledKv {
    inner: Arc<Inner>,
}

struct Inner {
    db: RwLock<Option<sled::Db>>,
    /// The writes not yet in sled: the buffer filling, and the one being
    /// checkpointed, if any.
    buffers: RwLock<Buffers>,
    /// The log's segment being appended to; `None` for a temporary store.
    /// Held while a batch is appended and buffered, so the order of the
    /// log's records is the order of the buffer's writes.
    log: Mutex<Option<Log>>,
    /// The log's next segment, made ahead by the last checkpoint (or at
    /// open) so that a rotation waits for no disk.
    spare: Mutex<Option<Segment>>,
    /// The checkpoint running, if any.
    checkpoint: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Why the store refuses writes until it is reopened.
    failed: Mutex<Option<String>>,
    buffer_bytes: AtomicUsize,
    /// The per-user keys: `user-keys` in the store's directory, or in
    /// memory for a temporary store.
    keys: Arc<dyn super::sealed::KeyTable>,
    /// Where it lives and its cache size, to reopen it; `None` when temporary.
    path: Option<PathBuf>,
    cache: Option<u64>,
}

#[derive(Default)]
struct Buffers {
    filling: Buffer,
    /// When the buffer filling took its first write.
    filling_since: Option<std::time::Instant>,
    checkpointing: Option<Arc<Buffer>>,
}

/// How long a write waits in the buffer at most while no checkpoint
/// runs. A schedule's fire reads every member and writes a few: its
/// writes would wait in a buffer that fills slowly until the leaves sled
/// read them from had left its cache, and then be read from disk again.
const OLDEST_WRITE: std::time::Duration = std::time::Duration::from_millis(250);

impl std::fmt::Debug for SledKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledKv")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
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

fn log_dir(path: &Path) -> PathBuf {
    path.join("write-ahead")
}

/// Applies every segment of the log in `path` to `db`, flushes it, deletes
/// the segments and starts a new one (and its spare).
fn recover(path: &Path, db: &sled::Db) -> Result<(Log, Segment)> {
    let dir = log_dir(path);
    let found = write_ahead::segments(&dir)?;
    let mut next = 0;
    let mut torn_at = None;
    for (number, segment) in &found {
        next = number + 1;
        if torn_at.is_some() {
            continue;
        }
        let replayed = write_ahead::replay(segment, |ops| {
            db.apply_batch(sled_batch(ops.into_iter())).map_err(backend)
        })?;
        if replayed.torn > 0 {
            tracing::warn!(
                segment = %segment.display(),
                records = replayed.records,
                bytes = replayed.torn,
                "the write-ahead log ends in a write cut short (never acknowledged); the records before it are applied"
            );
            torn_at = Some(*number);
        }
    }
    // A segment is synced before any record after it is acknowledged, so
    // nothing after a cut-short write was: applying it would keep a
    // later batch without an earlier one.
    if let Some(torn) = torn_at {
        let after = found.iter().filter(|(n, _)| *n > torn).count();
        if after > 0 {
            tracing::warn!(
                segments = after,
                "segments after the write cut short are dropped (never acknowledged)"
            );
        }
    }
    if !found.is_empty() {
        db.flush().map_err(backend)?;
        for (_, segment) in &found {
            std::fs::remove_file(segment).map_err(|e| write_ahead::io(segment, "deleting", e))?;
        }
        write_ahead::sync_dir(&dir)?;
    }
    Log::start(&dir, next)
}

fn sled_batch(ops: impl Iterator<Item = Op>) -> sled::Batch {
    let mut batch = sled::Batch::default();
    for op in ops {
        match op {
            Op::Put(k, v) => batch.insert(k, v),
            Op::Delete(k) => batch.remove(k),
        }
    }
    batch
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        let (log, spare) = match path {
            Some(path) => {
                let (log, spare) = recover(path, &db)?;
                (Some(log), Some(spare))
            }
            None => (None, None),
        };
        Ok(SledKv {
            inner: Arc::new(Inner {
                keys,
                db: RwLock::new(Some(db)),
                buffers: RwLock::default(),
                log: Mutex::new(log),
                spare: Mutex::new(spare),
                checkpoint: Mutex::new(None),
                failed: Mutex::new(None),
                buffer_bytes: AtomicUsize::new(DEFAULT_WRITE_BUFFER_BYTES),
                path: path.map(Path::to_path_buf),
                cache,
            }),
        })
    }

    pub fn open(path: &Path) -> Result<SledKv> {
        SledKv::over(open_at(path, None)?, Some(path), None)
    }

    /// Like [`SledKv::open`], with sled's page cache bounded to `bytes`
    /// (sled's default is 1 GiB). Resident memory for a large store — a
    /// million pending timers — is bounded by this cache (and the write
    /// buffer), not by the data.
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

    /// Bounds the write buffer: its writes go to sled once it holds
    /// `bytes` ([`DEFAULT_WRITE_BUFFER_BYTES`] unless set).
    pub fn set_write_buffer_bytes(&self, bytes: usize) {
        self.inner.buffer_bytes.store(bytes, Ordering::Relaxed);
    }

    /// The write buffer's bound.
    pub fn write_buffer_capacity(&self) -> usize {
        self.inner.buffer_bytes.load(Ordering::Relaxed)
    }

    /// How many bytes the write buffers hold now (the one filling and the
    /// one being checkpointed).
    pub fn write_buffer_bytes(&self) -> usize {
        let buffers = self.buffers();
        buffers.filling.bytes() + buffers.checkpointing.as_ref().map_or(0, |b| b.bytes())
    }

    /// Writes every buffered write to sled now and waits until it is
    /// there and flushed, and the log empty: at a stop, so the next start
    /// has no log to replay, and where a measurement must count the
    /// writes' whole cost.
    pub fn write_out_all(&self) -> Result<()> {
        let mut log = locked(&self.inner.log);
        if !self.buffers().filling.is_empty() {
            self.checkpoint(&mut log)?;
        }
        self.wait_for_checkpoint();
        self.refused()
    }

    /// Closes the database and opens it again from what is on disk: what
    /// the last successful flush made durable (sled's files and the log's
    /// synced records). Every clone uses the new one; until it is open,
    /// their operations fail.
    pub fn reopen(&self) -> Result<()> {
        let Some(path) = &self.inner.path else {
            return Err(StoreError::Backend(
                "a temporary store cannot be reopened".into(),
            ));
        };
        let mut log = locked(&self.inner.log);
        self.wait_for_checkpoint();
        // What was appended and never synced was never acknowledged.
        if let Some(log) = log.as_mut() {
            log.cut_unsynced()?;
        }
        let mut slot = self.inner.db.write().unwrap_or_else(|p| p.into_inner());
        // The old one must be gone, and its file lock released, first.
        drop(slot.take());
        *self.buffers_mut() = Buffers::default();
        // Replayed (empty) and deleted with the other segments.
        locked(&self.inner.spare).take();
        let db = open_at(path, self.inner.cache)?;
        let (recovered, spare) = recover(path, &db)?;
        *log = Some(recovered);
        *locked(&self.inner.spare) = Some(spare);
        *slot = Some(db);
        *locked(&self.inner.failed) = None;
        Ok(())
    }

    fn with<T>(&self, f: impl FnOnce(&sled::Db) -> sled::Result<T>) -> Result<T> {
        let slot = self.inner.db.read().unwrap_or_else(|p| p.into_inner());
        match slot.as_ref() {
            Some(db) => f(db).map_err(backend),
            None => Err(StoreError::Backend(
                "the store is closed after a failure and not yet reopened".into(),
            )),
        }
    }

    fn buffers(&self) -> std::sync::RwLockReadGuard<'_, Buffers> {
        self.inner.buffers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn buffers_mut(&self) -> std::sync::RwLockWriteGuard<'_, Buffers> {
        self.inner
            .buffers
            .write()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// An error if a write failed since the store was opened.
    fn refused(&self) -> Result<()> {
        match locked(&self.inner.failed).as_ref() {
            Some(why) => Err(StoreError::Backend(format!(
                "the store refuses writes after a failure ({why}) until it is reopened"
            ))),
            None => Ok(()),
        }
    }

    /// `result`; an error refuses every write after it.
    fn failing<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            locked(&self.inner.failed).get_or_insert_with(|| e.to_string());
        }
        result
    }

    fn wait_for_checkpoint(&self) {
        let running = locked(&self.inner.checkpoint).take();
        if let Some(running) = running {
            let _ = running.join();
        }
    }

    /// Hands the full buffer to a checkpoint and starts a new one (and a
    /// new segment of the log), once the checkpoint before is done.
    fn checkpoint(&self, log: &mut Option<Log>) -> Result<()> {
        self.wait_for_checkpoint();
        self.refused()?;
        let done = match log.as_mut() {
            Some(log) => {
                let spare = locked(&self.inner.spare).take();
                let done = self.failing(log.rotate(spare))?;
                Some((done, log.next_number()))
            }
            None => None,
        };
        let full = {
            let mut buffers = self.buffers_mut();
            let full = Arc::new(std::mem::take(&mut buffers.filling));
            buffers.filling_since = None;
            buffers.checkpointing = Some(full.clone());
            full
        };
        let kv = self.clone();
        let running = std::thread::Builder::new()
            .name("waymark-checkpoint".into())
            .spawn(move || {
                let result = kv.write_out(&full, done.as_ref());
                if let Err(e) = kv.failing(result) {
                    tracing::error!(error = %e, "writing the write buffer to the store failed");
                    return;
                }
                let mut buffers = kv.buffers_mut();
                if buffers
                    .checkpointing
                    .as_ref()
                    .is_some_and(|b| Arc::ptr_eq(b, &full))
                {
                    buffers.checkpointing = None;
                }
            })
            .map_err(|e| StoreError::Backend(format!("cannot start a checkpoint: {e}")));
        // Without one, the buffer being checkpointed would stay for good:
        // writes are refused until the store is reopened from the log.
        let running = self.failing(running)?;
        *locked(&self.inner.checkpoint) = Some(running);
        Ok(())
    }

    /// A checkpoint: `full`'s writes applied to sled and flushed, then the
    /// log's segment that held them deleted and the spare numbered `next`
    /// made for the next rotation (`done`). Key by key, not in sled's
    /// batches: a batch holds every read of the store until it is
    /// applied, and the buffer, which reads look in first, keeps the
    /// writes atomic until it is dropped.
    fn write_out(&self, full: &Buffer, done: Option<&(PathBuf, u64)>) -> Result<()> {
        self.with(|db| {
            for (key, value) in full.iter() {
                match value {
                    Some(value) => db.insert(key, value).map(drop)?,
                    None => db.remove(key).map(drop)?,
                }
            }
            db.flush().map(drop)
        })?;
        if let Some((done, next)) = done {
            std::fs::remove_file(done).map_err(|e| write_ahead::io(done, "deleting", e))?;
            if let Some(dir) = done.parent() {
                // Without a spare, the next rotation makes its segment
                // itself (and reports what stops it).
                let spare = Segment::make(dir, *next)
                    .inspect_err(
                        |e| tracing::warn!(error = %e, "the log's next segment was not made ahead"),
                    )
                    .ok();
                write_ahead::sync_dir(dir)?;
                *locked(&self.inner.spare) = spare;
            }
        }
        Ok(())
    }

    /// The buffers' writes in `[from, to)`, copied out (see
    /// [`write_ahead::buffered`]).
    fn buffered(
        &self,
        from: &[u8],
        to: &[u8],
        forward: bool,
        limit: usize,
        values: bool,
    ) -> Vec<write_ahead::Written> {
        let buffers = self.buffers();
        write_ahead::buffered(
            &buffers.filling,
            buffers.checkpointing.as_deref(),
            from,
            to,
            forward,
            limit,
            values,
        )
    }

    /// Pairs in `[from, to)` in the walk's order, the buffers' writes
    /// over sled's, at most `limit`.
    fn walk(
        &self,
        from: &[u8],
        to: &[u8],
        limit: usize,
        forward: bool,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if from >= to || limit == 0 {
            return Ok(Vec::new());
        }
        let over = self.buffered(from, to, forward, limit, true);
        self.with(|db| {
            let pairs = db.range(from..to);
            if forward {
                write_ahead::merged(over, pairs, true, limit)
            } else {
                write_ahead::merged(over, pairs.rev(), false, limit)
            }
        })
    }
}

impl Kv for SledKv {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        {
            let buffers = self.buffers();
            let held = buffers
                .filling
                .get(key)
                .or_else(|| buffers.checkpointing.as_ref().and_then(|b| b.get(key)));
            if let Some(value) = held {
                return Ok(value.map(<[u8]>::to_vec));
            }
        }
        self.with(|db| Ok(db.get(key)?.map(|v| v.to_vec())))
    }

    fn apply(&self, ops: Vec<Op>) -> Result<()> {
        self.refused()?;
        let mut log = locked(&self.inner.log);
        if let Some(log) = log.as_mut() {
            let record = write_ahead::record(&ops);
            self.failing(log.append(&record))?;
        }
        let full = {
            let mut buffers = self.buffers_mut();
            buffers.filling.insert(ops);
            let since = *buffers
                .filling_since
                .get_or_insert_with(std::time::Instant::now);
            buffers.filling.bytes() >= self.inner.buffer_bytes.load(Ordering::Relaxed)
                || (since.elapsed() >= OLDEST_WRITE && buffers.checkpointing.is_none())
        };
        if full {
            self.checkpoint(&mut log)?;
        }
        Ok(())
    }

    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.walk(from, to, limit, true)
    }

    fn range_rev(&self, from: &[u8], to: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.walk(from, to, limit, false)
    }

    fn count(&self, from: &[u8], to: &[u8]) -> Result<usize> {
        if from >= to {
            return Ok(0);
        }
        let over = self.buffered(from, to, true, usize::MAX, false);
        self.with(|db| {
            let keys = db.range(from..to).keys().map(|k| k.map(|k| (k, [])));
            Ok(write_ahead::merged(over, keys, true, usize::MAX)?.len())
        })
    }

    fn flush(&self) -> Result<()> {
        self.refused()?;
        // Nothing of a temporary store outlives it. The disk is waited
        // for outside the log's lock, so the next batch is appended
        // meanwhile.
        let pending = locked(&self.inner.log).as_mut().and_then(Log::pending);
        match pending {
            Some(pending) => self.failing(pending.sync()),
            None => Ok(()),
        }
    }

    fn keys(&self) -> &dyn super::sealed::KeyTable {
        self.inner.keys.as_ref()
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

    /// A scratch directory for one test, empty.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("waymark-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

    /// Every read of `kv` answers as `model` does, over keys `k00`–`k39`.
    fn reads_as(kv: &SledKv, model: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>, rng: &mut u64) {
        let mut next = || {
            *rng ^= *rng << 13;
            *rng ^= *rng >> 7;
            *rng ^= *rng << 17;
            *rng
        };
        for n in 0..40 {
            let key = format!("k{n:02}").into_bytes();
            assert_eq!(
                kv.get(&key).unwrap().as_ref(),
                model.get(&key),
                "get k{n:02}"
            );
        }
        for _ in 0..6 {
            let (a, b) = (next() % 42, next() % 42);
            let from = format!("k{a:02}").into_bytes();
            let to = format!("k{b:02}").into_bytes();
            let limit = [0, 1, 3, 10, usize::MAX][(next() % 5) as usize];
            let expected: Pairs = if from < to {
                model
                    .range(from.clone()..to.clone())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            } else {
                Vec::new()
            };
            let forward: Pairs = expected.iter().take(limit).cloned().collect();
            let backward: Pairs = expected.iter().rev().take(limit).cloned().collect();
            assert_eq!(
                kv.range(&from, &to, limit).unwrap(),
                forward,
                "range k{a:02}..k{b:02}"
            );
            assert_eq!(
                kv.range_rev(&from, &to, limit).unwrap(),
                backward,
                "range_rev"
            );
            assert_eq!(kv.count(&from, &to).unwrap(), expected.len(), "count");
        }
    }

    #[test]
    fn reads_see_the_write_buffers_over_sled_through_checkpoints_and_reopens() {
        let dir = scratch("buffered");
        let kv = SledKv::open(&dir).unwrap();
        // A few batches a buffer: checkpoints run all the time, while
        // reads go on.
        kv.set_write_buffer_bytes(2048);
        let mut model = std::collections::BTreeMap::new();
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut checkpointed = 0;
        for step in 0..400 {
            let mut ops = Vec::new();
            for _ in 0..1 + step % 7 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let key = format!("k{:02}", rng % 40).into_bytes();
                if rng % 10 < 3 {
                    model.remove(&key);
                    ops.push(Op::Delete(key));
                } else {
                    let value = vec![(rng >> 8) as u8; (rng >> 16) as usize % 100];
                    model.insert(key.clone(), value.clone());
                    ops.push(Op::Put(key, value));
                }
            }
            kv.apply(ops).unwrap();
            if kv.inner.buffers.read().unwrap().checkpointing.is_some() {
                checkpointed += 1;
            }
            reads_as(&kv, &model, &mut rng);
            // The segments a checkpoint covers go: the one filling, the
            // one being checkpointed and the empty spare are left at most.
            let segments = write_ahead::segments(&log_dir(&dir)).unwrap();
            let written = segments
                .iter()
                // A checkpoint may delete one meanwhile.
                .filter(|(_, path)| std::fs::metadata(path).is_ok_and(|m| m.len() > 0))
                .count();
            assert!(segments.len() <= 3 && written <= 2, "{segments:?}");
            if step % 100 == 99 {
                // What a flush covers comes back, from sled and the log.
                kv.flush().unwrap();
                kv.reopen().unwrap();
                reads_as(&kv, &model, &mut rng);
            }
        }
        assert!(checkpointed > 20, "checkpoints seen {checkpointed}");
        drop(kv);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_write_waits_in_the_buffer_a_quarter_second_at_most_while_no_checkpoint_runs() {
        let dir = scratch("oldest");
        let kv = SledKv::open(&dir).unwrap();
        // Never full: only the age of its oldest write sends it to sled.
        kv.set_write_buffer_bytes(usize::MAX);
        let in_sled = |key: &[u8]| kv.with(|db| db.get(key)).unwrap().is_some();
        kv.apply(vec![Op::Put(b"a".to_vec(), b"1".to_vec())])
            .unwrap();
        assert!(!in_sled(b"a"));
        assert_eq!(kv.get(b"a").unwrap(), Some(b"1".to_vec()));
        std::thread::sleep(OLDEST_WRITE);
        kv.apply(vec![Op::Put(b"b".to_vec(), b"2".to_vec())])
            .unwrap();
        kv.wait_for_checkpoint();
        assert!(in_sled(b"a") && in_sled(b"b"));
        drop(kv);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn flushed_writes_come_back_from_the_log_alone_and_a_torn_tail_is_dropped() {
        let dir = scratch("log-alone");
        let kv = SledKv::open(&dir).unwrap();
        kv.apply(vec![
            Op::Put(b"a".to_vec(), b"1".to_vec()),
            Op::Put(b"b".to_vec(), b"2".to_vec()),
        ])
        .unwrap();
        kv.apply(vec![
            Op::Delete(b"a".to_vec()),
            Op::Put(b"c".to_vec(), b"3".to_vec()),
        ])
        .unwrap();
        kv.flush().unwrap();
        // Another store, empty but for this one's log: as if sled had
        // written none of it before a crash. A write cut short follows,
        // and a whole record in the spare segment after it.
        let other = scratch("log-alone-copy");
        std::fs::create_dir_all(log_dir(&other)).unwrap();
        let segments = write_ahead::segments(&log_dir(&dir)).unwrap();
        assert_eq!(segments.len(), 2, "the segment and its spare: {segments:?}");
        let mut bytes = std::fs::read(&segments[0].1).unwrap();
        let torn = write_ahead::record(&[Op::Put(b"d".to_vec(), b"4".to_vec())]);
        bytes.extend_from_slice(&torn[..torn.len() - 1]);
        std::fs::write(
            log_dir(&other).join(segments[0].1.file_name().unwrap()),
            bytes,
        )
        .unwrap();
        let after = write_ahead::record(&[Op::Put(b"e".to_vec(), b"5".to_vec())]);
        std::fs::write(
            log_dir(&other).join(segments[1].1.file_name().unwrap()),
            after,
        )
        .unwrap();
        drop(kv);
        let copy = SledKv::open(&other).unwrap();
        let all = copy.range(b"", &[0xff], usize::MAX).unwrap();
        assert_eq!(
            all,
            vec![
                (b"b".to_vec(), b"2".to_vec()),
                (b"c".to_vec(), b"3".to_vec())
            ]
        );
        // Replayed into sled and flushed, the old segments are gone: a
        // fresh one and its spare are all there is.
        let segments = write_ahead::segments(&log_dir(&other)).unwrap();
        assert_eq!(segments.len(), 2, "{segments:?}");
        for (_, segment) in &segments {
            assert_eq!(std::fs::metadata(segment).unwrap().len(), 0);
        }
        drop(copy);
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::remove_dir_all(&other);
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
