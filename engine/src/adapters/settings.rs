//! Reading a channel's settings, for a kind's `validate` and `build` alike:
//! typed getters that record a [`ConfigError`] at the key's TOML path
//! (`channels.sms.access_key_id`) when a value is missing, empty or of the
//! wrong type, so that a kind reports every problem at once and builds
//! from exactly what it validated. Pure: no I/O.

use super::unknown_settings;
use crate::config::{ConfigError, parse_duration};
use reqwest::Url;
use std::time::Duration;
use toml::{Table, Value};

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
        self.errors.push(ConfigError {
            path: format!("{}.{key}", self.path),
            message: message.into(),
        });
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
                self.error(key, format!("`{text}` is not a URL: {e}"));
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

/// Joins errors into the one message `build` returns.
pub fn joined(errors: Vec<ConfigError>) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
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
}
