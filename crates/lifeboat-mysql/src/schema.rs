//! Reading what a server holds: databases, tables and their columns, views,
//! routines, triggers, events, sequences, users. Everything is read through
//! `information_schema` and `SHOW CREATE …`, so the statements replayed on
//! restore are the server's own.

use serde::{Deserialize, Serialize};

use crate::error::{MysqlError, Result};
use crate::server::{Session, ident, literal, text};

/// Databases that belong to the server, never to the user.
pub const SYSTEM_DATABASES: [&str; 4] =
    ["mysql", "information_schema", "performance_schema", "sys"];

/// How a column's values are written in a dump and read back on load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// The server's text form, as is.
    Text,
    /// FLOAT: dumped as `CAST(c AS DOUBLE)` (the text form of a FLOAT has
    /// only 6 digits and would lose bits); loaded directly.
    FloatAsDouble,
    /// BIT: dumped as the unsigned integer `c + 0`, loaded through a variable.
    BitAsUint,
    /// Spatial types: dumped as `HEX(c)` of the internal form, loaded with `UNHEX`.
    Hex,
}

/// A column of a table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Column {
    /// Name.
    pub name: String,
    /// `COLUMN_TYPE`, e.g. `decimal(10,2) unsigned`.
    pub column_type: String,
    /// Generated columns are neither dumped nor loaded.
    #[serde(default)]
    pub generated: bool,
    /// How values are encoded.
    pub encoding: Encoding,
}

/// A base table (or a MariaDB sequence).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableInfo {
    /// Name.
    pub name: String,
    /// `table` or `sequence`.
    pub kind: String,
    /// Storage engine.
    pub engine: String,
    /// `SHOW CREATE TABLE` (or `SHOW CREATE SEQUENCE`).
    pub create: String,
    /// Columns in order.
    pub columns: Vec<Column>,
    /// Primary key columns in order (empty: no primary key).
    pub primary_key: Vec<String>,
    /// Whether the primary key is one integer column (range-chunkable).
    pub int_key: bool,
    /// The engine's row estimate at backup time.
    pub rows_estimate: u64,
    /// The engine's data size estimate at backup time.
    pub data_length: u64,
    /// For sequences: the next value not yet cached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_next: Option<String>,
}

impl TableInfo {
    /// Columns that carry data (not generated).
    pub fn data_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| !c.generated)
    }

    /// The select list of a dump.
    pub fn select_list(&self) -> String {
        let v: Vec<String> = self
            .data_columns()
            .map(|c| {
                let n = ident(&c.name);
                match c.encoding {
                    Encoding::Text => n,
                    Encoding::FloatAsDouble => format!("CAST({n} AS DOUBLE)"),
                    Encoding::BitAsUint => format!("{n} + 0"),
                    Encoding::Hex => format!("HEX({n})"),
                }
            })
            .collect();
        v.join(", ")
    }

    /// The column list and SET clause of a `LOAD DATA`.
    pub fn load_list(&self) -> (String, String) {
        let mut cols = Vec::new();
        let mut sets = Vec::new();
        for (i, c) in self.data_columns().enumerate() {
            let n = ident(&c.name);
            match c.encoding {
                Encoding::Text | Encoding::FloatAsDouble => cols.push(n),
                Encoding::BitAsUint => {
                    cols.push(format!("@lb{i}"));
                    sets.push(format!("{n} = CAST(@lb{i} AS UNSIGNED)"));
                }
                Encoding::Hex => {
                    cols.push(format!("@lb{i}"));
                    sets.push(format!("{n} = UNHEX(@lb{i})"));
                }
            }
        }
        let set = if sets.is_empty() {
            String::new()
        } else {
            format!(" SET {}", sets.join(", "))
        };
        (cols.join(", "), set)
    }
}

/// A view, routine, trigger or event: replayed after the data.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Object {
    /// `view`, `procedure`, `function`, `trigger` or `event`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// The `CREATE …` statement.
    pub create: String,
    /// The `sql_mode` it was created with (empty for views).
    #[serde(default)]
    pub sql_mode: String,
    /// Time zone (events).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub time_zone: String,
    /// `character_set_client` it was created with (string literals in the
    /// body are in this character set).
    #[serde(default)]
    pub charset_client: String,
    /// `collation_connection` it was created with.
    #[serde(default)]
    pub collation_connection: String,
}

