//! WeCom customer mass sends through the real daemon, against a loopback
//! stand-in of WeCom's customer-contact API that behaves as its
//! documentation says: a task (`add_msg_template`) stays unconfirmed
//! until the test confirms it as the staff member; customers who are not
//! the staff member's contacts come back in `fail_list`; each customer
//! takes a limited number of mass messages a month (over it: status 3);
//! result queries made while another is answered get 45033; access tokens
//! expire; reminders past 3 in 24 hours are refused. Also: a crash while
//! a task is being made and while it is pending makes no task twice and
//! loses no outcome.

use serde_json::{Value, json};
#[path = "wecom_client.rs"]
mod wecom_client;

use std::path::Path;
use std::time::Duration;
use waymark_tests::{daemon_dir, free_port, http, start_daemon, terminate, wait_for};
use wecom_client::{AES_KEY, CORP, TOKEN, customer_change, now_secs, wecom_push};

mod wecom {
    use axum::Json;
    use axum::extract::{Query, State};
    use axum::routing::{get, post};
    use serde_json::{Value, json};
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    #[derive(Debug, Clone)]
    pub struct Task {
        pub id: String,
        pub sender: String,
        pub customers: Vec<String>,
        pub text: String,
        pub created: u64,
        pub confirmed: bool,
        pub cancelled: bool,
        /// Per customer, once confirmed: 1 sent, 2 not a friend, 3 over quota.
        pub status: BTreeMap<String, i64>,
        pub reminders: Vec<Instant>,
    }

    #[derive(Default)]
    pub struct Wecom {
        /// Who is whose contact: (staff, customer).
        pub friends: Mutex<BTreeSet<(String, String)>>,
        /// Mass messages each customer got this month.
        pub received: Mutex<HashMap<String, u32>>,
        /// The monthly cap per customer.
        pub cap: AtomicUsize,
        pub tasks: Mutex<Vec<Task>>,
        /// Every add_msg_template call that made a task.
        pub creates: AtomicUsize,
        /// The token in force: calls with another get 42001.
        token: Mutex<String>,
        pub tokens_issued: AtomicUsize,
        /// Result queries being answered, and 45033s given.
        in_flight: AtomicUsize,
        pub refused_parallel: AtomicUsize,
        /// While set, add_msg_template makes the task and never answers.
        pub hold_creates: AtomicBool,
        pub reminders_refused: AtomicUsize,
        pub cancels: AtomicUsize,
        /// Corp tags per (staff, customer), and every mark_tag body.
        pub tags: Mutex<BTreeMap<(String, String), BTreeSet<String>>>,
        pub marks: Mutex<Vec<Value>>,
    }

    impl Wecom {
        pub fn new(cap: usize) -> Arc<Wecom> {
            let w = Wecom::default();
            w.cap.store(cap, Ordering::SeqCst);
            Arc::new(w)
        }

        pub fn befriend(&self, staff: &str, customer: &str) {
            self.friends
                .lock()
                .unwrap()
                .insert((staff.into(), customer.into()));
        }

        /// The access token stops working (expired early, as WeCom allows).
        pub fn expire_token(&self) {
            *self.token.lock().unwrap() = "expired".into();
        }

        pub fn tasks(&self) -> Vec<Task> {
            self.tasks.lock().unwrap().clone()
        }

        /// The staff member confirms their task in the WeCom client: each
        /// customer is sent to, unless they are no longer a contact or had
        /// their month's mass messages.
        pub fn confirm(&self, id: &str) {
            let mut tasks = self.tasks.lock().unwrap();
            let task = tasks.iter_mut().find(|t| t.id == id).expect("a task");
            assert!(!task.cancelled, "a cancelled task cannot be confirmed");
            let friends = self.friends.lock().unwrap();
            let mut received = self.received.lock().unwrap();
            let cap = self.cap.load(Ordering::SeqCst) as u32;
            task.confirmed = true;
            for c in &task.customers {
                let status = if !friends.contains(&(task.sender.clone(), c.clone())) {
                    2
                } else if *received.get(c).unwrap_or(&0) >= cap {
                    3
                } else {
                    *received.entry(c.clone()).or_default() += 1;
                    1
                };
                task.status.insert(c.clone(), status);
            }
        }
    }

