//! Ingested JSON in Segment's tracking-API shape (`track`, `identify`,
//! `page`, `screen`, `group`, `alias`, `batch`), as `simulate --events`
//! reads it and the HTTP API takes it: a request body decoded (gzip within
//! a size limit, then JSON), then validated and turned into engine inputs.
//! A plain message is read straight from its text (`scan`), whether a
//! line of `simulate`'s events or an item of a request body, giving what
//! the JSON path gives; anything else takes the JSON path.
//! `page` and `screen` become events named `page` and `screen`, `group`
//! sets the `groups` trait, and `alias` is taken but not acted on until
//! identity merge lands. A batch is taken item by item: a refused item
//! loses no other. Pure functions, no I/O, so the fuzz target runs exactly
//! what the daemon runs before its writer. Errors name the field that is
//! wrong.

mod scan;

use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use std::io::Read;
use waymark_core::model::{Event, Input};
use waymark_dsl::value::Value;

/// The largest request body, and the most a gzipped one may inflate to,
/// unless `limits.body_bytes` says otherwise.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// The most messages one `batch` call takes, unless `limits.batch_items`
/// says otherwise.
pub const MAX_BATCH: usize = 10_000;

/// Caps on what one message may carry, so one sender cannot make a
/// user's state (read and written on each of their events) huge. Sizes
/// are bytes; the config keys are under `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// An event's name (`limits.event_name_bytes`).
    pub event_name: usize,
    /// A property or trait name, at any depth (`limits.property_name_bytes`).
    pub property_name: usize,
    /// A message's `properties` or `traits`, as JSON text (`limits.properties_bytes`).
    pub properties: usize,
    /// A user's stored state (`limits.user_state_bytes`): a user past it
    /// gets an `error` journal record for each event instead of the event.
    pub user_state: usize,
    /// A request body, and what a gzipped one may inflate to
    /// (`limits.body_bytes`).
    pub body: usize,
    /// The messages of one `batch` call (`limits.batch_items`).
    pub batch: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            event_name: 256,
            property_name: 256,
            properties: 32 * 1024,
            user_state: 1024 * 1024,
            body: MAX_BODY,
            batch: MAX_BATCH,
        }
    }
}

/// The ingest call a body was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Track,
    Identify,
    Batch,
}

/// Why a body was refused; the HTTP API maps it to a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed: 400.
    Invalid,
    /// Past a size limit: 413.
    TooLarge,
    /// A `Content-Encoding` other than gzip: 415.
    UnsupportedEncoding,
}

/// A refused request body: the field at fault (`body`, `batch[3].userId`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BodyError {
    pub refusal: Refusal,
    pub field: String,
    pub message: String,
}

impl BodyError {
    fn new(refusal: Refusal, field: impl Into<String>, message: impl Into<String>) -> BodyError {
        BodyError {
            refusal,
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A request body as JSON, at most `limit` bytes. `content_encoding` is
/// the header's value: `gzip` (or `x-gzip`) bodies are inflated, to at most
/// `limit` bytes, so a small gzip bomb is refused rather than inflated.
pub fn decode_body(
    content_encoding: Option<&str>,
    body: &[u8],
    limit: usize,
) -> Result<Json, BodyError> {
    parse_body(&inflate(content_encoding, body, limit)?)
}

/// A body's bytes as JSON.
fn parse_body(bytes: &[u8]) -> Result<Json, BodyError> {
    serde_json::from_slice(bytes)
        .map_err(|e| BodyError::new(Refusal::Invalid, "body", format!("not valid JSON: {e}")))
}

/// A request body's bytes, inflated if gzipped, at most `limit` bytes.
fn inflate<'b>(
    content_encoding: Option<&str>,
    body: &'b [u8],
    limit: usize,
) -> Result<std::borrow::Cow<'b, [u8]>, BodyError> {
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    let bytes = if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip")
    {
        std::borrow::Cow::Owned(gunzip(body, limit)?)
    } else if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        std::borrow::Cow::Borrowed(body)
    } else {
        return Err(BodyError::new(
            Refusal::UnsupportedEncoding,
            "content-encoding",
            format!("`{encoding}` is not supported (send gzip or no encoding)"),
        ));
    };
    if bytes.len() > limit {
        return Err(BodyError::new(
            Refusal::TooLarge,
            "body",
            format!("more than {limit} bytes (limits.body_bytes)"),
        ));
    }
    Ok(bytes)
}

/// The messages of a request body sent to `call`: what [`decode_body`]
/// and then [`messages_within`] give, the same in every case, refusals
/// included. A `track` body, and each item of a `batch`, that is a plain
/// message is read straight from the text into an input (as
/// `simulate` reads events); the rest is read as JSON. Reading each body
/// into JSON values first and then into inputs was most of the HTTP
/// thread's work for a batch.
pub fn body_messages(
    content_encoding: Option<&str>,
    body: &[u8],
    call: Call,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Taken, BodyError> {
    let bytes = inflate(content_encoding, body, limits.body)?;
    let general = |bytes: &[u8]| messages_within(&parse_body(bytes)?, call, now, limits);
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return general(&bytes);
    };
    match call {
        Call::Track => match plain_input(text, limits) {
            Some((message, _)) => {
                let mut taken = Taken::default();
                taken.take(0, message);
                Ok(taken)
            }
            None => general(&bytes),
        },
        Call::Identify => general(&bytes),
        Call::Batch => {
            let Some(items) = scan::batch_items(text) else {
                return general(&bytes);
            };
            if items.len() > limits.batch {
                return Err(too_many(limits));
            }
            let mut taken = Taken::default();
            for (index, item) in items.into_iter().enumerate() {
                let read = match plain_input(item, limits) {
                    Some(plain) => Ok(plain),
                    None => {
                        // `batch_items` answers for valid JSON only.
                        let Ok(json) = serde_json::from_str::<Json>(item) else {
                            return general(&bytes);
                        };
                        input_as(&json, Some("track"), Some(now), limits)
                    }
                };
                match read {
                    Ok((message, _)) => taken.take(index, message),
                    Err(e) => taken.refuse(index, e),
                }
            }
            Ok(taken)
        }
    }
}

fn too_many(limits: &Limits) -> BodyError {
    BodyError::new(
        Refusal::TooLarge,
        "batch",
        format!(
            "at most {} messages per batch (limits.batch_items)",
            limits.batch
        ),
    )
}

/// Inflates a gzip body — every member of it, as RFC 1952 allows several
/// — refusing it once it passes `limit` bytes.
fn gunzip(body: &[u8], limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| BodyError::new(Refusal::Invalid, "body", format!("not valid gzip: {e}")))?;
    if out.len() > limit {
        return Err(BodyError::new(
            Refusal::TooLarge,
            "body",
            format!("more than {limit} bytes once decompressed (limits.body_bytes)"),
        ));
    }
    Ok(out)
}

/// One Segment message, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Acted on: a `track`, `page` or `screen` event, or an `identify` or
    /// `group` update of the profile.
    Input(Input),
    /// A message that carries two ids of one person (a `userId` and an
    /// `anonymousId`): the merge of the anonymous profile into the known
    /// one, then the message itself, for the known one.
    Merged(Input, Input),
    /// Taken but not acted on. Never an error; counted and reported as
    /// unsupported.
    Unsupported { kind: &'static str, user: String },
}

/// A batch item taken but not acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// Its place in the batch (0 for a single message).
    pub index: usize,
    /// Its Segment type (`alias`).
    pub kind: &'static str,
    pub user: String,
}

