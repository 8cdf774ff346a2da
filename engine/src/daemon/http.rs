//! The HTTP API (axum). Ingestion takes Segment's tracking-API shape
//! (`/v1/track`, `/v1/identify`, `/v1/batch`), gzip bodies, bearer tokens
//! or a Segment write key as Basic user name (or `writeKey` in the body),
//! and answers only after the batch holding the request is durable. Every
//! bad request gets a 4xx with a JSON error naming the field. The routes
//! are the table in `routes.rs`; `router` gives each its handler.

use super::routes::{Endpoint, Method, ROUTES, Route, scope_name};
use super::writer::{Command, Handle};
use crate::config::{Scope, Token};
use crate::ingest::{self, Call, Refusal};
use crate::store::{SledKv, Store};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodFilter, MethodRouter};
use base64::Engine as _;
use serde_json::{Value as Json, json};
use std::sync::Arc;
use tokio::sync::oneshot;

mod callbacks;
mod consent;

pub use callbacks::{Receivers, receivers};

/// Per WeCom corporation, the staff-task runners that mirror its tags.
pub type TagPulls =
    std::collections::BTreeMap<String, Vec<tokio::sync::mpsc::Sender<super::staff_tasks::Ask>>>;

#[derive(Clone)]
pub struct AppState {
    pub writer: Handle,
    pub store: Arc<Store<SledKv>>,
    pub tokens: Arc<Vec<Token>>,
    /// Configured channels, when a config names them (deploys are checked against them).
    pub channels: Option<Arc<waymark_dsl::check::ChannelCatalog>>,
    /// Caps on what one message may carry.
    pub limits: ingest::Limits,
    /// The most bytes of evidence a consent change carries.
    pub evidence_bytes: usize,
    /// What `/readyz` reports.
    pub health: Arc<super::health::Health>,
    /// The daemon's clock: when an ingest call is received, when a replay is due.
    pub clock: Arc<dyn waymark_core::clock::Clock>,
    /// The console's signed-in sessions.
    pub sessions: Arc<super::ui::Sessions>,
    /// The apps that push events to `/v1/callbacks/…` (`[callbacks]`).
    pub callbacks: Arc<Receivers>,
    /// Per WeCom corporation, the staff-task runners that mirror tags:
    /// told when a push says a customer's tags may have changed.
    pub tag_pulls: Arc<TagPulls>,
}

/// A JSON error: `{"error": {"field": …, "message": …}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    field: String,
    message: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            field: field.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// The store cannot take writes now: 503, try again in a few seconds.
    fn store_unavailable(error: impl std::fmt::Display) -> ApiError {
        ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server",
                format!("not stored, try again later: {error}"),
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(json!({"error": {"field": self.field, "message": self.message}})),
        )
            .into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.limits.body;
    // Every route of the table, a path's methods together, in its order.
    let mut router = Router::new();
    let mut done: Vec<&str> = Vec::new();
    for route in ROUTES {
        if done.contains(&route.path) {
            continue;
        }
        done.push(route.path);
        let methods = ROUTES
            .iter()
            .filter(|r| r.path == route.path)
            .fold(MethodRouter::new(), |m, r| m.merge(handler(r)));
        router = router.route(route.path, methods);
    }
    router
        .merge(super::ui::router())
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |request, next| {
            refuse_oversize(body_limit, request, next)
        }))
        .layer(axum::middleware::from_fn(count_requests))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "path", "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method",
                "this route does not take that method",
            )
        })
        .with_state(state)
}

/// The handler of a route of the table, on the route's method.
fn handler(route: &Route) -> MethodRouter<AppState> {
    let on = match route.method {
        Method::Get => MethodFilter::GET,
        Method::Post => MethodFilter::POST,
        Method::Delete => MethodFilter::DELETE,
    };
    match route.endpoint {
        Endpoint::Healthz => routing::on(on, || async { axum::Json(json!({"status": "ok"})) }),
        Endpoint::Readyz => routing::on(on, readyz),
        Endpoint::Metrics => routing::on(on, metrics),
        Endpoint::OpenApi => routing::on(on, || async {
            axum::Json(super::routes::openapi(env!("CARGO_PKG_VERSION")))
        }),
        Endpoint::Track => routing::on(on, track),
        Endpoint::Identify => routing::on(on, identify),
        Endpoint::Batch => routing::on(on, batch),
        Endpoint::User => routing::on(on, user),
        Endpoint::Erase => routing::on(on, erase),
        Endpoint::Export => routing::on(on, export),
        Endpoint::Journal => routing::on(on, journal),
        Endpoint::SetConsent => routing::on(on, consent::set),
        Endpoint::UserConsent => routing::on(on, consent::user_ledger),
        Endpoint::ConsentExport => routing::on(on, consent::export),
        Endpoint::DeadLetters => routing::on(on, dead_letters),
        Endpoint::Replay => routing::on(on, replay),
        Endpoint::Deploy => routing::on(on, deploy),
        Endpoint::Journeys => routing::on(on, journeys),
        Endpoint::Stats => routing::on(on, stats),
        Endpoint::Pause => routing::on(on, pause),
        Endpoint::Resume => routing::on(on, resume),
        Endpoint::PauseSends => routing::on(on, pause_sends),
        Endpoint::ResumeSends => routing::on(on, resume_sends),
        Endpoint::Deployments => routing::on(on, deployments),
        Endpoint::Deployment => routing::on(on, deployment),
        Endpoint::Rollback => routing::on(on, rollback),
        Endpoint::Audit => routing::on(on, audit_log),
        Endpoint::WecomCheck => routing::on(on, callbacks::wecom_check),
        Endpoint::WecomPush => routing::on(on, callbacks::wecom_push),
        Endpoint::WechatCheck => routing::on(on, callbacks::wechat_check),
        Endpoint::WechatPush => routing::on(on, callbacks::wechat_push),
    }
}

