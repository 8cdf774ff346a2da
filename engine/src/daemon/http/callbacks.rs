//! The callback routes WeCom and official accounts push events to,
//! `/v1/callbacks/wecom/{name}` and `/v1/callbacks/wechat/{name}`, one
//! per configured app. `GET` is the platform's URL check (the echo string
//! given back once the signature holds); `POST` a push: its signature
//! checked, decrypted, read as an event ([`inbound`]) and ingested, and
//! answered only once durable, so a push the daemon did not keep is pushed
//! again (the platforms wait 5 s and retry three times) and a redelivery
//! of one it kept is dropped by its message id. No bearer token: the
//! signature, under the app's token, is the authentication.

use super::{ApiError, AppState, Endpoint, Param, QueryParams, read_store, submit};
use crate::channels::weixin::callback::{self, CallbackError, CallbackKeys};
use crate::channels::weixin::inbound::{self, Inbound, Subject};
use crate::config::{Callback, Platform};
use crate::daemon::staff_tasks::Ask;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;
use waymark_core::model::{Event, Input};
use waymark_dsl::value::{Fields, Value};

/// How long a push may wait for its commit before the answer says to push
/// it again: the platforms give up on an answer after 5 s.
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(4);

/// A configured app, ready to check its pushes.
pub struct Receiver {
    name: String,
    token: String,
    keys: Option<CallbackKeys>,
    identifier: String,
    /// The corp id (WeCom) or AppID the pushes are for.
    account: String,
}

/// The configured apps, by platform and name.
pub type Receivers = BTreeMap<(Platform, String), Receiver>;

/// The apps of the config (checked when it was loaded).
pub fn receivers(callbacks: &[Callback]) -> Receivers {
    callbacks
        .iter()
        .filter_map(|c| {
            let keys = match &c.encoding_aes_key {
                Some(key) => Some(CallbackKeys::new(&c.token, key, &c.receiver).ok()?),
                None => None,
            };
            Some((
                (c.platform, c.name.clone()),
                Receiver {
                    name: c.name.clone(),
                    token: c.token.clone(),
                    keys,
                    identifier: c.identifier.clone(),
                    account: c.receiver.clone(),
                },
            ))
        })
        .collect()
}

fn receiver<'s>(
    state: &'s AppState,
    platform: Platform,
    name: &str,
) -> Result<&'s Receiver, ApiError> {
    state
        .callbacks
        .get(&(platform, name.to_string()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "name",
                format!(
                    "no app `{name}` is configured for {} pushes ([callbacks.{}.{name}])",
                    platform.name(),
                    platform.name()
                ),
            )
        })
}

fn required<'q>(query: &'q QueryParams, name: &str) -> Result<&'q str, ApiError> {
    query.get(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("query.{name}"),
            "is required (the platform sends it with every call)",
        )
    })
}

/// How far a push's `timestamp` may be from now: a push signed longer ago
/// is a replay of a captured one (the message ids that drop redeliveries
/// are kept for a limited window), or a clock far off.
const FRESH_SECS: i64 = 24 * 3600;

/// The `timestamp` of a call, which the signature covers: refused when it
/// is not within [`FRESH_SECS`] of now.
fn fresh<'q>(state: &AppState, query: &'q QueryParams) -> Result<&'q str, ApiError> {
    let text = required(query, "timestamp")?;
    let stale = || {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "query.timestamp",
            "must be the call's time in Unix seconds, within a day of now (an older signed call is taken for a replay; check the server's clock)",
        )
    };
    let seconds: i64 = text.parse().map_err(|_| stale())?;
    if (state.clock.now().timestamp() - seconds).abs() > FRESH_SECS {
        return Err(stale());
    }
    Ok(text)
}

fn refused(field: &str, e: CallbackError) -> ApiError {
    let status = match e {
        CallbackError::Signature => StatusCode::UNAUTHORIZED,
        _ => StatusCode::BAD_REQUEST,
    };
    ApiError::new(status, field, e.to_string())
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

/// `GET /v1/callbacks/wecom/{name}`: WeCom's URL check. The echo string
/// decrypted is the answer.
pub(super) async fn wecom_check(
    State(state): State<AppState>,
    Param(name): Param,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let query = query.allow(Endpoint::WecomCheck)?;
    let app = receiver(&state, Platform::Wecom, &name)?;
    let keys = app.keys.as_ref().ok_or_else(no_key)?;
    let echo = keys
        .open(
            required(query, "msg_signature")?,
            fresh(&state, query)?,
            required(query, "nonce")?,
            required(query, "echostr")?,
        )
        .map_err(|e| refused("query.msg_signature", e))?;
    Ok(text(echo))
}

fn no_key() -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "encoding_aes_key",
        "the app has no EncodingAESKey",
    )
}

