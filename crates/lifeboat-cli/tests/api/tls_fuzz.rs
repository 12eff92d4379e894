//! TLS with a self-signed certificate, `--listen` and `token_file`, and a
//! schema fuzz of the API from its OpenAPI document (schemathesis): no 5xx.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::tempdir;

use crate::support::site;

#[test]
fn tls_serves_with_a_self_signed_certificate() {
    let d = tempdir().unwrap();
    let (cert, key) = (d.path().join("api.crt"), d.path().join("api.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=lifeboat-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = site(
        d.path(),
        &format!(
            "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    );
    let srv = s.serve(&[], Some(&cert));
    assert_eq!(srv.json("/api/v1/resources").as_array().unwrap().len(), 2);
    assert_eq!(srv.get("/api/v1/jobs", None).0, 401);
    // Plain HTTP to the TLS port gets no answer; an unknown CA is refused by curl.
    let plain = Command::new("curl")
        .args(["-s", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://127.0.0.1:{}/healthz", s.port))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    let untrusted = Command::new("curl")
        .args(["-s", "-m", "5"])
        .arg(format!("https://127.0.0.1:{}/healthz", s.port))
        .status()
        .unwrap();
    assert!(!untrusted.success());
    drop(srv);
    // A key that is not there: serve says so and exits 1.
    std::fs::remove_file(&key).unwrap();
    let out = s.cli.run(&["serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TLS private key") && err.contains("api.key"),
        "{err}"
    );
}

/// schemathesis from the test virtualenv (scripts/test installs it).
fn schemathesis() -> PathBuf {
    if let Ok(p) = std::env::var("LIFEBOAT_SCHEMATHESIS") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.join(".venv-test/bin/schemathesis")
}

#[test]
fn a_schema_fuzz_of_the_api_finds_no_server_error() {
    let st = schemathesis();
    assert!(
        st.exists(),
        "{} is missing: run scripts/test (it installs schemathesis into .venv-test) or set LIFEBOAT_SCHEMATHESIS",
        st.display()
    );
    let d = tempdir().unwrap();
    let s = site(d.path(), "");
    let srv = s.serve(&[], None);
    let mut c = Command::new(&st)
        .args(["run", &format!("{}/openapi.json", srv.base)])
        .args(["-H", &format!("Authorization: Bearer {}", srv.token)])
        .args([
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "25",
            "--request-timeout",
            "30",
            "--no-color",
        ])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its cache (`.schemathesis/`) goes into the test's directory.
        .current_dir(d.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded: the fuzz must finish within 5 minutes.
    let t = Instant::now();
    let status = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st;
        }
        if t.elapsed() > Duration::from_secs(300) {
            let _ = c.kill();
            panic!("schemathesis ran over 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut out = String::new();
    c.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    c.stderr.take().unwrap().read_to_string(&mut out).unwrap();
    assert!(status.success(), "schemathesis found problems:\n{out}");
    assert!(
        srv.stderr_text().lines().all(|l| !l.contains("panicked")),
        "{}",
        srv.stderr_text()
    );
}

#[test]
fn listen_flag_and_token_file_are_honoured() {
    let d = tempdir().unwrap();
    let tok = d.path().join("secrets/api-token");
    let s = site(d.path(), &format!("token_file = \"{}\"\n", tok.display()));
    let port = crate::support::free_port();
    let err = std::fs::File::create(d.path().join("serve.err")).unwrap();
    let mut child = s
        .cli
        .command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .unwrap();
    let curl = |path: &str, token: Option<&str>| -> String {
        let mut c = Command::new("curl");
        c.args(["-s", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}"]);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        String::from_utf8_lossy(
            &c.arg(format!("http://127.0.0.1:{port}{path}"))
                .output()
                .unwrap()
                .stdout,
        )
        .to_string()
    };
    let t = Instant::now();
    while curl("/healthz", None) != "200" {
        assert!(child.try_wait().unwrap().is_none(), "serve exited");
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "serve never answered on --listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tok).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(!d.path().join("state/api-token").exists());
    let token = std::fs::read_to_string(&tok).unwrap();
    assert_eq!(curl("/api/v1/jobs", Some(token.trim())), "200");
    assert_eq!(curl("/api/v1/jobs", None), "401");
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    );
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
