//! Every route of the HTTP API in one table: the router is built from it
//! (`http::router` gives each endpoint its handler, matched exhaustively)
//! and the OpenAPI 3.1 document `GET /v1/openapi.json` answers is written
//! from it, so the document can neither name a route the daemon lacks nor
//! miss one. What each route does in detail is in `docs/http-api.md`.

use crate::config::Scope;
use serde_json::{Map, Value as Json, json};

/// What a route runs; `http::router` maps each to its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Healthz,
    Readyz,
    Metrics,
    OpenApi,
    Track,
    Identify,
    Batch,
    User,
    Erase,
    Export,
    Journal,
    SetConsent,
    UserConsent,
    ConsentExport,
    DeadLetters,
    Replay,
    Deploy,
    Journeys,
    Stats,
    Pause,
    Resume,
    PauseSends,
    ResumeSends,
    Deployments,
    Deployment,
    Rollback,
    Audit,
    WecomCheck,
    WecomPush,
    WechatCheck,
    WechatPush,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::Post => "post",
            Method::Delete => "delete",
        }
    }
}

/// What a successful answer is.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// JSON, of the schema of this name under `components.schemas`.
    Json(&'static str),
    /// Prometheus text.
    Metrics,
    /// JSON of this schema, or CSV with `format=csv`.
    JsonOrCsv(&'static str),
    /// Plain text (what a platform's callback expects back).
    Text,
}

pub(super) struct Route {
    pub endpoint: Endpoint,
    pub method: Method,
    /// As the router writes it, `{…}` for a path parameter.
    pub path: &'static str,
    /// The scope a token needs (`admin` has every scope); `None`: no token.
    pub scope: Option<Scope>,
    summary: &'static str,
    /// The request body's schema, if the route reads one.
    body: Option<&'static str>,
    answer: Answer,
    /// The statuses it answers besides 200, each in the error shape.
    errors: &'static [u16],
    /// Query parameters it reads: name, JSON Schema type, what it does.
    /// Any other is refused (400, field `query`).
    pub query: &'static [(&'static str, &'static str, &'static str)],
}

/// What every ingest route can answer besides 200.
const INGEST_ERRORS: &[u16] = &[400, 401, 403, 408, 413, 415, 503];

