//! Expressions, strings and literals. Precedence and associativity come
//! from one Pratt table that mirrors language.md §6; comparisons that would
//! chain are refused here, where the parentheses are still visible.

use super::{Builder, Pair, Rule};
use crate::ast::{self, BinaryOp, Expr, ExprKind, UnaryOp};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::source::Span;
use pest::pratt_parser::{Assoc, Op, PrattParser};
use rust_decimal::Decimal;
use std::str::FromStr;
use std::sync::OnceLock;

fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        PrattParser::new()
            .op(Op::infix(Rule::op_or, Assoc::Left))
            .op(Op::infix(Rule::op_and, Assoc::Left))
            .op(Op::prefix(Rule::op_not))
            .op(Op::infix(Rule::op_eq, Assoc::Left)
                | Op::infix(Rule::op_ne, Assoc::Left)
                | Op::infix(Rule::op_lt, Assoc::Left)
                | Op::infix(Rule::op_le, Assoc::Left)
                | Op::infix(Rule::op_gt, Assoc::Left)
                | Op::infix(Rule::op_ge, Assoc::Left)
                | Op::infix(Rule::op_in, Assoc::Left))
            .op(Op::infix(Rule::op_add, Assoc::Left) | Op::infix(Rule::op_sub, Assoc::Left))
            .op(Op::infix(Rule::op_mul, Assoc::Left)
                | Op::infix(Rule::op_div, Assoc::Left)
                | Op::infix(Rule::op_mod, Assoc::Left))
            .op(Op::prefix(Rule::op_neg))
            .op(Op::postfix(Rule::call_args)
                | Op::postfix(Rule::field_access)
                | Op::postfix(Rule::index))
    })
}

/// An expression under construction: its depth bounds recursion in later
/// passes; `paren` tells a chained comparison from a parenthesised one.
struct Built {
    expr: Expr,
    depth: u32,
    paren: bool,
}

impl Built {
    fn leaf(expr: Expr) -> Built {
        Built {
            expr,
            depth: 1,
            paren: false,
        }
    }
}

fn binary_op(r: Rule) -> BinaryOp {
    match r {
        Rule::op_or => BinaryOp::Or,
        Rule::op_and => BinaryOp::And,
        Rule::op_eq => BinaryOp::Eq,
        Rule::op_ne => BinaryOp::Ne,
        Rule::op_lt => BinaryOp::Lt,
        Rule::op_le => BinaryOp::Le,
        Rule::op_gt => BinaryOp::Gt,
        Rule::op_ge => BinaryOp::Ge,
        Rule::op_in => BinaryOp::In,
        Rule::op_add => BinaryOp::Add,
        Rule::op_sub => BinaryOp::Sub,
        Rule::op_mul => BinaryOp::Mul,
        Rule::op_div => BinaryOp::Div,
        _ => BinaryOp::Rem,
    }
}

