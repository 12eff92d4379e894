//! `[resource.NAME]` of kind `instance`: the table is an instance spec
//! (`lifeboat_instance::InstanceSpec`). Read here with spans — unknown keys
//! with "did you mean" against the spec's own key lists, types — then
//! checked by the spec's own rules (`InstanceSpec::problems`), each problem
//! pointed at its key. The model keeps the spec as JSON, its name set to the
//! resource's.

use std::ops::Range;
use std::path::PathBuf;

use lifeboat_instance::spec::{HOOK_KEYS, Hooks, InstanceSpec, KEYS, LAUNCH_KEYS, LaunchSpec};
use toml::de::DeValue;

use crate::diag::Sink;
use crate::model::ResourceKind;
use crate::read::Table;

/// A list of strings that must be an array (a program and its arguments).
fn array_of_strings(sink: &mut Sink<'_>, t: Table<'_, '_>, key: &str, want: &str) -> Vec<String> {
    match t.get(key) {
        Some(v) if matches!(v.get_ref(), DeValue::Array(_)) => sink
            .strings(t, key)
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.0)
            .collect(),
        Some(v) => {
            sink.wrong_type(t, key, v, want);
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn strings(sink: &mut Sink<'_>, t: Table<'_, '_>, key: &str) -> Vec<String> {
    sink.strings(t, key)
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.0)
        .collect()
}

/// `port`: a number or a string (which may be a placeholder).
fn port(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<String> {
    let v = t.get("port")?;
    match v.get_ref() {
        DeValue::Integer(i) => Some(i.as_str().to_string()),
        DeValue::String(s) => Some(s.to_string()),
        _ => {
            sink.wrong_type(
                t,
                "port",
                v,
                "a port number or a string such as \"${PORT}\"",
            );
            None
        }
    }
}

fn launch(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Option<LaunchSpec> {
    let launch = sink.sub_table(t, "launch")?;
    let l = launch.view();
    sink.unknown_keys(l, "a launch spec", LAUNCH_KEYS);
    if l.get("command").is_none() {
        sink.missing(
            l,
            "command",
            "the launch spec",
            "add `command = [\"/path/to/program\", \"arg\", ...]`",
        );
    }
    let mut env = std::collections::BTreeMap::new();
    if let Some(env_table) = sink.sub_table(l, "env") {
        let e = env_table.view();
        for (k, _) in e.t.iter() {
            if let Some((v, _)) = sink.string(e, k.get_ref()) {
                env.insert(k.get_ref().to_string(), v);
            }
        }
    }
    Some(LaunchSpec {
        command: array_of_strings(
            sink,
            l,
            "command",
            "a list of strings (the program and its arguments)",
        ),
        cwd: sink.string(l, "cwd").map(|s| s.0),
        env,
        port: port(sink, l),
        health: sink.string(l, "health").map(|s| s.0),
        health_timeout: sink.string(l, "health_timeout").map(|s| s.0),
        databases: strings(sink, l, "databases"),
        buckets: strings(sink, l, "buckets"),
    })
}

fn hooks(sink: &mut Sink<'_>, t: Table<'_, '_>) -> Hooks {
    let Some(hooks) = sink.sub_table(t, "hooks") else {
        return Hooks::default();
    };
    let h = hooks.view();
    sink.unknown_keys(h, "consistency hooks", HOOK_KEYS);
    Hooks {
        before: strings(sink, h, "before"),
        after: strings(sink, h, "after"),
    }
}

/// The span of the value at dotted `key` (`launch.command[0]`) below `t`,
/// or the nearest table's.
fn span_of(t: Table<'_, '_>, key: &str) -> Range<usize> {
    let mut span = t.span.clone();
    let mut cur = Some(t.t);
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
            None => (part, None),
        };
        let Some(v) = cur.and_then(|c| c.get(name)) else {
            break;
        };
        span = v.span();
        cur = None;
        match (v.get_ref(), index) {
            (DeValue::Table(sub), _) => cur = Some(sub),
            (DeValue::Array(a), Some(i)) => {
                if let Some(item) = a.get(i) {
                    span = item.span();
                }
            }
            _ => {}
        }
    }
    span
}

/// Records the span of every value below `key` of `t` (`launch.env.DB`,
/// `launch.command[1]`), so that a cross-reference check points at the
/// value's own line.
pub(crate) fn record_spans(
    t: Table<'_, '_>,
    key: &str,
    spans: &mut std::collections::BTreeMap<String, Range<usize>>,
) {
    fn walk(
        v: &crate::read::Val<'_>,
        at: String,
        spans: &mut std::collections::BTreeMap<String, Range<usize>>,
    ) {
        match v.get_ref() {
            DeValue::Table(sub) => {
                for (k, x) in sub.iter() {
                    walk(x, format!("{at}.{}", k.get_ref()), spans);
                }
            }
            DeValue::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    walk(x, format!("{at}[{i}]"), spans);
                }
            }
            _ => {}
        }
        spans.insert(at, v.span());
    }
    if let Some(v) = t.get(key) {
        walk(v, t.key(key), spans);
    }
}

/// Reads an instance resource's table.
pub(crate) fn load_instance(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>) -> ResourceKind {
    let allowed: Vec<&str> = ["site", "stateless", "description"]
        .into_iter()
        .chain(KEYS.iter().copied().filter(|k| *k != "name"))
        .collect();
    sink.unknown_keys(t, "an instance resource", &allowed);
    let path_list = |sink: &mut Sink<'_>, key: &str| -> Vec<PathBuf> {
        strings(sink, t, key)
            .into_iter()
            .map(PathBuf::from)
            .collect()
    };
    let spec = InstanceSpec {
        kind: Some("instance".into()),
        name: Some(name.to_string()),
        paths: path_list(sink, "paths"),
        excludes: strings(sink, t, "excludes"),
        one_file_system: sink.boolean(t, "one_file_system").unwrap_or(false),
        volumes: path_list(sink, "volumes"),
        launch: launch(sink, t),
        hooks: hooks(sink, t),
    };
    let wrong_type = |k: &str| {
        t.get(k)
            .is_some_and(|v| !matches!(v.get_ref(), DeValue::Array(_) | DeValue::String(_)))
    };
    for p in spec.problems() {
        // A list with a wrong type was reported as such already.
        if p.key.is_empty() && (wrong_type("paths") || wrong_type("volumes")) {
            continue;
        }
        let key = if p.key.is_empty() {
            t.key("paths")
        } else {
            t.key(&p.key)
        };
        // A key already reported (a wrong type) is not reported twice.
        if sink.diags.iter().any(|d| d.key == key) {
            continue;
        }
        let span = if p.key.is_empty() {
            t.span.clone()
        } else {
            span_of(t, &p.key)
        };
        let message = if p.key.is_empty() {
            format!("instance resource `{name}` has {}", p.message)
        } else {
            p.message
        };
        sink.error(&span, &key, message, Some(p.fix));
    }
    ResourceKind::Instance {
        spec: serde_json::to_value(&spec).expect("a spec serializes"),
    }
}
