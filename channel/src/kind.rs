//! The two traits an adapter implements. A [`ChannelKind`] is the factory,
//! registered once on the engine builder: its name (`kind = "sms"` in the
//! config), the fields its messages take, where it finds a user's address,
//! how it reads its settings (once, into a typed value) and how it builds a
//! [`Channel`] from that value. [`AnyKind`] is the same kind behind a
//! pointer, for a registry of kinds of different setting types: validating
//! gives a [`Validated`] that building takes, so settings are read exactly
//! once.

use crate::settings::ConfigError;
use crate::{DeliveryError, Message, Receipt};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use toml::Table;

/// The fields a kind's messages need and accept.
#[derive(Debug, Clone, Default)]
pub struct MessageFields {
    /// Fields every `send` step on this kind must give (`template`
    /// included, when the kind needs one).
    pub required: Vec<&'static str>,
    /// Every field the kind reads; `None` for any fields.
    pub accepted: Option<Vec<&'static str>>,
}

/// Where a channel finds the address to send to, unless a `send` step
/// gives a `to` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The user id is the address.
    UserId,
    /// A user trait holds it (`email`, `phone`, `openid`); a user without
    /// it is not sent to (the send is suppressed with reason `no_address`).
    Trait(String),
    /// A property of the event the journey answers (a WeCom welcome
    /// message's `welcome_code` on `add_external_contact`), good for
    /// `within_secs` after that event only: a send later is suppressed with
    /// reason `expired`, and `check --config` refuses a send of the kind in
    /// a journey that `event` does not start, or after a wait.
    TriggerEvent {
        event: String,
        property: String,
        within_secs: i64,
        expired: String,
    },
}

/// One delivery in flight.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Result<Receipt, DeliveryError>> + Send + 'a>>;

/// A configured channel: delivers messages.
pub trait Channel: Send + Sync {
    /// Delivers one message. `message.idempotency_key` is the same on every
    /// retry of it. Must not panic; anything the provider refuses is a
    /// [`DeliveryError`] of the right class.
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a>;

    /// The staff tasks its messages go through, for a channel of a kind
    /// with a [`staff_trait`](ChannelKind::staff_trait).
    fn staff_tasks(&self) -> Option<&dyn crate::StaffTasks> {
        None
    }
}

/// Why a kind could not build a channel from valid settings.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A local resource the channel needs (a log file, a folder).
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A client could not be made (TLS roots, a transport).
    #[error("cannot make a client: {0}")]
    Client(String),
    /// Settings validated by one kind were given to another: a bug in the
    /// caller.
    #[error("settings validated by kind `{validated}` were given to kind `{kind}`")]
    WrongKind {
        validated: &'static str,
        kind: &'static str,
    },
}

/// A kind of channel.
pub trait ChannelKind: Send + Sync + 'static {
    /// The settings, read and validated.
    type Settings: Clone + Send + Sync + 'static;

    /// The kind's name in the config: a lowercase word.
    fn name(&self) -> &'static str;

    /// The fields its messages need and accept (`check --config` checks
    /// `send` steps against them).
    fn message_fields(&self) -> MessageFields;

    /// Where its messages find the user's address when a `send` step gives
    /// no `to` field: the user id (the default) or a user trait, whose
    /// absence suppresses the send with reason `no_address`.
    fn recipient(&self) -> Recipient {
        Recipient::UserId
    }

    /// Whether each message needs a grant of its template the person gave
    /// (a one-time subscribe message: one accept, one send). The engine
    /// then sends only while the user holds one, and takes one per send.
    fn spends_grants(&self) -> bool {
        false
    }

    /// For a kind whose messages go out only once a staff member confirms
    /// them in their own client (a WeCom customer mass send): the user
    /// trait naming the staff member a send is for, when the `send` step
    /// gives no `staff` field. The engine then hands its sends to the
    /// channel's [`StaffTasks`](crate::StaffTasks) instead of
    /// [`Channel::deliver`], and a journey may `wait for confirmation`.
    fn staff_trait(&self) -> Option<&'static str> {
        None
    }

    /// Reads the settings table of the channel at `path`
    /// (`channels.NAME`): the typed settings, or every problem, each with
    /// its TOML path. No I/O.
    fn settings(&self, path: &str, table: &Table) -> Result<Self::Settings, Vec<ConfigError>>;

    /// Makes the channel named `name` (clients, token caches) from settings
    /// [`settings`](ChannelKind::settings) read.
    fn build(&self, name: &str, settings: Self::Settings) -> Result<Arc<dyn Channel>, BuildError>;
}

/// Settings a kind has read and validated, ready for [`AnyKind::build`].
#[derive(Clone)]
pub struct Validated {
    kind: &'static str,
    value: Arc<dyn Any + Send + Sync>,
}

impl Validated {
    /// Settings of kind `kind`, read. [`AnyKind::validate`] makes these;
    /// a registry that accepts anything (a test) may make its own.
    pub fn new<T: Send + Sync + 'static>(kind: &'static str, settings: T) -> Validated {
        Validated {
            kind,
            value: Arc::new(settings),
        }
    }
}

impl std::fmt::Debug for Validated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Settings hold secrets: show only whose they are.
        write!(f, "Validated({} settings)", self.kind)
    }
}

/// A [`ChannelKind`] of any settings type, for registries.
pub trait AnyKind: Send + Sync {
    fn name(&self) -> &'static str;
    fn message_fields(&self) -> MessageFields;
    fn recipient(&self) -> Recipient;
    fn spends_grants(&self) -> bool;
    fn staff_trait(&self) -> Option<&'static str>;
    /// Reads and validates the settings once.
    fn validate(&self, path: &str, table: &Table) -> Result<Validated, Vec<ConfigError>>;
    /// Builds the channel `name` from what [`validate`](AnyKind::validate) gave.
    fn build(&self, name: &str, settings: &Validated) -> Result<Arc<dyn Channel>, BuildError>;
}

impl<K: ChannelKind> AnyKind for K {
    fn name(&self) -> &'static str {
        ChannelKind::name(self)
    }

    fn message_fields(&self) -> MessageFields {
        ChannelKind::message_fields(self)
    }

    fn recipient(&self) -> Recipient {
        ChannelKind::recipient(self)
    }

    fn spends_grants(&self) -> bool {
        ChannelKind::spends_grants(self)
    }

    fn staff_trait(&self) -> Option<&'static str> {
        ChannelKind::staff_trait(self)
    }

    fn validate(&self, path: &str, table: &Table) -> Result<Validated, Vec<ConfigError>> {
        let settings = self.settings(path, table)?;
        Ok(Validated::new(ChannelKind::name(self), settings))
    }

    fn build(&self, name: &str, settings: &Validated) -> Result<Arc<dyn Channel>, BuildError> {
        let kind = ChannelKind::name(self);
        let typed = settings
            .value
            .downcast_ref::<K::Settings>()
            .filter(|_| settings.kind == kind)
            .ok_or(BuildError::WrongKind {
                validated: settings.kind,
                kind,
            })?;
        ChannelKind::build(self, name, typed.clone())
    }
}
