//! Staff tasks: sends a staff member confirms by hand (WeCom customer mass
//! sends), batched per staff member and content. `w/{task}` is a task's
//! head ([`StaffTask`]: its channel, staff member, content and state);
//! `w/{task}/{seq}` each of its sends, the outbox entry it left the outbox
//! as, sealed under its person's key. A send moves from the outbox into
//! its task in one batch, and leaves the task once its outcome is
//! journaled; the head goes with the last of them. `{task}` is the
//! sequence number of the task's first send, big-endian.
//!
//! The head is not sealed: it names a staff member and holds the content
//! every recipient of the task shares, not a person's own data.

use super::OutboxEntry;
use super::keys::{key, prefix_end};
use super::outbox::outbox_key;
use super::{Kv, Op, Result, Store, decode, encode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One task: what it sends, to whose customers, and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaffTask {
    pub id: u64,
    pub channel: String,
    pub staff: String,
    pub template: Option<String>,
    /// The sends' shared fields, without `staff`.
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// When its first send joined it.
    pub opened: DateTime<Utc>,
    /// When it is cancelled if not confirmed: the earliest its sends ask
    /// for (`wait for confirmation … within`), else the channel's
    /// `confirm_within` after it was made.
    pub deadline: Option<DateTime<Utc>>,
    pub state: TaskState,
}

/// Where a task stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TaskState {
    /// Taking sends until `closes` (or until full).
    Forming { closes: DateTime<Utc> },
    /// Asked of the platform from `since`, not yet known to be made: a
    /// retry first looks for it (`find`), so no task is made twice.
    /// `attempts` made so far; the next at `next`.
    Creating {
        since: DateTime<Utc>,
        attempts: u32,
        next: DateTime<Utc>,
    },
    /// Made: the platform's id; waiting for the staff member. Results are
    /// asked for at `next_poll`; reminders sent at `reminded`.
    Pending {
        since: DateTime<Utc>,
        task: String,
        made: DateTime<Utc>,
        next_poll: DateTime<Utc>,
        reminded: Vec<DateTime<Utc>>,
    },
}

fn head_key(task: u64) -> Vec<u8> {
    key("w", &[&task.to_be_bytes()])
}

fn send_key(task: u64, seq: u64) -> Vec<u8> {
    key("w", &[&task.to_be_bytes(), &seq.to_be_bytes()])
}

/// Whether a `w/` key is a task's head (`w/` + 8 bytes) rather than one
/// of its sends (`w/` + 8 bytes + `/` + 8 bytes).
fn is_head(key: &[u8]) -> bool {
    key.len() == 10
}

impl<K: Kv> Store<K> {
    /// Calls `each` with every `w/` pair, in key order, a page at a time.
    fn each_task_pair(&self, mut each: impl FnMut(Vec<u8>, Vec<u8>) -> Result<()>) -> Result<()> {
        let mut from = b"w/".to_vec();
        let end = prefix_end(b"w/");
        loop {
            let page = self.kv.range(&from, &end, 1_000)?;
            let Some((last, _)) = page.last() else {
                return Ok(());
            };
            from = [last.as_slice(), &[0]].concat();
            for (k, v) in page {
                each(k, v)?;
            }
        }
    }

