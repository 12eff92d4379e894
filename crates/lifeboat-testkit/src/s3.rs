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

/// Run before moto's server when IAM is to be enforced, so that it judges
/// requests as AWS does. moto checks an S3 request's signature by signing it
/// again with botocore, which differs from AWS in two ways that make every
/// request OpenDAL and reqsign sign fail:
/// - over plain HTTP it always hashes the body, so a request signed with
///   `x-amz-content-sha256: UNSIGNED-PAYLOAD` (valid on AWS) never matches;
///   the client's declared `UNSIGNED-PAYLOAD` is kept, as AWS does;
/// - it takes the query string as sent, while SigV4 (and AWS) URI-encode each
///   name and value (`prefix=a/b/` is signed as `prefix=a%2Fb%2F`); each is
///   encoded as the specification says.
///
/// And from moto 5.2.6 on, it checks a policy against the API operation's
/// name (`s3:ListObjectsV2`, `s3:HeadObject`), which no AWS policy names,
/// instead of the IAM action AWS requires for it (`s3:ListBucket`,
/// `s3:GetObject`): a read-only policy as AWS documents it lets nothing be
/// listed. moto still works out the IAM action of every S3 request (its
/// `ACTION_MAP`, kept in the request's `Action`); that action is checked.
///
/// Everything else (keys, secrets, policies) is moto's own check.
const KEEP_UNSIGNED_PAYLOAD: &str = r#"
import sys
from moto.iam.access_control import S3IAMRequest
_init = S3IAMRequest.__init__
def _iam_action(self, *args, **kwargs):
    data = kwargs.get('data')
    action = data.get('Action') if isinstance(data, dict) else None
    if isinstance(action, list):
        action = action[0]
    if action:
        kwargs['action'] = action
    _init(self, *args, **kwargs)
S3IAMRequest.__init__ = _iam_action
from urllib.parse import quote, unquote
from botocore.auth import S3SigV4Auth, SigV4Auth
def _query(self, parts):
    pairs = []
    for pair in filter(None, parts.query.split('&')):
        k, _, v = pair.partition('=')
        pairs.append((quote(unquote(k), safe='-_.~'), quote(unquote(v), safe='-_.~')))
    return '&'.join(f'{k}={v}' for k, v in sorted(pairs))
SigV4Auth._canonical_query_string_url = _query
_orig = S3SigV4Auth._modify_request_before_signing
def _keep_unsigned(self, request):
    unsigned = request.headers.get('X-Amz-Content-SHA256') == 'UNSIGNED-PAYLOAD'
    _orig(self, request)
    if unsigned:
        del request.headers['X-Amz-Content-SHA256']
        request.headers['X-Amz-Content-SHA256'] = 'UNSIGNED-PAYLOAD'
S3SigV4Auth._modify_request_before_signing = _keep_unsigned
from moto.server import main
sys.argv[0] = 'moto_server'
sys.exit(main())
"#;

impl S3Server {
    /// Starts a server; panics with a hint when moto is not installed.
    pub fn start() -> S3Server {
        Self::spawn(|| Command::new(moto_binary()))
    }

    /// Starts a server that can enforce IAM ([`S3Server::enforce_iam`]):
    /// moto run by its own Python with [`KEEP_UNSIGNED_PAYLOAD`] applied.
    pub fn start_with_iam() -> S3Server {
        let moto = moto_binary();
        let script = std::fs::read_to_string(&moto)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", moto.display()));
        let python = script
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("#!"))
            .map(str::trim)
            .unwrap_or_else(|| panic!("{} is not a Python script", moto.display()))
            .to_string();
        Self::spawn(|| {
            let mut c = Command::new(&python);
            c.args(["-c", KEEP_UNSIGNED_PAYLOAD]);
            c
        })
    }

    /// Starts `make()`'s server on a free port and waits until it answers.
    /// A server that exits at once (its port taken by another process
    /// between the choice and its bind) is started again on another port.
    fn spawn(make: impl Fn() -> Command) -> S3Server {
        let mut exits = Vec::new();
        while exits.len() < 3 {
            let port = crate::mariadb::free_port();
            let mut cmd = make();
            let child = cmd
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start moto_server ({e}): run scripts/test-tools (the pinned moto in .venv-test), or set LIFEBOAT_MOTO_SERVER")
                });
            let mut s = S3Server { port, child };
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if s.request("GET", "/").is_ok() {
                    return s;
                }
                if let Ok(Some(status)) = s.child.try_wait() {
                    exits.push(format!("port {port}: {status}"));
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "moto_server did not come up on port {port}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!(
            "moto_server exited at start three times: {}",
            exits.join("; ")
        )
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

    /// Creates an IAM user with an inline policy (a JSON policy document)
    /// and returns its access key id and secret. Call before
    /// [`S3Server::enforce_iam`]: moto answers IAM calls unsigned until then.
    pub fn iam_user(&self, name: &str, policy: &str) -> (String, String) {
        let iam = |form: &str| {
            let r = self.iam_request(form).expect("IAM request");
            assert!(
                r.starts_with("HTTP/1.1 200") || r.starts_with("HTTP/1.0 200"),
                "IAM {form}: {r}"
            );
            r
        };
        iam(&format!(
            "Action=CreateUser&UserName={name}&Version=2010-05-08"
        ));
        iam(&format!(
            "Action=PutUserPolicy&UserName={name}&PolicyName={name}-policy&PolicyDocument={}&Version=2010-05-08",
            form_escape(policy)
        ));
        let r = iam(&format!(
            "Action=CreateAccessKey&UserName={name}&Version=2010-05-08"
        ));
        let field = |tag: &str| {
            let open = format!("<{tag}>");
            let start = r.find(&open).unwrap_or_else(|| panic!("no {tag} in {r}")) + open.len();
            let end = start + r[start..].find('<').expect("closing tag");
            r[start..end].to_string()
        };
        (field("AccessKeyId"), field("SecretAccessKey"))
    }

    /// From now on the server checks every request's signature and the
    /// signer's IAM policies (moto's `reset-auth`): unknown keys, wrong
    /// secrets and actions no policy allows are refused, as on AWS.
    pub fn enforce_iam(&self) {
        let r = self
            .request_with(
                "POST",
                "/moto-api/reset-auth",
                &[("Content-Type", "text/plain")],
                b"0",
            )
            .expect("reset-auth");
        assert!(r.contains("\"ok\""), "reset-auth: {r}");
    }

    fn iam_request(&self, form: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Content-Length: {}\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00\r\n\r\n{form}",
            self.port,
            form.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
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

/// `application/x-www-form-urlencoded` escaping.
fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
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