impl Builder<'_> {
    /// `expr` pair to an expression.
    pub(super) fn expr(&self, pair: Pair<'_>) -> Expr {
        self.built(pair).expr
    }

    fn built(&self, pair: Pair<'_>) -> Built {
        let span = self.span(&pair);
        let error = || {
            Built::leaf(Expr {
                kind: ExprKind::Error,
                span,
            })
        };
        self.nested(span, error, || {
            let pairs: Vec<Pair<'_>> = pair
                .into_inner()
                .filter(|p| p.as_rule() != Rule::COMMENT)
                .collect();
            if open_prefixes(&pairs) >= super::MAX_DEPTH {
                return self.too_deep_expr(span);
            }
            pratt()
                .map_primary(|p| self.primary(p))
                .map_prefix(|op, rhs| {
                    let span = self.span(&op).to(rhs.expr.span);
                    let op = if op.as_rule() == Rule::op_not {
                        UnaryOp::Not
                    } else {
                        UnaryOp::Neg
                    };
                    self.grow(span, rhs.depth, || ExprKind::Unary(op, Box::new(rhs.expr)))
                })
                .map_postfix(|lhs, op| self.postfix(lhs, op))
                .map_infix(|lhs, op, rhs| {
                    let op = binary_op(op.as_rule());
                    let span = lhs.expr.span.to(rhs.expr.span);
                    if op.is_comparison() {
                        for side in [&lhs, &rhs] {
                            if let ExprKind::Binary(inner, ..) = &side.expr.kind
                                && inner.is_comparison()
                                && !side.paren
                            {
                                self.report(
                                    Diagnostic::new(
                                        Code::ChainedComparison,
                                        span,
                                        "comparisons do not chain",
                                    )
                                    .label(format!("`{}` after `{}`", op.symbol(), inner.symbol()))
                                    .help(
                                        "compare twice and join with `and`, e.g. `a < b and b < c`",
                                    ),
                                );
                                return Built::leaf(Expr {
                                    kind: ExprKind::Error,
                                    span,
                                });
                            }
                        }
                    }
                    let depth = lhs.depth.max(rhs.depth);
                    self.grow(span, depth, || {
                        ExprKind::Binary(op, Box::new(lhs.expr), Box::new(rhs.expr))
                    })
                })
                .parse(pairs.into_iter())
        })
    }

    /// Reports (once per file) an expression nested too deeply.
    fn too_deep_expr(&self, span: Span) -> Built {
        if !self.too_deep.replace(true) {
            self.report(
                Diagnostic::new(
                    Code::TooDeep,
                    span,
                    format!(
                        "expression nested more than {} levels deep",
                        super::MAX_DEPTH
                    ),
                )
                .label("too deep"),
            );
        }
        Built::leaf(Expr {
            kind: ExprKind::Error,
            span,
        })
    }

    /// A new node over children at most `depth` deep, unless that is too deep.
    fn grow(&self, span: Span, depth: u32, kind: impl FnOnce() -> ExprKind) -> Built {
        if depth >= super::MAX_DEPTH {
            return self.too_deep_expr(span);
        }
        Built {
            expr: Expr { kind: kind(), span },
            depth: depth + 1,
            paren: false,
        }
    }

    fn postfix(&self, lhs: Built, op: Pair<'_>) -> Built {
        let span = lhs.expr.span.to(self.span(&op));
        match op.as_rule() {
            Rule::field_access => {
                let field = self.ident(self.children(op).next().expect("grammar: field name"));
                self.grow(span, lhs.depth, || {
                    ExprKind::Field(Box::new(lhs.expr), field)
                })
            }
            Rule::index => {
                let index = self.built(self.children(op).next().expect("grammar: index expr"));
                self.grow(span, lhs.depth.max(index.depth), || {
                    ExprKind::Index(Box::new(lhs.expr), Box::new(index.expr))
                })
            }
            _ => {
                let args: Vec<Expr> = self.children(op).map(|p| self.expr(p)).collect();
                match lhs.expr.kind {
                    ExprKind::Name(name) if !lhs.paren => {
                        let function = ast::Ident {
                            name,
                            span: lhs.expr.span,
                        };
                        self.grow(span, lhs.depth, || ExprKind::Call { function, args })
                    }
                    _ => {
                        self.report(
                            Diagnostic::new(
                                Code::Syntax,
                                lhs.expr.span,
                                "only functions can be called",
                            )
                            .label("this is not a function name"),
                        );
                        Built::leaf(Expr {
                            kind: ExprKind::Error,
                            span,
                        })
                    }
                }
            }
        }
    }

    fn primary(&self, pair: Pair<'_>) -> Built {
        let span = self.span(&pair);
        let expr = |kind| Built::leaf(Expr { kind, span });
        match pair.as_rule() {
            Rule::expr => {
                let mut inner = self.built(pair);
                inner.paren = true;
                inner
            }
            Rule::lit_true => expr(ExprKind::Bool(true)),
            Rule::lit_false => expr(ExprKind::Bool(false)),
            Rule::lit_null => expr(ExprKind::Null),
            Rule::ident => expr(ExprKind::Name(pair.as_str().to_string())),
            Rule::number => expr(self.number(&pair, span)),
            Rule::duration => {
                let d = self.duration(pair);
                expr(ExprKind::Duration {
                    seconds: d.seconds,
                    text: d.text,
                })
            }
            Rule::time_of_day => expr(ExprKind::TimeOfDay(self.time_of_day(pair).minutes)),
            Rule::string => expr(ExprKind::Str(self.template(pair))),
            Rule::list => {
                let items: Vec<Expr> = self.children(pair).map(|p| self.expr(p)).collect();
                expr(ExprKind::List(items))
            }
            Rule::record => expr(ExprKind::Record(self.record(pair))),
            other => unreachable!("grammar: unexpected primary {other:?}"),
        }
    }

    fn number(&self, pair: &Pair<'_>, span: Span) -> ExprKind {
        let text = pair.as_str().to_string();
        match parse_decimal(&text) {
            Some(value) => ExprKind::Number { value, text },
            None => {
                self.report(
                    Diagnostic::new(Code::BadLiteral, span, "this number has too many digits")
                        .label("at most 28 significant digits"),
                );
                ExprKind::Error
            }
        }
    }

    pub(super) fn signed_number(&self, pair: Pair<'_>) -> (Decimal, String, Span) {
        let span = self.span(&pair);
        let text = pair.as_str().to_string();
        let value = parse_decimal(&text).unwrap_or_else(|| {
            self.report(
                Diagnostic::new(Code::BadLiteral, span, "this number has too many digits")
                    .label("at most 28 significant digits"),
            );
            Decimal::ZERO
        });
        (value, text, span)
    }

    pub(super) fn record(&self, pair: Pair<'_>) -> ast::Record {
        let span = self.span(&pair);
        let fields = self
            .children(pair)
            .map(|field| {
                let mut parts = self.children(field);
                let key = parts.next().expect("grammar: record key");
                let (key, quoted) = if key.as_rule() == Rule::string {
                    let text = self.text(key);
                    (
                        ast::Ident {
                            name: text.value,
                            span: text.span,
                        },
                        true,
                    )
                } else {
                    (self.ident(key), false)
                };
                let value = self.expr(parts.next().expect("grammar: record value"));
                ast::RecordField { key, quoted, value }
            })
            .collect();
        ast::Record { fields, span }
    }

    /// A string that may interpolate.
    pub(super) fn template(&self, pair: Pair<'_>) -> ast::Template {
        let inner = self
            .children(pair)
            .next()
            .expect("grammar: string has a body");
        let triple = inner.as_rule() == Rule::triple_string;
        let mut parts: Vec<ast::TemplatePart> = Vec::new();
        let mut text = String::new();
        for part in inner.into_inner() {
            match part.as_rule() {
                Rule::text | Rule::triple_text => text.push_str(part.as_str()),
                Rule::escape => match self.escape(&part) {
                    Some(c) => text.push(c),
                    None => text.push_str(part.as_str()),
                },
                _ => {
                    if !text.is_empty() {
                        parts.push(ast::TemplatePart::Text(std::mem::take(&mut text)));
                    }
                    let expr = self
                        .children(part)
                        .next()
                        .expect("grammar: interpolation holds an expr");
                    parts.push(ast::TemplatePart::Expr(self.expr(expr)));
                }
            }
        }
        if !text.is_empty() {
            parts.push(ast::TemplatePart::Text(text));
        }
        ast::Template { parts, triple }
    }

    fn escape(&self, pair: &Pair<'_>) -> Option<char> {
        let c = match &pair.as_str()[1..] {
            "n" => '\n',
            "t" => '\t',
            "r" => '\r',
            "\\" => '\\',
            "\"" => '"',
            "{" => '{',
            "}" => '}',
            other => {
                self.report(
                    Diagnostic::new(
                        Code::BadLiteral,
                        self.span(pair),
                        format!("unknown escape `\\{other}`"),
                    )
                    .label("not an escape")
                    .help("the escapes are \\n \\t \\r \\\\ \\\" \\{ and \\}"),
                );
                return None;
            }
        };
        Some(c)
    }

    /// A string where plain text is needed (names, ids, cron lines, time zones).
    pub(super) fn text(&self, pair: Pair<'_>) -> ast::Text {
        let span = self.span(&pair);
        let template = self.template(pair);
        let value = match template.as_plain() {
            Some(value) => value,
            None => {
                self.report(
                    Diagnostic::new(
                        Code::BadInterpolation,
                        span,
                        "interpolation is not allowed in this string",
                    )
                    .label("plain text is needed here")
                    .help("write `\\{` for a literal brace"),
                );
                String::new()
            }
        };
        ast::Text {
            value,
            triple: template.triple,
            span,
        }
    }
}

/// How many prefix operators are open at once in one expression's flat
/// pairs: each is an ancestor of the next in the tree, and the Pratt parser
/// recurses once per open operator before `grow` can refuse the result, so
/// `not a == not a == …` or `- - - … 1` must be refused before parsing.
/// A `not` stays open until `and` or `or` (looser than it); a `-` until
/// its operand ends (every infix operator is looser than it), unless that
/// operand starts with a `not`, which keeps it open as long as the `not`.
fn open_prefixes(pairs: &[Pair<'_>]) -> u32 {
    let (mut nots, mut negs, mut most) = (0u32, 0u32, 0u32);
    for pair in pairs {
        match pair.as_rule() {
            Rule::op_not => nots += std::mem::take(&mut negs) + 1,
            Rule::op_neg => negs += 1,
            Rule::op_and | Rule::op_or => nots = 0,
            _ => negs = 0,
        }
        most = most.max(nots + negs);
    }
    most
}

/// An exact decimal from a literal such as `1_000` or `-19.90`.
pub fn parse_decimal(text: &str) -> Option<Decimal> {
    let digits: String = text.chars().filter(|c| *c != '_').collect();
    Decimal::from_str(&digits).ok()
}
