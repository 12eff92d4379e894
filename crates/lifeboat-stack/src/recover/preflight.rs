//! The recovery's first step: what refuses it before anything is restored
//! or started.

use super::Recovery;
use crate::state::StackState;
use crate::{Result, StackError};

/// The checks a recovery passes before it touches anything.
pub(crate) struct Preflight<'r, 'c> {
    r: &'r Recovery<'c>,
}

impl<'r, 'c> Preflight<'r, 'c> {
    /// The preflight of recovery `r`.
    pub(crate) fn of(r: &'r Recovery<'c>) -> Self {
        Preflight { r }
    }

    /// Refuses a pinned address that is taken (a switchover frees the
    /// primary's on its way: judged when it starts), a stack that is up in
    /// the root already, and a stopped stack whose database data is still
    /// there (a new server would start on it, with its old root password).
    pub(crate) fn check(&self) -> Result<()> {
        let r = self.r;
        if !r.opts.planned {
            crate::launch::pinned_addresses_free(r.cfg, r.declared, r.site)?;
        }
        let Some(before) = StackState::read(&r.root, r.stack)? else {
            return Ok(());
        };
        self.not_up(&before)?;
        self.no_data_left(&before)
    }

    /// Refused when a member of the stack still runs in the root.
    fn not_up(&self, before: &StackState) -> Result<()> {
        let (stack, site) = (self.r.stack, self.r.site);
        let up = before
            .members
            .iter()
            .any(|(_, m)| m.process.as_ref().is_some_and(|p| p.alive()));
        match up {
            false => Ok(()),
            true => Err(StackError::Refused(format!(
                "stack `{stack}` is already up in site `{site}`: a recovery provisions it afresh; stop it first (`lifeboat stack down --stack {stack} --site {site} --purge`, which removes its data there)"
            ))),
        }
    }

    /// Refused when a stopped stack's database data is still in the root.
    fn no_data_left(&self, before: &StackState) -> Result<()> {
        let (stack, site) = (self.r.stack, self.r.site);
        let left = before
            .members
            .iter()
            .find(|(_, m)| m.kind == "mysql" && !m.borrowed && m.dir.join("data").exists());
        match left {
            None => Ok(()),
            Some((n, m)) => Err(StackError::Refused(format!(
                "stack `{stack}` was stopped in site `{site}` but its data is still there (database `{n}` in {}): a recovery provisions it afresh; remove it first with `lifeboat stack down --stack {stack} --site {site} --purge` (copy out what you still need), or bring it back as it is with `lifeboat stack up --stack {stack} --site {site}`",
                m.dir.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recover::tests::recovery_in;
    use crate::state::MemberState;

    fn state_with(root: &std::path::Path, m: MemberState) -> StackState {
        StackState {
            stack: "shop".into(),
            site: "dr".into(),
            root: root.to_path_buf(),
            up_at: "2026-12-07T00:00:00.000Z".into(),
            members: vec![("shop-db".into(), m)],
            warnings: Vec::new(),
        }
    }

    /// Writes the stack's state with one stopped database member whose data
    /// directory is under `root` (`borrowed`: not the stack's own server).
    fn stopped_database(root: &std::path::Path, borrowed: bool) {
        let db = root.join("mysql/shop-db");
        std::fs::create_dir_all(db.join("data")).unwrap();
        let m = MemberState {
            kind: "mysql".into(),
            dir: db,
            borrowed,
            ..Default::default()
        };
        state_with(root, m).write().unwrap();
    }

    #[test]
    fn a_root_without_a_stack_passes() {
        let dir = tempfile::tempdir().unwrap();
        recovery_in(dir.path(), |r| Preflight::of(r).check().unwrap());
    }

    #[test]
    fn a_stopped_stacks_database_data_refuses_the_recovery_and_names_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        stopped_database(dir.path(), false);
        recovery_in(dir.path(), |r| {
            let e = Preflight::of(r).check().unwrap_err().to_string();
            assert!(e.contains("its data is still there"), "{e}");
            assert!(
                e.contains("stack down --stack shop --site dr --purge"),
                "{e}"
            );
        });
    }

    #[test]
    fn a_borrowed_database_or_one_without_data_is_no_obstacle() {
        let dir = tempfile::tempdir().unwrap();
        stopped_database(dir.path(), true);
        recovery_in(dir.path(), |r| Preflight::of(r).check().unwrap());
    }

    #[test]
    fn a_member_still_running_refuses_the_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let pid = std::process::id() as i32;
        let me = crate::process::Proc {
            pid,
            start_time: lifeboat_instance::supervise::start_time(pid).unwrap(),
        };
        let m = MemberState {
            kind: "instance".into(),
            dir: dir.path().join("hosts/shop"),
            process: Some(me),
            ..Default::default()
        };
        state_with(dir.path(), m).write().unwrap();
        recovery_in(dir.path(), |r| {
            let e = Preflight::of(r).check().unwrap_err().to_string();
            assert!(e.contains("is already up in site `dr`"), "{e}");
        });
    }
}
