//! `stack up`: the stack brought up in its site as the file declares it,
//! as a sequence of named steps — refused before anything starts
//! ([`Preflight`]), each member brought up in dependency order, kept when it
//! runs already ([`bring_up`]), a failed optional member recorded
//! ([`failed_optional`]), members no longer declared kept in the state
//! ([`keep_departed`]). It shares the recovery pipeline's member order, its
//! provisioning and its instances' launch values (`crate::recover`), but
//! restores nothing: what runs stays, what is missing starts empty.

use std::path::{Path, PathBuf};

use lifeboat_config::{Config, ResourceKind, Stack};

use crate::mariadb::Server;
use crate::process::Proc;
use crate::stack::{launch_values, lock, member_dir, order, provision, resolve, start_instance};
use crate::state::{MemberState, StackState};
use crate::{Result, StackError};

/// Brings `stack` up in `site`: each member provisioned (or kept, when it
/// runs already) in dependency order, instances started and healthy.
pub fn up(cfg: &Config, stack: &str, site: &str) -> Result<StackState> {
    let (s, root) = resolve(cfg, stack, site)?;
    let pre = Preflight {
        cfg,
        stack,
        site,
        declared: s,
        root: &root,
    };
    let _lock = pre.check()?;
    let before = StackState::read(&root, stack)?;
    let mut state = StackState {
        stack: stack.into(),
        site: site.into(),
        root: root.clone(),
        up_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        members: Vec::new(),
        warnings: Vec::new(),
    };
    for name in order(cfg, s) {
        let prev = before.as_ref().and_then(|b| b.member(&name));
        let kind = &cfg.resources[&name].kind;
        // Was its directory there before (and not the stack's)? Then a
        // failed member's directory is not the stack's to purge.
        let existed = member_dir(&root, kind, &name).exists()
            && prev.is_none_or(|p| p.provisioned != Some(true));
        match bring_up(cfg, site, &root, &name, prev, &state) {
            Ok(mut m) => {
                state
                    .warnings
                    .extend(resume_archive(cfg, &name, prev, &mut m));
                state.members.push((name, m))
            }
            Err(e) if s.optional.contains(&name) => {
                tracing::warn!(member = %name, error = %e, "optional member failed");
                let m = failed_optional(&root, kind, &name, existed, &e);
                state.members.push((name, m));
            }
            Err(e) => {
                state.write()?;
                return Err(StackError::Process(format!(
                    "stack `{stack}` in site `{site}`: member `{name}` failed: {e} (the members up so far stay up: `lifeboat stack status` shows them, `stack down` stops them)"
                )));
            }
        }
        state.write()?;
    }
    if let Some(b) = before {
        keep_departed(&mut state, b)?;
    }
    Ok(state)
}

/// Step: what refuses `stack up` before anything starts.
struct Preflight<'a> {
    cfg: &'a Config,
    stack: &'a str,
    site: &'a str,
    declared: &'a Stack,
    root: &'a Path,
}

impl Preflight<'_> {
    /// Refuses a site the stack was switched over from (a second writable
    /// primary); takes the stack's lock; reads every secret the members
    /// need first, so nothing starts half-way. Returns the lock.
    fn check(&self) -> Result<lifeboat_control::locks::Held> {
        let (stack, site) = (self.stack, self.site);
        let mark = crate::planned::switched_over_mark(self.root, stack);
        if mark.exists() {
            return Err(StackError::Refused(format!(
                "stack `{stack}` in site `{site}` was switched over to another site ({}): starting it here again would make a second primary, writable, beside the new one; to move it back, `lifeboat stack down --stack {stack} --site {site} --purge` and then `lifeboat recover --planned --stack {stack} --to {site}`; if this site is the primary again by other means, remove that file",
                mark.display()
            )));
        }
        let held = lock(self.root, stack, site)?;
        for name in &self.declared.members {
            crate::mariadb::secrets_readable(self.cfg, name, site)?;
        }
        Ok(held)
    }
}

/// Step: one member up — an instance kept when it runs, else started from
/// its launch spec with the members up so far; a data member provisioned
/// (kept when it runs) with the application's own account the file declares.
fn bring_up(
    cfg: &Config,
    site: &str,
    root: &Path,
    name: &str,
    prev: Option<&MemberState>,
    state: &StackState,
) -> Result<MemberState> {
    if matches!(cfg.resources[name].kind, ResourceKind::Instance { .. }) {
        return match prev.filter(|p| p.process.as_ref().is_some_and(Proc::alive)) {
            Some(running) => Ok(running.clone()),
            None => start_instance(cfg, root, name, &launch_values(cfg, state)?, &[], None),
        };
    }
    let m = provision(cfg, root, Some(site), name, prev)?;
    if let (false, Some((app, pw))) = (m.borrowed, crate::mariadb::app_account(cfg, name)?) {
        Server::new(m.dir.clone())
            .with_password(m.password.as_ref().map(|p| p.0.clone()))
            .ensure_app_account(&app, &pw)?;
    }
    Ok(m)
}

/// Step: a recovered database's binlog archive (started by its recovery,
/// stopped by `stack down`) started again into the same vault, unless it
/// still runs or the file now archives the database itself (failback's
/// hand-over). A failure is a warning: the member is up, unprotected.
fn resume_archive(
    cfg: &Config,
    name: &str,
    prev: Option<&MemberState>,
    m: &mut MemberState,
) -> Option<String> {
    let prev = prev?;
    let vault = prev.archive_vault.clone()?;
    if m.kind != "mysql" {
        return None;
    }
    if prev.archive.as_ref().is_some_and(Proc::alive) {
        // Still running (`stack up` of a stack that is up): kept.
        (m.archive, m.archive_vault) = (prev.archive.clone(), Some(vault));
        return None;
    }
    let declared = lifeboat_control::protectors::follows(cfg, name, Path::new("spool"))
        .iter()
        .any(|f| f.follow.job == lifeboat_control::protectors::ARCHIVE);
    if declared {
        return None;
    }
    let started = std::env::current_exe()
        .map_err(|e| StackError::Process(format!("cannot find the lifeboat binary: {e}")))
        .and_then(|exe| crate::protect::start_archive(cfg, &vault, name, m, &exe));
    started.err().map(|e| {
        format!(
            "the binlog archive of the recovered `{name}` was NOT started again: {e} (its writes are not archived: start `lifeboat archive mysql --resource {name}` into vault `{vault}` by hand)"
        )
    })
}

/// An optional member that failed, recorded with its error; its directory
/// is the stack's to purge only when it made it now.
fn failed_optional(
    root: &Path,
    kind: &ResourceKind,
    name: &str,
    existed: bool,
    e: &StackError,
) -> MemberState {
    let dir: PathBuf = member_dir(root, kind, name);
    MemberState {
        kind: kind.name().into(),
        provisioned: Some(!existed && dir.exists()),
        dir,
        error: Some(e.to_string()),
        ..Default::default()
    }
}

/// Step: members no longer declared stay in the state (as they were), so
/// that `down` still stops them and `--purge` still removes them.
fn keep_departed(state: &mut StackState, before: StackState) -> Result<()> {
    for (n, m) in before.members {
        if state.member(&n).is_none() {
            state.members.push((n, m));
        }
    }
    state.write()
}
