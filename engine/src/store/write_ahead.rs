//! The write-ahead log and write buffer in front of sled. A batch is
//! appended to the log (one record, checksummed) and kept in memory, in
//! the write buffer; a flush syncs the log, which is what makes the batch
//! durable. sled gets the buffer's writes later, all at once, in key
//! order, with a key written many times written once (a checkpoint), and
//! the log's segments that the checkpoint covers are deleted once sled has
//! flushed them. Reads look in the buffer first, then sled.
//!
//! Written straight to sled, every event cost one of sled's per-key
//! inserts on the commit thread before its request could be acknowledged:
//! each clones the leaf it lands in, and in a batch of users scattered
//! over the key space every one lands on a leaf out of the CPU's cache.
//! The log costs a copy and a sequential write; the checkpoint writes a
//! busy user once per buffer, not once per event, to leaves it visits in
//! order.
//!
//! A segment is `{store}/write-ahead/{n}.wal` (`n` 20 decimal digits, so
//! names sort as numbers); a record is its payload's length and CRC-32
//! (4 bytes each, big-endian), then the payload: per op a tag (1 put, 0
//! delete), the key's length (4 bytes) and key, and for a put the value's
//! length and value. At open every segment is applied to sled in order,
//! one record a batch, up to the first record cut short or damaged (the
//! tail of a write that a crash interrupted: no flush covered it, so no
//! input it holds was acknowledged, nor any in a later segment), then
//! sled is flushed and the segments deleted.
//!
//! Nothing on a batch's path waits for the disk but the flush: a
//! rotation leaves the segment it ends to be synced by the next flush,
//! which syncs it before the new one, and starts on a spare segment that
//! the checkpoint before made, its name already durable (syncing a
//! directory on ext4 commits the journal, which waits for every file's
//! new data, sled's included). A flush waits for the disk outside the
//! log's lock.

use super::{Op, Result, StoreError};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};

/// What an entry of the buffer costs beyond its key and value, counted
/// towards its size: the map's node share and the two allocations.
const ENTRY_OVERHEAD: usize = 96;

/// Writes not yet in sled, newest per key (`None`: deleted).
#[derive(Debug, Default)]
pub(super) struct Buffer {
    map: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    bytes: usize,
}

impl Buffer {
    pub(super) fn insert(&mut self, ops: Vec<Op>) {
        for op in ops {
            let (key, value) = match op {
                Op::Put(k, v) => (k, Some(v)),
                Op::Delete(k) => (k, None),
            };
            let size = value.as_ref().map_or(0, Vec::len);
            match self.map.entry(key) {
                std::collections::btree_map::Entry::Occupied(mut e) => {
                    let old = e.get().as_ref().map_or(0, Vec::len);
                    self.bytes = self.bytes + size - old;
                    e.insert(value);
                }
                std::collections::btree_map::Entry::Vacant(e) => {
                    self.bytes += e.key().len() + size + ENTRY_OVERHEAD;
                    e.insert(value);
                }
            }
        }
    }

    /// What the buffer says of `key`: `Some(None)` if it deletes it,
    /// `None` if it holds nothing of it.
    pub(super) fn get(&self, key: &[u8]) -> Option<Option<&[u8]>> {
        self.map.get(key).map(|v| v.as_deref())
    }

    /// Its size in bytes, as counted against the configured bound.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Its writes in key order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
        self.map.iter().map(|(k, v)| (k.as_slice(), v.as_deref()))
    }

    fn range<'a>(&'a self, from: &[u8], to: &[u8], forward: bool) -> Walk<'a> {
        let range = self
            .map
            .range::<[u8], _>((Bound::Included(from), Bound::Excluded(to)))
            .map(|(k, v)| (k.as_slice(), v.as_deref()));
        if forward {
            Box::new(range)
        } else {
            Box::new(range.rev())
        }
    }
}

/// The order of a walk: key order, or its reverse.
fn order(forward: bool, a: &[u8], b: &[u8]) -> Ordering {
    if forward { a.cmp(b) } else { b.cmp(a) }
}

/// A buffered write copied out: the key, and its value (`None`: deleted).
pub(super) type Written = (Vec<u8>, Option<Vec<u8>>);

/// A key and its value, read.
pub(super) type Pair = (Vec<u8>, Vec<u8>);

/// A buffer's writes in a walk's order, borrowed.
type Walk<'a> = Box<dyn Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a>;

