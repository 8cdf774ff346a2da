//! Configuration in layers — the embedded default, a TOML file, `WAYMARK_…`
//! environment variables, command-line flags — then `${VAR}` secrets, then
//! one pure validation that reports every problem with its TOML path.
//! Unknown keys are errors. Channel settings are validated by their kind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use toml::{Table, Value};
use waymark_channel::Validated;
pub use waymark_channel::{ConfigError, parse_duration};

/// The embedded default configuration.
pub const DEFAULT: &str = include_str!("default.toml");

fn error(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::new(path, message)
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Ingest,
    Read,
    Admin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Who holds it, as the audit log and deployment history name them
    /// (`name`, else `token N`, its place in the list from 1).
    pub name: String,
    pub token: String,
    pub scopes: Vec<Scope>,
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub max_attempts: u32,
    pub initial_backoff: std::time::Duration,
    pub max_backoff: std::time::Duration,
    pub max_age: std::time::Duration,
}

/// `50/s`: at most this many deliveries per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Channel {
    pub kind: String,
    /// The kind's own settings (the keys below removed), `${VAR}` resolved.
    pub settings: Table,
    /// The same settings as the kind read them: what it builds from.
    /// `None` only when they could not be read because `check` left a
    /// secret unset (`secrets_unset_ok`); the daemon never gets such a
    /// config, since an unset secret stops it.
    pub validated: Option<Validated>,
    pub rate_limit: Option<Rate>,
    pub concurrency: u32,
    pub retry: Retry,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The store's page cache unless `store_cache_bytes` says otherwise.
pub const DEFAULT_STORE_CACHE_BYTES: u64 = 256 << 20;

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub scripts: PathBuf,
    pub flush_interval: std::time::Duration,
    /// How long deliveries under way at SIGTERM may finish; what is left
    /// stays in the outbox for the next start.
    pub shutdown_grace: std::time::Duration,
    /// Users the writer keeps decoded in memory.
    pub user_cache: usize,
    /// The store's page cache in memory, in bytes.
    pub store_cache_bytes: u64,
    /// The store's write buffer: writes logged and kept in memory until
    /// this many bytes go to the store's files at once.
    pub store_write_buffer_bytes: usize,
    /// The most memory the message-id filters take (`dedup_filter_bytes`).
    pub dedup_filter_bytes: usize,
    pub tokens: Vec<Token>,
    pub channels: BTreeMap<String, Channel>,
    pub retry: Retry,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Caps on what one ingested message may carry (`[limits]`).
    pub limits: crate::ingest::Limits,
    /// Timeouts and the connection cap of the HTTP server (`[http]`).
    pub http: Http,
    /// Which traits identify a person, and how many ids a profile may
    /// gather (`[identity]`).
    pub identity: Identity,
    /// What an SMS reply that opts out looks like, and how much evidence
    /// a consent change may carry (`[consent]`).
    pub consent: Consent,
    /// Apps whose pushes the daemon takes as events
    /// (`[callbacks.wecom.NAME]`, `[callbacks.wechat.NAME]`).
    pub callbacks: Vec<Callback>,
}

/// Which platform pushes to a callback route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Platform {
    /// 企业微信: customer-contact changes, always encrypted.
    Wecom,
    /// An official account (公众号): follows, scans, menu clicks, messages;
    /// plaintext or safe mode.
    Wechat,
}

impl Platform {
    /// As the route and the config name it.
    pub fn name(self) -> &'static str {
        match self {
            Platform::Wecom => "wecom",
            Platform::Wechat => "wechat",
        }
    }
}

/// `[callbacks.wecom.NAME]` or `[callbacks.wechat.NAME]`: an app that
/// pushes events to `/v1/callbacks/{platform}/{name}`.
#[derive(Clone)]
pub struct Callback {
    pub platform: Platform,
    pub name: String,
    /// The token the pushes are signed with.
    pub token: String,
    /// The EncodingAESKey (43 characters); an official account in
    /// plaintext mode has none.
    pub encoding_aes_key: Option<String>,
    /// Who the pushes are for: the corp id (WeCom) or the AppID.
    pub receiver: String,
    /// The trait that holds the platform's id of a customer
    /// (`wecom_external_userid`, `openid` unless set).
    pub identifier: String,
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token and the key are secrets.
        f.debug_struct("Callback")
            .field("platform", &self.platform)
            .field("name", &self.name)
            .field("receiver", &self.receiver)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

/// `[consent]`: which inbound event is a customer's reply to an SMS, which
/// words in it withdraw consent, on which channels; and the most bytes of
/// evidence one consent change may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    pub rules: waymark_core::consent::ConsentRules,
    pub evidence_bytes: usize,
}

impl Default for Consent {
    fn default() -> Consent {
        Consent {
            rules: Default::default(),
            evidence_bytes: DEFAULT_EVIDENCE_BYTES,
        }
    }
}

/// The most bytes of evidence a consent change carries, unless configured.
pub const DEFAULT_EVIDENCE_BYTES: usize = 2048;

/// `[identity]`: the declared identifiers (traits such as `unionid` or
/// `phone` that only one person holds: two profiles holding the same value
/// are merged), and the most ids one profile may gather by merges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub identifiers: Vec<String>,
    pub max_ids: usize,
}

impl Default for Identity {
    fn default() -> Identity {
        Identity {
            identifiers: Vec::new(),
            max_ids: DEFAULT_MAX_IDS,
        }
    }
}

/// The most ids merged into one profile, unless configured.
pub const DEFAULT_MAX_IDS: usize = 100;