pub(super) const ROUTES: &[Route] = &[
    Route {
        endpoint: Endpoint::Healthz,
        method: Method::Get,
        path: "/healthz",
        scope: None,
        summary: "Liveness: 200 while the process serves HTTP",
        body: None,
        answer: Answer::Json("Status"),
        errors: &[],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Readyz,
        method: Method::Get,
        path: "/readyz",
        scope: None,
        summary: "Readiness: the store, the scripts and the outbox worker (503 when one fails, in the same shape)",
        body: None,
        answer: Answer::Json("Readiness"),
        errors: &[503],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Metrics,
        method: Method::Get,
        path: "/metrics",
        scope: None,
        summary: "Metrics in the Prometheus text format 0.0.4",
        body: None,
        answer: Answer::Metrics,
        errors: &[],
        query: &[],
    },
    Route {
        endpoint: Endpoint::OpenApi,
        method: Method::Get,
        path: "/v1/openapi.json",
        scope: None,
        summary: "This document: every route, its scope, body and answers (OpenAPI 3.1)",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Track,
        method: Method::Post,
        path: "/v1/track",
        scope: Some(Scope::Ingest),
        summary: "Take one Segment message (a track event unless its type says otherwise), answered once it is durable",
        body: Some("Message"),
        answer: Answer::Json("Taken"),
        errors: INGEST_ERRORS,
        query: &[],
    },
    Route {
        endpoint: Endpoint::Identify,
        method: Method::Post,
        path: "/v1/identify",
        scope: Some(Scope::Ingest),
        summary: "Take one Segment message (an identify unless its type says otherwise), answered once it is durable",
        body: Some("Message"),
        answer: Answer::Json("Taken"),
        errors: INGEST_ERRORS,
        query: &[],
    },
    Route {
        endpoint: Endpoint::Batch,
        method: Method::Post,
        path: "/v1/batch",
        scope: Some(Scope::Ingest),
        summary: "Take many Segment messages item by item (a refused item is listed, the others taken), answered once they are durable",
        body: Some("Batch"),
        answer: Answer::Json("Taken"),
        errors: INGEST_ERRORS,
        query: &[],
    },
    Route {
        endpoint: Endpoint::User,
        method: Method::Get,
        path: "/v1/users/{id}",
        scope: Some(Scope::Read),
        summary: "A user's profile, journeys and the step each is at, timers, points, coupons and tasks",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Erase,
        method: Method::Delete,
        path: "/v1/users/{id}",
        scope: Some(Scope::Admin),
        summary: "Erase a person (PIPL) by any of their ids: state, timers, journal, consent ledger, pending sends and dead letters of every id merged into them; the keys their data was sealed under are destroyed",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500, 503],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Export,
        method: Method::Get,
        path: "/v1/users/{id}/export",
        scope: Some(Scope::Read),
        summary: "Everything stored of a user, with their whole journal",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Journal,
        method: Method::Get,
        path: "/v1/users/{id}/journal",
        scope: Some(Scope::Read),
        summary: "A user's journal, oldest first (at most 10,000 records)",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 500],
        query: &[
            (
                "after",
                "integer",
                "only records written after this point: the `next` of the page before (default: from the first)",
            ),
            (
                "limit",
                "integer",
                "records in the page, at least (a batch's records are not split), default and at most 10000",
            ),
            (
                "last",
                "integer",
                "instead: the newest this many records, at most 10000",
            ),
        ],
    },
    Route {
        endpoint: Endpoint::SetConsent,
        method: Method::Post,
        path: "/v1/users/{id}/consent",
        scope: Some(Scope::Ingest),
        summary: "Record that a user gave or withdrew consent on a channel, or accepted subscribe messages of a template (grants), with evidence: an entry in the consent ledger; answered once it is durable",
        body: Some("Consent"),
        answer: Answer::Json("Object"),
        errors: INGEST_ERRORS,
        query: &[],
    },
    Route {
        endpoint: Endpoint::UserConsent,
        method: Method::Get,
        path: "/v1/users/{id}/consent",
        scope: Some(Scope::Read),
        summary: "A user's consent per channel now, and every change of it, oldest first (the ledger, also of ids merged into them)",
        body: None,
        answer: Answer::JsonOrCsv("Object"),
        errors: &[400, 401, 403, 404, 500],
        query: &[(
            "format",
            "string",
            "json (default) or csv: the ledger alone, one change a line",
        )],
    },
    Route {
        endpoint: Endpoint::ConsentExport,
        method: Method::Get,
        path: "/v1/consent",
        scope: Some(Scope::Read),
        summary: "Every consent change of every user in a time range, oldest first, for an auditor (JSON or CSV)",
        body: None,
        answer: Answer::JsonOrCsv("Object"),
        errors: &[400, 401, 403, 500],
        query: &[
            (
                "from",
                "string",
                "changes at or after this time (RFC 3339, or a date: its midnight UTC); default: the first",
            ),
            (
                "to",
                "string",
                "changes before this time (RFC 3339 or a date); default: up to now",
            ),
            ("format", "string", "json (default) or csv"),
            (
                "limit",
                "integer",
                "entries in the answer, default and at most 100000",
            ),
            (
                "after",
                "string",
                "the `next` of the answer before (JSON field, or the CSV answer's Waymark-Next header): the page after it",
            ),
        ],
    },
    Route {
        endpoint: Endpoint::DeadLetters,
        method: Method::Get,
        path: "/v1/deadletters",
        scope: Some(Scope::Read),
        summary: "Sends given up on, with their last error",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[401, 403, 500],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Replay,
        method: Method::Post,
        path: "/v1/deadletters/{seq}/replay",
        scope: Some(Scope::Admin),
        summary: "Put a dead letter back in the outbox to be tried again",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500, 503],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Deploy,
        method: Method::Post,
        path: "/v1/deploy",
        scope: Some(Scope::Admin),
        summary: "Replace the deployed scripts with those sent, if they check clean (422 with the diagnostics otherwise)",
        body: Some("Deploy"),
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 408, 413, 415, 422, 500, 503],
        query: &[(
            "dry_run",
            "boolean",
            "true: deploy nothing; answer what would change (file diffs, steps, users waiting at changed steps and what happens to them)",
        )],
    },
    Route {
        endpoint: Endpoint::Journeys,
        method: Method::Get,
        path: "/v1/journeys",
        scope: Some(Scope::Read),
        summary: "The deployed journeys: name, title, version, whether paused",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[401, 403, 500],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Stats,
        method: Method::Get,
        path: "/v1/journeys/{name}/stats",
        scope: Some(Scope::Read),
        summary: "A journey's numbers per version and per split arm: entered, goals, sends, suppressions, lift",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Pause,
        method: Method::Post,
        path: "/v1/journeys/{name}/pause",
        scope: Some(Scope::Admin),
        summary: "Pause a journey: no new entries, instances hold at their next step",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500, 503],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Resume,
        method: Method::Post,
        path: "/v1/journeys/{name}/resume",
        scope: Some(Scope::Admin),
        summary: "Resume a paused journey",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500, 503],
        query: &[],
    },
    Route {
        endpoint: Endpoint::PauseSends,
        method: Method::Post,
        path: "/v1/pause",
        scope: Some(Scope::Admin),
        summary: "Stop every non-transactional send at once (journeys keep running): each is held, deferred with reason global_pause, until POST /v1/resume; or dropped (suppressed) with ?drop=true",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 500, 503],
        query: &[(
            "drop",
            "boolean",
            "true: sends stopped by the pause are suppressed (reason global_pause) rather than held until it ends",
        )],
    },
    Route {
        endpoint: Endpoint::ResumeSends,
        method: Method::Post,
        path: "/v1/resume",
        scope: Some(Scope::Admin),
        summary: "End the global pause of sends; held sends go on at once",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 500, 503],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Deployments,
        method: Method::Get,
        path: "/v1/deployments",
        scope: Some(Scope::Read),
        summary: "Every deployment, newest first: when, by whom, how, what changed, the source hash",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 500],
        query: &[
            (
                "before",
                "integer",
                "only deployments with a smaller id (paging)",
            ),
            (
                "limit",
                "integer",
                "at most this many (default 50, at most 1000)",
            ),
        ],
    },
    Route {
        endpoint: Endpoint::Deployment,
        method: Method::Get,
        path: "/v1/deployments/{id}",
        scope: Some(Scope::Read),
        summary: "One deployment with its script files and the diff from the deployment before it",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 500],
        query: &[],
    },
    Route {
        endpoint: Endpoint::Rollback,
        method: Method::Post,
        path: "/v1/deployments/{id}/rollback",
        scope: Some(Scope::Admin),
        summary: "Deploy the script files of an earlier deployment again (checked against today's config)",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 404, 422, 500, 503],
        query: &[(
            "cancel_removed",
            "boolean",
            "true: end the running instances of journeys the rollback removes",
        )],
    },
    Route {
        endpoint: Endpoint::Audit,
        method: Method::Get,
        path: "/v1/audit",
        scope: Some(Scope::Admin),
        summary: "The audit log, oldest first: deploys, rollbacks, pauses, resumes, erasures and replays, with who and when",
        body: None,
        answer: Answer::Json("Object"),
        errors: &[400, 401, 403, 500],
        query: &[
            (
                "after",
                "integer",
                "only entries with a larger sequence number (paging)",
            ),
            (
                "limit",
                "integer",
                "at most this many (default 100, at most 1000)",
            ),
        ],
    },
    Route {
        endpoint: Endpoint::WecomCheck,
        method: Method::Get,
        path: "/v1/callbacks/wecom/{name}",
        scope: None,
        summary: "WeCom's URL check of the callback app `name` ([callbacks.wecom.NAME]): answers the decrypted echostr once msg_signature holds",
        body: None,
        answer: Answer::Text,
        errors: &[400, 401, 404],
        query: WECOM_QUERY_CHECK,
    },
    Route {
        endpoint: Endpoint::WecomPush,
        method: Method::Post,
        path: "/v1/callbacks/wecom/{name}",
        scope: None,
        summary: "A WeCom push (customer contact, group chat and tag changes): signature checked, decrypted, taken as an event on the customer; answered (empty) once durable, a redelivery dropped",
        body: Some("Xml"),
        answer: Answer::Text,
        errors: &[400, 401, 404, 413, 503],
        query: WECOM_QUERY_PUSH,
    },
    Route {
        endpoint: Endpoint::WechatCheck,
        method: Method::Get,
        path: "/v1/callbacks/wechat/{name}",
        scope: None,
        summary: "An official account's URL check of the callback app `name` ([callbacks.wechat.NAME]): answers echostr once signature holds",
        body: None,
        answer: Answer::Text,
        errors: &[400, 401, 404],
        query: WECHAT_QUERY,
    },
    Route {
        endpoint: Endpoint::WechatPush,
        method: Method::Post,
        path: "/v1/callbacks/wechat/{name}",
        scope: None,
        summary: "An official-account push (follow, scan, menu, message, subscribe-message answers), plaintext or safe mode: taken as an event on the follower; answered `success` once durable, a redelivery dropped",
        body: Some("Xml"),
        answer: Answer::Text,
        errors: &[400, 401, 404, 413, 503],
        query: WECHAT_QUERY,
    },
];

