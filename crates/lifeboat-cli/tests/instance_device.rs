//! Instance volumes and real block devices (loop devices, as root): a block
//! device backed up as a volume; volumes restored onto devices with
//! `--volume-to`, with and without `--zero-holes`; devices that are too
//! small, mounted, held open exclusively or not devices at all, refused
//! before anything is written.

mod instance_fixture;

use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use instance_fixture::{MIB, cli, s, sh, stderr};
use lifeboat_testkit::loopdev::LoopDevice;
use lifeboat_testkit::{pseudo_random, tempdir};

fn same(a: &Path, b: &Path, len: u64) -> bool {
    Command::new("cmp")
        .args(["-s", "-n", &len.to_string(), s(a), s(b)])
        .status()
        .unwrap()
        .success()
}

/// An ext4 filesystem with a few files written and one deleted, on `dev`.
fn fill_ext4(dir: &Path, dev: &str) {
    sh(
        "mkfs.ext4",
        &["-F", "-q", "-E", "nodiscard,lazy_itable_init=1", dev],
    );
    let a = dir.join("a.bin");
    let b = dir.join("b.bin");
    std::fs::write(&a, pseudo_random(1, 5 * MIB as usize)).unwrap();
    std::fs::write(&b, pseudo_random(2, 3 * MIB as usize)).unwrap();
    let cmds = dir.join("fill.cmds");
    std::fs::write(
        &cmds,
        format!(
            "mkdir /data\nwrite {} /data/a.bin\nwrite {} /data/b.bin\nrm /data/a.bin\nwrite {} /data/c.bin\n",
            a.display(),
            b.display(),
            a.display()
        ),
    )
    .unwrap();
    sh("debugfs", &["-w", "-f", s(&cmds), dev]);
}

/// A file of `size` bytes of noise: a used device's old content.
fn noise_file(p: &Path, size: u64, seed: u64) {
    let f = std::fs::File::create(p).unwrap();
    for k in 0..size / MIB {
        f.write_all_at(&pseudo_random(seed + k, MIB as usize), k * MIB)
            .unwrap();
    }
}

fn spec(dir: &Path, volumes: &[&str]) -> PathBuf {
    let v: Vec<String> = volumes.iter().map(|p| format!("{p:?}")).collect();
    let p = dir.join("instance.toml");
    std::fs::write(
        &p,
        format!("name = \"host\"\nvolumes = [{}]\n", v.join(", ")),
    )
    .unwrap();
    p
}

#[test]
fn a_block_device_is_backed_up_and_restored_onto_another_device_identical_with_zero_holes() {
    let t = tempdir().unwrap();
    let src = LoopDevice::new_sparse(&t.path().join("src.img"), 64 * MIB);
    fill_ext4(t.path(), src.as_str());
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    let spec = spec(t.path(), &[src.as_str()]);
    let j = c.json(&["backup", "instance", "--spec", s(&spec)]);
    assert_eq!(j["volumes"][0]["format"], "blockdev", "{j}");
    assert_eq!(j["volumes"][0]["size"], 64 * MIB, "{j}");
    let data = j["volumes"][0]["data_bytes"].as_u64().unwrap();
    assert!(
        (8 * MIB..40 * MIB).contains(&data),
        "zero blocks of the device are not stored: {data} of data"
    );

    // A used device (noise everywhere), restored onto without --zero-holes:
    // the volume's data is written, its holes keep the old noise (said).
    let noise = t.path().join("used.img");
    noise_file(&noise, 80 * MIB, 100);
    let used = LoopDevice::attach(&noise);
    let name = src.path.file_name().unwrap().to_str().unwrap().to_string();
    let to = t.path().join("site-b");
    let o = c.run(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to),
        "--volume-to",
        &format!("{name}={}", used.as_str()),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("keep the device's old content") && e.contains("--zero-holes"),
        "{e}"
    );
    assert!(
        !same(&src.path, &used.path, 64 * MIB),
        "without --zero-holes the old content stays in the holes"
    );
    assert!(
        !to.join(src.path.strip_prefix("/").unwrap()).exists(),
        "a volume written onto a device is not also written under --to"
    );

    // Again with --zero-holes (the target now holds the first restore's
    // directories: --overwrite if-changed): byte-identical over the volume's
    // size, a clean filesystem, and the device's bytes past it untouched.
    let j = c.json(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to),
        "--overwrite",
        "if-changed",
        "--volume-to",
        &format!("{}={}", src.as_str(), used.as_str()),
        "--zero-holes",
    ]);
    let d = &j["devices"][0];
    assert_eq!(d["device_size"], 80 * MIB, "{j}");
    assert_eq!(d["volume_size"], 64 * MIB, "{j}");
    assert_eq!(d["holes_zeroed"], true, "{j}");
    assert_eq!(
        d["data_bytes"].as_u64().unwrap() + d["hole_bytes"].as_u64().unwrap(),
        64 * MIB
    );
    assert!(
        same(&src.path, &used.path, 64 * MIB),
        "identical with --zero-holes"
    );
    sh("e2fsck", &["-fn", used.as_str()]);
    let tail = std::fs::read(&noise).unwrap();
    let want = pseudo_random(100 + 64, MIB as usize);
    assert_eq!(&tail[64 * MIB as usize..65 * MIB as usize], &want[..]);
}

