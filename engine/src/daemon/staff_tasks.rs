//! The staff-task runner: one per channel whose sends a staff member
//! confirms (WeCom customer mass sends). The outbox hands it each such
//! send; it puts the send in the open task of the same staff member and
//! content (or opens one, for the channel's `batch_window`), so that a
//! staff member gets one task to confirm, not one per customer. Then, one
//! call at a time:
//!
//! - a task whose window closed is made (`create`). Before the call the
//!   store knows it is being made, durably; if the answer is lost (a
//!   timeout, a crash), the next try first looks for it on the platform
//!   (`find`), so no task is made twice;
//! - a made task's results are asked for every `poll_every`: each customer
//!   sent to, not a friend, or over their mass-message quota is an
//!   outcome; until the staff member confirms, they are reminded after
//!   `remind_after`, at most `reminders_per_day` times in 24 hours;
//! - at its deadline (the `within` of the journey's `wait for
//!   confirmation`, else the channel's `confirm_within`) the task is
//!   cancelled and its customers not sent to are `not_confirmed`.
//!
//! Each outcome goes to the writer as an input of its user, which
//! journals it (`outcome`) and moves the journey's `wait for
//! confirmation`; only once that is durable does the send leave the task.
//! A restart in between reports it again, and the writer drops the
//! repeat by its message id.

use super::writer::{Command, Handle};
use crate::channels::{Channel, DeliveryError};
use crate::store::{OutboxEntry, SledKv, StaffTask as Head, Store, TaskState};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use waymark_channel::{RecipientStatus, StaffTask, StaffTasks, TaskSchedule};
use waymark_core::clock::Clock;
use waymark_core::model::{Input, SendOutcome};

/// How often a runner looks at its tasks.
const ROUND: Duration = Duration::from_millis(250);

/// A send the outbox hands over, and where to say it was taken.
pub struct Join {
    pub entry: OutboxEntry,
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// What a runner is asked to do.
pub enum Ask {
    Join(Join),
    /// The platform says a customer's tags were edited (a WeCom
    /// `add_external_contact` or `edit_external_contact` push): read them
    /// and bring the user's mirrored tags in line.
    PullTags {
        user: String,
        customer: String,
    },
    /// The platform says one of its tags changed (`change_external_tag`:
    /// `create`, `update`, `delete`, `shuffle`).
    CorpTag {
        id: String,
        change: String,
    },
}

/// A task in memory: its head as stored and its sends.
struct Task {
    head: Head,
    sends: Vec<OutboxEntry>,
}

impl Task {
    /// The customers' addresses, each once, in the order they joined.
    fn recipients(&self) -> Vec<String> {
        let mut seen = std::collections::BTreeSet::new();
        self.sends
            .iter()
            .filter_map(|e| e.record.to.clone())
            .filter(|to| seen.insert(to.clone()))
            .collect()
    }

