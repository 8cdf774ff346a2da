//! What the engine keeps and takes in: events as ingested, and each
//! user's state — profile, tags, points, coupons, task progress, history
//! aggregates, caps' send log and the instances of journeys they are in.
//! A user's next wake-up time is derived from this state, so the timer
//! index can always be recomputed from it and never drifts.

use crate::history::History;
use crate::kept::Kept;
use crate::names::Traits;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use waymark_dsl::plan::StepId;
use waymark_dsl::value::{Fields, Value};

/// An event for one user (Segment's `track`, normalised).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub user: String,
    pub name: String,
    /// A record of properties.
    pub properties: Value,
    pub at: DateTime<Utc>,
    /// Used to drop duplicates.
    pub message_id: Option<String>,
}

impl Event {
    /// The event as expressions see it: its properties plus `name` and `at`.
    pub fn as_value(&self) -> Value {
        event_value(&self.name, &self.properties, self.at)
    }
}

/// The events Segment's `page` and `screen` calls become. Their `name`
/// property is the page's or screen's name (`"Pricing"`), and `event.name`
/// reads it: which event it is, the trigger already says.
pub const VIEW_EVENTS: [&str; 2] = ["page", "screen"];

/// An event as expressions see it (`event`, `last(E)`, a `wait for`
/// binding): its properties plus `name` (the event's name, or for a
/// [`VIEW_EVENTS`] event its page's name when sent) and `at`.
pub fn event_value(name: &str, properties: &Value, at: DateTime<Utc>) -> Value {
    let mut map = match properties {
        Value::Record(m) => m.clone(),
        _ => Fields::new(),
    };
    let named_view =
        VIEW_EVENTS.contains(&name) && matches!(map.get("name"), Some(Value::String(_)));
    if !named_view {
        map.insert("name".into(), Value::String(name.to_string()));
    }
    map.insert("at".into(), Value::Timestamp(at));
    Value::Record(map)
}

/// What the core takes for one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Input {
    /// A tracked event.
    Track(Event),
    /// Profile traits (Segment's `identify`), merged into the profile.
    Identify {
        user: String,
        traits: Value,
        at: DateTime<Utc>,
        message_id: Option<String>,
    },
    /// Run everything of this user that is due at or before `now`.
    Wake { user: String },
    /// A schedule trigger of `journey` fired; enter the user if its audience holds.
    /// `trigger` is the index of the schedule trigger among the journey's triggers.
    Scheduled {
        user: String,
        journey: String,
        trigger: usize,
    },
    /// Remove the user's instances of a journey (a deploy that cancels it).
    Cancel { user: String, journey: String },
    /// `from` is another id of the person `user` is: its profile, if it
    /// has one, is merged into `user`'s and its events come to `user`
    /// from then on. `how`: `identify` (an event or identify carrying
    /// both an `anonymousId` and a `userId`), `alias`, or
    /// `identifier:NAME` (a declared identifier both profiles held). The
    /// shells carry it out with [`crate::machine::merge_into`], which
    /// needs both profiles; [`crate::machine::handle`] leaves it.
    Merge {
        user: String,
        from: String,
        how: String,
        message_id: Option<String>,
    },
    /// Consent on `channel` granted or revoked by an API call or a
    /// provider's refusal (the change says by whom and with what
    /// evidence), at `at`; or, when the change names a template, grants
    /// of it added or taken away (`channel`, if known, is recorded).
    Consent {
        user: String,
        channel: Option<String>,
        change: crate::consent::ConsentChange,
        at: DateTime<Utc>,
    },
    /// What came of a send a staff member had to confirm (a WeCom
    /// customer mass send), as its channel learned it: journaled as an
    /// `outcome` record, and a `wait for confirmation` on that send goes
    /// on.
    Outcome(SendOutcome),
    /// Tags a platform says the user carries or no longer carries (WeCom
    /// corp tags a staff member edited on a customer), by `source`: each
    /// that changes is a `tag` or `untag` record with that reason. Not
    /// mirrored back.
    Tags {
        user: String,
        add: Vec<String>,
        remove: Vec<String>,
        source: String,
        at: DateTime<Utc>,
    },
}

