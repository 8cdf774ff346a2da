//! A schedule over a segment: every member is checked, page by page, the
//! segment's members enter, and the members the fire leaves as they were
//! are not written again (a daily audience over a million members would
//! otherwise rewrite a million states).

mod support;

use serde_json::json;
use support::*;
use waymark_core::deployment::Deployment;
use waymark_core::journal::Kind;
use waymark_core::model::Input;
use waymark_dsl::value::Value;
use waymark_engine::runtime::Runtime;
use waymark_engine::store::Store;

const SCRIPT: &str = r#"
segment gold = user.tier == "gold"

journey morning {
  trigger schedule "0 10 * * *" tz "Asia/Shanghai" for gold
  entry every 1d
  send sms template "GOLD_MORNING"
}
"#;

/// More members than a page of the scan (500).
const MEMBERS: usize = 1_200;

fn member(i: usize) -> String {
    format!("m{i:04}")
}

fn fire_over_members(cached: usize) {
    let kv = TestKv::default();
    let mut runtime = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(SCRIPT)));
    runtime.set_user_cache(cached);
    runtime.start_schedules_at(t(START));
    let inputs: Vec<Input> = (0..MEMBERS)
        .map(|i| Input::Identify {
            user: member(i),
            traits: Value::from_json(&json!({
                "tier": if i.is_multiple_of(100) { "gold" } else { "silver" }
            })),
            at: t(START),
            message_id: None,
        })
        .collect();
    runtime.ingest(&inputs, t(START)).unwrap();
    let store = Store::new(kv.inner.clone());
    let before: Vec<_> = (0..MEMBERS)
        .map(|i| store.user(&member(i)).unwrap().unwrap())
        .collect();
    kv.written.lock().unwrap().clear();

    // 10:00 in Shanghai is 02:00 UTC.
    let records = runtime.advance_to(t(START) + hours(3)).unwrap();

    let gold: Vec<String> = (0..MEMBERS).step_by(100).map(member).collect();
    let mut entered: Vec<String> = records
        .iter()
        .filter(|r| r.kind == Kind::Enter)
        .map(|r| r.user.to_string())
        .collect();
    entered.sort();
    assert_eq!(entered, gold, "the gold members enter, and no one else");
    // A user's key is `u/` and their id, ended by a 0 byte.
    let mut users_written: Vec<String> = kv
        .written
        .lock()
        .unwrap()
        .iter()
        .filter_map(|k| k.strip_prefix(b"u/"))
        .map(|rest| String::from_utf8(rest.split(|b| *b == 0).next().unwrap().to_vec()).unwrap())
        .collect();
    users_written.sort();
    assert_eq!(
        users_written, gold,
        "only the members who entered are written (user cache {cached})"
    );
    for (i, was) in before.iter().enumerate() {
        let now = store.user(&member(i)).unwrap().unwrap();
        if i.is_multiple_of(100) {
            let entries = now.journeys.get("morning").map(|m| m.entries);
            assert_eq!(entries, Some(1), "{} entered the journey", member(i));
        } else {
            assert_eq!(&now, was, "{} is as it was", member(i));
        }
    }
}

#[test]
fn a_fire_writes_only_the_members_it_changed_read_from_the_store() {
    fire_over_members(0);
}

#[test]
fn a_fire_writes_only_the_members_it_changed_kept_in_memory() {
    fire_over_members(10_000);
}