/// A body whose `Content-Length` is past the limit is refused before it is
/// read: with `Expect: 100-continue` the client gets 413 instead of
/// `100 Continue` (hyper sends that only once a handler reads the body).
async fn refuse_oversize(
    limit: usize,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if length.is_some_and(|n| n > limit as u64) {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body",
            format!("more than {limit} bytes (limits.body_bytes)"),
        )
        .into_response();
    }
    next.run(request).await
}

/// A route's one path parameter. One that is not UTF-8 once
/// percent-decoded is refused with a JSON error naming `path` (axum's own
/// rejection is plain text).
struct Param(String);

impl<S: Send + Sync> FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Param, ApiError> {
        Path::<String>::from_request_parts(parts, state)
            .await
            .map(|Path(p)| Param(p))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "path", e.body_text()))
    }
}

/// The token a request carries: `Authorization: Bearer T`, Basic with T as
/// user name (Segment's SDKs), or `writeKey` in the body.
fn presented_token(headers: &HeaderMap, body: Option<&Json>) -> Option<String> {
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if let Some(auth) = auth {
        // Auth schemes are case-insensitive (RFC 9110 §11.1).
        let (scheme, credentials) = auth.trim_start().split_once(' ').unwrap_or((auth, ""));
        if scheme.eq_ignore_ascii_case("bearer") {
            return Some(credentials.trim().to_string());
        }
        if scheme.eq_ignore_ascii_case("basic")
            && let Ok(decoded) =
                base64::engine::general_purpose::STANDARD.decode(credentials.trim())
        {
            let text = String::from_utf8_lossy(&decoded).into_owned();
            return Some(
                text.split_once(':')
                    .map_or(text.clone(), |(user, _)| user.to_string()),
            );
        }
    }
    body.and_then(|b| b.get("writeKey"))
        .and_then(Json::as_str)
        .map(str::to_string)
}

/// Who acted, in the audit log, when the daemon has no tokens.
pub(crate) const NO_TOKEN: &str = "loopback (no tokens configured)";

/// Checks the request's token has `scope` (or `admin`); answers who holds
/// it, for the audit log.
fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    body: Option<&Json>,
    scope: Scope,
) -> Result<String, ApiError> {
    if state.tokens.is_empty() {
        // No tokens: the daemon listens on loopback only.
        return Ok(NO_TOKEN.to_string());
    }
    let Some(token) = presented_token(headers, body) else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "a token is required (Authorization: Bearer TOKEN)",
        ));
    };
    match state
        .tokens
        .iter()
        .find(|t| crate::constant_time_eq(t.token.as_bytes(), token.as_bytes()))
    {
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "authorization",
            "unknown token",
        )),
        Some(t) if t.scopes.contains(&scope) || t.scopes.contains(&Scope::Admin) => {
            Ok(t.name.clone())
        }
        Some(_) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "authorization",
            format!("this token lacks the `{}` scope", scope_name(&scope)),
        )),
    }
}

/// The body as JSON, gunzipped when it says so (within the size limit).
fn json_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json, ApiError> {
    let (encoding, body) = raw_body(headers, body)?;
    ingest::decode_body(encoding, &body, state.limits.body).map_err(ApiError::from)
}

