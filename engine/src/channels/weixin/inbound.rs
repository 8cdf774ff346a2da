//! What WeCom (企业微信) and official accounts (公众号) push, as Waymark
//! events: pure functions from a push's XML (decrypted already, see
//! [`super::callback`]) to the event, the person it is about and the key
//! that drops a redelivery. The daemon's callback routes do the I/O.
//!
//! A customer is known to the platform by an id of its own (WeCom's
//! `external_userid`, an account's `openid`); the event goes to the
//! profile holding that id as a declared identifier trait, or else to a
//! profile of its own (`wecom:{external_userid}`, `wechat:{openid}`) that
//! takes the trait, so that once the member identifies with it the two
//! profiles become one. Events about a group chat or a corp tag concern
//! no one person and go to a profile of the chat or tag.

use chrono::{DateTime, Utc};
use quick_xml::events::Event as Xml;
use waymark_dsl::value::{Fields, Value};

/// The deepest nesting a push may have, and the most elements.
const MAX_DEPTH: usize = 8;
const MAX_ELEMENTS: usize = 2_000;

/// Reads a push's XML as a record: each element a field named as it is,
/// its text a string, its child elements a record; an element that comes
/// again becomes a list. The root element's own name is dropped.
pub fn read_xml(text: &str) -> Result<Fields, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    // The open elements: name, the fields of its children, the pieces of
    // its text (whether each is plain text, which is trimmed at the ends).
    let mut open: Vec<Open> = Vec::new();
    let mut root: Option<Fields> = None;
    let mut elements = 0;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("not XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Xml::Start(start) => {
                elements += 1;
                if open.len() >= MAX_DEPTH || elements > MAX_ELEMENTS {
                    return Err(format!(
                        "more than {MAX_DEPTH} levels or {MAX_ELEMENTS} elements"
                    ));
                }
                if root.is_some() {
                    return Err("more than one root element".into());
                }
                let name = start.name().as_ref().to_string();
                open.push((name, Fields::new(), Vec::new()));
            }
            Xml::Empty(start) => {
                elements += 1;
                let name = start.name().as_ref().to_string();
                match open.last_mut() {
                    Some((_, fields, _)) => add(fields, name, Value::String(String::new())),
                    None => root = Some(Fields::new()),
                }
            }
            Xml::Text(t) => push_text(&mut open, &t.xml_content(Default::default()), true)?,
            Xml::CData(t) => push_text(&mut open, &t.into_inner(), false)?,
            Xml::GeneralRef(r) => {
                let text = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => match &*r.into_inner() {
                        "amp" => "&".into(),
                        "lt" => "<".into(),
                        "gt" => ">".into(),
                        "quot" => "\"".into(),
                        "apos" => "'".into(),
                        other => return Err(format!("unknown entity &{other};")),
                    },
                };
                push_text(&mut open, &text, false)?;
            }
            Xml::End(_) => {
                let (name, fields, pieces) = open.pop().ok_or("an end tag with no start")?;
                let value = if fields.is_empty() {
                    Value::String(joined(&pieces))
                } else {
                    Value::Record(fields)
                };
                match open.last_mut() {
                    Some((_, parent, _)) => add(parent, name, value),
                    None => {
                        root = Some(match value {
                            Value::Record(fields) => fields,
                            _ => Fields::new(),
                        })
                    }
                }
            }
            Xml::Eof => break,
            Xml::Decl(_) | Xml::PI(_) | Xml::Comment(_) | Xml::DocType(_) => {}
        }
    }
    if !open.is_empty() {
        return Err(format!(
            "the element <{}> is not closed",
            open[open.len() - 1].0
        ));
    }
    root.ok_or_else(|| "no root element".into())
}

/// An element being read: its name, its children, the pieces of its text.
type Open = (String, Fields, Vec<(bool, String)>);

fn push_text(open: &mut [Open], text: &str, plain: bool) -> Result<(), String> {
    match open.last_mut() {
        Some((_, _, pieces)) => {
            pieces.push((plain, text.to_string()));
            Ok(())
        }
        None if text.trim().is_empty() => Ok(()),
        None => Err("text outside the root element".into()),
    }
}

/// An element's text: its pieces joined, the plain text at either end
/// trimmed (the indentation of a pretty-printed push), CDATA as it is.
fn joined(pieces: &[(bool, String)]) -> String {
    let mut out = String::new();
    let last = pieces.len().saturating_sub(1);
    for (i, (plain, text)) in pieces.iter().enumerate() {
        let mut piece = text.as_str();
        if *plain && i == 0 {
            piece = piece.trim_start();
        }
        if *plain && i == last {
            piece = piece.trim_end();
        }
        out.push_str(piece);
    }
    out
}

