//! Deploys with history, through the real daemon and the real `waymark
//! deploy`: the dry run's diff, steps and waiting users; every deployment
//! kept with who made it; a rollback; and the audit log of deploys,
//! rollbacks, pauses and erasures, across a restart.

use serde_json::Value;
use std::time::Duration;
use waymark_tests::*;

const ADMIN: &str = "admin-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";

const V1: &str = "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"hi\" }\n  wait 1d\n  send wecom { text: \"day 2\" }\n}\n";
const V2: &str = "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"hi\" }\n  wait 2d\n  send wecom { text: \"day 3\" }\n  tag \"welcomed\"\n}\n";

fn request(port: u16, method: &str, path: &str, token: &str, body: &str) -> (u16, Value) {
    let auth = format!("Bearer {token}");
    let (status, bytes) = Client::new(port)
        .request(method, path, &[("Authorization", &auth)], body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn start(dir: &std::path::Path, port: u16) -> std::process::Child {
    let daemon = start_daemon(dir, port, &dir.join("daemon.log"));
    wait_for("readiness", Duration::from_secs(30), || {
        http(port, "GET", "/readyz", "").0 == 200
    });
    daemon
}

fn deploy_cli(dir: &std::path::Path, port: u16, extra: &[&str]) -> std::process::Output {
    let url = format!("http://127.0.0.1:{port}");
    let mut args = vec!["deploy", "new", "--url", &url, "--token", ADMIN];
    args.extend_from_slice(extra);
    run(dir, &args)
}

#[test]
fn deploys_are_previewed_kept_rolled_back_and_audited() {
    let dir = scratch("deployments");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::create_dir_all(dir.join("new")).unwrap();
    std::fs::write(dir.join("scripts/welcome.journey"), V1).unwrap();
    std::fs::write(dir.join("new/welcome.journey"), V2).unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        format!(
            "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n\n[[auth.tokens]]\nname = \"ops\"\ntoken = \"{ADMIN}\"\nscopes = [\"admin\"]\n\n[[auth.tokens]]\ntoken = \"{READ}\"\nscopes = [\"read\", \"ingest\"]\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let mut daemon = start(&dir, port);

    // The folder's deploy at start is the first deployment.
    let (status, list) = request(port, "GET", "/v1/deployments", READ, "");
    assert_eq!(status, 200, "{list}");
    let first = &list["deployments"][0];
    assert_eq!(list["deployments"].as_array().unwrap().len(), 1);
    assert_eq!(
        (
            first["id"].as_u64(),
            first["by"].as_str(),
            first["how"].as_str()
        ),
        (Some(1), Some("scripts folder"), Some("folder"))
    );
    assert_eq!(first["added"], serde_json::json!(["welcome"]));
    let v1 = first["versions"]["welcome"].as_str().unwrap().to_string();

    // Two users wait at `wait 1d`.
    for user in ["u1", "u2"] {
        let body = format!(r#"{{"userId": "{user}", "event": "signed_up"}}"#);
        assert_eq!(request(port, "POST", "/v1/track", READ, &body).0, 200);
    }

    // A dry run shows the diff, the steps and who waits where; deploys nothing.
    let out = deploy_cli(&dir, port, &["--dry-run"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    for line in [
        "--- welcome.journey (deployed)",
        "+++ welcome.journey (new)",
        "-  wait 1d",
        "+  wait 2d",
        &format!("journey welcome: changed (version {v1} → "),
        "~ s2 wait 1d\n    → s2 wait 2d",
        "+ s4 tag \"welcomed\"",
        "2 user(s) at s2 `wait 1d` (changed step): finish on version",
        "dry run: nothing deployed",
    ] {
        assert!(text.contains(line), "`{line}` missing from:\n{text}");
    }
    let (_, list) = request(port, "GET", "/v1/deployments", READ, "");
    assert_eq!(list["deployments"].as_array().unwrap().len(), 1);

    // Deployed for real: kept as deployment 2, by the token's name.
    let out = deploy_cli(&dir, port, &[]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out)
            .contains("deployed as deployment 2: added none; changed welcome; removed none"),
        "{}",
        stdout(&out)
    );
    let (_, list) = request(port, "GET", "/v1/deployments", READ, "");
    let ids: Vec<u64> = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1], "newest first");
    let second = &list["deployments"][0];
    assert_eq!(
        (second["by"].as_str(), second["how"].as_str()),
        (Some("ops"), Some("api"))
    );
    assert_eq!(second["changed"], serde_json::json!(["welcome"]));
    assert_ne!(second["source_hash"], first["source_hash"]);
    let (status, two) = request(port, "GET", "/v1/deployments/2", READ, "");
    assert_eq!(status, 200, "{two}");
    assert_eq!(two["files"]["welcome.journey"], V2);
    let diff = two["diff"][0]["diff"].as_str().unwrap();
    assert!(
        diff.contains("\n-  wait 1d\n") && diff.contains("\n+  wait 2d\n"),
        "{diff}"
    );
    assert_eq!(request(port, "GET", "/v1/deployments/9", READ, "").0, 404);
    let (status, refused) = request(port, "GET", "/v1/deployments?limit=x", READ, "");
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("query.limit"))
    );
    let (status, refused) = request(port, "GET", "/v1/deployments?nosuch=1", READ, "");
    assert_eq!(
        (status, refused["error"]["field"].as_str()),
        (400, Some("query.nosuch"))
    );

    // A rollback deploys deployment 1's files again: its version is back.
    assert_eq!(
        request(port, "POST", "/v1/deployments/1/rollback", READ, "").0,
        403
    );
    let (status, back) = request(port, "POST", "/v1/deployments/1/rollback", ADMIN, "");
    assert_eq!(status, 200, "{back}");
    assert_eq!(
        (back["deployment"].as_u64(), back["rollback_of"].as_u64()),
        (Some(3), Some(1))
    );
    let (_, journeys) = request(port, "GET", "/v1/journeys", READ, "");
    assert_eq!(
        journeys["journeys"][0]["version"].as_str(),
        Some(v1.as_str())
    );

    // Pause and erasure, then the audit log has every action, in order.
    assert_eq!(
        request(port, "POST", "/v1/journeys/welcome/pause", ADMIN, "").0,
        200
    );
    assert_eq!(request(port, "DELETE", "/v1/users/u1", ADMIN, "").0, 200);
    let expected = [
        ("scripts folder", "deploy", "deployment 1"),
        ("ops", "deploy", "deployment 2"),
        ("ops", "rollback", "deployment 3"),
        ("ops", "pause", "welcome"),
    ];
    let check_audit = |port: u16| {
        assert_eq!(request(port, "GET", "/v1/audit", READ, "").0, 403);
        let (status, log) = request(port, "GET", "/v1/audit", ADMIN, "");
        assert_eq!(status, 200, "{log}");
        let entries = log["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 5, "{log}");
        for (entry, (actor, action, target)) in entries.iter().zip(expected) {
            assert_eq!(
                (
                    entry["actor"].as_str(),
                    entry["action"].as_str(),
                    entry["target"].as_str()
                ),
                (Some(actor), Some(action), Some(target)),
                "{entry}"
            );
        }
        let erase = &entries[4];
        assert_eq!(erase["action"], "erase");
        let target = erase["target"].as_str().unwrap();
        assert!(
            target.starts_with("user ") && !target.contains("u1"),
            "{target}"
        );
        assert_eq!(log["last"], 5);
        let (_, page) = request(port, "GET", "/v1/audit?after=3&limit=1", ADMIN, "");
        assert_eq!(page["entries"][0]["seq"], 4);
    };
    check_audit(port);

    // Kept across a restart, and the restart records no deployment (the
    // set came over the API).
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let port = free_port();
    let mut daemon = start(&dir, port);
    check_audit(port);
    let (_, list) = request(port, "GET", "/v1/deployments", READ, "");
    assert_eq!(list["deployments"].as_array().unwrap().len(), 3);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}

#[test]
fn a_restart_with_the_same_folder_records_no_new_deployment() {
    let dir = scratch("deployments_restart");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(dir.join("scripts/welcome.journey"), V1).unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        "data_dir = \"./data\"\nscripts = \"./scripts\"\n",
    )
    .unwrap();
    let count = |port: u16| {
        let (_, body) = http(port, "GET", "/v1/deployments", "");
        let list: Value = serde_json::from_str(&body).unwrap();
        list["deployments"].as_array().unwrap().len()
    };
    let port = free_port();
    let mut daemon = start(&dir, port);
    assert_eq!(count(port), 1);
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    let port = free_port();
    let mut daemon = start(&dir, port);
    assert_eq!(count(port), 1, "same files: not recorded again");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
    // The folder changed: recorded, by the folder.
    std::fs::write(dir.join("scripts/welcome.journey"), V2).unwrap();
    let port = free_port();
    let mut daemon = start(&dir, port);
    assert_eq!(count(port), 2);
    let (_, body) = http(port, "GET", "/v1/audit", "");
    let log: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(log["entries"][1]["actor"], "scripts folder");
    assert_eq!(log["entries"][1]["target"], "deployment 2");
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
