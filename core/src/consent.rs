//! Consent per channel and its ledger. A user's consent to marketing on a
//! channel is the `consent.CHANNEL` trait (`true` granted; anything else,
//! or nothing, not granted), which sends with `consent required` read.
//! Every change of it — by an identify, an opt-out reply, an API call, a
//! journey's `set`, or a merge of two profiles — adds a `consent` record
//! to the user's journal saying which channel, for what purpose, granted
//! or revoked, from what source, with what evidence: the append-only
//! ledger an auditor reads. [`ConsentRules`] says which inbound event is a
//! reply to an SMS and which words in it opt out (`TD`, `T`, `R`, `退订`).
//!
//! Consent can also be used up: a one-time subscribe message (WeChat
//! mini-programs, official-account subscription notices) may be sent
//! once per accept of its template. Such grants are counted per template
//! (`UserState::grants`); a send on a channel whose kind spends grants
//! takes one, and with none left is suppressed (`no_grant`).

use serde::{Deserialize, Serialize};
use waymark_dsl::value::{Fields, Value};

/// The purpose every consent Waymark keeps is for: marketing messages on
/// the channel. Service notices (`transactional` journeys) need none.
pub const MARKETING: &str = "marketing";

/// The purpose of a grant: one subscribe message of its template.
pub const SUBSCRIBE_MESSAGE: &str = "subscribe_message";

/// The events WeChat pushes when a user answers a subscribe-message popup
/// (`accept` adds a grant of each template accepted), and when they turn
/// a template off in their settings (`reject` takes its grants away).
pub const POPUP_EVENT: &str = "subscribe_msg_popup_event";
pub const CHANGE_EVENT: &str = "subscribe_msg_change_event";

/// One change of one channel's consent, as its `consent` record holds it
/// (the record's `channel` names the channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentChange {
    /// What the consent is for (`marketing`).
    pub purpose: String,
    /// Granted (`true`) or revoked (`false`) from then on.
    pub granted: bool,
    /// Where the change came from: `identify`, `reply` (an opt-out reply),
    /// `api`, `journey` (a `set`), or `merge`.
    pub source: String,
    /// What shows it: the reply's text, the API caller's evidence, the id
    /// merged.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub evidence: Option<String>,
    /// The message that carried it (an identify's or event's `messageId`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub message_id: Option<String>,
    /// Who made an API call (its token's name).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub by: Option<String>,
    /// For consent that is used up (one-time subscribe messages): the
    /// template the grants are of. Then `granted` adds grants and its
    /// absence takes them all away.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub template: Option<String>,
    /// With `template`: in a change asked for, how many grants to add
    /// (one if not said); in a record, how many are held after it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grants: Option<u32>,
}

impl ConsentChange {
    /// A change from `source` with nothing else known.
    pub fn new(granted: bool, source: &str) -> ConsentChange {
        ConsentChange {
            purpose: MARKETING.to_string(),
            granted,
            source: source.to_string(),
            evidence: None,
            message_id: None,
            by: None,
            template: None,
            grants: None,
        }
    }

    /// A change of the grants of one template, from `source`.
    pub fn grants(template: &str, granted: bool, source: &str) -> ConsentChange {
        ConsentChange {
            purpose: SUBSCRIBE_MESSAGE.to_string(),
            template: Some(template.to_string()),
            ..ConsentChange::new(granted, source)
        }
    }
}

/// Which inbound event is a customer's reply to an SMS, and what in it
/// opts out (config `[consent]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRules {
    /// The event a reply arrives as.
    pub reply_event: String,
    /// Its property holding the text.
    pub reply_text: String,
    /// Replies that opt out, compared as [`normalized`] says.
    pub opt_out_words: Vec<String>,
    /// The channels an opt-out reply revokes.
    pub opt_out_channels: Vec<String>,
}

impl Default for ConsentRules {
    fn default() -> ConsentRules {
        ConsentRules {
            reply_event: "sms_reply".into(),
            reply_text: "text".into(),
            opt_out_words: ["TD", "T", "R", "退订"].map(normalized).to_vec(),
            opt_out_channels: vec!["sms".into()],
        }
    }
}

impl ConsentRules {
    /// The rules with these words, each normalized once.
    pub fn with_words<'a>(mut self, words: impl IntoIterator<Item = &'a str>) -> ConsentRules {
        self.opt_out_words = words.into_iter().map(normalized).collect();
        self
    }

    /// Whether a reply of this text opts out.
    pub fn opts_out(&self, text: &str) -> bool {
        let text = normalized(text);
        !text.is_empty() && self.opt_out_words.contains(&text)
    }
}

