//! Ingested JSON in Segment's tracking-API shape (`track`, `identify`,
//! `batch`), as `simulate --events` reads it and the HTTP API takes it:
//! a request body decoded (gzip within a size limit, then JSON), then
//! validated and turned into engine inputs. Pure functions, no I/O, so
//! the fuzz target runs exactly what the daemon runs before its writer.
//! Errors name the field that is wrong.

use crate::model::{Event, Input};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use std::io::Read;
use waymark_dsl::value::Value;

/// The largest request body, and the most a gzipped one may inflate to.
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// The most messages one `batch` call takes.
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
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            event_name: 256,
            property_name: 256,
            properties: 32 * 1024,
            user_state: 1024 * 1024,
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

/// A request body as JSON. `content_encoding` is the header's value:
/// `gzip` (or `x-gzip`) bodies are inflated, to at most [`MAX_BODY`]
/// bytes, so a small gzip bomb is refused rather than inflated.
pub fn decode_body(content_encoding: Option<&str>, body: &[u8]) -> Result<Json, BodyError> {
    let encoding = content_encoding.map(str::trim).unwrap_or("");
    let inflated;
    let bytes = if encoding.eq_ignore_ascii_case("gzip") || encoding.eq_ignore_ascii_case("x-gzip")
    {
        inflated = gunzip(body, MAX_BODY)?;
        &inflated[..]
    } else if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        body
    } else {
        return Err(BodyError::new(
            Refusal::UnsupportedEncoding,
            "content-encoding",
            format!("`{encoding}` is not supported (send gzip or no encoding)"),
        ));
    };
    if bytes.len() > MAX_BODY {
        return Err(BodyError::new(
            Refusal::TooLarge,
            "body",
            format!("more than {MAX_BODY} bytes"),
        ));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| BodyError::new(Refusal::Invalid, "body", format!("not valid JSON: {e}")))
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
            format!("more than {limit} bytes once decompressed"),
        ));
    }
    Ok(out)
}

/// The inputs of a decoded body sent to `call`: one message for `track`
/// and `identify` (whose `type` defaults to the call's), or
/// `{"batch": [messages…]}`, every one checked before any is returned,
/// so a batch is taken whole or not at all. `now` is the time of messages
/// without a `timestamp`.
pub fn messages(json: &Json, call: Call, now: DateTime<Utc>) -> Result<Vec<Input>, BodyError> {
    messages_within(json, call, now, &Limits::default())
}

