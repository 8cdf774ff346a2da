//! Timers fire in order of (due time, user), each with the clock at its own
//! due time, however far one `advance_to` reaches: many due at different
//! moments share a commit, and a wake that sets a timer due before the
//! rest of its page ends the page there, so that timer fires in its turn.

mod support;

use std::sync::atomic::Ordering;
use support::*;
use waymark_core::deployment::Deployment;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::{Event, Input};
use waymark_dsl::value::Value;
use waymark_engine::runtime::Runtime;
use waymark_engine::store::Store;

fn signed_up(user: &str, at: chrono::DateTime<chrono::Utc>) -> Input {
    Input::Track(Event {
        user: user.into(),
        name: "signed_up".into(),
        properties: Value::Record(Default::default()),
        at,
        message_id: None,
    })
}

/// `users` sign up a second apart; what firing their timers records,
/// advancing to an hour later at once or a second at a time; and how many
/// batches the store applied for the timers.
fn run(script: &str, users: usize, at_once: bool) -> (Vec<Record>, usize) {
    let kv = TestKv::default();
    let mut rt = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(script)));
    let start = t(START);
    rt.start_schedules_at(start);
    for i in 0..users {
        let at = start + chrono::Duration::seconds(i as i64);
        rt.ingest(&[signed_up(&format!("u{i:03}"), at)], at)
            .unwrap();
    }
    let before = kv.applies.load(Ordering::SeqCst);
    let end = start + hours(1);
    let mut records = Vec::new();
    if at_once {
        records = rt.advance_to(end).unwrap();
    } else {
        let mut now = start;
        while now < end {
            now += chrono::Duration::seconds(1);
            records.extend(rt.advance_to(now).unwrap());
        }
    }
    (records, kv.applies.load(Ordering::SeqCst) - before)
}

#[test]
fn timers_due_at_many_moments_fire_in_one_commit_each_at_its_own_time() {
    let script = "journey welcome {\n  trigger event signed_up\n  wait 10m\n  give points 1 reason \"waited\"\n}\n";
    let (records, applies) = run(script, 300, true);
    let points: Vec<&Record> = records.iter().filter(|r| r.kind == Kind::Points).collect();
    assert_eq!(points.len(), 300);
    for (i, r) in points.iter().enumerate() {
        assert_eq!(r.user, format!("u{i:03}"), "in order of due time");
        assert_eq!(
            r.at,
            t(START) + mins(10) + chrono::Duration::seconds(i as i64),
            "each at its own time"
        );
    }
    assert_eq!(applies, 1, "300 timers, one page, one commit");
    let (one_by_one, _) = run(script, 300, false);
    assert_eq!(records, one_by_one);
}

#[test]
fn a_wake_that_sets_a_timer_before_the_rest_of_its_page_fires_it_in_turn() {
    // Each user's timers are 5, 6 and 7 seconds after they sign up, a
    // second after the one before: the users' chains interleave.
    let script = "journey chain {\n  trigger event signed_up\n  wait 5s\n  give points 1 reason \"a\"\n  wait 1s\n  give points 1 reason \"b\"\n  wait 1s\n  give points 1 reason \"c\"\n}\n";
    let (records, _) = run(script, 40, true);
    let (one_by_one, _) = run(script, 40, false);
    assert_eq!(records.len(), one_by_one.len());
    assert_eq!(records, one_by_one, "the same records in the same order");
    assert!(
        records.windows(2).all(|w| w[0].at <= w[1].at),
        "in time order"
    );
}

