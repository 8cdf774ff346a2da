//! `waymark fmt`, `waymark test` and `waymark simulate` as a user runs them.

use waymark_tests::{root, run, scratch, stderr, stdout};

#[test]
fn fmt_check_lists_unformatted_files_and_fmt_rewrites_them_once() {
    let dir = scratch("fmt");
    let messy = "journey   j{\ntrigger event a   # why\n    send wecom {text:\"hi\"}\n}\n";
    std::fs::write(dir.join("j.journey"), messy).unwrap();
    let check = run(&dir, &["fmt", "--check", "."]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stdout(&check).contains("j.journey is not formatted"),
        "{}",
        stdout(&check)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("j.journey")).unwrap(),
        messy,
        "--check writes nothing"
    );
    assert_eq!(run(&dir, &["fmt", "."]).status.code(), Some(0));
    let formatted = std::fs::read_to_string(dir.join("j.journey")).unwrap();
    assert_eq!(
        formatted,
        "journey j {\n  trigger event a  # why\n  send wecom { text: \"hi\" }\n}\n"
    );
    assert_eq!(run(&dir, &["fmt", "--check", "."]).status.code(), Some(0));
}

#[test]
fn test_names_the_failing_test_the_expectation_and_what_happened() {
    let dir = scratch("test_failure");
    let script = r#"journey hello {
  trigger event signed_up
  send wecom { text: "hi" }
}

test "greets by sms" {
  at "2025-11-10T12:00:00Z" event signed_up for "u1"
  expect send sms for "u1"
}

test "greets on wecom" {
  at "2025-11-10T12:00:00Z" event signed_up for "u1"
  expect send wecom for "u1" at "2025-11-10T12:00:00Z"
}
"#;
    std::fs::write(dir.join("hello.journey"), script).unwrap();
    let out = run(&dir, &["test", "hello.journey"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("test \"greets by sms\" ... FAILED"), "{text}");
    assert!(
        text.contains("hello.journey:8: expect send sms for \"u1\""),
        "{text}"
    );
    assert!(text.contains("but only: send wecom"), "{text}");
    assert!(text.contains("test \"greets on wecom\" ... ok"), "{text}");
    assert!(text.contains("tests: 1 passed, 1 failed"), "{text}");
}

#[test]
fn simulate_is_deterministic_and_prints_the_journal_shape() {
    let args = [
        "simulate",
        "examples/journeys",
        "--events",
        "examples/events/cart.jsonl",
        "--format",
        "json",
    ];
    let first = run(&root(), &args);
    let second = run(&root(), &args);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(first.stdout, second.stdout, "same inputs, same bytes");
    let lines: Vec<serde_json::Value> = stdout(&first)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|r| r["kind"] == "send"
        && r["channel"] == "miniprogram"
        && r["template"] == "CART_REMINDER"));
    for r in &lines {
        assert!(
            r["at"].as_str().unwrap().ends_with('Z'),
            "RFC 3339 UTC: {r}"
        );
        assert!(r["user"].is_string() && r["kind"].is_string());
    }
    assert!(
        stderr(&first).contains("cart_recovery"),
        "the summary goes to stderr with --format json"
    );
}