/// The body's `<Encrypt>`, from the push's XML envelope.
fn encrypted(body: &Bytes) -> Result<String, ApiError> {
    let envelope = xml(body)?;
    envelope
        .get("Encrypt")
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "body.Encrypt",
                "is required: the push's ciphertext",
            )
        })
}

fn xml(body: &[u8]) -> Result<Fields, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "body", "must be UTF-8 XML"))?;
    inbound::read_xml(text).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "body", e))
}

fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|e| ApiError::new(e.status(), "body", e.body_text()))
}

/// `POST /v1/callbacks/wecom/{name}`: a push, encrypted.
pub(super) async fn wecom_push(
    State(state): State<AppState>,
    Param(name): Param,
    query: QueryParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let kept = receive_wecom(&state, &name, query, body).await;
    // An empty answer: WeCom needs nothing back.
    counted(Platform::Wecom, &name, kept).map(|()| text(String::new()))
}

/// Counts a push by its outcome (`waymark_callback_pushes_total`).
fn counted(platform: Platform, app: &str, kept: Result<bool, ApiError>) -> Result<(), ApiError> {
    let outcome = match &kept {
        Ok(true) => "taken",
        Ok(false) => "ignored",
        Err(e) if e.status == StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        Err(_) => "refused",
    };
    // An app no one configured is not counted: its name is the caller's.
    if !matches!(&kept, Err(e) if e.status == StatusCode::NOT_FOUND) {
        crate::daemon::metrics::callback(platform.name(), app, outcome);
    }
    kept.map(|_| ())
}

/// A WeCom push checked, read and taken: whether it held an event.
async fn receive_wecom(
    state: &AppState,
    name: &str,
    query: QueryParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<bool, ApiError> {
    let query = query.allow(Endpoint::WecomPush)?;
    let app = receiver(state, Platform::Wecom, name)?;
    let keys = app.keys.as_ref().ok_or_else(no_key)?;
    let body = body_bytes(body)?;
    let message = keys
        .open(
            required(query, "msg_signature")?,
            fresh(state, query)?,
            required(query, "nonce")?,
            &encrypted(&body)?,
        )
        .map_err(|e| refused("query.msg_signature", e))?;
    let fields = xml(message.as_bytes())?;
    let event = inbound::wecom_event(&app.name, &app.identifier, &fields, state.clock.now())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "body", e))?;
    let news = event.as_ref().and_then(tag_news);
    let user = take(state, event).await?;
    if let (Some(news), Some(user)) = (news, &user) {
        tell_tag_mirrors(state, app, news, user);
    }
    Ok(user.is_some())
}

/// What a WeCom push tells the channels that mirror its corporation's
/// tags.
enum TagNews {
    /// A customer added or edited (by external_userid) may carry other
    /// corp tags now.
    Customer(String),
    /// A corp tag (id) was created, renamed, deleted or reordered.
    CorpTag(String, String),
}

fn tag_news(event: &Inbound) -> Option<TagNews> {
    match (event.name.as_str(), &event.subject) {
        ("add_external_contact" | "edit_external_contact", Subject::Person { value, .. }) => {
            Some(TagNews::Customer(value.clone()))
        }
        ("change_external_tag", Subject::Thing(thing)) => Some(TagNews::CorpTag(
            thing.strip_prefix("wecom_tag:")?.to_string(),
            event.properties.field("change_type").to_text(),
        )),
        _ => None,
    }
}

/// Tells every tag-mirroring runner of the app's corporation the news,
/// once the push is taken (on `user`'s profile). A busy runner misses it;
/// the next edit tells it again.
fn tell_tag_mirrors(state: &AppState, app: &Receiver, news: TagNews, user: &str) {
    for runner in state.tag_pulls.get(&app.account).into_iter().flatten() {
        let ask = match &news {
            TagNews::Customer(customer) => Ask::PullTags {
                user: user.to_string(),
                customer: customer.clone(),
            },
            TagNews::CorpTag(id, change) => Ask::CorpTag {
                id: id.clone(),
                change: change.clone(),
            },
        };
        if runner.try_send(ask).is_err() {
            tracing::warn!(app = %app.name, %user, "a channel mirroring tags is busy and misses this push's news");
        }
    }
}

