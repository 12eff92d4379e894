//! `[resource.NAME]`, read alike for every kind from its protector's keys
//! (`lifeboat_protector::ResourceSettings`, the registry of
//! `lifeboat-protectors`): the kind (`kind`, else the keys that imply one),
//! unknown keys with "did you mean", wrong types, missing keys, then the
//! protector's own checks, each pointed at its key. The table read as JSON
//! becomes the model's kind (`ResourceKind::from_settings`). A new kind
//! needs nothing here.

use std::ops::Range;

use lifeboat_protector::{Key, Problem, Protector, Registry, Shape};
use serde_json::{Map, Value};
use toml::de::DeValue;

use crate::diag::Sink;
use crate::load::{Draft, secret};
use crate::model::*;
use crate::read::{SubTable, Table};

/// The keys every resource takes besides its kind's: before them …
const OWN_FIRST: &[&str] = &["kind", "site", "stateless"];
/// … and after them.
const OWN_LAST: &[&str] = &["description"];

/// Reads `[resource.NAME]` into the draft.
pub(crate) fn load_resource(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    let site = sink.string(t, "site").map(|s| s.0);
    let stateless = sink.boolean(t, "stateless").unwrap_or(false);
    let Some(protector) = resource_kind(sink, name, t, d.registry()) else {
        return;
    };
    let kind = protector.describe().kind;
    let keys = protector.settings().keys;
    let allowed: Vec<&str> = OWN_FIRST
        .iter()
        .copied()
        .chain(keys.iter().map(|k| k.name))
        .chain(OWN_LAST.iter().copied())
        .collect();
    sink.unknown_keys(t, &format!("{} resource", crate::a(kind)), &allowed);
    let before = sink.diags.len();
    let read = read_table(sink, t, keys, &format!("{kind} resource `{name}`"));
    let reported: Vec<String> = sink.diags[before..].iter().map(|x| x.key.clone()).collect();
    let with_kind = |m: Map<String, Value>| {
        let mut settings = Map::from_iter([("kind".to_string(), Value::from(kind))]);
        settings.extend(m);
        Value::Object(settings)
    };
    let checked = with_kind(read.check);
    for p in protector.check_settings(&checked) {
        // A value already reported (a wrong type, a missing key) is not
        // reported again (an item of it is); nor is the resource as a
        // whole when one of its own values had a wrong type.
        let again = p.item.is_none() && reported.contains(&t.key(&p.key));
        if again || (p.whole && read.wrong) {
            continue;
        }
        report(sink, t, kind, name, p);
    }
    for (k, _) in t.t.iter() {
        record_spans(t, k.get_ref(), &mut d.spans);
    }
    let kind = ResourceKind::from_settings(kind, name, with_kind(read.model));
    d.resources.insert(
        name.to_string(),
        Resource {
            site,
            stateless,
            kind,
        },
    );
}

/// A protector's problem, pointed at its key (an item of its list, or the
/// resource's table when it is about the whole).
fn report(sink: &mut Sink<'_>, t: Table<'_, '_>, kind: &str, name: &str, p: Problem) {
    let key = t.key(&p.key);
    let (span, message) = match (p.whole, p.item) {
        (true, _) => (
            t.span.clone(),
            format!("{kind} resource `{name}` has {}", p.message),
        ),
        (false, Some(i)) => (string_item_span(t, &p.key, i), p.message),
        (false, None) => (span_of(t, &p.key), p.message),
    };
    sink.error(&span, &key, message, Some(p.fix));
}

/// The resource's protector: by `kind`, else by the keys that imply one;
/// `None` (with a diagnostic) when neither says.
fn resource_kind(
    sink: &mut Sink<'_>,
    name: &str,
    t: Table<'_, '_>,
    registry: &Registry,
) -> Option<&'static dyn Protector> {
    let kinds: Vec<&str> = registry.all().map(|p| p.describe().kind).collect();
    match sink.string(t, "kind") {
        Some((k, span)) => {
            let found = registry.of_resource(&k);
            if found.is_none() {
                let hint = crate::read::did_you_mean(&k, &kinds)
                    .map(|m| format!(" — did you mean `{m}`?"))
                    .unwrap_or_default();
                sink.error(
                    &span,
                    &t.key("kind"),
                    format!("unknown resource kind `{k}`{hint}"),
                    Some(format!("write one of: {}", kinds.join(", "))),
                );
            }
            found
        }
        None if t.get("kind").is_some() => None,
        // Defaults that make a short file useful: the kind follows from the keys.
        None => implied_kind(t, registry).or_else(|| {
            let fix = kind_fix(registry);
            sink.missing(t, "kind", &format!("resource `{name}`"), &fix);
            None
        }),
    }
}

