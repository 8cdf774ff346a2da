//! The console's pages, as HTML strings: every value a user controls
//! (names, titles, traits, template ids, errors) goes through [`esc`].
//! Numbers come from the same store reads and the same stats the HTTP API
//! answers from, so a page and `GET /v1/journeys/{name}/stats` agree.

use super::{Name, Session, acting, chart, html, signed_in};
use crate::daemon::http::{self, AppState};
use crate::daemon::writer::Command;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use tokio::sync::oneshot;
use waymark_core::journal::{Kind, Record};
use waymark_core::stats::{DayStats, StepStats, VersionStats};
use waymark_dsl::graph::{self, Paint};

type FormResult = Result<Form<HashMap<String, String>>, axum::extract::rejection::FormRejection>;

pub(crate) use crate::html::{count, escape as esc};

/// A path segment: everything but unreserved characters percent-encoded.
pub(crate) fn path_part(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn rate(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn csrf_field(session: &Session) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&session.csrf)
    )
}

/// A button that posts to `action`, with the CSRF token.
fn action_button(session: &Session, action: &str, label: &str, class: &str) -> String {
    if !session.admin {
        return String::new();
    }
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}<button type=\"submit\" class=\"{class}\">{}</button></form>",
        esc(action),
        csrf_field(session),
        esc(label)
    )
}

fn layout(session: Option<&Session>, title: &str, nav: &str, body: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{} · Waymark</title><link rel=\"stylesheet\" href=\"/ui/style.css\"><link rel=\"icon\" href=\"data:,\"></head><body>",
        esc(title)
    );
    out.push_str("<header class=\"top\"><a class=\"brand\" href=\"/ui\">Waymark</a>");
    if let Some(session) = session {
        out.push_str("<nav>");
        for (key, href, label) in [
            ("journeys", "/ui", "Journeys"),
            ("deadletters", "/ui/deadletters", "Dead letters"),
            ("deployments", "/ui/deployments", "Deployments"),
            ("audit", "/ui/audit", "Audit log"),
        ] {
            if key == "audit" && !session.admin {
                continue;
            }
            let current = if key == nav { " class=\"current\"" } else { "" };
            let _ = write!(out, "<a href=\"{href}\"{current}>{label}</a>");
        }
        out.push_str("</nav><form class=\"find\" method=\"get\" action=\"/ui/users\"><input type=\"search\" name=\"id\" placeholder=\"user id\" aria-label=\"user id\"><button type=\"submit\">Find user</button></form>");
        let _ = write!(
            out,
            "<div class=\"who\">{} <span class=\"scope\">{}</span><form method=\"post\" action=\"/ui/logout\" class=\"inline\">{}<button type=\"submit\" class=\"link\">Sign out</button></form></div>",
            esc(&session.actor),
            if session.admin { "admin" } else { "read" },
            csrf_field(session)
        );
    }
    out.push_str("</header><main>");
    out.push_str(body);
    out.push_str("</main></body></html>\n");
    out
}

fn page(
    session: &Session,
    cookie: Option<header::HeaderValue>,
    title: &str,
    nav: &str,
    body: &str,
) -> Response {
    let mut response = html(StatusCode::OK, layout(Some(session), title, nav, body));
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

pub(crate) fn error_page(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<h1>{}</h1><p class=\"notice error\">{}</p><p><a href=\"/ui\">Back to the journeys</a></p>",
        status.as_u16(),
        esc(message)
    );
    html(status, layout(None, "Error", "", &body))
}

pub(crate) fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let notice = message
        .map(|m| format!("<p class=\"notice error\">{}</p>", esc(m)))
        .unwrap_or_default();
    let body = format!(
        "<section class=\"login\"><h1>Sign in</h1>{notice}<p>Paste an API token: one with the <code>read</code> scope to look, <code>admin</code> to act. It is exchanged for a session cookie and not kept in the browser.</p><form method=\"post\" action=\"/ui/login\"><label for=\"token\">Token</label><input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required><button type=\"submit\">Sign in</button></form></section>"
    );
    html(status, layout(None, "Sign in", "", &body))
}

fn notice(query: &HashMap<String, String>) -> String {
    query
        .get("done")
        .map(|d| format!("<p class=\"notice ok\" id=\"done\">{}</p>", esc(d)))
        .unwrap_or_default()
}

async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::store::Store<crate::store::SledKv>) -> Result<T, crate::store::StoreError>
    + Send
    + 'static,
) -> Result<T, Response> {
    http::read_store(state, f)
        .await
        .map_err(|e| error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:?}")))
}

/// The zone days are counted in (the default policy's) and today there.
fn today(state: &AppState, zone: chrono_tz::Tz) -> NaiveDate {
    state.clock.now().with_timezone(&zone).date_naive()
}

/// The days of `stats` from `from` to `to`, summed over versions.
fn days_between<'s>(
    versions: impl Iterator<Item = &'s VersionStats>,
    from: NaiveDate,
    to: NaiveDate,
) -> DayStats {
    let mut sum = DayStats::default();
    for stats in versions {
        for d in stats.days.range(from..=to).map(|(_, d)| d) {
            sum += d;
        }
    }
    sum
}

struct JourneyRow {
    name: String,
    title: Option<String>,
    version: String,
    paused: bool,
    stats: Vec<(String, VersionStats)>,
}