/// A reply as it is compared: full-width letters and digits made plain
/// (`ＴＤ` is `TD`), upper case, without the spaces and punctuation around
/// it (`td。`, ` R! `).
pub fn normalized(text: &str) -> String {
    let plain: String = text
        .chars()
        .map(|c| match c {
            // Full-width ASCII (U+FF01–U+FF5E) and the ideographic space.
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .collect();
    let is_filler = |c: char| {
        c.is_whitespace()
            || c.is_ascii_punctuation()
            || matches!(c, '。' | '，' | '！' | '？' | '、' | '～' | '…')
    };
    plain.trim_matches(is_filler).to_uppercase()
}

/// Whether a value of `consent.CHANNEL` grants consent.
pub fn grants(value: Option<&Value>) -> bool {
    matches!(value, Some(Value::Bool(true)))
}

/// The channels whose consent differs between two values of the
/// `consent` trait (each a record of channel → value, or anything else
/// for none), with whether each is granted after. A channel counts as
/// changed when its value changed and either value is a boolean (an
/// explicit `false` where there was nothing is a refusal worth keeping).
pub fn changes(before: Option<&Value>, after: Option<&Value>) -> Vec<(String, bool)> {
    fn fields(v: Option<&Value>) -> Option<&Fields> {
        match v {
            Some(Value::Record(map)) => Some(map),
            _ => None,
        }
    }
    let (before, after) = (fields(before), fields(after));
    let get = |m: Option<&Fields>, k: &str| m.and_then(|m| m.get(k)).cloned();
    let mut channels: Vec<&String> = before
        .into_iter()
        .chain(after)
        .flat_map(|m| m.iter().map(|(k, _)| k))
        .collect();
    channels.sort();
    channels.dedup();
    channels
        .into_iter()
        .filter_map(|channel| {
            let (old, new) = (get(before, channel), get(after, channel));
            let boolean = |v: &Option<Value>| matches!(v, Some(Value::Bool(_)));
            (old != new && (boolean(&old) || boolean(&new)))
                .then(|| (channel.clone(), grants(new.as_ref())))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consent(pairs: &[(&str, Value)]) -> Value {
        Value::Record(Fields::from_iter(
            pairs.iter().map(|(k, v)| (k.to_string(), v.clone())),
        ))
    }

    #[test]
    fn the_opt_out_words_match_however_they_are_typed() {
        let rules = ConsentRules::default();
        for reply in [
            "TD",
            "td",
            " t ",
            "R",
            "r。",
            "退订",
            "ＴＤ",
            "ｔｄ！",
            "\u{3000}退订\u{3000}",
        ] {
            assert!(rules.opts_out(reply), "{reply:?}");
        }
        for reply in ["", "TDX", "好的", "RT", "不要退订了吗", "T D"] {
            assert!(!rules.opts_out(reply), "{reply:?}");
        }
        let custom = ConsentRules::default().with_words(["拒收", "stop"]);
        assert!(custom.opts_out("STOP") && custom.opts_out("拒收"));
        assert!(!custom.opts_out("TD"));
    }

    #[test]
    fn changes_name_each_channel_whose_consent_changed() {
        let t = Value::Bool(true);
        let f = Value::Bool(false);
        let before = consent(&[
            ("sms", t.clone()),
            ("email", t.clone()),
            ("wechat", f.clone()),
        ]);
        let after = consent(&[
            ("sms", f.clone()),
            ("email", t.clone()),
            ("wechat", t.clone()),
            ("wecom", f.clone()),
        ]);
        assert_eq!(
            changes(Some(&before), Some(&after)),
            [
                ("sms".to_string(), false),
                ("wechat".to_string(), true),
                ("wecom".to_string(), false),
            ]
        );
        // Consent replaced by something that is no record: all revoked.
        assert_eq!(
            changes(Some(&before), Some(&Value::Null)),
            [("email".to_string(), false), ("sms".to_string(), false)]
                .into_iter()
                .chain([("wechat".to_string(), false)])
                .collect::<Vec<_>>()
        );
        // Values that are no booleans on either side are no consent.
        let odd = consent(&[("sms", Value::String("yes".into()))]);
        assert!(changes(None, Some(&odd)).is_empty());
        assert_eq!(
            changes(Some(&before), Some(&odd))[0],
            ("email".to_string(), false)
        );
        assert!(changes(Some(&before), Some(&before)).is_empty());
    }
}