    type Q = Query<HashMap<String, String>>;

    fn bad_token(w: &Wecom, q: &Q) -> Option<Json<Value>> {
        let token = w.token.lock().unwrap().clone();
        (q.get("access_token") != Some(&token))
            .then(|| Json(json!({"errcode": 42001, "errmsg": "access_token expired"})))
    }

    async fn token(State(w): State<Arc<Wecom>>, q: Q) -> Json<Value> {
        if !matches!(
            q.get("corpid").map(String::as_str),
            Some("wwcorp" | super::CORP)
        ) {
            return Json(json!({"errcode": 40013, "errmsg": "invalid corpid"}));
        }
        let n = w.tokens_issued.fetch_add(1, Ordering::SeqCst) + 1;
        let token = format!("TOKEN{n}");
        *w.token.lock().unwrap() = token.clone();
        Json(json!({"errcode": 0, "access_token": token, "expires_in": 7200}))
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    async fn create(State(w): State<Arc<Wecom>>, q: Q, Json(body): Json<Value>) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        assert_eq!(body["chat_type"], "single");
        let sender = body["sender"].as_str().unwrap().to_string();
        let customers: Vec<String> = body["external_userid"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let friends = w.friends.lock().unwrap().clone();
        let (ok, fail): (Vec<String>, Vec<String>) = customers
            .into_iter()
            .partition(|c| friends.contains(&(sender.clone(), c.clone())));
        let id = {
            let mut tasks = w.tasks.lock().unwrap();
            let id = format!("msg{}", tasks.len() + 1);
            tasks.push(Task {
                id: id.clone(),
                sender,
                customers: ok,
                text: body["text"]["content"].as_str().unwrap_or_default().into(),
                created: now(),
                confirmed: false,
                cancelled: false,
                status: BTreeMap::new(),
                reminders: Vec::new(),
            });
            id
        };
        w.creates.fetch_add(1, Ordering::SeqCst);
        if w.hold_creates.load(Ordering::SeqCst) {
            // Made, but the answer never comes (the daemon is killed).
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        Json(json!({"errcode": 0, "errmsg": "ok", "msgid": id, "fail_list": fail}))
    }

    async fn list(State(w): State<Arc<Wecom>>, q: Q, Json(body): Json<Value>) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        let (start, end) = (
            body["start_time"].as_u64().unwrap(),
            body["end_time"].as_u64().unwrap(),
        );
        assert!(end > start && end - start <= 31 * 86_400, "{body}");
        let creator = body["creator"].as_str();
        let listed: Vec<Value> = w
            .tasks()
            .iter()
            .filter(|t| t.created >= start && t.created <= end + 1)
            .filter(|t| creator.is_none_or(|c| c == t.sender))
            .map(|t| json!({"msgid": t.id, "creator": t.sender, "create_type": 0, "create_time": t.created, "text": {"content": t.text}}))
            .collect();
        Json(json!({"errcode": 0, "errmsg": "ok", "group_msg_list": listed}))
    }

    /// Result queries: one at a time, or 45033.
    async fn serially<F: std::future::Future<Output = Json<Value>>>(
        w: &Wecom,
        answer: F,
    ) -> Json<Value> {
        /// Counts a query in flight until it is answered or its caller
        /// hangs up (a daemon killed mid-query).
        struct InFlight<'a>(&'a AtomicUsize);
        impl Drop for InFlight<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _in_flight = InFlight(&w.in_flight);
        if w.in_flight.fetch_add(1, Ordering::SeqCst) > 0 {
            w.refused_parallel.fetch_add(1, Ordering::SeqCst);
            return Json(json!({"errcode": 45033, "errmsg": "api concurrent out of limit"}));
        }
        // Long enough for a second query made in parallel to meet it.
        tokio::time::sleep(Duration::from_millis(30)).await;
        answer.await
    }

    fn task_of(w: &Wecom, body: &Value) -> Option<Task> {
        let id = body["msgid"].as_str()?;
        w.tasks().into_iter().find(|t| t.id == id)
    }