/// How long the HTTP server waits for slow clients, and how many
/// connections it holds at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Http {
    /// A request's head (line and headers) must arrive within this.
    pub header_read_timeout: std::time::Duration,
    /// A request's body must arrive within this.
    pub body_read_timeout: std::time::Duration,
    /// A keep-alive connection with no request under way is closed after this.
    pub idle_timeout: std::time::Duration,
    /// Connections held at once; more wait to be accepted.
    pub max_connections: usize,
}

impl Default for Http {
    fn default() -> Http {
        Http {
            header_read_timeout: std::time::Duration::from_secs(10),
            body_read_timeout: std::time::Duration::from_secs(30),
            idle_timeout: std::time::Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Command-line overrides (the last layer).
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub listen: Option<String>,
    pub data_dir: Option<String>,
    pub scripts: Option<String>,
    pub log_format: Option<String>,
    /// Leave an unset `${VAR}` as written instead of failing: for `check`,
    /// which lints scripts against a production config but never starts a
    /// channel, so never needs its secrets. The daemon leaves this off and
    /// names every missing variable.
    pub secrets_unset_ok: bool,
}

/// What a channel kind checks about its settings (pure, no I/O).
pub trait KindCheck {
    /// The settings of a channel of `kind` at `path`, read by the kind, or
    /// every problem in them; `None` for a kind there is not.
    fn validate(
        &self,
        kind: &str,
        path: &str,
        settings: &Table,
    ) -> Option<Result<Validated, Vec<ConfigError>>>;
    /// The kinds there are, for the message about an unknown one.
    fn kinds(&self) -> Vec<&str> {
        Vec::new()
    }
}

/// Loads the layers and validates the result. `file` is the text and name
/// of a config file; `env` the process environment.
pub fn load(
    file: Option<(&str, &str)>,
    env: &BTreeMap<String, String>,
    flags: &Flags,
    kinds: &dyn KindCheck,
) -> Result<Config, Vec<ConfigError>> {
    let mut table: Table = DEFAULT
        .parse()
        .expect("the embedded default configuration parses");
    if let Some((name, text)) = file {
        let layer: Table = text
            .parse()
            .map_err(|e: toml::de::Error| vec![error(name, e.to_string().trim_end())])?;
        merge(&mut table, layer);
    }
    let mut errors = Vec::new();
    // A variable the file names as `${WAYMARK_…}` is a secret, not a key.
    let secrets = file
        .map(|(_, text)| referenced_variables(text))
        .unwrap_or_default();
    for (key, value) in env {
        let Some(rest) = key.strip_prefix("WAYMARK_") else {
            continue;
        };
        if rest == "TOKEN" || rest.is_empty() || secrets.contains(key.as_str()) {
            continue; // WAYMARK_TOKEN is a secret for ${WAYMARK_TOKEN}, not a key.
        }
        let path: Vec<String> = rest.split("__").map(|p| p.to_ascii_lowercase()).collect();
        set_path(&mut table, &path, parse_scalar(value));
    }
    for (key, value) in [
        ("listen", &flags.listen),
        ("data_dir", &flags.data_dir),
        ("scripts", &flags.scripts),
    ] {
        if let Some(v) = value {
            table.insert(key.into(), Value::String(v.clone()));
        }
    }
    if let Some(format) = &flags.log_format {
        set_path(
            &mut table,
            &["log".into(), "format".into()],
            Value::String(format.clone()),
        );
    }
    let mut unset = Vec::new();
    substitute(&mut table, "", env, &mut errors, &mut unset);
    // The settings whose secret is not set cannot be judged without it.
    let deferred: std::collections::BTreeSet<String> = if flags.secrets_unset_ok {
        unset.into_iter().map(|e| e.path).collect()
    } else {
        errors.extend(unset);
        Default::default()
    };
    let config = validate(&table, kinds, &mut errors);
    errors.retain(|e| !deferred.contains(&e.path));
    if errors.is_empty() {
        Ok(config.expect("no errors means a config"))
    } else {
        Err(errors)
    }
}

/// The names of the `${VAR}` references in a config file's text.
fn referenced_variables(text: &str) -> std::collections::BTreeSet<&str> {
    text.split("${")
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.trim()))
        .collect()
}

/// Deep-merges tables; anything else in `over` replaces.
fn merge(base: &mut Table, over: Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

fn set_path(table: &mut Table, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("a non-empty path");
    let mut t = table;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        if !entry.is_table() {
            *entry = Value::Table(Table::new());
        }
        t = entry.as_table_mut().expect("just made a table");
    }
    t.insert(last.clone(), value);
}

