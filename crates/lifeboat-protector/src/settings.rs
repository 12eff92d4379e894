//! A kind's keys in `lifeboat.toml`, declared once by its protector:
//! which keys `[resource.NAME]` takes (name, shape, required or not, a
//! one-line doc) and the checks of their values ([`ResourceSettings`]).
//! The configuration's loader reads every kind's table from this alone —
//! unknown keys with "did you mean", wrong types, missing keys, then the
//! protector's [`Problem`]s pointed at their keys — so a new kind needs no
//! code in the loader.
//!
//! What the loader hands [`ResourceSettings::check_settings`] is the table
//! as JSON: `kind`, then each key under its [`Key::field`] name, a wrongly
//! typed value left out (it was reported), a missing required one empty
//! (`""`, `[]`, `{}`, `false`; reported too). A plan's backup hands
//! [`crate::Protector::back_up`] the same keys (an instance's spec wrapped
//! as `spec`), so one serde type of the protector reads both.

/// What a key's value is, as the file writes it, and what it is in the
/// settings' JSON.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A string.
    String,
    /// A list of strings; a single string is a list of one.
    Strings,
    /// An array of strings, never a single string (a program and its arguments).
    Array,
    /// `true` or `false`.
    Bool,
    /// A number or a string (a port that may be a placeholder): a string in JSON.
    NumberOrString,
    /// A table of strings by any name (an environment).
    StringMap,
    /// A table of its own keys.
    Table(&'static Table),
    /// `true` (the table with its defaults: `{}` in JSON), `false` (left
    /// out) or the table.
    Switch(&'static Table),
    /// Where a secret is: `password_env` (a variable's name) or
    /// `password_file` (a file's first line), at most one of them, never
    /// the secret itself; in JSON, field `password` is `{"env": NAME}` or
    /// `{"file": PATH}`. The control plane reads it and hands it to the
    /// protector as the job's secret.
    Secret,
}

/// One key of a kind's table (or of a table inside it).
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// The key in the file.
    pub name: &'static str,
    /// Its name in the settings' JSON (usually the same).
    pub field: &'static str,
    /// What its value is.
    pub shape: Shape,
    /// What it is, in one line.
    pub doc: &'static str,
    /// Required: the fix when it is absent. A required [`Shape::Secret`]
    /// key needs one of the secret's keys and is named when both are absent.
    pub required: Option<&'static str>,
    /// The words of a wrong type's message ("a list of strings (the
    /// program and its arguments)"); `None`: the shape's own.
    pub want: Option<&'static str>,
}

impl Key {
    /// An optional key, its JSON field named as in the file.
    pub const fn new(name: &'static str, shape: Shape, doc: &'static str) -> Key {
        Key {
            name,
            field: name,
            shape,
            doc,
            required: None,
            want: None,
        }
    }

    /// The key is required; `fix` says what to add.
    pub const fn required(self, fix: &'static str) -> Key {
        Key {
            required: Some(fix),
            ..self
        }
    }

    /// Its JSON field is `field`.
    pub const fn field(self, field: &'static str) -> Key {
        Key { field, ..self }
    }

    /// A wrong type says "expected `want`".
    pub const fn want(self, want: &'static str) -> Key {
        Key {
            want: Some(want),
            ..self
        }
    }
}

/// A table inside a kind's table (`launch`, `app`).
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// What it is, with its article, for an unknown key ("an application account").
    pub what: &'static str,
    /// The same, for a missing key ("the application account").
    pub the: &'static str,
    /// Its keys, in the order messages list them.
    pub keys: &'static [Key],
}

/// A kind's table, `[resource.NAME]`.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Keys any of which, present, make a resource of this kind when
    /// `kind` is left out (a kind whose own keys include another kind's
    /// implying key is taken first: `paths` with `launch` is an instance).
    pub implied_by: &'static [&'static str],
    /// Its keys besides the file's own (`kind`, `site`, `stateless`,
    /// `description`), in the order messages list them.
    pub keys: &'static [Key],
}

/// One problem of a resource's settings, found by its protector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key it concerns, as the file names it (`dsn`, `app.user`,
    /// `launch.env.DB`, `launch.command[0]`).
    pub key: String,
    /// The item of the key's list it is about (pointed at instead of the list).
    pub item: Option<usize>,
    /// About the resource as a whole (its table is pointed at, and the
    /// message reads "KIND resource `NAME` has MESSAGE").
    pub whole: bool,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    /// A problem of the value at `key`.
    pub fn at(key: &str, message: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            key: key.to_string(),
            item: None,
            whole: false,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// A problem of item `item` of the list at `key`.
    pub fn item(
        key: &str,
        item: usize,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Problem {
        Problem {
            item: Some(item),
            ..Problem::at(key, message, fix)
        }
    }

    /// A problem of the resource as a whole, named at `key`.
    pub fn whole(key: &str, message: impl Into<String>, fix: impl Into<String>) -> Problem {
        Problem {
            whole: true,
            ..Problem::at(key, message, fix)
        }
    }
}

/// What a kind's table in `lifeboat.toml` holds: declared by its protector,
/// read by the configuration's loader (every [`crate::Protector`] is one).
pub trait ResourceSettings {
    /// The keys of `[resource.NAME]` of this kind.
    fn settings(&self) -> Schema;

    /// The problems of `settings` (the table as JSON, read by
    /// [`ResourceSettings::settings`]): each with its key and a fix.
    fn check_settings(&self, _settings: &serde_json::Value) -> Vec<Problem> {
        Vec::new()
    }
}

/// `settings` without their `kind`: what a protector's own type reads
/// (its keys only, so that it may deny unknown fields).
pub fn without_kind(settings: &serde_json::Value) -> serde_json::Value {
    let mut v = settings.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("kind");
    }
    v
}

/// `settings` (their `kind` aside) read as the protector's own type `T`; a
/// value that is not (the schema and the type disagree) is a problem of the
/// whole resource.
pub fn read_settings<T: serde::de::DeserializeOwned>(
    settings: &serde_json::Value,
) -> Result<T, Problem> {
    serde_json::from_value(without_kind(settings)).map_err(|e| {
        Problem::whole(
            "kind",
            format!("settings its protector cannot read: {e}"),
            "report this: the kind's keys and its protector's settings disagree",
        )
    })
}
