//! Property test for `waymark fmt`: random valid scripts (journeys, rules,
//! tasks, segments, consts, policies, schemas and tests, with nested steps,
//! expressions over every operator with random parentheses, strings with
//! escapes and interpolation, comments between and at the end of lines and
//! inside expressions, messy indentation and blank lines) format to text
//! that parses to the same tree, keeps every comment, and formats to itself.

use proptest::prelude::*;
use proptest::sample::select;
use serde_json::Value;
use waymark_dsl::fmt::format_source;
use waymark_dsl::{Sources, ast, parser};

// ------------------------------------------------------------------ expressions

/// A generated expression: its text and how loosely it binds (so that the
/// generator can add the parentheses the intended tree needs).
#[derive(Clone, Debug)]
struct Gen {
    text: String,
    prec: u8,
    has_comparison: bool,
}

const ATOM: u8 = 8;

fn atom(text: impl Into<String>) -> Gen {
    Gen {
        text: text.into(),
        prec: ATOM,
        has_comparison: false,
    }
}

fn wrap(g: &Gen) -> String {
    format!("({})", g.text)
}

const NAMES: &[&str] = &[
    "a", "b", "total", "x_1", "新客", "_t", "user", "event", "now", "notes", "order",
];
const FIELDS: &[&str] = &["x", "amount", "in", "and", "名字", "at", "code"];
const FUNCTIONS: &[&str] = &["count", "len", "f", "coalesce", "days_since"];
const NUMBERS: &[&str] = &["0", "42", "1_000", "19.90", "0.5", "007"];
const DURATIONS: &[&str] = &["30s", "15m", "2h", "3d", "1w", "1d12h", "0s"];
const TIMES: &[&str] = &["09:00", "22:30", "0:05", "23:59"];
const OPS: &[(&str, u8)] = &[
    ("or", 1),
    ("and", 2),
    ("==", 4),
    ("!=", 4),
    ("<", 4),
    ("<=", 4),
    (">", 4),
    (">=", 4),
    ("in", 4),
    ("+", 5),
    ("-", 5),
    ("*", 6),
    ("/", 6),
    ("%", 6),
];

/// Pieces of a `"…"` string as written: text, escapes, a `#` that is not a comment.
const SIMPLE_PIECES: &[&str] = &[
    "a", "Hi ", "好", "#", " ", "\\n", "\\t", "\\r", "\\\"", "\\{", "\\}", "\\\\", "'",
];
/// Pieces of a `"""…"""` string: real line breaks, quotes that do not end it.
const TRIPLE_PIECES: &[&str] = &[
    "a",
    "\n",
    "  indented\n",
    "x\"y",
    "\"\"z",
    "\\\"",
    "\\{",
    "\\}",
    "\\\\",
    "\\n",
    "#",
    "\t",
];

fn string_lit(interpolations: Option<BoxedStrategy<Gen>>) -> BoxedStrategy<Gen> {
    let interpolation = match interpolations {
        Some(inner) => prop_oneof![3 => Just(None), 1 => inner.prop_map(Some)].boxed(),
        None => Just(None).boxed(),
    };
    let simple_piece = prop_oneof![
        4 => select(SIMPLE_PIECES).prop_map(|s| s.to_string()),
        1 => interpolation.clone().prop_map(|g| g.map_or_else(String::new, |g| format!("{{{}}}", g.text))),
    ];
    let triple_piece = prop_oneof![
        4 => select(TRIPLE_PIECES).prop_map(|s| s.to_string()),
        1 => interpolation.prop_map(|g| g.map_or_else(String::new, |g| format!("{{ {} }}", g.text))),
    ];
    prop_oneof![
        3 => prop::collection::vec(simple_piece, 0..5).prop_map(|p| atom(format!("\"{}\"", p.concat()))),
        1 => prop::collection::vec(triple_piece, 0..5).prop_map(|p| atom(format!("\"\"\"{}\"\"\"", p.concat()))),
    ]
    .boxed()
}