const WECOM_QUERY_PUSH: &[(&str, &str, &str)] = &[
    (
        "msg_signature",
        "string",
        "SHA-1 of the sorted token, timestamp, nonce and ciphertext",
    ),
    ("timestamp", "string", "the push's time"),
    ("nonce", "string", "the push's random string"),
];

const WECOM_QUERY_CHECK: &[(&str, &str, &str)] = &[
    (
        "msg_signature",
        "string",
        "SHA-1 of the sorted token, timestamp, nonce and echostr",
    ),
    ("timestamp", "string", "the check's time"),
    ("nonce", "string", "the check's random string"),
    (
        "echostr",
        "string",
        "the encrypted string to answer, decrypted",
    ),
];

const WECHAT_QUERY: &[(&str, &str, &str)] = &[
    (
        "signature",
        "string",
        "SHA-1 of the sorted token, timestamp and nonce",
    ),
    ("timestamp", "string", "the push's time"),
    ("nonce", "string", "the push's random string"),
    (
        "echostr",
        "string",
        "the URL check's string, answered as it is",
    ),
    ("openid", "string", "the follower (also in the body)"),
    (
        "encrypt_type",
        "string",
        "aes: safe mode, the body holds <Encrypt>; raw or absent: plaintext",
    ),
    (
        "msg_signature",
        "string",
        "safe mode: SHA-1 of the sorted token, timestamp, nonce and ciphertext",
    ),
];

