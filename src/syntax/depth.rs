//! The nesting limit: a scan of the raw text before pest sees it.
//!
//! The parser, the lowering, the checker, the plan's `Display` and the evaluation of map
//! expressions all recurse once per nesting level, so a spec nested thousands deep would
//! overflow the stack: on the main thread for `qsync check`, sooner on the `serve` daemon's
//! worker threads. pest's own stack guard stops parsing when the stack runs low, but where
//! that happens depends on the thread, and everything after parsing has no guard. A fixed
//! limit counted on the text gives the same answer on every thread and bounds every later
//! recursion by it.

use super::Span;

/// The deepest nesting a spec may have: brackets `( [ {` (blocks included) plus `case`
/// subjects not yet followed by their `{`. Real specs stay under 10; 64 leaves room for
/// generated ones and keeps every recursion far from the smallest stack qsync runs on.
pub const MAX_NESTING: usize = 64;

/// Where the text first goes deeper than [`MAX_NESTING`]: the span of the bracket (or
/// `case`) that opens level `MAX_NESTING + 1`. `None` when the text stays within it.
///
/// Strings (`"..."`, `"""..."""`) and comments (`#`, `//`) do not count. The measure is
/// conservative: a field named `case` followed by another expression's first character
/// counts as a level until the bracket around it closes.
pub(super) fn too_deep(text: &str) -> Option<Span> {
    let bytes = text.as_bytes();
    // Bracket depth now, and for each `case` waiting for its `{`, the bracket depth it stood at.
    let mut brackets = 0usize;
    let mut cases: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i = text[i + 3..]
                    .find("\"\"\"")
                    .map_or(bytes.len(), |end| i + 3 + end + 3);
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            b'#' => {
                i = skip_line(bytes, i);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                i = skip_line(bytes, i);
                continue;
            }
            b'(' | b'[' | b'{' => {
                if b == b'{' && cases.last() == Some(&brackets) {
                    cases.pop();
                }
                brackets += 1;
                if brackets + cases.len() > MAX_NESTING {
                    return Some(Span::new(i, i + 1));
                }
            }
            b')' | b']' | b'}' => {
                brackets = brackets.saturating_sub(1);
                while cases.last().is_some_and(|&at| at > brackets) {
                    cases.pop();
                }
            }
            b'c' if is_case_keyword(text, i) => {
                cases.push(brackets);
                if brackets + cases.len() > MAX_NESTING {
                    return Some(Span::new(i, i + 4));
                }
                i += 4;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn skip_line(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(bytes.len(), |n| from + n)
}

/// `case` as a whole word that an expression follows (a field named `case` is followed by
/// `=`, `:`, `,`, `)` or `}` instead).
fn is_case_keyword(text: &str, at: usize) -> bool {
    let Some(rest) = text[at..].strip_prefix("case") else {
        return false;
    };
    let before = text[..at].chars().next_back();
    if before.is_some_and(|c| is_ident_char(c) || c == '.') {
        return false;
    }
    if rest.chars().next().is_some_and(is_ident_char) {
        return false;
    }
    rest.trim_start()
        .chars()
        .next()
        .is_some_and(|c| is_ident_char(c) || c == '"' || c == '-')
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!("map {{ x = {}a{} }}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn brackets_count_up_to_the_limit() {
        // The map block is one level.
        assert_eq!(too_deep(&nested("coalesce(", ")", MAX_NESTING - 1)), None);
        let text = nested("coalesce(", ")", MAX_NESTING);
        let span = too_deep(&text).unwrap();
        assert_eq!(&text[span.start..span.end], "(");
        assert_eq!(text[..span.start].matches('(').count(), MAX_NESTING - 1);
    }

    #[test]
    fn case_subjects_count_before_their_brace() {
        let deep = format!("map {{ x = {}a{} }}", "case ".repeat(80), " {}".repeat(80));
        let span = too_deep(&deep).unwrap();
        assert_eq!(&deep[span.start..span.end], "case");
        let arms = "case a { \"x\" => ".repeat(30) + "1" + &" }".repeat(30);
        assert_eq!(too_deep(&format!("map {{ x = {arms} }}")), None);
    }

    #[test]
    fn strings_comments_and_fields_named_case_do_not_count() {
        let brackets = "(".repeat(200);
        let text = format!(
            "map {{ x = \"{brackets}\" # {brackets}\n // {brackets}\n y = \"\"\"{brackets}\"\"\" }}"
        );
        assert_eq!(too_deep(&text), None);
        let fields = "case = case : int\n z = coalesce(case, b.case)\n".repeat(100);
        assert_eq!(too_deep(&format!("map {{ {fields} }}")), None);
    }
}
