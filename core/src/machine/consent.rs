//! Consent changes as the machine makes them: each changed channel of the
//! `consent` trait becomes a `consent` record (see [`crate::consent`]),
//! whichever input changed it — an identify, an opt-out reply event, an
//! API call, a journey's `set`, a merge; and grants of one-time subscribe
//! messages added by accepts and taken by sends.

use super::Cx;
use crate::consent::{CHANGE_EVENT, ConsentChange, POPUP_EVENT, changes, grants};
use crate::journal::{Kind, Record};
use crate::model::Event;
use waymark_dsl::value::{Fields, Value};

impl Cx<'_> {
    /// The `consent` trait as it is now, to compare with after a change.
    pub(super) fn consent_now(&self) -> Option<Value> {
        self.user.traits.get("consent").cloned()
    }

    /// Records every channel whose consent differs from `before`, as
    /// `change` (its `granted` set per channel) on records `base` makes.
    pub(super) fn record_consent_changes(
        &mut self,
        before: Option<&Value>,
        change: &ConsentChange,
        base: impl Fn(&Self) -> Record,
    ) {
        let after = self.user.traits.get("consent");
        for (channel, granted) in changes(before, after) {
            let mut r = base(self);
            r.channel = Some(channel);
            r.consent = Some(Box::new(ConsentChange {
                granted,
                ..change.clone()
            }));
            self.records.push(r);
        }
    }

    /// Sets consent on one channel (granted or revoked) with a record,
    /// unless it already is so.
    pub(super) fn set_consent(&mut self, channel: &str, change: ConsentChange) {
        let slot = self
            .user
            .traits
            .get_or_insert_with("consent", || Value::Record(Fields::default()));
        if !matches!(slot, Value::Record(_)) {
            *slot = Value::Record(Fields::default());
        }
        let Value::Record(map) = slot else {
            unreachable!("just made a record")
        };
        let current = map.get(channel);
        if matches!(current, Some(Value::Bool(b)) if *b == change.granted) {
            return;
        }
        map.insert(channel.to_string(), Value::Bool(change.granted));
        let mut r = Record::new(self.now, &self.user.id, Kind::Consent);
        r.channel = Some(channel.to_string());
        r.consent = Some(Box::new(change));
        self.records.push(r);
    }

    /// An event that is a reply to an SMS saying one of the opt-out words
    /// revokes consent on the opt-out channels.
    pub(super) fn opt_out_reply(&mut self, event: &Event) {
        let rules = &self.d.consent;
        if event.name != rules.reply_event.as_str() {
            return;
        }
        let Some(text) = event.properties.field(&rules.reply_text).as_str() else {
            return;
        };
        if !rules.opts_out(text) {
            return;
        }
        let change = ConsentChange {
            evidence: Some(format!("replied {text:?}")),
            message_id: event.message_id.clone(),
            ..ConsentChange::new(false, "reply")
        };
        for channel in self.d.consent.opt_out_channels.clone() {
            self.set_consent(&channel, change.clone());
        }
    }

    /// After a merge filled the survivor's traits: a channel either
    /// profile had revoked stays revoked (a refusal under any id of the
    /// person holds), and each channel whose consent the merge changed
    /// has a record saying so.
    pub(super) fn merge_consent(
        &mut self,
        before: Option<&Value>,
        absorbed: Option<&Value>,
        from: &str,
    ) {
        if let (Some(Value::Record(theirs)), Some(Value::Record(ours))) =
            (absorbed, self.user.traits.get_mut("consent"))
        {
            for (channel, value) in theirs.iter() {
                if matches!(value, Value::Bool(false)) && grants(ours.get(channel)) {
                    ours.insert(channel.clone(), Value::Bool(false));
                }
            }
        }
        let change = ConsentChange {
            evidence: Some(format!("merged {from}")),
            ..ConsentChange::new(false, "merge")
        };
        self.record_consent_changes(before, &change, |cx| {
            Record::new(cx.now, &cx.user.id, Kind::Consent)
        });
    }

    /// Adds grants of the change's template (`granted`: its `grants`, or
    /// one) or takes them all away, with a record either way: a
    /// withdrawal with none held is still evidence (the user turned the
    /// template off; WeChat refused a send Waymark thought granted).
    pub(super) fn change_grants(&mut self, channel: Option<&str>, change: ConsentChange) {
        let Some(template) = change.template.clone() else {
            return;
        };
        let held = self.user.grants.get(&template).copied().unwrap_or(0);
        let after = match change.granted {
            true => held.saturating_add(change.grants.unwrap_or(1)),
            false => 0,
        };
        if after == 0 {
            self.user.grants.remove(&template);
        } else {
            self.user.grants.insert(template, after);
        }
        let mut r = Record::new(self.now, &self.user.id, Kind::Consent);
        r.channel = channel.map(str::to_string);
        r.consent = Some(Box::new(ConsentChange {
            grants: Some(after),
            ..change
        }));
        self.records.push(r);
    }

    /// A subscribe-message popup answered (each template accepted adds a
    /// grant) or a template turned off in the user's settings (its grants
    /// go). WeChat sends `List` as one object when it holds one template
    /// and as an array when it holds more; both are read.
    pub(super) fn subscribe_answers(&mut self, event: &Event) {
        let popup = match event.name.as_str() {
            POPUP_EVENT => true,
            CHANGE_EVENT => false,
            _ => return,
        };
        let list = event.properties.field("List");
        let items: Vec<&Value> = match list {
            Value::List(items) => items.iter().collect(),
            Value::Record(_) => vec![list],
            _ => Vec::new(),
        };
        for item in items {
            let Some(template) = item.field("TemplateId").as_str() else {
                continue;
            };
            let status = item.field("SubscribeStatusString").as_str();
            let granted = match (popup, status) {
                (true, Some("accept")) => true,
                (false, Some("reject")) => false,
                // A popup declined takes nothing back: earlier accepts
                // still allow their sends.
                _ => continue,
            };
            let change = ConsentChange {
                evidence: Some(format!("{} {}", event.name, status.unwrap_or_default())),
                message_id: event.message_id.clone(),
                ..ConsentChange::grants(template, granted, "wechat")
            };
            self.change_grants(None, change);
        }
    }

    /// Whether a send of `template` on `channel` may go: a channel that
    /// spends grants needs one of the template held.
    pub(super) fn has_grant(&self, channel: &str, template: Option<&str>) -> bool {
        if !self.d.grant_channels.contains(channel) {
            return true;
        }
        template.is_some_and(|t| self.user.grants.get(t).is_some_and(|n| *n > 0))
    }

    /// Takes the grant a send on `channel` spends, if it spends one.
    pub(super) fn spend_grant(&mut self, channel: &str, template: Option<&str>) {
        if !self.d.grant_channels.contains(channel) {
            return;
        }
        if let Some(t) = template
            && let Some(n) = self.user.grants.get_mut(t)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.user.grants.remove(t);
            }
        }
    }
}
