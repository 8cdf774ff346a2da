//! The callback protocol WeCom (企业微信) and official accounts in safe
//! mode use to push events: each push carries `msg_signature`, the SHA-1
//! (hex) of the sorted token, timestamp, nonce and ciphertext; the
//! ciphertext is base64 of AES-256-CBC under the `EncodingAESKey` (43
//! base64 characters: the 32-byte key; the IV is its first 16 bytes),
//! padded PKCS#7-style to a multiple of 32 bytes, holding 16 random bytes,
//! the message's length (4 bytes big-endian), the message, then the
//! receiver's id (the corp id, or the account's AppID), which must be
//! ours. URL verification (`echostr`) is the same with the echo string as
//! the ciphertext. Tested against WeCom's published example vectors.

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use base64::Engine as _;
use sha1::{Digest, Sha1};

/// Base64 as WeCom's own SDKs read it: an EncodingAESKey's last
/// character may carry bits past the key's 32 bytes.
const LENIENT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

type Decryptor = cbc::Decryptor<aes::Aes256>;
type Encryptor = cbc::Encryptor<aes::Aes256>;

/// The `signature` of an official account's plaintext push and URL
/// check: SHA-1 (hex) of the sorted token, timestamp and nonce.
pub fn plain_signature(token: &str, timestamp: &str, nonce: &str) -> String {
    let mut parts = [token, timestamp, nonce];
    parts.sort_unstable();
    hex(&Sha1::digest(parts.concat().as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `found` (hex, either case) is the signature `expected`, in
/// constant time.
pub fn signature_holds(expected: &str, found: &str) -> bool {
    crate::constant_time_eq(expected.as_bytes(), found.to_ascii_lowercase().as_bytes())
}

/// What a push can be refused for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackError {
    #[error("msg_signature does not match (check the callback token)")]
    Signature,
    #[error("the ciphertext is not base64")]
    Base64,
    #[error(
        "the ciphertext does not decrypt (not a multiple of the block size, or bad padding): check the EncodingAESKey"
    )]
    Decrypt,
    #[error("the decrypted message is cut short")]
    Length,
    #[error("the message is for receiver {found:?}, not this app's {expected:?}")]
    Receiver { found: String, expected: String },
    #[error("the message is not UTF-8")]
    Utf8,
}

/// One app's callback settings: the token, the key and who we are.
#[derive(Clone)]
pub struct CallbackKeys {
    token: String,
    key: [u8; 32],
    receiver: String,
}

impl std::fmt::Debug for CallbackKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token and key are secrets.
        write!(f, "CallbackKeys(receiver {:?})", self.receiver)
    }
}

