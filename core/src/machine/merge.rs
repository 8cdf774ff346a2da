//! Identity merge: two profiles of one person become one. The absorbed
//! profile's state is folded into the surviving one so that what counts
//! events counts both (histories, caps, task progress, journey entries),
//! what was given is kept once (points, coupons, tags), and the journeys
//! either was in go on: both instances continue, except in a journey a
//! person may enter only `once`, where the earlier entry wins and the
//! later instance exits with reason `merged`. The surviving profile's
//! traits win where both have one; the absorbed one fills the gaps,
//! except that consent either profile revoked stays revoked. A
//! counting task whose two halves together reach the target pays then.
//! Where the absorbed id's events, journal and timers go is the shells'
//! business; this is the state and its records.

use super::{Cx, Globals};
use crate::deployment::Deployment;
use crate::journal::{Kind, Record};
use crate::model::{TaskState, UserState};
use crate::stats::Passage;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use waymark_dsl::plan::Entry;
use waymark_dsl::value::Value;

/// Merges `absorbed` (another id of the same person; `None` when that id
/// has no profile yet) into `survivor`, at `now`, adding the records to
/// `out`: `merged`, then any exit of a doubled `once` journey, any task
/// reward the merge completes and what segment triggers do. `from` is
/// the absorbed id, `how` why they are one (see
/// [`crate::model::Input::Merge`]). Returns the steps run.
#[allow(clippy::too_many_arguments)]
pub fn merge_into(
    d: &Deployment,
    globals: &mut Globals,
    survivor: &mut UserState,
    absorbed: Option<UserState>,
    from: &str,
    how: &str,
    now: DateTime<Utc>,
    out: &mut Vec<Record>,
    passages: Option<&mut Vec<Passage>>,
) -> u32 {
    let mut cx = Cx::new(d, globals, survivor, now, out, passages);
    let mut r = Record::new(now, &cx.user.id, Kind::Merged);
    r.merged = Some(from.to_string());
    r.reason = Some(how.to_string());
    cx.records.push(r);
    let ids = cx.user.merged_ids.iter().any(|id| id == from);
    if !ids && from != cx.user.id {
        cx.user.merged_ids.push(from.to_string());
    }
    if let Some(absorbed) = absorbed {
        let before = cx.consent_now();
        let theirs = absorbed.traits.get("consent").cloned();
        cx.absorb(absorbed);
        cx.merge_consent(before.as_ref(), theirs.as_ref(), from);
    }
    cx.finish(out)
}

