//! Cross-references of stacks and drills: members that exist, optional
//! members that are members, drills naming a stack and a site, and the
//! `${resource.output}` placeholders of an instance's launch spec naming a
//! member of its stack and an output that resource has.

use crate::check::unknown;
use crate::diag::Sink;
use crate::load::Draft;
use crate::model::*;

/// What each kind of member gives the members that depend on it, as
/// `${NAME.OUTPUT}` in an instance's launch spec.
pub fn outputs(kind: &ResourceKind) -> &'static [&'static str] {
    match kind {
        ResourceKind::Mysql { .. } => &[
            "dsn",
            "host",
            "port",
            "socket",
            "user",
            "password",
            "database",
            "root_dsn",
            "root_password",
        ],
        ResourceKind::Bucket { .. } => &["location", "path"],
        ResourceKind::Files { .. } => &["path"],
        ResourceKind::Instance { .. } => &["listen", "url"],
        // A kind stacks do not provision gives its dependents nothing.
        ResourceKind::Other { .. } => &[],
    }
}

/// The `${a.b}` placeholders in a string.
pub fn placeholders(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find('}') else { break };
        if let Some((a, b)) = rest[..end].split_once('.') {
            out.push((a.to_string(), b.to_string()));
        }
        rest = &rest[end + 1..];
    }
    out
}

/// What a stack fills besides its members' outputs: the instance's own
/// address (`${listen}` is `127.0.0.1:PORT`, `${port}` the port) and the
/// site's root.
pub const STACK_VALUES: &[&str] = &["listen", "port", "site.root"];

/// The launch spec of an instance resource, with each string's dotted key
/// below the resource (`launch.env.DB`).
fn launch_strings(r: &Resource) -> Vec<(String, String)> {
    let ResourceKind::Instance { spec } = &r.kind else {
        return Vec::new();
    };
    let Some(l) = spec.get("launch").and_then(|l| {
        serde_json::from_value::<lifeboat_instance::spec::LaunchSpec>(l.clone()).ok()
    }) else {
        return Vec::new();
    };
    l.strings()
        .into_iter()
        .map(|(at, v)| (at, v.clone()))
        .collect()
}