/// `/ui`: every deployed journey with today's and the last 7 days' numbers.
pub(crate) async fn journeys(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, cookie) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let loaded = read(&state, |store| {
        let paused = store.paused_journeys()?;
        let zone = store
            .load_deployment()?
            .and_then(|d| d.policy_zone("default"))
            .unwrap_or(chrono_tz::UTC);
        let mut rows = Vec::new();
        for j in store.deployed_journeys()? {
            rows.push(JourneyRow {
                stats: store.journey_stats(&j.name)?,
                paused: paused.contains(&j.name),
                name: j.name,
                title: j.title,
                version: j.version,
            });
        }
        Ok((rows, zone, store.sends_paused()?))
    })
    .await;
    let (rows, zone, sends_paused) = match loaded {
        Ok(l) => l,
        Err(r) => return r,
    };
    let today = today(&state, zone);
    let week = today - Duration::days(6);
    let mut body = notice(&query);
    if let Some(p) = sends_paused {
        let what = if p.drop {
            "dropped (suppressed, reason global_pause)"
        } else {
            "held (deferred, reason global_pause) until it ends"
        };
        let _ = write!(
            body,
            "<p class=\"notice error\" id=\"sends-paused\">Every marketing send is paused since {} by {}: journeys run, and their non-transactional sends are {what}. <code>POST /v1/resume</code> ends it.</p>",
            esc(&p
                .since
                .with_timezone(&zone)
                .format("%Y-%m-%d %H:%M")
                .to_string()),
            esc(&p.by),
        );
    }
    let _ = write!(
        body,
        "<h1>Journeys</h1><p class=\"hint\">Today is {today} ({zone}); “7 days” is {week} to {today}. Goal rate: goals reached over users entered in those days.</p>"
    );
    if rows.is_empty() {
        body.push_str("<p class=\"empty\">No journey is deployed.</p>");
    } else {
        body.push_str("<table class=\"numbers\" id=\"journeys\"><thead><tr><th>Journey</th><th>Status</th><th>Live version</th><th>Entered today</th><th>Goal rate today</th><th>Entered, 7 days</th><th>Active now</th><th>Goals, 7 days</th><th>Goal rate, 7 days</th><th>Sends, 7 days</th><th>Suppressed, 7 days</th></tr></thead><tbody>");
        for row in &rows {
            let versions = || row.stats.iter().map(|(_, s)| s);
            let day = days_between(versions(), today, today);
            let seven = days_between(versions(), week, today);
            let active: u64 = versions().map(VersionStats::active).sum();
            let title = row
                .title
                .as_ref()
                .map(|t| format!(" <span class=\"title\">{}</span>", esc(t)))
                .unwrap_or_default();
            let status = if row.paused {
                "<span class=\"badge paused\">paused</span>"
            } else {
                "<span class=\"badge live\">live</span>"
            };
            let _ = write!(
                body,
                "<tr data-journey=\"{n}\"><td><a href=\"/ui/journeys/{p}\">{n}</a>{title}</td><td>{status}</td><td><code>{v}</code></td><td class=\"n\" data-field=\"entered_today\">{}</td><td class=\"n\">{}</td><td class=\"n\" data-field=\"entered_7d\">{}</td><td class=\"n\" data-field=\"active\">{}</td><td class=\"n\" data-field=\"goals_7d\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                count(day.entered),
                rate(day.goals, day.entered),
                count(seven.entered),
                count(active),
                count(seven.goals),
                rate(seven.goals, seven.entered),
                count(seven.sends),
                count(seven.suppressed),
                n = esc(&row.name),
                p = path_part(&row.name),
                v = esc(&row.version),
            );
        }
        body.push_str("</tbody></table>");
    }
    page(&session, cookie, "Journeys", "journeys", &body)
}

/// What one step did, in words, for its box.
fn step_figures(s: &StepStats) -> Vec<String> {
    let mut lines = Vec::new();
    if s.entered > 0 {
        lines.push(crate::html::passages(s));
    }
    for (kind, label) in [
        ("send", "sent"),
        ("coupon", "coupons given"),
        ("points", "points changes"),
        ("tag", "tagged"),
        ("untag", "untagged"),
        ("set", "profile writes"),
        ("emit", "events emitted"),
        ("split", "split"),
        ("deferred", "deferred"),
        ("failed", "given up"),
        ("delivered", "delivered on replay"),
        ("exit", "left here"),
    ] {
        let n = s.count(kind);
        if n > 0 {
            lines.push(format!("{label} {}", count(n)));
        }
    }
    if !s.suppressed.is_empty() {
        let total: u64 = s.suppressed.values().sum();
        let reasons: Vec<String> = s
            .suppressed
            .iter()
            .map(|(r, n)| format!("{} {}", reason_words(r), count(*n)))
            .collect();
        lines.push(format!(
            "suppressed {}: {}",
            count(total),
            reasons.join(", ")
        ));
    }
    let errors = s.count("error");
    if errors > 0 {
        lines.push(format!("failed {}", count(errors)));
    }
    lines
}

/// A reason code in words.
pub(crate) fn reason_words(reason: &str) -> String {
    match reason {
        "quiet_hours" => "in quiet hours".into(),
        "global_pause" => "all sends paused by an operator".into(),
        "cap" => "over a frequency cap".into(),
        "consent" => "no marketing consent".into(),
        "no_grant" => "no accept of the subscribe message left".into(),
        "no_address" => "no address for the channel".into(),
        "once" => "entered once already".into(),
        "every" => "entered too recently".into(),
        "window" => "outside the journey's active window".into(),
        "audience" => "not in the audience".into(),
        "paused" => "journey paused".into(),
        "budget" => "entry limit reached".into(),
        "in_journey" => "already in the journey".into(),
        "completed" => "finished the steps".into(),
        "goal" => "reached the goal".into(),
        "exit_on" => "an exit event came".into(),
        "exit_if" => "an exit condition held".into(),
        "exit" => "an exit step".into(),
        "cancelled" => "cancelled by a deploy".into(),
        "timeout" => "the wait timed out".into(),
        "expired" => "expired".into(),
        "erased" => "erased".into(),
        "" => "no reason given".into(),
        other => other.replace('_', " "),
    }
}

