//! What `restore instance` does with its target: `--dry-run` (what would be
//! written where, the launch spec resolved, nothing written, a device not
//! touched), a non-empty target refused naming what is there, and the files
//! restore's `--overwrite always|if-changed|never` and `--delete`; a target
//! whose restored instance still runs is refused.

mod instance_fixture;

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use instance_fixture::{MIB, cli, s, stderr};
use lifeboat_testkit::args::restore_instance;
use lifeboat_testkit::loopdev::LoopDevice;
use lifeboat_testkit::{Cli, pseudo_random, tempdir};

/// An instance with an app directory, a 16 MiB image and a launch spec; backed up.
struct Fixture {
    _t: lifeboat_testkit::TempDir,
    root: PathBuf,
    app: PathBuf,
    img: PathBuf,
    c: Cli,
}

fn fixture() -> Fixture {
    let t = tempdir().unwrap();
    let root = t.path().to_path_buf();
    let app = root.join("opt/app");
    std::fs::create_dir_all(app.join("conf")).unwrap();
    std::fs::write(app.join("run.sh"), b"#!/bin/sh\nexec sleep 1000\n").unwrap();
    std::fs::write(app.join("conf/app.toml"), b"port = 1\n").unwrap();
    let img = root.join("images/disk.img");
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(16 * MIB).unwrap();
    f.write_all_at(&pseudo_random(3, MIB as usize), 2 * MIB)
        .unwrap();
    drop(f);
    let spec = root.join("instance.toml");
    std::fs::write(
        &spec,
        format!(
            r#"name = "host"
paths = ["{app}"]
volumes = ["{img}"]
[launch]
command = ["{app}/run.sh"]
env = {{ DB = "${{DATABASE_URL}}" }}
"#,
            app = app.display(),
            img = img.display()
        ),
    )
    .unwrap();
    let c = cli(&root.join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&["backup", "instance", "--spec", s(&spec)]);
    Fixture {
        _t: t,
        root,
        app,
        img,
        c,
    }
}

fn under(to: &Path, p: &Path) -> PathBuf {
    to.join(p.strip_prefix("/").unwrap())
}

