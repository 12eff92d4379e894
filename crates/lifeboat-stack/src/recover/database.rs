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

mod physical;
use super::{Recovery, Source};
use crate::state::MemberState;
use crate::{Result, StackError};

/// Where a database is recovered from: the vault, the replay plan (its
/// snapshot or physical point), and the time the data will be of.
pub(crate) struct DatabaseSource<'v> {
    /// The vault's name.
    pub vault_name: &'v str,
    /// The vault.
    pub vault: &'v Vault,
    /// The point and the binlog to replay.
    pub plan: lifeboat_mysql::pitr::Plan,
    /// The last recovered commit's time: `--at`, else the newest restorable second.
    pub data_time: DateTime<Utc>,
    /// Why a logical snapshot when the vault has a physical point as recent
    /// (this host cannot start it, the server is not ours).
    pub not_physical: Option<String>,
}

impl<'v> DatabaseSource<'v> {
    /// The vault of the site whose archive reaches furthest for database
    /// `name` (to `at`, when given), and in it the newest point before that
    /// moment — a physical one when `physical` allows it (else why not) and
    /// this host can start it; refused with each vault's reason when none
    /// can restore it.
    pub(crate) fn choose(
        vaults: &'v [(String, Vault)],
        name: &str,
        at: Option<DateTime<Utc>>,
        physical: std::result::Result<(), String>,
    ) -> Result<DatabaseSource<'v>> {
        use lifeboat_mysql::pitr::{Base, Modes, plan_from};
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
            // The newest point of either mode; a physical one this host
            // cannot start gives way to the newest logical one.
            let mut not_physical = None;
            let planned = plan_from(&catalog, &target, Modes::Any).and_then(|plan| {
                let Base::Physical(m) = &plan.base else {
                    return Ok(plan);
                };
                let usable = physical
                    .clone()
                    .and_then(|_| lifeboat_mysql::rollforward::usable_here(&m.server.version));
                match usable {
                    Ok(()) => Ok(plan),
                    Err(why) => {
                        not_physical = Some(format!(
                            "physical point {} not used: {why}",
                            plan.snapshot.0.short()
                        ));
                        plan_from(&catalog, &target, Modes::Logical)
                    }
                }
            });
            match planned {
                Ok(plan) => {
                    let base = &plan.base;
                    let reach = catalog
                        .reach_from(base.coordinates(), base.consistent_at())
                        .0;
                    let data_time = at.unwrap_or(reach);
                    if best.as_ref().is_none_or(|b| data_time > b.data_time) {
                        best = Some(DatabaseSource {
                            vault_name: vn,
                            vault: v,
                            plan,
                            data_time,
                            not_physical,
                        });
                    }
                }
                Err(e) => why_not.push(format!(
                    "vault `{vn}`: {e}{}",
                    not_physical.map(|w| format!(" ({w})")).unwrap_or_default()
                )),
            }
        }
        best.ok_or_else(|| {
            StackError::Refused(format!(
                "no vault of the site can restore database `{name}`: {}",
                why_not.join("; ")
            ))
        })
    }

    /// Why this source, in the report's words.
    fn why(&self, at: Option<DateTime<Utc>>) -> String {
        let to = match at {
            Some(_) => "rolled forward to --at",
            None => "rolled forward to the newest restorable second of the site's archive",
        };
        let id = self.plan.snapshot.0.short();
        match (&self.plan.base, &self.not_physical) {
            (lifeboat_mysql::pitr::Base::Physical(_), _) => format!(
                "physical point {id} (a data directory extracted and prepared, no SQL load), {to}"
            ),
            (_, None) => format!("logical snapshot {id}, the newest point before the target, {to}"),
            (_, Some(why)) => format!("logical snapshot {id}, {to}; {why}"),
        }
    }
}

