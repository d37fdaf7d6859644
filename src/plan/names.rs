//! Name suggestions: the one did-you-mean of spec diagnostics (`check`) and profile
//! errors (`config`), which both sit above the plan.

/// The closest name within edit distance 2 (or a case-insensitive match).
pub fn closest<'n>(word: &str, names: &[&'n str]) -> Option<&'n str> {
    let lower = word.to_lowercase();
    names
        .iter()
        .map(|n| (distance(&lower, &n.to_lowercase()), *n))
        .filter(|(d, n)| {
            *d <= 2.min(n.chars().count().saturating_sub(1))
                || n.eq_ignore_ascii_case(word)
                || (word.len() >= 4 && n.to_lowercase().starts_with(&lower))
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(row[j + 1])
            };
            prev = cur;
        }
    }
    row[b.len()]
}
