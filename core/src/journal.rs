//! The journal record: one shape shared by `simulate --format json`, the
//! daemon's per-user journal and the `log` channel (engine.md). `kind` and
//! the keys below are never renamed; keys that do not apply are omitted.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Enter,
    Send,
    Suppressed,
    Deferred,
    Coupon,
    Points,
    Tag,
    Untag,
    Set,
    Emit,
    Reward,
    Goal,
    Exit,
    Error,
    /// A split put the instance in an arm (`split`, `arm`).
    Split,
    /// A trigger matched but the journey did not take the user in
    /// (`reason`: `once`, `every`, `audience`, `window`, `budget`, `paused`).
    Skipped,
    /// A send was given up on (dead-lettered): `channel`, `reason`,
    /// `attempts`, `idempotency_key`.
    Failed,
    /// A dead-lettered send delivered when it was replayed.
    Delivered,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Enter => "enter",
            Kind::Send => "send",
            Kind::Suppressed => "suppressed",
            Kind::Deferred => "deferred",
            Kind::Coupon => "coupon",
            Kind::Points => "points",
            Kind::Tag => "tag",
            Kind::Untag => "untag",
            Kind::Set => "set",
            Kind::Emit => "emit",
            Kind::Reward => "reward",
            Kind::Goal => "goal",
            Kind::Exit => "exit",
            Kind::Error => "error",
            Kind::Split => "split",
            Kind::Skipped => "skipped",
            Kind::Failed => "failed",
            Kind::Delivered => "delivered",
        }
    }
}

fn rfc3339<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn rfc3339_opt<S: Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339(t, s),
        None => s.serialize_none(),
    }
}

/// One thing that happened to one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    #[serde(serialize_with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub user: String,
    /// The journey, rule or task the record comes from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub journey: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The step id within the plan (`s7`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The step's source line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// For sends: the address the channel delivers to (the `to` field of
    /// the step, else the user trait the channel reads, else the user id).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<serde_json::Value>,
    /// For `suppressed`, `exit` and `deferred`: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `deferred`: until when.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt",
        default
    )]
    pub until: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coupon: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "rfc3339_opt",
        default
    )]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// For `set`: the user path; for `emit`: the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// For `reward`: the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// For `error`: what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The instance within the user's history of this journey.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<u64>,
    /// Arms chosen by the instance's splits so far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arms: Option<std::collections::BTreeMap<String, String>>,
    /// For sends: the key the adapter passes to the provider.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// For `split`: the split and the arm the instance was put in.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub arm: Option<String>,
    /// For `split`: the arm is the split's holdout (an empty arm).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub holdout: Option<bool>,
    /// For `failed` and `delivered`: delivery attempts made.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub attempts: Option<u32>,
}

impl Record {
    pub fn new(at: DateTime<Utc>, user: &str, kind: Kind) -> Record {
        Record {
            at,
            user: user.to_string(),
            journey: None,
            version: None,
            step: None,
            line: None,
            kind,
            channel: None,
            template: None,
            to: None,
            fields: None,
            reason: None,
            until: None,
            coupon: None,
            code: None,
            expires_at: None,
            delta: None,
            balance: None,
            tag: None,
            path: None,
            value: None,
            event: None,
            task: None,
            message: None,
            instance: None,
            arms: None,
            idempotency_key: None,
            split: None,
            arm: None,
            holdout: None,
            attempts: None,
        }
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("records serialize")
    }
}
