//! Every per-user table is exact: one user's state, timer, journal and
//! pending sends are read, exported and erased without touching those of
//! a user whose id starts with theirs (`alice` and `alice/x`, `a` and
//! `ab`), through the real store on the in-memory and sled backends; and
//! a store in another key format is refused.

mod support;

use chrono::{DateTime, Duration, Utc};
use proptest::prelude::*;
use serde_json::json;
use support::*;
use waymark_core::journal::{Kind, Record};
use waymark_core::model::UserState;
use waymark_engine::runtime::effects;
use waymark_engine::store::{
    Batch, FORMAT, Kv, MemoryKv, MergeWrite, Op, SledKv, Store, StoreError,
};

fn start() -> DateTime<Utc> {
    t("2025-11-10T00:00:00Z")
}

/// What `user` has in every per-user table: state (with a timer), two
/// journal batches, a pending send, a send waiting to be retried and a
/// dead letter. The timer differs per user only by `offset`. Values name
/// the user between `<>`, which no generated id holds, so that a value of
/// one user is never mistaken for another's.
fn fill<K: Kv>(store: &Store<K>, user: &str, offset: i64) {
    let at = start();
    let mut state = UserState::new(user);
    state.tags.insert(format!("tag of <{user}>"));
    state.segments_due = Some(at + Duration::minutes(offset));
    let record = |kind: Kind, n: usize| {
        let mut r = Record::new(at, user, kind);
        r.message = Some(format!("<{user}> #{n}"));
        if kind == Kind::Send {
            r.channel = Some("sms".into());
        }
        r
    };
    let journal = vec![
        record(Kind::Error, 0),
        record(Kind::Send, 1),
        record(Kind::Send, 2),
        record(Kind::Send, 3),
    ];
    store
        .commit(Batch {
            users: vec![(state, None)],
            sends: effects::sends(&journal),
            journal,
            ..Batch::default()
        })
        .unwrap();
    store
        .commit(Batch {
            journal: vec![record(Kind::Error, 4)],
            ..Batch::default()
        })
        .unwrap();
    // Of the user's three sends, one stays pending, one waits to be
    // retried and one is given up on.
    let mine: Vec<_> = store
        .outbox_ready(at, usize::MAX, &|_| false)
        .unwrap()
        .into_iter()
        .filter(|e| e.record.user == user && e.attempts == 0)
        .collect();
    assert_eq!(mine.len(), 3);
    let mut retry = mine[1].clone();
    retry.attempts = 1;
    retry.next_attempt = at + Duration::hours(1);
    store.outbox_retry(&mine[1], &retry).unwrap();
    store.dead_letter(&mine[2], &mine[2]).unwrap();
}

/// Everything the store says about `user`, table by table, in a form that
/// compares: state, timer (index and timer list), journal, pending sends
/// (fresh and retrying) and dead letters.
#[derive(Debug, PartialEq)]
struct Held {
    state: Option<UserState>,
    timer: Option<DateTime<Utc>>,
    due: Vec<DateTime<Utc>>,
    listed: bool,
    journal: Vec<String>,
    pending: Vec<(u32, String)>,
    dead: Vec<String>,
}

fn held<K: Kv>(store: &Store<K>, user: &str) -> Held {
    let far = start() + Duration::days(365);
    let message = |r: &Record| r.message.clone().unwrap_or_default();
    Held {
        state: store.user(user).unwrap(),
        timer: store.timer_of(user).unwrap(),
        due: store
            .due(far, usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|(_, u)| u == user)
            .map(|(at, _)| at)
            .collect(),
        listed: store
            .users_after(None, usize::MAX)
            .unwrap()
            .iter()
            .any(|u| u == user),
        journal: store
            .journal(user, usize::MAX)
            .unwrap()
            .iter()
            .map(|r| {
                assert_eq!(r.user, user, "{user}'s journal holds another's record");
                message(r)
            })
            .collect(),
        pending: store
            .outbox_ready(far, usize::MAX, &|_| false)
            .unwrap()
            .into_iter()
            .filter(|e| e.record.user == user)
            .map(|e| (e.attempts, message(&e.record)))
            .collect(),
        dead: store
            .dead_letters(usize::MAX)
            .unwrap()
            .into_iter()
            .filter(|e| e.record.user == user)
            .map(|e| message(&e.record))
            .collect(),
    }
}

/// What a user who was never stored (or was erased) has: nothing.
fn nothing() -> Held {
    Held {
        state: None,
        timer: None,
        due: Vec::new(),
        listed: false,
        journal: Vec::new(),
        pending: Vec::new(),
        dead: Vec::new(),
    }
}