    async fn task(State(w): State<Arc<Wecom>>, q: Q, Json(body): Json<Value>) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        serially(&w, async {
            let Some(t) = task_of(&w, &body) else {
                return Json(json!({"errcode": 41063, "errmsg": "msgid not found"}));
            };
            let status = if t.confirmed { 2 } else { 0 };
            Json(json!({"errcode": 0, "errmsg": "ok", "task_list": [{"userid": t.sender, "status": status}]}))
        })
        .await
    }

    async fn result(State(w): State<Arc<Wecom>>, q: Q, Json(body): Json<Value>) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        serially(&w, async {
            let Some(t) = task_of(&w, &body) else {
                return Json(json!({"errcode": 41063, "errmsg": "msgid not found"}));
            };
            assert_eq!(body["userid"].as_str(), Some(t.sender.as_str()));
            let list: Vec<Value> = t
                .customers
                .iter()
                .map(|c| json!({"external_userid": c, "userid": t.sender, "status": t.status.get(c).copied().unwrap_or(0)}))
                .collect();
            Json(json!({"errcode": 0, "errmsg": "ok", "send_list": list}))
        })
        .await
    }

    async fn remind(State(w): State<Arc<Wecom>>, q: Q, Json(body): Json<Value>) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        let mut tasks = w.tasks.lock().unwrap();
        let Some(t) = tasks
            .iter_mut()
            .find(|t| Some(t.id.as_str()) == body["msgid"].as_str())
        else {
            return Json(json!({"errcode": 41063, "errmsg": "msgid not found"}));
        };
        t.reminders
            .retain(|r| r.elapsed() < Duration::from_secs(86_400));
        if t.reminders.len() >= 3 {
            w.reminders_refused.fetch_add(1, Ordering::SeqCst);
            return Json(json!({"errcode": 41069, "errmsg": "remind limit"}));
        }
        t.reminders.push(Instant::now());
        Json(json!({"errcode": 0, "errmsg": "ok"}))
    }

    async fn cancel(State(w): State<Arc<Wecom>>, q: Q, Json(body): Json<Value>) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        let mut tasks = w.tasks.lock().unwrap();
        if let Some(t) = tasks
            .iter_mut()
            .find(|t| Some(t.id.as_str()) == body["msgid"].as_str())
        {
            t.cancelled = true;
        }
        w.cancels.fetch_add(1, Ordering::SeqCst);
        Json(json!({"errcode": 0, "errmsg": "ok"}))
    }

    async fn mark_tag(State(w): State<Arc<Wecom>>, q: Q, Json(body): Json<Value>) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        let key = (
            body["userid"].as_str().unwrap().to_string(),
            body["external_userid"].as_str().unwrap().to_string(),
        );
        let ids = |name: &str| -> Vec<String> {
            body[name]
                .as_array()
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default()
        };
        {
            let mut tags = w.tags.lock().unwrap();
            let carried = tags.entry(key).or_default();
            carried.extend(ids("add_tag"));
            for id in ids("remove_tag") {
                carried.remove(&id);
            }
        }
        w.marks.lock().unwrap().push(body);
        Json(json!({"errcode": 0, "errmsg": "ok"}))
    }

    /// `externalcontact/get`: the customer and each staff member's tags.
    async fn customer(State(w): State<Arc<Wecom>>, q: Q) -> Json<Value> {
        if let Some(refused) = bad_token(&w, &q) {
            return refused;
        }
        let id = q.get("external_userid").cloned().unwrap_or_default();
        let follows: Vec<Value> = w
            .tags
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, c), _)| *c == id)
            .map(|((staff, _), ids)| {
                let tags: Vec<Value> = ids
                    .iter()
                    .map(|t| json!({"group_name": "会员", "tag_name": t, "tag_id": t, "type": 1}))
                    .collect();
                json!({"userid": staff, "tags": tags})
            })
            .collect();
        Json(
            json!({"errcode": 0, "errmsg": "ok", "external_contact": {"external_userid": id}, "follow_user": follows}),
        )
    }

    pub fn start(w: Arc<Wecom>) -> String {
        waymark_tests::serve_on_loopback(|listener| async move {
            let x = "/cgi-bin/externalcontact";
            let router = axum::Router::new()
                .route("/cgi-bin/gettoken", get(token))
                .route(&format!("{x}/add_msg_template"), post(create))
                .route(&format!("{x}/get_groupmsg_list_v2"), post(list))
                .route(&format!("{x}/get_groupmsg_task"), post(task))
                .route(&format!("{x}/get_groupmsg_send_result"), post(result))
                .route(&format!("{x}/remind_groupmsg_send"), post(remind))
                .route(&format!("{x}/cancel_groupmsg_send"), post(cancel))
                .route(&format!("{x}/mark_tag"), post(mark_tag))
                .route(&format!("{x}/get"), get(customer))
                .with_state(w);
            axum::serve(listener, router).await.unwrap();
        })
    }
}