fn leaf() -> BoxedStrategy<Gen> {
    prop_oneof![
        1 => select(NUMBERS).prop_map(atom),
        1 => select(DURATIONS).prop_map(atom),
        1 => select(TIMES).prop_map(atom),
        1 => select(&["true", "false", "null"][..]).prop_map(atom),
        3 => select(NAMES).prop_map(atom),
        1 => string_lit(None),
    ]
    .boxed()
}

/// Space around an operator: none (for symbols), one, a line break, or a
/// comment and a line break.
fn op_space(word: bool) -> impl Strategy<Value = String> {
    let none = if word { " " } else { "" };
    select(vec![
        " ",
        " ",
        " ",
        none,
        "\n    ",
        "  # in an expression\n  ",
    ])
    .prop_map(str::to_string)
}

fn record_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(FIELDS).prop_map(str::to_string),
        1 => select(&["\"a-b\"", "\"x y\"", "\"\"", "\"q\\\"k\""][..]).prop_map(str::to_string),
    ]
}

fn separated(items: Vec<String>, trailing: bool, newlines: bool) -> String {
    let sep = if newlines { ",\n  " } else { ", " };
    let mut out = items.join(sep);
    if trailing && !items.is_empty() {
        out.push(',');
    }
    out
}

fn record_of(inner: BoxedStrategy<Gen>) -> impl Strategy<Value = Gen> {
    (
        prop::collection::vec((record_key(), inner), 0..4),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(fields, trailing, newlines, commaless)| {
            let items: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{k}: {}", v.text))
                .collect();
            // Without commas a key that is an operator word would continue the value before it.
            let commaless = commaless && fields.iter().all(|(k, _)| k != "in" && k != "and");
            let body = if commaless {
                items.join(" ")
            } else {
                separated(items, trailing, newlines)
            };
            if body.is_empty() {
                atom("{}")
            } else {
                atom(format!("{{ {body} }}"))
            }
        })
}

fn expr() -> BoxedStrategy<Gen> {
    leaf()
        .prop_recursive(4, 40, 4, |inner| {
            prop_oneof![
                4 => (inner.clone(), select(OPS), inner.clone(), op_space(false), any::<bool>())
                    .prop_map(|(l, (op, p), r, space, drop)| binary(l, op, p, r, space, drop)),
                1 => (select(&["not ", "-", "- "][..]), inner.clone()).prop_map(|(op, g)| {
                    let p = if op == "not " { 3 } else { 7 };
                    let text = if g.prec < p { wrap(&g) } else { g.text.clone() };
                    Gen { text: format!("{op}{text}"), prec: p, has_comparison: g.has_comparison }
                }),
                1 => (inner.clone(), select(FIELDS)).prop_map(|(g, f)| postfix(&g, &format!(".{f}"))),
                1 => (inner.clone(), inner.clone()).prop_map(|(g, i)| postfix(&g, &format!("[{}]", i.text))),
                1 => (select(FUNCTIONS), prop::collection::vec(inner.clone(), 0..3), any::<bool>())
                    .prop_map(|(f, args, trailing)| {
                        let args = args.iter().map(|a| a.text.clone()).collect();
                        atom(format!("{f}({})", separated(args, trailing, false)))
                    }),
                1 => (prop::collection::vec(inner.clone(), 0..4), any::<bool>(), any::<bool>()).prop_map(
                    |(items, trailing, newlines)| {
                        let items = items.iter().map(|a| a.text.clone()).collect();
                        atom(format!("[{}]", separated(items, trailing, newlines)))
                    }
                ),
                1 => record_of(inner.clone()),
                1 => string_lit(Some(inner.clone())),
                1 => inner.prop_map(|g| Gen { text: wrap(&g), prec: ATOM, has_comparison: g.has_comparison }),
            ]
        })
        .boxed()
}

fn postfix(base: &Gen, suffix: &str) -> Gen {
    let text = if base.prec < ATOM {
        wrap(base)
    } else {
        base.text.clone()
    };
    Gen {
        text: format!("{text}{suffix}"),
        prec: ATOM,
        has_comparison: base.has_comparison,
    }
}

