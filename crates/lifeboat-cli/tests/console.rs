//! The web console in a real browser: a real `lifeboat serve` over real
//! vaults with real backups (files, a bucket, a real `mariadbd`), a failed
//! run, a drill and a recovery made by the CLI;
//! Debian's Chromium, headless, driven by playwright-core
//! (tests/console/console.mjs) signs in (a wrong token is refused), sees
//! the resource, runs a plan from the page and watches it complete, browses
//! the new point and restores one file (checked on disk here), browses a
//! database point's tables and restores the database beside the live one
//! (checked in the server), browses a bucket point's keys and restores it
//! into a new location (the live bucket refused), sees a physical database
//! point's mode on the points list, its page (its files, the command that
//! restores it) and the job that took it, finds the
//! failed job's error, and shows every page at 1280 px and 390 px with no
//! serious or critical axe-core violation. Screenshots of every page go to
//! target/artifacts/console/ (and into docs/console/ with
//! LIFEBOAT_UPDATE_SCREENSHOTS=1).
//! Needs chromium (apt), node, and `npm ci` in tests/console — scripts/test
//! does all three.

#[allow(dead_code)]
#[path = "api/support.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_testkit::browser::Browser;
use lifeboat_testkit::mariadb::MariaDb;
use lifeboat_testkit::{make_sample_tree, tempdir};

fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let p = e.path();
        if p.is_dir() {
            if let Some(f) = find(&p, name) {
                return Some(f);
            }
        } else if p.file_name().is_some_and(|n| n == name) {
            return Some(p);
        }
    }
    None
}