use std::sync::atomic::Ordering;

const JOURNEY: &str = r#"journey cart_staff "购物车挽回（导购确认）" {
  trigger event cart_abandoned
  entry always
  send mass { text: "您的购物车里还有 {event.item}" }
  wait for confirmation within 10s as o {
    tag "reached_by_staff"
  } else {
    send sms template "SMS_CART" { item: event.item }
  }
}
"#;

fn config(base: &str, extra: &str) -> String {
    format!(
        "[channels.mass]\nkind = \"wecom_mass\"\nbase_url = \"{base}\"\ncorp_id = \"wwcorp\"\ncorp_secret = \"contact-secret\"\n\
         batch_window = \"1s\"\npoll_every = \"1s\"\nremind_after = \"1s\"\ntimeout = \"2s\"\n{extra}\n\
         [channels.sms]\nkind = \"log\"\npath = \"./sms.jsonl\"\n"
    )
}

fn post(port: u16, path: &str, body: Value) {
    let (status, answer) = http(port, "POST", path, &body.to_string());
    assert!(status == 200 || status == 202, "{path}: {status} {answer}");
}

fn customer(port: u16, user: &str, external: &str, staff: Option<&str>) {
    let mut traits = json!({"wecom_external_userid": external});
    if let Some(staff) = staff {
        traits["wecom_staff"] = json!(staff);
    }
    post(
        port,
        "/v1/identify",
        json!({"userId": user, "traits": traits}),
    );
}

fn abandon(port: u16, user: &str, item: &str) {
    post(
        port,
        "/v1/track",
        json!({"userId": user, "event": "cart_abandoned", "properties": {"item": item}}),
    );
}

fn journal(port: u16, user: &str) -> Vec<Value> {
    let (status, body) = http(port, "GET", &format!("/v1/users/{user}/journal"), "");
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["records"].as_array().unwrap().clone()
}

