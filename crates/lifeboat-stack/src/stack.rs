//! `stack up`, `stack down`, `stack status`: a stack's members provisioned in
//! a site of the embedded default, in dependency order.
//!
//! (Over 600 lines: provisioning, status and teardown of every member kind, kept together until the protector interface moves each kind's part to its protector.)

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lifeboat_config::{Config, ResourceKind, Stack};

use crate::process::Proc;
use crate::state::{MemberState, StackState};
use crate::{Result, StackError};

/// What the members provide, by `RESOURCE.OUTPUT` (`shop-db.dsn`), plus
/// `site.root`: the values of an instance's launch-spec placeholders.
pub type Outputs = BTreeMap<String, String>;

/// The lock one operation on stack `stack` in a site (`root`) holds for as
/// long as it runs: `recover`, `stack up` and `stack down` never run two at
/// once on one stack and site (two recoveries installed one data directory
/// twice and left a server nothing tracked). Outside `ROOT/stacks/STACK/`,
/// which `--purge` removes. Released by the kernel when the process ends.
pub(crate) fn lock(root: &Path, stack: &str, site: &str) -> Result<lifeboat_control::locks::Held> {
    lock_file(
        &root.join("locks").join(format!("stack-{stack}.lock")),
        stack,
        site,
    )
}

/// Lock file `path` of an operation on stack `stack` in `site`, taken, or
/// refused naming who holds it.
pub(crate) fn lock_file(
    path: &Path,
    stack: &str,
    site: &str,
) -> Result<lifeboat_control::locks::Held> {
    match lifeboat_control::locks::try_lock(path) {
        Ok(Ok(held)) => Ok(held),
        Ok(Err(busy)) => Err(StackError::Refused(format!(
            "another lifeboat ({}) is recovering, starting or stopping stack `{stack}` in site `{site}` (it holds {}): wait for it to end, or stop it, then run this again",
            busy.holder(),
            busy.path.display()
        ))),
        Err(e) => Err(StackError::Process(e.to_string())),
    }
}

/// The stack and the root of the site, checked.
pub fn resolve<'c>(cfg: &'c Config, stack: &str, site: &str) -> Result<(&'c Stack, PathBuf)> {
    let s = cfg.stacks.get(stack).ok_or_else(|| {
        StackError::Refused(format!(
            "there is no stack `{stack}` in the file (stacks: {})",
            names(cfg.stacks.keys())
        ))
    })?;
    let site_cfg = cfg.sites.get(site).ok_or_else(|| {
        StackError::Refused(format!(
            "there is no site `{site}` in the file (sites: {})",
            names(cfg.sites.keys())
        ))
    })?;
    let root = site_cfg.root.clone().ok_or_else(|| {
        StackError::Refused(format!(
            "site `{site}` has no `root`: the embedded default provisions a stack's servers, buckets and hosts under it (add `root = \"/var/lib/lifeboat/{site}\"`)"
        ))
    })?;
    Ok((s, root))
}

fn names<'a>(it: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = it.map(String::as_str).collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

fn rank(kind: &ResourceKind) -> u8 {
    match kind {
        ResourceKind::Mysql { .. } => 0,
        ResourceKind::Bucket { .. } => 1,
        ResourceKind::Files { .. } | ResourceKind::Other { .. } => 2,
        ResourceKind::Instance { .. } => 3,
    }
}

/// The members in the order they come up: servers, buckets and files
/// first, then each instance after the instances its launch spec names.
pub fn order(cfg: &Config, stack: &Stack) -> Vec<String> {
    let mut members: Vec<&String> = stack.members.iter().collect();
    members.sort_by_key(|m| cfg.resources.get(*m).map_or(9, |r| rank(&r.kind)));
    let mut out: Vec<String> = Vec::new();
    let deps = |m: &str| -> Vec<String> {
        match cfg.resources.get(m).map(|r| &r.kind) {
            Some(ResourceKind::Instance { spec }) => {
                let text = spec.to_string();
                lifeboat_config::check_stack::placeholders(&text)
                    .into_iter()
                    .map(|(r, _)| r)
                    .filter(|r| r != m && stack.members.contains(r))
                    .collect()
            }
            _ => Vec::new(),
        }
    };
    // Repeated passes: a member whose dependencies are all out comes next
    // (the loader refuses nothing cyclic yet; a cycle ends in member order).
    let mut left: Vec<&String> = members;
    while !left.is_empty() {
        let pos = left
            .iter()
            .position(|m| deps(m).iter().all(|d| out.contains(d)))
            .unwrap_or(0);
        out.push(left.remove(pos).clone());
    }
    out
}

