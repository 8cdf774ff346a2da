//! The console at `/ui`: server-rendered HTML pages for marketers and
//! operators — journeys with their numbers, a journey's flow painted with
//! them and its daily chart, a user's profile and timeline, dead letters,
//! deployments with their diffs, the audit log — and forms to pause,
//! resume, replay and roll back. No script runs in the page and every
//! asset is in the binary (no Node build step).
//!
//! Signing in exchanges an API token (`read` to view, `admin` to act) for
//! a session: a random id in an HttpOnly, SameSite=Strict cookie, kept in
//! memory (a restart signs everyone out). Every form that acts carries the
//! session's CSRF token, checked before anything is done; a request
//! without it is refused with 403. With no tokens configured (loopback
//! only) every visitor gets an admin session at once, still with CSRF.
//! Actions go through the same writer commands as the HTTP API, and land
//! in the same audit log under the token's name.

mod chart;
mod pages;

use super::http::AppState;
use crate::config::Scope;
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a session lasts without being used.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; signing in past it drops the least recently used.
const MAX_SESSIONS: usize = 10_000;
const COOKIE: &str = "waymark_session";

/// Signed-in sessions, by their cookie's id.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

#[derive(Clone)]
pub(crate) struct Session {
    /// The token's name: who acts, in the audit log.
    pub actor: String,
    pub admin: bool,
    pub csrf: String,
    used: Instant,
}

impl Sessions {
    fn open(&self, actor: String, admin: bool) -> String {
        let id = random_hex();
        let session = Session {
            actor,
            admin,
            csrf: random_hex(),
            used: Instant::now(),
        };
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, s| s.used.elapsed() < SESSION_IDLE);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.used)
                .map(|(k, _)| k.clone())
        {
            map.remove(&oldest);
        }
        map.insert(id.clone(), session);
        id
    }

    fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.by_id.lock().unwrap_or_else(|e| e.into_inner());
        let session = map.get_mut(id)?;
        if session.used.elapsed() >= SESSION_IDLE {
            map.remove(id);
            return None;
        }
        session.used = Instant::now();
        Some(session.clone())
    }

    fn close(&self, id: &str) {
        self.by_id
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS has randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The console's routes, under `/ui`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(pages::journeys))
        .route("/ui/", get(|| async { Redirect::to("/ui") }))
        .route("/ui/style.css", get(style))
        .route("/ui/login", get(login_form).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/journeys/{name}", get(pages::journey))
        .route("/ui/journeys/{name}/pause", post(pages::pause))
        .route("/ui/journeys/{name}/resume", post(pages::resume))
        .route("/ui/users", get(find_user))
        .route("/ui/users/{id}", get(pages::user))
        .route("/ui/deadletters", get(pages::dead_letters))
        .route("/ui/deadletters/{seq}/replay", post(pages::replay))
        .route("/ui/deployments", get(pages::deployments))
        .route("/ui/deployments/{id}", get(pages::deployment))
        .route("/ui/deployments/{id}/rollback", post(pages::rollback))
        .route("/ui/audit", get(pages::audit))
}

/// A page's answer: HTML with the console's security headers.
pub(crate) fn html(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn style() -> Response {
    let mut response = include_str!("style.css").into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=300"),
    );
    response
}

fn cookie_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_string())
        })
}

fn set_cookie(id: &str) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_IDLE.as_secs()
    ))
    .expect("hex is a valid header value")
}

/// Who is signed in; or, with no tokens configured, a fresh admin session
/// (its cookie in the answer). `Err` is the answer to give instead: the
/// sign-in page.
pub(crate) fn signed_in(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Session, Option<HeaderValue>), Response> {
    if let Some(session) = cookie_id(headers).and_then(|id| state.sessions.get(&id)) {
        return Ok((session, None));
    }
    if state.tokens.is_empty() {
        let id = state.sessions.open(super::http::NO_TOKEN.to_string(), true);
        let session = state.sessions.get(&id).expect("just opened");
        return Ok((session, Some(set_cookie(&id))));
    }
    Err(Redirect::to("/ui/login").into_response())
}

/// For a form that acts: the session, if admin, with the form's CSRF token
/// checked; else the refusal to answer.
pub(crate) fn acting(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<Session, Response> {
    let (session, _) = signed_in(state, headers)?;
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    if !crate::constant_time_eq(given.as_bytes(), session.csrf.as_bytes()) {
        return Err(pages::error_page(
            StatusCode::FORBIDDEN,
            "This form has no valid CSRF token (it may come from another site, or from before you signed in again). Nothing was done.",
        ));
    }
    if !session.admin {
        return Err(pages::error_page(
            StatusCode::FORBIDDEN,
            "Your token has the `read` scope: acting needs an `admin` token.",
        ));
    }
    Ok(session)
}

async fn login_form(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if signed_in(&state, &headers).is_ok() {
        return Redirect::to("/ui").into_response();
    }
    pages::login_page(StatusCode::OK, None)
}

async fn login(
    State(state): State<AppState>,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return pages::login_page(StatusCode::BAD_REQUEST, Some("The form was not readable."));
    };
    let given = form.get("token").map(|t| t.trim()).unwrap_or("");
    let found = state
        .tokens
        .iter()
        .find(|t| crate::constant_time_eq(t.token.as_bytes(), given.as_bytes()));
    let Some(token) = found else {
        return pages::login_page(StatusCode::UNAUTHORIZED, Some("Unknown token."));
    };
    let admin = token.scopes.contains(&Scope::Admin);
    if !admin && !token.scopes.contains(&Scope::Read) {
        return pages::login_page(
            StatusCode::FORBIDDEN,
            Some("This token has neither the `read` nor the `admin` scope."),
        );
    }
    let id = state.sessions.open(token.name.clone(), admin);
    let mut response = Redirect::to("/ui").into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, set_cookie(&id));
    response
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let Ok((session, _)) = signed_in(&state, &headers) else {
        return Redirect::to("/ui/login").into_response();
    };
    let given = form.get("csrf").map(String::as_str).unwrap_or("");
    if !crate::constant_time_eq(given.as_bytes(), session.csrf.as_bytes()) {
        return pages::error_page(StatusCode::FORBIDDEN, "This form has no valid CSRF token.");
    }
    if let Some(id) = cookie_id(&headers) {
        state.sessions.close(&id);
    }
    let mut response = Redirect::to("/ui/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "waymark_session=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0",
        ),
    );
    response
}

async fn find_user(Query(query): Query<HashMap<String, String>>) -> Response {
    match query.get("id").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(id) => Redirect::to(&format!("/ui/users/{}", pages::path_part(id))).into_response(),
        None => Redirect::to("/ui").into_response(),
    }
}

/// Path parameters as the API reads them (percent-decoded, UTF-8).
pub(crate) type Name = Path<String>;
