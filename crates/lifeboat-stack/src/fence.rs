//! The fence of a planned switchover: what keeps the old primary's database
//! from taking writes, against every account — not only those `read_only`
//! binds (an account with `SUPER` or `READ ONLY ADMIN`, directly or through
//! a role, ignores it; so do events run as such a definer).
//!
//! [`fence`], before the drain: the session stops writing to the binlog
//! (`sql_log_bin = 0`: nothing the fence does is archived and replayed into
//! the new primary); `read_only = 1` (MySQL: `super_read_only` too); the
//! event scheduler off; on a server of one's own every administrator but
//! Lifeboat's own and those following the binlog is locked (`ACCOUNT
//! LOCK`); every other client connection is ended but the binlog dumps (so
//! the archive drains); and `FLUSH TABLES WITH READ LOCK` is held while the
//! position is read and the archive drains — no account commits after it.
//!
//! [`seal`], after the drain: a server the stack provisioned is shut down;
//! a server of one's own has the remaining administrators locked and every
//! connection but Lifeboat's ended (the dumps too), then the read lock is
//! released. It stays read-only until it restarts (`read_only` is not kept
//! across a restart; the locks are).
//!
//! Whatever fails on the way, the error says what was done and the SQL that
//! undoes it.

use std::time::Duration;

use lifeboat_config::{Config, ResourceKind};
use lifeboat_mysql::server::{Session, literal, text};
use serde::{Deserialize, Serialize};

use crate::process::Proc;
use crate::state::StackState;
use crate::{Result, StackError};

/// How one database of the old primary is fenced after the switchover.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fence {
    /// The member.
    pub member: String,
    /// `stopped` (a server the stack provisioned: shut down) or `read_only`
    /// (a server of one's own: read-only, administrators locked).
    pub how: String,
    /// Accounts locked by the fence (`'user'@'host'`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub locked_accounts: Vec<String>,
    /// Client connections the fence ended.
    pub killed_connections: u64,
    /// The account that still can write (Lifeboat's own), when one can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writable_by: Option<String>,
    /// The SQL that lifts the fence (a server of one's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
}

/// A database fenced for the drain: its session holds the read lock.
pub(crate) struct Held {
    pub member: String,
    session: Session,
    pub file: String,
    pub pos: u64,
    /// The stack provisioned this server in the primary site: its process.
    provisioned: Option<Proc>,
    killed: u64,
    /// Accounts the fence locked.
    locked: Vec<String>,
    /// The event scheduler was on (the undo turns it on again).
    events_were_on: bool,
    /// Lifeboat's own account (`user@host`).
    ours: String,
}

impl Held {
    /// The SQL that undoes what the fence did so far.
    pub fn undo(&self) -> String {
        let mut undo = String::from("SET GLOBAL read_only = 0;");
        if self.events_were_on {
            undo.push_str(" SET GLOBAL event_scheduler = ON;");
        }
        for a in &self.locked {
            undo.push_str(&format!(" ALTER USER {a} ACCOUNT UNLOCK;"));
        }
        undo
    }
}

fn sql_error(e: lifeboat_mysql::MysqlError) -> StackError {
    StackError::Process(e.to_string())
}

/// Fences database member `m` (none: not a database).
pub(crate) fn fence(cfg: &Config, m: &str, pstate: Option<&StackState>) -> Result<Option<Held>> {
    let Some(ResourceKind::Mysql { dsn, password, .. }) = cfg.resources.get(m).map(|r| &r.kind)
    else {
        return Ok(None);
    };
    let mut d =
        lifeboat_control::secret::mysql_dsn(m, dsn, password).map_err(StackError::Refused)?;
    let member = pstate.and_then(|st| st.member(m));
    // A server the stack provisioned: root's password from its state, and
    // its process (when the DSN points at that server).
    if d.password.is_none() && d.user == "root" {
        d.password = member.and_then(|x| x.password.clone()).map(|p| p.0);
    }
    let provisioned = member
        .filter(|x| !x.borrowed && x.kind == "mysql")
        .filter(|x| {
            x.outputs
                .get("port")
                .is_some_and(|p| *p == d.port.to_string())
        })
        .and_then(|x| x.process.clone())
        .filter(|p| p.alive());
    let mut session = Session::connect(&d).map_err(sql_error)?;
    session
        .exec(
            "keep the fence out of the binlog",
            "SET SESSION sql_log_bin = 0",
        )
        .map_err(sql_error)?;
    let ours = session
        .value("read Lifeboat's account", "SELECT CURRENT_USER()")
        .map_err(sql_error)?
        .unwrap_or_default();
    let events_were_on = session
        .value(
            "read the event scheduler",
            "SELECT @@GLOBAL.event_scheduler",
        )
        .map_err(sql_error)?
        .is_some_and(|v| v.eq_ignore_ascii_case("ON"));
    let mut h = Held {
        member: m.to_string(),
        session,
        file: String::new(),
        pos: 0,
        provisioned,
        killed: 0,
        locked: Vec::new(),
        events_were_on,
        ours,
    };
    match hold(&mut h) {
        Ok(()) => Ok(Some(h)),
        Err(e) => Err(StackError::Process(format!(
            "fencing the primary's `{m}`: {e}; what was done so far is undone with: {}",
            h.undo()
        ))),
    }
}

