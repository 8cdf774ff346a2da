//! Reading a channel's settings table: typed getters that record a
//! [`ConfigError`] at the key's TOML path (`channels.sms.access_key_id`)
//! when a value is missing, empty or of the wrong type, so that a kind
//! reports every problem at once and builds from exactly what it read.
//! Also the config's duration form (`500ms`, `10s`, `1h30m`) and the
//! unknown-key check every kind makes. Pure: no I/O.

use std::time::Duration;
use toml::{Table, Value};
use url::Url;

/// A problem in the configuration, at its TOML path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where: `channels.sms.timeout`.
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Settings keys a kind does not know, as errors (with a "did you mean"
/// for a near miss).
pub fn unknown_settings(path: &str, settings: &Table, known: &[&str]) -> Vec<ConfigError> {
    settings
        .keys()
        .filter(|k| !known.contains(&k.as_str()))
        .map(|k| {
            let near = waymark_spelling::closest(k, known.iter().copied())
                .map(|n| format!("; did you mean `{n}`?"))
                .unwrap_or_default();
            ConfigError::new(
                format!("{path}.{k}"),
                format!(
                    "unknown setting for this kind (it takes: {}){near}",
                    known.join(", ")
                ),
            )
        })
        .collect()
}

/// A duration as the config writes it: `500ms`, or whole numbers with
/// units `s`, `m`, `h`, `d`, `w` (`10s`, `1h30m`). `None` for anything else, or over a century.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms.parse().ok().map(Duration::from_millis);
    }
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let mut seconds: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let number: u64 = number.parse().ok()?;
        let mut chars = after.chars();
        let unit = match chars.next() {
            Some('s') => 1,
            Some('m') => 60,
            Some('h') => 3_600,
            Some('d') => 86_400,
            Some('w') => 7 * 86_400,
            _ => return None,
        };
        seconds = seconds.checked_add(number.checked_mul(unit)?)?;
        rest = chars.as_str();
    }
    (seconds <= 100 * 366 * 86_400).then(|| Duration::from_secs(seconds))
}

/// How long one HTTP request may take, connection included, unless a
/// channel's `timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest `timeout` a channel may set: the outbox gives up on a
/// delivery after 30 s.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(30);

/// A channel's settings table and the problems found in it so far.
pub struct Settings<'a> {
    path: &'a str,
    table: &'a Table,
    errors: Vec<ConfigError>,
}