/// A backlog fired a few pages at a time (as the daemon's writer does,
/// taking inputs between turns) records what firing it at once records,
/// in the same order, timers and a schedule's audience alike; an input
/// taken between turns is taken at once.
#[test]
fn a_backlog_fired_a_page_at_a_time_records_what_firing_it_at_once_does() {
    const SCRIPT: &str = r#"
journey welcome {
  trigger event signed_up
  wait 1h
  send sms template "HELLO"
}

journey nightly {
  trigger schedule "0 2 * * *"
  entry every 1d
  send sms template "NIGHT"
}
"#;
    // More than two pages (500 users each) of timers and of members.
    const USERS: usize = 1_200;
    let start = t(START);
    let until = start + days(1);
    let fresh = || {
        let mut rt = Runtime::new(
            Store::new(TestKv::default()),
            Deployment::new(compile(SCRIPT)),
        );
        rt.start_schedules_at(start);
        let inputs: Vec<Input> = (0..USERS)
            .map(|i| signed_up(&format!("u{i:04}"), start))
            .collect();
        rt.ingest(&inputs, start).unwrap();
        rt
    };
    let at_once = fresh().advance_to(until).unwrap();
    let sends = |records: &[Record], template: &str| {
        records
            .iter()
            .filter(|r| r.kind == Kind::Send && r.template.as_deref() == Some(template))
            .count()
    };
    assert_eq!(sends(&at_once, "HELLO"), USERS);
    assert_eq!(sends(&at_once, "NIGHT"), USERS);

    let mut rt = fresh();
    let mut paged = Vec::new();
    let mut turns = 0;
    while !rt
        .advance_some(until, 1, &mut |page| paged.extend(page))
        .unwrap()
    {
        turns += 1;
        assert!(
            turns < 100,
            "a backlog is fired in a bounded number of turns"
        );
    }
    assert_eq!(paged, at_once, "the same records in the same order");
    // 3 pages of timers, 3 of members (each member's timer and their
    // schedule fire share nothing), so at least 5 turns were cut short.
    assert!(turns >= 5, "only {turns} turns were cut short");
    assert!(
        rt.advance_some(until, 1, &mut |page| paged.extend(page))
            .unwrap(),
        "nothing is left due"
    );

    // Between turns an input is taken at once, and the fire goes on.
    let mut rt = fresh();
    let mut records = Vec::new();
    assert!(
        !rt.advance_some(until, 1, &mut |page| records.extend(page))
            .unwrap()
    );
    let late = signed_up("late", start + hours(3));
    let taken = rt.ingest(&[late], start + hours(3)).unwrap();
    assert!(
        taken
            .iter()
            .any(|r| r.kind == Kind::Enter && r.user == "late")
    );
    while !rt
        .advance_some(until, 1, &mut |page| records.extend(page))
        .unwrap()
    {}
    assert_eq!(
        sends(&records, "HELLO"),
        USERS + 1,
        "the late user's timer fires too"
    );
    assert_eq!(sends(&records, "NIGHT"), USERS + 1);
}

/// A call that runs out of pages keeps the rest of its run of timers, and
/// the next goes on with it without reading the store again (the
/// daemon's writer fires a page or two a turn), saying when the next
/// timer is due from it; but once anything else is written, the run is
/// read again: a timer set between turns, due amid the rest of the run,
/// fires in its turn, and a timer an input between turns removed does not
/// fire.
#[test]
fn a_run_of_timers_goes_on_across_calls_until_something_else_is_written() {
    const SCRIPT: &str = r#"
journey welcome {
  trigger event signed_up
  exit on event left
  wait 1h
  send sms template "HELLO"
}
"#;
    // Three pages of timers, a second apart.
    const USERS: i64 = 1_500;
    let start = t(START);
    let until = start + days(1);
    let mut rt = Runtime::new(
        Store::new(TestKv::default()),
        Deployment::new(compile(SCRIPT)),
    );
    rt.start_schedules_at(start);
    for i in 0..USERS {
        let at = start + chrono::Duration::seconds(i);
        rt.ingest(&[signed_up(&format!("u{i:04}"), at)], at)
            .unwrap();
    }
    let mut records = Vec::new();
    let turn = |rt: &mut Runtime<TestKv>, records: &mut Vec<Record>| {
        let done = rt
            .advance_some(until, 1, &mut |page| records.extend(page))
            .unwrap();
        // What the kept run says is due next is what the store holds.
        let said = rt.next_due().unwrap();
        rt.drain().unwrap();
        assert_eq!(said, rt.store.next_due().unwrap());
        done
    };
    assert!(!turn(&mut rt, &mut records), "one page of three");
    // Between turns: one user leaves (their timer, in the kept run, is
    // removed), and one signs up with a timer due amid the rest of it.
    let now = start + chrono::Duration::seconds(700);
    let left = Input::Track(Event {
        user: "u1200".into(),
        name: "left".into(),
        properties: Value::Record(Default::default()),
        at: now,
        message_id: None,
    });
    rt.ingest(&[left, signed_up("u0700b", now)], now).unwrap();
    while !turn(&mut rt, &mut records) {}
    let hello: Vec<(chrono::DateTime<chrono::Utc>, String)> = records
        .iter()
        .filter(|r| r.kind == Kind::Send)
        .map(|r| (r.at, r.user.to_string()))
        .collect();
    assert_eq!(hello.len(), USERS as usize, "u1200 left, u0700b came");
    assert!(hello.is_sorted(), "in order of (due time, user)");
    assert!(!hello.iter().any(|(_, u)| u == "u1200"));
    let late = hello.iter().position(|(_, u)| u == "u0700b").unwrap();
    assert_eq!(hello[late - 1].1, "u0700");
    assert_eq!(hello[late + 1].1, "u0701");
}

