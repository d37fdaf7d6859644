//! The target's `main_sql`: an `INSERT`/`REPLACE INTO … VALUES` statement, read for its
//! verb (the write mode), its table, its column list and what each value is bound to.
//!
//! Written by hand because it is not SQL a parser takes: the platform writes heads that
//! stop at `VALUES` (it appends the tuples) and its own placeholders (`<{name: }>`) beside
//! `?` and `:name`. Only this one statement shape is read; anything else is reported.

/// How the statement writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verb {
    Insert,
    InsertIgnore,
    Replace,
    /// `INSERT … ON DUPLICATE KEY UPDATE`
    Upsert,
}

/// What one value of the `VALUES (…)` tuple is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Slot {
    /// `?`: the request field in the same position.
    Positional,
    /// `:name` or `<{name: }>`: the request field `name`.
    Named(String),
    /// Anything else (`NOW()`, `'x'`, `1`): SQL written as is.
    Sql(String),
}

/// A `main_sql` that was understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MainSql {
    pub(crate) verb: Verb,
    /// `lhhy_srm_development` of `` `lhhy_srm_development`.`warehouse` ``.
    pub(crate) database: Option<String>,
    pub(crate) table: String,
    /// The column list; empty when the statement has none.
    pub(crate) columns: Vec<String>,
    /// The first tuple's slots; `None` for a head that stops at `VALUES`.
    pub(crate) slots: Option<Vec<Slot>>,
    /// The text after `ON DUPLICATE KEY UPDATE`, when it is not every column set to its
    /// new value (`c = VALUES(c)`), which `mode upsert` does.
    pub(crate) custom_update: Option<String>,
}

/// Why a `main_sql` was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SqlError {
    /// `UPDATE t SET …`, `DELETE FROM …`, `SELECT …`.
    #[error("`main_sql` starts with `{verb}`, not `INSERT`/`REPLACE INTO … VALUES`")]
    NotInsert { verb: String },
    /// `INSERT INTO t (a) SELECT …`, an unclosed list, no table.
    #[error("`main_sql` is not an `INSERT`/`REPLACE INTO <table> (<columns>) VALUES …`: {reason}")]
    Malformed { reason: String },
}

/// Reads `text`.
pub(crate) fn parse(text: &str) -> Result<MainSql, SqlError> {
    let mut s = Scanner::new(text);
    let malformed = |reason: &str| SqlError::Malformed {
        reason: reason.to_owned(),
    };
    let first = s.word().ok_or(SqlError::NotInsert {
        verb: text.split_whitespace().next().unwrap_or("empty").to_owned(),
    })?;
    let mut verb = match first.to_ascii_uppercase().as_str() {
        "INSERT" => Verb::Insert,
        "REPLACE" => Verb::Replace,
        other => {
            return Err(SqlError::NotInsert {
                verb: other.to_owned(),
            })
        }
    };
    if verb == Verb::Insert && s.keyword("IGNORE") {
        verb = Verb::InsertIgnore;
    }
    s.keyword("INTO");
    let first_name = s
        .name()
        .ok_or_else(|| malformed("no table name after INTO"))?;
    let (database, table) = if s.punct('.') {
        let table = s
            .name()
            .ok_or_else(|| malformed("no table name after the database"))?;
        (Some(first_name), table)
    } else {
        (None, first_name)
    };
    let mut columns = Vec::new();
    if s.punct('(') {
        loop {
            let column = s
                .name()
                .ok_or_else(|| malformed("the column list holds something else than names"))?;
            columns.push(column);
            if s.punct(')') {
                break;
            }
            if !s.punct(',') {
                return Err(malformed("the column list is not closed"));
            }
        }
    }
    if !s.keyword("VALUES") && !s.keyword("VALUE") {
        return Err(malformed("no VALUES after the column list"));
    }
    let slots = if s.punct('(') {
        let inner = s
            .group()
            .ok_or_else(|| malformed("the VALUES tuple is not closed"))?;
        Some(split_top_level(inner).into_iter().map(slot).collect())
    } else {
        None
    };
    // Further tuples of a multi-row example add nothing: the first says the binding.
    while s.punct(',') {
        if !s.punct('(') || s.group().is_none() {
            return Err(malformed("a VALUES tuple is not closed"));
        }
    }
    let mut custom_update = None;
    if s.keyword("ON") {
        if !(s.keyword("DUPLICATE") && s.keyword("KEY") && s.keyword("UPDATE")) {
            return Err(malformed("`ON` is not followed by `DUPLICATE KEY UPDATE`"));
        }
        let rest = s.rest().trim().trim_end_matches(';').trim();
        if !updates_every_column(rest, &columns) {
            custom_update = Some(rest.to_owned());
        }
        verb = Verb::Upsert;
    } else {
        s.punct(';');
        let rest = s.rest().trim();
        if !rest.is_empty() {
            return Err(malformed(&format!(
                "unexpected `{}` after the values",
                rest.chars().take(30).collect::<String>()
            )));
        }
    }
    Ok(MainSql {
        verb,
        database,
        table,
        columns,
        slots,
        custom_update,
    })
}