    /// Every task with its sends (those whose person was not erased), in
    /// task order.
    pub fn staff_tasks(&self) -> Result<Vec<(StaffTask, Vec<OutboxEntry>)>> {
        let mut out: Vec<(StaffTask, Vec<OutboxEntry>)> = Vec::new();
        self.each_task_pair(|k, v| {
            if is_head(&k) {
                out.push((decode(&k, &v)?, Vec::new()));
            } else if let Some(bytes) = self.open_value(&k, &v)?
                && let Some((_, sends)) = out.last_mut()
            {
                sends.push(decode(&k, &bytes)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// `entry` (as read from the outbox) leaves the outbox for `task`,
    /// whose head is written as given: one batch.
    pub fn join_staff_task(&self, entry: &OutboxEntry, task: &StaffTask) -> Result<()> {
        let mut ops = vec![
            Op::Delete(outbox_key(entry)),
            Op::Put(head_key(task.id), encode(task)),
        ];
        let k = send_key(task.id, entry.seq);
        if let Some(sealed) = self.seal_for(&entry.record.user, &k, &encode(entry))? {
            ops.push(Op::Put(k, sealed));
        }
        self.kv.apply(ops)
    }

    /// Whether send `seq` of `task` is still held and readable: not once
    /// its person was erased (their key is destroyed).
    pub fn staff_send_held(&self, task: u64, seq: u64) -> Result<bool> {
        let k = send_key(task, seq);
        match self.kv.get(&k)? {
            Some(v) => Ok(self.open_value(&k, &v)?.is_some()),
            None => Ok(false),
        }
    }

    /// Writes a task's head as it now stands.
    pub fn put_staff_task(&self, task: &StaffTask) -> Result<()> {
        self.kv
            .apply(vec![Op::Put(head_key(task.id), encode(task))])
    }

    /// Sends of `task` whose outcome is journaled leave it; with `last`,
    /// the task goes too.
    pub fn settle_staff_sends(&self, task: &StaffTask, seqs: &[u64], last: bool) -> Result<()> {
        let mut ops: Vec<Op> = seqs
            .iter()
            .map(|&seq| Op::Delete(send_key(task.id, seq)))
            .collect();
        ops.push(match last {
            true => Op::Delete(head_key(task.id)),
            false => Op::Put(head_key(task.id), encode(task)),
        });
        self.kv.apply(ops)
    }

    /// How many tasks there are, and how many sends they hold (for
    /// `/metrics`), counted from keys.
    pub fn staff_task_counts(&self) -> Result<(usize, usize)> {
        let (mut heads, mut sends) = (0, 0);
        self.each_task_pair(|k, _| {
            match is_head(&k) {
                true => heads += 1,
                false => sends += 1,
            }
            Ok(())
        })?;
        Ok((heads, sends))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Batch, MemoryKv};
    use waymark_core::journal::{Kind, Record};

    #[test]
    fn a_send_moves_from_the_outbox_into_its_task_and_leaves_with_its_outcome() {
        let store = Store::new(MemoryKv::default());
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let journal = ["u1", "u2"]
            .iter()
            .map(|u| {
                let mut r = Record::new(t0, u, Kind::Send);
                r.channel = Some("mass".into());
                r
            })
            .collect();
        store
            .commit(Batch {
                journal,
                sends: vec![0, 1],
                ..Batch::default()
            })
            .unwrap();
        let ready = store.outbox_ready(t0, 10, &|_| false).unwrap();
        assert_eq!(ready.len(), 2);
        let mut task = StaffTask {
            id: ready[0].seq,
            channel: "mass".into(),
            staff: "zhangsan".into(),
            template: None,
            fields: serde_json::Map::new(),
            opened: t0,
            deadline: None,
            state: TaskState::Forming { closes: t0 },
        };
        for entry in &ready {
            store.join_staff_task(entry, &task).unwrap();
        }
        assert_eq!(store.outbox_depths().unwrap(), (0, 0));
        let tasks = store.staff_tasks().unwrap();
        assert_eq!(tasks.len(), 1);
        assert_eq!(tasks[0].0, task);
        assert_eq!(tasks[0].1, ready);
        task.state = TaskState::Creating {
            since: t0,
            attempts: 1,
            next: t0,
        };
        store
            .settle_staff_sends(&task, &[ready[0].seq], false)
            .unwrap();
        let tasks = store.staff_tasks().unwrap();
        assert_eq!(tasks[0].0.state, task.state);
        assert_eq!(tasks[0].1, ready[1..]);
        assert_eq!(store.staff_task_counts().unwrap(), (1, 1));
        assert!(store.staff_send_held(task.id, ready[1].seq).unwrap());
        assert!(!store.staff_send_held(task.id, ready[0].seq).unwrap());
        store
            .settle_staff_sends(&task, &[ready[1].seq], true)
            .unwrap();
        assert!(store.staff_tasks().unwrap().is_empty());
    }

    #[test]
    fn an_erased_persons_send_in_a_task_can_no_longer_be_read() {
        let store = Store::new(MemoryKv::default());
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let mut r = Record::new(t0, "u1", Kind::Send);
        r.channel = Some("mass".into());
        store
            .commit(Batch {
                journal: vec![r],
                sends: vec![0],
                users: vec![(waymark_core::model::UserState::new("u1"), None)],
                ..Batch::default()
            })
            .unwrap();
        let entry = store.outbox_ready(t0, 1, &|_| false).unwrap().remove(0);
        let task = StaffTask {
            id: entry.seq,
            channel: "mass".into(),
            staff: "zhangsan".into(),
            template: None,
            fields: serde_json::Map::new(),
            opened: t0,
            deadline: None,
            state: TaskState::Forming { closes: t0 },
        };
        store.join_staff_task(&entry, &task).unwrap();
        assert!(store.staff_send_held(task.id, entry.seq).unwrap());
        store.erase_user("u1").unwrap();
        assert!(!store.staff_send_held(task.id, entry.seq).unwrap());
        assert!(store.staff_tasks().unwrap()[0].1.is_empty());
    }
}