impl CallbackKeys {
    /// `encoding_aes_key` as WeCom shows it: 43 characters of base64.
    pub fn new(
        token: &str,
        encoding_aes_key: &str,
        receiver: &str,
    ) -> Result<CallbackKeys, String> {
        if encoding_aes_key.len() != 43 {
            return Err(format!(
                "an EncodingAESKey is 43 characters, found {}",
                encoding_aes_key.len()
            ));
        }
        let bytes = LENIENT
            .decode(format!("{encoding_aes_key}="))
            .map_err(|_| "an EncodingAESKey is base64 (letters and digits)".to_string())?;
        let key = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| "an EncodingAESKey decodes to 32 bytes".to_string())?;
        Ok(CallbackKeys {
            token: token.to_string(),
            key,
            receiver: receiver.to_string(),
        })
    }

    /// The `msg_signature` of a push: SHA-1 of the four strings sorted.
    pub fn signature(&self, timestamp: &str, nonce: &str, encrypted: &str) -> String {
        let mut parts = [self.token.as_str(), timestamp, nonce, encrypted];
        parts.sort_unstable();
        hex(&Sha1::digest(parts.concat().as_bytes()))
    }

    /// The message of a push whose signature holds.
    pub fn open(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypted: &str,
    ) -> Result<String, CallbackError> {
        let expected = self.signature(timestamp, nonce, encrypted);
        if !signature_holds(&expected, msg_signature) {
            return Err(CallbackError::Signature);
        }
        self.decrypt(encrypted)
    }

    /// The callback token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The message in `encrypted` (base64), if it is for us.
    pub fn decrypt(&self, encrypted: &str) -> Result<String, CallbackError> {
        let mut data = LENIENT
            .decode(encrypted.trim())
            .map_err(|_| CallbackError::Base64)?;
        let plain = Decryptor::new(&self.key.into(), self.key[..16].into())
            .decrypt_padded_mut::<NoPadding>(&mut data)
            .map_err(|_| CallbackError::Decrypt)?;
        let pad = *plain.last().ok_or(CallbackError::Decrypt)? as usize;
        if !(1..=32).contains(&pad) || pad > plain.len() {
            return Err(CallbackError::Decrypt);
        }
        let body = &plain[..plain.len() - pad];
        if body.len() < 20 {
            return Err(CallbackError::Length);
        }
        let len = u32::from_be_bytes(body[16..20].try_into().expect("four bytes")) as usize;
        let rest = &body[20..];
        if len > rest.len() {
            return Err(CallbackError::Length);
        }
        let (message, receiver) = rest.split_at(len);
        let receiver = String::from_utf8_lossy(receiver).into_owned();
        if receiver != self.receiver {
            return Err(CallbackError::Receiver {
                found: receiver,
                expected: self.receiver.clone(),
            });
        }
        String::from_utf8(message.to_vec()).map_err(|_| CallbackError::Utf8)
    }

    /// `message` encrypted for a reply (or a test's client): base64, with
    /// `random` as its 16 leading bytes.
    pub fn encrypt(&self, message: &str, random: [u8; 16]) -> String {
        let mut plain = Vec::with_capacity(message.len() + 64);
        plain.extend_from_slice(&random);
        plain.extend_from_slice(&(message.len() as u32).to_be_bytes());
        plain.extend_from_slice(message.as_bytes());
        plain.extend_from_slice(self.receiver.as_bytes());
        let pad = 32 - plain.len() % 32;
        plain.extend(std::iter::repeat_n(pad as u8, pad));
        let len = plain.len();
        let sealed = Encryptor::new(&self.key.into(), self.key[..16].into())
            .encrypt_padded_mut::<NoPadding>(&mut plain, len)
            .expect("a multiple of the block size");
        base64::engine::general_purpose::STANDARD.encode(sealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// WeCom's published example (the sample code of its callback SDKs):
    /// corp id, token and EncodingAESKey.
    fn official() -> CallbackKeys {
        CallbackKeys::new(
            "QDG6eK",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            "wx5823bf96d3bd56c7",
        )
        .unwrap()
    }

    const PUSHED: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";

    #[test]
    fn the_official_push_vector_verifies_and_decrypts_for_its_corp() {
        let keys = official();
        assert_eq!(
            keys.signature("1409659813", "1372623149", PUSHED),
            "477715d11cdb4164915debcba66cb864d751f3e6"
        );
        let message = keys
            .open(
                "477715d11cdb4164915debcba66cb864d751f3e6",
                "1409659813",
                "1372623149",
                PUSHED,
            )
            .unwrap();
        assert!(
            message.starts_with("<xml>") && message.ends_with("</xml>"),
            "{message}"
        );
        assert!(message.contains("wx5823bf96d3bd56c7"), "{message}");
        assert_eq!(
            keys.open(
                "477715d11cdb4164915debcba66cb864d751f3e7",
                "1409659813",
                "1372623149",
                PUSHED
            ),
            Err(CallbackError::Signature)
        );
        let other = CallbackKeys::new(
            "QDG6eK",
            "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
            "ww0000000000000000",
        )
        .unwrap();
        assert!(matches!(
            other.decrypt(PUSHED),
            Err(CallbackError::Receiver { .. })
        ));
    }

    #[test]
    fn the_official_url_verification_vector_echoes_its_string() {
        let keys = official();
        let echo = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        assert_eq!(
            keys.open(
                "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                "1409659589",
                "263014780",
                echo
            )
            .unwrap(),
            "1616140317555161061"
        );
    }

    #[test]
    fn what_is_encrypted_decrypts_and_bad_input_is_named() {
        let keys = official();
        let message =
            "<xml><Content><![CDATA[测试一下中文的情况，消息长度是按字节来算的]]></Content></xml>";
        let sealed = keys.encrypt(message, [7; 16]);
        let signature = keys.signature("1", "2", &sealed);
        assert_eq!(keys.open(&signature, "1", "2", &sealed).unwrap(), message);
        assert_eq!(keys.decrypt("not base64!"), Err(CallbackError::Base64));
        assert_eq!(keys.decrypt("AAAA"), Err(CallbackError::Decrypt));
        assert!(CallbackKeys::new("t", "short", "c").is_err());
    }

    #[test]
    fn a_plaintext_signature_is_sha1_of_the_sorted_three() {
        // sha1("1409659813" + "1372623149" + "QDG6eK"), sorted as bytes.
        let s = plain_signature("QDG6eK", "1409659813", "1372623149");
        assert_eq!(s.len(), 40);
        let mut sorted = ["QDG6eK", "1409659813", "1372623149"];
        sorted.sort_unstable();
        assert_eq!(sorted.concat(), "13726231491409659813QDG6eK");
        assert_eq!(s, hex(&Sha1::digest(b"13726231491409659813QDG6eK")));
        assert!(signature_holds(&s, &s.to_ascii_uppercase()));
        assert!(!signature_holds(&s, &s[1..]));
    }
}
