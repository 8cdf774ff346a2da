//! One cron field at a time: `*`, `a`, `a-b`, `*/n`, `a-b/n`, `a/n`, lists
//! of those, and names (JAN–DEC, SUN–SAT), checked against the field's range
//! and expanded to the explicit set of values it matches.

use std::collections::BTreeSet;

/// What a field accepts and how to talk about it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldSpec {
    /// The field's name in messages: "minute", "day-of-week".
    pub name: &'static str,
    /// What precedes a number in an out-of-range message: "minute", "day-of-week value".
    pub value_label: &'static str,
    pub min: u32,
    pub max: u32,
    /// The allowed range as told to people: "0–59", "0–7, where 0 and 7 are Sunday".
    pub range_note: &'static str,
    /// Names this field accepts and the value of the first one.
    pub names: Option<(&'static [&'static str], u32)>,
    /// Which names to suggest in a message: "SUN–SAT".
    pub names_note: &'static str,
    /// Whether a range may cross the end (day-of-week `FRI-SUN`); values wrap modulo `wrap`.
    pub wrap: Option<u32>,
    /// Whether a lone `?` (any) is accepted, as the cron crate does for day fields.
    pub question: bool,
}

pub(crate) const MONTH_NAMES: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
pub(crate) const DAY_NAMES: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const fn spec(name: &'static str, min: u32, max: u32, range_note: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        value_label: name,
        min,
        max,
        range_note,
        names: None,
        names_note: "",
        wrap: None,
        question: false,
    }
}

/// The month field, the same in both forms.
const MONTH: FieldSpec = FieldSpec {
    names: Some((MONTH_NAMES, 1)),
    names_note: "JAN–DEC",
    ..spec("month", 1, 12, "1–12")
};

/// The day-of-week field, counted from Sunday = `sunday` (the forms differ).
const fn day_of_week(sunday: u32, max: u32, range_note: &'static str) -> FieldSpec {
    FieldSpec {
        value_label: "day-of-week value",
        names: Some((DAY_NAMES, sunday)),
        names_note: "SUN–SAT",
        ..spec("day-of-week", sunday, max, range_note)
    }
}

/// The five crontab fields: minute hour day-of-month month day-of-week.
pub(crate) const CRONTAB: [FieldSpec; 5] = [
    spec("minute", 0, 59, "0–59"),
    spec("hour", 0, 23, "0–23"),
    spec("day-of-month", 1, 31, "1–31"),
    MONTH,
    FieldSpec {
        wrap: Some(7),
        ..day_of_week(0, 7, "0–7, where 0 and 7 are Sunday")
    },
];

/// The `cron` crate's fields: second minute hour day-of-month month
/// day-of-week [year], with 1 = Sunday. Used only to explain its errors.
pub(crate) const WITH_SECONDS: [FieldSpec; 7] = [
    spec("second", 0, 59, "0–59"),
    spec("minute", 0, 59, "0–59"),
    spec("hour", 0, 23, "0–23"),
    FieldSpec {
        question: true,
        ..spec("day-of-month", 1, 31, "1–31")
    },
    MONTH,
    FieldSpec {
        question: true,
        ..day_of_week(1, 7, "1–7 in the form with seconds, where 1 is Sunday")
    },
    spec("year", 1970, 2100, "1970–2100"),
];

/// A parsed field: the values it matches, and whether it was written
/// starting with `*` (crontab's test for "unrestricted").
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    pub values: BTreeSet<u32>,
    pub star: bool,
}

/// Parses one field's text; the error is a complete, readable message.
pub(crate) fn parse_field(text: &str, spec: &FieldSpec) -> Result<Field, String> {
    let star = text.starts_with('*') || (spec.question && text == "?");
    if spec.question && text == "?" {
        return Ok(Field {
            values: (spec.min..=spec.max).collect(),
            star,
        });
    }
    let mut values = BTreeSet::new();
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!(
                "the {} field has an empty item in its list (two commas in a row, or one at an end)",
                spec.name
            ));
        }
        parse_item(item, spec, &mut values)?;
    }
    Ok(Field { values, star })
}

