//! The `wecom_welcome` kind: the welcome message (欢迎语) a customer gets
//! when they add a staff member in WeCom — the one message WeCom lets an
//! app send a customer by itself, once, within 20 seconds of the
//! `add_external_contact` push, answering its `WelcomeCode`
//! (`POST /cgi-bin/externalcontact/send_welcome_msg`). Its address is the
//! `welcome_code` of the event that started the journey: a send later than
//! 20 s after it is suppressed (`welcome_expired`) and `check --config`
//! refuses one that could not answer the event (E1004). A text and up to
//! nine attachments (an image, a link, a mini-program card). errcode 41051
//! (the customer was welcomed already) is a delivery: retrying cannot
//! help and the customer has a welcome; 41096 (another app is sending
//! one) is tried again.

use super::token::{self as weixin, Account, AccountKeys, Api};
use super::wecom::Gettoken;
use crate::channels::http;
use serde_json::{Value as Json, json};
use std::sync::Arc;
use toml::Table;
use waymark_channel::{
    BuildError, Channel, ChannelKind, ConfigError, Delivery, DeliveryError, Message, MessageFields,
    Receipt, Recipient,
};

/// The event a welcome answers, the property holding its code, and for
/// how long the code is good.
pub const ANSWERS: &str = "add_external_contact";
pub const WELCOME_CODE: &str = "welcome_code";
pub const WITHIN_SECS: i64 = 20;

/// errcodes: the customer was welcomed already; another app is sending a
/// welcome now.
const WELCOMED: i64 = 41051;
const ANOTHER_APP: i64 = 41096;

pub struct WecomWelcomeKind;

const KEYS: AccountKeys<'static> = AccountKeys {
    default_base_url: super::wecom::DEFAULT_BASE_URL,
    api: "the WeCom API address",
    paths: [
        "/cgi-bin/gettoken",
        "/cgi-bin/externalcontact/send_welcome_msg",
    ],
    id: ["corp_id", "the corporation's CorpID (企业ID)"],
    secret: [
        "corp_secret",
        "the Secret of the customer-contact app (客户联系), or of an app with the customer-contact permission",
    ],
    more: &[],
};

/// The fields a welcome takes: a text and the attachments' parts.
pub(super) const FIELDS: &[&str] = &[
    "text",
    "image_media_id",
    "image_url",
    "link_title",
    "link_url",
    "link_desc",
    "link_picurl",
    "miniprogram_title",
    "miniprogram_appid",
    "miniprogram_page",
    "miniprogram_pic_media_id",
];

impl ChannelKind for WecomWelcomeKind {
    type Settings = Account;

    fn name(&self) -> &'static str {
        "wecom_welcome"
    }

    fn message_fields(&self) -> MessageFields {
        MessageFields {
            required: Vec::new(),
            accepted: Some(FIELDS.to_vec()),
        }
    }

    fn recipient(&self) -> Recipient {
        Recipient::TriggerEvent {
            event: ANSWERS.into(),
            property: WELCOME_CODE.into(),
            within_secs: WITHIN_SECS,
            expired: "welcome_expired".into(),
        }
    }

    fn settings(&self, path: &str, table: &Table) -> Result<Account, Vec<ConfigError>> {
        let (account, ()) = weixin::read_account(path, table, &KEYS, |_| Some(()))?;
        Ok(account)
    }

    fn build(&self, _name: &str, account: Account) -> Result<Arc<dyn Channel>, BuildError> {
        let client = http::client(account.timeout)?;
        let source = Gettoken::of(&client, &account);
        Ok(Arc::new(WelcomeChannel {
            api: Api::new("wecom_welcome", client, source, account.send_url).budgeted(&account.id),
        }))
    }
}

struct WelcomeChannel {
    api: Api<Gettoken>,
}

/// The `send_welcome_msg` body, or why there is none.
fn body(message: &Message, code: &str) -> Result<Json, DeliveryError> {
    let (text, attachments) = content("wecom_welcome", &|name| message.text(name))?;
    let mut body = json!({ "welcome_code": code });
    if let Some(text) = text {
        body["text"] = json!({ "content": text });
    }
    if !attachments.is_empty() {
        body["attachments"] = Json::Array(attachments);
    }
    Ok(body)
}

