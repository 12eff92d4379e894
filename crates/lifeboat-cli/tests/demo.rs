//! The README's first command, `scripts/demo`, end to end at a small size:
//! Unishop under load in the primary, protected by the daemon, the primary
//! destroyed, the stack recovered into the secondary, a purchase in headless
//! Chromium, `unishop verify`. Run with this build's binaries
//! (`DEMO_BIN_DIR`) instead of a release build; the bounds are the issue's
//! targets with generous margins for a loaded debug build.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn figure(line: &str, after: &str) -> f64 {
    let rest = &line[line
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {line:?}"))
        + after.len()..];
    rest.split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap()
}

#[test]
fn the_demo_recovers_the_shop_and_ends_with_its_rpo_and_downtime() {
    let shop = lifeboat_testkit::procs::unishop_bin(BIN);
    assert_eq!(shop.parent(), Path::new(BIN).parent());
    let t = lifeboat_testkit::tempdir().unwrap();
    let demo = t.path().join("demo");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("bash")
        .arg(repo.join("scripts/demo"))
        .env("DEMO_BIN_DIR", Path::new(BIN).parent().unwrap())
        .env("DEMO_DIR", &demo)
        .env("DEMO_RUN_S", "6")
        .env("DEMO_RATE", "20")
        .env_remove("LIFEBOAT_CONFIG")
        .env_remove("LIFEBOAT_STATE")
        .env_remove("LIFEBOAT_VAULT")
        .env_remove("LIFEBOAT_PASSWORD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    // The last line, exactly as scripts read it: the orders lost, the
    // downtime the customers saw (failure → healthy) and the recovery's own
    // part of it.
    let last = stdout.lines().last().unwrap();
    let (rpo, down, rec) = (
        figure(last, "RPO "),
        figure(last, "downtime "),
        figure(last, "(recovery "),
    );
    assert_eq!(
        last,
        format!("RPO {rpo:.1} s, downtime {down:.1} s (recovery {rec:.1} s)"),
        "{stdout}"
    );
    assert!(rpo <= 10.0, "RPO {rpo} s (target 5 s)\n{stdout}");
    assert!(
        down > 0.0 && down <= 120.0,
        "downtime {down} s (target 2 min)\n{stdout}"
    );
    // The downtime holds the recovery and the time before it began.
    assert!(
        rec > 0.0 && rec <= down,
        "recovery {rec} s, downtime {down} s\n{stdout}"
    );
    // The load log's RPO and the recovery report's agree within a second.
    let both = stdout
        .lines()
        .find(|l| l.starts_with("RPO by the load log"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let report = figure(both, "by the recovery report ");
    assert!((report - rpo).abs() <= 1.0, "{both}");
    // Orders were taken, and the recovered shop sold one more.
    let orders = stdout
        .lines()
        .find(|l| l.starts_with("orders acknowledged:"))
        .unwrap();
    assert!(figure(orders, "acknowledged: ") > 0.0, "{orders}");
    let png = std::fs::read(demo.join("recovered-shop.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(stdout.contains("in the recovered shop: order"), "{stdout}");
}