/// The instances of stack `s` that `m`'s launch spec names (`${b.url}`).
fn instance_deps(d: &Draft, s: &Stack, m: &str) -> Vec<String> {
    let Some(r) = d.resources.get(m) else {
        return Vec::new();
    };
    let mut out: Vec<String> = launch_strings(r)
        .iter()
        .flat_map(|(_, v)| placeholders(v))
        .map(|(res, _)| res)
        .filter(|res| {
            res != m
                && s.members.contains(res)
                && matches!(
                    d.resources.get(res).map(|x| &x.kind),
                    Some(ResourceKind::Instance { .. })
                )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Every `${…}` of member `m`'s launch spec must have a value when the
/// stack starts it (`stack up`, `recover`, `drill` take no `--env`).
fn check_launch(sink: &mut Sink<'_>, d: &Draft, n: &str, s: &Stack, m: &str) {
    let Some(r) = d.resources.get(m) else {
        return;
    };
    for (at, text) in launch_strings(r) {
        let key = format!("resource.{m}.{at}");
        let names = lifeboat_instance::spec::placeholders(&text).unwrap_or_default();
        for name in names {
            if STACK_VALUES.contains(&name.as_str()) {
                continue;
            }
            let (res, out) = name.split_once('.').unwrap_or((name.as_str(), ""));
            let (message, fix) = match d.resources.get(res) {
                _ if res == m => (
                    format!(
                        "the launch spec of `{m}` uses its own output `${{{name}}}`, which exists only once `{m}` has started"
                    ),
                    "write `${listen}` (its address, 127.0.0.1:PORT) or `${port}` instead, e.g. `http://${listen}/health`".to_string(),
                ),
                None => (
                    format!(
                        "`${{{name}}}` has no value when stack `{n}` starts `{m}`: a stack fills only `${{listen}}`, `${{port}}`, `${{site.root}}` and its members' outputs (`recover` and `drill` take no --env)"
                    ),
                    format!(
                        "name a member's output instead (e.g. `${{db.dsn}}`), write the value itself, or keep `{m}` out of stack `{n}` and restore it with `lifeboat restore instance --env {res}=VALUE`"
                    ),
                ),
                Some(_) if !s.members.contains(&res.to_string()) => (
                    format!(
                        "the launch spec uses `${{{name}}}`, but `{res}` is not a member of stack `{n}`"
                    ),
                    format!("add `{res}` to stack `{n}`'s members"),
                ),
                Some(x) if !outputs(&x.kind).contains(&out) => {
                    let known = outputs(&x.kind);
                    let hint = match crate::read::did_you_mean(out, known) {
                        Some(m) => format!(" — did you mean `{m}`?"),
                        None => String::new(),
                    };
                    (
                        format!(
                            "`${{{name}}}`: {} resource has no output `{out}`{hint}",
                            crate::a(x.kind.name())
                        ),
                        format!("use one of: {}", known.join(", ")),
                    )
                }
                Some(_) => continue,
            };
            sink.error(&d.span(&key), &key, message, Some(fix));
        }
    }
}

/// Instances that name each other's outputs (`a` uses `${b.url}`, `b` uses
/// `${a.url}`) can never start: neither has an address before the other.
fn check_cycles(sink: &mut Sink<'_>, d: &Draft, n: &str, s: &Stack) {
    for m in &s.members {
        // Is `m` reachable from its own dependencies?
        let mut seen: Vec<String> = Vec::new();
        let mut todo = instance_deps(d, s, m);
        while let Some(x) = todo.pop() {
            if x == *m {
                let key = format!("resource.{m}.launch");
                sink.error(
                    &d.span(&key),
                    &key,
                    format!(
                        "in stack `{n}`, `{m}`'s launch spec needs an instance that needs `{m}` again ({}): none of them can start first",
                        seen.join(", ")
                    ),
                    Some("let one of them use a fixed address or no output of the other".into()),
                );
                break;
            }
            if !seen.contains(&x) {
                todo.extend(instance_deps(d, s, &x));
                seen.push(x);
            }
        }
    }
}

pub(crate) fn check_stacks(sink: &mut Sink<'_>, d: &Draft) {
    let resource_names: Vec<&str> = d.resources.keys().map(String::as_str).collect();
    let site_names: Vec<&str> = d.sites.keys().map(String::as_str).collect();
    let stack_names: Vec<&str> = d.stacks.keys().map(String::as_str).collect();
    for (n, s) in &d.stacks {
        let key = format!("stack.{n}");
        if s.members.is_empty() && d.spans.contains_key(&format!("{key}.members")) {
            sink.error(
                &d.span(&format!("{key}.members")),
                &format!("{key}.members"),
                "the stack has no members",
                Some("list its resources, e.g. `members = [\"db\", \"assets\", \"host\"]`".into()),
            );
        }
        let mut seen = Vec::new();
        for m in &s.members {
            if !d.resources.contains_key(m) {
                unknown(
                    sink,
                    d,
                    &format!("{key}.members"),
                    "resource",
                    m,
                    &resource_names,
                );
            } else if seen.contains(&m) {
                sink.error(
                    &d.span(&format!("{key}.members")),
                    &format!("{key}.members"),
                    format!("`{m}` is listed twice"),
                    Some("list each member once".into()),
                );
            }
            seen.push(m);
        }
        for o in &s.optional {
            if !s.members.contains(o) {
                sink.error(
                    &d.span(&format!("{key}.optional")),
                    &format!("{key}.optional"),
                    format!("`{o}` is not a member of stack `{n}`"),
                    Some(format!(
                        "add `{o}` to `members`, or remove it from `optional`"
                    )),
                );
            }
        }
        // An instance's launch spec may only use what its own stack provides.
        for m in &s.members {
            check_launch(sink, d, n, s, m);
        }
        check_cycles(sink, d, n, s);
    }
    for (n, dr) in &d.drills {
        let key = format!("drill.{n}");
        if !d.stacks.contains_key(&dr.stack) {
            unknown(
                sink,
                d,
                &format!("{key}.stack"),
                "stack",
                &dr.stack,
                &stack_names,
            );
        }
        if !d.sites.contains_key(&dr.to) {
            unknown(sink, d, &format!("{key}.to"), "site", &dr.to, &site_names);
        }
    }
}
