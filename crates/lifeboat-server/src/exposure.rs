//! Live RPO exposure per stack, for `/stacks`: filled from
//! `lifeboat_stack::exposure` once that lands on main.

use std::collections::BTreeMap;

use lifeboat_config::Config;

use crate::AppState;

/// Seconds of committed data not yet in the secondary, per stack (blocking).
pub(crate) fn of(_cfg: &Config, _st: &AppState) -> BTreeMap<String, f64> {
    BTreeMap::new()
}
