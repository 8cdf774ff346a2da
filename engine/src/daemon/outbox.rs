//! The outbox worker: hands each durable send to its channel with its
//! idempotency key, at most `concurrency` at a time per channel and within
//! its rate limit; retryable failures back off exponentially with jitter
//! up to the channel's attempts and age, then become dead letters with
//! their last error. Delivery is at-least-once toward providers. A send
//! given up on, and a replayed one delivered, is settled through the
//! writer, which journals it (`failed`, `delivered`) with the move. On
//! stop it takes no new delivery at once, gives those already handed to a
//! provider a bounded grace period, and leaves the rest in the outbox for
//! the next start.

use super::writer::WriterError;
use crate::channels::{Channel, DeliveryError, Message};
use crate::config::{Rate, Retry};
use crate::store::{OutboxEntry, Settled, SledKv, Store, StoreError};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tracing::Instrument;
use waymark_core::clock::Clock;

pub struct ChannelRuntime {
    pub channel: Arc<dyn Channel>,
    pub retry: Retry,
    pub rate: Option<Rate>,
    pub permits: Arc<Semaphore>,
    /// Start times of recent deliveries, for the rate limit.
    pub recent: tokio::sync::Mutex<std::collections::VecDeque<std::time::Instant>>,
    /// Its kind spends a grant per send (see `ChannelKind::spends_grants`):
    /// a refusal for want of consent takes the template's grants away.
    pub spends_grants: bool,
    /// Its sends must go within seconds (their address, such as a WeCom
    /// welcome code, expires): each round looks for them at the outbox's
    /// end first, ahead of the sends queued before them.
    pub urgent: bool,
    /// Its sends go to its staff-task runner, not to `deliver` (a kind
    /// whose messages a staff member confirms).
    pub staff: Option<tokio::sync::mpsc::Sender<super::staff_tasks::Ask>>,
}

/// How many of the newest sends each round looks through for urgent ones.
const URGENT_SCAN: usize = 64;

/// The delay before attempt `attempt` (1-based): doubling from the initial
/// backoff up to the maximum, with up to ±20% jitter from `seed`.
pub fn backoff(retry: &Retry, attempt: u32, seed: u64) -> Duration {
    let base = retry.initial_backoff.saturating_mul(
        1u32.checked_shl(attempt.saturating_sub(1).min(20))
            .unwrap_or(u32::MAX),
    );
    let capped = base.min(retry.max_backoff);
    let jitter = (seed % 401) as f64 / 1000.0 - 0.2;
    capped.mul_f64(1.0 + jitter)
}

