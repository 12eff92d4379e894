//! Retention rules of a database's points, for the vault's `forget`.
//!
//! A database's binlog points are not kept by the keep policy: they are kept
//! exactly as long as a kept snapshot of the same resource can be rolled
//! forward with them ([`crate::catalog::binlog_points_needed`]). Physical
//! points are kept by the policy, and besides every link a kept incremental
//! needs down to its full point ([`crate::physical::bases_needed`]): that rule
//! comes first, so the binlog rule counts the bases it keeps. Every caller
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

/// The rule for points of kind [`crate::KIND_PHYSICAL`]: the policy keeps
/// them, and this rule the bases of kept incrementals.
#[derive(Debug, Clone, Copy, Default)]
pub struct PhysicalChainRetention;

impl DependentKind for PhysicalChainRetention {
    fn kind(&self) -> &str {
        crate::KIND_PHYSICAL
    }

    fn policy_too(&self) -> bool {
        true
    }

    fn needed(
        &self,
        points: &[(Id, RecoveryPoint)],
        kept: &dyn Fn(&Id) -> bool,
    ) -> Vec<(Id, String)> {
        crate::physical::bases_needed(points, kept)
    }
}

/// The retention rules of this protector's point kinds, for
/// `lifeboat_vault::forget::apply` (in the order they must apply).
pub fn forget_rules() -> [&'static dyn DependentKind; 2] {
    [&PhysicalChainRetention, &BinlogRetention]
}