/// What came of one staff-confirmed send for its recipient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendOutcome {
    pub user: String,
    /// When the channel learned it.
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub at: DateTime<Utc>,
    /// The send's own record (journey, version, instance, step, channel,
    /// idempotency key), without its fields.
    pub send: Box<crate::journal::Record>,
    /// `sent`, `not_friend`, `over_quota`, `not_confirmed` or `failed`.
    pub outcome: String,
    /// The staff member whose task it was.
    pub staff: Option<String>,
    /// What the platform said, for `failed`.
    pub detail: Option<String>,
    /// `outcome:{idempotency key}`: an outcome reported twice (a restart
    /// between reporting and noting it) is dropped as a redelivery.
    pub message_id: String,
}

impl SendOutcome {
    /// The outcome `outcome` of the send `send` (its record as written).
    pub fn new(
        send: &crate::journal::Record,
        outcome: &str,
        staff: Option<String>,
        at: DateTime<Utc>,
    ) -> SendOutcome {
        let mut send = send.clone();
        send.fields = None;
        let key = send.idempotency_key.clone().unwrap_or_default();
        SendOutcome {
            user: send.user.to_string(),
            at,
            send: Box::new(send),
            outcome: outcome.to_string(),
            staff,
            detail: None,
            message_id: format!("outcome:{key}"),
        }
    }

    /// Whether the message reached the customer.
    pub fn sent(&self) -> bool {
        self.outcome == "sent"
    }
}

impl Input {
    pub fn user(&self) -> &str {
        match self {
            Input::Track(e) => &e.user,
            Input::Identify { user, .. }
            | Input::Wake { user }
            | Input::Scheduled { user, .. }
            | Input::Cancel { user, .. }
            | Input::Merge { user, .. }
            | Input::Consent { user, .. }
            | Input::Tags { user, .. } => user,
            Input::Outcome(o) => &o.user,
        }
    }

    /// The same input for another id of its user (the profile it was
    /// merged into).
    pub fn for_user(&self, to: &str) -> Input {
        let mut input = self.clone();
        match &mut input {
            Input::Track(e) => e.user = to.to_string(),
            Input::Identify { user, .. }
            | Input::Wake { user }
            | Input::Scheduled { user, .. }
            | Input::Cancel { user, .. }
            | Input::Merge { user, .. }
            | Input::Consent { user, .. }
            | Input::Tags { user, .. } => *user = to.to_string(),
            Input::Outcome(o) => o.user = to.to_string(),
        }
        input
    }

    /// The message id an event or identify came with, which duplicates
    /// are told by.
    pub fn message_id(&self) -> Option<&str> {
        match self {
            Input::Track(e) => e.message_id.as_deref(),
            Input::Identify { message_id, .. } | Input::Merge { message_id, .. } => {
                message_id.as_deref()
            }
            Input::Outcome(o) => Some(&o.message_id),
            _ => None,
        }
    }
}

