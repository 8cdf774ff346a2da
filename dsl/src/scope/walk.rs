//! Walking a deployment with scope: every expression is visited together
//! with what it can see — which declaration it is in, which event `event`
//! is, and which `as` bindings are in scope. Rules that look at names and
//! types share this walk instead of each re-deriving scope.

use crate::ast::{self, Decl, Expr, ExprKind, StepKind};
use crate::library::{FunctionTable, ParamKind};

/// Where an expression stands.
#[derive(Debug, Clone, Copy)]
pub enum Owner<'a> {
    Journey(&'a ast::Journey),
    Rule(&'a ast::Rule),
    Task(&'a ast::Task),
    Segment(&'a ast::Segment),
    Const(&'a ast::Const),
    Test(&'a ast::Test),
}

impl Owner<'_> {
    /// `event` has a value here.
    pub fn has_event(&self) -> bool {
        matches!(self, Owner::Journey(_) | Owner::Rule(_) | Owner::Task(_))
    }

    /// Context names (`user`, `now`, segments, …) may be read here.
    pub fn has_context(&self) -> bool {
        !matches!(self, Owner::Const(_) | Owner::Test(_))
    }
}

/// Which event `event` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCtx<'a> {
    /// This event, known statically.
    Known(&'a str),
    /// Some event, or null (after a `wait for` timed out, several triggers).
    Unknown,
}

#[derive(Debug, Clone, Copy)]
pub enum BindingKind<'a> {
    Event(&'a str),
    Coupon,
}

#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub name: &'a ast::Ident,
    pub kind: BindingKind<'a>,
}

#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub owner: Owner<'a>,
    pub event: EventCtx<'a>,
    pub bindings: Vec<Binding<'a>>,
}

impl<'a> Scope<'a> {
    fn new(owner: Owner<'a>, event: EventCtx<'a>) -> Scope<'a> {
        Scope {
            owner,
            event,
            bindings: Vec::new(),
        }
    }

    pub fn binding(&self, name: &str) -> Option<&Binding<'a>> {
        self.bindings.iter().rev().find(|b| b.name.name == name)
    }
}

/// What an expression position is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A value: `if`, `where`, a message field, an argument.
    Value,
    /// A value that must be true or false.
    Condition,
    /// A point in time (`wait until`, `expires at`).
    Timestamp,
    /// A number of points.
    Points,
    /// A literal (`const`, test data).
    Literal,
}

/// Receives each top-level expression of the deployment with its scope.
pub trait Visitor<'a> {
    fn expr(&mut self, expr: &'a Expr, role: Role, scope: &Scope<'a>);
    /// Called for each step before its expressions.
    fn step(&mut self, _step: &'a ast::Step, _scope: &Scope<'a>) {}
}

pub fn walk<'a>(files: &'a [ast::File], visitor: &mut impl Visitor<'a>) {
    for decl in files.iter().flat_map(|f| &f.decls) {
        walk_decl(decl, visitor);
    }
}

