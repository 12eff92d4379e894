//! A throw-away S3-compatible server for tests: moto's `moto_server` on a
//! free port of 127.0.0.1, stopped when dropped. `scripts/test` installs it
//! into `.venv-test/` and points `LIFEBOAT_MOTO_SERVER` at it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running S3 test server.
#[derive(Debug)]
pub struct S3Server {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    child: Child,
}

fn moto_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("LIFEBOAT_MOTO_SERVER") {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv-test/bin/moto_server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("moto_server")
}

/// The access key pair the test server accepts (any works).
pub const CREDENTIALS: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "test"),
    ("AWS_SECRET_ACCESS_KEY", "test"),
    ("AWS_DEFAULT_REGION", "us-east-1"),
];

impl S3Server {
    /// Starts a server; panics with a hint when moto is not installed.
    pub fn start() -> S3Server {
        let port = crate::mariadb::free_port();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto_server ({e}): run scripts/test, or pip install 'moto[server]' and set LIFEBOAT_MOTO_SERVER")
            });
        let s = S3Server { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while s.request("GET", "/").is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not come up on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Lifeboat location URL for `bucket/prefix` on this server.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1",
            self.endpoint()
        )
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        let r = self
            .request("PUT", &format!("/{name}"))
            .expect("create bucket");
        assert!(
            r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"),
            "create bucket {name}: {r}"
        );
    }

    /// A raw HTTP request without body; returns the whole response.
    pub fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        self.request_with(method, path, &[], b"")
    }

    /// A raw HTTP request with headers and a body: an outside view of the
    /// store for tests. It carries an `Authorization` header naming the test
    /// key with a dummy signature: moto does not check signatures, but
    /// refuses some reads to anonymous requests. Returns the whole response
    /// (status line, headers, body; bodies read lossily).
    pub fn request_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<String> {
        let raw = self.request_bytes(method, path, headers, body)?;
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }

    /// Like [`S3Server::request_with`], returning the raw response bytes.
    pub fn request_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00\r\n",
            self.port,
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        if raw.is_empty() {
            return Err(std::io::Error::other("empty response"));
        }
        Ok(raw)
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP GET on 127.0.0.1:`port`; returns the body.
pub fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or(out)
}