/// The body as sent, and its `Content-Encoding`.
fn raw_body(
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Option<&str>, Bytes), ApiError> {
    let body = body.map_err(|e| {
        let status = e.status();
        let timed_out = std::error::Error::source(&e)
            .is_some_and(|s| s.to_string().contains("body_read_timeout"))
            || e.body_text().contains("body_read_timeout");
        if timed_out {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body",
                super::serve::BodyTimeout.to_string(),
            );
        }
        ApiError::new(
            if status.is_client_error() {
                status
            } else {
                StatusCode::BAD_REQUEST
            },
            "body",
            e.body_text(),
        )
    })?;
    let encoding = match headers.get(header::CONTENT_ENCODING) {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| {
            ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "content-encoding",
                "not a supported encoding (send gzip or no encoding)",
            )
        })?),
    };
    Ok((encoding, body))
}

impl From<ingest::BodyError> for ApiError {
    fn from(e: ingest::BodyError) -> ApiError {
        let status = match e.refusal {
            Refusal::Invalid => StatusCode::BAD_REQUEST,
            Refusal::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::UnsupportedEncoding => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        };
        ApiError::new(status, e.field, e.message)
    }
}

async fn submit(state: &AppState, inputs: Vec<waymark_core::model::Input>) -> Result<(), ApiError> {
    let (reply, answer) = oneshot::channel();
    state
        .writer
        .send(Command::Ingest { inputs, reply })
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server", "shutting down"))?;
    match answer.await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(ApiError::store_unavailable(e)),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server",
            "shutting down",
        )),
    }
}

async fn track(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    ingest(state, headers, body, Call::Track).await
}

async fn identify(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    ingest(state, headers, body, Call::Identify).await
}

async fn batch(
    state: State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<impl IntoResponse, ApiError> {
    ingest(state, headers, body, Call::Batch).await
}

/// One ingest call, answered once the batch holding it is durable. A
/// batch is taken item by item: 200 when any item was taken, listing the
/// refused items (by index, field and message) and those taken but not
/// acted on (`alias`); 400 with the same lists when every item was refused.
async fn ingest(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
    call: Call,
) -> Result<Response, ApiError> {
    // A token in the headers is checked before the body is read; only a
    // request without one (Segment's `writeKey` in the body) is decoded,
    // within the size limit, before it is refused.
    let now = state.clock.now();
    let taken = if presented_token(&headers, None).is_some() {
        authorize(&state, &headers, None, Scope::Ingest)?;
        let (encoding, body) = raw_body(&headers, body)?;
        ingest::body_messages(encoding, &body, call, now, &state.limits)?
    } else {
        let json = json_body(&state, &headers, body)?;
        authorize(&state, &headers, Some(&json), Scope::Ingest)?;
        ingest::messages_within(&json, call, now, &state.limits)?
    };
    let refused: Vec<Json> = taken
        .refused
        .iter()
        .map(|r| json!({"index": r.index, "field": r.field, "message": r.message}))
        .collect();
    let unsupported: Vec<Json> = taken
        .unsupported
        .iter()
        .map(|u| json!({"index": u.index, "type": u.kind, "message": "taken but not acted on: identity merge is not supported yet"}))
        .collect();
    if taken.taken() == 0
        && let Some(first) = taken.refused.first()
    {
        let answer = json!({
            "error": {"field": first.field, "message": first.message},
            "taken": 0,
            "refused": refused,
            "unsupported": unsupported,
        });
        return Ok((StatusCode::BAD_REQUEST, axum::Json(answer)).into_response());
    }
    let count = taken.taken();
    if !taken.inputs.is_empty() {
        submit(&state, taken.inputs).await?;
    }
    for u in &taken.unsupported {
        super::metrics::unsupported(u.kind, &u.user);
    }
    if !taken.refused.is_empty() {
        super::metrics::refused_items(taken.refused.len());
    }
    let answer = match call {
        Call::Batch => json!({
            "success": true,
            "taken": count,
            "refused": refused,
            "unsupported": unsupported,
        }),
        Call::Track | Call::Identify if unsupported.is_empty() => json!({"success": true}),
        Call::Track | Call::Identify => json!({"success": true, "unsupported": unsupported}),
    };
    Ok(axum::Json(answer).into_response())
}

/// Reads the store on tokio's blocking pool: a user's whole journal or a
/// thousand dead letters take milliseconds, and the one HTTP thread
/// serves every other request meanwhile.
pub(crate) async fn read_store<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&Store<SledKv>) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || read(&store))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server", e.to_string()))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server", e.to_string()))
}

async fn user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    // Any id of the person: one merged into another profile answers it.
    let Some((_, u)) = read_store(&state, move |store| store.profile(&id)).await? else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "id", "no such user"));
    };
    Ok(axum::Json(waymark_core::export::summary(&u)))
}