/// Adds `value` as `name`, making a list of a name that comes again.
fn add(fields: &mut Fields, name: String, value: Value) {
    match fields.get_mut(&name) {
        Some(Value::List(items)) => items.push(value),
        Some(existing) => {
            let first = std::mem::take(existing);
            *existing = Value::List(vec![first, value]);
        }
        None => {
            fields.insert(name, value);
        }
    }
}

/// Who an inbound event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A customer known to the platform as `value`: the profile holding
    /// it as the identifier trait `identifier`, or else `fallback` (which
    /// then takes the trait).
    Person {
        identifier: String,
        value: String,
        fallback: String,
    },
    /// Not a person: a group chat, a tag.
    Thing(String),
}

/// One push as a Waymark event.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub subject: Subject,
    pub name: String,
    pub properties: Value,
    pub at: DateTime<Utc>,
    /// Drops a redelivery of the same push (the platforms resend a push
    /// they got no answer to within 5 s, three times).
    pub message_id: String,
}

/// A field's text, empty when absent.
fn text<'f>(fields: &'f Fields, name: &str) -> &'f str {
    fields.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// When the push was made (`CreateTime`, Unix seconds), never later than
/// `now`; `now` when it does not say.
fn created(fields: &Fields, now: DateTime<Utc>) -> DateTime<Utc> {
    text(fields, "CreateTime")
        .parse::<i64>()
        .ok()
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .map_or(now, |t| t.min(now))
}

/// `ExternalUserID` → `external_user_id`: a platform's field name as a
/// property name.
pub fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    let chars: Vec<char> = name.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let after_lower = i > 0 && !chars[i - 1].is_uppercase() && chars[i - 1] != '_';
            let before_lower = i > 0
                && chars[i - 1].is_uppercase()
                && chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            if after_lower || before_lower {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(*c);
        }
    }
    out
}

/// The fields of a push as properties, snake_case, leaving out the
/// envelope (`ToUserName`, `FromUserName`, `CreateTime`, `MsgType`,
/// `Event`) and renaming with `names` first (platform name, property).
fn properties(fields: &Fields, names: &[(&str, &str)]) -> Fields {
    const ENVELOPE: &[&str] = &[
        "ToUserName",
        "FromUserName",
        "CreateTime",
        "MsgType",
        "Event",
    ];
    let mut out = Fields::new();
    for (name, value) in fields.iter() {
        let name: &str = name.as_ref();
        if ENVELOPE.contains(&name) {
            continue;
        }
        let property = names
            .iter()
            .find(|(platform, _)| *platform == name)
            .map_or_else(|| snake_case(name), |(_, p)| p.to_string());
        out.insert(property, value.clone());
    }
    out
}

/// A redelivery key no longer than message ids may be: the parts joined,
/// or their SHA-1 when that is long.
fn message_id(parts: &[&str]) -> String {
    let joined = parts.join(":");
    if joined.len() <= 200 {
        return joined;
    }
    use sha1::Digest;
    let digest = sha1::Sha1::digest(joined.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}:{hex}", parts[0])
}

/// WeCom's names for the customer-contact fields, as properties: the staff
/// member is `userid` and the customer `external_userid`, as WeCom's API
/// names them.
const WECOM_NAMES: &[(&str, &str)] = &[
    ("UserID", "userid"),
    ("ExternalUserID", "external_userid"),
    ("ChangeType", "change_type"),
    ("WelcomeCode", "welcome_code"),
    ("State", "state"),
    ("ChatId", "chat_id"),
    ("Id", "tag_id"),
];

