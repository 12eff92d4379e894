//! The routes the console added: `/stacks` (members, objectives, drills,
//! verification, exposure), starting a drill (`POST /stacks/{name}/drill`,
//! every refusal named), `/reports` (a drill's and a recovery's steps from
//! their whole reports), `/replication/history`.

use lifeboat_testkit::{make_sample_tree, tempdir};

use crate::support::{configure, end_of};

#[test]
fn a_drill_started_through_the_api_is_reported_with_its_steps() {
    let d = tempdir().unwrap();
    let w = d.path();
    make_sample_tree(&w.join("data"), 3);
    let p = w.display();
    let s = configure(
        w,
        &format!(
            "[site.a]\nroot = \"{p}/a\"\n[site.b]\nroot = \"{p}/b\"\n\
             [vault.main]\nsite = \"a\"\nlocation = \"{p}/main\"\n\
             [vault.far]\nsite = \"b\"\nlocation = \"{p}/far\"\n\
             [resource.data]\nsite = \"a\"\npaths = [\"{p}/data\"]\n\
             [plan.p]\nresources = [\"data\"]\nschedule = \"0 3 * * *\"\nvault = \"main\"\ncopy = [{{ vault = \"far\" }}]\n\
             [stack.s]\nmembers = [\"data\"]\nobjectives = {{ rpo = \"1d\", rto = \"10m\" }}\n\
             [drill.d1]\nstack = \"s\"\nto = \"a\"\n[drill.d2]\nstack = \"s\"\nto = \"a\"\npick = \"latest\"\n"
        ),
        "",
    );
    s.cli.ok(&["jobs", "run", "--plan", "p"]);
    let srv = s.serve(&[], None);

    let stacks = srv.json("/api/v1/stacks");
    let st = &stacks[0];
    assert_eq!(st["name"], "s", "{stacks}");
    assert_eq!(st["members"][0]["name"], "data");
    assert_eq!(st["members"][0]["compliant"], true, "{st}");
    assert_eq!(st["objectives"]["rto_s"], 600);
    assert_eq!(st["drills"].as_array().unwrap().len(), 2);
    assert_eq!(st["verification"]["compliant"], false);
    assert!(
        st["verification"]["failed"][0]
            .as_str()
            .unwrap()
            .contains("never drilled (`lifeboat drill --drill d1`)"),
        "the hint names the stack's declared drill: {st}"
    );
    // Exposure in the other site (b, from the copy in `far`): a few seconds.
    assert_eq!(st["exposure"][0]["site"], "b", "{st}");
    let e = st["rpo_exposure_s"].as_f64().unwrap();
    assert!((0.0..600.0).contains(&e), "{st}");

    // Refusals, each named.
    for (path, body, code, says) in [
        ("/api/v1/stacks/nope/drill", "{}", 404, "no stack `nope`"),
        ("/api/v1/stacks/s/drill", "{}", 400, "2 declared drills"),
        (
            "/api/v1/stacks/s/drill",
            r#"{"drill":"x"}"#,
            400,
            "no drill `x`",
        ),
        (
            "/api/v1/stacks/s/drill",
            r#"{"drill":"d1","site":"a"}"#,
            400,
            "not both",
        ),
        (
            "/api/v1/stacks/s/drill",
            r#"{"site":"z"}"#,
            400,
            "no site `z`",
        ),
    ] {
        let (c, b) = srv.post(path, Some(body));
        assert_eq!(c, code, "{path} {body}: {b}");
        assert!(b["error"].as_str().unwrap().contains(says), "{b}");
    }
    assert_eq!(
        srv.get("/api/v1/reports?kind=backup", Some(&srv.token.clone()))
            .0,
        400
    );
    assert_eq!(srv.json("/api/v1/reports").as_array().unwrap().len(), 0);

    // A drill into site a, started through the API, followed to its end.
    let (c, started) = srv.post("/api/v1/stacks/s/drill", Some(r#"{"site":"a"}"#));
    assert_eq!(c, 202, "{started}");
    let job = started["jobs"][0].as_i64().unwrap();
    let end = end_of(&srv.events(job));
    assert_eq!(
        (
            end["kind"].as_str(),
            end["status"].as_str(),
            end["trigger"].as_str()
        ),
        (Some("drill"), Some("succeeded"), Some("api")),
        "{end}"
    );
    let reports = srv.json("/api/v1/reports?stack=s&kind=drill");
    let r = &reports[0];
    assert_eq!(r["job"]["id"], job, "{reports}");
    assert_eq!(r["passed"], true);
    assert!(r["rto_s"].as_f64().unwrap() > 0.0);
    let steps = r["steps"].as_array().unwrap();
    assert!(
        steps
            .iter()
            .any(|s| s["member"] == "data" && s["duration_s"].as_f64().unwrap() > 0.0),
        "{steps:?}"
    );
    let st = &srv.json("/api/v1/stacks")[0];
    assert_eq!(st["verification"]["compliant"], true, "{st}");
    assert_eq!(st["verification"]["last_drill_job"], job);
    // A recovery into site b (from the copies in `far`) is a report too.
    s.cli.ok(&["recover", "--stack", "s", "--to", "b"]);
    let rec = srv.json("/api/v1/reports?kind=recover");
    let r = &rec[0];
    assert_eq!(
        (
            r["kind"].as_str(),
            r["stack"].as_str(),
            r["passed"].as_bool()
        ),
        (Some("recover"), Some("s"), Some(true)),
        "{rec}"
    );
    assert!(!r["steps"].as_array().unwrap().is_empty(), "{rec}");
    assert_eq!(r["job"]["report"]["site"], "b");
    assert_eq!(srv.json("/api/v1/reports").as_array().unwrap().len(), 2);
    // No replication rule: an empty history.
    assert_eq!(
        srv.json("/api/v1/replication/history"),
        serde_json::json!([])
    );
}

/// Issue 21 D19: after a failover the stack runs in the secondary; the
/// console and the API do not show that site's own data as "RPO exposure"
/// (exposure is what a site that could recover the stack lacks, and the
/// site the stack runs in is not one).
#[test]
fn after_a_failover_the_site_the_stack_runs_in_is_no_rpo_exposure() {
    let d = tempdir().unwrap();
    let w = d.path();
    make_sample_tree(&w.join("data"), 5);
    let p = w.display();
    let s = configure(
        w,
        &format!(
            "[site.a]\nroot = \"{p}/a\"\n[site.b]\nroot = \"{p}/b\"\n\
             [vault.main]\nsite = \"a\"\nlocation = \"{p}/main\"\n\
             [vault.far]\nsite = \"b\"\nlocation = \"{p}/far\"\n\
             [resource.data]\nsite = \"a\"\npaths = [\"{p}/data\"]\n\
             [plan.p]\nresources = [\"data\"]\nschedule = \"0 3 * * *\"\nvault = \"main\"\ncopy = [{{ vault = \"far\" }}]\n\
             [stack.s]\nmembers = [\"data\"]\n"
        ),
        "",
    );
    s.cli.ok(&["jobs", "run", "--plan", "p"]);
    // Before the failover, site b could recover the stack: its exposure shows.
    {
        let srv = s.serve(&[], None);
        let st = &srv.json("/api/v1/stacks")[0];
        assert_eq!(st["exposure"][0]["site"], "b", "{st}");
    }
    // The primary is lost; the stack is recovered into b and runs there.
    s.cli.ok(&["recover", "--stack", "s", "--to", "b"]);
    let srv = s.serve(&[], None);
    let st = &srv.json("/api/v1/stacks")[0];
    let sites: Vec<&str> = st["exposure"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["site"].as_str())
        .collect();
    assert!(
        !sites.contains(&"b"),
        "the site the stack runs in is shown as RPO exposure: {st:#}"
    );
    assert!(st["rpo_exposure_s"].is_null(), "{st:#}");
}
