//! A planned switchover (`recover --planned`): the primary is alive, so
//! nothing need be lost. Before the recovery: the primary's instances are
//! stopped (the application's writes stop), each database is fenced and its
//! binlog position read, the recovery waits until the target site's vaults
//! hold the archive up to that position (the binlog archive and its copy
//! drained), and each bucket is replicated once more into its replica (a
//! directory under the target's root, or a bucket on its S3 endpoint; the
//! replication engine signs with the process's AWS_* environment).
//!
//! The fence holds against every account, not only those `read_only`
//! binds (an account with `SUPER` or `READ ONLY ADMIN`, root among them,
//! ignores it): `read_only = 1`; every other client connection is killed
//! (the binlog archive's dump stays, so the archive drains); and the fencing
//! session holds `FLUSH TABLES WITH READ LOCK` while the position is read
//! and the archive drains, so no account commits after that position. Then
//! the fence is made lasting: a server the stack provisioned in the primary
//! site is shut down (nothing can write to it any more); a server of one's
//! own keeps `read_only`, and every account that ignores it other than
//! Lifeboat's own is locked (`ACCOUNT LOCK`) — the report names them and the
//! statements that undo it, and warns that Lifeboat's own account still can
//! write.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_config::{Config, ResourceKind};
use lifeboat_mysql::server::{Session, literal, text};
use serde::{Deserialize, Serialize};

use crate::process::Proc;
use crate::state::StackState;
use crate::{Result, StackError};

/// What the quiescing did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Quiesced {
    /// When the primary's writes stopped (its instances stopped, databases fenced).
    pub writes_stopped_at: DateTime<Utc>,
    /// Per database: the binlog position it stopped at.
    pub positions: Vec<(String, String, u64)>,
    /// Seconds the archive took to reach the target's vaults.
    pub drain_s: f64,
    /// Buckets replicated once more: (member, objects copied).
    pub replicated: Vec<(String, u64)>,
    /// How each database of the old primary is kept from taking writes.
    #[serde(default)]
    pub fences: Vec<Fence>,
}

/// How one database of the old primary is fenced after the switchover.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fence {
    /// The member.
    pub member: String,
    /// `stopped` (a server the stack provisioned: shut down) or `read_only`
    /// (a server of one's own: read-only, accounts that ignore it locked).
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
struct Held {
    member: String,
    session: Session,
    file: String,
    pos: u64,
    /// The stack provisioned this server in the primary site: its process.
    provisioned: Option<Proc>,
    killed: u64,
    /// Accounts the fence locked.
    locked: Vec<String>,
    /// Lifeboat's own account (`user@host`).
    ours: String,
}

/// Stops the writes of `stack` at its primary site (the members' own site)
/// and waits until `target`'s vaults hold every commit.
pub fn quiesce(cfg: &Config, stack: &str, target: &str, timeout: Duration) -> Result<Quiesced> {
    let s = &cfg.stacks[stack];
    let primary = s
        .members
        .iter()
        .find_map(|m| cfg.resources.get(m)?.site.as_deref())
        .ok_or_else(|| {
            StackError::Refused(format!(
            "a planned switchover needs the primary: give stack `{stack}`'s members their `site`"
        ))
        })?;
    if primary == target {
        return Err(StackError::Refused(format!(
            "stack `{stack}` already runs in site `{target}`: a switchover goes to another site"
        )));
    }
    let (_, proot) = crate::stack::resolve(cfg, stack, primary)?;
    let pstate = StackState::read(&proot, stack)?;
    // 1. The application stops: no new writes.
    if let Some(st) = &pstate {
        for (_, m) in st.members.iter().filter(|(_, m)| m.kind == "instance") {
            if m.dir
                .join(lifeboat_instance::supervise::LAUNCH_PID)
                .exists()
            {
                lifeboat_instance::supervise::stop(&m.dir)?;
            }
        }
    }
    // 2. Each database fenced; where each stopped.
    let mut held = Vec::new();
    for m in &s.members {
        if let Some(h) = fence(cfg, m, pstate.as_ref())? {
            held.push(h);
        }
    }
    let writes_stopped_at = Utc::now();
    let positions: Vec<(String, String, u64)> = held
        .iter()
        .map(|h| (h.member.clone(), h.file.clone(), h.pos))
        .collect();
    // 3. The archive drains into the target's vaults (the read lock held).
    let started = Instant::now();
    if let Err(e) = drain(cfg, target, &positions, timeout) {
        // The read locks end with their sessions; what lasts is said.
        let undo: Vec<String> = held
            .iter()
            .filter(|h| !h.locked.is_empty())
            .map(|h| format!("on `{}`: {}", h.member, undo(&h.locked)))
            .collect();
        return Err(match undo.is_empty() {
            true => e,
            false => StackError::Process(format!("{e}; to resume writes {}", undo.join("; "))),
        });
    }
    let drain_s = started.elapsed().as_secs_f64();
    // 4. The fence made lasting.
    let fences = held.into_iter().map(seal).collect::<Result<Vec<Fence>>>()?;
    // 5. Buckets: one more pass of each replication rule into the target's
    // root or onto its S3 endpoint.
    let replicated = replicate_buckets(cfg, stack, target)?;
    Ok(Quiesced {
        writes_stopped_at,
        positions,
        drain_s,
        replicated,
        fences,
    })
}

