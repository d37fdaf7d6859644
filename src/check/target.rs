//! The `target` block: table, connection, write mode, key, batch size, custom SQL.

use super::{codes, vendor, CheckDiagnostic, Checker};
use crate::plan::{ColumnPlan, TargetPlan, WriteMode};
use crate::syntax::ast::{Target, TargetStmt};
use crate::syntax::{Span, Spanned};
use crate::template;

const MODES: &[&str] = &["insert", "replace", "upsert", "ignore"];

impl Checker<'_> {
    pub(crate) fn check_target(
        &mut self,
        target: &Spanned<Target>,
        columns: Option<&[(ColumnPlan, Span)]>,
        rereads: &str,
    ) -> Option<TargetPlan> {
        let mut ok = true;
        if target.kind.node != "mysql" {
            self.report(
                CheckDiagnostic::error(
                    codes::UNKNOWN_TARGET_KIND,
                    target.kind.span,
                    format!("unknown target `{}`", target.kind.node),
                )
                .label("unknown target")
                .help("qsync writes to MySQL (and MariaDB): target mysql \"<table>\" { ... }"),
            );
            ok = false;
        }
        let table: Vec<String> = target.table.node.split('.').map(str::to_owned).collect();
        if table.len() > 2 {
            self.report(
                CheckDiagnostic::error(
                    codes::BAD_IDENTIFIER,
                    target.table.span,
                    format!("`{}` is not a table name", target.table.node),
                )
                .label("too many dots")
                .help("write `table` or `database.table`"),
            );
            ok = false;
        }
        for part in &table {
            ok &= self.check_identifier(&Spanned::new(part.clone(), target.table.span), "table");
        }

        let mut connection = None;
        let mut mode: Option<(WriteMode, Span)> = None;
        let mut key: Option<Vec<Spanned<String>>> = None;
        let mut batch = None;
        let mut create = false;
        let mut sql = None;
        let mut seen: Vec<(&str, Span)> = Vec::new();
        for stmt in &target.statements {
            let name = match &stmt.node {
                TargetStmt::Connection(_) => "connection",
                TargetStmt::Mode(_) => "mode",
                TargetStmt::Key(_) => "key",
                TargetStmt::Batch(_) => "batch",
                TargetStmt::Create => "create",
                TargetStmt::Sql(_) => "sql",
            };
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == name) {
                let first = *first;
                self.report(
                    CheckDiagnostic::error(
                        codes::DUPLICATE_STATEMENT,
                        Span::new(stmt.span.start, stmt.span.start + name.len()),
                        format!("`{name}` is given twice in the target"),
                    )
                    .label("second one")
                    .help(format!(
                        "keep one `{name}`; the first is on line {}",
                        self.line(first)
                    )),
                );
                ok = false;
                continue;
            }
            seen.push((name, stmt.span));
            match &stmt.node {
                TargetStmt::Connection(c) => {
                    self.check_profile_entry(c, None);
                    connection = Some(c.node.clone());
                }
                TargetStmt::Mode(m) => match m.node.as_str() {
                    "insert" => mode = Some((WriteMode::Insert, m.span)),
                    "replace" => mode = Some((WriteMode::Replace, m.span)),
                    "upsert" => mode = Some((WriteMode::Upsert, m.span)),
                    "ignore" => mode = Some((WriteMode::Ignore, m.span)),
                    other => {
                        let help = match vendor::closest(other, MODES) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "modes: insert, replace, upsert, ignore".to_owned(),
                        };
                        self.report(
                            CheckDiagnostic::error(
                                codes::UNKNOWN_MODE,
                                m.span,
                                format!("unknown write mode `{other}`"),
                            )
                            .label("unknown mode")
                            .help(help),
                        );
                        ok = false;
                    }
                },
                TargetStmt::Key(k) => key = Some(k.clone()),
                TargetStmt::Batch(b) => {
                    batch = self.check_count(b, "the batch size", 100_000);
                    ok &= batch.is_some();
                }
                TargetStmt::Create => create = true,
                TargetStmt::Sql(s) => {
                    let problems = template::validate(
                        &s.node,
                        template::SQL_VARIABLES,
                        false,
                        template::World::Sql,
                    );
                    ok &= self
                        .report_template_problems(
                            problems,
                            &s.node,
                            s.span,
                            template::SQL_VARIABLES,
                        )
                        .is_some();
                    ok &= self.expect_one_sql_piece(
                        &s.node,
                        s.span,
                        "the `sql` head starts one statement",
                    );
                    sql = Some(s.node.clone());
                }
            }
        }

        if let (Some(keys), Some(columns)) = (&key, columns) {
            for k in keys {
                match columns.iter().find(|(c, _)| c.name == k.node) {
                    None => {
                        let names: Vec<&str> =
                            columns.iter().map(|(c, _)| c.name.as_str()).collect();
                        let help = match vendor::closest(&k.node, &names) {
                            Some(s) => format!("did you mean `{s}`?"),
                            None => "the key must be one of the mapped columns".to_owned(),
                        };
                        self.report(
                            CheckDiagnostic::error(
                                codes::KEY_NOT_MAPPED,
                                k.span,
                                format!("key column `{}` is not in the map", k.node),
                            )
                            .label("not mapped")
                            .help(help),
                        );
                        ok = false;
                    }
                    Some((c, _)) if !c.is_bound() => {
                        self.report(
                            CheckDiagnostic::error(
                                codes::SQL_KEY_COLUMN,
                                k.span,
                                format!("key column `{}` is computed by raw SQL", k.node),
                            )
                            .label("not a record value")
                            .help("a key must come from the record so re-runs hit the same row"),
                        );
                        ok = false;
                    }
                    Some(_) => {}
                }
            }
        }
        let has_key = key.as_ref().is_some_and(|k| !k.is_empty());
        if let Some((m @ (WriteMode::Upsert | WriteMode::Replace), span)) = mode {
            if !has_key {
                self.report(
                    CheckDiagnostic::error(
                        codes::MODE_NEEDS_KEY,
                        span,
                        format!("`mode {}` needs a `key`", m.keyword()),
                    )
                    .label("no key")
                    .help("name the unique column(s) rows are matched on, e.g. `key id`; without one re-runs duplicate rows"),
                );
                ok = false;
            }
        }
        let inserting = mode.map_or(!has_key, |(m, _)| m == WriteMode::Insert);
        if inserting {
            let span = mode.map_or(target.kind.span, |(_, span)| span);
            let diagnostic = if has_key {
                CheckDiagnostic::warning(
                    codes::INSERT_REREADS,
                    span,
                    "`mode insert` fails a window on the first record read twice",
                )
                .label("not idempotent")
                .help(format!("{rereads}: use `mode upsert` or `mode replace` (the key makes re-reads harmless), or `mode ignore` to keep the first version"))
            } else {
                CheckDiagnostic::warning(
                    codes::INSERT_REREADS,
                    span,
                    "without a key, every record read twice is written twice",
                )
                .label("`insert`, no key")
                .help(format!(
                    "{rereads}: add `key` with the record's unique column(s) and `mode upsert`"
                ))
            };
            self.report(diagnostic);
        }
        let Some(connection) = connection else {
            self.report(
                CheckDiagnostic::error(
                    codes::MISSING_CONNECTION,
                    target.kind.span,
                    "the target names no connection",
                )
                .label("which database?")
                .help("add `connection <name>` naming a `kind: mysql` entry of the profile"),
            );
            return None;
        };
        ok.then(|| TargetPlan {
            connection,
            table,
            mode: mode.map_or(
                if has_key {
                    WriteMode::Replace
                } else {
                    WriteMode::Insert
                },
                |(m, _)| m,
            ),
            key: key
                .unwrap_or_default()
                .into_iter()
                .map(|k| k.node)
                .collect(),
            batch: batch.and_then(|b| usize::try_from(b).ok()).unwrap_or(1000),
            create,
            sql,
        })
    }
}
