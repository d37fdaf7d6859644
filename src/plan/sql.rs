//! Raw SQL a spec hands qsync (`sql("NOW()")`, the target's `sql """..."""` head) is pasted
//! into the statements the sink sends as text, next to values qsync encodes from vendor
//! data. So such a fragment must stay one piece of one statement: no `;` that would end it
//! (the MySQL driver always asks for multi-statement support, see `sink/connect.rs`), and
//! no open quote or line comment that would swallow the encoded values after it and turn
//! vendor text into SQL.

/// What makes a fragment more than one piece of one statement, at a byte offset of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlFault {
    /// A `;` outside quotes and comments: it would end the statement.
    Semicolon(usize),
    /// A quote (`'`, `"` or `` ` ``) or `/*` comment that is never closed.
    Unclosed(usize, &'static str),
    /// A `--` or `#` comment: it would hide the rest of the line qsync writes after it.
    LineComment(usize),
}

impl SqlFault {
    /// The byte offset in the fragment.
    pub fn offset(self) -> usize {
        match self {
            SqlFault::Semicolon(at) | SqlFault::Unclosed(at, _) | SqlFault::LineComment(at) => at,
        }
    }
}

impl std::fmt::Display for SqlFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SqlFault::Semicolon(_) => f.write_str("`;` would end the statement"),
            SqlFault::Unclosed(_, what) => write!(f, "{what} is never closed"),
            SqlFault::LineComment(_) => {
                f.write_str("a line comment would hide the rest of the statement")
            }
        }
    }
}

/// The first fault of a raw SQL fragment, or `None` when it is one piece of one statement.
///
/// The server's `sql_mode` decides whether a backslash escapes a quote
/// (`NO_BACKSLASH_ESCAPES`), and qsync does not know it, so the fragment is read both ways
/// and must be safe under each. Executable comments (`/*! ... */`, `/*M! ... */`) are code
/// to the server, so their content is read as code.
pub fn sql_fault(text: &str) -> Option<SqlFault> {
    let with = scan(text, true);
    let without = scan(text, false);
    match (with, without) {
        (Some(a), Some(b)) => Some(if a.offset() <= b.offset() { a } else { b }),
        (a, b) => a.or(b),
    }
}

fn scan(text: &str, backslash_escapes: bool) -> Option<SqlFault> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b';' => return Some(SqlFault::Semicolon(i)),
            quote @ (b'\'' | b'"' | b'`') => {
                let start = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            let what = match quote {
                                b'\'' => "the quote `'`",
                                b'"' => "the quote `\"`",
                                _ => "the quote `` ` ``",
                            };
                            return Some(SqlFault::Unclosed(start, what));
                        }
                        Some(b'\\') if backslash_escapes && quote != b'`' => i += 2,
                        // A doubled quote is the quote itself.
                        Some(&b) if b == quote && bytes.get(i + 1) == Some(&quote) => i += 2,
                        Some(&b) if b == quote => break,
                        Some(_) => i += 1,
                    }
                }
            }
            b'#' => return Some(SqlFault::LineComment(i)),
            b'-' if bytes.get(i + 1) == Some(&b'-')
                && bytes.get(i + 2).is_none_or(u8::is_ascii_whitespace) =>
            {
                return Some(SqlFault::LineComment(i));
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let rest = &text[i + 2..];
                if rest.starts_with('!') || rest.starts_with("M!") {
                    // Executable comment: its content is code; the closing `*/` is harmless.
                    i += 2;
                    continue;
                }
                match rest.find("*/") {
                    Some(end) => i += 2 + end + 1,
                    None => return Some(SqlFault::Unclosed(i, "the comment `/*`")),
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_expression_passes() {
        for ok in [
            "NOW()",
            "DATE_FORMAT(DATE_ADD(NOW(), INTERVAL -10 SECOND), '%Y-%m-%d 00:00:00')",
            "CONCAT('a;b', \"c;d\", `e;f`)",
            "'it''s; fine'",
            "1 /* a; comment */ + 2",
            "1 - -2",
            "REPLACE INTO {{ table }} ({{ columns }}) VALUES",
        ] {
            assert_eq!(sql_fault(ok), None, "{ok}");
        }
    }

    #[test]
    fn more_than_one_piece_is_a_fault() {
        let cases = [
            ("1; DROP TABLE victim", SqlFault::Semicolon(1)),
            ("1;", SqlFault::Semicolon(1)),
            ("'a", SqlFault::Unclosed(0, "the quote `'`")),
            ("1 /* open", SqlFault::Unclosed(2, "the comment `/*`")),
            ("1 -- rest", SqlFault::LineComment(2)),
            ("1 # rest", SqlFault::LineComment(2)),
            ("1 /*! ; DROP TABLE victim */", SqlFault::Semicolon(6)),
            ("1 /*M!100000 ; */", SqlFault::Semicolon(13)),
        ];
        for (text, fault) in cases {
            assert_eq!(sql_fault(text), Some(fault), "{text}");
        }
    }

    #[test]
    fn backslashes_are_read_both_ways() {
        // With backslash escapes this is one string; under NO_BACKSLASH_ESCAPES the string
        // ends at `\'` and the DROP runs.
        let text = r"'\'; DROP TABLE victim; -- '";
        assert_eq!(sql_fault(text), Some(SqlFault::Semicolon(3)));
        // And the other way round: `'\\'` is a backslash in both readings... but `'a\'` is
        // open with escapes.
        assert!(matches!(sql_fault(r"'a\'"), Some(SqlFault::Unclosed(0, _))));
        assert_eq!(sql_fault(r"'\\'"), None);
    }
}