/// Erasure under PIPL: the user's data is gone from every store and their
/// pending effects (timers, sends waiting for delivery) are cancelled.
async fn erase(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
) -> Result<impl IntoResponse, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Admin)?;
    let (reply, answer) = oneshot::channel();
    state
        .writer
        .send(Command::Erase {
            user: id.clone(),
            actor,
            reply,
        })
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server", "shutting down"))?;
    let existed = answer
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server", "shutting down"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server", e.to_string()))?;
    if !existed {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "id", "no such user"));
    }
    Ok(axum::Json(json!({"erased": id})))
}

/// Everything stored about a user, in one document.
async fn export(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let key = id.clone();
    let (user, journal) = read_store(&state, move |store| {
        let Some((key, user)) = store.profile(&key)? else {
            return Ok((None, Vec::new()));
        };
        Ok((Some(user), store.journal(&key, usize::MAX)?))
    })
    .await?;
    let Some(user) = user else {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "id", "no such user"));
    };
    Ok(axum::Json(
        json!({"user": id, "state": waymark_core::export::state(&user), "journal": journal}),
    ))
}

/// The most records one journal answer holds.
const JOURNAL_PAGE: u64 = 10_000;

async fn journal(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
    query: QueryParams,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let query = query.allow(Endpoint::Journal)?;
    let limit = query.number("limit", JOURNAL_PAGE, JOURNAL_PAGE)?.max(1) as usize;
    let last = query
        .get("last")
        .map(|_| query.number("last", 0, JOURNAL_PAGE))
        .transpose()?;
    let after = query.number("after", 0, u64::MAX)?;
    if last.is_some() && query.get("after").is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "query.last",
            "give `last` (the newest records) or `after` (a page from a point), not both",
        ));
    }
    let key = id.clone();
    let (records, next) = read_store(&state, move |store| {
        // Any id of the person reads the whole person's journal.
        let key = store.profile(&key)?.map_or(key, |(id, _)| id);
        match last {
            Some(n) => Ok((store.journal_latest(&key, n as usize)?, None)),
            None => store.journal_page(&key, after, limit),
        }
    })
    .await?;
    Ok(axum::Json(
        json!({"user": id, "records": records, "next": next}),
    ))
}

async fn dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let entries = read_store(&state, |store| store.dead_letters(1000)).await?;
    let items: Vec<Json> = entries
        .iter()
        .map(|e| json!({"id": e.seq, "attempts": e.attempts, "last_error": e.last_error, "record": e.record}))
        .collect();
    Ok(axum::Json(json!({"deadletters": items})))
}

async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(seq): Param,
) -> Result<impl IntoResponse, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Admin)?;
    let seq: u64 = seq.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "id",
            "must be a dead letter's numeric id",
        )
    })?;
    if !replay_dead_letter(&state, seq, actor).await? {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "id",
            "no such dead letter",
        ));
    }
    Ok(axum::Json(json!({"replayed": seq})))
}

async fn stats(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(name): Param,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let internal = |e: crate::store::StoreError| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server", e.to_string())
    };
    // Stats outlive the versions they count, which are dropped once no
    // user is on them: a journey is known by its stats or as current.
    let stats = state.store.journey_stats(&name).map_err(internal)?;
    let current = state
        .store
        .deployed_journeys()
        .map_err(internal)?
        .iter()
        .any(|j| j.name == name);
    if stats.is_empty() && !current {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "name",
            format!("no journey `{name}` was ever deployed"),
        ));
    }
    let versions: serde_json::Map<String, Json> =
        stats.into_iter().map(|(v, s)| (v, s.to_json())).collect();
    Ok(axum::Json(json!({"journey": name, "versions": versions})))
}

async fn pause(
    state: State<AppState>,
    headers: HeaderMap,
    name: Param,
) -> Result<impl IntoResponse, ApiError> {
    pause_or_resume(state, headers, name, true).await
}

async fn resume(
    state: State<AppState>,
    headers: HeaderMap,
    name: Param,
) -> Result<impl IntoResponse, ApiError> {
    pause_or_resume(state, headers, name, false).await
}

/// `POST /v1/pause[?drop=true]`: every non-transactional send stops.
async fn pause_sends(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<impl IntoResponse, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Admin)?;
    let drop = query.allow(Endpoint::PauseSends)?.flag("drop")?;
    let (reply, answer) = oneshot::channel();
    let command = Command::PauseSends { drop, actor, reply };
    writer_call(&state, command, answer).await?;
    Ok(axum::Json(json!({"sends_paused": true, "drop": drop})))
}

/// `POST /v1/resume`: the global pause ends.
async fn resume_sends(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Admin)?;
    let (reply, answer) = oneshot::channel();
    writer_call(&state, Command::ResumeSends { actor, reply }, answer).await?;
    Ok(axum::Json(json!({"sends_paused": false})))
}

