//! The preview shell (`simulate`) and the daemon's shell (the runtime over
//! a store) run the same core: on the example journeys and their recorded
//! events, with timers and schedules firing for a month after, they write
//! the same journal, record for record. A history function the scripts
//! call (`last`, `sum`) sees the same in both, though the preview keeps
//! only the history the scripts read.

use chrono::Duration;
use waymark_core::deployment::Deployment;
use waymark_core::journal::Record;
use waymark_core::model::Input;
use waymark_dsl::{Options, Sources, compile};
use waymark_engine::ingest::{Message, input_from_text};
use waymark_engine::preview::Preview;
use waymark_engine::runtime::Runtime;
use waymark_engine::store::{MemoryKv, Store};

fn plan(files: &[(String, String)]) -> waymark_dsl::plan::Plan {
    let mut sources = Sources::new();
    for (name, text) in files {
        sources.add(name.clone(), text.clone());
    }
    let options = Options {
        functions: waymark_stdlib::stdlib(),
        channels: None,
    };
    let checked = compile(sources, options);
    checked.plan.unwrap_or_else(|| {
        panic!(
            "{}",
            waymark_dsl::render::human(&checked.sources, &checked.diagnostics)
        )
    })
}

fn inputs(text: &str) -> Vec<(Input, chrono::DateTime<chrono::Utc>)> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| match input_from_text(l).unwrap() {
            (Message::Input(input), at) => (input, at),
            (other, _) => panic!("not an input: {other:?}"),
        })
        .collect()
}

/// Both shells on the same inputs, then a month of timers.
fn both(
    plan: &waymark_dsl::plan::Plan,
    inputs: &[(Input, chrono::DateTime<chrono::Utc>)],
) -> (Vec<Record>, Vec<Record>) {
    let mut runtime = Runtime::new(
        Store::new(MemoryKv::default()),
        Deployment::new(plan.clone()),
    );
    let mut preview = Preview::new(Deployment::new(plan.clone()));
    let (mut daemon, mut previewed) = (Vec::new(), Vec::new());
    let start = inputs[0].1;
    runtime.start_schedules_at(start);
    preview.start_schedules_at(start);
    for (input, at) in inputs {
        daemon.extend(runtime.advance_to(*at).unwrap());
        daemon.extend(runtime.ingest(std::slice::from_ref(input), *at).unwrap());
        preview.advance_to(*at, &mut previewed);
        preview.handle(input, *at, &mut previewed);
    }
    let end = inputs.last().unwrap().1 + Duration::days(30);
    daemon.extend(runtime.advance_to(end).unwrap());
    preview.advance_to(end, &mut previewed);
    (daemon, previewed)
}