/// The kind the table's keys imply: the first, in registration order, of
/// those whose implying keys are present — a kind whose own keys include
/// another kind's implying key (it extends that kind: an instance takes
/// `paths`) tried before every other, so `paths` with `launch` is an instance.
fn implied_kind(t: Table<'_, '_>, registry: &Registry) -> Option<&'static dyn Protector> {
    let extends = |p: &dyn Protector| {
        let own = p.settings().keys;
        registry.all().any(|o| {
            o.describe().kind != p.describe().kind
                && o.settings()
                    .implied_by
                    .iter()
                    .any(|k| own.iter().any(|x| x.name == *k))
        })
    };
    let implied = |p: &dyn Protector| p.settings().implied_by.iter().any(|k| t.get(k).is_some());
    let (first, rest): (Vec<_>, Vec<_>) = registry.all().partition(|p| extends(*p));
    first.into_iter().chain(rest).find(|p| implied(*p))
}

/// What to add when no key says the kind: each kind with the keys that imply it.
fn kind_fix(registry: &Registry) -> String {
    let parts: Vec<String> = registry
        .all()
        .enumerate()
        .map(|(i, p)| {
            let kind = p.describe().kind;
            let implied_by = p.settings().implied_by;
            let with = match implied_by {
                [] => String::new(),
                keys => {
                    let keys: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
                    format!(" (with {})", keys.join(" or "))
                }
            };
            let kind = if i == 0 {
                format!("`kind = \"{kind}\"`")
            } else {
                format!("`\"{kind}\"`")
            };
            format!("{kind}{with}")
        })
        .collect();
    match parts.split_last() {
        Some((last, [])) => format!("add {last}"),
        Some((last, rest)) => format!("add {} or {last}", rest.join(", ")),
        None => "add `kind`".into(),
    }
}

/// A table read by its keys: as the protector checks it (`check`: a
/// missing required value empty) and as the model keeps it (`model`: a
/// table without its required secret left out).
struct Read {
    check: Map<String, Value>,
    model: Map<String, Value>,
    /// Every required key and secret is there.
    complete: bool,
    /// One of its own values had a wrong type.
    wrong: bool,
}

/// Reads the keys `keys` of `t`; `the` names it for a missing key.
fn read_table(sink: &mut Sink<'_>, t: Table<'_, '_>, keys: &[Key], the: &str) -> Read {
    let mut read = Read {
        check: Map::new(),
        model: Map::new(),
        complete: true,
        wrong: false,
    };
    for key in keys.iter().filter(|k| !matches!(k.shape, Shape::Secret)) {
        let value = match t.get(key.name) {
            Some(v) => read_value(sink, t, key, v),
            None => Got::Absent,
        };
        read.wrong |= matches!(value, Got::Wrong);
        let (check, model) = match value {
            Got::Value(v) => (v.clone(), v),
            Got::Table(sub) => {
                // A table without its required secret is left out of the model.
                let model = match sub.complete {
                    true => Value::Object(sub.model),
                    false => Value::Null,
                };
                (Value::Object(sub.check), model)
            }
            Got::Absent | Got::Wrong if key.required.is_some() => {
                if matches!(value, Got::Absent) {
                    let fix = key.required.unwrap_or_default();
                    sink.missing(t, key.name, the, fix);
                }
                (empty(key.shape), empty(key.shape))
            }
            Got::Absent | Got::Wrong => continue,
        };
        read.check.insert(key.field.to_string(), check);
        if !model.is_null() {
            read.model.insert(key.field.to_string(), model);
        }
    }
    read_secret(sink, t, keys, the, &mut read);
    read
}

/// `password_env` / `password_file`, when the table takes them: field
/// `password`; a required one missing makes the table incomplete.
fn read_secret(sink: &mut Sink<'_>, t: Table<'_, '_>, keys: &[Key], the: &str, read: &mut Read) {
    let secrets: Vec<&Key> = keys
        .iter()
        .filter(|k| matches!(k.shape, Shape::Secret))
        .collect();
    if secrets.is_empty() {
        return;
    }
    match secret(sink, t) {
        Some(s) => {
            let v = serde_json::to_value(s).expect("a secret's source serializes");
            read.check.insert("password".into(), v.clone());
            read.model.insert("password".into(), v);
        }
        None => {
            let named = secrets.iter().any(|k| t.get(k.name).is_some());
            if let Some(k) = secrets.iter().find(|k| k.required.is_some()) {
                read.complete = false;
                if !named {
                    let fix = k.required.unwrap_or_default();
                    sink.missing(t, k.name, the, fix);
                }
            }
        }
    }
}

