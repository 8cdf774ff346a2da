//! Identity merges through the daemon's runtime and store: any
//! interleaving of events and merges leaves the person as the same events
//! sent to one id in order would, with nothing given twice or lost.

use super::*;
use crate::store::MemoryKv;
use rust_decimal::Decimal;
use waymark_core::journal::Kind;
use waymark_core::model::Event;
use waymark_dsl::value::{Fields, Value};

const SCRIPT: &str = r#"
rule buy "buy" {
  when event purchase
  then {
    give points event.amount reason "buy"
  }
}

rule welcome_gift "gift" {
  when event visit
  if count(visit) == 1
  then {
    tag "visitor"
  }
}

task three "three check-ins" {
  on event checkin
  count 3 {
    give points 7 reason "task"
  }
  repeatable
}

task friends "three friends" {
  on event invite
  distinct event.friend
  count 2 {
    give coupon "FRIEND" expires in 30d
  }
  repeatable
}
"#;

fn deployment() -> Deployment {
    let mut sources = waymark_dsl::Sources::new();
    sources.add("merge.journey", SCRIPT);
    let compiled = waymark_dsl::compile(
        sources,
        waymark_dsl::Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    Deployment::new(compiled.plan.expect("the script compiles"))
}

fn at(minute: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_760_000_000 + minute * 60, 0).unwrap()
}

fn event(user: &str, name: &str, minute: i64, props: &[(&str, Value)]) -> Input {
    let mut properties = Fields::new();
    for (k, v) in props {
        properties.insert((*k).to_string(), v.clone());
    }
    Input::Track(Event {
        user: user.into(),
        name: name.into(),
        properties: Value::Record(properties),
        at: at(minute),
        message_id: None,
    })
}

fn merge(into: &str, from: &str) -> Input {
    Input::Merge {
        user: into.into(),
        from: from.into(),
        how: "alias".into(),
        message_id: None,
    }
}