/// A batch item refused: its place, the field at fault
/// (`batch[3].userId`) and why. The other items are taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub index: usize,
    pub field: String,
    pub message: String,
}

/// What a body gave: the inputs to commit, in order, the items taken but
/// not acted on, and the batch items refused.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Taken {
    pub inputs: Vec<Input>,
    pub unsupported: Vec<Unsupported>,
    pub refused: Vec<Refused>,
    /// Merges among `inputs` that came with the message after them (a
    /// message with two ids is one message, two inputs).
    pub merges_before: usize,
}

impl Taken {
    /// How many messages were taken (acted on or not).
    pub fn taken(&self) -> usize {
        self.inputs.len() - self.merges_before + self.unsupported.len()
    }
}

/// The messages of a decoded body sent to `call`: one message for `track`
/// and `identify` (whose `type` defaults to the call's), refused whole if
/// it is bad, or `{"batch": [messages…]}`, taken item by item: a bad item
/// is listed in [`Taken::refused`] and the others are taken. A body that is
/// not of that shape, or holds more than `limits.batch` items, is refused
/// whole. `now` is the time of messages without a `timestamp`.
pub fn messages(json: &Json, call: Call, now: DateTime<Utc>) -> Result<Taken, BodyError> {
    messages_within(json, call, now, &Limits::default())
}

/// [`messages`] with the configured [`Limits`]: a message past one is
/// refused (a batch item by itself) with the field and the limit's key.
pub fn messages_within(
    json: &Json,
    call: Call,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Taken, BodyError> {
    let mut taken = Taken::default();
    let mut single = |kind: &str| {
        if !json.is_object() {
            return Err(BodyError::new(
                Refusal::Invalid,
                "body",
                "must be a JSON object (one message)",
            ));
        }
        let (message, _) =
            input_as(json, Some(kind), Some(now), limits).map_err(|e| invalid("", e))?;
        taken.take(0, message);
        Ok(std::mem::take(&mut taken))
    };
    match call {
        Call::Track => single("track"),
        Call::Identify => single("identify"),
        Call::Batch => {
            let items = match json.get("batch") {
                Some(Json::Array(items)) => items,
                Some(_) => {
                    return Err(BodyError::new(
                        Refusal::Invalid,
                        "batch",
                        "must be an array of messages",
                    ));
                }
                None => {
                    return Err(BodyError::new(
                        Refusal::Invalid,
                        "batch",
                        "missing: the body must be {\"batch\": [messages…]}",
                    ));
                }
            };
            if items.len() > limits.batch {
                return Err(too_many(limits));
            }
            for (index, item) in items.iter().enumerate() {
                match input_as(item, Some("track"), Some(now), limits) {
                    Ok((message, _)) => taken.take(index, message),
                    Err(e) => taken.refuse(index, e),
                }
            }
            Ok(taken)
        }
    }
}

/// A message's refusal as the body's: `prefix` (`batch[3].`) before its field.
fn invalid(prefix: &str, e: IngestError) -> BodyError {
    let field = match e.field.as_str() {
        "(message)" => prefix.trim_end_matches('.').to_string(),
        field => format!("{prefix}{field}"),
    };
    BodyError::new(Refusal::Invalid, field, e.message)
}

impl Taken {
    /// Takes the message at `index` of the body.
    fn take(&mut self, index: usize, message: Message) {
        match message {
            Message::Input(input) => self.inputs.push(input),
            Message::Merged(merge, input) => {
                self.inputs.push(merge);
                self.inputs.push(input);
                self.merges_before += 1;
            }
            Message::Unsupported { kind, user } => {
                self.unsupported.push(Unsupported { index, kind, user })
            }
        }
    }

    /// Refuses the batch item at `index`, the others still taken.
    fn refuse(&mut self, index: usize, e: IngestError) {
        let e = invalid(&format!("batch[{index}]."), e);
        self.refused.push(Refused {
            index,
            field: e.field,
            message: e.message,
        });
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct IngestError {
    /// The JSON field at fault (`timestamp`, `userId`, …).
    pub field: String,
    pub message: String,
}

fn err(field: &str, message: impl Into<String>) -> IngestError {
    IngestError {
        field: field.to_string(),
        message: message.into(),
    }
}

/// An RFC 3339 time, as chrono's `parse_from_rfc3339` reads it. The form
/// SDKs send (`2025-11-01T08:00:00.123Z`: UTC, at most nine fraction
/// digits) is read here directly; anything else is left to chrono.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    utc_time(text.as_bytes())
        .or_else(|| DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc()))
}

/// `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z` (`T` or `t`, `Z` or `z`, a valid
/// date and a second below 60), or `None`.
fn utc_time(b: &[u8]) -> Option<DateTime<Utc>> {
    let digits = |from: usize, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for &c in b.get(from..from + n)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        Some(v)
    };
    let at = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if b.len() < 20
        || !(at(4, b"-") && at(7, b"-") && at(10, b"Tt") && at(13, b":") && at(16, b":"))
    {
        return None;
    }
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let mut end = 19;
    let mut nanos = 0;
    if at(19, b".") {
        let count = b[20..].iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&count) {
            return None;
        }
        nanos = digits(20, count)? * 10u32.pow(9 - count as u32);
        end = 20 + count;
    }
    if end + 1 != b.len() || !at(end, b"Zz") || second >= 60 {
        return None;
    }
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month, day)?;
    let time = chrono::NaiveTime::from_hms_nano_opt(hour, minute, second, nanos)?;
    Some(date.and_time(time).and_utc())
}

/// The time of a message: `timestamp` (or `sentAt`), RFC 3339; `default` when absent.
pub fn timestamp(
    json: &Json,
    default: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, IngestError> {
    match json.get("timestamp").or_else(|| json.get("sentAt")) {
        Some(Json::String(s)) => parse_time(s)
            .ok_or_else(|| err("timestamp", format!("`{s}` is not an RFC 3339 timestamp"))),
        Some(Json::Null) | None => default.ok_or_else(|| err("timestamp", "missing")),
        Some(_) => Err(err("timestamp", "must be a string")),
    }
}

/// One Segment message from its JSON text. A plain `track` or
/// `identify` (a string user id, a `timestamp`, nothing past a limit) is
/// read straight from the text into an input; any other message, and every
/// message with something wrong, is parsed as JSON and read by [`input`],
/// so that what is taken and every refusal is the same either way.
pub fn input_from_text(text: &str) -> Result<(Message, DateTime<Utc>), TextError> {
    if let Some(plain) = plain_input(text, &Limits::default()) {
        return Ok(plain);
    }
    let json: Json = serde_json::from_str(text).map_err(TextError::Json)?;
    input(&json, None).map_err(TextError::Message)
}

/// Why a message's text was not taken.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("not JSON: {0}")]
    Json(serde_json::Error),
    #[error("{0}")]
    Message(IngestError),
}

