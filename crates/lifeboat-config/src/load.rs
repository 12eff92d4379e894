//! Raw spanned TOML → typed sections. Each `[kind.NAME]` section has a loader
//! in [`SECTIONS`]; stacks and drills (the recovery issue) add theirs there.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use crate::diag::Sink;
use crate::duration::Dur;
use crate::model::*;
use crate::read::{Table, type_name};
use crate::schedule::Schedule;

/// What a loader sees of one section: each `NAME = table` with spans.
type Loader = fn(&mut Sink<'_>, &str, Table<'_, '_>, &mut Draft);

/// A config being built, with the spans cross-reference checks point at.
#[derive(Default)]
pub(crate) struct Draft {
    pub(crate) sites: BTreeMap<String, Site>,
    pub(crate) vaults: BTreeMap<String, VaultSpec>,
    pub(crate) resources: BTreeMap<String, Resource>,
    pub(crate) plans: BTreeMap<String, Plan>,
    pub(crate) replications: BTreeMap<String, Replication>,
    /// Spans of values by dotted key (`plan.hourly.vault`), for later errors.
    pub(crate) spans: BTreeMap<String, Range<usize>>,
}

impl Draft {
    pub(crate) fn span(&self, key: &str) -> Range<usize> {
        // The key itself, else the nearest enclosing table.
        let mut k = key;
        loop {
            if let Some(s) = self.spans.get(k) {
                return s.clone();
            }
            match k.rfind('.') {
                Some(i) => k = &k[..i],
                None => return 0..0,
            }
        }
    }
}

/// The sections of the file: table name, what it is called in messages, loader.
pub(crate) const SECTIONS: &[(&str, &str, Loader)] = &[
    ("site", "a site", load_site),
    ("vault", "a vault", load_vault),
    ("resource", "a resource", load_resource),
    ("plan", "a plan", load_plan),
    ("replication", "a replication rule", load_replication),
];

/// Sections announced but not yet read by this version.
const LATER: &[&str] = &["stack", "drill"];

pub(crate) fn load_document(sink: &mut Sink<'_>, doc: &DeTable<'_>, draft: &mut Draft) {
    let names: Vec<&str> = SECTIONS.iter().map(|s| s.0).collect();
    for (k, v) in doc.iter() {
        let section = k.get_ref().as_ref();
        let Some((_, what, loader)) = SECTIONS.iter().find(|s| s.0 == section) else {
            if LATER.contains(&section) {
                sink.error(
                    &k.span(),
                    section,
                    format!("`[{section}.…]` tables are not read by this version of lifeboat"),
                    Some("remove them, or upgrade lifeboat".into()),
                );
            } else if let Some(m) = crate::read::did_you_mean(section, &names) {
                sink.error(
                    &k.span(),
                    section,
                    format!("unknown key `{section}` — did you mean `{m}`?"),
                    Some(format!("rename it to `{m}`")),
                );
            } else {
                sink.error(
                    &k.span(),
                    section,
                    format!("unknown table `{section}`"),
                    Some(format!("the file's tables are: {}", names.join(", "))),
                );
            }
            continue;
        };
        let DeValue::Table(entries) = v.get_ref() else {
            sink.error(
                &v.span(),
                section,
                format!(
                    "expected tables `[{section}.NAME]`, found {}",
                    type_name(v.get_ref())
                ),
                Some(format!(
                    "write it as `[{section}.NAME]` followed by its keys"
                )),
            );
            continue;
        };
        for (name, body) in entries.iter() {
            let name = name.get_ref().as_ref();
            let path = format!("{section}.{name}");
            if !valid_name(name) {
                sink.error(
                    &body.span(),
                    &path,
                    format!("`{name}` is not a valid name for {what}"),
                    Some("use letters, digits, `-` and `_`, starting with a letter".into()),
                );
                continue;
            }
            let DeValue::Table(t) = body.get_ref() else {
                sink.error(
                    &body.span(),
                    &path,
                    format!("{what} is a table, found {}", type_name(body.get_ref())),
                    Some(format!("write it as `[{path}]` followed by its keys")),
                );
                continue;
            };
            let span = body.span();
            draft.spans.insert(path.clone(), span.clone());
            for (k, v) in t.iter() {
                draft
                    .spans
                    .insert(format!("{path}.{}", k.get_ref()), v.span());
            }
            let table = Table {
                t,
                path: &path,
                span: &span,
            };
            loader(sink, name, table, draft);
        }
    }
}

fn valid_name(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn load_site(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(t, "a site", &["root", "endpoint", "description"]);
    let root = sink.string(t, "root").map(|(s, span)| {
        if !s.starts_with('/') {
            sink.error(
                &span,
                &t.key("root"),
                format!("`{s}` is not an absolute path"),
                Some("write the root from `/`".into()),
            );
        }
        PathBuf::from(s)
    });
    let endpoint = sink.string(t, "endpoint").map(|s| s.0);
    sink.string(t, "description");
    d.sites.insert(name.to_string(), Site { root, endpoint });
}

/// `password_env` / `password_file` of a table (at most one).
fn secret(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<Secret> {
    let env = sink.string(t, "password_env");
    let file = sink.string(t, "password_file");
    match (env, file) {
        (Some(_), Some((_, span))) => {
            sink.error(
                &span,
                &t.key("password_file"),
                "both `password_env` and `password_file` are set",
                Some("keep one of them".into()),
            );
            None
        }
        (Some((e, span)), None) => {
            if e.is_empty() || e.contains(['=', ' ']) {
                sink.error(
                    &span,
                    &t.key("password_env"),
                    format!("`{e}` is not an environment variable name"),
                    Some("name the variable, e.g. `LIFEBOAT_PASSWORD`".into()),
                );
            }
            Some(Secret::Env(e))
        }
        (None, Some((f, span))) => {
            if !f.starts_with('/') {
                sink.error(
                    &span,
                    &t.key("password_file"),
                    format!("`{f}` is not an absolute path"),
                    Some("write the file's path from `/`".into()),
                );
            }
            Some(Secret::File(f.into()))
        }
        (None, None) => None,
    }
}

/// `lock = "governance"` or `lock = { mode, min_retention, max_retention, changeable_for }`.
pub(crate) fn lock(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<LockSpec> {
    let v = t.get("lock")?;
    let key = t.key("lock");
    let mode_of = |sink: &mut Sink<'_>, s: &str, span: &Range<usize>, key: &str| match s {
        "governance" => Some(LockMode::Governance),
        "compliance" => Some(LockMode::Compliance),
        _ => {
            sink.error(
                span,
                key,
                format!("unknown lock mode `{s}`"),
                Some("write `governance` or `compliance`".into()),
            );
            None
        }
    };
    match v.get_ref() {
        DeValue::String(s) => mode_of(sink, s, &v.span(), &key).map(|mode| LockSpec {
            mode,
            min_retention: None,
            max_retention: None,
            changeable_for: None,
        }),
        DeValue::Table(lt) => {
            let span = v.span();
            let lt = Table {
                t: lt,
                path: &key,
                span: &span,
            };
            sink.unknown_keys(
                lt,
                "a lock",
                &["mode", "min_retention", "max_retention", "changeable_for"],
            );
            let mode = match sink.string(lt, "mode") {
                Some((s, span)) => mode_of(sink, &s, &span, &lt.key("mode"))?,
                None => {
                    sink.missing(lt, "mode", "the lock", "add `mode = \"governance\"` (deletable with an override) or `mode = \"compliance\"` (by no one)");
                    return None;
                }
            };
            let min = sink.duration(lt, "min_retention");
            let max = sink.duration(lt, "max_retention");
            if let (Some(a), Some(b)) = (min, max)
                && a > b
            {
                sink.error(
                    &lt.get("max_retention").expect("read").span(),
                    &lt.key("max_retention"),
                    format!("max_retention ({b}) is shorter than min_retention ({a})"),
                    Some("raise max_retention or lower min_retention".into()),
                );
            }
            Some(LockSpec {
                mode,
                min_retention: min,
                max_retention: max,
                changeable_for: sink.duration(lt, "changeable_for"),
            })
        }
        _ => {
            sink.wrong_type(t, "lock", v, "a lock mode or a lock table");
            None
        }
    }
}

fn load_vault(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a vault",
        &[
            "site",
            "location",
            "password_env",
            "password_file",
            "lock",
            "description",
        ],
    );
    sink.string(t, "description");
    let site = sink.string(t, "site").map(|s| s.0);
    let location = match sink.string(t, "location") {
        Some((l, span)) => {
            if let Err(e) = lifeboat_vault::Location::parse(&l) {
                sink.error(&span, &t.key("location"), e.to_string(), Some("write `file:///abs/path`, `/abs/path` or `s3://bucket/prefix?endpoint=...&region=...`".into()));
            }
            l
        }
        None => {
            if t.get("location").is_none() {
                sink.missing(
                    t,
                    "location",
                    &format!("vault `{name}`"),
                    "add `location = \"file:///var/lib/lifeboat/vault\"` (or an s3:// URL)",
                );
            }
            String::new()
        }
    };
    let password = secret(sink, t).unwrap_or_else(|| Secret::Env("LIFEBOAT_PASSWORD".into()));
    let lock = lock(sink, t);
    d.vaults.insert(
        name.to_string(),
        VaultSpec {
            site,
            location,
            password,
            lock,
        },
    );
}

const KINDS: &[&str] = &["files", "mysql", "bucket", "instance"];

fn load_resource(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    let site = sink.string(t, "site").map(|s| s.0);
    let kind = match sink.string(t, "kind") {
        Some((k, span)) => {
            if !KINDS.contains(&k.as_str()) {
                let hint = crate::read::did_you_mean(&k, KINDS)
                    .map(|m| format!(" — did you mean `{m}`?"))
                    .unwrap_or_default();
                sink.error(
                    &span,
                    &t.key("kind"),
                    format!("unknown resource kind `{k}`{hint}"),
                    Some(format!("write one of: {}", KINDS.join(", "))),
                );
                return;
            }
            k
        }
        None if t.get("kind").is_some() => return,
        // Defaults that make a short file useful: the kind follows from the keys.
        None if t.get("paths").is_some() => "files".into(),
        None if t.get("dsn").is_some() => "mysql".into(),
        None if t.get("location").is_some() => "bucket".into(),
        None => {
            sink.missing(t, "kind", &format!("resource `{name}`"), "add `kind = \"files\"` (with `paths`), `\"mysql\"` (with `dsn`), `\"bucket\"` (with `location`) or `\"instance\"`");
            return;
        }
    };
    let kind = match kind.as_str() {
        "files" => {
            sink.unknown_keys(
                t,
                "a files resource",
                &[
                    "kind",
                    "site",
                    "paths",
                    "exclude",
                    "one_file_system",
                    "description",
                ],
            );
            let paths = sink.strings(t, "paths").unwrap_or_default();
            if paths.is_empty() && t.get("paths").is_none() {
                sink.missing(
                    t,
                    "paths",
                    &format!("files resource `{name}`"),
                    "add `paths = [\"/abs/path\", ...]`",
                );
            }
            for (p, span) in &paths {
                if !p.starts_with('/') {
                    sink.error(
                        span,
                        &t.key("paths"),
                        format!("`{p}` is not an absolute path"),
                        Some("write each path from `/`".into()),
                    );
                }
            }
            ResourceKind::Files {
                paths: paths.into_iter().map(|p| p.0.into()).collect(),
                excludes: sink
                    .strings(t, "exclude")
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| p.0)
                    .collect(),
                one_file_system: sink.boolean(t, "one_file_system").unwrap_or(false),
            }
        }
        "mysql" => {
            sink.unknown_keys(
                t,
                "a mysql resource",
                &[
                    "kind",
                    "site",
                    "dsn",
                    "password_env",
                    "password_file",
                    "archive",
                    "description",
                ],
            );
            let dsn = match sink.string(t, "dsn") {
                Some((dsn, span)) => {
                    check_dsn(sink, &dsn, &span, &t.key("dsn"));
                    dsn
                }
                None => {
                    if t.get("dsn").is_none() {
                        sink.missing(
                            t,
                            "dsn",
                            &format!("mysql resource `{name}`"),
                            "add `dsn = \"mysql://user@host:3306\"`",
                        );
                    }
                    String::new()
                }
            };
            ResourceKind::Mysql {
                dsn,
                password: secret(sink, t),
                archive: archive(sink, t),
            }
        }
        "bucket" => {
            sink.unknown_keys(
                t,
                "a bucket resource",
                &["kind", "site", "location", "description"],
            );
            let location = sink.string(t, "location").map(|l| l.0).unwrap_or_else(|| {
                if t.get("location").is_none() {
                    sink.missing(
                        t,
                        "location",
                        &format!("bucket resource `{name}`"),
                        "add `location = \"file:///path/to/bucket\"` (or an s3:// URL)",
                    );
                }
                String::new()
            });
            ResourceKind::Bucket { location }
        }
        _ => {
            // Kept raw: the instance protector validates its InstanceSpec.
            let mut spec = serde_json::Map::new();
            for (k, v) in t.t.iter() {
                let k = k.get_ref().as_ref();
                if k != "kind" && k != "site" {
                    spec.insert(k.to_string(), to_json(v.get_ref()));
                }
            }
            ResourceKind::Instance {
                spec: serde_json::Value::Object(spec),
            }
        }
    };
    d.resources
        .insert(name.to_string(), Resource { site, kind });
}

fn check_dsn(sink: &mut Sink<'_>, dsn: &str, span: &Range<usize>, key: &str) {
    let Some(rest) = dsn
        .strip_prefix("mysql://")
        .or_else(|| dsn.strip_prefix("mariadb://"))
    else {
        sink.error(
            span,
            key,
            format!("`{dsn}` is not a mysql:// DSN"),
            Some("write `mysql://user@host:3306`".into()),
        );
        return;
    };
    let auth = rest.split(['/', '?']).next().unwrap_or("");
    if let Some((user, _)) = auth.rsplit_once('@')
        && user.contains(':')
    {
        sink.error(
            span,
            key,
            "the DSN holds a password",
            Some(
                "remove `:password` from the DSN and set `password_env` or `password_file`".into(),
            ),
        );
    }
}

/// `archive = true` or `archive = { vault, copy_to }`.
fn archive(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<Archive> {
    let v = t.get("archive")?;
    match v.get_ref() {
        DeValue::Boolean(true) => Some(Archive {
            vault: None,
            copy_to: Vec::new(),
        }),
        DeValue::Boolean(false) => None,
        DeValue::Table(at) => {
            let key = t.key("archive");
            let span = v.span();
            let at = Table {
                t: at,
                path: &key,
                span: &span,
            };
            sink.unknown_keys(at, "an archive", &["vault", "copy_to"]);
            Some(Archive {
                vault: sink.string(at, "vault").map(|s| s.0),
                copy_to: sink
                    .strings(at, "copy_to")
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| s.0)
                    .collect(),
            })
        }
        _ => {
            sink.wrong_type(t, "archive", v, "true, false or `{ vault = \"NAME\" }`");
            None
        }
    }
}

fn read_retention(sink: &mut Sink<'_>, t: Table<'_, '_>, key: &str) -> Option<RetentionSpec> {
    let (rt, span) = sink.table(t, key)?;
    let path = t.key(key);
    let rt = Table {
        t: rt,
        path: &path,
        span: &span,
    };
    const KEYS: &[&str] = &[
        "keep_last",
        "keep_hourly",
        "keep_daily",
        "keep_weekly",
        "keep_monthly",
        "keep_yearly",
        "keep_within",
    ];
    sink.unknown_keys(rt, "a retention", KEYS);
    let r = RetentionSpec {
        keep_last: sink.count(rt, "keep_last"),
        keep_hourly: sink.count(rt, "keep_hourly"),
        keep_daily: sink.count(rt, "keep_daily"),
        keep_weekly: sink.count(rt, "keep_weekly"),
        keep_monthly: sink.count(rt, "keep_monthly"),
        keep_yearly: sink.count(rt, "keep_yearly"),
        keep_within: sink.duration(rt, "keep_within"),
    };
    if r == RetentionSpec::default() && rt.t.is_empty() {
        sink.error(
            &span,
            &path,
            "the retention keeps nothing: every point would be forgotten",
            Some("add a rule, e.g. `keep_daily = 7`".into()),
        );
    }
    Some(r)
}

fn hooks(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Hooks {
    let Some((ht, span)) = sink.table(t, "hooks") else {
        return Hooks::default();
    };
    let path = t.key("hooks");
    let ht = Table {
        t: ht,
        path: &path,
        span: &span,
    };
    sink.unknown_keys(ht, "hooks", &["before", "after", "on_failure"]);
    let list = |sink: &mut Sink<'_>, key: &str| -> Vec<Hook> {
        let Some(v) = ht.get(key) else {
            return Vec::new();
        };
        let items: Vec<&toml::Spanned<DeValue<'_>>> = match v.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![v],
        };
        let hkey = ht.key(key);
        let mut out = Vec::new();
        for item in items {
            match item.get_ref() {
                DeValue::String(c) => out.push(Hook {
                    command: c.to_string(),
                    timeout: Dur(300),
                    essential: true,
                }),
                DeValue::Table(h) => {
                    let span = item.span();
                    let h = Table {
                        t: h,
                        path: &hkey,
                        span: &span,
                    };
                    sink.unknown_keys(h, "a hook", &["command", "timeout", "essential"]);
                    match sink.string(h, "command") {
                        Some((c, _)) => out.push(Hook {
                            command: c,
                            timeout: sink.duration(h, "timeout").unwrap_or(Dur(300)),
                            essential: sink.boolean(h, "essential").unwrap_or(true),
                        }),
                        None => sink.missing(h, "command", "the hook", "add `command = \"...\"`"),
                    }
                }
                _ => sink.wrong_type(
                    ht,
                    key,
                    item,
                    "a command or `{ command, timeout, essential }`",
                ),
            }
        }
        out
    };
    Hooks {
        before: list(sink, "before"),
        after: list(sink, "after"),
        on_failure: list(sink, "on_failure"),
    }
}