#[test]
fn a_dry_run_says_what_would_be_written_where_and_writes_nothing() {
    let f = fixture();
    let to = f.root.join("site-b");
    // A missing placeholder value is still an error in a dry run.
    let o = f.c.run(&restore_instance("latest", &to, &["--dry-run"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("DATABASE_URL"), "{}", stderr(&o));

    let noise = f.root.join("dev.img");
    std::fs::write(&noise, pseudo_random(9, 16 * MIB as usize)).unwrap();
    let dev = LoopDevice::attach(&noise);
    let j = f.c.json(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to),
        "--env",
        "DATABASE_URL=mysql://b/shop",
        "--dry-run",
        "--volume-to",
        &format!("disk.img={}", dev.as_str()),
        "--zero-holes",
    ]);
    assert_eq!(j["dry_run"], true, "{j}");
    let acts: Vec<(String, String)> = j["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap().to_string(),
                a["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for p in [
        under(&to, &f.app.join("run.sh")),
        under(&to, &f.app.join("conf/app.toml")),
    ] {
        assert!(
            acts.contains(&("create".into(), p.display().to_string())),
            "{p:?} in {acts:?}"
        );
    }
    assert!(
        !acts.iter().any(|a| a.1.ends_with("disk.img")),
        "the volume goes to the device, not under the target: {acts:?}"
    );
    let d = &j["devices"][0];
    assert_eq!(d["device"], dev.as_str());
    assert_eq!(d["data_bytes"], MIB, "{j}");
    assert_eq!(d["hole_bytes"], 15 * MIB, "{j}");
    assert_eq!(
        j["launch"]["command"][0],
        format!("{}/run.sh", under(&to, &f.app).display())
    );
    assert_eq!(j["launch"]["env"]["DB"], "mysql://b/shop");
    assert_eq!(j["launch_json"], serde_json::Value::Null);
    assert!(!to.exists(), "nothing written under the target");
    assert_eq!(
        std::fs::read(&noise).unwrap(),
        pseudo_random(9, 16 * MIB as usize),
        "nothing written onto the device"
    );

    // The human form lists the same.
    let out = f.c.ok(&restore_instance(
        "latest",
        &to,
        &["--env", "DATABASE_URL=x", "--dry-run"],
    ));
    assert!(
        out.contains(&format!("create {}", under(&to, &f.img.clone()).display())),
        "{out}"
    );
    assert!(out.contains("launch spec"), "{out}");
    assert!(!to.exists());
}

#[test]
fn a_non_empty_target_is_refused_naming_what_is_there_and_overwrite_follows_the_files_policy() {
    let f = fixture();
    let to = f.root.join("site-b");
    let env = ["--env", "DATABASE_URL=x"];
    let restore = |extra: &[&str]| {
        let mut a = vec!["restore", "instance", "latest", "--to", s(&to)];
        a.extend(env);
        a.extend(extra);
        f.c.run(&a)
    };
    let o = restore(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let conf = under(&to, &f.app.join("conf/app.toml"));
    let run = under(&to, &f.app.join("run.sh"));
    let extra = under(&to, &f.app.join("local.txt"));
    let change = || {
        std::fs::write(&conf, b"port = 2 # changed here\n").unwrap();
        std::fs::write(&run, b"changed").unwrap();
        std::fs::write(&extra, b"mine").unwrap();
    };
    change();

    // Refused: what is there is named, nothing is changed.
    let o = restore(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("is not empty (it holds")
            && e.contains("launch.json")
            && e.contains("--overwrite if-changed"),
        "{e}"
    );
    assert_eq!(std::fs::read(&run).unwrap(), b"changed");

    // never: what exists stays, nothing added over it.
    let o = restore(&["--overwrite", "never"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&run).unwrap(), b"changed");

    // if-changed: what differs is replaced, the rest kept; a local file stays.
    let j = f.c.json(&restore_instance(
        "latest",
        &to,
        &["--env", "DATABASE_URL=x", "--overwrite", "if-changed"],
    ));
    assert!(
        j["unchanged"].as_u64().unwrap() >= 1,
        "the image is kept: {j}"
    );
    assert_eq!(
        std::fs::read(&run).unwrap(),
        std::fs::read(f.app.join("run.sh")).unwrap()
    );
    assert_eq!(std::fs::read(&conf).unwrap(), b"port = 1\n");
    assert_eq!(std::fs::read(&extra).unwrap(), b"mine");

    // always + --delete: everything rewritten, what the point does not have
    // below its backed-up paths removed; launch.json (outside them) kept.
    change();
    let o = restore(&["--overwrite", "always", "--delete"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&conf).unwrap(), b"port = 1\n");
    assert!(!extra.exists(), "--delete removed it");
    assert!(to.join("launch.json").exists());
    assert!(
        Command::new("cmp")
            .arg(&f.img)
            .arg(under(&to, &f.img))
            .status()
            .unwrap()
            .success()
    );
}

#[test]
fn a_target_whose_restored_instance_runs_is_refused() {
    let f = fixture();
    let to = f.root.join("site-b");
    f.c.ok(&restore_instance(
        "latest",
        &to,
        &["--env", "DATABASE_URL=x"],
    ));
    // What `--start` leaves: launch.pid naming a live process and its start time.
    let mut child = Command::new("sleep")
        .arg("1000")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
    let start: u64 = stat
        .rsplit(") ")
        .next()
        .unwrap()
        .split(' ')
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    std::fs::write(
        to.join("launch.pid"),
        serde_json::json!({"pid": child.id(), "start_time": start, "command": ["sleep"]})
            .to_string(),
    )
    .unwrap();
    let o = f.c.run(&restore_instance(
        "latest",
        &to,
        &["--env", "DATABASE_URL=x", "--overwrite", "always"],
    ));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains(&format!("runs (pid {})", child.id())) && e.contains("lifeboat instance stop"),
        "{e}"
    );
    // Once it has ended, the same restore goes through.
    f.c.ok(&restore_instance(
        "latest",
        &to,
        &["--env", "DATABASE_URL=x", "--overwrite", "always"],
    ));
}
