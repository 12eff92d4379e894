//! A consistent view for a snapshot's workers: the backup lock (MariaDB's
//! BACKUP STAGE, MySQL's FTWRL) or, without RELOAD, one connection's
//! single transaction; the schema read inside it and its coordinates.

use chrono::{DateTime, Utc};

use super::Coordinates;
use crate::error::{MysqlError, Result};
use crate::schema::{self, DatabaseInfo};
use crate::server::{Flavor, ServerInfo, Session, text};

/// Worker sessions inside one consistent view, where the view is in the
/// binlog and the server's clock, how it was obtained, and the schema read in it.
pub(super) struct Consistent {
    pub(super) workers: Vec<Session>,
    pub(super) coords: Option<Coordinates>,
    pub(super) at: DateTime<Utc>,
    pub(super) method: &'static str,
    pub(super) dbs: Vec<DatabaseInfo>,
}

/// Opens a consistent view for the workers (see the module docs of
/// `snapshot`), reads the schema in it and its coordinates.
pub(super) fn make_consistent(
    main: &mut Session,
    workers: Vec<Session>,
    info: &ServerInfo,
    names: &[String],
    warnings: &mut Vec<String>,
) -> Result<Consistent> {
    let lock = match info.flavor {
        Flavor::Mariadb => main.exec("take the backup lock", "BACKUP STAGE START"),
        Flavor::Mysql => main.exec("take the backup lock", "FLUSH TABLES WITH READ LOCK"),
    };
    match lock {
        Ok(()) => under_lock(main, workers, info, names, warnings),
        Err(MysqlError::Privilege { grant, .. }) => {
            warnings.push(format!(
                "the login lacks {grant}: the snapshot was dumped through one connection (GRANT RELOAD for parallel, locked snapshots)"
            ));
            single_transaction(workers, info, names)
        }
        Err(e) => Err(e),
    }
}

/// Reads the schema of the databases `names`.
fn read_schema(s: &mut Session, names: &[String]) -> Result<Vec<DatabaseInfo>> {
    names.iter().map(|d| schema::read_database(s, d)).collect()
}

/// Starts a consistent-snapshot transaction on each worker.
fn start_workers(ws: &mut [Session]) -> Result<()> {
    for w in ws.iter_mut() {
        w.exec(
            "start a consistent snapshot",
            "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        )?;
        w.exec(
            "start a consistent snapshot",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        )?;
    }
    Ok(())
}

/// Under the backup lock `main` took: DDL blocked, the schema read, commits
/// blocked (MariaDB) while every worker starts its transaction and the
/// coordinates are read, then the lock released.
fn under_lock(
    main: &mut Session,
    mut workers: Vec<Session>,
    info: &ServerInfo,
    names: &[String],
    warnings: &mut Vec<String>,
) -> Result<Consistent> {
    let method = match info.flavor {
        Flavor::Mariadb => {
            main.exec("take the backup lock", "BACKUP STAGE FLUSH")?;
            main.exec("take the backup lock", "BACKUP STAGE BLOCK_DDL")?;
            "backup-stage"
        }
        Flavor::Mysql => "ftwrl",
    };
    let dbs = read_schema(main, names)?;
    if info.flavor == Flavor::Mariadb {
        main.exec("block commits", "BACKUP STAGE BLOCK_COMMIT")?;
    }
    start_workers(&mut workers)?;
    let (coords, at) = coordinates(main, info, warnings)?;
    match info.flavor {
        Flavor::Mariadb => main.exec("release the backup lock", "BACKUP STAGE END")?,
        Flavor::Mysql => main.exec("release the backup lock", "UNLOCK TABLES")?,
    }
    Ok(Consistent {
        workers,
        coords,
        at,
        method,
        dbs,
    })
}

/// Without the backup lock: one worker's single transaction (the others
/// closed), its coordinates from `binlog_snapshot_%` (MariaDB).
fn single_transaction(
    mut workers: Vec<Session>,
    info: &ServerInfo,
    names: &[String],
) -> Result<Consistent> {
    let mut one = vec![workers.remove(0)];
    for w in workers.drain(..) {
        w.close();
    }
    start_workers(&mut one)?;
    let dbs = read_schema(&mut one[0], names)?;
    let mut coords = None;
    if info.log_bin && info.flavor == Flavor::Mariadb {
        let r = one[0].rows(
            "read the snapshot's binlog position",
            "SHOW STATUS LIKE 'binlog_snapshot_%'",
        )?;
        let mut file = String::new();
        let mut pos = 0;
        for row in r {
            let mut it = row.into_iter().map(text);
            match (it.next().unwrap_or_default().as_str(), it.next()) {
                ("Binlog_snapshot_file", Some(v)) => file = v,
                ("Binlog_snapshot_position", Some(v)) => pos = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        if !file.is_empty() {
            coords = Some(Coordinates {
                file,
                pos,
                gtid: None,
            });
        }
    }
    let at = server_now(&mut one[0])?;
    Ok(Consistent {
        workers: one,
        coords,
        at,
        method: "single-transaction",
        dbs,
    })
}

/// The server's clock, in UTC.
fn server_now(s: &mut Session) -> Result<DateTime<Utc>> {
    let t = s
        .value("read the server's clock", "SELECT UTC_TIMESTAMP(6)")?
        .unwrap_or_default();
    parse_server_time(&t).ok_or_else(|| MysqlError::Sql {
        server: s.server.clone(),
        what: "read the server's clock".into(),
        reason: format!("unexpected time {t:?}"),
        lost: false,
    })
}

/// Parses `YYYY-MM-DD hh:mm:ss[.ffffff]` as UTC.
pub fn parse_server_time(t: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|n| n.and_utc())
}

/// The server's clock and binlog coordinates (none when binary logging
/// is off, or the login may not read them).
fn coordinates(
    main: &mut Session,
    info: &ServerInfo,
    warnings: &mut Vec<String>,
) -> Result<(Option<Coordinates>, DateTime<Utc>)> {
    let at = server_now(main)?;
    if !info.log_bin {
        return Ok((None, at));
    }
    let status = match main.rows("read the binlog position", "SHOW MASTER STATUS") {
        Ok(r) => r,
        Err(MysqlError::Privilege { grant, .. }) => {
            warnings.push(format!(
                "the login lacks {grant}: binlog coordinates were not recorded"
            ));
            return Ok((None, at));
        }
        Err(e) => return Err(e),
    };
    let Some(row) = status.into_iter().next() else {
        return Ok((None, at));
    };
    let file = text(row.first().cloned().flatten());
    let pos = text(row.get(1).cloned().flatten()).parse().unwrap_or(0);
    let gtid = match info.flavor {
        Flavor::Mariadb => main.value("read the GTID position", "SELECT @@gtid_binlog_pos")?,
        Flavor::Mysql => row.get(4).cloned().flatten().map(|b| text(Some(b))),
    }
    .filter(|g| !g.is_empty());
    Ok((Some(Coordinates { file, pos, gtid }), at))
}