/// The outcome records of a user's journal, as (outcome, staff).
fn outcomes(port: u16, user: &str) -> Vec<(String, String)> {
    journal(port, user)
        .iter()
        .filter(|r| r["kind"] == "outcome")
        .map(|r| {
            (
                r["reason"].as_str().unwrap().to_string(),
                r["staff"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has(port: u16, user: &str, kind: &str, what: &str) -> bool {
    journal(port, user).iter().any(|r| {
        r["kind"] == kind && (r["tag"] == what || r["channel"] == what || r["reason"] == what)
    })
}

fn sms_count(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("sms.jsonl"))
        .unwrap_or_default()
        .lines()
        .count()
}

#[test]
fn staff_confirm_tasks_and_the_journey_goes_on_with_each_customers_outcome() {
    let w = wecom::Wecom::new(2);
    let base = wecom::start(w.clone());
    for (staff, c) in [("zhangsan", "wm1"), ("zhangsan", "wm2"), ("lisi", "wm3")] {
        w.befriend(staff, c);
    }
    // wm2 had their two mass messages this month already.
    w.received.lock().unwrap().insert("wm2".into(), 2);
    let dir = daemon_dir(
        "wecom_mass",
        &[("cart.journey", JOURNEY)],
        &config(&base, ""),
    );
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    customer(port, "u1", "wm1", Some("zhangsan"));
    customer(port, "u2", "wm2", Some("zhangsan"));
    customer(port, "u3", "wm3", Some("lisi"));
    customer(port, "u4", "wm4", None);
    // wm5 is not zhangsan's contact: WeCom lists it in fail_list.
    customer(port, "u5", "wm5", Some("zhangsan"));
    for u in ["u1", "u2", "u3", "u4", "u5"] {
        abandon(port, u, "羊毛大衣");
    }

    // One task per staff member, after the batch window.
    wait_for("two tasks", Duration::from_secs(30), || {
        w.tasks().len() == 2
    });
    let tasks = w.tasks();
    let zhang = tasks
        .iter()
        .find(|t| t.sender == "zhangsan")
        .unwrap()
        .clone();
    let li = tasks.iter().find(|t| t.sender == "lisi").unwrap().clone();
    assert_eq!(
        zhang.customers,
        ["wm1", "wm2"],
        "wm5 was refused at creation"
    );
    assert_eq!(li.customers, ["wm3"]);
    assert_eq!(zhang.text, "您的购物车里还有 羊毛大衣");
    // u4 has no staff member: suppressed, and the journey falls back at once.
    assert!(has(port, "u4", "suppressed", "no_staff"));
    // u5 was refused at creation: not a friend, so the SMS goes.
    wait_for("u5's outcome", Duration::from_secs(30), || {
        !outcomes(port, "u5").is_empty()
    });
    assert_eq!(
        outcomes(port, "u5"),
        [("not_friend".into(), "zhangsan".into())]
    );
    assert!(has(port, "u5", "send", "sms"));
    // Nobody has confirmed: no outcome for u1..u3 yet.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(outcomes(port, "u1").is_empty() && outcomes(port, "u3").is_empty());

    // The token expires early: the daemon gets another and goes on.
    w.expire_token();
    w.confirm(&zhang.id);
    wait_for("u1 and u2's outcomes", Duration::from_secs(30), || {
        !outcomes(port, "u1").is_empty() && !outcomes(port, "u2").is_empty()
    });
    assert_eq!(outcomes(port, "u1"), [("sent".into(), "zhangsan".into())]);
    assert!(has(port, "u1", "tag", "reached_by_staff"));
    assert!(!has(port, "u1", "send", "sms"));
    assert_eq!(
        outcomes(port, "u2"),
        [("over_quota".into(), "zhangsan".into())]
    );
    assert!(has(port, "u2", "send", "sms"));
    assert!(w.tokens_issued.load(Ordering::SeqCst) >= 2);

    // lisi never confirms: reminded (at most 3 times in 24 h), then at the
    // deadline (the wait's 10 s) the task is cancelled and u3 falls back.
    wait_for("u3's outcome", Duration::from_secs(30), || {
        !outcomes(port, "u3").is_empty()
    });
    assert_eq!(
        outcomes(port, "u3"),
        [("not_confirmed".into(), "lisi".into())]
    );
    assert!(has(port, "u3", "send", "sms"));
    let li = w.tasks().into_iter().find(|t| t.id == li.id).unwrap();
    assert!(li.cancelled);
    assert_eq!(li.reminders.len(), 3, "reminded up to WeCom's limit");
    assert_eq!(w.reminders_refused.load(Ordering::SeqCst), 0);
    // Polled one call at a time: WeCom never had to refuse a parallel query.
    assert_eq!(w.refused_parallel.load(Ordering::SeqCst), 0);
    assert_eq!(w.creates.load(Ordering::SeqCst), 2);
    // SMS fallbacks: u2 (over quota), u3 (not confirmed), u4 (no staff), u5.
    wait_for("4 SMS", Duration::from_secs(10), || sms_count(&dir) == 4);

    // Stats: confirmation per staff member.
    let (status, stats) = http(port, "GET", "/v1/journeys/cart_staff/stats", "");
    assert_eq!(status, 200, "{stats}");
    let stats: Value = serde_json::from_str(&stats).unwrap();
    let version = stats["versions"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap();
    let zhang = &version["staff"]["zhangsan"];
    assert_eq!(
        (
            zhang["sent"].as_u64(),
            zhang["over_quota"].as_u64(),
            zhang["not_friend"].as_u64()
        ),
        (Some(1), Some(1), Some(1))
    );
    assert_eq!(zhang["confirmation_rate"], 1.0);
    assert_eq!(version["staff"]["lisi"]["not_confirmed"], 1);
    assert_eq!(version["staff"]["lisi"]["confirmation_rate"], 0.0);
    // The console's journey page shows the same per staff member.
    let (status, page) = http(port, "GET", "/ui/journeys/cart_staff", "");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("<h2>Staff confirmations</h2>"), "{page}");
    let row = &page[page.find("data-staff=\"lisi\"").expect("lisi's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    assert!(row.contains("data-field=\"not_confirmed\">1<"), "{row}");
    assert!(
        row.contains("data-field=\"confirmation_rate\">0.0%<"),
        "{row}"
    );
    let (_, metrics) = http(port, "GET", "/metrics", "");
    assert!(
        metrics.contains("waymark_staff_outcomes_total{channel=\"mass\",outcome=\"sent\"} 1"),
        "{metrics}"
    );
    // Every task is settled and gone from the store.
    assert!(metrics.contains("\nwaymark_staff_tasks 0\n"), "{metrics}");
    assert!(
        metrics.contains("\nwaymark_staff_task_sends 0\n"),
        "{metrics}"
    );
    assert!(terminate(&mut daemon));
}

#[test]
fn a_crash_while_a_task_is_made_or_pending_makes_no_task_twice_and_loses_no_outcome() {
    let w = wecom::Wecom::new(30);
    let base = wecom::start(w.clone());
    w.befriend("zhangsan", "wm1");
    let journey = JOURNEY.replace("within 10s", "within 1h");
    let dir = daemon_dir(
        "wecom_mass_crash",
        &[("cart.journey", &journey)],
        &config(&base, ""),
    );
    let port = free_port();
    let log = dir.join("daemon.log");
    let mut daemon = start_daemon(&dir, port, &log);
    customer(port, "u1", "wm1", Some("zhangsan"));
    // WeCom makes the task but its answer never arrives.
    w.hold_creates.store(true, Ordering::SeqCst);
    abandon(port, "u1", "围巾");
    wait_for("the task to be made", Duration::from_secs(30), || {
        w.creates.load(Ordering::SeqCst) == 1
    });
    // Killed with the call in flight.
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    w.hold_creates.store(false, Ordering::SeqCst);

    // Restarted: the task is looked for and found, not made again.
    let mut daemon = start_daemon(&dir, port, &log);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(w.creates.load(Ordering::SeqCst), 1, "{:?}", w.tasks());
    assert!(outcomes(port, "u1").is_empty());
    // Killed again while the task is pending.
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let id = w.tasks()[0].id.clone();
    w.confirm(&id);
    let mut daemon = start_daemon(&dir, port, &log);
    wait_for("u1's outcome", Duration::from_secs(30), || {
        !outcomes(port, "u1").is_empty()
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(outcomes(port, "u1"), [("sent".into(), "zhangsan".into())]);
    assert!(has(port, "u1", "tag", "reached_by_staff"));
    assert_eq!(w.creates.load(Ordering::SeqCst), 1);
    assert_eq!(sms_count(&dir), 0);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("not made again"), "{log}");
    assert!(terminate(&mut daemon));
}

#[test]
fn tags_a_journey_gives_a_customer_reach_wecom_and_tags_staff_edit_in_wecom_come_back() {
    let w = wecom::Wecom::new(30);
    let base = wecom::start(w.clone());
    let journey = "journey vip \"VIP 会员\" {\n  trigger event order_paid\n  entry always\n  tag \"vip\"\n  tag \"big_spender\"\n}\n";
    let config = format!(
        "[identity]\nidentifiers = [\"wecom_external_userid\"]\n\n\
         [channels.mass]\nkind = \"wecom_mass\"\nbase_url = \"{base}\"\ncorp_id = \"{CORP}\"\ncorp_secret = \"contact-secret\"\n\n\
         [channels.mass.tags]\nvip = \"etVIP\"\n\n\
         [callbacks.wecom.store]\ntoken = \"{TOKEN}\"\nencoding_aes_key = \"{AES_KEY}\"\ncorp_id = \"{CORP}\"\n"
    );
    let dir = daemon_dir("wecom_tags", &[("vip.journey", journey)], &config);
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    customer(port, "u1", "wm1", Some("zhangsan"));
    post(
        port,
        "/v1/track",
        json!({"userId": "u1", "event": "order_paid", "properties": {"amount": 999}}),
    );
    // The mapped tag reaches WeCom on the customer's staff member; the
    // other stays in Waymark.
    wait_for("mark_tag", Duration::from_secs(30), || {
        !w.marks.lock().unwrap().is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let marks = w.marks.lock().unwrap().clone();
    assert_eq!(
        marks,
        [
            json!({"userid": "zhangsan", "external_userid": "wm1", "add_tag": ["etVIP"], "remove_tag": []})
        ]
    );

    // In WeCom the staff member takes the tag off: the push brings it back.
    w.tags.lock().unwrap().clear();
    let edited = customer_change("edit_external_contact", "wm1", "zhangsan", now_secs(), "");
    assert_eq!(wecom_push(port, "store", &edited, "t1").0, 200);
    let untagged = || {
        journal(port, "u1")
            .iter()
            .any(|r| r["kind"] == "untag" && r["tag"] == "vip" && r["reason"] == "mass")
    };
    wait_for("vip taken off", Duration::from_secs(30), untagged);
    // And puts it on again, with a tag Waymark does not mirror.
    w.tags.lock().unwrap().insert(
        ("zhangsan".into(), "wm1".into()),
        ["etVIP".to_string(), "etOTHER".to_string()].into(),
    );
    let edited = customer_change(
        "edit_external_contact",
        "wm1",
        "zhangsan",
        now_secs() + 1,
        "",
    );
    assert_eq!(wecom_push(port, "store", &edited, "t2").0, 200);
    wait_for("vip put back", Duration::from_secs(30), || {
        journal(port, "u1")
            .iter()
            .filter(|r| r["kind"] == "tag" && r["tag"] == "vip")
            .count()
            == 2
    });
    let tags: Vec<(String, String, String)> = journal(port, "u1")
        .iter()
        .filter(|r| r["kind"] == "tag" || r["kind"] == "untag")
        .map(|r| {
            (
                r["kind"].as_str().unwrap().to_string(),
                r["tag"].as_str().unwrap().to_string(),
                r["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        tags,
        [
            ("tag".into(), "vip".into(), "".into()),
            ("tag".into(), "big_spender".into(), "".into()),
            ("untag".into(), "vip".into(), "mass".into()),
            ("tag".into(), "vip".into(), "mass".into()),
        ]
    );
    // What came from WeCom is not sent back to it.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.marks.lock().unwrap().len(), 1);

    // The corp tag is deleted in WeCom: the operator is told which
    // Waymark tag no longer mirrors.
    let deleted = format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName><CreateTime>{}</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[change_external_tag]]></Event><Id><![CDATA[etVIP]]></Id><TagType><![CDATA[tag]]></TagType><ChangeType><![CDATA[delete]]></ChangeType></xml>",
        now_secs()
    );
    assert_eq!(wecom_push(port, "store", &deleted, "t3").0, 200);
    let log = dir.join("daemon.log");
    wait_for("the warning", Duration::from_secs(10), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("Waymark tag `vip` is mirrored to was deleted in WeCom")
    });
    assert!(terminate(&mut daemon));
}

#[test]
fn a_task_wecom_no_longer_knows_fails_its_customers_and_the_journey_falls_back() {
    let w = wecom::Wecom::new(30);
    let base = wecom::start(w.clone());
    w.befriend("zhangsan", "wm1");
    let dir = daemon_dir(
        "wecom_mass_gone",
        &[("cart.journey", &JOURNEY.replace("within 10s", "within 1h"))],
        &config(&base, ""),
    );
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    customer(port, "u1", "wm1", Some("zhangsan"));
    abandon(port, "u1", "手套");
    wait_for("the task", Duration::from_secs(30), || w.tasks().len() == 1);
    // Withdrawn in WeCom's admin console: its msgid is unknown (41063).
    w.tasks.lock().unwrap().clear();
    wait_for("u1's outcome", Duration::from_secs(30), || {
        !outcomes(port, "u1").is_empty()
    });
    assert_eq!(outcomes(port, "u1"), [("failed".into(), "zhangsan".into())]);
    let failed = journal(port, "u1")
        .into_iter()
        .find(|r| r["kind"] == "outcome")
        .unwrap();
    assert!(
        failed["message"].as_str().unwrap().contains("41063"),
        "{failed}"
    );
    wait_for("the SMS", Duration::from_secs(10), || sms_count(&dir) == 1);
    assert!(terminate(&mut daemon));
}
