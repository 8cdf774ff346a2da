//! The `wecom` kind: 企业微信 application messages (`text` or `markdown`)
//! to an employee's WeCom user id, for staff follow-up. It gets an access
//! token with `GET /cgi-bin/gettoken`, caches it (see [`super::weixin`]),
//! and sends with `POST /cgi-bin/message/send`, asking WeCom to drop
//! duplicates of the same content within [`DUPLICATE_CHECK_INTERVAL`] so
//! that a retry after a lost answer does not show twice. A user WeCom lists
//! as invalid or unlicensed did not get the message: a permanent failure.

use super::token::{self as weixin, Account, AccountKeys, Api, Fetched, TokenSource};
use crate::channels::http;
use reqwest::{Client, Url};
use std::sync::Arc;
use toml::Table;
use waymark_channel::ConfigError;
use waymark_channel::Message;
use waymark_channel::{
    BuildError, Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt, Recipient,
};

pub const DEFAULT_BASE_URL: &str = "https://qyapi.weixin.qq.com";

/// Seconds within which WeCom drops a repeat of the same message (its
/// default; the most it allows is 4 hours).
pub const DUPLICATE_CHECK_INTERVAL: u64 = 1800;

pub struct WecomKind;

/// The settings, read: the account (`corp_id`, `corp_secret`) and the
/// application's `agent_id`.
#[derive(Clone)]
pub struct WecomSettings {
    account: Account,
    agent_id: i64,
}

const KEYS: AccountKeys<'static> = AccountKeys {
    default_base_url: DEFAULT_BASE_URL,
    api: "the WeCom API address",
    paths: ["/cgi-bin/gettoken", "/cgi-bin/message/send"],
    id: ["corp_id", "the corporation's CorpID (企业ID)"],
    secret: [
        "corp_secret",
        "the application's Secret, from its page in the admin console",
    ],
    more: &["agent_id"],
};

fn read(path: &str, table: &Table) -> Result<WecomSettings, Vec<ConfigError>> {
    let (account, agent_id) = weixin::read_account(path, table, &KEYS, |s| {
        if table.contains_key("agent_id") {
            s.integer("agent_id", 1, i64::from(u32::MAX))
        } else {
            s.error("agent_id", "missing: the application's AgentId, a number");
            None
        }
    })?;
    Ok(WecomSettings { account, agent_id })
}

impl ChannelKind for WecomKind {
    type Settings = WecomSettings;

    fn name(&self) -> &'static str {
        "wecom"
    }

    /// Exactly one of `text` and `markdown`; which one cannot be said here,
    /// so a message with neither or both fails permanently at delivery.
    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: Vec::new(),
            accepted: Some(vec!["text", "markdown"]),
        }
    }

    fn recipient(&self) -> Recipient {
        Recipient::Trait("wecom_userid".into())
    }

    fn settings(&self, path: &str, table: &Table) -> Result<Self::Settings, Vec<ConfigError>> {
        read(path, table)
    }

    fn build(&self, _name: &str, s: Self::Settings) -> Result<Arc<dyn Channel>, BuildError> {
        let WecomSettings { account, agent_id } = s;
        let client = http::client(account.timeout)?;
        let source = Gettoken::of(&client, &account);
        Ok(Arc::new(WecomChannel {
            api: Api::new("wecom", client, source, account.send_url).budgeted(&account.id),
            agent_id,
        }))
    }
}

/// `GET /cgi-bin/gettoken?corpid=…&corpsecret=…`.
pub(super) struct Gettoken {
    pub(super) client: Client,
    pub(super) url: Url,
    pub(super) corp_id: String,
    pub(super) corp_secret: String,
}

impl Gettoken {
    /// The token endpoint of a WeCom kind's account.
    pub(super) fn of(client: &Client, account: &Account) -> Gettoken {
        Gettoken {
            client: client.clone(),
            url: account.token_url.clone(),
            corp_id: account.id.clone(),
            corp_secret: account.secret.clone(),
        }
    }
}

