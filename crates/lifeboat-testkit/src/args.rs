//! The argument lists of the `lifeboat` commands the tests run most, so a
//! test says only what differs: `backup files SRC FLAGS…`,
//! `restore files POINT --to TO FLAGS…` and `restore instance` likewise.

use std::path::Path;

/// `backup files SRC FLAGS…`.
pub fn backup_files<'a>(src: &'a Path, flags: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["backup", "files", src.to_str().unwrap()];
    a.extend_from_slice(flags);
    a
}

/// `restore files POINT --to TO FLAGS…`.
pub fn restore_files<'a>(point: &'a str, to: &'a Path, flags: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["restore", "files", point, "--to", to.to_str().unwrap()];
    a.extend_from_slice(flags);
    a
}

/// `restore instance POINT --to TO FLAGS…`.
pub fn restore_instance<'a>(point: &'a str, to: &'a Path, flags: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["restore", "instance", point, "--to", to.to_str().unwrap()];
    a.extend_from_slice(flags);
    a
}
