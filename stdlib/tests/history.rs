//! History built-ins against the example context's `order_paid` events
//! (100 on Oct 1, 50.5 on Nov 1, 20 on Nov 9; now is Nov 10 12:00 UTC).

mod common;

use common::*;
use waymark_dsl::value::Value;

const DAY: i64 = 86_400;

#[test]
fn count_without_window_counts_all_time() {
    assert_eq!(run(&ctx(), "count", &[s("order_paid")]), num("3"));
}

#[test]
fn count_within_window_counts_only_recent_events() {
    let ctx = ctx();
    assert_eq!(
        run(&ctx, "count", &[s("order_paid"), Value::Duration(30 * DAY)]),
        num("2")
    );
    // The last order is exactly a day old: a rolling window leaves out its start.
    assert_eq!(
        run(&ctx, "count", &[s("order_paid"), Value::Duration(DAY)]),
        num("0")
    );
    assert_eq!(
        run(&ctx, "count", &[s("order_paid"), Value::Duration(DAY + 1)]),
        num("1")
    );
    assert_eq!(
        run(&ctx, "count", &[s("order_paid"), Value::Duration(3600)]),
        num("0")
    );
}

#[test]
fn count_of_an_unseen_event_is_zero() {
    assert_eq!(run(&ctx(), "count", &[s("signup")]), num("0"));
}

#[test]
fn count_rejects_a_negative_window() {
    assert!(
        error(&ctx(), "count", &[s("order_paid"), Value::Duration(-5)])
            .starts_with("count: within must be")
    );
}

#[test]
fn sum_adds_exactly_within_the_window() {
    let ctx = ctx();
    assert_eq!(
        run(
            &ctx,
            "sum",
            &[s("order_paid.amount"), Value::Duration(30 * DAY)]
        ),
        num("70.5")
    );
    assert_eq!(
        run(
            &ctx,
            "sum",
            &[s("order_paid.amount"), Value::Duration(365 * DAY)]
        ),
        num("170.5")
    );
}

#[test]
fn sum_of_missing_property_or_event_is_zero() {
    let ctx = ctx();
    assert_eq!(
        run(
            &ctx,
            "sum",
            &[s("order_paid.tax"), Value::Duration(30 * DAY)]
        ),
        num("0")
    );
    assert_eq!(
        run(
            &ctx,
            "sum",
            &[s("refund.amount"), Value::Duration(30 * DAY)]
        ),
        num("0")
    );
}

#[test]
fn last_and_first_return_the_event_record() {
    let ctx = ctx();
    let last = run(&ctx, "last", &[s("order_paid")]);
    assert_eq!(last.field("amount"), &num("20"));
    assert_eq!(last.field("name"), &s("order_paid"));
    assert_eq!(last.field("at"), &ts("2025-11-09T12:00:00Z"));
    let first = run(&ctx, "first", &[s("order_paid")]);
    assert_eq!(first.field("amount"), &num("100"));
}

#[test]
fn last_of_an_unseen_event_is_null() {
    assert_eq!(run(&ctx(), "last", &[s("refund")]), Value::Null);
    assert_eq!(run(&ctx(), "first", &[s("refund")]), Value::Null);
}

#[test]
fn days_since_counts_whole_days() {
    let ctx = ctx();
    assert_eq!(
        run(&ctx, "days_since", &[ts("2025-11-01T03:00:00Z")]),
        num("9")
    );
    assert_eq!(
        run(&ctx, "days_since", &[ts("2025-11-09T12:00:01Z")]),
        num("0")
    );
}

#[test]
fn days_since_accepts_rfc3339_strings() {
    assert_eq!(
        run(&ctx(), "days_since", &[s("2025-11-08T20:00:00+08:00")]),
        num("2")
    );
}

#[test]
fn days_since_a_future_time_is_negative_rounded_toward_zero() {
    let ctx = ctx();
    assert_eq!(
        run(&ctx, "days_since", &[ts("2025-11-12T00:00:00Z")]),
        num("-1")
    );
    assert_eq!(
        run(&ctx, "days_since", &[ts("2025-11-10T18:00:00Z")]),
        num("0")
    );
}

#[test]
fn hours_since_counts_whole_hours() {
    assert_eq!(
        run(&ctx(), "hours_since", &[ts("2025-11-10T09:30:00Z")]),
        num("2")
    );
}

#[test]
fn days_since_text_that_is_not_a_timestamp_is_an_error() {
    assert_eq!(
        error(&ctx(), "days_since", &[s("yesterday")]),
        "days_since: time must be a timestamp like \"2025-11-10T20:00:00+08:00\", got the string \"yesterday\""
    );
}

/// Events named as Segment names them (`"Order Completed"`, or with a dot)
/// are found by their whole name; `sum`'s property is what follows the
/// last dot, since a property is a plain name.
#[test]
fn history_reads_events_with_spaces_and_dots_in_their_names() {
    use waymark_stdlib::RecordedEvent;
    let mut ctx = ctx();
    for (name, revenue) in [("Order Completed", "30"), ("Order.Completed", "7")] {
        ctx.events.push(RecordedEvent {
            name: name.to_string(),
            at: instant("2025-11-10T10:00:00Z"),
            properties: waymark_dsl::value::Fields::from([("revenue".to_string(), num(revenue))]),
        });
    }
    assert_eq!(run(&ctx, "count", &[s("Order Completed")]), num("1"));
    assert_eq!(
        run(
            &ctx,
            "sum",
            &[s("Order Completed.revenue"), Value::Duration(DAY)]
        ),
        num("30")
    );
    assert_eq!(
        run(
            &ctx,
            "sum",
            &[s("Order.Completed.revenue"), Value::Duration(DAY)]
        ),
        num("7")
    );
}
