//! The `wechat` kind: 公众号 template messages to a follower's openid. It
//! gets its access token from `POST /cgi-bin/stable_token` — not
//! `cgi-bin/token`, which would invalidate the token every other process
//! of the account uses — caches it (see [`super::weixin`]), forcing a
//! refresh only when a plain one hands back the token just rejected, and
//! sends with `POST /cgi-bin/message/template/send`. The send's template is
//! the `template_id`, its `url` field the link, its other fields the `data`
//! entries, and the message's key the `client_msg_id`, with which WeChat
//! drops a repeat of the same message to the same openid.

use super::token::{self as weixin, Account, AccountKeys, Api, StableToken};
use crate::channels::http;
use std::sync::Arc;
use toml::Table;
use waymark_channel::ConfigError;
use waymark_channel::Message;
use waymark_channel::{
    BuildError, Channel, ChannelKind, Delivery, DeliveryError, MessageFields, Receipt, Recipient,
};

pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// `client_msg_id` is at most this long.
const CLIENT_MSG_ID_LIMIT: usize = 64;

pub struct WechatKind;

/// The settings, read: the account (`app_id`, `app_secret`) and nothing more.
#[derive(Clone)]
pub struct WechatSettings(Account);

const KEYS: AccountKeys<'static> = AccountKeys {
    default_base_url: DEFAULT_BASE_URL,
    api: "the WeChat API address",
    paths: ["/cgi-bin/stable_token", "/cgi-bin/message/template/send"],
    id: ["app_id", "the official account's AppID"],
    secret: ["app_secret", "the official account's AppSecret"],
    more: &[],
};

fn read(path: &str, table: &Table) -> Result<WechatSettings, Vec<ConfigError>> {
    let (account, ()) = weixin::read_account(path, table, &KEYS, |_| Some(()))?;
    Ok(WechatSettings(account))
}

impl ChannelKind for WechatKind {
    type Settings = WechatSettings;

    fn name(&self) -> &'static str {
        "wechat"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: vec!["template"],
            accepted: None,
        }
    }

    fn recipient(&self) -> Recipient {
        Recipient::Trait("openid".into())
    }

    fn settings(&self, path: &str, table: &Table) -> Result<Self::Settings, Vec<ConfigError>> {
        read(path, table)
    }

    fn build(&self, _name: &str, s: Self::Settings) -> Result<Arc<dyn Channel>, BuildError> {
        let WechatSettings(account) = s;
        let client = http::client(account.timeout)?;
        let source = StableToken {
            kind: "wechat",
            client: client.clone(),
            url: account.token_url,
            app_id: account.id,
            app_secret: account.secret,
        };
        Ok(Arc::new(WechatChannel {
            api: Api::new("wechat", client, source, account.send_url),
        }))
    }
}

struct WechatChannel {
    api: Api<StableToken>,
}

/// The `message/template/send` body, or why there is none.
fn body(message: &Message, key: &str) -> Result<serde_json::Value, DeliveryError> {
    let openid = message.address().ok_or_else(|| {
        DeliveryError::Permanent("wechat: no openid (no `to`, and the user has no `openid`)".into())
    })?;
    let fields = &message.fields;
    let template = message.template_name().map(str::to_string).ok_or_else(|| {
        DeliveryError::Permanent(
            "wechat: no template: a send needs `template \"…\"`, the template_id".into(),
        )
    })?;
    let (data, link) = weixin::template_data(fields, "url");
    let mut body = serde_json::json!({
        "touser": openid,
        "template_id": template,
        "data": data,
        "client_msg_id": http::bounded_key(key, CLIENT_MSG_ID_LIMIT),
    });
    if let Some(link) = link {
        body["url"] = serde_json::Value::String(link);
    }
    Ok(body)
}

impl Channel for WechatChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            let body = body(message, key)?.to_string();
            let (reply, _) = self.api.send(key, body).await?;
            Ok(Receipt {
                provider_id: reply.text("msgid"),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use waymark_channel::conformance::sample_message;

    #[test]
    fn the_body_takes_the_template_the_link_and_the_other_fields_as_data() {
        let m = sample_message(
            "wechat",
            "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
            Some("TPL_1"),
            json!({ "url": "https://example.invalid/o/1", "amount": 9.5, "name": "Li" }),
        );
        assert_eq!(
            body(&m, "k1").unwrap(),
            json!({
                "touser": "o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
                "template_id": "TPL_1",
                "url": "https://example.invalid/o/1",
                "data": { "amount": { "value": "9.5" }, "name": { "value": "Li" } },
                "client_msg_id": "k1",
            })
        );
        let long_key = "k".repeat(80);
        assert_eq!(
            body(&m, &long_key).unwrap()["client_msg_id"]
                .as_str()
                .unwrap()
                .len(),
            64
        );
    }

    #[test]
    fn missing_settings_are_each_named() {
        let errors = WechatKind
            .settings("channels.mp", &"base_url = \"mailto:x\"\n".parse().unwrap())
            .err()
            .unwrap_or_default();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.mp.base_url",
                "channels.mp.app_id",
                "channels.mp.app_secret",
            ],
            "{errors:?}"
        );
    }
}
