//! The canonical layout of journey scripts (placeholder until the formatter lands).

use crate::diagnostic::Diagnostic;

pub fn format_source(name: &str, text: &str) -> Result<String, Vec<Diagnostic>> {
    let _ = name;
    Ok(text.to_string())
}