/// A value read by its key's shape.
enum Got {
    Absent,
    /// Reported as a wrong type.
    Wrong,
    Value(Value),
    Table(Read),
}

/// The value of a required key that is missing: empty.
fn empty(shape: Shape) -> Value {
    match shape {
        Shape::String | Shape::NumberOrString => Value::from(""),
        Shape::Strings | Shape::Array => Value::Array(Vec::new()),
        Shape::Bool => Value::Bool(false),
        Shape::StringMap | Shape::Table(_) | Shape::Switch(_) | Shape::Secret => {
            Value::Object(Map::new())
        }
    }
}

/// Reads `v`, the value of `key` in `t`, by the key's shape.
fn read_value(sink: &mut Sink<'_>, t: Table<'_, '_>, key: &Key, v: &crate::read::Val<'_>) -> Got {
    let wrong = |sink: &mut Sink<'_>, default: &str| {
        sink.wrong_type(t, key.name, v, key.want.unwrap_or(default));
        Got::Wrong
    };
    match (key.shape, v.get_ref()) {
        (Shape::String, DeValue::String(s)) => Got::Value(Value::from(s.as_ref())),
        (Shape::String, _) => wrong(sink, "a string"),
        (Shape::Strings, DeValue::String(s)) => Got::Value(Value::from(vec![s.as_ref()])),
        (Shape::Strings | Shape::Array, DeValue::Array(a)) => {
            let mut out = Vec::new();
            for item in a {
                match item.get_ref() {
                    DeValue::String(s) => out.push(Value::from(s.as_ref())),
                    _ => sink.wrong_type(t, key.name, item, "a string in the list"),
                }
            }
            Got::Value(Value::Array(out))
        }
        (Shape::Strings | Shape::Array, _) => wrong(sink, "a list of strings"),
        (Shape::Bool, DeValue::Boolean(b)) => Got::Value(Value::Bool(*b)),
        (Shape::Bool, _) => wrong(sink, "true or false"),
        (Shape::NumberOrString, DeValue::Integer(i)) => Got::Value(Value::from(i.as_str())),
        (Shape::NumberOrString, DeValue::String(s)) => Got::Value(Value::from(s.as_ref())),
        (Shape::NumberOrString, _) => wrong(sink, "a number or a string"),
        (Shape::StringMap, DeValue::Table(m)) => {
            let sub = SubTable::of(t, key.name, m, v.span());
            let view = sub.view();
            let mut out = Map::new();
            for (k, _) in m.iter() {
                if let Some((s, _)) = sink.string(view, k.get_ref()) {
                    out.insert(k.get_ref().to_string(), Value::from(s));
                }
            }
            Got::Value(Value::Object(out))
        }
        (Shape::StringMap, _) => wrong(sink, "a table"),
        (Shape::Switch(_), DeValue::Boolean(true)) => Got::Value(Value::Object(Map::new())),
        (Shape::Switch(_), DeValue::Boolean(false)) => Got::Absent,
        (Shape::Table(table) | Shape::Switch(table), DeValue::Table(m)) => {
            let sub = SubTable::of(t, key.name, m, v.span());
            let view = sub.view();
            let names: Vec<&str> = table.keys.iter().map(|k| k.name).collect();
            sink.unknown_keys(view, table.what, &names);
            Got::Table(read_table(sink, view, table.keys, table.the))
        }
        (Shape::Table(_), _) => wrong(sink, "a table"),
        (Shape::Switch(_), _) => wrong(sink, "true, false or a table"),
        (Shape::Secret, _) => Got::Absent,
    }
}

/// The span of the `i`th string of the list at `key` (its wrongly typed
/// items were left out of the settings), or of the value itself.
fn string_item_span(t: Table<'_, '_>, key: &str, i: usize) -> Range<usize> {
    let Some(v) = t.get(key) else {
        return span_of(t, key);
    };
    match v.get_ref() {
        DeValue::Array(a) => a
            .iter()
            .filter(|x| matches!(x.get_ref(), DeValue::String(_)))
            .nth(i)
            .map_or_else(|| v.span(), |x| x.span()),
        _ => v.span(),
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
fn record_spans(
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