fn walk_decl<'a>(decl: &'a Decl, v: &mut impl Visitor<'a>) {
    match decl {
        Decl::Journey(j) => {
            let owner = Owner::Journey(j);
            let mut event_triggers = Vec::new();
            for header in &j.headers {
                use ast::HeaderKind as H;
                match &header.kind {
                    H::Trigger(ast::Trigger::Event(m)) => {
                        event_triggers.push(m.event.name.as_str());
                        event_match(m, owner, v);
                    }
                    H::Trigger(ast::Trigger::Schedule {
                        audience: Some(e), ..
                    }) => v.expr(e, Role::Condition, &Scope::new(owner, EventCtx::Unknown)),
                    H::ExitOn(m) | H::Goal { event: m, .. } => event_match(m, owner, v),
                    _ => {}
                }
            }
            let entry_event = match event_triggers.as_slice() {
                [one] => EventCtx::Known(one),
                _ => EventCtx::Unknown,
            };
            for header in &j.headers {
                match &header.kind {
                    ast::HeaderKind::Audience(e) => {
                        v.expr(e, Role::Condition, &Scope::new(owner, entry_event))
                    }
                    ast::HeaderKind::ExitIf(e) => {
                        v.expr(e, Role::Condition, &Scope::new(owner, EventCtx::Unknown))
                    }
                    _ => {}
                }
            }
            steps(&j.steps, &mut Scope::new(owner, entry_event), v);
        }
        Decl::Rule(r) => {
            let owner = Owner::Rule(r);
            event_match(&r.when, owner, v);
            let mut scope = Scope::new(owner, EventCtx::Known(&r.when.event.name));
            if let Some(c) = &r.condition {
                v.expr(c, Role::Condition, &scope);
            }
            steps(&r.then.steps, &mut scope, v);
        }
        Decl::Task(t) => {
            let owner = Owner::Task(t);
            let event = t
                .clauses
                .iter()
                .find_map(|c| match &c.kind {
                    ast::TaskClauseKind::On(m) => Some(EventCtx::Known(m.event.name.as_str())),
                    _ => None,
                })
                .unwrap_or(EventCtx::Unknown);
            for clause in &t.clauses {
                use ast::TaskClauseKind as T;
                match &clause.kind {
                    T::On(m) => event_match(m, owner, v),
                    T::Distinct(e) => v.expr(e, Role::Value, &Scope::new(owner, event)),
                    T::Count { reward, .. } | T::Streak { reward, .. } => {
                        steps(&reward.steps, &mut Scope::new(owner, event), v)
                    }
                    _ => {}
                }
            }
        }
        Decl::Segment(s) => v.expr(
            &s.expr,
            Role::Condition,
            &Scope::new(Owner::Segment(s), EventCtx::Unknown),
        ),
        Decl::Const(c) => v.expr(
            &c.value,
            Role::Literal,
            &Scope::new(Owner::Const(c), EventCtx::Unknown),
        ),
        Decl::Test(t) => {
            let scope = Scope::new(Owner::Test(t), EventCtx::Unknown);
            for stmt in &t.stmts {
                let records: Vec<&ast::Record> = match &stmt.kind {
                    ast::TestStmtKind::User { traits, .. } => traits.iter().collect(),
                    ast::TestStmtKind::Identify { traits, .. } => vec![traits],
                    ast::TestStmtKind::At { event: Some(e), .. } | ast::TestStmtKind::Event(e) => {
                        e.props.iter().collect()
                    }
                    _ => Vec::new(),
                };
                for record in records {
                    for field in &record.fields {
                        v.expr(&field.value, Role::Literal, &scope);
                    }
                }
            }
        }
        Decl::Policy(_) | Decl::Schema(_) => {}
    }
}

fn event_match<'a>(m: &'a ast::EventMatch, owner: Owner<'a>, v: &mut impl Visitor<'a>) {
    if let Some(filter) = &m.filter {
        v.expr(
            filter,
            Role::Condition,
            &Scope::new(owner, EventCtx::Known(&m.event.name)),
        );
    }
}

