//! The conformance check every channel kind should pass, built in or from
//! another crate: its settings validate without panicking and name every
//! bad key by its TOML path, its message fields are consistent, it builds,
//! it delivers a good message and the same message again under the same
//! idempotency key (retries must not be refused), and it refuses what it
//! cannot deliver — no address, missing fields — as a *permanent* failure,
//! never a panic or a hang. Call [`check_kind`] from a test, pointing the
//! settings at a real provider the test started (a loopback HTTP or SMTP
//! server); the test then asserts what that provider received.

use crate::{AnyKind, ChannelKind, DeliveryError, Message, Recipient};
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
/// `message` is one the provider accepts (with `to`, the kind's required
/// fields and, if it needs one, a template).
pub async fn check_kind<K: ChannelKind>(
    kind: &K,
    settings: &Table,
    message: &Message,
) -> Delivered {
    let name = ChannelKind::name(kind);
    assert!(
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
        "a kind's name is a lowercase word, got {name:?}"
    );
    let fields = ChannelKind::message_fields(kind);
    if let Some(accepted) = &fields.accepted {
        for required in &fields.required {
            assert!(
                accepted.contains(required),
                "kind `{name}` requires field `{required}` but does not accept it"
            );
        }
    }

    let path = "channels.conformance";
    let errors = |table: &Table| kind.settings(path, table).err().unwrap_or_default();
    let validated = AnyKind::validate(kind, path, settings)
        .unwrap_or_else(|e| panic!("kind `{name}`: the good settings do not validate: {e:?}"));
    // Nothing must panic on an empty table; what it reports is up to the kind.
    for e in errors(&Table::new()) {
        assert!(
            e.path.starts_with(path),
            "kind `{name}`: error {e:?} is not under {path}"
        );
    }
    let mut unknown = settings.clone();
    unknown.insert("no_such_setting".into(), Value::Boolean(true));
    let found = errors(&unknown);
    assert!(
        found
            .iter()
            .any(|e| e.path == format!("{path}.no_such_setting")),
        "kind `{name}`: an unknown setting must be an error at its path, got {found:?}"
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
            let found = errors(&bad);
            assert!(
                found
                    .iter()
                    .any(|e| e.path.starts_with(&format!("{path}.{key}"))),
                "kind `{name}`: `{key} = {wrong}` must be an error at {path}.{key}, got {found:?}"
            );
        }
    }

    let channel = AnyKind::build(kind, "conformance", &validated)
        .unwrap_or_else(|e| panic!("kind `{name}`: the good settings do not build: {e}"));
    let deliver = |mut message: Message, key: String| {
        let channel = channel.clone();
        message.idempotency_key = key;
        async move {
            tokio::time::timeout(DELIVERY_LIMIT, channel.deliver(&message))
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

    if let Recipient::Trait(trait_name) = ChannelKind::recipient(kind) {
        let mut nowhere = message.clone();
        nowhere.to = String::new();
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
        bare.fields.clear();
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
        bare.fields.clear();
        if let Err(e) = deliver(bare, format!("conformance/{name}/bare")).await {
            panic!("kind `{name}` takes any fields but refused a message with none: {e}");
        }
        accepted += 1;
    } else {
        // A kind with a closed list of optional fields may still need one
        // of them (`wecom`: `text` or `markdown`): without any, it delivers
        // or refuses for good, never asks to be retried.
        let mut bare = message.clone();
        bare.fields.clear();
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

/// Delivering a message under another idempotency key, for tests that
/// send one message as several (`channel.deliver_keyed(&m, "k2")`).
pub trait DeliverKeyed {
    fn deliver_keyed(&self, message: &Message, key: &str) -> crate::Delivery<'_>;
}

impl DeliverKeyed for dyn crate::Channel {
    fn deliver_keyed(&self, message: &Message, key: &str) -> crate::Delivery<'_> {
        let mut message = message.clone();
        message.idempotency_key = key.to_string();
        Box::pin(async move { self.deliver(&message).await })
    }
}

/// The channel `kind` builds from `settings`; panics with the problems
/// when they do not validate or build.
pub fn build<K: ChannelKind>(kind: &K, settings: &Table) -> std::sync::Arc<dyn crate::Channel> {
    let name = ChannelKind::name(kind);
    let validated = AnyKind::validate(kind, "channels.test", settings)
        .unwrap_or_else(|e| panic!("kind `{name}`: the settings do not validate: {e:?}"));
    AnyKind::build(kind, "test", &validated)
        .unwrap_or_else(|e| panic!("kind `{name}`: the settings do not build: {e}"))
}

/// A message for conformance checks and adapter tests: user `u1`,
/// journey `conformance` v1, step `s1`, decided at 2025-11-11T01:00:00Z.
/// `fields` must be a JSON object (anything else gives no fields).
pub fn sample_message(
    channel: &str,
    to: &str,
    template: Option<&str>,
    fields: serde_json::Value,
) -> Message {
    let at = chrono::DateTime::parse_from_rfc3339("2025-11-11T01:00:00Z")
        .expect("a valid timestamp")
        .to_utc();
    Message {
        at,
        user: "u1".into(),
        journey: Some("conformance".into()),
        version: Some("v1".into()),
        step: Some("s1".into()),
        channel: channel.into(),
        to: to.into(),
        template: template.map(str::to_string),
        fields: match fields {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
        idempotency_key: "conformance/sample".into(),
    }
}