/// [`messages`] with the configured [`Limits`].
pub fn messages_within(
    json: &Json,
    call: Call,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Vec<Input>, BodyError> {
    let invalid = |prefix: &str, e: IngestError| {
        let field = match e.field.as_str() {
            "(message)" => prefix.trim_end_matches('.').to_string(),
            field => format!("{prefix}{field}"),
        };
        BodyError::new(Refusal::Invalid, field, e.message)
    };
    let single = |kind: &str| {
        if !json.is_object() {
            return Err(BodyError::new(
                Refusal::Invalid,
                "body",
                "must be a JSON object (one message)",
            ));
        }
        input_as(json, Some(kind), Some(now), limits)
            .map(|(input, _)| vec![input])
            .map_err(|e| invalid("", e))
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
            if items.len() > MAX_BATCH {
                return Err(BodyError::new(
                    Refusal::TooLarge,
                    "batch",
                    format!("at most {MAX_BATCH} messages per batch"),
                ));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    input_as(item, Some("track"), Some(now), limits)
                        .map(|(input, _)| input)
                        .map_err(|e| invalid(&format!("batch[{i}]."), e))
                })
                .collect()
        }
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

/// The time of a message: `timestamp` (or `sentAt`), RFC 3339; `default` when absent.
pub fn timestamp(
    json: &Json,
    default: Option<DateTime<Utc>>,
) -> Result<DateTime<Utc>, IngestError> {
    match json.get("timestamp").or_else(|| json.get("sentAt")) {
        Some(Json::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.to_utc())
            .map_err(|_| err("timestamp", format!("`{s}` is not an RFC 3339 timestamp"))),
        Some(Json::Null) | None => default.ok_or_else(|| err("timestamp", "missing")),
        Some(_) => Err(err("timestamp", "must be a string")),
    }
}

/// One Segment message as an input.
pub fn input(
    json: &Json,
    default_time: Option<DateTime<Utc>>,
) -> Result<(Input, DateTime<Utc>), IngestError> {
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

/// One Segment message as an input; `default_kind` is its type when it
/// has no `type`.
fn input_as(
    json: &Json,
    default_kind: Option<&str>,
    default_time: Option<DateTime<Utc>>,
    limits: &Limits,
) -> Result<(Input, DateTime<Utc>), IngestError> {
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
                return Err(err("type", "missing (\"track\" or \"identify\")"));
            }
        }
        (Some(_), _) => return Err(err("type", "must be a string")),
    };
    let user = match json.get("userId").or_else(|| json.get("anonymousId")) {
        Some(Json::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        Some(Json::String(_)) => return Err(err("userId", "must be 1 to 256 bytes of UTF-8")),
        Some(Json::Number(n)) => n.to_string(),
        Some(_) => return Err(err("userId", "must be a string")),
        None => return Err(err("userId", "missing")),
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
            let properties = record("properties")?;
            Ok((
                Input::Track(Event {
                    user,
                    name,
                    properties,
                    at,
                    message_id,
                }),
                at,
            ))
        }
        "identify" => Ok((
            Input::Identify {
                user,
                traits: record("traits")?,
                at,
                message_id,
            },
            at,
        )),
        other => Err(err(
            "type",
            format!("`{other}` is not supported (use \"track\" or \"identify\")"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn event_and_property_names_and_properties_are_capped_naming_the_limit() {
        let now = chrono::Utc::now();
        let limits = Limits {
            event_name: 8,
            property_name: 4,
            properties: 64,
            user_state: 1000,
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
        let e = refused(
            json!({"batch": [{"userId": "u", "event": "x"}, {"type": "identify", "userId": "u", "traits": {"bio": "y".repeat(100)}}]}),
            Call::Batch,
        );
        assert_eq!(e.field, "batch[1].traits");
        assert!(
            e.message
                .contains("at most 64 bytes as JSON (limits.properties_bytes)"),
            "{e}"
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
        let Input::Track(e) = input else {
            panic!("a track")
        };
        assert_eq!(
            (e.user.as_str(), e.name.as_str(), e.message_id.as_deref()),
            ("u1", "cart_updated", Some("m1"))
        );
        let (identify, _) = super::input(&json!({"type":"identify","userId":"u1","traits":{"nickname":"小王"},"timestamp":"2025-11-10T12:00:00Z"}), None).unwrap();
        assert!(matches!(identify, Input::Identify { .. }));
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
            &json!({"type":"page","userId":"u","timestamp":"2025-11-10T12:00:00Z"}),
            None,
        )
        .unwrap_err();
        assert_eq!(e.field, "type");
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
        assert_eq!(decode_body(Some("gzip"), &small), Ok(json!({})));
        fits.push(b' ');
        let bomb = gzip(&fits);
        let e = decode_body(Some("gzip"), &bomb).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::TooLarge, "body"));
        let e = decode_body(Some("x-gzip"), &gzip(&vec![0; 2 * MAX_BODY])).unwrap_err();
        assert_eq!(e.refusal, Refusal::TooLarge);
    }

    #[test]
    fn bodies_decode_by_their_content_encoding() {
        let message = br#"{"userId":"u1","event":"x"}"#;
        assert_eq!(
            decode_body(Some("GZIP"), &gzip(message)),
            decode_body(None, message)
        );
        assert!(decode_body(Some("identity"), message).is_ok());
        let e = decode_body(Some("br"), message).unwrap_err();
        assert_eq!(
            (e.refusal, e.field.as_str()),
            (Refusal::UnsupportedEncoding, "content-encoding")
        );
        let e = decode_body(Some("gzip"), message).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::Invalid, "body"));
        assert!(e.message.contains("gzip"), "{e}");
        // Members after the first are not dropped, and neither is trailing junk.
        let mut two = gzip(br#"{"userId":"u1","#);
        two.extend(gzip(br#""event":"x"}"#));
        assert_eq!(decode_body(Some("gzip"), &two), decode_body(None, message));
        let mut junk = gzip(message);
        junk.extend(b"junk");
        assert!(decode_body(Some("gzip"), &junk).is_err());
        let e = decode_body(None, &gzip(message)).unwrap_err();
        assert_eq!((e.refusal, e.field.as_str()), (Refusal::Invalid, "body"));
        assert!(decode_body(None, b"").is_err());
    }

    #[test]
    fn bodies_become_inputs_and_refusals_name_the_field() {
        let track = json!({"userId":"u1","event":"x","messageId":"m1"});
        let inputs = messages(&track, Call::Track, now()).unwrap();
        assert!(matches!(&inputs[..], [Input::Track(e)] if e.at == now()));
        let inputs = messages(&json!({"userId":"u1"}), Call::Identify, now()).unwrap();
        assert!(matches!(&inputs[..], [Input::Identify { .. }]));
        let field = |json: Json, call| messages(&json, call, now()).unwrap_err().field;
        assert_eq!(field(json!([track]), Call::Track), "body");
        assert_eq!(field(json!("x"), Call::Identify), "body");
        assert_eq!(field(json!([]), Call::Batch), "batch");
        assert_eq!(field(json!({"batch": {}}), Call::Batch), "batch");
        assert_eq!(
            field(json!({"batch": [track, {"event":"x"}]}), Call::Batch),
            "batch[1].userId"
        );
        assert_eq!(field(json!({"batch": [1]}), Call::Batch), "batch[0]");
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
        assert_eq!(messages(&batch, Call::Batch, now()).unwrap().len(), 2);
    }
}
