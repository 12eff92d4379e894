//! The head of the two-site tests' `lifeboat.toml`.

use std::path::Path;

/// Sites `primary` and `secondary` rooted in `w`, and the secondary's
/// vault `dr` at `w/DR` (the environment's password): the lines a two-site
/// test's file starts with, before its resources and stack.
pub fn two_sites(w: &Path, dr: &str) -> String {
    format!(
        r#"[site.primary]
root = "{w}/primary"
[site.secondary]
root = "{w}/secondary"
[vault.dr]
site = "secondary"
location = "{w}/{dr}"
"#,
        w = w.display()
    )
}
