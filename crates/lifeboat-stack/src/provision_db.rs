//! A stack's database member provisioned: in the resource's own site the
//! server the file declares (used as it is when it is not ours), else a
//! `mariadbd` of the stack's own on a free, kept or pinned port, secured
//! with a root password of its own.

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat_config::Config;

use crate::mariadb::Server;
use crate::process::{self, Proc};
use crate::state::{MemberState, RootPassword};
use crate::{Result, StackError};

/// Where and how a database member is provisioned.
pub(crate) struct Provisioning<'a> {
    /// The file.
    pub cfg: &'a Config,
    /// The member.
    pub name: &'a str,
    /// Its directory under the root.
    pub dir: &'a Path,
    /// The stack runs in the resource's own site (its declared DSN's port).
    pub own_site: bool,
    /// What the stack had for it before (a restarted stack keeps its port).
    pub before: Option<&'a MemberState>,
    /// Its data directory was restored just now (a physical point): the
    /// server starts on it and is secured as it starts.
    pub restored: bool,
}

/// A database member: the declared server, someone else's (nothing was
/// provisioned), or a server of the stack's own.
pub(crate) enum Database {
    /// The server the file declares, already there and not ours.
    Theirs(MemberState),
    /// A server of the stack's own.
    Ours(OwnServer),
}

/// A server the stack runs.
pub(crate) struct OwnServer {
    /// Its process.
    pub process: Proc,
    /// Its root password (a fresh server's, or the one it had).
    pub password: Option<RootPassword>,
    /// `dsn`, `host`, `port`, `socket`.
    pub outputs: BTreeMap<String, String>,
}

/// `host` and `port` of a `mysql://user@host:port` DSN.
pub(crate) fn dsn_host_port(dsn: &str) -> Option<(String, u16)> {
    let rest = dsn.strip_prefix("mysql://")?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let hostport = rest.split('/').next()?;
    match hostport.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((hostport.to_string(), 3306)),
    }
}

/// Whether a recovery of database member `name` into site `own` (`None`:
/// a scratch stack) runs a server of the stack's own, as [`provision`]
/// decides: anywhere but the resource's own site; there, when the server
/// the file declares is on this host and nothing answers on its port.
pub(crate) fn ours_to_run(cfg: &Config, name: &str, own: Option<&str>) -> bool {
    let Some(r) = cfg.resources.get(name) else {
        return false;
    };
    let own_site = own.is_some() && r.site.as_deref() == own;
    let lifeboat_config::ResourceKind::Mysql { dsn, .. } = &r.kind else {
        return false;
    };
    if !own_site {
        return true;
    }
    match dsn_host_port(dsn) {
        Some((host, port)) => {
            matches!(host.as_str(), "127.0.0.1" | "localhost")
                && std::net::TcpStream::connect((host.as_str(), port)).is_err()
        }
        None => false,
    }
}

/// Provisions database member `at.name` declared with `dsn`.
pub(crate) fn provision(at: &Provisioning, dsn: &str) -> Result<Database> {
    let running = at
        .before
        .and_then(|b| b.process.clone())
        .filter(Proc::alive);
    // The port the file declares in the resource's own site; else the one
    // it had (clients of a restarted stack keep their DSN).
    let declared = match at.own_site {
        true => match declared_server(at, dsn, running.is_some())? {
            Declared::Theirs(m) => return Ok(Database::Theirs(m)),
            Declared::Port(port) => Some(port),
        },
        false => None,
    };
    own_server(at, declared, running).map(Database::Ours)
}

/// The declared server in the resource's own site.
enum Declared {
    /// Already there and not ours: used as it is.
    Theirs(MemberState),
    /// Ours to run, on this port.
    Port(u16),
}