pub async fn run(
    store: Arc<Store<SledKv>>,
    writer: super::writer::Handle,
    channels: Arc<BTreeMap<String, ChannelRuntime>>,
    clock: Arc<dyn Clock>,
    mut stop: watch::Receiver<bool>,
    grace: Duration,
) {
    let mut in_flight = tokio::task::JoinSet::new();
    let mut busy: std::collections::BTreeSet<u64> = Default::default();
    // Outcomes the store could not record (a full disk): kept here and
    // written again each round, so the send is not attempted again meanwhile.
    let mut unrecorded: BTreeMap<u64, Outcome> = BTreeMap::new();
    // Whether the last flush before delivering failed.
    let mut not_durable = false;
    loop {
        while let Some(done) = in_flight.try_join_next() {
            if let Ok((seq, outcome)) = done {
                busy.remove(&seq);
                if let Some(outcome) = outcome {
                    unrecorded.insert(seq, outcome);
                }
            }
        }
        if !unrecorded.is_empty() {
            let outbox = Outbox {
                store: &store,
                writer: &writer,
                clock: clock.as_ref(),
            };
            let mut still = BTreeMap::new();
            for (seq, outcome) in std::mem::take(&mut unrecorded) {
                if outcome.record_later(&outbox).await.is_err() {
                    still.insert(seq, outcome);
                }
            }
            unrecorded = still;
        }
        if *stop.borrow() {
            break;
        }
        let now = clock.now();
        let skip = |seq| busy.contains(&seq) || unrecorded.contains_key(&seq);
        // Urgent sends first, from the outbox's end: they are the newest.
        let mut ready: Vec<OutboxEntry> = if channels.values().any(|c| c.urgent) {
            match store.outbox_newest(URGENT_SCAN, &skip) {
                Ok(newest) => newest
                    .into_iter()
                    .filter(|e| {
                        e.record
                            .channel
                            .as_deref()
                            .and_then(|c| channels.get(c))
                            .is_some_and(|c| c.urgent)
                    })
                    .collect(),
                Err(e) => {
                    tracing::error!(error = %e, "reading the outbox failed");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let first: std::collections::BTreeSet<u64> = ready.iter().map(|e| e.seq).collect();
        let skip = |seq| skip(seq) || first.contains(&seq);
        match store.outbox_ready(now, 1000, &skip) {
            Ok(e) => ready.extend(e),
            Err(e) => tracing::error!(error = %e, "reading the outbox failed"),
        }
        // A send is read once its batch is applied, which may be before
        // that batch's flush: it goes out only once it is durable, or a
        // crash in between would lose the batch but not the message (and
        // the batch, sent again, would send it again).
        let ready = if ready.is_empty() {
            ready
        } else {
            let flushing = store.clone();
            let flushed = match tokio::task::spawn_blocking(move || flushing.flush()).await {
                Ok(flushed) => flushed.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match flushed {
                Ok(()) => {
                    if std::mem::take(&mut not_durable) {
                        tracing::info!("the outbox is durable again; its sends go on");
                    }
                    ready
                }
                // Said once, not every round, while the store fails (a
                // full disk): readiness reports the store meanwhile.
                Err(error) => {
                    if !std::mem::replace(&mut not_durable, true) {
                        tracing::error!(%error, "making the outbox durable failed; its sends wait");
                    }
                    Vec::new()
                }
            }
        };
        for entry in ready {
            let channel_name = entry.record.channel.clone().unwrap_or_default();
            busy.insert(entry.seq);
            let (store, channels, clock) = (store.clone(), channels.clone(), clock.clone());
            let writer = writer.clone();
            let stop = stop.clone();
            in_flight.spawn(async move {
                let seq = entry.seq;
                let outbox = Outbox {
                    store: &store,
                    writer: &writer,
                    clock: clock.as_ref(),
                };
                let unrecorded = match channels.get(&channel_name) {
                    // Its sends go through staff tasks; anything else it
                    // delivers (a tag mirrored to WeCom) is delivered.
                    Some(ChannelRuntime {
                        staff: Some(runner),
                        ..
                    }) if entry.record.kind == waymark_core::journal::Kind::Send => {
                        hand_to_staff(runner, entry).await;
                        None
                    }
                    Some(channel) => deliver(&outbox, &channel_name, channel, entry, stop).await,
                    None => {
                        let mut dead = entry.clone();
                        dead.last_error =
                            Some(format!("no channel `{channel_name}` is configured"));
                        super::metrics::delivery(&channel_name, "dead", Duration::ZERO);
                        Outcome::Dead {
                            was: entry,
                            entry: dead,
                        }
                        .record_now(&outbox)
                        .await
                    }
                };
                (seq, unrecorded)
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            _ = stop.changed() => {}
        }
    }
    // Sends still waiting for a permit or the rate limit give up at once
    // (see `deliver`); those handed to a provider get the grace period.
    let deadline = tokio::time::Instant::now() + grace;
    let mut cut_off = 0;
    loop {
        tokio::select! {
            next = in_flight.join_next() => if next.is_none() { break },
            _ = tokio::time::sleep_until(deadline) => {
                cut_off = in_flight.len();
                in_flight.abort_all();
                while in_flight.join_next().await.is_some() {}
                break;
            }
        }
    }
    match store.outbox_depths() {
        Ok((0, _)) => tracing::info!("outbox worker stopped; no sends left"),
        Ok((left, _)) => tracing::warn!(
            left,
            cut_off,
            grace_ms = grace.as_millis() as u64,
            "outbox worker stopped; {left} sends left in the outbox for the next start ({cut_off} unanswered after the grace period)"
        ),
        Err(e) => {
            tracing::error!(error = %e, "outbox worker stopped; reading what was left failed")
        }
    }
}

/// What a delivery reports its outcome to.
struct Outbox<'a> {
    store: &'a Store<SledKv>,
    writer: &'a super::writer::Handle,
    clock: &'a dyn Clock,
}

/// Why a delivery's outcome was not recorded: the store refused the move,
/// or the writer the settlement.
#[derive(Debug, thiserror::Error)]
enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Writer(#[from] WriterError),
}

/// Settles a send through the writer and waits until that is durable, so
/// the entry is not read as ready again before it has moved.
async fn settle(writer: &super::writer::Handle, settled: Settled) -> Result<(), WriterError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    writer
        .send(super::writer::Command::Settle { settled, reply })
        .map_err(|_| WriterError::Stopped)?;
    answer.await.map_err(|_| WriterError::Stopped)?
}

/// What became of an attempt, to write to the store.
enum Outcome {
    Delivered {
        was: OutboxEntry,
        entry: OutboxEntry,
    },
    Retry {
        was: OutboxEntry,
        entry: OutboxEntry,
    },
    Dead {
        was: OutboxEntry,
        entry: OutboxEntry,
    },
}

impl Outcome {
    /// Writes it: a send given up on, or a replayed one delivered, is
    /// settled through the writer (which journals it); the others move in
    /// the outbox directly.
    async fn record(&self, outbox: &Outbox<'_>) -> Result<(), RecordError> {
        match self {
            Outcome::Delivered { was, entry } if was.replayed => {
                let settled = Settled::Delivered {
                    was: was.clone(),
                    entry: entry.clone(),
                };
                Ok(settle(outbox.writer, settled).await?)
            }
            Outcome::Delivered { was, .. } => Ok(outbox.store.outbox_delivered(was)?),
            Outcome::Retry { was, entry } => Ok(outbox.store.outbox_retry(was, entry)?),
            Outcome::Dead { was, entry } => {
                let settled = Settled::DeadLettered {
                    was: was.clone(),
                    entry: entry.clone(),
                };
                Ok(settle(outbox.writer, settled).await?)
            }
        }
    }

    /// Records it; if that fails, says so and hands it back to be kept in
    /// memory and recorded later.
    async fn record_now(self, outbox: &Outbox<'_>) -> Option<Outcome> {
        match self.record(outbox).await {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "recording a delivery's outcome failed; it is kept in memory and recorded once the store takes writes (a restart before then may deliver it again)");
                Some(self)
            }
        }
    }

    /// Records it once the store takes writes again, unless the entry is
    /// no longer there as it was read: a store reopened from disk after a
    /// failure may have lost it, and given its number to another send.
    async fn record_later(&self, outbox: &Outbox<'_>) -> Result<(), RecordError> {
        let (Outcome::Delivered { was, .. }
        | Outcome::Retry { was, .. }
        | Outcome::Dead { was, .. }) = self;
        if !outbox.store.outbox_holds(was)? {
            return Ok(());
        }
        self.record(outbox).await
    }
}

/// Hands a send to its channel's staff-task runner, which moves it from
/// the outbox into a task; if it cannot, the send stays in the outbox and
/// is handed over again next round.
async fn hand_to_staff(
    runner: &tokio::sync::mpsc::Sender<super::staff_tasks::Ask>,
    entry: OutboxEntry,
) {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let seq = entry.seq;
    let join = super::staff_tasks::Join { entry, reply };
    if runner
        .send(super::staff_tasks::Ask::Join(join))
        .await
        .is_err()
    {
        return;
    }
    if let Ok(Err(error)) = answer.await {
        tracing::error!(seq, %error, "putting a send in its staff task failed; it stays in the outbox");
    }
}

/// Delivers one send; the outcome if the store could not record it.
async fn deliver(
    outbox: &Outbox<'_>,
    name: &str,
    channel: &ChannelRuntime,
    was: OutboxEntry,
    mut stop: watch::Receiver<bool>,
) -> Option<Outcome> {
    let entry = was.clone();
    // A send not yet handed to its provider when the worker stops stays in
    // the outbox: stopping does not wait for a queue of them.
    let stopping = stop.clone();
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::pin!(stopped);
    let permit = tokio::select! {
        permit = channel.permits.acquire() => permit,
        _ = &mut stopped => return None,
    };
    let Ok(_permit) = permit else {
        return None;
    };
    if let Some(rate) = channel.rate {
        loop {
            let mut recent = channel.recent.lock().await;
            let now = std::time::Instant::now();
            while recent
                .front()
                .is_some_and(|t| now.duration_since(*t) >= rate.per)
            {
                recent.pop_front();
            }
            if (recent.len() as u32) < rate.count {
                recent.push_back(now);
                break;
            }
            let wait = rate
                .per
                .saturating_sub(now.duration_since(*recent.front().expect("non-empty")));
            drop(recent);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = &mut stopped => return None,
            }
        }
    }
    if *stopping.borrow() {
        return None;
    }
    let key = entry
        .record
        .idempotency_key
        .clone()
        .unwrap_or_else(|| format!("outbox/{}", entry.seq));
    // The span is attached to the future, not entered across its awaits:
    // an entered guard stays on this thread's span stack while the task is
    // parked, so concurrent deliveries would log each other's fields.
    let span = tracing::info_span!("delivery", channel = name, user = %entry.record.user, key = %key, attempt = entry.attempts + 1);
    attempt(outbox, name, channel, was, entry, &key)
        .instrument(span)
        .await
}

/// The message a `send` record asks its channel to deliver, under `key`.
fn message(record: &waymark_core::journal::Record, key: &str) -> Message {
    Message {
        at: record.at,
        user: record.user.to_string(),
        journey: record.journey.as_deref().map(str::to_string),
        version: record.version.as_deref().map(str::to_string),
        step: record.step.as_deref().map(str::to_string),
        channel: record.channel.clone().unwrap_or_default(),
        // The core resolves every send's address (or suppresses it with
        // `no_address`); a kind refuses a blank one for good.
        to: record.to.clone().unwrap_or_default(),
        template: record.template.clone(),
        fields: match &record.fields {
            Some(serde_json::Value::Object(fields)) => fields.clone(),
            _ => serde_json::Map::new(),
        },
        idempotency_key: key.to_string(),
    }
}

/// One attempt at a send and what follows from its outcome; the outcome
/// if the store could not record it.
async fn attempt(
    outbox: &Outbox<'_>,
    name: &str,
    channel: &ChannelRuntime,
    was: OutboxEntry,
    mut entry: OutboxEntry,
    key: &str,
) -> Option<Outcome> {
    let started = std::time::Instant::now();
    let message = message(&entry.record, key);
    let result =
        tokio::time::timeout(Duration::from_secs(30), channel.channel.deliver(&message)).await;
    let result =
        result.unwrap_or_else(|_| Err(DeliveryError::Retryable("timed out after 30s".into())));
    entry.attempts += 1;
    let now: DateTime<Utc> = outbox.clock.now();
    // A refusal for want of consent: what to take back once the send is
    // recorded as given up on.
    let mut refused = None;
    let outcome = match result {
        Ok(_) => {
            super::metrics::delivery(name, "delivered", started.elapsed());
            Outcome::Delivered { was, entry }
        }
        Err(error) => {
            let age = (now - entry.record.at).to_std().unwrap_or_default();
            entry.last_error = Some(error.to_string());
            // A provider's quota is no attempt of the message's own.
            let quota = match &error {
                DeliveryError::Quota { wait, .. } => {
                    entry.attempts -= 1;
                    Some(*wait)
                }
                _ => None,
            };
            let hopeless = !error.is_retryable()
                || (quota.is_none() && entry.attempts >= channel.retry.max_attempts)
                || age >= channel.retry.max_age;
            if hopeless {
                tracing::warn!(error = %error, "delivery failed for good; dead-lettered");
                super::metrics::delivery(name, "dead", started.elapsed());
                if let DeliveryError::Consent(why) = &error {
                    refused = Some(take_back(channel, &entry, why, now));
                }
                Outcome::Dead { was, entry }
            } else {
                let delay = quota.unwrap_or_else(|| {
                    backoff(
                        &channel.retry,
                        entry.attempts,
                        entry.seq.wrapping_mul(2_654_435_761) ^ u64::from(entry.attempts),
                    )
                });
                entry.next_attempt = now + chrono::Duration::from_std(delay).unwrap_or_default();
                tracing::info!(error = %error, retry_in_ms = delay.as_millis() as u64, "delivery failed; will retry");
                let outcome = if quota.is_some() { "quota" } else { "retry" };
                super::metrics::delivery(name, outcome, started.elapsed());
                Outcome::Retry { was, entry }
            }
        }
    };
    let unrecorded = outcome.record_now(outbox).await;
    if let Some(input) = refused {
        let (reply, _) = tokio::sync::oneshot::channel();
        let queued = outbox.writer.send(super::writer::Command::Ingest {
            inputs: vec![input],
            reply,
        });
        if queued.is_err() {
            tracing::warn!(
                "the writer has stopped: the consent a provider refused is not taken back now"
            );
        }
    }
    unrecorded
}

/// A provider refused a send for want of consent: what Waymark counted
/// on is taken back through the writer, as an input of the user's — the
/// template's grants on a channel that spends them, else the user's
/// consent on the channel — with a `consent` record naming the error.
/// Queued after the dead letter is recorded, not waited for: were it lost
/// in a crash, the next send would be refused and take it back.
fn take_back(
    channel: &ChannelRuntime,
    entry: &OutboxEntry,
    why: &str,
    now: DateTime<Utc>,
) -> waymark_core::model::Input {
    use waymark_core::consent::ConsentChange;
    let record = &entry.record;
    let change = match (&record.template, channel.spends_grants) {
        (Some(template), true) => ConsentChange::grants(template, false, "provider"),
        _ => ConsentChange::new(false, "provider"),
    };
    waymark_core::model::Input::Consent {
        user: record.user.to_string(),
        channel: record.channel.clone(),
        change: ConsentChange {
            evidence: Some(why.chars().take(512).collect()),
            message_id: record.idempotency_key.clone(),
            ..change
        },
        at: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channels::{Delivery, Receipt};
    use std::sync::Mutex;
    use waymark_core::journal::{Kind, Record};

    /// A provider that holds every delivery until two are in flight, then
    /// fails each naming the user it was for; `bob`'s answer comes later, so
    /// the first delivery finishes while the second is still in flight.
    struct DownTogether(tokio::sync::Barrier);

    impl Channel for DownTogether {
        fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
            Box::pin(async move {
                self.0.wait().await;
                if message.user == "bob" {
                    for _ in 0..3 {
                        tokio::task::yield_now().await;
                    }
                }
                Err::<Receipt, _>(DeliveryError::Retryable(format!(
                    "down for {}",
                    message.user
                )))
            })
        }
    }

    /// A channel of `channel` allowing `max_attempts` within `max_age`,
    /// four deliveries at a time, backing off from 1 s.
    fn runtime_of(
        channel: Arc<dyn Channel>,
        max_attempts: u32,
        max_age: Duration,
    ) -> ChannelRuntime {
        ChannelRuntime {
            channel,
            retry: Retry {
                max_attempts,
                initial_backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(60),
                max_age,
            },
            rate: None,
            spends_grants: false,
            urgent: false,
            staff: None,
            permits: Arc::new(Semaphore::new(4)),
            recent: Default::default(),
        }
    }

    /// A provider whose quota is used up.
    struct OverQuota;

    impl Channel for OverQuota {
        fn deliver<'a>(&'a self, _: &'a Message) -> Delivery<'a> {
            Box::pin(async move {
                Err::<Receipt, _>(DeliveryError::Quota {
                    message: "errcode 45009 reach max api daily quota limit".into(),
                    wait: Duration::from_secs(3600),
                })
            })
        }
    }

    #[test]
    fn a_used_up_quota_defers_the_send_without_counting_an_attempt() {
        let store = Store::new(SledKv::temporary().unwrap());
        let channel = runtime_of(Arc::new(OverQuota), 1, Duration::from_secs(86_400));
        let start: chrono::DateTime<Utc> = "2025-11-10T12:00:00Z".parse().unwrap();
        let clock = waymark_core::clock::ManualClock::new(start);
        let mut record = Record::new(start, "u1", Kind::Send);
        record.channel = Some("mp".into());
        store
            .commit(crate::store::Batch {
                journal: vec![record],
                sends: vec![0],
                ..Default::default()
            })
            .unwrap();
        let none = |_| false;
        let entry = store.outbox_ready(start, 10, &none).unwrap().remove(0);
        let (writer, commands) = std::sync::mpsc::channel();
        let outbox = Outbox {
            store: &store,
            writer: &writer,
            clock: &clock,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (_stop, stopped) = watch::channel(false);
        runtime.block_on(deliver(&outbox, "mp", &channel, entry, stopped));
        // With one attempt allowed, a failure would be a dead letter now.
        assert!(commands.try_recv().is_err(), "nothing settled: not dead");
        let early = store
            .outbox_ready(start + chrono::Duration::minutes(59), 10, &none)
            .unwrap();
        assert!(early.is_empty(), "waits for the quota's window: {early:?}");
        let later = store
            .outbox_ready(start + chrono::Duration::minutes(61), 10, &none)
            .unwrap();
        assert_eq!(later.len(), 1);
        assert_eq!(
            later[0].attempts, 0,
            "the quota is not the message's attempt"
        );
        assert!(later[0].last_error.as_deref().unwrap().contains("45009"));
    }

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn concurrent_failing_deliveries_log_their_own_user_and_key() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let store = Store::new(SledKv::temporary().unwrap());
        let channel = runtime_of(
            Arc::new(DownTogether(tokio::sync::Barrier::new(2))),
            5,
            Duration::from_secs(3600),
        );
        let start: chrono::DateTime<Utc> = "2025-11-10T12:00:00Z".parse().unwrap();
        let clock = waymark_core::clock::ManualClock::new(start);
        let entry = |seq: u64, user: &str| {
            let mut record = Record::new(start, user, Kind::Send);
            record.channel = Some("sms".into());
            record.idempotency_key = Some(format!("key-of-{user}"));
            OutboxEntry {
                seq,
                record,
                attempts: 0,
                next_attempt: start,
                last_error: None,
                replayed: false,
            }
        };
        // Nothing is settled through the writer here: both are retried.
        let (writer, _commands) = std::sync::mpsc::channel();
        let outbox = Outbox {
            store: &store,
            writer: &writer,
            clock: &clock,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (_stop, stopped) = watch::channel(false);
            tokio::join!(
                deliver(&outbox, "sms", &channel, entry(1, "alice"), stopped.clone()),
                deliver(&outbox, "sms", &channel, entry(2, "bob"), stopped),
            );
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let mut checked = 0;
        for line in text.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let Some(error) = line["fields"]["error"].as_str() else {
                continue;
            };
            let (_, user) = error.split_once("down for ").expect("the provider's error");
            assert_eq!(line["span"]["user"], user, "{line}");
            assert_eq!(line["span"]["key"], format!("key-of-{user}"), "{line}");
            assert_eq!(line["span"]["channel"], "sms", "{line}");
            checked += 1;
        }
        assert_eq!(checked, 2, "one retry line per delivery: {text}");
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let retry = Retry {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        };
        for seed in [0, 7, 400, 12345] {
            let first = backoff(&retry, 1, seed);
            assert!(
                first >= Duration::from_millis(800) && first <= Duration::from_millis(1200),
                "{first:?}"
            );
            let fourth = backoff(&retry, 4, seed);
            assert!(
                fourth >= Duration::from_millis(6400) && fourth <= Duration::from_millis(9600),
                "{fourth:?}"
            );
            assert!(backoff(&retry, 30, seed) <= Duration::from_secs(72));
        }
    }
}
