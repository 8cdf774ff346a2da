//! `waymark test` on a journey that reaches customers through their staff
//! member: a test says what came of a staff-confirmed send with
//! `outcome OUTCOME for "ID"`, and sees the journey go on from its
//! `wait for confirmation` (the first block for `sent`, `else` otherwise).

mod support;

use support::compile;
use waymark_engine::testing::{self, Outcome};

const JOURNEY: &str = r#"
journey cart_staff "购物车挽回（导购确认）" {
  trigger event cart_abandoned
  entry always
  send mass { text: "您的购物车里还有 {event.item}" }
  wait for confirmation within 24h {
    tag "reached_by_staff"
  } else {
    send sms template "SMS_CART" { item: event.item }
  }
}
"#;

const TESTS: &str = r#"
test "sent: the staff member's message reached the customer" {
  at "2025-11-10T20:00:00Z" event cart_abandoned for "u1" { item: "茶具" }
  advance 2h
  outcome sent for "u1"
  expect outcome sent for "u1" at "2025-11-10T22:00:00Z"
  expect no outcome over_quota
  expect tag "reached_by_staff" for "u1" at "2025-11-10T22:00:00Z"
  advance 25h
  expect no send sms
}

test "over quota: the SMS goes out when the platform says so" {
  at "2025-11-10T20:00:00Z" event cart_abandoned for "u2" { item: "茶具" }
  advance 3h
  outcome over_quota for "u2"
  expect outcome over_quota for "u2"
  expect send sms template "SMS_CART" for "u2" at "2025-11-10T23:00:00Z"
  expect no tag "reached_by_staff"
}

test "nobody confirms: the SMS goes out when the wait times out" {
  at "2025-11-10T20:00:00Z" event cart_abandoned for "u3" { item: "茶具" }
  expect no send sms
  advance 25h
  expect send sms template "SMS_CART" for "u3" at "2025-11-11T20:00:00Z"
  expect no outcome
}

test "an outcome with no send waiting for one" {
  user "u9"
  outcome sent for "u9"
  at "2025-11-10T20:00:00Z" event cart_abandoned for "u1" { item: "茶具" }
  outcome failed for "u1"
  outcome sent for "u1"
}
"#;

fn run_all() -> Vec<Outcome> {
    let plan = compile(&format!("{JOURNEY}{TESTS}"));
    plan.tests
        .iter()
        .map(|test| testing::run(&plan, test).expect("the in-memory store does not fail"))
        .collect()
}

fn failures(outcome: &Outcome) -> String {
    outcome
        .failures
        .iter()
        .map(|f| format!("{}: {} but {}", f.location, f.expectation, f.found))
        .chain(
            outcome
                .records
                .iter()
                .map(|r| testing::describe(r, outcome.zone)),
        )
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn an_outcome_moves_the_wait_for_confirmation_and_nothing_times_out_into_else() {
    let outcomes = run_all();
    assert_eq!(outcomes.len(), 4);
    for outcome in &outcomes[..3] {
        assert!(
            outcome.failures.is_empty(),
            "test \"{}\" failed:\n{}",
            outcome.name,
            failures(outcome)
        );
    }
    // The outcome is journaled against the send it is about.
    let sent = &outcomes[0];
    let send = sent
        .records
        .iter()
        .find(|r| r.kind.as_str() == "send")
        .expect("the mass send");
    let record = sent
        .records
        .iter()
        .find(|r| r.kind.as_str() == "outcome")
        .expect("the outcome");
    assert_eq!(record.reason.as_deref(), Some("sent"));
    assert_eq!(record.idempotency_key, send.idempotency_key);
    assert_eq!(record.channel.as_deref(), Some("mass"));
}

#[test]
fn an_outcome_for_a_user_with_no_send_waiting_fails_the_test() {
    let outcomes = run_all();
    let failed = &outcomes[3];
    let found: Vec<(&str, &str)> = failed
        .failures
        .iter()
        .map(|f| (f.expectation.as_str(), f.found.as_str()))
        .collect();
    // u9 never got a send; u1's one send already has its outcome, so a
    // second one has nothing left to be about.
    assert_eq!(
        found,
        [
            (
                r#"outcome sent for "u9""#,
                "u9 has no send waiting for a staff member's confirmation"
            ),
            (
                r#"outcome sent for "u1""#,
                "u1 has no send waiting for a staff member's confirmation"
            ),
        ],
        "{}",
        failures(failed)
    );
    // At the statement's own line.
    let script = format!("{JOURNEY}{TESTS}");
    let line = 1 + script
        .lines()
        .position(|l| l.trim() == r#"outcome sent for "u9""#)
        .expect("the statement");
    assert_eq!(failed.failures[0].location, format!("test.journey:{line}"));
    // The one that had a send to be about went through: `failed` runs else.
    assert!(
        failed
            .records
            .iter()
            .any(|r| r.kind.as_str() == "send" && r.template.as_deref() == Some("SMS_CART")),
        "{}",
        failures(failed)
    );
}
