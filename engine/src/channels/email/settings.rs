//! The `email` kind's settings: read from the channel's TOML table in one
//! pure pass that collects every problem with its TOML path. `validate`
//! reports those problems; `build` reads the same settings again, so the
//! two can never disagree about what is valid.

use lettre::message::Mailbox;
use std::time::Duration;
use toml::{Table, Value};
use waymark_channel::unknown_settings;
use waymark_channel::{ConfigError, parse_duration};

/// Every key the kind takes.
const KEYS: &[&str] = &[
    "host", "port", "tls", "username", "password", "from", "timeout", "ca_file",
];

/// The outbox abandons a delivery after 30 s; a longer SMTP timeout could
/// never take effect.
const MAX_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How the connection to the relay is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (SMTPS, port 465).
    Implicit,
    /// Plain text, then `STARTTLS`, required (submission, port 587).
    StartTls,
    /// No TLS at all (a relay on loopback or a private network, port 25).
    None,
}

impl Security {
    fn default_port(self) -> u16 {
        match self {
            Security::Implicit => 465,
            Security::StartTls => 587,
            Security::None => 25,
        }
    }
}

/// Valid settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// `username` and `password`, both or neither.
    pub credentials: Option<(String, String)>,
    pub from: Mailbox,
    /// The most one send may take, end to end.
    pub timeout: Duration,
    /// A PEM file of extra CA certificates to trust (a relay whose
    /// certificate a private CA signed); read by `build`, not `validate`.
    pub ca_file: Option<String>,
}

impl Settings {
    /// Reads the settings, or every problem with them. No I/O.
    pub fn read(path: &str, table: &Table) -> Result<Settings, Vec<ConfigError>> {
        let mut r = Reader {
            path,
            table,
            errors: unknown_settings(path, table, KEYS),
        };
        let host = r.string("host");
        match host.as_deref() {
            None if !table.contains_key("host") => {
                r.error("host", "missing: the SMTP relay's host name")
            }
            Some(h) if h.is_empty() || h.contains(char::is_whitespace) => {
                r.error("host", "must be a host name or address, without spaces")
            }
            _ => {}
        }
        let security = match r.string("tls").as_deref() {
            None | Some("starttls") => Security::StartTls,
            Some("implicit") => Security::Implicit,
            Some("none") => Security::None,
            Some(other) => {
                r.error(
                    "tls",
                    format!(
                        "`{other}` is not `implicit` (port 465), `starttls` (587) or `none` (25)"
                    ),
                );
                Security::StartTls
            }
        };
        let port = match table.get("port") {
            None => Some(security.default_port()),
            Some(Value::Integer(p)) => match u16::try_from(*p) {
                Ok(p) if p > 0 => Some(p),
                _ => {
                    r.error("port", format!("must be between 1 and 65535, found {p}"));
                    None
                }
            },
            Some(other) => {
                r.error(
                    "port",
                    format!("must be a whole number, found {}", other.type_str()),
                );
                None
            }
        };
        let username = r.string("username");
        let password = r.string("password");
        let credentials = match (username, password) {
            (Some(u), Some(p)) => Some((u, p)),
            (None, None) => None,
            (Some(_), None) => {
                if !table.contains_key("password") {
                    r.error("password", "missing: `username` and `password` go together");
                }
                None
            }
            (None, Some(_)) => {
                if !table.contains_key("username") {
                    r.error("username", "missing: `username` and `password` go together");
                }
                None
            }
        };
        let from = match r.string("from") {
            None => {
                if !table.contains_key("from") {
                    r.error(
                        "from",
                        "missing: the sender, such as \"品牌 <news@example.com>\"",
                    );
                }
                None
            }
            Some(text) => match text.parse::<Mailbox>() {
                Ok(mailbox) => Some(mailbox),
                Err(e) => {
                    r.error(
                        "from",
                        format!(
                            "`{text}` is not a mailbox such as \"品牌 <news@example.com>\": {e}"
                        ),
                    );
                    None
                }
            },
        };
        let timeout = match r.string("timeout") {
            None => Some(DEFAULT_TIMEOUT),
            Some(text) => match parse_duration(&text) {
                Some(d) if !d.is_zero() && d <= MAX_TIMEOUT => Some(d),
                Some(_) => {
                    r.error(
                        "timeout",
                        "must be more than 0 and at most 30s (the outbox gives up on a delivery after 30s)",
                    );
                    None
                }
                None => {
                    r.error(
                        "timeout",
                        format!("`{text}` is not a duration such as 500ms or 10s"),
                    );
                    None
                }
            },
        };
        let ca_file = r.string("ca_file");
        match ca_file.as_deref() {
            Some("") => r.error("ca_file", "must be the path of a PEM file"),
            Some(_) if security == Security::None => {
                r.error("ca_file", "only with tls = \"implicit\" or \"starttls\"")
            }
            _ => {}
        }
        match (r.errors.is_empty(), host, port, from, timeout) {
            (true, Some(host), Some(port), Some(from), Some(timeout)) => Ok(Settings {
                host,
                port,
                security,
                credentials,
                from,
                timeout,
                ca_file,
            }),
            _ => Err(r.errors),
        }
    }
}