/// The writes of `newer` over `older` (the buffer being checkpointed) in
/// `[from, to)`, in the walk's order, newer winning a key both hold: up
/// to the `limit`-th put, as no later write can be among the first
/// `limit` results of a walk that merges them with sled. Values are
/// copied only if `values` (a count needs the keys).
pub(super) fn buffered(
    newer: &Buffer,
    older: Option<&Buffer>,
    from: &[u8],
    to: &[u8],
    forward: bool,
    limit: usize,
    values: bool,
) -> Vec<Written> {
    let mut out = Vec::new();
    let mut a = newer.range(from, to, forward).peekable();
    let mut b = older.map(|o| o.range(from, to, forward).peekable());
    let mut puts = 0;
    while puts < limit {
        let next_b = b.as_mut().and_then(|b| b.peek().copied());
        let (key, value) = match (a.peek().copied(), next_b) {
            (None, None) => break,
            (Some(x), None) => {
                a.next();
                x
            }
            (None, Some(y)) => {
                b.as_mut().map(Iterator::next);
                y
            }
            (Some(x), Some(y)) => match order(forward, x.0, y.0) {
                Ordering::Less => {
                    a.next();
                    x
                }
                Ordering::Greater => {
                    b.as_mut().map(Iterator::next);
                    y
                }
                Ordering::Equal => {
                    a.next();
                    b.as_mut().map(Iterator::next);
                    x
                }
            },
        };
        if value.is_some() {
            puts += 1;
        }
        let value = value.map(|v| if values { v.to_vec() } else { Vec::new() });
        out.push((key.to_vec(), value));
    }
    out
}

