//! The deployed script set: the current plan, every journey version that
//! instances may still be on (plans are kept per version so that running
//! instances finish on the version they started), paused journeys, and the
//! parsed schedules of cron triggers.

use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use waymark_dsl::ast::CalendarPeriod;
use waymark_dsl::plan::{Cap, CapScope, JourneyPlan, Plan, PolicyPlan, Trigger, Window};
use waymark_dsl::schedule::{CronSchedule, parse_time_zone};

/// A global pause of non-transactional sends: since when, by whom, and
/// whether the sends it stops are dropped (`suppressed`) or held
/// (`deferred`) until it ends.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendsPaused {
    #[serde(with = "waymark_dsl::stored::stamp")]
    pub since: DateTime<Utc>,
    pub by: String,
    pub drop: bool,
}

/// A platform's cap on the messages one customer may receive: `limit`
/// per calendar `per` in `tz` (`None`: as many as the period has days, as
/// WeCom's default monthly cap on mass messages), shared by every channel
/// of the same `group` (one WeCom corporation).
#[derive(Debug, Clone, PartialEq)]
pub struct PlatformQuota {
    pub group: String,
    pub per: waymark_dsl::plan::CalendarPeriod,
    pub limit: Option<u32>,
    pub tz: chrono_tz::Tz,
}

/// Which tags a channel mirrors to the platform, and where it finds the
/// customer (`address`, a trait) and the staff member whose customer they
/// are (`staff`, a trait).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TagSync {
    /// Waymark tag → the platform's tag id.
    pub tags: BTreeMap<String, String>,
    pub address: String,
    pub staff: String,
}

#[derive(Debug, Clone)]
pub struct Deployment {
    pub plan: Arc<Plan>,
    versions: BTreeMap<(String, String), Arc<JourneyPlan>>,
    pub paused: BTreeSet<String>,
    /// Every non-transactional send stopped at once (an operator's global
    /// pause), if it is; stored with the deployment.
    pub sends_paused: Option<SendsPaused>,
    schedules: Vec<Schedule>,
    empty_policy: PolicyPlan,
    /// Where each configured channel finds a user's address. Channels not
    /// listed (and every channel when no config is given, as in
    /// `simulate`) address the user by id. Set from the config at start;
    /// not stored.
    pub recipients: BTreeMap<String, Recipient>,
    /// Which inbound event is a reply to an SMS and what in it opts out.
    /// Set from the config at start (the defaults otherwise); not stored.
    pub consent: crate::consent::ConsentRules,
    /// The configured channels whose kind spends a grant per send (one-time
    /// subscribe messages). Set from the config at start; not stored.
    pub grant_channels: std::collections::BTreeSet<String>,
    /// The configured channels whose sends a staff member confirms (WeCom
    /// customer mass sends), each with the user trait naming the staff
    /// member when a send gives no `staff` field. Set from the config at
    /// start; not stored.
    pub staff_traits: BTreeMap<String, String>,
    /// The configured channels whose platform caps the messages one
    /// customer may receive per calendar period (WeCom mass messages):
    /// counted before a send, and over it the send is suppressed with
    /// reason `platform_quota`. Set from the config at start; not stored.
    pub platform_quotas: BTreeMap<String, PlatformQuota>,
    /// The configured channels that mirror tags to the platform's own
    /// (WeCom corp tags): a journey's `tag`/`untag` of a mapped tag on a
    /// customer becomes a delivery on that channel. Set from the config
    /// at start; not stored.
    pub tag_syncs: BTreeMap<String, TagSync>,
    /// What coupon codes are derived under: the store's secret in the
    /// daemon, the fixed preview seed otherwise. Set at start; not stored
    /// with the deployment.
    pub coupon_secret: crate::machine::CouponSecret,
    /// Where the current set was deployed from (stored with it).
    pub source: DeploySource,
    /// Which events' history users keep.
    pub history: HistoryKept,
    /// Per event name, the journeys, rules and tasks of the current plan
    /// that it can start or count, each in plan order.
    listeners: rustc_hash::FxHashMap<String, Listeners>,
    /// Each policy's time zone, parsed once.
    policy_zones: rustc_hash::FxHashMap<String, Option<chrono_tz::Tz>>,
    /// The default policy's, asked for on every event.
    default_zone: Option<chrono_tz::Tz>,
    /// Where the default policy is in the plan's list, if it has one:
    /// rules and tasks ask for it on every event.
    default_policy: Option<usize>,
    /// Each rule's filter and condition of the current plan, made ready
    /// (see `machine::check`), by the rule's place in the plan.
    rule_checks: Vec<Vec<crate::machine::Check>>,
    /// Every event name something deployed reacts to: a trigger, rule or
    /// task of the current plan, or a goal, `exit on` or `wait for` of
    /// any version kept (users may be in any of them). Names of versions
    /// pruned since stay: hearing too much costs only time.
    heard: rustc_hash::FxHashSet<String>,
}

