//! Which server a sink writes to (MariaDB or MySQL, and its version) and the SQL that
//! differs between them: how `ON DUPLICATE KEY UPDATE` names the row being inserted.
//!
//! MySQL deprecated `VALUES(col)` in `ON DUPLICATE KEY UPDATE` in 8.0.20 (it warns, and a
//! later release drops it) in favour of a row alias, `INSERT ... VALUES (...) AS new ON
//! DUPLICATE KEY UPDATE c = new.c`, which exists since 8.0.19. MariaDB has no row alias
//! (a syntax error on 10.x and 11.x) and keeps `VALUES(col)`. So the sink asks the server
//! once (`SELECT VERSION()`, on the probe connection) and every statement it builds follows
//! the answer; `qsync plan`, which connects to nothing, shows the `VALUES()` form.
//!
//! Owns the version text's reading and the choice; the statements themselves are built in
//! `sql` (target tables) and `store` (state tables) from [`UpsertSyntax::update_clause`].

use std::fmt;

/// The server's family, from its version text (`10.11.6-MariaDB-0+deb12u1`, `8.0.36`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// MariaDB: the version text contains `MariaDB`.
    MariaDb,
    /// Oracle MySQL and the servers that answer like it (Percona, Aliyun RDS and PolarDB,
    /// Tencent CDB, TiDB, which reports the MySQL version it mimics).
    Mysql,
}

/// What the sink learned about its server, once per sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// MariaDB or MySQL.
    pub flavor: Flavor,
    /// Major, minor, patch; `(0, 0, 0)` when the text starts with no version.
    pub version: (u16, u16, u16),
    /// `SELECT VERSION()` as the server answered it.
    pub text: String,
}

/// The oldest MySQL with the row alias.
const ROW_ALIAS_SINCE: (u16, u16, u16) = (8, 0, 19);

/// The row alias qsync uses: `_qsync_` like its tables, so it never meets a user's table or
/// column name (a row alias equal to the table's name is an error).
const ROW_ALIAS: &str = "`_qsync_new`";

impl ServerVersion {
    /// Reads `SELECT VERSION()`'s answer. Never fails: a version text qsync cannot read is
    /// `(0, 0, 0)`, which gets the `VALUES()` form every server of both families before
    /// MySQL 8.4 accepts.
    pub fn parse(text: &str) -> ServerVersion {
        let flavor = if text.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::Mysql
        };
        // MariaDB before 11 may prefix `5.5.5-` (a replication workaround) in the handshake;
        // `VERSION()` does not, but a proxy might pass the handshake's text on.
        let text_after_prefix = match flavor {
            Flavor::MariaDb => text.strip_prefix("5.5.5-").unwrap_or(text),
            Flavor::Mysql => text,
        };
        let mut parts = text_after_prefix
            .split(|c: char| !c.is_ascii_digit())
            .take(3)
            .map(|part| part.parse::<u16>().unwrap_or(0));
        let mut next = || parts.next().unwrap_or(0);
        let version = (next(), next(), next());
        ServerVersion {
            flavor,
            version,
            text: text.to_owned(),
        }
    }

    /// How upserts name the inserted row on this server: the row alias on MySQL 8.0.19 and
    /// later, `VALUES(col)` elsewhere.
    pub fn upsert_syntax(&self) -> UpsertSyntax {
        match self.flavor {
            Flavor::Mysql if self.version >= ROW_ALIAS_SINCE => UpsertSyntax::RowAlias,
            Flavor::Mysql | Flavor::MariaDb => UpsertSyntax::Values,
        }
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor, patch) = self.version;
        let family = match self.flavor {
            Flavor::MariaDb => "MariaDB",
            Flavor::Mysql => "MySQL",
        };
        write!(f, "{family} {major}.{minor}.{patch}")
    }
}

/// How `ON DUPLICATE KEY UPDATE` refers to the row being inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpsertSyntax {
    /// `c = VALUES(c)`: MariaDB, and MySQL before 8.0.19 (and `qsync plan`).
    #[default]
    Values,
    /// `... AS _qsync_new ON DUPLICATE KEY UPDATE c = _qsync_new.c`: MySQL 8.0.19 and later.
    RowAlias,
}

