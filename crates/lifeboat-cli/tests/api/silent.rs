//! A vault that goes silent after `serve` opened it (issue 21 B12): its S3
//! endpoint keeps the connections and stops answering. The point routes
//! answer within about 2 s, the vault marked unreachable, instead of
//! waiting for the storage's timeouts (4 × 120 s).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lifeboat_testkit::s3::S3Server;
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};

use crate::support::{Server, Site, bin, free_port};

/// A TCP proxy to the S3 server that can fall silent: from then on it
/// forwards nothing, in either direction, and holds every connection open.
struct Hush {
    port: u16,
    silent: Arc<AtomicBool>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream, silent: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            while silent.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
            if to.write_all(&buf[..n]).is_err() {
                return;
            }
        }
    });
}

impl Hush {
    fn start(target: u16) -> Hush {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let silent = Arc::new(AtomicBool::new(false));
        let s = silent.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for c in l.incoming().flatten() {
                if s.load(Ordering::Relaxed) {
                    held.push(c);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                pipe(c.try_clone().unwrap(), up.try_clone().unwrap(), s.clone());
                pipe(up, c, s.clone());
            }
        });
        Hush { port, silent }
    }

    fn fall_silent(&self) {
        self.silent.store(true, Ordering::Relaxed);
    }
}

/// Kills process `0` (SIGKILL) on drop.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0 as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
}

/// GET `path` with a 10 s bound: (status, body, seconds); status 0 when it
/// timed out.
fn timed(srv: &Server, path: &str) -> (u16, String, f64) {
    let t = Instant::now();
    let out = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .args(["-H", &format!("Authorization: Bearer {}", srv.token)])
        .arg(format!("{}{path}", srv.base))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        body.to_string(),
        t.elapsed().as_secs_f64(),
    )
}

#[test]
fn a_vault_that_goes_silent_after_it_was_opened_does_not_stall_the_point_routes() {
    let moto = S3Server::start();
    moto.create_bucket("vault");
    let hush = Hush::start(moto.port);
    let d = tempdir().unwrap();
    let w = d.path();
    make_sample_tree(&w.join("data"), 3);
    let creds = [
        ("AWS_ACCESS_KEY_ID", "test".to_string()),
        ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
    ];
    let location = format!(
        "s3://vault/v?endpoint=http://127.0.0.1:{}&region=us-east-1",
        hush.port
    );
    let body = format!(
        "[vault.s3]\nlocation = \"{location}\"\n\
         [resource.data]\npaths = [\"{}/data\"]\n\
         [plan.nightly]\nresources = [\"data\"]\nschedule = \"0 3 * * *\"\nvault = \"s3\"\n",
        w.display()
    );
    let port = free_port();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!("{body}\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let mut cli = Cli::at(bin(), &location);
    for (k, v) in [
        ("LIFEBOAT_STATE", w.join("state").display().to_string()),
        (
            "LIFEBOAT_CONFIG",
            w.join("lifeboat.toml").display().to_string(),
        ),
    ]
    .into_iter()
    .chain(creds.iter().map(|(k, v)| (*k, v.clone())))
    {
        cli.env.push((k.to_string(), v));
    }
    cli.ok(&["apply", "--auto-approve"]);
    let s = Site {
        dir: w.to_path_buf(),
        cli,
        port,
    };
    s.cli.ok(&["jobs", "run", "--plan", "nightly"]);
    let srv = s.serve(&creds, None);
    // Dropped before `srv`: a server stuck on the silent vault (the old
    // code) is killed, so a failure ends the test instead of hanging it.
    let _kill = KillOnDrop(srv.child.id());
    let points = srv.json("/api/v1/resources/data/points");
    let id = points["points"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{points:#}"))
        .to_string();
    let (code, _, _) = timed(&srv, &format!("/api/v1/points/s3/{id}"));
    assert_eq!(code, 200, "the vault answers while it is loud");

    hush.fall_silent();
    for round in 0..2 {
        for path in [
            format!("/api/v1/points/s3/{id}"),
            format!("/api/v1/points/s3/{id}/contents"),
            "/api/v1/resources/data/points".to_string(),
            "/api/v1/vaults".to_string(),
            "/api/v1/resources".to_string(),
        ] {
            let (code, body, secs) = timed(&srv, &path);
            assert!(
                code != 0 && secs < 4.0,
                "round {round}: GET {path} took {secs:.1}s (status {code}): {body}"
            );
            if path.starts_with("/api/v1/points/") {
                assert_eq!(code, 503, "round {round}: {path}: {body}");
                assert!(body.contains("unreachable"), "{body}");
            }
        }
    }
    let (_, body, _) = timed(&srv, "/api/v1/resources/data/points");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(listed["unreadable"][0]["vault"], "s3", "{listed:#}");
}
