//! `[stack.NAME]` (the resources a site runs, their objectives, the
//! application's own check) and `[drill.NAME]` (a scheduled recovery into a
//! scratch stack). Cross-references are checked in `check.rs`.

use crate::diag::Sink;
use crate::duration::Dur;
use crate::load::Draft;
use crate::model::*;
use crate::read::Table;

pub(crate) fn load_stack(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a stack",
        &["members", "optional", "objectives", "check", "description"],
    );
    sink.string(t, "description");
    let members: Vec<String> = match sink.strings(t, "members") {
        Some(m) => m.into_iter().map(|s| s.0).collect(),
        None => {
            if t.get("members").is_none() {
                sink.missing(
                    t,
                    "members",
                    &format!("stack `{name}`"),
                    "add `members = [\"db\", \"assets\", \"host\"]` (its resources)",
                );
            }
            Vec::new()
        }
    };
    let optional: Vec<String> = sink
        .strings(t, "optional")
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.0)
        .collect();
    let objectives = match sink.sub_table(t, "objectives") {
        Some(objectives) => {
            let ot = objectives.view();
            sink.unknown_keys(ot, "objectives", &["rpo", "rto"]);
            Objectives {
                rpo: sink.duration(ot, "rpo"),
                rto: sink.duration(ot, "rto"),
            }
        }
        None => Objectives::default(),
    };
    let check = sink.string(t, "check").map(|s| s.0);
    d.stacks.insert(
        name.to_string(),
        Stack {
            members,
            optional,
            objectives,
            check,
        },
    );
}

pub(crate) fn load_drill(sink: &mut Sink<'_>, name: &str, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "a drill",
        &[
            "stack",
            "to",
            "schedule",
            "timezone",
            "pick",
            "keep_for",
            "description",
        ],
    );
    sink.string(t, "description");
    let required = |sink: &mut Sink<'_>, key: &str, fix: &str| {
        let v = sink.string(t, key).map(|s| s.0);
        if v.is_none() && t.get(key).is_none() {
            sink.missing(t, key, &format!("drill `{name}`"), fix);
        }
        v
    };
    let stack = required(
        sink,
        "stack",
        "add `stack = \"NAME\"` (the stack it recovers)",
    );
    let to = required(
        sink,
        "to",
        "add `to = \"SITE\"` (the site it recovers into, usually the secondary)",
    );
    let schedule = sink.string(t, "schedule").and_then(|expr| {
        crate::load_plan::cron(
            sink,
            t,
            expr,
            "write five fields, e.g. `0 3 * * 0` (Sundays at 03:00)",
        )
    });
    let pick = match sink.string(t, "pick") {
        None => Pick::Latest,
        Some((p, span)) => match Pick::parse(&p) {
            Ok(p) => p,
            Err(e) => {
                sink.error(
                    &span,
                    &t.key("pick"),
                    e,
                    Some("write `latest` or `random-within:7d`".into()),
                );
                Pick::Latest
            }
        },
    };
    let keep_for = sink.duration_or_zero(t, "keep_for").unwrap_or(Dur(0));
    if let (Some(stack), Some(to)) = (stack, to) {
        d.drills.insert(
            name.to_string(),
            Drill {
                stack,
                to,
                schedule,
                pick,
                keep_for,
            },
        );
    }
}
