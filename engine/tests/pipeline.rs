//! Pipelined ingest: the next batch is evaluated while the one before is
//! applied and flushed. It must read what that batch wrote, fail with it,
//! and acknowledge each batch only once it is durable.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use waymark_dsl::value::Value;
use waymark_engine::deployment::Deployment;
use waymark_engine::model::{Event, Input};
use waymark_engine::runtime::{Durable, Runtime};
use waymark_engine::store::Store;

const SCRIPT: &str = r#"
rule paid { when event order_paid then { give points 10 reason "paid" } }
"#;

/// A store whose writes take long enough for the next batch to be
/// evaluated while one is in flight.
fn slow() -> TestKv {
    TestKv {
        delay: Duration::from_millis(30),
        ..TestKv::default()
    }
}

fn paid(user: &str, message: &str) -> Input {
    Input::Track(Event {
        user: user.into(),
        name: "order_paid".into(),
        properties: Value::Record(Default::default()),
        at: t(START),
        message_id: Some(message.into()),
    })
}

fn runtime(kv: &TestKv, cached: usize) -> Runtime<TestKv> {
    let mut runtime = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(SCRIPT)));
    runtime.set_user_cache(cached);
    runtime
}

/// Outcomes of `durable`, by batch name.
type Outcomes = Arc<Mutex<Vec<(String, Result<(), String>)>>>;

fn note(outcomes: &Outcomes, name: &str) -> Durable {
    let outcomes = outcomes.clone();
    let name = name.to_string();
    Box::new(move |r| {
        outcomes
            .lock()
            .unwrap()
            .push((name, r.map(|_| ()).map_err(|e| e.to_string())))
    })
}

fn balance(kv: &TestKv, user: &str) -> String {
    Store::new(kv.inner.clone())
        .user(user)
        .unwrap()
        .map(|u| u.points.balance().to_string())
        .unwrap_or_default()
}

#[test]
fn a_batch_is_acknowledged_only_once_it_is_in_the_store() {
    let kv = slow();
    let mut rt = runtime(&kv, 100);
    let outcomes = Outcomes::default();
    rt.ingest_pipelined(&[paid("u1", "m1")], t(START), note(&outcomes, "b1"))
        .unwrap();
    assert!(outcomes.lock().unwrap().is_empty(), "not durable yet");
    assert_eq!(balance(&kv, "u1"), "", "not applied yet");
    rt.drain().unwrap();
    assert_eq!(*outcomes.lock().unwrap(), vec![("b1".to_string(), Ok(()))]);
    assert_eq!(balance(&kv, "u1"), "10");
}

#[test]
fn the_next_batch_sees_the_users_and_message_ids_of_the_one_in_flight() {
    for cached in [0, 100] {
        let kv = slow();
        let mut rt = runtime(&kv, cached);
        let outcomes = Outcomes::default();
        rt.ingest_pipelined(&[paid("u1", "m1")], t(START), note(&outcomes, "b1"))
            .unwrap();
        // The same event again (dropped), and a new one for the same user,
        // while b1 is still being applied.
        rt.ingest_pipelined(
            &[paid("u1", "m1"), paid("u1", "m2")],
            t(START),
            note(&outcomes, "b2"),
        )
        .unwrap();
        rt.drain().unwrap();
        assert_eq!(balance(&kv, "u1"), "20", "with {cached} users cached");
        assert_eq!(outcomes.lock().unwrap().len(), 2);
    }
}

#[test]
fn a_failed_batch_fails_the_one_built_on_it_and_leaves_nothing_in_memory() {
    let kv = slow();
    let mut rt = runtime(&kv, 100);
    let outcomes = Outcomes::default();
    rt.ingest_pipelined(&[paid("u1", "m1")], t(START), note(&outcomes, "b1"))
        .unwrap();
    rt.drain().unwrap();
    kv.failing.store(true, Ordering::SeqCst);
    rt.ingest_pipelined(&[paid("u1", "m2")], t(START), note(&outcomes, "b2"))
        .unwrap();
    // Another user, so u1's state as b2 left it is not taken out again.
    let e = rt
        .ingest_pipelined(&[paid("u2", "m3")], t(START), note(&outcomes, "b3"))
        .unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    kv.failing.store(false, Ordering::SeqCst);
    rt.ingest_pipelined(&[paid("u1", "m4")], t(START), note(&outcomes, "b4"))
        .unwrap();
    rt.drain().unwrap();
    let outcomes = outcomes.lock().unwrap();
    let ok: Vec<(&str, bool)> = outcomes
        .iter()
        .map(|(n, r)| (n.as_str(), r.is_ok()))
        .collect();
    assert_eq!(
        ok,
        [("b1", true), ("b2", false), ("b3", false), ("b4", true)]
    );
    assert_eq!(balance(&kv, "u1"), "20", "b1 and b4 only");
    assert_eq!(balance(&kv, "u2"), "");
    // m2 and m3 were never stored as seen: sent again, they count.
    drop(outcomes);
    rt.ingest(&[paid("u1", "m2"), paid("u2", "m3")], t(START))
        .unwrap();
    assert_eq!(balance(&kv, "u1"), "30");
    assert_eq!(balance(&kv, "u2"), "10");
}

#[test]
fn dropping_the_runtime_finishes_the_batch_in_flight() {
    let kv = slow();
    let outcomes = Outcomes::default();
    {
        let mut rt = runtime(&kv, 100);
        rt.ingest_pipelined(&[paid("u1", "m1")], t(START), note(&outcomes, "b1"))
            .unwrap();
    }
    assert_eq!(outcomes.lock().unwrap().len(), 1);
    assert_eq!(balance(&kv, "u1"), "10");
}
