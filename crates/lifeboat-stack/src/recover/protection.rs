//! The protection step: once the stack serves, every recovered member is
//! protected at once — a database by its first snapshot and its binlog
//! archive (`crate::protect`), the others by a first point each
//! (`crate::protect_data`) — into the vault it was recovered from.

use std::time::Instant;

use super::sources::SiteVaults;
use super::{Recovered, Recovery};
use crate::{Result, StackError};

/// Step: every recovered member protected at once; a member that could not
/// be is a warning saying what to run by hand.
pub(crate) struct Protect;

impl Protect {
    /// Protects the members of `got`, recording each as a step.
    pub(crate) fn run(
        r: &Recovery,
        vaults: &SiteVaults,
        got: &mut Recovered,
    ) -> Result<Vec<crate::protect::Protected>> {
        let mut protection = Protect::databases(r, vaults, got)?;
        let (others, failed) = crate::protect_data::protect_others(
            r.cfg,
            r.site,
            &got.state.members,
            &got.sources,
            vaults.list(),
            |name, t| r.step("protect at once: first point", Some(name), t),
        );
        protection.extend(others);
        got.warnings.extend(failed);
        got.state.write()?;
        Ok(protection)
    }

    /// Each database the recovery provisioned: a first snapshot and its
    /// binlog archive, run by this `lifeboat` binary.
    fn databases(
        r: &Recovery,
        vaults: &SiteVaults,
        got: &mut Recovered,
    ) -> Result<Vec<crate::protect::Protected>> {
        let exe = std::env::current_exe()
            .map_err(|e| StackError::Process(format!("cannot find the lifeboat binary: {e}")))?;
        let mut protection = Vec::new();
        let databases = got
            .state
            .members
            .iter_mut()
            .filter(|(_, m)| m.kind == "mysql" && !m.borrowed);
        for (name, m) in databases {
            let source = got.sources.iter().find(|x| &x.member == name);
            let Some(vn) = source.and_then(|x| x.vault.clone()) else {
                continue;
            };
            let Some(v) = vaults.get(&vn) else {
                continue;
            };
            let t = Instant::now();
            match crate::protect::protect(r.cfg, &vn, v, name, m, &exe) {
                Ok(p) => {
                    r.step(
                        "protect at once: first snapshot, binlog archive started",
                        Some(name),
                        t,
                    );
                    protection.push(p);
                }
                Err(e) => got.warnings.push(format!(
                    "the recovered `{name}` is NOT protected yet: {e} (take a snapshot and start `lifeboat archive mysql` by hand)"
                )),
            }
        }
        Ok(protection)
    }
}
