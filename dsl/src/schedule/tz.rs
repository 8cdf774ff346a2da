//! Time-zone names: exact IANA names only (as `chrono-tz` knows them), with
//! a suggestion when a name is close: a different case (`asia/shanghai`), a
//! city alone (`Tokyo`, `new york`), a common mistake (`Beijing`,
//! `Asia/Beijing`, `CST`, `China`) or a misspelling (`Asia/Shanghia`).

use crate::diagnostic::closest;
use chrono_tz::{TZ_VARIANTS, Tz};
use std::fmt;

/// Why a time-zone name was refused, and the name probably meant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TzError {
    pub message: String,
    pub suggestion: Option<String>,
}

impl fmt::Display for TzError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean \"{s}\"?")?;
        }
        Ok(())
    }
}

impl std::error::Error for TzError {}

/// Names people write for China's zone that are not IANA names. `CST` is
/// also US Central time; a Waymark user writing it almost always means China.
const CHINA: &[&str] = &[
    "beijing",
    "asia/beijing",
    "peking",
    "cst",
    "china",
    "china standard time",
    "北京",
    "北京时间",
    "中国",
    "gmt+8",
    "utc+8",
    "utc+08:00",
    "gmt+08:00",
];

/// Parses an IANA time-zone name such as `Asia/Shanghai`.
pub fn parse_time_zone(name: &str) -> Result<Tz, TzError> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(TzError {
            message: "the time zone name is empty; use an IANA name such as \"Asia/Shanghai\""
                .to_string(),
            suggestion: Some("Asia/Shanghai".to_string()),
        });
    }
    let lower = trimmed.to_lowercase();
    let names: Vec<&'static str> = TZ_VARIANTS.iter().map(|tz| tz.name()).collect();

    if let Some(exact) = names.iter().find(|n| n.to_lowercase() == lower) {
        let message = if trimmed == *exact {
            format!("\"{name}\" has spaces around it")
        } else {
            format!("unknown time zone \"{name}\" (names are case-sensitive)")
        };
        return Err(TzError {
            message,
            suggestion: Some(exact.to_string()),
        });
    }
    if CHINA.contains(&lower.as_str()) {
        let message = if lower.starts_with("gmt") || lower.starts_with("utc") {
            format!(
                "\"{name}\" is a fixed offset, not a time zone name; China's zone is \"Asia/Shanghai\""
            )
        } else if lower == "cst" {
            "\"CST\" is an abbreviation, not a time zone name (it can mean China or US Central time)".to_string()
        } else {
            format!("unknown time zone \"{name}\"; China's zone is named after Shanghai")
        };
        return Err(TzError {
            message,
            suggestion: Some("Asia/Shanghai".to_string()),
        });
    }
    let message =
        format!("unknown time zone \"{name}\" (use an IANA name such as \"Asia/Shanghai\")");
    Err(TzError {
        message,
        suggestion: city(&lower, &names).or_else(|| near(trimmed, &lower, &names)),
    })
}

/// A zone whose city matches the last part of the name: `Tokyo`,
/// `new york`, `Europe/Tokyo` -> the zone for that city. Region/City names
/// are preferred to older single-word links.
fn city(lower: &str, names: &[&'static str]) -> Option<String> {
    let want = lower.rsplit('/').next()?.replace(' ', "_");
    let matches = |n: &&&str| {
        n.rsplit('/')
            .next()
            .is_some_and(|c| c.to_lowercase() == want)
    };
    let canonical = |n: &&&str| n.contains('/') && !n.starts_with("Etc/") && !n.starts_with("US/");
    names
        .iter()
        .filter(matches)
        .find(canonical)
        .or_else(|| names.iter().find(matches))
        .map(|n| n.to_string())
}

/// The closest name by edit distance, ignoring case.
fn near(name: &str, lower: &str, names: &[&'static str]) -> Option<String> {
    if let Some(n) = closest(name, names.iter().copied()) {
        return Some(n.to_string());
    }
    let lowered: Vec<String> = names.iter().map(|n| n.to_lowercase()).collect();
    let hit = closest(lower, lowered.iter().map(String::as_str))?;
    let i = lowered.iter().position(|n| n == hit)?;
    Some(names[i].to_string())
}
