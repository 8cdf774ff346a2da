//! The consent routes: record a change of a user's consent (an API call
//! with its evidence, taken like an ingested message and answered once
//! durable), read one person's ledger, and export every change in a time
//! range for an auditor, as JSON or CSV.

use super::{
    ApiError, AppState, Endpoint, Param, QueryParams, Scope, authorize, json_body, read_store,
    submit,
};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{Value as Json, json};
use waymark_core::consent::{ConsentChange, MARKETING, SUBSCRIBE_MESSAGE};
use waymark_core::journal::{Kind, Record};
use waymark_core::model::Input;

/// The most entries one export answers; `next` pages on.
const EXPORT_PAGE: u64 = 100_000;

/// `POST /v1/users/{id}/consent`: `{"channel", "granted", "purpose"?,
/// "evidence"?, "messageId"?}`.
pub(super) async fn set(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Ingest)?;
    check_id(&id)?;
    let body = json_body(&state, &headers, body)?;
    let (channel, change) = change_of(&body, state.evidence_bytes, &actor)?;
    let input = Input::Consent {
        user: id.clone(),
        channel: channel.clone(),
        change: change.clone(),
        at: state.clock.now(),
    };
    submit(&state, vec![input]).await?;
    let mut answer = json!({
        "success": true,
        "user": id,
        "channel": channel,
        "granted": change.granted,
    });
    if let Some(template) = &change.template {
        answer["template"] = json!(template);
    }
    Ok(axum::Json(answer).into_response())
}

fn check_id(id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 256 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "id",
            "must be 1 to 256 bytes of UTF-8",
        ));
    }
    Ok(())
}

/// The most grants one call adds.
const MAX_GRANTS: u64 = 1000;

/// The change a body asks for, every field checked: consent on a channel,
/// or, with `template`, grants of a one-time subscribe message.
fn change_of(
    body: &Json,
    evidence_bytes: usize,
    actor: &str,
) -> Result<(Option<String>, ConsentChange), ApiError> {
    let bad = |field: &str, message: String| ApiError::new(StatusCode::BAD_REQUEST, field, message);
    let Json::Object(fields) = body else {
        return Err(bad("body", "must be a JSON object".into()));
    };
    const KNOWN: &[&str] = &[
        "channel",
        "granted",
        "template",
        "grants",
        "purpose",
        "evidence",
        "messageId",
    ];
    if let Some(unknown) = fields.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(bad(
            unknown,
            format!("unknown field (this body takes: {})", KNOWN.join(", ")),
        ));
    }
    let text = |field: &str, limit: usize, key: &str| match fields.get(field) {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) if s.is_empty() => Err(bad(field, "must not be empty".into())),
        Some(Json::String(s)) if s.len() <= limit => Ok(Some(s.clone())),
        Some(Json::String(_)) => Err(bad(field, format!("is past {limit} bytes ({key})"))),
        Some(_) => Err(bad(field, "must be a string".into())),
    };
    let template = text("template", 256, "at most 256 bytes")?;
    let channel = text("channel", 256, "at most 256 bytes")?;
    if channel.is_none() && template.is_none() {
        return Err(bad(
            "channel",
            "is required (the channel, such as \"sms\"), or `template` for grants of a subscribe message".into(),
        ));
    }
    let granted = match fields.get("granted") {
        Some(Json::Bool(g)) => *g,
        Some(_) => return Err(bad("granted", "must be true or false".into())),
        None => {
            return Err(bad(
                "granted",
                "is required (true: given, false: withdrawn)".into(),
            ));
        }
    };
    let purpose = if template.is_some() {
        SUBSCRIBE_MESSAGE
    } else {
        MARKETING
    };
    match fields.get("purpose") {
        None => {}
        Some(Json::String(p)) if p == purpose => {}
        Some(_) => {
            return Err(bad(
                "purpose",
                format!(
                    "must be \"{purpose}\": consent on a channel is to its marketing messages, grants of a template to one subscribe message each"
                ),
            ));
        }
    }
    let grants = match (fields.get("grants"), &template, granted) {
        (None, _, _) => None,
        (Some(_), None, _) => {
            return Err(bad(
                "grants",
                "is for grants of a template: give `template` too".into(),
            ));
        }
        (Some(_), Some(_), false) => {
            return Err(bad(
                "grants",
                "withdrawing takes every grant of the template: leave `grants` out".into(),
            ));
        }
        (Some(n), Some(_), true) => match n.as_u64() {
            Some(n @ 1..=MAX_GRANTS) => Some(n as u32),
            _ => {
                return Err(bad(
                    "grants",
                    format!("must be a whole number from 1 to {MAX_GRANTS}"),
                ));
            }
        },
    };
    let evidence = text("evidence", evidence_bytes, "consent.evidence_bytes")?;
    let message_id = text("messageId", 256, "at most 256 bytes")?;
    let change = match &template {
        Some(t) => ConsentChange {
            grants,
            ..ConsentChange::grants(t, granted, "api")
        },
        None => ConsentChange::new(granted, "api"),
    };
    Ok((
        channel,
        ConsentChange {
            evidence,
            message_id,
            by: Some(actor.to_string()),
            ..change
        },
    ))
}

