//! The plan: what a checked deployment lowers to and what the engine
//! interprets. Each journey, rule and task is a flat table of steps
//! addressed by [`StepId`], with control flow as explicit successor ids;
//! names are resolved (consts inlined, segments and bindings by name) and
//! literals are values. A durable instance stores (journey, version, step
//! id, bindings), so plans are kept per version; a journey's version is a
//! hash of its plan, ignoring source lines, so moving a journey or editing
//! comments does not start a new version.

mod expr;
mod lower;

pub use lower::lower;

use crate::ast::BinaryOp;
pub use crate::ast::CalendarPeriod;
use crate::value::Value;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// At most this many steps run for one input (an event, a wake-up); the
/// engine stops a script that would run more with an `error` record, and
/// `check` refuses a loop that certainly would.
pub const STEP_BUDGET: u32 = 10_000;

/// A step's address within one journey, rule or task.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct StepId(pub u32);

impl StepId {
    /// The id journals and exports name the step by: `s7`.
    pub fn label(self) -> String {
        self.label_in(&mut [0; 11]).to_string()
    }

    /// [`StepId::label`] written at the end of `buffer`, without the
    /// formatting machinery or an allocation: every step record carries
    /// one, kept in place.
    pub fn label_in(self, buffer: &mut [u8; 11]) -> &str {
        let mut at = buffer.len();
        let mut n = self.0;
        loop {
            at -= 1;
            buffer[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        at -= 1;
        buffer[at] = b's';
        // `s` and ASCII digits.
        std::str::from_utf8(&buffer[at..]).unwrap_or("s")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Plan {
    pub journeys: Vec<JourneyPlan>,
    pub rules: Vec<RulePlan>,
    pub tasks: Vec<TaskPlan>,
    pub segments: Vec<SegmentPlan>,
    /// Always holds `default` (empty when the scripts declare none).
    pub policies: Vec<PolicyPlan>,
    pub tests: Vec<TestPlan>,
    /// The events whose history the scripts read, each with the functions
    /// that read it (`count`, `sum`, `last`, `first`: any function taking
    /// an event name). A shell whose scripts cannot change while it runs
    /// keeps history for these only, and only what those functions need.
    #[serde(default)]
    pub history_reads: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
}

impl Plan {
    pub fn journey(&self, name: &str) -> Option<&JourneyPlan> {
        self.journeys.iter().find(|j| j.name == name)
    }
    pub fn policy(&self, name: &str) -> Option<&PolicyPlan> {
        self.policies.iter().find(|p| p.name == name)
    }
    pub fn segment(&self, name: &str) -> Option<&SegmentPlan> {
        self.segments.iter().find(|s| s.name == name)
    }
    pub fn task(&self, name: &str) -> Option<&TaskPlan> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// Every step that can run: journeys', rules' and task rewards'. The one
    /// place that walks them all, so a question about "what the scripts
    /// do" (which channels they send on, say) cannot forget a kind.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        let journeys = self.journeys.iter().map(|j| &j.steps);
        let rules = self.rules.iter().map(|r| &r.steps);
        let rewards = self.tasks.iter().map(|t| &t.reward);
        journeys
            .chain(rules)
            .chain(rewards)
            .flat_map(|steps| steps.table.iter())
    }

    /// The names of the channels any step sends on, sorted.
    pub fn channels_used(&self) -> std::collections::BTreeSet<String> {
        self.all_steps()
            .filter_map(|s| match &s.kind {
                StepKind::Send { channel, .. } => Some(channel.clone()),
                _ => None,
            })
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JourneyPlan {
    pub name: String,
    pub title: Option<String>,
    /// Hex hash of everything below except source lines.
    pub version: String,
    pub triggers: Vec<Trigger>,
    pub audience: Option<Expr>,
    pub entry: Entry,
    pub exit_on: Vec<EventFilter>,
    pub exit_if: Vec<Expr>,
    pub goal: Option<Goal>,
    pub active: Option<ActiveWindow>,
    pub limit: Option<EntryLimit>,
    pub category: String,
    pub tz: Option<String>,
    pub policy: String,
    pub transactional: bool,
    pub steps: Steps,
}

/// A table of steps and where it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Steps {
    pub start: StepId,
    pub table: Vec<Step>,
}

impl Steps {
    pub fn get(&self, id: StepId) -> Option<&Step> {
        self.table.get(id.0 as usize)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Trigger {
    Event(EventFilter),
    Schedule {
        cron: String,
        tz: Option<String>,
        audience: Option<Expr>,
    },
    Segment(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFilter {
    pub event: String,
    pub filter: Option<Expr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    Once,
    Always,
    /// At most once per this many seconds.
    Every(i64),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goal {
    pub event: EventFilter,
    pub within: i64,
    pub and_continue: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActiveWindow {
    pub from: DateTime<Utc>,
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryLimit {
    pub entries: u64,
    pub per: Option<Window>,
}

/// A counting window: rolling (`per 1d`) or a calendar period in the
/// policy's (or journey's) time zone (`per day`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Window {
    Rolling(i64),
    Calendar(CalendarPeriod),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub kind: StepKind,
    /// 1-based source line, for journals and test failures.
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum StepKind {
    Send {
        channel: String,
        template: Option<String>,
        fields: Vec<(String, Expr)>,
        /// Seconds the staff have to confirm it, when a `wait for
        /// confirmation` waits on this send (its `within`): the channel
        /// cancels the staff task at that deadline.
        confirm_within: Option<i64>,
        next: StepId,
    },
    Wait {
        seconds: i64,
        next: StepId,
    },
    WaitUntilTime {
        minutes: u32,
        tz: Option<String>,
        next: StepId,
    },
    WaitUntil {
        at: Expr,
        next: StepId,
    },
    WaitForEvent {
        event: EventFilter,
        within: i64,
        bind: Option<String>,
        on_event: StepId,
        on_timeout: StepId,
        /// `wait for confirmation`: the `send` step whose outcome this
        /// waits for (`event` is then `send_outcome`). The outcome `sent`
        /// resumes at `on_event`; any other outcome, like the timeout, at
        /// `on_timeout`.
        confirms: Option<StepId>,
    },
    Branch {
        condition: Expr,
        then: StepId,
        otherwise: StepId,
    },
    Split {
        name: String,
        arms: Vec<SplitArm>,
    },
    GiveCoupon {
        coupon: String,
        expiry: Option<CouponExpiry>,
        fields: Vec<(String, Expr)>,
        bind: Option<String>,
        next: StepId,
    },
    GivePoints {
        amount: Expr,
        reason: Option<String>,
        expires_in: Option<i64>,
        next: StepId,
    },
    TakePoints {
        amount: Expr,
        reason: Option<String>,
        next: StepId,
    },
    Tag {
        tag: String,
        next: StepId,
    },
    Untag {
        tag: String,
        next: StepId,
    },
    Set {
        path: Vec<String>,
        value: Expr,
        next: StepId,
    },
    Unset {
        path: Vec<String>,
        next: StepId,
    },
    Emit {
        event: String,
        fields: Vec<(String, Expr)>,
        next: StepId,
    },
    /// Entered `times` times: each entry runs `body`, whose last step leads
    /// back here; then `next`. With `every`, later iterations wait first.
    /// The instance counts iterations per repeat step.
    Repeat {
        times: u64,
        every: Option<i64>,
        body: StepId,
        next: StepId,
    },
    Exit,
    /// The end of the steps: the instance completes.
    End,
}

impl StepKind {
    /// A short name for journals and stats.
    pub fn name(&self) -> &'static str {
        match self {
            StepKind::Send { .. } => "send",
            StepKind::Wait { .. } | StepKind::WaitUntilTime { .. } | StepKind::WaitUntil { .. } => {
                "wait"
            }
            StepKind::WaitForEvent { .. } => "wait_for",
            StepKind::Branch { .. } => "if",
            StepKind::Split { .. } => "split",
            StepKind::GiveCoupon { .. } => "coupon",
            StepKind::GivePoints { .. } => "give_points",
            StepKind::TakePoints { .. } => "take_points",
            StepKind::Tag { .. } => "tag",
            StepKind::Untag { .. } => "untag",
            StepKind::Set { .. } => "set",
            StepKind::Unset { .. } => "unset",
            StepKind::Emit { .. } => "emit",
            StepKind::Repeat { .. } => "repeat",
            StepKind::Exit => "exit",
            StepKind::End => "end",
        }
    }

    /// A split's name and arms; `None` for any other step.
    pub fn split(&self) -> Option<(&str, &[SplitArm])> {
        match self {
            StepKind::Split { name, arms } => Some((name, arms)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitArm {
    pub name: String,
    pub percent: Decimal,
    pub start: StepId,
    /// An empty arm: its users get nothing, as the baseline the other arms
    /// are measured against.
    #[serde(default)]
    pub holdout: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CouponExpiry {
    In(i64),
    At(Expr),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulePlan {
    pub name: String,
    pub title: Option<String>,
    pub when: EventFilter,
    pub condition: Option<Expr>,
    pub steps: Steps,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskPlan {
    pub name: String,
    pub title: Option<String>,
    pub on: EventFilter,
    pub distinct: Option<Expr>,
    pub progress: TaskProgress,
    pub reward: Steps,
    /// How many times the reward can be earned; `None` for no limit.
    pub max_rewards: Option<u64>,
    pub active: Option<ActiveWindow>,
    pub tz: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskProgress {
    /// Reward on reaching `times` counted events (within a sliding window).
    Count { times: u64, within: Option<i64> },
    /// Reward on `days` consecutive local days with a counted event.
    Streak { days: u64 },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentPlan {
    pub name: String,
    pub title: Option<String>,
    pub expr: Expr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PolicyPlan {
    pub name: String,
    pub tz: Option<String>,
    /// Minutes after midnight: (start, end); the window may wrap midnight.
    pub quiet_hours: Option<(u32, u32)>,
    pub caps: Vec<Cap>,
    pub consent_required: bool,
    pub on_cap_defer: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cap {
    pub limit: u64,
    pub counts: CapScope,
    pub per: Window,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CapScope {
    /// Every non-transactional send.
    All,
    Channel(String),
    Category(String),
}

/// A resolved expression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    Literal(Value),
    User,
    Event,
    Journey,
    Now,
    Binding(String),
    Segment(String),
    Field(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
    /// A built-in call. Event-name arguments are string literals (`"order_paid"`,
    /// `"order_paid.amount"`), as the stdlib expects.
    Call {
        function: String,
        args: Vec<Expr>,
    },
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    List(Vec<Expr>),
    Record(Vec<(String, Expr)>),
    Interpolate(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestPlan {
    pub name: String,
    /// `file:line` of the test block.
    pub location: String,
    pub steps: Vec<TestStep>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestStep {
    pub kind: TestStepKind,
    /// `file:line`, for failure messages.
    pub location: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TestStepKind {
    User {
        id: String,
        traits: Value,
    },
    At(DateTime<Utc>),
    Advance(i64),
    Event {
        name: String,
        user: String,
        props: Value,
    },
    /// What came of `user`'s pending send that a staff member confirms:
    /// `outcome` is `sent`, `not_friend`, `over_quota`, `not_confirmed` or
    /// `failed`.
    Outcome {
        outcome: String,
        user: String,
    },
    Expect(Expectation),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Expectation {
    pub negated: bool,
    pub what: Expected,
    pub user: Option<String>,
    pub at: Option<DateTime<Utc>>,
    /// The statement as written, for failure messages.
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Expected {
    Send {
        channel: Option<String>,
        template: Option<String>,
    },
    Coupon(String),
    Points(Decimal),
    Tag(String),
    Untag(String),
    Goal(String),
    Exit(String),
    Enter(String),
    Suppressed(Option<String>),
    /// An `outcome` record (with this outcome when given).
    Outcome(Option<String>),
    Reward(String),
    /// The user got arm `arm` of split `split`.
    Arm {
        arm: String,
        split: String,
    },
}

#[cfg(test)]
mod step_label_tests {
    use super::StepId;

    #[test]
    fn a_step_is_labelled_s_and_its_number() {
        for n in [0, 1, 9, 10, 99, 100, 12_345, u32::MAX] {
            assert_eq!(StepId(n).label(), format!("s{n}"));
        }
    }
}