fn load_plan(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a plan",
        &[
            "resources",
            "schedule",
            "timezone",
            "window",
            "vault",
            "retention",
            "copy",
            "hooks",
            "notify",
            "description",
        ],
    );
    sink.string(t, "description");
    let resources: Vec<String> = sink
        .strings(t, "resources")
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.0)
        .collect();
    let tz = sink.string(t, "timezone");
    let expr = sink.string(t, "schedule");
    let schedule = {
        let (e, espan) = expr.clone().unwrap_or_else(|| ("0 2 * * *".into(), 0..0));
        let (z, zspan) = tz.clone().unwrap_or_else(|| ("UTC".into(), 0..0));
        match Schedule::parse(&e, &z) {
            Ok(s) => Some(s),
            Err(crate::schedule::ScheduleError::TimeZone(_)) => {
                sink.error(
                    &zspan,
                    &t.key("timezone"),
                    format!("unknown time zone `{z}`"),
                    Some("write an IANA name such as `UTC` or `Europe/Berlin`".into()),
                );
                None
            }
            Err(err) => {
                sink.error(&espan, &t.key("schedule"), format!("`{e}` is not a cron expression: {err}"), Some("write five fields: minute hour day-of-month month day-of-week, e.g. `0 * * * *` (hourly)".into()));
                None
            }
        }
    };
    let window = sink.duration(t, "window");
    let vault = sink.string(t, "vault").map(|s| s.0).unwrap_or_default();
    let retention =
        read_retention(sink, t, "retention").unwrap_or_else(RetentionSpec::default_plan);
    let mut copy = Vec::new();
    if let Some(v) = t.get("copy") {
        let items: Vec<_> = match v.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            DeValue::Table(_) => vec![v],
            _ => {
                sink.wrong_type(t, "copy", v, "a list of `{ vault = \"NAME\" }`");
                Vec::new()
            }
        };
        for (i, item) in items.into_iter().enumerate() {
            let DeValue::Table(ct) = item.get_ref() else {
                sink.wrong_type(t, "copy", item, "a copy action `{ vault = \"NAME\" }`");
                continue;
            };
            let path = format!("{}.copy[{i}]", t.path);
            let span = item.span();
            let ct = Table {
                t: ct,
                path: &path,
                span: &span,
            };
            d.spans.insert(path.clone(), span.clone());
            for (k, v) in ct.t.iter() {
                d.spans.insert(format!("{path}.{}", k.get_ref()), v.span());
            }
            sink.unknown_keys(ct, "a copy action", &["vault", "retention", "lock"]);
            let Some((cv, _)) = sink.string(ct, "vault") else {
                if ct.get("vault").is_none() {
                    sink.missing(
                        ct,
                        "vault",
                        "the copy action",
                        "add `vault = \"NAME\"` (a vault in another site)",
                    );
                }
                continue;
            };
            copy.push(CopyAction {
                vault: cv,
                retention: read_retention(sink, ct, "retention"),
                lock: lock(sink, ct),
            });
        }
    }
    let notify = match sink.table(t, "notify") {
        Some((nt, span)) => {
            let path = t.key("notify");
            let nt = Table {
                t: nt,
                path: &path,
                span: &span,
            };
            sink.unknown_keys(nt, "notify", &["webhook", "healthcheck"]);
            let url = |sink: &mut Sink<'_>, k: &str| {
                sink.string(nt, k).map(|(u, span)| {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        sink.error(
                            &span,
                            &nt.key(k),
                            format!("`{u}` is not an http(s) URL"),
                            Some("write `https://...`".into()),
                        );
                    }
                    u
                })
            };
            Notify {
                webhook: url(sink, "webhook"),
                healthcheck: url(sink, "healthcheck"),
            }
        }
        None => Notify::default(),
    };
    let hooks = hooks(sink, t);
    if let Some(schedule) = schedule {
        d.plans.insert(
            name.to_string(),
            Plan {
                resources,
                schedule,
                window,
                vault,
                retention,
                copy,
                hooks,
                notify,
            },
        );
    }
}

