//! Spec text → AST with spans. Owns the pest grammar and turning pest errors into our own
//! diagnostic; nothing from pest leaves this module. Meaning is checked in `check`.

pub mod ast;
mod depth;
mod grammar;
mod lower;
pub mod span;

use miette::{Diagnostic, NamedSource, SourceSpan};
use pest::Parser;

pub use ast::Spec;
pub use depth::MAX_NESTING;
pub use span::{Span, Spanned};

use grammar::{QsyncParser, Rule};

/// The text could not be parsed.
///
/// ```text
/// source jushuitan "x" { records }      # `records` needs a path: qsync::syntax::unexpected
/// map { x = coalesce(coalesce(...       # 65 levels deep: qsync::syntax::too_deep
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// [`UNEXPECTED`] or [`TOO_DEEP`].
    pub code: &'static str,
    pub message: String,
    pub help: String,
    pub span: SourceSpan,
    pub label: String,
}

/// The code of a text pest cannot parse.
pub const UNEXPECTED: &str = "qsync::syntax::unexpected";
/// The code of a text nested deeper than [`MAX_NESTING`].
pub const TOO_DEEP: &str = "qsync::syntax::too_deep";

// By hand rather than derived: the code differs between the two kinds.
impl Diagnostic for SyntaxError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(&self.help))
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let label = miette::LabeledSpan::new_with_span(Some(self.label.clone()), self.span);
        Some(Box::new(std::iter::once(label)))
    }
}

/// Parses a whole spec.
///
/// Errors: [`TOO_DEEP`] when the text nests deeper than [`MAX_NESTING`] (checked before
/// parsing, so the answer is the same on every thread), else [`UNEXPECTED`] where pest stops.
pub fn parse(text: &str) -> Result<Spec, SyntaxError> {
    if let Some(at) = depth::too_deep(text) {
        return Err(SyntaxError {
            code: TOO_DEEP,
            message: format!("nesting deeper than {MAX_NESTING} levels"),
            help: format!(
                "brackets, blocks and `case` subjects nest at most {MAX_NESTING} deep; \
                 split the expression into several columns or flatten the request value"
            ),
            span: (at.start, at.end - at.start).into(),
            label: format!("level {} opens here", MAX_NESTING + 1),
        });
    }
    match QsyncParser::parse(Rule::spec, text) {
        Ok(mut pairs) => {
            let spec = pairs
                .next()
                .unwrap_or_else(|| unreachable!("spec rule produced no pair"));
            Ok(lower::lower_spec(spec))
        }
        Err(error) => Err(syntax_error(text, &error)),
    }
}

/// Attaches the file name and text, for reporting a `SyntaxError` on its own.
pub fn named(name: &str, text: &str) -> NamedSource<String> {
    NamedSource::new(name, text.to_owned())
}

fn syntax_error(text: &str, error: &pest::error::Error<Rule>) -> SyntaxError {
    let offset = match error.location {
        pest::error::InputLocation::Pos(pos) => pos,
        pest::error::InputLocation::Span((start, _)) => start,
    };
    let offset = offset.min(text.len());
    let found = found_token(text, offset);
    let span_len = found.as_ref().map_or(0, |f| f.len());
    let expected = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort_unstable();
            names.dedup();
            names
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let found_text = match &found {
        Some(token) => format!("`{token}`"),
        None => "end of file".to_owned(),
    };
    let expected = collapse(expected);
    let expected_text = match expected.as_slice() {
        [] => "something else".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    };
    if found.is_none() {
        if let Some(open) = unclosed_brace(text) {
            return SyntaxError {
                code: UNEXPECTED,
                message: format!("unexpected end of file: {}", block_opened(text, open)),
                help: "add the missing `}` at the end of the block".to_owned(),
                span: (open, 1).into(),
                label: "opened here".to_owned(),
            };
        }
    }
    // A block keyword at the start of a line inside an open block: the block before it
    // lacks its `}` (reporting `target` as unexpected would point at the wrong block).
    let starts_line = text[..offset].trim_end_matches([' ', '\t']).ends_with('\n');
    if let (Some(word), true) = (found.as_deref(), starts_line) {
        if BLOCK_KEYWORDS.contains(&word) {
            if let Some(open) = unclosed_brace(&text[..offset]) {
                let line = text[..offset].matches('\n').count() + 1;
                return SyntaxError {
                    code: UNEXPECTED,
                    message: block_opened(text, open),
                    help: format!("add the missing `}}` before `{word}` on line {line}"),
                    span: (open, 1).into(),
                    label: "opened here".to_owned(),
                };
            }
        }
    }
    if found.as_deref() == Some("\"")
        && !text[offset + 1..]
            .split('\n')
            .next()
            .unwrap_or("")
            .contains('"')
    {
        return SyntaxError {
            code: UNEXPECTED,
            message: "unterminated string".to_owned(),
            help: "close the string with `\"` on the same line, or use \"\"\"...\"\"\" for several lines".to_owned(),
            span: (offset, 1).into(),
            label: "string starts here".to_owned(),
        };
    }
    SyntaxError {
        code: UNEXPECTED,
        message: format!("unexpected {found_text}, expected {expected_text}"),
        help: help_for(&expected, found.as_deref()),
        span: (offset, span_len).into(),
        label: "unexpected here".to_owned(),
    }
}

