//! The console at `/ui`, in real headless Chromium against the real
//! daemon: signing in with a token, every page loading without a console
//! error, the numbers on the pages equal to the API's, pausing a journey
//! and replaying a dead letter from the page, and a request without the
//! CSRF token refused. Ignored without Chromium; `.ci/run` installs it and
//! runs these. Also writes the journey page's screenshot to `docs/images/`.

use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;
use waymark_tests::browser::{Browser, Options};
use waymark_tests::*;

const ADMIN: &str = "admin-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";

const SCRIPT: &str = r#"journey welcome "新客欢迎" {
  trigger event signed_up
  goal order_paid within 7d
  split offer {
    50% coupon {
      give coupon "NEW10" expires in 7d
      send hook { text: "welcome <b>gift</b>" }
    }
    50% holdout {}
  }
  wait 1d
  send hook { text: "day 2" }
}
"#;

fn api(port: u16, method: &str, path: &str, body: &str) -> Value {
    let auth = format!("Bearer {ADMIN}");
    let (status, bytes) = Client::new(port)
        .request(method, path, &[("Authorization", &auth)], body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    assert_eq!(
        status,
        200,
        "{method} {path}: {}",
        String::from_utf8_lossy(&bytes)
    );
    serde_json::from_slice(&bytes).unwrap()
}

thread_local! {
    /// How many console errors the checks have seen (the browser's log
    /// holds every one since the session started).
    static SEEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The console errors since the last check.
fn new_errors(browser: &Browser) -> Vec<waymark_tests::browser::LogEntry> {
    let all = browser.console_errors();
    let seen = SEEN.with(|s| s.replace(all.len()));
    all.into_iter().skip(seen).collect()
}

/// No errors in the page's console since the last check.
fn clean(browser: &Browser, page: &str) {
    let errors = new_errors(browser);
    assert!(
        errors.is_empty(),
        "{page}: console errors {errors:?}; all: {:?}",
        browser.console()
    );
}

/// The console's errors since the last check are the page's own status
/// (a refusal the test asked for), and nothing else.
fn expected_errors(browser: &Browser, status: &str) {
    let errors = new_errors(browser);
    assert!(
        !errors.is_empty()
            && errors
                .iter()
                .all(|e| e.message.contains(&format!("status of {status}"))),
        "{errors:?}"
    );
}

fn number(text: &str) -> u64 {
    text.replace(',', "")
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
}

fn sign_in(browser: &Browser, base: &str, token: &str) {
    browser.goto(&format!("{base}/ui"));
    assert!(browser.url().ends_with("/ui/login"), "{}", browser.url());
    clean(browser, "login");
    browser.fill("input[name=token]", token);
    browser.click("form[action='/ui/login'] button[type=submit]");
    browser.wait_for("table#journeys", Duration::from_secs(10));
}

#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run installs them"]
fn the_console_shows_the_apis_numbers_and_acts_with_a_csrf_token() {
    let status = Arc::new(AtomicU16::new(400));
    let hook = provider(status.clone(), Default::default());
    let dir = scratch("console");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/welcome.journey"), SCRIPT).unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        format!(
            "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{hook}/in\"\n\n[[auth.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nscopes = [\"admin\"]\n\n[[auth.tokens]]\nname = \"viewer\"\ntoken = \"{READ}\"\nscopes = [\"read\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    wait_for("readiness", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").0 == 200
    });
    let base = format!("http://127.0.0.1:{port}");

    // Twelve members sign up, five of them order; the coupon arm's sends
    // fail at the provider (400) and become dead letters.
    let mut batch = Vec::new();
    for i in 0..12 {
        batch.push(format!(
            r#"{{"type":"identify","userId":"u{i}","traits":{{"nickname":"会员{i}"}}}}"#
        ));
        batch.push(format!(
            r#"{{"type":"track","userId":"u{i}","event":"signed_up","messageId":"s{i}"}}"#
        ));
    }
    for i in 0..5 {
        batch.push(format!(
            r#"{{"type":"track","userId":"u{i}","event":"order_paid","messageId":"o{i}"}}"#
        ));
    }
    api(
        port,
        "POST",
        "/v1/batch",
        &format!(r#"{{"batch":[{}]}}"#, batch.join(",")),
    );
    let stats = api(port, "GET", "/v1/journeys/welcome/stats", "");
    let (version, figures) = stats["versions"]
        .as_object()
        .unwrap()
        .iter()
        .next()
        .unwrap();
    let coupon_arm = figures["arms"]["offer"]["coupon"]["assigned"]
        .as_u64()
        .unwrap();
    assert!(coupon_arm > 0, "{stats}");
    wait_for("the dead letters", Duration::from_secs(30), || {
        api(port, "GET", "/v1/deadletters", "")["deadletters"]
            .as_array()
            .unwrap()
            .len() as u64
            == coupon_arm
    });
    let stats = api(port, "GET", "/v1/journeys/welcome/stats", "");
    let figures = &stats["versions"][version];

    let browser = Browser::start_with(Options {
        width: 1300,
        height: 1500,
        ..Options::default()
    });

    // A wrong token is refused on the page, saying so.
    browser.goto(&format!("{base}/ui/login"));
    browser.fill("input[name=token]", "wrong-token-0123456789");
    browser.click("form[action='/ui/login'] button[type=submit]");
    browser.wait_for("p.notice.error", Duration::from_secs(10));
    assert!(browser.text("p.notice.error").contains("Unknown token"));
    assert!(
        browser
            .cookies()
            .iter()
            .all(|(name, _)| name != "waymark_session")
    );
    expected_errors(&browser, "401");

    // A read token: the numbers, and no button to act.
    sign_in(&browser, &base, READ);
    clean(&browser, "journeys");
    let cookies = browser.cookies();
    assert!(
        cookies.iter().any(|(name, _)| name == "waymark_session"),
        "{cookies:?}"
    );
    let row = "tr[data-journey=welcome]";
    assert_eq!(
        number(&browser.text(&format!("{row} td[data-field=active]"))),
        figures["active"].as_u64().unwrap()
    );
    assert_eq!(
        number(&browser.text(&format!("{row} td[data-field=entered_7d]"))),
        figures["entered"].as_u64().unwrap(),
        "everyone entered today"
    );
    browser.click(&format!("{row} a"));
    browser.wait_for("#tiles", Duration::from_secs(10));
    clean(&browser, "journey");
    for field in ["entered", "goals", "sends"] {
        let shown = number(&browser.text(&format!(".tile[data-field={field}] .value")));
        assert_eq!(shown, figures[field].as_u64().unwrap(), "{field}");
    }
    for arm in ["coupon", "holdout"] {
        let shown = number(&browser.text(&format!(
            "table[data-split=offer] tr[data-arm={arm}] td[data-field=assigned]"
        )));
        assert_eq!(
            shown,
            figures["arms"]["offer"][arm]["assigned"].as_u64().unwrap(),
            "{arm}"
        );
    }
    // The flow is drawn, its boxes painted with the same numbers.
    let entered_box = browser.text("svg.waymark-flow g[data-key=head] text.figure");
    assert!(
        entered_box.contains(&format!("entered {}", figures["entered"])),
        "{entered_box}"
    );
    assert!(
        browser
            .try_find("form[action='/ui/journeys/welcome/pause']")
            .is_none()
    );
    browser.click("#count-waiting");
    browser.wait_until(
        "the waiting counts",
        Duration::from_secs(10),
        "return document.body.innerText.includes('waiting here now');",
    );
    let page = browser.source();
    let waiting = figures["active"].as_u64().unwrap();
    assert!(
        page.contains(&format!("waiting here now {waiting}")),
        "the wait step holds everyone"
    );
    // A step that writes no record (the wait) shows who came to it and
    // went on, as the API counts them.
    let (wait, counted) = figures["steps"]
        .as_object()
        .unwrap()
        .iter()
        .find(|(_, s)| s["records"].as_object().is_some_and(|r| r.is_empty()))
        .expect("a step with no records: the wait");
    assert!(counted["entered"].as_u64() > Some(0), "{counted}");
    let shown = browser.text(&format!("svg.waymark-flow g[data-key={wait}]"));
    assert!(
        shown.contains(&format!(
            "entered {} · passed {}",
            counted["entered"], counted["passed"]
        )),
        "{shown}"
    );
    // One arm's numbers on the flow: the coupon arm's users, and its send.
    let links = browser.find_all("p.arms-pick a");
    let coupon = links
        .iter()
        .find(|a| a.text() == "offer: coupon")
        .expect("a link to the coupon arm");
    coupon.click();
    browser.wait_until(
        "the coupon arm's page",
        Duration::from_secs(10),
        "return location.search.includes('arm=');",
    );
    clean(&browser, "the coupon arm");
    let head = browser.text("svg.waymark-flow g[data-key=head] text.figure");
    assert_eq!(head, format!("in arm coupon of offer: {coupon_arm}"));
    let by_arm = &figures["steps_by_arm"]["offer"]["coupon"];
    let (step, sends) = by_arm
        .as_object()
        .unwrap()
        .iter()
        .find_map(|(step, s)| Some((step.clone(), s["records"]["send"].as_u64()?)))
        .expect("the coupon arm's send step");
    let shown = browser.text(&format!("svg.waymark-flow g[data-key={step}]"));
    assert!(shown.contains(&format!("sent {sends}")), "{shown}");
    browser.click("form[action='/ui/logout'] button");
    browser.wait_for("input[name=token]", Duration::from_secs(10));

    // An admin token: pause from the page.
    sign_in(&browser, &base, ADMIN);
    browser.goto(&format!("{base}/ui/journeys/welcome"));
    browser.click("form[action='/ui/journeys/welcome/pause'] button");
    browser.wait_for("#done", Duration::from_secs(10));
    clean(&browser, "paused");
    assert_eq!(browser.text("#status"), "paused");
    let journeys = api(port, "GET", "/v1/journeys", "");
    assert_eq!(journeys["journeys"][0]["paused"], true, "{journeys}");

    // Without the CSRF token, or with a wrong one, nothing is done: the
    // browser sends its session cookie, but the form field is missing.
    // (A form built in the page, as another site's would be: the page
    // allows no script of its own, and no fetch.)
    for csrf in [None, Some("0000")] {
        browser.script(
            "const [csrf] = arguments; const f = document.createElement('form'); f.method = 'post'; f.action = '/ui/journeys/welcome/resume'; if (csrf !== null) { const i = document.createElement('input'); i.type = 'hidden'; i.name = 'csrf'; i.value = csrf; f.appendChild(i); } document.body.appendChild(f); f.submit();",
            vec![csrf.map_or(Value::Null, Value::from)],
        );
        browser.wait_for("p.notice.error", Duration::from_secs(10));
        let refusal = browser.text("p.notice.error");
        assert!(
            refusal.contains("no valid CSRF token"),
            "{csrf:?}: {refusal}"
        );
        assert!(browser.text("h1").contains("403"), "{csrf:?}");
        expected_errors(&browser, "403");
        browser.back();
    }
    let journeys = api(port, "GET", "/v1/journeys", "");
    assert_eq!(journeys["journeys"][0]["paused"], true, "still paused");
    browser.click("form[action='/ui/journeys/welcome/resume'] button");
    // The page before (after the pause) had a notice too: wait for this one.
    browser.wait_until(
        "the resumed page",
        Duration::from_secs(10),
        "const s = document.querySelector('#status'); return s !== null && s.textContent === 'live';",
    );
    assert_eq!(browser.text("#done"), "Resumed.");

    // The screenshot of the journey page, for docs/console.md.
    browser.goto(&format!("{base}/ui/journeys/welcome?waiting=1"));
    browser.wait_for("#tiles", Duration::from_secs(10));
    let png = browser.screenshot(root().join("docs/images/console-journey.png"));
    assert!(png.starts_with(b"\x89PNG"));

    // Replay a dead letter from the page once the provider is fixed.
    status.store(200, Ordering::SeqCst);
    browser.goto(&format!("{base}/ui/deadletters"));
    clean(&browser, "dead letters");
    let rows = browser.find_all("table#deadletters tbody tr");
    assert_eq!(rows.len() as u64, coupon_arm);
    let id: u64 = rows[0].attr("data-id").unwrap().parse().unwrap();
    browser.click(&format!(
        "form[action='/ui/deadletters/{id}/replay'] button"
    ));
    browser.wait_for("#done", Duration::from_secs(10));
    assert_eq!(
        browser.find_all("table#deadletters tbody tr").len() as u64,
        coupon_arm - 1
    );
    let user = {
        let dead = api(port, "GET", "/v1/deadletters", "");
        let remaining: Vec<u64> = dead["deadletters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_u64().unwrap())
            .collect();
        assert!(!remaining.contains(&id), "{dead}");
        // Whose send it was: the journal tells once it is delivered.
        let mut found = None;
        wait_for("the delivered record", Duration::from_secs(30), || {
            found = (0..12).map(|i| format!("u{i}")).find(|u| {
                api(port, "GET", &format!("/v1/users/{u}/journal"), "")["records"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["kind"] == "delivered")
            });
            found.is_some()
        });
        found.unwrap()
    };

    // The user's page: the profile and the timeline in words.
    browser.goto(&format!("{base}/ui/users/{user}"));
    browser.wait_for("#timeline", Duration::from_secs(10));
    clean(&browser, "user");
    let timeline = browser.text("#timeline");
    for words in [
        "entered the journey",
        "put in arm coupon of split offer",
        "got coupon NEW10",
        "a replayed send on hook got through",
    ] {
        assert!(
            timeline.contains(words),
            "{words:?} missing from {timeline}"
        );
    }
    assert!(browser.text("#profile").contains("会员"));
    let journal = api(port, "GET", &format!("/v1/users/{user}/journal"), "");
    let shown = browser.find_all("#timeline li").len();
    assert_eq!(shown, journal["records"].as_array().unwrap().len());

    // Deployments and the audit log.
    browser.goto(&format!("{base}/ui/deployments"));
    clean(&browser, "deployments");
    assert_eq!(browser.find_all("table#deployments tbody tr").len(), 1);
    browser.goto(&format!("{base}/ui/audit"));
    clean(&browser, "audit");
    let rows: Vec<Vec<String>> = browser
        .find_all("table#audit tbody tr")
        .iter()
        .map(|row| row.find_all("td").iter().map(|td| td.text()).collect())
        .collect();
    for (who, did, to) in [
        ("ops", "pause", "welcome".to_string()),
        ("ops", "resume", "welcome".to_string()),
        ("ops", "replay", format!("dead letter {id}")),
    ] {
        assert!(
            rows.iter()
                .any(|r| r[2] == who && r[3] == did && r[4] == to),
            "{who} {did} {to} missing from {rows:?}"
        );
    }
    drop(browser);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

/// Without a browser: the sign-in page and a signed-out action, over HTTP.
#[test]
fn signed_out_requests_are_sent_to_sign_in_and_actions_need_a_session() {
    let dir = scratch("console_http");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/welcome.journey"), SCRIPT).unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        format!(
            "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.hook]\nkind = \"log\"\npath = \"./sent.jsonl\"\n\n[[auth.tokens]]\ntoken = \"{ADMIN}\"\nscopes = [\"admin\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    let (status, _) = http(port, "GET", "/ui", "");
    assert_eq!(status, 303, "to the sign-in page");
    let (status, page) = http(port, "GET", "/ui/login", "");
    assert_eq!(status, 200);
    assert!(page.contains("name=\"token\""), "{page}");
    let (status, _) = http(port, "POST", "/ui/journeys/welcome/pause", "csrf=x");
    assert_eq!(status, 303, "no session: sign in first");
    let journeys = api(port, "GET", "/v1/journeys", "");
    assert_eq!(journeys["journeys"][0]["paused"], false);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