/// `over` (from [`buffered`]) merged into `base` (sled's pairs in the same
/// range and order), `over` winning a key both hold and hiding what it
/// deletes: the first `limit` pairs.
pub(super) fn merged<E, K: AsRef<[u8]>, V: AsRef<[u8]>>(
    over: Vec<Written>,
    base: impl Iterator<Item = std::result::Result<(K, V), E>>,
    forward: bool,
    limit: usize,
) -> std::result::Result<Vec<Pair>, E> {
    let mut out = Vec::new();
    let mut over = over.into_iter().peekable();
    let mut base = base.peekable();
    while out.len() < limit {
        let from_base = match (over.peek(), base.peek()) {
            (None, None) => break,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (Some((k, _)), Some(Ok((b, _)))) => match order(forward, k, b.as_ref()) {
                Ordering::Less => false,
                Ordering::Greater => true,
                Ordering::Equal => {
                    base.next();
                    false
                }
            },
            (_, Some(Err(_))) => true,
        };
        if from_base {
            match base.next() {
                // Copied only once it is taken.
                Some(Ok((k, v))) => out.push((k.as_ref().to_vec(), v.as_ref().to_vec())),
                Some(Err(e)) => return Err(e),
                None => break,
            }
        } else if let Some((k, Some(v))) = over.next() {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// One record: the length and checksum of its payload, then the payload.
pub(super) fn record(ops: &[Op]) -> Vec<u8> {
    let size: usize = ops
        .iter()
        .map(|op| match op {
            Op::Put(k, v) => 9 + k.len() + v.len(),
            Op::Delete(k) => 5 + k.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(8 + size);
    out.extend_from_slice(&[0; 8]);
    for op in ops {
        match op {
            Op::Put(k, v) => {
                out.push(1);
                out.extend_from_slice(&(k.len() as u32).to_be_bytes());
                out.extend_from_slice(k);
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
            Op::Delete(k) => {
                out.push(0);
                out.extend_from_slice(&(k.len() as u32).to_be_bytes());
                out.extend_from_slice(k);
            }
        }
    }
    let len = (out.len() - 8) as u32;
    let crc = crc32fast::hash(&out[8..]);
    out[..4].copy_from_slice(&len.to_be_bytes());
    out[4..8].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The ops of a record's payload, whose checksum was good.
fn ops_of(mut payload: &[u8]) -> Option<Vec<Op>> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = bytes.split_at_checked(n)?;
        *bytes = rest;
        Some(head)
    }
    fn length(bytes: &mut &[u8]) -> Option<usize> {
        let b = take(bytes, 4)?;
        Some(u32::from_be_bytes(b.try_into().ok()?) as usize)
    }
    let mut ops = Vec::new();
    while let Some(&tag) = payload.first() {
        payload = &payload[1..];
        let n = length(&mut payload)?;
        let key = take(&mut payload, n)?.to_vec();
        ops.push(match tag {
            1 => {
                let n = length(&mut payload)?;
                Op::Put(key, take(&mut payload, n)?.to_vec())
            }
            0 => Op::Delete(key),
            _ => return None,
        });
    }
    Some(ops)
}

/// What replaying one segment found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Replayed {
    pub records: usize,
    /// Bytes after the last whole record (a write a crash cut short).
    pub torn: usize,
}

/// Hands every whole record of the segment at `path`, in order, to
/// `apply`, up to the first one cut short or damaged.
pub(super) fn replay(
    path: &Path,
    mut apply: impl FnMut(Vec<Op>) -> Result<()>,
) -> Result<Replayed> {
    let bytes = std::fs::read(path).map_err(|e| io(path, "reading", e))?;
    let mut at = 0;
    let mut replayed = Replayed::default();
    while let Some(header) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = bytes.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32fast::hash(payload) != crc {
            break;
        }
        let ops = ops_of(payload).ok_or_else(|| StoreError::Corrupt {
            key: format!("{} at byte {at}", path.display()),
            message: "a write-ahead record whose checksum is good holds ops that do not parse"
                .into(),
        })?;
        apply(ops)?;
        replayed.records += 1;
        at += 8 + len;
    }
    replayed.torn = bytes.len() - at;
    Ok(replayed)
}

pub(super) fn io(path: &Path, doing: &str, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{doing} {}: {e}", path.display()))
}

/// One file of the log, shared by the log and a sync running outside
/// the log's lock.
#[derive(Debug)]
pub(super) struct Segment {
    number: u64,
    path: PathBuf,
    file: File,
    /// How many of its bytes are known durable.
    synced: AtomicU64,
}

impl Segment {
    /// A new, empty segment `number` in `dir`; its name is not durable
    /// until the directory is synced.
    pub(super) fn make(dir: &Path, number: u64) -> Result<Segment> {
        let path = segment_path(dir, number);
        let file = File::options()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, "making", e))?;
        Ok(Segment {
            number,
            path,
            file,
            synced: AtomicU64::new(0),
        })
    }

    /// The segment to rotate to after the one numbered `number - 1`,
    /// made ahead, off the path of any write, its name made durable.
    pub(super) fn spare(dir: &Path, number: u64) -> Result<Segment> {
        let made = Segment::make(dir, number)?;
        sync_dir(dir)?;
        Ok(made)
    }

    /// Makes its first `end` bytes durable, unless a sync already has.
    fn sync_to(&self, end: u64) -> Result<()> {
        if self.synced.load(AtomicOrdering::Acquire) < end {
            self.file
                .sync_data()
                .map_err(|e| io(&self.path, "syncing", e))?;
            self.synced.fetch_max(end, AtomicOrdering::AcqRel);
        }
        Ok(())
    }

    /// Cuts what was appended and never synced off it.
    fn cut_unsynced(&self) -> Result<u64> {
        let synced = self.synced.load(AtomicOrdering::Acquire);
        self.file
            .set_len(synced)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| io(&self.path, "truncating", e))?;
        Ok(synced)
    }
}

/// The log: the segment being appended to, in `dir`, and the one before
/// it until a sync covers it. Appends take the log's lock; a sync takes
/// it only to see what it must sync ([`Log::pending`]), so the next
/// batch is appended while the last one is synced.
#[derive(Debug)]
pub(super) struct Log {
    dir: PathBuf,
    current: Arc<Segment>,
    written: u64,
    /// The segment before and how much was appended to it, until a sync
    /// covers that: a rotation does not wait for the disk.
    behind: Option<(Arc<Segment>, u64)>,
}

/// What a flush must sync: taken under the log's lock, run outside it.
#[derive(Debug)]
pub(super) struct Pending {
    behind: Option<(Arc<Segment>, u64)>,
    current: Arc<Segment>,
    upto: u64,
}

impl Pending {
    /// Syncs the segment behind first: a record is durable only once
    /// every record before it is.
    pub(super) fn sync(&self) -> Result<()> {
        if let Some((segment, end)) = &self.behind {
            segment.sync_to(*end)?;
        }
        self.current.sync_to(self.upto)
    }
}