/// An environment value as TOML if it reads as a number or bool, else a string.
fn parse_scalar(text: &str) -> Value {
    if let Ok(i) = text.parse::<i64>() {
        return Value::Integer(i);
    }
    match text {
        "true" => Value::Boolean(true),
        "false" => Value::Boolean(false),
        _ => Value::String(text.to_string()),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Replaces `${VAR}` in every string with the environment's value. A
/// variable that is not set is left as written and reported in `unset`,
/// apart from other errors, so that a caller that never starts a channel
/// (`check`) can defer it.
fn substitute(
    table: &mut Table,
    path: &str,
    env: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
    unset: &mut Vec<ConfigError>,
) {
    for (k, v) in table.iter_mut() {
        substitute_value(v, &join(path, k), env, errors, unset);
    }
}

fn substitute_value(
    value: &mut Value,
    path: &str,
    env: &BTreeMap<String, String>,
    errors: &mut Vec<ConfigError>,
    unset: &mut Vec<ConfigError>,
) {
    match value {
        Value::String(s) if s.contains("${") => {
            let mut out = String::new();
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let Some(end) = rest[start..].find('}') else {
                    errors.push(error(path, "`${` without a closing `}`"));
                    return;
                };
                let name = &rest[start + 2..start + end];
                match env.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        out.push_str(&rest[start..start + end + 1]);
                        unset.push(error(
                            path,
                            format!("environment variable `{name}` is not set"),
                        ));
                    }
                }
                rest = &rest[start + end + 1..];
            }
            out.push_str(rest);
            *s = out;
        }
        Value::Table(t) => substitute(t, path, env, errors, unset),
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                substitute_value(item, &format!("{path}[{i}]"), env, errors, unset);
            }
        }
        _ => {}
    }
}

fn parse_rate(text: &str) -> Option<Rate> {
    let (count, per) = text.split_once('/')?;
    let count: u32 = count.trim().parse().ok().filter(|c| *c > 0)?;
    let per = match per.trim() {
        "s" | "sec" | "second" => std::time::Duration::from_secs(1),
        "m" | "min" | "minute" => std::time::Duration::from_secs(60),
        "h" | "hour" => std::time::Duration::from_secs(3600),
        other => parse_duration(other).filter(|d| !d.is_zero())?,
    };
    Some(Rate { count, per })
}

/// Reads typed values out of a table, recording every problem.
struct Reader<'e> {
    errors: &'e mut Vec<ConfigError>,
}