#[test]
fn a_user_does_the_daily_tasks_in_chromium() {
    let browser = Browser::new(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console")),
        &["playwright-core", "axe-core"],
    );

    let t = tempdir().unwrap();
    let w = t.path();
    let db = MariaDb::start();
    db.sql("CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, total INT); CREATE TABLE shop.items (id INT PRIMARY KEY); INSERT INTO shop.orders VALUES (1, 10);");
    make_sample_tree(&w.join("data"), 5);
    std::fs::create_dir_all(w.join("bucket/site")).unwrap();
    std::fs::write(w.join("bucket/site/index.html"), b"<h1>shop</h1>").unwrap();
    let d = w.display();
    let s = support::configure(
        w,
        &format!(
            "[site.primary]\nroot = \"{d}/primary\"\n\
             [site.secondary]\nroot = \"{d}/secondary\"\n\
             [vault.main]\nsite = \"primary\"\nlocation = \"{d}/main\"\n\
             [vault.dr]\nsite = \"secondary\"\nlocation = \"{d}/dr\"\n\
             [resource.data]\nsite = \"primary\"\npaths = [\"{d}/data\"]\n\
             [resource.front]\nkind = \"bucket\"\nsite = \"primary\"\nlocation = \"file://{d}/bucket\"\n\
             [resource.gone]\npaths = [\"{d}/gone\"]\n\
             [resource.shop-db]\ndsn = \"mysql://root@127.0.0.1:{port}\"\n\
             [resource.shop-files]\ndsn = \"mysql://root@127.0.0.1:{port}\"\nmode = \"physical\"\n\
             [plan.db]\nresources = [\"shop-db\"]\nschedule = \"0 * * * *\"\nvault = \"main\"\n\
             [plan.physical]\nresources = [\"shop-files\"]\nschedule = \"30 * * * *\"\nvault = \"main\"\n\
             [plan.nightly]\nresources = [\"data\", \"front\"]\nschedule = \"0 3 * * *\"\nvault = \"main\"\n\
             copy = [{{ vault = \"dr\" }}]\n\
             [plan.broken]\nresources = [\"gone\"]\nschedule = \"0 4 * * *\"\nvault = \"main\"\n\
             [replication.front-dr]\nfrom = \"front\"\nto = \"file://{d}/replica\"\n\
             [stack.shop]\nmembers = [\"data\", \"front\"]\nobjectives = {{ rpo = \"1d\", rto = \"5m\" }}\n\
             [drill.shop-weekly]\nstack = \"shop\"\nto = \"primary\"\n",
            port = db.port
        ),
        &format!("restore_roots = [\"{d}\"]"),
    );
    // History: a backup, a failed run, a drill.
    s.cli.ok(&["jobs", "run", "--plan", "nightly"]);
    s.cli.ok(&["jobs", "run", "--plan", "db"]);
    // A physical point of the same server (`mode = "physical"`): its job
    // and point show the mode.
    let physical_job = s.cli.json(&["jobs", "run", "--plan", "physical"])[0]["job"].clone();
    let out = s.cli.run(&["jobs", "run", "--plan", "broken"]);
    assert!(!out.status.success(), "the broken plan must fail");
    s.cli.ok(&["drill", "--drill", "shop-weekly"]);
    s.cli
        .ok(&["recover", "--stack", "shop", "--to", "secondary"]);
    // Removed again: a site the stack runs in shows no RPO exposure (issue
    // 21 D19), and the dashboard below shows the secondary's.
    s.cli.ok(&[
        "stack",
        "down",
        "--stack",
        "shop",
        "--site",
        "secondary",
        "--purge",
    ]);
    // What the next backup (started from the page) adds.
    let new_file = w.join("data/console-new.txt");
    std::fs::write(&new_file, b"made after the first backup\n").unwrap();
    let failed = s.cli.json(&["jobs", "list", "--status", "failed"]);
    let failed_job = failed[0]["id"].as_i64().unwrap();

    // The server's children hold at `index-loaded` until the page lets the
    // first one go (after cancelling it): a run is seen running.
    let hold = w.join("hold");
    std::fs::create_dir(&hold).unwrap();
    let srv = s.serve(
        &[(
            "LIFEBOAT_TEST_PAUSE",
            format!("index-loaded:{}", hold.display()),
        )],
        None,
    );
    // Changes for the replication rule the daemon now follows (its lag chart).
    for i in 0..20 {
        std::fs::write(
            w.join(format!("bucket/site/page-{i}.html")),
            vec![b'x'; 1000 * i],
        )
        .unwrap();
    }
    let artifacts = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/artifacts/console"
    ));
    let _ = std::fs::remove_dir_all(&artifacts);
    let restore_to = w.join("restored");
    let params = w.join("console-params.json");
    std::fs::write(
        &params,
        serde_json::json!({
            "base": srv.base,
            "token": srv.token,
            "shots": artifacts,
            "restoreTo": restore_to,
            "newFile": new_file,
            "failedJob": failed_job,
            "plan": "nightly",
            "hold": hold,
            "liveBucket": format!("file://{d}/bucket"),
            "bucketTo": format!("file://{d}/restored-bucket"),
            "physicalJob": physical_job,
        })
        .to_string(),
    )
    .unwrap();
    let sum = browser.run(
        "console.mjs",
        &[&params],
        &artifacts.join("failure.png"),
        || format!("serve's log:\n{}", srv.stderr_text()),
    );
    // Every console response carries the security headers, a module too;
    // a file the console does not have is a 404, never a file of the disk.
    for (path, status, kind) in [
        ("/", 200, "text/html"),
        ("/console/js/app.js", 200, "text/javascript"),
        (
            "/console/vendor/uplot/uPlot.iife.min.js",
            200,
            "text/javascript",
        ),
        ("/console/../../../../etc/passwd", 404, "text/plain"),
        ("/console/package.json", 404, "text/plain"),
    ] {
        let out = Command::new("curl")
            .args(["-s", "-D", "-", "-o", "/dev/null", "--path-as-is"])
            .arg(format!("{}{path}", srv.base))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            head.starts_with(&format!("http/1.1 {status}")),
            "{path}: {head}"
        );
        for h in [
            "content-security-policy: default-src 'none'; script-src 'self';",
            "frame-ancestors 'none'",
            "x-frame-options: deny",
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            &format!("content-type: {kind}"),
        ] {
            assert!(head.contains(h), "{path}: no {h} in\n{head}");
        }
    }
    eprintln!("{sum:#}");

    // The page sent exactly the actions that were confirmed (the first
    // confirmation was dismissed with Escape): two runs, a cancel, two
    // restores, a drill.
    let posts: Vec<&str> = sum["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    let cancel = format!("/api/v1/jobs/{}/cancel", sum["cancelled_job"]);
    assert_eq!(
        posts,
        [
            "/api/v1/plans/nightly/run",
            &cancel,
            "/api/v1/plans/nightly/run",
            "/api/v1/restores",
            "/api/v1/restores/bucket",
            "/api/v1/restores/bucket",
            "/api/v1/restores/database",
            "/api/v1/stacks/shop/drill",
        ],
        "{sum}"
    );
    // The first run was seen running with its progress, and cancelled from
    // the page: no point.
    let c = srv.json(&format!("/api/v1/jobs/{}", sum["cancelled_job"]));
    assert_eq!(c["status"], "cancelled", "{c}");
    assert!(c["point"].is_null());
    assert!(
        sum["live_progress"].as_str().unwrap().contains("files"),
        "{sum}"
    );
    assert!(
        sum["cancel_confirmation"]
            .as_str()
            .unwrap()
            .contains("SIGTERM")
    );
    // The run started from the page is an API-triggered job that made a point.
    let run = srv.json(&format!("/api/v1/jobs/{}", sum["run_job"]));
    assert_eq!(
        (run["status"].as_str(), run["trigger"].as_str()),
        (Some("succeeded"), Some("api"))
    );
    // The run's other job is listed on its first job's page.
    assert!(
        sum["siblings"]
            .as_str()
            .unwrap()
            .contains("backup of front succeeded"),
        "{sum}"
    );
    assert!(
        sum["run_confirmation"]
            .as_str()
            .unwrap()
            .contains("into vault main")
    );
    // The file restored through the page is on disk, byte for byte.
    let restored = find(&restore_to, "console-new.txt").expect("the restored file");
    assert_eq!(
        std::fs::read(&restored).unwrap(),
        b"made after the first backup\n"
    );
    let job = srv.json(&format!("/api/v1/jobs/{}", sum["restore_job"]));
    assert_eq!(
        (job["kind"].as_str(), job["status"].as_str()),
        (Some("restore"), Some("succeeded"))
    );
    // The database restored through the page is beside the live one.
    assert_eq!(
        db.sql("SELECT id, total FROM shop_restored.orders"),
        "1\t10\n"
    );
    assert_eq!(db.sql("SELECT COUNT(*) FROM shop.orders").trim(), "1");
    let job = srv.json(&format!("/api/v1/jobs/{}", sum["db_restore_job"]));
    assert_eq!(
        (job["kind"].as_str(), job["resource"].as_str()),
        (Some("restore"), Some("shop-db"))
    );
    assert!(
        sum["db_restore_confirmation"]
            .as_str()
            .unwrap()
            .contains("as shop_restored on the server of resource shop-db")
    );
    // The bucket restored through the page is in its new location; the
    // live bucket was refused as a target.
    assert_eq!(
        std::fs::read(w.join("restored-bucket/site/index.html")).unwrap(),
        b"<h1>shop</h1>"
    );
    assert!(
        sum["bucket_refusal"]
            .as_str()
            .unwrap()
            .contains("is the live bucket of resource `front`"),
        "{sum}"
    );
    // A physical point: its mode on the points list, its page (with the
    // command that restores it) and its backup's job.
    assert_eq!(sum["physical_kind"], "mysql-physical (physical)", "{sum}");
    assert_eq!(sum["physical_mode"], "physical", "{sum}");
    assert_eq!(sum["physical_job_mode"], "physical, full", "{sum}");
    assert!(sum["physical_files"].as_u64().unwrap() >= 2, "{sum}");
    let command = sum["physical_command"].as_str().unwrap();
    assert!(
        command.contains("lifeboat restore mysql ")
            && command.contains(" --physical --datadir DIR"),
        "{command}"
    );
    // The failed job's error, as the page showed it, names the missing path.
    let err = sum["failed_error"].as_str().unwrap();
    assert!(err.contains("gone"), "{err}");
    // The drill's report has its steps on the timeline; the drill started
    // from the page is an API-triggered drill job with its whole report.
    assert!(sum["drill_steps"].as_u64().unwrap() >= 2, "{sum}");
    assert!(sum["recovery_steps"].as_u64().unwrap() >= 2, "{sum}");
    let drill = srv.json(&format!("/api/v1/jobs/{}", sum["drill_job"]));
    assert_eq!(
        (
            drill["kind"].as_str(),
            drill["trigger"].as_str(),
            drill["status"].as_str()
        ),
        (Some("drill"), Some("api"), Some("succeeded"))
    );
    let steps = drill["report"]["recovery"]["steps"]
        .as_array()
        .unwrap()
        .len();
    assert!(steps >= 2);
    assert_eq!(sum["drill_job_steps"].as_u64(), Some(steps as u64), "{sum}");
    let reports = srv.json("/api/v1/reports?stack=shop&kind=drill");
    assert_eq!(reports.as_array().unwrap().len(), 2, "{reports}");
    assert!(
        sum["drill_confirmation"]
            .as_str()
            .unwrap()
            .contains("scratch stack")
    );
    // The dashboard shows the stack's live RPO exposure in the other site.
    assert!(
        sum["exposure"].as_str().unwrap().starts_with("secondary:"),
        "{sum}"
    );
    let members = sum["member_exposure"].as_str().unwrap();
    assert!(
        members.contains("secondary") && members.contains("data") && members.contains("front"),
        "{members}"
    );
    // Screenshots of every page, both widths.
    let shots: Vec<String> = sum["shots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    for p in [
        "login",
        "dashboard",
        "job",
        "point",
        "jobs",
        "resource",
        "vaults",
        "replication",
        "drills",
    ] {
        assert!(
            shots.iter().any(|s| s.ends_with(&format!("/{p}.png"))),
            "{p}"
        );
        assert!(
            shots
                .iter()
                .any(|s| s.ends_with(&format!("/phone-{p}.png")))
                || ![
                    "dashboard",
                    "jobs",
                    "vaults",
                    "replication",
                    "drills",
                    "resource",
                    "job"
                ]
                .contains(&p),
            "phone-{p}"
        );
    }
    for s in &shots {
        let png = std::fs::read(s).unwrap();
        assert!(png.starts_with(b"\x89PNG") && png.len() > 5_000, "{s}");
    }
    if std::env::var("LIFEBOAT_UPDATE_SCREENSHOTS").as_deref() == Ok("1") {
        let docs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/console"));
        std::fs::create_dir_all(&docs).unwrap();
        for s in &shots {
            let p = Path::new(s);
            std::fs::copy(p, docs.join(p.file_name().unwrap())).unwrap();
        }
    }
}
