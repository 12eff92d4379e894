//! What the copy tests (`copy`, `copy_faults`) share: vaults with their own
//! passwords and the S3 test server's credentials, `lifeboat copy` between
//! two of them, and a clean check.

use std::path::Path;
use std::process::{Command, Output};

use lifeboat_testkit::Cli;
use lifeboat_testkit::s3::CREDENTIALS;

use super::BIN;

/// The target vaults' password (another site's).
pub const TO_PASSWORD: &str = "another site, another password";

/// A runner for a new vault at `loc` with `password` (initialised).
pub fn vault(loc: &str, password: &str) -> Cli {
    let mut c = Cli::at(BIN, loc);
    c.password = password.into();
    c.env = CREDENTIALS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    c.ok(&["vault", "init"]);
    c
}

/// Two new directory vaults in `dir`: `primary` with its own password and
/// `secondary` with [`TO_PASSWORD`].
pub fn two_vaults(dir: &Path) -> (Cli, Cli) {
    let src = vault(
        &dir.join("primary").display().to_string(),
        "primary password",
    );
    let dst = vault(&dir.join("secondary").display().to_string(), TO_PASSWORD);
    (src, dst)
}

/// `lifeboat copy --from <src> --to <dst> ARGS`: the command.
pub fn copy_cmd(src: &Cli, dst: &Cli, args: &[&str]) -> Command {
    let mut a = vec!["copy", "--from", &src.vault, "--to", &dst.vault];
    a.extend_from_slice(args);
    let mut c = src.command(&a);
    c.env("LIFEBOAT_TO_PASSWORD", &dst.password);
    c
}

/// What a run wrote on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts that `vault check` of `c`'s vault finds no error.
pub fn check_clean(c: &Cli) {
    let r = c.json(&["vault", "check"]);
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r:#}");
}
