//! Retention of the archived binlog, as a rule for the vault's `forget`.
//!
//! A database's binlog points are not kept by the keep policy: they are kept
//! exactly as long as a kept snapshot of the same resource can be rolled
//! forward with them ([`crate::catalog::binlog_points_needed`]). Every caller
//! of `lifeboat_vault::forget::apply` passes [`forget_rules`], so the CLI and
//! a daemon decide alike.

use lifeboat_vault::forget::DependentKind;
use lifeboat_vault::{Id, RecoveryPoint};

/// The rule for points of kind [`crate::KIND_BINLOG`].
#[derive(Debug, Clone, Copy, Default)]
pub struct BinlogRetention;

impl DependentKind for BinlogRetention {
    fn kind(&self) -> &str {
        crate::KIND_BINLOG
    }

    fn needed(
        &self,
        points: &[(Id, RecoveryPoint)],
        kept: &dyn Fn(&Id) -> bool,
    ) -> Vec<(Id, String)> {
        crate::catalog::binlog_points_needed(points, kept)
    }
}

/// The retention rules of this protector's point kinds, for
/// `lifeboat_vault::forget::apply`.
pub fn forget_rules() -> [&'static dyn DependentKind; 1] {
    [&BinlogRetention]
}
