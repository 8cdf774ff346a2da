//! The conformance check every channel kind should pass, built in or from
//! another crate: its settings validate without panicking and name every
//! bad key by its TOML path, its message fields are consistent, it builds,
//! it delivers a good message and the same message again under the same
//! idempotency key (retries must not be refused), and it refuses what it
//! cannot deliver — no address, missing fields — as a *permanent* failure,
//! never a panic or a hang. Call [`check_kind`] from a test, pointing the
//! settings at a real provider the test started (a loopback HTTP or SMTP
//! server); the test then asserts what that provider received.

use super::{ChannelKind, DeliveryError, Recipient};
use crate::journal::Record;
use std::time::Duration;
use toml::{Table, Value};

/// How long one delivery may take before the check calls it a hang.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

/// What the check delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The idempotency key of the good message (delivered twice).
    pub key: String,
    /// How many deliveries the provider should have accepted.
    pub accepted: usize,
}

/// Runs the conformance check; panics with what is wrong.
///
/// `settings` must validate and build against the test's provider;
/// `message` is a `send` record the provider accepts (with `to`, the
/// kind's required fields and, if it needs one, a template).
pub async fn check_kind(kind: &dyn ChannelKind, settings: &Table, message: &Record) -> Delivered {
    let name = kind.name();
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "a kind's name is a lowercase word, got {name:?}"
    );
    let fields = kind.message_fields();
    if let Some(accepted) = &fields.accepted {
        for required in &fields.required {
            assert!(
                accepted.contains(required),
                "kind `{name}` requires field `{required}` but does not accept it"
            );
        }
    }

    let path = "channels.conformance";
    let errors = kind.validate(path, settings);
    assert!(
        errors.is_empty(),
        "kind `{name}`: the good settings do not validate: {errors:?}"
    );
    // Nothing must panic on an empty table; what it reports is up to the kind.
    for e in kind.validate(path, &Table::new()) {
        assert!(
            e.path.starts_with(path),
            "kind `{name}`: error {e:?} is not under {path}"
        );
    }
    let mut unknown = settings.clone();
    unknown.insert("no_such_setting".into(), Value::Boolean(true));
    let errors = kind.validate(path, &unknown);
    assert!(
        errors
            .iter()
            .any(|e| e.path == format!("{path}.no_such_setting")),
        "kind `{name}`: an unknown setting must be an error at its path, got {errors:?}"
    );
    for key in settings.keys() {
        for wrong in [
            Value::Array(Vec::new()),
            Value::Boolean(false),
            Value::Float(f64::NAN),
        ] {
            let mut bad = settings.clone();
            let was = bad.insert(key.clone(), wrong.clone());
            if was.as_ref().is_some_and(|w| w.same_type(&wrong)) {
                continue;
            }
            let errors = kind.validate(path, &bad);
            assert!(
                errors
                    .iter()
                    .any(|e| e.path.starts_with(&format!("{path}.{key}"))),
                "kind `{name}`: `{key} = {wrong}` must be an error at {path}.{key}, got {errors:?}"
            );
        }
    }

    let channel = kind
        .build("conformance", settings)
        .unwrap_or_else(|e| panic!("kind `{name}`: the good settings do not build: {e}"));
    let deliver = |record: Record, key: String| {
        let channel = channel.clone();
        async move {
            tokio::time::timeout(DELIVERY_LIMIT, channel.deliver(&record, &key))
                .await
                .unwrap_or_else(|_| {
                    panic!("kind `{name}`: a delivery took over {DELIVERY_LIMIT:?}")
                })
        }
    };

    let key = format!("conformance/{name}/1");
    for attempt in 1..=2 {
        if let Err(e) = deliver(message.clone(), key.clone()).await {
            panic!("kind `{name}`: delivering the good message (attempt {attempt}) failed: {e}");
        }
    }
    let mut accepted = 2;

    if let Recipient::Trait(trait_name) = kind.recipient() {
        let mut nowhere = message.clone();
        nowhere.to = None;
        match deliver(nowhere, format!("conformance/{name}/no-address")).await {
            Err(DeliveryError::Permanent(_)) => {}
            other => panic!(
                "kind `{name}` reads `user.{trait_name}`: a message without an address must fail permanently, got {other:?}"
            ),
        }
    }
    let needs_template = fields.required.contains(&"template");
    let needs_fields = fields.required.iter().any(|f| *f != "template");
    if needs_template || needs_fields {
        let mut bare = message.clone();
        bare.template = None;
        bare.fields = Some(serde_json::json!({}));
        match deliver(bare, format!("conformance/{name}/bare")).await {
            Err(DeliveryError::Permanent(_)) => {}
            other => panic!(
                "kind `{name}` requires {:?}: a message without them must fail permanently, got {other:?}",
                fields.required
            ),
        }
    } else if fields.accepted.is_none() {
        // A kind that takes any fields takes none, too.
        let mut bare = message.clone();
        bare.fields = None;
        if let Err(e) = deliver(bare, format!("conformance/{name}/bare")).await {
            panic!("kind `{name}` takes any fields but refused a message with none: {e}");
        }
        accepted += 1;
    } else {
        // A kind with a closed list of optional fields may still need one
        // of them (`wecom`: `text` or `markdown`): without any, it delivers
        // or refuses for good, never asks to be retried.
        let mut bare = message.clone();
        bare.fields = None;
        match deliver(bare, format!("conformance/{name}/bare")).await {
            Ok(_) => accepted += 1,
            Err(DeliveryError::Permanent(_)) => {}
            Err(e) => panic!(
                "kind `{name}`: a message without fields must be delivered or refused permanently, got {e}"
            ),
        }
    }
    Delivered { key, accepted }
}

/// A `send` record for conformance checks and adapter tests.
pub fn sample_send(
    channel: &str,
    to: Option<&str>,
    template: Option<&str>,
    fields: serde_json::Value,
) -> Record {
    let at = chrono::DateTime::parse_from_rfc3339("2025-11-11T01:00:00Z")
        .expect("a valid timestamp")
        .to_utc();
    let mut r = Record::new(at, "u1", crate::journal::Kind::Send);
    r.journey = Some("conformance".into());
    r.version = Some("v1".into());
    r.step = Some("s1".into());
    r.channel = Some(channel.into());
    r.template = template.map(str::to_string);
    r.to = to.map(str::to_string);
    r.fields = Some(fields);
    r
}
