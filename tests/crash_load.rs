//! Crash under load, end to end: the real daemon takes `/v1/batch` and
//! `/v1/track` calls from several client threads at once, and is killed
//! with SIGKILL in the middle of it, while journeys wait on timers, then
//! restarted on the same data directory; several rounds. Each client keeps
//! a ledger of what it sent and what was acknowledged.
//!
//! After every restart: each acknowledged event is reflected exactly once
//! (a rule gives 10 points a purchase, so per user 10 × acknowledged ≤
//! points ≤ 10 × sent), and no user has two coupons. At the end, the
//! clients resend everything, as SDKs retry: points are then exactly
//! 10 × distinct purchases, every signed-up user got the delayed message
//! (timers pending at a kill fire after the restart), one coupon each, and
//! every delivered line carries an idempotency key that belongs to one
//! message only, one key per user and step.
//!
//! The kill points are counts of acknowledged requests drawn from a seeded
//! generator; everything else waits on conditions with generous deadlines.

use serde_json::{Value as Json, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use waymark_core::mix::Rng;
use waymark_tests::{Client, RequestError, free_port, http, scratch, start_daemon, wait_for};

const CLIENTS: usize = 4;
const ROUNDS: usize = 5;
const DEADLINE: Duration = Duration::from_secs(60);

const SCRIPTS: &str = r#"
rule purchase_points "10 points a purchase" {
  when event purchase
  then {
    give points 10 reason "purchase"
  }
}

journey onboarding "a coupon and a welcome now, a reminder 2 s later" {
  trigger event signed_up
  entry once
  give coupon "WELCOME5" expires in 30d as c
  send log { text: "welcome", code: c.code }
  wait 2s
  send log { text: "reminder" }
}
"#;

const CONFIG: &str = r#"data_dir = "./data"
scripts = "./scripts"

[channels.log]
kind = "log"
path = "./sent.jsonl"
"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Answered 200: durable.
    Acked,
    /// Sent, but the daemon died before answering: maybe stored.
    InFlight,
    /// Never reached the daemon.
    Unsent,
}

struct Event {
    user: String,
    purchase: bool,
}

struct Request {
    path: &'static str,
    body: String,
    /// Indices into the client's events.
    events: Vec<usize>,
    outcome: Outcome,
}

/// One client thread's traffic and what became of it.
struct Ledger {
    id: usize,
    rng: Rng,
    users: Vec<String>,
    events: Vec<Event>,
    requests: Vec<Request>,
    /// Non-200 answers: each one is a failure.
    refused: Vec<String>,
}

impl Ledger {
    fn new(id: usize) -> Ledger {
        Ledger {
            id,
            rng: Rng::new(0x5eed_0000 + id as u64),
            users: Vec::new(),
            events: Vec::new(),
            requests: Vec::new(),
            refused: Vec::new(),
        }
    }

    fn event(&mut self, user: String, purchase: bool) -> (usize, Json) {
        let index = self.events.len();
        let message = json!({
            "type": "track",
            "userId": user,
            "event": if purchase { "purchase" } else { "signed_up" },
            "messageId": format!("c{}-m{index}", self.id),
        });
        self.events.push(Event { user, purchase });
        (index, message)
    }

    fn signed_up(&mut self) -> (usize, Json) {
        let user = format!("c{}-u{}", self.id, self.users.len());
        self.users.push(user.clone());
        self.event(user, false)
    }

    fn purchase(&mut self) -> (usize, Json) {
        let user = self.users[self.rng.below(self.users.len() as u64) as usize].clone();
        self.event(user, true)
    }

    /// The next request: a batch of a sign-up and some purchases, or a
    /// single track call.
    fn next(&mut self) -> usize {
        let (path, events, body) = if self.users.is_empty() || self.rng.below(5) < 3 {
            let mut messages = vec![self.signed_up()];
            for _ in 0..5 + self.rng.below(11) {
                messages.push(self.purchase());
            }
            let (events, messages): (Vec<_>, Vec<_>) = messages.into_iter().unzip();
            ("/v1/batch", events, json!({ "batch": messages }))
        } else {
            let (event, message) = if self.rng.below(3) == 0 {
                self.signed_up()
            } else {
                self.purchase()
            };
            ("/v1/track", vec![event], message)
        };
        self.requests.push(Request {
            path,
            body: body.to_string(),
            events,
            outcome: Outcome::Unsent,
        });
        self.requests.len() - 1
    }

