//! User state as the store writes it: times and numbers as integers, no
//! RFC 3339 or decimal text, reading back to the same state, and smaller
//! than the same state written for people (text times and numbers).

mod support;

use serde::Serialize;
use serde_json::json;
use support::*;
use waymark_core::model::UserState;

const SCRIPT: &str = r#"
journey welcome {
  trigger event signed_up
  entry once
  give coupon "NEW10" expires in 7d as c
  give points 12.5 reason "welcome" expires in 30d
  set user.level = "bronze"
  wait 1d
  send sms template "HELLO" { code: c.code }
}
task streak { on event checkin count 3 within 7d { give points 10 } repeatable }
"#;

/// A user with every part of the state filled in.
fn rich_user() -> UserState {
    let mut h = Harness::new(SCRIPT);
    h.identify(
        "u1",
        json!({ "phone": "13800000000", "vip": true, "spent": 99.9 }),
    );
    h.track(
        "u1",
        "signed_up",
        json!({ "channel": "wecom", "at_store": 3 }),
    );
    for day in 0..4 {
        h.advance(hours(20 + day));
        h.track("u1", "checkin", json!({}));
        h.track(
            "u1",
            "order_paid",
            json!({ "amount": 128.40, "items": ["tea", "cup"] }),
        );
    }
    let user = h.user("u1");
    assert!(!user.coupons.is_empty() && !user.points.lots.is_empty());
    assert!(!user.tasks.is_empty() && !user.journeys.is_empty());
    user
}

#[test]
fn a_user_is_stored_without_text_times_or_numbers_and_reads_back_the_same() {
    let user = rich_user();
    let stored = rmp_serde::to_vec_named(&user).unwrap();
    assert_eq!(rmp_serde::from_slice::<UserState>(&stored).unwrap(), user);
    let shown = String::from_utf8_lossy(&stored);
    assert!(
        !shown.contains("12.5") && !shown.contains("2025-11-1"),
        "{shown}"
    );
    // The same state written for people (times and numbers as text) is
    // what the compact form saves over.
    let mut for_people = Vec::new();
    user.serialize(
        &mut rmp_serde::Serializer::new(&mut for_people)
            .with_struct_map()
            .with_human_readable(),
    )
    .unwrap();
    assert!(
        stored.len() * 100 < for_people.len() * 85,
        "compact {} B against {} B",
        stored.len(),
        for_people.len()
    );
}