/// `l op r` with the parentheses the intended tree needs. Where no
/// comparison is involved any grouping parses, so needed parentheses are
/// sometimes dropped (`drop`) to let the parser regroup.
fn binary(l: Gen, op: &str, p: u8, r: Gen, space: String, drop: bool) -> Gen {
    let comparison = p == 4;
    let relaxed = drop && !comparison && !l.has_comparison && !r.has_comparison;
    let left_min = if comparison { p + 1 } else { p };
    let lt = if l.prec < left_min && !relaxed {
        wrap(&l)
    } else {
        l.text.clone()
    };
    let rt = if r.prec <= p && !relaxed {
        wrap(&r)
    } else {
        r.text.clone()
    };
    let word = op.chars().all(char::is_alphabetic);
    let space = if word && space.is_empty() {
        " ".to_string()
    } else {
        space
    };
    let after = if space.contains('#') {
        " "
    } else {
        space.as_str()
    };
    Gen {
        text: format!("{lt}{space}{op}{after}{rt}"),
        prec: p,
        has_comparison: comparison || l.has_comparison || r.has_comparison,
    }
}

// ------------------------------------------------------------------ lines

/// Lines of a script, each with its nesting depth.
type Lines = Vec<(usize, String)>;

fn nested(lines: &[Lines]) -> Lines {
    lines
        .iter()
        .flatten()
        .map(|(d, t)| (d + 1, t.clone()))
        .collect()
}

/// `head0 { … } head1 { … } … }`, laid out over lines, or on one line if `compact`.
fn braced(parts: Vec<(String, Vec<Lines>)>, compact: bool) -> Lines {
    chain(parts, compact, false)
}

/// As [`braced`]; with `split`, `}` and `else …` go on separate lines.
fn chain(parts: Vec<(String, Vec<Lines>)>, compact: bool, split: bool) -> Lines {
    let mut lines: Lines = Vec::new();
    for (i, (head, body)) in parts.iter().enumerate() {
        if i == 0 {
            lines.push((0, format!("{head} {{")));
        } else if split {
            lines.push((0, "}".to_string()));
            lines.push((0, format!("{head} {{")));
        } else {
            lines.push((0, format!("}} {head} {{")));
        }
        lines.extend(nested(body));
    }
    lines.push((0, "}".to_string()));
    if compact {
        let joined: Vec<String> = lines.into_iter().map(|(_, t)| t).collect();
        vec![(0, joined.join(" "))]
    } else {
        lines
    }
}

fn one(text: String) -> Lines {
    vec![(0, text)]
}

fn opt<T: std::fmt::Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::of(s).boxed()
}

fn dur() -> BoxedStrategy<String> {
    select(DURATIONS).prop_map(str::to_string).boxed()
}

fn name() -> BoxedStrategy<String> {
    select(&["e", "order_paid", "点击", "cart"][..])
        .prop_map(str::to_string)
        .boxed()
}

fn quoted() -> BoxedStrategy<String> {
    prop_oneof![
        select(
            &[
                "\"CART10\"",
                "\"Asia/Shanghai\"",
                "\"a \\\"b\\\"\"",
                "\"升级\"",
                "\"\"",
                "\"x\\{y\\}\""
            ][..]
        )
        .prop_map(str::to_string),
        Just("\"\"\"tri\nple\"\"\"".to_string()),
    ]
    .boxed()
}

fn record() -> BoxedStrategy<String> {
    record_of(expr()).prop_map(|g| g.text).boxed()
}

fn where_clause() -> BoxedStrategy<String> {
    opt(expr())
        .prop_map(|e| e.map_or_else(String::new, |e| format!(" where {}", e.text)))
        .boxed()
}