/// `GET /v1/callbacks/wechat/{name}`: an official account's URL check,
/// signed with the token alone; the echo string comes back as it is.
pub(super) async fn wechat_check(
    State(state): State<AppState>,
    Param(name): Param,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let query = query.allow(Endpoint::WechatCheck)?;
    let app = receiver(&state, Platform::Wechat, &name)?;
    let expected =
        callback::plain_signature(&app.token, fresh(&state, query)?, required(query, "nonce")?);
    if !callback::signature_holds(&expected, required(query, "signature")?) {
        return Err(refused("query.signature", CallbackError::Signature));
    }
    Ok(text(required(query, "echostr")?.to_string()))
}

/// `POST /v1/callbacks/wechat/{name}`: a push, in plaintext (signed with
/// `signature`) or, with `encrypt_type=aes`, in safe mode (`msg_signature`
/// over the ciphertext).
pub(super) async fn wechat_push(
    State(state): State<AppState>,
    Param(name): Param,
    query: QueryParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let kept = receive_wechat(&state, &name, query, body).await;
    // "success" stops WeChat from pushing again and sends the follower nothing.
    counted(Platform::Wechat, &name, kept).map(|()| text("success".into()))
}

/// An official account's push checked, read and taken: whether it held an event.
async fn receive_wechat(
    state: &AppState,
    name: &str,
    query: QueryParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<bool, ApiError> {
    let query = query.allow(Endpoint::WechatPush)?;
    let app = receiver(state, Platform::Wechat, name)?;
    let body = body_bytes(body)?;
    let (timestamp, nonce) = (fresh(state, query)?, required(query, "nonce")?);
    let fields = match query.get("encrypt_type") {
        Some("aes") => {
            let keys = app.keys.as_ref().ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "query.encrypt_type",
                    format!(
                        "an encrypted push, but [callbacks.wechat.{}] has no encoding_aes_key (plaintext mode)",
                        app.name
                    ),
                )
            })?;
            let message = keys
                .open(
                    required(query, "msg_signature")?,
                    timestamp,
                    nonce,
                    &encrypted(&body)?,
                )
                .map_err(|e| refused("query.msg_signature", e))?;
            xml(message.as_bytes())?
        }
        None | Some("raw") => {
            let expected = callback::plain_signature(&app.token, timestamp, nonce);
            if !callback::signature_holds(&expected, required(query, "signature")?) {
                return Err(refused("query.signature", CallbackError::Signature));
            }
            xml(&body)?
        }
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "query.encrypt_type",
                "must be aes or raw",
            ));
        }
    };
    let event = inbound::wechat_event(&app.name, &app.identifier, &fields, state.clock.now())
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "body", e))?;
    take(state, event).await.map(|user| user.is_some())
}

/// Ingests the push's event on the profile it is about, answered once it
/// is durable (or refused after [`ANSWER_WITHIN`], to be pushed again);
/// whether there was one.
async fn take(state: &AppState, event: Option<Inbound>) -> Result<Option<String>, ApiError> {
    let Some(event) = event else {
        return Ok(None);
    };
    let mut user = String::new();
    let inputs = match &event.subject {
        Subject::Thing(id) => {
            user.clone_from(id);
            vec![track(id.clone(), event)]
        }
        Subject::Person {
            identifier,
            value,
            fallback,
        } => {
            let (trait_name, held) = (identifier.clone(), value.clone());
            let holder = read_store(state, move |store| {
                store.identifier_holder(&trait_name, &held)
            })
            .await?;
            match holder {
                Some(holder) => {
                    user.clone_from(&holder);
                    vec![track(holder, event)]
                }
                // Their own profile, holding the id as a trait, until the
                // member identifies with it.
                None => {
                    user.clone_from(fallback);
                    let mut traits = Fields::new();
                    traits.insert(identifier.clone(), Value::String(value.clone()));
                    let identify = Input::Identify {
                        user: fallback.clone(),
                        traits: Value::Record(traits),
                        at: event.at,
                        message_id: Some(format!("{}:identify", event.message_id)),
                    };
                    vec![identify, track(fallback.clone(), event)]
                }
            }
        }
    };
    match tokio::time::timeout(ANSWER_WITHIN, submit(state, inputs)).await {
        Ok(result) => result.map(|()| Some(user)),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server",
            "the push was not durable within 4 s: the platform pushes it again, and a push kept meanwhile is dropped as a repeat",
        )),
    }
}

fn track(user: String, event: Inbound) -> Input {
    Input::Track(Event {
        user,
        name: event.name,
        properties: event.properties,
        at: event.at,
        message_id: Some(event.message_id),
    })
}
