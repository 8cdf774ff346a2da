//! Pipelined ingest: the next batch is evaluated while the one before is
//! applied and flushed. It must read what that batch wrote, fail with it,
//! and acknowledge each batch only once it is durable.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use waymark_core::deployment::Deployment;
use waymark_core::journal::Kind;
use waymark_core::model::{Event, Input};
use waymark_dsl::value::Value;
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
fn looking_for_due_timers_when_none_is_due_does_not_wait_for_the_batch_in_flight() {
    // The daemon's writer asks for due timers after every batch: waiting
    // for the batch in flight each time held the next batch until the
    // last one was flushed.
    let kv = slow();
    let mut rt = runtime(&kv, 100);
    let outcomes = Outcomes::default();
    rt.ingest_pipelined(&[paid("u1", "m1")], t(START), note(&outcomes, "b1"))
        .unwrap();
    let mut fired = Vec::new();
    let caught_up = rt
        .advance_some(t(START), 4, &mut |records| fired.extend(records))
        .unwrap();
    assert!(caught_up && fired.is_empty(), "nothing was due");
    assert!(outcomes.lock().unwrap().is_empty(), "b1 is still in flight");
    assert!(rt.committing());
    rt.drain().unwrap();
    assert_eq!(*outcomes.lock().unwrap(), vec![("b1".to_string(), Ok(()))]);
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
fn the_next_batch_goes_while_one_flushes_and_fails_if_that_flush_fails() {
    // Applied is enough for the next batch to be handed over (the store
    // has what it wrote); it is acknowledged only once flushed, and the
    // next one, built on it, fails with it if the flush fails.
    let kv = TestKv {
        flush_delay: Duration::from_millis(300),
        ..TestKv::default()
    };
    let mut rt = runtime(&kv, 100);
    let outcomes = Outcomes::default();
    kv.fail_flush.store(1, Ordering::SeqCst);
    rt.ingest_pipelined(&[paid("u1", "m1")], t(START), note(&outcomes, "b1"))
        .unwrap();
    rt.ingest_pipelined(&[paid("u2", "m2")], t(START), note(&outcomes, "b2"))
        .unwrap();
    assert!(
        outcomes.lock().unwrap().is_empty(),
        "b2 was handed over while b1 was still flushing"
    );
    let e = rt.drain().unwrap_err();
    assert!(e.to_string().contains("flush failed"), "{e}");
    let ok: Vec<(String, bool)> = outcomes
        .lock()
        .unwrap()
        .iter()
        .map(|(n, r)| (n.clone(), r.is_ok()))
        .collect();
    assert_eq!(ok, [("b1".to_string(), false), ("b2".to_string(), false)]);
    assert_eq!(kv.applies.load(Ordering::SeqCst), 1, "b2 was never applied");
    // Nothing of b2 is kept in memory: m2 was never stored as seen, so
    // sent again it counts, from the store's u2.
    kv.fail_flush.store(0, Ordering::SeqCst);
    rt.ingest_pipelined(&[paid("u2", "m2")], t(START), note(&outcomes, "b3"))
        .unwrap();
    rt.drain().unwrap();
    assert_eq!(balance(&kv, "u2"), "10");
    assert_eq!(outcomes.lock().unwrap().last().unwrap().1, Ok(()));
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

/// Each `step` event runs about 800 steps, then records its `n`.
const HEAVY: &str = r#"
rule heavy { when event step then {
  repeat 400 times { give points 1 }
  set user.last = event.n
} }
"#;

fn step(user: &str, n: u32) -> Input {
    let mut properties = waymark_dsl::value::Fields::new();
    properties.insert("n".to_string(), Value::Number(n.into()));
    Input::Track(Event {
        user: user.into(),
        name: "step".into(),
        properties: Value::Record(properties),
        at: t(START),
        message_id: Some(format!("{user}-{n}")),
    })
}

fn heavy(kv: &TestKv) -> Runtime<TestKv> {
    let mut runtime = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(HEAVY)));
    // About two and a half events' worth.
    runtime.set_batch_step_budget(2_000);
    runtime
}