pub(crate) fn member_dir(root: &Path, kind: &ResourceKind, name: &str) -> PathBuf {
    let sub = match kind {
        ResourceKind::Mysql { .. } => "mysql",
        ResourceKind::Bucket { .. } => "buckets",
        ResourceKind::Files { .. } => "files",
        ResourceKind::Instance { .. } => "hosts",
        ResourceKind::Other { kind, .. } => kind,
    };
    root.join(sub).join(name)
}

fn mkdir(p: &Path) -> Result<()> {
    std::fs::create_dir_all(p).map_err(|e| StackError::io("create", p, e))
}

/// Provisions a database server, bucket or files member (an empty one, or
/// the one already there), starting its server if it has one. In the
/// resource's own site (`[resource.X] site`; `site` is `None` for a scratch
/// stack, which never is), what the file declares is used: the DSN's port
/// for the server, the bucket's own directory; anywhere else (a recovery, a
/// drill) a free port and a directory under `root`.
pub fn provision(
    cfg: &Config,
    root: &Path,
    site: Option<&str>,
    name: &str,
    before: Option<&MemberState>,
) -> Result<MemberState> {
    provision_member(cfg, root, site, name, before, false)
}

/// [`provision`], for a database member whose data directory a recovery
/// has just restored (`restored`): its server starts on that directory and
/// is secured as it starts (a new server of the stack's own is secured
/// after its install instead).
pub(crate) fn provision_member(
    cfg: &Config,
    root: &Path,
    site: Option<&str>,
    name: &str,
    before: Option<&MemberState>,
    restored: bool,
) -> Result<MemberState> {
    let r = cfg
        .resources
        .get(name)
        .ok_or_else(|| StackError::Refused(format!("there is no resource `{name}`")))?;
    let own_site = site.is_some() && r.site.as_deref() == site;
    // A bucket on the S3 endpoint the site names (crate::bucket).
    if let (ResourceKind::Bucket { .. }, Some(site)) = (&r.kind, site)
        && let Some(store) = crate::bucket::SiteStore::of(cfg, site)?
        && let Some((m, _)) = crate::bucket::provision(cfg, &store, root, name, None, before)?
    {
        return Ok(m);
    }
    let mut dir = member_dir(root, &r.kind, name);
    // In the resource's own site, the directory the file declares.
    match &r.kind {
        ResourceKind::Bucket { location } if own_site => {
            if let Some(path) = location.strip_prefix("file://") {
                dir = PathBuf::from(path);
            }
        }
        ResourceKind::Files { paths, .. } if own_site && paths.len() == 1 => {
            dir = paths[0].clone();
        }
        _ => {}
    }
    // A bucket or files member the stack had (stopped by `stack down`, its
    // data kept) comes back from where it was: a replica a recovery used in
    // place, a directory of the recovery's own — never a new empty one.
    if let Some(b) = before.filter(|b| b.dir.is_dir())
        && matches!(
            r.kind,
            ResourceKind::Bucket { .. } | ResourceKind::Files { .. }
        )
    {
        dir = b.dir.clone();
    }
    // Made now, or by the stack before: `down --purge` may remove it.
    let provisioned = !dir.exists() || before.is_some_and(|b| b.provisioned == Some(true));
    mkdir(&dir)?;
    let mut outputs = BTreeMap::new();
    let mut proc = None;
    let mut password = None;
    match &r.kind {
        ResourceKind::Mysql { dsn, .. } => {
            let at = crate::provision_db::Provisioning {
                cfg,
                name,
                dir: &dir,
                own_site,
                before,
                restored,
            };
            match crate::provision_db::provision(&at, dsn)? {
                crate::provision_db::Database::Theirs(m) => return Ok(m),
                crate::provision_db::Database::Ours(db) => {
                    proc = Some(db.process);
                    password = db.password;
                    outputs = db.outputs;
                }
            }
        }
        ResourceKind::Bucket { .. } => {
            outputs.insert("location".into(), format!("file://{}", dir.display()));
            outputs.insert("path".into(), dir.display().to_string());
        }
        ResourceKind::Files { .. } => {
            outputs.insert("path".into(), dir.display().to_string());
        }
        ResourceKind::Instance { .. } => {
            return Err(StackError::Refused(format!(
                "`{name}` is an instance: it is started, not provisioned"
            )));
        }
        ResourceKind::Other { kind, .. } => {
            return Err(StackError::Refused(format!(
                "`{name}` is a resource of kind `{kind}`: a stack cannot provision it"
            )));
        }
    }
    let borrowed = !dir.starts_with(root);
    Ok(MemberState {
        kind: r.kind.name().into(),
        dir,
        outputs,
        process: proc,
        borrowed,
        provisioned: Some(provisioned),
        password,
        ..Default::default()
    })
}

