//! Journey statistics per version, folded from journal records as they are
//! committed (in the same batch), so they always agree with the journal:
//! entered, active, completed, exits by reason, goals, per-step counts,
//! sends, suppressions by reason, failures, and split arms with their goal
//! rates.

use crate::journal::{Kind, Record};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct VersionStats {
    pub entered: u64,
    pub completed: u64,
    pub exits: BTreeMap<String, u64>,
    pub goals: u64,
    pub sends: u64,
    pub suppressed: BTreeMap<String, u64>,
    pub deferred: u64,
    pub failures: u64,
    /// Sends given up on (dead-lettered), by channel.
    pub failed: BTreeMap<String, u64>,
    /// Dead-lettered sends delivered when replayed, by channel.
    pub delivered_on_replay: BTreeMap<String, u64>,
    /// Triggers that matched but did not take the user in, by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Per step id (`s3`), what it did: its records by kind, and its
    /// suppressed sends by reason.
    pub steps: BTreeMap<String, StepStats>,
    /// Per split, per arm: instances put in it, that finished in it, and
    /// goals reached by them (also after they finished, within the goal's
    /// window).
    pub arms: BTreeMap<String, BTreeMap<String, ArmStats>>,
    /// Per split, per arm, per step: what the step did for the users put in
    /// that arm (the console paints the flow per arm from it).
    pub steps_by_arm: BTreeMap<String, BTreeMap<String, BTreeMap<String, StepStats>>>,
    /// Per local day (`2026-12-05`, in the zone the shell folds in: the
    /// default policy's), the last [`DAYS_KEPT`] days with activity.
    pub days: BTreeMap<chrono::NaiveDate, DayStats>,
    /// Sends a staff member had to confirm (WeCom customer mass sends),
    /// per staff member: what came of them.
    #[serde(default)]
    pub staff: BTreeMap<String, StaffStats>,
}

/// What came of one staff member's tasks: how many of the customers given
/// to them were sent to, and why the others were not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StaffStats {
    /// Confirmed and delivered.
    pub sent: u64,
    /// Confirmed, but the customer is no longer their contact.
    pub not_friend: u64,
    /// Confirmed, but the customer had had their mass messages for the
    /// period.
    pub over_quota: u64,
    /// Not confirmed before the deadline (the task was cancelled).
    pub not_confirmed: u64,
    /// The platform refused the task (an error, not the staff's doing).
    pub failed: u64,
}

impl StaffStats {
    /// The share of customers whose message the staff member confirmed
    /// (sent, not a friend, over quota) among those whose task they saw
    /// (all but `failed`); `None` before any.
    pub fn confirmation_rate(&self) -> Option<f64> {
        let confirmed = self.sent + self.not_friend + self.over_quota;
        let seen = confirmed + self.not_confirmed;
        (seen > 0).then(|| confirmed as f64 / seen as f64)
    }
}

impl std::ops::AddAssign<&DayStats> for DayStats {
    fn add_assign(&mut self, other: &DayStats) {
        self.entered += other.entered;
        self.goals += other.goals;
        self.sends += other.sends;
        self.suppressed += other.suppressed;
    }
}

/// The value at `key`, made on first use: the key is copied only then
/// (stats are folded for every record a batch writes).
fn entry<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("just made")
}

/// How many days of [`VersionStats::days`] are kept (the oldest go first).
pub const DAYS_KEPT: usize = 92;

/// One day of a journey version: what the console charts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DayStats {
    pub entered: u64,
    pub goals: u64,
    pub sends: u64,
    pub suppressed: u64,
}

/// An instance of a journey coming to a step or going on from it: what a
/// step that writes no record (a wait, an `if`) did, which the machine
/// reports beside the journal for the stats alone (it is not journaled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage {
    pub journey: compact_str::CompactString,
    pub version: compact_str::CompactString,
    pub step: waymark_dsl::plan::StepId,
    /// The split arms the instance is in (as its records carry them).
    pub arms: Option<BTreeMap<String, String>>,
    /// Went on to the step after; else came to this one.
    pub passed: bool,
}

/// What one step did, from its journal records and the passages through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StepStats {
    /// Times an instance came to the step (from the one before, or as it
    /// entered the journey at its first step).
    #[serde(default)]
    pub entered: u64,
    /// Times an instance went on from the step to the next one (not
    /// counting instances that ended or are still here).
    #[serde(default)]
    pub passed: u64,
    /// Records by kind: `send`, `suppressed`, `deferred`, `error`,
    /// `coupon`, `points`, `split`, `exit` …
    pub records: BTreeMap<String, u64>,
    /// Suppressed sends by reason (`quiet_hours`, `cap`, `consent` …).
    pub suppressed: BTreeMap<String, u64>,
}

