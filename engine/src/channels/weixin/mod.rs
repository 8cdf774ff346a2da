//! The Weixin (微信) kinds: `wecom` (企业微信 application messages) and
//! `wechat` (公众号 template messages). Both call Tencent's JSON APIs with
//! an access token that [`token`] caches per channel and renews when the
//! provider says it expired, and both read `{errcode, errmsg}` answers the
//! same way.

pub mod token;
mod wechat;
mod wecom;

pub use wechat::WechatKind;
pub use wecom::WecomKind;