fn steps<'a>(list: &'a [ast::Step], scope: &mut Scope<'a>, v: &mut impl Visitor<'a>) {
    let depth = scope.bindings.len();
    for step in list {
        v.step(step, scope);
        match &step.kind {
            StepKind::Send { fields, staff, .. } => {
                if let Some(staff) = staff {
                    v.expr(staff, Role::Value, scope);
                }
                record(fields.as_ref(), scope, v)
            }
            StepKind::Emit { fields, .. } => record(fields.as_ref(), scope, v),
            StepKind::WaitUntil(e) => v.expr(e, Role::Timestamp, scope),
            StepKind::WaitFor(ast::WaitFor {
                awaited,
                bind,
                on_event,
                on_timeout,
                ..
            }) => {
                // A confirmation's binding is the send's outcome, an event
                // `send_outcome` whose fields are built in. What `event` is
                // in its blocks is left open (Unknown): the outcome is read
                // through the binding.
                let event = awaited.event_name();
                // A confirmation leaves `event` as it was (the engine keeps
                // the instance's event); an event that comes replaces it.
                let (resumed, timed_out) = match awaited {
                    ast::Awaited::Event(_) => (EventCtx::Known(event), EventCtx::Unknown),
                    ast::Awaited::Confirmation(_) => (scope.event, scope.event),
                };
                if let ast::Awaited::Event(ast::EventMatch {
                    filter: Some(filter),
                    ..
                }) = awaited
                {
                    let inner = Scope {
                        event: resumed,
                        ..scope.clone()
                    };
                    v.expr(filter, Role::Condition, &inner);
                }
                if let Some(block) = on_event {
                    let mut inner = Scope {
                        event: resumed,
                        ..scope.clone()
                    };
                    if let Some(name) = bind {
                        inner.bindings.push(Binding {
                            name,
                            kind: BindingKind::Event(event),
                        });
                    }
                    steps(&block.steps, &mut inner, v);
                }
                if let Some(block) = on_timeout {
                    steps(
                        &block.steps,
                        &mut Scope {
                            event: timed_out,
                            ..scope.clone()
                        },
                        v,
                    );
                }
                scope.event = timed_out;
            }
            StepKind::If {
                branches,
                otherwise,
            } => {
                for (cond, block) in branches {
                    v.expr(cond, Role::Condition, scope);
                    steps(&block.steps, &mut scope.clone(), v);
                }
                if let Some(block) = otherwise {
                    steps(&block.steps, &mut scope.clone(), v);
                }
            }
            StepKind::Split { arms, .. } => {
                for arm in arms {
                    steps(&arm.body.steps, &mut scope.clone(), v);
                }
            }
            StepKind::GiveCoupon {
                expiry,
                fields,
                bind,
                ..
            } => {
                if let Some(ast::CouponExpiry::At(e)) = expiry {
                    v.expr(e, Role::Timestamp, scope);
                }
                record(fields.as_ref(), scope, v);
                if let Some(name) = bind {
                    scope.bindings.push(Binding {
                        name,
                        kind: BindingKind::Coupon,
                    });
                }
            }
            StepKind::GivePoints { amount, .. } | StepKind::TakePoints { amount, .. } => {
                v.expr(amount, Role::Points, scope)
            }
            StepKind::Set { value, .. } => v.expr(value, Role::Value, scope),
            StepKind::Repeat { body, .. } => steps(&body.steps, &mut scope.clone(), v),
            StepKind::Wait(_)
            | StepKind::WaitUntilTime { .. }
            | StepKind::Tag(_)
            | StepKind::Untag(_)
            | StepKind::Unset(_)
            | StepKind::Exit => {}
        }
    }
    scope.bindings.truncate(depth);
}

fn record<'a>(record: Option<&'a ast::Record>, scope: &Scope<'a>, v: &mut impl Visitor<'a>) {
    for field in record.iter().flat_map(|r| &r.fields) {
        v.expr(&field.value, Role::Value, scope);
    }
}

/// Every step of the deployment, nested ones included, in source order.
pub fn for_each_step<'a>(files: &'a [ast::File], mut f: impl FnMut(&'a ast::Step)) {
    fn go<'a>(list: &'a [ast::Step], f: &mut impl FnMut(&'a ast::Step)) {
        for step in list {
            f(step);
            for block in child_blocks(step) {
                go(&block.steps, f);
            }
        }
    }
    for decl in files.iter().flat_map(|f| &f.decls) {
        for block in decl_blocks(decl) {
            go(block, &mut f);
        }
    }
}

/// Calls `f` with each `wait for confirmation` in `list` and the `send` it
/// waits on: the nearest `send` before it that is a step of its own
/// block, else of an enclosing block before the step holding that block,
/// and so on outward (`before`: the one the enclosing blocks give; `None`
/// at the top). A `send` nested in an earlier step's block does not count:
/// it may not have run. The plan's lowering follows the same rule.
pub fn confirmations<'a>(
    list: &'a [ast::Step],
    mut before: Option<&'a ast::Step>,
    f: &mut impl FnMut(&'a ast::Step, Option<&'a ast::Step>),
) {
    for step in list {
        if let StepKind::WaitFor(ast::WaitFor {
            awaited: ast::Awaited::Confirmation(_),
            ..
        }) = &step.kind
        {
            f(step, before);
        }
        for block in child_blocks(step) {
            confirmations(&block.steps, before, f);
        }
        if matches!(step.kind, StepKind::Send { .. }) {
            before = Some(step);
        }
    }
}