/// `/ui/journeys/{name}`: the flow painted with one version's numbers,
/// its arms, and the daily chart.
pub(crate) async fn journey(
    State(state): State<AppState>,
    headers: HeaderMap,
    name: Name,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, cookie) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = name.0;
    let want_waiting = query.get("waiting").is_some_and(|v| v == "1");
    let key = name.clone();
    let loaded = read(&state, move |store| {
        let deployment = store.load_deployment()?;
        let stats = store.journey_stats(&key)?;
        let paused = store.paused_journeys()?.contains(&key);
        let waiting = if want_waiting {
            Some(store.waiting_at(&BTreeSet::from([key.clone()]))?)
        } else {
            None
        };
        Ok((deployment, stats, paused, waiting))
    })
    .await;
    let (deployment, stats, paused, waiting) = match loaded {
        Ok(l) => l,
        Err(r) => return r,
    };
    let zone = deployment
        .as_ref()
        .and_then(|d| d.policy_zone("default"))
        .unwrap_or(chrono_tz::UTC);
    let current = deployment.as_ref().and_then(|d| d.current(&name)).cloned();
    if current.is_none() && stats.is_empty() {
        return error_page(
            StatusCode::NOT_FOUND,
            &format!("No journey `{name}` was ever deployed."),
        );
    }
    let versions: Vec<String> = stats.iter().map(|(v, _)| v.clone()).collect();
    let selected = query
        .get("version")
        .cloned()
        .or_else(|| current.as_ref().map(|j| j.version.clone()))
        .or_else(|| versions.last().cloned())
        .unwrap_or_default();
    let empty = VersionStats::default();
    let version_stats = stats
        .iter()
        .find(|(v, _)| *v == selected)
        .map_or(&empty, |(_, s)| s);
    let plan = deployment
        .as_ref()
        .and_then(|d| d.version(&name, &selected))
        .cloned();

    let mut body = notice(&query);
    let title = current
        .as_ref()
        .and_then(|j| j.title.clone())
        .or_else(|| plan.as_ref().and_then(|j| j.title.clone()));
    let _ = write!(
        body,
        "<h1>{}{}</h1>",
        esc(&name),
        title
            .map(|t| format!(" <span class=\"title\">{}</span>", esc(&t)))
            .unwrap_or_default()
    );
    body.push_str("<div class=\"bar\">");
    match (&current, paused) {
        (Some(_), true) => {
            body.push_str("<span class=\"badge paused\" id=\"status\">paused</span>");
            body.push_str(&action_button(
                &session,
                &format!("/ui/journeys/{}/resume", path_part(&name)),
                "Resume",
                "primary",
            ));
        }
        (Some(_), false) => {
            body.push_str("<span class=\"badge live\" id=\"status\">live</span>");
            body.push_str(&action_button(
                &session,
                &format!("/ui/journeys/{}/pause", path_part(&name)),
                "Pause",
                "danger",
            ));
        }
        (None, _) => {
            body.push_str("<span class=\"badge gone\" id=\"status\">not deployed now</span>")
        }
    }
    body.push_str("<span class=\"versions\">Version: ");
    for v in &versions {
        let live = current.as_ref().is_some_and(|j| &j.version == v);
        let label = if live {
            format!("{v} (live)")
        } else {
            v.clone()
        };
        if *v == selected {
            let _ = write!(body, "<strong><code>{}</code></strong> ", esc(&label));
        } else {
            let _ = write!(
                body,
                "<a href=\"/ui/journeys/{}?version={}\"><code>{}</code></a> ",
                path_part(&name),
                path_part(v),
                esc(&label)
            );
        }
    }
    body.push_str("</span></div>");

    // Tiles: the selected version's totals.
    let s = version_stats;
    let suppressed: u64 = s.suppressed.values().sum();
    let failed: u64 = s.failed.values().sum();
    body.push_str("<div class=\"tiles\" id=\"tiles\">");
    for (field, label, value) in [
        ("entered", "Entered", count(s.entered)),
        ("active", "Active now", count(s.active())),
        ("completed", "Completed", count(s.completed)),
        ("goals", "Goals", count(s.goals)),
        ("goal_rate", "Goal rate", rate(s.goals, s.entered)),
        ("sends", "Sends", count(s.sends)),
        ("suppressed", "Suppressed", count(suppressed)),
        ("failed", "Given up", count(failed)),
    ] {
        let _ = write!(
            body,
            "<div class=\"tile\" data-field=\"{field}\"><div class=\"value\">{value}</div><div class=\"label\">{label}</div></div>"
        );
    }
    body.push_str("</div>");

    // The flow, painted.
    body.push_str("<section><h2>Flow</h2>");
    match &plan {
        Some(journey) => {
            let one = waymark_dsl::plan::Plan {
                journeys: vec![journey.clone()],
                ..Default::default()
            };
            let flows = graph::flows(&one, Some(&name));
            let mut paint = Paint::default();
            // All users, or those of one split arm (`?arm=split/arm`).
            let arm = query
                .get("arm")
                .and_then(|a| a.split_once('/'))
                .and_then(|(split, arm)| {
                    let figures = s.arms.get(split)?.get(arm)?;
                    let steps = s
                        .steps_by_arm
                        .get(split)
                        .and_then(|arms| arms.get(arm))
                        .cloned()
                        .unwrap_or_default();
                    Some((split.to_string(), arm.to_string(), figures.clone(), steps))
                });
            let _ = write!(
                body,
                "<p class=\"arms-pick\">Numbers for: {}",
                if arm.is_none() {
                    "<strong>all users</strong>".to_string()
                } else {
                    format!(
                        "<a href=\"/ui/journeys/{}?version={}\">all users</a>",
                        path_part(&name),
                        path_part(&selected)
                    )
                }
            );
            for (split, arms) in &s.arms {
                for arm_name in arms.keys() {
                    let label = format!("{split}: {arm_name}");
                    let chosen = arm
                        .as_ref()
                        .is_some_and(|(sp, a, _, _)| sp == split && a == arm_name);
                    if chosen {
                        let _ = write!(body, " · <strong>{}</strong>", esc(&label));
                    } else {
                        let _ = write!(
                            body,
                            " · <a href=\"/ui/journeys/{}?version={}&amp;arm={}\">{}</a>",
                            path_part(&name),
                            path_part(&selected),
                            path_part(&format!("{split}/{arm_name}")),
                            esc(&label)
                        );
                    }
                }
            }
            body.push_str("</p>");
            let steps = match &arm {
                Some((split, arm_name, figures, steps)) => {
                    paint.add(
                        &name,
                        "head",
                        format!("in arm {arm_name} of {split}: {}", count(figures.assigned)),
                    );
                    if journey.goal.is_some() {
                        paint.add(
                            &name,
                            "note",
                            format!(
                                "goals {} ({})",
                                count(figures.goals),
                                rate(figures.goals, figures.assigned)
                            ),
                        );
                    }
                    steps.clone()
                }
                None => {
                    paint.add(
                        &name,
                        "head",
                        format!(
                            "entered {} · active {}",
                            count(s.entered),
                            count(s.active())
                        ),
                    );
                    if journey.goal.is_some() {
                        paint.add(
                            &name,
                            "note",
                            format!("goals {} ({})", count(s.goals), rate(s.goals, s.entered)),
                        );
                    }
                    s.steps.clone()
                }
            };
            for (step, step_stats) in &steps {
                for line in step_figures(step_stats) {
                    paint.add(&name, step, line);
                }
            }
            if let Some(waiting) = waiting.as_ref().filter(|_| arm.is_none()) {
                for ((_, version, step), users) in waiting {
                    if *version == selected {
                        paint.add(&name, step, format!("waiting here now {}", count(*users)));
                    }
                }
            }
            body.push_str("<div class=\"flow\">");
            body.push_str(&graph::svg(&flows, &paint));
            body.push_str("</div>");
            if waiting.is_none() {
                let _ = write!(
                    body,
                    "<p class=\"hint\"><a href=\"/ui/journeys/{}?version={}&amp;waiting=1\" id=\"count-waiting\">Count who waits at each step now</a> (reads every user's state once).</p>",
                    path_part(&name),
                    path_part(&selected)
                );
            }
        }
        None => body.push_str(
            "<p class=\"empty\">This version's plan is no longer kept (no user is on it); its numbers are above.</p>",
        ),
    }
    body.push_str("</section>");

    // Split arms.
    let json = s.to_json();
    if let Some(splits) = json["arms"].as_object().filter(|a| !a.is_empty()) {
        body.push_str("<section><h2>Split arms</h2><p class=\"hint\">Goal rate: goals over users put in the arm (also goals reached after the journey ended, within the goal's window). Lift: the arm's rate minus the holdout's.</p>");
        for (split, arms) in splits {
            let _ = write!(
                body,
                "<h3>split {}</h3><table class=\"numbers arms\" data-split=\"{}\"><thead><tr><th>Arm</th><th>Assigned</th><th>Finished</th><th>Goals</th><th>Goal rate</th><th>Lift</th></tr></thead><tbody>",
                esc(split),
                esc(split)
            );
            for (arm, a) in arms.as_object().into_iter().flatten() {
                let holdout = a["holdout"].as_bool() == Some(true);
                let goal_rate = a["goal_rate"]
                    .as_f64()
                    .map_or("–".into(), |r| format!("{:.1}%", r * 100.0));
                let lift = if holdout {
                    "holdout".to_string()
                } else {
                    a["lift"]
                        .as_f64()
                        .map_or("–".into(), |l| format!("{:+.1} pts", l * 100.0))
                };
                let _ = write!(
                    body,
                    "<tr data-arm=\"{}\"><td>{}{}</td><td class=\"n\" data-field=\"assigned\">{}</td><td class=\"n\">{}</td><td class=\"n\" data-field=\"goals\">{}</td><td class=\"n\">{goal_rate}</td><td class=\"n\">{lift}</td></tr>",
                    esc(arm),
                    esc(arm),
                    if holdout {
                        " <span class=\"badge\">holdout</span>"
                    } else {
                        ""
                    },
                    count(a["assigned"].as_u64().unwrap_or(0)),
                    count(a["finished"].as_u64().unwrap_or(0)),
                    count(a["goals"].as_u64().unwrap_or(0)),
                );
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</section>");
    }

    // Staff-confirmed sends, per staff member.
    if !s.staff.is_empty() {
        body.push_str("<section><h2>Staff confirmations</h2><p class=\"hint\">Sends a staff member confirms in WeCom (企业群发). Confirmation rate: customers whose message they confirmed (sent, not a friend, over quota) over those whose task they had.</p><table class=\"numbers staff\"><thead><tr><th>Staff member</th><th>Sent</th><th>Not a friend</th><th>Over quota</th><th>Not confirmed</th><th>Failed</th><th>Confirmation rate</th></tr></thead><tbody>");
        for (staff, t) in &s.staff {
            let rate = t
                .confirmation_rate()
                .map_or("–".into(), |r| format!("{:.1}%", r * 100.0));
            let _ = write!(
                body,
                "<tr data-staff=\"{}\"><td>{}</td><td class=\"n\" data-field=\"sent\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\" data-field=\"not_confirmed\">{}</td><td class=\"n\">{}</td><td class=\"n\" data-field=\"confirmation_rate\">{rate}</td></tr>",
                esc(staff),
                esc(staff),
                count(t.sent),
                count(t.not_friend),
                count(t.over_quota),
                count(t.not_confirmed),
                count(t.failed),
            );
        }
        body.push_str("</tbody></table></section>");
    }

    // Suppressions and failures by reason.
    if !s.suppressed.is_empty() || !s.skipped.is_empty() || !s.exits.is_empty() {
        body.push_str("<section><h2>Why</h2><div class=\"columns\">");
        for (title, map) in [
            ("Suppressed sends", &s.suppressed),
            ("Entries refused", &s.skipped),
            ("Left the journey", &s.exits),
        ] {
            if map.is_empty() {
                continue;
            }
            let _ = write!(
                body,
                "<table class=\"numbers\"><thead><tr><th>{title}</th><th></th></tr></thead><tbody>"
            );
            for (reason, n) in map {
                let _ = write!(
                    body,
                    "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                    esc(&reason_words(reason)),
                    count(*n)
                );
            }
            body.push_str("</tbody></table>");
        }
        body.push_str("</div></section>");
    }

    // Daily chart over every version.
    let today = today(&state, zone);
    let mut days: BTreeMap<NaiveDate, DayStats> = BTreeMap::new();
    for (_, v) in &stats {
        for (&day, d) in &v.days {
            *days.entry(day).or_default() += d;
        }
    }
    let _ = write!(
        body,
        "<section><h2>Last 30 days</h2><p class=\"hint\">Every version, by day in {zone}.</p>{}</section>",
        chart::daily(&days, today, 30)
    );
    page(&session, cookie, &name, "journeys", &body)
}

async fn journey_command(
    state: AppState,
    headers: HeaderMap,
    name: String,
    form: FormResult,
    pausing: bool,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match acting(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let key = name.clone();
    let deployed = read(&state, move |store| {
        Ok(store.deployed_journeys()?.iter().any(|j| j.name == key))
    })
    .await;
    match deployed {
        Ok(true) => {}
        Ok(false) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("No journey `{name}` is deployed."),
            );
        }
        Err(r) => return r,
    }
    let (reply, answer) = oneshot::channel();
    let command = if pausing {
        Command::Pause {
            journey: name.clone(),
            actor: session.actor.clone(),
            reply,
        }
    } else {
        Command::Resume {
            journey: name.clone(),
            actor: session.actor.clone(),
            reply,
        }
    };
    if state.writer.send(command).is_err() {
        return error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The daemon is shutting down.",
        );
    }
    match answer.await {
        Ok(Ok(())) => Redirect::to(&format!(
            "/ui/journeys/{}?done={}",
            path_part(&name),
            if pausing { "Paused." } else { "Resumed." }
        ))
        .into_response(),
        Ok(Err(e)) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
        Err(_) => error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The daemon is shutting down.",
        ),
    }
}

