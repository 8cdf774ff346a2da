//! Properties over random event sequences: determinism, caps never
//! exceeded, holdouts never messaged, and no instance left runnable
//! between calls.

mod support;

use proptest::prelude::*;
use serde_json::json;
use support::*;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::Wait;

const USERS: [&str; 4] = ["u0", "u1", "u2", "u3"];
const EVENTS: [&str; 4] = ["cart_updated", "order_paid", "checkin", "ping"];

/// Several journeys, a rule and a task sharing one capped policy.
const SCRIPT: &str = r#"
policy default {
  tz "Asia/Shanghai"
  quiet hours 22:00 to 08:00
  cap 2 sms per 1d
  cap 3 messages per 1d
  cap 4 marketing per day
}
journey cart {
  trigger event cart_updated
  entry every 1d
  exit on event order_paid
  goal order_paid within 2d and continue
  wait 1h
  send sms template "CART"
  wait for event order_paid within 12h as o {
    send wechat template "THANKS" { amount: o.amount }
  } else {
    give coupon "C10" expires in 7d as c
    send sms template "COUPON" { code: c.code }
  }
}
journey pinger {
  trigger event ping
  entry always
  split exp {
    40% a { send sms template "PA" }
    30% b { send wechat template "PB" }
    30% holdout { }
  }
  repeat 3 times every 5h { send sms template "REP" }
  wait until 09:00
  send email template "MORNING"
}
journey checkins {
  trigger event checkin
  entry always
  if count(checkin, 7d) > 2 { send wechat template "LOYAL" } else { tag "new" }
  wait 30m
  send sms template "CHK"
}
rule paid { when event order_paid then { give points 5 reason "paid" } }
task streak { on event checkin streak 2 days { give points 10 } repeatable }
"#;

fn op() -> impl Strategy<Value = (usize, usize, i64)> {
    (0..USERS.len(), 0..EVENTS.len(), 0i64..720)
}

/// Runs the ops, calling `check` after every ingest and every advance.
fn run(ops: &[(usize, usize, i64)], check: impl FnMut(&Harness)) -> Harness {
    run_caching(ops, waymark_engine::user_cache::DEFAULT_USERS, check)
}

/// [`run`] with a runtime that keeps at most `cached` users decoded.
fn run_caching(
    ops: &[(usize, usize, i64)],
    cached: usize,
    mut check: impl FnMut(&Harness),
) -> Harness {
    let mut h = Harness::new(SCRIPT);
    h.runtime.set_user_cache(cached);
    for (i, &(user, event, gap)) in ops.iter().enumerate() {
        h.advance(mins(gap));
        check(&h);
        h.track(USERS[user], EVENTS[event], json!({ "amount": i }));
        check(&h);
    }
    h.advance(days(3));
    check(&h);
    h
}

fn lines(records: &[Record]) -> Vec<String> {
    records.iter().map(Record::to_json_line).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_same_inputs_give_byte_identical_records(ops in prop::collection::vec(op(), 1..30)) {
        let a = run(&ops, |_| {});
        let b = run(&ops, |_| {});
        prop_assert_eq!(lines(a.records()), lines(b.records()));
    }

    #[test]
    fn keeping_users_decoded_between_batches_changes_nothing(ops in prop::collection::vec(op(), 1..30)) {
        // Fewer cache slots than users, so users are dropped and read back.
        let uncached = run_caching(&ops, 0, |_| {});
        let cached = run_caching(&ops, 2, |_| {});
        prop_assert_eq!(lines(uncached.records()), lines(cached.records()));
        for user in USERS {
            prop_assert_eq!(
                uncached.runtime.store.user(user).unwrap(),
                cached.runtime.store.user(user).unwrap()
            );
        }
    }

    #[test]
    fn caps_are_never_exceeded_across_journeys(ops in prop::collection::vec(op(), 1..40)) {
        let h = run(&ops, |_| {});
        for user in USERS {
            let sends: Vec<&Record> = h.for_user(Kind::Send, user);
            for s in &sends {
                // Rolling 1d windows ending at this send.
                let window: Vec<&&Record> = sends
                    .iter()
                    .filter(|o| o.at > s.at - days(1) && o.at <= s.at)
                    .collect();
                let sms = window.iter().filter(|o| o.channel.as_deref() == Some("sms")).count();
                prop_assert!(sms <= 2, "{} sms in a day for {}:\n{}", sms, user, h.dump());
                prop_assert!(window.len() <= 3, "{} sends in a day for {}", window.len(), user);
            }
            // Calendar days in Shanghai.
            let mut per_day = std::collections::BTreeMap::new();
            for s in &sends {
                let day = s.at.with_timezone(&chrono_tz::Asia::Shanghai).date_naive();
                *per_day.entry(day).or_insert(0) += 1;
            }
            prop_assert!(per_day.values().all(|n| *n <= 4), "{:?}", per_day);
        }
    }

    #[test]
    fn holdout_arms_never_receive_the_splits_sends(ops in prop::collection::vec(op(), 1..40)) {
        let h = run(&ops, |_| {});
        for s in h.for_journey(Kind::Send, "pinger") {
            let arm = s.arms.as_ref().and_then(|a| a.get("exp")).map(String::as_str);
            let template = s.template.as_deref();
            prop_assert!(
                !(arm == Some("holdout") && matches!(template, Some("PA") | Some("PB"))),
                "holdout got {:?}", template
            );
            match template {
                Some("PA") => prop_assert_eq!(arm, Some("a")),
                Some("PB") => prop_assert_eq!(arm, Some("b")),
                _ => {}
            }
        }
    }

    #[test]
    fn no_instance_is_left_ready_between_calls(ops in prop::collection::vec(op(), 1..30)) {
        let mut bad: Option<String> = None;
        run(&ops, |h| {
            for user in USERS {
                let Some(state) = h.runtime.store.user(user).expect("memory store") else {
                    continue;
                };
                for inst in &state.instances {
                    let ok = match inst.wait {
                        Wait::Until(_) | Wait::ForEvent { .. } => true,
                        Wait::Held => h.runtime.deployment.is_paused(&inst.journey),
                        Wait::Ready => false,
                    };
                    if !ok && bad.is_none() {
                        bad = Some(format!("{user}: {inst:?} at {}", h.now));
                    }
                }
            }
        });
        prop_assert!(bad.is_none(), "{:?}", bad);
    }
}

#[test]
fn paused_journeys_hold_their_instances_between_calls() {
    let mut h = Harness::new(SCRIPT);
    h.track("u1", "cart_updated", json!({}));
    h.pause("cart");
    h.advance(hours(2));
    let state = h.user("u1");
    assert!(state.instances.iter().all(|i| i.wait == Wait::Held));
    assert!(!state.instances.is_empty());
}