#[test]
fn a_raw_image_restores_onto_a_new_device_identical_without_zeroing() {
    let t = tempdir().unwrap();
    // The image: an ext4 made on a file (sparse).
    let img = t.path().join("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(48 * MIB)
        .unwrap();
    fill_ext4(t.path(), s(&img));
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    // A launch spec that names the image: after a restore onto a device it
    // names the device.
    let spec = t.path().join("vm.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"vm\"\nvolumes = [{img:?}]\n[launch]\ncommand = [\"qemu-system-x86_64\", \"-drive\", \"file={img}\"]\nenv = {{ DISK = {img:?} }}\n",
            img = s(&img)
        ),
    )
    .unwrap();
    c.ok(&["backup", "instance", "--spec", s(&spec)]);
    // A new device reads zeros: its holes need no writing.
    let fresh = LoopDevice::new_sparse(&t.path().join("fresh.img"), 48 * MIB);
    let j = c.json(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&t.path().join("b")),
        "--volume-to",
        &format!("disk.img={}", fresh.as_str()),
    ]);
    assert_eq!(j["devices"][0]["holes_zeroed"], false, "{j}");
    assert_eq!(
        j["launch"]["command"][2],
        format!("file={}", fresh.as_str()),
        "{j}"
    );
    assert_eq!(j["launch"]["env"]["DISK"], fresh.as_str(), "{j}");
    assert!(same(&img, &fresh.path, 48 * MIB));
    sh("e2fsck", &["-fn", fresh.as_str()]);
}

#[test]
fn a_device_too_small_mounted_held_or_not_a_device_is_refused_before_anything_is_written() {
    let t = tempdir().unwrap();
    let img = t.path().join("disk.img");
    let f = std::fs::File::create(&img).unwrap();
    f.set_len(32 * MIB).unwrap();
    f.write_all_at(&pseudo_random(7, MIB as usize), 3 * MIB)
        .unwrap();
    drop(f);
    let c = cli(&t.path().join("vault"));
    c.ok(&["vault", "init"]);
    c.ok(&[
        "backup",
        "instance",
        "--spec",
        s(&spec(t.path(), &[s(&img)])),
    ]);
    let to = t.path().join("to");
    let restore = |dev: &str| {
        let o = c.run(&[
            "restore",
            "instance",
            "latest",
            "--to",
            s(&to),
            "--volume-to",
            &format!("disk.img={dev}"),
        ]);
        assert_eq!(o.status.code(), Some(2), "{dev}: {}", stderr(&o));
        assert!(!to.exists(), "{dev}: nothing is written");
        stderr(&o)
    };

    let small = LoopDevice::new_sparse(&t.path().join("small.img"), 16 * MIB);
    let e = restore(small.as_str());
    assert!(
        e.contains(&format!("holds {} bytes", 16 * MIB))
            && e.contains(&format!("needs {} bytes", 32 * MIB)),
        "{e}"
    );

    let dev = LoopDevice::new_sparse(&t.path().join("dev.img"), 32 * MIB);
    sh("mkfs.ext4", &["-F", "-q", dev.as_str()]);
    let mnt = t.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    sh("mount", &[dev.as_str(), s(&mnt)]);
    let e = restore(dev.as_str());
    sh("umount", &[s(&mnt)]);
    assert!(
        e.contains("is mounted on") && e.contains(s(&mnt)),
        "the mount point is named: {e}"
    );

    // Held exclusively (as a mount, a RAID or LVM would): the kernel refuses
    // a second O_EXCL open of a block device.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::EXCL.bits() as i32)
        .open(&dev.path)
        .unwrap();
    let e = restore(dev.as_str());
    assert!(e.contains("held open exclusively"), "{e}");
    drop(held);

    let e = restore(s(&t.path().join("small.img")));
    assert!(e.contains("not a block device"), "{e}");

    let o = c.run(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to),
        "--volume-to",
        &format!("other.img={}", dev.as_str()),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("no such volume") && stderr(&o).contains(s(&img)),
        "{}",
        stderr(&o)
    );
    assert!(!to.exists());

    // Once free, the same device takes it.
    c.ok(&[
        "restore",
        "instance",
        "latest",
        "--to",
        s(&to),
        "--volume-to",
        &format!("disk.img={}", dev.as_str()),
        "--zero-holes",
    ]);
    assert!(same(&img, &dev.path, 32 * MIB));
}
