//! Loading a snapshot into a server.
//!
//! ```text
//! read the point's trees: databases → database.json, tables → table.json + data chunks
//! check every target database is empty (or --force), before changing anything
//! create a shadow database per database (`<target>_lbnew_<tag>`) and its tables
//!     (sequences get their next value back)
//! load all data chunks in parallel: N sessions, each LOAD DATA LOCAL INFILE fed
//!     straight from the vault (a reader thread per load fetches the chunk's blobs);
//!     foreign key and unique checks off, binlog off unless asked; rows counted
//!     against the snapshot and warnings reported
//! views (in dependency order), routines, triggers, events — after the data,
//!     so triggers do not fire on restored rows
//! swap the shadows in (swap.rs: one atomic RENAME TABLE), then a caller's
//!     step (the point-in-time replay); the target's old tables are dropped
//!     only after everything succeeded; users and grants when asked
//! any failure before the users: every target as it was, the shadows dropped
//! ```

use std::sync::atomic::Ordering;
use std::time::Instant;

use lifeboat_vault::tree::Node;
use lifeboat_vault::{Id, Index, RecoveryPoint, Vault, VaultError};

use crate::error::{MysqlError, Result};
use crate::schema::DatabaseInfo;
use crate::server::{Dsn, Session, ident, literal};
use crate::snapshot::{Counters, SnapshotMeta, TableEntry, Users};
use crate::swap::{self, Shadow};

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Only these databases of the point (default: all).
    pub databases: Option<Vec<String>>,
    /// Restore database `from` as `to`.
    pub renames: Vec<(String, String)>,
    /// Replace non-empty target databases.
    pub force: bool,
    /// Sessions loading in parallel.
    pub parallel: usize,
    /// Also restore users and grants (when the point has them).
    pub users: bool,
    /// Write the restored rows into the target's binary log.
    pub write_binlog: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            databases: None,
            renames: Vec::new(),
            force: false,
            parallel: crate::default_parallel(),
            users: false,
            write_binlog: false,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    /// (database in the point, database on the target).
    pub databases: Vec<(String, String)>,
    /// Tables created.
    pub tables: u64,
    /// Rows loaded.
    pub rows: u64,
    /// Bytes of row data loaded.
    pub bytes: u64,
    /// Views, routines, triggers and events created.
    pub objects: u64,
    /// Users created.
    pub users: u64,
    /// Things the user should look at.
    pub warnings: Vec<String>,
    /// Wall time.
    pub duration_s: f64,
}

/// A table of the point, as read from the vault.
#[derive(Debug)]
pub(crate) struct TablePlan {
    pub(crate) entry: TableEntry,
    pub(crate) chunks: Vec<Node>,
}

/// A database of the point, as read from the vault.
#[derive(Debug)]
pub(crate) struct DbPlan {
    pub(crate) source: String,
    pub(crate) target: String,
    /// Where it is loaded before it replaces the target.
    pub(crate) shadow: String,
    pub(crate) header: DatabaseInfo,
    pub(crate) tables: Vec<TablePlan>,
}

/// Reads a file node's bytes.
pub fn read_file(vault: &Vault, index: &Index, node: &Node) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(node.size as usize);
    for id in &node.content {
        out.extend_from_slice(&vault.read_blob(index, id)?);
    }
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(
    vault: &Vault,
    index: &Index,
    node: &Node,
    what: &str,
) -> Result<T> {
    serde_json::from_slice(&read_file(vault, index, node)?).map_err(|e| {
        MysqlError::Vault(VaultError::Corrupt {
            object: what.to_string(),
            reason: format!("bad JSON: {e}"),
        })
    })
}

fn child<'t>(tree: &'t lifeboat_vault::Tree, name: &str, point: &Id) -> Result<&'t Node> {
    tree.find(name.as_bytes())
        .ok_or_else(|| MysqlError::BadPoint {
            point: point.short(),
            reason: format!("its tree has no `{name}`: not a mysql snapshot"),
        })
}

/// The snapshot meta of a `mysql` point.
pub fn snapshot_meta(id: &Id, point: &RecoveryPoint) -> Result<SnapshotMeta> {
    if point.kind != crate::KIND_SNAPSHOT {
        return Err(MysqlError::BadPoint {
            point: id.short(),
            reason: format!(
                "it is a `{}` point, not a mysql snapshot (see `lifeboat points list`)",
                point.kind
            ),
        });
    }
    serde_json::from_value(point.meta.clone()).map_err(|e| MysqlError::BadPoint {
        point: id.short(),
        reason: format!("unreadable snapshot meta: {e}"),
    })
}