/// The event a WeCom push makes, for the callback app `app` whose
/// customers are linked by the identifier trait `identifier`; `None` for a
/// push that is not about customer contact (an app's own messages).
pub fn wecom_event(
    app: &str,
    identifier: &str,
    fields: &Fields,
    now: DateTime<Utc>,
) -> Result<Option<Inbound>, String> {
    let event = text(fields, "Event");
    let at = created(fields, now);
    let time = text(fields, "CreateTime");
    let change = text(fields, "ChangeType");
    let mut props = properties(fields, WECOM_NAMES);
    props.insert("app".into(), Value::String(app.to_string()));
    let (name, subject, key) = match event {
        "change_external_contact" => {
            let customer = text(fields, "ExternalUserID");
            if customer.is_empty() {
                return Err(format!("a {change} push without ExternalUserID"));
            }
            if change.is_empty() {
                return Err("a change_external_contact push without ChangeType".into());
            }
            let subject = Subject::Person {
                identifier: identifier.to_string(),
                value: customer.to_string(),
                fallback: format!("wecom:{customer}"),
            };
            let staff = text(fields, "UserID");
            (change.to_string(), subject, vec![customer, staff])
        }
        "change_external_chat" => {
            let chat = text(fields, "ChatId");
            if chat.is_empty() {
                return Err("a change_external_chat push without ChatId".into());
            }
            let subject = Subject::Thing(format!("wecom_chat:{chat}"));
            let detail = text(fields, "UpdateDetail");
            (event.to_string(), subject, vec![chat, detail])
        }
        "change_external_tag" => {
            let tag = text(fields, "Id");
            if tag.is_empty() {
                return Err("a change_external_tag push without Id".into());
            }
            let subject = Subject::Thing(format!("wecom_tag:{tag}"));
            (
                event.to_string(),
                subject,
                vec![tag, text(fields, "TagType")],
            )
        }
        _ => return Ok(None),
    };
    let mut parts = vec!["wecom", app, time, event, change];
    parts.extend(key);
    Ok(Some(Inbound {
        subject,
        name,
        properties: Value::Record(props),
        at,
        message_id: message_id(&parts),
    }))
}

/// An official account's names: the follower's openid is `openid`.
const WECHAT_NAMES: &[(&str, &str)] = &[("MsgId", "msg_id"), ("MsgID", "msg_id")];