fn slot(item: &str) -> Slot {
    let item = item.trim();
    if item == "?" {
        return Slot::Positional;
    }
    if let Some(name) = item.strip_prefix(':') {
        if is_name(name) {
            return Slot::Named(name.to_owned());
        }
    }
    if let Some(inner) = item.strip_prefix("<{").and_then(|i| i.strip_suffix("}>")) {
        let name = inner.split(':').next().unwrap_or_default().trim();
        if is_name(name) {
            return Slot::Named(name.to_owned());
        }
    }
    Slot::Sql(item.to_owned())
}

fn is_name(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// Whether `rest` sets every column (and only columns) to its new value: `a = VALUES(a)`
/// or `a = new.a` for each.
fn updates_every_column(rest: &str, columns: &[String]) -> bool {
    let assignments = split_top_level(rest);
    !columns.is_empty()
        && assignments.len() == columns.len()
        && assignments.iter().all(|a| {
            let Some((left, right)) = a.split_once('=') else {
                return false;
            };
            let left = left.trim().trim_matches('`');
            let right: String = right.chars().filter(|c| !c.is_whitespace()).collect();
            let right = right.replace('`', "");
            columns.iter().any(|c| c == left)
                && (right.eq_ignore_ascii_case(&format!("VALUES({left})"))
                    || right == format!("new.{left}"))
        })
}

/// Splits at commas outside parentheses, braces and quotes; blank text has no parts.
fn split_top_level(text: &str) -> Vec<&str> {
    let parts = split_outside(text, ',', &['\'', '"', '`'], &['(', '{'], &[')', '}']);
    if parts.len() == 1 && parts[0].trim().is_empty() {
        return Vec::new();
    }
    parts
}

/// Splits `text` at each `separator` that stands outside quotes (any of `quotes`, closed by
/// the same character) and outside `open` ... `close` nesting. Always at least one part.
pub(super) fn split_outside<'t>(
    text: &'t str,
    separator: char,
    quotes: &[char],
    open: &[char],
    close: &[char],
) -> Vec<&'t str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0i32, None::<char>, 0);
    for (i, c) in text.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if quotes.contains(&c) => quote = Some(c),
            None if open.contains(&c) => depth += 1,
            None if close.contains(&c) => depth -= 1,
            None if c == separator && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + c.len_utf8();
            }
            None => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// A cursor over the statement that skips whitespace and SQL comments.
struct Scanner<'t> {
    text: &'t str,
    at: usize,
}

impl<'t> Scanner<'t> {
    fn new(text: &'t str) -> Scanner<'t> {
        Scanner { text, at: 0 }
    }

    fn rest(&self) -> &'t str {
        &self.text[self.at..]
    }

    fn skip(&mut self) {
        loop {
            let rest = self.rest();
            let trimmed = rest.trim_start();
            self.at += rest.len() - trimmed.len();
            if trimmed.starts_with("--") || trimmed.starts_with('#') {
                self.at += trimmed.find('\n').unwrap_or(trimmed.len());
            } else if let Some(body) = trimmed.strip_prefix("/*") {
                self.at += 2 + body.find("*/").map_or(body.len(), |end| end + 2);
            } else {
                return;
            }
        }
    }

