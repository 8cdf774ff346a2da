//! Identity merges through the real daemon, killed with SIGKILL while it
//! merges. Each person arrives under three ids: an official-account
//! `openid` (with a `unionid`), an anonymous mini-program id, then the
//! member id in an identify that carries the anonymous id and the
//! `unionid` (a declared identifier). Purchases come under every id, some
//! to the anonymous id after the merge. A client sends the messages in
//! order in batches and keeps what was acknowledged; the daemon is killed
//! at random points and restarted on the same data, and the client goes
//! on from the first message not acknowledged (as an SDK retries).
//!
//! After every restart, for every person whose identify was acknowledged:
//! both other ids lead to the member's profile, and its points are at
//! least 10 × the purchases acknowledged. At the end, everything is sent
//! once more: every person is one profile with exactly 10 × 7 points, both
//! other ids merged into it, and the journal of the absorbed ids is read
//! with the member's.

use serde_json::{Value as Json, json};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use waymark_core::mix::Rng;
use waymark_tests::{Client, free_port, http, scratch, start_daemon, wait_for};

const PEOPLE: usize = 40;
const ROUNDS: usize = 4;

const SCRIPTS: &str = r#"
rule purchase_points "10 points a purchase" {
  when event purchase
  then {
    give points 10 reason "purchase"
  }
}
"#;

const CONFIG: &str = r#"data_dir = "./data"
scripts = "./scripts"

[identity]
identifiers = ["unionid"]
"#;

/// One message of the stream, and the person it is about.
struct Message {
    person: usize,
    json: Json,
    /// A purchase (worth 10 points to its person).
    purchase: bool,
    /// The identify that makes the person one profile.
    merges: bool,
}

fn stream() -> Vec<Message> {
    let mut out = Vec::new();
    let mut push = |person, json: Json, purchase, merges| {
        out.push(Message {
            person,
            json,
            purchase,
            merges,
        })
    };
    let buy = |user: String, id: String| json!({"type": "track", "userId": user, "event": "purchase", "messageId": id});
    // Person after person, so that merges happen all along the stream
    // (and a batch often holds two people's messages, or a person's
    // identify with the purchases around it).
    for p in 0..PEOPLE {
        for step in 0..7 {
            let (openid, anon, member) = (format!("o{p}"), format!("a{p}"), format!("m{p}"));
            match step {
                0 => push(
                    p,
                    json!({"type": "identify", "userId": openid, "traits": {"unionid": format!("U{p}")}, "messageId": format!("io{p}")}),
                    false,
                    false,
                ),
                1 => push(p, buy(openid, format!("po{p}")), true, false),
                2 => {
                    for i in 0..3 {
                        let anon_buy = json!({"type": "track", "userId": null, "anonymousId": anon.clone(), "event": "purchase", "messageId": format!("pa{p}.{i}")});
                        push(p, anon_buy, true, false);
                    }
                }
                3 => push(
                    p,
                    json!({"type": "identify", "userId": member, "anonymousId": anon, "traits": {"unionid": format!("U{p}"), "name": format!("member {p}")}, "messageId": format!("im{p}")}),
                    false,
                    true,
                ),
                4 => push(p, buy(member, format!("pm{p}.0")), true, false),
                5 => push(p, buy(member, format!("pm{p}.1")), true, false),
                _ => {
                    let late = json!({"type": "track", "anonymousId": anon, "event": "purchase", "messageId": format!("pl{p}")});
                    push(p, late, true, false);
                }
            }
        }
    }
    out
}