/// A restarted runtime holds no user in memory: firing a backlog of
/// several pages at once, it reads each next page's users ahead, while
/// the page before is applied. What it records, and what it leaves
/// stored, is what firing a page a call, keeping no user, does.
#[test]
fn a_backlog_fired_after_a_restart_reads_its_users_ahead_and_records_the_same() {
    const SCRIPT: &str = r#"
journey welcome {
  trigger event signed_up
  wait 1h
  give points 5 reason "welcome"
  wait 1h
  send sms template "HELLO"
}
"#;
    const USERS: usize = 1_300;
    let start = t(START);
    let until = start + days(1);
    // A store with every user's timer pending, and a fresh runtime over
    // it, as a restarted daemon has.
    let restarted = |cached: usize| {
        let kv = TestKv::default();
        let mut rt = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(SCRIPT)));
        let inputs: Vec<Input> = (0..USERS)
            .map(|i| {
                signed_up(
                    &format!("u{i:04}"),
                    start + chrono::Duration::seconds(i as i64 % 7),
                )
            })
            .collect();
        rt.ingest(&inputs, start).unwrap();
        drop(rt);
        let mut rt = Runtime::new(Store::new(kv.clone()), Deployment::new(compile(SCRIPT)));
        rt.set_user_cache(cached);
        (kv, rt)
    };
    let (kv, mut rt) = restarted(100_000);
    let at_once = rt.advance_to(until).unwrap();
    drop(rt);
    let (paged_kv, mut rt) = restarted(0);
    let mut paged = Vec::new();
    while !rt
        .advance_some(until, 1, &mut |page| paged.extend(page))
        .unwrap()
    {}
    drop(rt);
    assert_eq!(
        at_once.iter().filter(|r| r.kind == Kind::Points).count(),
        USERS
    );
    assert_eq!(
        at_once.iter().filter(|r| r.kind == Kind::Send).count(),
        USERS
    );
    assert_eq!(paged, at_once, "the same records in the same order");
    let (a, b) = (
        Store::new(kv.inner.clone()),
        Store::new(paged_kv.inner.clone()),
    );
    for i in (0..USERS).step_by(97) {
        let user = format!("u{i:04}");
        let (a, b) = (
            a.user(&user).unwrap().unwrap(),
            b.user(&user).unwrap().unwrap(),
        );
        assert_eq!(a.points.balance().to_string(), "5");
        assert_eq!(a.points.balance(), b.points.balance());
        assert_eq!(a.instances, b.instances, "{user}");
        assert_eq!((&a.tags, &a.traits), (&b.tags, &b.traits), "{user}");
        assert!(a.next_wake().is_none(), "{user} has nothing pending");
    }
}

