//! Ingested JSON in Segment's tracking-API shape (`track`, `identify`), as
//! `simulate --events` reads it and the HTTP API takes it. Errors name the
//! field that is wrong.

use crate::model::{Event, Input};
use chrono::{DateTime, Utc};
use serde_json::Value as Json;
use waymark_dsl::value::Value;

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
    let Json::Object(_) = json else {
        return Err(err("(message)", "must be a JSON object"));
    };
    let kind = match json.get("type") {
        Some(Json::String(s)) => s.as_str(),
        None => {
            if json.get("event").is_some() {
                "track"
            } else {
                return Err(err("type", "missing (\"track\" or \"identify\")"));
            }
        }
        Some(_) => return Err(err("type", "must be a string")),
    };
    let user = match json.get("userId").or_else(|| json.get("anonymousId")) {
        Some(Json::String(s)) if !s.is_empty() && s.len() <= 256 => s.clone(),
        Some(Json::String(_)) => return Err(err("userId", "must be 1 to 256 characters")),
        Some(Json::Number(n)) => n.to_string(),
        Some(_) => return Err(err("userId", "must be a string")),
        None => return Err(err("userId", "missing")),
    };
    let at = timestamp(json, default_time)?;
    let message_id = match json.get("messageId") {
        Some(Json::String(s)) => Some(s.clone()),
        Some(Json::Null) | None => None,
        Some(_) => return Err(err("messageId", "must be a string")),
    };
    let record = |field: &str| -> Result<Value, IngestError> {
        match json.get(field) {
            Some(v @ Json::Object(_)) => Ok(Value::from_json(v)),
            Some(Json::Null) | None => Ok(Value::Record(Default::default())),
            Some(_) => Err(err(field, "must be an object")),
        }
    };
    match kind {
        "track" => {
            let name = match json.get("event") {
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
}
