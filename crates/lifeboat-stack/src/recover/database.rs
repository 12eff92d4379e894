//! A database member: the vault whose archive reaches furthest chosen, an
//! empty server provisioned, its snapshot loaded and its binlog archive
//! replayed to the newest restorable second (or `--at`), then the
//! application's own account.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use lifeboat_control::protectors::{
    DatabaseTarget, Reading, RestoreError, RestoreJob, RollForward, Stage, Target, Watch,
};
use lifeboat_vault::Vault;

use super::sources::{SiteVaults, protector_of};
use super::{Recovery, Source};
use crate::state::MemberState;
use crate::{Result, StackError};

/// Where a database is recovered from: the vault, the replay plan (its
/// snapshot), and the time the data will be of.
pub(crate) struct DatabaseSource<'v> {
    /// The vault's name.
    pub vault_name: &'v str,
    /// The vault.
    pub vault: &'v Vault,
    /// The snapshot and the binlog to replay.
    pub plan: lifeboat_mysql::pitr::Plan,
    /// The last recovered commit's time: `--at`, else the newest restorable second.
    pub data_time: DateTime<Utc>,
}

impl<'v> DatabaseSource<'v> {
    /// The vault of the site whose archive reaches furthest for database
    /// `name` (to `at`, when given); refused with each vault's reason when
    /// none can restore it.
    pub(crate) fn choose(
        vaults: &'v [(String, Vault)],
        name: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<DatabaseSource<'v>> {
        let target = match at {
            Some(t) => lifeboat_mysql::Target::Time(t),
            None => lifeboat_mysql::Target::Latest,
        };
        let mut best: Option<DatabaseSource> = None;
        let mut why_not = Vec::new();
        for (vn, v) in vaults {
            let catalog = match lifeboat_mysql::Catalog::load(v, name) {
                Ok(c) => c,
                Err(e) => {
                    why_not.push(format!("vault `{vn}`: {e}"));
                    continue;
                }
            };
            let reach = catalog.windows().iter().map(|w| w.to).max();
            match (lifeboat_mysql::pitr::plan(&catalog, &target), reach) {
                (Ok(plan), Some(reach)) => {
                    let data_time = at.unwrap_or(reach);
                    if best.as_ref().is_none_or(|b| data_time > b.data_time) {
                        best = Some(DatabaseSource {
                            vault_name: vn,
                            vault: v,
                            plan,
                            data_time,
                        });
                    }
                }
                (Err(e), _) => why_not.push(format!("vault `{vn}`: {e}")),
                (Ok(_), None) => why_not.push(format!("vault `{vn}`: no restorable window")),
            }
        }
        best.ok_or_else(|| {
            StackError::Refused(format!(
                "no vault of the site can restore database `{name}`: {}",
                why_not.join("; ")
            ))
        })
    }
}

/// Recovers database member `name`: source chosen, server provisioned,
/// data loaded. A half-loaded server is stopped, never left running
/// unrecorded (its directory stays for `stack down --purge`).
pub(crate) fn recover(
    r: &Recovery,
    vaults: &SiteVaults,
    name: &str,
) -> Result<(MemberState, Source)> {
    let src = DatabaseSource::choose(vaults.list(), name, r.opts.at)?;
    // The application's account is read before anything starts: a
    // password file that is not there fails here, not after the load.
    let app = crate::mariadb::app_account(r.cfg, name)?;
    let t = Instant::now();
    let m = crate::stack::provision(r.cfg, &r.root, r.own, name, None)?;
    r.step("start an empty database server", Some(name), t);
    if let Err(e) = load(r, &m, name, &src, app.as_ref()) {
        if let Some(p) = &m.process {
            p.stop(Duration::from_secs(30));
        }
        return Err(e);
    }
    let why = match r.opts.at {
        Some(_) => "the snapshot before --at, rolled forward to it",
        None => "the newest restorable second of the site's archive",
    };
    let source = Source {
        from: "point+binlog".into(),
        ..Source::point(
            name,
            "mysql",
            src.vault_name,
            &src.plan.snapshot.0,
            Some(src.data_time),
            why.into(),
        )
    };
    Ok((m, source))
}

/// Each stage of a database's restore as a step of the recovery, timed
/// from the end of the one before.
struct StageSteps<'r> {
    r: &'r Recovery<'r>,
    member: &'r str,
    since: Mutex<Instant>,
}

impl Watch for StageSteps<'_> {
    fn watch(&self, _read: &(dyn Fn() -> Reading + Sync), work: &mut (dyn FnMut() + Send)) {
        work()
    }

    fn stage_ended(&self, stage: Stage) {
        let what = match stage {
            Stage::Loaded => "load the snapshot",
            Stage::RolledForward => "replay the binlog archive",
        };
        let mut since = self.since.lock().expect("stage clock");
        self.r.step(what, Some(self.member), *since);
        *since = Instant::now();
    }
}

/// Loads database member `name` into its new server `m`: the plan's
/// snapshot (with its users and grants, when it holds them), the binlog
/// archive replayed to the plan's end, then the application's own account
/// as the file declares it (after the snapshot's: its other grants stay).
fn load(
    r: &Recovery,
    m: &MemberState,
    name: &str,
    src: &DatabaseSource,
    app: Option<&(lifeboat_config::model::AppAccount, String)>,
) -> Result<()> {
    let (id, point) = &src.plan.snapshot;
    let server =
        DatabaseTarget::server(&m.outputs["dsn"], m.password.as_ref().map(|p| p.0.clone()));
    let roll_forward = match r.opts.at {
        Some(t) => RollForward::To(t),
        None => RollForward::Latest,
    };
    let work = r.root.join("mysql").join(name).join("tmp");
    let steps = StageSteps {
        r,
        member: name,
        since: Mutex::new(Instant::now()),
    };
    let job = RestoreJob {
        vault: src.vault,
        id,
        point,
        target: Target::Database(server),
        roll_forward: Some(roll_forward),
        options: serde_json::json!({"users": src.plan.logical().is_some_and(|m| m.users), "work": work}),
        watch: &steps,
    };
    protector_of(&point.kind)
        .and_then(|p| p.restore(&job))
        .map_err(|e| match e {
            RestoreError::RollForward(e) => {
                StackError::Process(format!("replaying the binlog archive: {e}"))
            }
            e => StackError::Process(format!("restoring snapshot {}: {e}", id.short())),
        })?;
    if let Some((app, pw)) = app {
        crate::mariadb::Server::new(m.dir.clone())
            .with_password(m.password.as_ref().map(|p| p.0.clone()))
            .ensure_app_account(app, pw)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site whose vaults hold nothing of the database is refused with
    /// each vault's reason, named.
    #[test]
    fn no_vault_that_can_restore_the_database_is_a_refusal_naming_each_vault() {
        let dir = tempfile::tempdir().unwrap();
        let v = crate::recover::tests::vault_in(&dir.path().join("dr-vault"));
        let vaults = vec![("dr-vault".to_string(), v)];
        let e = match DatabaseSource::choose(&vaults, "shop-db", None) {
            Ok(_) => panic!("chosen from an empty vault"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.starts_with(
                "no vault of the site can restore database `shop-db`: vault `dr-vault`: "
            ),
            "{e}"
        );
    }
}