/// A user database.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// Name.
    pub name: String,
    /// Default character set.
    pub charset: String,
    /// Default collation.
    pub collation: String,
    /// Base tables and sequences.
    pub tables: Vec<TableInfo>,
    /// Views, routines, triggers, events.
    pub objects: Vec<Object>,
}

/// An account and its grants.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub user: String,
    /// Host part.
    pub host: String,
    /// `SHOW CREATE USER`.
    pub create: String,
    /// `SHOW GRANTS FOR`.
    pub grants: Vec<String>,
}

fn encoding_of(data_type: &str) -> Encoding {
    match data_type {
        "float" => Encoding::FloatAsDouble,
        "bit" => Encoding::BitAsUint,
        "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
        | "multipolygon" | "geometrycollection" => Encoding::Hex,
        _ => Encoding::Text,
    }
}

fn is_int(column_type: &str) -> bool {
    let t = column_type.to_ascii_lowercase();
    ["tinyint", "smallint", "mediumint", "int", "bigint"]
        .iter()
        .any(|p| t.starts_with(p))
}

/// Names of the user databases, or checks that the asked ones exist.
pub fn database_names(s: &mut Session, wanted: Option<&[String]>) -> Result<Vec<String>> {
    let all = s.column(
        "list databases",
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME",
    )?;
    match wanted {
        None => Ok(all
            .into_iter()
            .filter(|d| !SYSTEM_DATABASES.contains(&d.as_str()))
            .collect()),
        Some(w) => {
            for d in w {
                if !all.contains(d) {
                    return Err(MysqlError::Usage(format!(
                        "database `{d}` does not exist on {} (it has: {})",
                        s.server,
                        all.iter()
                            .filter(|d| !SYSTEM_DATABASES.contains(&d.as_str()))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            Ok(w.to_vec())
        }
    }
}

/// Columns by table, and the (table, column) pairs of integer type.
type ColumnsOf = (
    std::collections::HashMap<String, Vec<Column>>,
    std::collections::HashSet<(String, String)>,
);

/// Reads the columns of the tables of database `q` (quoted as a literal).
fn read_columns(s: &mut Session, q: &str) -> Result<ColumnsOf> {
    let mut cols: std::collections::HashMap<String, Vec<Column>> = Default::default();
    let mut int_cols: std::collections::HashSet<(String, String)> = Default::default();
    for r in s.rows(
        "read columns",
        &format!("SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {q} ORDER BY TABLE_NAME, ORDINAL_POSITION"),
    )? {
        let mut it = r.into_iter().map(text);
        let (t, name, dt, ct, extra) = (
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default().to_ascii_lowercase(),
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default().to_ascii_uppercase(),
        );
        if is_int(&ct) {
            int_cols.insert((t.clone(), name.clone()));
        }
        cols.entry(t).or_default().push(Column {
            name,
            generated: extra.contains("GENERATED"),
            encoding: encoding_of(&dt),
            column_type: ct,
        });
    }
    Ok((cols, int_cols))
}

/// Reads the primary key columns, in order, of the tables of database `q`
/// (quoted as a literal).
fn read_primary_keys(
    s: &mut Session,
    q: &str,
) -> Result<std::collections::HashMap<String, Vec<String>>> {
    let mut pks: std::collections::HashMap<String, Vec<String>> = Default::default();
    for r in s.rows(
        "read primary keys",
        &format!("SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {q} AND INDEX_NAME = 'PRIMARY' ORDER BY TABLE_NAME, SEQ_IN_INDEX"),
    )? {
        let mut it = r.into_iter().map(text);
        let t = it.next().unwrap_or_default();
        pks.entry(t).or_default().push(it.next().unwrap_or_default());
    }
    Ok(pks)
}

/// Reads sequence `name` (`full`: quoted with its database).
fn read_sequence(s: &mut Session, full: &str, name: String, engine: String) -> Result<TableInfo> {
    let r = s.rows("read a sequence", &format!("SHOW CREATE SEQUENCE {full}"))?;
    let create = text(
        r.into_iter()
            .next()
            .and_then(|r| r.into_iter().nth(1))
            .flatten(),
    );
    let next = s.value(
        "read a sequence",
        &format!("SELECT next_not_cached_value FROM {full}"),
    )?;
    Ok(TableInfo {
        name,
        kind: "sequence".into(),
        engine,
        create,
        columns: Vec::new(),
        primary_key: Vec::new(),
        int_key: false,
        rows_estimate: 0,
        data_length: 0,
        sequence_next: next,
    })
}

/// Reads the whole definition of one database (not its rows).
pub fn read_database(s: &mut Session, db: &str) -> Result<DatabaseInfo> {
    let q = literal(db);
    let cs = s.rows(
        "read database charset",
        &format!("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {q}"),
    )?;
    let cs = cs.into_iter().next().unwrap_or_default();
    let (mut cols, int_cols) = read_columns(s, &q)?;
    let mut pks = read_primary_keys(s, &q)?;
    let mut tables = Vec::new();
    let mut views = Vec::new();
    for r in s.rows(
        "list tables",
        &format!("SELECT TABLE_NAME, TABLE_TYPE, IFNULL(ENGINE, ''), IFNULL(TABLE_ROWS, 0), IFNULL(DATA_LENGTH, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {q} ORDER BY TABLE_NAME"),
    )? {
        let mut it = r.into_iter().map(text);
        let (name, ty, engine, rows, len) = (
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
            it.next().unwrap_or_default(),
        );
        let full = format!("{}.{}", ident(db), ident(&name));
        match ty.as_str() {
            "VIEW" => {
                // View, Create View, character_set_client, collation_connection
                views.push(show_create(s, "view", db, &name, (None, 1, None, 2))?);
            }
            "SEQUENCE" => tables.push(read_sequence(s, &full, name, engine)?),
            _ => {
                let r = s.rows("read a table definition", &format!("SHOW CREATE TABLE {full}"))?;
                let create = text(r.into_iter().next().and_then(|r| r.into_iter().nth(1)).flatten());
                let primary_key = pks.remove(&name).unwrap_or_default();
                let int_key = primary_key.len() == 1
                    && int_cols.contains(&(name.clone(), primary_key[0].clone()));
                tables.push(TableInfo {
                    columns: cols.remove(&name).unwrap_or_default(),
                    kind: "table".into(),
                    engine,
                    create,
                    primary_key,
                    int_key,
                    rows_estimate: rows.parse().unwrap_or(0),
                    data_length: len.parse().unwrap_or(0),
                    sequence_next: None,
                    name,
                });
            }
        }
    }
    let mut objects = views;
    objects.extend(read_routines(s, db)?);
    Ok(DatabaseInfo {
        name: db.to_string(),
        charset: text(cs.first().cloned().flatten()),
        collation: text(cs.get(1).cloned().flatten()),
        tables,
        objects,
    })
}

/// Reads `SHOW CREATE <kind>`; `cols` are the positions of sql_mode, the
/// statement, time_zone, and character_set_client (collation_connection follows it).
fn show_create(
    s: &mut Session,
    kind: &str,
    db: &str,
    name: &str,
    cols: (Option<usize>, usize, Option<usize>, usize),
) -> Result<Object> {
    let full = format!("{}.{}", ident(db), ident(name));
    let r = s.rows(
        &format!("read a {kind}"),
        &format!("SHOW CREATE {} {full}", kind.to_ascii_uppercase()),
    )?;
    let row = r.into_iter().next().unwrap_or_default();
    let get = |i: usize| text(row.get(i).cloned().flatten());
    let create = get(cols.1);
    if create.is_empty() {
        return Err(MysqlError::Privilege {
            server: s.server.clone(),
            what: format!("reading the definition of {kind} {full}"),
            grant: "SELECT, SHOW VIEW, TRIGGER, EVENT (or ownership of the routine)".into(),
            user: "the backup user".into(),
            detail: "the server returned an empty definition".into(),
        });
    }
    Ok(Object {
        kind: kind.to_string(),
        name: name.to_string(),
        sql_mode: cols.0.map(get).unwrap_or_default(),
        time_zone: cols.2.map(get).unwrap_or_default(),
        charset_client: get(cols.3),
        collation_connection: get(cols.3 + 1),
        create,
    })
}

fn read_routines(s: &mut Session, db: &str) -> Result<Vec<Object>> {
    let q = literal(db);
    let mut out = Vec::new();
    for r in s.rows(
        "list routines",
        &format!("SELECT ROUTINE_NAME, ROUTINE_TYPE FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {q} ORDER BY ROUTINE_TYPE, ROUTINE_NAME"),
    )? {
        let mut it = r.into_iter().map(text);
        let name = it.next().unwrap_or_default();
        let kind = it.next().unwrap_or_default().to_ascii_lowercase();
        // Procedure, sql_mode, Create Procedure, character_set_client, collation_connection
        out.push(show_create(s, &kind, db, &name, (Some(1), 2, None, 3))?);
    }
    for name in s.column(
        "list triggers",
        &format!("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {q} ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER"),
    )? {
        // Trigger, sql_mode, SQL Original Statement, character_set_client, collation_connection
        out.push(show_create(s, "trigger", db, &name, (Some(1), 2, None, 3))?);
    }
    for name in s.column(
        "list events",
        &format!("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {q} ORDER BY EVENT_NAME"),
    )? {
        // Event, sql_mode, time_zone, Create Event, character_set_client, collation_connection
        out.push(show_create(s, "event", db, &name, (Some(1), 3, Some(2), 4))?);
    }
    Ok(out)
}

/// Reads every account but the server's own, with its grants; MariaDB's
/// roles first (as `CREATE ROLE`), so that grants of roles to accounts and
/// default roles restore after them. An account the server cannot show
/// (one named by a host name on a server that resolves none,
/// `skip-name-resolve`) is left out with a warning naming it.
pub fn read_users(s: &mut Session, warnings: &mut Vec<String>) -> Result<Vec<UserInfo>> {
    const OWN: &str = "User <> '' AND User NOT IN ('mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema')";
    let rows = match s.rows(
        "list users",
        &format!("SELECT User, Host, is_role FROM mysql.user WHERE {OWN} ORDER BY is_role DESC, User, Host"),
    ) {
        Ok(r) => r,
        // MySQL: no is_role column.
        Err(_) => s.rows(
            "list users",
            &format!("SELECT User, Host, 'N' FROM mysql.user WHERE {OWN} ORDER BY User, Host"),
        )?,
    };
    let mut out = Vec::new();
    for r in rows {
        let mut it = r.into_iter().map(text);
        let (user, host) = (it.next().unwrap_or_default(), it.next().unwrap_or_default());
        let role = it.next().is_some_and(|v| v == "Y");
        let read = |s: &mut Session| -> Result<(String, Vec<String>)> {
            let (acct, create) = if role {
                let acct = literal(&user);
                (acct.clone(), format!("CREATE ROLE {acct}"))
            } else {
                let acct = format!("{}@{}", literal(&user), literal(&host));
                let create = s
                    .value("read a user", &format!("SHOW CREATE USER {acct}"))?
                    .unwrap_or_default();
                (acct, create)
            };
            let grants = s.column("read grants", &format!("SHOW GRANTS FOR {acct}"))?;
            Ok((create, grants))
        };
        let (create, grants) = match read(s) {
            Ok(got) => got,
            Err(e) => {
                warnings.push(format!(
                    "the account '{user}'@'{host}' is not in the point: the server cannot show it ({e}); an account named by a host name on a server with skip-name-resolve cannot be read: drop it, or name its host by address"
                ));
                continue;
            }
        };
        out.push(UserInfo {
            user,
            host,
            create,
            grants,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_and_load_lists_follow_the_encodings() {
        let c = |name: &str, enc, generated| Column {
            name: name.into(),
            column_type: String::new(),
            generated,
            encoding: enc,
        };
        let t = TableInfo {
            name: "t".into(),
            kind: "table".into(),
            engine: "InnoDB".into(),
            create: String::new(),
            columns: vec![
                c("id", Encoding::Text, false),
                c("f", Encoding::FloatAsDouble, false),
                c("g", Encoding::Text, true),
                c("b", Encoding::BitAsUint, false),
                c("p", Encoding::Hex, false),
            ],
            primary_key: vec!["id".into()],
            int_key: true,
            rows_estimate: 0,
            data_length: 0,
            sequence_next: None,
        };
        assert_eq!(
            t.select_list(),
            "`id`, CAST(`f` AS DOUBLE), `b` + 0, HEX(`p`)"
        );
        let (cols, set) = t.load_list();
        assert_eq!(cols, "`id`, `f`, @lb2, @lb3");
        assert_eq!(set, " SET `b` = CAST(@lb2 AS UNSIGNED), `p` = UNHEX(@lb3)");
    }
}
