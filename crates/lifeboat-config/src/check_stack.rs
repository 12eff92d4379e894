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
        ResourceKind::Mysql { .. } => &["dsn", "host", "port", "socket"],
        ResourceKind::Bucket { .. } => &["location", "path"],
        ResourceKind::Files { .. } => &["path"],
        ResourceKind::Instance { .. } => &["listen", "url"],
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

fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => out.push(s.clone()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| strings(x, out)),
        _ => {}
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
            let Some(Resource {
                kind: ResourceKind::Instance { spec },
                ..
            }) = d.resources.get(m)
            else {
                continue;
            };
            let mut texts = Vec::new();
            strings(spec, &mut texts);
            for (res, out) in texts.iter().flat_map(|t| placeholders(t)) {
                let Some(r) = d.resources.get(&res) else {
                    continue; // not a resource: a value given at restore (`--env`)
                };
                let rkey = format!("resource.{m}");
                if !s.members.contains(&res) {
                    sink.error(
                        &d.span(&rkey),
                        &rkey,
                        format!(
                            "the launch spec uses `${{{res}.{out}}}`, but `{res}` is not a member of stack `{n}`"
                        ),
                        Some(format!("add `{res}` to stack `{n}`'s members")),
                    );
                } else if !outputs(&r.kind).contains(&out.as_str()) {
                    let known = outputs(&r.kind);
                    let hint = match crate::read::did_you_mean(&out, known) {
                        Some(m) => format!(" — did you mean `{m}`?"),
                        None => String::new(),
                    };
                    sink.error(
                        &d.span(&rkey),
                        &rkey,
                        format!(
                            "`${{{res}.{out}}}`: a {} resource has no output `{out}`{hint}",
                            r.kind.name()
                        ),
                        Some(format!("use one of: {}", known.join(", "))),
                    );
                }
            }
        }
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
