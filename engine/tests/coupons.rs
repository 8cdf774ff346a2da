//! Coupon codes (issue 10 item 4): unique per coupon across the store,
//! unguessable without the store's secret, reproducible in previews, and
//! checked against the store's code index at commit.

mod support;

use serde_json::json;
use std::collections::BTreeSet;
use support::*;
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::machine::{CouponSecret, coupon_code};
use waymark_core::model::{Event, Input};
use waymark_engine::runtime::{Runtime, effects};
use waymark_engine::store::{Batch, MemoryKv, SledKv, Store, StoreError};

const WELCOME: &str = r#"
journey welcome { trigger event signup entry once
  give coupon "NEW10" expires in 14d }
"#;

fn codes(h: &Harness) -> Vec<String> {
    h.of_kind(Kind::Coupon)
        .iter()
        .map(|r| r.code.clone().unwrap())
        .collect()
}

#[test]
fn users_whose_ids_collided_before_get_different_codes() {
    // Under the old 40-bit hash of the idempotency key these two users,
    // entering the same journey version, were given one code.
    let mut h = Harness::new(WELCOME);
    h.track("a8d9bbe610388991", "signup", json!({}));
    h.track("5f2ddad55d1b53ba", "signup", json!({}));
    let got = codes(&h);
    assert_eq!(got.len(), 2);
    assert_ne!(got[0], got[1]);
}

#[test]
fn ten_thousand_users_get_ten_thousand_codes() {
    let mut h = Harness::new(WELCOME);
    for i in 0..10_000 {
        h.track(&format!("u{i}"), "signup", json!({}));
    }
    let got: BTreeSet<String> = codes(&h).into_iter().collect();
    assert_eq!(got.len(), 10_000);
    assert!(got.iter().all(|c| c.starts_with("NEW10-") && c.len() == 16));
}

#[test]
fn previews_are_reproducible_and_the_daemons_secret_changes_every_code() {
    let run = |secret: Option<CouponSecret>| {
        let mut deployment = Deployment::new(compile(WELCOME));
        if let Some(s) = secret {
            deployment.coupon_secret = s;
        }
        let mut runtime = Runtime::new(Store::new(MemoryKv::default()), deployment);
        let now = t(START);
        let mut out = Vec::new();
        for user in ["alice", "bob", "carol"] {
            let input = Input::Track(Event {
                user: user.into(),
                name: "signup".into(),
                properties: waymark_dsl::value::Value::from_json(&json!({})),
                at: now,
                message_id: None,
            });
            for r in runtime.ingest(&[input], now).unwrap() {
                if r.kind == Kind::Coupon {
                    out.push(r.code.unwrap());
                }
            }
        }
        out
    };
    // `simulate` and `test` use the fixed seed: the same run, the same codes.
    assert_eq!(run(None), run(None));
    // Another secret: none of the codes can be worked out from the first set.
    let a = run(Some(CouponSecret([1; 32])));
    let b = run(Some(CouponSecret([2; 32])));
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|c| !b.contains(c)), "{a:?} {b:?}");
    // The code depends on the count of codes issued, not on who gets it.
    assert_eq!(a[0], coupon_code(&CouponSecret([1; 32]), "NEW10", 0));
}

fn coupon_record(user: &str, code: &str) -> Record {
    let mut r = Record::new(t(START), user, Kind::Coupon);
    r.coupon = Some("NEW10".into());
    r.code = Some(code.into());
    r
}

#[test]
fn the_store_refuses_a_commit_that_would_issue_a_code_twice() {
    let store = Store::new(MemoryKv::default());
    // The codes a batch issues, as the runtime hands them to the store.
    let commit = |journal: Vec<Record>| {
        store.commit(Batch {
            codes: effects::codes(&journal),
            journal,
            ..Batch::default()
        })
    };
    commit(vec![coupon_record("alice", "NEW10-AAAAAAAAAA")]).unwrap();
    assert_eq!(
        store
            .coupon_holder("NEW10", "NEW10-AAAAAAAAAA")
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    // Again, for someone else: refused, and nothing of the batch is kept.
    let err = commit(vec![
        coupon_record("bob", "NEW10-BBBBBBBBBB"),
        coupon_record("bob", "NEW10-AAAAAAAAAA"),
    ])
    .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateCoupon { .. }), "{err}");
    assert!(err.to_string().contains("NEW10-AAAAAAAAAA"), "{err}");
    assert_eq!(
        store.coupon_holder("NEW10", "NEW10-BBBBBBBBBB").unwrap(),
        None
    );
    // Twice within one batch is refused too.
    let err = commit(vec![
        coupon_record("carol", "NEW10-CCCCCCCCCC"),
        coupon_record("dave", "NEW10-CCCCCCCCCC"),
    ])
    .unwrap_err();
    assert!(matches!(err, StoreError::DuplicateCoupon { .. }), "{err}");
    // Prepared before the first is applied, as the daemon prepares a
    // batch while the one before is applied: refused as it is applied.
    let batch = |journal: Vec<Record>| Batch {
        codes: effects::codes(&journal),
        journal,
        ..Batch::default()
    };
    let first = store
        .prepare(&mut batch(vec![coupon_record("erin", "NEW10-EEEEEEEEEE")]))
        .unwrap();
    let second = store
        .prepare(&mut batch(vec![coupon_record("frank", "NEW10-EEEEEEEEEE")]))
        .unwrap();
    first.apply(store.kv()).unwrap();
    let err = second.apply(store.kv()).unwrap_err();
    assert!(matches!(err, StoreError::DuplicateCoupon { .. }), "{err}");
    store.forget_prepared();
    assert_eq!(
        store
            .coupon_holder("NEW10", "NEW10-EEEEEEEEEE")
            .unwrap()
            .as_deref(),
        Some("erin")
    );
}

#[test]
fn a_store_keeps_one_random_secret_and_erasure_leaves_codes_taken_by_nobody() {
    let dir = std::env::temp_dir().join(format!("waymark-coupons-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = {
        let store = Store::open(SledKv::open(&dir.join("s")).unwrap()).unwrap();
        store.coupon_secret().unwrap()
    };
    let again = Store::open(reopen_sled(&dir.join("s"))).unwrap();
    assert_eq!(again.coupon_secret().unwrap(), first, "kept across opens");
    let other = Store::open(SledKv::open(&dir.join("t")).unwrap()).unwrap();
    assert_ne!(other.coupon_secret().unwrap(), first, "random per store");
    assert_ne!(first, CouponSecret::default());

    let mut deployment = Deployment::new(compile(WELCOME));
    deployment.coupon_secret = again.coupon_secret().unwrap();
    let mut runtime = Runtime::new(again, deployment);
    let now = t(START);
    let input = Input::Track(Event {
        user: "alice".into(),
        name: "signup".into(),
        properties: waymark_dsl::value::Value::from_json(&json!({})),
        at: now,
        message_id: None,
    });
    let code = runtime
        .ingest(&[input], now)
        .unwrap()
        .into_iter()
        .find_map(|r| r.code)
        .unwrap();
    runtime.drain().unwrap();
    assert_eq!(
        runtime
            .store
            .coupon_holder("NEW10", &code)
            .unwrap()
            .as_deref(),
        Some("alice")
    );
    runtime.erase_user("alice").unwrap();
    assert_eq!(
        runtime
            .store
            .coupon_holder("NEW10", &code)
            .unwrap()
            .as_deref(),
        Some("")
    );
    drop(runtime);
    drop(other);
    let _ = std::fs::remove_dir_all(&dir);
}