impl<'a> Settings<'a> {
    /// Starts reading `table` (the channel at `path`); keys outside `known`
    /// are errors.
    pub fn new(path: &'a str, table: &'a Table, known: &[&str]) -> Settings<'a> {
        Settings {
            path,
            table,
            errors: unknown_settings(path, table, known),
        }
    }

    /// Records a problem with `key`.
    pub fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors
            .push(ConfigError::new(format!("{}.{key}", self.path), message));
    }

    /// An optional non-empty string.
    pub fn string(&mut self, key: &str) -> Option<&'a str> {
        match self.table.get(key)? {
            Value::String(s) if s.trim().is_empty() => {
                self.error(key, "must not be empty");
                None
            }
            Value::String(s) => Some(s),
            other => {
                self.error(key, format!("must be a string, found {}", other.type_str()));
                None
            }
        }
    }

    /// A required non-empty string; `what` says what it is when missing.
    pub fn required(&mut self, key: &str, what: &str) -> Option<&'a str> {
        if !self.table.contains_key(key) {
            self.error(key, format!("missing: {what}"));
            return None;
        }
        self.string(key)
    }

    /// An `http://` or `https://` address; `default` when the key is absent
    /// (`None` makes it required, `what` saying what it is).
    pub fn url(&mut self, key: &str, default: Option<&str>, what: &str) -> Option<Url> {
        let text = match (self.table.contains_key(key), default) {
            (true, _) => self.string(key)?,
            (false, Some(default)) => default,
            (false, None) => {
                self.error(key, format!("missing: {what}"));
                return None;
            }
        };
        match Url::parse(text) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => {
                self.error(key, format!("`{text}` must start with http:// or https://"));
                None
            }
            Ok(url) if url.host_str().is_none_or(str::is_empty) => {
                self.error(key, format!("`{text}` has no host"));
                None
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                self.error(
                    key,
                    "must not carry a user name or password: use the kind's secret settings",
                );
                None
            }
            Ok(url) => Some(url),
            Err(e) => {
                self.error(key, format!("`{text}` is not an http(s) URL: {e}"));
                None
            }
        }
    }

    /// A whole number between `min` and `max`, or a string of digits (as a
    /// `${VAR}` gives); `None` when absent.
    pub fn integer(&mut self, key: &str, min: i64, max: i64) -> Option<i64> {
        let n = match self.table.get(key)? {
            Value::Integer(i) => *i,
            Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                s.trim().parse().expect("checked")
            }
            other => {
                self.error(
                    key,
                    format!("must be a whole number, found {}", describe(other)),
                );
                return None;
            }
        };
        if (min..=max).contains(&n) {
            Some(n)
        } else {
            self.error(key, format!("must be between {min} and {max}, found {n}"));
            None
        }
    }

    /// The per-request `timeout` (connection included): a duration such
    /// as `"5s"` or `"500ms"`, above zero and at most [`MAX_TIMEOUT`].
    pub fn timeout(&mut self) -> Duration {
        let Some(text) = self.string("timeout") else {
            return DEFAULT_TIMEOUT;
        };
        match parse_duration(text) {
            Some(d) if d.is_zero() => {
                self.error("timeout", "must be above zero");
                DEFAULT_TIMEOUT
            }
            Some(d) if d > MAX_TIMEOUT => {
                self.error(
                    "timeout",
                    format!(
                        "`{text}` is over {}s: the outbox gives up on a delivery after that",
                        MAX_TIMEOUT.as_secs()
                    ),
                );
                DEFAULT_TIMEOUT
            }
            Some(d) => d,
            None => {
                self.error(
                    "timeout",
                    format!("`{text}` is not a duration such as 500ms or 10s"),
                );
                DEFAULT_TIMEOUT
            }
        }
    }

    /// A table of string values (`[channels.x.headers]`), in key order;
    /// every value that is not a string is an error at its own path.
    pub fn string_table(&mut self, key: &str) -> Vec<(&'a str, &'a str)> {
        let table = match self.table.get(key) {
            None => return Vec::new(),
            Some(Value::Table(t)) => t,
            Some(other) => {
                self.error(
                    key,
                    format!(
                        "must be a table of names to strings, found {}",
                        other.type_str()
                    ),
                );
                return Vec::new();
            }
        };
        let mut pairs = Vec::new();
        for (name, value) in table {
            match value {
                Value::String(s) => pairs.push((name.as_str(), s.as_str())),
                other => self.error(
                    &format!("{key}.{name}"),
                    format!("must be a string, found {}", other.type_str()),
                ),
            }
        }
        pairs
    }

    /// The problems found, if any, else `value`.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<ConfigError>> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(self.errors)
        }
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("\"{s}\""),
        Value::Float(f) => format!("the float {f}"),
        other => other.type_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    #[test]
    fn every_problem_is_reported_at_its_own_path() {
        let t = table(
            "a = 1\nb = \"\"\nu = \"ftp://x\"\nn = 1.5\ntimeout = \"1m\"\n[h]\nok = \"v\"\nbad = 3\n",
        );
        let mut s = Settings::new("channels.c", &t, &["a", "b", "u", "n", "timeout", "h"]);
        assert_eq!(s.string("a"), None);
        assert_eq!(s.string("b"), None);
        assert_eq!(s.required("missing", "the thing"), None);
        assert!(s.url("u", None, "an address").is_none());
        assert_eq!(s.integer("n", 1, 10), None);
        assert_eq!(s.timeout(), DEFAULT_TIMEOUT);
        assert_eq!(s.string_table("h"), vec![("ok", "v")]);
        let errors = s.finish(()).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.c.a",
                "channels.c.b",
                "channels.c.missing",
                "channels.c.u",
                "channels.c.n",
                "channels.c.timeout",
                "channels.c.h.bad",
            ]
        );
        assert!(errors[2].message.contains("the thing"), "{errors:?}");
    }

    #[test]
    fn good_values_read_back_and_defaults_apply() {
        let t = table("id = \"1000002\"\ntimeout = \"500ms\"\nu = \"https://h.example/x\"\n");
        let mut s = Settings::new("channels.c", &t, &["id", "timeout", "u", "d"]);
        assert_eq!(s.integer("id", 1, i64::MAX), Some(1_000_002));
        assert_eq!(s.timeout(), Duration::from_millis(500));
        assert_eq!(
            s.url("u", None, "").unwrap().as_str(),
            "https://h.example/x"
        );
        assert_eq!(
            s.url("d", Some("http://127.0.0.1:1"), "").unwrap().port(),
            Some(1)
        );
        assert!(s.finish(()).is_ok());
    }

    #[test]
    fn durations_take_the_config_forms_only() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5_400)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        for bad in [
            "",
            "30",
            "s",
            "-1s",
            "1.5s",
            "1x",
            "1 s",
            "ms",
            "99999999999999999999s",
            "40000d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
