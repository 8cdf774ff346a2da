//! Deploys, versions, draining and pausing, through the runtime on a
//! manual clock.

mod support;

use chrono::{DateTime, Duration, Utc};
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::{Event, Input};
use waymark_dsl::plan::Plan;
use waymark_dsl::value::Value;
use waymark_dsl::{Options, Sources, compile};
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{Kv, MemoryKv, SledKv, Store};

fn plan(text: &str) -> Plan {
    let mut sources = Sources::new();
    sources.add("test.journey", text);
    let checked = compile(
        sources,
        Options {
            functions: waymark_stdlib::stdlib(),
            channels: None,
        },
    );
    checked.plan.unwrap_or_else(|| {
        panic!(
            "{}",
            waymark_dsl::render::human(&checked.sources, &checked.diagnostics)
        )
    })
}

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2025-11-10T04:00:00Z")
        .unwrap()
        .to_utc()
}

fn track(user: &str, name: &str, at: DateTime<Utc>) -> Input {
    Input::Track(Event {
        user: user.into(),
        name: name.into(),
        properties: Value::Record(Default::default()),
        at,
        message_id: None,
    })
}

fn journey(text: &str) -> String {
    format!(
        "journey promo {{\n  trigger event signed_up\n  wait 1d\n  send wecom {{ text: \"{text}\" }}\n}}\n"
    )
}