#[test]
fn a_batch_over_its_step_budget_commits_what_ran_and_later_batches_run_the_rest_once_in_order() {
    let kv = TestKv::default();
    let mut rt = heavy(&kv);
    let outcomes = Outcomes::default();
    let first: Vec<Input> = (1..=4)
        .flat_map(|n| ["a", "b", "c"].map(|u| step(u, n)))
        .collect();
    let records = rt
        .ingest_pipelined(&first, t(START), note(&outcomes, "first"))
        .unwrap();
    rt.drain().unwrap();
    // Acknowledged: what ran is committed, and the rest is in the store.
    assert_eq!(*outcomes.lock().unwrap(), vec![("first".into(), Ok(()))]);
    let points = records.iter().filter(|r| r.kind == Kind::Points).count();
    assert!(
        (400..12 * 400).contains(&points),
        "the batch stopped at its budget: {points} points records"
    );
    let stored = Store::new(kv.inner.clone()).deferred_inputs().unwrap();
    assert_eq!(
        stored.len(),
        12 - points / 400,
        "every input not run is stored"
    );
    drop(rt);

    // A restart finds them; new inputs (one of them a retry of an input
    // that was deferred) queue behind them.
    let mut rt = heavy(&kv);
    assert_eq!(rt.deferred().unwrap(), stored.len());
    rt.ingest_pipelined(
        &[step("a", 5), step("c", 4)],
        t(START),
        note(&outcomes, "second"),
    )
    .unwrap();
    let mut batches = 0;
    while rt.deferred().unwrap() > 0 {
        batches += 1;
        assert!(batches < 20, "the deferred inputs never ran out");
        rt.ingest_pipelined(&[], t(START), note(&outcomes, "more"))
            .unwrap();
    }
    rt.drain().unwrap();
    assert!(outcomes.lock().unwrap().iter().all(|(_, r)| r.is_ok()));
    let store = Store::new(kv.inner.clone());
    assert!(store.deferred_inputs().unwrap().is_empty());
    for (user, events, last) in [("a", 5, 5), ("b", 4, 4), ("c", 4, 4)] {
        let state = store.user(user).unwrap().unwrap();
        assert_eq!(
            state.points.balance().to_string(),
            (400 * events).to_string(),
            "{user}: each event ran exactly once"
        );
        assert_eq!(
            state.traits.get("last"),
            Some(&Value::Number(last.into())),
            "{user}: events ran in the order they came"
        );
    }
}

/// Twelve users, three events each in turn, with a resent message id.
fn many() -> Vec<Input> {
    let mut inputs: Vec<Input> = (0..36)
        .map(|i| paid(&format!("u{}", i % 12), &format!("m{i}")))
        .collect();
    inputs.insert(20, paid("u3", "m3"));
    inputs
}

#[test]
fn a_batch_in_parts_leaves_what_one_batch_leaves_and_is_flushed_once() {
    let whole = TestKv::default();
    let one = runtime(&whole, 0).ingest(&many(), t(START)).unwrap();
    for cached in [0, 100] {
        let kv = slow();
        let mut rt = runtime(&kv, cached);
        let outcomes: Arc<Mutex<Vec<Result<usize, String>>>> = Default::default();
        let seen = outcomes.clone();
        let records = rt
            .ingest_in_parts(
                &many(),
                t(START),
                5,
                Box::new(move |r| {
                    seen.lock()
                        .unwrap()
                        .push(r.map(|c| c.duplicates).map_err(|e| e.to_string()))
                }),
            )
            .unwrap();
        rt.drain().unwrap();
        assert_eq!(records, one, "with {cached} users cached");
        assert_eq!(
            *outcomes.lock().unwrap(),
            vec![Ok(1)],
            "one answer, one duplicate"
        );
        assert_eq!(
            kv.applies.load(Ordering::SeqCst),
            8,
            "37 inputs in parts of 5"
        );
        assert_eq!(
            kv.flushes.load(Ordering::SeqCst),
            1,
            "flushed at the end only"
        );
        for user in ["u0", "u3", "u11"] {
            assert_eq!(balance(&kv, user), "30", "{user}");
        }
        assert_eq!(
            Store::new(kv.inner.clone()).journal("u3", 100).unwrap(),
            Store::new(whole.inner.clone()).journal("u3", 100).unwrap()
        );
    }
}

#[test]
fn a_part_that_fails_fails_the_whole_batch_and_no_later_part_runs() {
    let kv = slow();
    kv.fail_apply.store(3, Ordering::SeqCst);
    let mut rt = runtime(&kv, 100);
    let outcomes = Outcomes::default();
    let e = rt
        .ingest_in_parts(&many(), t(START), 5, note(&outcomes, "parts"))
        .unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    // The part after the failed one found it failed; none after ran.
    assert_eq!(kv.applies.load(Ordering::SeqCst), 3);
    assert_eq!(kv.flushes.load(Ordering::SeqCst), 0);
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes.len(), 1, "answered once: {outcomes:?}");
    assert!(outcomes[0].1.as_ref().unwrap_err().contains("disk full"));
}