/// Fills `short` and `long` (an id starting with `short`'s), checks each
/// reads back as it would alone, then erases `erased` (one of them) and
/// checks the other is untouched and the erased one has nothing left.
fn check_pair<K: Kv>(make: impl Fn() -> Store<K>, short: &str, long: &str, erase_short: bool) {
    // Each user alone: what they hold when no other id is near theirs.
    let alone = |user: &str, offset| {
        let store = make();
        fill(&store, user, offset);
        held(&store, user)
    };
    let (short_alone, long_alone) = (alone(short, 1), alone(long, 2));
    assert_eq!(short_alone.journal.len(), 5);
    assert_eq!(short_alone.pending.len(), 2);
    assert_eq!(short_alone.dead.len(), 1);

    let store = make();
    fill(&store, short, 1);
    fill(&store, long, 2);
    assert_eq!(
        held(&store, short),
        short_alone,
        "{short:?} beside {long:?}"
    );
    assert_eq!(held(&store, long), long_alone, "{long:?} beside {short:?}");

    let (gone, kept, kept_alone) = if erase_short {
        (short, long, long_alone)
    } else {
        (long, short, short_alone)
    };
    store.erase_user(gone).unwrap();
    assert_eq!(held(&store, gone), nothing(), "{gone:?} erased");
    assert_eq!(
        held(&store, kept),
        kept_alone,
        "{kept:?} after erasing {gone:?}"
    );
    // Nothing of the erased user is left readable in any value, either,
    // and no value is left sealed under a key that is gone.
    let left = store.opened_values().unwrap();
    let marker = format!("<{gone}>");
    assert!(
        !left.iter().any(|(_, v)| v
            .as_ref()
            .is_some_and(|v| v.windows(marker.len()).any(|w| w == marker.as_bytes()))),
        "a value of {gone:?} outlived its erasure"
    );
    assert!(
        left.iter().all(|(_, v)| v.is_some()),
        "values sealed under a destroyed key were left"
    );
    assert!(
        left.iter().any(|(_, v)| v.as_ref().is_some_and(|v| {
            let kept = format!("<{kept}>");
            v.windows(kept.len()).any(|w| w == kept.as_bytes())
        })),
        "{kept:?}'s values open"
    );
}

fn memory() -> Store<MemoryKv> {
    Store::open(MemoryKv::default()).unwrap()
}

fn sled() -> Store<SledKv> {
    Store::open(SledKv::temporary().unwrap()).unwrap()
}

#[test]
fn a_users_journal_export_and_erasure_never_reach_a_user_whose_id_starts_with_theirs() {
    for (short, long) in [("alice", "alice/x"), ("a", "ab")] {
        for erase_short in [true, false] {
            check_pair(memory, short, long, erase_short);
        }
    }
    check_pair(sled, "alice", "alice/x", true);
}

/// The reported scenario, through the runtime: both users track, alice's
/// journal and export hold only hers, and erasing alice leaves alice/x's.
#[test]
fn tracking_alice_and_alice_slash_x_keeps_their_journals_apart_through_erasure() {
    let mut h = Harness::new("journey hi { trigger event signed_up\n send sms template \"HI\" }");
    h.track("alice", "signed_up", json!({}));
    h.track("alice/x", "signed_up", json!({}));
    let store = &h.runtime.store;
    let users = |user: &str| -> Vec<String> {
        store
            .journal(user, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|r| r.user.to_string())
            .collect()
    };
    let alice_x = store.journal("alice/x", usize::MAX).unwrap();
    assert!(!alice_x.is_empty());
    assert!(users("alice").iter().all(|u| u == "alice"));
    assert_eq!(users("alice").len(), alice_x.len());
    assert!(h.runtime.erase_user("alice").unwrap());
    let store = &h.runtime.store;
    assert!(store.journal("alice", usize::MAX).unwrap().is_empty());
    assert!(store.user("alice").unwrap().is_none());
    assert_eq!(store.journal("alice/x", usize::MAX).unwrap(), alice_x);
    assert!(store.user("alice/x").unwrap().is_some());
}