/// Sends `messages[from..]` in batches of 1 to 4 until done or the daemon
/// stops answering; returns the first message not acknowledged.
fn send_from(
    port: u16,
    messages: &[Message],
    from: usize,
    seed: u64,
    acked: &AtomicUsize,
    stop: &AtomicBool,
) -> usize {
    let mut rng = Rng::new(seed);
    let mut client = Client::new(port);
    let mut next = from;
    while next < messages.len() && !stop.load(Ordering::SeqCst) {
        let n = (1 + rng.below(4) as usize).min(messages.len() - next);
        let batch: Vec<&Json> = messages[next..next + n].iter().map(|m| &m.json).collect();
        let body = json!({ "batch": batch }).to_string();
        match client.request("POST", "/v1/batch", &[], body.as_bytes()) {
            Ok((200, answer)) => {
                let answer: Json = serde_json::from_slice(&answer).unwrap();
                assert_eq!(answer["taken"], n, "{answer}");
                next += n;
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Ok((status, answer)) => panic!("{status}: {}", String::from_utf8_lossy(&answer)),
            Err(_) => break,
        }
    }
    next
}

fn user(port: u16, id: &str) -> Json {
    let (status, body) = http(port, "GET", &format!("/v1/users/{id}"), "");
    assert_eq!(status, 200, "{id}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn points(user: &Json) -> u64 {
    user["points"].as_u64().unwrap_or_else(|| panic!("{user}"))
}

/// What holds for every person after a restart, given the messages
/// acknowledged so far (`messages[..acked]`).
fn check(port: u16, messages: &[Message], acked: usize) {
    for p in 0..PEOPLE {
        let theirs = || messages[..acked].iter().filter(move |m| m.person == p);
        if !theirs().any(|m| m.merges) {
            continue;
        }
        let member = user(port, &format!("m{p}"));
        assert_eq!(member["id"], format!("m{p}"), "{member}");
        for other in [format!("a{p}"), format!("o{p}")] {
            assert_eq!(user(port, &other)["id"], format!("m{p}"), "{other}");
        }
        let bought = theirs().filter(|m| m.purchase).count() as u64;
        let sent = messages
            .iter()
            .filter(|m| m.person == p && m.purchase)
            .count() as u64;
        let got = points(&member);
        assert!(
            10 * bought <= got && got <= 10 * sent,
            "person {p}: {got} points for {bought} acknowledged purchases of {sent}"
        );
    }
}

fn kill(daemon: &mut Child) {
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn merges_killed_midway_lose_nothing_acknowledged_and_end_as_one_profile() {
    let dir = scratch("identity_crash");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/points.journey"), SCRIPTS).unwrap();
    std::fs::write(dir.join("waymark.toml"), CONFIG).unwrap();
    let log = dir.join("daemon.log");
    let port = free_port();
    let messages = Arc::new(stream());
    let mut kill_points = Rng::new(0x1d_e17);
    let mut next = 0;
    let mut daemon = start_daemon(&dir, port, &log);
    for round in 0..ROUNDS {
        let kill_after = 5 + kill_points.below(25) as usize;
        let acked = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let client = {
            let (messages, acked, stop) = (messages.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || {
                send_from(port, &messages, next, round as u64, &acked, &stop)
            })
        };
        wait_for("acknowledged batches", Duration::from_secs(60), || {
            acked.load(Ordering::SeqCst) >= kill_after || client.is_finished()
        });
        kill(&mut daemon);
        stop.store(true, Ordering::SeqCst);
        next = client.join().unwrap();
        daemon = start_daemon(&dir, port, &log);
        check(port, &messages, next);
    }
    assert!(next > 0, "something was acknowledged before the kills");
    // As SDKs retry: everything once more, duplicates dropped.
    let done = send_from(
        port,
        &messages,
        0,
        99,
        &AtomicUsize::new(0),
        &AtomicBool::new(false),
    );
    assert_eq!(done, messages.len());
    check(port, &messages, messages.len());
    for p in 0..PEOPLE {
        let member = user(port, &format!("m{p}"));
        assert_eq!(points(&member), 70, "{member}");
        let mut ids: Vec<&str> = member["merged_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        ids.sort();
        assert_eq!(ids, [format!("a{p}"), format!("o{p}")], "{member}");
        assert_eq!(member["profile"]["name"], format!("member {p}"));
    }
    // The absorbed ids' records are read with the member's, in order.
    let (status, body) = http(port, "GET", "/v1/users/a0/journal", "");
    assert_eq!(status, 200, "{body}");
    let journal: Json = serde_json::from_str(&body).unwrap();
    let users: Vec<&str> = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user"].as_str().unwrap())
        .collect();
    assert!(
        users.contains(&"o0") && users.contains(&"a0") && users.contains(&"m0"),
        "{users:?}"
    );
    let merged: Vec<&Json> = journal["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "merged")
        .collect();
    assert_eq!(merged.len(), 2, "{journal}");
    let mut reasons: Vec<&str> = merged
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    reasons.sort();
    assert_eq!(reasons, ["identifier:unionid", "identify"]);
    let (_, metrics) = http(port, "GET", "/metrics", "");
    assert!(
        metrics.contains("# TYPE waymark_profile_merges_total counter"),
        "{metrics}"
    );
    kill(&mut daemon);
}