/// Hands `command` to the writer and waits for its answer.
async fn writer_call<T>(
    state: &AppState,
    command: Command,
    answer: oneshot::Receiver<Result<T, super::writer::WriterError>>,
) -> Result<T, ApiError> {
    state
        .writer
        .send(command)
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server", "shutting down"))?;
    answer
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server", "shutting down"))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server", e.to_string()))
}

async fn pause_or_resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(name): Param,
    pausing: bool,
) -> Result<impl IntoResponse, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Admin)?;
    let deployed = state
        .store
        .deployed_journeys()
        .is_ok_and(|current| current.iter().any(|j| j.name == name));
    if !deployed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "name",
            format!("no journey `{name}` is deployed"),
        ));
    }
    let (reply, answer) = oneshot::channel();
    let command = if pausing {
        Command::Pause {
            journey: name.clone(),
            actor,
            reply,
        }
    } else {
        Command::Resume {
            journey: name.clone(),
            actor,
            reply,
        }
    };
    writer_call(&state, command, answer).await?;
    Ok(axum::Json(json!({"journey": name, "paused": pausing})))
}

/// Query parameters, checked against those the route declares (any other
/// is refused, naming it) and read as numbers or booleans.
struct QueryParams(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<QueryParams, ApiError> {
        let axum::extract::Query(pairs) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "query", e.body_text()))?;
        Ok(QueryParams(pairs))
    }
}

impl QueryParams {
    /// Refuses a parameter `endpoint`'s route does not declare.
    fn allow(&self, endpoint: Endpoint) -> Result<&Self, ApiError> {
        let route = ROUTES
            .iter()
            .find(|r| r.endpoint == endpoint)
            .expect("every endpoint has a route");
        for (name, _) in &self.0 {
            if !route.query.iter().any(|(n, _, _)| n == name) {
                let known: Vec<&str> = route.query.iter().map(|(n, _, _)| *n).collect();
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("query.{name}"),
                    if known.is_empty() {
                        "unknown parameter (this route takes none)".to_string()
                    } else {
                        format!("unknown parameter (this route takes: {})", known.join(", "))
                    },
                ));
            }
        }
        Ok(self)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.get(name) {
            None | Some("false") => Ok(false),
            Some("true") | Some("") => Ok(true),
            Some(_) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("query.{name}"),
                "must be true or false",
            )),
        }
    }

    fn number(&self, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n <= max => Ok(n),
                _ => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!("query.{name}"),
                    format!("must be a whole number from 0 to {max}"),
                )),
            },
        }
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server", e.to_string())
}

fn stopping() -> ApiError {
    ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "server", "shutting down")
}

/// Compiles a script set against the configured channels, off the thread
/// that serves every other request (it takes milliseconds): the plan, or
/// the 422 answer with the diagnostics.
pub(crate) async fn check_scripts(
    state: &AppState,
    files: &std::collections::BTreeMap<String, String>,
    refused: &'static str,
) -> Result<Result<(waymark_dsl::plan::Plan, Json), Response>, ApiError> {
    let mut sources = waymark_dsl::Sources::new();
    for (name, text) in files {
        sources.add(name.clone(), text.clone());
    }
    let channels = state.channels.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let options = waymark_dsl::Options {
            functions: waymark_stdlib::stdlib(),
            channels: channels.as_deref(),
        };
        waymark_dsl::compile(sources, options)
    })
    .await
    .map_err(internal)?;
    let diagnostics = waymark_dsl::render::json(&checked.sources, &checked.diagnostics);
    Ok(match checked.plan {
        Some(plan) => Ok((plan, diagnostics)),
        None => {
            let body = json!({"error": {"field": "files", "message": refused}, "diagnostics": diagnostics});
            Err((StatusCode::UNPROCESSABLE_ENTITY, axum::Json(body)).into_response())
        }
    })
}

/// Deploys a checked plan through the writer, recorded in the history.
pub(crate) async fn deploy_plan(
    state: &AppState,
    plan: waymark_dsl::plan::Plan,
    cancel_removed: bool,
    meta: crate::runtime::DeployMeta,
) -> Result<(waymark_core::deployment::DeployReport, Option<u64>), ApiError> {
    let (reply, answer) = oneshot::channel();
    state
        .writer
        .send(Command::Deploy {
            plan,
            cancel_removed,
            meta,
            reply,
        })
        .map_err(|_| stopping())?;
    answer.await.map_err(|_| stopping())?.map_err(internal)
}