/// One person's events, each of (kind, amount or friend) sent to the id
/// of `to`. Friends invited under one id are not invited under another:
/// before a merge nothing says two ids are one person, so a friend
/// counted under each would count twice (see the test after).
fn events_of(kinds: &[(u8, u8)], to: &[usize]) -> Vec<(String, Vec<(&'static str, Value)>)> {
    kinds
        .iter()
        .zip(to)
        .map(|((kind, n), to)| match kind % 4 {
            0 => (
                "purchase".to_string(),
                vec![("amount", Value::Number(Decimal::from(*n as i64 + 1)))],
            ),
            1 => ("visit".to_string(), vec![]),
            2 => ("checkin".to_string(), vec![]),
            _ => (
                "invite".to_string(),
                vec![("friend", Value::String(format!("{to}:f{}", n % 4)))],
            ),
        })
        .collect()
}

/// What must not depend on which id an event came to.
#[derive(Debug, PartialEq)]
struct Person {
    points: Decimal,
    coupons: usize,
    rewards: Vec<(String, u64)>,
    counts: Vec<u64>,
    visitor: bool,
    ids: Vec<String>,
}

fn person(runtime: &mut Runtime<MemoryKv>, id: &str, now: DateTime<Utc>) -> Person {
    runtime.drain().unwrap();
    let (_, state) = runtime.store.profile(id).unwrap().expect("a profile");
    let mut ids = state.merged_ids.clone();
    ids.sort();
    Person {
        points: state.points.balance(),
        coupons: state.coupons.len(),
        rewards: state
            .tasks
            .iter()
            .map(|(n, t)| (n.clone(), t.rewards))
            .collect(),
        counts: ["purchase", "visit", "checkin", "invite"]
            .iter()
            .map(|e| state.history.count(e, Some(86_400 * 30), now))
            .collect(),
        visitor: state.tags.contains("visitor"),
        ids,
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// Events split over three ids of one person, merged at any points,
    /// in batches of any size: the person ends as if every event had come
    /// to the surviving id.
    #[test]
    fn merges_at_any_point_leave_the_person_one_id_would(
        kinds in proptest::collection::vec((0u8..4, 0u8..8), 1..40),
        to in proptest::collection::vec(0usize..3, 40),
        merge_after in (0usize..41, 0usize..41),
        batch in 1usize..6,
    ) {
        let ids = ["member", "anon", "openid"];
        let events = events_of(&kinds, &to);
        let mut inputs: Vec<Input> = Vec::new();
        for (i, (name, props)) in events.iter().enumerate() {
            if i == merge_after.0 {
                inputs.push(merge("member", "anon"));
            }
            if i == merge_after.1 {
                inputs.push(merge("anon", "openid"));
            }
            inputs.push(event(ids[to[i]], name, i as i64, props));
        }
        inputs.push(merge("member", "anon"));
        inputs.push(merge("member", "openid"));
        let one: Vec<Input> = events
            .iter()
            .enumerate()
            .map(|(i, (name, props))| event("member", name, i as i64, props))
            .collect();
        let now = at(events.len() as i64);

        let mut split = Runtime::new(Store::open(MemoryKv::default()).unwrap(), deployment());
        for chunk in inputs.chunks(batch) {
            split.ingest(chunk, now).unwrap();
        }
        let mut single = Runtime::new(Store::open(MemoryKv::default()).unwrap(), deployment());
        single.ingest(&one, now).unwrap();

        let merged = person(&mut split, "member", now);
        let mut expected = person(&mut single, "member", now);
        expected.ids = vec!["anon".into(), "openid".into()];
        // The `count(visit) == 1` rule fires on each id's first visit
        // before a merge: the tag is idempotent, so the person is tagged
        // exactly when they visited.
        proptest::prop_assert_eq!(&merged, &expected);
        // Every id leads to the one profile.
        for id in ids {
            let (kept, _) = split.store.profile(id).unwrap().unwrap();
            proptest::prop_assert_eq!(kept, "member");
        }
        // Nothing is left under the merged ids.
        proptest::prop_assert!(split.store.user("anon").unwrap().is_none());
        proptest::prop_assert!(split.store.user("openid").unwrap().is_none());
    }
}

#[test]
fn a_once_journey_entered_under_two_ids_keeps_the_earlier_entry() {
    let mut sources = waymark_dsl::Sources::new();
    sources.add(
        "j.journey",
        "journey welcome {\n  trigger event signup\n  entry once\n  wait 1d\n  emit done\n}\njourney browse {\n  trigger event view\n  entry always\n  wait 2d\n  emit seen\n}\n",
    );
    let compiled = waymark_dsl::compile(
        sources,
        waymark_dsl::Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    let d = Deployment::new(compiled.plan.expect("compiles"));
    let mut runtime = Runtime::new(Store::open(MemoryKv::default()).unwrap(), d);
    let inputs = [
        event("anon", "signup", 0, &[]),
        event("anon", "view", 1, &[]),
        event("member", "signup", 5, &[]),
        event("member", "view", 6, &[]),
    ];
    for (input, minute) in inputs.iter().zip([0, 1, 5, 6]) {
        runtime
            .ingest(std::slice::from_ref(input), at(minute))
            .unwrap();
    }
    let records = runtime.ingest(&[merge("member", "anon")], at(10)).unwrap();
    let kinds: Vec<(Kind, Option<&str>, Option<u64>)> = records
        .iter()
        .map(|r| (r.kind, r.reason.as_deref(), r.instance))
        .collect();
    assert_eq!(records[0].kind, Kind::Merged, "{kinds:?}");
    assert_eq!(records[0].merged.as_deref(), Some("anon"));
    assert_eq!(records[0].user, "member");
    // The member's own `welcome` (entered later) ends; both `browse` go on.
    let exits: Vec<_> = records.iter().filter(|r| r.kind == Kind::Exit).collect();
    assert_eq!(exits.len(), 1, "{kinds:?}");
    assert_eq!(exits[0].reason.as_deref(), Some("merged"));
    assert_eq!(exits[0].journey.as_deref(), Some("welcome"));
    runtime.drain().unwrap();
    let state = runtime.store.user("member").unwrap().unwrap();
    let mut journeys: Vec<(&str, DateTime<Utc>)> = state
        .instances
        .iter()
        .map(|i| (i.journey.as_str(), i.entered_at))
        .collect();
    journeys.sort();
    assert_eq!(
        journeys,
        [("browse", at(1)), ("browse", at(6)), ("welcome", at(0))]
    );
    let ids: std::collections::BTreeSet<u64> = state.instances.iter().map(|i| i.id).collect();
    assert_eq!(ids.len(), 3, "instance numbers stay unique");
    // The anonymous journal is read with the member's, in order.
    let journal = runtime.store.journal("member", 100).unwrap();
    assert_eq!(journal.first().map(|r| r.user.as_str()), Some("anon"));
    assert!(journal.iter().any(|r| r.kind == Kind::Merged));
    // Timers: the absorbed one's is gone, the survivor's is the earliest.
    assert_eq!(runtime.store.timer_of("anon").unwrap(), None);
    assert_eq!(runtime.store.timer_of("member").unwrap(), state.next_wake());
    // Later events for the anonymous id come to the member.
    let records = runtime
        .ingest(&[event("anon", "view", 20, &[])], at(20))
        .unwrap();
    assert!(records.iter().all(|r| r.user == "member"), "{records:?}");
    runtime.drain().unwrap();
    assert!(runtime.store.user("anon").unwrap().is_none());
    // Erasing the person by either id erases both ids' data.
    assert!(runtime.erase_user("anon").unwrap());
    for id in ["member", "anon"] {
        assert!(runtime.store.profile(id).unwrap().is_none(), "{id}");
        assert!(runtime.store.journal(id, 10).unwrap().is_empty(), "{id}");
        assert_eq!(runtime.store.timer_of(id).unwrap(), None);
    }
}

#[test]
fn a_friend_counted_under_one_id_does_not_count_again_after_the_merge() {
    let mut runtime = Runtime::new(Store::open(MemoryKv::default()).unwrap(), deployment());
    let invite = |user: &str, friend: &str, minute| {
        event(
            user,
            "invite",
            minute,
            &[("friend", Value::String(friend.into()))],
        )
    };
    runtime
        .ingest(&[invite("anon", "f1", 0), invite("member", "f2", 1)], at(1))
        .unwrap();
    // Two distinct friends were counted before, by two ids: the merge
    // puts them together and the target is reached then. f1 again, now
    // under the member, was counted already.
    let records = runtime
        .ingest(&[merge("member", "anon"), invite("member", "f1", 3)], at(3))
        .unwrap();
    let rewards: Vec<_> = records.iter().filter(|r| r.kind == Kind::Coupon).collect();
    assert_eq!(rewards.len(), 1, "{records:?}");
    // Had f1 counted, f3 would make two and pay.
    let records = runtime.ingest(&[invite("member", "f3", 4)], at(4)).unwrap();
    assert!(
        records.iter().all(|r| r.kind != Kind::Coupon),
        "{records:?}"
    );
    runtime.drain().unwrap();
    let state = runtime.store.user("member").unwrap().unwrap();
    assert_eq!(state.tasks["friends"].rewards, 1);
    assert_eq!(state.tasks["friends"].counted.len(), 1);
    // The coupon code of the reward is held by the member.
    let code = &state.coupons[0];
    assert_eq!(
        runtime
            .store
            .coupon_holder(&code.id, &code.code)
            .unwrap()
            .as_deref(),
        Some("member")
    );
}

fn identify(user: &str, traits: serde_json::Value) -> Input {
    Input::Identify {
        user: user.into(),
        traits: Value::from_json(&traits),
        at: at(0),
        message_id: None,
    }
}

#[test]
fn a_declared_identifier_two_profiles_hold_merges_them_into_the_identified_one() {
    let mut runtime = Runtime::new(Store::open(MemoryKv::default()).unwrap(), deployment());
    runtime.set_identity(crate::config::Identity {
        identifiers: vec!["unionid".into(), "phone".into()],
        max_ids: 2,
    });
    runtime
        .ingest(
            &[
                identify(
                    "openid-1",
                    serde_json::json!({"unionid": "U1", "nickname": "小王"}),
                ),
                event(
                    "openid-1",
                    "purchase",
                    1,
                    &[("amount", Value::Number(Decimal::from(5)))],
                ),
            ],
            at(1),
        )
        .unwrap();
    // Another batch, so the claim is read from the store.
    let records = runtime
        .ingest(
            &[identify(
                "member-1",
                serde_json::json!({"unionid": "U1", "phone": 13800000000u64}),
            )],
            at(2),
        )
        .unwrap();
    let merged: Vec<_> = records.iter().filter(|r| r.kind == Kind::Merged).collect();
    assert_eq!(merged.len(), 1, "{records:?}");
    assert_eq!(merged[0].user, "member-1");
    assert_eq!(merged[0].merged.as_deref(), Some("openid-1"));
    assert_eq!(merged[0].reason.as_deref(), Some("identifier:unionid"));
    runtime.drain().unwrap();
    let (id, state) = runtime.store.profile("openid-1").unwrap().unwrap();
    assert_eq!(id, "member-1");
    assert_eq!(state.points.balance(), Decimal::from(5));
    assert_eq!(
        state.traits.get("nickname"),
        Some(&Value::String("小王".into()))
    );
    // The same identify again merges nothing.
    let records = runtime
        .ingest(
            &[identify("member-1", serde_json::json!({"unionid": "U1"}))],
            at(3),
        )
        .unwrap();
    assert!(
        records.iter().all(|r| r.kind != Kind::Merged),
        "{records:?}"
    );
    // A changed phone number frees the old one: whoever gets it next is
    // someone else.
    runtime
        .ingest(
            &[identify(
                "member-1",
                serde_json::json!({"phone": "13900000000"}),
            )],
            at(4),
        )
        .unwrap();
    let records = runtime
        .ingest(
            &[identify(
                "member-2",
                serde_json::json!({"phone": 13800000000u64}),
            )],
            at(5),
        )
        .unwrap();
    assert!(
        records.iter().all(|r| r.kind != Kind::Merged),
        "{records:?}"
    );
    // Past identity.max_ids the merge is refused, with a reason.
    runtime
        .ingest(
            &[identify("openid-2", serde_json::json!({"unionid": "U2"}))],
            at(6),
        )
        .unwrap();
    runtime
        .ingest(
            &[identify("member-1", serde_json::json!({"unionid": "U2"}))],
            at(7),
        )
        .unwrap();
    runtime
        .ingest(
            &[identify("openid-3", serde_json::json!({"unionid": "U3"}))],
            at(8),
        )
        .unwrap();
    let records = runtime
        .ingest(
            &[identify("member-1", serde_json::json!({"unionid": "U3"}))],
            at(9),
        )
        .unwrap();
    let errors: Vec<_> = records.iter().filter(|r| r.kind == Kind::Error).collect();
    assert_eq!(errors.len(), 1, "{records:?}");
    assert!(
        errors[0]
            .message
            .as_deref()
            .unwrap()
            .contains("identity.max_ids (2)"),
        "{errors:?}"
    );
    runtime.drain().unwrap();
    assert!(
        runtime.store.user("openid-3").unwrap().is_some(),
        "not merged"
    );
    // Erasing the person erases the identifier index entries that name them.
    runtime.erase_user("member-1").unwrap();
    for (name, value) in [
        ("unionid", "U1"),
        ("unionid", "U2"),
        ("phone", "13900000000"),
    ] {
        assert_eq!(
            runtime.store.identifier_holder(name, value).unwrap(),
            None,
            "{value}"
        );
    }
    assert_eq!(
        runtime
            .store
            .identifier_holder("phone", "13800000000")
            .unwrap()
            .as_deref(),
        Some("member-2")
    );
    // The index keys hold a keyed hash of the value, not the value.
    let keys = runtime.store.kv().range(b"e/", b"e0", usize::MAX).unwrap();
    assert!(!keys.is_empty());
    for (k, _) in keys {
        let text = String::from_utf8_lossy(&k);
        assert!(
            !text.contains("13800000000") && !text.contains("U1"),
            "{text}"
        );
    }
}