#[test]
fn the_example_journeys_write_the_same_journal_in_the_preview_as_in_the_daemon() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut files: Vec<(String, String)> = std::fs::read_dir(format!("{root}/journeys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    let plan = plan(&files);
    let mut events: Vec<_> = std::fs::read_dir(format!("{root}/events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    events.sort();
    assert!(events.len() >= 5);
    for path in events {
        let inputs = inputs(&std::fs::read_to_string(&path).unwrap());
        let (daemon, previewed) = both(&plan, &inputs);
        assert!(!daemon.is_empty(), "{}", path.display());
        assert_eq!(previewed, daemon, "{}", path.display());
    }
}

#[test]
fn history_the_scripts_read_is_kept_and_what_they_do_not_is_not_needed() {
    let plan = plan(&[(
        "h.journey".into(),
        r#"
rule big_again "an order bigger than the last one" {
  when event order_paid
  if sum(order_paid.amount, 30d) >= 300 and count(page_view, 7d) >= 2
  then {
    emit spent { total: sum(order_paid.amount, 30d), last: last(order_paid).amount }
  }
}
"#
        .into(),
    )]);
    let text = r#"{"type":"track","userId":"u","event":"page_view","properties":{"path":"/"},"timestamp":"2025-11-01T00:00:00Z"}
{"type":"track","userId":"u","event":"page_view","properties":{"path":"/a"},"timestamp":"2025-11-01T00:01:00Z"}
{"type":"track","userId":"u","event":"order_paid","properties":{"amount":100},"timestamp":"2025-11-01T01:00:00Z"}
{"type":"track","userId":"u","event":"checkin","timestamp":"2025-11-01T02:00:00Z"}
{"type":"track","userId":"u","event":"order_paid","properties":{"amount":250},"timestamp":"2025-11-02T01:00:00Z"}"#;
    let (daemon, previewed) = both(&plan, &inputs(text));
    assert_eq!(previewed, daemon);
    let emits: Vec<_> = previewed
        .iter()
        .filter(|r| r.kind == waymark_core::journal::Kind::Emit)
        .collect();
    assert_eq!(emits.len(), 1, "{previewed:?}");
    let fields = emits[0].fields.as_ref().unwrap();
    assert_eq!(fields["total"], 350);
    assert_eq!(fields["last"], 250);
}

/// The preview does not handle an emitted event that nothing deployed
/// reacts to (`Deployment::hears`) and whose history it does not keep;
/// every emitted event that something hears — a rule, a trigger, a `wait
/// for`, a goal, an `exit on`, a history function — still does what it
/// does in the daemon, which handles them all.
#[test]
fn an_emit_reaches_whatever_hears_it_in_the_preview_as_in_the_daemon() {
    let plan = plan(&[(
        "e.journey".into(),
        r#"
rule paid {
  when event order_paid
  then {
    emit waited_for
    emit converted
    emit left
    emit heard_by_a_rule
  }
}
rule checked { when event checkin then { emit nobody_hears { n: 1 } } }
rule counted { when event checkin then { emit counted_later } }
rule chained { when event heard_by_a_rule then { tag "chained" } }
journey waiting {
  trigger event cart_updated
  wait for event waited_for within 1d {
    send sms template "PAID"
  } else {
    send sms template "LATE"
  }
}
journey converting {
  trigger event cart_updated
  goal converted within 3d
  wait 2d
  send sms template "NUDGE"
}
journey leaving {
  trigger event cart_updated
  exit on event left
  wait 1h
  send sms template "LEFT_TOO_LATE"
}
journey counting {
  trigger event page_view
  if count(counted_later, 7d) >= 1 {
    send sms template "COUNTED"
  } else {
    send sms template "NOT_COUNTED"
  }
}
"#
        .into(),
    )]);
    let text = r#"{"type":"track","userId":"a","event":"cart_updated","timestamp":"2025-11-01T00:00:00Z"}
{"type":"track","userId":"b","event":"cart_updated","timestamp":"2025-11-01T00:00:00Z"}
{"type":"track","userId":"a","event":"order_paid","properties":{"amount":5},"timestamp":"2025-11-01T00:30:00Z"}
{"type":"track","userId":"a","event":"checkin","timestamp":"2025-11-01T01:00:00Z"}
{"type":"track","userId":"a","event":"page_view","timestamp":"2025-11-01T02:00:00Z"}
{"type":"track","userId":"b","event":"page_view","timestamp":"2025-11-01T02:00:00Z"}"#;
    let (daemon, previewed) = both(&plan, &inputs(text));
    assert_eq!(previewed, daemon);
    let of = |user: &str, kind: waymark_core::journal::Kind| -> Vec<&Record> {
        previewed
            .iter()
            .filter(|r| r.user == user && r.kind == kind)
            .collect()
    };
    use waymark_core::journal::Kind;
    let templates = |user: &str| -> Vec<&str> {
        of(user, Kind::Send)
            .iter()
            .filter_map(|r| r.template.as_deref())
            .collect()
    };
    // The wait, the goal and the exit all heard `a`'s emitted event.
    assert_eq!(templates("a"), ["PAID", "COUNTED"], "{previewed:?}");
    assert_eq!(of("a", Kind::Goal).len(), 1, "{previewed:?}");
    assert!(
        of("a", Kind::Exit)
            .iter()
            .any(|r| r.journey.as_deref() == Some("leaving")
                && r.reason.as_deref() == Some("exit_on")),
        "{previewed:?}"
    );
    assert!(
        of("a", Kind::Tag)
            .iter()
            .any(|r| r.tag.as_deref() == Some("chained")),
        "{previewed:?}"
    );
    assert_eq!(
        templates("b"),
        ["LEFT_TOO_LATE", "NOT_COUNTED", "LATE", "NUDGE"],
        "{previewed:?}"
    );
    assert_eq!(of("a", Kind::Emit).len(), 6);
}
