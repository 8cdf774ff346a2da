//! Cron schedules and time zones: one normalising layer in front of the
//! `cron` crate, so that `trigger schedule "CRON" tz "Area/City"` means what
//! a person who knows crontab expects.
//!
//! # Two forms
//!
//! * **5 fields, crontab** (`minute hour day-of-month month day-of-week`),
//!   as in crontab(5): day-of-week 0 and 7 are Sunday, 1 is Monday … 6 is
//!   Saturday; `*`, lists `a,b`, ranges `a-b`, steps `*/n`, `a-b/n`, `a/n`
//!   (from a to the end of the range), names JAN–DEC and SUN–SAT in any case,
//!   and day-of-week ranges that cross the week end (`5-7`, `FRI-SUN`,
//!   `SAT-MON`). The macros `@hourly`, `@daily` = `@midnight`, `@weekly`
//!   (Sunday 00:00), `@monthly` and `@yearly` = `@annually` stand for their
//!   usual 5-field expansions.
//! * **6 or 7 fields, with seconds**: the `cron` crate's own syntax
//!   (`sec min hour day-of-month month day-of-week [year]`, where
//!   day-of-week 1 is Sunday and 7 Saturday, and day-of-month and
//!   day-of-week are ANDed), handed to the crate unchanged.
//!
//! # Normalisation of the crontab form
//!
//! The crate numbers days 1 = Sunday, and ANDs the two day fields; crontab
//! numbers them 0 = 7 = Sunday and, when both are restricted, ORs them. So
//! every crontab field is checked against its range here (the crate is never
//! shown a value it would reject) and expanded to its explicit set of values;
//! day-of-week values are emitted in the crate's numbering, `d -> d % 7 + 1`.
//!
//! **The OR rule.** As crontab(5) says, a day field is *restricted* when it
//! does not start with `*`. When both day-of-month and day-of-week are
//! restricted, the schedule fires on a day that matches *either*: it becomes
//! the union of two crate schedules, (day-of-month restricted, day-of-week
//! `*`) and (day-of-month `*`, day-of-week restricted), and the next fire is
//! the earlier of the two. `0 9 13 * 5` fires on every 13th and every Friday.
//! When either field starts with `*` (including `*/n`), the two are ANDed,
//! as the crate does.
//!
//! # Time zones and daylight saving
//!
//! A schedule names wall-clock times; [`CronSchedule::next_after`] finds the
//! next one in the given zone's local time and turns it into an instant:
//!
//! * a local time that happens **twice** (the hour repeated when clocks go
//!   back) fires **once**, at its first occurrence. In America/New_York on
//!   2025-11-02, `30 1 * * *` fires at 01:30 EDT (05:30 UTC) only.
//! * a local time that **does not exist** (skipped when clocks go forward)
//!   fires at the instant the clock jumps, i.e. the first moment after the
//!   gap; several skipped times collapse into that one fire, and a time at
//!   the end of the gap fires together with them. In America/New_York on
//!   2025-03-09, `30 2 * * *` fires at 03:00 EDT (07:00 UTC).
//!
//! So a once-a-day schedule fires exactly once on every local day, and the
//! result depends only on the arguments. (The crate on its own would skip
//! the nonexistent time and fire the repeated one twice.) The 6/7-field form
//! gets the same treatment.
//!
//! Nothing here reads the clock: callers pass `after` in.

mod fields;
mod tz;

pub use tz::{TzError, parse_time_zone};

use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use fields::{CRONTAB, Field, FieldSpec, WITH_SECONDS, parse_field};
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// A parsed cron expression, ready to compute fire times.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronSchedule {
    text: String,
    /// Crate schedules whose union is this schedule (two under the OR rule).
    schedules: Vec<cron::Schedule>,
}

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError {
    /// What is wrong, in words a marketer understands.
    pub message: String,
    /// The offending field's 0-based index among the whitespace-separated fields.
    pub field: Option<usize>,
    /// The byte range of the offending field (or of the whole expression) in the text.
    pub span: Option<Range<usize>>,
}

impl fmt::Display for CronError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CronError {}

const COUNT_HINT: &str =
    "expected 5 fields (minute hour day-of-month month day-of-week) or 6–7 with seconds";