/// What one event name can start or count, by index into the plan's
/// lists, and what [`HistoryKept::Read`] keeps of its history: found
/// together, with one lookup for each event.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    pub journeys: Vec<usize>,
    pub rules: Vec<usize>,
    pub tasks: Vec<usize>,
    /// What the current plan's history functions read of it.
    pub read: crate::history::Keep,
}

static NO_LISTENERS: Listeners = Listeners {
    journeys: Vec::new(),
    rules: Vec::new(),
    tasks: Vec::new(),
    read: crate::history::Keep::Nothing,
};

fn listeners(plan: &Plan) -> rustc_hash::FxHashMap<String, Listeners> {
    let mut by_event: rustc_hash::FxHashMap<String, Listeners> = Default::default();
    for (i, j) in plan.journeys.iter().enumerate() {
        let mut names: Vec<&str> = j
            .triggers
            .iter()
            .filter_map(|t| match t {
                Trigger::Event(f) => Some(f.event.as_str()),
                _ => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            by_event.entry(name.into()).or_default().journeys.push(i);
        }
    }
    for (i, r) in plan.rules.iter().enumerate() {
        by_event
            .entry(r.when.event.clone())
            .or_default()
            .rules
            .push(i);
    }
    for (i, t) in plan.tasks.iter().enumerate() {
        by_event
            .entry(t.on.event.clone())
            .or_default()
            .tasks
            .push(i);
    }
    by_event
}

/// The events a journey version reacts to once a user is in it: its
/// goal, its `exit on` and its `wait for` steps.
fn heard_by(journey: &JourneyPlan) -> impl Iterator<Item = &str> {
    let waits = journey
        .steps
        .table
        .iter()
        .filter_map(|step| match &step.kind {
            waymark_dsl::plan::StepKind::WaitForEvent { event, .. } => Some(event.event.as_str()),
            _ => None,
        });
    journey
        .goal
        .iter()
        .map(|g| g.event.event.as_str())
        .chain(journey.exit_on.iter().map(|f| f.event.as_str()))
        .chain(waits)
}

/// Which events' history users keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HistoryKept {
    /// Every event's: the daemon's, since a script deployed later may read
    /// the history of any event that came before it.
    #[default]
    All,
    /// Only the events the deployed scripts read (`Plan::history_reads`):
    /// a preview's, whose scripts do not change while it runs. What the
    /// scripts see is the same; users hold less.
    Read,
}

/// Where a deployed set came from. The daemon deploys its scripts folder
/// at start only when the stored set came from that folder (or there is
/// none): a set deployed over the API survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum DeploySource {
    /// Made in this process by `simulate` or `test`: the daemon always
    /// records one of the others before it saves a deployment.
    #[default]
    Preview,
    /// The daemon's scripts folder at start, by its canonical path.
    Folder(String),
    /// `POST /v1/deploy`.
    Api,
}

impl std::fmt::Display for DeploySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeploySource::Preview => f.write_str("a preview (simulate or test)"),
            DeploySource::Folder(path) => write!(f, "the scripts folder {path}"),
            DeploySource::Api => f.write_str("POST /v1/deploy"),
        }
    }
}

/// Where a channel finds the address to send to, unless a `send` step
/// gives a `to` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The user id itself (`log`, `webhook`).
    UserId,
    /// A user trait (`email`, `phone`, `openid`, …); a user without it is
    /// suppressed with reason `no_address`.
    Trait(String),
    /// A property of the event that started (or last resumed) the
    /// instance, if it is `event` and at most `within_secs` old (a WeCom
    /// welcome message's `welcome_code`, 20 s); later the send is
    /// suppressed with reason `expired`, and with `no_address` when the
    /// event is another or lacks the property.
    TriggerEvent {
        event: String,
        property: String,
        within_secs: i64,
        expired: String,
    },
}

/// A cron trigger of a journey.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub journey: String,
    /// Which of the journey's triggers (its index), for its audience.
    pub trigger: usize,
    pub cron: CronSchedule,
    pub tz: chrono_tz::Tz,
}

