//! A user's state as plain JSON, for `GET /v1/users/{id}` and the export:
//! values as JSON values (timestamps as RFC 3339 UTC strings, numbers as
//! numbers), what an instance waits for as a word and a time, and no
//! names of Rust types or enum variants. The shapes are documented in
//! docs/http-api.md; a program can read an export back with any JSON
//! parser, and a person can read it without knowing the engine.

use crate::model::{Instance, UserState, Wait};
use serde_json::{Map, Value as Json, json};
use waymark_dsl::value::{Value, decimal_to_json};

fn time(t: chrono::DateTime<chrono::Utc>) -> Json {
    Value::Timestamp(t).to_json()
}

fn time_opt(t: Option<chrono::DateTime<chrono::Utc>>) -> Json {
    t.map(time).unwrap_or(Json::Null)
}

/// What an instance waits for: `status` is `ready` (runs now), `waiting`
/// (until `until`), `waiting_for_event` (its `wait for` event, or time
/// out at `until`) or `paused` (its journey is paused).
pub fn waiting(wait: &Wait) -> (&'static str, Json) {
    match wait {
        Wait::Ready => ("ready", Json::Null),
        Wait::Until(t) => ("waiting", time(*t)),
        Wait::ForEvent { until } => ("waiting_for_event", time(*until)),
        Wait::Held => ("paused", Json::Null),
    }
}

/// One journey instance.
pub fn instance(i: &Instance) -> Json {
    let (status, until) = waiting(&i.wait);
    json!({
        "journey": i.journey,
        "version": i.version,
        "instance": i.id,
        "step": i.step.label(),
        "entered_at": time(i.entered_at),
        "status": status,
        "until": until,
        "event": i.event.to_json(),
        "bindings": i.bindings.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<Map<_, _>>(),
        "arms": i.arms,
        "goal_reached": i.goal_reached,
    })
}

/// The summary `GET /v1/users/{id}` answers.
pub fn summary(u: &UserState) -> Json {
    json!({
        "id": u.id,
        "merged_ids": u.merged_ids,
        "created_at": time_opt(u.created_at),
        "profile": crate::machine::user_value(u).to_json(),
        "tags": u.tags,
        "points": decimal_to_json(u.points.balance()),
        "coupons": u.coupons.iter().map(|c| c.as_value().to_json()).collect::<Vec<_>>(),
        "journeys": u.instances.iter().map(|i| {
            let (status, until) = waiting(&i.wait);
            json!({
                "journey": i.journey, "version": i.version, "instance": i.id,
                "step": i.step.label(), "entered_at": time(i.entered_at),
                "status": status, "until": until,
            })
        }).collect::<Vec<_>>(),
        "timers": time_opt(u.next_wake()),
        "tasks": u.tasks.iter().map(|(name, t)| (name.clone(), json!({"counted": t.counted.len(), "streak": t.streak, "rewards": t.rewards}))).collect::<Map<_, _>>(),
        "grants": u.grants,
    })
}

/// Everything stored about a user, as the export's `state`.
pub fn state(u: &UserState) -> Json {
    json!({
        "id": u.id,
        "created_at": time_opt(u.created_at),
        "traits": u.traits.iter().map(|(k, v)| (k.clone(), v.to_json())).collect::<Map<_, _>>(),
        "tags": u.tags,
        "points": {
            "balance": decimal_to_json(u.points.balance()),
            "lots": u.points.lots.iter().map(|l| json!({
                "amount": decimal_to_json(l.amount),
                "expires_at": time_opt(l.expires_at),
            })).collect::<Vec<_>>(),
        },
        "coupons": u.coupons.iter().map(|c| c.as_value().to_json()).collect::<Vec<_>>(),
        "events": u.history.to_json(),
        "instances": u.instances.iter().map(instance).collect::<Vec<_>>(),
        "journeys": u.journeys.iter().map(|(name, m)| (name.clone(), json!({
            "entries": m.entries,
            "last_entered": time_opt(m.last_entered),
            "open_goal": m.open_goal.as_ref().map(|g| json!({
                "instance": g.instance, "version": g.version, "until": time(g.until), "arms": g.arms,
            })),
            "skipped": m.skipped.iter().map(|(reason, day)| (reason.clone(), json!(day.to_string()))).collect::<Map<_, _>>(),
        }))).collect::<Map<_, _>>(),
        "tasks": u.tasks.iter().map(|(name, t)| (name.clone(), json!({
            "counted": t.counted.iter().map(|(at, key)| json!({"at": time(*at), "key": key})).collect::<Vec<_>>(),
            "distinct_keys": t.seen,
            "streak": t.streak,
            "streak_day": t.streak_day.map(|d| d.to_string()),
            "rewards": t.rewards,
        }))).collect::<Map<_, _>>(),
        "sends": u.sends.iter().map(|s| json!({
            "at": time(s.at), "channel": s.channel, "category": s.category,
        })).collect::<Vec<_>>(),
        "segments": u.segments,
        "segments_due": time_opt(u.segments_due),
        "grants": u.grants,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// Every key and string anywhere in `json`.
    fn words(json: &Json, out: &mut Vec<String>) {
        match json {
            Json::String(s) => out.push(s.clone()),
            Json::Array(items) => items.iter().for_each(|i| words(i, out)),
            Json::Object(map) => {
                for (k, v) in map {
                    out.push(k.clone());
                    words(v, out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn a_users_state_has_no_rust_type_names_and_reads_as_plain_json() {
        let at = chrono::Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap();
        let mut u = crate::model::tests::full_state();
        u.traits.insert("name".into(), Value::String("小王".into()));
        u.traits
            .insert("address".into(), Value::Record(Default::default()));
        u.history.record(
            "order_paid",
            at,
            &Value::from_json(&json!({"value": 199, "sku": "x"})),
        );
        for json in [state(&u), summary(&u)] {
            let mut all = Vec::new();
            words(&json, &mut all);
            for rust in [
                "String",
                "Record",
                "Number",
                "Timestamp",
                "Until",
                "ForEvent",
                "Held",
                "Ready",
            ] {
                assert!(!all.iter().any(|w| w.contains(rust)), "{rust} in {json:#}");
            }
        }
        let s = state(&u);
        assert_eq!(s["traits"]["name"], "小王");
        assert_eq!(s["traits"]["address"], json!({}));
        assert_eq!(s["traits"]["seen"], "2026-03-01T12:00:00Z");
        assert_eq!(s["points"]["balance"], 50);
        assert_eq!(s["instances"][0]["status"], "waiting");
        assert_eq!(s["instances"][0]["until"], "2026-03-01T12:00:00Z");
        assert_eq!(s["events"]["order_paid"]["total"], 1);
        assert_eq!(s["events"]["order_paid"]["days"][0]["day"], "2026-03-01");
        assert_eq!(s["events"]["order_paid"]["days"][0]["sums"]["value"], 199);
        assert_eq!(s["events"]["order_paid"]["last"]["properties"]["sku"], "x");
        let summary = summary(&u);
        assert_eq!(summary["journeys"][0]["status"], "waiting");
        assert_eq!(summary["journeys"][0]["until"], "2026-03-01T12:00:00Z");
        assert_eq!(summary["timers"], "2026-03-01T12:00:00Z");
    }
}