/// What deploying `files` would change, as `?dry_run=true` answers it.
async fn preview(
    state: &AppState,
    plan: waymark_dsl::plan::Plan,
    files: std::collections::BTreeMap<String, String>,
    cancel_removed: bool,
) -> Result<Json, ApiError> {
    read_store(state, move |store| {
        let current = store
            .load_deployment()?
            .map(|d| d.plan.as_ref().clone())
            .unwrap_or_default();
        let deployed_files = match store.latest_deployment()? {
            Some(d) => store.deployment(d.id)?.map(|(_, f)| f).unwrap_or_default(),
            None => Default::default(),
        };
        // Users are counted only in journeys this deploy changes or removes.
        let touched: std::collections::BTreeSet<String> = current
            .journeys
            .iter()
            .filter(|j| plan.journey(&j.name).is_none_or(|n| n.version != j.version))
            .map(|j| j.name.clone())
            .collect();
        let waiting = store.waiting_at(&touched)?;
        let files = crate::changes::files(&deployed_files, &files);
        let journeys = crate::changes::journeys(&current, &plan, &waiting, cancel_removed);
        let text = crate::changes::render(&files, &journeys);
        Ok(json!({"dry_run": true, "files": files, "journeys": journeys, "text": text}))
    })
    .await
}

/// `{"files": {"name.journey": "text", …}, "cancel_removed": false}`: the
/// whole script set, deployed only if it checks clean; with
/// `?dry_run=true`, what it would change instead.
async fn deploy(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Admin)?;
    let dry_run = query.allow(Endpoint::Deploy)?.flag("dry_run")?;
    let json = json_body(&state, &headers, body)?;
    let Some(given) = json.get("files").and_then(Json::as_object) else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "files",
            "missing: an object of file name to script text",
        ));
    };
    let cancel_removed = match json.get("cancel_removed") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "cancel_removed",
                "must be true or false",
            ));
        }
    };
    let mut files = std::collections::BTreeMap::new();
    for (name, text) in given {
        let Some(text) = text.as_str() else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("files.{name}"),
                "must be the script's text",
            ));
        };
        files.insert(name.clone(), text.to_string());
    }
    let (plan, diagnostics) = match check_scripts(
        &state,
        &files,
        "the scripts have errors; the running set is unchanged",
    )
    .await?
    {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused),
    };
    if dry_run {
        let mut answer = preview(&state, plan, files, cancel_removed).await?;
        answer["diagnostics"] = diagnostics;
        return Ok(axum::Json(answer).into_response());
    }
    let meta = crate::runtime::DeployMeta {
        by: actor,
        how: crate::runtime::DeployHow::Api,
        files,
    };
    let (report, id) = deploy_plan(&state, plan, cancel_removed, meta).await?;
    Ok(axum::Json(json!({"deployment": id, "added": report.added, "changed": report.changed, "removed": report.removed, "warnings": report.warnings, "diagnostics": diagnostics})).into_response())
}

fn deployment_json(d: &crate::store::DeploymentRecord) -> Json {
    json!({
        "id": d.id,
        "at": d.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "by": d.by,
        "how": d.how,
        "rollback_of": d.rollback_of,
        "source_hash": d.source_hash,
        "added": d.added,
        "changed": d.changed,
        "removed": d.removed,
        "versions": d.versions,
    })
}

fn deployment_id(text: &str) -> Result<u64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "id",
            "must be a deployment's numeric id",
        )
    })
}

async fn deployments(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let query = query.allow(Endpoint::Deployments)?;
    let limit = query.number("limit", 50, 1000)? as usize;
    let before = query
        .get("before")
        .map(|_| query.number("before", 0, u64::MAX))
        .transpose()?;
    let list = read_store(&state, move |store| store.deployments(before, limit)).await?;
    let items: Vec<Json> = list.iter().map(deployment_json).collect();
    Ok(axum::Json(json!({"deployments": items})))
}

async fn deployment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    let id = deployment_id(&id)?;
    let found = read_store(&state, move |store| {
        let Some((record, files)) = store.deployment(id)? else {
            return Ok(None);
        };
        let earlier = match store.deployments(Some(id), 1)?.pop() {
            Some(d) => store.deployment(d.id)?.map(|(_, f)| f).unwrap_or_default(),
            None => Default::default(),
        };
        let diff = crate::changes::files(&earlier, &files);
        Ok(Some((record, files, diff)))
    })
    .await?;
    let Some((record, files, diff)) = found else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "id",
            "no such deployment",
        ));
    };
    let mut answer = deployment_json(&record);
    answer["files"] = json!(files);
    answer["diff"] = json!(diff);
    Ok(axum::Json(answer))
}