pub(super) fn scope_name(scope: &Scope) -> &'static str {
    match scope {
        Scope::Ingest => "ingest",
        Scope::Read => "read",
        Scope::Admin => "admin",
    }
}

/// What an error status means, as its answer's description.
fn error_description(status: u16) -> &'static str {
    match status {
        400 => "The request or a field of it is not valid; `error.field` names it",
        401 => "No token, or a token that is not configured",
        403 => "The token lacks the route's scope",
        404 => "No such user, journey or dead letter",
        408 => "The body did not arrive within http.body_read_timeout",
        413 => "The body (also once gunzipped), or the batch, is past its limit",
        415 => "A Content-Encoding other than gzip, x-gzip or identity",
        422 => "The scripts have errors; the answer lists the diagnostics",
        500 => "The store could not be read",
        503 => "The store cannot take writes now (Retry-After), or the daemon is stopping",
        _ => "An error",
    }
}

/// The schemas the operations name.
fn schemas() -> Json {
    let message = json!({
        "type": "object",
        "description": "A Segment message; other fields (context, integrations, …) are ignored",
        "properties": {
            "type": {"enum": ["track", "identify", "page", "screen", "group", "alias"]},
            "userId": {"type": ["string", "number", "null"], "description": "1 to 256 bytes"},
            "anonymousId": {"type": ["string", "number", "null"], "description": "the user when there is no userId"},
            "event": {"type": "string", "minLength": 1, "description": "track: at most limits.event_name_bytes"},
            "name": {"type": "string", "description": "page and screen: the page's name"},
            "properties": {"type": "object", "description": "at most limits.properties_bytes as JSON"},
            "traits": {"type": "object", "description": "identify and group: at most limits.properties_bytes as JSON"},
            "groupId": {"type": ["string", "number"]},
            "previousId": {"type": ["string", "number"]},
            "timestamp": {"type": "string", "format": "date-time"},
            "sentAt": {"type": "string", "format": "date-time"},
            "messageId": {"type": "string", "minLength": 1, "description": "a message whose messageId was taken within 7 days is answered but not applied again"},
            "writeKey": {"type": "string", "description": "the token, when no Authorization header is sent"}
        }
    });
    json!({
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {
                        "field": {"type": "string", "description": "what is wrong: a field of the body, or authorization, body, path, …"},
                        "message": {"type": "string"}
                    }
                }
            }
        },
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"type": "string"}}
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "checks"],
            "properties": {
                "status": {"enum": ["ready", "not ready"]},
                "checks": {
                    "type": "object",
                    "description": "store, scripts and outbox: `ok` or what is wrong",
                    "additionalProperties": {"type": "string"}
                }
            }
        },
        "Taken": {
            "type": "object",
            "required": ["success"],
            "properties": {
                "success": {"const": true},
                "taken": {"type": "integer", "minimum": 0},
                "refused": {"type": "array", "items": {"type": "object"}},
                "unsupported": {"type": "array", "items": {"type": "object"}}
            }
        },
        "Message": message,
        "Batch": {
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {
                    "type": "array",
                    "items": {"$ref": "#/components/schemas/Message"},
                    "description": "at most limits.batch_items messages"
                },
                "writeKey": {"type": "string"}
            }
        },
        "Deploy": {
            "type": "object",
            "required": ["files"],
            "properties": {
                "files": {
                    "type": "object",
                    "description": "file name to the script's text: the whole new set",
                    "additionalProperties": {"type": "string"}
                },
                "cancel_removed": {"type": ["boolean", "null"]}
            }
        },
        "Consent": {
            "type": "object",
            "required": ["granted"],
            "additionalProperties": false,
            "description": "consent on a channel (give `channel`), or grants of a one-time subscribe message (give `template`)",
            "properties": {
                "channel": {"type": "string", "minLength": 1, "description": "the channel, as sends name it (sms, wechat, email, …); required without `template`"},
                "granted": {"type": "boolean", "description": "true: consent given (or grants added); false: withdrawn (or every grant of the template taken away)"},
                "template": {"type": "string", "minLength": 1, "description": "a subscribe-message template id: the change is to its grants, one send each"},
                "grants": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "with `template` and granted true: how many grants to add (default 1)"},
                "purpose": {"enum": ["marketing", "subscribe_message"], "description": "marketing for a channel, subscribe_message for a template"},
                "evidence": {"type": "string", "description": "what shows the change (a form's id, a call's recording); at most consent.evidence_bytes"},
                "messageId": {"type": "string", "description": "the id of the request in the caller's system, kept with the entry"}
            }
        },
        "Object": {"type": "object"}
    })
}