/// The shortcuts a schedule may use (any case), and the crontab lines
/// they stand for.
pub const MACROS: &[(&str, &str)] = &[
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

impl CronSchedule {
    /// Parses a 5-field crontab expression, a macro such as `@daily`, or the
    /// `cron` crate's 6/7-field form with seconds.
    pub fn parse(text: &str) -> Result<CronSchedule, CronError> {
        let tokens = split_fields(text);
        let schedules = match tokens.as_slice() {
            [] => {
                return Err(CronError {
                    message: format!("{COUNT_HINT}, found 0"),
                    field: None,
                    span: None,
                });
            }
            [(span, word)] if word.starts_with('@') => {
                let Some((_, expansion)) =
                    MACROS.iter().find(|(m, _)| m.eq_ignore_ascii_case(word))
                else {
                    let known: Vec<&str> = MACROS.iter().map(|(m, _)| *m).collect();
                    return Err(CronError {
                        message: format!(
                            "{word} is not a known shortcut (use {})",
                            known.join(", ")
                        ),
                        field: Some(0),
                        span: Some(span.clone()),
                    });
                };
                crontab(&split_fields(expansion)).expect("macro expansions are valid")
            }
            [(span, word), ..] if word.starts_with('@') => {
                return Err(CronError {
                    message: format!(
                        "{word} stands for a whole schedule; write it alone, without other fields"
                    ),
                    field: Some(0),
                    span: Some(span.clone()),
                });
            }
            fields if fields.len() == 5 => crontab(fields)?,
            fields if fields.len() == 6 || fields.len() == 7 => vec![with_seconds(fields)?],
            fields => {
                let whole = fields[0].0.start..fields[fields.len() - 1].0.end;
                return Err(CronError {
                    message: format!("{COUNT_HINT}, found {}", fields.len()),
                    field: None,
                    span: Some(whole),
                });
            }
        };
        Ok(CronSchedule {
            text: text.trim().to_string(),
            schedules,
        })
    }

    /// The expression as written (trimmed).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The first fire strictly after `after`, computed in the local time of
    /// `tz` (see the module doc for daylight-saving changes). `None` when the
    /// schedule never fires again (the crate stops at the year 2100).
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let mut cursor = after.with_timezone(&tz).naive_local();
        loop {
            let local = self.next_local_after(cursor)?;
            let instant = resolve_local(tz, local)?;
            // Only in a repeated hour can a later local time map to an
            // instant not after `after`; step past it.
            if instant > after {
                return Some(instant);
            }
            cursor = local;
        }
    }

    /// The next `n` fires after `after`, for previews.
    pub fn upcoming(&self, after: DateTime<Utc>, tz: Tz, n: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(n.min(1024));
        let mut cursor = after;
        while out.len() < n {
            match self.next_after(cursor, tz) {
                Some(next) => {
                    out.push(next);
                    cursor = next;
                }
                None => break,
            }
        }
        out
    }

    /// The next local wall-clock time the schedule names, strictly after
    /// `local`. UTC stands in for a calendar without offsets.
    fn next_local_after(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        let start = local.and_utc();
        self.schedules
            .iter()
            .filter_map(|s| s.after(&start).next())
            .min()
            .map(|t| t.naive_utc())
    }
}

impl FromStr for CronSchedule {
    type Err = CronError;
    fn from_str(text: &str) -> Result<CronSchedule, CronError> {
        CronSchedule::parse(text)
    }
}

/// The instant a local wall-clock time stands for: the first of two in a
/// repeated hour, the end of the gap for a time skipped by a jump forward.
fn resolve_local(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // In a gap. Find the first local minute after it (gaps last at most a
    // day), then walk back to the exact instant the clock jumped: the
    // earliest instant whose local time is later than `local`.
    let resumed = (1..=26 * 60).find_map(|m| {
        tz.from_local_datetime(&(local + Duration::minutes(m)))
            .earliest()
    })?;
    let mut t = resumed.with_timezone(&Utc);
    for _ in 0..60 {
        let before = t - Duration::seconds(1);
        if before.with_timezone(&tz).naive_local() <= local {
            break;
        }
        t = before;
    }
    Some(t)
}

/// Whitespace-separated fields with their byte ranges.
fn split_fields(text: &str) -> Vec<(Range<usize>, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s..i, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s..text.len(), &text[s..]));
    }
    out
}

fn field_error(index: usize, span: &Range<usize>, message: String) -> CronError {
    CronError {
        message,
        field: Some(index),
        span: Some(span.clone()),
    }
}