fn process_error(e: lifeboat_mysql::MysqlError) -> StackError {
    StackError::Process(e.to_string())
}

/// Fences database member `m` (none: not a database): read-only, every
/// other client connection but binlog dumps killed, the read lock taken,
/// the binlog position read.
fn fence(cfg: &Config, m: &str, pstate: Option<&StackState>) -> Result<Option<Held>> {
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
    let mut session = Session::connect(&d).map_err(process_error)?;
    session
        .exec("set the primary read-only", "SET GLOBAL read_only = 1")
        .map_err(process_error)?;
    // MySQL binds its administrators too with super_read_only; MariaDB has
    // none: there, a server of one's own has its administrators locked
    // before their connections are ended (a provisioned one is shut down
    // after the drain, the read lock holds until then).
    let super_ro = session
        .exec(
            "bind administrators (MySQL)",
            "SET GLOBAL super_read_only = 1",
        )
        .is_ok();
    let ours = session
        .value("read Lifeboat's account", "SELECT CURRENT_USER()")
        .map_err(process_error)?
        .unwrap_or_default();
    // The binlog archive's account (a dump running): neither locked nor
    // its connections ended, so the archive drains.
    let archivers = session
        .column(
            "list the binlog archive's accounts",
            "SELECT DISTINCT USER FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'",
        )
        .map_err(process_error)?;
    let locked = if provisioned.is_none() && !super_ro {
        lock_administrators(&mut session, &ours, &archivers)?
    } else {
        Vec::new()
    };
    let spared: Vec<String> = ["system user", "event_scheduler", "unauthenticated user"]
        .iter()
        .map(|u| u.to_string())
        .chain(archivers)
        .map(|u| literal(&u))
        .collect();
    let others = session
        .column(
            "list the other client connections",
            &format!(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() \
                 AND USER NOT IN ({}) AND COMMAND NOT IN ('Daemon', 'Killed')",
                spared.join(", ")
            ),
        )
        .map_err(process_error)?;
    let mut killed = 0;
    for id in others
        .iter()
        .filter(|i| i.chars().all(|c| c.is_ascii_digit()))
    {
        // Gone meanwhile: nothing to end.
        if session
            .exec("end a client connection", &format!("KILL CONNECTION {id}"))
            .is_ok()
        {
            killed += 1;
        }
    }
    session
        .exec(
            "hold the read lock (no account commits any more)",
            "SET SESSION lock_wait_timeout = 60; FLUSH TABLES WITH READ LOCK",
        )
        .map_err(process_error)?;
    let row = session
        .rows("read the binlog position", "SHOW MASTER STATUS")
        .map_err(process_error)?;
    let (file, pos) = row
        .first()
        .and_then(|r| {
            let f = text(r.first().cloned().flatten());
            let p = text(r.get(1).cloned().flatten()).parse().ok()?;
            Some((f, p))
        })
        .ok_or_else(|| StackError::Process(format!("database `{m}` has no binary log: it cannot be archived, so a switchover cannot drain it (it is read-only now; `SET GLOBAL read_only = 0` on it resumes writes)")))?;
    Ok(Some(Held {
        member: m.to_string(),
        session,
        file,
        pos,
        provisioned,
        killed,
        locked,
        ours,
    }))
}