/// The step lists a declaration holds at its top level.
pub fn decl_blocks(decl: &Decl) -> Vec<&[ast::Step]> {
    match decl {
        Decl::Journey(j) => vec![&j.steps],
        Decl::Rule(r) => vec![&r.then.steps],
        Decl::Task(t) => task_rewards(t),
        _ => Vec::new(),
    }
}

/// A task's reward step lists.
fn task_rewards(t: &ast::Task) -> Vec<&[ast::Step]> {
    t.clauses
        .iter()
        .filter_map(|c| match &c.kind {
            ast::TaskClauseKind::Count { reward, .. }
            | ast::TaskClauseKind::Streak { reward, .. } => Some(reward.steps.as_slice()),
            _ => None,
        })
        .collect()
}

/// The blocks directly inside a step.
pub fn child_blocks(step: &ast::Step) -> Vec<&ast::Block> {
    match &step.kind {
        StepKind::WaitFor(wait) => wait.on_event.iter().chain(&wait.on_timeout).collect(),
        StepKind::If {
            branches,
            otherwise,
        } => branches
            .iter()
            .map(|(_, b)| b)
            .chain(otherwise.iter())
            .collect(),
        StepKind::Split { arms, .. } => arms.iter().map(|a| &a.body).collect(),
        StepKind::Repeat { body, .. } => vec![body],
        _ => Vec::new(),
    }
}