/// The message in `text`, if it is a plain `track` or `identify` that
/// [`input_as`] would take as it is; `None` for anything else.
fn plain_input(text: &str, limits: &Limits) -> Option<(Message, DateTime<Utc>)> {
    // Properties written back as JSON (what their limit counts) are at
    // most a few times their text (`9e15` is `9000000000000000.0`): a
    // message this short cannot reach the limit.
    if text.len().saturating_mul(8) > limits.properties {
        return None;
    }
    // Anything the direct reader does not read exactly is left to the
    // general path.
    let plain = scan::scan(text)?;
    if plain.user_id.is_some() && plain.anonymous_id.is_some() {
        // Two ids: a merge, which the general path makes.
        return None;
    }
    let user = plain.user_id.or(plain.anonymous_id)?;
    if user.is_empty() || user.len() > 256 {
        return None;
    }
    let at = parse_time(plain.timestamp?)?;
    let message_id = match plain.message_id {
        Some("") => return None,
        id => id.map(str::to_string),
    };
    let record = |value: Option<Value>| match value {
        None => Some(Value::Record(Default::default())),
        Some(v @ Value::Record(_)) => (!has_long_name(&v, limits.property_name)).then_some(v),
        Some(_) => None,
    };
    let kind = match (plain.kind, &plain.event) {
        (Some(kind), _) => kind,
        (None, Some(_)) => "track",
        (None, None) => return None,
    };
    let input = match kind {
        "track" => {
            let name = plain.event?;
            if name.is_empty() || name.len() > limits.event_name {
                return None;
            }
            Input::Track(Event {
                user: user.to_string(),
                name: name.to_string(),
                properties: record(plain.properties)?,
                at,
                message_id,
            })
        }
        "identify" => Input::Identify {
            user: user.to_string(),
            traits: record(plain.traits)?,
            at,
            message_id,
        },
        _ => return None,
    };
    Some((Message::Input(input), at))
}

/// Whether a name anywhere in `value` is longer than `limit` bytes.
fn has_long_name(value: &Value, limit: usize) -> bool {
    match value {
        Value::Record(map) => map
            .iter()
            .any(|(k, v)| k.len() > limit || has_long_name(v, limit)),
        Value::List(items) => items.iter().any(|v| has_long_name(v, limit)),
        _ => false,
    }
}

/// One Segment message, and its time.
pub fn input(
    json: &Json,
    default_time: Option<DateTime<Utc>>,
) -> Result<(Message, DateTime<Utc>), IngestError> {
    input_as(json, None, default_time, &Limits::default())
}

/// The first property name past the limit, as a dotted path, if any.
fn long_name(json: &Json, limit: usize, path: &str) -> Option<String> {
    match json {
        Json::Object(map) => map.iter().find_map(|(k, v)| {
            let here = format!("{path}.{k}");
            if k.len() > limit {
                let short: String = k.chars().take(16).collect();
                let more = if short.len() < k.len() { "…" } else { "" };
                Some(format!("{path}.{short}{more}"))
            } else {
                long_name(v, limit, &here)
            }
        }),
        Json::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| long_name(v, limit, &format!("{path}[{i}]"))),
        _ => None,
    }
}

/// The JSON text length of `json`, counting no further than `limit + 1`.
fn json_len(json: &Json, limit: usize) -> usize {
    struct Counter(usize, usize);
    impl std::io::Write for Counter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            if self.0 > self.1 {
                return Err(std::io::Error::other("past the limit"));
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0, limit);
    let _ = serde_json::to_writer(&mut counter, json);
    counter.0
}

/// The Segment types taken, for messages about the others.
const TYPES: &str = "\"track\", \"identify\", \"page\", \"screen\", \"group\" or \"alias\"";

/// One Segment message as an input; `default_kind` is its type when it
/// has no `type`.
fn input_as(
    json: &Json,
    default_kind: Option<&str>,
    default_time: Option<DateTime<Utc>>,
    limits: &Limits,
) -> Result<(Message, DateTime<Utc>), IngestError> {
    let (message, at) = one_input_as(json, default_kind, default_time, limits)?;
    let Message::Input(input) = message else {
        return Ok((message, at));
    };
    // Segment's identity calls: `alias` merges `previousId` into `userId`;
    // any other message with both a `userId` and an `anonymousId` merges
    // the anonymous profile into the known one.
    let user = input.user().to_string();
    let merge = |from: String, how: &str, message_id: Option<String>| Input::Merge {
        user: user.clone(),
        from,
        how: how.to_string(),
        message_id,
    };
    if let Input::Merge { .. } = input {
        return Ok((Message::Input(input), at));
    }
    let known = json.get("userId").is_some_and(|v| !v.is_null());
    match id_field(json, "anonymousId")? {
        Some(anonymous) if known && anonymous != user => Ok((
            Message::Merged(merge(anonymous, "identify", None), input),
            at,
        )),
        _ => Ok((Message::Input(input), at)),
    }
}

/// An id field (`anonymousId`, `previousId`): a string of 1 to 256 bytes
/// or a number; `None` when absent or null.
fn id_field(json: &Json, field: &str) -> Result<Option<String>, IngestError> {
    match json.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(Some(s.clone())),
        Some(Json::String(_)) => Err(err(field, "must be 1 to 256 bytes of UTF-8")),
        Some(Json::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(err(field, "must be a string")),
    }
}

