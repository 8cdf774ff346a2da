//! What the HTML pages Waymark writes share — the simulation report and
//! the console: text made safe for HTML, and counts as people read them.

/// Text for HTML content and attribute values (as for SVG).
pub use waymark_dsl::graph::escape;

/// `1234567` as `1,234,567`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many instances came to a step and went on from it, as the console
/// and the simulation report write it at the top of the step's box.
pub fn passages(s: &waymark_core::stats::StepStats) -> String {
    format!("entered {} · passed {}", count(s.entered), count(s.passed))
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_have_thousands_separators() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_234_567, "1,234,567"),
        ] {
            assert_eq!(super::count(n), text);
        }
    }

    #[test]
    fn text_cannot_open_a_tag_or_end_an_attribute() {
        assert_eq!(
            super::escape("<a href=\"x\">'&'"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;"
        );
    }
}
