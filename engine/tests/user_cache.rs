//! Users kept decoded between batches never get ahead of, or behind, the
//! store: not after an erasure, not after a commit that failed.

mod support;

use std::sync::atomic::Ordering;
use support::*;
use waymark_core::deployment::Deployment;
use waymark_core::model::{Event, Input};
use waymark_dsl::value::Value;
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{Kv, Store};

const SCRIPT: &str = r#"
rule paid { when event order_paid then { give points 10 reason "paid" } }
"#;

fn paid(user: &str, n: u32) -> Input {
    Input::Track(Event {
        user: user.into(),
        name: "order_paid".into(),
        properties: Value::Record(Default::default()),
        at: t(START),
        message_id: Some(format!("m{n}")),
    })
}

fn balance<K: Kv>(runtime: &Runtime<K>, user: &str) -> String {
    runtime
        .store
        .user(user)
        .unwrap()
        .map(|u| u.points.balance().to_string())
        .unwrap_or_default()
}

#[test]
fn a_failed_commit_leaves_no_cached_state_ahead_of_the_store() {
    let kv = TestKv::default();
    let mut runtime = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(SCRIPT)));
    runtime.ingest(&[paid("u1", 1)], t(START)).unwrap();
    kv.failing.store(true, Ordering::SeqCst);
    assert!(runtime.ingest(&[paid("u1", 2)], t(START)).is_err());
    kv.failing.store(false, Ordering::SeqCst);
    runtime.ingest(&[paid("u1", 3)], t(START)).unwrap();
    assert_eq!(
        balance(&runtime, "u1"),
        "20",
        "the points of the failed batch are not counted"
    );
}

#[test]
fn an_erased_user_starts_over_even_when_they_were_kept_in_memory() {
    let mut h = Harness::new(SCRIPT);
    h.track("u1", "order_paid", serde_json::json!({}));
    h.track("u1", "order_paid", serde_json::json!({}));
    assert_eq!(balance(&h.runtime, "u1"), "20");
    assert!(h.runtime.erase_user("u1").unwrap());
    assert_eq!(balance(&h.runtime, "u1"), "");
    assert!(!h.runtime.erase_user("u1").unwrap(), "already gone");
    h.track("u1", "order_paid", serde_json::json!({}));
    assert_eq!(balance(&h.runtime, "u1"), "10");
}
