//! `ROOT/stacks/STACK/state.json`: what `stack up` provisioned in a site —
//! per member its kind, directory, outputs and process — written through a
//! temporary file and a rename (mode 0600: outputs may hold a DSN).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::process::Proc;
use crate::{Result, StackError};

/// One member as provisioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    /// `mysql`, `bucket`, `files` or `instance`.
    pub kind: String,
    /// Its directory under the site root.
    pub dir: PathBuf,
    /// What it provides to the others (`dsn`, `location`, `listen`, …).
    pub outputs: BTreeMap<String, String>,
    /// Its process, when it runs one.
    pub process: Option<Proc>,
    /// Its binlog archive, when one was started for it (a recovered database).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<Proc>,
    /// Not the stack's own: a bucket declared elsewhere or a replica used
    /// in place; `down --purge` never removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub borrowed: bool,
    /// Why an optional member did not come up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A stack as provisioned in a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackState {
    /// The stack's name.
    pub stack: String,
    /// The site.
    pub site: String,
    /// The site's root.
    pub root: PathBuf,
    /// When it was brought up (RFC 3339).
    pub up_at: String,
    /// Members by name, in the order they came up.
    pub members: Vec<(String, MemberState)>,
}

impl StackState {
    /// The state file of `stack` under site root `root`.
    pub fn path(root: &Path, stack: &str) -> PathBuf {
        root.join("stacks").join(stack).join("state.json")
    }

    /// Reads it; `None` when the stack was never brought up there.
    pub fn read(root: &Path, stack: &str) -> Result<Option<StackState>> {
        let p = StackState::path(root, stack);
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                StackError::Refused(format!(
                    "{} is not a stack state of lifeboat ({e}); move it away and run `stack up` again",
                    p.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StackError::io("read", &p, e)),
        }
    }

    /// Writes it (temporary file, sync, rename).
    pub fn write(&self) -> Result<()> {
        let p = StackState::path(&self.root, &self.stack);
        let dir = p.parent().expect("has a parent");
        std::fs::create_dir_all(dir).map_err(|e| StackError::io("create", dir, e))?;
        let tmp = dir.join(".state.json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| StackError::io("create", &tmp, e))?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("json"))
            .and_then(|_| f.sync_all())
            .map_err(|e| StackError::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| StackError::io("rename", &p, e))
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&MemberState> {
        self.members.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }
}