fn sends(records: &[Record]) -> Vec<(String, String)> {
    records
        .iter()
        .filter(|r| r.kind == Kind::Send)
        .map(|r| {
            (
                r.user.to_string(),
                r.fields.as_ref().unwrap()["text"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

fn runtime<K: Kv>(kv: K, text: &str) -> Runtime<K> {
    let mut rt = Runtime::new(Store::new(kv), Deployment::new(plan(text)));
    rt.start_schedules_at(t0());
    rt
}

#[test]
fn instances_finish_on_the_version_they_started_and_new_entries_take_the_new_one() {
    let mut rt = runtime(MemoryKv::default(), &journey("v1"));
    rt.ingest(&[track("early", "signed_up", t0())], t0())
        .unwrap();
    let (report, _) = rt.deploy(plan(&journey("v2")), false, t0()).unwrap();
    assert_eq!(report.changed, vec!["promo".to_string()]);
    rt.ingest(&[track("late", "signed_up", t0())], t0())
        .unwrap();
    let records = rt.advance_to(t0() + Duration::days(1)).unwrap();
    assert_eq!(
        sends(&records),
        vec![("early".into(), "v1".into()), ("late".into(), "v2".into())]
    );
}

#[test]
fn a_removed_journey_drains_unless_the_deploy_cancels_it() {
    let other = "journey other {\n  trigger event x\n}\n";
    let mut rt = runtime(MemoryKv::default(), &journey("v1"));
    rt.ingest(&[track("u1", "signed_up", t0())], t0()).unwrap();
    let (report, records) = rt.deploy(plan(other), false, t0()).unwrap();
    assert_eq!(report.removed, vec!["promo".to_string()]);
    assert!(records.is_empty());
    let records = rt.advance_to(t0() + Duration::days(1)).unwrap();
    assert_eq!(
        sends(&records),
        vec![("u1".into(), "v1".into())],
        "the instance drains on its version"
    );

    let mut rt = runtime(MemoryKv::default(), &journey("v1"));
    rt.ingest(&[track("u1", "signed_up", t0())], t0()).unwrap();
    let (_, records) = rt.deploy(plan(other), true, t0()).unwrap();
    assert!(
        records
            .iter()
            .any(|r| r.kind == Kind::Exit && r.reason.as_deref() == Some("cancelled"))
    );
    assert!(sends(&rt.advance_to(t0() + Duration::days(2)).unwrap()).is_empty());
}

#[test]
fn a_paused_journey_refuses_entries_and_holds_instances_until_resumed() {
    let mut rt = runtime(MemoryKv::default(), &journey("hello"));
    rt.ingest(&[track("inside", "signed_up", t0())], t0())
        .unwrap();
    rt.pause("promo").unwrap();
    let refused = rt
        .ingest(&[track("outside", "signed_up", t0())], t0())
        .unwrap();
    assert!(
        refused
            .iter()
            .any(|r| r.kind == Kind::Skipped && r.reason.as_deref() == Some("paused"))
    );
    let held = rt.advance_to(t0() + Duration::days(2)).unwrap();
    assert!(sends(&held).is_empty());
    assert!(
        held.iter()
            .any(|r| r.kind == Kind::Deferred && r.reason.as_deref() == Some("paused"))
    );
    let resumed = rt.resume("promo", t0() + Duration::days(3)).unwrap();
    assert_eq!(sends(&resumed), vec![("inside".into(), "hello".into())]);
}

#[test]
fn old_versions_survive_a_restart_of_the_store() {
    let dir = std::env::temp_dir().join(format!("waymark-versions-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut rt = runtime(SledKv::open(&dir).unwrap(), &journey("v1"));
        rt.store
            .save_deployment(&rt.deployment, Vec::new())
            .unwrap();
        rt.ingest(&[track("u1", "signed_up", t0())], t0()).unwrap();
        rt.deploy(plan(&journey("v2")), false, t0()).unwrap();
    }
    let store = Store::new(support::reopen_sled(&dir));
    let deployment = store
        .load_deployment()
        .unwrap()
        .expect("a saved deployment");
    let mut rt = Runtime::new(store, deployment);
    rt.start_schedules_at(t0());
    let records = rt.advance_to(t0() + Duration::days(1)).unwrap();
    assert_eq!(sends(&records), vec![("u1".into(), "v1".into())]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The stored versions of `promo`.
fn promo_versions(store: &Store<MemoryKv>) -> Vec<String> {
    store
        .stored_versions()
        .unwrap()
        .into_iter()
        .filter(|(name, _)| name == "promo")
        .map(|(_, version)| version)
        .collect()
}

#[test]
fn old_versions_no_user_is_on_are_dropped_and_one_a_user_waits_on_survives_until_they_finish() {
    let kv = MemoryKv::default();
    let store = Store::new(kv.clone());
    let mut rt = Runtime::new(
        Store::new(kv.clone()),
        Deployment::new(plan(&journey("v0"))),
    );
    rt.deploy(plan(&journey("v0")), false, t0()).unwrap();
    // Nobody is on any version: however often it changes, one is kept.
    for n in 1..=30 {
        rt.deploy(plan(&journey(&format!("v{n}"))), false, t0())
            .unwrap();
    }
    assert_eq!(promo_versions(&store).len(), 1);

    // A user waits a day on this version.
    let waited_on = rt.deployment.current("promo").unwrap().version.clone();
    rt.ingest(&[track("ann", "signed_up", t0())], t0()).unwrap();
    for n in 31..=40 {
        rt.deploy(plan(&journey(&format!("v{n}"))), false, t0())
            .unwrap();
    }
    let kept = promo_versions(&store);
    assert_eq!(kept.len(), 2, "{kept:?}");
    assert!(kept.contains(&waited_on));

    // Once she finishes on it, the next deploy drops it.
    let records = rt.advance_to(t0() + Duration::days(2)).unwrap();
    assert_eq!(sends(&records), [("ann".to_string(), "v30".to_string())]);
    rt.deploy(plan(&journey("v41")), false, t0()).unwrap();
    assert_eq!(promo_versions(&store).len(), 1);
    assert!(!promo_versions(&store).contains(&waited_on));
}

#[test]
fn the_list_of_deployed_journeys_is_read_without_decoding_any_version() {
    let kv = MemoryKv::default();
    let store = Store::new(kv.clone());
    let mut rt = Runtime::new(Store::new(kv.clone()), Deployment::new(Default::default()));
    rt.deploy(plan(&journey("v1")), false, t0()).unwrap();
    let version = rt.deployment.current("promo").unwrap().version.clone();
    // Every stored plan made unreadable: a read that decoded one would fail.
    let plans: Vec<Vec<u8>> = kv
        .range(b"p/", b"p0", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .chain([b"P".to_vec()])
        .collect();
    kv.apply(
        plans
            .into_iter()
            .map(|k| waymark_engine::store::Op::Put(k, b"junk".to_vec()))
            .collect(),
    )
    .unwrap();
    assert!(store.load_deployment().is_err(), "the plans are unreadable");
    let listed = store.deployed_journeys().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].name.as_str(), listed[0].version.as_str()),
        ("promo", version.as_str())
    );
}