async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    Param(id): Param,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let actor = authorize(&state, &headers, None, Scope::Admin)?;
    let cancel_removed = query.allow(Endpoint::Rollback)?.flag("cancel_removed")?;
    let id = deployment_id(&id)?;
    let Some((_, files)) = read_store(&state, move |store| store.deployment(id)).await? else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "id",
            "no such deployment",
        ));
    };
    let (plan, diagnostics) = match check_scripts(
        &state,
        &files,
        "that deployment's scripts no longer check (against today's config); the running set is unchanged",
    )
    .await?
    {
        Ok(checked) => checked,
        Err(refused) => return Ok(refused),
    };
    let meta = crate::runtime::DeployMeta {
        by: actor,
        how: crate::runtime::DeployHow::Rollback(id),
        files,
    };
    let (report, new_id) = deploy_plan(&state, plan, cancel_removed, meta).await?;
    Ok(axum::Json(json!({"deployment": new_id, "rollback_of": id, "added": report.added, "changed": report.changed, "removed": report.removed, "warnings": report.warnings, "diagnostics": diagnostics})).into_response())
}

async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Admin)?;
    let query = query.allow(Endpoint::Audit)?;
    let limit = query.number("limit", 100, 1000)? as usize;
    let after = query.number("after", 0, u64::MAX)?;
    let (entries, last) = read_store(&state, move |store| {
        Ok((store.audit(after, limit)?, store.last_audit_seq()?))
    })
    .await?;
    let items: Vec<Json> = entries
        .iter()
        .map(|e| {
            json!({
                "seq": e.seq,
                "at": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "actor": e.actor,
                "action": e.action,
                "target": e.target,
                "detail": e.detail,
            })
        })
        .collect();
    Ok(axum::Json(json!({"entries": items, "last": last})))
}

/// Puts dead letter `seq` back in the outbox through the writer (audited
/// under `actor`); whether there was one.
pub(crate) async fn replay_dead_letter(
    state: &AppState,
    seq: u64,
    actor: String,
) -> Result<bool, ApiError> {
    let (reply, answer) = oneshot::channel();
    state
        .writer
        .send(Command::Replay { seq, actor, reply })
        .map_err(|_| stopping())?;
    answer.await.map_err(|_| stopping())?.map_err(internal)
}

async fn journeys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    authorize(&state, &headers, None, Scope::Read)?;
    // From the list of current journeys: no plan is decoded to answer.
    let internal = |e: crate::store::StoreError| {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server", e.to_string())
    };
    let paused = state.store.paused_journeys().map_err(internal)?;
    let items: Vec<Json> = state
        .store
        .deployed_journeys()
        .map_err(internal)?
        .into_iter()
        .map(|j| json!({"name": j.name, "title": j.title, "version": j.version, "paused": paused.contains(&j.name)}))
        .collect();
    Ok(axum::Json(json!({"journeys": items})))
}

/// Readiness: 200 when the store answers and its last write succeeded,
/// the scripts are deployed and the outbox worker runs; else 503 naming
/// what is wrong.
async fn readyz(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    let read = tokio::task::spawn_blocking(move || store.load_deployment().err())
        .await
        .unwrap_or_else(|e| Some(crate::store::StoreError::Backend(e.to_string())));
    let (ready, checks) = state.health.checks(read.map(|e| e.to_string()));
    let (status, word) = if ready {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    };
    // Not a failure: the daemon takes events; it only holds its sends.
    let store = state.store.clone();
    let paused = tokio::task::spawn_blocking(move || store.sends_paused().ok().flatten())
        .await
        .ok()
        .flatten();
    let paused = paused.map(|p| {
        json!({"since": p.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true), "by": p.by, "drop": p.drop})
    });
    (
        status,
        axum::Json(json!({"status": word, "checks": checks, "sends_paused": paused})),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let store = state.store.clone();
    let gauges = tokio::task::spawn_blocking(move || super::metrics::Gauges {
        outbox_depth: store.outbox_depths().map_or(0, |(depth, _)| depth),
        pending_timers: store.pending_timers().unwrap_or(0),
        staff_tasks: store.staff_task_counts().unwrap_or_default(),
        dead_letters: store.dead_letters_by_channel().unwrap_or_default(),
        sends_paused: store.sends_paused().ok().flatten().is_some(),
    })
    .await
    .unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        super::metrics::render(&gauges),
    )
}