fn simple_step() -> BoxedStrategy<Lines> {
    prop_oneof![
        (
            select(&["sms", "wechat", "email"][..]),
            opt(quoted()),
            opt(record())
        )
            .prop_map(|(ch, t, r)| {
                let mut s = format!("send {ch}");
                if let Some(t) = t {
                    s += &format!(" template {t}");
                }
                if let Some(r) = r {
                    s += &format!(" {r}");
                }
                one(s)
            }),
        dur().prop_map(|d| one(format!("wait {d}"))),
        (select(TIMES), any::<bool>()).prop_map(|(t, tz)| {
            one(if tz {
                format!("wait until {t} tz \"Asia/Shanghai\"")
            } else {
                format!("wait until {t}")
            })
        }),
        expr().prop_map(|e| one(format!("wait until ({})", e.text))),
        (
            quoted(),
            opt(prop_oneof![
                dur().prop_map(|d| format!(" expires in {d}")),
                expr().prop_map(|e| format!(" expires at {}", e.text))
            ]),
            opt(record()),
            any::<bool>()
        )
            .prop_map(|(c, exp, r, bind)| {
                let mut s = format!("give coupon {c}{}", exp.unwrap_or_default());
                if let Some(r) = r {
                    s += &format!(" {r}");
                }
                if bind {
                    s += " as c";
                }
                one(s)
            }),
        (expr(), opt(quoted()), opt(dur())).prop_map(|(e, reason, d)| {
            let mut s = format!("give points {}", e.text);
            if let Some(r) = reason {
                s += &format!(" reason {r}");
            }
            if let Some(d) = d {
                s += &format!(" expires in {d}");
            }
            one(s)
        }),
        (expr(), opt(quoted())).prop_map(|(e, reason)| {
            one(match reason {
                Some(r) => format!("take points {} reason {r}", e.text),
                None => format!("take points {}", e.text),
            })
        }),
        quoted().prop_map(|t| one(format!("tag {t}"))),
        quoted().prop_map(|t| one(format!("untag {t}"))),
        (select(FIELDS), expr()).prop_map(|(f, e)| one(format!("set user.{f}.x = {}", e.text))),
        select(FIELDS).prop_map(|f| one(format!("unset user.{f}"))),
        (name(), opt(record())).prop_map(|(n, r)| one(format!(
            "emit {n}{}",
            r.map(|r| format!(" {r}")).unwrap_or_default()
        ))),
        Just(one("exit".to_string())),
    ]
    .boxed()
}

fn steps() -> BoxedStrategy<Vec<Lines>> {
    let step = simple_step().prop_recursive(3, 24, 4, |inner| {
        let body = prop::collection::vec(inner, 0..3);
        prop_oneof![
            (
                prop_oneof![
                    3 => (name(), where_clause()).prop_map(|(e, w)| format!("event {e}{w}")),
                    1 => Just("confirmation".to_string()),
                ],
                dur(),
                any::<bool>(),
                opt(body.clone()),
                opt(body.clone()),
                0..3u8
            )
                .prop_map(|(awaited, d, bind, on_event, on_timeout, layout)| {
                    let (compact, split) = (layout == 1, layout == 2);
                    let head = format!(
                        "wait for {awaited} within {d}{}",
                        if bind { " as p" } else { "" }
                    );
                    match (on_event, on_timeout) {
                        (None, None) => one(head),
                        (Some(b), None) => braced(vec![(head, b)], compact),
                        (None, Some(b)) => braced(vec![(format!("{head} else"), b)], compact),
                        (Some(a), Some(b)) => {
                            chain(vec![(head, a), ("else".to_string(), b)], compact, split)
                        }
                    }
                }),
            (
                expr(),
                body.clone(),
                prop::collection::vec((expr(), body.clone()), 0..2),
                opt(body.clone()),
                0..3u8
            )
                .prop_map(|(c, b, elifs, otherwise, layout)| {
                    let (compact, split) = (layout == 1, layout == 2);
                    let mut parts = vec![(format!("if {}", c.text), b)];
                    for (c, b) in elifs {
                        parts.push((format!("else if {}", c.text), b));
                    }
                    if let Some(b) = otherwise {
                        parts.push(("else".to_string(), b));
                    }
                    chain(parts, compact, split)
                }),
            (
                prop::collection::vec(
                    (
                        select(&["50%", "45%", "10%", "33.3%"][..]),
                        body.clone(),
                        any::<bool>()
                    ),
                    0..3
                ),
                any::<bool>()
            )
                .prop_map(|(arms, compact)| {
                    let arms: Vec<Lines> = arms
                        .into_iter()
                        .enumerate()
                        .map(|(i, (p, b, c))| braced(vec![(format!("{p} arm{i}"), b)], c))
                        .collect();
                    braced(vec![("split s".to_string(), arms)], compact)
                }),
            (
                select(&["1", "3", "1_000"][..]),
                opt(dur()),
                body,
                any::<bool>()
            )
                .prop_map(|(n, every, b, compact)| {
                    let every = every.map(|d| format!(" every {d}")).unwrap_or_default();
                    braced(vec![(format!("repeat {n} times{every}"), b)], compact)
                }),
        ]
    });
    prop::collection::vec(step, 0..6).boxed()
}

