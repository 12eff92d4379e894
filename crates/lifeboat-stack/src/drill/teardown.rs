//! A drill's last step: the scratch stack stopped and removed.

use crate::state::StackState;
use lifeboat_config::Config;

/// Stops and removes a scratch stack (whatever of it came up), its scratch
/// buckets on the site's endpoint included; says what could not be removed.
pub(super) fn teardown(
    cfg: &Config,
    site: &str,
    scratch: &std::path::Path,
    stack: &str,
) -> (bool, Option<String>) {
    let mut failed = Vec::new();
    if let Ok(Some(mut state)) = StackState::read(scratch, stack) {
        for (_, m) in state.members.iter_mut().rev() {
            let _ = crate::stack::stop_member(m);
        }
        failed = crate::stack::purge_buckets(cfg, site, &state);
        crate::launch::unlink_sockets(&state);
    }
    if let Err(e) = std::fs::remove_dir_all(scratch) {
        failed.push(format!("{}: {e}", scratch.display()));
    } else {
        let _ = std::fs::remove_dir(scratch.parent().expect("drills/"));
    }
    match failed.is_empty() {
        true => (true, None),
        false => (false, Some(failed.join("; "))),
    }
}