/// One message as [`input_as`] takes it, before it looks at its second id.
fn one_input_as(
    json: &Json,
    default_kind: Option<&str>,
    default_time: Option<DateTime<Utc>>,
    limits: &Limits,
) -> Result<(Message, DateTime<Utc>), IngestError> {
    let Json::Object(_) = json else {
        return Err(err("(message)", "must be a JSON object"));
    };
    let kind = match (json.get("type"), default_kind) {
        (Some(Json::String(s)), _) => s.as_str(),
        (None, Some(kind)) => kind,
        (None, None) => {
            if json.get("event").is_some() {
                "track"
            } else {
                return Err(err("type", format!("missing ({TYPES})")));
            }
        }
        (Some(_), _) => return Err(err("type", "must be a string")),
    };
    // SDKs send `"userId": null` beside an `anonymousId`, and the reverse.
    let present = |field: &str| json.get(field).filter(|v| !v.is_null());
    let (user_field, user) = match present("userId") {
        Some(v) => ("userId", Some(v)),
        None => ("anonymousId", present("anonymousId")),
    };
    let user = match user {
        Some(Json::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        Some(Json::String(_)) => return Err(err(user_field, "must be 1 to 256 bytes of UTF-8")),
        Some(Json::Number(n)) => n.to_string(),
        Some(_) => return Err(err(user_field, "must be a string")),
        None => return Err(err("userId", "missing (or give an anonymousId)")),
    };
    let at = timestamp(json, default_time)?;
    let message_id = match json.get("messageId") {
        Some(Json::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Json::String(_)) => {
            // Every message sent with "" would be dropped as a duplicate of the first.
            return Err(err("messageId", "must not be empty (leave it out instead)"));
        }
        Some(Json::Null) | None => None,
        Some(_) => return Err(err("messageId", "must be a string")),
    };
    let record = |field: &str| -> Result<Value, IngestError> {
        match json.get(field) {
            Some(v @ Json::Object(_)) => {
                if let Some(name) = long_name(v, limits.property_name, field) {
                    return Err(err(
                        &name,
                        format!(
                            "names are at most {} bytes (limits.property_name_bytes)",
                            limits.property_name
                        ),
                    ));
                }
                if json_len(v, limits.properties) > limits.properties {
                    return Err(err(
                        field,
                        format!(
                            "at most {} bytes as JSON (limits.properties_bytes)",
                            limits.properties
                        ),
                    ));
                }
                Ok(Value::from_json(v))
            }
            Some(Json::Null) | None => Ok(Value::Record(Default::default())),
            Some(_) => Err(err(field, "must be an object")),
        }
    };
    let optional_text = |field: &str| -> Result<Option<String>, IngestError> {
        match json.get(field) {
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(Json::Null) | None => Ok(None),
            Some(_) => Err(err(field, "must be a string")),
        }
    };
    let event = |name: String, properties: Value| {
        Ok((
            Message::Input(Input::Track(Event {
                user: user.clone(),
                name,
                properties,
                at,
                message_id: message_id.clone(),
            })),
            at,
        ))
    };
    match kind {
        "track" => {
            let name = match json.get("event") {
                Some(Json::String(s)) if s.len() > limits.event_name => {
                    return Err(err(
                        "event",
                        format!(
                            "at most {} bytes (limits.event_name_bytes); this one is {}",
                            limits.event_name,
                            s.len()
                        ),
                    ));
                }
                Some(Json::String(s)) if !s.is_empty() => s.clone(),
                Some(_) => return Err(err("event", "must be a non-empty string")),
                None => return Err(err("event", "missing")),
            };
            event(name, record("properties")?)
        }
        // A page or screen view: an event named `page` or `screen` whose
        // `name` and `category` (when sent) join its properties.
        "page" | "screen" => {
            let mut properties = match record("properties")? {
                Value::Record(map) => map,
                _ => Default::default(),
            };
            for field in ["name", "category"] {
                if let Some(text) = optional_text(field)? {
                    properties.insert(field.to_string(), Value::String(text));
                }
            }
            event(kind.to_string(), Value::Record(properties))
        }
        "identify" => Ok((
            Message::Input(Input::Identify {
                user,
                traits: record("traits")?,
                at,
                message_id,
            }),
            at,
        )),
        // The user belongs to a group: `groups.GROUP_ID` holds the group's
        // traits (`{}` without any), merged like every trait.
        "group" => {
            let group = match json.get("groupId") {
                Some(Json::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
                Some(Json::Number(n)) => n.to_string(),
                Some(Json::Null) | None => return Err(err("groupId", "missing")),
                Some(_) => return Err(err("groupId", "must be 1 to 256 bytes of UTF-8")),
            };
            let traits = record("traits")?;
            let groups = Value::Record([(group, traits)].into_iter().collect());
            Ok((
                Message::Input(Input::Identify {
                    user,
                    traits: Value::Record([("groups".to_string(), groups)].into_iter().collect()),
                    at,
                    message_id,
                }),
                at,
            ))
        }
        "alias" => {
            let Some(from) = id_field(json, "previousId")? else {
                return Err(err("previousId", "missing (the id to merge into userId)"));
            };
            if json.get("userId").is_none_or(|v| v.is_null()) {
                return Err(err("userId", "missing (the id previousId is merged into)"));
            }
            Ok((
                Message::Input(Input::Merge {
                    user,
                    from,
                    how: "alias".into(),
                    message_id,
                }),
                at,
            ))
        }
        other => Err(err(
            "type",
            format!("`{other}` is not a Segment type (use {TYPES})"),
        )),
    }
}

#[cfg(test)]
mod tests {

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// A time read directly is the time chrono reads, and what it
        /// does not read directly chrono still reads the same.
        #[test]
        fn a_time_is_read_as_chrono_reads_it(
            date in (0u32..10_000, 0u32..14, 0u32..33),
            clock in (0u32..25, 0u32..61, 0u32..62),
            separators in (0usize..3, 0usize..3),
            fraction in proptest::option::of("[0-9]{0,11}"),
            zone in 0usize..6,
        ) {
            let (year, month, day) = date;
            let (hour, minute, second) = clock;
            let t = ["T", "t", " "][separators.0];
            let dash = ["-", "-", "/"][separators.1];
            let zone = ["Z", "z", "+00:00", "+08:00", "", "Z "][zone];
            let fraction = fraction.map(|f| format!(".{f}")).unwrap_or_default();
            let text = format!(
                "{year:04}{dash}{month:02}{dash}{day:02}{t}{hour:02}:{minute:02}:{second:02}{fraction}{zone}"
            );
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| t.to_utc());
            proptest::prop_assert_eq!(super::parse_time(&text), chrono, "{}", text);
        }
    }
    use super::*;
    use serde_json::json;

    /// What the general path makes of a message's text.
    fn general(text: &str) -> Option<(Message, DateTime<Utc>)> {
        let json: Json = serde_json::from_str(text).ok()?;
        input(&json, None).ok()
    }

    #[test]
    fn plain_messages_read_from_text_are_what_the_general_path_takes() {
        let ts = r#""timestamp":"2025-11-01T00:00:01.814Z""#;
        let taken = [
            format!(
                r#"{{"type":"track","userId":"u1","event":"page_view","properties":{{"path":"/"}},{ts},"messageId":"m1"}}"#
            ),
            format!(
                r#"{{"userId":"u1","event":"order_paid","properties":{{"amount":12.50,"n":3,"big":9e15,"neg":-4,"tiny":1e-7}},{ts}}}"#
            ),
            format!(
                r#"{{"type":"track","userId":null,"anonymousId":"a1","event":"x","properties":null,{ts}}}"#
            ),
            format!(
                r#"{{"type":"identify","userId":"u2","traits":{{"tier":"gold","consent":{{"sms":true}},"tags":["a",1,null]}},{ts}}}"#
            ),
            format!(
                r#"{{"type":"track","userId":"u\u00e9","event":"café","properties":{{"k\"q":"v\n"}},{ts},"context":{{"ip":"1.2.3.4"}}}}"#
            ),
            format!(r#"{{"type":"identify","userId":"u3",{ts}}}"#),
            format!(
                r#"{{"type":"track","userId":"u4","event":"e","properties":{{"a":1,"a":2}},{ts}}}"#
            ),
            // A repeated field: the last one counts, on either path.
            format!(r#"{{"type":"track","userId":"u5","event":"e","userId":"u6",{ts}}}"#),
        ];
        for text in &taken {
            let plain = plain_input(text, &Limits::default());
            // Escapes are left to the general path.
            assert_eq!(plain.is_some(), !text.contains('\\'), "{text}");
            if let Some(plain) = plain {
                assert_eq!(Some(plain), general(text), "{text}");
            }
            let (message, at) = input_from_text(text).unwrap();
            assert_eq!(Some((message, at)), general(text), "{text}");
        }
        // Left to the general path, which refuses them or reads them its way.
        let others = [
            format!(r#"{{"type":"page","userId":"u1","name":"Home",{ts}}}"#),
            format!(r#"{{"type":"track","userId":"","event":"x",{ts}}}"#),
            format!(r#"{{"type":"track","userId":42,"event":"x",{ts}}}"#),
            r#"{"type":"track","userId":"u","event":"x","sentAt":"2025-11-01T00:00:01Z"}"#
                .to_string(),
            format!(r#"{{"type":"track","userId":"u","event":"x","messageId":"",{ts}}}"#),
            format!(
                r#"{{"type":"track","userId":"u","event":"{}",{ts}}}"#,
                "e".repeat(300)
            ),
            format!(
                r#"{{"type":"track","userId":"u","event":"x","properties":{{"{}":1}},{ts}}}"#,
                "p".repeat(300)
            ),
            format!(r#"{{"type":"track","userId":"u","event":"x","properties":[1],{ts}}}"#),
            format!(r#"{{"type":"alias","userId":"u","previousId":"v",{ts}}}"#),
            format!(
                r#"{{"type":"track","userId":"u","event":"x","properties":{{"s":"{}"}},{ts}}}"#,
                "x".repeat(40_000)
            ),
        ];
        for text in &others {
            assert_eq!(plain_input(text, &Limits::default()), None, "{text}");
        }
        assert!(matches!(
            input_from_text(&others[1]),
            Err(TextError::Message(e)) if e.field == "userId"
        ));
        assert!(matches!(
            input_from_text("{not json"),
            Err(TextError::Json(_))
        ));
    }

    use proptest::prelude::*;

    proptest::proptest! {
        #[test]
        fn any_properties_read_from_text_are_what_the_general_path_takes(
            props in proptest::collection::btree_map(
                "[a-z\\u{e9}\"]{1,6}",
                proptest::prop_oneof![
                    proptest::num::i64::ANY.prop_map(|n| n.to_string()),
                    proptest::num::f64::NORMAL.prop_map(|f| f.to_string()),
                    "[ -~\\u{4e00}]{0,8}".prop_map(|s| serde_json::to_string(&s).unwrap()),
                    proptest::strategy::Just("null".to_string()),
                    proptest::strategy::Just("[true,{\"x\":1.5e3}]".to_string()),
                ],
                0..6,
            ),
        ) {
            let fields: Vec<String> = props
                .iter()
                .map(|(k, v)| format!("{}:{v}", serde_json::to_string(k).unwrap()))
                .collect();
            let text = format!(
                r#"{{"type":"track","userId":"u","event":"e","properties":{{{}}},"timestamp":"2025-11-01T00:00:00Z"}}"#,
                fields.join(",")
            );
            let plain = plain_input(&text, &Limits::default());
            // Read directly unless an escape is in it.
            prop_assert_eq!(plain.is_some(), !text.contains('\\'), "{}", text);
            if plain.is_some() {
                prop_assert_eq!(plain, general(&text));
            }
        }
    }

    /// A JSON fragment for a message field: mostly what senders send, some
    /// of what the direct reader leaves alone, some that is not JSON.
    fn fragment() -> impl Strategy<Value = String> {
        let leaf = proptest::prop_oneof![
            Just("\"u1\"".to_string()),
            Just("\"track\"".to_string()),
            Just("\"identify\"".to_string()),
            Just("\"2025-11-01T00:00:01.814Z\"".to_string()),
            Just("\"caf\u{e9} \u{4e2d}\"".to_string()),
            Just(r#""k\"q\n\u00e9\ud83d\ude00""#.to_string()),
            Just("\"bad \u{1} control\"".to_string()),
            Just(r#""\x""#.to_string()),
            Just("\"\"".to_string()),
            Just("0".to_string()),
            Just("-0".to_string()),
            Just("-4".to_string()),
            Just("1950".to_string()),
            Just("007".to_string()),
            Just("12.50".to_string()),
            Just("1e3".to_string()),
            Just("-".to_string()),
            Just("123456789012345678".to_string()),
            Just("12345678901234567890".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            Just("nul".to_string()),
            Just("truex".to_string()),
        ];
        leaf.prop_recursive(3, 12, 4, |inner| {
            proptest::prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4)
                    .prop_map(|items| format!("[{}]", items.join(","))),
                proptest::collection::vec(
                    (
                        proptest::sample::select(vec!["a", "b", "path", "k\\\"q", "a"]),
                        inner
                    ),
                    0..4
                )
                .prop_map(|fields| {
                    let fields: Vec<String> =
                        fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
                Just("{\"a\":1,}".to_string()),
                Just("[1 2]".to_string()),
            ]
        })
    }

    /// Every tricky fragment, alone or nested, in every field of a message
    /// that is otherwise plain: what is read directly is what the general
    /// path takes, and what is not JSON is not read.
    #[test]
    fn each_tricky_value_in_each_field_is_read_as_the_general_path_reads_it() {
        let leaves = [
            r#""u1""#,
            "\"caf\u{e9} \u{4e2d}\"",
            r#""k\"q\n\u00e9\ud83d\ude00""#,
            "\"bad \u{1} control\"",
            "\"tab\tinside\"",
            r#""\x""#,
            r#""\ud800""#,
            r#""""#,
            "0",
            "-0",
            "-4",
            "1950",
            "007",
            "12.50",
            "1e3",
            "1.",
            "-",
            "123456789012345678",
            "12345678901234567890",
            "true",
            "false",
            "null",
            "nul",
            "truex",
            "{}",
            "[]",
            "{\"a\":1,}",
            "[1 2]",
            "{\"a\":1,\"a\":2}",
        ];
        let mut fragments: Vec<String> = leaves.iter().map(|l| l.to_string()).collect();
        for l in leaves {
            fragments.push(format!("{{\"a\":{l}}}"));
            fragments.push(format!("[{l},1]"));
        }
        let base = [
            ("type", "\"track\""),
            ("userId", "\"u7\""),
            ("event", "\"order_paid\""),
            ("properties", "{\"amount\":1950}"),
            ("timestamp", "\"2025-11-01T00:00:18.040Z\""),
            ("messageId", "\"m6\""),
        ];
        let keys = [
            "type",
            "userId",
            "anonymousId",
            "event",
            "properties",
            "traits",
            "timestamp",
            "messageId",
            "context",
        ];
        let (mut direct, mut checked) = (0, 0);
        for key in keys {
            for fragment in &fragments {
                let fields: Vec<String> = base
                    .iter()
                    .filter(|(k, _)| *k != key)
                    .map(|(k, v)| format!("\"{k}\":{v}"))
                    .chain([format!("\"{key}\":{fragment}")])
                    .collect();
                let text = format!("{{{}}}", fields.join(","));
                checked += 1;
                if let Some(plain) = plain_input(&text, &Limits::default()) {
                    assert_eq!(Some(plain), general(&text), "{text}");
                }
                let json = serde_json::from_str::<Json>(&text);
                let read = scan::scan(&text).is_some();
                assert!(!read || json.is_ok(), "not JSON, yet read: {text}");
                // What it reads: any JSON without escapes, but a string
                // field must be a string (or null, but for `type`).
                let value = json.ok().and_then(|j| j.get(key).cloned());
                let string_field = !matches!(key, "properties" | "traits" | "context");
                let expected = value.is_some_and(|v| {
                    !text.contains('\\')
                        && (!string_field || v.is_string() || (v.is_null() && key != "type"))
                });
                assert_eq!(read, expected, "{text}");
                direct += usize::from(read);
            }
        }
        assert!(direct > 0 && direct < checked, "{direct} of {checked}");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Whatever the text, a message read directly is the message the
        /// general path takes from it; whatever the direct reader leaves
        /// alone, the general path decides.
        #[test]
        fn a_message_read_directly_is_what_the_general_path_takes(
            fields in proptest::collection::vec(
                (
                    proptest::sample::select(vec![
                        "type", "userId", "anonymousId", "event", "properties", "traits",
                        "timestamp", "messageId", "context", "user\\u0049d",
                    ]),
                    fragment(),
                ),
                0..9,
            ),
            usual in proptest::bool::weighted(0.7),
            space in proptest::sample::select(vec!["", " ", "\n\t", "\r\n  "]),
            tail in proptest::sample::select(vec!["", "", "", " ", "\n", "x", "}", ","]),
        ) {
            // Often a well-formed track or identify, with the fields above
            // added or in its place.
            let mut all: Vec<(String, String)> = Vec::new();
            if usual {
                all.extend([
                    ("type", "\"track\""),
                    ("userId", "\"u7\""),
                    ("event", "\"order_paid\""),
                    ("properties", "{\"amount\":1950,\"sku\":\"A-1\"}"),
                    ("timestamp", "\"2025-11-01T00:00:18.040Z\""),
                    ("messageId", "\"m6\""),
                ].map(|(k, v)| (k.to_string(), v.to_string())));
                all.truncate(6 - fields.len().min(3));
            }
            all.extend(fields.into_iter().map(|(k, v)| (k.to_string(), v)));
            let body: Vec<String> = all
                .iter()
                .map(|(k, v)| format!("{space}\"{k}\"{space}:{space}{v}{space}"))
                .collect();
            let text = format!("{space}{{{}}}{tail}", body.join(","));
            let plain = plain_input(&text, &Limits::default());
            if plain.is_some() {
                prop_assert_eq!(&plain, &general(&text), "{}", text);
            }
            // The direct reader agrees with the JSON parser field by field.
            if let Some(scanned) = scan::scan(&text) {
                let parsed = serde_json::from_str::<Json>(&text);
                prop_assert!(parsed.is_ok(), "{}", text);
                let json = parsed.unwrap();
                let text_of = |k: &str| json.get(k).and_then(Json::as_str);
                prop_assert_eq!(scanned.kind, text_of("type"));
                prop_assert_eq!(scanned.user_id, text_of("userId"));
                prop_assert_eq!(scanned.event, text_of("event"));
                prop_assert_eq!(scanned.message_id, text_of("messageId"));
                let value_of = |k: &str| json.get(k).filter(|v| !v.is_null()).map(Value::from_json);
                prop_assert_eq!(scanned.properties, value_of("properties"));
                prop_assert_eq!(scanned.traits, value_of("traits"));
            }
        }
    }

    #[test]
    fn event_and_property_names_and_properties_are_capped_naming_the_limit() {
        let now = "2025-11-10T12:00:00Z".parse().unwrap();
        let limits = Limits {
            event_name: 8,
            property_name: 4,
            properties: 64,
            user_state: 1000,
            ..Limits::default()
        };
        let refused = |body: Json, call: Call| {
            messages_within(&body, call, now, &limits).expect_err("refused")
        };
        let e = refused(json!({"userId": "u", "event": "x".repeat(9)}), Call::Track);
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::Invalid, "event"));
        assert!(e.message.contains("limits.event_name_bytes"), "{e}");
        assert!(
            messages_within(
                &json!({"userId": "u", "event": "x".repeat(8)}),
                Call::Track,
                now,
                &limits
            )
            .is_ok()
        );
        let e = refused(
            json!({"userId": "u", "event": "x", "properties": {"cart": {"items": 1}}}),
            Call::Track,
        );
        assert_eq!(e.field, "properties.cart.items");
        assert!(e.message.contains("limits.property_name_bytes"), "{e}");
        // In a batch, the item past a limit is refused by itself.
        let taken = messages_within(
            &json!({"batch": [{"userId": "u", "event": "x"}, {"type": "identify", "userId": "u", "traits": {"bio": "y".repeat(100)}}]}),
            Call::Batch,
            now,
            &limits,
        )
        .unwrap();
        assert_eq!(taken.inputs.len(), 1);
        let e = &taken.refused[0];
        assert_eq!((e.index, e.field.as_str()), (1, "batch[1].traits"));
        assert!(
            e.message
                .contains("at most 64 bytes as JSON (limits.properties_bytes)"),
            "{}",
            e.message
        );
        // The defaults take what Segment's SDKs send and refuse a 4 MiB name.
        let e = messages(
            &json!({"userId": "u", "event": "x".repeat(4 << 20)}),
            Call::Track,
            now,
        )
        .expect_err("refused");
        assert_eq!(e.field, "event");
    }

    #[test]
    fn track_and_identify_in_segment_shape() {
        let (input, at) = input(
            &json!({"type":"track","userId":"u1","event":"cart_updated","properties":{"value":199},"timestamp":"2025-11-10T20:00:00+08:00","messageId":"m1"}),
            None,
        )
        .unwrap();
        assert_eq!(at.to_rfc3339(), "2025-11-10T12:00:00+00:00");
        let Message::Input(Input::Track(e)) = input else {
            panic!("a track")
        };
        assert_eq!(
            (e.user.as_str(), e.name.as_str(), e.message_id.as_deref()),
            ("u1", "cart_updated", Some("m1"))
        );
        let (identify, _) = super::input(&json!({"type":"identify","userId":"u1","traits":{"nickname":"小王"},"timestamp":"2025-11-10T12:00:00Z"}), None).unwrap();
        assert!(matches!(identify, Message::Input(Input::Identify { .. })));
    }

    #[test]
    fn the_user_id_limit_is_stated_in_the_unit_it_counts() {
        // 100 CJK characters are 300 bytes: refused, and the message says
        // bytes, since that is what is counted.
        let id = "王".repeat(100);
        let e = input(
            &json!({"type":"track","userId":id,"event":"x","timestamp":"2025-11-10T12:00:00Z"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "userId");
        assert_eq!(e.message, "must be 1 to 256 bytes of UTF-8");
    }

    #[test]
    fn bad_messages_name_the_field() {
        let e = input(
            &json!({"type":"track","event":"x","timestamp":"2025-11-10T12:00:00Z"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "userId");
        let e = input(
            &json!({"type":"track","userId":"u","event":"x","timestamp":"yesterday"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "timestamp");
        let e = input(
            &json!({"type":"pageview","userId":"u","timestamp":"2025-11-10T12:00:00Z"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "type");
        assert!(e.message.contains("\"page\""), "{e}");
        let e = input(&json!({"type":"track","userId":"u","event":"x","properties":[1],"timestamp":"2025-11-10T12:00:00Z"}), None).unwrap_err();
        assert_eq!(e.field, "properties");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2025-11-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_gzip_bomb_is_refused_once_it_inflates_past_the_body_limit() {
        // Whitespace around a message is valid JSON: exactly the limit passes.
        let mut fits = b"{}".to_vec();
        fits.resize(MAX_BODY, b' ');
        let small = gzip(&fits);
        assert!(small.len() < 64 * 1024, "{}", small.len());
        assert_eq!(decode_body(Some("gzip"), &small, MAX_BODY), Ok(json!({})));
        fits.push(b' ');
        let bomb = gzip(&fits);
        let e = decode_body(Some("gzip"), &bomb, MAX_BODY).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::TooLarge, "body"));
        let e = decode_body(Some("x-gzip"), &gzip(&vec![0; 2 * MAX_BODY]), MAX_BODY).unwrap_err();
        assert_eq!(e.refusal, Refusal::TooLarge);
    }

    #[test]
    fn the_body_limit_is_the_one_configured() {
        let message = br#"{"userId":"u1","event":"x"}"#;
        assert!(decode_body(None, message, message.len()).is_ok());
        let e = decode_body(None, message, message.len() - 1).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::TooLarge, "body"));
        assert!(e.message.contains("limits.body_bytes"), "{}", e.message);
        let e = decode_body(Some("gzip"), &gzip(message), 8).unwrap_err();
        assert_eq!(e.refusal, Refusal::TooLarge);
    }

    #[test]
    fn bodies_decode_by_their_content_encoding() {
        let message = br#"{"userId":"u1","event":"x"}"#;
        assert_eq!(
            decode_body(Some("GZIP"), &gzip(message), MAX_BODY),
            decode_body(None, message, MAX_BODY)
        );
        assert!(decode_body(Some("identity"), message, MAX_BODY).is_ok());
        let e = decode_body(Some("br"), message, MAX_BODY).unwrap_err();
        assert_eq!(
            (e.refusal, e.field.as_str()),
            (Refusal::UnsupportedEncoding, "content-encoding")
        );
        let e = decode_body(Some("gzip"), message, MAX_BODY).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::Invalid, "body"));
        assert!(e.message.contains("gzip"), "{e}");
        // Members after the first are not dropped, and neither is trailing junk.
        let mut two = gzip(br#"{"userId":"u1","#);
        two.extend(gzip(br#""event":"x"}"#));
        assert_eq!(
            decode_body(Some("gzip"), &two, MAX_BODY),
            decode_body(None, message, MAX_BODY)
        );
        let mut junk = gzip(message);
        junk.extend(b"junk");
        assert!(decode_body(Some("gzip"), &junk, MAX_BODY).is_err());
        let e = decode_body(None, &gzip(message), MAX_BODY).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::Invalid, "body"));
        assert!(decode_body(None, b"", MAX_BODY).is_err());
    }

    #[test]
    fn bodies_become_inputs_and_refusals_name_the_field() {
        let track = json!({"userId":"u1","event":"x","messageId":"m1"});
        let inputs = messages(&track, Call::Track, now()).unwrap().inputs;
        assert!(matches!(&inputs[..], [Input::Track(e)] if e.at == now()));
        let inputs = messages(&json!({"userId":"u1"}), Call::Identify, now())
            .unwrap()
            .inputs;
        assert!(matches!(&inputs[..], [Input::Identify { .. }]));
        let field = |json: Json, call| messages(&json, call, now()).unwrap_err().field;
        assert_eq!(field(json!([track]), Call::Track), "body");
        assert_eq!(field(json!("x"), Call::Identify), "body");
        assert_eq!(field(json!([]), Call::Batch), "batch");
        assert_eq!(field(json!({"batch": {}}), Call::Batch), "batch");
        let refused = |json: Json| -> Vec<(usize, String)> {
            let taken = messages(&json, Call::Batch, now()).unwrap();
            taken
                .refused
                .into_iter()
                .map(|r| (r.index, r.field))
                .collect()
        };
        assert_eq!(
            refused(json!({"batch": [track, {"event":"x"}]})),
            [(1, "batch[1].userId".to_string())]
        );
        assert_eq!(
            refused(json!({"batch": [1]})),
            [(0, "batch[0]".to_string())]
        );
        assert_eq!(
            field(
                json!({"userId":"u","event":"x","messageId":""}),
                Call::Track
            ),
            "messageId"
        );
        let many = json!({"batch": vec![track.clone(); MAX_BATCH + 1]});
        let e = messages(&many, Call::Batch, now()).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::TooLarge, "batch"));
        let batch = json!({"batch": [track, {"type":"identify","userId":"u2"}]});
        assert_eq!(
            messages(&batch, Call::Batch, now()).unwrap().inputs.len(),
            2
        );
    }

    /// Item 9: a batch of every Segment type is taken item by item; a bad
    /// item is refused by index and loses none of the others. `alias`
    /// merges its previous id into its user.
    #[test]
    fn every_segment_type_is_taken_and_a_bad_item_loses_no_other() {
        let batch = json!({"batch": [
            {"type":"track","userId":"u1","event":"Order Completed","properties":{"revenue":10}},
            {"type":"page","userId":"u1","name":"Pricing","category":"Docs","properties":{"url":"/pricing","name":"ignored"}},
            {"type":"screen","userId":null,"anonymousId":"a1","name":"Home"},
            {"type":"group","userId":"u1","groupId":"acme","traits":{"plan":"pro"}},
            {"type":"alias","userId":"u1","previousId":"a1"},
            {"type":"page","timestamp":"yesterday","userId":"u1"},
            {"type":"group","userId":"u1"},
            {"type":"identify","userId":"u1","traits":{"vip":true}},
        ]});
        let taken = messages(&batch, Call::Batch, now()).unwrap();
        let refused: Vec<(usize, &str)> = taken
            .refused
            .iter()
            .map(|r| (r.index, r.field.as_str()))
            .collect();
        assert_eq!(
            refused,
            [(5, "batch[5].timestamp"), (6, "batch[6].groupId")]
        );
        assert!(taken.unsupported.is_empty());
        assert_eq!(taken.taken(), 6);
        let [
            Input::Track(order),
            Input::Track(page),
            Input::Track(screen),
            Input::Identify { traits, .. },
            Input::Merge {
                user: alias_user,
                from: alias_from,
                how,
                ..
            },
            Input::Identify { .. },
        ] = &taken.inputs[..]
        else {
            panic!("{:?}", taken.inputs)
        };
        assert_eq!(
            (alias_user.as_str(), alias_from.as_str(), how.as_str()),
            ("u1", "a1", "alias")
        );
        assert_eq!(order.name, "Order Completed");
        assert_eq!(page.name, "page");
        assert_eq!(
            page.properties.to_json(),
            json!({"name": "Pricing", "category": "Docs", "url": "/pricing"})
        );
        assert_eq!(
            (screen.name.as_str(), screen.user.as_str()),
            ("screen", "a1")
        );
        assert_eq!(
            traits.to_json(),
            json!({"groups": {"acme": {"plan": "pro"}}})
        );
    }

    #[test]
    fn two_ids_make_a_merge_before_the_message_and_alias_needs_both() {
        let both =
            json!({"type":"track","userId":"u1","anonymousId":"a1","event":"x","messageId":"m"});
        let batch = |m: &Json| messages(&json!({"batch": [m]}), Call::Batch, now()).unwrap();
        let taken = batch(&both);
        assert_eq!(taken.taken(), 1, "a message with two ids is one message");
        let [
            Input::Merge {
                user,
                from,
                how,
                message_id,
            },
            Input::Track(e),
        ] = &taken.inputs[..]
        else {
            panic!("{:?}", taken.inputs)
        };
        assert_eq!(
            (user.as_str(), from.as_str(), how.as_str()),
            ("u1", "a1", "identify")
        );
        assert_eq!(message_id, &None, "the message's id is the event's");
        assert_eq!(
            (e.user.as_str(), e.message_id.as_deref()),
            ("u1", Some("m"))
        );
        // One id, or the same id twice: no merge.
        for one in [
            json!({"type":"track","userId":"u1","event":"x"}),
            json!({"type":"track","userId":null,"anonymousId":"a1","event":"x"}),
            json!({"type":"identify","userId":"u1","anonymousId":"u1"}),
        ] {
            let taken = batch(&one);
            assert_eq!(taken.inputs.len(), 1, "{one}");
        }
        let field = |json: Json| batch(&json).refused[0].field.clone();
        assert_eq!(
            field(json!({"type":"alias","userId":"u1"})),
            "batch[0].previousId"
        );
        assert_eq!(
            field(json!({"type":"alias","userId":"u1","previousId":""})),
            "batch[0].previousId"
        );
        assert_eq!(
            field(json!({"type":"alias","anonymousId":"a","previousId":"p"})),
            "batch[0].userId"
        );
        assert_eq!(
            field(json!({"type":"track","userId":"u1","anonymousId":[],"event":"x"})),
            "batch[0].anonymousId"
        );
    }

    /// What the daemon did before [`body_messages`]: the body as JSON,
    /// then its messages.
    fn through_json(
        encoding: Option<&str>,
        body: &[u8],
        call: Call,
        limits: &Limits,
    ) -> Result<Taken, BodyError> {
        messages_within(
            &decode_body(encoding, body, limits.body)?,
            call,
            now(),
            limits,
        )
    }

    /// Bodies that read straight from their text, that read as JSON, and
    /// that are refused, whole or item by item.
    const BODIES: &[&str] = &[
        r#"{"batch":[{"type":"track","userId":"u1","event":"order_paid","properties":{"amount":12.5,"sku":"A-1","tags":["x",{"y":null}]},"timestamp":"2025-11-10T08:00:00.123Z","messageId":"m1"},{"type":"identify","userId":"u2","traits":{"tier":"gold"},"timestamp":"2025-11-10T08:00:01Z"}]}"#,
        r#" { "context" : {"library": {"name": "analytics-node"}}, "batch" : [ {"event":"a","userId":"u","timestamp":"2025-11-10T08:00:00Z"} ] , "sentAt":"2025-11-10T08:00:02Z", "writeKey": "k" } "#,
        r#"{"batch":[]}"#,
        r#"{"batch":[{"event":"a","userId":"u"}]}"#,
        r#"{"batch":[{"event":"a","userId":"u","sentAt":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"type":"track","userId":"u1","anonymousId":"a1","event":"x","timestamp":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"type":"alias","userId":"u1","previousId":"a1"},{"type":"page","userId":"u","name":"Home","properties":{"path":"/"}},{"type":"screen","anonymousId":"a","name":"S"},{"type":"group","userId":"u","groupId":"g","traits":{"n":1}}]}"#,
        r#"{"batch":[{"type":"track","userId":"u\u00e9","event":"caf\u00e9","properties":{"k\"q":"line\nbreak"},"timestamp":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"type":"track","userId":"u","event":"x","properties":{"s":"\ud83d\ude00"},"timestamp":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"type":"track","userId":"u","event":"x","properties":{"s":"\ud83d"},"timestamp":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"type":"track","userId":"u","event":"x","properties":{"big":123456789012345678901234567890,"neg":-0,"f":1e400,"e":2E-3},"timestamp":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"type":"track","userId":"","event":"x"},{"type":"track","userId":7,"event":"x","timestamp":"2025-11-10T08:00:00Z"},{"type":"nope","userId":"u"},{"type":null,"userId":"u","event":"x"},{"userId":"u","timestamp":"yesterday","event":"x"},[],3,"s",null]}"#,
        r#"{"batch":[{"type":"track","userId":"u","event":"x","properties":[1],"timestamp":"2025-11-10T08:00:00Z"},{"type":"track","userId":"u","event":"x","properties":null,"timestamp":"2025-11-10T08:00:00Z"},{"type":"track","userId":"u","event":"x","messageId":"","timestamp":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"type":"track","userId":"u","userId":"v","event":"x","event":"y","timestamp":"2025-11-10T08:00:00Z"}]}"#,
        r#"{"batch":[{"event":"a","userId":"u","timestamp":"2025-11-10T08:00:00Z"}],"batch":[]}"#,
        r#"{"batch":{"event":"a"}}"#,
        r#"{"notbatch":[]}"#,
        r#"[{"batch":[]}]"#,
        r#"{"batch":[{"event":"a","userId":"u","timestamp":"2025-11-10T08:00:00Z",}]}"#,
        r#"{"batch":[{"event":"a","userId":"u","timestamp":"2025-11-10T08:00:00Z"}]} trailing"#,
        r#"{"batch":[{"event":"a","userId":"u","timestamp":"2025-11-10T08:00:00Z"}]"#,
        r#"{"type":"track","userId":"u1","event":"order_paid","properties":{"amount":3},"timestamp":"2025-11-10T08:00:00Z"}"#,
        r#"{"userId":"u1","event":"order_paid"}"#,
        r#"{"type":"identify","userId":"u1","traits":{"tier":"gold"},"timestamp":"2025-11-10T08:00:00Z"}"#,
        r#"{"userId":"u1","traits":{"tier":"gold"},"timestamp":"2025-11-10T08:00:00Z"}"#,
        r#"{"userId":"u1","anonymousId":"a","event":"x","timestamp":"2025-11-10T08:00:00Z"}"#,
        r#""track""#,
        "",
    ];

    #[test]
    fn a_body_read_from_its_text_gives_what_reading_it_as_json_gives() {
        let tight = Limits {
            event_name: 4,
            property_name: 3,
            properties: 64,
            batch: 2,
            ..Limits::default()
        };
        let long_name = format!(
            r#"{{"batch":[{{"event":"{}","userId":"u","properties":{{"{}":1}},"timestamp":"2025-11-10T08:00:00Z"}}]}}"#,
            "e".repeat(300),
            "p".repeat(300)
        );
        let mut compared = 0;
        for body in BODIES.iter().copied().chain([long_name.as_str()]) {
            // Every prefix too: bodies cut short anywhere.
            for end in (0..=body.len()).filter(|&i| body.is_char_boundary(i)) {
                let cut = &body.as_bytes()[..end];
                for call in [Call::Batch, Call::Track, Call::Identify] {
                    for limits in [Limits::default(), tight] {
                        let expected = through_json(None, cut, call, &limits);
                        let direct = body_messages(None, cut, call, now(), &limits);
                        assert_eq!(
                            direct,
                            expected,
                            "{call:?} {:?}",
                            String::from_utf8_lossy(cut)
                        );
                        compared += 1;
                    }
                }
            }
            let zipped = gzip(body.as_bytes());
            assert_eq!(
                body_messages(
                    Some("gzip"),
                    &zipped,
                    Call::Batch,
                    now(),
                    &Limits::default()
                ),
                through_json(Some("gzip"), &zipped, Call::Batch, &Limits::default()),
            );
        }
        assert!(compared > 10_000, "{compared}");
        // Not UTF-8, an encoding not taken, a body past the limit.
        let latin1 = b"{\"batch\":[{\"event\":\"caf\xe9\",\"userId\":\"u\"}]}";
        let small = Limits {
            body: 10,
            ..Limits::default()
        };
        for (encoding, body, limits) in [
            (None, &latin1[..], Limits::default()),
            (Some("br"), BODIES[0].as_bytes(), Limits::default()),
            (None, BODIES[0].as_bytes(), small),
        ] {
            let expected = through_json(encoding, body, Call::Batch, &limits);
            assert!(expected.is_err());
            assert_eq!(
                body_messages(encoding, body, Call::Batch, now(), &limits),
                expected
            );
        }
    }

    #[test]
    fn a_plain_batch_is_read_from_its_text_into_inputs() {
        let taken = body_messages(
            None,
            BODIES[0].as_bytes(),
            Call::Batch,
            now(),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(taken.inputs.len(), 2);
        let Input::Track(e) = &taken.inputs[0] else {
            panic!("{:?}", taken.inputs[0])
        };
        assert_eq!((e.user.as_str(), e.name.as_str()), ("u1", "order_paid"));
        assert_eq!(e.message_id.as_deref(), Some("m1"));
        assert_eq!(
            e.properties,
            Value::from_json(
                &serde_json::json!({"amount": 12.5, "sku": "A-1", "tags": ["x", {"y": null}]})
            )
        );
        assert!(matches!(&taken.inputs[1], Input::Identify { user, .. } if user == "u2"));
        // The direct reader takes it: its items' text, each a plain message.
        let items = scan::batch_items(BODIES[0]).unwrap();
        assert_eq!(items.len(), 2);
        assert!(
            items
                .iter()
                .all(|item| plain_input(item, &Limits::default()).is_some())
        );
        assert_eq!(scan::batch_items(BODIES[14]), None, "batch named twice");
    }
}