fn plan(
    vault: &Vault,
    index: &Index,
    id: &Id,
    point: &RecoveryPoint,
    opts: &RestoreOptions,
) -> Result<(Vec<DbPlan>, Option<Users>)> {
    let root = vault.read_tree(index, &point.tree)?;
    let dbs_node = child(&root, "databases", id)?;
    let dbs_tree = vault.read_tree(index, &dbs_node.subtree.unwrap_or_default())?;
    let in_point: Vec<String> = dbs_tree.nodes.iter().map(|n| n.name.clone()).collect();
    if let Some(w) = &opts.databases {
        for d in w {
            if !in_point.contains(d) {
                return Err(MysqlError::Usage(format!(
                    "database `{d}` is not in recovery point {} (it has: {})",
                    id.short(),
                    in_point.join(", ")
                )));
            }
        }
    }
    for (from, _) in &opts.renames {
        if !in_point.contains(from) {
            return Err(MysqlError::Usage(format!(
                "--rename {from}=…: database `{from}` is not in recovery point {}",
                id.short()
            )));
        }
    }
    let mut out = Vec::new();
    for dn in &dbs_tree.nodes {
        if opts
            .databases
            .as_ref()
            .is_some_and(|w| !w.contains(&dn.name))
        {
            continue;
        }
        let t = vault.read_tree(index, &dn.subtree.unwrap_or_default())?;
        let header: DatabaseInfo = read_json(
            vault,
            index,
            child(&t, "database.json", id)?,
            "database.json",
        )?;
        let tables_tree =
            vault.read_tree(index, &child(&t, "tables", id)?.subtree.unwrap_or_default())?;
        let mut tables = Vec::new();
        for tn in &tables_tree.nodes {
            let tt = vault.read_tree(index, &tn.subtree.unwrap_or_default())?;
            let entry: TableEntry =
                read_json(vault, index, child(&tt, "table.json", id)?, "table.json")?;
            let chunks = tt
                .nodes
                .iter()
                .filter(|n| n.name.starts_with("data-"))
                .cloned()
                .collect();
            tables.push(TablePlan { entry, chunks });
        }
        let target = opts
            .renames
            .iter()
            .find(|(f, _)| f == &dn.name)
            .map(|(_, t)| t.clone())
            .unwrap_or_else(|| dn.name.clone());
        out.push(DbPlan {
            source: dn.name.clone(),
            target,
            shadow: String::new(),
            header,
            tables,
        });
    }
    let users = if opts.users {
        match root.find(b"users.json") {
            Some(n) => Some(read_json(vault, index, n, "users.json")?),
            None => {
                return Err(MysqlError::Usage(format!(
                    "recovery point {} holds no users (it was taken without --users)",
                    id.short()
                )));
            }
        }
    } else {
        None
    };
    Ok((out, users))
}

/// Restores a `mysql` point into the server at `dsn`.
pub fn restore(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    dsn: &Dsn,
    opts: &RestoreOptions,
    counters: &Counters,
) -> Result<RestoreReport> {
    restore_then(vault, id, point, dsn, opts, counters, &mut |_| Ok(()))
}