impl UpsertSyntax {
    /// What follows the rows of an `INSERT ... VALUES` (or the `FROM` table of an `INSERT
    /// ... SELECT`, see `from_alias`) so that each of `columns` (quoted) takes the inserted
    /// value: ` ON DUPLICATE KEY UPDATE ...`, with ` AS _qsync_new` before it for the row
    /// alias.
    pub(in crate::sink) fn update_clause(self, columns: &[&str]) -> String {
        let updates: Vec<String> = columns
            .iter()
            .map(|c| match self {
                UpsertSyntax::Values => format!("{c} = VALUES({c})"),
                UpsertSyntax::RowAlias => format!("{c} = {ROW_ALIAS}.{c}"),
            })
            .collect();
        let alias = match self {
            UpsertSyntax::Values => String::new(),
            UpsertSyntax::RowAlias => format!(" AS {ROW_ALIAS}"),
        };
        format!("{alias} ON DUPLICATE KEY UPDATE {}", updates.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_the_syntax_they_get() {
        let examples = [
            (
                "10.11.6-MariaDB-0+deb12u1",
                Flavor::MariaDb,
                (10, 11, 6),
                UpsertSyntax::Values,
            ),
            (
                "5.5.5-10.6.16-MariaDB-log",
                Flavor::MariaDb,
                (10, 6, 16),
                UpsertSyntax::Values,
            ),
            (
                "11.4.2-MariaDB",
                Flavor::MariaDb,
                (11, 4, 2),
                UpsertSyntax::Values,
            ),
            (
                "5.7.44-log",
                Flavor::Mysql,
                (5, 7, 44),
                UpsertSyntax::Values,
            ),
            ("8.0.18", Flavor::Mysql, (8, 0, 18), UpsertSyntax::Values),
            ("8.0.19", Flavor::Mysql, (8, 0, 19), UpsertSyntax::RowAlias),
            (
                "8.0.36-28",
                Flavor::Mysql,
                (8, 0, 36),
                UpsertSyntax::RowAlias,
            ),
            (
                "8.4.0-commercial",
                Flavor::Mysql,
                (8, 4, 0),
                UpsertSyntax::RowAlias,
            ),
            ("9.1.0", Flavor::Mysql, (9, 1, 0), UpsertSyntax::RowAlias),
            // TiDB reports the MySQL it mimics, before the row alias.
            (
                "8.0.11-TiDB-v7.5.0",
                Flavor::Mysql,
                (8, 0, 11),
                UpsertSyntax::Values,
            ),
            ("", Flavor::Mysql, (0, 0, 0), UpsertSyntax::Values),
            ("garbage", Flavor::Mysql, (0, 0, 0), UpsertSyntax::Values),
            ("8", Flavor::Mysql, (8, 0, 0), UpsertSyntax::Values),
        ];
        for (text, flavor, version, syntax) in examples {
            let server = ServerVersion::parse(text);
            assert_eq!(
                (server.flavor, server.version, server.upsert_syntax()),
                (flavor, version, syntax),
                "{text}"
            );
            assert_eq!(server.text, text);
        }
        assert_eq!(ServerVersion::parse("8.0.36").to_string(), "MySQL 8.0.36");
        assert_eq!(
            ServerVersion::parse("10.11.6-MariaDB").to_string(),
            "MariaDB 10.11.6"
        );
    }

    #[test]
    fn update_clause_per_syntax() {
        let columns = ["`a`", "`b`"];
        assert_eq!(
            UpsertSyntax::Values.update_clause(&columns),
            " ON DUPLICATE KEY UPDATE `a` = VALUES(`a`), `b` = VALUES(`b`)"
        );
        assert_eq!(
            UpsertSyntax::RowAlias.update_clause(&columns),
            " AS `_qsync_new` ON DUPLICATE KEY UPDATE `a` = `_qsync_new`.`a`, \
             `b` = `_qsync_new`.`b`"
        );
    }
}
