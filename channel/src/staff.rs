//! Messages a staff member sends by hand. Some platforms let an app reach
//! a customer only through a staff member: WeCom's customer mass send
//! (`add_msg_template`) makes a task in the staff member's client, which
//! goes out when they confirm it, or never. A channel of such a kind
//! implements [`StaffTasks`]; the engine batches the sends of one staff
//! member and one content into a [`StaffTask`], keeps it durably while it
//! is pending, asks for its results one call at a time, reminds the staff
//! member, cancels it at its deadline, and reports each recipient's
//! outcome to the journey. The adapter only speaks the platform's API.

use crate::DeliveryError;
use chrono::{DateTime, Utc};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// A call in flight.
pub type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, DeliveryError>> + Send + 'a>>;

/// One task for one staff member: the same content for every recipient.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffTask {
    /// The engine's id for it, stable across restarts.
    pub id: u64,
    /// The staff member (their WeCom userid).
    pub staff: String,
    /// The recipients' addresses (external_userids), in order.
    pub recipients: Vec<String>,
    /// The content: the sends' template, if any.
    pub template: Option<String>,
    /// The content: the sends' fields (without `to` and `staff`).
    pub fields: serde_json::Map<String, serde_json::Value>,
    /// When the engine first asked the platform to make it.
    pub since: DateTime<Utc>,
}

/// What the platform said when it made a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The platform's id for the task (WeCom's `msgid`).
    pub task: String,
    /// Recipients it refused at once (WeCom's `fail_list`): not the staff
    /// member's contacts, or unknown.
    pub refused: Vec<String>,
}

/// Where one recipient of a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    /// Not sent (yet).
    Waiting,
    /// Sent: the staff member confirmed and the platform delivered.
    Sent,
    /// The customer is no longer the staff member's contact.
    NotFriend,
    /// The customer had had their mass messages for the period.
    OverQuota,
}

/// How the engine runs a channel's tasks: all durations from its settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSchedule {
    /// Sends of one staff member and content within this window share a
    /// task.
    pub batch_window: Duration,
    /// At most this many recipients per task.
    pub batch_max: usize,
    /// A task's deadline, when the journey's `wait for confirmation` gives
    /// none: cancelled then, its unsent recipients `not_confirmed`.
    pub confirm_within: Duration,
    /// How often a pending task's results are asked for.
    pub poll_every: Duration,
    /// How long after the task (or the last reminder) the staff member is
    /// reminded; at most `reminders_per_day` times in any 24 hours.
    pub remind_after: Duration,
    pub reminders_per_day: u32,
}

/// A platform's cap on the messages one customer may receive through
/// tasks, per calendar period in China time: a month allows as many as it
/// has days, a week 7, a day 1 (WeCom's default is the month; an
/// administrator may set the week or the day). Counted per `group`: every
/// channel of one corporation together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerCap {
    pub group: String,
    pub per: CapPeriod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapPeriod {
    Month,
    Week,
    Day,
}

/// A platform's staff-task calls. Each is one request; the engine calls
/// them one at a time per channel (WeCom refuses parallel result queries
/// with 45033) and retries by the [`DeliveryError`] class.
pub trait StaffTasks: Send + Sync {
    fn schedule(&self) -> TaskSchedule;

    /// The platform account the tasks are made in (a WeCom corp id):
    /// pushes from it saying a customer's tags changed reach this channel.
    fn account(&self) -> &str;

    /// The per-customer cap the engine counts before a task, if the
    /// platform has one.
    fn customer_cap(&self) -> Option<CustomerCap> {
        None
    }

    /// The tags it mirrors to the platform: Waymark tag → the platform's
    /// tag id. A journey's `tag`/`untag` of one on a customer is delivered
    /// on the channel (with fields `add_tag` or `remove_tag`, and
    /// `staff`), and [`customer_tags`](StaffTasks::customer_tags) reads
    /// them back when the platform says a customer's tags were edited.
    fn synced_tags(&self) -> std::collections::BTreeMap<String, String> {
        Default::default()
    }

    /// The platform's tag ids a customer (by address) carries now.
    fn customer_tags<'a>(&'a self, _customer: &'a str) -> Call<'a, Vec<String>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// Makes the task. A timeout is ambiguous (the platform may have made
    /// it): the engine calls [`find`](StaffTasks::find) before making it
    /// again.
    fn create<'a>(&'a self, task: &'a StaffTask) -> Call<'a, Created>;

    /// The platform's id of a task made for `task` since `task.since`, if
    /// it has one: how a create whose answer was lost is reconciled.
    fn find<'a>(&'a self, task: &'a StaffTask) -> Call<'a, Option<String>>;

    /// Each recipient's status once the staff member has confirmed the
    /// task; `None` while they have not.
    fn results<'a>(
        &'a self,
        task: &'a str,
        staff: &'a str,
    ) -> Call<'a, Option<Vec<(String, RecipientStatus)>>>;

    /// Reminds the staff member of the task.
    fn remind<'a>(&'a self, task: &'a str) -> Call<'a, ()>;

    /// Stops the task: it can no longer be confirmed.
    fn cancel<'a>(&'a self, task: &'a str) -> Call<'a, ()>;
}
