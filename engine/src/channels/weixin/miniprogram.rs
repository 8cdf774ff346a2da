//! The `miniprogram` kind: 小程序 one-time subscribe messages
//! (`subscribeMessage.send`) to the user's mini-program openid. Each
//! message needs a grant: one accept of its template in the
//! mini-program's popup allows one send, with no expiry. The kind says so
//! ([`ChannelKind::spends_grants`]): the engine sends only while the user
//! holds a grant of the template and takes one per send, in the commit
//! that queues it. When WeChat still answers 43101 (the user refused, or
//! no accept is left), the error is a consent one: not retried, and the
//! engine takes the template's grants away.
//!
//! Tokens come from `POST /cgi-bin/stable_token` like the `wechat` kind's;
//! messages go to `POST /cgi-bin/message/subscribe/send`: the send's
//! template is the `template_id`, its `page` field the page a tap opens,
//! its other fields the `data` entries. The API takes no idempotency key,
//! so a send whose answer was lost may reach the user twice if retried.

use super::token::{self as weixin, Account, AccountKeys, Api, RETRYABLE, StableToken};
use crate::channels::http::{self, field_text};
use std::sync::Arc;
use toml::Table;
use waymark_channel::{
    BuildError, Channel, ChannelKind, ConfigError, Delivery, DeliveryError, Message, MessageFields,
    Receipt, Recipient,
};

pub const DEFAULT_BASE_URL: &str = "https://api.weixin.qq.com";

/// The user refused the template, or has no accept of it left.
const NO_GRANT: i64 = 43101;

/// The mini-program version a tap opens (`miniprogram_state`).
const STATES: &[&str] = &["formal", "trial", "developer"];
/// The languages WeChat shows a message's field names in.
const LANGS: &[&str] = &["zh_CN", "en_US", "zh_HK", "zh_TW"];

pub struct MiniprogramKind;

/// The settings, read: the app, and where a tap leads.
#[derive(Clone)]
pub struct MiniprogramSettings {
    account: Account,
    state: String,
    lang: String,
}

const KEYS: AccountKeys<'static> = AccountKeys {
    default_base_url: DEFAULT_BASE_URL,
    api: "the WeChat API address",
    paths: ["/cgi-bin/stable_token", "/cgi-bin/message/subscribe/send"],
    id: ["app_id", "the mini-program's AppID"],
    secret: ["app_secret", "the mini-program's AppSecret"],
    more: &["state", "lang"],
};

fn read(path: &str, table: &Table) -> Result<MiniprogramSettings, Vec<ConfigError>> {
    let (account, (state, lang)) = weixin::read_account(path, table, &KEYS, |s| {
        let mut one_of = |key: &str, allowed: &[&str], default: &str| match s.string(key) {
            None => Some(default.to_string()),
            Some(v) if allowed.contains(&v) => Some(v.to_string()),
            Some(v) => {
                s.error(key, format!("`{v}` is not one of {}", allowed.join(", ")));
                None
            }
        };
        let state = one_of("state", STATES, "formal");
        let lang = one_of("lang", LANGS, "zh_CN");
        Some((state?, lang?))
    })?;
    Ok(MiniprogramSettings {
        account,
        state,
        lang,
    })
}

impl ChannelKind for MiniprogramKind {
    type Settings = MiniprogramSettings;

    fn name(&self) -> &'static str {
        "miniprogram"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: vec!["template"],
            accepted: None,
        }
    }

    /// A mini-program has openids of its own (not the official account's).
    fn recipient(&self) -> Recipient {
        Recipient::Trait("miniprogram_openid".into())
    }

    fn spends_grants(&self) -> bool {
        true
    }

    fn settings(&self, path: &str, table: &Table) -> Result<Self::Settings, Vec<ConfigError>> {
        read(path, table)
    }

    fn build(&self, _name: &str, s: Self::Settings) -> Result<Arc<dyn Channel>, BuildError> {
        let client = http::client(s.account.timeout)?;
        let source = StableToken {
            kind: "miniprogram",
            client: client.clone(),
            url: s.account.token_url,
            app_id: s.account.id,
            app_secret: s.account.secret,
        };
        Ok(Arc::new(MiniprogramChannel {
            api: Api::new("miniprogram", client, source, s.account.send_url),
            state: s.state,
            lang: s.lang,
        }))
    }
}

struct MiniprogramChannel {
    api: Api<StableToken>,
    state: String,
    lang: String,
}

/// The `message/subscribe/send` body, or why there is none.
fn body(message: &Message, state: &str, lang: &str) -> Result<serde_json::Value, DeliveryError> {
    let openid = message.address().ok_or_else(|| {
        DeliveryError::Permanent(
            "miniprogram: no openid (no `to`, and the user has no `miniprogram_openid`)".into(),
        )
    })?;
    let template = message.template_name().map(str::to_string).ok_or_else(|| {
        DeliveryError::Permanent(
            "miniprogram: no template: a send needs `template \"…\"`, the template id".into(),
        )
    })?;
    let mut data = serde_json::Map::new();
    let mut page = None;
    for (k, v) in &message.fields {
        match k.as_str() {
            "template" => {}
            "page" => page = Some(field_text(v)).filter(|p| !p.is_empty()),
            _ => {
                data.insert(k.clone(), serde_json::json!({ "value": field_text(v) }));
            }
        }
    }
    let mut body = serde_json::json!({
        "touser": openid,
        "template_id": template,
        "data": data,
        "miniprogram_state": state,
        "lang": lang,
    });
    if let Some(page) = page {
        body["page"] = serde_json::Value::String(page);
    }
    Ok(body)
}

impl Channel for MiniprogramChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            let body = body(message, &self.state, &self.lang)?.to_string();
            let (reply, what) = self.api.post(key, body).await?;
            if reply.errcode == NO_GRANT {
                return Err(DeliveryError::Consent(format!(
                    "{what}: errcode {} {} (the user has no accept of this template left)",
                    reply.errcode, reply.errmsg
                )));
            }
            reply.outcome(&what, RETRYABLE)?;
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
    fn the_body_takes_the_template_the_page_and_the_other_fields_as_data() {
        let m = sample_message(
            "mp",
            "oMP_openid",
            Some("TPL_RESTOCK"),
            json!({ "page": "pages/item?id=7", "thing1": "围巾", "amount2": 99 }),
        );
        assert_eq!(
            body(&m, "trial", "zh_CN").unwrap(),
            json!({
                "touser": "oMP_openid",
                "template_id": "TPL_RESTOCK",
                "page": "pages/item?id=7",
                "data": { "thing1": { "value": "围巾" }, "amount2": { "value": "99" } },
                "miniprogram_state": "trial",
                "lang": "zh_CN",
            })
        );
    }

    #[test]
    fn settings_are_checked_and_named() {
        let errors = MiniprogramKind
            .settings(
                "channels.mp",
                &"app_id = \"wx1\"\nstate = \"beta\"\nlang = \"fr\"\n"
                    .parse()
                    .unwrap(),
            )
            .err()
            .unwrap_or_default();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.mp.app_secret",
                "channels.mp.state",
                "channels.mp.lang"
            ],
            "{errors:?}"
        );
        assert!(MiniprogramKind.spends_grants());
        assert!(!super::super::WechatKind.spends_grants());
    }
}
