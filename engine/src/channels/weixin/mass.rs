//! The `wecom_mass` kind: a message to a customer through the staff member
//! who owns them, as WeCom allows it — a customer mass-send task
//! (企业群发, `externalcontact/add_msg_template`, `chat_type` `single`)
//! that goes out when the staff member confirms it in their WeCom client.
//! The engine batches the sends of one staff member and one content into
//! one task and runs it (see `waymark_channel::StaffTasks`); this adapter
//! speaks the calls: make a task, find one whose answer was lost
//! (`get_groupmsg_list_v2`), read a confirmed task's per-customer results
//! (`get_groupmsg_task`, `get_groupmsg_send_result`), remind the staff
//! member (`remind_groupmsg_send`), cancel (`cancel_groupmsg_send`).
//! A send's address is the customer's `external_userid`
//! (`user.wecom_external_userid`); its staff member the `staff` field, else
//! `user.wecom_staff`.

use super::token::{self as weixin, Account, AccountKeys, Errcodes, Reply, TokenCache};
use super::wecom::Gettoken;
use crate::channels::http;
use chrono::{DateTime, Utc};
use reqwest::{Client, Url};
use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use toml::Table;
use waymark_channel::{
    BuildError, Call, CapPeriod, Channel, ChannelKind, ConfigError, Created, CustomerCap, Delivery,
    DeliveryError, Message, MessageFields, Receipt, Recipient, RecipientStatus, StaffTask,
    StaffTasks, TaskSchedule,
};

pub struct WecomMassKind;

/// The trait naming a customer's staff member, and the one holding their
/// external_userid (the address).
pub const STAFF_TRAIT: &str = "wecom_staff";
pub const ADDRESS_TRAIT: &str = "wecom_external_userid";

/// WeCom allows a staff member to be reminded of a task at most this many
/// times in 24 hours.
pub const MAX_REMINDERS_PER_DAY: u32 = 3;

/// At most this many customers per `add_msg_template`.
const MAX_RECIPIENTS: i64 = 10_000;

const PATHS: [&str; 8] = [
    "/cgi-bin/externalcontact/get_groupmsg_list_v2",
    "/cgi-bin/externalcontact/get_groupmsg_task",
    "/cgi-bin/externalcontact/get_groupmsg_send_result",
    "/cgi-bin/externalcontact/remind_groupmsg_send",
    "/cgi-bin/externalcontact/cancel_groupmsg_send",
    "/cgi-bin/externalcontact/add_msg_template",
    "/cgi-bin/externalcontact/mark_tag",
    "/cgi-bin/externalcontact/get",
];

const KEYS: AccountKeys<'static> = AccountKeys {
    default_base_url: super::wecom::DEFAULT_BASE_URL,
    api: "the WeCom API address",
    paths: ["/cgi-bin/gettoken", PATHS[5]],
    id: ["corp_id", "the corporation's CorpID (企业ID)"],
    secret: [
        "corp_secret",
        "the Secret of the customer-contact app (客户联系), or of an app with the customer-contact permission",
    ],
    more: &[
        "batch_window",
        "batch_max",
        "confirm_within",
        "poll_every",
        "remind_after",
        "reminders_per_day",
        "customer_cap",
        "tags",
    ],
};

/// The settings, read.
#[derive(Clone)]
pub struct MassSettings {
    account: Account,
    schedule: TaskSchedule,
    customer_cap: CapPeriod,
    tags: BTreeMap<String, String>,
}

/// A duration setting: `default` when absent; at least `min`.
fn duration(
    s: &mut waymark_channel::Settings<'_>,
    key: &str,
    default: Duration,
    min: Duration,
) -> Option<Duration> {
    let Some(text) = s.string(key) else {
        return Some(default);
    };
    match waymark_channel::parse_duration(text) {
        Some(d) if d < min => {
            s.error(
                key,
                format!("`{text}` is under the least it may be, {}s", min.as_secs()),
            );
            None
        }
        Some(d) => Some(d),
        None => {
            s.error(
                key,
                format!("`{text}` is not a duration such as 10m or 24h"),
            );
            None
        }
    }
}