/// A schedule trigger: its journey and the trigger's index among the journey's triggers.
pub type ScheduleRef = (String, usize);

/// What fires next (see [`Deployment::next_due`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Due {
    /// The timers due at this moment.
    Timers(DateTime<Utc>),
    /// These schedule triggers, at this moment.
    Schedules(DateTime<Utc>, Vec<ScheduleRef>),
}

/// What a deploy changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployReport {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    /// Things the operator should know about the new set, e.g. a cap that
    /// needs more send history than the deployment before kept.
    pub warnings: Vec<String>,
}

impl Deployment {
    /// How much of event `name`'s history users keep.
    pub fn history_of(&self, name: &str) -> crate::history::Keep {
        self.history_kept(self.listeners(name))
    }

    /// [`Deployment::history_of`] the event these listen for.
    pub fn history_kept(&self, listeners: &Listeners) -> crate::history::Keep {
        match self.history {
            HistoryKept::All => crate::history::Keep::All,
            HistoryKept::Read => listeners.read,
        }
    }

    pub fn new(plan: Plan) -> Deployment {
        let mut d = Deployment {
            plan: Arc::new(Plan::default()),
            versions: BTreeMap::new(),
            paused: BTreeSet::new(),
            sends_paused: None,
            schedules: Vec::new(),
            empty_policy: PolicyPlan {
                name: "default".into(),
                ..PolicyPlan::default()
            },
            recipients: BTreeMap::new(),
            staff_traits: BTreeMap::new(),
            platform_quotas: BTreeMap::new(),
            tag_syncs: BTreeMap::new(),
            consent: Default::default(),
            grant_channels: Default::default(),
            coupon_secret: Default::default(),
            source: DeploySource::default(),
            history: HistoryKept::default(),
            listeners: Default::default(),
            policy_zones: Default::default(),
            default_zone: None,
            default_policy: None,
            rule_checks: Vec::new(),
            heard: Default::default(),
        };
        d.replace(plan);
        d
    }

    /// Replaces the script set. Old versions stay available for instances.
    pub fn replace(&mut self, plan: Plan) -> DeployReport {
        let mut report = DeployReport {
            warnings: history_warnings(&self.plan, &plan),
            ..DeployReport::default()
        };
        for j in &plan.journeys {
            match self.plan.journey(&j.name) {
                None => report.added.push(j.name.clone()),
                Some(old) if old.version != j.version => report.changed.push(j.name.clone()),
                Some(_) => {}
            }
            self.versions
                .insert((j.name.clone(), j.version.clone()), Arc::new(j.clone()));
        }
        for old in &self.plan.journeys {
            if plan.journey(&old.name).is_none() {
                report.removed.push(old.name.clone());
            }
        }
        let all = &plan;
        self.schedules = plan
            .journeys
            .iter()
            .flat_map(|j| {
                j.triggers
                    .iter()
                    .enumerate()
                    .filter_map(move |(trigger, t)| match t {
                        Trigger::Schedule { cron, tz, .. } => {
                            // The trigger's, the journey's, then its policy's (language.md §6).
                            let policy_tz = all
                                .policy(&j.policy)
                                .or_else(|| all.policy("default"))
                                .and_then(|p| p.tz.as_deref());
                            let zone = tz
                                .as_deref()
                                .or(j.tz.as_deref())
                                .or(policy_tz)
                                .and_then(|z| parse_time_zone(z).ok())
                                .unwrap_or(chrono_tz::UTC);
                            CronSchedule::parse(cron).ok().map(|cron| Schedule {
                                journey: j.name.clone(),
                                trigger,
                                cron,
                                tz: zone,
                            })
                        }
                        _ => None,
                    })
            })
            .collect();
        self.listeners = listeners(&plan);
        for (event, functions) in &plan.history_reads {
            // Only these two return the event's properties.
            self.listeners.entry(event.clone()).or_default().read =
                if functions.contains("last") || functions.contains("first") {
                    crate::history::Keep::All
                } else {
                    crate::history::Keep::Counts
                };
        }
        self.heard = self.listeners.keys().cloned().collect();
        for version in self.versions.values() {
            self.heard.extend(heard_by(version).map(str::to_string));
        }
        // Rules share the reads they have in common, event by event.
        let mut shared = Vec::new();
        self.rule_checks = plan
            .rules
            .iter()
            .map(|r| {
                r.when
                    .filter
                    .iter()
                    .chain(r.condition.iter())
                    .map(|e| crate::machine::Check::new(e, &mut shared))
                    .collect()
            })
            .collect();
        self.policy_zones = plan
            .policies
            .iter()
            .map(|p| {
                let zone = p.tz.as_deref().and_then(|z| parse_time_zone(z).ok());
                (p.name.clone(), zone)
            })
            .collect();
        // Rules and tasks ask for the default policy's zone on every event.
        self.default_zone = self.policy_zones.get("default").copied().flatten();
        self.default_policy = plan.policies.iter().position(|p| p.name == "default");
        self.plan = Arc::new(plan);
        report
    }