pub(crate) async fn pause(
    State(state): State<AppState>,
    headers: HeaderMap,
    name: Name,
    form: FormResult,
) -> Response {
    journey_command(state, headers, name.0, form, true).await
}

pub(crate) async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    name: Name,
    form: FormResult,
) -> Response {
    journey_command(state, headers, name.0, form, false).await
}

fn show(at: DateTime<Utc>, zone: chrono_tz::Tz) -> String {
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn json_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Null => "–".into(),
        other => other.to_string(),
    }
}

/// A journal record in words.
pub(crate) fn describe(r: &Record, zone: chrono_tz::Tz) -> String {
    let channel = r.channel.as_deref().unwrap_or("?");
    let template = r
        .template
        .as_ref()
        .map(|t| format!(" template {t}"))
        .unwrap_or_default();
    let reason = r.reason.as_deref().map(reason_words).unwrap_or_default();
    match r.kind {
        Kind::Enter => "entered the journey".into(),
        Kind::Send => format!(
            "sent on {channel}{template}{}",
            r.to.as_ref()
                .map(|t| format!(" to {t}"))
                .unwrap_or_default()
        ),
        Kind::Suppressed => format!("a send on {channel}{template} was suppressed: {reason}"),
        Kind::Deferred => format!(
            "a send on {channel}{template} was deferred{}: {reason}",
            r.until
                .map(|u| format!(" until {}", show(u, zone)))
                .unwrap_or_default()
        ),
        Kind::Coupon => format!(
            "got coupon {} (code {}){}",
            r.coupon.as_deref().unwrap_or("?"),
            r.code.as_deref().unwrap_or("?"),
            r.expires_at
                .map(|e| format!(", expires {}", show(e, zone)))
                .unwrap_or_default()
        ),
        Kind::Points => format!(
            "points {} (balance {}){}",
            r.delta.as_ref().map(json_text).unwrap_or_default(),
            r.balance.as_ref().map(json_text).unwrap_or_default(),
            r.reason
                .as_ref()
                .map(|x| format!(": {x}"))
                .unwrap_or_default()
        ),
        Kind::Tag => format!("tagged {}", r.tag.as_deref().unwrap_or("?")),
        Kind::Untag => format!("untagged {}", r.tag.as_deref().unwrap_or("?")),
        Kind::Set => format!(
            "set {} to {}",
            r.path.as_deref().unwrap_or("?"),
            r.value.as_ref().map(json_text).unwrap_or_default()
        ),
        Kind::Emit => format!(
            "emitted event {}",
            r.path.as_deref().or(r.event.as_deref()).unwrap_or("?")
        ),
        Kind::Reward => format!(
            "earned the reward of task {}",
            r.task.as_deref().unwrap_or("?")
        ),
        Kind::Goal => "reached the goal".into(),
        Kind::Exit => format!("left the journey: {reason}"),
        Kind::Error => format!("a step failed: {}", r.message.as_deref().unwrap_or("?")),
        Kind::Split => format!(
            "put in arm {} of split {}{}",
            r.arm.as_deref().unwrap_or("?"),
            r.split.as_deref().unwrap_or("?"),
            if r.holdout == Some(true) {
                " (the holdout)"
            } else {
                ""
            }
        ),
        Kind::Skipped => format!("not taken in: {reason}"),
        Kind::Failed => format!(
            "a send on {channel} was given up on after {} attempts: {}",
            r.attempts.unwrap_or(0),
            r.reason.as_deref().unwrap_or("?")
        ),
        Kind::Delivered => format!("a replayed send on {channel} got through"),
        Kind::Outcome => {
            let staff = r.staff.as_deref().unwrap_or("?");
            match r.reason.as_deref() {
                Some("sent") => format!("{staff} confirmed the send on {channel}: sent"),
                Some("not_friend") => format!(
                    "{staff} confirmed the send on {channel}, but the customer is no longer their contact"
                ),
                Some("over_quota") => format!(
                    "{staff} confirmed the send on {channel}, but the customer had had their mass messages for the period"
                ),
                Some("not_confirmed") => {
                    format!("{staff} did not confirm the send on {channel} in time")
                }
                _ => format!(
                    "the send on {channel} for {staff} failed: {}",
                    r.message.as_deref().unwrap_or("?")
                ),
            }
        }
        Kind::Merged => {
            let how = match r.reason.as_deref() {
                Some("identify") => "an event carried both ids".to_string(),
                Some("alias") => "an alias call".to_string(),
                Some(other) => match other.strip_prefix("identifier:") {
                    Some(trait_name) => format!("both profiles held the same {trait_name}"),
                    None => other.to_string(),
                },
                None => "?".into(),
            };
            format!(
                "the profile {} was merged into this one: {how}",
                r.merged.as_deref().unwrap_or("?")
            )
        }
        Kind::Consent => match &r.consent {
            Some(c) => {
                let source = match c.source.as_str() {
                    "identify" => "an identify call".to_string(),
                    "reply" => "an opt-out reply".to_string(),
                    "api" => "the consent API".to_string(),
                    "journey" => "a journey's set step".to_string(),
                    "merge" => "a merge of profiles".to_string(),
                    other => other.to_string(),
                };
                format!(
                    "{} consent to {} on {channel}: {source}{}",
                    if c.granted { "gave" } else { "withdrew" },
                    c.purpose,
                    c.evidence
                        .as_ref()
                        .map(|e| format!(" ({e})"))
                        .unwrap_or_default()
                )
            }
            None => format!("consent on {channel} changed"),
        },
    }
}