    fn request(&self) -> StaffTask {
        StaffTask {
            id: self.head.id,
            staff: self.head.staff.clone(),
            recipients: self.recipients(),
            template: self.head.template.clone(),
            fields: self.head.fields.clone(),
            since: match &self.head.state {
                TaskState::Creating { since, .. } | TaskState::Pending { since, .. } => *since,
                TaskState::Forming { .. } => self.head.opened,
            },
        }
    }
}

/// The staff member a send is for (its `staff` field, which the core
/// fills from the channel's trait), and its content without it.
fn staff_and_content(
    entry: &OutboxEntry,
) -> (Option<String>, serde_json::Map<String, serde_json::Value>) {
    let mut fields = match &entry.record.fields {
        Some(serde_json::Value::Object(f)) => f.clone(),
        _ => serde_json::Map::new(),
    };
    let staff = match fields.remove("staff") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    (staff, fields)
}

/// The delay before retrying a call that failed `attempts` times.
fn backoff(attempts: u32) -> Duration {
    Duration::from_secs(15u64.saturating_mul(1 << attempts.min(6))).min(Duration::from_secs(900))
}

fn later(now: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

pub struct Runner {
    pub name: String,
    pub channel: Arc<dyn Channel>,
    pub store: Arc<Store<SledKv>>,
    pub writer: Handle,
    pub clock: Arc<dyn Clock>,
    /// Held for each call: shared by the runners of one platform account,
    /// which WeCom answers one query at a time (45033 otherwise).
    pub serial: Arc<tokio::sync::Mutex<()>>,
}

impl Runner {
    fn api(&self) -> &dyn StaffTasks {
        self.channel
            .staff_tasks()
            .expect("a runner is made for a channel with staff tasks")
    }

    /// Runs until `stop`; a call in flight is finished first.
    pub async fn run(self, mut asks: mpsc::Receiver<Ask>, mut stop: watch::Receiver<bool>) {
        let schedule = self.api().schedule();
        let mut tasks: BTreeMap<u64, Task> = BTreeMap::new();
        match self.store.staff_tasks() {
            Ok(stored) => {
                for (head, sends) in stored {
                    if head.channel == self.name {
                        tasks.insert(head.id, Task { head, sends });
                    }
                }
            }
            Err(e) => {
                tracing::error!(channel = %self.name, error = %e, "reading the staff tasks failed; the stored ones wait for a restart")
            }
        }
        if !tasks.is_empty() {
            tracing::info!(channel = %self.name, tasks = tasks.len(), "staff tasks taken up again");
        }
        // Tasks are looked at every round, however busy the asks keep it.
        let mut next_round = tokio::time::Instant::now();
        loop {
            tokio::select! {
                ask = asks.recv() => match ask {
                    Some(Ask::Join(join)) => {
                        let taken = self.join(&mut tasks, join.entry, &schedule);
                        let _ = join.reply.send(taken);
                    }
                    Some(Ask::CorpTag { id, change }) => self.corp_tag(&id, &change),
                    Some(Ask::PullTags { user, customer }) => {
                        let _serial = self.serial.lock().await;
                        self.pull_tags(user, &customer).await;
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(next_round) => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
            if tokio::time::Instant::now() < next_round {
                continue;
            }
            next_round = tokio::time::Instant::now() + ROUND;
            let ids: Vec<u64> = tasks.keys().copied().collect();
            for id in ids {
                if *stop.borrow() {
                    break;
                }
                let Some(task) = tasks.get_mut(&id) else {
                    continue;
                };
                let done = {
                    let _serial = self.serial.lock().await;
                    self.step(task, &schedule).await
                };
                if done {
                    tasks.remove(&id);
                }
            }
        }
    }

    /// A corp tag this channel mirrors was changed in WeCom. Tags are
    /// mapped by id, so a rename changes nothing; a deleted one can no
    /// longer be given, which the operator has to hear of.
    fn corp_tag(&self, id: &str, change: &str) {
        let synced = self.api().synced_tags();
        let Some((tag, _)) = synced.iter().find(|(_, mapped)| *mapped == id) else {
            return;
        };
        match change {
            "delete" => tracing::warn!(
                channel = %self.name,
                tag = %tag,
                corp_tag = %id,
                "the WeCom corp tag that Waymark tag `{tag}` is mirrored to was deleted in WeCom: giving it now fails (a dead letter); map it to another in [channels.{}.tags]",
                self.name
            ),
            _ => {
                tracing::info!(channel = %self.name, tag = %tag, corp_tag = %id, change, "a mirrored WeCom corp tag changed; it is mapped by id, so nothing changes here")
            }
        }
    }

    /// Reads a customer's tags on the platform and gives the user the
    /// mirrored ones they carry there, and takes away those they do not.
    async fn pull_tags(&self, user: String, customer: &str) {
        let synced = self.api().synced_tags();
        if synced.is_empty() {
            return;
        }
        let carried = match self.api().customer_tags(customer).await {
            Ok(ids) => {
                self.count("customer_tags", "ok");
                ids
            }
            Err(e) => {
                self.count("customer_tags", "failed");
                tracing::warn!(channel = %self.name, %user, error = %e, "reading a customer's tags failed; they are read again at the next edit");
                return;
            }
        };
        let (mut add, mut remove) = (Vec::new(), Vec::new());
        for (tag, id) in synced {
            match carried.contains(&id) {
                true => add.push(tag),
                false => remove.push(tag),
            }
        }
        let input = Input::Tags {
            user,
            add,
            remove,
            source: self.name.clone(),
            at: self.clock.now(),
        };
        if let Err(e) = self.ingest(vec![input]).await {
            tracing::error!(channel = %self.name, error = %e, "taking a customer's tags failed");
        }
    }

    /// Hands `inputs` to the writer; answered once they are durable.
    async fn ingest(&self, inputs: Vec<Input>) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let stopped = || "the writer has stopped".to_string();
        self.writer
            .send(Command::Ingest { inputs, reply })
            .map_err(|_| stopped())?;
        answer
            .await
            .map_err(|_| stopped())?
            .map_err(|e| e.to_string())
    }

    /// Puts a send in the open task of its staff member and content, or
    /// opens one.
    fn join(
        &self,
        tasks: &mut BTreeMap<u64, Task>,
        entry: OutboxEntry,
        schedule: &TaskSchedule,
    ) -> Result<(), String> {
        let now = self.clock.now();
        let (staff, fields) = staff_and_content(&entry);
        let staff = staff.unwrap_or_default();
        let open = tasks.values_mut().find(|t| {
            matches!(t.head.state, TaskState::Forming { .. })
                && t.head.staff == staff
                && t.head.template == entry.record.template
                && t.head.fields == fields
                && t.sends.len() < schedule.batch_max
        });
        let task = match open {
            Some(task) => task,
            None => {
                let head = Head {
                    id: entry.seq,
                    channel: self.name.clone(),
                    staff,
                    template: entry.record.template.clone(),
                    fields,
                    opened: now,
                    deadline: None,
                    state: TaskState::Forming {
                        closes: later(now, schedule.batch_window),
                    },
                };
                tasks.entry(entry.seq).or_insert(Task {
                    head,
                    sends: Vec::new(),
                })
            }
        };
        let mut head = task.head.clone();
        if let Some(until) = entry.record.until {
            let deadline = head.deadline.map_or(until, |d| d.min(until));
            head.deadline = Some(deadline);
            // The staff member needs the time: a task waits for more
            // customers at most half of it.
            if let TaskState::Forming { closes } = &mut head.state {
                *closes = (*closes).min(head.opened + (deadline - head.opened) / 2);
            }
        }
        self.store
            .join_staff_task(&entry, &head)
            .map_err(|e| e.to_string())?;
        task.head = head;
        task.sends.push(entry);
        Ok(())
    }

    /// Moves a task on if something is due; true once it is done.
    async fn step(&self, task: &mut Task, schedule: &TaskSchedule) -> bool {
        let now = self.clock.now();
        if task.sends.is_empty() {
            // Every send's person was erased meanwhile.
            return self.settle(task, Vec::new(), now).await;
        }
        match task.head.state.clone() {
            TaskState::Forming { closes } => {
                if closes <= now || task.sends.len() >= schedule.batch_max {
                    return self.create(task, schedule, now, 0, now).await;
                }
                false
            }
            TaskState::Creating {
                since,
                attempts,
                next,
            } if next <= now => self.create(task, schedule, since, attempts, now).await,
            TaskState::Pending {
                next_poll,
                made,
                since,
                task: id,
                reminded,
            } if next_poll <= now => {
                self.poll(task, schedule, (since, id, made, reminded), now)
                    .await
            }
            _ => false,
        }
    }

    /// Makes the task (after looking for it, if an earlier try may have
    /// made it).
    async fn create(
        &self,
        task: &mut Task,
        schedule: &TaskSchedule,
        since: DateTime<Utc>,
        attempts: u32,
        now: DateTime<Utc>,
    ) -> bool {
        let deadline = task
            .head
            .deadline
            .unwrap_or_else(|| later(since, schedule.confirm_within));
        if now >= deadline {
            let why = "the task could not be made before its deadline";
            return self.fail_all(task, why, now).await;
        }
        // Durably "being made" before the call: a crash during it leaves
        // a task that is looked for (at once, after the restart) before it
        // is made again. A failed call puts `next` off.
        task.head.state = TaskState::Creating {
            since,
            attempts: attempts + 1,
            next: now,
        };
        if !self.write_durably(&task.head).await {
            return false;
        }
        let request = task.request();
        let api = self.api();
        let found = if attempts > 0 {
            match api.find(&request).await {
                Ok(found) => {
                    self.count("find", "ok");
                    found
                }
                Err(e) => {
                    self.failed_call("find", &e, task, now, attempts);
                    return false;
                }
            }
        } else {
            None
        };
        let created = match found {
            Some(id) => {
                tracing::info!(channel = %self.name, task = %id, "a task whose answer was lost was found; not made again");
                waymark_channel::Created {
                    task: id,
                    refused: Vec::new(),
                }
            }
            None => match api.create(&request).await {
                Ok(created) => {
                    self.count("create", "ok");
                    created
                }
                Err(DeliveryError::Permanent(why) | DeliveryError::Consent(why)) => {
                    self.count("create", "failed");
                    tracing::warn!(channel = %self.name, error = %why, "the platform refused the task for good");
                    return self.fail_all(task, &why, now).await;
                }
                Err(e) => {
                    self.failed_call("create", &e, task, now, attempts);
                    return false;
                }
            },
        };
        tracing::info!(channel = %self.name, task = %created.task, staff = %task.head.staff, customers = request.recipients.len(), "staff task made; waiting for the staff member to confirm it");
        task.head.deadline = Some(deadline);
        task.head.state = TaskState::Pending {
            since,
            task: created.task,
            made: now,
            next_poll: later(now, schedule.poll_every),
            reminded: Vec::new(),
        };
        let refused: Vec<_> = task
            .sends
            .iter()
            .filter(|e| {
                e.record
                    .to
                    .as_ref()
                    .is_some_and(|to| created.refused.contains(to))
            })
            .map(|e| (e.seq, "not_friend", None))
            .collect();
        if refused.is_empty() {
            self.write_durably(&task.head).await;
            false
        } else {
            self.settle(task, refused, now).await
        }
    }

    /// A call that failed: tried again later, at the platform's quota
    /// reset or after a backoff.
    fn failed_call(
        &self,
        call: &str,
        e: &DeliveryError,
        task: &mut Task,
        now: DateTime<Utc>,
        attempts: u32,
    ) {
        let wait = match e {
            DeliveryError::Quota { wait, .. } => {
                self.count(call, "quota");
                *wait
            }
            _ => {
                self.count(call, "retry");
                backoff(attempts)
            }
        };
        tracing::warn!(channel = %self.name, call, error = %e, retry_in_s = wait.as_secs(), "a staff-task call failed; trying again later");
        if let TaskState::Creating { next, .. } = &mut task.head.state {
            *next = later(now, wait);
        }
        if let TaskState::Pending { next_poll, .. } = &mut task.head.state {
            *next_poll = later(now, wait);
        }
        if let Err(e) = self.store.put_staff_task(&task.head) {
            tracing::error!(channel = %self.name, error = %e, "writing a staff task failed");
        }
    }

    /// Asks for a made task's results; reminds, or cancels at the deadline.
    async fn poll(
        &self,
        task: &mut Task,
        schedule: &TaskSchedule,
        (since, id, made, mut reminded): (DateTime<Utc>, String, DateTime<Utc>, Vec<DateTime<Utc>>),
        now: DateTime<Utc>,
    ) -> bool {
        let api = self.api();
        let deadline = task
            .head
            .deadline
            .unwrap_or_else(|| later(made, schedule.confirm_within));
        let results = match api.results(&id, &task.head.staff).await {
            Ok(r) => {
                self.count("results", "ok");
                r
            }
            // The platform no longer knows the task (or refuses to say):
            // asking again cannot help.
            Err(DeliveryError::Permanent(why) | DeliveryError::Consent(why)) => {
                self.count("results", "failed");
                tracing::warn!(channel = %self.name, task = %id, error = %why, "the platform refused a staff task's results for good");
                return self.fail_all(task, &why, now).await;
            }
            Err(e) => {
                self.failed_call("results", &e, task, now, 1);
                return false;
            }
        };
        let mut outcomes = Vec::new();
        match results {
            Some(statuses) => {
                let by_address: BTreeMap<&str, RecipientStatus> =
                    statuses.iter().map(|(a, s)| (a.as_str(), *s)).collect();
                for e in &task.sends {
                    let status = e
                        .record
                        .to
                        .as_deref()
                        .and_then(|to| by_address.get(to))
                        .copied()
                        .unwrap_or(RecipientStatus::Waiting);
                    let outcome = match status {
                        RecipientStatus::Sent => "sent",
                        RecipientStatus::NotFriend => "not_friend",
                        RecipientStatus::OverQuota => "over_quota",
                        RecipientStatus::Waiting if now >= deadline => "not_confirmed",
                        RecipientStatus::Waiting => continue,
                    };
                    outcomes.push((e.seq, outcome, None));
                }
            }
            None if now >= deadline => {
                match api.cancel(&id).await {
                    Ok(()) => self.count("cancel", "ok"),
                    Err(e) => {
                        // Past its deadline the journey has moved on
                        // either way; a task left standing is the staff
                        // member's to ignore.
                        self.count("cancel", "failed");
                        tracing::warn!(channel = %self.name, task = %id, error = %e, "cancelling a staff task at its deadline failed");
                    }
                }
                outcomes = task
                    .sends
                    .iter()
                    .map(|e| (e.seq, "not_confirmed", None))
                    .collect();
            }
            None => {
                let day_ago = now - chrono::Duration::hours(24);
                reminded.retain(|t| *t > day_ago);
                let last = reminded.last().copied().unwrap_or(made);
                if (reminded.len() as u32) < schedule.reminders_per_day
                    && later(last, schedule.remind_after) <= now
                {
                    match api.remind(&id).await {
                        Ok(()) => {
                            self.count("remind", "ok");
                            tracing::info!(channel = %self.name, task = %id, staff = %task.head.staff, "staff member reminded of their task");
                            reminded.push(now);
                        }
                        Err(e) => {
                            self.count("remind", "failed");
                            tracing::warn!(channel = %self.name, task = %id, error = %e, "reminding a staff member failed");
                        }
                    }
                }
            }
        }
        let next_poll = later(now, schedule.poll_every).min(deadline.max(now));
        task.head.state = TaskState::Pending {
            since,
            task: id,
            made,
            next_poll,
            reminded,
        };
        if outcomes.is_empty() {
            if let Err(e) = self.store.put_staff_task(&task.head) {
                tracing::error!(channel = %self.name, error = %e, "writing a staff task failed");
            }
            return false;
        }
        self.settle(task, outcomes, now).await
    }

    /// Every send of the task fails, with `why`.
    async fn fail_all(&self, task: &mut Task, why: &str, now: DateTime<Utc>) -> bool {
        let outcomes = task
            .sends
            .iter()
            .map(|e| (e.seq, "failed", Some(why.to_string())))
            .collect();
        self.settle(task, outcomes, now).await
    }

    /// Reports outcomes through the writer and, once durable, takes their
    /// sends out of the task; true once the task has none left.
    async fn settle(
        &self,
        task: &mut Task,
        outcomes: Vec<(u64, &str, Option<String>)>,
        now: DateTime<Utc>,
    ) -> bool {
        let mut inputs = Vec::with_capacity(outcomes.len());
        for (seq, outcome, detail) in &outcomes {
            let Some(entry) = task.sends.iter().find(|e| e.seq == *seq) else {
                continue;
            };
            // A person erased meanwhile gets nothing written again.
            if !self
                .store
                .staff_send_held(task.head.id, *seq)
                .unwrap_or(true)
            {
                continue;
            }
            let mut o =
                SendOutcome::new(&entry.record, outcome, Some(task.head.staff.clone()), now);
            o.detail = detail.clone();
            inputs.push(Input::Outcome(o));
        }
        if !inputs.is_empty()
            && let Err(e) = self.ingest(inputs).await
        {
            tracing::error!(channel = %self.name, error = %e, "journaling staff-task outcomes failed; they are reported again");
            return false;
        }
        for (_, outcome, _) in &outcomes {
            super::metrics::staff_outcome(&self.name, outcome);
        }
        let seqs: Vec<u64> = outcomes.iter().map(|(s, _, _)| *s).collect();
        task.sends.retain(|e| !seqs.contains(&e.seq));
        let last = task.sends.is_empty();
        if let Err(e) = self.store.settle_staff_sends(&task.head, &seqs, last) {
            // Reported again after a restart; the writer drops repeats.
            tracing::error!(channel = %self.name, error = %e, "taking settled sends out of a staff task failed");
        }
        last
    }

    /// Writes the head and flushes; false (said in the log) if the store
    /// refused.
    async fn write_durably(&self, head: &Head) -> bool {
        let store = self.store.clone();
        let head = head.clone();
        let written = tokio::task::spawn_blocking(move || {
            store.put_staff_task(&head)?;
            store.flush()
        })
        .await;
        match written {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::error!(channel = %self.name, error = %e, "writing a staff task failed; it waits");
                false
            }
            Err(e) => {
                tracing::error!(channel = %self.name, error = %e, "writing a staff task failed; it waits");
                false
            }
        }
    }

    fn count(&self, call: &str, outcome: &str) {
        super::metrics::staff_task_call(&self.name, call, outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sends_staff_member_is_its_staff_field_and_the_rest_is_its_content() {
        let mut r = waymark_core::journal::Record::new(
            DateTime::from_timestamp(0, 0).unwrap(),
            "u1",
            waymark_core::journal::Kind::Send,
        );
        r.fields = Some(serde_json::json!({"staff": "zhangsan", "text": "hi"}));
        let entry = OutboxEntry {
            seq: 1,
            record: r,
            attempts: 0,
            next_attempt: DateTime::from_timestamp(0, 0).unwrap(),
            last_error: None,
            replayed: false,
        };
        let (staff, content) = staff_and_content(&entry);
        assert_eq!(staff.as_deref(), Some("zhangsan"));
        assert_eq!(
            serde_json::Value::Object(content),
            serde_json::json!({"text": "hi"})
        );
    }

    #[test]
    fn call_retries_back_off_to_a_quarter_hour() {
        assert_eq!(backoff(0), Duration::from_secs(15));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(20), Duration::from_secs(900));
    }
}
