//! pest's errors in a marketer's words: grammar rules are renamed to what
//! they look like ("`{`", "a duration (like `3d`)", "`then`"), and the
//! message says what was found instead.

use super::{Grammar, Rule};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};
use pest::Parser as _;
use pest::error::{ErrorVariant, InputLocation};
use std::collections::BTreeSet;

/// A syntax error as a diagnostic. The fast parse does not collect which
/// literal tokens were expected; this parses the file once more with that
/// detail switched on (only ever on the error path).
pub(super) fn syntax_error_in(
    start: Rule,
    file: FileId,
    text: &str,
    error: pest::error::Error<Rule>,
) -> Diagnostic {
    // The switch is global to pest and files parse on several threads: one
    // detailed parse at a time, so none is switched off under another.
    static DETAIL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let detailed = {
        let _only_one = DETAIL.lock().unwrap_or_else(|e| e.into_inner());
        pest::set_error_detail(true);
        let detailed = Grammar::parse(start, text).err();
        pest::set_error_detail(false);
        detailed
    };
    let error = detailed.unwrap_or(error);

    let offset = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    };
    let mut expected = BTreeSet::new();
    if let ErrorVariant::ParsingError { positives, .. } = &error.variant {
        expected.extend(positives.iter().filter_map(|r| describe(*r)));
    }
    if let Some(attempts) = error.parse_attempts() {
        for token in attempts.expected_tokens() {
            let token = token.to_string();
            if is_whole_token(&token) {
                expected.insert(format!("`{token}`"));
            }
        }
        if attempts.max_position == offset {
            for stack in attempts.call_stacks() {
                expected.extend(stack.deepest.get_rule().and_then(|r| describe(*r)));
            }
        }
    }
    if let Some(diagnostic) = stray_percent(file, text, offset) {
        return diagnostic;
    }
    let expected_words = expected.clone();
    let expected = summarise(expected);
    let found = found_at(text, offset);
    let span = Span::new(file, offset, offset + found.len());
    let found_words = if found.is_empty() {
        "the end of the file".to_string()
    } else {
        format!("`{found}`")
    };
    let message = if expected.is_empty() {
        format!("unexpected {found_words}")
    } else {
        format!("expected {}, found {found_words}", join_or(expected))
    };
    let mut diagnostic = Diagnostic::new(Code::Syntax, span, message).label("unexpected here");
    let keywords = KEYWORDS
        .iter()
        .copied()
        .filter(|k| keyword_expected(&expected_words, k));
    if let Some(near) = crate::diagnostic::closest(&found, keywords) {
        diagnostic = diagnostic.help(format!("did you mean `{near}`?"));
    } else if let Some(help) = hint(text, offset, &found) {
        diagnostic = diagnostic.help(help);
    }
    diagnostic
}

/// `give points 50%` outside a split: the `%` reads as a remainder whose
/// right side is missing, so pest reports what follows (often the `}` on
/// the next line). A number's `%` with nothing after it is a percentage,
/// and percentages belong in split arms: say so, at the `%`.
fn stray_percent(file: FileId, text: &str, offset: usize) -> Option<Diagnostic> {
    let before = text[..offset.min(text.len())].trim_end();
    let percent = before.strip_suffix('%')?;
    if !percent.ends_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    // A number opening a line (or following a brace) starts a split arm:
    // an error there is the arm's own, not a stray `%`.
    let number_at = percent.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    let opens = number_at.trim_end_matches([' ', '\t']);
    if opens.is_empty() || opens.ends_with(['\n', '{', '}']) {
        return None;
    }
    let at = percent.len();
    Some(
        Diagnostic::new(
            Code::Syntax,
            Span::new(file, at, at + 1),
            "a percentage (`%`) belongs in a split arm",
        )
        .label("not in a split arm")
        .help(
            "write the number alone (`give points 50`), or a split arm such as `50% treated { … }`",
        ),
    )
}

/// Every keyword, for "did you mean" on a misspelt one.
const KEYWORDS: &[&str] = &[
    "journey",
    "rule",
    "task",
    "segment",
    "policy",
    "schema",
    "const",
    "test",
    "trigger",
    "audience",
    "entry",
    "exit",
    "goal",
    "active",
    "limit",
    "category",
    "tz",
    "transactional",
    "send",
    "wait",
    "split",
    "give",
    "take",
    "tag",
    "untag",
    "set",
    "unset",
    "emit",
    "repeat",
    "when",
    "then",
    "where",
    "within",
    "event",
    "schedule",
    "expect",
    "advance",
    "outcome",
    "streak",
    "count",
    "distinct",
    "repeatable",
    "quiet",
    "cap",
    "consent",
];

/// A keyword was among what the parser expected (a step or header keyword
/// counts when steps or header clauses were expected).
fn keyword_expected(expected: &BTreeSet<String>, keyword: &str) -> bool {
    expected.contains(&format!("`{keyword}`"))
}

/// The token at `offset`: a word, a number, or one character.
fn found_at(text: &str, offset: usize) -> String {
    let rest = &text[offset.min(text.len())..];
    let mut chars = rest.chars();
    let Some(first) = chars.next() else {
        return String::new();
    };
    if first.is_alphanumeric() || first == '_' {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.' && first.is_ascii_digit())
            .collect()
    } else if first == '"' {
        rest.chars().take(1).collect()
    } else {
        first.to_string()
    }
}