fn parse_item(item: &str, spec: &FieldSpec, out: &mut BTreeSet<u32>) -> Result<(), String> {
    let (base, step) = match item.split_once('/') {
        Some((base, step)) => (base, Some(parse_step(step, spec)?)),
        None => (item, None),
    };
    let (start, end) = if base == "*" {
        (spec.min, spec.max)
    } else if base.is_empty() {
        return Err(format!(
            "the {} field has a step with nothing before it in \"{item}\" (write */n or a-b/n)",
            spec.name
        ));
    } else if let Some((a, b)) = base.split_once('-') {
        let a = parse_value(a, spec)?;
        let b = parse_value(b, spec)?;
        if a > b && spec.wrap.is_none() {
            let part = |x: u32, y: u32| {
                if x == y {
                    x.to_string()
                } else {
                    format!("{x}-{y}")
                }
            };
            return Err(format!(
                "the {} range {base} runs backwards; write it from low to high, or as two parts such as {},{}",
                spec.name,
                part(a, spec.max),
                part(spec.min, b)
            ));
        }
        (a, b)
    } else {
        let a = parse_value(base, spec)?;
        // `a/n` means from a to the end of the range, every n.
        (a, if step.is_some() { spec.max } else { a })
    };
    let step = step.unwrap_or(1);
    match spec.wrap {
        Some(modulus) if start > end => {
            // A day-of-week range crossing the week end: FRI-SUN, SAT-MON.
            let mut v = start;
            while v <= end + modulus {
                out.insert(v % modulus);
                v = v.saturating_add(step);
            }
        }
        _ => {
            let mut v = start;
            while v <= end {
                out.insert(v);
                v = v.saturating_add(step);
            }
        }
    }
    Ok(())
}

fn parse_step(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err(format!(
            "the {} field has a step of 0; a step must be at least 1",
            spec.name
        )),
        Ok(n) if text.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(format!(
            "the {} field has a step \"{text}\" that is not a whole number",
            spec.name
        )),
    }
}

fn parse_value(text: &str, spec: &FieldSpec) -> Result<u32, String> {
    if text.is_empty() {
        return Err(format!(
            "the {} field has a range with a missing end",
            spec.name
        ));
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(v) if (spec.min..=spec.max).contains(&v) => Ok(v),
            _ => Err(format!(
                "{} {text} is out of range ({})",
                spec.value_label, spec.range_note
            )),
        };
    }
    if text == "*" {
        return Err(format!(
            "the {} field uses * inside a range; write * alone or a range of numbers",
            spec.name
        ));
    }
    if let Some(c) = text.chars().find(|c| !c.is_alphanumeric()) {
        return Err(format!(
            "unexpected \"{c}\" in the {} field \"{text}\"",
            spec.name
        ));
    }
    if let Some((names, first)) = spec.names {
        if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
            return Ok(first + i as u32);
        }
        return Err(format!(
            "\"{text}\" is not a {} name (use {} or {})",
            spec.name
                .trim_start_matches("day-of-")
                .replace("week", "day"),
            spec.names_note,
            spec.range_note.split(',').next().unwrap_or(spec.range_note)
        ));
    }
    if text.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(format!(
            "the {} field takes numbers ({}), not names like \"{text}\"",
            spec.name, spec.range_note
        ));
    }
    match text.chars().find(|c| !c.is_ascii_digit()) {
        Some(c) => Err(format!(
            "unexpected \"{c}\" in the {} field \"{text}\"",
            spec.name
        )),
        None => Err(format!(
            "{} {text} is out of range ({})",
            spec.value_label, spec.range_note
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str, i: usize) -> Vec<u32> {
        parse_field(text, &CRONTAB[i])
            .unwrap()
            .values
            .into_iter()
            .collect()
    }

    #[test]
    fn expands_ranges_steps_lists_and_names() {
        assert_eq!(values("*/15", 0), vec![0, 15, 30, 45]);
        assert_eq!(values("10-20/5,59", 0), vec![10, 15, 20, 59]);
        assert_eq!(values("50/4", 0), vec![50, 54, 58]);
        assert_eq!(values("jan,Mar-may", 3), vec![1, 3, 4, 5]);
        assert_eq!(values("FRI-SUN", 4), vec![0, 5, 6]);
        assert_eq!(values("5-7", 4), vec![5, 6, 7]);
        assert_eq!(values("SAT-MON", 4), vec![0, 1, 6]);
        assert_eq!(values("*/2", 4), vec![0, 2, 4, 6]);
    }

    #[test]
    fn explains_bad_values() {
        assert_eq!(
            parse_field("61", &CRONTAB[0]).unwrap_err(),
            "minute 61 is out of range (0–59)"
        );
        assert_eq!(
            parse_field("8", &CRONTAB[4]).unwrap_err(),
            "day-of-week value 8 is out of range (0–7, where 0 and 7 are Sunday)"
        );
        assert_eq!(
            parse_field("FOO", &CRONTAB[3]).unwrap_err(),
            "\"FOO\" is not a month name (use JAN–DEC or 1–12)"
        );
        assert_eq!(
            parse_field("MONDAY", &CRONTAB[4]).unwrap_err(),
            "\"MONDAY\" is not a day name (use SUN–SAT or 0–7)"
        );
    }
}
