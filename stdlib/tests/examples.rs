//! Every row's example runs: its `example` is parsed with the language's
//! own parser, evaluated by a small evaluator that knows literals, calls,
//! `now`, `user`, field access and bare event arguments, against
//! `FixedContext::example()`, and must equal its `example_result`
//! (evaluated the same way) and have the signature's return type.

use waymark_dsl::Sources;
use waymark_dsl::ast::{Expr, ExprKind, TemplatePart, UnaryOp};
use waymark_dsl::library::{ParamKind, Returns};
use waymark_dsl::parser::parse_expression;
use waymark_dsl::types::Type;
use waymark_dsl::value::Value;
use waymark_stdlib::{BUILTINS, Context, FixedContext, builtin, call};

fn parse(text: &str) -> Result<Expr, String> {
    let mut sources = Sources::new();
    let file = sources.add("example", text);
    parse_expression(&sources, file).map_err(|d| format!("does not parse: {d:?}"))
}

fn eval(expr: &Expr, ctx: &FixedContext) -> Result<Value, String> {
    Ok(match &expr.kind {
        ExprKind::Null => Value::Null,
        ExprKind::Bool(b) => Value::Bool(*b),
        ExprKind::Number { value, .. } => Value::Number(*value),
        ExprKind::Duration { seconds, .. } => {
            Value::Duration(i64::try_from(*seconds).map_err(|e| e.to_string())?)
        }
        ExprKind::TimeOfDay(minutes) => Value::TimeOfDay(*minutes),
        ExprKind::Str(template) => {
            let mut text = String::new();
            for part in &template.parts {
                match part {
                    TemplatePart::Text(t) => text.push_str(t),
                    TemplatePart::Expr(e) => text.push_str(&eval(e, ctx)?.to_text()),
                }
            }
            Value::String(text)
        }
        ExprKind::List(items) => Value::List(
            items
                .iter()
                .map(|e| eval(e, ctx))
                .collect::<Result<_, _>>()?,
        ),
        ExprKind::Record(record) => {
            let mut map = waymark_dsl::value::Fields::new();
            for field in &record.fields {
                map.insert(field.key.name.clone(), eval(&field.value, ctx)?);
            }
            Value::Record(map)
        }
        ExprKind::Name(name) if name == "now" => Value::Timestamp(ctx.now()),
        ExprKind::Name(name) if name == "user" => ctx.user().clone(),
        ExprKind::Field(base, field) => eval(base, ctx)?.field(&field.name).clone(),
        ExprKind::Unary(UnaryOp::Neg, operand) => match eval(operand, ctx)? {
            Value::Number(n) => Value::Number(-n),
            Value::Duration(s) => Value::Duration(-s),
            other => return Err(format!("cannot negate {other:?}")),
        },
        ExprKind::Call { function, args } => {
            let row = builtin(&function.name)
                .ok_or_else(|| format!("unknown function {}", function.name))?;
            let mut values = Vec::new();
            for (index, arg) in args.iter().enumerate() {
                let kind = row.signature.param(index).map(|p| p.kind);
                values.push(match (kind, &arg.kind) {
                    (Some(ParamKind::Event), ExprKind::Name(event)) => Value::String(event.clone()),
                    (Some(ParamKind::EventField), ExprKind::Field(base, prop)) => {
                        match &base.kind {
                            ExprKind::Name(event) => {
                                Value::String(format!("{event}.{}", prop.name))
                            }
                            _ => return Err("an event property must be written E.PROP".to_string()),
                        }
                    }
                    (Some(ParamKind::Event | ParamKind::EventField), _) => {
                        return Err(format!(
                            "{}: argument {} must be written bare",
                            function.name,
                            index + 1
                        ));
                    }
                    _ => eval(arg, ctx)?,
                });
            }
            call(&function.name, ctx, &values.iter().collect::<Vec<_>>())
                .map_err(|e| e.to_string())?
        }
        other => return Err(format!("the example evaluator does not handle {other:?}")),
    })
}

/// Dates and timestamps have no literal form; a string result stands for
/// them (`"2025-11-11"`, an RFC 3339 instant) and compares by value.
fn same(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Date(d), Value::String(s)) => d.to_string() == *s,
        (Value::Timestamp(t), Value::String(_)) => expected.as_timestamp() == Some(*t),
        _ => actual == expected,
    }
}

#[test]
fn every_example_runs_to_its_result() {
    let ctx = FixedContext::example();
    let mut failures = Vec::new();
    for row in BUILTINS {
        let sig = &row.signature;
        let outcome = (|| {
            let example = parse(sig.example)?;
            match &example.kind {
                ExprKind::Call { function, .. } if function.name == sig.name => {}
                ExprKind::Field(base, _) if matches!(&base.kind, ExprKind::Call { function, .. } if function.name == sig.name) =>
                    {}
                _ => return Err(format!("the example is not a call of {}", sig.name)),
            }
            let actual = eval(&example, &ctx)?;
            let expected = eval(&parse(sig.example_result)?, &ctx)?;
            if !same(&actual, &expected) {
                return Err(format!("gave {actual:?}, expected {expected:?}"));
            }
            // A field of the result (`last(order_paid).amount`) has no declared type.
            if let (Returns::Type(t), ExprKind::Call { .. }) = (sig.returns, &example.kind)
                && !actual.is_null()
                && !Type::fits(actual.type_of(), t)
            {
                return Err(format!(
                    "returned a {} but the signature says {t}",
                    actual.type_of()
                ));
            }
            Ok(())
        })();
        if let Err(why) = outcome {
            failures.push(format!("{}: `{}` {why}", sig.name, sig.example));
        }
    }
    assert!(
        failures.is_empty(),
        "examples that fail:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_row_has_doc_and_example() {
    for row in BUILTINS {
        let sig = &row.signature;
        assert!(
            !sig.doc.is_empty() && !sig.doc.contains('\n'),
            "{}: the doc must be one line",
            sig.name
        );
        assert!(
            !sig.example.is_empty() && !sig.example_result.is_empty(),
            "{}: needs an example",
            sig.name
        );
    }
}

#[test]
fn names_are_unique() {
    let mut names: Vec<_> = BUILTINS.iter().map(|b| b.signature.name).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "a name appears twice in the table");
}
