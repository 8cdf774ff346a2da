//! The kinds of one-time subscribe messages: `miniprogram` (小程序
//! `subscribeMessage.send` to the user's mini-program openid) and
//! `wechat_subscribe` (公众号 subscription notices, `subscribe/bizsend`, to
//! the user's official-account openid). Each message needs a grant: one accept of its template in the
//! mini-program's popup allows one send, with no expiry. The kind says so
//! ([`ChannelKind::spends_grants`]): the engine sends only while the user
//! holds a grant of the template and takes one per send, in the commit
//! that queues it. When WeChat still answers 43101 (the user refused, or
//! no accept is left), the error is a consent one: not retried, and the
//! engine takes the template's grants away.
//!
//! Tokens come from `POST /cgi-bin/stable_token` like the `wechat` kind's;
//! messages go to `POST /cgi-bin/message/subscribe/send` (mini-program)
//! or `/cgi-bin/message/subscribe/bizsend` (official account): the send's
//! template is the `template_id`, its `page` field what a tap opens, its
//! other fields the `data` entries. Neither API takes an idempotency key,
//! so a send whose answer was lost may reach the user twice if retried.

use super::token::{self as weixin, Account, AccountKeys, Api, StableToken};
use crate::channels::http;
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

/// 公众号 one-time subscription notices (`subscribe/bizsend`).
pub struct WechatSubscribeKind;

/// Which of the two a channel is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flavor {
    Miniprogram,
    OfficialAccount,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Miniprogram => "miniprogram",
            Flavor::OfficialAccount => "wechat_subscribe",
        }
    }
}

/// The settings, read: the app, and where a tap leads.
#[derive(Clone)]
pub struct SubscribeSettings {
    flavor: Flavor,
    account: Account,
    /// Mini-program: `miniprogram_state` and `lang`.
    state: String,
    lang: String,
    /// Official account: the mini-program a tap opens (its `page` a path
    /// in it), if any; else `page` is a web address.
    jump_app_id: Option<String>,
}

const MINIPROGRAM_KEYS: AccountKeys<'static> = AccountKeys {
    default_base_url: DEFAULT_BASE_URL,
    api: "the WeChat API address",
    paths: ["/cgi-bin/stable_token", "/cgi-bin/message/subscribe/send"],
    id: ["app_id", "the mini-program's AppID"],
    secret: ["app_secret", "the mini-program's AppSecret"],
    more: &["state", "lang"],
};

const OFFICIAL_ACCOUNT_KEYS: AccountKeys<'static> = AccountKeys {
    default_base_url: DEFAULT_BASE_URL,
    api: "the WeChat API address",
    paths: [
        "/cgi-bin/stable_token",
        "/cgi-bin/message/subscribe/bizsend",
    ],
    id: ["app_id", "the official account's AppID"],
    secret: ["app_secret", "the official account's AppSecret"],
    more: &["miniprogram_app_id"],
};

fn read(flavor: Flavor, path: &str, table: &Table) -> Result<SubscribeSettings, Vec<ConfigError>> {
    let keys = match flavor {
        Flavor::Miniprogram => &MINIPROGRAM_KEYS,
        Flavor::OfficialAccount => &OFFICIAL_ACCOUNT_KEYS,
    };
    let (account, (state, lang, jump_app_id)) = weixin::read_account(path, table, keys, |s| {
        if flavor == Flavor::OfficialAccount {
            let jump = s.string("miniprogram_app_id").map(str::to_string);
            return Some((String::new(), String::new(), jump));
        }
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
        Some((state?, lang?, None))
    })?;
    Ok(SubscribeSettings {
        flavor,
        account,
        state,
        lang,
        jump_app_id,
    })
}

/// What both kinds share but their name and address.
macro_rules! subscribe_kind {
    ($kind:ty, $flavor:expr, $address:literal) => {
        impl ChannelKind for $kind {
            type Settings = SubscribeSettings;

            fn name(&self) -> &'static str {
                $flavor.name()
            }

            fn message_fields(&self) -> MessageFields {
                MessageFields {
                    required: vec!["template"],
                    accepted: None,
                }
            }

            fn recipient(&self) -> Recipient {
                Recipient::Trait($address.into())
            }

            fn spends_grants(&self) -> bool {
                true
            }

            fn settings(
                &self,
                path: &str,
                table: &Table,
            ) -> Result<Self::Settings, Vec<ConfigError>> {
                read($flavor, path, table)
            }

            fn build(
                &self,
                _name: &str,
                s: Self::Settings,
            ) -> Result<Arc<dyn Channel>, BuildError> {
                build(s)
            }
        }
    };
}

