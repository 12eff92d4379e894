//! Shared by the integration tests: a real MariaDB, the real `unishop`
//! binary as a child process, and a tiny blocking HTTP client.
#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use lifeboat_testkit::mariadb::{MariaDb, MariaDbOptions};
use serde_json::Value;

/// The binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_unishop")
}

/// A server without binlog (the shop does not need one).
pub fn mariadb() -> MariaDb {
    MariaDb::start_with(&MariaDbOptions {
        binlog: false,
        server_id: 1,
        ..Default::default()
    })
}

/// The shop's database URL on `db`.
pub fn db_url(db: &MariaDb, name: &str) -> String {
    format!("mysql://root@127.0.0.1:{}/{name}", db.port)
}

/// Runs `unishop ARGS` to the end.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env_remove("UNISHOP_DATABASE_URL")
        .env_remove("UNISHOP_BUCKET")
        .env_remove("UNISHOP_LISTEN")
        .output()
        .expect("run unishop")
}

/// Runs `unishop ARGS`, asserts exit 0, returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = run(args);
    assert!(
        o.status.success(),
        "unishop {args:?} failed ({}):\n{}\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A bucket directory holding a minimal frontend (no npm needed).
pub fn minimal_bucket() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("index.html"),
        "<!doctype html><title>Unishop</title>",
    )
    .unwrap();
    d
}

/// A running `unishop serve`, stopped (SIGTERM) when dropped.
pub struct Served {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Served {
    /// Starts `unishop serve` on a free port with `database_url` and `bucket`.
    pub fn start(database_url: &str, bucket: &str) -> Served {
        Served::start_with(database_url, bucket, &[])
    }

    /// Same, with extra environment.
    pub fn start_with(database_url: &str, bucket: &str, env: &[(&str, &str)]) -> Served {
        let mut c = Command::new(bin());
        c.args(["serve", "--listen", "127.0.0.1:0"])
            .env("UNISHOP_DATABASE_URL", database_url)
            .env("UNISHOP_BUCKET", bucket)
            .env("UNISHOP_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("start unishop serve");
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Some(url) = line.trim().strip_prefix("unishop listening on ") else {
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "unishop serve did not start: {line:?}\n{}",
                stderr.lock().unwrap()
            );
        };
        Served {
            url: url.to_string(),
            child,
            stderr,
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> Response {
        request("GET", &format!("{}{path}", self.url), None, None)
    }

    /// POST JSON to `path`.
    pub fn post_json(&self, path: &str, body: &str) -> Response {
        request(
            "POST",
            &format!("{}{path}", self.url),
            Some("application/json"),
            Some(body),
        )
    }

    /// Waits until `/health` answers `want` (200 or 503); panics after `limit`.
    pub fn wait_health(&self, want: u16, limit: Duration) -> Response {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.get("/health");
            if r.status == want {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "/health is {} {} after {limit:?}, want {want}\nserver log:\n{}",
                r.status,
                r.text(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stops the server (SIGTERM) and returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        self.child.wait().unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.stop();
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// Status code (0 when there was no answer).
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.text()))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `Connection: close`.
pub fn request(method: &str, url: &str, ctype: Option<&str>, body: Option<&str>) -> Response {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(t) = ctype {
        head.push_str(&format!("Content-Type: {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

/// Seeds `n` products with `stock` each.
pub fn seed(database_url: &str, n: u32, stock: u32) {
    ok(&[
        "seed",
        "--database-url",
        database_url,
        "--products",
        &n.to_string(),
        "--stock",
        &stock.to_string(),
    ]);
}

/// The frontend directory of the source tree.
pub fn frontend_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/frontend"))
}

/// A shop ready for requests: its own MariaDB with `products` seeded, a
/// minimal directory bucket, `unishop serve` healthy. Dropped server first.
pub struct Shop {
    /// The running server.
    pub served: Served,
    /// The bucket directory.
    pub bucket: tempfile::TempDir,
    /// The database URL (`…/shop`).
    pub db_url: String,
    /// The database server.
    pub db: MariaDb,
}

impl std::ops::Deref for Shop {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
}

/// Starts a [`Shop`] with `products` sample products of `stock` pieces each.
pub fn shop(products: u32, stock: u32) -> Shop {
    let db = mariadb();
    let db_url = db_url(&db, "shop");
    seed(&db_url, products, stock);
    let bucket = minimal_bucket();
    let served = Served::start(&db_url, &format!("file://{}", bucket.path().display()));
    served.wait_health(200, Duration::from_secs(20));
    Shop {
        served,
        bucket,
        db_url,
        db,
    }
}