impl Reader<'_> {
    fn unknown(&mut self, table: &Table, path: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                let near = waymark_dsl::diagnostic::closest(key, known.iter().copied());
                let help = near
                    .map(|n| format!("; did you mean `{n}`?"))
                    .unwrap_or_default();
                self.errors.push(error(
                    &join(path, key),
                    format!("unknown key (this table takes: {}){help}", known.join(", ")),
                ));
            }
        }
    }

    fn string(&mut self, table: &Table, path: &str, key: &str) -> Option<String> {
        match table.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                self.errors.push(error(
                    &join(path, key),
                    format!("must be a string, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn integer(&mut self, table: &Table, path: &str, key: &str, min: i64, max: i64) -> Option<i64> {
        match table.get(key)? {
            Value::Integer(i) if (min..=max).contains(i) => Some(*i),
            Value::Integer(i) => {
                self.errors.push(error(
                    &join(path, key),
                    format!("must be between {min} and {max}, found {i}"),
                ));
                None
            }
            other => {
                self.errors.push(error(
                    &join(path, key),
                    format!("must be a whole number, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    /// A list of names (each 1 to 256 bytes; a repeat is kept once), or
    /// `None` when the key is absent or wrong (the error pushed).
    fn names(&mut self, table: &Table, path: &str, key: &str, what: &str) -> Option<Vec<String>> {
        let items = match table.get(key)? {
            Value::Array(items) => items,
            other => {
                self.errors.push(error(
                    &join(path, key),
                    format!("must be a list of {what}, found {}", other.type_str()),
                ));
                return None;
            }
        };
        let mut names: Vec<String> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item {
                Value::String(name) if !name.is_empty() && name.len() <= 256 => {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
                _ => self.errors.push(error(
                    &format!("{}[{i}]", join(path, key)),
                    "must be a string of 1 to 256 bytes",
                )),
            }
        }
        Some(names)
    }

    fn duration(&mut self, table: &Table, path: &str, key: &str) -> Option<std::time::Duration> {
        let text = self.string(table, path, key)?;
        let parsed = parse_duration(&text);
        if parsed.is_none() {
            self.errors.push(error(
                &join(path, key),
                format!("`{text}` is not a duration such as 500ms, 30s, 10m, 24h or 7d"),
            ));
        }
        parsed
    }

    fn table<'t>(&mut self, table: &'t Table, path: &str, key: &str) -> Option<&'t Table> {
        match table.get(key)? {
            Value::Table(t) => Some(t),
            other => {
                self.errors.push(error(
                    &join(path, key),
                    format!("must be a table, found {}", other.type_str()),
                ));
                None
            }
        }
    }

    fn retry(&mut self, table: &Table, path: &str, base: Retry) -> Retry {
        Retry {
            max_attempts: self
                .integer(table, path, "max_attempts", 1, 1000)
                .map_or(base.max_attempts, |v| v as u32),
            initial_backoff: self
                .duration(table, path, "initial_backoff")
                .unwrap_or(base.initial_backoff),
            max_backoff: self
                .duration(table, path, "max_backoff")
                .unwrap_or(base.max_backoff),
            max_age: self
                .duration(table, path, "max_age")
                .unwrap_or(base.max_age),
        }
    }
}

impl Reader<'_> {
    /// `[callbacks.wecom.NAME]` and `[callbacks.wechat.NAME]`, each checked.
    fn callbacks(&mut self, table: &Table) -> Vec<Callback> {
        let mut out = Vec::new();
        let Some(all) = self.table(table, "", "callbacks") else {
            return out;
        };
        self.unknown(all, "callbacks", &["wecom", "wechat"]);
        for platform in [Platform::Wecom, Platform::Wechat] {
            let path = join("callbacks", platform.name());
            let Some(apps) = self.table(all, "callbacks", platform.name()) else {
                continue;
            };
            for (name, app) in apps {
                let path = join(&path, name);
                let Value::Table(app) = app else {
                    self.errors.push(error(
                        &path,
                        format!(
                            "must be a table: [{path}] with token, encoding_aes_key and {}",
                            receiver_key(platform)
                        ),
                    ));
                    continue;
                };
                if let Some(callback) = self.callback(platform, name, &path, app) {
                    out.push(callback);
                }
            }
        }
        out
    }

    fn callback(
        &mut self,
        platform: Platform,
        name: &str,
        path: &str,
        app: &Table,
    ) -> Option<Callback> {
        let receiver_key = receiver_key(platform);
        self.unknown(
            app,
            path,
            &["token", "encoding_aes_key", receiver_key, "identifier"],
        );
        let before = self.errors.len();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            self.errors.push(error(
                path,
                "an app's name is 1 to 64 letters, digits, `_` or `-` (it is a path segment)",
            ));
        }
        let token = self.string(app, path, "token");
        match &token {
            None => self.errors.push(error(
                &join(path, "token"),
                "is required: the Token set on the platform's callback page",
            )),
            Some(t)
                if t.is_empty()
                    || t.len() > 32
                    || !t.chars().all(|c| c.is_ascii_alphanumeric()) =>
            {
                self.errors.push(error(
                    &join(path, "token"),
                    "must be 1 to 32 letters or digits, as the platform takes it",
                ))
            }
            Some(_) => {}
        }
        let key = self.string(app, path, "encoding_aes_key");
        let receiver = self.string(app, path, receiver_key);
        match (&receiver, platform) {
            (Some(r), _) if !r.is_empty() && r.len() <= 64 => {}
            (Some(_), _) => self.errors.push(error(
                &join(path, receiver_key),
                "must be 1 to 64 characters",
            )),
            (None, Platform::Wecom) => self.errors.push(error(
                &join(path, receiver_key),
                "is required: the corp id (企业ID) the pushes are encrypted for",
            )),
            (None, Platform::Wechat) if key.is_some() => self.errors.push(error(
                &join(path, receiver_key),
                "is required in safe mode: the account's AppID the pushes are encrypted for",
            )),
            (None, Platform::Wechat) => {}
        }
        match (&key, platform) {
            (Some(k), _) => {
                if let Err(e) = crate::channels::weixin::callback::CallbackKeys::new(
                    token.as_deref().unwrap_or_default(),
                    k,
                    receiver.as_deref().unwrap_or_default(),
                ) {
                    self.errors.push(error(&join(path, "encoding_aes_key"), e));
                }
            }
            (None, Platform::Wecom) => self.errors.push(error(
                &join(path, "encoding_aes_key"),
                "is required: WeCom encrypts every push (the EncodingAESKey, 43 characters)",
            )),
            (None, Platform::Wechat) => {}
        }
        let identifier = match self.string(app, path, "identifier") {
            Some(i) if !i.is_empty() && i.len() <= 256 => i,
            Some(_) => {
                self.errors.push(error(
                    &join(path, "identifier"),
                    "must be a trait name of 1 to 256 bytes",
                ));
                String::new()
            }
            None => match platform {
                Platform::Wecom => "wecom_external_userid".into(),
                Platform::Wechat => "openid".into(),
            },
        };
        (self.errors.len() == before).then(|| Callback {
            platform,
            name: name.to_string(),
            token: token.unwrap_or_default(),
            encoding_aes_key: key,
            receiver: receiver.unwrap_or_default(),
            identifier,
        })
    }
}

/// The key naming who an app's pushes are for.
fn receiver_key(platform: Platform) -> &'static str {
    match platform {
        Platform::Wecom => "corp_id",
        Platform::Wechat => "app_id",
    }
}

const RETRY_KEYS: &[&str] = &["max_attempts", "initial_backoff", "max_backoff", "max_age"];
const CHANNEL_KEYS: &[&str] = &[
    "kind",
    "rate_limit",
    "concurrency",
    "max_attempts",
    "initial_backoff",
    "max_backoff",
    "max_age",
];

fn validate(table: &Table, kinds: &dyn KindCheck, errors: &mut Vec<ConfigError>) -> Option<Config> {
    let mut r = Reader { errors };
    r.unknown(
        table,
        "",
        &[
            "listen",
            "data_dir",
            "scripts",
            "flush_interval",
            "shutdown_grace",
            "user_cache",
            "store_cache_bytes",
            "store_write_buffer_bytes",
            "dedup_filter_bytes",
            "auth",
            "channels",
            "retry",
            "log",
            "limits",
            "http",
            "identity",
            "consent",
            "callbacks",
        ],
    );
    let listen_text = r.string(table, "", "listen").unwrap_or_default();
    let listen = listen_text.parse::<SocketAddr>().ok();
    if listen.is_none() {
        r.errors.push(error(
            "listen",
            format!("`{listen_text}` is not an address such as 127.0.0.1:7878"),
        ));
    }
    let data_dir = r.string(table, "", "data_dir").unwrap_or_default();
    let scripts = r.string(table, "", "scripts").unwrap_or_default();
    for (key, value) in [("data_dir", &data_dir), ("scripts", &scripts)] {
        if value.is_empty() {
            r.errors.push(error(key, "must not be empty"));
        }
    }
    let flush_interval = r
        .duration(table, "", "flush_interval")
        .unwrap_or(std::time::Duration::from_millis(2));
    if flush_interval > std::time::Duration::from_secs(1) {
        r.errors.push(error(
            "flush_interval",
            "at most 1s: ingest calls wait this long for their flush",
        ));
    }
    let shutdown_grace = r
        .duration(table, "", "shutdown_grace")
        .unwrap_or(std::time::Duration::from_secs(10));
    let user_cache = r
        .integer(table, "", "user_cache", 0, 10_000_000)
        .unwrap_or(crate::user_cache::DEFAULT_USERS as i64) as usize;
    let store_cache_bytes = r
        .integer(table, "", "store_cache_bytes", 1 << 20, 1 << 40)
        .unwrap_or(DEFAULT_STORE_CACHE_BYTES as i64) as u64;
    let store_write_buffer_bytes =
        r.integer(table, "", "store_write_buffer_bytes", 1 << 20, 1 << 40)
            .unwrap_or(crate::store::DEFAULT_WRITE_BUFFER_BYTES as i64) as usize;
    let dedup_filter_bytes =
        r.integer(table, "", "dedup_filter_bytes", 1 << 20, 1 << 40)
            .unwrap_or(crate::store::DEFAULT_DEDUP_FILTER_BYTES as i64) as usize;
    let defaults = Retry {
        max_attempts: 8,
        initial_backoff: std::time::Duration::from_secs(1),
        max_backoff: std::time::Duration::from_secs(600),
        max_age: std::time::Duration::from_secs(86_400),
    };
    let retry = match r.table(table, "", "retry") {
        Some(t) => {
            r.unknown(t, "retry", RETRY_KEYS);
            r.retry(t, "retry", defaults)
        }
        None => defaults,
    };
    let (mut log_format, mut log_level) = (LogFormat::Text, "info".to_string());
    if let Some(t) = r.table(table, "", "log") {
        r.unknown(t, "log", &["format", "level"]);
        match r.string(t, "log", "format").as_deref() {
            Some("text") | None => {}
            Some("json") => log_format = LogFormat::Json,
            Some(other) => r.errors.push(error(
                "log.format",
                format!("`{other}` is not `text` or `json`"),
            )),
        }
        if let Some(level) = r.string(t, "log", "level") {
            if ["error", "warn", "info", "debug", "trace"].contains(&level.as_str()) {
                log_level = level;
            } else {
                r.errors.push(error(
                    "log.level",
                    format!("`{level}` is not one of error, warn, info, debug, trace"),
                ));
            }
        }
    }
    let mut limits = crate::ingest::Limits::default();
    if let Some(t) = r.table(table, "", "limits") {
        r.unknown(
            t,
            "limits",
            &[
                "event_name_bytes",
                "property_name_bytes",
                "properties_bytes",
                "user_state_bytes",
                "body_bytes",
                "batch_items",
            ],
        );
        let mut size = |key: &str, value: &mut usize| {
            if let Some(n) = r.integer(t, "limits", key, 1, 1 << 30) {
                *value = n as usize;
            }
        };
        size("event_name_bytes", &mut limits.event_name);
        size("property_name_bytes", &mut limits.property_name);
        size("properties_bytes", &mut limits.properties);
        size("user_state_bytes", &mut limits.user_state);
        size("body_bytes", &mut limits.body);
        if let Some(n) = r.integer(t, "limits", "batch_items", 1, 100_000) {
            limits.batch = n as usize;
        }
    }
    let mut http = Http::default();
    if let Some(t) = r.table(table, "", "http") {
        r.unknown(
            t,
            "http",
            &[
                "header_read_timeout",
                "body_read_timeout",
                "idle_timeout",
                "max_connections",
            ],
        );
        for (key, value) in [
            ("header_read_timeout", &mut http.header_read_timeout),
            ("body_read_timeout", &mut http.body_read_timeout),
            ("idle_timeout", &mut http.idle_timeout),
        ] {
            match r.duration(t, "http", key) {
                Some(d) if d.is_zero() => r
                    .errors
                    .push(error(&join("http", key), "must be longer than 0s")),
                Some(d) => *value = d,
                None => {}
            }
        }
        if let Some(n) = r.integer(t, "http", "max_connections", 1, 1_000_000) {
            http.max_connections = n as usize;
        }
    }
    let mut identity = Identity::default();
    if let Some(t) = r.table(table, "", "identity") {
        r.unknown(t, "identity", &["identifiers", "max_ids"]);
        if let Some(names) = r.names(
            t,
            "identity",
            "identifiers",
            "trait names such as [\"unionid\", \"phone\"]",
        ) {
            identity.identifiers = names;
        }
        if let Some(n) = r.integer(t, "identity", "max_ids", 1, 100_000) {
            identity.max_ids = n as usize;
        }
    }
    let mut consent = Consent::default();
    if let Some(t) = r.table(table, "", "consent") {
        r.unknown(
            t,
            "consent",
            &[
                "reply_event",
                "reply_text",
                "opt_out_words",
                "opt_out_channels",
                "evidence_bytes",
            ],
        );
        for (key, slot) in [
            ("reply_event", &mut consent.rules.reply_event),
            ("reply_text", &mut consent.rules.reply_text),
        ] {
            match r.string(t, "consent", key) {
                Some(v) if v.is_empty() || v.len() > 256 => r.errors.push(error(
                    &join("consent", key),
                    "must be a name of 1 to 256 bytes",
                )),
                Some(v) => *slot = v,
                None => {}
            }
        }
        if let Some(words) = r.names(
            t,
            "consent",
            "opt_out_words",
            "replies such as [\"TD\", \"退订\"]",
        ) {
            consent.rules = consent.rules.with_words(words.iter().map(String::as_str));
        }
        if let Some(channels) = r.names(
            t,
            "consent",
            "opt_out_channels",
            "channel names such as [\"sms\"]",
        ) {
            consent.rules.opt_out_channels = channels;
        }
        if let Some(n) = r.integer(t, "consent", "evidence_bytes", 1, 1 << 20) {
            consent.evidence_bytes = n as usize;
        }
    }
    let callbacks = r.callbacks(table);
    let mut tokens = Vec::new();
    if let Some(auth) = r.table(table, "", "auth") {
        r.unknown(auth, "auth", &["tokens"]);
        match auth.get("tokens") {
            None => {}
            Some(Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("auth.tokens[{i}]");
                    let Value::Table(t) = item else {
                        r.errors
                            .push(error(&path, "must be a table with `token` and `scopes`"));
                        continue;
                    };
                    r.unknown(t, &path, &["name", "token", "scopes"]);
                    let name = match t.get("name") {
                        None => format!("token {}", i + 1),
                        Some(Value::String(n)) if !n.trim().is_empty() && n.len() <= 64 => {
                            n.clone()
                        }
                        Some(_) => {
                            r.errors.push(error(
                                &join(&path, "name"),
                                "must be a non-empty string of at most 64 bytes",
                            ));
                            String::new()
                        }
                    };
                    if !name.is_empty() && tokens.iter().any(|t: &Token| t.name == name) {
                        r.errors.push(error(
                            &join(&path, "name"),
                            format!("`{name}` names another token too: the audit log could not tell them apart"),
                        ));
                    }
                    let token = r.string(t, &path, "token").unwrap_or_default();
                    if token.len() < 16 {
                        r.errors.push(error(
                            &join(&path, "token"),
                            "must be at least 16 characters",
                        ));
                    }
                    let mut scopes = Vec::new();
                    match t.get("scopes") {
                        Some(Value::Array(list)) if !list.is_empty() => {
                            for (j, s) in list.iter().enumerate() {
                                match s.as_str() {
                                    Some("ingest") => scopes.push(Scope::Ingest),
                                    Some("read") => scopes.push(Scope::Read),
                                    Some("admin") => scopes.push(Scope::Admin),
                                    _ => r.errors.push(error(
                                        &format!("{path}.scopes[{j}]"),
                                        "must be \"ingest\", \"read\" or \"admin\"",
                                    )),
                                }
                            }
                        }
                        _ => r.errors.push(error(
                            &join(&path, "scopes"),
                            "must be a non-empty list of \"ingest\", \"read\", \"admin\"",
                        )),
                    }
                    tokens.push(Token {
                        name,
                        token,
                        scopes,
                    });
                }
            }
            Some(other) => r.errors.push(error(
                "auth.tokens",
                format!("must be an array of tables, found {}", other.type_str()),
            )),
        }
    }
    let mut channels = BTreeMap::new();
    if let Some(list) = r.table(table, "", "channels") {
        for (name, value) in list {
            let path = format!("channels.{name}");
            let Value::Table(t) = value else {
                r.errors
                    .push(error(&path, "must be a table with at least `kind`"));
                continue;
            };
            let Some(kind) = r.string(t, &path, "kind") else {
                if !t.contains_key("kind") {
                    r.errors.push(error(&join(&path, "kind"), "missing"));
                }
                continue;
            };
            let rate_limit = match r.string(t, &path, "rate_limit") {
                None => None,
                Some(text) => {
                    let rate = parse_rate(&text);
                    if rate.is_none() {
                        r.errors.push(error(
                            &join(&path, "rate_limit"),
                            format!("`{text}` is not a rate such as \"50/s\" or \"600/m\""),
                        ));
                    }
                    rate
                }
            };
            let concurrency = r
                .integer(t, &path, "concurrency", 1, 1024)
                .map_or(4, |c| c as u32);
            let retry = r.retry(t, &path, retry);
            let settings: Table = t
                .iter()
                .filter(|(k, _)| !CHANNEL_KEYS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let validated = match kinds.validate(&kind, &path, &settings) {
                Some(Ok(validated)) => Some(validated),
                Some(Err(problems)) => {
                    r.errors.extend(problems);
                    None
                }
                None => {
                    let known = kinds.kinds();
                    let near = waymark_dsl::diagnostic::closest(&kind, known.iter().copied())
                        .map(|n| format!("; did you mean `{n}`?"))
                        .unwrap_or_default();
                    let list = if known.is_empty() {
                        String::new()
                    } else {
                        format!(" (the kinds are: {})", known.join(", "))
                    };
                    r.errors.push(error(
                        &join(&path, "kind"),
                        format!("unknown channel kind `{kind}`{near}{list}"),
                    ));
                    None
                }
            };
            channels.insert(
                name.clone(),
                Channel {
                    kind,
                    settings,
                    validated,
                    rate_limit,
                    concurrency,
                    retry,
                },
            );
        }
    }
    let listen = listen?;
    Some(Config {
        listen,
        data_dir: PathBuf::from(data_dir),
        scripts: PathBuf::from(scripts),
        flush_interval,
        shutdown_grace,
        user_cache,
        store_cache_bytes,
        store_write_buffer_bytes,
        dedup_filter_bytes,
        tokens,
        channels,
        retry,
        log_format,
        log_level,
        limits,
        http,
        identity,
        consent,
        callbacks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts any kind without reading its settings, for tests of the layers.
    struct AcceptAnyKind;

    impl KindCheck for AcceptAnyKind {
        fn validate(
            &self,
            _: &str,
            _: &str,
            _: &Table,
        ) -> Option<Result<Validated, Vec<ConfigError>>> {
            Some(Ok(Validated::new("any", ())))
        }
    }

    /// `file` as `w.toml`, with the variables `vars`, no flags and any kind.
    #[test]
    fn callback_apps_are_read_with_their_secrets_and_each_problem_named() {
        let file = "[callbacks.wecom.store]\ntoken = \"QDG6eK\"\nencoding_aes_key = \"${AES}\"\ncorp_id = \"wx5823bf96d3bd56c7\"\n\n[callbacks.wechat.oa]\ntoken = \"oatoken\"\nidentifier = \"openid_shop\"\n";
        let c = load_file(
            file,
            &[("AES", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C")],
        )
        .unwrap();
        assert_eq!(c.callbacks.len(), 2);
        let wecom = &c.callbacks[0];
        assert_eq!(
            (wecom.platform, wecom.name.as_str(), wecom.receiver.as_str()),
            (Platform::Wecom, "store", "wx5823bf96d3bd56c7")
        );
        assert_eq!(wecom.identifier, "wecom_external_userid");
        assert!(
            !format!("{wecom:?}").contains("QDG6eK"),
            "secrets stay out of logs"
        );
        let oa = &c.callbacks[1];
        assert_eq!(
            (oa.platform, oa.encoding_aes_key.as_deref()),
            (Platform::Wechat, None)
        );
        assert_eq!(oa.identifier, "openid_shop");

        let bad = "[callbacks.wecom.store]\ntoken = \"has space\"\nencoding_aes_key = \"short\"\n\n[callbacks.wechat.safe]\ntoken = \"t\"\nencoding_aes_key = \"jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C\"\nsecret = 1\n\n[callbacks.wecom.\"a/b\"]\ntoken = \"t\"\n\n[callbacks.dingtalk]\n";
        let errors = load_file(bad, &[]).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for path in [
            "callbacks.wecom.store.token",
            "callbacks.wecom.store.encoding_aes_key",
            "callbacks.wecom.store.corp_id",
            "callbacks.wechat.safe.app_id",
            "callbacks.wechat.safe.secret",
            "callbacks.wecom.a/b",
            "callbacks.dingtalk",
        ] {
            assert!(paths.contains(&path), "{path} not in {errors:?}");
        }
    }

    fn load_file(file: &str, vars: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
        load(
            Some(("w.toml", file)),
            &env(vars),
            &Flags::default(),
            &AcceptAnyKind,
        )
    }

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_embedded_default_is_valid() {
        let c = load(None, &env(&[]), &Flags::default(), &AcceptAnyKind).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(c.data_dir, PathBuf::from("./waymark-data"));
        assert!(c.tokens.is_empty() && c.channels.is_empty());
        assert_eq!(c.user_cache, crate::user_cache::DEFAULT_USERS);
        assert_eq!(c.store_cache_bytes, DEFAULT_STORE_CACHE_BYTES);
        assert_eq!(
            c.store_write_buffer_bytes,
            crate::store::DEFAULT_WRITE_BUFFER_BYTES
        );
        assert_eq!(
            c.dedup_filter_bytes,
            crate::store::DEFAULT_DEDUP_FILTER_BYTES
        );
    }

    #[test]
    fn limits_and_http_timeouts_have_defaults_and_are_checked() {
        let c = load(None, &env(&[]), &Flags::default(), &AcceptAnyKind).unwrap();
        assert_eq!(c.limits, crate::ingest::Limits::default());
        assert_eq!(c.http, Http::default());
        let file = "[limits]\nevent_name_bytes = 64\n[http]\nheader_read_timeout = \"2s\"\nmax_connections = 8\n";
        let c = load_file(file, &[]).unwrap();
        assert_eq!(c.limits.event_name, 64);
        assert_eq!(
            c.http.header_read_timeout,
            std::time::Duration::from_secs(2)
        );
        assert_eq!(c.http.max_connections, 8);
        assert_eq!(c.http.idle_timeout, Http::default().idle_timeout);
        let file = "store_cache_bytes = 1000\nstore_write_buffer_bytes = 1000\ndedup_filter_bytes = 1000\n[limits]\nevent_name_bytes = 0\nuser_state = 5\n[http]\nidle_timeout = \"0s\"\n";
        let errors = load_file(file, &[]).unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert!(paths.contains(&"limits.event_name_bytes"), "{errors:?}");
        assert!(paths.contains(&"limits.user_state"), "{errors:?}");
        assert!(paths.contains(&"http.idle_timeout"), "{errors:?}");
        assert!(paths.contains(&"store_cache_bytes"), "{errors:?}");
        assert!(paths.contains(&"store_write_buffer_bytes"), "{errors:?}");
        assert!(paths.contains(&"dedup_filter_bytes"), "{errors:?}");
    }

    #[test]
    fn layers_apply_in_order_file_env_flags() {
        let file = "listen = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/w\"\n[channels.sms]\nkind = \"log\"\npath = \"./a.jsonl\"\n";
        let e = env(&[
            ("WAYMARK_DATA_DIR", "/tmp/w"),
            ("WAYMARK_CHANNELS__SMS__PATH", "./b.jsonl"),
            ("WAYMARK_LISTEN", "127.0.0.1:9100"),
            ("WAYMARK_USER_CACHE", "500"),
        ]);
        let flags = Flags {
            listen: Some("127.0.0.1:9200".into()),
            ..Flags::default()
        };
        let c = load(Some(("w.toml", file)), &e, &flags, &AcceptAnyKind).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9200");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/w"));
        assert_eq!(
            c.channels["sms"].settings["path"].as_str(),
            Some("./b.jsonl")
        );
        assert_eq!(
            c.retry.max_attempts, 8,
            "defaults survive a file that does not set them"
        );
        assert_eq!(c.user_cache, 500);
    }

    #[test]
    fn secrets_come_from_the_environment_and_missing_ones_are_named() {
        let file =
            "[[auth.tokens]]\ntoken = \"${WAYMARK_TOKEN}\"\nscopes = [\"ingest\", \"read\"]\n";
        let c = load_file(file, &[("WAYMARK_TOKEN", "0123456789abcdef0123")]).unwrap();
        assert_eq!(c.tokens[0].token, "0123456789abcdef0123");
        assert_eq!(c.tokens[0].scopes, vec![Scope::Ingest, Scope::Read]);
        let errors = load_file(file, &[]).unwrap_err();
        assert!(
            errors
                .iter()
                .any(|e| e.path == "auth.tokens[0].token" && e.message.contains("WAYMARK_TOKEN")),
            "{errors:?}"
        );
    }

    #[test]
    fn a_waymark_variable_the_file_names_as_a_secret_is_not_read_as_a_key() {
        let file = "[[auth.tokens]]\ntoken = \"${WAYMARK_ADMIN_TOKEN}\"\nscopes = [\"admin\"]\n";
        let c = load_file(
            file,
            &[
                ("WAYMARK_ADMIN_TOKEN", "0123456789abcdef0123"),
                ("WAYMARK_LISTEN", "127.0.0.1:9300"),
            ],
        )
        .unwrap();
        assert_eq!(c.tokens[0].token, "0123456789abcdef0123");
        assert_eq!(c.listen.to_string(), "127.0.0.1:9300");
        // Not named by the file: still an override, and an unknown key.
        let errors = load_file("", &[("WAYMARK_ADMIN_TOKEN", "0123456789abcdef0123")]).unwrap_err();
        assert!(errors.iter().any(|e| e.path == "admin_token"), "{errors:?}");
    }

    #[test]
    fn an_unset_secret_stops_the_daemon_and_not_check() {
        let file = "[channels.mail]\nkind = \"log\"\npath = \"${WAYMARK_TEST_UNSET_SECRET}\"\n";
        let errors = load_file(file, &[]).unwrap_err();
        assert!(
            errors.iter().any(|e| e.path == "channels.mail.path"
                && e.message == "environment variable `WAYMARK_TEST_UNSET_SECRET` is not set"),
            "{errors:?}"
        );
        let checking = Flags {
            secrets_unset_ok: true,
            ..Flags::default()
        };
        assert!(load(Some(("w.toml", file)), &env(&[]), &checking, &AcceptAnyKind).is_ok());
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let file = "lisen = \"x\"\nflush_interval = \"soon\"\nuser_cache = -1\n[retry]\nmax_attempts = 0\n[channels.sms]\nrate_limit = \"fast\"\n[channels.mail]\nkind = \"pigeon\"\n[log]\nformat = \"xml\"\n";
        struct OnlyLog;
        impl KindCheck for OnlyLog {
            fn validate(
                &self,
                kind: &str,
                _: &str,
                _: &Table,
            ) -> Option<Result<Validated, Vec<ConfigError>>> {
                (kind == "log").then(|| Ok(Validated::new("log", ())))
            }
        }
        let errors = load(
            Some(("w.toml", "[channels.mail]\nkind = \"lgo\"\n")),
            &env(&[]),
            &Flags::default(),
            &crate::channels::Registry::builtin(),
        )
        .unwrap_err();
        assert!(
            errors.iter().any(|e| e.path == "channels.mail.kind"
                && e.message.contains("did you mean `log`?")
                && e.message.contains(
                    "email, log, miniprogram, sms, webhook, wechat, wechat_subscribe, wecom"
                )),
            "{errors:?}"
        );
        let errors = load(
            Some(("w.toml", file)),
            &env(&[]),
            &Flags::default(),
            &OnlyLog,
        )
        .unwrap_err();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        for expected in [
            "lisen",
            "flush_interval",
            "user_cache",
            "retry.max_attempts",
            "channels.sms.kind",
            "channels.mail.kind",
            "log.format",
        ] {
            assert!(
                paths.contains(&expected),
                "{expected} missing from {errors:?}"
            );
        }
        assert!(
            errors
                .iter()
                .any(|e| e.path == "lisen" && e.message.contains("did you mean `listen`"))
        );
    }

    #[test]
    fn a_file_that_is_not_toml_names_the_file_and_position() {
        let errors = load_file("listen = \n", &[]).unwrap_err();
        assert_eq!(errors[0].path, "w.toml");
        assert!(
            errors[0].message.contains("line 1"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn rates_and_durations_read_like_people_write_them() {
        assert_eq!(
            parse_rate("50/s"),
            Some(Rate {
                count: 50,
                per: std::time::Duration::from_secs(1)
            })
        );
        assert_eq!(
            parse_rate("600/m").unwrap().per,
            std::time::Duration::from_secs(60)
        );
        assert_eq!(parse_rate("0/s"), None);
        assert_eq!(
            parse_duration("2ms"),
            Some(std::time::Duration::from_millis(2))
        );
        assert_eq!(
            parse_duration("24h"),
            Some(std::time::Duration::from_secs(86_400))
        );
        assert_eq!(parse_duration("soon"), None);
    }
}
