//! `lifeboat.toml`: the one declarative file of sites, vaults, resources,
//! plans and replication rules.
//!
//! Reading is two stages (as ripgrep does with its flags): the text is parsed
//! into a raw TOML tree that keeps every key's and value's span; loaders turn
//! each `[section.NAME]` into a typed, validated [`Config`], recording every
//! error as a [`Diagnostic`] (file, line, column, dotted key, message, fix)
//! instead of stopping at the first; then cross-references are checked (a
//! plan's vault exists, a copy goes into another vault, a database archive
//! has one vault, a retention is not shorter than a vault's minimum lock).
//! Nothing downstream sees an unvalidated value.
//!
//! ```
//! let cfg = lifeboat_config::parse("lifeboat.toml", r#"
//! vault.main.location = "/srv/lifeboat/vault"
//! resource.etc.paths = ["/etc"]
//! "#).unwrap();
//! assert_eq!(cfg.plans["default"].resources, ["etc"]); // a daily plan by default
//! ```
//!
//! Secrets are never in the file: a vault or database names where its
//! password is (`password_env`, `password_file`); a literal `password` key, or
//! a DSN with a password, is an error. New sections (stacks, drills) are added
//! as one more loader in `load::SECTIONS`; a new kind of resource needs
//! nothing here: `[resource.NAME]` is read by its protector's keys and
//! checks (`lifeboat_protector::ResourceSettings`, the registry of
//! `lifeboat-protectors`).

mod check;
pub mod check_stack;
pub mod diag;
pub mod duration;
mod load;
mod load_credentials;
mod load_daemon;
mod load_plan;
mod load_resource;
mod load_server;
mod load_stack;
pub mod model;
mod read;
pub mod schedule;

use std::path::Path;

pub use diag::{Diagnostic, Diagnostics};
pub use duration::Dur;
pub use model::*;
pub use schedule::Schedule;

/// `word` with its indefinite article: `an instance`, `a mysql`.
pub fn a(word: &str) -> String {
    let vowel = word
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {word}", if vowel { "an" } else { "a" })
}

/// Why a file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file has errors (all of them).
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and validates the file at `path`.
pub fn load(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&path.display().to_string(), &text).map_err(LoadError::Invalid)
}

/// Validates `text`, naming it `file` in errors.
pub fn parse(file: &str, text: &str) -> Result<Config, Diagnostics> {
    parse_with(file, text, lifeboat_protectors::registry())
}

/// Validates `text` with the resource kinds of `registry`'s protectors
/// (each kind's keys and checks are its protector's), naming it `file` in
/// errors. [`parse`] uses this build's protectors.
pub fn parse_with(
    file: &str,
    text: &str,
    registry: &'static lifeboat_protector::Registry,
) -> Result<Config, Diagnostics> {
    let mut sink = diag::Sink::new(file, text);
    let (doc, errors) = toml::de::DeTable::parse_recoverable(text);
    for e in &errors {
        let span = e.span().unwrap_or(0..0);
        sink.error(
            &span,
            "",
            format!("TOML syntax: {}", e.message().trim()),
            Some("fix the syntax (https://toml.io)".into()),
        );
    }
    let mut draft = load::Draft {
        registry: Some(registry),
        ..load::Draft::default()
    };
    if errors.is_empty() {
        load::load_document(&mut sink, doc.get_ref(), &mut draft);
        check::cross_check(&mut sink, &mut draft);
    }
    let diags = sink.finish();
    if !diags.is_empty() {
        return Err(Diagnostics(diags));
    }
    Ok(Config {
        sites: draft.sites,
        vaults: draft.vaults,
        resources: draft.resources,
        plans: draft.plans,
        replications: draft.replications,
        stacks: draft.stacks,
        drills: draft.drills,
        server: draft.server,
        daemon: draft.daemon,
    })
}
