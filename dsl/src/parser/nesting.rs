//! A bracket-depth scan run before pest sees a file. pest recurses once per
//! nested `(`, `[`, `{` and string interpolation, and is built without its
//! native stack probe (which cost a fifth of `check`), so input nested
//! thousands deep must be refused before it is parsed. The scan follows the
//! grammar's lexical shape — comments, `"…"` and `"""…"""` strings with
//! escapes, `{…}` interpolations inside strings (which may hold strings) —
//! so its depth bounds pest's recursion. It allows twice
//! [`MAX_DEPTH`](super::MAX_DEPTH): deeper input could never build anyway,
//! and the builder reports nesting past `MAX_DEPTH` at the node it refuses.

/// The deepest bracket nesting the scan lets through to pest.
pub(crate) const SCAN_LIMIT: usize = 2 * super::MAX_DEPTH as usize;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Code inside `(`, `[`, `{`, or an interpolation's `{`.
    Code,
    Simple,
    Triple,
}

/// The byte offset of the first opening bracket nested deeper than
/// [`SCAN_LIMIT`], if any.
pub(crate) fn too_deep(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut stack: Vec<Frame> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match stack.last().copied() {
            None | Some(Frame::Code) => match b {
                b'#' => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                    stack.push(Frame::Triple);
                    i += 3;
                    continue;
                }
                b'"' => stack.push(Frame::Simple),
                b'(' | b'[' | b'{' => stack.push(Frame::Code),
                // An unmatched closer is pest's to report.
                b')' | b']' | b'}' if stack.last() == Some(&Frame::Code) => {
                    stack.pop();
                }
                _ => {}
            },
            Some(string) => match b {
                b'\\' => {
                    i += 2;
                    continue;
                }
                b'{' => stack.push(Frame::Code),
                b'"' if string == Frame::Simple => {
                    stack.pop();
                }
                b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                    stack.pop();
                    i += 3;
                    continue;
                }
                // A simple string ends at the line; pest stops there too.
                b'\n' if string == Frame::Simple => {
                    stack.pop();
                }
                _ => {}
            },
        }
        if stack.len() > SCAN_LIMIT {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_brackets_and_interpolations_but_not_text_or_comments() {
        let deep = |n: usize| format!("{}1{}", "(".repeat(n), ")".repeat(n));
        assert_eq!(too_deep(&deep(SCAN_LIMIT)), None);
        assert_eq!(too_deep(&deep(SCAN_LIMIT + 1)), Some(SCAN_LIMIT));
        let brackets_in_text = format!("\"{}\" # {}", "[(".repeat(500), "{".repeat(500));
        assert_eq!(too_deep(&brackets_in_text), None);
        let escaped = format!("\"{}\"", "\\{".repeat(500));
        assert_eq!(too_deep(&escaped), None);
        // Interpolations nest strings that nest interpolations.
        let nested = "\"{".repeat(SCAN_LIMIT);
        assert!(too_deep(&nested).is_some());
        let triple = format!("\"\"\"\n{}\n\"\"\"", "(\"".repeat(300));
        assert_eq!(too_deep(&triple), None);
        // Unterminated simple strings end at the line.
        let lines = "f(\"unterminated\n".repeat(SCAN_LIMIT + 1);
        assert!(too_deep(&lines).is_some());
        let closed = "f(\"unterminated\n)\n".repeat(1000);
        assert_eq!(too_deep(&closed), None);
    }
}