/// Keywords that start a top-level block.
const BLOCK_KEYWORDS: &[&str] = &["sync", "source", "target", "map"];

/// "the `source` block opened at line 4 is not closed", for the `{` at `open`.
fn block_opened(text: &str, open: usize) -> String {
    let line_start = text[..open].rfind('\n').map_or(0, |i| i + 1);
    let line = text[..open].matches('\n').count() + 1;
    let word = text[line_start..open]
        .split_whitespace()
        .next()
        .filter(|w| BLOCK_KEYWORDS.contains(w) || w.starts_with('@'));
    match word {
        Some(word) => format!("the `{word}` block opened at line {line} is not closed"),
        None => format!("the `{{` opened at line {line} is not closed"),
    }
}

/// The last `{` left open at the end of the text, ignoring strings and comments.
fn unclosed_brace(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => {
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' | '\n' => break,
                        _ => {}
                    }
                }
            }
            '#' => {
                for (_, c) in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '{' => open.push(i),
            '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.pop()
}

/// The word or symbol at `offset`, for the message.
fn found_token(text: &str, offset: usize) -> Option<String> {
    let rest = &text[offset..];
    let first = rest.chars().next()?;
    let token: String = if first.is_alphanumeric() || first == '_' {
        rest.chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    } else {
        first.to_string()
    };
    Some(token)
}

