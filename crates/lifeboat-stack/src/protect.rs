//! Leaving a recovered site protected at once: for each recovered database,
//! a first snapshot into the vault it was recovered from and its own binlog
//! archive, running from the moment the stack is healthy — the RPO clock
//! restarts with the new primary, not at the next scheduled backup.
//!
//! The new server's binlog numbering is first moved past the old primary's
//! (`RESET MASTER TO head + 2`): its files never share a name with the
//! archived ones of the same resource, and the number left out is a gap, so
//! no point-in-time restore from an old snapshot runs on into the new
//! server's binlog. Restores after the recovery start from the new snapshot.

use std::path::Path;

use lifeboat_config::{Config, Secret};
use lifeboat_vault::Vault;
use serde::{Deserialize, Serialize};

use crate::mariadb::Server;
use crate::process::{self, Proc};
use crate::state::MemberState;
use crate::{Result, StackError};

/// What protects a recovered member now.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Protected {
    /// The member.
    pub member: String,
    /// Its kind (`mysql`, `bucket`, `files`, `instance`).
    #[serde(default = "mysql")]
    pub kind: String,
    /// The vault its points go to.
    pub vault: String,
    /// Its first point there (a database: its first snapshot).
    pub snapshot: String,
    /// A database: the binlog file number the new server starts at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_from: Option<u64>,
    /// A database: the archive's process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_pid: Option<i32>,
}

fn mysql() -> String {
    "mysql".into()
}

/// Snapshots the recovered database `member` (running as `m`) into vault
/// `vault_name` and starts its binlog archive there with `exe` (the
/// `lifeboat` binary) as a process of its own.
pub fn protect(
    cfg: &Config,
    vault_name: &str,
    vault: &Vault,
    member: &str,
    m: &mut MemberState,
    exe: &Path,
) -> Result<Protected> {
    let password = m.password.as_ref().map(|p| p.0.clone());
    let server = Server::new(m.dir.clone()).with_password(password.clone());
    let head = lifeboat_mysql::Catalog::load(vault, member)
        .ok()
        .and_then(|c| {
            c.head()
                .and_then(|h| lifeboat_mysql::binlog::file_number(&h.file))
        })
        .unwrap_or(0);
    let from = head + 2;
    server.sql(&format!("RESET MASTER TO {from}"))?;
    let mut dsn = lifeboat_mysql::Dsn::parse(&m.outputs["dsn"])
        .map_err(|e| StackError::Process(e.to_string()))?;
    dsn.password = password.clone();
    let first = |e: lifeboat_mysql::MysqlError| {
        StackError::Process(format!(
            "the first snapshot of the recovered `{member}`: {e}"
        ))
    };
    let counters = lifeboat_mysql::Counters::default();
    let (resource, tags) = (Some(member.to_string()), vec!["recovered".to_string()]);
    // Of the mode the file declares: a physical resource's first point is
    // a full physical one, the start of its new chain.
    let physical = matches!(
        cfg.resources.get(member).map(|r| &r.kind),
        Some(lifeboat_config::ResourceKind::Mysql { mode: Some(m), .. }) if &**m == "physical"
    );
    let id = match physical {
        true => {
            let opts = lifeboat_mysql::PhysicalOptions {
                resource,
                tags,
                ..Default::default()
            };
            lifeboat_mysql::backup_physical(vault, &dsn, &opts, &counters)
                .map_err(first)?
                .id
        }
        false => {
            let opts = lifeboat_mysql::SnapshotOptions {
                resource,
                tags,
                ..Default::default()
            };
            lifeboat_mysql::snapshot(vault, &dsn, &opts, &counters)
                .map_err(first)?
                .id
        }
    };
    let proc = start_archive(cfg, vault_name, member, m, exe)?;
    Ok(Protected {
        member: member.into(),
        kind: "mysql".into(),
        vault: vault_name.into(),
        snapshot: id.to_hex(),
        binlog_from: Some(from),
        archive_pid: Some(proc.pid),
    })
}

