//! The instance protector through the real binary: a sparse raw image holding
//! a real ext4 filesystem (mkfs.ext4 on the file, changed with `debugfs -w`),
//! files and a launch spec in one point; incremental backups, byte-identical
//! sparse restores, placeholders and re-rooting, consistency marking.

mod instance_fixture;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use instance_fixture::{MIB, cli, s, sh, stderr};
use lifeboat_testkit::args::restore_instance;
use lifeboat_testkit::{pseudo_random, tempdir};

const GIB: u64 = 1 << 30;
/// A 1 GiB sparse file with an ext4 filesystem on it.
fn make_ext4(img: &Path) {
    std::fs::create_dir_all(img.parent().unwrap()).unwrap();
    std::fs::File::create(img).unwrap().set_len(GIB).unwrap();
    sh(
        "mkfs.ext4",
        &[
            "-F",
            "-q",
            "-E",
            "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
            s(img),
        ],
    );
}

/// Runs debugfs -w commands on the image.
fn debugfs(img: &Path, cmds: &[String]) {
    let f = img.with_extension("cmds");
    std::fs::write(&f, cmds.join("\n") + "\n").unwrap();
    sh("debugfs", &["-w", "-f", s(&f), s(img)]);
}

fn allocated(p: &Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

fn write_spec(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("instance.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// Writes `n` bytes of random data as a host file and returns its path.
fn data_file(dir: &Path, name: &str, n: usize, seed: u64) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, pseudo_random(seed, n)).unwrap();
    p
}

#[test]
fn an_ext4_image_backs_up_incrementally_and_restores_identical_and_sparse() {
    let t = tempdir().unwrap();
    let img = t.path().join("var/lib/images/shop.img");
    make_ext4(&img);
    let host = t.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let a = data_file(&host, "a.bin", 24 * MIB as usize, 1);
    let b = data_file(&host, "b.bin", 3 * MIB as usize, 2);
    debugfs(
        &img,
        &[
            "mkdir /data".into(),
            format!("write {} /data/a.bin", a.display()),
            format!("write {} /data/b.bin", b.display()),
        ],
    );
    let app = t.path().join("opt/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("run.sh"), b"#!/bin/sh\nexec sleep 1000\n").unwrap();
    let spec = write_spec(
        t.path(),
        &format!(
            r#"name = "shop-host"
paths = ["{app}"]
volumes = ["{img}"]
[launch]
command = ["{app}/run.sh", "--config={app}/app.toml"]
cwd = "{app}"
env = {{ DB = "${{DATABASE_URL}}", LISTEN = "127.0.0.1:${{PORT}}" }}
health = "http://127.0.0.1:${{PORT}}/health"
"#,
            app = app.display(),
            img = img.display()
        ),
    );
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);

    // First backup: only the data extents are read; the zero blocks and
    // holes of the 1 GiB image are neither read nor stored.
    let alloc1 = allocated(&img);
    assert!(alloc1 < 200 * MIB, "mkfs kept the image sparse: {alloc1}");
    let j1 = c.json(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(j1["kind"], "instance");
    assert_eq!(j1["consistency"], "crash", "{j1}");
    let read1 = j1["bytes_read"].as_u64().unwrap();
    let new1 = j1["bytes_new"].as_u64().unwrap();
    assert!(read1 <= alloc1 + 4096, "read {read1} of {alloc1} allocated");
    // New bytes count whole blocks (a 64 KiB block with 4 KiB of metadata
    // in it is one blob), so they may exceed what the image allocates a bit.
    assert!(
        new1 >= 27 * MIB && new1 < alloc1 + 8 * MIB,
        "new {new1}, allocated {alloc1}"
    );
    eprintln!("first: read {read1}, new {new1}, allocated {alloc1}");
    assert!(j1["bytes_stored"].as_u64().unwrap() > 0);

    // Unchanged: nothing of the image is read again (size, mtime, ctime, inode).
    let j = c.json(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(j["bytes_read"], 0, "{j}");
    assert!(j["bytes_new"].as_u64().unwrap() < 64 * 1024, "{j}");

    // Change 2 MiB of data inside the filesystem and delete a file: only
    // the changed blocks are new.
    let c2 = data_file(&host, "c.bin", 2 * MIB as usize, 3);
    debugfs(
        &img,
        &[
            format!("write {} /data/c.bin", c2.display()),
            "rm /data/b.bin".into(),
        ],
    );
    let alloc2 = allocated(&img);
    let j2 = c.json(&["backup", "instance", "--spec", s(&spec)]);
    let read2 = j2["bytes_read"].as_u64().unwrap();
    let new2 = j2["bytes_new"].as_u64().unwrap();
    assert!(read2 <= alloc2 + 4096, "read {read2} of {alloc2} allocated");
    eprintln!("second: read {read2}, new {new2}, allocated {alloc2}");
    assert!(
        (2 * MIB..6 * MIB).contains(&new2),
        "2 MiB written by the filesystem: {new2} new"
    );

    let list = c.ok(&["points", "list"]);
    assert!(list.contains("(crash-consistent)"), "{list}");

    // Restore: a missing placeholder value is named, nothing is written.
    let to = t.path().join("site-b");
    let o = c.run(&restore_instance("latest", &to, &[]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("DATABASE_URL (used in launch.env.DB)") && e.contains("PORT"),
        "{e}"
    );
    assert!(!to.exists());

    let r = c.json(&restore_instance(
        "latest",
        &to,
        &[
            "--env",
            "DATABASE_URL=mysql://shop@db-b/shop",
            "--env",
            "PORT=8099",
        ],
    ));
    assert_eq!(r["consistency"], "crash");
    let rimg = to.join(img.strip_prefix("/").unwrap());
    sh("cmp", &[s(&img), s(&rimg)]);
    let ralloc = allocated(&rimg);
    // Holes are kept at block granularity (64 KiB): a block with some data
    // is written whole.
    assert!(
        ralloc <= alloc2 + 8 * MIB && ralloc < GIB / 16,
        "holes kept: {ralloc} allocated in the restore, {alloc2} in the original"
    );
    sh("e2fsck", &["-fn", s(&rimg)]);
    let dumped = t.path().join("dumped.bin");
    sh(
        "debugfs",
        &[
            "-R",
            &format!("dump /data/c.bin {}", dumped.display()),
            s(&rimg),
        ],
    );
    assert_eq!(std::fs::read(&dumped).unwrap(), std::fs::read(&c2).unwrap());

    // The launch spec: paths inside the point moved under the target,
    // placeholders filled with this site's values.
    let l: serde_json::Value =
        serde_json::from_slice(&std::fs::read(to.join("launch.json")).unwrap()).unwrap();
    let rapp = to.join(app.strip_prefix("/").unwrap());
    assert_eq!(l["command"][0], format!("{}/run.sh", rapp.display()));
    assert_eq!(
        l["command"][1],
        format!("--config={}/app.toml", rapp.display())
    );
    assert_eq!(l["cwd"], rapp.display().to_string());
    assert_eq!(l["env"]["DB"], "mysql://shop@db-b/shop");
    assert_eq!(l["env"]["LISTEN"], "127.0.0.1:8099");
    assert_eq!(l["health"], "http://127.0.0.1:8099/health");
    assert_eq!(
        std::fs::metadata(to.join("launch.json")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read(rapp.join("run.sh")).unwrap(),
        std::fs::read(app.join("run.sh")).unwrap()
    );

    // The first point still restores the first state.
    let first = j1["id"].as_str().unwrap();
    let to1 = t.path().join("site-c");
    c.ok(&restore_instance(
        first,
        &to1,
        &["--env", "DATABASE_URL=x", "--env", "PORT=1"],
    ));
    let rimg1 = to1.join(img.strip_prefix("/").unwrap());
    sh("e2fsck", &["-fn", s(&rimg1)]);
    sh(
        "debugfs",
        &[
            "-R",
            &format!("dump /data/b.bin {}", dumped.display()),
            s(&rimg1),
        ],
    );
    assert_eq!(std::fs::read(&dumped).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn a_qcow2_volume_round_trips_and_passes_qemu_img_check_and_compare() {
    use std::os::unix::fs::FileExt;
    let t = tempdir().unwrap();
    let raw = t.path().join("src.raw");
    let f = std::fs::File::create(&raw).unwrap();
    f.set_len(256 * MIB).unwrap();
    for (i, off) in [0, 3 * MIB + 512, 200 * MIB].into_iter().enumerate() {
        f.write_all_at(&pseudo_random(10 + i as u64, 2 * MIB as usize), off)
            .unwrap();
    }
    drop(f);
    let q = t.path().join("vm/disk.qcow2");
    std::fs::create_dir_all(q.parent().unwrap()).unwrap();
    sh(
        "qemu-img",
        &["convert", "-f", "raw", "-O", "qcow2", s(&raw), s(&q)],
    );
    let spec = write_spec(
        t.path(),
        &format!("name = \"vm\"\nvolumes = [{:?}]\n", s(&q)),
    );
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let j = c.json(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(j["volumes"][0]["format"], "qcow2", "{j}");
    assert_eq!(j["volumes"][0]["size"], 256 * MIB);
    let new = j["bytes_new"].as_u64().unwrap();
    assert!(
        (6 * MIB..7 * MIB).contains(&new),
        "only the data is stored: {new}"
    );
    let j = c.json(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(
        j["bytes_read"], 0,
        "unchanged qcow2 not converted again: {j}"
    );
    let to = t.path().join("restored");
    c.ok(&restore_instance("latest", &to, &[]));
    let rq = to.join(q.strip_prefix("/").unwrap());
    sh("qemu-img", &["check", s(&rq)]);
    sh("qemu-img", &["compare", s(&q), s(&rq)]);
    sh(
        "qemu-img",
        &["compare", "-f", "raw", "-F", "qcow2", s(&raw), s(&rq)],
    );
    let info = sh("qemu-img", &["info", "--output", "json", s(&rq)]);
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 256 * MIB);
}