/// The OpenAPI 3.1 document of the API of this `version` of Waymark.
pub(super) fn openapi(version: &str) -> Json {
    let mut paths = Map::new();
    for route in ROUTES {
        let mut operation = Map::new();
        operation.insert("operationId".into(), json!(format!("{:?}", route.endpoint)));
        operation.insert("summary".into(), json!(route.summary));
        let parameters: Vec<Json> = route
            .path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
            })
            .chain(route.query.iter().map(|(name, kind, what)| {
                json!({"name": name, "in": "query", "required": false, "description": what, "schema": {"type": kind}})
            }))
            .collect();
        if !parameters.is_empty() {
            operation.insert("parameters".into(), json!(parameters));
        }
        if route.body == Some("Xml") {
            operation.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "description": "the platform's XML push; at most limits.body_bytes",
                    "content": {"text/xml": {"schema": {"type": "string"}}}
                }),
            );
        } else if let Some(body) = route.body {
            operation.insert(
                "requestBody".into(),
                json!({
                    "required": true,
                    "description": "JSON, or gzipped JSON with Content-Encoding: gzip; at most limits.body_bytes",
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}}
                }),
            );
        }
        let mut answers = Map::new();
        let ok = match route.answer {
            Answer::Json(schema) => json!({
                "description": "Done",
                "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
            }),
            Answer::Metrics => json!({
                "description": "Prometheus text format 0.0.4",
                "content": {"text/plain": {"schema": {"type": "string"}}}
            }),
            Answer::Text => json!({
                "description": "Plain text, as the platform expects",
                "content": {"text/plain": {"schema": {"type": "string"}}}
            }),
            Answer::JsonOrCsv(schema) => json!({
                "description": "Done: JSON, or with format=csv RFC 4180 CSV with a header line",
                "content": {
                    "application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}},
                    "text/csv": {"schema": {"type": "string"}}
                }
            }),
        };
        answers.insert("200".into(), ok);
        for status in route.errors {
            let schema = match (route.endpoint, status) {
                (Endpoint::Readyz, 503) => "Readiness",
                _ => "Error",
            };
            answers.insert(
                status.to_string(),
                json!({
                    "description": error_description(*status),
                    "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}}
                }),
            );
        }
        operation.insert("responses".into(), Json::Object(answers));
        match &route.scope {
            Some(scope) => {
                operation.insert("security".into(), json!([{"bearer": []}, {"basic": []}]));
                operation.insert("x-waymark-scope".into(), json!(scope_name(scope)));
            }
            None => {
                operation.insert("security".into(), json!([]));
            }
        }
        let item = paths
            .entry(route.path)
            .or_insert_with(|| Json::Object(Map::new()));
        if let Json::Object(item) = item {
            item.insert(route.method.name().into(), Json::Object(operation));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Waymark",
            "version": version,
            "description": "Journeys as code: ingest Segment-shaped events, read users and journeys, deploy scripts. Every route, with its errors, is described in docs/http-api.md of the repository."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer TOKEN"},
                "basic": {"type": "http", "scheme": "basic", "description": "the token as the user name, as Segment's SDKs send their write key"}
            }
        }
    })
}
