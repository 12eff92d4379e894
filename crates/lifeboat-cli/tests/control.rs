//! The control plane through the real binary: `validate`, `plan`, `apply`,
//! `config restore`, `jobs run/list/show`, against real directory vaults.

use std::path::Path;

use lifeboat_testkit::{Cli, make_sample_tree, tempdir};

fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

/// A runner with the state directory and config file set; the vault flag
/// points nowhere (the file names the vaults).
fn cli(work: &Path) -> Cli {
    Cli::new(bin(), &work.join("unused-vault")).with_workdir(work)
}

fn write_config(work: &Path, with_plan: bool) {
    let w = work.display();
    lifeboat_testkit::write_secret(&work.join("dr.pass"), "the dr vault's password\n");
    let mut text = format!(
        "# two sites' vaults, one files resource\n[vault.main]\nlocation = \"{w}/main\"\n[vault.dr]\nlocation = \"{w}/dr\"\npassword_file = \"{w}/dr.pass\"\n\
         [resource.data]\npaths = [\"{w}/data\"]\n"
    );
    if with_plan {
        text.push_str("[plan.hourly]\nresources = [\"data\"]\nschedule = \"0 * * * *\"\nvault = \"main\"\ncopy = [{ vault = \"dr\" }]\n");
    }
    std::fs::write(work.join("lifeboat.toml"), text).unwrap();
}

