//! "Did you mean ...?" suggestions for misspelt names.

/// Levenshtein distance between two strings (by chars).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_ascii_lowercase(), c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(edit_distance("e4m3", "e4m3"), 0);
        assert_eq!(edit_distance("e3m4", "e4m3"), 2);
        assert_eq!(closest("e4m2", ["e4m3", "e5m2", "fp16"]), Some("e4m3"));
        assert_eq!(closest("bfloat", ["bf16", "fp16"]), None);
        assert_eq!(closest("mxfp5", ["mxfp4", "mxfp6_e2m3"]), Some("mxfp4"));
    }
}
