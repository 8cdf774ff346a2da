//! A WeCom and official-account push client, written from the platforms'
//! documentation (not taken from the daemon): the encryption, the
//! envelope and the signature, for the tests that push to the daemon's
//! callback routes. Shared by `#[path]`.

#![allow(dead_code)]

use aes::cipher::{BlockEncryptMut, KeyIvInit, block_padding::NoPadding};
use base64::Engine as _;
use sha1::{Digest, Sha1};
use waymark_tests::http;

/// WeCom's published example app: token, EncodingAESKey, corp id.
pub const TOKEN: &str = "QDG6eK";
pub const AES_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
pub const CORP: &str = "wx5823bf96d3bd56c7";

/// An official account in safe mode (made-up key and AppID).
pub const OA_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
pub const OA_APP: &str = "wx1234567890abcdef";

pub fn sha1_hex(parts: &mut [&str]) -> String {
    parts.sort_unstable();
    Sha1::digest(parts.concat().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The platforms' encryption: AES-256-CBC, IV the key's first 16 bytes,
/// 16 random bytes + 4-byte length + message + receiver, padded PKCS#7 to
/// 32-byte blocks, base64.
pub fn encrypt(aes_key: &str, receiver: &str, message: &str, random: u8) -> String {
    let key = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
    )
    .decode(format!("{aes_key}="))
    .unwrap();
    let mut plain = vec![random; 16];
    plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
    plain.extend_from_slice(message.as_bytes());
    plain.extend_from_slice(receiver.as_bytes());
    let pad = 32 - plain.len() % 32;
    plain.extend(std::iter::repeat_n(pad as u8, pad));
    let len = plain.len();
    let sealed = cbc::Encryptor::<aes::Aes256>::new(key[..32].into(), key[..16].into())
        .encrypt_padded_mut::<NoPadding>(&mut plain, len)
        .unwrap()
        .to_vec();
    base64::engine::general_purpose::STANDARD.encode(sealed)
}

/// POSTs `message` to a WeCom app as WeCom does: encrypted, enveloped, signed.
pub fn wecom_push(port: u16, app: &str, message: &str, nonce: &str) -> (u16, String) {
    let encrypted = encrypt(AES_KEY, CORP, message, 7);
    let timestamp = &now_secs().to_string();
    let signature = sha1_hex(&mut [TOKEN, timestamp, nonce, &encrypted]);
    let body = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt><AgentID><![CDATA[]]></AgentID></xml>"
    );
    http(
        port,
        "POST",
        &format!(
            "/v1/callbacks/wecom/{app}?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}"
        ),
        &body,
    )
}

pub fn customer_change(
    change: &str,
    customer: &str,
    staff: &str,
    time: u64,
    extra: &str,
) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{time}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[{change}]]></ChangeType><UserID><![CDATA[{staff}]]></UserID><ExternalUserID><![CDATA[{customer}]]></ExternalUserID>{extra}</xml>"
    )
}

pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
