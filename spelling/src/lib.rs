//! "Did you mean …?": the closest of some known names to a misspelt one.
//! Shared by the language checker (names, keywords, time zones) and the
//! configuration and channel settings readers (keys, kinds), so a typo gets
//! the same suggestion wherever it is made. No dependencies.

#![forbid(unsafe_code)]

/// "did you mean" for a misspelt name: the closest candidate within an edit
/// distance that grows with the name's length.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let len = name.chars().count();
    // Nobody misspells a name this long; and edit distance is quadratic.
    if len > 64 {
        return None;
    }
    let limit = (len / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name)
        // The distance is at least the difference in length: skip cheaply.
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// Edit distance over characters where swapping two neighbours counts as
/// one edit (optimal string alignment), since `evnet` is one slip from `event`.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_suggests_near_names_only() {
        let names = ["user", "event", "journey", "now"];
        assert_eq!(closest("usr", names), Some("user"));
        assert_eq!(closest("evnet", names), Some("event"));
        assert_eq!(closest("banana", names), None);
        assert_eq!(edit_distance("新客欢迎", "新客欢"), 1);
        assert_eq!(
            closest(&"x".repeat(200), ["x"]),
            None,
            "long names get no suggestion"
        );
    }
}