#[test]
fn a_store_in_another_key_format_is_refused_and_an_empty_one_is_marked() {
    let kv = MemoryKv::default();
    Store::open(kv.clone()).unwrap();
    assert_eq!(kv.get(b"V").unwrap(), Some(FORMAT.to_be_bytes().to_vec()));
    Store::open(kv.clone()).expect("a store in this format opens again");

    // Written before format versions: bare ids in keys, no `V`.
    let old = MemoryKv::default();
    old.apply(vec![Op::Put(b"u/alice".to_vec(), vec![0x80])])
        .unwrap();
    let refused = Store::open(old).err().expect("format 1 is refused");
    assert!(matches!(
        refused,
        StoreError::Format {
            found: 1,
            expected: FORMAT
        }
    ));
    assert!(refused.to_string().contains("format 1"), "{refused}");

    // The format before this one: refused, saying both and what to do.
    let before = MemoryKv::default();
    before
        .apply(vec![Op::Put(
            b"V".to_vec(),
            (FORMAT - 1).to_be_bytes().to_vec(),
        )])
        .unwrap();
    let refused = Store::open(before)
        .err()
        .expect("the format before is refused");
    let message = refused.to_string();
    assert!(
        message.contains(&format!("format {}", FORMAT - 1))
            && message.contains(&format!("format {FORMAT}"))
            && message.contains("open it with the Waymark that wrote it")
            && message.contains("empty data directory"),
        "{message}"
    );

    let newer = MemoryKv::default();
    newer
        .apply(vec![Op::Put(
            b"V".to_vec(),
            (FORMAT + 1).to_be_bytes().to_vec(),
        )])
        .unwrap();
    assert!(matches!(
        Store::open(newer).err(),
        Some(StoreError::Format { found, .. }) if found == FORMAT + 1
    ));
}

/// Ids, and suffixes making longer ids of them, with what makes key
/// layouts go wrong: separators, NULs (the encoding's own escape byte),
/// high code points (whose UTF-8 has bytes near 0xff) and empty parts.
fn id_part() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("/".to_string()),
            Just("\0".to_string()),
            Just("\0\u{1}".to_string()),
            Just("\u{ff}".to_string()),
            Just("\u{10ffff}".to_string()),
            Just("\u{7f}".to_string()),
            "[a-c]{1,2}",
        ],
        0..4,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn no_id_that_is_a_prefix_of_another_shares_any_table_with_it(
        short in id_part(),
        suffix in id_part().prop_filter("a longer id", |s| !s.is_empty()),
        erase_short in any::<bool>(),
    ) {
        let long = format!("{short}{suffix}");
        check_pair(memory, &short, &long, erase_short);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn on_sled_no_id_that_is_a_prefix_of_another_shares_any_table_with_it(
        short in id_part(),
        suffix in id_part().prop_filter("a longer id", |s| !s.is_empty()),
    ) {
        let long = format!("{short}{suffix}");
        check_pair(sled, &short, &long, true);
    }
}

/// The users with a `Y/` key of their own, as `Y/{id}` without the id's end.
fn slot_keys(store: &Store<MemoryKv>) -> Vec<String> {
    store
        .kv()
        .range(b"Y/", b"Y0", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(k, _)| String::from_utf8_lossy(&k[..k.len() - 2]).into_owned())
        .collect()
}

#[test]
fn a_users_state_says_their_keys_slot_and_a_profile_merged_away_keeps_its_key_until_erased() {
    let store = memory();
    let mut batch = Batch::default();
    batch.users.push((UserState::new("alice"), None));
    batch.users.push((UserState::new("anon-1"), None));
    // Bob has records and no state (every input of his refused, say).
    batch.journal.push(Record::new(start(), "bob", Kind::Error));
    store.commit(batch).unwrap();
    // Only Bob's slot has a key of its own: a key per user beside their
    // state is sled memory for every page of them.
    assert_eq!(slot_keys(&store), ["Y/bob"]);

    // Anonymous merged into Alice: their state goes, their journal stays
    // sealed under their key, so `Y/` says its slot from now on.
    let anon = store.user("anon-1").unwrap().unwrap();
    let mut alice = store.user("alice").unwrap().unwrap();
    alice.merged_ids.push("anon-1".into());
    let mut batch = Batch::default();
    batch
        .merges
        .push(MergeWrite::new("anon-1", Some(&(anon, None)), "alice"));
    batch.users.push((alice, None));
    store.commit(batch).unwrap();
    assert_eq!(slot_keys(&store), ["Y/anon-1", "Y/bob"]);
    let slot_at = |key: &[u8]| {
        let value = store.kv().get(key).unwrap().unwrap();
        u64::from_be_bytes(value.try_into().unwrap())
    };
    let anon_slot = slot_at(b"Y/anon-1\0\x01");
    let alice_state = store.kv().get(b"u/alice\0\x01").unwrap().unwrap();
    let alice_slot = u64::from_be_bytes(alice_state[1..9].try_into().unwrap());
    assert_ne!(anon_slot, alice_slot);

    // A store that remembers nothing (a restarted daemon) finds both keys
    // from Alice's state and `Y/`, and erasing her destroys both.
    let restarted = Store::new(store.kv().clone());
    restarted.erase_user("alice").unwrap();
    let keys = store.kv().keys();
    assert_eq!(keys.read(alice_slot).unwrap(), None);
    assert_eq!(keys.read(anon_slot).unwrap(), None);
    assert_eq!(slot_keys(&store), ["Y/bob"]);
    assert!(keys.read(slot_at(b"Y/bob\0\x01")).unwrap().is_some());
}