/// The steps of [`fence`] that change the server.
fn hold(h: &mut Held) -> Result<()> {
    let s = &mut h.session;
    s.exec("set the primary read-only", "SET GLOBAL read_only = 1")
        .map_err(sql_error)?;
    // MySQL binds its administrators with super_read_only (MariaDB has none).
    let super_ro = s
        .exec(
            "bind administrators (MySQL)",
            "SET GLOBAL super_read_only = 1",
        )
        .is_ok();
    if h.events_were_on {
        s.exec(
            "stop the event scheduler",
            "SET GLOBAL event_scheduler = OFF",
        )
        .map_err(sql_error)?;
    }
    // Those following the binlog: the archive must drain.
    let followers = s
        .column(
            "list the binlog followers",
            "SELECT DISTINCT USER FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .map_err(sql_error)?;
    if h.provisioned.is_none() && !super_ro {
        h.locked = lock_administrators(s, &h.ours, &followers)?;
    }
    h.killed = end_connections(s, true)?;
    s.exec(
        "hold the read lock (no account commits any more)",
        "SET SESSION lock_wait_timeout = 60; FLUSH TABLES WITH READ LOCK",
    )
    .map_err(sql_error)?;
    let row = s
        .rows("read the binlog position", "SHOW MASTER STATUS")
        .map_err(sql_error)?;
    let (file, pos) = row
        .first()
        .and_then(|r| {
            let f = text(r.first().cloned().flatten());
            let p = text(r.get(1).cloned().flatten()).parse().ok()?;
            Some((f, p))
        })
        .ok_or_else(|| {
            StackError::Process(
                "it has no binary log: it cannot be archived, so a switchover cannot drain it"
                    .into(),
            )
        })?;
    (h.file, h.pos) = (file, pos);
    Ok(())
}

/// Ends every client connection but this one (and the binlog dumps, when
/// `spare_dumps`); how many.
fn end_connections(s: &mut Session, spare_dumps: bool) -> Result<u64> {
    let ids = s
        .column(
            "list the other client connections",
            &format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                 AND USER NOT IN ('system user', 'event_scheduler', 'unauthenticated user') \
                 AND COMMAND NOT IN ('Daemon', 'Killed'){}",
                if spare_dumps {
                    " AND COMMAND NOT LIKE 'Binlog Dump%'"
                } else {
                    ""
                }
            ),
        )
        .map_err(sql_error)?;
    let mut killed = 0;
    for id in ids.iter().filter(|i| i.chars().all(|c| c.is_ascii_digit())) {
        // Gone meanwhile: nothing to end.
        if s.exec("end a client connection", &format!("KILL CONNECTION {id}"))
            .is_ok()
        {
            killed += 1;
        }
    }
    Ok(killed)
}

/// Makes a held fence lasting: a provisioned server is shut down; a server
/// of one's own has the remaining administrators locked and every other
/// connection ended, and keeps `read_only`.
pub(crate) fn seal(mut h: Held) -> Result<Fence> {
    if let Some(p) = h.provisioned.take() {
        h.session.close();
        p.stop(Duration::from_secs(60));
        if p.alive() {
            return Err(StackError::Process(format!(
                "the old primary's database `{}` (pid {}) did not stop: stop it before the application is started anywhere",
                h.member, p.pid
            )));
        }
        return Ok(Fence {
            member: h.member,
            how: "stopped".into(),
            locked_accounts: Vec::new(),
            killed_connections: h.killed,
            writable_by: None,
            undo: None,
        });
    }
    // The drain is done: every connection ends (the dumps too) while the
    // read lock still holds; then, the lock released (ALTER USER needs
    // it), the followers' accounts are locked too and whatever connected
    // meanwhile is ended again.
    let sealed = (|| -> Result<()> {
        h.killed += end_connections(&mut h.session, false)?;
        h.session
            .exec("release the read lock", "UNLOCK TABLES")
            .map_err(sql_error)?;
        let more = lock_administrators(&mut h.session, &h.ours, &[])?;
        h.locked.extend(more);
        h.killed += end_connections(&mut h.session, false)?;
        Ok(())
    })();
    if let Err(e) = sealed {
        return Err(StackError::Process(format!(
            "sealing the fence of `{}`: {e}; to undo what was done: {}",
            h.member,
            h.undo()
        )));
    }
    let undo = h.undo();
    let Held {
        member,
        session,
        killed,
        locked,
        ours,
        ..
    } = h;
    session.close();
    Ok(Fence {
        member,
        how: "read_only".into(),
        locked_accounts: locked,
        killed_connections: killed,
        writable_by: Some(ours),
        undo: Some(undo),
    })
}