/// Everything the engine knows about one user.
///
/// Laid out as declared (`repr(C)`), what every input reads first: a
/// user's state is read at a random place in memory for each input, and
/// each of its cache lines touched is a miss to main memory. Declared
/// in the order Rust picked, the fields an event reads were spread over
/// all five lines of the state; here they are the first three.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[repr(C)]
pub struct UserState {
    pub id: compact_str::CompactString,
    /// Traits from identify calls and `set` steps.
    pub traits: Kept<Traits>,
    pub history: History,
    /// Active journey instances, at most one per journey.
    pub instances: Vec<Instance>,
    /// Per journey: how often and when the user entered. Boxed: a map node
    /// holds eleven entries, and most users are in a few journeys.
    pub journeys: Kept<BTreeMap<String, Box<JourneyMemo>>>,
    pub next_instance: u64,
    #[serde(with = "waymark_dsl::stored::stamp_opt", default)]
    pub created_at: Option<DateTime<Utc>>,
    /// When segment membership is next re-evaluated without an event.
    #[serde(with = "waymark_dsl::stored::stamp_opt", default)]
    pub segments_due: Option<DateTime<Utc>>,
    pub points: Points,
    pub tags: BTreeSet<String>,
    pub coupons: Vec<Coupon>,
    /// Per task, its progress. Kept: a streak is counted once a day, and
    /// a check-in the same day leaves the stored bytes as they were.
    pub tasks: Kept<BTreeMap<String, TaskState>>,
    /// Recent non-transactional sends, for caps.
    pub sends: Vec<SentMessage>,
    /// Segments the user matched when last evaluated (for segment triggers).
    pub segments: BTreeSet<String>,
    /// The other ids of this person, merged into this profile (an
    /// anonymous id, an `alias`'s previous id, a profile that shared a
    /// declared identifier): their events come here, and their journals
    /// are read with this one's.
    #[serde(default)]
    pub merged_ids: Vec<String>,
    /// Grants of one-time subscribe messages held, per template id: each
    /// accept of a template adds one, each send on it takes one.
    #[serde(default)]
    pub grants: BTreeMap<String, u32>,
    /// Per platform quota group (WeCom's mass messages a customer may
    /// receive, per corporation), the messages counted in its current
    /// period.
    #[serde(default)]
    pub quotas: BTreeMap<String, QuotaCount>,
    /// The user's newest journal records, which the store keeps in the
    /// user's own stored value until there are enough of them to write
    /// under a journal key of their own. Not part of the state: not
    /// serialized with it, and equal in every state.
    #[serde(skip)]
    pub journal_tail: JournalTail,
    /// The key the store seals the user's values under, as it last read
    /// or wrote them. Not part of the state either.
    #[serde(skip)]
    pub sealed_under: SealedUnder,
}

/// How much of one stored part [`UserState::prefetch_stored`] fetches.
const PREFETCHED: usize = 4096;

/// The key a user's stored values are sealed under (see the engine's
/// `store::sealed`), kept with their state once the store read or wrote
/// it, so that writing the user again looks up neither their key's
/// slot nor the key. Never printed, and equal in every state.
#[derive(Clone, Copy, Default)]
pub struct SealedUnder(pub Option<StoreKey>);

/// A user's key as the store gave it.
#[derive(Clone, Copy)]
pub struct StoreKey {
    /// Which store, and its count of key changes, when it was taken: a
    /// key taken before an erasure or a failed batch, or from another
    /// store, is not used.
    pub epoch: u64,
    /// A hash of the user's id: a state copied under another id does not
    /// take its key along.
    pub owner: u64,
    pub slot: u64,
    pub key: [u8; 32],
}

impl PartialEq for SealedUnder {
    /// Which key a state is sealed under says nothing of the user.
    fn eq(&self, _: &SealedUnder) -> bool {
        true
    }
}

impl std::fmt::Debug for SealedUnder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealedUnder(..)")
    }
}

/// Journal records kept with a user's state by the store (see the
/// engine's `store::journal`): a MessagePack array of `[seq, records]`
/// groups, one batch's records each, oldest first, as a journal key's
/// value is written; empty when there are none.
#[derive(Debug, Clone, Default)]
pub struct JournalTail {
    pub bytes: Box<[u8]>,
    /// The groups in `bytes`.
    pub groups: usize,
    /// The number of the last group (0 when there are none).
    pub last: u64,
}

impl PartialEq for JournalTail {
    /// Where a user's newest records are kept says nothing of the user.
    fn eq(&self, _: &JournalTail) -> bool {
        true
    }
}

