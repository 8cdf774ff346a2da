//! The syntax tree of a journey script. Every node carries a [`Span`]; the
//! tree keeps what a person wrote (order of clauses, number and duration
//! spellings, triple-quoted strings) so that `fmt` can print it back, and
//! nothing of pest. The checker lowers it to a plan; nothing interprets it.

use crate::source::{FileId, Span};
use rust_decimal::Decimal;
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct File {
    #[serde(skip)]
    pub id: FileId,
    pub decls: Vec<Decl>,
    /// Comments in source order; the formatter puts them back.
    #[serde(skip)]
    pub comments: Vec<Comment>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comment {
    /// The text after `#`, including leading spaces.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A plain string: a title, a template id, a time zone, a cron line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Text {
    pub value: String,
    pub triple: bool,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Integer {
    pub value: u64,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationLit {
    pub seconds: u64,
    /// As written (`1d12h`), so that `fmt` keeps the author's units.
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeOfDay {
    /// Minutes after midnight.
    pub minutes: u32,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CalendarPeriod {
    Day,
    Week,
    Month,
}

/// A cap or limit window: rolling (`per 1d`) or calendar (`per day`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Window {
    Rolling(DurationLit),
    Calendar(CalendarPeriod, Span),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Decl {
    Journey(Journey),
    Rule(Rule),
    Task(Task),
    Segment(Segment),
    Policy(Policy),
    Schema(Schema),
    Const(Const),
    Test(Test),
}

impl Decl {
    pub fn span(&self) -> Span {
        match self {
            Decl::Journey(d) => d.span,
            Decl::Rule(d) => d.span,
            Decl::Task(d) => d.span,
            Decl::Segment(d) => d.span,
            Decl::Policy(d) => d.span,
            Decl::Schema(d) => d.span,
            Decl::Const(d) => d.span,
            Decl::Test(d) => d.span,
        }
    }

    /// The declared name, for the declarations that share the namespace.
    pub fn name(&self) -> Option<&Ident> {
        match self {
            Decl::Journey(d) => Some(&d.name),
            Decl::Rule(d) => Some(&d.name),
            Decl::Task(d) => Some(&d.name),
            Decl::Segment(d) => Some(&d.name),
            Decl::Policy(d) => Some(&d.name),
            Decl::Const(d) => Some(&d.name),
            Decl::Schema(_) | Decl::Test(_) => None,
        }
    }

    /// What a marketer calls this kind of declaration.
    pub fn kind(&self) -> &'static str {
        match self {
            Decl::Journey(_) => "journey",
            Decl::Rule(_) => "rule",
            Decl::Task(_) => "task",
            Decl::Segment(_) => "segment",
            Decl::Policy(_) => "policy",
            Decl::Schema(_) => "schema",
            Decl::Const(_) => "const",
            Decl::Test(_) => "test",
        }
    }
}

// ------------------------------------------------------------------ journeys

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Journey {
    pub name: Ident,
    pub title: Option<Text>,
    pub headers: Vec<Header>,
    pub steps: Vec<Step>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Header {
    pub kind: HeaderKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum HeaderKind {
    Trigger(Trigger),
    Audience(Expr),
    Entry(EntryMode),
    ExitOn(EventMatch),
    ExitIf(Expr),
    Goal {
        event: EventMatch,
        within: DurationLit,
        and_continue: bool,
    },
    Active(Active),
    Limit {
        entries: Integer,
        per: Option<Window>,
    },
    Category(Text),
    Tz(Text),
    Policy(Ident),
    Transactional,
}

impl HeaderKind {
    /// The clause's keyword, for messages about duplicates.
    pub fn keyword(&self) -> &'static str {
        match self {
            HeaderKind::Trigger(_) => "trigger",
            HeaderKind::Audience(_) => "audience",
            HeaderKind::Entry(_) => "entry",
            HeaderKind::ExitOn(_) => "exit on",
            HeaderKind::ExitIf(_) => "exit if",
            HeaderKind::Goal { .. } => "goal",
            HeaderKind::Active(_) => "active",
            HeaderKind::Limit { .. } => "limit",
            HeaderKind::Category(_) => "category",
            HeaderKind::Tz(_) => "tz",
            HeaderKind::Policy(_) => "policy",
            HeaderKind::Transactional => "transactional",
        }
    }
}

/// `wait for E within D [as NAME] [{ … }] [else { … }]`: the blocks run when
/// the event comes (the send was sent) and when the wait times out (or the
/// send ended otherwise).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WaitFor {
    pub awaited: Awaited,
    pub within: DurationLit,
    pub bind: Option<Ident>,
    pub on_event: Option<Block>,
    pub on_timeout: Option<Block>,
}

/// What a `wait for` waits for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Awaited {
    /// `wait for event E [where EXPR]`.
    Event(EventMatch),
    /// `wait for confirmation`: the outcome of the nearest `send` before
    /// it in its block or an enclosing one, which a staff member confirms
    /// (a WeCom customer mass send). The span is the word's.
    Confirmation(Span),
}

impl Awaited {
    /// The event the wait resumes on: `send_outcome` for a confirmation.
    pub fn event_name(&self) -> &str {
        match self {
            Awaited::Event(m) => &m.event.name,
            Awaited::Confirmation(_) => SEND_OUTCOME,
        }
    }
}

/// The event a `wait for confirmation` resumes on, which its `as` binding
/// names: the outcome of a send a staff member confirms.
pub const SEND_OUTCOME: &str = "send_outcome";

/// `event E [where EXPR]`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventMatch {
    pub event: Ident,
    pub filter: Option<Expr>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Trigger {
    Event(EventMatch),
    Schedule {
        cron: Text,
        tz: Option<Text>,
        audience: Option<Expr>,
    },
    Segment(Ident),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum EntryMode {
    Once,
    Always,
    Every(DurationLit),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Active {
    pub from: Text,
    pub until: Option<Text>,
}

// ------------------------------------------------------------------ steps

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Block {
    pub steps: Vec<Step>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub kind: StepKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum StepKind {
    Send {
        channel: Ident,
        template: Option<Text>,
        /// `via staff EXPR`: the staff member who is to send it.
        staff: Option<Expr>,
        fields: Option<Record>,
    },
    Wait(DurationLit),
    WaitUntilTime {
        time: TimeOfDay,
        tz: Option<Text>,
    },
    WaitUntil(Expr),
    WaitFor(WaitFor),
    If {
        branches: Vec<(Expr, Block)>,
        otherwise: Option<Block>,
    },
    Split {
        name: Ident,
        arms: Vec<SplitArm>,
    },
    GiveCoupon {
        coupon: Text,
        expiry: Option<CouponExpiry>,
        fields: Option<Record>,
        bind: Option<Ident>,
    },
    GivePoints {
        amount: Expr,
        reason: Option<Text>,
        expires_in: Option<DurationLit>,
    },
    TakePoints {
        amount: Expr,
        reason: Option<Text>,
    },
    Tag(Text),
    Untag(Text),
    Set {
        path: UserPath,
        value: Expr,
    },
    Unset(UserPath),
    Emit {
        event: Ident,
        fields: Option<Record>,
    },
    Repeat {
        times: Integer,
        every: Option<DurationLit>,
        body: Block,
    },
    Exit,
}

impl StepKind {
    /// The step's keyword, as a marketer would name it.
    pub fn keyword(&self) -> &'static str {
        match self {
            StepKind::Send { .. } => "send",
            StepKind::Wait(_) | StepKind::WaitUntilTime { .. } | StepKind::WaitUntil(_) => "wait",
            StepKind::WaitFor(_) => "wait for",
            StepKind::If { .. } => "if",
            StepKind::Split { .. } => "split",
            StepKind::GiveCoupon { .. } => "give coupon",
            StepKind::GivePoints { .. } => "give points",
            StepKind::TakePoints { .. } => "take points",
            StepKind::Tag(_) => "tag",
            StepKind::Untag(_) => "untag",
            StepKind::Set { .. } => "set",
            StepKind::Unset(_) => "unset",
            StepKind::Emit { .. } => "emit",
            StepKind::Repeat { .. } => "repeat",
            StepKind::Exit => "exit",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SplitArm {
    pub percent: Percent,
    pub name: Ident,
    pub body: Block,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Percent {
    pub value: Decimal,
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum CouponExpiry {
    In(DurationLit),
    At(Expr),
}

/// `user.a.b` in `set` and `unset`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserPath {
    pub fields: Vec<Ident>,
    pub span: Span,
}

// ------------------------------------------------------------------ rules, tasks, segments, policies

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub name: Ident,
    pub title: Option<Text>,
    pub when: EventMatch,
    pub condition: Option<Expr>,
    pub then: Block,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Task {
    pub name: Ident,
    pub title: Option<Text>,
    pub clauses: Vec<TaskClause>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskClause {
    pub kind: TaskClauseKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TaskClauseKind {
    On(EventMatch),
    Distinct(Expr),
    Count {
        times: Integer,
        within: Option<DurationLit>,
        reward: Block,
    },
    Streak {
        days: Integer,
        reward: Block,
    },
    Repeatable,
    MaxPerUser(Integer),
    Active(Active),
    Tz(Text),
}

impl TaskClauseKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            TaskClauseKind::On(_) => "on event",
            TaskClauseKind::Distinct(_) => "distinct",
            TaskClauseKind::Count { .. } => "count",
            TaskClauseKind::Streak { .. } => "streak",
            TaskClauseKind::Repeatable => "repeatable",
            TaskClauseKind::MaxPerUser(_) => "max",
            TaskClauseKind::Active(_) => "active",
            TaskClauseKind::Tz(_) => "tz",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub name: Ident,
    pub title: Option<Text>,
    pub expr: Expr,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Policy {
    pub name: Ident,
    pub clauses: Vec<PolicyClause>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyClause {
    pub kind: PolicyClauseKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PolicyClauseKind {
    Tz(Text),
    QuietHours {
        from: TimeOfDay,
        to: TimeOfDay,
    },
    /// `cap N WHAT per WINDOW`; WHAT is `messages` (all sends), a channel or a category.
    Cap {
        limit: Integer,
        what: Ident,
        per: Window,
    },
    ConsentRequired,
    OnCapDefer,
}

impl PolicyClauseKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            PolicyClauseKind::Tz(_) => "tz",
            PolicyClauseKind::QuietHours { .. } => "quiet hours",
            PolicyClauseKind::Cap { .. } => "cap",
            PolicyClauseKind::ConsentRequired => "consent required",
            PolicyClauseKind::OnCapDefer => "on cap defer",
        }
    }
}

// ------------------------------------------------------------------ schema, consts

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schema {
    pub entries: Vec<SchemaEntry>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaEntry {
    /// `None` for `user { … }`, the event's name for `event NAME { … }`.
    pub event: Option<Ident>,
    pub fields: Vec<FieldDecl>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDecl {
    pub name: Ident,
    pub ty: Ident,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Const {
    pub name: Ident,
    pub value: Expr,
    pub span: Span,
}

// ------------------------------------------------------------------ tests

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Test {
    pub name: Text,
    pub stmts: Vec<TestStmt>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestStmt {
    pub kind: TestStmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TestStmtKind {
    User {
        id: Text,
        traits: Option<Record>,
    },
    At {
        time: Text,
        event: Option<TestEvent>,
    },
    Advance(DurationLit),
    /// `identify "ID" { … }`: traits changed mid-test.
    Identify {
        id: Text,
        traits: Record,
    },
    Event(TestEvent),
    /// `outcome OUTCOME for "ID"`: what came of the user's pending send
    /// that a staff member confirms, as the platform reports it.
    Outcome {
        outcome: Ident,
        user: Text,
    },
    Expect(Expectation),
}

/// What can come of a send a staff member confirms (a WeCom customer mass
/// send), as the platform reports it: only `sent` reached the customer.
pub const SEND_OUTCOMES: &[&str] = &[
    "sent",
    "not_friend",
    "over_quota",
    "not_confirmed",
    "failed",
];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestEvent {
    pub name: Ident,
    pub user: Text,
    pub props: Option<Record>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expectation {
    pub negated: bool,
    pub what: Expected,
    pub user: Option<Text>,
    pub at: Option<Text>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Expected {
    Send {
        channel: Option<Ident>,
        template: Option<Text>,
    },
    Coupon(Text),
    Points {
        value: Decimal,
        text: String,
        span: Span,
    },
    Tag(Text),
    Untag(Text),
    Goal(Ident),
    Exit(Ident),
    Enter(Ident),
    Suppressed(Option<Ident>),
    /// `outcome [OUTCOME]`: what came of a staff-confirmed send.
    Outcome(Option<Ident>),
    Reward(Ident),
    /// `arm ARM of SPLIT`.
    Arm {
        arm: Ident,
        split: Ident,
    },
}

// ------------------------------------------------------------------ expressions

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ExprKind {
    Null,
    Bool(bool),
    Number {
        value: Decimal,
        text: String,
    },
    Duration {
        seconds: u64,
        text: String,
    },
    TimeOfDay(u32),
    Str(Template),
    List(Vec<Expr>),
    Record(Record),
    Name(String),
    Field(Box<Expr>, Ident),
    Index(Box<Expr>, Box<Expr>),
    Call {
        function: Ident,
        args: Vec<Expr>,
    },
    Unary(UnaryOp, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// Left by the parser where an expression could not be built; its
    /// diagnostic has been reported.
    Error,
}

/// A string that may hold `{expr}` interpolations.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
    pub triple: bool,
}

impl Template {
    /// The text, if there are no interpolations.
    pub fn as_plain(&self) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Expr(_) => return None,
            }
        }
        Some(out)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TemplatePart {
    Text(String),
    Expr(Expr),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub fields: Vec<RecordField>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordField {
    pub key: Ident,
    /// The key was written as a string (`"a-b": 1`).
    pub quoted: bool,
    pub value: Expr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum UnaryOp {
    Not,
    Neg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::In => "in",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }

    /// Binding power, loosest first, as in language.md §6. `not` sits
    /// between `and` (2) and the comparisons (4); unary minus above `*`.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Or => 1,
            BinaryOp::And => 2,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge
            | BinaryOp::In => 4,
            BinaryOp::Add | BinaryOp::Sub => 5,
            BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 6,
        }
    }

    pub fn is_comparison(self) -> bool {
        self.precedence() == 4
    }
}

/// Precedence of `not`.
pub const NOT_PRECEDENCE: u8 = 3;
/// Precedence of unary minus.
pub const NEG_PRECEDENCE: u8 = 7;
