//! The documents in `docs/` are a user's whole reference, so these tests
//! hold them to the code: every route the daemon has (its route table) is a section of
//! `docs/http-api.md` (and every section a route), every key a config
//! table takes and every setting a channel kind takes — as the real
//! binary lists them when a config has one it does not know — is in
//! `docs/operations.md`, every keyword of the grammar is in
//! `docs/language.md`, and every complete script there passes `waymark
//! check`. (Diagnostic codes and built-in functions are generated into
//! their documents and checked where they are made.)

use std::collections::{BTreeMap, BTreeSet};
use waymark_tests::*;

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The part of `text` from the heading `heading` (a whole line) to the
/// next heading of the same or a higher level.
fn section<'t>(text: &'t str, heading: &str) -> &'t str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = text
        .lines()
        .position(|l| l == heading)
        .unwrap_or_else(|| panic!("no heading `{heading}`"));
    let lines: Vec<&str> = text.lines().collect();
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            (1..=level).contains(&hashes) && l[hashes..].starts_with(' ')
        })
        .map_or(lines.len(), |n| start + 1 + n);
    let from = lines[..start].iter().map(|l| l.len() + 1).sum::<usize>();
    let to = (from + lines[start..end].iter().map(|l| l.len() + 1).sum::<usize>()).min(text.len());
    &text[from..to]
}

/// The text inside backticks in `text`, each once.
fn backticked(text: &str) -> BTreeSet<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The routes of the daemon, as (method, path): the table in
/// `engine/src/daemon/routes.rs` the router is built from.
fn routes() -> BTreeSet<(String, String)> {
    let source = read("engine/src/daemon/routes.rs");
    let table = &source[source
        .find("pub(super) const ROUTES")
        .expect("the route table")..];
    let mut out = BTreeSet::new();
    for entry in table.split("Route {").skip(1) {
        let field = |name: &str| {
            let at = entry.find(&format!("{name}: ")).expect("a route's field") + name.len() + 2;
            entry[at..].split([',', '\n']).next().unwrap().to_string()
        };
        let method = field("method")
            .trim_start_matches("Method::")
            .to_uppercase();
        out.insert((method, field("path").trim_matches('"').to_string()));
    }
    assert!(out.len() > 10, "the routes were read: {out:?}");
    out
}

#[test]
fn every_route_is_a_section_of_the_http_api_doc_and_every_section_a_route() {
    let doc = read("docs/http-api.md");
    let documented: BTreeSet<(String, String)> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .filter_map(|h| {
            let (method, path) = h.split_once(' ')?;
            (method.chars().all(|c| c.is_ascii_uppercase()) && path.starts_with('/'))
                .then(|| (method.to_string(), path.trim().to_string()))
        })
        .collect();
    let routed = routes();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes without a `## METHOD /path` section in docs/http-api.md: {undocumented:?}; sections naming no route: {unrouted:?}"
    );
}