fn read(path: &str, table: &Table) -> Result<MassSettings, Vec<ConfigError>> {
    let (account, schedule) = weixin::read_account(path, table, &KEYS, |s| {
        let secs = Duration::from_secs;
        let batch_window = duration(s, "batch_window", secs(600), secs(0));
        let batch_max = match table.contains_key("batch_max") {
            true => s.integer("batch_max", 1, MAX_RECIPIENTS),
            false => Some(1_000),
        };
        let confirm_within = duration(s, "confirm_within", secs(86_400), secs(1));
        let poll_every = duration(s, "poll_every", secs(300), secs(1));
        let remind_after = duration(s, "remind_after", secs(4 * 3600), secs(1));
        let reminders = match table.contains_key("reminders_per_day") {
            true => s.integer("reminders_per_day", 0, i64::from(MAX_REMINDERS_PER_DAY)),
            false => Some(i64::from(MAX_REMINDERS_PER_DAY)),
        };
        let customer_cap = match s.string("customer_cap") {
            None | Some("month") => Some(CapPeriod::Month),
            Some("week") => Some(CapPeriod::Week),
            Some("day") => Some(CapPeriod::Day),
            Some(other) => {
                s.error(
                    "customer_cap",
                    format!(
                        "`{other}` is not one of month, week, day (as set in WeCom's admin console)"
                    ),
                );
                None
            }
        };
        let mut tags = BTreeMap::new();
        for (tag, id) in s.string_table("tags") {
            if id.trim().is_empty() {
                s.error(
                    &format!("tags.{tag}"),
                    "must be a WeCom corp tag id (etXXXX), not empty",
                );
            } else {
                tags.insert(tag.to_string(), id.to_string());
            }
        }
        Some((
            TaskSchedule {
                batch_window: batch_window?,
                batch_max: batch_max? as usize,
                confirm_within: confirm_within?,
                poll_every: poll_every?,
                remind_after: remind_after?,
                reminders_per_day: reminders? as u32,
            },
            customer_cap?,
            tags,
        ))
    })?;
    let (schedule, customer_cap, tags) = schedule;
    Ok(MassSettings {
        account,
        schedule,
        customer_cap,
        tags,
    })
}

impl ChannelKind for WecomMassKind {
    type Settings = MassSettings;

    fn name(&self) -> &'static str {
        "wecom_mass"
    }

    fn message_fields(&self) -> MessageFields {
        let mut accepted = super::welcome::FIELDS.to_vec();
        accepted.push("staff");
        MessageFields {
            required: Vec::new(),
            accepted: Some(accepted),
        }
    }

    fn recipient(&self) -> Recipient {
        Recipient::Trait(ADDRESS_TRAIT.into())
    }

    fn staff_trait(&self) -> Option<&'static str> {
        Some(STAFF_TRAIT)
    }

    fn settings(&self, path: &str, table: &Table) -> Result<MassSettings, Vec<ConfigError>> {
        read(path, table)
    }

    fn build(&self, _name: &str, s: MassSettings) -> Result<Arc<dyn Channel>, BuildError> {
        let client = http::client(s.account.timeout)?;
        let base = s
            .account
            .send_url
            .as_str()
            .trim_end_matches(PATHS[5])
            .to_string();
        let url = |path: &str| {
            Url::parse(&format!("{base}{path}"))
                .map_err(|e| BuildError::Client(format!("`{base}{path}`: {e}")))
        };
        let endpoints = Endpoints {
            list: url(PATHS[0])?,
            task: url(PATHS[1])?,
            result: url(PATHS[2])?,
            remind: url(PATHS[3])?,
            cancel: url(PATHS[4])?,
            mark_tag: url(PATHS[6])?,
            customer: url(PATHS[7])?,
            create: s.account.send_url.clone(),
        };
        let customer_cap = CustomerCap {
            group: format!("wecom:{}", s.account.id),
            per: s.customer_cap,
        };
        let source = Gettoken::of(&client, &s.account);
        Ok(Arc::new(MassChannel {
            tags: s.tags,
            customer_cap,
            client,
            tokens: TokenCache::default(),
            source,
            endpoints,
            schedule: s.schedule,
        }))
    }
}