#[test]
fn simulate_names_the_line_and_field_of_a_bad_event() {
    let dir = scratch("simulate_bad");
    std::fs::write(dir.join("events.jsonl"), "{\"type\":\"track\",\"userId\":\"u1\",\"event\":\"a\",\"timestamp\":\"2025-11-10T12:00:00Z\"}\n{\"type\":\"track\",\"event\":\"a\",\"timestamp\":\"2025-11-10T12:00:00Z\"}\n").unwrap();
    std::fs::write(dir.join("j.journey"), "journey j {\n  trigger event a\n}\n").unwrap();
    let out = run(&dir, &["simulate", "j.journey", "--events", "events.jsonl"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("events.jsonl:2: userId: missing"),
        "{}",
        stderr(&out)
    );
}

/// Test blocks send events named as Segment names them, and `fmt` keeps
/// the quotes those names need.
#[test]
fn test_blocks_send_quoted_segment_event_names() {
    let dir = scratch("quoted_events");
    let script = r#"journey thanks {
  trigger event "Order Completed" where event.revenue > 100
  entry always
  if count("Order Completed", 30d) >= 2 {
    send wecom { text: "again" }
  } else {
    send wecom { text: "thanks" }
  }
}

test "a big order is thanked" {
  at "2025-11-10T12:00:00Z" event "Order Completed" for "u1" { revenue: 120 }
  expect enter thanks for "u1"
  expect send wecom for "u1"
}

test "a small order is not" {
  at "2025-11-10T12:00:00Z" event "Order Completed" for "u1" { revenue: 20 }
  event order_completed for "u1" { revenue: 500 }
  expect no enter thanks for "u1"
}
"#;
    std::fs::write(dir.join("thanks.journey"), script).unwrap();
    let out = run(&dir, &["test", "thanks.journey"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    assert!(text.contains("tests: 2 passed, 0 failed"), "{text}");
    let fmt = run(&dir, &["fmt", "--check", "thanks.journey"]);
    assert_eq!(fmt.status.code(), Some(0), "{}", stdout(&fmt));
}

/// Item 29: `page`, `screen`, `group` and `alias` lines are taken as the
/// daemon takes them (item 9) instead of aborting half-way: a page event
/// starts a journey, and the alias is noted on stderr.
#[test]
fn simulate_takes_every_segment_type_as_the_daemon_does() {
    let dir = scratch("simulate_segment_types");
    let events = [
        r#"{"type":"group","userId":"u1","groupId":"acme","traits":{"plan":"pro"},"timestamp":"2025-11-10T12:00:00Z"}"#,
        r#"{"type":"alias","userId":"u1","previousId":"anon-1","timestamp":"2025-11-10T12:00:00Z"}"#,
        r#"{"type":"screen","userId":"u1","name":"Home","timestamp":"2025-11-10T12:01:00Z"}"#,
        r#"{"type":"page","userId":"u1","name":"Pricing","properties":{"url":"/pricing"},"timestamp":"2025-11-10T12:02:00Z"}"#,
    ];
    std::fs::write(dir.join("events.jsonl"), events.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("j.journey"),
        "journey pricing {\n  trigger event page where event.name == \"Pricing\" and user.groups.acme.plan == \"pro\"\n  send wecom { text: \"{event.url}\" }\n}\n",
    )
    .unwrap();
    let out = run(
        &dir,
        &[
            "simulate",
            "j.journey",
            "--events",
            "events.jsonl",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let sends: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "send")
        .collect();
    assert_eq!(sends.len(), 1, "{}", stdout(&out));
    assert_eq!(sends[0]["fields"]["text"], "/pricing");
    // The alias merges anon-1 (no profile yet) into u1.
    let merged: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "merged")
        .collect();
    assert_eq!(merged.len(), 1, "{}", stdout(&out));
    assert_eq!(
        (
            &merged[0]["user"],
            &merged[0]["merged"],
            &merged[0]["reason"]
        ),
        (&"u1".into(), &"anon-1".into(), &"alias".into())
    );
    assert!(!stderr(&out).contains("not acted on"), "{}", stderr(&out));
}

/// Item 29: `--until 0d` stops the clock at the last event.
#[test]
fn simulate_until_zero_stops_at_the_last_event() {
    let dir = scratch("simulate_until_zero");
    std::fs::write(
        dir.join("events.jsonl"),
        "{\"type\":\"track\",\"userId\":\"u1\",\"event\":\"a\",\"timestamp\":\"2025-11-10T12:00:00Z\"}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("j.journey"),
        "journey j {\n  trigger event a\n  send wecom { text: \"now\" }\n  wait 1h\n  send wecom { text: \"later\" }\n}\n",
    )
    .unwrap();
    let sends = |until: &str| {
        let out = run(
            &dir,
            &[
                "simulate",
                "j.journey",
                "--events",
                "events.jsonl",
                "--format",
                "json",
                "--until",
                until,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(0),
            "--until {until}: {}",
            stderr(&out)
        );
        stdout(&out)
            .lines()
            .filter(|l| l.contains("\"kind\":\"send\""))
            .count()
    };
    assert_eq!(sends("0d"), 1);
    assert_eq!(sends("2h"), 2);
}

/// Item 29: `simulate … | head` ends quietly when the reader goes away.
#[test]
fn simulate_ends_quietly_when_its_reader_closes_the_pipe() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let dir = scratch("simulate_pipe");
    let events: Vec<String> = (0..5_000)
        .map(|i| {
            format!(
                "{{\"type\":\"track\",\"userId\":\"u{i}\",\"event\":\"a\",\"timestamp\":\"2025-11-10T12:00:00Z\"}}"
            )
        })
        .collect();
    std::fs::write(dir.join("events.jsonl"), events.join("\n") + "\n").unwrap();
    std::fs::write(
        dir.join("j.journey"),
        "journey j {\n  trigger event a\n  send wecom { text: \"hi\" }\n}\n",
    )
    .unwrap();
    let mut child = Command::new(waymark_tests::waymark())
        .args(["simulate", "j.journey", "--events", "events.jsonl"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(!first.is_empty());
    // The reader is dropped here, as `head -1` exits.
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out), "");
}

/// Item 29: `waymark explain functions`, which diagnostics promise, lists
/// the built-in functions.
#[test]
fn explain_functions_lists_the_built_in_functions() {
    let out = run(&root(), &["explain", "functions"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    for wanted in [
        "history:",
        "count(event, within?)",
        "sum(event_property, within)",
        "round(",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from {text}");
    }
}
#[test]
fn test_blocks_change_traits_mid_test_assert_split_arms_and_show_times_in_the_tests_zone() {
    let dir = scratch("test_identify_arm_zone");
    let script = r#"policy default {
  tz "Asia/Shanghai"
}

segment vip = user.tier == "gold"

journey vip_welcome {
  trigger segment vip
  split copy {
    50% short {
      send wecom { text: "hi" }
    }
    50% long {
      send wecom { text: "hello there" }
    }
  }
}

test "a user who turns gold enters and gets an arm" {
  at "2025-11-10T12:00:00Z"
  user "u1" { tier: "silver" }
  expect no enter vip_welcome for "u1"
  identify "u1" { tier: "gold" }
  expect enter vip_welcome for "u1"
  expect arm short of copy for "u1"
  expect no arm long of copy for "u1"
}

test "the wrong arm" {
  at "2025-11-10T12:00:00Z"
  identify "u1" { tier: "gold" }
  expect arm long of copy for "u1"
  expect send sms for "u1"
}
"#;
    std::fs::write(dir.join("vip.journey"), script).unwrap();
    assert_eq!(
        run(&dir, &["fmt", "--check", "."]).status.code(),
        Some(0),
        "identify and expect arm are in the canonical layout"
    );
    let out = run(&dir, &["test", "vip.journey"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("test \"a user who turns gold enters and gets an arm\" ... ok"),
        "{text}"
    );
    assert!(
        text.contains("expect arm long of copy for \"u1\"\n    but got arm short for u1"),
        "{text}"
    );
    // 12:00 UTC is 20:00 in the default policy's zone, and every time of
    // the failure says so.
    assert!(
        text.contains("send wecom journey vip_welcome for u1 at 2025-11-10T20:00:00+08:00"),
        "{text}"
    );
    assert!(
        !text.contains("T12:00:00Z"),
        "a time in another zone: {text}"
    );
}
