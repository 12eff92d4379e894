//! Reading the raw, spanned TOML tree: typed getters that record an error
//! (with key, span and fix) instead of failing, so one pass finds every error.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::Sink;
use crate::duration::{self, Dur};

/// A raw value with its span.
pub(crate) type Val<'i> = Spanned<DeValue<'i>>;

/// Keys that hold secrets: never allowed in the file.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "password",
    "passphrase",
    "secret",
    "secret_key",
    "secret_access_key",
    "access_key_id",
    "token",
    "api_key",
];

/// A table being read, with its dotted path.
#[derive(Clone, Copy)]
pub(crate) struct Table<'a, 'i> {
    pub(crate) t: &'a DeTable<'i>,
    pub(crate) path: &'a str,
    pub(crate) span: &'a Range<usize>,
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.t.get(key)
    }

    pub(crate) fn key(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// A table found inside another, holding its own dotted path and span:
/// [`SubTable::view`] reads it as a [`Table`].
pub(crate) struct SubTable<'a, 'i> {
    t: &'a DeTable<'i>,
    path: String,
    span: Range<usize>,
}

impl<'a, 'i> SubTable<'a, 'i> {
    /// The table `t` at dotted `path`, spanning `span`.
    pub(crate) fn new(t: &'a DeTable<'i>, path: String, span: Range<usize>) -> SubTable<'a, 'i> {
        SubTable { t, path, span }
    }

    /// The table `t`, the value of `key` in `parent`, spanning `span`.
    pub(crate) fn of(
        parent: Table<'_, '_>,
        key: &str,
        t: &'a DeTable<'i>,
        span: Range<usize>,
    ) -> SubTable<'a, 'i> {
        SubTable::new(t, parent.key(key), span)
    }

    /// The table to read keys from.
    pub(crate) fn view(&self) -> Table<'_, 'i> {
        Table {
            t: self.t,
            path: &self.path,
            span: &self.span,
        }
    }
}

/// The kind of a value, for "expected a string, found an integer".
pub(crate) fn type_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The closest of `candidates` to `word`, if close enough to be a typo.
pub(crate) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len().max(word.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl Sink<'_> {
    /// Reports every key of `t` not in `allowed` (secrets get their own message).
    pub(crate) fn unknown_keys(&mut self, t: Table<'_, '_>, what: &str, allowed: &[&str]) {
        for (k, _) in t.t.iter() {
            let name = k.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let key = t.key(name);
            if SECRET_KEYS.contains(&name) {
                let fix = if name == "password" {
                    "remove it and name where the password is kept: `password_env = \"VARIABLE\"` or `password_file = \"/path/to/file\"`".to_string()
                } else {
                    format!(
                        "remove it; keep `{name}` in the environment or a file the process reads (for S3: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)"
                    )
                };
                self.error(
                    &k.span(),
                    &key,
                    format!("a secret (`{name}`) cannot be written in the file"),
                    Some(fix),
                );
            } else if let Some(m) = did_you_mean(name, allowed) {
                self.error(
                    &k.span(),
                    &key,
                    format!("unknown key `{name}` — did you mean `{m}`?"),
                    Some(format!("rename it to `{m}`")),
                );
            } else {
                self.error(
                    &k.span(),
                    &key,
                    format!("unknown key `{name}` in {what}"),
                    Some(format!("remove it; {what} takes: {}", allowed.join(", "))),
                );
            }
        }
    }

    /// A wrong type at `key`.
    pub(crate) fn wrong_type(&mut self, t: Table<'_, '_>, key: &str, v: &Val<'_>, want: &str) {
        self.error(
            &v.span(),
            &t.key(key),
            format!("expected {want}, found {}", type_name(v.get_ref())),
            Some(format!("write {want}")),
        );
    }

    /// A required key that is absent.
    pub(crate) fn missing(&mut self, t: Table<'_, '_>, key: &str, what: &str, fix: &str) {
        self.error(
            t.span,
            &t.key(key),
            format!("{what} has no `{key}`"),
            Some(fix.to_string()),
        );
    }

    /// A string, with its span.
    pub(crate) fn string(&mut self, t: Table<'_, '_>, key: &str) -> Option<(String, Range<usize>)> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some((s.to_string(), v.span())),
            _ => {
                self.wrong_type(t, key, v, "a string");
                None
            }
        }
    }

    /// A list of strings (a single string is a list of one).
    pub(crate) fn strings(
        &mut self,
        t: Table<'_, '_>,
        key: &str,
    ) -> Option<Vec<(String, Range<usize>)>> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![(s.to_string(), v.span())]),
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for item in a {
                    match item.get_ref() {
                        DeValue::String(s) => out.push((s.to_string(), item.span())),
                        _ => self.wrong_type(t, key, item, "a string in the list"),
                    }
                }
                Some(out)
            }
            _ => {
                self.wrong_type(t, key, v, "a list of strings");
                None
            }
        }
    }

    /// A bucket location (`/path`, `file:///path`, `s3://bucket/prefix?...`).
    pub(crate) fn bucket_location(&mut self, t: Table<'_, '_>, key: &str) -> Option<String> {
        let (l, span) = self.string(t, key)?;
        if let Err(e) = lifeboat_vault::Location::parse(&l) {
            let reason = match e {
                lifeboat_vault::VaultError::BadLocation { reason, .. } => reason,
                other => other.to_string(),
            };
            self.error(
                &span,
                &t.key(key),
                format!("`{l}` is not a bucket location: {reason}"),
                Some("write `file:///path/to/bucket` or `s3://bucket/prefix?endpoint=...&region=...`".into()),
            );
        }
        Some(l)
    }

    /// A boolean.
    pub(crate) fn boolean(&mut self, t: Table<'_, '_>, key: &str) -> Option<bool> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(t, key, v, "true or false");
                None
            }
        }
    }

    /// A count (0 ..= u32::MAX).
    pub(crate) fn count(&mut self, t: Table<'_, '_>, key: &str) -> Option<u32> {
        let v = t.get(key)?;
        let parsed = match v.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => {
                self.wrong_type(t, key, v, "a whole number");
                return None;
            }
        };
        match parsed.and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                self.error(
                    &v.span(),
                    &t.key(key),
                    "must be a whole number from 0 up",
                    Some("write a count such as `7`".into()),
                );
                None
            }
        }
    }

    /// A duration such as `7d`.
    pub(crate) fn duration(&mut self, t: Table<'_, '_>, key: &str) -> Option<Dur> {
        let (s, span) = self.string(t, key)?;
        self.parsed_duration(t, key, &span, duration::parse(&s))
    }

    /// A duration that may be zero (`"0s"`: none), such as a drill's `keep_for`.
    pub(crate) fn duration_or_zero(&mut self, t: Table<'_, '_>, key: &str) -> Option<Dur> {
        let (s, span) = self.string(t, key)?;
        self.parsed_duration(t, key, &span, duration::parse_or_zero(&s))
    }

    /// A timeout: a duration (`"90s"`, `"5m"`), or a number alone, which is
    /// seconds (`timeout = 90`, as `--grace` and `--check-timeout` take it).
    pub(crate) fn timeout(&mut self, t: Table<'_, '_>, key: &str) -> Option<Dur> {
        let v = t.get(key)?;
        let (parsed, span) = match v.get_ref() {
            DeValue::Integer(i) => {
                let n = i64::from_str_radix(i.as_str(), i.radix()).ok();
                let most = 10 * 365 * 86_400;
                let secs = n.and_then(|n| u64::try_from(n).ok());
                let secs = secs.filter(|n| (1..=most).contains(n));
                let text = i.as_str();
                let parsed = secs.map(Dur).ok_or_else(|| {
                    format!(
                        "`{text}` is not a timeout: a number of seconds from 1 to {most} (10 years)"
                    )
                });
                (parsed, v.span())
            }
            DeValue::String(s) => (duration::parse_timeout(s), v.span()),
            _ => {
                self.wrong_type(t, key, v, "a duration such as \"90s\", or seconds");
                return None;
            }
        };
        self.parsed_duration(t, key, &span, parsed)
    }

    /// `parsed`, or its error at `span` with an example fit for `key`.
    fn parsed_duration(
        &mut self,
        t: Table<'_, '_>,
        key: &str,
        span: &Range<usize>,
        parsed: Result<Dur, String>,
    ) -> Option<Dur> {
        match parsed {
            Ok(d) => Some(d),
            Err(e) => {
                let example = duration::example(key);
                self.error(
                    span,
                    &t.key(key),
                    e,
                    Some(format!("write e.g. `{key} = \"{example}\"`")),
                );
                None
            }
        }
    }

    /// A sub-table, with its path and span, ready to read.
    pub(crate) fn sub_table<'a, 'i>(
        &mut self,
        t: Table<'a, 'i>,
        key: &str,
    ) -> Option<SubTable<'a, 'i>> {
        let (sub, span) = self.table(t, key)?;
        Some(SubTable::of(t, key, sub, span))
    }

    /// A sub-table.
    pub(crate) fn table<'a, 'i>(
        &mut self,
        t: Table<'a, 'i>,
        key: &str,
    ) -> Option<(&'a DeTable<'i>, Range<usize>)> {
        let v = t.get(key)?;
        match v.get_ref() {
            DeValue::Table(s) => Some((s, v.span())),
            _ => {
                self.wrong_type(t, key, v, "a table");
                None
            }
        }
    }
}
