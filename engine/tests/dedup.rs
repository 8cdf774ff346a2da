//! Dedup of `messageId`s: an event whose id was seen within the window is
//! dropped, however the ids are kept (fresh in batch chunks, compacted into
//! runs, or in one key each as older stores have them). Ids are forgotten
//! by pruning, which the daemon's writer runs at start and hourly: without
//! it they would pile up for ever.

mod support;

use serde_json::json;
use support::*;
use waymark_core::deployment::Deployment;
use waymark_core::model::{Event, Input};
use waymark_dsl::value::Value;
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{Kv, MemoryKv, Store};

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
    assert_eq!(h.runtime.prune_dedup(h.now).unwrap(), 3);
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

const SCRIPT: &str = r#"rule r { when event buy then { give points 1 } }"#;

fn buy(n: usize) -> Input {
    Input::Track(Event {
        user: format!("u{}", n % 50),
        name: "buy".into(),
        properties: Value::Record(Default::default()),
        at: t(START),
        message_id: Some(format!("order-{n}")),
    })
}

fn points(kv: &MemoryKv) -> i64 {
    let store = Store::new(kv.clone());
    (0..50)
        .map(|u| {
            let user = store.user(&format!("u{u}")).unwrap().unwrap();
            i64::try_from(user.points.balance()).unwrap()
        })
        .sum()
}

#[test]
fn ids_stay_seen_once_compacted_into_runs_and_after_a_restart() {
    let kv = MemoryKv::default();
    let mut runtime = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(SCRIPT)));
    let now = t(START);
    // Enough ids for the fresh ones to be compacted into runs twice over.
    let events = 40_000;
    let all: Vec<Input> = (0..events).map(buy).collect();
    for batch in all.chunks(1_000) {
        runtime
            .ingest_pipelined(
                batch,
                now,
                Box::new(|r| {
                    r.unwrap();
                }),
            )
            .unwrap();
    }
    runtime.drain().unwrap();
    // Compactions run on a thread of their own; the last may be under way.
    runtime.finish_dedup_tidy().unwrap();
    let runs = kv.range(b"N/", b"N0", usize::MAX).unwrap().len();
    assert!(runs >= 2, "{runs} runs");
    assert_eq!(points(&kv), events as i64);

    // Sent again, early and late ones alike: all dropped.
    let again: Vec<Input> = (0..events).step_by(97).map(buy).collect();
    runtime.ingest(&again, now).unwrap();
    assert_eq!(points(&kv), events as i64);
    // And by a restarted runtime, which reads them from the store.
    drop(runtime);
    let mut restarted = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(SCRIPT)));
    restarted.ingest(&again, now).unwrap();
    assert_eq!(points(&kv), events as i64);
    // New ids still count.
    restarted
        .ingest(&[buy(events), buy(events + 1)], now)
        .unwrap();
    assert_eq!(points(&kv), events as i64 + 2);
}
