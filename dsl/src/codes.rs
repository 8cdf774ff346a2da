//! The table of diagnostic codes. Every diagnostic names one; each has a
//! title, a default severity and an explanation that `waymark explain CODE`
//! prints and `docs/diagnostics.md` lists (a test keeps the two in step).

use crate::diagnostic::Severity;
use serde::{Serialize, Serializer};

macro_rules! codes {
    ($($variant:ident = $code:literal, $sev:ident, $title:literal, $explain:literal;)*) => {
        /// A diagnostic code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code { $($variant),* }

        impl Code {
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The stable code, e.g. `E0101`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code),* }
            }

            pub fn severity(self) -> Severity {
                match self { $(Code::$variant => Severity::$sev),* }
            }

            /// A few words naming the class of problem.
            pub fn title(self) -> &'static str {
                match self { $(Code::$variant => $title),* }
            }

            /// What the code means and how to fix it.
            pub fn explanation(self) -> &'static str {
                match self { $(Code::$variant => $explain),* }
            }
        }
    };
}

codes! {
    Syntax = "E0001", Error, "syntax error",
        "The text does not follow the grammar of language.md. The message names what was expected at that point. A common cause is a missing `{` or `}`, or a clause in the wrong place: journey header clauses (trigger, entry, exit, goal, …) come before the first step.";
    BadLiteral = "E0002", Error, "invalid literal",
        "A literal is malformed: an unknown escape in a string (use `\\n \\t \\\\ \\\" \\{ \\}`), a time of day past 23:59, a number too large, or a timestamp that is neither a date (`2025-11-11`: midnight in the journey's or task's `tz`, else its policy's, else UTC; in a test, the default policy's `tz`, else UTC) nor an RFC 3339 timestamp with seconds and an offset (`2025-11-10T20:00:00+08:00`).";
    TooDeep = "E0003", Error, "nested too deeply",
        "Expressions and blocks may nest at most 64 levels. Split the expression using a `const` or a `segment`.";
    UnknownName = "E0101", Error, "unknown name",
        "A name in an expression is not `user`, `event`, `journey`, `now`, a segment, a `const` or an `as` binding in scope. Check the spelling; the help line suggests the closest known name.";
    UnknownFunction = "E0102", Error, "unknown function",
        "A call names a function the standard library does not have. `waymark explain functions` lists them.";
    BindingOutOfScope = "E0103", Error, "binding out of scope",
        "An `as` binding is used where it is not in scope. A `wait for … as NAME` binding is visible inside the block that runs when the event arrives; a `give coupon … as NAME` binding is visible in the steps after it in the same block and the blocks nested there.";
    UnknownReference = "E0104", Error, "unknown declaration",
        "A clause names a segment, journey, task, policy or channel that is not declared in the deployment (or, for channels, not configured when `--config` is given).";
    UnknownField = "E0105", Error, "unknown field",
        "A field is read that cannot exist: `journey.X` other than name, version and entered_at, or a field of `user` or of an event that the `schema` does not list. With a schema, `set user.X = …` must also name a trait its `user { … }` declares (or a built-in one).";
    SegmentCycle = "E0106", Error, "segment defined in terms of itself",
        "A segment refers to itself, directly or through other segments, so its membership cannot be decided.";
    ContextUnavailable = "E0107", Error, "name not available here",
        "A context name is used where it has no value, e.g. `event` in a segment (segments are evaluated on the user's state alone) or `journey` outside a journey.";
    NothingToConfirm = "E0108", Error, "nothing to confirm",
        "A `wait for confirmation` waits for the outcome of a `send`: the nearest `send` before it that is a step of the same block, else of an enclosing block, before the step that holds that block (and so on outward). Other steps may come in between (`tag`, `set`, …), but a `send` inside an `if`, `split`, `wait for` or `repeat` before it does not count, since it may not have run. When no such `send` comes before it, the wait has nothing to wait on. Put the `wait for confirmation` after the `send` it is about, in the same block.";
    Arity = "E0201", Error, "wrong number of arguments",
        "A function is called with too few or too many arguments. The message shows its signature.";
    TypeMismatch = "E0202", Error, "type mismatch",
        "A value of one type is used where another is needed, and the literals or the schema make that certain: `\"a\" > 3`, a duration where a timestamp is needed (`wait until 3d`), a condition that is not a boolean, or `set user.X = …` with a value of another type than the schema declares for `X`.";
    ChainedComparison = "E0203", Error, "comparisons do not chain",
        "`a < b < c` is not allowed. Write `a < b and b < c`.";
    AlwaysFalse = "W0204", Warning, "comparison is always false",
        "Values of two different types are compared with `==`, which is always false (and `!=` always true).";
    BadSchema = "E0301", Error, "invalid schema",
        "A schema declares a field with an unknown type. Types are string, number, bool, timestamp, date, duration, list, record and any. The user's built-in fields cannot be redeclared with another type.";
    UndeclaredEvent = "W0302", Warning, "event not in the schema",
        "A journey trigger, rule `when` or task `on` names an event that the `schema` does not declare, while the schema declares others. It is most often a misspelling, and the trigger would never fire. The help line suggests the closest declared event; if the event is real, declare it in the schema (`event NAME { … }`).";
    SplitSum = "E0401", Error, "split percentages do not sum to 100",
        "The arms of a `split` must add up to exactly 100%. An arm with an empty block is a holdout.";
    Unreachable = "W0501", Warning, "unreachable step",
        "A step follows `exit` on the same path and can never run.";
    LongLoop = "W0502", Warning, "loop runs many steps at once",
        "A `repeat` without a wait in its body runs all its iterations when the event arrives (nested loops multiply), and every other user's events wait meanwhile. Past 1,000 steps for one event this warns. Repeat fewer times, add `every DURATION` or a `wait` to the loop, or use one step for the total (`give points 100` rather than 100 times `give points 1`).";
    LoopOverBudget = "E0503", Error, "loop exceeds the step budget",
        "A `repeat` without a wait would run more steps for one event than the engine runs for any one event (10,000): it could never finish, and the engine would stop it with an `error` record. Repeat counts are literals, so this is known when checking. Repeat fewer times, add `every DURATION` or a `wait` to the loop, or use one step for the total.";
    BadCron = "E0601", Error, "invalid cron expression",
        "A schedule takes a 5-field crontab line (minute hour day-of-month month day-of-week; 0 and 7 are Sunday, 1 is Monday) or a 6/7-field line with seconds (the `cron` crate's form, 1 is Sunday).";
    BadTimeZone = "E0602", Error, "unknown time zone",
        "Time zones are IANA names such as `Asia/Shanghai`. The help line suggests the closest name.";
    BadInterpolation = "E0701", Error, "invalid interpolation",
        "`{expr}` inside a string must hold an expression, and is only allowed in strings that are expressions (message fields, conditions). Names, template ids, cron lines, time zones and timestamps are plain text: write `\\{` for a literal brace.";
    Duplicate = "E0801", Error, "duplicate",
        "A name is declared twice in the deployment, a clause that may appear once appears twice, or a record has the same key twice. Both places are shown.";
    MissingTrigger = "E0901", Error, "journey without a trigger",
        "A journey needs at least one `trigger` clause, or no user can ever enter it.";
    Incomplete = "E0902", Error, "incomplete declaration",
        "A declaration lacks a clause it needs: a task needs `on event` and a `count` or `streak` reward; a policy clause may be missing its values.";
    NotLiteral = "E0903", Error, "not a literal",
        "A `const` must be a literal: a number, string, boolean, null, duration, time of day, or a list or record of literals.";
    BadValue = "E0904", Error, "value out of range",
        "A number is outside what the clause allows: `repeat 0 times`, a cap or limit of 0, `streak 0 days`, a split arm of 0%, a duration of zero where one is required (`within 0d`, `every 0s`), or quiet hours that start and end at the same time. A word can be out of range too: a test's `outcome` (and `expect outcome`) names what came of a send a staff member confirms, one of `sent`, `not_friend`, `over_quota`, `not_confirmed` or `failed`.";
    NotAllowedHere = "E0905", Error, "step not allowed here",
        "A step is somewhere it cannot run. A rule or a task reward runs at once when its event arrives: it cannot `wait`; put waits in a journey (a rule can `emit` an event that triggers one). `set` and `unset` cannot change the fields the engine keeps (`user.id`, `created_at`, `tags`, `points`, `coupons`): use `tag`/`untag`, `give points`/`take points` and `give coupon`.";
    UnknownChannelField = "E1001", Error, "message field not accepted by channel",
        "With `--config`, each `send` step is checked against the fields its channel's kind needs and accepts.";
    ServiceTemplate = "W1002", Warning, "marketing sent as an official-account template message",
        "With `--config`: a journey that is not `transactional`, a rule or a task reward sends on a channel of kind `wechat`, i.e. an official-account template message (模板消息). WeChat allows those for service notices only (an order shipped, a payment received) and since 2023 intercepts templates used for marketing. For marketing, send a one-time subscribe message the user accepted (`miniprogram` or `wechat_subscribe` channels), a WeCom message, or SMS with consent; for a real service notice, mark the journey `transactional`.";
    GrantResent = "W1003", Warning, "subscribe message sent twice on one accept",
        "With `--config`: a channel whose kind spends a grant per send (`miniprogram`, `wechat_subscribe`: one-time subscribe messages) sends a template once per accept the user gave in the mini-program's popup. A journey, rule or task that can send the same template twice on one path (two sends in a row, or one in a `repeat`) gets the second suppressed with reason `no_grant` unless the user accepted again in between. Send it once, or put a `wait for event subscribe_msg_popup_event` (the accept) between the two sends.";
    AnswerOutOfPlace = "E1004", Error, "send that answers an event, out of place",
        "With `--config`: a channel whose kind answers one event with an address that event carries for a short time — a WeCom welcome message (`wecom_welcome`) answers `add_external_contact` with its `welcome_code`, good for 20 seconds and once — can only send in a journey that this event starts (every trigger `event add_external_contact`) or a rule `when` it, before any wait. Anywhere else the code is missing or expired and the send could never go: start the journey on the event and send first; for a later message, use the WeCom mass-send channel or another one.";
    AnswerHeldBack = "W1005", Warning, "send that answers an event, held back by its policy",
        "With `--config`: a send on a channel that answers an event within seconds (a WeCom welcome message, 20 s) runs under its journey's policy like any send. `consent required` suppresses it for a customer who has no consent on that channel yet — most who just added a staff member; quiet hours and caps in a journey that is not `transactional` defer it past its 20 seconds (then `welcome_expired`) or suppress it. A welcome answers the customer's own action: give its journey a policy without `consent required` and mark it `transactional`, or accept that these sends are held back.";
    NotConfirmedByStaff = "E1006", Error, "send not confirmed by staff",
        "With `--config`: a `wait for confirmation` waits on a `send` (the nearest one before it, see E0108) on a channel whose kind sends without anybody confirming, so there is no confirmation to wait for and the wait could only time out. Only a channel whose kind is confirmed by staff has one: a WeCom customer mass send (kind `wecom_mass`) goes out once a staff member confirms it in their WeCom client. Send on such a channel before the wait; after a send on another channel, wait for an event (`wait for event`) or for a time (`wait`).";
}

impl Serialize for Code {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = ();
    fn from_str(s: &str) -> Result<Code, ()> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

/// The diagnostics reference as Markdown (docs/diagnostics.md).
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# Diagnostic codes\n\nGenerated from `dsl/src/codes.rs`; `waymark explain CODE` prints one.\n",
    );
    for code in Code::ALL {
        let sev = match code.severity() {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        out.push_str(&format!(
            "\n## {} — {} ({sev})\n\n{}\n",
            code,
            code.title(),
            code.explanation()
        ));
    }
    out
}