/// The direct sub-expressions of an expression, with what each stands for:
/// a call's event-name arguments are names of events, not values.
pub fn children<'a>(expr: &'a Expr, functions: &dyn FunctionTable) -> Vec<(&'a Expr, Child)> {
    match &expr.kind {
        ExprKind::Str(t) => t
            .parts
            .iter()
            .filter_map(|p| match p {
                ast::TemplatePart::Expr(e) => Some((e, Child::Value)),
                ast::TemplatePart::Text(_) => None,
            })
            .collect(),
        ExprKind::List(items) => items.iter().map(|e| (e, Child::Value)).collect(),
        ExprKind::Record(r) => r.fields.iter().map(|f| (&f.value, Child::Value)).collect(),
        ExprKind::Field(base, _) => vec![(base.as_ref(), Child::Value)],
        ExprKind::Index(base, index) => vec![
            (base.as_ref(), Child::Value),
            (index.as_ref(), Child::Value),
        ],
        ExprKind::Unary(_, e) => vec![(e.as_ref(), Child::Value)],
        ExprKind::Binary(_, l, r) => vec![(l.as_ref(), Child::Value), (r.as_ref(), Child::Value)],
        ExprKind::Call { function, args } => {
            let signature = functions.lookup(&function.name);
            args.iter()
                .enumerate()
                .map(|(i, arg)| {
                    let kind = signature.and_then(|s| s.param(i)).map(|p| p.kind);
                    let child = match kind {
                        Some(ParamKind::Event) => Child::EventName,
                        Some(ParamKind::EventField) => Child::EventField,
                        _ => Child::Value,
                    };
                    (arg, child)
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Child {
    Value,
    /// `count(order_paid)`, `count("Order Completed")`: an event name.
    EventName,
    /// `sum(order_paid.amount, 30d)`, `sum("Order Completed".revenue, 30d)`: `E.PROP`.
    EventField,
}

/// The event an `EventName` argument names, if well formed: a bare name
/// (`count(order_paid)`) or a quoted one (`count("Order Completed")`).
pub fn event_name_arg(expr: &Expr) -> Option<String> {
    match &expr.kind {
        ExprKind::Name(event) => Some(event.clone()),
        ExprKind::Str(t) => t
            .as_plain()
            .filter(|name| !t.triple && !name.trim().is_empty()),
        _ => None,
    }
}

/// The event and property an `EventField` argument names, if well formed:
/// `order_paid.amount` or `"Order Completed".revenue`.
pub fn event_field(expr: &Expr) -> Option<(String, &ast::Ident)> {
    match &expr.kind {
        ExprKind::Field(base, field) => event_name_arg(base).map(|event| (event, field)),
        _ => None,
    }
}

/// Every `as` binding a declaration makes, wherever it is in scope.
pub fn all_bindings<'a>(owner: Owner<'a>) -> Vec<&'a ast::Ident> {
    let mut out = Vec::new();
    let lists: Vec<&'a [ast::Step]> = match owner {
        Owner::Journey(j) => vec![&j.steps],
        Owner::Rule(r) => vec![&r.then.steps],
        Owner::Task(t) => task_rewards(t),
        _ => Vec::new(),
    };
    fn go<'a>(list: &'a [ast::Step], out: &mut Vec<&'a ast::Ident>) {
        for step in list {
            match &step.kind {
                StepKind::WaitFor(ast::WaitFor { bind: Some(b), .. })
                | StepKind::GiveCoupon { bind: Some(b), .. } => out.push(b),
                _ => {}
            }
            for block in child_blocks(step) {
                go(&block.steps, out);
            }
        }
    }
    for list in lists {
        go(list, &mut out);
    }
    out
}

/// What a bare name refers to.
#[derive(Debug, Clone, Copy)]
pub enum Resolved<'a> {
    User,
    Event,
    Journey,
    Now,
    Segment(&'a ast::Segment),
    Const(&'a ast::Const),
    Binding(Binding<'a>),
    /// A context name that has no value here (`event` in a segment).
    Unavailable(&'static str),
    Unknown,
}

/// Resolves a bare name in a scope: bindings shadow declarations, which
/// shadow nothing (context names are reserved by use).
pub fn resolve<'a>(
    name: &str,
    scope: &Scope<'a>,
    symbols: &super::symbols::Symbols<'a>,
) -> Resolved<'a> {
    if let Some(binding) = scope.binding(name) {
        return Resolved::Binding(*binding);
    }
    let context = scope.owner.has_context();
    match name {
        "user" | "now" if !context => {
            return Resolved::Unavailable(if name == "user" { "user" } else { "now" });
        }
        "user" => return Resolved::User,
        "now" => return Resolved::Now,
        "event" if scope.owner.has_event() => return Resolved::Event,
        "event" => return Resolved::Unavailable("event"),
        "journey" if matches!(scope.owner, Owner::Journey(_)) => return Resolved::Journey,
        "journey" => return Resolved::Unavailable("journey"),
        _ => {}
    }
    if let Some(c) = symbols.constant(name) {
        return Resolved::Const(c);
    }
    if let Some(s) = symbols.segment(name) {
        return if context {
            Resolved::Segment(s)
        } else {
            Resolved::Unavailable("a segment")
        };
    }
    Resolved::Unknown
}

/// Calls `f` with every sub-expression of the deployment that is read as a
/// value (not an event-name argument), and the scope it stands in: the walk
/// the rules about names and fields share.
pub fn each_value<'a>(
    files: &'a [ast::File],
    functions: &dyn FunctionTable,
    f: impl FnMut(&'a Expr, &Scope<'a>),
) {
    struct Values<'t, F> {
        functions: &'t dyn FunctionTable,
        f: F,
    }
    impl<'a, F: FnMut(&'a Expr, &Scope<'a>)> Visitor<'a> for Values<'_, F> {
        fn expr(&mut self, expr: &'a Expr, _: Role, scope: &Scope<'a>) {
            each_subexpr(expr, Child::Value, self.functions, &mut |e, child| {
                if child == Child::Value {
                    (self.f)(e, scope);
                }
            });
        }
    }
    walk(files, &mut Values { functions, f });
}

/// Calls `f` on `expr` and every sub-expression that is a value, with the
/// role it has; event-name arguments are passed to `f` but not entered.
pub fn each_subexpr<'a>(
    expr: &'a Expr,
    child: Child,
    functions: &dyn FunctionTable,
    f: &mut impl FnMut(&'a Expr, Child),
) {
    f(expr, child);
    if child != Child::Value {
        return;
    }
    for (sub, role) in children(expr, functions) {
        each_subexpr(sub, role, functions, f);
    }
}
