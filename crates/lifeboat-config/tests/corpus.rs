//! Every file under `tests/corpus/` is broken in a known way: its `# expect:`
//! lines list the exact errors `validate` must report (all of them, nothing
//! more). `tests/good/` files must validate clean.

use std::path::Path;

fn expected(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(str::to_string)
        .collect()
}

#[test]
fn broken_files_report_exactly_their_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 30, "corpus has {} files", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let want = expected(&text);
        assert!(!want.is_empty(), "{} has no `# expect:` line", f.display());
        let got: Vec<String> = match lifeboat_config::parse("x.toml", &text) {
            Ok(_) => Vec::new(),
            Err(d) => {
                for e in &d.0 {
                    assert!(e.fix.is_some(), "{}: no fix for {e}", f.display());
                    assert!(e.line > 0 && e.column > 0);
                }
                d.0.iter().map(|e| e.short()).collect()
            }
        };
        if got != want {
            failures.push(format!(
                "{}:\n  want: {want:#?}\n  got:  {got:#?}",
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn good_files_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good");
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if let Err(d) = lifeboat_config::load(&p) {
            panic!("{}: {d}", p.display());
        }
    }
}

#[test]
fn unishop_example_reads_as_declared() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good/unishop.toml");
    let c = lifeboat_config::load(&p).unwrap();
    let plan = &c.plans["hourly"];
    assert_eq!(plan.vault, "main");
    assert_eq!(plan.copy[0].vault, "dr");
    assert_eq!(plan.window, Some(lifeboat_config::Dur(1800)));
    assert_eq!(plan.schedule.tz, chrono_tz::Europe::Berlin);
    assert_eq!(c.used_vaults(), ["dr", "main"]);
    assert_eq!(
        c.vaults["dr"].password,
        lifeboat_config::Secret::File("/etc/lifeboat/dr.pass".into())
    );
    assert!(matches!(
        c.resources["shop-db"].kind,
        lifeboat_config::ResourceKind::Mysql {
            archive: Some(_),
            ..
        }
    ));
}

/// A database's mode reaches the settings a plan's backup hands its
/// protector (absent: left out, so an older applied file reads the same).
#[test]
fn a_databases_mode_and_full_every_reach_its_settings() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good/physical.toml");
    let c = lifeboat_config::load(&p).unwrap();
    let settings = |r: &str| serde_json::to_value(&c.resources[r].kind).unwrap();
    let shop = settings("shop-db");
    assert_eq!(
        (&shop["mode"], &shop["full_every"]),
        (&"physical".into(), &"24h".into())
    );
    let wiki = settings("wiki-db");
    assert_eq!(wiki["mode"], "logical");
    assert!(wiki.get("full_every").is_none(), "{wiki}");
    let plain = lifeboat_config::parse(
        "x.toml",
        "vault.main.location = \"/srv/vault\"\nresource.db.dsn = \"mysql://u@127.0.0.1\"\n",
    )
    .unwrap();
    let db = serde_json::to_value(&plain.resources["db"].kind).unwrap();
    assert!(db.get("mode").is_none(), "{db}");
}

#[test]
fn instance_tables_are_instance_specs_named_after_their_resource() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good/instance.toml");
    let c = lifeboat_config::load(&p).unwrap();
    let lifeboat_config::ResourceKind::Instance { spec } = &c.resources["shop-host"].kind else {
        panic!("not an instance");
    };
    let spec: lifeboat_instance::InstanceSpec = serde_json::from_value(spec.clone()).unwrap();
    assert_eq!(spec.name.as_deref(), Some("shop-host"));
    assert_eq!(spec.paths, [Path::new("/opt/unishop")]);
    assert_eq!(spec.volumes, [Path::new("/var/lib/images/shop.img")]);
    let l = spec.launch.as_ref().unwrap();
    assert_eq!(l.command, ["/opt/unishop/unishop", "serve"]);
    assert_eq!(l.port.as_deref(), Some("8080"));
    assert_eq!(spec.hooks.after, ["/opt/unishop/resume"]);
    assert!(spec.validate().is_ok());
}

#[test]
fn two_lines_make_a_daily_plan() {
    let c = lifeboat_config::parse(
        "x.toml",
        "vault.main.location = \"/srv/vault\"\nresource.etc.paths = [\"/etc\"]\n",
    )
    .unwrap();
    let p = &c.plans["default"];
    assert_eq!(p.vault, "main");
    assert_eq!(p.resources, ["etc"]);
    assert_eq!(p.schedule.expr, "0 2 * * *");
    assert_eq!(
        c.vaults["main"].password,
        lifeboat_config::Secret::Env("LIFEBOAT_PASSWORD".into())
    );
}

/// Prints what each corpus file reports (run with `--ignored --nocapture` to review).
#[test]
#[ignore]
fn dump() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        println!("== {}", f.file_name().unwrap().to_string_lossy());
        match lifeboat_config::parse("x.toml", &text) {
            Ok(_) => println!("(valid)"),
            Err(d) => {
                for e in d.0 {
                    println!("# expect: {}\n      fix: {:?}", e.short(), e.fix);
                }
            }
        }
    }
}

#[test]
fn server_table_reads_and_defaults_to_loopback() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good/server.toml");
    let c = lifeboat_config::load(&p).unwrap();
    assert_eq!(c.server.listen.to_string(), "0.0.0.0:7460");
    assert_eq!(
        c.server.tls_key.as_deref(),
        Some(Path::new("/etc/lifeboat/api.key"))
    );
    let d = lifeboat_config::parse(
        "x.toml",
        "vault.main.location = \"/srv/vault\"\nresource.etc.paths = [\"/etc\"]\n",
    )
    .unwrap();
    assert_eq!(d.server, lifeboat_config::ServerSpec::default());
    assert!(d.server.listen.ip().is_loopback());
}

#[test]
fn the_daemon_table_sets_the_retention_schedule_and_defaults_to_daily() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good");
    let c = lifeboat_config::load(&dir.join("daemon.toml")).unwrap();
    assert_eq!(c.daemon.retention_schedule.expr, "15 4 * * *");
    assert_eq!(c.daemon.retention_schedule.tz.name(), "Europe/Berlin");
    let c = lifeboat_config::parse(
        "x.toml",
        "vault.main.location = \"/v\"\nresource.etc.paths = [\"/etc\"]\n",
    )
    .unwrap();
    assert_eq!(c.daemon.retention_schedule.expr, "30 3 * * *");
    // Seconds first (six fields) are accepted: tests use them.
    let c = lifeboat_config::parse(
        "x.toml",
        "vault.main.location = \"/v\"\nresource.etc.paths = [\"/etc\"]\nplan.p.resources = [\"etc\"]\nplan.p.vault = \"main\"\nplan.p.schedule = \"*/5 * * * * *\"\n",
    )
    .unwrap();
    let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T10:20:01Z")
        .unwrap()
        .to_utc();
    assert_eq!(
        c.plans["p"].schedule.next_after(t).unwrap().to_rfc3339(),
        "2026-01-01T10:20:05+00:00"
    );
}