/// Starts instance member `name` from its launch spec, with `outputs` (the
/// other members', as `RESOURCE.OUTPUT`) and its own `listen`/`port`
/// filled in. `roots`/`to`: paths of the spec inside `roots` are moved under
/// `to` (a restored host); none for an instance run where it was declared.
pub fn start_instance(
    cfg: &Config,
    root: &Path,
    name: &str,
    outputs: &Outputs,
    roots: &[PathBuf],
    to: Option<&Path>,
) -> Result<MemberState> {
    let Some(ResourceKind::Instance { spec }) = cfg.resources.get(name).map(|r| &r.kind) else {
        return Err(StackError::Refused(format!(
            "`{name}` is not an instance resource"
        )));
    };
    let spec: lifeboat_instance::InstanceSpec = serde_json::from_value(spec.clone())
        .map_err(|e| StackError::Refused(format!("resource `{name}`: {e}")))?;
    let launch = spec.launch.ok_or_else(|| {
        StackError::Refused(format!(
            "instance `{name}` has no launch spec: add `launch = {{ command = [...], health = \"http://${{listen}}/health\" }}`"
        ))
    })?;
    let dir = root.join("hosts").join(name);
    // Made now, or an instance directory of Lifeboat's (its launch spec is there).
    let provisioned = !dir.exists() || dir.join(lifeboat_instance::launch::LAUNCH_JSON).exists();
    mkdir(&dir)?;
    // Stop what an earlier `up` left running there.
    if dir.join(lifeboat_instance::supervise::LAUNCH_PID).exists() {
        let _ = lifeboat_instance::supervise::stop(&dir);
    }
    let port = crate::launch::instance_port(name, Some(&launch))?;
    let mut values = outputs.clone();
    values.insert("listen".into(), format!("127.0.0.1:{port}"));
    values.insert("port".into(), port.to_string());
    values.insert("site.root".into(), root.display().to_string());
    let resolved = lifeboat_instance::launch::resolve(
        &launch,
        roots,
        &[],
        to.unwrap_or(Path::new("/")),
        &values,
        "",
        name,
    )
    .map_err(|e| crate::launch::launch_error(name, e))?;
    lifeboat_instance::launch::write(&dir, &resolved)?;
    let started = lifeboat_instance::supervise::start(&dir)?;
    let start_time = lifeboat_instance::supervise::start_time(started.pid).ok_or_else(|| {
        StackError::Process(format!(
            "instance `{name}` exited right after it became healthy; see {}",
            started.log.display()
        ))
    })?;
    Ok(MemberState {
        kind: "instance".into(),
        dir,
        outputs: instance_outputs(port),
        process: Some(Proc {
            pid: started.pid,
            start_time,
        }),
        provisioned: Some(provisioned),
        ..Default::default()
    })
}

/// Every member's outputs as `RESOURCE.OUTPUT` values (no secret among
/// them: what a report shows).
pub fn outputs_of(state: &StackState) -> Outputs {
    let mut o = Outputs::new();
    for (n, m) in &state.members {
        for (k, v) in &m.outputs {
            o.insert(format!("{n}.{k}"), v.clone());
        }
    }
    o.insert("site.root".into(), state.root.display().to_string());
    o
}

/// What an instance's launch spec is filled with: every member's outputs,
/// and for a database that has a root password, `${NAME.root_dsn}` and
/// `${NAME.root_password}`; `${NAME.dsn}`, `${NAME.user}` and
/// `${NAME.password}` are the application's own account when the file
/// declares one (`app = { user, database, password_file }`), else root's
/// (so the application logs in either way). Written only into the
/// instance's `launch.json` (0600) and its environment; a spec should pass
/// them in `env`, never in `command`.
pub fn launch_values(cfg: &Config, state: &StackState) -> Result<Outputs> {
    let mut o = outputs_of(state);
    for (n, m) in &state.members {
        let (Some(pw), Some(dsn)) = (&m.password, m.outputs.get("dsn")) else {
            continue;
        };
        // The DSN as the member gives it (its pinned address, if any).
        let Some(at) = dsn.strip_prefix("mysql://root@") else {
            continue;
        };
        let root_dsn = format!("mysql://root:{}@{at}", userinfo(&pw.0));
        o.insert(format!("{n}.root_dsn"), root_dsn.clone());
        o.insert(format!("{n}.root_password"), pw.0.clone());
        match crate::mariadb::app_account(cfg, n)? {
            Some((app, apw)) => {
                o.insert(
                    format!("{n}.dsn"),
                    format!("mysql://{}:{}@{at}", userinfo(&app.user), userinfo(&apw)),
                );
                o.insert(format!("{n}.user"), app.user);
                o.insert(format!("{n}.password"), apw);
                o.insert(format!("{n}.database"), app.database);
            }
            None => {
                o.insert(format!("{n}.dsn"), root_dsn);
                o.insert(format!("{n}.user"), "root".into());
                o.insert(format!("{n}.password"), pw.0.clone());
            }
        }
    }
    Ok(o)
}