    /// Whether anything deployed reacts to an event of this name (see
    /// [`Deployment::heard`]): an event that nothing hears and whose
    /// history is not kept changes nothing when it is handled.
    pub fn hears(&self, name: &str) -> bool {
        self.heard.contains(name)
    }

    /// The journeys, rules and tasks of the current plan an event named
    /// `name` can start or count.
    pub fn listeners(&self, name: &str) -> &Listeners {
        self.listeners.get(name).unwrap_or(&NO_LISTENERS)
    }

    /// The filter and condition of the current plan's rule at `index`,
    /// made ready, in that order.
    pub(crate) fn rule_checks(&self, index: usize) -> &[crate::machine::Check] {
        self.rule_checks.get(index).map_or(&[], Vec::as_slice)
    }

    /// Every journey version kept (for storing them).
    pub fn versions(&self) -> impl Iterator<Item = &JourneyPlan> {
        self.versions.values().map(|p| p.as_ref())
    }

    /// Drops the versions that are not current and that `in_use` does not
    /// name (journey, version); returns what it dropped.
    pub fn prune_versions(
        &mut self,
        in_use: &std::collections::HashSet<(String, String)>,
    ) -> Vec<(String, String)> {
        let plan = self.plan.clone();
        let dropped: Vec<(String, String)> = self
            .versions
            .keys()
            .filter(|(name, version)| {
                plan.journey(name).is_none_or(|j| &j.version != version)
                    && !in_use.contains(&(name.clone(), version.clone()))
            })
            .cloned()
            .collect();
        for key in &dropped {
            self.versions.remove(key);
        }
        dropped
    }

    /// Makes an older version available again (loaded from the store).
    pub fn keep_version(&mut self, plan: JourneyPlan) {
        self.heard.extend(heard_by(&plan).map(str::to_string));
        self.versions
            .insert((plan.name.clone(), plan.version.clone()), Arc::new(plan));
    }

    /// The plan an instance runs on.
    pub fn version(&self, journey: &str, version: &str) -> Option<&JourneyPlan> {
        self.versions
            .get(&(journey.to_string(), version.to_string()))
            .map(|p| p.as_ref())
    }

    pub fn current(&self, journey: &str) -> Option<&JourneyPlan> {
        self.plan.journey(journey)
    }

    /// The time zone of policy `name` (as [`Deployment::policy`] finds
    /// it), if it sets a valid one.
    pub fn policy_zone(&self, name: &str) -> Option<chrono_tz::Tz> {
        if name == "default" {
            return self.default_zone;
        }
        match self.policy_zones.get(name) {
            Some(zone) => *zone,
            None => self
                .policy(name)
                .tz
                .as_deref()
                .and_then(|z| parse_time_zone(z).ok()),
        }
    }

    pub fn policy(&self, name: &str) -> &PolicyPlan {
        let default = || {
            self.default_policy
                .and_then(|i| self.plan.policies.get(i))
                .unwrap_or(&self.empty_policy)
        };
        if name == "default" {
            return default();
        }
        self.plan.policy(name).unwrap_or_else(default)
    }

    pub fn is_paused(&self, journey: &str) -> bool {
        self.paused.contains(journey)
    }