/// What the real binary says each config table and each channel kind
/// takes, when every one of them is given a key it does not know: table
/// path (`""` for the top, `channels.KIND` for a kind) → keys.
fn known_keys() -> BTreeMap<String, Vec<String>> {
    let dir = scratch("docs_config");
    std::fs::write(
        dir.join("j.journey"),
        "journey j {\n  trigger event a\n  send x { text: \"x\" }\n}\n",
    )
    .unwrap();
    let mut config = String::from("zz_unknown = 1\n");
    for table in ["limits", "http", "retry", "log", "auth"] {
        config.push_str(&format!("[{table}]\nzz_unknown = 1\n"));
    }
    config.push_str(
        "[[auth.tokens]]\ntoken = \"0123456789abcdef0123\"\nscopes = [\"read\"]\nzz_unknown = 1\n",
    );
    // A kind nobody has: the error lists the kinds there are.
    config.push_str("[channels.none]\nkind = \"zz_kind\"\n");
    std::fs::write(dir.join("kinds.toml"), &config).unwrap();
    let out = stderr(&run(
        &dir,
        &["check", "--config", "kinds.toml", "j.journey"],
    ));
    let kinds: Vec<String> = out
        .split("(the kinds are: ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("the kinds are listed: {out}"))
        .split(", ")
        .map(str::to_string)
        .collect();
    assert!(kinds.len() >= 6, "{kinds:?}");
    for kind in &kinds {
        config.push_str(&format!(
            "[channels.c_{kind}]\nkind = \"{kind}\"\nzz_unknown = 1\n"
        ));
    }
    std::fs::write(dir.join("all.toml"), &config).unwrap();
    let out = stderr(&run(&dir, &["check", "--config", "all.toml", "j.journey"]));
    let mut known = BTreeMap::new();
    for line in out.lines() {
        let Some(rest) = line.strip_prefix("config error: ") else {
            continue;
        };
        let Some((path, message)) = rest.split_once(": ") else {
            continue;
        };
        let Some(table) = path.strip_suffix("zz_unknown") else {
            continue;
        };
        let list = message
            .split("takes: ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("an unknown key's error lists the known ones: {line}"));
        let table = table.trim_end_matches('.');
        let table = match table.strip_prefix("channels.c_") {
            Some(kind) => format!("channels.{kind}"),
            None => table.to_string(),
        };
        known.insert(table, list.split(", ").map(str::to_string).collect());
    }
    for kind in &kinds {
        assert!(
            known.contains_key(&format!("channels.{kind}")),
            "kind {kind} lists its settings: {out}"
        );
    }
    known
}

#[test]
fn every_config_key_and_every_channel_setting_is_in_the_operations_doc() {
    let doc = read("docs/operations.md");
    let configuration = backticked(section(&doc, "## Configuration"));
    let mut missing = Vec::new();
    for (table, keys) in known_keys() {
        if let Some(kind) = table.strip_prefix("channels.") {
            let heading = format!("### `{kind}`");
            let documented = backticked(section(&doc, &heading));
            missing.extend(
                keys.iter()
                    .filter(|k| !documented.contains(k.as_str()))
                    .map(|k| format!("{k} (in {heading})")),
            );
            continue;
        }
        for key in keys {
            let named = match table.as_str() {
                "" => key.clone(),
                "auth.tokens[0]" => key.clone(),
                t => format!("{t}.{key}"),
            };
            // A key that is a table of its own (`limits`, `channels`) is
            // documented by its keys.
            let is_table = table.is_empty()
                && [
                    "auth",
                    "retry",
                    "log",
                    "limits",
                    "http",
                    "channels",
                    "identity",
                    "consent",
                    "callbacks",
                ]
                .contains(&key.as_str());
            if !is_table && !configuration.contains(named.as_str()) {
                missing.push(format!("{named} (in ## Configuration)"));
            }
        }
    }
    // The keys every channel takes, whatever its kind, are the config's.
    let source = read("engine/src/config/mod.rs");
    let shared = &source[source.find("const CHANNEL_KEYS").expect("CHANNEL_KEYS")..];
    let shared = &shared[..shared.find("];").unwrap()];
    let every_kind = backticked(section(&doc, "### Every kind"));
    for key in shared.split('"').skip(1).step_by(2) {
        if !every_kind.contains(key) {
            missing.push(format!("{key} (in ### Every kind)"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/operations.md does not name: {missing:?}"
    );
}

/// The ```journey blocks of `text`.
fn journey_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match &mut current {
            None if line.trim_end() == "```journey" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

#[test]
fn every_script_in_the_language_doc_checks_and_every_keyword_is_explained() {
    let doc = read("docs/language.md");
    let blocks = journey_blocks(&doc);
    assert!(blocks.len() >= 10, "only {} scripts", blocks.len());
    let dir = scratch("docs_language");
    let mut failed = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        let file = format!("example{i:02}.journey");
        std::fs::write(dir.join(&file), block).unwrap();
        let out = run(&dir, &["check", &file]);
        if out.status.code() != Some(0) {
            failed.push(format!("script {i}:\n{block}\n{}", stdout(&out)));
        }
    }
    assert!(
        failed.is_empty(),
        "scripts in docs/language.md that do not check:\n{}",
        failed.join("\n")
    );
    // Every word the grammar matches literally is explained somewhere.
    let grammar = read("dsl/src/grammar.pest");
    let words: BTreeSet<&str> = grammar
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|w| w.len() > 1 && w.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(
        words.len() > 20,
        "the grammar's keywords were read: {words:?}"
    );
    let prose_and_code: BTreeSet<&str> = doc
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    let missing: Vec<&&str> = words
        .iter()
        .filter(|w| !prose_and_code.contains(**w))
        .collect();
    assert!(
        missing.is_empty(),
        "grammar keywords docs/language.md never mentions: {missing:?}"
    );
}

/// Every page and action of the console (its router, `engine/src/daemon/ui/mod.rs`)
/// is in `docs/console.md`.
#[test]
fn every_console_page_and_action_is_in_the_console_doc() {
    let router = read("engine/src/daemon/ui/mod.rs");
    let doc = read("docs/console.md");
    let mut paths = Vec::new();
    for line in router.lines() {
        let Some(rest) = line.trim().strip_prefix(".route(\"") else {
            continue;
        };
        let path = rest.split('"').next().unwrap();
        paths.push(path.to_string());
    }
    assert!(paths.len() > 10, "{paths:?}");
    // Pages are named by their path (with NAME, ID for the parameters);
    // actions by their button, which the doc puts in bold.
    let actions = [
        ("/pause", "**Pause**"),
        ("/resume", "**Resume**"),
        ("/replay", "**Replay**"),
        ("/rollback", "**Roll back"),
        ("/ui/logout", "**Sign out**"),
        ("/ui/login", "## Signing in"),
        ("/ui/users", "**Find user**"),
        ("/ui/style.css", "stylesheet"),
        ("/ui/", "`/ui`"),
    ];
    for path in &paths {
        let shown = path
            .replace("{name}", "NAME")
            .replace("{id}", "ID")
            .replace("{seq}", "SEQ");
        let documented = match actions.iter().find(|(end, _)| path.ends_with(end)) {
            Some((_, words)) => doc.contains(words),
            None => doc.contains(&format!("`{shown}`")),
        };
        assert!(documented, "{path} is not in docs/console.md");
    }
}