/// Restores a `mysql` point into the server at `dsn`, calling `staged` once
/// the loaded databases took their targets' place and before the targets'
/// old tables are dropped (a point-in-time replay goes there). When anything
/// fails, `staged` included, every target database is put back as it was.
pub fn restore_then(
    vault: &Vault,
    id: &Id,
    point: &RecoveryPoint,
    dsn: &Dsn,
    opts: &RestoreOptions,
    counters: &Counters,
    staged: &mut dyn FnMut(&[Shadow]) -> Result<()>,
) -> Result<RestoreReport> {
    let started = Instant::now();
    snapshot_meta(id, point)?;
    let index = vault.load_index()?;
    let (mut dbs, users) = plan(vault, &index, id, point, opts)?;
    let mut main = Session::connect(dsn)?;
    let mut report = RestoreReport::default();
    // Refuse before changing anything.
    for d in &dbs {
        let n: u64 = main
            .value(
                "inspect the target",
                &format!(
                    "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = {}",
                    literal(&d.target)
                ),
            )?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if n > 0 && !opts.force {
            return Err(MysqlError::TargetNotEmpty {
                server: main.server.clone(),
                database: d.target.clone(),
                objects: n,
            });
        }
    }
    prepare_session(&mut main, opts, &mut report.warnings)?;
    let tag = swap::tag();
    for d in &mut dbs {
        d.shadow = swap::side_name(&d.target, "lbnew", &tag);
    }
    let shadows: Vec<String> = dbs.iter().map(|d| d.shadow.clone()).collect();
    let r = load_and_publish(
        vault,
        &index,
        dsn,
        &mut main,
        &dbs,
        opts,
        counters,
        &tag,
        staged,
        &mut report,
    );
    swap::drop_quietly(&mut main, &shadows);
    if let Err(e @ MysqlError::Stranded { .. }) = r {
        return Err(e);
    }
    if let Err(e) = r {
        let targets: Vec<String> = dbs.iter().map(|d| format!("`{}`", d.target)).collect();
        return Err(MysqlError::Untouched {
            databases: targets.join(", "),
            cause: Box::new(e),
        });
    }
    if let Some(users) = users {
        restore_users(&mut main, users, opts, &mut report)?;
    }
    main.close();
    report.rows = counters.rows.load(Ordering::Relaxed);
    report.bytes = counters.bytes.load(Ordering::Relaxed);
    report.duration_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Loads every database into its shadow, runs `staged`, then swaps them in.
#[allow(clippy::too_many_arguments)]
fn load_and_publish(
    vault: &Vault,
    index: &Index,
    dsn: &Dsn,
    main: &mut Session,
    dbs: &[DbPlan],
    opts: &RestoreOptions,
    counters: &Counters,
    tag: &str,
    staged: &mut dyn FnMut(&[Shadow]) -> Result<()>,
    report: &mut RestoreReport,
) -> Result<()> {
    for d in dbs {
        swap::create_database(main, &d.shadow, &d.header.charset, &d.header.collation)?;
        let t = ident(&d.shadow);
        main.exec("use the database", &format!("USE {t}"))?;
        for tp in &d.tables {
            let info = &tp.entry.info;
            main.exec(
                &format!("create table {t}.{}", ident(&info.name)),
                &info.create,
            )?;
            if let Some(next) = &info.sequence_next {
                main.exec(
                    "set a sequence",
                    &format!("SELECT SETVAL({}, {next}, 0)", ident(&info.name)),
                )?;
            }
            report.tables += 1;
        }
        report.databases.push((d.source.clone(), d.target.clone()));
    }
    crate::load::load_data(vault, index, dsn, dbs, opts, counters, report)?;
    for d in dbs {
        main.exec("use the database", &format!("USE {}", ident(&d.shadow)))?;
        swap::create_objects(main, &d.source, &d.shadow, &d.header.objects)?;
    }
    let shadows: Vec<Shadow> = dbs
        .iter()
        .map(|d| Shadow {
            source: d.source.clone(),
            target: d.target.clone(),
            shadow: d.shadow.clone(),
        })
        .collect();
    report.objects += swap::publish(main, &shadows, tag, opts.force, staged)?;
    Ok(())
}

fn restore_users(
    main: &mut Session,
    users: Users,
    opts: &RestoreOptions,
    report: &mut RestoreReport,
) -> Result<()> {
    for u in users {
        // A role (MariaDB): no host, made with CREATE ROLE.
        let role = u.create.starts_with("CREATE ROLE");
        let acct = match role {
            true => literal(&u.user),
            false => format!("{}@{}", literal(&u.user), literal(&u.host)),
        };
        let exists = main
            .value(
                "look up a user",
                &format!(
                    "SELECT COUNT(*) FROM mysql.user WHERE User = {} AND Host = {}",
                    literal(&u.user),
                    literal(&u.host)
                ),
            )?
            .is_some_and(|v| v != "0");
        if exists && !opts.force {
            let same = (role
                || main.value("read a user", &format!("SHOW CREATE USER {acct}"))?
                    == Some(u.create.clone()))
                && main.column("read grants", &format!("SHOW GRANTS FOR {acct}"))? == u.grants;
            if !same {
                report.warnings.push(format!(
                    "user {acct} exists on the target with other settings or grants: left as it is (--force replaces it)"
                ));
            }
            continue;
        }
        // MariaDB's PUBLIC (10.11 on): every server has it, none may make
        // or drop it (error 1959); only its grants travel.
        let public = role && u.user.eq_ignore_ascii_case("PUBLIC");
        if exists && !public {
            let drop = if role { "DROP ROLE" } else { "DROP USER" };
            main.exec("drop a user", &format!("{drop} {acct}"))?;
        }
        if !public {
            main.exec("create a user", &u.create)?;
        }
        for g in &u.grants {
            main.exec("grant", g)?;
        }
        report.users += 1;
    }
    Ok(())
}

pub(crate) fn prepare_session(
    s: &mut Session,
    opts: &RestoreOptions,
    warnings: &mut Vec<String>,
) -> Result<()> {
    s.exec(
        "prepare the session",
        "SET SESSION foreign_key_checks = 0, unique_checks = 0",
    )?;
    if !opts.write_binlog {
        match s.exec(
            "keep the restore out of the binlog",
            "SET SESSION sql_log_bin = 0",
        ) {
            Ok(()) => {}
            Err(MysqlError::Privilege { .. }) => {
                let w = "the login may not turn the binlog off (BINLOG ADMIN or SUPER): the restored rows were written to the target's binary log".to_string();
                if !warnings.contains(&w) {
                    warnings.push(w);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