impl TokenSource for Gettoken {
    async fn fetch(&self, _force: bool) -> Result<Fetched, DeliveryError> {
        let what = format!("wecom GET {}", self.url);
        let mut url = self.url.clone();
        url.query_pairs_mut()
            .append_pair("corpid", &self.corp_id)
            .append_pair("corpsecret", &self.corp_secret);
        let reply = weixin::call(&what, self.client.get(url)).await?;
        weixin::fetched(
            &what,
            &reply,
            weixin::Errcodes::Wecom,
            "check corp_id and corp_secret",
        )
    }

    fn can_force(&self) -> bool {
        false
    }
}

struct WecomChannel {
    api: Api<Gettoken>,
    agent_id: i64,
}

/// The message body, or why there is none.
fn content(message: &Message) -> Result<(&'static str, String), DeliveryError> {
    match (message.text("text"), message.text("markdown")) {
        (Some(text), None) => Ok(("text", text)),
        (None, Some(markdown)) => Ok(("markdown", markdown)),
        (Some(_), Some(_)) => Err(DeliveryError::Permanent(
            "wecom: a message has `text` or `markdown`, not both".into(),
        )),
        (None, None) => Err(DeliveryError::Permanent(
            "wecom: a message needs a `text` or a `markdown` field".into(),
        )),
    }
}

impl Channel for WecomChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            let user = message.address().ok_or_else(|| {
                DeliveryError::Permanent(
                    "wecom: no user id (no `to`, and the user has no `wecom_userid`)".into(),
                )
            })?;
            let (msgtype, content) = content(message)?;
            let body = serde_json::json!({
                "touser": user,
                "msgtype": msgtype,
                "agentid": self.agent_id,
                msgtype: { "content": content },
                "enable_duplicate_check": 1,
                "duplicate_check_interval": DUPLICATE_CHECK_INTERVAL,
            })
            .to_string();
            let (reply, what) = self.api.send(key, body).await?;
            for list in ["invaliduser", "unlicenseduser"] {
                if let Some(users) = reply.text(list) {
                    return Err(DeliveryError::Permanent(format!(
                        "{what}: WeCom did not deliver to {users} ({list}: not in the application's visible range, or without a license)"
                    )));
                }
            }
            Ok(Receipt {
                provider_id: reply.text("msgid"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waymark_channel::conformance::sample_message;

    #[test]
    fn missing_settings_are_each_named_and_agent_id_must_be_a_number() {
        let errors = WecomKind
            .settings("channels.staff", &"agent_id = \"x\"\n".parse().unwrap())
            .err()
            .unwrap_or_default();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.staff.corp_id",
                "channels.staff.corp_secret",
                "channels.staff.agent_id",
            ],
            "{errors:?}"
        );
        let ok = "corp_id = \"ww1\"\ncorp_secret = \"s\"\nagent_id = 1000002\n";
        assert!(
            WecomKind
                .settings("c", &ok.parse().unwrap())
                .err()
                .unwrap_or_default()
                .is_empty()
        );
    }

    #[test]
    fn a_message_takes_text_or_markdown_but_not_both_or_neither() {
        let m = |fields| sample_message("wecom", "zhangsan", None, fields);
        assert_eq!(
            content(&m(serde_json::json!({ "text": "hi" }))).unwrap(),
            ("text", "hi".to_string())
        );
        assert_eq!(
            content(&m(serde_json::json!({ "markdown": "**hi**" }))).unwrap(),
            ("markdown", "**hi**".to_string())
        );
        for fields in [
            serde_json::json!({ "text": "a", "markdown": "b" }),
            serde_json::json!({}),
        ] {
            assert!(matches!(
                content(&m(fields)),
                Err(DeliveryError::Permanent(_))
            ));
        }
    }
}
