//! The daemon across restarts and stops: which script set a restart
//! deploys (the stored one is the truth), and how SIGTERM treats sends
//! still queued for a provider that does not answer.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;
use waymark_tests::{free_port, http, scratch, start_daemon};

fn start(dir: &Path, port: u16) -> Child {
    start_daemon(dir, port, &dir.join("daemon.log"))
}

#[allow(dead_code)] // used by the SIGTERM test
fn wait_for(what: &str, f: impl FnMut() -> bool) {
    // Generous: CI machines can be slow; a pass takes well under a second.
    waymark_tests::wait_for(what, Duration::from_secs(60), f)
}

fn log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

/// Sends SIGTERM and waits for the daemon to exit; whether it exited 0.
fn terminate(daemon: &mut Child) -> bool {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    daemon.wait().unwrap().success()
}

fn journey(name: &str, event: &str) -> String {
    format!("journey {name} {{\n  trigger event {event}\n  send wecom {{ text: \"{name}\" }}\n}}\n")
}

fn setup(name: &str) -> PathBuf {
    let dir = scratch(name);
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/welcome.journey"),
        journey("welcome", "signed_up"),
    )
    .unwrap();
    std::fs::write(
        dir.join("waymark.toml"),
        "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    )
    .unwrap();
    dir
}

/// The names of the deployed journeys, as `GET /v1/journeys` lists them.
fn deployed(port: u16) -> Vec<String> {
    let (status, body) = http(port, "GET", "/v1/journeys", "");
    assert_eq!(status, 200, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let mut names: Vec<String> = body["journeys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_restart_keeps_a_set_deployed_over_the_api_and_says_how_the_folder_differs() {
    let dir = setup("lifecycle_api_deploy");
    let port = free_port();
    let mut daemon = start(&dir, port);
    assert_eq!(deployed(port), ["welcome"]);
    let files = serde_json::json!({"files": {"promo.journey": journey("promo", "bought")}});
    let (status, body) = http(port, "POST", "/v1/deploy", &files.to_string());
    assert_eq!(status, 200, "{body}");
    assert_eq!(deployed(port), ["promo"]);
    assert!(terminate(&mut daemon));

    let mut daemon = start(&dir, port);
    assert_eq!(
        deployed(port),
        ["promo"],
        "the restart undid the API deploy"
    );
    let log = log(&dir);
    let warning = log
        .lines()
        .find(|l| l.contains("keeping the deployed set"))
        .unwrap_or_else(|| panic!("no warning about the folder: {log}"));
    assert!(
        warning.contains("WARN") && warning.contains("POST /v1/deploy"),
        "{warning}"
    );
    assert!(
        warning.contains("only_in_folder=[\"welcome\"]")
            && warning.contains("only_deployed=[\"promo\"]"),
        "the warning names the difference: {warning}"
    );
    assert!(terminate(&mut daemon));
}

#[test]
fn a_restart_deploys_the_folder_when_the_last_deploy_came_from_it() {
    let dir = setup("lifecycle_folder_deploy");
    let port = free_port();
    let mut daemon = start(&dir, port);
    assert_eq!(deployed(port), ["welcome"]);
    assert!(terminate(&mut daemon));

    std::fs::write(
        dir.join("scripts/promo.journey"),
        journey("promo", "bought"),
    )
    .unwrap();
    let mut daemon = start(&dir, port);
    assert_eq!(deployed(port), ["promo", "welcome"]);
    assert!(
        !log(&dir).contains("keeping the deployed set"),
        "{}",
        log(&dir)
    );
    assert!(terminate(&mut daemon));
}