    /// A bare word (keyword or name).
    fn word(&mut self) -> Option<&'t str> {
        self.skip();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(rest.len());
        (len > 0).then(|| {
            self.at += len;
            &rest[..len]
        })
    }

    /// `keyword` (any case), consumed only when it is next.
    fn keyword(&mut self, keyword: &str) -> bool {
        let at = self.at;
        match self.word() {
            Some(w) if w.eq_ignore_ascii_case(keyword) => true,
            _ => {
                self.at = at;
                false
            }
        }
    }

    /// A name, bare or in backticks.
    fn name(&mut self) -> Option<String> {
        self.skip();
        if let Some(body) = self.rest().strip_prefix('`') {
            let end = body.find('`')?;
            let name = body[..end].to_owned();
            self.at += end + 2;
            return Some(name);
        }
        let at = self.at;
        match self.word() {
            Some(w) if !w.eq_ignore_ascii_case("VALUES") => Some(w.to_owned()),
            _ => {
                self.at = at;
                None
            }
        }
    }

    fn punct(&mut self, c: char) -> bool {
        self.skip();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// The text up to the `)` that closes an opened `(`, consumed with it.
    fn group(&mut self) -> Option<&'t str> {
        let rest = self.rest();
        let (mut depth, mut quote) = (1i32, None::<char>);
        for (i, c) in rest.char_indices() {
            match (quote, c) {
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"' | '`') => quote = Some(c),
                (None, '(') => depth += 1,
                (None, ')') => {
                    depth -= 1;
                    if depth == 0 {
                        self.at += i + 1;
                        return Some(&rest[..i]);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_head_that_stops_at_values() {
        let sql =
            parse("REPLACE INTO aftersales (refund_id, src_tids ,refund_no ) VALUES").unwrap();
        assert_eq!(sql.verb, Verb::Replace);
        assert_eq!(sql.table, "aftersales");
        assert_eq!(sql.columns, names(&["refund_id", "src_tids", "refund_no"]));
        assert_eq!(sql.slots, None);
    }

    #[test]
    fn platform_placeholders_and_a_database() {
        let sql =
            parse("INSERT INTO `db1`.`warehouse`\n(`a`,\n`b`)\nVALUES\n(\n<{a: }>,\n<{b: 0}>\n);")
                .unwrap();
        assert_eq!(sql.verb, Verb::Insert);
        assert_eq!(sql.database.as_deref(), Some("db1"));
        assert_eq!(sql.table, "warehouse");
        assert_eq!(
            sql.slots,
            Some(vec![Slot::Named("a".into()), Slot::Named("b".into())])
        );
    }

    #[test]
    fn colon_names_question_marks_and_sql_values() {
        let sql =
            parse("INSERT INTO `t` (`a`, `b`, `c`) VALUES (:a, ?, DATE_FORMAT(NOW(), '%Y,%m'))")
                .unwrap();
        assert_eq!(
            sql.slots,
            Some(vec![
                Slot::Named("a".into()),
                Slot::Positional,
                Slot::Sql("DATE_FORMAT(NOW(), '%Y,%m')".into())
            ])
        );
    }

    #[test]
    fn verbs_give_the_mode() {
        let verb = |s: &str| parse(s).map(|m| m.verb);
        assert_eq!(
            verb("insert ignore into t (a) values (?)"),
            Ok(Verb::InsertIgnore)
        );
        assert_eq!(
            verb("INSERT INTO t (a, b) VALUES (?, ?) ON DUPLICATE KEY UPDATE a = VALUES(a), b=VALUES(`b`)"),
            Ok(Verb::Upsert)
        );
        let custom =
            parse("INSERT INTO t (a) VALUES (?) ON DUPLICATE KEY UPDATE n = n + 1").unwrap();
        assert_eq!(custom.custom_update.as_deref(), Some("n = n + 1"));
        assert_eq!(
            verb("UPDATE t SET a = 1"),
            Err(SqlError::NotInsert {
                verb: "UPDATE".into()
            })
        );
        assert!(matches!(
            verb("INSERT INTO t (a) SELECT a FROM u"),
            Err(SqlError::Malformed { .. })
        ));
        assert!(matches!(
            verb("INSERT INTO t (a VALUES (?)"),
            Err(SqlError::Malformed { .. })
        ));
        assert!(matches!(verb(""), Err(SqlError::NotInsert { .. })));
    }
}