/// Waits until some vault of `target` holds each database's archive up to
/// the position it stopped at.
fn drain(
    cfg: &Config,
    target: &str,
    positions: &[(String, String, u64)],
    timeout: Duration,
) -> Result<()> {
    let started = Instant::now();
    let vaults: Vec<lifeboat_vault::Vault> = cfg
        .vaults
        .iter()
        .filter(|(_, v)| v.site.as_deref() == Some(target))
        .filter_map(|(n, _)| lifeboat_control::secret::open_vault(cfg, n).ok())
        .collect();
    for (m, file, pos) in positions {
        let want = (lifeboat_mysql::binlog::file_number(file).unwrap_or(0), *pos);
        while !vaults
            .iter()
            .any(|v| archived_to(v, m).is_some_and(|have| have >= want))
        {
            if started.elapsed() > timeout {
                return Err(StackError::Process(format!(
                    "the binlog archive of `{m}` did not reach {file}:{pos} in site `{target}`'s vaults within {} s: is its archive running, and its copy to the secondary? (the primary is read-only now; `SET GLOBAL read_only = 0` on it resumes writes)",
                    timeout.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

/// How far vault `v` holds database `member`'s archive: (binlog file number, end).
pub(crate) fn archived_to(v: &lifeboat_vault::Vault, member: &str) -> Option<(u64, u64)> {
    let c = lifeboat_mysql::Catalog::load(v, member).ok()?;
    let h = c.head()?;
    Some((
        lifeboat_mysql::binlog::file_number(&h.file).unwrap_or(0),
        h.end,
    ))
}

/// Makes a held fence lasting: a provisioned server is shut down; a server
/// of one's own keeps `read_only` and the accounts that ignore it are locked.
fn seal(h: Held) -> Result<Fence> {
    let Held {
        member,
        mut session,
        provisioned,
        killed,
        locked,
        ours,
        ..
    } = h;
    if let Some(p) = provisioned {
        session.close();
        p.stop(Duration::from_secs(60));
        if p.alive() {
            return Err(StackError::Process(format!(
                "the old primary's database `{member}` (pid {}) did not stop: stop it before the application is started anywhere",
                p.pid
            )));
        }
        return Ok(Fence {
            member,
            how: "stopped".into(),
            locked_accounts: Vec::new(),
            killed_connections: killed,
            writable_by: None,
            undo: None,
        });
    }
    session
        .exec("release the read lock", "UNLOCK TABLES")
        .map_err(process_error)?;
    session.close();
    let undo = undo(&locked);
    Ok(Fence {
        member,
        how: "read_only".into(),
        locked_accounts: locked,
        killed_connections: killed,
        writable_by: Some(ours),
        undo: Some(undo),
    })
}

/// The SQL that lifts a fence of a server of one's own.
fn undo(locked: &[String]) -> String {
    let mut undo = String::from("SET GLOBAL read_only = 0;");
    for a in locked {
        undo.push_str(&format!(" ALTER USER {a} ACCOUNT UNLOCK;"));
    }
    undo
}

/// Locks every account that ignores `read_only` but `ours` and the binlog
/// archive's (MariaDB: `SUPER` or `READ ONLY ADMIN`), as `'user'@'host'`.
fn lock_administrators(
    session: &mut Session,
    ours: &str,
    archivers: &[String],
) -> Result<Vec<String>> {
    // Accounts that ignore read_only (MariaDB: SUPER or READ ONLY ADMIN),
    // as `'user'@'host'`.
    let admins = session
        .column(
            "list the accounts that ignore read_only",
            "SELECT DISTINCT GRANTEE FROM information_schema.USER_PRIVILEGES \
             WHERE PRIVILEGE_TYPE IN ('SUPER', 'READ ONLY ADMIN')",
        )
        .map_err(process_error)?;
    let mut locked = Vec::new();
    for grantee in admins {
        let Some((user, host)) = grantee
            .strip_prefix('\'')
            .and_then(|g| g.strip_suffix('\''))
            .and_then(|g| g.rsplit_once("'@'"))
        else {
            continue;
        };
        if format!("{user}@{host}") == ours || archivers.iter().any(|a| a == user) {
            continue;
        }
        let account = format!("{}@{}", literal(user), literal(host));
        session
            .exec(
                "lock an account that ignores read_only",
                &format!("ALTER USER {account} ACCOUNT LOCK"),
            )
            .map_err(process_error)?;
        locked.push(account);
    }
    Ok(locked)
}

/// One more pass of each of the stack's bucket replication rules into the
/// target's root or onto its S3 endpoint: (member, objects copied).
fn replicate_buckets(cfg: &Config, stack: &str, target: &str) -> Result<Vec<(String, u64)>> {
    let s = &cfg.stacks[stack];
    let (_, troot) = crate::stack::resolve(cfg, stack, target)?;
    let endpoint = crate::bucket::SiteStore::of(cfg, target)?;
    let mut replicated = Vec::new();
    for m in &s.members {
        for rule in cfg.replications.values().filter(|r| &r.from == m) {
            let to = PathBuf::from(rule.to.strip_prefix("file://").unwrap_or(&rule.to));
            if !to.starts_with(&troot) && !endpoint.as_ref().is_some_and(|e| e.holds(&rule.to)) {
                continue;
            }
            let Some(ResourceKind::Bucket { location }) = cfg.resources.get(m).map(|r| &r.kind)
            else {
                continue;
            };
            let copied = replicate_once(location, &rule.to, &troot)?;
            replicated.push((m.clone(), copied));
        }
    }
    Ok(replicated)
}

fn replicate_once(from: &str, to: &str, root: &Path) -> Result<u64> {
    let from_n = lifeboat_bucket::Bucket::parse(from)
        .map_err(|e| StackError::Process(e.to_string()))?
        .to_string();
    let to_n = lifeboat_bucket::Bucket::parse(to)
        .map_err(|e| StackError::Process(e.to_string()))?
        .to_string();
    let mut opts = lifeboat_bucket::replicate::Options::new(&from_n, &to_n, "");
    opts.state_dir = root
        .join("stacks")
        .join(".switchover-replication")
        .join(lifeboat_bucket::replicate::rule_id(&from_n, &to_n, ""));
    opts.existing = true;
    opts.once = true;
    let rep = lifeboat_bucket::replicate::run_until_signalled(opts)
        .map_err(|e| StackError::Process(format!("replicating {from} into {to}: {e}")))?;
    Ok(rep.copied)
}