struct Endpoints {
    list: Url,
    task: Url,
    result: Url,
    remind: Url,
    cancel: Url,
    create: Url,
    mark_tag: Url,
    customer: Url,
}

struct MassChannel {
    tags: BTreeMap<String, String>,
    customer_cap: CustomerCap,
    client: Client,
    tokens: TokenCache,
    source: Gettoken,
    endpoints: Endpoints,
    schedule: TaskSchedule,
}

impl MassChannel {
    /// POSTs `body` to `url` with the cached token (replaced once if WeCom
    /// refuses it) and reads the errcode's class.
    async fn post(&self, url: &Url, body: &Json) -> Result<Reply, DeliveryError> {
        let name = url.path().rsplit('/').next().unwrap_or_default();
        let what = format!("wecom_mass {name}");
        super::budget::wecom_call(&self.source.corp_id, url.path())?;
        let body = body.to_string();
        let post = |token: String| {
            let mut url = url.clone();
            url.query_pairs_mut().append_pair("access_token", &token);
            let request = self
                .client
                .post(url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            let what = what.clone();
            async move { weixin::call(&what, request).await }
        };
        let reply =
            weixin::with_token(&what, Errcodes::Wecom, &self.tokens, &self.source, post).await?;
        reply.outcome(&what, Errcodes::Wecom)?;
        Ok(reply)
    }

    /// GETs `url` with the cached token, as [`post`](MassChannel::post).
    async fn get(&self, url: &Url) -> Result<Reply, DeliveryError> {
        let name = url.path().rsplit('/').next().unwrap_or_default();
        let what = format!("wecom_mass {name}");
        super::budget::wecom_call(&self.source.corp_id, url.path())?;
        let get = |token: String| {
            let mut url = url.clone();
            url.query_pairs_mut().append_pair("access_token", &token);
            let request = self.client.get(url);
            let what = what.clone();
            async move { weixin::call(&what, request).await }
        };
        let reply =
            weixin::with_token(&what, Errcodes::Wecom, &self.tokens, &self.source, get).await?;
        reply.outcome(&what, Errcodes::Wecom)?;
        Ok(reply)
    }

    /// Every page of a listing call: `body` with each `cursor` in turn,
    /// the items under `items` of every answer.
    async fn pages(
        &self,
        url: &Url,
        mut body: Json,
        items: &str,
    ) -> Result<Vec<Json>, DeliveryError> {
        let mut out = Vec::new();
        // A bounded walk: a platform that kept answering a cursor would
        // otherwise hold the channel's runner.
        for _ in 0..1_000 {
            let reply = self.post(url, &body).await?;
            if let Some(Json::Array(page)) = reply.rest.get(items) {
                out.extend(page.iter().cloned());
            }
            match reply.text("next_cursor") {
                Some(cursor) => body["cursor"] = json!(cursor),
                None => return Ok(out),
            }
        }
        Err(DeliveryError::Retryable(format!(
            "wecom_mass: {} kept answering with a next page",
            url.path()
        )))
    }
}

/// The `add_msg_template` body of a task.
fn create_body(task: &StaffTask) -> Result<Json, DeliveryError> {
    let field = |name: &str| match task.fields.get(name)? {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    };
    let (text, attachments) = super::welcome::content("wecom_mass", &field)?;
    let mut body = json!({
        "chat_type": "single",
        "external_userid": task.recipients,
        "sender": task.staff,
        "allow_select": false,
    });
    if let Some(text) = text {
        body["text"] = json!({ "content": text });
    }
    if !attachments.is_empty() {
        body["attachments"] = Json::Array(attachments);
    }
    Ok(body)
}

/// Whether a task WeCom lists is the one `body` would make: its creator
/// and content.
fn same_task(listed: &Json, task: &StaffTask, body: &Json) -> bool {
    let creator = listed["creator"].as_str() == Some(task.staff.as_str());
    let text = |j: &Json| j["text"]["content"].as_str().map(str::to_string);
    creator && text(listed) == text(body)
}

fn unix(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The `mark_tag` body of a mirrored tag: the staff member's customer,
/// the tag ids to add and remove.
fn mark_tag_body(message: &Message) -> Result<Json, DeliveryError> {
    let customer = message.address().ok_or_else(|| {
        DeliveryError::Permanent("wecom_mass mark_tag: no external_userid".into())
    })?;
    let staff = message
        .text("staff")
        .ok_or_else(|| DeliveryError::Permanent("wecom_mass mark_tag: no staff member".into()))?;
    let ids = |name: &str| message.fields.get(name).cloned().unwrap_or(json!([]));
    Ok(json!({
        "userid": staff,
        "external_userid": customer,
        "add_tag": ids("add_tag"),
        "remove_tag": ids("remove_tag"),
    }))
}

impl Channel for MassChannel {
    /// A tag mirrored to WeCom (`mark_tag`); the engine hands this kind's
    /// sends to `staff_tasks`.
    fn deliver<'a>(&'a self, message: &'a Message) -> Delivery<'a> {
        Box::pin(async move {
            if !message.fields.contains_key("add_tag") && !message.fields.contains_key("remove_tag")
            {
                return Err(DeliveryError::Permanent(
                    "wecom_mass: a send goes through a staff task, not a direct delivery".into(),
                ));
            }
            self.post(&self.endpoints.mark_tag, &mark_tag_body(message)?)
                .await
                .map(|_| Receipt { provider_id: None })
        })
    }

    fn staff_tasks(&self) -> Option<&dyn StaffTasks> {
        Some(self)
    }
}

impl StaffTasks for MassChannel {
    fn schedule(&self) -> TaskSchedule {
        self.schedule
    }

    fn account(&self) -> &str {
        &self.source.corp_id
    }

    fn customer_cap(&self) -> Option<CustomerCap> {
        Some(self.customer_cap.clone())
    }

    fn synced_tags(&self) -> BTreeMap<String, String> {
        self.tags.clone()
    }

    fn customer_tags<'a>(&'a self, customer: &'a str) -> Call<'a, Vec<String>> {
        Box::pin(async move {
            let mut url = self.endpoints.customer.clone();
            url.query_pairs_mut()
                .append_pair("external_userid", customer);
            let reply = self.get(&url).await?;
            // Each staff member who has the customer tags them apart; a
            // tag any of them gave counts.
            let mut ids: Vec<String> = match reply.rest.get("follow_user") {
                Some(Json::Array(follows)) => follows
                    .iter()
                    .filter_map(|f| f["tags"].as_array())
                    .flatten()
                    .filter_map(|t| t["tag_id"].as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            ids.sort();
            ids.dedup();
            Ok(ids)
        })
    }

    fn create<'a>(&'a self, task: &'a StaffTask) -> Call<'a, Created> {
        Box::pin(async move {
            let body = create_body(task)?;
            let reply = self.post(&self.endpoints.create, &body).await?;
            let id = reply.text("msgid").ok_or_else(|| {
                DeliveryError::Retryable(
                    "wecom_mass add_msg_template: no msgid in the answer".into(),
                )
            })?;
            let refused = match reply.rest.get("fail_list") {
                Some(Json::Array(list)) => list
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect(),
                _ => Vec::new(),
            };
            Ok(Created { task: id, refused })
        })
    }

    fn find<'a>(&'a self, task: &'a StaffTask) -> Call<'a, Option<String>> {
        Box::pin(async move {
            let body = create_body(task)?;
            // WeCom lists by creation time, whole seconds, a month at most.
            let start = unix(task.since) - 60;
            let query = json!({
                "chat_type": "single",
                "start_time": start,
                "end_time": unix(Utc::now()).max(start + 1).min(start + 30 * 86_400),
                "creator": task.staff,
                "filter_type": 0,
                "limit": 100,
            });
            let listed = self
                .pages(&self.endpoints.list, query, "group_msg_list")
                .await?;
            Ok(listed
                .iter()
                .find(|l| same_task(l, task, &body))
                .and_then(|l| l["msgid"].as_str().map(str::to_string)))
        })
    }

    fn results<'a>(
        &'a self,
        task: &'a str,
        staff: &'a str,
    ) -> Call<'a, Option<Vec<(String, RecipientStatus)>>> {
        Box::pin(async move {
            let members = self
                .pages(
                    &self.endpoints.task,
                    json!({"msgid": task, "limit": 1000}),
                    "task_list",
                )
                .await?;
            // 2: the staff member sent it; 0: not yet.
            let sent = members
                .iter()
                .any(|m| m["userid"].as_str() == Some(staff) && m["status"].as_i64() == Some(2));
            if !sent {
                return Ok(None);
            }
            let list = self
                .pages(
                    &self.endpoints.result,
                    json!({"msgid": task, "userid": staff, "limit": 1000}),
                    "send_list",
                )
                .await?;
            Ok(Some(
                list.iter()
                    .filter_map(|r| {
                        let status = match r["status"].as_i64()? {
                            1 => RecipientStatus::Sent,
                            2 => RecipientStatus::NotFriend,
                            3 => RecipientStatus::OverQuota,
                            _ => RecipientStatus::Waiting,
                        };
                        Some((r["external_userid"].as_str()?.to_string(), status))
                    })
                    .collect(),
            ))
        })
    }

    fn remind<'a>(&'a self, task: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            self.post(&self.endpoints.remind, &json!({"msgid": task}))
                .await
                .map(|_| ())
        })
    }

    fn cancel<'a>(&'a self, task: &'a str) -> Call<'a, ()> {
        Box::pin(async move {
            self.post(&self.endpoints.cancel, &json!({"msgid": task}))
                .await
                .map(|_| ())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(fields: Json) -> StaffTask {
        StaffTask {
            id: 7,
            staff: "zhangsan".into(),
            recipients: vec!["wmA".into(), "wmB".into()],
            template: None,
            fields: fields.as_object().cloned().unwrap_or_default(),
            since: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn a_task_goes_to_its_staff_members_customers_with_text_and_attachments() {
        let b = create_body(&task(json!({
            "text": "购物车提醒",
            "link_title": "去结算",
            "link_url": "https://shop/cart",
        })))
        .unwrap();
        assert_eq!(b["chat_type"], "single");
        assert_eq!(b["sender"], "zhangsan");
        assert_eq!(b["external_userid"], json!(["wmA", "wmB"]));
        assert_eq!(b["text"]["content"], "购物车提醒");
        assert_eq!(b["attachments"][0]["link"]["url"], "https://shop/cart");
        assert!(matches!(
            create_body(&task(json!({}))),
            Err(DeliveryError::Permanent(m)) if m.contains("needs `text`")
        ));
    }

    #[test]
    fn a_listed_task_is_ours_by_creator_and_text() {
        let t = task(json!({"text": "hi"}));
        let body = create_body(&t).unwrap();
        let listed = json!({"msgid": "m1", "creator": "zhangsan", "text": {"content": "hi"}});
        assert!(same_task(&listed, &t, &body));
        let other = json!({"msgid": "m2", "creator": "lisi", "text": {"content": "hi"}});
        assert!(!same_task(&other, &t, &body));
        let changed = json!({"msgid": "m3", "creator": "zhangsan", "text": {"content": "hello"}});
        assert!(!same_task(&changed, &t, &body));
    }

    #[test]
    fn settings_have_defaults_and_bounds() {
        let table: Table = toml::from_str(
            r#"
            corp_id = "ww1"
            corp_secret = "s"
            "#,
        )
        .unwrap();
        let s = read("channels.mass", &table).unwrap();
        assert_eq!(s.schedule.batch_window, Duration::from_secs(600));
        assert_eq!(s.schedule.confirm_within, Duration::from_secs(86_400));
        assert_eq!(s.schedule.reminders_per_day, 3);
        assert_eq!(s.schedule.batch_max, 1_000);
        let table: Table = toml::from_str(
            r#"
            corp_id = "ww1"
            corp_secret = "s"
            reminders_per_day = 5
            customer_cap = "fortnight"
            confirm_within = "0s"
            batch_window = "soon"
            "#,
        )
        .unwrap();
        let errors = read("channels.mass", &table).err().unwrap();
        let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "channels.mass.batch_window",
                "channels.mass.confirm_within",
                "channels.mass.reminders_per_day",
                "channels.mass.customer_cap"
            ],
            "{errors:?}"
        );
    }
}