fn load_replication(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a replication rule",
        &["from", "to", "delete", "prefix", "description"],
    );
    let from = sink.string(t, "from").map(|s| s.0);
    let to = sink.string(t, "to").map(|s| s.0);
    let delete = match sink.string(t, "delete") {
        None => DeletePolicy::Replicate,
        Some((s, _)) if s == "replicate" => DeletePolicy::Replicate,
        Some((s, _)) if s == "keep" => DeletePolicy::Keep,
        Some((s, span)) => {
            sink.error(
                &span,
                &t.key("delete"),
                format!("unknown delete policy `{s}`"),
                Some("write `replicate` (delete at the destination too) or `keep`".into()),
            );
            DeletePolicy::Replicate
        }
    };
    let prefix = sink.string(t, "prefix").map(|s| s.0);
    for (k, v) in [("from", &from), ("to", &to)] {
        if v.is_none() && t.get(k).is_none() {
            sink.missing(
                t,
                k,
                &format!("replication rule `{name}`"),
                if k == "from" {
                    "add `from = \"RESOURCE\"` (a bucket resource)"
                } else {
                    "add `to = \"file:///path/to/bucket\"` (or an s3:// URL)"
                },
            );
        }
    }
    if let (Some(from), Some(to)) = (from, to) {
        d.replications.insert(
            name.to_string(),
            Replication {
                from,
                to,
                delete,
                prefix,
            },
        );
    }
}

/// A raw value as JSON (for tables kept raw).
fn to_json(v: &DeValue<'_>) -> serde_json::Value {
    match v {
        DeValue::String(s) => serde_json::Value::String(s.to_string()),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Float(f) => f
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        DeValue::Boolean(b) => (*b).into(),
        DeValue::Datetime(d) => d.to_string().into(),
        DeValue::Array(a) => a.iter().map(|x| to_json(x.get_ref())).collect(),
        DeValue::Table(t) => t
            .iter()
            .map(|(k, v)| (k.get_ref().to_string(), to_json(v.get_ref())))
            .collect(),
    }
}