/// The segments in `dir`, oldest first, with their numbers.
pub(super) fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io(dir, "listing", e)),
    };
    for entry in entries {
        let path = entry.map_err(|e| io(dir, "listing", e))?.path();
        let number = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(number) = number {
            found.push((number, path));
        }
    }
    found.sort();
    Ok(found)
}

/// Makes the names in `dir` (a segment made or deleted) durable.
pub(super) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, "syncing", e))
}

pub(super) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}

impl Log {
    /// A new, empty segment `number` in `dir`, and the spare to rotate to.
    pub(super) fn start(dir: &Path, number: u64) -> Result<(Log, Segment)> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, "making", e))?;
        let current = Segment::make(dir, number)?;
        let spare = Segment::make(dir, number + 1)?;
        sync_dir(dir)?;
        let log = Log {
            dir: dir.to_path_buf(),
            current: Arc::new(current),
            written: 0,
            behind: None,
        };
        Ok((log, spare))
    }

    pub(super) fn append(&mut self, record: &[u8]) -> Result<()> {
        (&self.current.file)
            .write_all(record)
            .map_err(|e| io(&self.current.path, "writing", e))?;
        self.written += record.len() as u64;
        Ok(())
    }

    /// What a sync must do to make every record appended durable;
    /// `None` if they are.
    pub(super) fn pending(&mut self) -> Option<Pending> {
        if let Some((segment, end)) = &self.behind
            && segment.synced.load(AtomicOrdering::Acquire) >= *end
        {
            self.behind = None;
        }
        let synced = self.current.synced.load(AtomicOrdering::Acquire);
        if self.behind.is_none() && synced >= self.written {
            return None;
        }
        Some(Pending {
            behind: self.behind.clone(),
            current: self.current.clone(),
            upto: self.written,
        })
    }

    /// Makes every record appended durable, on this thread.
    #[cfg(test)]
    pub(super) fn sync(&mut self) -> Result<()> {
        match self.pending() {
            Some(pending) => pending.sync(),
            None => Ok(()),
        }
    }

    /// The number of the segment after the one being appended to.
    pub(super) fn next_number(&self) -> u64 {
        self.current.number + 1
    }

    /// Starts appending to the next segment, `spare` if it is that one
    /// (made ahead), and returns this one's path, to delete once a
    /// checkpoint covers it. This one is synced by the next sync, not
    /// now; the one behind it, if no sync came since the last rotation,
    /// is synced now.
    pub(super) fn rotate(&mut self, spare: Option<Segment>) -> Result<PathBuf> {
        // Kept until it is synced: a cut after a failure reaches it.
        if let Some((segment, end)) = &self.behind {
            segment.sync_to(*end)?;
        }
        let number = self.next_number();
        let next = match spare {
            Some(spare) if spare.number == number => spare,
            _ => Segment::spare(&self.dir, number)?,
        };
        let done = std::mem::replace(&mut self.current, Arc::new(next));
        self.behind = Some((done.clone(), self.written));
        self.written = 0;
        Ok(done.path.clone())
    }

    /// Cuts what was appended and never synced (a batch whose write or
    /// sync failed, never acknowledged) off the segment, and off the one
    /// behind it.
    pub(super) fn cut_unsynced(&mut self) -> Result<()> {
        if let Some((segment, _)) = self.behind.take() {
            segment.cut_unsynced()?;
        }
        self.written = self.current.cut_unsynced()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(k: &str, v: &str) -> Op {
        Op::Put(k.as_bytes().to_vec(), v.as_bytes().to_vec())
    }

    fn del(k: &str) -> Op {
        Op::Delete(k.as_bytes().to_vec())
    }

    fn shown(ops: &[Op]) -> Vec<String> {
        ops.iter()
            .map(|op| match op {
                Op::Put(k, v) => format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                ),
                Op::Delete(k) => format!("-{}", String::from_utf8_lossy(k)),
            })
            .collect()
    }

    #[test]
    fn records_replay_in_order_up_to_a_torn_tail() {
        let dir = std::env::temp_dir().join(format!("waymark-wal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut log, _spare) = Log::start(&dir, 7).unwrap();
        let first = vec![put("a", "1"), del("b"), put("", "")];
        let second = vec![put("c", &"x".repeat(300))];
        log.append(&record(&first)).unwrap();
        log.append(&record(&second)).unwrap();
        log.sync().unwrap();
        let path = segment_path(&dir, 7);
        let whole = std::fs::read(&path).unwrap();
        let mut seen = Vec::new();
        let done = replay(&path, |ops| {
            seen.push(shown(&ops));
            Ok(())
        })
        .unwrap();
        assert_eq!(
            done,
            Replayed {
                records: 2,
                torn: 0
            }
        );
        assert_eq!(seen, vec![shown(&first), shown(&second)]);
        // Cut inside the second record: the first is all there is.
        for cut in [whole.len() - 1, whole.len() - 301, record(&first).len() + 3] {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let mut seen = Vec::new();
            let done = replay(&path, |ops| {
                seen.push(shown(&ops));
                Ok(())
            })
            .unwrap();
            assert_eq!(done.records, 1, "cut at {cut}");
            assert_eq!(done.torn, cut - record(&first).len());
            assert_eq!(seen, vec![shown(&first)]);
        }
        // A flipped byte in the second record's value: its checksum fails.
        let mut damaged = whole.clone();
        let last = damaged.len() - 5;
        damaged[last] ^= 1;
        std::fs::write(&path, &damaged).unwrap();
        assert_eq!(replay(&path, |_| Ok(())).unwrap().records, 1);
        assert_eq!(
            segments(&dir).unwrap(),
            vec![(7, path.clone()), (8, segment_path(&dir, 8))],
            "segments, the spare among them, are found by number"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_rotation_leaves_its_segment_for_the_next_sync_and_a_cut_takes_both_tails() {
        let dir = std::env::temp_dir().join(format!("waymark-wal-rot-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (mut log, spare) = Log::start(&dir, 1).unwrap();
        let size = |n| std::fs::metadata(segment_path(&dir, n)).unwrap().len();
        let one = record(&[put("a", "1")]);
        let two = record(&[put("b", "2")]);
        log.append(&one).unwrap();
        // The spare made at the start is taken; the next one is made here.
        assert!(
            log.rotate(Some(spare))
                .unwrap()
                .ends_with(segment_path(&dir, 1))
        );
        log.append(&two).unwrap();
        assert!(log.rotate(None).unwrap().ends_with(segment_path(&dir, 2)));
        assert_eq!(log.next_number(), 4);
        // Segment 1 was synced by the second rotation, segment 2 was not:
        // a cut takes it back to nothing.
        log.cut_unsynced().unwrap();
        assert_eq!((size(1), size(2), size(3)), (one.len() as u64, 0, 0));
        // One pending sync covers the segment behind and the current one.
        log.append(&two).unwrap();
        assert!(log.rotate(None).unwrap().ends_with(segment_path(&dir, 3)));
        log.append(&one).unwrap();
        let pending = log.pending().expect("two segments to sync");
        pending.sync().unwrap();
        assert!(log.pending().is_none(), "nothing left to sync");
        log.cut_unsynced().unwrap();
        assert_eq!((size(3), size(4)), (two.len() as u64, one.len() as u64));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_newer_buffer_wins_and_a_delete_hides_what_is_below() {
        let mut older = Buffer::default();
        older.insert(vec![put("a", "old"), put("b", "old"), put("d", "old")]);
        let mut newer = Buffer::default();
        newer.insert(vec![put("a", "new"), del("b"), put("c", "new")]);
        let over = buffered(&newer, Some(&older), b"a", b"z", true, usize::MAX, true);
        let base = ["a", "b", "bb", "c", "e"]
            .map(|k| Ok::<_, ()>((k.as_bytes().to_vec(), b"base".to_vec())));
        let all = merged(over, base.clone().into_iter(), true, usize::MAX).unwrap();
        let text: Vec<String> = all
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    String::from_utf8_lossy(k),
                    String::from_utf8_lossy(v)
                )
            })
            .collect();
        assert_eq!(text, ["a=new", "bb=base", "c=new", "d=old", "e=base"]);
        // Backwards, limited: the last two.
        let over = buffered(&newer, Some(&older), b"a", b"z", false, 2, true);
        let back = merged(over, base.into_iter().rev(), false, 2).unwrap();
        let keys: Vec<&[u8]> = back.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(keys, [b"e".as_slice(), b"d"]);
        assert_eq!(newer.get(b"b"), Some(None));
        assert_eq!(newer.get(b"d"), None);
    }
}