/// Messages counted against a platform's per-customer quota in one period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaCount {
    /// The start of the period counted.
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub since: DateTime<Utc>,
    pub used: u32,
}

impl UserState {
    pub fn new(id: &str) -> UserState {
        UserState {
            id: id.into(),
            ..UserState::default()
        }
    }

    /// Starts fetching the state's own fields, which span several cache
    /// lines (a user taken from memory for a batch is moved, every line).
    pub fn prefetch_fields(&self) {
        use crate::hint::prefetch;
        prefetch(&self.id);
        prefetch(&self.traits);
        prefetch(&self.history);
        prefetch(&self.instances);
        prefetch(&self.journeys);
        prefetch(&self.next_instance);
        prefetch(&self.created_at);
        prefetch(&self.segments_due);
        prefetch(&self.points);
        prefetch(&self.tags);
        prefetch(&self.coupons);
        prefetch(&self.tasks);
        prefetch(&self.sends);
        prefetch(&self.segments);
        prefetch(&self.merged_ids);
        prefetch(&self.grants);
        prefetch(&self.quotas);
        prefetch(&self.journal_tail);
        prefetch(&self.sealed_under);
    }

    /// Starts fetching what an event reads first of a state whose fields
    /// are fetched: its traits and its list of event names.
    pub fn prefetch_lists(&self) {
        crate::hint::prefetch_entries(&self.traits);
        self.history.prefetch_entries();
    }

    /// Starts fetching the stored bytes that writing the state copies as
    /// they are (its fields must be fetched already).
    pub fn prefetch_stored(&self) {
        use crate::hint::prefetch_bytes;
        self.history.prefetch_stored();
        for kept in [
            self.traits.bytes(),
            self.journeys.bytes(),
            self.tasks.bytes(),
        ]
        .into_iter()
        .flatten()
        {
            prefetch_bytes(kept, PREFETCHED);
        }
        prefetch_bytes(&self.journal_tail.bytes, PREFETCHED);
    }

    /// Writes the state as `rmp_serde` writes it with structs as arrays
    /// (positionally), which is how the store keeps it, with the parts of
    /// its history that did not change since they were last written taken
    /// from the bytes kept then ([`History::encode_positional`]). Written
    /// whole, a state was encoded on every event, and encoding was the
    /// largest part of the daemon's own work. A test holds this to the
    /// bytes `rmp_serde` writes; a field added to the state stops this
    /// from compiling until it is written here too.
    pub fn encode_positional(&self, out: &mut Vec<u8>) -> Result<(), rmp_serde::encode::Error> {
        use rmp_serde::encode::write as put;
        use waymark_dsl::stored::Stamp;
        let UserState {
            id,
            traits,
            history,
            instances,
            journeys,
            next_instance,
            created_at,
            segments_due,
            points,
            tags,
            coupons,
            tasks,
            sends,
            segments,
            merged_ids,
            grants,
            quotas,
            journal_tail: _,
            sealed_under: _,
        } = self;
        rmp::encode::write_array_len(out, 17)?;
        put(out, id)?;
        traits.write_to(out, put)?;
        history.encode_positional(out)?;
        put(out, instances)?;
        journeys.write_to(out, put)?;
        put(out, next_instance)?;
        put(out, &created_at.map(Stamp))?;
        put(out, &segments_due.map(Stamp))?;
        put(out, points)?;
        put(out, tags)?;
        put(out, coupons)?;
        tasks.write_to(out, put)?;
        put(out, sends)?;
        put(out, segments)?;
        put(out, merged_ids)?;
        put(out, grants)?;
        put(out, quotas)?;
        Ok(())
    }

    /// The earliest moment something of this user is due, if any.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let instances = self.instances.iter().filter_map(|i| match i.wait {
            Wait::Until(t) | Wait::ForEvent { until: t } => Some(t),
            Wait::Ready | Wait::Held => None,
        });
        let points = self.points.lots.iter().filter_map(|l| l.expires_at);
        instances.chain(points).chain(self.segments_due).min()
    }

    pub fn instance(&self, journey: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.journey == journey)
    }
}