/// Checks and translates the 5-field crontab form into crate schedules.
fn crontab(tokens: &[(Range<usize>, &str)]) -> Result<Vec<cron::Schedule>, CronError> {
    let mut parsed: Vec<Field> = Vec::with_capacity(5);
    for (i, ((span, text), spec)) in tokens.iter().zip(CRONTAB.iter()).enumerate() {
        parsed.push(parse_field(text, spec).map_err(|m| field_error(i, span, m))?);
    }
    let [minute, hour, dom, month, dow] = <[Field; 5]>::try_from(parsed).expect("five fields");

    // A day-of-month that no chosen month has never fires (unless the
    // day-of-week alone can fire it, under the OR rule).
    let or_rule = !dom.star && !dow.star;
    if !or_rule
        && !month
            .values
            .iter()
            .any(|&m| dom.values.iter().any(|&d| d <= days_in_month(m)))
    {
        let days: Vec<String> = dom.values.iter().map(u32::to_string).collect();
        let months: Vec<&str> = month
            .values
            .iter()
            .map(|&m| MONTH_LONG[m as usize - 1])
            .collect();
        return Err(field_error(
            2,
            &tokens[2].0,
            format!(
                "this schedule never fires: {} has no day {}",
                join_or(&months, "or"),
                join_or(&days, "or")
            ),
        ));
    }

    let list = |f: &Field, spec: &FieldSpec| {
        if f.values.len() as u32 == spec.max - spec.min + 1 {
            "*".to_string()
        } else {
            f.values
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let weekdays = |f: &Field| {
        let days: std::collections::BTreeSet<u32> = f.values.iter().map(|d| d % 7 + 1).collect();
        if days.len() == 7 {
            "*".to_string()
        } else {
            days.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    let (min_s, hour_s, month_s) = (
        list(&minute, &CRONTAB[0]),
        list(&hour, &CRONTAB[1]),
        list(&month, &CRONTAB[3]),
    );
    let (dom_s, dow_s) = (list(&dom, &CRONTAB[2]), weekdays(&dow));
    let exprs = if or_rule {
        vec![
            format!("0 {min_s} {hour_s} {dom_s} {month_s} *"),
            format!("0 {min_s} {hour_s} * {month_s} {dow_s}"),
        ]
    } else {
        vec![format!("0 {min_s} {hour_s} {dom_s} {month_s} {dow_s}")]
    };
    exprs
        .iter()
        .map(|e| {
            cron::Schedule::from_str(e).map_err(|err| CronError {
                message: format!("internal error translating the schedule ({e}): {err}"),
                field: None,
                span: None,
            })
        })
        .collect()
}

/// The crate's 6/7-field form, unchanged; its errors are explained per field.
fn with_seconds(tokens: &[(Range<usize>, &str)]) -> Result<cron::Schedule, CronError> {
    let words: Vec<&str> = tokens.iter().map(|(_, w)| *w).collect();
    let crate_error = match cron::Schedule::from_str(&words.join(" ")) {
        Ok(schedule) => {
            // The crate counts years from 1970: a schedule with no fire
            // from then on never fires (say, 31 February).
            let epoch = DateTime::<Utc>::UNIX_EPOCH - Duration::seconds(1);
            if schedule.after(&epoch).next().is_none() {
                return Err(CronError {
                    message: "this schedule never fires: no date matches its day-of-month, month, day-of-week and year together".to_string(),
                    field: None,
                    span: Some(tokens[0].0.start..tokens[tokens.len() - 1].0.end),
                });
            }
            return Ok(schedule);
        }
        Err(e) => e.to_string(),
    };
    // Our own reading of the field usually says it better.
    for (i, ((span, text), spec)) in tokens.iter().zip(WITH_SECONDS.iter()).enumerate() {
        if let Err(message) = parse_field(text, spec) {
            return Err(field_error(i, span, message));
        }
    }
    // Otherwise find the field the crate objects to by trying each alone.
    for (i, (span, text)) in tokens.iter().enumerate() {
        let mut probe = vec!["*"; tokens.len()];
        probe[i] = text;
        if let Err(e) = cron::Schedule::from_str(&probe.join(" ")) {
            return Err(field_error(
                i,
                span,
                format!(
                    "the {} field \"{text}\" is not valid: {}",
                    WITH_SECONDS[i].name,
                    tidy(&e.to_string())
                ),
            ));
        }
    }
    Err(CronError {
        message: format!("the schedule is not valid: {}", tidy(&crate_error)),
        field: None,
        span: None,
    })
}

/// The crate's messages can be parser dumps; keep the first line.
fn tidy(message: &str) -> String {
    let line = message
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid expression")
        .trim();
    line.chars().take(200).collect()
}

const MONTH_LONG: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// The most days a month can have (February: 29).
fn days_in_month(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn join_or<S: AsRef<str>>(items: &[S], word: &str) -> String {
    match items {
        [] => String::new(),
        [one] => one.as_ref().to_string(),
        [rest @ .., last] => {
            let rest: Vec<&str> = rest.iter().map(AsRef::as_ref).collect();
            format!("{} {word} {}", rest.join(", "), last.as_ref())
        }
    }
}