impl Cx<'_> {
    fn absorb(&mut self, other: UserState) {
        let UserState {
            id: _,
            traits,
            history,
            instances,
            journeys,
            next_instance: _,
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
            // The store writes the absorbed profile's kept records under
            // its own id as the merge is committed.
            journal_tail: _,
            // Theirs stays with their id; ours with this profile.
            sealed_under: _,
        } = other;
        let user = &mut *self.user;
        for id in merged_ids {
            if id != user.id && !user.merged_ids.contains(&id) {
                user.merged_ids.push(id);
            }
        }
        // Traits: ours win; theirs fill what we do not have, key by key
        // within records (as identify merges them).
        for (name, value) in traits.into_inner() {
            match user.traits.get_mut(&name) {
                Some(ours) => fill(ours, value),
                None => {
                    user.traits.insert(name, value);
                }
            }
        }
        self.user_zone.set(None);
        user.history.absorb(history);
        user.created_at = match (user.created_at, created_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        user.segments_due = match (user.segments_due, segments_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Each grant was one accept by the person: all of them stay.
        for (template, n) in grants {
            *user.grants.entry(template).or_default() += n;
        }
        // A platform counts the person's messages, whichever profile they
        // went to: in the same period they add up.
        for (group, theirs) in quotas {
            match user.quotas.get_mut(&group) {
                None => {
                    user.quotas.insert(group, theirs);
                }
                Some(ours) if ours.since == theirs.since => ours.used += theirs.used,
                Some(ours) if theirs.since > ours.since => *ours = theirs,
                Some(_) => {}
            }
        }
        user.points.lots.extend(points.lots);
        user.tags.extend(tags);
        user.coupons.extend(coupons);
        user.coupons.sort_by_key(|c| c.issued_at);
        user.sends.extend(sends);
        user.sends.sort_by_key(|s| s.at);
        user.segments.extend(segments);
        // Their instances get numbers of ours (a number is unique per
        // user); an open goal follows its instance.
        let mut renumbered = BTreeMap::new();
        let mut theirs = Vec::with_capacity(instances.len());
        for mut inst in instances {
            let id = user.next_instance;
            user.next_instance += 1;
            renumbered.insert(inst.id, id);
            inst.id = id;
            theirs.push(inst);
        }
        for (journey, mut memo) in journeys.into_inner() {
            if let Some(goal) = &mut memo.open_goal {
                goal.instance = renumbered
                    .get(&goal.instance)
                    .copied()
                    .unwrap_or(goal.instance);
            }
            match user.journeys.get_mut(&journey) {
                None => {
                    user.journeys.insert(journey, memo);
                }
                Some(ours) => {
                    ours.entries += memo.entries;
                    ours.last_entered = ours.last_entered.max(memo.last_entered);
                    if ours.open_goal.is_none() {
                        ours.open_goal = memo.open_goal;
                    }
                    for (reason, day) in memo.skipped {
                        let kept = ours.skipped.entry(reason).or_insert(day);
                        *kept = (*kept).max(day);
                    }
                }
            }
        }
        for (name, state) in tasks.into_inner() {
            match user.tasks.get_mut(&name) {
                None => {
                    user.tasks.insert(name, state);
                }
                Some(ours) => merge_task(ours, state),
            }
        }
        // Journeys: both go on, but a person enters a `once` journey once:
        // there the earlier entry wins.
        let d = self.d;
        for inst in theirs {
            let once = d
                .version(&inst.journey, &inst.version)
                .is_some_and(|p| matches!(p.entry, Entry::Once));
            let ours = self
                .user
                .instances
                .iter()
                .position(|i| i.journey == inst.journey);
            match ours {
                Some(at) if once => {
                    // The later of the two ends.
                    let ended = if self.user.instances[at].entered_at <= inst.entered_at {
                        inst
                    } else {
                        std::mem::replace(&mut self.user.instances[at], inst)
                    };
                    let mut r = self.instance_record(&ended, Kind::Exit);
                    r.reason = Some("merged".into());
                    self.records.push(r);
                }
                _ => self.user.instances.push(inst),
            }
        }
        for task in &d.plan.tasks {
            self.reward_merged(task);
        }
    }
}

/// Fills what `ours` lacks from `theirs`: records key by key; anything
/// else is ours.
fn fill(ours: &mut Value, theirs: Value) {
    if let (Value::Record(a), Value::Record(b)) = (ours, theirs) {
        for (k, v) in b {
            match a.get_mut(&k) {
                Some(mine) => fill(mine, v),
                None => {
                    a.insert(k, v);
                }
            }
        }
    }
}

/// One task's progress of two profiles: counted events together (a
/// distinct value counts once per person: at its earliest, and not at all
/// if either profile already used it up for a reward), rewards added up
/// (a limit per user counts both), the later streak.
fn merge_task(ours: &mut TaskState, theirs: TaskState) {
    let used_up = |state: &TaskState, key: &str| {
        state.seen.contains(key) && !state.counted.iter().any(|(_, k)| k.as_deref() == Some(key))
    };
    let counts = |entry: &(DateTime<Utc>, Option<String>), other: &TaskState| {
        entry.1.as_deref().is_none_or(|k| !used_up(other, k))
    };
    let mut counted: Vec<_> = ours
        .counted
        .iter()
        .filter(|e| counts(e, &theirs))
        .chain(theirs.counted.iter().filter(|e| counts(e, ours)))
        .cloned()
        .collect();
    counted.sort_by_key(|(at, _)| *at);
    let mut keys = std::collections::BTreeSet::new();
    counted.retain(|(_, key)| key.as_ref().is_none_or(|k| keys.insert(k.clone())));
    ours.counted = counted;
    ours.seen.extend(theirs.seen);
    ours.rewards += theirs.rewards;
    let later = match (ours.streak_day, theirs.streak_day) {
        (Some(a), Some(b)) => b > a || (b == a && theirs.streak > ours.streak),
        (None, Some(_)) => true,
        _ => false,
    };
    if later {
        ours.streak_day = theirs.streak_day;
        ours.streak = theirs.streak;
    }
}