/// Advice for the mistakes people make most.
fn hint(text: &str, offset: usize, found: &str) -> Option<String> {
    let before = text[..offset.min(text.len())].trim_end();
    if found == "trigger" || found == "entry" || found == "goal" || found == "audience" {
        return Some(
            "header clauses (trigger, entry, exit, goal, …) come before the first step".into(),
        );
    }
    if found == "=" && !before.ends_with("set") {
        return Some("to compare two values, write `==`".into());
    }
    if [
        "journey", "rule", "task", "segment", "policy", "schema", "const", "test",
    ]
    .contains(&found)
        && !before.is_empty()
    {
        return Some("a declaration starts here: is the `}` of the one above missing?".into());
    }
    if found.is_empty() {
        return Some("a `{` may be missing its `}`".into());
    }
    None
}

/// Literal tokens worth naming: punctuation and words, not the pieces of
/// other tokens (quote marks, unit letters, the byte-order mark).
fn is_whole_token(token: &str) -> bool {
    const PIECES: &[&str] = &["\"", "\"\"\"", "_", "\u{feff}", "#", "\\"];
    let letters = token.chars().all(|c| c.is_ascii_alphabetic());
    let piece = token.trim().is_empty()
        || PIECES.contains(&token)
        || (letters && token.len() == 1)
        || token == "BUILTIN_RULE"
        || (token.chars().count() == 4 && token.contains(".."));
    !piece
}

/// Many ways to start an expression read better as "an expression", and
/// many operators as "an operator".
fn summarise(mut expected: BTreeSet<String>) -> Vec<String> {
    const STEPS: &[&str] = &[
        "`send`", "`wait`", "`if`", "`split`", "`give`", "`take`", "`tag`", "`untag`", "`set`",
        "`unset`", "`emit`", "`repeat`", "`exit`",
    ];
    const HEADERS: &[&str] = &[
        "`trigger`",
        "`audience`",
        "`entry`",
        "`goal`",
        "`active`",
        "`limit`",
        "`category`",
        "`tz`",
        "`policy`",
        "`transactional`",
    ];
    for (group, words) in [(STEPS, "a step"), (HEADERS, "a header clause")] {
        if group.iter().filter(|g| expected.contains(**g)).count() >= 4 {
            expected.retain(|e| !group.contains(&e.as_str()));
            expected.insert(words.into());
        }
    }
    const STARTS: &[&str] = &[
        "`(`",
        "`-`",
        "`[`",
        "`not`",
        "`true`",
        "`false`",
        "`null`",
        "a string",
        "a number",
        "a name",
        "a duration (like `3d`)",
        "a time of day (like `09:00`)",
        "an expression",
    ];
    const OPERATORS: &[&str] = &[
        "`!=`", "`%`", "`*`", "`+`", "`-`", "`/`", "`<`", "`<=`", "`==`", "`>`", "`>=`", "`and`",
        "`or`", "`in`", "`(`", "`.`", "`[`",
    ];
    let count =
        |set: &BTreeSet<String>, group: &[&str]| group.iter().filter(|g| set.contains(**g)).count();
    if count(&expected, OPERATORS) >= 5 {
        expected.retain(|e| !OPERATORS.contains(&e.as_str()));
        expected.insert("an operator".into());
        // The expression could go on: the operator is what is missing.
        expected.remove("an expression");
    }
    if count(&expected, STARTS) >= 4 {
        expected.retain(|e| !STARTS.contains(&e.as_str()) && e != "`{`");
        expected.insert("an expression".into());
    }
    expected.into_iter().collect()
}

fn join_or(mut items: Vec<String>) -> String {
    const MAX: usize = 10;
    if items.len() > MAX {
        items.truncate(MAX);
        items.push("…".into());
    }
    match items.len() {
        0 => String::new(),
        1 => items.remove(0),
        _ => {
            let last = items.pop().expect("len > 1");
            format!("{} or {last}", items.join(", "))
        }
    }
}

/// What a grammar rule looks like to a person. `None` for rules that never
/// need naming on their own.
fn describe(r: Rule) -> Option<String> {
    let name = format!("{r:?}");
    if let Some(word) = name.strip_prefix("k_") {
        return Some(format!("`{word}`"));
    }
    if let Some(op) = name.strip_prefix("op_") {
        let symbol = match op {
            "or" | "and" | "not" | "in" => op,
            "eq" => "==",
            "ne" => "!=",
            "le" => "<=",
            "ge" => ">=",
            "lt" => "<",
            "gt" => ">",
            "add" => "+",
            "sub" | "neg" => "-",
            "mul" => "*",
            "div" => "/",
            _ => "%",
        };
        return Some(format!("`{symbol}`"));
    }
    let words = match r {
        Rule::EOI => "the end of the file",
        Rule::ident => "a name",
        Rule::event_name => "an event name",
        Rule::field_name => "a field name",
        Rule::number | Rule::signed_number => "a number",
        Rule::integer => "a whole number",
        Rule::duration => "a duration (like `3d`)",
        Rule::time_of_day => "a time of day (like `09:00`)",
        Rule::percent => "a percentage (like `50%`)",
        Rule::calendar_period => "`day`, `week` or `month`",
        Rule::string | Rule::simple_string | Rule::triple_string | Rule::title => "a string",
        Rule::expr => "an expression",
        Rule::lit_true => "`true`",
        Rule::lit_false => "`false`",
        Rule::lit_null => "`null`",
        Rule::list => "`[`",
        Rule::record | Rule::block => "`{`",
        Rule::call_args => "`(`",
        Rule::field_access => "`.`",
        Rule::index => "`[`",
        Rule::window => "a window (like `1d` or `day`)",
        Rule::where_clause => "`where`",
        Rule::event_match | Rule::trigger_event => "`event`",
        Rule::confirmation => "`confirmation`",
        Rule::tz_clause => "`tz`",
        Rule::binding => "`as`",
        _ => return None,
    };
    Some(words.to_string())
}