struct Reader<'a> {
    path: &'a str,
    table: &'a Table,
    errors: Vec<ConfigError>,
}

impl Reader<'_> {
    fn error(&mut self, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: format!("{}.{key}", self.path),
            message: message.into(),
        });
    }

    fn string(&mut self, key: &str) -> Option<String> {
        match self.table.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                let found = other.type_str();
                self.error(key, format!("must be a string, found {found}"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Table {
        text.parse().unwrap()
    }

    fn errors(text: &str) -> Vec<(String, String)> {
        match Settings::read("channels.email", &table(text)) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| (e.path, e.message)).collect(),
        }
    }

    #[test]
    fn the_port_follows_the_tls_mode_unless_given() {
        for (tls, port) in [("implicit", 465), ("starttls", 587), ("none", 25)] {
            let s = Settings::read(
                "c",
                &table(&format!(
                    "host = \"smtp.example.com\"\nfrom = \"a@example.com\"\ntls = \"{tls}\""
                )),
            )
            .unwrap();
            assert_eq!(s.port, port, "{tls}");
        }
        let s = Settings::read(
            "c",
            &table("host = \"h\"\nfrom = \"a@example.com\"\nport = 2525"),
        )
        .unwrap();
        assert_eq!((s.port, s.security), (2525, Security::StartTls));
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn a_sender_with_a_chinese_display_name_parses() {
        let s = Settings::read(
            "c",
            &table("host = \"h\"\nfrom = \"品牌 <news@example.com>\"\ntimeout = \"2500ms\""),
        )
        .unwrap();
        assert_eq!(s.from.name.as_deref(), Some("品牌"));
        assert_eq!(s.from.email.to_string(), "news@example.com");
        assert_eq!(s.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn every_problem_is_reported_at_its_path() {
        let found = errors(
            "host = \"\"\nport = 70000\ntls = \"ssl\"\nusername = \"u\"\nfrom = \"not an address\"\ntimeout = \"1m\"\nca_file = 3\nretries = 2",
        );
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        for expected in [
            "channels.email.host",
            "channels.email.port",
            "channels.email.tls",
            "channels.email.password",
            "channels.email.from",
            "channels.email.timeout",
            "channels.email.ca_file",
            "channels.email.retries",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {found:?}"
            );
        }
        assert_eq!(found.len(), 8, "{found:?}");
    }

    #[test]
    fn missing_host_and_sender_are_named_and_a_lone_password_wants_its_username() {
        let found = errors("password = \"p\"");
        let paths: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.email.host",
                "channels.email.username",
                "channels.email.from"
            ]
        );
    }

    #[test]
    fn a_ca_file_without_tls_is_an_error() {
        let found =
            errors("host = \"h\"\nfrom = \"a@example.com\"\ntls = \"none\"\nca_file = \"ca.pem\"");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "channels.email.ca_file");
    }
}