/// A customer message's text and attachments (an image, a link, a
/// mini-program card) from its fields, as WeCom's customer-contact calls
/// take them (`send_welcome_msg`, `add_msg_template`); or why there are
/// none. `kind` names the channel kind in errors.
pub(super) fn content(
    kind: &str,
    field: &dyn Fn(&str) -> Option<String>,
) -> Result<(Option<String>, Vec<Json>), DeliveryError> {
    let mut attachments = Vec::new();
    match (field("image_media_id"), field("image_url")) {
        (Some(id), _) => attachments.push(json!({"msgtype": "image", "image": {"media_id": id}})),
        (None, Some(url)) => {
            attachments.push(json!({"msgtype": "image", "image": {"pic_url": url}}))
        }
        (None, None) => {}
    }
    if let Some(title) = field("link_title") {
        let url = field("link_url")
            .ok_or_else(|| DeliveryError::Permanent(format!("{kind}: a link needs `link_url`")))?;
        let mut link = json!({"title": title, "url": url});
        if let Some(desc) = field("link_desc") {
            link["desc"] = json!(desc);
        }
        if let Some(pic) = field("link_picurl") {
            link["picurl"] = json!(pic);
        }
        attachments.push(json!({"msgtype": "link", "link": link}));
    }
    if let Some(title) = field("miniprogram_title") {
        let part = |name: &str| {
            field(name).ok_or_else(|| {
                DeliveryError::Permanent(format!("{kind}: a mini-program card needs `{name}`"))
            })
        };
        attachments.push(json!({"msgtype": "miniprogram", "miniprogram": {
            "title": title,
            "appid": part("miniprogram_appid")?,
            "page": part("miniprogram_page")?,
            "pic_media_id": part("miniprogram_pic_media_id")?,
        }}));
    }
    let text = field("text");
    if text.is_none() && attachments.is_empty() {
        return Err(DeliveryError::Permanent(format!(
            "{kind}: a message needs `text` or an attachment (image, link, mini-program card)"
        )));
    }
    Ok((text, attachments))
}

impl Channel for WelcomeChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let code = message.address().ok_or_else(|| {
                DeliveryError::Permanent(
                    "wecom_welcome: no welcome code (the event had no WelcomeCode)".into(),
                )
            })?;
            let body = body(message, code)?.to_string();
            let (reply, what) = self.api.post(&message.idempotency_key, body).await?;
            match reply.errcode {
                WELCOMED => {
                    return Ok(Receipt {
                        provider_id: Some(format!("already welcomed ({WELCOMED})")),
                    });
                }
                ANOTHER_APP => {
                    return Err(DeliveryError::Retryable(format!(
                        "{what}: errcode {ANOTHER_APP} (another app is sending this customer's welcome)"
                    )));
                }
                _ => {}
            }
            reply.outcome(&what, self.api.errcodes())?;
            Ok(Receipt { provider_id: None })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(fields: Json) -> Message {
        serde_json::from_value(json!({
            "at": "2026-12-06T08:00:00Z",
            "user": "wecom:wm1",
            "channel": "welcome",
            "to": "CODE1",
            "fields": fields,
            "idempotency_key": "k",
        }))
        .unwrap()
    }

    #[test]
    fn a_welcome_takes_text_and_attachments_and_needs_one_of_them() {
        let m = message(json!({
            "text": "欢迎",
            "image_url": "https://img/1.png",
            "link_title": "新人礼",
            "link_url": "https://shop/gift",
            "miniprogram_title": "商城",
            "miniprogram_appid": "wxapp",
            "miniprogram_page": "pages/index",
            "miniprogram_pic_media_id": "MEDIA",
        }));
        let b = body(&m, "CODE1").unwrap();
        assert_eq!(b["welcome_code"], "CODE1");
        assert_eq!(b["text"]["content"], "欢迎");
        let kinds: Vec<&str> = b["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["msgtype"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["image", "link", "miniprogram"]);
        assert_eq!(b["attachments"][0]["image"]["pic_url"], "https://img/1.png");
        assert!(matches!(
            body(&message(json!({})), "C"),
            Err(DeliveryError::Permanent(m)) if m.contains("needs `text`")
        ));
        assert!(matches!(
            body(&message(json!({"link_title": "x"})), "C"),
            Err(DeliveryError::Permanent(m)) if m.contains("link_url")
        ));
    }

    #[test]
    fn its_address_is_the_add_events_welcome_code_for_20_seconds() {
        assert_eq!(
            WecomWelcomeKind.recipient(),
            Recipient::TriggerEvent {
                event: "add_external_contact".into(),
                property: "welcome_code".into(),
                within_secs: 20,
                expired: "welcome_expired".into(),
            }
        );
    }
}