impl StepStats {
    fn note(&mut self, r: &Record) {
        *entry(&mut self.records, r.kind.as_str()) += 1;
        if r.kind == Kind::Suppressed {
            *entry(
                &mut self.suppressed,
                r.reason.as_deref().unwrap_or_default(),
            ) += 1;
        }
    }

    fn pass(&mut self, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.entered += 1;
        }
    }

    /// Adds the passages counted in `other` (its records are left out).
    pub fn add_passages(&mut self, other: &StepStats) {
        self.entered += other.entered;
        self.passed += other.passed;
    }

    /// How many records of `kind` the step wrote.
    pub fn count(&self, kind: &str) -> u64 {
        self.records.get(kind).copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ArmStats {
    /// The split's holdout (an empty arm): the others' lift is over it.
    pub holdout: bool,
    pub assigned: u64,
    pub finished: u64,
    pub goals: u64,
}

impl VersionStats {
    /// Instances still inside.
    pub fn active(&self) -> u64 {
        self.entered.saturating_sub(self.exits.values().sum())
    }

    pub fn add(&mut self, r: &Record) {
        match r.kind {
            Kind::Enter => self.entered += 1,
            Kind::Exit => {
                let reason = r.reason.clone().unwrap_or_default();
                if reason == "completed" {
                    self.completed += 1;
                }
                *self.exits.entry(reason).or_default() += 1;
                self.each_arm(r, |a| a.finished += 1);
            }
            Kind::Goal => {
                self.goals += 1;
                self.each_arm(r, |a| a.goals += 1);
            }
            Kind::Send => self.sends += 1,
            Kind::Suppressed => {
                *self
                    .suppressed
                    .entry(r.reason.clone().unwrap_or_default())
                    .or_default() += 1
            }
            Kind::Deferred => self.deferred += 1,
            Kind::Error => self.failures += 1,
            Kind::Split => {
                if let (Some(split), Some(arm)) = (&r.split, &r.arm) {
                    let stats = self
                        .arms
                        .entry(split.clone())
                        .or_default()
                        .entry(arm.clone())
                        .or_default();
                    stats.assigned += 1;
                    stats.holdout |= r.holdout == Some(true);
                }
            }
            Kind::Failed => {
                *self
                    .failed
                    .entry(r.channel.clone().unwrap_or_default())
                    .or_default() += 1
            }
            Kind::Delivered => {
                *self
                    .delivered_on_replay
                    .entry(r.channel.clone().unwrap_or_default())
                    .or_default() += 1
            }
            Kind::Outcome => {
                let staff = entry(&mut self.staff, r.staff.as_deref().unwrap_or(""));
                match r.reason.as_deref() {
                    Some("sent") => staff.sent += 1,
                    Some("not_friend") => staff.not_friend += 1,
                    Some("over_quota") => staff.over_quota += 1,
                    Some("not_confirmed") => staff.not_confirmed += 1,
                    _ => staff.failed += 1,
                }
            }
            Kind::Skipped => {
                *self
                    .skipped
                    .entry(r.reason.clone().unwrap_or_default())
                    .or_default() += 1
            }
            _ => {}
        }
        if let Some(step) = &r.step {
            entry(&mut self.steps, step).note(r);
            for (split, arm) in r.arms.iter().flatten() {
                let arms = entry(&mut self.steps_by_arm, split);
                entry(entry(arms, arm), step).note(r);
            }
        }
    }

    /// Counts an instance coming to or going on from a step.
    pub fn add_passage(&mut self, p: &Passage) {
        let mut buffer = [0; 11];
        let label = p.step.label_in(&mut buffer);
        entry(&mut self.steps, label).pass(p.passed);
        for (split, arm) in p.arms.iter().flatten() {
            let arms = entry(&mut self.steps_by_arm, split);
            entry(entry(arms, arm), label).pass(p.passed);
        }
    }

    /// Adds the step passages counted in `other` (and nothing else of it):
    /// a preview counts them apart from the records.
    pub fn add_passages(&mut self, other: &VersionStats) {
        for (step, s) in &other.steps {
            entry(&mut self.steps, step).add_passages(s);
        }
        for (split, arms) in &other.steps_by_arm {
            for (arm, steps) in arms {
                for (step, s) in steps {
                    let into = entry(entry(entry(&mut self.steps_by_arm, split), arm), step);
                    into.add_passages(s);
                }
            }
        }
    }

    /// [`VersionStats::add`], and the record counted in its day in `zone`.
    pub fn add_in(&mut self, r: &Record, zone: chrono_tz::Tz) {
        self.add(r);
        let field = |d: &mut DayStats| -> Option<()> {
            match r.kind {
                Kind::Enter => d.entered += 1,
                Kind::Goal => d.goals += 1,
                Kind::Send => d.sends += 1,
                Kind::Suppressed => d.suppressed += 1,
                _ => return None,
            }
            Some(())
        };
        if !matches!(
            r.kind,
            Kind::Enter | Kind::Goal | Kind::Send | Kind::Suppressed
        ) {
            return;
        }
        let day = r.at.with_timezone(&zone).date_naive();
        field(self.days.entry(day).or_default());
        while self.days.len() > DAYS_KEPT {
            self.days.pop_first();
        }
    }

    /// Applies `f` to the stats of every arm the record's instance is in.
    fn each_arm(&mut self, r: &Record, f: impl Fn(&mut ArmStats)) {
        for (split, arm) in r.arms.iter().flatten() {
            f(self
                .arms
                .entry(split.clone())
                .or_default()
                .entry(arm.clone())
                .or_default());
        }
    }

    /// The stats as the API answers them. Beside a split's holdout arm (an
    /// empty one), every other arm reports its lift: its goal rate minus
    /// the holdout's. Goal rates are over the users put in the arm,
    /// whether or not they have finished.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::{Value as Json, json};
        let rate = |a: &ArmStats| (a.assigned > 0).then(|| a.goals as f64 / a.assigned as f64);
        let arms: serde_json::Map<String, Json> = self
            .arms
            .iter()
            .map(|(split, arms)| {
                let holdout = arms.iter().find(|(_, a)| a.holdout).map(|(name, _)| name);
                let baseline = holdout.and_then(|h| arms.get(h)).and_then(rate);
                let arms: serde_json::Map<String, Json> = arms
                    .iter()
                    .map(|(arm, a)| {
                        let mut out = json!({
                            "assigned": a.assigned,
                            "finished": a.finished,
                            "goals": a.goals,
                            "goal_rate": rate(a),
                        });
                        if holdout == Some(arm) {
                            out["holdout"] = json!(true);
                        } else if holdout.is_some() {
                            out["lift"] = json!(rate(a).zip(baseline).map(|(r, b)| r - b));
                        }
                        (arm.clone(), out)
                    })
                    .collect();
                (split.clone(), Json::Object(arms))
            })
            .collect();
        json!({
            "entered": self.entered,
            "active": self.active(),
            "completed": self.completed,
            "exits": self.exits,
            "goals": self.goals,
            "sends": self.sends,
            "failed": self.failed,
            "delivered_on_replay": self.delivered_on_replay,
            "suppressed": self.suppressed,
            "skipped": self.skipped,
            "deferred": self.deferred,
            "failures": self.failures,
            "steps": self.steps,
            "steps_by_arm": self.steps_by_arm,
            "arms": arms,
            "days": self.days,
            "staff": self
                .staff
                .iter()
                .map(|(staff, s)| {
                    let mut out = serde_json::to_value(s).expect("counts serialize");
                    out["confirmation_rate"] = json!(s.confirmation_rate());
                    (staff.clone(), out)
                })
                .collect::<serde_json::Map<String, Json>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(kind: Kind, reason: Option<&str>, arm: Option<&str>) -> Record {
        let at = "2025-11-10T12:00:00Z".parse().expect("a valid timestamp");
        let mut r = Record::new(at, "u", kind);
        r.reason = reason.map(str::to_string);
        r.arms = arm.map(|a| BTreeMap::from([("offer".to_string(), a.to_string())]));
        r
    }

    fn split(arm: &str) -> Record {
        let mut r = rec(Kind::Split, None, None);
        r.split = Some("offer".into());
        r.arm = Some(arm.into());
        r.holdout = (arm == "holdout").then_some(true);
        r
    }

    fn date(text: &str) -> chrono::NaiveDate {
        text.parse().unwrap()
    }

    fn json_steps(s: &VersionStats) -> serde_json::Value {
        s.to_json()["steps"].clone()
    }

    #[test]
    fn days_are_local_days_and_only_the_last_ones_are_kept() {
        let mut s = VersionStats::default();
        let shanghai = chrono_tz::Asia::Shanghai;
        let mut r = rec(Kind::Enter, None, None);
        r.at = "2026-12-04T17:00:00Z".parse().unwrap(); // 01:00 on the 5th in Shanghai
        s.add_in(&r, shanghai);
        r.kind = Kind::Send;
        s.add_in(&r, chrono_tz::UTC);
        r.kind = Kind::Tag;
        s.add_in(&r, shanghai);
        assert_eq!(
            s.days[&date("2026-12-05")],
            DayStats {
                entered: 1,
                ..Default::default()
            }
        );
        assert_eq!(
            s.days[&date("2026-12-04")],
            DayStats {
                sends: 1,
                ..Default::default()
            }
        );
        assert_eq!(s.days.len(), 2, "a tag is not charted");
        let start: chrono::DateTime<chrono::Utc> = "2026-01-01T12:00:00Z".parse().unwrap();
        for d in 0..200 {
            r.kind = Kind::Goal;
            r.at = start + chrono::Duration::days(d);
            s.add_in(&r, chrono_tz::UTC);
        }
        assert_eq!(s.days.len(), DAYS_KEPT);
        // The oldest went: 90 days of goals (to 19 July) and the two December days.
        assert_eq!(*s.days.keys().next().unwrap(), date("2026-04-21"));
        assert!(s.days.contains_key(&date("2026-07-19")));
        assert_eq!(s.goals, 200);
    }

    #[test]
    fn staff_outcomes_are_counted_per_staff_member_with_their_confirmation_rate() {
        let mut s = VersionStats::default();
        let outcome = |staff: &str, what: &str| {
            let mut r = rec(Kind::Outcome, Some(what), None);
            r.staff = Some(staff.into());
            r
        };
        for (staff, what) in [
            ("zhangsan", "sent"),
            ("zhangsan", "sent"),
            ("zhangsan", "over_quota"),
            ("zhangsan", "not_confirmed"),
            ("lisi", "not_confirmed"),
            ("lisi", "failed"),
        ] {
            s.add(&outcome(staff, what));
        }
        let json = s.to_json();
        let zhang = &json["staff"]["zhangsan"];
        assert_eq!(
            (zhang["sent"].as_u64(), zhang["over_quota"].as_u64()),
            (Some(2), Some(1))
        );
        // Confirmed 3 (sent twice, over quota once) of the 4 they saw.
        assert_eq!(zhang["confirmation_rate"], 0.75);
        // A failed task is not theirs to confirm.
        assert_eq!(json["staff"]["lisi"]["confirmation_rate"], 0.0);
        assert_eq!(json["staff"]["lisi"]["failed"], 1);
        assert_eq!(StaffStats::default().confirmation_rate(), None);
    }

    #[test]
    fn stats_count_entries_exits_goals_and_arm_goal_rates() {
        let mut s = VersionStats::default();
        for r in [
            rec(Kind::Enter, None, None),
            rec(Kind::Enter, None, None),
            rec(Kind::Enter, None, None),
            split("coupon"),
            split("holdout"),
            rec(Kind::Goal, None, Some("coupon")),
            rec(Kind::Exit, Some("goal"), Some("coupon")),
            rec(Kind::Exit, Some("completed"), Some("holdout")),
            rec(Kind::Suppressed, Some("cap"), None),
        ] {
            s.add(&r);
        }
        for (kind, reason) in [
            (Kind::Send, None),
            (Kind::Send, None),
            (Kind::Suppressed, Some("quiet_hours")),
        ] {
            let mut r = rec(kind, reason, None);
            r.step = Some("s3".into());
            s.add(&r);
        }
        let mut in_arm = rec(Kind::Send, None, Some("coupon"));
        in_arm.step = Some("s5".into());
        s.add(&in_arm);
        assert_eq!(s.steps_by_arm["offer"]["coupon"]["s5"].count("send"), 1);
        assert!(!s.steps_by_arm["offer"].contains_key("holdout"));
        assert_eq!(s.steps["s3"].count("send"), 2);
        assert_eq!(s.steps["s3"].count("suppressed"), 1);
        assert_eq!(s.steps["s3"].suppressed["quiet_hours"], 1);
        assert_eq!(s.suppressed["quiet_hours"], 1);
        assert_eq!((s.entered, s.active(), s.completed, s.goals), (3, 1, 1, 1));
        assert_eq!(s.suppressed["cap"], 1);
        assert_eq!(
            json_steps(&s),
            serde_json::json!({"s3": {"entered": 0, "passed": 0, "records": {"send": 2, "suppressed": 1}, "suppressed": {"quiet_hours": 1}}, "s5": {"entered": 0, "passed": 0, "records": {"send": 1}, "suppressed": {}}})
        );
        let json = s.to_json();
        assert_eq!(json["arms"]["offer"]["coupon"]["goal_rate"], 1.0);
        assert_eq!(json["arms"]["offer"]["coupon"]["lift"], 1.0);
        assert_eq!(json["arms"]["offer"]["holdout"]["goal_rate"], 0.0);
        assert_eq!(json["arms"]["offer"]["holdout"]["holdout"], true);
    }
}