/// Whether the answer is CSV (`format=csv`) rather than JSON.
fn csv_asked(query: &QueryParams) -> Result<bool, ApiError> {
    match query.get("format") {
        None | Some("json") => Ok(false),
        Some("csv") => Ok(true),
        Some(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "query.format",
            "must be json or csv",
        )),
    }
}

/// `GET /v1/users/{id}/consent`: the person's consent now and every
/// change of it, oldest first (with those of ids merged into them).
pub(super) async fn user_ledger(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
    query: QueryParams,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let csv = csv_asked(query.allow(Endpoint::UserConsent)?)?;
    let key = id.clone();
    let found = read_store(&state, move |store| {
        let Some((key, user)) = store.profile(&key)? else {
            return Ok(None);
        };
        let mut ledger = store.journal(&key, usize::MAX)?;
        ledger.retain(|r| r.kind == Kind::Consent);
        Ok(Some((user, ledger)))
    })
    .await?;
    let Some((user, ledger)) = found else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "id", "no such user"));
    };
    if csv {
        return Ok(csv_answer(
            &ledger,
            None,
            &format!("consent-{}.csv", safe_name(&id)),
        ));
    }
    let now = user
        .traits
        .get("consent")
        .map(|c| c.to_json())
        .unwrap_or_else(|| json!({}));
    let entries: Vec<Json> = ledger.iter().map(entry).collect();
    Ok(axum::Json(json!({"user": id, "consent": now, "ledger": entries})).into_response())
}

/// `GET /v1/consent`: every consent change from `from` (inclusive) to
/// `to` (exclusive), oldest first, for an auditor.
pub(super) async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let query = query.allow(Endpoint::ConsentExport)?;
    let csv = csv_asked(query)?;
    let from = time_param(query, "from")?;
    let to = time_param(query, "to")?;
    let limit = query.number("limit", EXPORT_PAGE, EXPORT_PAGE)?.max(1) as usize;
    let after = match query.get("after") {
        None => None,
        Some(text) => Some(cursor(text).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "query.after",
                "must be the `next` of an earlier answer",
            )
        })?),
    };
    let (records, next) = read_store(&state, move |store| {
        store.consent_ledger(from, to, after.as_deref(), limit)
    })
    .await?;
    let next = next.map(|k| hex(&k));
    if csv {
        return Ok(csv_answer(&records, next.as_deref(), "consent-ledger.csv"));
    }
    let entries: Vec<Json> = records.iter().map(entry).collect();
    Ok(axum::Json(json!({"entries": entries, "next": next})).into_response())
}

