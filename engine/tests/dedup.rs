//! Dedup keys (`messageId`s seen) are kept for the dedup window, then
//! dropped by the runtime, which the daemon's writer calls at start and
//! hourly: without it they would pile up for ever.

mod support;

use serde_json::json;
use support::*;
use waymark_engine::store::Kv;

fn dedup_keys(h: &Harness) -> usize {
    h.runtime
        .store
        .kv()
        .range(b"d/", b"d0", usize::MAX)
        .unwrap()
        .len()
}

#[test]
fn ids_past_the_window_are_dropped_and_then_count_again() {
    let mut h = Harness::new(r#"rule r { when event buy then { give points 1 } }"#);
    for i in 0..3 {
        let now = h.now;
        h.track_with_id("u1", "buy", json!({}), now, &format!("old{i}"));
    }
    h.advance(days(6));
    let now = h.now;
    h.track_with_id("u1", "buy", json!({}), now, "new");
    h.advance(days(2));
    assert_eq!(dedup_keys(&h), 4);
    assert_eq!(h.runtime.prune_dedup(h.now).unwrap(), 3);
    assert_eq!(dedup_keys(&h), 1);
    let now = h.now;
    h.track_with_id("u1", "buy", json!({}), now, "new");
    assert_eq!(
        h.user("u1").points.balance(),
        4.into(),
        "still within the window"
    );
    h.track_with_id("u1", "buy", json!({}), now, "old0");
    assert_eq!(
        h.user("u1").points.balance(),
        5.into(),
        "forgotten after 7 days"
    );
}
