//! B.14: on a directory vault the write order (packs → index → point) holds
//! after a power loss: every rename into place is followed by a sync of its
//! directory before the next object in the order is written. Observed with
//! `strace -y` (file descriptors shown with their paths).

use std::path::Path;
use std::process::Command;

use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};

#[derive(Debug)]
enum Ev {
    Rename(String),
    Fsync(String),
}

fn events(trace: &str) -> Vec<Ev> {
    let mut out = Vec::new();
    for line in trace.lines() {
        if let Some(i) = line.find("rename") {
            // rename("/…/tmp/x", "/…/packs/ab/ab…") or renameat(AT_FDCWD, "…", AT_FDCWD, "…")
            let quoted: Vec<&str> = line[i..].split('"').collect();
            if let Some(dest) = quoted.get(3) {
                out.push(Ev::Rename(dest.to_string()));
            }
        } else if let Some(i) = line.find("fsync(") {
            let rest = &line[i..];
            if let (Some(a), Some(b)) = (rest.find('<'), rest.find('>')) {
                out.push(Ev::Fsync(rest[a + 1..b].to_string()));
            }
        }
    }
    out
}

#[test]
fn every_rename_is_synced_before_the_next_object_in_the_order() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("skipped: strace is not installed");
        return;
    }
    let t = tempdir().unwrap();
    let src = t.path().join("src");
    make_sample_tree(&src, 51);
    let vault = t.path().join("vault");
    let c = Cli::new(env!("CARGO_BIN_EXE_lifeboat"), &vault);
    c.ok(&["vault", "init"]);
    let trace = t.path().join("trace");
    let cmd = c.command(&backup_files(&src, &[]));
    let mut st = Command::new("strace");
    st.args(["-f", "-y", "-qq", "-o"])
        .arg(&trace)
        .args(["-e", "trace=rename,renameat,renameat2,fsync,fdatasync"])
        .arg(cmd.get_program())
        .args(cmd.get_args())
        .envs(cmd.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    let out = st.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&std::fs::read_to_string(&trace).unwrap());
    let vault = vault.to_str().unwrap();
    let stage = |p: &str| {
        let rel = p.strip_prefix(vault)?.trim_start_matches('/');
        ["packs/", "index/", "points/"]
            .iter()
            .position(|s| rel.starts_with(s))
    };
    let mut checked = 0;
    for (i, e) in ev.iter().enumerate() {
        let Ev::Rename(dest) = e else { continue };
        let Some(s) = stage(dest) else { continue };
        let dir = Path::new(dest).parent().unwrap().to_str().unwrap();
        let synced = ev[i + 1..]
            .iter()
            .position(|e| matches!(e, Ev::Fsync(p) if p == dir));
        let next_stage = ev[i + 1..]
            .iter()
            .position(|e| matches!(e, Ev::Rename(d) if stage(d).is_some_and(|t| t > s)));
        match (synced, next_stage) {
            (Some(a), Some(b)) => assert!(
                a < b,
                "{dest}: its directory is synced only after a later object"
            ),
            (Some(_), None) => {}
            (None, _) => panic!("{dest}: its directory is never synced"),
        }
        checked += 1;
    }
    assert!(checked >= 3, "packs, index and point renames seen: {ev:?}");
}