fn header() -> BoxedStrategy<String> {
    prop_oneof![
        3 => (name(), where_clause()).prop_map(|(e, w)| format!("trigger event {e}{w}")),
        1 => (any::<bool>(), opt(expr())).prop_map(|(tz, a)| {
            let tz = if tz { " tz \"Asia/Shanghai\"" } else { "" };
            let a = a.map(|a| format!(" for {}", a.text)).unwrap_or_default();
            format!("trigger schedule \"0 9 * * *\"{tz}{a}")
        }),
        1 => Just("trigger segment dormant".to_string()),
        1 => expr().prop_map(|e| format!("audience {}", e.text)),
        1 => prop_oneof![Just("entry once".to_string()), Just("entry always".to_string()), dur().prop_map(|d| format!("entry every {d}"))],
        1 => (name(), where_clause()).prop_map(|(e, w)| format!("exit on event {e}{w}")),
        1 => expr().prop_map(|e| format!("exit if {}", e.text)),
        1 => (name(), where_clause(), dur(), any::<bool>())
            .prop_map(|(e, w, d, c)| format!("goal {e}{w} within {d}{}", if c { " and continue" } else { "" })),
        1 => Just("active from \"2025-11-01T00:00:00+08:00\" until \"2025-12-01T00:00:00+08:00\"".to_string()),
        1 => (select(&["1", "1_000"][..]), select(&["", " per day", " per 7d", " per month"][..]), select(&["entries", "entry"][..]))
            .prop_map(|(n, per, word)| format!("limit {n} {word}{per}")),
        1 => Just("category \"promo\"".to_string()),
        1 => Just("tz \"Asia/Shanghai\"".to_string()),
        1 => Just("policy default".to_string()),
        1 => Just("transactional".to_string()),
    ]
    .boxed()
}

fn title() -> BoxedStrategy<String> {
    opt(quoted())
        .prop_map(|t| t.map(|t| format!(" {t}")).unwrap_or_default())
        .boxed()
}

