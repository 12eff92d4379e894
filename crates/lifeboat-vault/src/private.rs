//! A directory vault is private to its owner: directories 0700, files 0600,
//! whatever the umask. Key files are the password's only guard against an
//! offline guessing attack, so no other local user may read them (nor the
//! config, packs, index, points or locks).
//!
//! The vault's root is made 0700 when a vault is created in it; every
//! directory the engine makes below it is 0700 and every object it writes is
//! set to 0600 once in place (its temporary file under `tmp/` is inside the
//! 0700 root meanwhile). A vault made by an older version keeps its modes
//! until `chmod -R go= VAULT`.
//!
//! Opening a vault to read creates nothing: [`expect_dir`] only looks.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use crate::error::VaultError;

/// Mode of the vault's directories.
pub const DIR_MODE: u32 = 0o700;
/// Mode of the vault's files.
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents; the ones made here get mode 0700.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "exists and is not a directory",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(parent) = dir.parent() {
        create_dir_all(parent)?;
    }
    make_dir(dir)
}

fn make_dir(dir: &Path) -> io::Result<()> {
    match std::fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        // Not left to the umask: exactly 0700.
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates the directories of object `path` (e.g. `packs/ab/ab12…`) below `root`, mode 0700.
pub fn create_parents(root: &Path, path: &str) -> io::Result<()> {
    let mut dir = root.to_path_buf();
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        dir.push(part);
        make_dir(&dir)?;
    }
    Ok(())
}

/// Sets an object file's mode to 0600.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(FILE_MODE))
}

/// Makes a directory that is to hold a new vault private (0700).
pub fn restrict_dir(path: &Path) -> io::Result<()> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))
}

/// Checks that a vault directory exists, telling "not there" from "cannot be
/// looked at" (permission denied, a name too long…).
pub fn expect_dir(root: &Path, location: &crate::Location) -> crate::Result<()> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(VaultError::BadLocation {
            location: location.to_string(),
            reason: "it is not a directory".into(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(VaultError::NoVault {
            location: location.to_string(),
            reason: "the directory does not exist".into(),
        }),
        Err(e) => Err(VaultError::io("open the vault directory", root, e)),
    }
}

/// Refuses to make a vault in a directory that holds anything (a vault there
/// is refused as already existing).
pub fn check_new_vault_dir(root: &Path, location: &crate::Location) -> crate::Result<()> {
    let mut entries = match std::fs::read_dir(root) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(VaultError::io("read directory", root, e)),
    };
    if root.join("config").exists() || root.join("keys").exists() {
        return Err(VaultError::AlreadyExists {
            location: location.to_string(),
        });
    }
    if let Some(Ok(e)) = entries.next() {
        return Err(VaultError::Refused(format!(
            "{} is not empty (it holds {:?}, …): a vault needs a new or empty directory; choose another path",
            root.display(),
            e.file_name()
        )));
    }
    Ok(())
}
