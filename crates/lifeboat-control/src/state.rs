//! The state directory: `applied.json` (the applied file and the fingerprint
//! of every item it registered) and `jobs.sqlite` (the job history).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{ControlError, Result};

/// Where the control plane keeps its state.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// The directory.
    pub root: PathBuf,
}

/// What the last `apply` registered.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    /// When (RFC 3339).
    pub applied_at: String,
    /// The file as applied.
    pub config_text: String,
    /// Its id (keyed by nothing: BLAKE3 of the text), to tell a changed file.
    pub config_id: String,
    /// `kind` → `name` → the item as JSON (vault, resource, plan, replication).
    pub items: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

impl StateDir {
    /// `explicit`, else `/var/lib/lifeboat` for root, else
    /// `$XDG_STATE_HOME/lifeboat` (or `~/.local/state/lifeboat`).
    pub fn resolve(explicit: Option<&Path>) -> StateDir {
        if let Some(p) = explicit {
            return StateDir {
                root: p.to_path_buf(),
            };
        }
        let root = if rustix::process::geteuid().is_root() || home().is_none() {
            PathBuf::from("/var/lib/lifeboat")
        } else if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|x| !x.is_empty()) {
            PathBuf::from(x).join("lifeboat")
        } else {
            home().expect("checked").join(".local/state/lifeboat")
        };
        StateDir { root }
    }

    /// Creates the directory (mode 0700).
    pub fn create(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(|e| ControlError::io("cannot create state directory", &self.root, e))
    }

    /// The job store's database file.
    pub fn jobs_db(&self) -> PathBuf {
        self.root.join("jobs.sqlite")
    }

    fn applied_path(&self) -> PathBuf {
        self.root.join("applied.json")
    }

    /// What was applied last (empty when nothing was).
    pub fn applied(&self) -> Result<Applied> {
        let p = self.applied_path();
        match std::fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| {
                ControlError::Refused(format!(
                    "{} is damaged ({e}); remove it and run `lifeboat apply` again (the vaults keep every point)",
                    p.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Applied::default()),
            Err(e) => Err(ControlError::io("cannot read", &p, e)),
        }
    }

    /// Records what was applied (temporary file, fsync, rename).
    pub fn save_applied(&self, a: &Applied) -> Result<()> {
        use std::io::Write;
        self.create()?;
        let p = self.applied_path();
        let tmp = self.root.join("applied.json.tmp");
        let _ = std::fs::remove_file(&tmp); // a crashed apply's leftover: created anew, private
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(|e| ControlError::io("cannot write", &tmp, e))?
        };
        f.write_all(&serde_json::to_vec_pretty(a).expect("json"))
            .and_then(|_| f.sync_all())
            .map_err(|e| ControlError::io("cannot write", &tmp, e))?;
        std::fs::rename(&tmp, &p).map_err(|e| ControlError::io("cannot write", &p, e))?;
        if let Ok(d) = std::fs::File::open(&self.root) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}
