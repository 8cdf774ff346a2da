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
