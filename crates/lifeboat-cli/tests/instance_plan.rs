//! An instance resource in the control plane: `lifeboat.toml` holds the
//! instance spec as `[resource.NAME]`, `validate` checks it, `jobs run`
//! backs it up through the instance protector (hooks, consistency, the
//! plan's tag), and `restore instance latest --resource NAME` restores it.
//! A failing hook fails the job and names the hook.

mod instance_fixture;

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use instance_fixture::{MIB, s};
use lifeboat_testkit::{Cli, make_sample_tree, pseudo_random, tempdir};

fn script(p: &Path, body: &str) {
    std::fs::write(p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn setup(w: &Path, before: &str) -> (Cli, Cli) {
    let app = w.join("opt/shop");
    make_sample_tree(&app, 21);
    let img = w.join("images/shop.img");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(32 * MIB).unwrap();
    f.write_all_at(&pseudo_random(5, 2 * MIB as usize), 8 * MIB)
        .unwrap();
    drop(f);
    script(&w.join("quiesce"), before);
    script(
        &w.join("resume"),
        &format!("echo resumed >> {}", w.join("hooks.log").display()),
    );
    let d = w.display();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            r#"[vault.main]
location = "{d}/main"

[resource.shop-host]
kind = "instance"
paths = ["{d}/opt/shop"]
volumes = ["{d}/images/shop.img"]
[resource.shop-host.launch]
command = ["{d}/opt/shop/run", "--db", "${{DATABASE_URL}}"]
cwd = "{d}/opt/shop"
health_timeout = "20s"
[resource.shop-host.hooks]
before = ["{d}/quiesce"]
after = ["{d}/resume"]

[plan.hourly]
resources = ["shop-host"]
schedule = "0 * * * *"
"#
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_lifeboat");
    let c = Cli::new(bin, &w.join("main")).with_workdir(w);
    c.ok(&["validate"]);
    c.ok(&["apply", "--auto-approve"]);
    (c, Cli::new(bin, &w.join("main")))
}

#[test]
fn a_plans_instance_resource_is_backed_up_by_jobs_run_and_restores_as_latest_of_its_resource() {
    let t = tempdir().unwrap();
    let w = t.path();
    let (c, vault) = setup(
        w,
        &format!("echo quiesced >> {}", w.join("hooks.log").display()),
    );
    let run = c.json(&["jobs", "run", "--plan", "hourly"]);
    assert_eq!(run[0]["resource"], "shop-host", "{run}");
    assert_eq!(run[0]["status"], "succeeded", "{run}");
    let id = run[0]["point"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(w.join("hooks.log")).unwrap(),
        "quiesced\nresumed\n",
        "the spec's hooks ran around the backup"
    );
    let p = vault.json(&["points", "show", &id]);
    assert_eq!(p["kind"], "instance", "{p}");
    assert_eq!(p["resource"], "shop-host");
    assert!(
        p["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "plan:hourly"),
        "{p}"
    );
    let list = vault.ok(&["points", "list"]);
    assert!(list.contains("(application-consistent)"), "{list}");

    let to = w.join("site-b");
    let r = vault.json(&[
        "restore",
        "instance",
        "latest",
        "--resource",
        "shop-host",
        "--to",
        s(&to),
        "--env",
        "DATABASE_URL=mysql://shop@db-b/shop",
    ]);
    assert_eq!(r["point"], id.as_str());
    assert_eq!(r["consistency"], "application");
    let under = |p: &Path| to.join(p.strip_prefix("/").unwrap());
    assert!(
        lifeboat_testkit::compare_trees(&w.join("opt/shop"), &under(&w.join("opt/shop")))
            .is_empty()
    );
    assert!(
        Command::new("cmp")
            .arg(w.join("images/shop.img"))
            .arg(under(&w.join("images/shop.img")))
            .status()
            .unwrap()
            .success()
    );
    let l: serde_json::Value =
        serde_json::from_slice(&std::fs::read(to.join("launch.json")).unwrap()).unwrap();
    assert_eq!(
        l["command"][0],
        format!("{}/run", under(&w.join("opt/shop")).display())
    );
    assert_eq!(l["command"][2], "mysql://shop@db-b/shop");

    // The second run is an incremental of the first: the image is not read again.
    let run2 = c.json(&["jobs", "run", "--plan", "hourly"]);
    assert_eq!(run2[0]["status"], "succeeded", "{run2}");
    let p2 = vault.json(&["points", "show", run2[0]["point"].as_str().unwrap()]);
    assert_eq!(p2["parent"], id.as_str(), "{p2}");
    assert_eq!(p2["summary"]["bytes_read"], 0, "{p2}");
}

#[test]
fn a_failing_hook_of_an_instance_resource_fails_its_job_naming_the_hook() {
    let t = tempdir().unwrap();
    let w = t.path();
    let (c, vault) = setup(w, "echo 'cannot quiesce: busy' >&2; exit 4");
    let o = c.run(&["jobs", "run", "--plan", "hourly", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run[0]["status"], "failed", "{run}");
    let e = run[0]["error"].as_str().unwrap();
    assert!(
        e.contains("before hook") && e.contains("quiesce") && e.contains("cannot quiesce: busy"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(w.join("hooks.log")).unwrap(),
        "resumed\n",
        "the after hook still ran"
    );
    assert_eq!(vault.json(&["points", "list"]).as_array().unwrap().len(), 0);
}
