//! `[plan.NAME]` (schedule, retention, copy actions, hooks, notify) and
//! `[replication.NAME]`.

use toml::de::DeValue;

use crate::diag::Sink;
use crate::duration::Dur;
use crate::load::{Draft, lock};
use crate::model::*;
use crate::read::{SubTable, Table};
use crate::schedule::Schedule;
fn read_retention(sink: &mut Sink<'_>, t: Table<'_, '_>, key: &str) -> Option<RetentionSpec> {
    let retention = sink.sub_table(t, key)?;
    let rt = retention.view();
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
            rt.span,
            rt.path,
            "the retention keeps nothing: every point would be forgotten",
            Some("add a rule, e.g. `keep_daily = 7`".into()),
        );
    }
    Some(r)
}

fn hooks(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Hooks {
    let Some(hooks) = sink.sub_table(t, "hooks") else {
        return Hooks::default();
    };
    let ht = hooks.view();
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
                    let hook = SubTable::new(h, hkey.clone(), item.span());
                    let h = hook.view();
                    sink.unknown_keys(h, "a hook", &["command", "timeout", "essential"]);
                    match sink.string(h, "command") {
                        Some((c, _)) => out.push(Hook {
                            command: c,
                            timeout: sink.timeout(h, "timeout").unwrap_or(Dur(300)),
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

/// A cron expression `expr` (with its span) in the table's `timezone`
/// (default UTC); an unknown zone or a bad expression is an error at its key,
/// `fix` saying how to write the expression.
pub(crate) fn cron(
    sink: &mut Sink<'_>,
    t: Table<'_, '_>,
    (e, espan): (String, std::ops::Range<usize>),
    fix: &str,
) -> Option<Schedule> {
    let (z, zspan) = sink
        .string(t, "timezone")
        .unwrap_or_else(|| ("UTC".into(), 0..0));
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
            sink.error(
                &espan,
                &t.key("schedule"),
                format!("`{e}` is not a cron expression: {err}"),
                Some(fix.into()),
            );
            None
        }
    }
}

/// A plan's `copy` actions (one table or a list), their keys' spans
/// recorded for the cross-checks.
fn copies(sink: &mut Sink<'_>, t: Table<'_, '_>, d: &mut Draft) -> Vec<CopyAction> {
    let mut copy = Vec::new();
    let Some(v) = t.get("copy") else {
        return copy;
    };
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
        let copy_table = SubTable::new(ct, path.clone(), item.span());
        let ct = copy_table.view();
        d.spans.insert(path.clone(), item.span());
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
    copy
}

/// A plan's `notify`: webhook and healthcheck URLs.
fn notify(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Notify {
    match sink.sub_table(t, "notify") {
        Some(notify) => {
            let nt = notify.view();
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
    }
}

/// Reads `[plan.NAME]` into the draft.
pub(crate) fn load_plan(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
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
    let expr = sink
        .string(t, "schedule")
        .unwrap_or_else(|| ("0 2 * * *".into(), 0..0));
    let schedule = cron(
        sink,
        t,
        expr,
        "write five fields: minute hour day-of-month month day-of-week, e.g. `0 * * * *` (hourly)",
    );
    let window = sink.duration(t, "window");
    let vault = sink.string(t, "vault").map(|s| s.0).unwrap_or_default();
    let retention =
        read_retention(sink, t, "retention").unwrap_or_else(RetentionSpec::default_plan);
    let copy = copies(sink, t, d);
    let notify = notify(sink, t);
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

pub(crate) fn load_replication(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a replication rule",
        &["from", "to", "delete", "prefix", "description"],
    );
    let from = sink.string(t, "from").map(|s| s.0);
    let to = sink.bucket_location(t, "to");
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