/// A time in a query: RFC 3339, or a date (its midnight, UTC).
fn time_param(query: &QueryParams, name: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = query.get(name) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.to_utc()));
    }
    if let Some(t) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
    {
        return Ok(Some(t.and_utc()));
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        format!("query.{name}"),
        "must be a time such as 2026-12-01T00:00:00+08:00, or a date such as 2026-12-01 (UTC)",
    ))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn cursor(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || text.len() > 2048 || !text.starts_with("792f") {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The columns of a ledger entry, in the order CSV writes them.
const COLUMNS: &[&str] = &[
    "at",
    "user",
    "channel",
    "purpose",
    "granted",
    "source",
    "evidence",
    "message_id",
    "by",
    "journey",
    "template",
    "grants",
];

/// A consent record as the ledger shows it.
fn entry(r: &Record) -> Json {
    let c = r.consent.as_deref();
    json!({
        "at": r.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        "user": r.user.as_str(),
        "channel": r.channel,
        "purpose": c.map(|c| c.purpose.as_str()),
        "granted": c.map(|c| c.granted),
        "source": c.map(|c| c.source.as_str()),
        "evidence": c.and_then(|c| c.evidence.as_deref()),
        "message_id": c.and_then(|c| c.message_id.as_deref()),
        "by": c.and_then(|c| c.by.as_deref()),
        "journey": r.journey.as_deref(),
        "template": c.and_then(|c| c.template.as_deref()),
        "grants": c.and_then(|c| c.grants),
    })
}

/// The records as CSV (RFC 4180), a header line first; `next`, when there
/// are more, in the `Waymark-Next` header.
fn csv_answer(records: &[Record], next: Option<&str>, file: &str) -> Response {
    let mut text = COLUMNS.join(",");
    text.push_str("\r\n");
    for r in records {
        let e = entry(r);
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| match &e[*c] {
                Json::Null => String::new(),
                Json::String(s) => csv_cell(s),
                other => csv_cell(&other.to_string()),
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    let mut answer = (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        text,
    )
        .into_response();
    if let Some(next) = next.and_then(|n| HeaderValue::from_str(n).ok()) {
        answer.headers_mut().insert("waymark-next", next);
    }
    answer
}

/// One CSV cell: quoted when it holds a comma, quote or line break, and
/// a leading `=`, `+`, `-`, `@` or tab made inert with a `'` so that a
/// spreadsheet shows an evidence text rather than running it.
fn csv_cell(text: &str) -> String {
    let inert = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_string()
    };
    if inert.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", inert.replace('"', "\"\""))
    } else {
        inert
    }
}

/// An id as a file name: letters, digits, `-` and `_` kept, the rest `_`.
fn safe_name(id: &str) -> String {
    id.chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_quoted_and_formulas_made_inert() {
        assert_eq!(csv_cell("plain"), "plain");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"TD\""), "\"say \"\"TD\"\"\"");
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(csv_cell("-1"), "'-1");
        assert_eq!(csv_cell("退订"), "退订");
        assert_eq!(csv_cell("two\nlines"), "\"two\nlines\"");
    }

    #[test]
    fn a_body_is_checked_field_by_field() {
        let ok = change_of(
            &json!({"channel": "sms", "granted": false, "evidence": "call"}),
            10,
            "crm",
        )
        .unwrap();
        assert_eq!(ok.0.as_deref(), Some("sms"));
        assert!(!ok.1.granted);
        assert_eq!(
            (ok.1.source.as_str(), ok.1.by.as_deref()),
            ("api", Some("crm"))
        );
        for (body, field) in [
            (json!([]), "body"),
            (json!({"granted": true}), "channel"),
            (json!({"channel": "", "granted": true}), "channel"),
            (json!({"channel": "sms"}), "granted"),
            (json!({"channel": "sms", "granted": "yes"}), "granted"),
            (
                json!({"channel": "sms", "granted": true, "purpose": "ads"}),
                "purpose",
            ),
            (
                json!({"channel": "sms", "granted": true, "evidence": "past ten bytes"}),
                "evidence",
            ),
            (
                json!({"channel": "sms", "granted": true, "evidence": 3}),
                "evidence",
            ),
            (
                json!({"channel": "sms", "granted": true, "grnted": true}),
                "grnted",
            ),
        ] {
            let e = change_of(&body, 10, "crm").unwrap_err();
            assert_eq!(e.field, field, "{body}");
        }
    }

    #[test]
    fn a_body_with_a_template_adds_grants() {
        let (channel, change) = change_of(
            &json!({"template": "T1", "granted": true, "grants": 3}),
            10,
            "crm",
        )
        .unwrap();
        assert_eq!(channel, None);
        assert_eq!(change.template.as_deref(), Some("T1"));
        assert_eq!(
            (change.grants, change.purpose.as_str()),
            (Some(3), "subscribe_message")
        );
    }

    #[test]
    fn a_cursor_reads_back_as_the_key_it_was_made_from() {
        let key = b"y/\x80\x00\x01/u\x00\x01/\x00\x00\x00\x07".to_vec();
        assert_eq!(cursor(&hex(&key)), Some(key));
        assert_eq!(cursor("zz"), None);
        assert_eq!(cursor("6a2f00"), None, "not a ledger key");
    }
}