/// A wake's new timer can fall before timers later in the same page
/// without falling before the next one: users whose first timers are 40 s
/// apart, each waiting a minute more after it, interleave two pages' worth
/// of order within one read of the timers.
#[test]
fn a_new_timer_due_before_a_later_timer_of_its_page_fires_before_it() {
    let script = "journey chain {\n  trigger event signed_up\n  wait 1m\n  give points 1 reason \"a\"\n  wait 1m\n  give points 1 reason \"b\"\n}\n";
    let start = t(START);
    let fresh = || {
        let mut rt = Runtime::new(
            Store::new(TestKv::default()),
            Deployment::new(compile(script)),
        );
        rt.start_schedules_at(start);
        for i in 0..30 {
            let at = start + chrono::Duration::seconds(40 * i);
            rt.ingest(&[signed_up(&format!("u{i:02}"), at)], at)
                .unwrap();
        }
        rt
    };
    let end = start + hours(1);
    let at_once = fresh().advance_to(end).unwrap();
    let points = |records: &[Record]| {
        records
            .iter()
            .filter(|r| r.kind == Kind::Points)
            .map(|r| (r.at, r.user.clone()))
            .collect::<Vec<_>>()
    };
    let fired = points(&at_once);
    assert_eq!(fired.len(), 60);
    assert!(fired.is_sorted(), "in order of (due time, user): {fired:?}");
    let mut rt = fresh();
    let mut one_by_one = Vec::new();
    let mut now = start + chrono::Duration::seconds(40 * 29);
    while now < end {
        now += chrono::Duration::seconds(1);
        one_by_one.extend(rt.advance_to(now).unwrap());
    }
    assert_eq!(points(&one_by_one), fired);
}

/// Pages of timers are applied on the commit thread while the next is
/// evaluated: when one fails to apply, firing stops with its error, and
/// firing again once the store takes writes wakes every user it did not
/// commit, exactly once each.
#[test]
fn a_page_of_timers_that_fails_to_apply_fires_again_and_only_once() {
    fails_to_apply(None);
}

/// The same, fired a page a call: the page that failed was the last of a
/// call, and the next call does not go on with the run it kept.
#[test]
fn a_page_that_fails_at_the_end_of_a_call_fires_again_in_the_next() {
    fails_to_apply(Some(1));
}

/// Fires four pages of timers, the second of which fails to apply, at
/// once or `pages` a call.
fn fails_to_apply(pages: Option<usize>) {
    let script = "journey welcome {\n  trigger event signed_up\n  wait 10m\n  give points 1 reason \"waited\"\n}\n";
    const USERS: usize = 1_700;
    let kv = TestKv::default();
    let store = Store::new(kv.clone());
    let mut rt = Runtime::new(store, Deployment::new(compile(script)));
    rt.set_user_cache(0);
    let start = t(START);
    rt.start_schedules_at(start);
    let inputs: Vec<Input> = (0..USERS)
        .map(|i| {
            signed_up(
                &format!("u{i:04}"),
                start + chrono::Duration::seconds(i as i64),
            )
        })
        .collect();
    rt.ingest(&inputs, start).unwrap();
    let before = kv.applies.load(Ordering::SeqCst);
    // The second of the four pages fails; the third was evaluated on it.
    kv.fail_apply.store(before + 2, Ordering::SeqCst);
    let end = start + hours(1);
    let fire = |rt: &mut Runtime<TestKv>| -> Result<Vec<Record>, _> {
        let Some(pages) = pages else {
            return rt.advance_to(end);
        };
        let mut records = Vec::new();
        // Waiting for the page in flight between calls, as the writer
        // does before a batch of inputs, is where its failure shows.
        while !rt.advance_some(end, pages, &mut |page| records.extend(page))? {
            rt.drain()?;
        }
        Ok(records)
    };
    let e = fire(&mut rt).unwrap_err();
    assert!(e.to_string().contains("disk full"), "{e}");
    let woken = |rt: &Runtime<TestKv>| {
        (0..USERS)
            .filter(|i| {
                let user = rt.store.user(&format!("u{i:04}")).unwrap().unwrap();
                user.points.balance() > 0.into()
            })
            .count()
    };
    assert_eq!(woken(&rt), 500, "only the first page was committed");
    kv.fail_apply.store(0, Ordering::SeqCst);
    let records = fire(&mut rt).unwrap();
    let points: Vec<_> = records
        .iter()
        .filter(|r| r.kind == Kind::Points)
        .map(|r| (r.at, r.user.clone()))
        .collect();
    assert_eq!(points.len(), USERS - 500, "the rest, once each");
    assert!(points.is_sorted(), "in order of (due time, user)");
    assert_eq!(woken(&rt), USERS);
    for i in 0..USERS {
        let user = rt.store.user(&format!("u{i:04}")).unwrap().unwrap();
        assert_eq!(user.points.balance(), 1.into(), "u{i:04} woke once");
    }
    assert_eq!(rt.store.pending_timers().unwrap(), 0);
}