/// Locks every account that ignores `read_only` — `SUPER` or `READ ONLY
/// ADMIN`, granted directly or through roles — but `ours` and those of
/// `spared` users, and not locked already; as `'user'@'host'`.
fn lock_administrators(s: &mut Session, ours: &str, spared: &[String]) -> Result<Vec<String>> {
    let mut locked = Vec::new();
    for (user, host) in administrators(s)? {
        if format!("{user}@{host}") == ours || spared.contains(&user) {
            continue;
        }
        let account = format!("{}@{}", literal(&user), literal(&host));
        s.exec(
            "lock an account that ignores read_only",
            &format!("ALTER USER {account} ACCOUNT LOCK"),
        )
        .map_err(sql_error)?;
        locked.push(account);
    }
    Ok(locked)
}

/// The accounts (not roles) that hold `SUPER` or `READ ONLY ADMIN` (or all
/// privileges) on `*.*`, directly or through roles granted to them, and are
/// not locked. MariaDB: read from each account's and role's grants
/// (`information_schema` leaves roles out).
fn administrators(s: &mut Session) -> Result<Vec<(String, String)>> {
    let all = s
        .rows(
            "list accounts and roles",
            "SELECT User, Host, is_role FROM mysql.user WHERE User <> '' \
             AND User NOT IN ('mariadb.sys', 'mysql.sys', 'mysql.session', 'mysql.infoschema')",
        )
        .map_err(sql_error)?;
    let mut users: Vec<(String, String)> = Vec::new();
    let mut roles: Vec<String> = Vec::new();
    for r in all {
        let f = |i: usize| text(r.get(i).cloned().flatten());
        let (u, h, role) = (f(0), f(1), f(2) == "Y");
        let who = match role {
            true => literal(&u),
            false => format!("{}@{}", literal(&u), literal(&h)),
        };
        let grants = s
            .column("read grants", &format!("SHOW GRANTS FOR {who}"))
            .map_err(sql_error)?;
        let admin = grants.iter().any(|g| {
            let g = g.to_ascii_uppercase();
            g.contains(" ON *.* ")
                && (g.contains("ALL PRIVILEGES")
                    || g.contains("SUPER")
                    || g.contains("READ ONLY ADMIN")
                    || g.contains("READ_ONLY ADMIN"))
        });
        match (admin, role) {
            (false, _) => {}
            (true, true) => roles.push(u),
            (true, false) => users.push((u, h)),
        }
    }
    // Roles granted to roles, then to accounts (MariaDB's roles_mapping;
    // MySQL has none here, and binds administrators with super_read_only).
    let mapping = s
        .rows(
            "list role grants",
            "SELECT User, Host, Role FROM mysql.roles_mapping",
        )
        .unwrap_or_default();
    let mapping: Vec<(String, String, String)> = mapping
        .into_iter()
        .map(|r| {
            let f = |i: usize| text(r.get(i).cloned().flatten());
            (f(0), f(1), f(2))
        })
        .collect();
    let mut grew = true;
    while grew {
        grew = false;
        for (u, h, r) in &mapping {
            if !roles.contains(r) {
                continue;
            }
            if h.is_empty() {
                if !roles.contains(u) {
                    roles.push(u.clone());
                    grew = true;
                }
            } else if !users.contains(&(u.clone(), h.clone())) {
                users.push((u.clone(), h.clone()));
                grew = true;
            }
        }
    }
    let locked = s
        .rows(
            "list locked accounts",
            "SELECT User, Host FROM mysql.global_priv \
             WHERE JSON_VALUE(Priv, '$.account_locked') IN ('true', '1')",
        )
        .unwrap_or_default();
    let locked: Vec<(String, String)> = locked
        .into_iter()
        .map(|r| {
            (
                text(r.first().cloned().flatten()),
                text(r.get(1).cloned().flatten()),
            )
        })
        .collect();
    users.retain(|a| !locked.contains(a));
    Ok(users)
}
