//! `waymark check` and `waymark explain` as a user runs them.

use waymark_tests::{root, run, scratch, stderr, stdout, waymark};

const BROKEN: &str = "journey welcome {\n  trigger event signed_up\n  if usr.tier == \"gold\" { exit }\n  wait until 3d\n}\n";

#[test]
fn check_reports_each_error_at_its_line_and_column_and_exits_1() {
    let dir = scratch("check_errors");
    std::fs::write(dir.join("welcome.journey"), BROKEN).unwrap();
    let out = run(&dir, &["check", "welcome.journey"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("error[E0101]: unknown name `usr`"), "{text}");
    assert!(text.contains("--> welcome.journey:3:6"), "{text}");
    assert!(text.contains("help: did you mean `user`?"), "{text}");
    assert!(text.contains("welcome.journey:4:14"), "{text}");
    assert!(
        stderr(&out).contains("checked 1 file: 2 errors, 0 warnings"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn check_json_lists_diagnostics_with_positions() {
    let dir = scratch("check_json");
    std::fs::write(dir.join("welcome.journey"), BROKEN).unwrap();
    let out = run(&dir, &["check", "--format", "json", "."]);
    assert_eq!(out.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(json["errors"], 2);
    let first = &json["diagnostics"][0];
    assert_eq!(first["code"], "E0101");
    assert_eq!(first["file"], "./welcome.journey");
    assert_eq!(first["line"], 3);
    assert_eq!(first["column"], 6);
    assert_eq!(first["help"], "did you mean `user`?");
}

#[test]
fn check_of_a_directory_takes_every_journey_file_and_the_examples_are_clean() {
    let out = run(&root(), &["check", "examples/journeys"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("0 errors, 0 warnings"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn deny_warnings_fails_on_a_warning_only_deployment() {
    let dir = scratch("check_warnings");
    let script = "journey j {\n  trigger event a\n  exit\n  tag \"never\"\n}\n";
    std::fs::write(dir.join("j.journey"), script).unwrap();
    assert_eq!(run(&dir, &["check", "j.journey"]).status.code(), Some(0));
    let strict = run(&dir, &["check", "--deny-warnings", "j.journey"]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(stdout(&strict).contains("warning[W0501]"));
}

#[test]
fn a_missing_path_is_a_usage_error_naming_it() {
    let dir = scratch("check_missing");
    let out = run(&dir, &["check", "nowhere.journey"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nowhere.journey"), "{}", stderr(&out));
}

#[test]
fn a_directory_without_journey_files_is_an_error_naming_it() {
    let dir = scratch("check_empty_dir");
    std::fs::create_dir_all(dir.join("scripts/nested")).unwrap();
    std::fs::write(dir.join("scripts/readme.txt"), "not a script").unwrap();
    for command in [
        &["check", "scripts"][..],
        &["fmt", "--check", "scripts"],
        &["test", "scripts"],
        &["simulate", "--events", "events.jsonl", "scripts"],
    ] {
        let out = run(&dir, command);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no `.journey` files in scripts"),
            "{command:?}: {}",
            stderr(&out)
        );
    }
}

#[test]
fn explain_prints_what_a_code_means() {
    let out = run(&root(), &["explain", "E0401"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("split percentages do not sum to 100"));
    let unknown = run(&root(), &["explain", "E9999"]);
    assert_eq!(unknown.status.code(), Some(2));
}

#[test]
fn check_with_a_config_refuses_channels_it_does_not_define_and_bad_configs() {
    let dir = scratch("check_config");
    std::fs::write(
        dir.join("j.journey"),
        "journey j {\n  trigger event a\n  send smss { text: \"x\" }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ok.toml"),
        "[channels.sms]\nkind = \"log\"\npath = \"./sms.jsonl\"\n",
    )
    .unwrap();
    let out = run(&dir, &["check", "--config", "ok.toml", "j.journey"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("no channel named `smss` is configured"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("did you mean `sms`?"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        run(&dir, &["check", "j.journey"]).status.code(),
        Some(0),
        "without a config any channel name goes"
    );
    std::fs::write(
        dir.join("bad.toml"),
        "[channels.sms]\nkind = \"pigeon\"\n[retry]\nmax_atempts = 3\n",
    )
    .unwrap();
    let bad = run(&dir, &["check", "--config", "bad.toml", "j.journey"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = stderr(&bad);
    assert!(
        err.contains("channels.sms.kind: unknown channel kind `pigeon`"),
        "{err}"
    );
    assert!(
        err.contains(
            "retry.max_atempts: unknown key (this table takes: max_attempts, initial_backoff, max_backoff, max_age); did you mean `max_attempts`?"
        ),
        "{err}"
    );
}

#[test]
fn check_with_a_config_holds_sends_to_their_channel_kinds_fields() {
    let dir = scratch("check_kinds");
    std::fs::write(
        dir.join("j.journey"),
        "journey j {\n  trigger event a\n  send sms { code: \"1\" }\n  send sms template \"SMS_1\" { code: \"1\" }\n  send staff { txt: \"x\" }\n  send staff { text: \"ok\" }\n  send mp template \"T\" { url: \"https://example.invalid\", order: \"1\" }\n  send hook { anything: 1 }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("w.toml"),
        "[channels.sms]\nkind = \"sms\"\naccess_key_id = \"id\"\naccess_key_secret = \"secret\"\nsign_name = \"签名\"\n\
         [channels.staff]\nkind = \"wecom\"\ncorp_id = \"ww1\"\ncorp_secret = \"s\"\nagent_id = 1000002\n\
         [channels.mp]\nkind = \"wechat\"\napp_id = \"wx1\"\napp_secret = \"s\"\n\
         [channels.hook]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
    )
    .unwrap();
    let out = run(&dir, &["check", "--config", "w.toml", "j.journey"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}{}", stderr(&out));
    assert!(
        text.contains("channel `sms` (sms) needs the field `template`"),
        "{text}"
    );
    assert!(text.contains("j.journey:3:3"), "{text}");
    assert!(
        text.contains("channel `staff` (wecom) has no field `txt`"),
        "{text}"
    );
    assert!(text.contains("did you mean `text`?"), "{text}");
    assert!(
        stderr(&out).contains("2 errors"),
        "only those two: {}{text}",
        stderr(&out)
    );
}

#[test]
fn check_with_a_config_names_every_bad_channel_setting_by_path() {
    let dir = scratch("check_kind_settings");
    std::fs::write(dir.join("j.journey"), "journey j {\n  trigger event a\n}\n").unwrap();
    std::fs::write(
        dir.join("bad.toml"),
        "[channels.sms]\nkind = \"sms\"\ntimeout = \"forever\"\n\
         [channels.staff]\nkind = \"wecom\"\ncorp_id = \"ww1\"\ncorp_secret = \"s\"\nagent_id = true\n\
         [channels.hook]\nkind = \"webhook\"\nurl = \"ftp://example.invalid\"\nsecrte = \"s\"\n",
    )
    .unwrap();
    let out = run(&dir, &["check", "--config", "bad.toml", "j.journey"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    for path in [
        "channels.sms.access_key_id: missing",
        "channels.sms.access_key_secret: missing",
        "channels.sms.sign_name: missing",
        "channels.sms.timeout:",
        "channels.staff.agent_id: must be a whole number",
        "channels.hook.url:",
        "channels.hook.secrte: unknown setting",
        "did you mean `secret`?",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
}

#[test]
fn check_with_an_email_channel_wants_subject_and_body_and_names_bad_settings() {
    let dir = scratch("check_email");
    std::fs::write(
        dir.join("j.journey"),
        "journey j {\n  trigger event a\n  send email { subject: \"双十一\", text: \"x\" }\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("ok.toml"),
        "[channels.email]\nkind = \"email\"\nhost = \"smtp.example.com\"\nfrom = \"品牌 <news@example.com>\"\n",
    )
    .unwrap();
    let out = run(&dir, &["check", "--config", "ok.toml", "j.journey"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("needs the field `body`"), "{text}");
    assert!(text.contains("`text`"), "{text}");

    std::fs::write(
        dir.join("bad.toml"),
        "[channels.email]\nkind = \"email\"\nhost = \"smtp.example.com\"\ntls = \"ssl\"\nusername = \"u\"\nfrom = \"news at example.com\"\n",
    )
    .unwrap();
    let bad = run(&dir, &["check", "--config", "bad.toml", "j.journey"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = stderr(&bad);
    for path in [
        "channels.email.tls:",
        "channels.email.password: missing",
        "channels.email.from:",
    ] {
        assert!(err.contains(path), "{path} missing from {err}");
    }
}

#[test]
fn check_with_the_production_config_needs_none_of_its_secrets() {
    let mut command = std::process::Command::new(waymark());
    command
        .args([
            "check",
            "--config",
            "examples/waymark.toml",
            "examples/journeys",
        ])
        .current_dir(root());
    for (key, _) in std::env::vars() {
        if key.starts_with("WAYMARK_") || key.contains("SECRET") || key.starts_with("SMTP_") {
            command.env_remove(key);
        }
    }
    for secret in [
        "WAYMARK_INGEST_TOKEN",
        "WAYMARK_ADMIN_TOKEN",
        "MINIPROGRAM_APP_ID",
        "MINIPROGRAM_APP_SECRET",
        "ALIYUN_ACCESS_KEY_ID",
        "ALIYUN_ACCESS_KEY_SECRET",
        "SMS_SIGN_NAME",
        "WECOM_CORP_ID",
        "WECOM_CORP_SECRET",
        "WECOM_AGENT_ID",
        "SMTP_PASSWORD",
    ] {
        command.env_remove(secret);
    }
    let out = command.output().expect("waymark runs");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(stderr(&out).contains("0 errors"), "{}", stderr(&out));
}