fn decl() -> BoxedStrategy<Lines> {
    prop_oneof![
        3 => (title(), prop::collection::vec(header(), 1..4), steps(), any::<bool>()).prop_map(|(t, headers, steps, blank)| {
            // `exit` first would read as an `exit if` / `exit on` header.
            let steps: Vec<Lines> = steps.into_iter().skip_while(|s| s[0].1.starts_with("exit")).collect();
            let mut body: Vec<Lines> = headers.into_iter().map(one).collect();
            if blank {
                body.push(one(String::new()));
            }
            body.extend(steps);
            braced(vec![(format!("journey j{t}"), body)], false)
        }),
        1 => (title(), name(), where_clause(), opt(expr()), steps(), any::<bool>()).prop_map(|(t, e, w, cond, steps, compact)| {
            let mut body = vec![one(format!("when event {e}{w}"))];
            if let Some(c) = cond {
                body.push(one(format!("if {}", c.text)));
            }
            body.push(braced(vec![("then".to_string(), steps)], compact));
            braced(vec![(format!("rule r{t}"), body)], false)
        }),
        1 => (title(), prop::collection::vec(task_clause(), 0..5)).prop_map(|(t, clauses)| braced(vec![(format!("task t{t}"), clauses)], false)),
        1 => (title(), expr()).prop_map(|(t, e)| one(format!("segment s{t} = {}", e.text))),
        1 => expr().prop_map(|e| one(format!("const k = {}", e.text))),
        1 => prop::collection::vec(
            select(&["tz \"Asia/Shanghai\"", "quiet hours 22:00 to 8:00", "cap 3 messages per 1d", "cap 1 sms per day", "consent required", "on cap defer"][..])
                .prop_map(|s| one(s.to_string())),
            0..4
        )
        .prop_map(|clauses| braced(vec![("policy p".to_string(), clauses)], false)),
        1 => prop::collection::vec(
            (any::<bool>(), prop::collection::vec((select(FIELDS), select(&["string", "number", "list"][..]), any::<bool>()), 0..3)).prop_map(|(user, fields)| {
                let fields = fields.into_iter().map(|(f, t, comma)| one(format!("{f}: {t}{}", if comma { "," } else { "" }))).collect();
                braced(vec![(if user { "user".to_string() } else { "event e".to_string() }, fields)], false)
            }),
            0..3
        )
        .prop_map(|entries| braced(vec![("schema".to_string(), entries)], false)),
        1 => (quoted(), prop::collection::vec(test_stmt(), 0..5)).prop_map(|(n, stmts)| braced(vec![(format!("test {n}"), stmts)], false)),
    ]
    .boxed()
}

fn task_clause() -> BoxedStrategy<Lines> {
    prop_oneof![
        (name(), where_clause()).prop_map(|(e, w)| one(format!("on event {e}{w}"))),
        expr().prop_map(|e| one(format!("distinct {}", e.text))),
        (opt(dur()), steps(), any::<bool>()).prop_map(|(d, b, compact)| {
            let within = d.map(|d| format!(" within {d}")).unwrap_or_default();
            braced(vec![(format!("count 3{within}"), b)], compact)
        }),
        (select(&["day", "days"][..]), steps())
            .prop_map(|(word, b)| braced(vec![(format!("streak 7 {word}"), b)], false)),
        Just(one("repeatable".to_string())),
        Just(one("max 1 per user".to_string())),
        Just(one("active from \"2025-11-01\"".to_string())),
        Just(one("tz \"Asia/Shanghai\"".to_string())),
    ]
    .boxed()
}

fn test_stmt() -> BoxedStrategy<Lines> {
    let event = (name(), opt(record())).prop_map(|(e, r)| {
        format!(
            "event {e} for \"u1\"{}",
            r.map(|r| format!(" {r}")).unwrap_or_default()
        )
    });
    prop_oneof![
        opt(record()).prop_map(|r| one(format!(
            "user \"u1\"{}",
            r.map(|r| format!(" {r}")).unwrap_or_default()
        ))),
        opt(event.clone()).prop_map(|e| one(format!(
            "at \"2025-11-10T20:00:00+08:00\"{}",
            e.map(|e| format!(" {e}")).unwrap_or_default()
        ))),
        dur().prop_map(|d| one(format!("advance {d}"))),
        event.prop_map(one),
        select(
            &[
                "sent",
                "not_friend",
                "over_quota",
                "not_confirmed",
                "failed"
            ][..]
        )
        .prop_map(|o| one(format!("outcome {o} for \"u1\""))),
        (
            any::<bool>(),
            select(
                &[
                    "send",
                    "send sms",
                    "send template \"T\"",
                    "coupon \"C\"",
                    "points -5",
                    "points 1.5",
                    "tag \"t\"",
                    "untag \"t\"",
                    "goal j",
                    "exit j",
                    "enter j",
                    "suppressed",
                    "suppressed cap",
                    "outcome",
                    "outcome sent",
                    "reward t"
                ][..]
            ),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(no, what, user, at)| {
                let mut s = format!("expect {}{what}", if no { "no " } else { "" });
                if user {
                    s += " for \"u1\"";
                }
                if at {
                    s += " at \"2025-11-10T21:00:00+08:00\"";
                }
                one(s)
            }),
    ]
    .boxed()
}

