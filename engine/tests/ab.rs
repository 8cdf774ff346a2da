//! A/B splits and their numbers (issue 10 item 5): a goal reached after
//! the journey finished, within its window, counts for the user's arm;
//! goal rates are over users put in an arm; arms report their lift over
//! the holdout.

mod support;

use serde_json::json;
use std::collections::BTreeMap;
use support::*;
use waymark_core::journal::Kind;

const OFFER: &str = r#"
journey winback {
  trigger event lapsed
  entry once
  goal buy within 3d
  split offer {
    50% coupon { send sms template "COUPON" }
    50% holdout { }
  }
}
"#;

#[test]
fn a_goal_after_the_journey_finished_counts_for_the_users_arm_and_lift_is_over_the_holdout() {
    let mut h = Harness::new(OFFER);
    let users: Vec<String> = (0..400).map(|i| format!("u{i}")).collect();
    for u in &users {
        h.track(u, "lapsed", json!({}));
    }
    // Everyone finished at once (the arms have no waits).
    assert_eq!(h.of_kind(Kind::Exit).len(), 400);
    let arm_of: BTreeMap<String, String> = h
        .of_kind(Kind::Split)
        .iter()
        .map(|r| (r.user.to_string(), r.arm.clone().unwrap()))
        .collect();
    assert_eq!(arm_of.len(), 400, "one split record per user");
    // Two days later, within the 3-day window: all of the coupon arm buys,
    // and a quarter of the holdout.
    h.advance(days(2));
    let mut holdout_buyers = 0;
    let mut coupon = 0;
    let mut holdout = 0;
    for (u, arm) in &arm_of {
        if arm == "coupon" {
            coupon += 1;
            h.track(u, "buy", json!({}));
        } else {
            holdout += 1;
            if holdout % 4 == 0 {
                holdout_buyers += 1;
                h.track(u, "buy", json!({}));
            }
        }
    }
    let goals = h.of_kind(Kind::Goal);
    assert_eq!(goals.len(), coupon + holdout_buyers);
    assert!(goals.iter().all(|g| {
        g.arms
            .as_ref()
            .is_some_and(|a| a["offer"] == arm_of[g.user.as_str()])
    }));
    // After the window a purchase is no goal.
    h.advance(days(2));
    h.track(&users[0], "buy", json!({}));
    assert_eq!(h.of_kind(Kind::Goal).len(), coupon + holdout_buyers);

    h.runtime.drain().unwrap();
    let stats = h.runtime.store.journey_stats("winback").unwrap();
    let (_, stats) = &stats[0];
    let json = stats.to_json();
    let arms = &json["arms"]["offer"];
    assert_eq!(arms["coupon"]["assigned"], coupon as u64);
    assert_eq!(arms["coupon"]["goals"], coupon as u64);
    assert_eq!(arms["coupon"]["goal_rate"], 1.0);
    assert_eq!(arms["holdout"]["assigned"], holdout as u64);
    assert_eq!(arms["holdout"]["holdout"], true);
    let holdout_rate = holdout_buyers as f64 / holdout as f64;
    assert_eq!(arms["holdout"]["goal_rate"], holdout_rate);
    assert_eq!(arms["coupon"]["lift"], 1.0 - holdout_rate);
}

#[test]
fn goal_rates_count_users_still_in_the_journey() {
    // Arms with a wait: nobody has finished when the goals come in.
    let mut h = Harness::new(
        r#"
journey nudge {
  trigger event cart
  goal buy within 7d
  split offer {
    50% a { wait 5d send sms template "A" }
    50% b { wait 5d send sms template "B" }
  }
}
"#,
    );
    for i in 0..100 {
        h.track(&format!("u{i}"), "cart", json!({}));
    }
    h.advance(days(1));
    for r in h
        .of_kind(Kind::Split)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>()
    {
        if r.arm.as_deref() == Some("a") {
            h.track(&r.user, "buy", json!({}));
        }
    }
    h.runtime.drain().unwrap();
    let stats = &h.runtime.store.journey_stats("nudge").unwrap()[0].1;
    let json = stats.to_json();
    let a = &json["arms"]["offer"]["a"];
    let b = &json["arms"]["offer"]["b"];
    assert_eq!(a["goal_rate"], 1.0, "{json}");
    assert_eq!(b["goal_rate"], 0.0, "{json}");
    assert_eq!(
        a["assigned"].as_u64().unwrap() + b["assigned"].as_u64().unwrap(),
        100
    );
    assert!(a.get("lift").is_none(), "no holdout, no lift");
}