/// A user's points: a balance made of lots, each possibly expiring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Points {
    pub lots: Vec<PointLot>,
}

impl Points {
    pub fn balance(&self) -> Decimal {
        self.lots.iter().map(|l| l.amount).sum()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointLot {
    #[serde(with = "waymark_dsl::stored::num")]
    pub amount: Decimal,
    #[serde(with = "waymark_dsl::stored::stamp_opt", default)]
    pub expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coupon {
    pub id: String,
    pub code: String,
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub issued_at: DateTime<Utc>,
    #[serde(with = "waymark_dsl::stored::stamp_opt", default)]
    pub expires_at: Option<DateTime<Utc>>,
    pub fields: Value,
}

impl Coupon {
    pub fn as_value(&self) -> Value {
        let mut map = match &self.fields {
            Value::Record(m) => m.clone(),
            _ => Fields::new(),
        };
        map.insert("id".into(), Value::String(self.id.clone()));
        map.insert("code".into(), Value::String(self.code.clone()));
        map.insert("issued_at".into(), Value::Timestamp(self.issued_at));
        map.insert(
            "expires_at".into(),
            self.expires_at.map(Value::Timestamp).unwrap_or(Value::Null),
        );
        Value::Record(map)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct JourneyMemo {
    pub entries: u64,
    #[serde(with = "waymark_dsl::stored::stamp_opt")]
    pub last_entered: Option<DateTime<Utc>>,
    /// A goal still open after the instance finished its steps: a
    /// conversion within the goal's window counts even then.
    pub open_goal: Option<OpenGoal>,
    /// Per reason, the last local day a refused entry was journaled.
    #[serde(with = "waymark_dsl::stored::day_map")]
    pub skipped: BTreeMap<String, chrono::NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenGoal {
    pub instance: u64,
    pub version: String,
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub until: DateTime<Utc>,
    /// The arms its splits put the instance in: a late goal counts for them.
    pub arms: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TaskState {
    /// Counted events (time and distinct key) since the last reward.
    #[serde(with = "waymark_dsl::stored::stamp_pairs")]
    pub counted: Vec<(DateTime<Utc>, Option<String>)>,
    /// Distinct values ever counted, kept while the task can pay out.
    pub seen: BTreeSet<String>,
    /// The last local day with a counted event, and the streak length.
    #[serde(with = "waymark_dsl::stored::day_opt")]
    pub streak_day: Option<chrono::NaiveDate>,
    pub streak: u64,
    pub rewards: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub at: DateTime<Utc>,
    pub channel: String,
    pub category: String,
}

/// A user's position in one journey version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique per user.
    pub id: u64,
    pub journey: String,
    pub version: String,
    pub step: StepId,
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub entered_at: DateTime<Utc>,
    /// The event that entered or last resumed it (`event` in expressions).
    pub event: Value,
    /// `as` bindings.
    pub bindings: BTreeMap<String, Value>,
    /// Iterations so far of each `repeat` step.
    pub loops: BTreeMap<u32, u64>,
    /// How often each send step has completed: part of its idempotency key.
    pub visits: BTreeMap<u32, u64>,
    /// Arms chosen by `split` steps.
    pub arms: BTreeMap<String, String>,
    pub wait: Wait,
    pub goal_reached: bool,
    /// The idempotency key of the last send a staff member has to confirm
    /// (a send with `confirm_within`) that went out on this instance's
    /// path: what a `wait for confirmation` after it waits on. Cleared
    /// when such a send does not go out (suppressed, or its fields fail),
    /// so the wait then goes straight to its `else`.
    #[serde(default)]
    pub awaiting: Option<String>,
    /// That send's outcome, when it came before the instance reached its
    /// `wait for confirmation` (a step between them waited): the wait
    /// goes on with it at once.
    #[serde(default)]
    pub outcome: Option<Value>,
}

/// What an instance waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wait {
    /// Runnable now.
    Ready,
    /// Resume at this time (a wait, a deferred send).
    Until(#[serde(with = "waymark_dsl::stored::stamp")] DateTime<Utc>),
    /// Resume when the current `wait for` step's event arrives, or time out.
    ForEvent {
        #[serde(with = "waymark_dsl::stored::stamp")]
        until: DateTime<Utc>,
    },
    /// Its journey is paused; resumes with the journey.
    Held,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A state with something in every field (at 2026-03-01 12:00 UTC,
    /// its instance waiting until then, 50 points, coupon `c1`).
    pub(crate) fn full_state() -> UserState {
        let at = Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let mut u = UserState::new("u1");
        u.created_at = Some(at);
        u.segments_due = Some(at + chrono::Duration::days(1));
        u.traits.insert("tier".into(), Value::String("gold".into()));
        u.traits.insert("seen".into(), Value::Timestamp(at));
        u.instances.push(Instance {
            id: 1,
            journey: "welcome".into(),
            version: "v1".into(),
            step: StepId(3),
            entered_at: at,
            event: Value::String("signed_up".into()),
            bindings: BTreeMap::new(),
            loops: BTreeMap::new(),
            visits: BTreeMap::new(),
            arms: BTreeMap::new(),
            wait: Wait::Until(at),
            goal_reached: false,
            awaiting: None,
            outcome: None,
        });
        u.journeys.insert(
            "welcome".into(),
            Box::new(JourneyMemo {
                entries: 2,
                last_entered: Some(at),
                open_goal: None,
                skipped: BTreeMap::new(),
            }),
        );
        u.next_instance = 2;
        u.points.lots.push(PointLot {
            amount: 50.into(),
            expires_at: Some(at),
        });
        u.tags.insert("vip".into());
        u.coupons.push(Coupon {
            id: "c1".into(),
            code: "ABC".into(),
            issued_at: at,
            expires_at: None,
            fields: Value::Record(Default::default()),
        });
        u.tasks.insert(
            "checkin".into(),
            TaskState {
                counted: vec![(at, Some("k".into()))],
                seen: BTreeSet::from(["k".to_string()]),
                streak_day: Some(at.date_naive()),
                streak: 3,
                rewards: 1,
            },
        );
        u.sends.push(SentMessage {
            at,
            channel: "sms".into(),
            category: "marketing".into(),
        });
        u.segments.insert("gold".into());
        u
    }

    fn encoded(u: &UserState) -> Vec<u8> {
        let mut out = Vec::new();
        u.encode_positional(&mut out).unwrap();
        out
    }

    #[test]
    fn a_state_written_in_parts_is_the_bytes_rmp_serde_writes_as_its_history_changes() {
        let mut u = full_state();
        let start = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let names = ["order_paid", "cart_updated", "checkin", "page_viewed"];
        // Events on some names and not others, some hours and some days
        // apart (so days and recent occurrences are dropped too), each
        // state written twice: fresh parts, then kept ones.
        for i in 0..400u32 {
            let name = names[(i as usize * 7 + i as usize / 5) % names.len()];
            let at = start + chrono::Duration::hours(i64::from(i * i % 97) + i64::from(i) * 11);
            let props = Value::from_json(&serde_json::json!({"value": i % 13, "sku": "x"}));
            u.history.record(name, at, &props);
            let whole = rmp_serde::to_vec(&u).unwrap();
            assert_eq!(encoded(&u), whole, "after event {i}");
            assert_eq!(encoded(&u), whole, "after event {i}, from the parts kept");
            if i % 50 == 0 {
                let read: UserState = rmp_serde::from_slice(&whole).unwrap();
                assert_eq!(read, u);
                assert_eq!(encoded(&read), whole, "read back, then written");
            }
        }
    }
}
