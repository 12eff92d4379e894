//! An S3 vault whose endpoint never answers, or is not there: every command
//! ends in bounded time with a message naming the endpoint and what was tried.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use lifeboat_testkit::Cli;

/// The binary under test (`LIFEBOAT_TEST_BIN` runs the tests against another
/// build, e.g. the code before a fix).
fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

fn s3_cli(url: &str) -> Cli {
    let mut c = Cli::at(bin(), url);
    c.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), "test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
    ];
    c
}

/// Runs `points list`; returns (exit code, stderr, seconds taken).
fn points_list(c: &Cli, env: &[(&str, &str)]) -> (i32, String, f64) {
    let started = Instant::now();
    let mut cmd = c.command(&["points", "list"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        started.elapsed().as_secs_f64(),
    )
}

#[test]
fn an_endpoint_that_accepts_and_never_answers_times_out() {
    // The kernel completes the handshake for a listening socket that nobody
    // accepts on: the request is sent and no answer ever comes.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let endpoint = format!("http://127.0.0.1:{port}");

    // Bounds from the URL.
    let c = s3_cli(&format!(
        "s3://silent-vault?endpoint={endpoint}&timeout=1s&total_timeout=4s"
    ));
    let (code, err, secs) = points_list(&c, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(secs < 15.0, "took {secs:.1}s");
    assert!(err.contains(&endpoint), "names the endpoint: {err}");
    assert!(
        err.contains("timeout") && err.contains("tried"),
        "says what was tried: {err}"
    );

    // Bounds from the environment.
    let c = s3_cli(&format!("s3://silent-vault?endpoint={endpoint}"));
    let (code, err, secs) = points_list(
        &c,
        &[
            ("LIFEBOAT_S3_TIMEOUT", "1s"),
            ("LIFEBOAT_S3_TOTAL_TIMEOUT", "3s"),
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(secs < 12.0, "took {secs:.1}s");
    assert!(err.contains("answer timeout 1s"), "{err}");
    drop(l);
}

/// Issue 21 B12: with the default settings a silent endpoint cost 491-493 s
/// (4 tries of the 120 s answer timeout). The endpoint never answered
/// anything, which is not a slow upload: the first-answer bound (30 s by
/// default) ends the command, naming the endpoint and the setting to raise.
#[test]
fn a_silent_endpoint_fails_within_a_minute_with_the_default_settings() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let c = s3_cli(&format!("s3://silent-vault?endpoint={endpoint}"));
    let started = Instant::now();
    let mut child = c
        .command(&["points", "list"])
        .env_remove("LIFEBOAT_S3_TIMEOUT")
        .env_remove("LIFEBOAT_S3_TOTAL_TIMEOUT")
        .env_remove("LIFEBOAT_S3_FIRST_ANSWER_TIMEOUT")
        .env_remove("LIFEBOAT_S3_CONNECT_TIMEOUT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Waited for up to 90 s, then killed: the old code took 8 minutes.
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`points list` on a silent endpoint still ran after 90 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let secs = started.elapsed().as_secs_f64();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        secs < 60.0,
        "took {secs:.1}s with the default settings: {err}"
    );
    assert!(err.contains(&endpoint), "names the endpoint: {err}");
    assert!(
        err.contains("first_answer_timeout") && err.contains("LIFEBOAT_S3_FIRST_ANSWER_TIMEOUT"),
        "names the setting to raise: {err}"
    );
    drop(l);
}

#[test]
fn a_closed_port_fails_fast() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }; // closed again: connections are refused
    let endpoint = format!("http://127.0.0.1:{port}");
    let c = s3_cli(&format!("s3://gone-vault?endpoint={endpoint}"));
    let (code, err, secs) = points_list(&c, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(secs < 15.0, "took {secs:.1}s (default settings)");
    assert!(err.contains(&endpoint), "names the endpoint: {err}");
    assert!(err.contains("tried up to 4 times"), "{err}");
}

#[test]
fn a_bad_timeout_is_a_usage_error() {
    let c = s3_cli("s3://some-vault?endpoint=http://127.0.0.1:9&timeout=soon");
    let o = c.run(&["points", "list"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = Duration::ZERO;
}
