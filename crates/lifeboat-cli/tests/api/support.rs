//! The API tests' fixture: a site (vaults, resources, a plan, one backup
//! made by the CLI) and a running `lifeboat serve` driven with `curl`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lifeboat_testkit::{Cli, make_sample_tree};

pub fn bin() -> String {
    std::env::var("LIFEBOAT_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_lifeboat").into())
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A workspace: a sample tree, two vaults (`main`, `dr`), a bucket and its
/// replica, a plan with a copy action, applied, with one backup made by the CLI.
pub struct Site {
    pub dir: PathBuf,
    pub cli: Cli,
    pub port: u16,
}

pub fn site(w: &Path, server: &str) -> Site {
    make_sample_tree(&w.join("data"), 5);
    std::fs::create_dir_all(w.join("bucket/site")).unwrap();
    std::fs::write(w.join("bucket/site/index.html"), b"<h1>shop</h1>").unwrap();
    let d = w.display();
    let s = configure(
        w,
        &format!(
            "[vault.main]\nlocation = \"{d}/main\"\n[vault.dr]\nlocation = \"{d}/dr\"\n\
             [resource.data]\npaths = [\"{d}/data\"]\n\
             [resource.front]\nkind = \"bucket\"\nlocation = \"file://{d}/bucket\"\n\
             [plan.nightly]\nresources = [\"data\", \"front\"]\nschedule = \"0 3 * * *\"\nvault = \"main\"\n\
             copy = [{{ vault = \"dr\" }}]\n\
             [replication.front-dr]\nfrom = \"front\"\nto = \"file://{d}/replica\"\n"
        ),
        server,
    );
    s.cli.ok(&["jobs", "run", "--plan", "nightly"]);
    s
}

/// Writes `lifeboat.toml` (`body`, then `[server]` on a free port with the
/// `server` keys) and applies it.
pub fn configure(w: &Path, body: &str, server: &str) -> Site {
    let port = free_port();
    std::fs::write(
        w.join("lifeboat.toml"),
        format!("{body}\n[server]\nlisten = \"127.0.0.1:{port}\"\n{server}"),
    )
    .unwrap();
    let mut cli = Cli::new(bin(), &w.join("main"));
    for (k, v) in [
        ("LIFEBOAT_STATE", w.join("state")),
        ("LIFEBOAT_CONFIG", w.join("lifeboat.toml")),
    ] {
        cli.env.push((k.into(), v.display().to_string()));
    }
    cli.ok(&["apply", "--auto-approve"]);
    Site {
        dir: w.to_path_buf(),
        cli,
        port,
    }
}

/// A running `lifeboat serve`, stopped (SIGTERM) on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub token: String,
    pub curl_tls: Vec<String>,
    pub stderr: PathBuf,
}

impl Site {
    pub fn serve(&self, env: &[(&str, String)], tls_ca: Option<&Path>) -> Server {
        self.serve_with(&[], env, tls_ca)
    }

    /// `serve` with more arguments.
    pub fn serve_with(
        &self,
        args: &[&str],
        env: &[(&str, String)],
        tls_ca: Option<&Path>,
    ) -> Server {
        let stderr = self.dir.join(format!("serve-{}.err", free_port()));
        let mut c = self.cli.command(&[&["serve"], args].concat());
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let scheme = if tls_ca.is_some() { "https" } else { "http" };
        let mut s = Server {
            child,
            base: format!("{scheme}://127.0.0.1:{}", self.port),
            token: String::new(),
            curl_tls: tls_ca
                .map(|ca| vec!["--cacert".into(), ca.display().to_string()])
                .unwrap_or_default(),
            stderr,
        };
        let t = Instant::now();
        while s.get("/healthz", None).0 != 200 {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("serve exited with {st}: {}", s.stderr_text());
            }
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "serve never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s.token = std::fs::read_to_string(self.dir.join("state/api-token"))
            .unwrap()
            .trim()
            .to_string();
        s
    }
}

impl Server {
    /// SIGTERM, then its exit (at most 60 s).
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        wait_bounded(&mut self.child, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("serve did not stop on SIGTERM: {}", self.stderr_text()))
    }

    pub fn stderr_text(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `curl` with the token (or `token`), returning (status, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> (u16, String) {
        let mut c = Command::new("curl");
        c.args(["-s", "-m", "60", "-X", method, "-w", "\n%{http_code}"])
            .args(&self.curl_tls);
        if let Some(t) = token {
            c.args(["-H", &format!("Authorization: Bearer {t}")]);
        }
        if let Some(b) = body {
            c.args(["-H", "Content-Type: application/json", "--data-binary", b]);
        }
        let out = c.arg(format!("{}{path}", self.base)).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_string())
    }

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        self.request("GET", path, token, None)
    }

    /// GET with the token; asserts 200; JSON.
    pub fn json(&self, path: &str) -> serde_json::Value {
        let (code, body) = self.get(path, Some(&self.token.clone()));
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
    }

    pub fn post(&self, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let (code, text) = self.request("POST", path, Some(&self.token.clone()), body);
        (
            code,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The whole event stream of a job (returns when the server ends it).
    pub fn events(&self, job: i64) -> String {
        follow(&self.base, &self.token, &self.curl_tls, job)
    }
}

/// The whole event stream of a job (returns when the server ends it).
pub fn follow(base: &str, token: &str, tls: &[String], job: i64) -> String {
    let out = Command::new("curl")
        .args(["-s", "-N", "-m", "120"])
        .args(tls)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg(format!("{base}/api/v1/jobs/{job}/events"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).to_string()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        );
        let _ = self.child.wait();
    }
}

/// The `end` event's job.
pub fn end_of(stream: &str) -> serde_json::Value {
    let data = stream
        .split("event: end\n")
        .nth(1)
        .and_then(|r| r.lines().next())
        .and_then(|l| l.strip_prefix("data: "))
        .unwrap_or_else(|| panic!("no end event in: {stream}"));
    serde_json::from_str(data).unwrap()
}

/// `name{labels} value` lines of a Prometheus text.
pub fn series(text: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (
                k.to_string(),
                v.parse().unwrap_or_else(|_| panic!("bad value: {l}")),
            )
        })
        .collect()
}

/// The child's exit, or `None` (killed) when it runs longer than `limit`.
pub fn wait_bounded(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let t = Instant::now();
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return Some(st);
        }
        if t.elapsed() > limit {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