/// Starts the binlog archive of database `member` (running as `m`) into
/// vault `vault_name` with `exe`, as a process of its own recorded in `m`;
/// one that exits at once is an error that says why.
pub fn start_archive(
    cfg: &Config,
    vault_name: &str,
    member: &str,
    m: &mut MemberState,
    exe: &Path,
) -> Result<Proc> {
    let password = m.password.as_ref().map(|p| p.0.clone());
    let spec = &cfg.vaults[vault_name];
    let mut cmd = std::process::Command::new(exe);
    cmd.args([
        "-q",
        "archive",
        "mysql",
        "--dsn",
        &m.outputs["dsn"],
        "--resource",
        member,
        "--seal-interval",
        "1s",
        "--spool",
    ])
    .arg(m.dir.join("archive-spool"))
    .env("LIFEBOAT_VAULT", &spec.location)
    .env_remove("LIFEBOAT_PASSWORD")
    .env_remove("LIFEBOAT_PASSWORD_FILE")
    .env_remove("LIFEBOAT_MYSQL_PASSWORD");
    // Root's password in the archive's environment, never on its command line.
    if let Some(pw) = &password {
        cmd.env("LIFEBOAT_MYSQL_PASSWORD", pw);
    }
    match &spec.password {
        Secret::File(f) => {
            cmd.env("LIFEBOAT_PASSWORD_FILE", f);
        }
        Secret::Env(var) => {
            let pw = std::env::var(var).map_err(|_| {
                StackError::Refused(format!(
                    "vault `{vault_name}`'s password variable {var} is not set"
                ))
            })?;
            cmd.env("LIFEBOAT_PASSWORD", pw);
        }
    }
    let log = m.dir.join("archive.log");
    let (proc, mut child) = process::spawn(cmd, &log)?;
    // An archive that cannot start (another one still holds the resource,
    // the vault refuses it) exits at once: said now, never found later.
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < until {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(StackError::Process(format!(
                "the binlog archive of the recovered `{member}` exited at once ({status}): {} (the new primary's writes are not archived until it runs: stop what holds the archive, then `lifeboat archive mysql --resource {member}`)",
                process::tail(&log, 3)
            )));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    m.archive = Some(proc.clone());
    m.archive_vault = Some(vault_name.to_string());
    Ok(proc)
}

/// Stops a member's archive, if it runs one.
pub fn stop_archive(m: &MemberState) {
    if let Some(a) = &m.archive {
        Proc::stop(a, std::time::Duration::from_secs(15));
    }
}

/// An interim archive handed over to the daemon.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HandedOver {
    /// The stack.
    pub stack: String,
    /// The site it runs in.
    pub site: String,
    /// The database.
    pub member: String,
    /// The interim archive's process, now stopped.
    pub pid: i32,
}

/// Failback's hand-over: a recovered database's interim archive (started by
/// the recovery) is stopped once the file declares that database's own
/// archive in the site it was recovered into — the roles swapped, the
/// daemon archives it from now on (one archive per resource: the daemon's
/// would be refused while the interim one runs). The binlog stays on the
/// server meanwhile, and the daemon's archive resumes where this one stopped.
pub fn hand_over(cfg: &Config) -> Result<Vec<HandedOver>> {
    let mut out = Vec::new();
    for (name, stack) in &cfg.stacks {
        for (site, spec) in &cfg.sites {
            let Some(root) = &spec.root else { continue };
            let Some(mut st) = crate::state::StackState::read(root, name)? else {
                continue;
            };
            let mut changed = false;
            for (member, m) in st.members.iter_mut() {
                let declared = cfg.resources.get(member).is_some_and(|r| {
                    r.site.as_deref() == Some(site.as_str())
                        && stack.members.contains(member)
                        && lifeboat_control::protectors::follows(cfg, member, Path::new("spool"))
                            .iter()
                            .any(|f| f.follow.job == lifeboat_control::protectors::ARCHIVE)
                });
                let Some(a) = m.archive.clone() else { continue };
                if !declared {
                    continue;
                }
                if a.alive() {
                    Proc::stop(&a, std::time::Duration::from_secs(15));
                    out.push(HandedOver {
                        stack: name.clone(),
                        site: site.clone(),
                        member: member.clone(),
                        pid: a.pid,
                    });
                }
                m.archive = None;
                changed = true;
            }
            if changed {
                st.write()?;
            }
        }
    }
    Ok(out)
}
