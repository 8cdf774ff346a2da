//! The function reference, `docs/functions.md`, generated from the table
//! so that it cannot drift from what the checker and runtime use; a test
//! compares the committed file with [`reference_markdown`].

use crate::{BUILTINS, FixedContext, Group};
use waymark_dsl::library::{Needs, ParamKind, Returns, Signature};

/// The reference page, grouped as in language.md §6.
pub fn reference_markdown() -> String {
    let mut out = String::new();
    out.push_str("# Built-in functions\n\n");
    out.push_str(
        "<!-- Generated from the table in stdlib/src by `reference_markdown()`. Do not edit: run\n",
    );
    out.push_str("     `WAYMARK_BLESS=1 cargo test -p waymark-stdlib --test reference` to rewrite it. -->\n\n");
    out.push_str(
        "Every deployment has these functions. A function given `null` returns `null` unless its \
         entry says it takes null. Arguments written `E` are event names and `E.PROP` event \
         properties, both written bare (`count(order_paid)`, `sum(order_paid.amount, 30d)`); \
         a name that is not a plain name, as Segment's are, is written quoted \
         (`count(\"Order Completed\", 30d)`, `sum(\"Order Completed\".revenue, 30d)`, \
         `last(\"Order Completed\").revenue`). \
         Timestamps may also be given as RFC 3339 strings, and dates as `YYYY-MM-DD` strings or \
         timestamps (read as their local date). `tz` is an IANA time-zone name; without it, the \
         time zone in force applies (the step's, the journey's, `user.timezone`, the policy's, \
         then UTC). `?` marks an optional parameter, `…` one that may repeat.\n\n",
    );
    out.push_str("Each example runs in the stdlib's tests against this context: ");
    out.push_str(FixedContext::EXAMPLE);
    out.push_str(" Dates and timestamps have no literal form, so results of those types are shown as strings.\n");
    for group in Group::ALL {
        out.push_str(&format!("\n## {}\n\n", group.name()));
        out.push_str("| function | returns | reads | description | example | result |\n");
        out.push_str("| --- | --- | --- | --- | --- | --- |\n");
        for builtin in BUILTINS.iter().filter(|b| b.group == group) {
            let sig = &builtin.signature;
            let mut doc = sig.doc.to_string();
            if sig.takes_null {
                doc.push_str(" Takes null.");
            }
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | `{}` | `{}` |\n",
                signature_text(sig),
                returns_text(sig.returns),
                needs_text(sig.needs),
                cell(&doc),
                cell(sig.example),
                cell(sig.example_result),
            ));
        }
    }
    out
}

/// `round(number, places?)` with kinds: `count(event: E, within?: duration)`.
fn signature_text(sig: &Signature) -> String {
    let params: Vec<String> = sig
        .params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let kind = match p.kind {
                ParamKind::Event => "E".to_string(),
                ParamKind::EventField => "E.PROP".to_string(),
                ParamKind::Value(t) => t.to_string(),
            };
            let optional = if p.optional { "?" } else { "" };
            let repeat = if sig.variadic && i + 1 == sig.params.len() {
                "…"
            } else {
                ""
            };
            format!("{}{optional}: {kind}{repeat}", p.name)
        })
        .collect();
    format!("{}({})", sig.name, params.join(", "))
}

fn returns_text(returns: Returns) -> String {
    match returns {
        Returns::Type(t) => t.to_string(),
        Returns::LikeArguments => "like its arguments".to_string(),
    }
}

fn needs_text(needs: &[Needs]) -> String {
    if needs.is_empty() {
        return "–".to_string();
    }
    let words: Vec<&str> = needs
        .iter()
        .map(|n| match n {
            Needs::Clock => "clock",
            Needs::History => "history",
            Needs::User => "user",
            Needs::TimeZone => "time zone",
        })
        .collect();
    words.join(", ")
}

/// Text safe inside a table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}