/// `/ui/users/{id}`: the profile, journeys and the step each is at,
/// timers, points, coupons, tasks and the journal as a timeline.
pub(crate) async fn user(State(state): State<AppState>, headers: HeaderMap, id: Name) -> Response {
    let (session, cookie) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let id = id.0;
    let key = id.clone();
    let loaded = read(&state, move |store| {
        // Any id of the person shows the person.
        let Some((key, user)) = store.profile(&key)? else {
            return Ok(None);
        };
        let journal = store.journal_latest(&key, 500)?;
        Ok(Some((user, journal, store.load_deployment()?)))
    })
    .await;
    let (u, journal, deployment) = match loaded {
        Ok(Some(l)) => l,
        Ok(None) => {
            return error_page(StatusCode::NOT_FOUND, &format!("No user `{id}` is stored."));
        }
        Err(r) => return r,
    };
    let zone = deployment
        .as_ref()
        .and_then(|d| d.policy_zone("default"))
        .unwrap_or(chrono_tz::UTC);
    let state_json = waymark_core::export::state(&u);
    let summary = waymark_core::export::summary(&u);
    let mut body = format!("<h1>User <code id=\"user-id\">{}</code></h1>", esc(&id));
    body.push_str("<div class=\"columns\">");
    // Profile.
    body.push_str("<section><h2>Profile</h2><table class=\"kv\" id=\"profile\"><tbody>");
    for (k, v) in state_json["traits"].as_object().into_iter().flatten() {
        let _ = write!(
            body,
            "<tr><th>{}</th><td>{}</td></tr>",
            esc(k),
            esc(&json_text(v))
        );
    }
    let tags: Vec<String> = u.tags.iter().map(|t| esc(t)).collect();
    let _ = write!(
        body,
        "<tr><th>tags</th><td>{}</td></tr><tr><th>points</th><td id=\"points\">{}</td></tr><tr><th>first seen</th><td>{}</td></tr><tr><th>next timer</th><td id=\"timer\">{}</td></tr></tbody></table></section>",
        if tags.is_empty() {
            "–".into()
        } else {
            tags.join(", ")
        },
        esc(&json_text(&summary["points"])),
        u.created_at.map_or("–".into(), |t| show(t, zone)),
        u.next_wake().map_or("none".into(), |t| show(t, zone)),
    );
    // Journeys.
    body.push_str("<section><h2>Journeys</h2>");
    if u.instances.is_empty() {
        body.push_str("<p class=\"empty\">In no journey now.</p>");
    } else {
        body.push_str("<table id=\"instances\"><thead><tr><th>Journey</th><th>At step</th><th>Status</th><th>Entered</th></tr></thead><tbody>");
        for (i, j) in u
            .instances
            .iter()
            .zip(summary["journeys"].as_array().into_iter().flatten())
        {
            let step_text = deployment
                .as_ref()
                .and_then(|d| d.version(&i.journey, &i.version))
                .and_then(|plan| {
                    let one = waymark_dsl::plan::Plan {
                        journeys: vec![plan.clone()],
                        ..Default::default()
                    };
                    graph::flows(&one, None)
                        .into_iter()
                        .flat_map(|f| f.nodes)
                        .find(|n| n.step == Some(i.step))
                        .map(|n| n.lines[0].clone())
                })
                .unwrap_or_default();
            let until = j["until"]
                .as_str()
                .and_then(|u| DateTime::parse_from_rfc3339(u).ok())
                .map(|u| format!(" until {}", show(u.with_timezone(&Utc), zone)))
                .unwrap_or_default();
            let _ = write!(
                body,
                "<tr><td><a href=\"/ui/journeys/{}\">{}</a> <code>{}</code></td><td><code>{}</code> {}</td><td>{}{}</td><td>{}</td></tr>",
                path_part(&i.journey),
                esc(&i.journey),
                esc(&i.version),
                esc(&i.step.label()),
                esc(&step_text),
                esc(&json_text(&j["status"])),
                esc(&until),
                show(i.entered_at, zone)
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section></div><div class=\"columns\">");
    // Coupons and tasks.
    body.push_str("<section><h2>Coupons</h2>");
    let coupons = summary["coupons"].as_array().cloned().unwrap_or_default();
    if coupons.is_empty() {
        body.push_str("<p class=\"empty\">None.</p>");
    } else {
        body.push_str("<table id=\"coupons\"><tbody>");
        for c in &coupons {
            let text: Vec<String> = c
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| format!("{}: {}", esc(k), esc(&json_text(v))))
                .collect();
            let _ = write!(body, "<tr><td>{}</td></tr>", text.join(" · "));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section><section><h2>Tasks</h2>");
    let tasks = summary["tasks"].as_object().cloned().unwrap_or_default();
    if tasks.is_empty() {
        body.push_str("<p class=\"empty\">None.</p>");
    } else {
        body.push_str("<table class=\"numbers\" id=\"tasks\"><thead><tr><th>Task</th><th>Counted</th><th>Streak</th><th>Rewards</th></tr></thead><tbody>");
        for (name, t) in &tasks {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
                esc(name),
                esc(&json_text(&t["counted"])),
                esc(&json_text(&t["streak"])),
                esc(&json_text(&t["rewards"]))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section></div>");
    // Points ledger.
    let ledger: Vec<&Record> = journal.iter().filter(|r| r.kind == Kind::Points).collect();
    body.push_str("<section><h2>Points ledger</h2>");
    if ledger.is_empty() {
        body.push_str("<p class=\"empty\">No points yet.</p>");
    } else {
        body.push_str("<table id=\"ledger\"><thead><tr><th>When</th><th>Change</th><th>Balance</th><th>Reason</th><th>From</th></tr></thead><tbody>");
        for r in ledger.iter().rev() {
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                show(r.at, zone),
                esc(&r.delta.as_ref().map(json_text).unwrap_or_default()),
                esc(&r.balance.as_ref().map(json_text).unwrap_or_default()),
                esc(r.reason.as_deref().unwrap_or("")),
                esc(r.journey.as_deref().unwrap_or(""))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
    // Timeline, newest first.
    let _ = write!(
        body,
        "<section><h2>Timeline</h2><p class=\"hint\">The last {} records, newest first; times in {zone}. <code>GET /v1/users/ID/journal</code> pages through all of them.</p><ol class=\"timeline\" id=\"timeline\">",
        count(journal.len() as u64)
    );
    for r in journal.iter().rev() {
        let from = match (&r.journey, &r.step) {
            (Some(j), Some(s)) => format!("{j} · {s}"),
            (Some(j), None) => j.to_string(),
            _ => String::new(),
        };
        let _ = write!(
            body,
            "<li class=\"kind-{k}\"><time>{}</time><span class=\"badge\">{k}</span> {} <span class=\"from\">{}</span></li>",
            show(r.at, zone),
            esc(&describe(r, zone)),
            esc(&from),
            k = r.kind.as_str()
        );
    }
    body.push_str("</ol></section>");
    page(&session, cookie, &format!("User {id}"), "", &body)
}

/// `/ui/deadletters`: sends given up on, each with a replay button.
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, cookie) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let entries = match read(&state, |store| store.dead_letters(1000)).await {
        Ok(e) => e,
        Err(r) => return r,
    };
    let mut body = notice(&query);
    body.push_str("<h1>Dead letters</h1><p class=\"hint\">Sends given up on after their retries, with the last error. A replay puts one back in the outbox; the user's journal gets <code>delivered</code> when it gets through.</p>");
    if entries.is_empty() {
        body.push_str("<p class=\"empty\" id=\"no-dead-letters\">None.</p>");
    } else {
        body.push_str("<table id=\"deadletters\"><thead><tr><th>Id</th><th>User</th><th>Journey</th><th>Channel</th><th>Attempts</th><th>Last error</th><th></th></tr></thead><tbody>");
        for e in &entries {
            let r = &e.record;
            let _ = write!(
                body,
                "<tr data-id=\"{seq}\"><td>{seq}</td><td><a href=\"/ui/users/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td></tr>",
                path_part(&r.user),
                esc(&r.user),
                esc(r.journey.as_deref().unwrap_or("")),
                esc(r.channel.as_deref().unwrap_or("")),
                e.attempts,
                esc(e.last_error.as_deref().unwrap_or("")),
                action_button(
                    &session,
                    &format!("/ui/deadletters/{}/replay", e.seq),
                    "Replay",
                    "primary"
                ),
                seq = e.seq,
            );
        }
        body.push_str("</tbody></table>");
    }
    page(&session, cookie, "Dead letters", "deadletters", &body)
}

pub(crate) async fn replay(
    State(state): State<AppState>,
    headers: HeaderMap,
    seq: Name,
    form: FormResult,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match acting(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(seq) = seq.0.parse::<u64>() else {
        return error_page(StatusCode::BAD_REQUEST, "A dead letter's id is a number.");
    };
    match http::replay_dead_letter(&state, seq, session.actor).await {
        Ok(true) => {}
        Ok(false) => {
            return error_page(
                StatusCode::NOT_FOUND,
                "No such dead letter (replayed already?).",
            );
        }
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:?}")),
    }
    Redirect::to(&format!(
        "/ui/deadletters?done=Dead%20letter%20{seq}%20is%20back%20in%20the%20outbox."
    ))
    .into_response()
}

/// `/ui/deployments`: every deployment, newest first.
pub(crate) async fn deployments(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let (session, cookie) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let list = match read(&state, |store| store.deployments(None, 200)).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let mut body = notice(&query);
    body.push_str("<h1>Deployments</h1>");
    if list.is_empty() {
        body.push_str("<p class=\"empty\">None yet.</p>");
    } else {
        body.push_str("<table id=\"deployments\"><thead><tr><th>Id</th><th>When (UTC)</th><th>By</th><th>How</th><th>Added</th><th>Changed</th><th>Removed</th><th>Source</th></tr></thead><tbody>");
        for d in &list {
            let how = match d.rollback_of {
                Some(to) => format!("rollback to {to}"),
                None => d.how.clone(),
            };
            let _ = write!(
                body,
                "<tr><td><a href=\"/ui/deployments/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                d.at.format("%Y-%m-%d %H:%M:%S"),
                esc(&d.by),
                esc(&how),
                esc(&d.added.join(", ")),
                esc(&d.changed.join(", ")),
                esc(&d.removed.join(", ")),
                esc(&d.source_hash[..12.min(d.source_hash.len())]),
                id = d.id,
            );
        }
        body.push_str("</tbody></table>");
    }
    page(&session, cookie, "Deployments", "deployments", &body)
}

/// `/ui/deployments/{id}`: its files' diff from the one before, and a
/// rollback button.
pub(crate) async fn deployment(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Name,
) -> Response {
    let (session, cookie) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = id.0.parse::<u64>() else {
        return error_page(StatusCode::BAD_REQUEST, "A deployment's id is a number.");
    };
    let loaded = read(&state, move |store| {
        let Some((record, files)) = store.deployment(id)? else {
            return Ok(None);
        };
        let earlier = match store.deployments(Some(id), 1)?.pop() {
            Some(d) => store.deployment(d.id)?.map(|(_, f)| f).unwrap_or_default(),
            None => Default::default(),
        };
        let latest = store.latest_deployment()?.map(|d| d.id);
        Ok(Some((
            record,
            crate::changes::files(&earlier, &files),
            latest,
        )))
    })
    .await;
    let (d, diff, latest) = match loaded {
        Ok(Some(l)) => l,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "No such deployment."),
        Err(r) => return r,
    };
    let mut body = format!(
        "<h1>Deployment {}</h1><table class=\"kv\"><tbody><tr><th>when (UTC)</th><td>{}</td></tr><tr><th>by</th><td>{}</td></tr><tr><th>how</th><td>{}{}</td></tr><tr><th>source hash</th><td><code>{}</code></td></tr><tr><th>versions</th><td>{}</td></tr></tbody></table>",
        d.id,
        d.at.format("%Y-%m-%d %H:%M:%S"),
        esc(&d.by),
        esc(&d.how),
        d.rollback_of
            .map(|r| format!(" (to deployment {r})"))
            .unwrap_or_default(),
        esc(&d.source_hash),
        esc(&d
            .versions
            .iter()
            .map(|(j, v)| format!("{j} {v}"))
            .collect::<Vec<_>>()
            .join(", ")),
    );
    if latest != Some(d.id) {
        body.push_str(&action_button(
            &session,
            &format!("/ui/deployments/{}/rollback", d.id),
            &format!("Roll back to deployment {}", d.id),
            "danger",
        ));
    }
    body.push_str("<h2>Changes from the deployment before</h2>");
    if diff.is_empty() {
        body.push_str("<p class=\"empty\">The same files.</p>");
    }
    for f in &diff {
        let _ = write!(
            body,
            "<h3><code>{}</code> {}</h3><pre class=\"diff\">",
            esc(&f.file),
            f.change
        );
        for line in f.diff.lines() {
            let class = if line.starts_with("+++") || line.starts_with("---") {
                "head"
            } else if line.starts_with('+') {
                "add"
            } else if line.starts_with('-') {
                "del"
            } else if line.starts_with("@@") {
                "hunk"
            } else {
                "same"
            };
            let _ = writeln!(body, "<span class=\"{class}\">{}</span>", esc(line));
        }
        body.push_str("</pre>");
    }
    page(
        &session,
        cookie,
        &format!("Deployment {}", d.id),
        "deployments",
        &body,
    )
}

pub(crate) async fn rollback(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Name,
    form: FormResult,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let session = match acting(&state, &headers, &form) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(id) = id.0.parse::<u64>() else {
        return error_page(StatusCode::BAD_REQUEST, "A deployment's id is a number.");
    };
    let files = match read(&state, move |store| store.deployment(id)).await {
        Ok(Some((_, files))) => files,
        Ok(None) => return error_page(StatusCode::NOT_FOUND, "No such deployment."),
        Err(r) => return r,
    };
    let checked =
        http::check_scripts(&state, &files, "that deployment's scripts no longer check").await;
    let plan = match checked {
        Ok(Ok((plan, _))) => plan,
        Ok(Err(_)) => {
            return error_page(
                StatusCode::UNPROCESSABLE_ENTITY,
                "That deployment's scripts no longer check against today's config; nothing was deployed. `POST /v1/deployments/{id}/rollback` answers the diagnostics.",
            );
        }
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:?}")),
    };
    let meta = crate::runtime::DeployMeta {
        by: session.actor,
        how: crate::runtime::DeployHow::Rollback(id),
        files,
    };
    match http::deploy_plan(&state, plan, false, meta).await {
        Ok((_, new_id)) => Redirect::to(&format!(
            "/ui/deployments?done=Rolled%20back%20to%20deployment%20{id}%20as%20deployment%20{}.",
            new_id.map_or("?".into(), |n| n.to_string())
        ))
        .into_response(),
        Err(e) => error_page(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:?}")),
    }
}

/// `/ui/audit`: the audit log, newest first (admin).
pub(crate) async fn audit(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (session, cookie) = match signed_in(&state, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if !session.admin {
        return error_page(
            StatusCode::FORBIDDEN,
            "The audit log needs an `admin` token.",
        );
    }
    let entries = match read(&state, |store| {
        let last = store.last_audit_seq()?;
        store.audit(last.saturating_sub(500), 500)
    })
    .await
    {
        Ok(e) => e,
        Err(r) => return r,
    };
    let mut body = String::from(
        "<h1>Audit log</h1><p class=\"hint\">The last 500 actions, newest first. Erased users are named by a keyed hash, never their id.</p><table id=\"audit\"><thead><tr><th>#</th><th>When (UTC)</th><th>Who</th><th>Did</th><th>To</th><th>Detail</th></tr></thead><tbody>",
    );
    for e in entries.iter().rev() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.seq,
            e.at.format("%Y-%m-%d %H:%M:%S"),
            esc(&e.actor),
            esc(&e.action),
            esc(&e.target),
            esc(&e.detail)
        );
    }
    body.push_str("</tbody></table>");
    page(&session, cookie, "Audit log", "audit", &body)
}