/// Counts each request by its route's template (`/v1/users/{id}`, so user
/// ids do not become label values), method and status, with its latency.
async fn count_requests(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_string();
    let method = request.method().as_str().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    super::metrics::http_request(
        &route,
        &method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use crate::store::{SledKv, Store};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    #[test]
    fn the_auth_scheme_is_read_case_insensitively() {
        use axum::http::{HeaderMap, HeaderValue, header};
        use base64::Engine;
        let token = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
            super::presented_token(&headers, None)
        };
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            assert_eq!(
                token(&format!("{scheme} s3cret")).as_deref(),
                Some("s3cret")
            );
        }
        let basic = base64::engine::general_purpose::STANDARD.encode("wk:");
        assert_eq!(token(&format!("basic {basic}")).as_deref(), Some("wk"));
        assert_eq!(token("Token s3cret"), None);
    }

    /// The API over a scratch store (removed when dropped), with every
    /// ingest call accepted.
    fn api() -> axum::Router {
        let store = Store::new(SledKv::temporary().unwrap());
        super::super::api_without_writer(store, Vec::new(), |_| Ok(()))
    }

    async fn answer(
        api: &axum::Router,
        method: &str,
        uri: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = api.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
        (status, json)
    }

    // Found by the http_body fuzz target: `/v1/users/u1'\xee\xff…`.
    #[tokio::test]
    async fn a_path_parameter_that_is_not_utf8_gets_a_json_error_naming_the_path() {
        let api = api();
        for (method, uri) in [
            ("GET", "/v1/users/u1%EE%FF"),
            ("GET", "/v1/users/%FF/journal"),
            ("GET", "/v1/users/%FF/export"),
            ("DELETE", "/v1/users/%FF"),
            ("GET", "/v1/journeys/%C3/stats"),
            ("POST", "/v1/journeys/%C3/pause"),
            ("POST", "/v1/deadletters/%FF/replay"),
        ] {
            let (status, json) = answer(&api, method, uri, "").await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {uri}: {json}");
            assert_eq!(json["error"]["field"], "path", "{method} {uri}: {json}");
        }
        let (status, json) = answer(&api, "GET", "/v1/users/%E5%B0%8F", "").await;
        assert_eq!(
            (status, &json["error"]["field"]),
            (StatusCode::NOT_FOUND, &"id".into())
        );
    }

    #[tokio::test]
    async fn a_users_journal_and_export_hold_only_theirs_beside_an_id_starting_with_theirs() {
        let store = Store::open(SledKv::temporary().unwrap()).unwrap();
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let users = ["alice", "alice/x", "a", "ab"];
        store
            .commit(crate::store::Batch {
                users: users
                    .iter()
                    .map(|u| (waymark_core::model::UserState::new(u), None))
                    .collect(),
                journal: users
                    .iter()
                    .map(|u| {
                        waymark_core::journal::Record::new(
                            at,
                            u,
                            waymark_core::journal::Kind::Error,
                        )
                    })
                    .collect(),
                ..Default::default()
            })
            .unwrap();
        let api = super::super::api_without_writer(store, Vec::new(), |_| Ok(()));
        for (user, path) in [
            ("alice", "alice"),
            ("alice/x", "alice%2Fx"),
            ("a", "a"),
            ("ab", "ab"),
        ] {
            let (status, json) =
                answer(&api, "GET", &format!("/v1/users/{path}/journal"), "").await;
            assert_eq!(status, StatusCode::OK, "{json}");
            assert_eq!(
                json["records"].as_array().unwrap().len(),
                1,
                "{user}: {json}"
            );
            assert_eq!(json["records"][0]["user"], user, "{json}");
            let (status, json) = answer(&api, "GET", &format!("/v1/users/{path}/export"), "").await;
            assert_eq!(status, StatusCode::OK, "{json}");
            assert_eq!(
                json["journal"].as_array().unwrap().len(),
                1,
                "{user}: {json}"
            );
            assert_eq!(json["journal"][0]["user"], user, "{json}");
            assert_eq!(json["state"]["id"], user, "{json}");
        }
    }

    #[tokio::test]
    async fn ingest_calls_answer_as_the_pure_functions_say() {
        let api = api();
        let (status, json) =
            answer(&api, "POST", "/v1/track", r#"{"userId":"u","event":"x"}"#).await;
        assert_eq!(
            (status, json),
            (StatusCode::OK, serde_json::json!({"success": true}))
        );
        let (status, json) = answer(
            &api,
            "POST",
            "/v1/batch",
            r#"{"batch":[{"userId":"u"},{"event":"x"}]}"#,
        )
        .await;
        assert_eq!(
            (status, &json["error"]["field"]),
            (StatusCode::BAD_REQUEST, &"batch[0].event".into())
        );
        let long = format!(r#"{{"userId":"u","event":"{}"}}"#, "x".repeat(4 << 20));
        let (status, json) = answer(&api, "POST", "/v1/track", &long).await;
        assert_eq!(
            (status, &json["error"]["field"]),
            (StatusCode::BAD_REQUEST, &"event".into())
        );
        assert!(
            json["error"]["message"]
                .as_str()
                .unwrap()
                .contains("limits.event_name_bytes")
        );
        let (status, json) = answer(&api, "PUT", "/v1/identify", "{}").await;
        assert_eq!(
            (status, &json["error"]["field"]),
            (StatusCode::METHOD_NOT_ALLOWED, &"method".into())
        );
    }
}
