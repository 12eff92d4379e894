//! A database member from a physical point: its chain restored as the data
//! directory of the member's server and rolled forward there in a private
//! server of the protector's, then the member's own server started on it —
//! secured as it starts (the directory holds the source's accounts) — with
//! no SQL load at all.

use std::time::Instant;

use lifeboat_control::protectors::Target;

use super::DatabaseSource;
use crate::recover::Recovery;
use crate::state::MemberState;
use crate::{Result, StackError};

/// Restores `src`'s physical point as member `name`'s data directory,
/// rolled forward, then provisions (starts) its server on it. A failure
/// leaves no data directory behind to start on.
pub(super) fn recover(r: &Recovery, name: &str, src: &DatabaseSource) -> Result<MemberState> {
    let kind = &r.cfg.resources[name].kind;
    let dir = crate::stack::member_dir(&r.root, kind, name);
    let server = crate::mariadb::Server::new(dir.clone());
    // Made by this recovery: `stack down --purge` may remove it.
    let made = !dir.exists();
    server.forget_interrupted_restore()?;
    let work = dir.join("tmp");
    std::fs::create_dir_all(&work).map_err(|e| StackError::io("create", &work, e))?;
    super::Restore {
        target: Target::Directory(server.data()),
        options: serde_json::json!({ "work": work }),
        loaded: "restore the physical point (extract, prepare)",
        what: "physical point",
    }
    .run(r, name, src)?;
    let t = Instant::now();
    let m = crate::stack::provision_member(r.cfg, &r.root, r.own, name, None, true);
    // The declared server may have come up while the point was restored:
    // then it, not ours, would be the member, without the restored data.
    let m = m.and_then(|m| match m.borrowed {
        false => Ok(m),
        true => Err(StackError::Refused(format!(
            "the server the file declares for `{name}` ({}) started answering while its physical point was restored: it is not the stack's to start on the restored data; stop it and recover again",
            m.outputs.get("dsn").map(String::as_str).unwrap_or("?")
        ))),
    });
    let mut m = match m {
        Ok(m) => m,
        Err(e) => {
            // Nothing is left half-started: the directory goes too.
            let _ = std::fs::remove_dir_all(server.data());
            return Err(e);
        }
    };
    r.step("start the database server on it", Some(name), t);
    if made {
        m.provisioned = Some(true);
    }
    Ok(m)
}
