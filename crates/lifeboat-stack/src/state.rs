//! `ROOT/stacks/STACK/state.json`: what `stack up` provisioned in a site —
//! per member its kind, directory, outputs and process — written through a
//! temporary file and a rename (mode 0600: outputs may hold a DSN).
//!
//! A database member's root password is kept beside it, never in it (the
//! state is printed by `stack up --json`): `ROOT/stacks/STACK/secrets/
//! MEMBER.password`, the directory 0700, the file 0600, created new, never
//! through a link. A `password_file` of the resource may name that file.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::process::Proc;
use crate::{Result, StackError};

/// A database member's root password: kept in the stack's `secrets/`,
/// never serialized with the state, never shown by `Debug`.
#[derive(Clone, Default, PartialEq)]
pub struct RootPassword(pub String);

impl std::fmt::Debug for RootPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootPassword(***)")
    }
}

/// One member as provisioned.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
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
    /// The vault that archive writes to (`stack up` starts it there again
    /// after a `stack down`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_vault: Option<String>,
    /// Not the stack's own: a bucket declared elsewhere or a replica used
    /// in place; `down --purge` never removes it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub borrowed: bool,
    /// Why an optional member did not come up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Lifeboat made its directory (or, on an S3 endpoint, its bucket): it
    /// was not there before. `down --purge` removes only what it made —
    /// never what it found there. `None`: a state written before this was
    /// recorded (purged as before, a replication destination never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioned: Option<bool>,
    /// A database member's root password (read from and written to the
    /// stack's `secrets/`, never into the state file).
    #[serde(skip)]
    pub password: Option<RootPassword>,
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
    /// What `stack up` warns of (a recovered database's archive that could
    /// not be started again); not kept in the state file.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

impl StackState {
    /// The state file of `stack` under site root `root`.
    pub fn path(root: &Path, stack: &str) -> PathBuf {
        root.join("stacks").join(stack).join("state.json")
    }

    /// The file that keeps member `member`'s root password.
    pub fn password_file(root: &Path, stack: &str, member: &str) -> PathBuf {
        root.join("stacks")
            .join(stack)
            .join("secrets")
            .join(format!("{member}.password"))
    }

    /// Reads it, with its members' root passwords; `None` when the stack
    /// was never brought up there.
    pub fn read(root: &Path, stack: &str) -> Result<Option<StackState>> {
        let p = StackState::path(root, stack);
        match std::fs::read(&p) {
            Ok(b) => {
                let mut st: StackState = serde_json::from_slice(&b).map_err(|e| {
                    StackError::Refused(format!(
                        "{} is not a stack state of lifeboat ({e}); move it away and run `stack up` again",
                        p.display()
                    ))
                })?;
                for (n, m) in st.members.iter_mut() {
                    let f = StackState::password_file(root, stack, n);
                    m.password = std::fs::read_to_string(&f)
                        .ok()
                        .map(|t| RootPassword(t.trim_end().to_string()))
                        .filter(|p| !p.0.is_empty());
                }
                Ok(Some(st))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StackError::io("read", &p, e)),
        }
    }

    /// Writes it (temporary file, sync, rename), and each root password
    /// not yet kept.
    pub fn write(&self) -> Result<()> {
        let p = StackState::path(&self.root, &self.stack);
        let dir = p.parent().expect("has a parent");
        private_dir(dir)?;
        for (n, m) in &self.members {
            if let Some(pw) = &m.password {
                keep_password(&StackState::password_file(&self.root, &self.stack, n), pw)?;
            }
        }
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

/// `dir` and its parents made, `dir` itself 0700 (a stack's state holds
/// what its members are and, in `secrets/`, their root passwords).
fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| StackError::io("create", dir, e))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| StackError::io("read", dir, e))?;
    if !meta.is_dir() {
        return Err(StackError::Refused(format!(
            "{} is not a directory (a link?): a stack's state is kept only in a directory of its own",
            dir.display()
        )));
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| StackError::io("restrict", dir, e))
}

/// Writes `pw` to `file` (0600, created new through a temporary file and a
/// rename, never through a link) unless it holds it already.
fn keep_password(file: &Path, pw: &RootPassword) -> Result<()> {
    if std::fs::read_to_string(file).is_ok_and(|t| t.trim_end() == pw.0) {
        return Ok(());
    }
    let dir = file.parent().expect("secrets/");
    private_dir(dir)?;
    let tmp = dir.join(".password.tmp");
    lifeboat_instance::launch::write_private(file, &tmp, format!("{}\n", pw.0).as_bytes())
        .map_err(|(op, at, e)| StackError::io(op, &at, e))
}