/// `text` as the user or password part of a URL: every byte but the
/// unreserved ones (`A-Z a-z 0-9 - . _ ~`) percent-encoded, so that any
/// password survives a URL parser (Lifeboat's own decodes it again).
fn userinfo(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub use crate::up::up;

/// Stops what one member runs: an instance's process group; a server's
/// archive, then the server.
pub fn stop_member(m: &mut MemberState) -> Result<()> {
    if m.kind == "instance" {
        if m.dir
            .join(lifeboat_instance::supervise::LAUNCH_PID)
            .exists()
        {
            lifeboat_instance::supervise::stop(&m.dir)?;
        }
    } else {
        crate::protect::stop_archive(m);
        if let Some(p) = &m.process {
            p.stop(Duration::from_secs(30));
        }
    }
    m.process = None;
    m.archive = None;
    Ok(())
}

/// What an instance listening on `port` gives the others.
pub fn instance_outputs(port: u16) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("listen".to_string(), format!("127.0.0.1:{port}")),
        ("url".to_string(), format!("http://127.0.0.1:{port}")),
        ("port".to_string(), port.to_string()),
    ])
}

/// Stops the stack's processes, instances first; with `purge`, also
/// removes the members' directories and the state (a drill's scratch stack).
/// `progress` hears a line as each member is stopped and each directory removed.
pub fn down(
    cfg: &Config,
    stack: &str,
    site: &str,
    purge: bool,
    progress: &dyn Fn(&str),
) -> Result<Option<StackState>> {
    let (s, root) = resolve(cfg, stack, site)?;
    let held = lock(&root, stack, site)?;
    let Some(mut state) = StackState::read(&root, stack)? else {
        return Ok(None);
    };
    for (n, m) in state.members.iter_mut().rev() {
        let t = std::time::Instant::now();
        let running = m.process.is_some() || m.archive.is_some();
        stop_member(m)?;
        if running {
            progress(&format!(
                "{n} ({}): stopped in {:.1} s",
                m.kind,
                t.elapsed().as_secs_f64()
            ));
        }
    }
    if purge {
        // Buckets on the site's endpoint that the stack made: emptied and
        // deleted (never a borrowed one); a failure keeps the state.
        let failed = purge_buckets(cfg, site, &state);
        if !failed.is_empty() {
            state.write()?;
            return Err(StackError::Process(format!(
                "stack `{stack}` in site `{site}` is down, but not purged: {} (its state is kept: `stack down --purge` again once the endpoint answers)",
                failed.join("; ")
            )));
        }
        for d in crate::purge::purgeable(cfg, s, &root, &state) {
            let t = std::time::Instant::now();
            let _ = std::fs::remove_dir_all(&d);
            progress(&format!(
                "removed {} in {:.1} s",
                d.display(),
                t.elapsed().as_secs_f64()
            ));
        }
        crate::launch::unlink_sockets(&state);
        let p = StackState::path(&root, stack);
        let _ = std::fs::remove_dir_all(p.parent().expect("parent"));
        // The stack's lock file too (held here: every taker tries without
        // waiting, so one that opened it now finds it held and refuses).
        let _ = std::fs::remove_file(&held.path);
        // The kinds' directories, when this stack was all they held.
        for sub in ["mysql", "buckets", "files", "hosts", "stacks", "locks"] {
            let _ = std::fs::remove_dir(root.join(sub));
        }
    } else {
        state.write()?;
    }
    Ok(Some(state))
}

/// Empties and deletes the stack's own buckets on the site's endpoint;
/// returns what could not be removed.
pub fn purge_buckets(cfg: &Config, site: &str, state: &StackState) -> Vec<String> {
    let own: Vec<&MemberState> = state
        .members
        .iter()
        .map(|(_, m)| m)
        .filter(|m| crate::bucket::is_s3(m) && !m.borrowed && m.provisioned != Some(false))
        .collect();
    if own.is_empty() {
        return Vec::new();
    }
    let store = match crate::bucket::SiteStore::of(cfg, site) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return vec![format!(
                "site `{site}` names no S3 endpoint any more, so its buckets cannot be removed"
            )];
        }
        Err(e) => return vec![e.to_string()],
    };
    own.into_iter()
        // Never a replication destination, whoever recorded it.
        .filter(|m| {
            store
                .replication_into(cfg, &m.outputs["location"])
                .is_none()
        })
        .filter_map(|m| crate::bucket::remove(&store, &m.outputs["location"]).err())
        .map(|e| e.to_string())
        .collect()
}

pub use crate::status::{MemberStatus, status};