// ------------------------------------------------------------------ layout and comments

/// How one line is dressed: extra indentation, blank lines and comments before it, a comment after it.
#[derive(Clone, Debug)]
struct Dress {
    indent: usize,
    blank_before: bool,
    comment_before: bool,
    comment_after: bool,
}

fn dress() -> impl Strategy<Value = Dress> {
    (
        0..3usize,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
    )
        .prop_map(
            |(indent, blank_before, comment_before, comment_after)| Dress {
                indent,
                blank_before,
                comment_before,
                comment_after,
            },
        )
}

const COMMENTS: &[&str] = &[
    "# note",
    "#tight",
    "#   spaced",
    "# 备注 {x} \"q\"",
    "# # double",
    "#",
];

fn script() -> impl Strategy<Value = String> {
    (prop::collection::vec(decl(), 0..7), any::<bool>())
        .prop_flat_map(|(decls, end_comment)| {
            let lines: Lines = decls.into_iter().flatten().collect();
            let n = lines.len();
            (
                Just(lines),
                prop::collection::vec(dress(), n),
                prop::collection::vec(select(COMMENTS), n),
                Just(end_comment),
            )
        })
        .prop_map(|(lines, dresses, comments, end_comment)| {
            let mut out = String::new();
            for (((depth, text), dress), comment) in lines.iter().zip(&dresses).zip(&comments) {
                let indent = " ".repeat(depth * 2 + dress.indent);
                if dress.blank_before {
                    out.push('\n');
                }
                if dress.comment_before {
                    out += &format!("{indent}{comment}\n");
                }
                out += &indent;
                out += text;
                if dress.comment_after {
                    out += &format!("   {comment}");
                }
                out.push('\n');
            }
            if end_comment {
                out += "# the end\n";
            }
            out
        })
}

// ------------------------------------------------------------------ the property

fn parse(text: &str) -> Result<ast::File, String> {
    let mut sources = Sources::new();
    let id = sources.add("t.journey", text);
    let (file, diagnostics) = parser::parse(&sources, id);
    if diagnostics.is_empty() {
        Ok(file)
    } else {
        Err(diagnostics
            .iter()
            .map(|d| format!("{} at {}", d.message, d.labels[0].span.start))
            .collect::<Vec<_>>()
            .join("; "))
    }
}

/// The tree without positions: `span` keys dropped, and the spans that sit
/// in tuple variants (serialized as `"start..end"`) blanked.
fn shape(file: &ast::File) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                map.remove("span");
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            Value::String(s) => {
                if let Some((a, b)) = s.split_once("..")
                    && !a.is_empty()
                    && a.chars().chain(b.chars()).all(|c| c.is_ascii_digit())
                {
                    *s = "span".to_string();
                }
            }
            _ => {}
        }
    }
    let mut v = serde_json::to_value(&file.decls).unwrap();
    strip(&mut v);
    v
}

proptest! {
    #[test]
    fn formatting_keeps_the_tree_and_the_comments_and_is_idempotent(source in script()) {
        let input = parse(&source).map_err(|e| TestCaseError::fail(format!("generated source does not parse: {e}\n{source}")))?;
        let formatted = format_source("t.journey", &source)
            .map_err(|_| TestCaseError::fail("format_source refused a clean file"))?;
        let output = parse(&formatted).map_err(|e| TestCaseError::fail(format!("output does not parse: {e}\n--- input\n{source}\n--- output\n{formatted}")))?;
        prop_assert_eq!(shape(&input), shape(&output), "tree changed\n--- input\n{}\n--- output\n{}", source, formatted);
        prop_assert_eq!(input.comments.len(), output.comments.len(), "comments lost\n--- input\n{}\n--- output\n{}", source, formatted);
        let again = format_source("t.journey", &formatted).unwrap();
        prop_assert_eq!(&again, &formatted, "not idempotent\n--- input\n{}", source);
    }
}