    /// Sends request `i`; false once the daemon is gone.
    fn send(&mut self, client: &mut Client, i: usize) -> bool {
        let request = &mut self.requests[i];
        match client.request("POST", request.path, &[], request.body.as_bytes()) {
            Ok((200, _)) => {
                request.outcome = Outcome::Acked;
                true
            }
            Ok((status, body)) => {
                self.refused.push(format!(
                    "{} {status}: {}",
                    request.path,
                    String::from_utf8_lossy(&body)
                ));
                false
            }
            Err(RequestError::Connect(_)) => false,
            Err(RequestError::Answer(_)) => {
                request.outcome = Outcome::InFlight;
                false
            }
        }
    }

    /// One round: retry what the last kill left unanswered, then new
    /// traffic until the daemon dies or `stop` is set.
    fn round(&mut self, port: u16, acked: &AtomicUsize, stop: &AtomicBool) {
        let mut client = Client::new(port);
        let unanswered: Vec<usize> = (0..self.requests.len())
            .filter(|&i| self.requests[i].outcome != Outcome::Acked)
            .collect();
        for i in unanswered {
            if !self.send(&mut client, i) {
                return;
            }
            acked.fetch_add(1, Ordering::SeqCst);
        }
        while !stop.load(Ordering::SeqCst) {
            let i = self.next();
            if !self.send(&mut client, i) {
                return;
            }
            acked.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Per user: events acknowledged and events sent (acknowledged or not).
#[derive(Default, Debug)]
struct Expected {
    acked_purchases: u64,
    sent_purchases: u64,
    acked_signup: bool,
    sent_signup: bool,
}

fn expected(ledgers: &[Ledger]) -> BTreeMap<String, Expected> {
    let mut users: BTreeMap<String, Expected> = BTreeMap::new();
    for ledger in ledgers {
        for request in &ledger.requests {
            for &e in &request.events {
                let event = &ledger.events[e];
                let user = users.entry(event.user.clone()).or_default();
                let acked = request.outcome == Outcome::Acked;
                let sent = request.outcome != Outcome::Unsent;
                if event.purchase {
                    user.acked_purchases += u64::from(acked);
                    user.sent_purchases += u64::from(sent);
                } else {
                    user.acked_signup |= acked;
                    user.sent_signup |= sent;
                }
            }
        }
    }
    users
}

/// (points, coupon codes) of a user, or None if the daemon has no such user.
fn user_state(port: u16, user: &str) -> Option<(u64, Vec<String>)> {
    let (status, body) = http(port, "GET", &format!("/v1/users/{user}"), "");
    if status == 404 {
        return None;
    }
    assert_eq!(status, 200, "{body}");
    let json: Json = serde_json::from_str(&body).unwrap();
    let coupons = json["coupons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap().to_string())
        .collect();
    Some((json["points"].as_u64().unwrap(), coupons))
}

/// After a restart: acknowledged events all there, nothing twice.
fn check_bounds(port: u16, ledgers: &[Ledger], round: usize) {
    for (user, e) in expected(ledgers) {
        let (points, coupons) = user_state(port, &user).unwrap_or_default();
        assert!(
            10 * e.acked_purchases <= points && points <= 10 * e.sent_purchases,
            "round {round}, {user}: {points} points for {} acknowledged and {} sent purchases",
            e.acked_purchases,
            e.sent_purchases
        );
        assert!(coupons.len() <= 1, "round {round}, {user}: {coupons:?}");
        if e.acked_signup {
            assert_eq!(
                coupons.len(),
                1,
                "round {round}, {user}: signed up, no coupon"
            );
        }
    }
}

/// The delivered lines; a line torn by a kill in the middle of its write
/// is counted, not parsed (its delivery was never recorded, so it is
/// delivered again in full).
fn delivered(dir: &Path) -> (Vec<Json>, usize) {
    let text = std::fs::read_to_string(dir.join("sent.jsonl")).unwrap_or_default();
    let mut lines = Vec::new();
    let mut torn = 0;
    for line in text.lines() {
        match serde_json::from_str(line) {
            Ok(json) => lines.push(json),
            Err(_) => torn += 1,
        }
    }
    (lines, torn)
}

fn with_text<'a>(lines: &'a [Json], text: &'a str) -> impl Iterator<Item = &'a Json> {
    lines.iter().filter(move |l| l["fields"]["text"] == text)
}

fn kill(daemon: &mut Child) {
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn sigkill_under_concurrent_load_loses_no_acknowledged_event_and_doubles_nothing() {
    let dir = scratch("crash_load");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/load.journey"), SCRIPTS).unwrap();
    std::fs::write(dir.join("waymark.toml"), CONFIG).unwrap();
    let log = dir.join("daemon.log");
    let port = free_port();
    let mut kill_points = Rng::new(0xdead_beef);
    let mut ledgers: Vec<Ledger> = (0..CLIENTS).map(Ledger::new).collect();
    let mut daemon = start_daemon(&dir, port, &log);
    let mut outstanding_at_kills = 0;
    let mut outstanding_users = BTreeSet::new();
    let mut in_flight_at_kills = 0;

    for round in 1..=ROUNDS {
        // New traffic until this many requests are acknowledged, then SIGKILL.
        let kill_after = 60 + kill_points.below(90) as usize;
        let acked = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = ledgers
            .drain(..)
            .map(|mut ledger| {
                let (acked, stop) = (acked.clone(), stop.clone());
                std::thread::spawn(move || {
                    ledger.round(port, &acked, &stop);
                    ledger
                })
            })
            .collect();
        let daemon_alive = wait_for_acks(&acked, kill_after, &clients);
        kill(&mut daemon);
        stop.store(true, Ordering::SeqCst);
        ledgers = clients.into_iter().map(|c| c.join().unwrap()).collect();
        assert!(
            daemon_alive,
            "round {round}: the clients stopped before the kill"
        );
        for ledger in &ledgers {
            assert!(ledger.refused.is_empty(), "refused: {:?}", ledger.refused);
        }
        in_flight_at_kills += ledgers
            .iter()
            .flat_map(|l| &l.requests)
            .filter(|r| r.outcome == Outcome::InFlight)
            .count();
        // Nothing writes the log now: a signed-up user without a reminder
        // had a timer (or its delivery) pending at the kill.
        let (lines, _) = delivered(&dir);
        let reminded: BTreeSet<&str> = with_text(&lines, "reminder")
            .map(|l| l["user"].as_str().unwrap())
            .collect();
        for (user, e) in expected(&ledgers) {
            if e.acked_signup && !reminded.contains(user.as_str()) {
                outstanding_at_kills += 1;
                outstanding_users.insert(user);
            }
        }

        daemon = start_daemon(&dir, port, &log);
        check_bounds(port, &ledgers, round);
    }
    assert!(
        outstanding_at_kills > 0,
        "no kill came while a delayed send was pending: the test tests nothing"
    );

    let acked_in_rounds = ledgers
        .iter()
        .flat_map(|l| &l.requests)
        .filter(|r| r.outcome == Outcome::Acked)
        .count();

    // As SDKs retry: everything again, from all clients at once.
    let resenders: Vec<_> = ledgers
        .into_iter()
        .map(|mut ledger| {
            std::thread::spawn(move || {
                let mut client = Client::new(port);
                for i in 0..ledger.requests.len() {
                    assert!(ledger.send(&mut client, i), "{:?}", ledger.refused);
                }
                ledger
            })
        })
        .collect();
    let ledgers: Vec<Ledger> = resenders.into_iter().map(|r| r.join().unwrap()).collect();
    let users = expected(&ledgers);
    let signed_up: BTreeSet<&str> = users
        .iter()
        .filter(|(_, e)| e.sent_signup)
        .map(|(u, _)| u.as_str())
        .collect();
    wait_for("every signed-up user's reminder", DEADLINE, || {
        let (lines, _) = delivered(&dir);
        let reminded: BTreeSet<&str> = with_text(&lines, "reminder")
            .map(|l| l["user"].as_str().unwrap())
            .collect();
        signed_up.iter().all(|u| reminded.contains(u))
    });
    wait_for("the outbox to drain", DEADLINE, || {
        http(port, "GET", "/metrics", "")
            .1
            .contains("\nwaymark_outbox_depth 0\n")
    });
    // Exactly once: points for every distinct purchase, one coupon each.
    let mut coupons = BTreeMap::new();
    for (user, e) in &users {
        let (points, codes) = user_state(port, user).expect("every user was stored");
        assert_eq!(points, 10 * e.sent_purchases, "{user}");
        assert_eq!(e.sent_purchases, e.acked_purchases, "{user}: all resent");
        if e.sent_signup {
            assert_eq!(codes.len(), 1, "{user}: {codes:?}");
            coupons.insert(user.as_str(), codes[0].clone());
        } else {
            assert!(codes.is_empty(), "{user}: {codes:?}");
        }
    }
    kill(&mut daemon); // Nothing more is written to the log from here on.

    // Each key names one message; each user's welcome and reminder one key each.
    let (lines, torn) = delivered(&dir);
    let mut by_key: BTreeMap<&str, &Json> = BTreeMap::new();
    for line in &lines {
        let key = line["idempotency_key"]
            .as_str()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| panic!("a line without an idempotency key: {line}"));
        let first = by_key.entry(key).or_insert(line);
        assert_eq!(*first, line, "two messages under the key {key}");
    }
    for text in ["welcome", "reminder"] {
        let mut keys: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for line in with_text(&lines, text) {
            keys.entry(line["user"].as_str().unwrap())
                .or_default()
                .insert(line["idempotency_key"].as_str().unwrap());
        }
        assert_eq!(
            keys.keys().copied().collect::<BTreeSet<_>>(),
            signed_up,
            "the users who got the {text}"
        );
        for (user, keys) in keys {
            assert_eq!(keys.len(), 1, "{user}'s {text} under {keys:?}");
        }
    }
    for line in with_text(&lines, "welcome") {
        let user = line["user"].as_str().unwrap();
        assert_eq!(line["fields"]["code"], coupons[user].as_str(), "{user}");
    }
    assert!(torn <= ROUNDS, "{torn} torn lines from {ROUNDS} kills");

    let requests: usize = ledgers.iter().map(|l| l.requests.len()).sum();
    let events: usize = ledgers.iter().map(|l| l.events.len()).sum();
    let purchases: u64 = users.values().map(|e| e.sent_purchases).sum();
    eprintln!(
        "crash under load: {ROUNDS} rounds, {ROUNDS} kills, {CLIENTS} clients; \
         {requests} requests carrying {events} events ({purchases} purchases, {} sign-ups) \
         for {} users, {acked_in_rounds} acknowledged during the rounds \
         (unanswered ones retried in the next), every request resent once at the end; \
         {in_flight_at_kills} requests in flight at the kills; \
         delayed sends outstanding at a kill: {} users, {outstanding_at_kills} (user, kill) pairs; \
         {} lines delivered under {} keys ({} redelivered, {torn} torn)",
        signed_up.len(),
        users.len(),
        outstanding_users.len(),
        lines.len(),
        by_key.len(),
        lines.len() - by_key.len(),
    );
}

/// Waits until `target` requests of this round are acknowledged; false if
/// every client stopped first (the daemon died or refused something).
fn wait_for_acks(
    acked: &AtomicUsize,
    target: usize,
    clients: &[std::thread::JoinHandle<Ledger>],
) -> bool {
    let mut alive = true;
    wait_for("acknowledged requests", DEADLINE, || {
        alive = clients.iter().any(|c| !c.is_finished());
        acked.load(Ordering::SeqCst) >= target || !alive
    });
    alive
}