/// Long expectation lists name the construct instead of every keyword.
fn collapse(expected: Vec<&'static str>) -> Vec<&'static str> {
    let source = ["`records <path>`", "`connection <profile entry>`"];
    let directive = ["`@flatten`", "`@paginate`"];
    let top = ["a `map` block", "a `source` block"];
    let mut out: Vec<&'static str> = Vec::new();
    let has = |names: &[&str]| names.iter().all(|n| expected.contains(n));
    if has(&top) {
        return vec!["`sync`, `source`, `target`, `map` or an `@` directive"];
    }
    if has(&source) {
        out.push("a source statement (connection, method, param, query, header, window, records, id, modified, total)");
    }
    if has(&directive) {
        out.push("an `@` directive");
    }
    if out.is_empty() {
        return expected;
    }
    out.extend(
        expected
            .iter()
            .filter(|e| e.starts_with("`}`") || **e == "end of file"),
    );
    out
}

fn help_for(expected: &[&str], found: Option<&str>) -> String {
    if expected.contains(&"a `map` block") && expected.contains(&"a directive such as `@flatten`") {
        return "top-level items are `sync`, `source`, `target`, `map` and `@` directives"
            .to_owned();
    }
    if found == Some("}") || found.is_none() {
        return "check that every `{` has its `}` and every statement is complete".to_owned();
    }
    let wants_duration = expected.iter().any(|e| e.contains("duration"));
    if let (true, Some(token)) = (wants_duration, found) {
        if let Some(help) = duration_help(token) {
            return help;
        }
    }
    if expected.iter().any(|e| e.contains("quoted string")) {
        return "strings are written in double quotes: \"text\"".to_owned();
    }
    "see the language reference in README.md".to_owned()
}

/// `1天` where a duration goes: a number with a unit qsync does not know. Names the unit
/// meant when it is a Chinese one.
fn duration_help(token: &str) -> Option<String> {
    let digits: String = token.chars().take_while(char::is_ascii_digit).collect();
    let unit = &token[digits.len()..];
    if digits.is_empty() || unit.is_empty() {
        return None;
    }
    let units = "500ms, 30s, 5m, 2h, 7d, 1w";
    let ours = match unit {
        "天" | "日" => Some("d"),
        "小时" | "时" | "钟头" => Some("h"),
        "分钟" | "分" => Some("m"),
        "秒" => Some("s"),
        "周" | "星期" => Some("w"),
        _ => None,
    };
    Some(match ours {
        Some(ours) => format!(
            "write `{digits}{ours}`: a duration is a number and one of the units of {units}"
        ),
        None => format!("`{unit}` is not a duration unit: write a number and a unit, e.g. {units}"),
    })
}

/// A human name for each rule, or `None` for rules that never appear in expectations.
/// Exhaustive on purpose: a new grammar rule needs a readable name here.
fn rule_name(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::spec | Rule::EOI => "end of file",
        Rule::item => "`sync`, `source`, `target`, `map` or a directive",
        Rule::sync_decl => "`sync \"<name>\"`",
        Rule::source_block => "a `source` block",
        Rule::source_item => "a source statement",
        Rule::connection_stmt => "`connection <profile entry>`",
        Rule::method_stmt => "`method GET|POST`",
        Rule::param_stmt => "`param <name> = <value>`",
        Rule::param_place => "`param`, `query` or `header`",
        Rule::param_name => "a parameter name",
        Rule::header_char => "a name character",
        Rule::window_stmt => "`window`",
        Rule::window_opt => "a window option",
        Rule::window_key => "`max`, `lag`, `overlap` or `initial`",
        Rule::records_stmt => "`records <path>`",
        Rule::id_stmt => "`id <field>`",
        Rule::modified_stmt => "`modified <field>`",
        Rule::total_stmt => "`total <path>`",
        Rule::value => "a value",
        Rule::object => "an object `{ key: value }`",
        Rule::pair => "`key: value`",
        Rule::array => "an array `[ ... ]`",
        Rule::call_value => "a call such as `json({...})`",
        Rule::directive => "a directive such as `@flatten`",
        Rule::paginate_directive => "`@paginate`",
        Rule::paginate_style => "`page`, `offset`, `cursor` or `keyset`",
        Rule::paginate_opt => "a paginate option",
        Rule::paginate_keyword => "`size`, `per`, `from`, `until` or `max_pages`",
        Rule::size_opt => "`size <n>`",
        Rule::per_opt => "`per <page size param>`",
        Rule::from_opt => "`from <first page | path>`",
        Rule::until_opt => "`until <end rule>`",
        Rule::max_pages_opt => "`max_pages <n>`",
        Rule::end_rule => "an end rule",
        Rule::short_end => "`short`",
        Rule::empty_end => "`empty`",
        Rule::has_next_end => "`has_next <path>`",
        Rule::page_count_end => "`page_count <path>`",
        Rule::total_end => "`total <path>`",
        Rule::rate_directive => "`@rate`",
        Rule::retry_directive => "`@retry`",
        Rule::timeout_directive => "`@timeout`",
        Rule::flatten_directive => "`@flatten`",
        Rule::rename_directive => "`@rename`",
        Rule::split_directive => "`@split`",
        Rule::filter_directive => "`@filter`",
        Rule::filter_test => "a filter test",
        Rule::is_null_test => "`is null`",
        Rule::is_not_null_test => "`is not null`",
        Rule::in_test => "`in [...]`",
        Rule::not_in_test => "`not in [...]`",
        Rule::compare_test => "a comparison",
        Rule::compare_op => "`==`, `!=`, `<`, `<=`, `>` or `>=`",
        Rule::schedule_directive => "`@schedule`",
        Rule::remedy_directive => "`@remedy`",
        Rule::on_error_directive => "`@on_error`",
        Rule::on_duplicate_key_directive => "`@on_duplicate_key`",
        Rule::alert_directive => "`@alert`",
        Rule::unknown_directive | Rule::known_directive => "a directive",
        Rule::rest_of_line => "the rest of the line",
        Rule::target_block => "a `target` block",
        Rule::target_item => "a target statement",
        Rule::mode_stmt => "`mode insert|replace|upsert|ignore`",
        Rule::key_stmt => "`key <column>`",
        Rule::batch_stmt => "`batch <n>`",
        Rule::create_stmt => "`create`",
        Rule::sql_stmt => "`sql \"...\"`",
        Rule::map_block => "a `map` block",
        Rule::mapping => "a mapping `<column> = <expr>`",
        Rule::type_annotation => "a type `: <type>`",
        Rule::type_name => "a type name",
        Rule::expr => "an expression",
        Rule::case_expr => "`case`",
        Rule::case_arm => "a case arm `<value> => <expr>`",
        Rule::wildcard => "`_`",
        Rule::call_expr => "a function call",
        Rule::literal => "a constant",
        Rule::path => "a field path",
        Rule::segment => "a path segment",
        Rule::ident => "a name",
        Rule::ident_char => "a name character",
        Rule::string | Rule::raw_string | Rule::plain_string => "a quoted string",
        Rule::escape => "an escape sequence",
        Rule::number => "a number",
        Rule::integer => "a whole number",
        Rule::boolean => "`true` or `false`",
        Rule::null => "`null`",
        Rule::duration => "a duration such as `7d` or `30s`",
        Rule::rate => "a rate such as `5/s`",
        Rule::rate_spacing => "`by send` or `by answer`",
        Rule::spacing => "`send` or `answer`",
        Rule::WHITESPACE | Rule::COMMENT => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_card_forms_parse_exactly() {
        let spec = parse(
            "sync \"x\"\n@flatten items\nsource jushuitan \"a\" { @paginate page_index size 50 }\nmap { id = \"<as_id>-<items_asi_id>\" }\n",
        )
        .unwrap();
        assert_eq!(spec.directives.len(), 1);
        assert!(matches!(
            &spec.directives[0].node,
            ast::Directive::Flatten { path, alias: None } if path.node == vec!["items".to_owned()]
        ));
        let stmt = &spec.sources[0].statements[0].node;
        let ast::SourceStmt::Directive(ast::Directive::Paginate {
            style,
            param,
            options,
        }) = stmt
        else {
            panic!("expected paginate, got {stmt:?}");
        };
        assert!(style.is_none());
        assert_eq!(param.node, vec!["page_index".to_owned()]);
        assert!(matches!(&options[0].node, ast::PaginateOpt::Size(n) if n.node == "50"));
        let mapping = &spec.maps[0].node[0];
        assert_eq!(mapping.column.node, "id");
        assert!(matches!(
            &mapping.expr.node,
            ast::Expr::Literal(ast::Literal::String { text, .. }) if text == "<as_id>-<items_asi_id>"
        ));
    }

    #[test]
    fn syntax_error_names_expectations() {
        let err = parse("sync \"x\"\nsource jushuitan \"a\" { records }\n").unwrap_err();
        assert_eq!(err.message, "unexpected `}`, expected a field path");
    }

    #[test]
    fn unicode_and_comments() {
        let spec =
            parse("# 注释\nsync \"聚水潭-售后单 -> BI 售后表\" // tail\nmap { 单号 = 售后单号 }")
                .unwrap();
        assert_eq!(spec.syncs[0].node, "聚水潭-售后单 -> BI 售后表");
        assert_eq!(spec.maps[0].node[0].column.node, "单号");
    }

    #[test]
    fn escapes_and_raw_strings() {
        let spec = parse("sync \"a\\\"b\\u{4e2d}\"\ntarget mysql \"t\" { sql \"\"\"REPLACE INTO \"x\" VALUES\"\"\" }").unwrap();
        assert_eq!(spec.syncs[0].node, "a\"b中");
        assert!(matches!(
            &spec.targets[0].statements[0].node,
            ast::TargetStmt::Sql(s) if s.node == "REPLACE INTO \"x\" VALUES"
        ));
    }
}