fn code(c: &Cli, args: &[&str]) -> (i32, String, String) {
    let o = c.run(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn validate_reports_every_error_with_exit_1() {
    let d = tempdir().unwrap();
    let f = d.path().join("bad.toml");
    std::fs::write(
        &f,
        "[vault.main]\nlocaton = \"/srv\"\n[plan.x]\nshedule = \"0 * * * *\"\n",
    )
    .unwrap();
    let c = cli(d.path());
    let (rc, out, _) = code(&c, &["validate", "-c", f.to_str().unwrap(), "--json"]);
    assert_eq!(rc, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let errors = v["errors"].as_array().unwrap();
    let keys: Vec<&str> = errors.iter().map(|e| e["key"].as_str().unwrap()).collect();
    assert!(keys.contains(&"vault.main.locaton"), "{keys:?}");
    assert!(keys.contains(&"plan.x.shedule"), "{keys:?}");
    let typo = errors
        .iter()
        .find(|e| e["key"] == "plan.x.shedule")
        .unwrap();
    assert_eq!(typo["line"], 4);
    assert_eq!(typo["column"], 1);
    assert_eq!(
        typo["message"],
        "unknown key `shedule` — did you mean `schedule`?"
    );
    let (rc, _, err) = code(&c, &["validate", "-c", f.to_str().unwrap()]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("bad.toml:4:1: plan.x.shedule: unknown key `shedule`"),
        "{err}"
    );
    write_config(d.path(), true);
    assert_eq!(code(&c, &["validate"]).0, 0);
}

#[test]
fn plan_apply_idempotent_keeps_points_and_config_restores_from_a_vault_alone() {
    let d = tempdir().unwrap();
    let w = d.path();
    make_sample_tree(&w.join("data"), 7);
    write_config(w, true);
    let c = cli(w);

    // Plan: two vaults to initialise, a resource and a plan to register.
    let (rc, out, err) = code(&c, &["plan", "--detailed-exitcode"]);
    assert_eq!(rc, 2, "{out}{err}");
    assert!(
        out.contains("+ vault main: initialise the vault at"),
        "{out}"
    );
    assert!(out.contains("+ plan hourly:"), "{out}");
    assert!(
        out.contains("Plan: 4 to add, 0 to change, 0 to remove."),
        "{out}"
    );
    // apply asks first; without a terminal and without --auto-approve it refuses.
    let (rc, _, err) = code(&c, &["apply"]);
    assert_eq!(rc, 2, "{err}");
    assert!(!w.join("main").exists(), "nothing was changed");
    let rep = c.json(&["apply", "--auto-approve"]);
    assert_eq!(rep["initialised"], serde_json::json!(["dr", "main"]));
    assert_eq!(rep["stored_in"], serde_json::json!(["dr", "main"]));
    // Idempotent: nothing left to do, and a second apply changes nothing.
    let (rc, out, _) = code(&c, &["plan", "--detailed-exitcode"]);
    assert_eq!(rc, 0, "{out}");
    assert!(out.contains("No changes"), "{out}");
    let again = c.json(&["apply", "--auto-approve"]);
    assert_eq!(again["changes"], serde_json::json!([]));
    assert_eq!(
        std::fs::read_dir(w.join("main/control/config"))
            .unwrap()
            .count(),
        1,
        "no second copy of an unchanged file"
    );

    // The state is private.
    use std::os::unix::fs::PermissionsExt;
    for f in ["state", "state/applied.json"] {
        let mode = std::fs::metadata(w.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "{f} is {mode:o}");
    }
    // A comment changes no item, but the stored copy must follow the file.
    let mut edited = std::fs::read_to_string(w.join("lifeboat.toml")).unwrap();
    edited.push_str("# reviewed\n");
    std::fs::write(w.join("lifeboat.toml"), &edited).unwrap();
    let (rc, out, _) = code(&c, &["plan", "--detailed-exitcode"]);
    assert_eq!(rc, 2);
    assert!(out.contains("~ config lifeboat.toml:"), "{out}");
    c.ok(&["apply", "--auto-approve"]);
    assert_eq!(
        std::fs::read_dir(w.join("main/control/config"))
            .unwrap()
            .count(),
        2
    );
    assert_eq!(code(&c, &["plan", "--detailed-exitcode"]).0, 0);

    // Run the plan now: a point in `main`, a job in the history.
    let run = c.json(&["jobs", "run", "--plan", "hourly"]);
    assert_eq!(run[0]["status"], "succeeded", "{run}");
    let point = run[0]["point"].as_str().unwrap().to_string();
    let main = Cli::new(bin(), &w.join("main"));
    let points = main.json(&["points", "list"]);
    assert_eq!(points.as_array().unwrap().len(), 1);
    assert_eq!(points[0]["resource"], "data");

    // Removing the plan retires it; its point stays.
    write_config(w, false);
    let (rc, out, _) = code(&c, &["plan", "--detailed-exitcode"]);
    assert_eq!(rc, 2);
    assert!(
        out.contains("- plan hourly: retire the plan (its recovery points stay in their vaults)"),
        "{out}"
    );
    c.ok(&["apply", "--auto-approve"]);
    let points = main.json(&["points", "list"]);
    assert_eq!(
        points.as_array().unwrap().len(),
        1,
        "removing a plan deleted no point"
    );
    assert!(points[0]["id"].as_str().unwrap().starts_with(&point[..8]) || points[0]["id"] == point);
    main.ok(&["vault", "check"]);

    // Lose the file and the state: the configuration comes back from a vault alone.
    let applied = std::fs::read_to_string(w.join("lifeboat.toml")).unwrap();
    std::fs::remove_file(w.join("lifeboat.toml")).unwrap();
    std::fs::remove_dir_all(w.join("state")).unwrap();
    let mut dr = Cli::new(bin(), &w.join("dr"));
    dr.password = "the dr vault's password".into(); // from the password_file the file named
    let to = w.join("restored.toml");
    dr.ok(&["config", "restore", "--to", to.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&to).unwrap(), applied);
    let (rc, _, err) = code(&dr, &["config", "restore", "--to", to.to_str().unwrap()]);
    assert_eq!(rc, 1, "an existing file is not overwritten: {err}");
    // A wrong password gets nothing.
    let mut wrong = dr.clone();
    wrong.password = "wrong".into();
    assert_ne!(code(&wrong, &["config", "restore"]).0, 0);
}

/// Appends `lock` to vault `dr`'s table of the file `write_config` wrote.
fn with_dr_lock(work: &Path, lock: Option<&str>) {
    write_config(work, true);
    let p = work.join("lifeboat.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let text = match lock {
        Some(l) => text.replace("password_file = ", &format!("lock = {l}\npassword_file = ")),
        None => text,
    };
    std::fs::write(p, text).unwrap();
}

fn dr_lock(c: &Cli, work: &Path) -> serde_json::Value {
    let mut dr = c.clone();
    dr.env.push((
        "LIFEBOAT_PASSWORD_FILE".into(),
        work.join("dr.pass").display().to_string(),
    ));
    dr.env.push((
        "LIFEBOAT_VAULT".into(),
        work.join("dr").display().to_string(),
    ));
    dr.json(&["vault", "configure", "--show"])
}

#[test]
fn apply_writes_a_declared_vault_lock_never_weakens_it_and_stops_before_anything_on_an_immutable_one()
 {
    let d = tempdir().unwrap();
    let w = d.path();
    make_sample_tree(&w.join("data"), 3);
    with_dr_lock(w, Some(r#"{ mode = "compliance", min_retention = "1d" }"#));
    let c = cli(w);

    // A new vault with a declared lock: initialised, then locked, by one apply.
    let (_, out, _) = code(&c, &["plan"]);
    assert!(
        out.contains("~ vault-lock dr: set the vault lock: compliance, min 1d (changeable for 3d"),
        "{out}"
    );
    let rep = c.json(&["apply", "--auto-approve"]);
    assert_eq!(rep["locks_set"], serde_json::json!(["dr"]));
    let l = dr_lock(&c, w);
    assert_eq!(l["mode"], "compliance", "{l}");
    assert_eq!(l["min_retention"], "1d", "{l}");
    assert_eq!(l["immutable"], false, "{l}");
    let (rc, out, _) = code(&c, &["plan", "--detailed-exitcode"]);
    assert_eq!(rc, 0, "idempotent: {out}");

    // The file asks for more: apply changes it during the cooling-off.
    with_dr_lock(w, Some(r#"{ mode = "compliance", min_retention = "2d" }"#));
    let (_, out, _) = code(&c, &["plan"]);
    assert!(
        out.contains(
            "~ vault-lock dr: change the vault lock from compliance, min 1d to compliance, min 2d"
        ),
        "{out}"
    );
    c.ok(&["apply", "--auto-approve"]);
    assert_eq!(dr_lock(&c, w)["min_retention"], "2d");

    // The lock leaves the file: the vault keeps it.
    with_dr_lock(w, None);
    let rep = c.json(&["apply", "--auto-approve"]);
    assert_eq!(rep["locks_set"], serde_json::json!([]));
    assert_eq!(dr_lock(&c, w)["min_retention"], "2d", "never weakened");

    // Someone made the vault's lock immutable (cooling-off ended) with other
    // settings: plan and apply stop, naming both, and change nothing.
    let v = lifeboat_vault::Vault::open(
        &lifeboat_vault::Location::parse(&w.join("dr").display().to_string()).unwrap(),
        b"the dr vault's password",
    )
    .unwrap();
    let s = lifeboat_vault::retention::LockSettings {
        min_retention: Some(chrono::Duration::days(5)),
        max_retention: None,
        mode: lifeboat_vault::LockMode::Compliance,
        changeable_for: chrono::Duration::days(3),
    };
    lifeboat_vault::retention::configure(&v, &s, chrono::Utc::now() - chrono::Duration::days(4))
        .unwrap();
    with_dr_lock(w, Some(r#"{ mode = "compliance", min_retention = "1d" }"#));
    let before = std::fs::read_dir(w.join("dr/control/config"))
        .unwrap()
        .count();
    for args in [&["plan"][..], &["apply", "--auto-approve"][..]] {
        let (rc, out, err) = code(&c, args);
        assert_eq!(rc, 1, "{args:?}: {out}{err}");
        assert!(
            err.contains(
                "vault `dr`: its lock configuration (compliance, min 5d) is immutable since"
            ) && err.contains("the file declares compliance, min 1d"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(w.join("dr/control/config"))
            .unwrap()
            .count(),
        before,
        "nothing applied"
    );
    // A lock with no retention at all is refused with the fix.
    with_dr_lock(w, Some(r#""compliance""#));
    let (rc, _, err) = code(&c, &["plan"]);
    assert_eq!(rc, 1);
    assert!(
        err.contains("a vault lock needs `min_retention` and/or `max_retention`"),
        "{err}"
    );
}

/// After `apply`, a vault of the file is opened by its name (`--vault dr`),
/// with the password source the file gives it; with no `--vault`, the
/// file's only vault, and several are named rather than guessed.
#[test]
fn a_vault_of_the_file_opens_by_its_name_with_its_own_password() {
    let d = tempdir().unwrap();
    let w = d.path();
    write_config(w, true);
    make_sample_tree(&w.join("data"), 7);
    let c = cli(w);
    c.ok(&["apply", "--auto-approve"]);
    // No vault or password in the environment: the file says both.
    let run = |args: &[&str]| {
        let o = c
            .command(args)
            .current_dir(w)
            .env_remove("LIFEBOAT_VAULT")
            .env_remove("LIFEBOAT_PASSWORD")
            .env_remove("LIFEBOAT_CONFIG")
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (o.status.code(), text(&o.stdout), text(&o.stderr))
    };
    let data = w.join("data");
    let (rc, _, err) = run(&["--vault", "dr", "backup", "files", data.to_str().unwrap()]);
    assert_eq!(rc, Some(0), "{err}");
    let (rc, out, err) = run(&["--vault", "dr", "points", "list", "--json"]);
    assert_eq!(rc, Some(0), "{err}");
    let points: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(points.as_array().unwrap().len(), 1, "{points:#}");
    // Given by its path, as the file declares it: the file's password too.
    let dr = format!("file://{}/dr", w.display());
    let (rc, _, err) = run(&["--vault", &dr, "points", "list", "--json"]);
    assert_eq!(rc, Some(0), "{err}");
    let (rc, _, err) = run(&["points", "list"]);
    assert_eq!(rc, Some(2), "{err}");
    assert!(err.contains("declares several (dr, main)"), "{err}");
    let (rc, _, err) = run(&["--vault", "nope", "points", "list"]);
    assert_eq!(rc, Some(2), "{err}");
    assert!(
        err.contains("declares no vault `nope` (it declares: dr, main)"),
        "{err}"
    );
    // A file others may change never chooses the vault.
    use std::os::unix::fs::PermissionsExt;
    let file = w.join("lifeboat.toml");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o664)).unwrap();
    let (rc, _, err) = run(&["--vault", "dr", "points", "list"]);
    assert_eq!(rc, Some(2), "{err}");
    assert!(err.contains("lifeboat.toml is not read"), "{err}");
    let (rc, _, err) = run(&["points", "list"]);
    assert_eq!(rc, Some(2), "{err}");
    assert!(
        err.contains("no vault given") && err.contains("lifeboat.toml is not read"),
        "{err}"
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Nor does a link planted in its place, to a file of the user's own.
    let elsewhere = w.join("elsewhere.toml");
    std::fs::rename(&file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
    let (rc, _, err) = run(&["--vault", "dr", "points", "list"]);
    assert_eq!(rc, Some(2), "{err}");
    assert!(err.contains("it is a symbolic link"), "{err}");
    std::fs::remove_file(&file).unwrap();
    std::fs::rename(&elsewhere, &file).unwrap();
    // The environment's password still wins when given: `main` opens with it.
    let o = c
        .command(&["--vault", "main", "points", "list", "--json"])
        .current_dir(w)
        .env_remove("LIFEBOAT_VAULT")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
