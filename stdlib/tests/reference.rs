//! `docs/functions.md` is exactly what `reference_markdown()` generates.
//! Run with `WAYMARK_BLESS=1` to rewrite it after changing the table.

use std::path::Path;
use waymark_stdlib::reference_markdown;

#[test]
fn committed_reference_is_generated_from_the_table() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/functions.md");
    let generated = reference_markdown();
    if std::env::var_os("WAYMARK_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date; run `WAYMARK_BLESS=1 cargo test -p waymark-stdlib --test reference`",
        path.display()
    );
}

#[test]
fn reference_lists_every_function_once() {
    let text = reference_markdown();
    for row in waymark_stdlib::BUILTINS {
        let needle = format!("\n| `{}(", row.signature.name);
        assert_eq!(text.matches(&needle).count(), 1, "{}", row.signature.name);
    }
}