    /// Whether an instance held at a send may go on: its journey is not
    /// paused and sends are not.
    pub fn may_go_on(&self, journey: &str) -> bool {
        !self.is_paused(journey) && self.sends_paused.is_none()
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// The earliest cron fire strictly after `after`, with the (journey,
    /// trigger index) pairs that fire then.
    /// What fires next, up to and including `until`: the earliest pending
    /// timer (`timer`), or the next cron fire after `schedules_done`;
    /// timers due at the moment of a cron fire go first. Every shell asks
    /// this, so all fire in the same order.
    pub fn next_due(
        &self,
        timer: Option<DateTime<Utc>>,
        schedules_done: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Option<Due> {
        let timer = timer.filter(|t| *t <= until);
        let cron = self
            .next_schedule_fire(schedules_done)
            .filter(|(t, _)| *t <= until);
        match (timer, cron) {
            (None, None) => None,
            (Some(t), Some((c, _))) if t <= c => Some(Due::Timers(t)),
            (Some(t), None) => Some(Due::Timers(t)),
            (_, Some((c, journeys))) => Some(Due::Schedules(c, journeys)),
        }
    }

    pub fn next_schedule_fire(
        &self,
        after: DateTime<Utc>,
    ) -> Option<(DateTime<Utc>, Vec<ScheduleRef>)> {
        let mut best: Option<(DateTime<Utc>, Vec<ScheduleRef>)> = None;
        for s in &self.schedules {
            let Some(at) = s.cron.next_after(after, s.tz) else {
                continue;
            };
            match &mut best {
                Some((t, names)) if *t == at => names.push((s.journey.clone(), s.trigger)),
                Some((t, _)) if *t < at => {}
                _ => best = Some((at, vec![(s.journey.clone(), s.trigger)])),
            }
        }
        best
    }

    /// Whether any journey enters users on segment membership.
    pub fn has_segment_triggers(&self) -> bool {
        self.plan
            .journeys
            .iter()
            .any(|j| j.triggers.iter().any(|t| matches!(t, Trigger::Segment(_))))
    }
}

/// Caps of `new` that need send history `old` did not keep. Users' send
/// histories are pruned to what the deployed caps need (the `limit` most
/// recent sends each cap counts, within its window), so a cap that reaches
/// further back, or counts more sends, than any cap of the same scope
/// before it counts too few until its window has passed once. Nothing to
/// say when the old set could not send.
fn history_warnings(old: &Plan, new: &Plan) -> Vec<String> {
    if old.all_steps().next().is_none() {
        return Vec::new();
    }
    let old_caps: Vec<&Cap> = old.policies.iter().flat_map(|p| &p.caps).collect();
    let mut warnings = Vec::new();
    for policy in &new.policies {
        for cap in &policy.caps {
            let kept = old_caps
                .iter()
                .filter(|c| c.counts == cap.counts)
                .max_by_key(|c| (reach(c.per), c.limit));
            let covered = old_caps.iter().any(|c| {
                c.counts == cap.counts && c.limit >= cap.limit && reach(c.per) >= reach(cap.per)
            });
            if covered {
                continue;
            }
            let before = match kept {
                Some(c) => format!(
                    "the sets deployed before kept only what `{}` needs",
                    cap_text(c)
                ),
                None => format!(
                    "the sets deployed before had no cap on {} and kept none of them",
                    scope_text(&cap.counts)
                ),
            };
            warnings.push(format!(
                "policy {}: `{}` counts sends older than the history kept until now ({before}); it may let through sends it would have stopped until {} have passed",
                policy.name,
                cap_text(cap),
                window_text(cap.per),
            ));
        }
    }
    warnings
}

/// How far back a window can reach, in seconds.
fn reach(per: Window) -> i64 {
    match per {
        Window::Rolling(seconds) => seconds,
        Window::Calendar(CalendarPeriod::Day) => 86_400,
        Window::Calendar(CalendarPeriod::Week) => 7 * 86_400,
        Window::Calendar(CalendarPeriod::Month) => 31 * 86_400,
    }
}

fn scope_text(scope: &CapScope) -> String {
    match scope {
        CapScope::All => "messages".into(),
        CapScope::Channel(c) | CapScope::Category(c) => c.clone(),
    }
}

fn window_text(per: Window) -> String {
    match per {
        Window::Rolling(s) if s % 86_400 == 0 => format!("{}d", s / 86_400),
        Window::Rolling(s) if s % 3_600 == 0 => format!("{}h", s / 3_600),
        Window::Rolling(s) if s % 60 == 0 => format!("{}m", s / 60),
        Window::Rolling(s) => format!("{s}s"),
        Window::Calendar(CalendarPeriod::Day) => "a day".into(),
        Window::Calendar(CalendarPeriod::Week) => "a week".into(),
        Window::Calendar(CalendarPeriod::Month) => "a month".into(),
    }
}

fn cap_text(cap: &Cap) -> String {
    let per = match cap.per {
        Window::Calendar(CalendarPeriod::Day) => "day".to_string(),
        Window::Calendar(CalendarPeriod::Week) => "week".to_string(),
        Window::Calendar(CalendarPeriod::Month) => "month".to_string(),
        rolling => window_text(rolling),
    };
    format!("cap {} {} per {per}", cap.limit, scope_text(&cap.counts))
}