// A mini-program has openids of its own (not the official account's).
subscribe_kind!(MiniprogramKind, Flavor::Miniprogram, "miniprogram_openid");
subscribe_kind!(WechatSubscribeKind, Flavor::OfficialAccount, "openid");

fn build(s: SubscribeSettings) -> Result<Arc<dyn Channel>, BuildError> {
    let client = http::client(s.account.timeout)?;
    let kind = s.flavor.name();
    let source = StableToken {
        kind,
        client: client.clone(),
        url: s.account.token_url.clone(),
        app_id: s.account.id.clone(),
        app_secret: s.account.secret.clone(),
    };
    Ok(Arc::new(SubscribeChannel {
        api: Api::new(kind, client, source, s.account.send_url.clone()),
        settings: s,
    }))
}

struct SubscribeChannel {
    api: Api<StableToken>,
    settings: SubscribeSettings,
}

/// The send body, or why there is none.
fn body(message: &Message, s: &SubscribeSettings) -> Result<serde_json::Value, DeliveryError> {
    let kind = s.flavor.name();
    let openid = message.address().ok_or_else(|| {
        DeliveryError::Permanent(format!(
            "{kind}: no openid (no `to`, and the user has no `{}`)",
            match s.flavor {
                Flavor::Miniprogram => "miniprogram_openid",
                Flavor::OfficialAccount => "openid",
            }
        ))
    })?;
    let template = message.template_name().map(str::to_string).ok_or_else(|| {
        DeliveryError::Permanent(format!(
            "{kind}: no template: a send needs `template \"…\"`, the template id"
        ))
    })?;
    let (data, page) = weixin::template_data(&message.fields, "page");
    let mut body = serde_json::json!({
        "touser": openid,
        "template_id": template,
        "data": data,
    });
    match s.flavor {
        Flavor::Miniprogram => {
            body["miniprogram_state"] = s.state.clone().into();
            body["lang"] = s.lang.clone().into();
            if let Some(page) = page {
                body["page"] = page.into();
            }
        }
        Flavor::OfficialAccount => match (page, &s.jump_app_id) {
            (Some(path), Some(appid)) => {
                body["miniprogram"] = serde_json::json!({ "appid": appid, "pagepath": path });
            }
            (Some(url), None) => body["page"] = url.into(),
            (None, _) => {}
        },
    }
    Ok(body)
}

impl Channel for SubscribeChannel {
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            let key = message.idempotency_key.as_str();
            let body = body(message, &self.settings)?.to_string();
            let (reply, what) = self.api.post(key, body).await?;
            if reply.errcode == NO_GRANT {
                return Err(DeliveryError::Consent(format!(
                    "{what}: errcode {} {} (the user has no accept of this template left)",
                    reply.errcode, reply.errmsg
                )));
            }
            reply.outcome(&what, self.api.errcodes())?;
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
        let settings = |table: &str| {
            read(Flavor::Miniprogram, "channels.mp", &table.parse().unwrap())
                .ok()
                .unwrap()
        };
        let mini = settings("app_id = \"wx1\"\napp_secret = \"s\"\nstate = \"trial\"\n");
        assert_eq!(
            body(&m, &mini).unwrap(),
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
    fn a_subscription_notice_opens_a_web_page_or_a_mini_program_path() {
        let m = sample_message(
            "oa",
            "oOA_openid",
            Some("TPL_NOTICE"),
            json!({ "page": "pages/order?id=1", "thing1": "已发货" }),
        );
        let oa = |table: &str| {
            read(
                Flavor::OfficialAccount,
                "channels.oa",
                &table.parse().unwrap(),
            )
            .ok()
            .unwrap()
        };
        let to_app = oa("app_id = \"wx1\"\napp_secret = \"s\"\nminiprogram_app_id = \"wxmini\"\n");
        assert_eq!(
            body(&m, &to_app).unwrap(),
            json!({
                "touser": "oOA_openid",
                "template_id": "TPL_NOTICE",
                "miniprogram": { "appid": "wxmini", "pagepath": "pages/order?id=1" },
                "data": { "thing1": { "value": "已发货" } },
            })
        );
        let to_web = oa("app_id = \"wx1\"\napp_secret = \"s\"\n");
        assert_eq!(body(&m, &to_web).unwrap()["page"], "pages/order?id=1");
        assert!(body(&m, &to_web).unwrap().get("miniprogram").is_none());
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
        assert!(MiniprogramKind.spends_grants() && WechatSubscribeKind.spends_grants());
        assert!(!super::super::WechatKind.spends_grants());
    }
}