/// The event an official account's push makes, for the callback app `app`
/// whose followers are linked by the identifier trait `identifier`.
///
/// - `subscribe` (`qrscene`: the parameter of the QR code followed from,
///   `EventKey` without its `qrscene_`), `unsubscribe`;
/// - `scan` (a follower scanned a parametric QR code: `scene`);
/// - `menu_click` (`key`), `menu_view` (`url`);
/// - `user_message` for any message a follower sends (`msg_type`,
///   `content` for text): it opens the 48-hour customer-service window;
/// - `subscribe_msg_popup_event`, `subscribe_msg_change_event`,
///   `subscribe_msg_sent_event` with their `List` as WeChat sends it
///   (what grants of subscribe messages are counted from);
/// - any other event under its own name, lowercased.
pub fn wechat_event(
    app: &str,
    identifier: &str,
    fields: &Fields,
    now: DateTime<Utc>,
) -> Result<Option<Inbound>, String> {
    let openid = text(fields, "FromUserName");
    if openid.is_empty() {
        return Err("a push without FromUserName (the follower's openid)".into());
    }
    let at = created(fields, now);
    let time = text(fields, "CreateTime");
    let msg_type = text(fields, "MsgType");
    let event = text(fields, "Event");
    let mut props = properties(fields, WECHAT_NAMES);
    props.insert("app".into(), Value::String(app.to_string()));
    let key = text(fields, "EventKey");
    let name = if msg_type != "event" {
        if msg_type.is_empty() {
            return Err("a push without MsgType".into());
        }
        props.insert("msg_type".into(), Value::String(msg_type.to_string()));
        "user_message".to_string()
    } else {
        match event {
            "subscribe" => {
                if let Some(scene) = key.strip_prefix("qrscene_") {
                    props.insert("qrscene".into(), Value::String(scene.to_string()));
                }
                "subscribe".into()
            }
            "SCAN" => {
                props.insert("scene".into(), Value::String(key.to_string()));
                "scan".into()
            }
            "CLICK" => {
                props.insert("key".into(), Value::String(key.to_string()));
                "menu_click".into()
            }
            "VIEW" => {
                props.insert("url".into(), Value::String(key.to_string()));
                "menu_view".into()
            }
            "subscribe_msg_popup_event"
            | "subscribe_msg_change_event"
            | "subscribe_msg_sent_event" => {
                // `<SubscribeMsgPopupEvent><List>…</List></…>`: the list
                // is what the consent rules read.
                let list = fields
                    .iter()
                    .find_map(|(_, v)| match v {
                        Value::Record(inner) => inner.get("List").cloned(),
                        _ => None,
                    })
                    .unwrap_or(Value::List(Vec::new()));
                props.insert("List".into(), list);
                event.to_string()
            }
            "" => return Err("an event push without Event".into()),
            other => other.to_ascii_lowercase(),
        }
    };
    let message_id = match text(fields, "MsgId") {
        "" => message_id(&["wechat", app, openid, time, msg_type, event, key]),
        id => message_id(&["wechat", app, "msg", id]),
    };
    Ok(Some(Inbound {
        subject: Subject::Person {
            identifier: identifier.to_string(),
            value: openid.to_string(),
            fallback: format!("wechat:{openid}"),
        },
        name,
        properties: Value::Record(props),
        at,
        message_id,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-12-06T08:00:00Z".parse().unwrap()
    }

    fn field<'v>(v: &'v Value, name: &str) -> &'v Value {
        v.field(name)
    }

    /// WeCom's documented add_external_contact push (document 92277).
    const ADDED: &str = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_contact]]></Event><ChangeType><![CDATA[add_external_contact]]></ChangeType><UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACAAA]]></ExternalUserID><State><![CDATA[teststate]]></State><WelcomeCode><![CDATA[WELCOMECODE]]></WelcomeCode></xml>";

    #[test]
    fn a_customer_added_is_an_event_on_the_customer_with_staff_state_and_welcome_code() {
        let fields = read_xml(ADDED).unwrap();
        let e = wecom_event("store", "wecom_external_userid", &fields, now())
            .unwrap()
            .unwrap();
        assert_eq!(e.name, "add_external_contact");
        assert_eq!(
            e.subject,
            Subject::Person {
                identifier: "wecom_external_userid".into(),
                value: "woAJ2GCAAAXtWyujaWJHDDGi0mACAAA".into(),
                fallback: "wecom:woAJ2GCAAAXtWyujaWJHDDGi0mACAAA".into(),
            }
        );
        assert_eq!(field(&e.properties, "userid").as_str(), Some("zhangsan"));
        assert_eq!(field(&e.properties, "state").as_str(), Some("teststate"));
        assert_eq!(
            field(&e.properties, "welcome_code").as_str(),
            Some("WELCOMECODE")
        );
        assert_eq!(field(&e.properties, "app").as_str(), Some("store"));
        assert!(matches!(field(&e.properties, "to_user_name"), Value::Null));
        assert_eq!(e.at, DateTime::from_timestamp(1403610513, 0).unwrap());
        // The same push again has the same key; another change another.
        let again = wecom_event("store", "x", &read_xml(ADDED).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(again.message_id, e.message_id);
        let deleted = ADDED.replace("add_external_contact", "del_follow_user");
        let d = wecom_event("store", "x", &read_xml(&deleted).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(d.name, "del_follow_user");
        assert_ne!(d.message_id, e.message_id);
    }

    #[test]
    fn chat_and_tag_changes_go_to_the_chat_or_tag_and_other_pushes_are_none() {
        let chat = "<xml><ToUserName><![CDATA[toUser]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>1403610513</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_chat]]></Event><ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId><ChangeType><![CDATA[update]]></ChangeType><UpdateDetail><![CDATA[add_member]]></UpdateDetail><JoinScene>1</JoinScene><MemChangeCnt>2</MemChangeCnt><MemChangeList><Item>Jack</Item><Item>Rose</Item></MemChangeList></xml>";
        let e = wecom_event("store", "t", &read_xml(chat).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(e.name, "change_external_chat");
        assert_eq!(
            e.subject,
            Subject::Thing("wecom_chat:wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA".into())
        );
        assert_eq!(
            field(&e.properties, "update_detail").as_str(),
            Some("add_member")
        );
        assert_eq!(
            field(&field(&e.properties, "mem_change_list").clone(), "Item"),
            &Value::List(vec![
                Value::String("Jack".into()),
                Value::String("Rose".into())
            ])
        );
        let tag = "<xml><ToUserName>c</ToUserName><FromUserName>sys</FromUserName><CreateTime>1</CreateTime><MsgType>event</MsgType><Event>change_external_tag</Event><Id>et1</Id><TagType>tag</TagType><ChangeType>delete</ChangeType></xml>";
        let t = wecom_event("store", "t", &read_xml(tag).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(t.subject, Subject::Thing("wecom_tag:et1".into()));
        assert_eq!(field(&t.properties, "change_type").as_str(), Some("delete"));
        let app_message = "<xml><MsgType>text</MsgType><Content>hi</Content></xml>";
        assert_eq!(
            wecom_event("store", "t", &read_xml(app_message).unwrap(), now()).unwrap(),
            None
        );
        let broken = ADDED.replace(
            "<ExternalUserID><![CDATA[woAJ2GCAAAXtWyujaWJHDDGi0mACAAA]]></ExternalUserID>",
            "",
        );
        assert!(
            wecom_event("store", "t", &read_xml(&broken).unwrap(), now())
                .unwrap_err()
                .contains("ExternalUserID")
        );
    }

    #[test]
    fn official_account_pushes_become_follow_scan_menu_and_message_events() {
        let follow = "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[oFollower]]></FromUserName><CreateTime>123456789</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_store42]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>";
        let e = wechat_event("oa", "openid", &read_xml(follow).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(e.name, "subscribe");
        assert_eq!(field(&e.properties, "qrscene").as_str(), Some("store42"));
        assert_eq!(
            e.subject,
            Subject::Person {
                identifier: "openid".into(),
                value: "oFollower".into(),
                fallback: "wechat:oFollower".into()
            }
        );
        let scan = follow
            .replace("[subscribe]", "[SCAN]")
            .replace("qrscene_store42", "store7");
        let s = wechat_event("oa", "openid", &read_xml(&scan).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.name.as_str(), field(&s.properties, "scene").as_str()),
            ("scan", Some("store7"))
        );
        let click = follow
            .replace("[subscribe]", "[CLICK]")
            .replace("qrscene_store42", "V1001_GOOD");
        let c = wechat_event("oa", "openid", &read_xml(&click).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(
            (c.name.as_str(), field(&c.properties, "key").as_str()),
            ("menu_click", Some("V1001_GOOD"))
        );
        let text = "<xml><ToUserName>gh_1</ToUserName><FromUserName>oFollower</FromUserName><CreateTime>1348831860</CreateTime><MsgType>text</MsgType><Content>退订 &amp; more</Content><MsgId>1234567890123456</MsgId></xml>";
        let m = wechat_event("oa", "openid", &read_xml(text).unwrap(), now())
            .unwrap()
            .unwrap();
        assert_eq!(m.name, "user_message");
        assert_eq!(
            field(&m.properties, "content").as_str(),
            Some("退订 & more")
        );
        assert_eq!(field(&m.properties, "msg_type").as_str(), Some("text"));
        assert_eq!(m.message_id, "wechat:oa:msg:1234567890123456");
        let popup = "<xml><ToUserName>gh_1</ToUserName><FromUserName>oFollower</FromUserName><CreateTime>1610969440</CreateTime><MsgType>event</MsgType><Event>subscribe_msg_popup_event</Event><SubscribeMsgPopupEvent><List><TemplateId>T1</TemplateId><SubscribeStatusString>accept</SubscribeStatusString><PopupScene>2</PopupScene></List><List><TemplateId>T2</TemplateId><SubscribeStatusString>reject</SubscribeStatusString><PopupScene>2</PopupScene></List></SubscribeMsgPopupEvent></xml>";
        let p = wechat_event("oa", "openid", &read_xml(popup).unwrap(), now())
            .unwrap()
            .unwrap();
        let Value::List(items) = field(&p.properties, "List") else {
            panic!("{:?}", p.properties)
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].field("TemplateId").as_str(), Some("T1"));
    }

    #[test]
    fn bad_xml_is_named_and_deep_xml_refused() {
        assert!(read_xml("<xml><a>1</b></xml>").is_err());
        assert!(
            read_xml("<xml><a>1</a>")
                .unwrap_err()
                .contains("not closed")
        );
        assert!(read_xml("").is_err());
        assert!(read_xml("<xml>&bogus;</xml>").is_err());
        let deep = format!("{}{}", "<a>".repeat(20), "</a>".repeat(20));
        assert!(read_xml(&deep).unwrap_err().contains("levels"));
        let many = format!("<xml>{}</xml>", "<i>1</i>".repeat(3000));
        assert!(read_xml(&many).is_err());
        // A future push's time is taken as now.
        let later = "<xml><CreateTime>99999999999</CreateTime></xml>";
        assert_eq!(created(&read_xml(later).unwrap(), now()), now());
    }

    #[test]
    fn platform_names_become_snake_case() {
        assert_eq!(snake_case("ExternalUserID"), "external_user_id");
        assert_eq!(snake_case("UpdateDetail"), "update_detail");
        assert_eq!(snake_case("MemChangeCnt"), "mem_change_cnt");
        assert_eq!(snake_case("Content"), "content");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