/// A server the file declares that is already there and not ours (another
/// host, or a port something else answers on) is used as it is: nothing
/// is provisioned for it. Else its port is the one to run ours on.
fn declared_server(at: &Provisioning, dsn: &str, ours_runs: bool) -> Result<Declared> {
    let name = at.name;
    let (host, port) = dsn_host_port(dsn).ok_or_else(|| {
        StackError::Refused(format!(
            "resource `{name}`: cannot read host and port of {dsn}"
        ))
    })?;
    let local = matches!(host.as_str(), "127.0.0.1" | "localhost");
    let answers = || std::net::TcpStream::connect((host.as_str(), port)).is_ok();
    if local && (ours_runs || !answers()) {
        return Ok(Declared::Port(port));
    }
    if !answers() {
        return Err(StackError::Process(format!(
            "resource `{name}`'s server {host}:{port} does not answer: the embedded default provisions servers on 127.0.0.1 only; start that server, or declare a local one"
        )));
    }
    let _ = std::fs::remove_dir(at.dir);
    let mut outputs = BTreeMap::new();
    outputs.insert("dsn".into(), dsn.to_string());
    outputs.insert("host".into(), host);
    outputs.insert("port".into(), port.to_string());
    Ok(Declared::Theirs(MemberState {
        kind: "mysql".into(),
        dir: at.dir.to_path_buf(),
        outputs,
        borrowed: true,
        provisioned: Some(false),
        ..Default::default()
    }))
}

/// The stack's own server: provisioned (a fresh data directory is
/// secured), started on the declared, pinned, kept or a free port unless it
/// runs already.
fn own_server(
    at: &Provisioning,
    declared: Option<u16>,
    running: Option<Proc>,
) -> Result<OwnServer> {
    let (cfg, name) = (at.cfg, at.name);
    // Outside its own site, where the file pins it (`recover_listen`).
    let pinned = match at.own_site {
        true => None,
        false => crate::launch::pinned(name, &cfg.resources[name].kind)?,
    };
    let listen = pinned.as_ref().and_then(|p| p.listen.clone());
    let server = Server::new(at.dir.to_path_buf());
    let fresh = server.provision()?;
    let kept = || {
        at.before
            .and_then(|b| b.outputs.get("port"))
            .and_then(|p| p.parse().ok())
    };
    let port = match declared.or(listen.as_ref().map(|l| l.1)).or_else(kept) {
        None | Some(0) => process::free_port()?,
        Some(port) => port,
    };
    let host = listen
        .as_ref()
        .map_or("127.0.0.1".to_string(), |l| l.0.clone());
    // A restored directory holds the source's accounts: root gets the
    // stack's password as the server starts (before any connection).
    let secured_at_start = match at.restored && running.is_none() {
        true => Some(crate::mariadb::root_for(cfg, name, at.own_site)?),
        false => None,
    };
    let process = match running {
        Some(p) => p,
        None => {
            if listen.is_some() {
                crate::launch::free_to_bind(name, &host, port, "`recover_listen`")?;
            }
            let init = secured_at_start.as_ref().map(|(root, login)| {
                let login = login.as_ref().map(|(u, p)| (u.as_str(), p.as_str()));
                crate::mariadb::secure_sql(root, login)
            });
            server.start_with(&host, port, init.as_deref())?
        }
    };
    let password = match (fresh, secured_at_start) {
        (_, Some((root, _))) => Some(RootPassword(root)),
        (true, None) => Some(crate::mariadb::secure_new(
            cfg,
            name,
            at.own_site,
            server.clone(),
        )?),
        (false, None) => at.before.and_then(|b| b.password.clone()),
    };
    let mut outputs = BTreeMap::new();
    outputs.insert(
        "dsn".into(),
        Server::dsn(port).replacen("127.0.0.1", &host, 1),
    );
    outputs.insert("host".into(), host);
    outputs.insert("port".into(), port.to_string());
    let socket = match pinned.and_then(|p| p.socket) {
        Some(at) => crate::launch::link_socket(name, &server.socket(), &at)?,
        None => server.socket(),
    };
    outputs.insert("socket".into(), socket.display().to_string());
    Ok(OwnServer {
        process,
        password,
        outputs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dsns_host_and_port_are_read_with_the_default_port() {
        let hp = |d: &str| dsn_host_port(d);
        assert_eq!(
            hp("mysql://root@127.0.0.1:3307"),
            Some(("127.0.0.1".into(), 3307))
        );
        assert_eq!(
            hp("mysql://u:p@w@db.example/shop"),
            Some(("db.example".into(), 3306))
        );
        assert_eq!(hp("mysql://localhost:x"), None);
        assert_eq!(hp("postgres://localhost"), None);
    }
}
