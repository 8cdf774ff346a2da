//! `GET /v1/openapi.json` against the real daemon: the document is valid
//! OpenAPI 3.1 by the specification's own schema (`fixtures/`, from the
//! OpenAPI Initiative, Apache-2.0) and every schema in it is valid JSON
//! Schema 2020-12, both checked by the `jsonschema` validator; and it
//! tells the truth: each documented operation answers with a status it
//! documents, a token without the scope it names is refused with 403, a
//! route it says needs no token answers without one, and a path it does
//! not name is no route.

use serde_json::{Value, json};
use waymark_tests::*;

const ADMIN: &str = "admin-token-0123456789abcdef";
const READ: &str = "read-token-0123456789abcdef";
const INGEST: &str = "ingest-token-0123456789abcdef";

fn request(port: u16, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let (status, bytes) = Client::new(port)
        .request(method, path, &headers, body.as_bytes())
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// A body each operation that reads one takes.
fn body_for(path: &str) -> &'static str {
    match path {
        "/v1/track" => r#"{"userId": "u1", "event": "signed_up", "messageId": "m1"}"#,
        "/v1/identify" => r#"{"userId": "u1", "traits": {"nickname": "小王"}}"#,
        "/v1/batch" => r#"{"batch": [{"userId": "u2", "event": "signed_up"}]}"#,
        "/v1/deploy" => {
            r#"{"files": {"welcome.journey": "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"hi\" }\n}\n"}}"#
        }
        _ => "",
    }
}

#[test]
fn the_openapi_document_is_valid_and_every_operation_in_it_is_the_daemons() {
    let dir = scratch("openapi");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/welcome.journey"),
        "journey welcome {\n  trigger event signed_up\n  send wecom { text: \"hi\" }\n}\n",
    )
    .unwrap();
    let mut config = String::from(
        "data_dir = \"./data\"\nscripts = \"./scripts\"\n\n[channels.wecom]\nkind = \"log\"\npath = \"./sent.jsonl\"\n",
    );
    for (token, scope) in [(ADMIN, "admin"), (READ, "read"), (INGEST, "ingest")] {
        config.push_str(&format!(
            "\n[[auth.tokens]]\ntoken = \"{token}\"\nscopes = [\"{scope}\"]\n"
        ));
    }
    std::fs::write(dir.join("waymark.toml"), config).unwrap();
    let port = free_port();
    let mut daemon = start_daemon(&dir, port, &dir.join("daemon.log"));
    wait_for("readiness", std::time::Duration::from_secs(30), || {
        request(port, "GET", "/readyz", None, "").0 == 200
    });

    let (status, document) = request(port, "GET", "/v1/openapi.json", None, "");
    assert_eq!(status, 200, "{document}");

    // Valid by the specification's schema, and every schema in it valid.
    let text =
        std::fs::read_to_string(root().join("tests/fixtures/openapi-3.1-schema.json")).unwrap();
    let specification: Value = serde_json::from_str(&text).unwrap();
    let validator = jsonschema::draft202012::new(&specification).expect("the OAS 3.1 schema");
    let problems: Vec<String> = validator
        .iter_errors(&document)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(problems.is_empty(), "not valid OpenAPI 3.1: {problems:?}");
    assert_eq!(document["openapi"], "3.1.0");
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for (name, schema) in schemas {
        // A schema referring to others is checked within the document.
        let mut whole = json!({"$defs": {}});
        whole["components"] = json!({"schemas": schemas});
        whole["$ref"] = json!(format!("#/components/schemas/{name}"));
        assert!(
            jsonschema::meta::is_valid(schema),
            "components.schemas.{name} is not valid JSON Schema: {schema}"
        );
        jsonschema::draft202012::new(&whole)
            .unwrap_or_else(|e| panic!("components.schemas.{name} does not compile: {e}"));
    }

    // Every operation is the daemon's, answering as documented.
    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() > 15, "{paths:?}");
    let mut operations = 0;
    for (template, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            operations += 1;
            let method = method.to_uppercase();
            let path = template
                .replace("{id}", "u1")
                .replace("{seq}", "1")
                .replace("{name}", "welcome");
            let body = body_for(template);
            let documented = operation["responses"].as_object().unwrap();
            let scope = operation["x-waymark-scope"].as_str();
            let token = scope.map(|_| ADMIN);
            let (status, answer) = request(port, &method, &path, token, body);
            assert!(
                documented.contains_key(&status.to_string()),
                "{method} {template} answered {status} ({answer}), not one of {:?}",
                documented.keys().collect::<Vec<_>>()
            );
            match scope {
                None => assert_eq!(operation["security"], json!([]), "{method} {template}"),
                Some(scope) => {
                    // No token: 401; a token of another scope: 403.
                    let (status, _) = request(port, &method, &path, None, body);
                    assert_eq!(status, 401, "{method} {template} without a token");
                    let other = if scope == "read" { INGEST } else { READ };
                    let (status, answer) = request(port, &method, &path, Some(other), body);
                    assert_eq!(
                        status, 403,
                        "{method} {template} with another scope: {answer}"
                    );
                    assert!(
                        answer["error"]["message"]
                            .as_str()
                            .is_some_and(|m| m.contains(&format!("`{scope}`"))),
                        "{method} {template}: {answer}"
                    );
                }
            }
        }
    }
    assert!(operations >= 18, "{operations} operations");
    let (status, answer) = request(port, "GET", "/v1/nothing", Some(ADMIN), "");
    assert_eq!(
        (status, &answer["error"]["message"]),
        (404, &json!("no such route"))
    );
    daemon.kill().unwrap();
    daemon.wait().unwrap();
}
