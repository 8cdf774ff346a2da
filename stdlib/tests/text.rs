//! Text built-ins.

mod common;

use common::*;
use waymark_dsl::value::Value;

#[test]
fn len_counts_characters_not_bytes() {
    assert_eq!(run(&ctx(), "len", &[s("会员日")]), num("3"));
    assert_eq!(run(&ctx(), "len", &[s("")]), num("0"));
}

#[test]
fn len_counts_list_items_and_record_keys() {
    assert_eq!(run(&ctx(), "len", &[list(&[num("1"), s("a")])]), num("2"));
    let record = Value::Record(waymark_dsl::value::Fields::from([(
        "a".to_string(),
        num("1"),
    )]));
    assert_eq!(run(&ctx(), "len", &[record]), num("1"));
}

#[test]
fn len_of_a_number_is_an_error() {
    assert_eq!(
        error(&ctx(), "len", &[num("12")]),
        "len: value must be a string, a list or a record, got 12"
    );
}

#[test]
fn lower_and_upper_change_case() {
    assert_eq!(
        run(&ctx(), "lower", &[s("VIP Gold 金卡")]),
        s("vip gold 金卡")
    );
    assert_eq!(run(&ctx(), "upper", &[s("cart10")]), s("CART10"));
}

#[test]
fn contains_finds_substrings() {
    assert_eq!(
        run(&ctx(), "contains", &[s("春季大促"), s("大促")]),
        Value::Bool(true)
    );
    assert_eq!(
        run(&ctx(), "contains", &[s("春季大促"), s("秋季")]),
        Value::Bool(false)
    );
}

#[test]
fn contains_tests_list_membership() {
    let tags = list(&[s("vip"), s("tea")]);
    assert_eq!(
        run(&ctx(), "contains", &[tags.clone(), s("tea")]),
        Value::Bool(true)
    );
    assert_eq!(
        run(&ctx(), "contains", &[tags, s("te")]),
        Value::Bool(false)
    );
}

#[test]
fn contains_compares_numbers_by_value() {
    assert_eq!(
        run(&ctx(), "contains", &[list(&[num("1.50")]), num("1.5")]),
        Value::Bool(true)
    );
}

#[test]
fn contains_a_number_in_a_string_is_an_error() {
    assert!(error(&ctx(), "contains", &[s("abc"), num("1")]).starts_with("contains: needle"));
    assert!(
        error(&ctx(), "contains", &[num("1"), num("1")]).starts_with("contains: haystack must be")
    );
}

#[test]
fn starts_with_checks_the_prefix() {
    assert_eq!(
        run(&ctx(), "starts_with", &[s("CART10"), s("CART")]),
        Value::Bool(true)
    );
    assert_eq!(
        run(&ctx(), "starts_with", &[s("CART10"), s("cart")]),
        Value::Bool(false)
    );
}

#[test]
fn format_money_groups_thousands() {
    let ctx = ctx();
    assert_eq!(run(&ctx, "format_money", &[num("1234.5")]), s("¥1,234.50"));
    assert_eq!(
        run(&ctx, "format_money", &[num("1234567")]),
        s("¥1,234,567.00")
    );
    assert_eq!(run(&ctx, "format_money", &[num("999")]), s("¥999.00"));
    assert_eq!(
        run(&ctx, "format_money", &[num("100000")]),
        s("¥100,000.00")
    );
    assert_eq!(run(&ctx, "format_money", &[num("0")]), s("¥0.00"));
}

#[test]
fn format_money_puts_the_minus_before_the_sign() {
    assert_eq!(run(&ctx(), "format_money", &[num("-5")]), s("-¥5.00"));
    assert_eq!(
        run(&ctx(), "format_money", &[num("-1234.5")]),
        s("-¥1,234.50")
    );
}

#[test]
fn format_money_rounds_half_away_from_zero() {
    assert_eq!(run(&ctx(), "format_money", &[num("0.125")]), s("¥0.13"));
    assert_eq!(run(&ctx(), "format_money", &[num("-0.125")]), s("-¥0.13"));
    assert_eq!(run(&ctx(), "format_money", &[num("-0.004")]), s("¥0.00"));
}

#[test]
fn format_money_of_the_largest_number_does_not_panic() {
    let largest = Value::Number(rust_decimal::Decimal::MAX);
    let text = run(&ctx(), "format_money", &[largest]);
    assert!(
        text.as_str()
            .unwrap()
            .starts_with("¥79,228,162,514,264,337,593,543,950,335.")
    );
}
