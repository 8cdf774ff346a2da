//! The Weixin (微信) kinds: `wecom` (企业微信 application messages),
//! `wecom_welcome` (the welcome message a customer gets on adding staff),
//! `wecom_mass` (a customer message a staff member confirms),
//! `wechat` (公众号 template messages), and the one-time subscribe
//! messages that each spend a grant: `miniprogram` (小程序) and
//! `wechat_subscribe` (公众号 subscription notices). All call Tencent's JSON
//! APIs with an access token that [`token`] caches per channel and renews
//! when the provider says it expired, and all read `{errcode, errmsg}`
//! answers the same way. [`callback`] opens the pushes they make and
//! [`inbound`] turns them into events.

mod budget;
pub mod callback;
pub mod inbound;
mod mass;
mod miniprogram;
pub mod token;
mod wechat;
mod wecom;
mod welcome;

pub use mass::WecomMassKind;
pub use miniprogram::{MiniprogramKind, WechatSubscribeKind};
pub use wechat::WechatKind;
pub use wecom::WecomKind;
pub use welcome::WecomWelcomeKind;