/// Recovers database member `name`: source chosen, server provisioned,
/// data loaded (a physical point: restored as the server's data directory
/// before it starts). A half-loaded server is stopped, never left running
/// unrecorded (its directory stays for `stack down --purge`).
pub(crate) fn recover(
    r: &Recovery,
    vaults: &SiteVaults,
    name: &str,
) -> Result<(MemberState, Source)> {
    let physical = crate::provision_db::ours_to_run(r.cfg, name, r.own)
        .then_some(())
        .ok_or_else(|| "the server the file declares for it is up and not the stack's".to_string());
    let src = DatabaseSource::choose(vaults.list(), name, r.opts.at, physical)?;
    // The application's account is read before anything starts: a
    // password file that is not there fails here, not after the load.
    let app = crate::mariadb::app_account(r.cfg, name)?;
    let m = match &src.plan.base {
        lifeboat_mysql::pitr::Base::Physical(_) => physical::recover(r, name, &src)?,
        lifeboat_mysql::pitr::Base::Logical(_) => {
            let t = Instant::now();
            let m = crate::stack::provision(r.cfg, &r.root, r.own, name, None)?;
            r.step("start an empty database server", Some(name), t);
            if let Err(e) = load(r, &m, name, &src) {
                if let Some(p) = &m.process {
                    p.stop(Duration::from_secs(30));
                }
                return Err(e);
            }
            m
        }
    };
    if let Some((app, pw)) = &app
        && let Err(e) = crate::mariadb::Server::new(m.dir.clone())
            .with_password(m.password.as_ref().map(|p| p.0.clone()))
            .ensure_app_account(app, pw)
    {
        if let Some(p) = &m.process {
            p.stop(Duration::from_secs(30));
        }
        return Err(e);
    }
    let source = Source {
        from: "point+binlog".into(),
        mode: Some(src.plan.base.mode().into()),
        ..Source::point(
            name,
            "mysql",
            src.vault_name,
            &src.plan.snapshot.0,
            Some(src.data_time),
            src.why(r.opts.at),
        )
    };
    Ok((m, source))
}

/// Each stage of a database's restore as a step of the recovery, timed
/// from the end of the one before.
pub(super) struct StageSteps<'r> {
    pub r: &'r Recovery<'r>,
    pub member: &'r str,
    pub since: Mutex<Instant>,
    /// What the first stage did (`load the snapshot`).
    pub loaded: &'static str,
}

impl Watch for StageSteps<'_> {
    fn watch(&self, _read: &(dyn Fn() -> Reading + Sync), work: &mut (dyn FnMut() + Send)) {
        work()
    }

    fn stage_ended(&self, stage: Stage) {
        let what = match stage {
            Stage::Loaded => self.loaded,
            Stage::RolledForward => "replay the binlog archive",
        };
        let mut since = self.since.lock().expect("stage clock");
        self.r.step(what, Some(self.member), *since);
        *since = Instant::now();
    }
}

/// Loads database member `name` into its new server `m`: the plan's
/// snapshot (with its users and grants, when it holds them), the binlog
/// archive replayed to the plan's end.
fn load(r: &Recovery, m: &MemberState, name: &str, src: &DatabaseSource) -> Result<()> {
    let server =
        DatabaseTarget::server(&m.outputs["dsn"], m.password.as_ref().map(|p| p.0.clone()));
    let work = r.root.join("mysql").join(name).join("tmp");
    let options =
        serde_json::json!({"users": src.plan.logical().is_some_and(|m| m.users), "work": work});
    let restore = Restore {
        target: Target::Database(server),
        options,
        loaded: "load the snapshot",
        what: "snapshot",
    };
    restore.run(r, name, src)
}

/// A restore of the source's point through its protector, rolled forward
/// to the recovery's target, each stage a step of the member's.
pub(super) struct Restore {
    /// Where the point goes.
    pub target: Target,
    /// The protector's options.
    pub options: serde_json::Value,
    /// The first stage's step.
    pub loaded: &'static str,
    /// What the point is, in an error (`snapshot`, `physical point`).
    pub what: &'static str,
}

impl Restore {
    /// Runs it; the replay step gets the bytes replayed.
    pub(super) fn run(self, r: &Recovery, name: &str, src: &DatabaseSource) -> Result<()> {
        let (id, point) = &src.plan.snapshot;
        let steps = StageSteps {
            r,
            member: name,
            since: Mutex::new(Instant::now()),
            loaded: self.loaded,
        };
        let job = RestoreJob {
            vault: src.vault,
            id,
            point,
            target: self.target,
            roll_forward: Some(match r.opts.at {
                Some(t) => RollForward::To(t),
                None => RollForward::Latest,
            }),
            options: self.options,
            watch: &steps,
        };
        let restored = protector_of(&point.kind)
            .and_then(|p| p.restore(&job))
            .map_err(|e| match e {
                RestoreError::RollForward(e) => {
                    StackError::Process(format!("replaying the binlog archive: {e}"))
                }
                e => StackError::Process(format!("restoring {} {}: {e}", self.what, id.short())),
            })?;
        if let Some(b) = restored.report["replay"]["bytes"].as_u64() {
            r.step_bytes("replay the binlog archive", name, b);
        }
        Ok(())
    }
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
        let e = match DatabaseSource::choose(&vaults, "shop-db", None, Ok(())) {
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
