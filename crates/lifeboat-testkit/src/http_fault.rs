//! An HTTP proxy in front of the S3 test server that misbehaves on request:
//! it answers `503 SlowDown` (with S3's XML error body) to the first N
//! requests of a method, or to all of them, and it can stop listening after
//! K requests (an outage in the middle of a run: connections are refused).
//!
//! Each client connection carries one request: the proxy reads the request
//! head and its `Content-Length` body, forwards it upstream with
//! `Connection: close`, relays the answer and closes. (The clients under test
//! use keep-alive, and reconnect when the answer says `Connection: close`.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does wrong.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Throttle requests of this method (`PUT`, `GET`…); all methods when `None`.
    pub method: Option<String>,
    /// How many matching requests get `503 SlowDown` before the rest pass;
    /// `usize::MAX` throttles forever.
    pub throttle_first: usize,
    /// After this many forwarded requests the proxy stops listening (clients
    /// see "connection refused") until [`HttpFaultProxy::set_faults`] is
    /// called again.
    pub refuse_after: Option<usize>,
    /// Count only requests whose `METHOD PATH` contains this towards
    /// `refuse_after` (e.g. `PUT /bucket/prefix/packs/`); all when `None`.
    pub count_only: Option<String>,
}

#[derive(Debug, Default)]
struct State {
    faults: Faults,
    /// Matching requests throttled so far.
    throttled: usize,
    /// Requests forwarded since the faults were set.
    forwarded: usize,
}

/// A running fault proxy on `127.0.0.1:port`.
#[derive(Debug)]
pub struct HttpFaultProxy {
    /// The port clients connect to.
    pub port: u16,
    state: Arc<Mutex<State>>,
    listening: Arc<AtomicBool>,
    total_throttled: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const SLOW_DOWN: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>fault-proxy</RequestId></Error>";

/// Reads one request (head and `Content-Length` body); `None` on EOF.
fn read_request(r: &mut BufReader<TcpStream>) -> Option<(String, Vec<String>, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let start = line.trim_end().to_string();
    let mut headers = Vec::new();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end().to_string();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
            if k.eq_ignore_ascii_case("connection") {
                continue;
            }
        }
        headers.push(h);
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).ok()?;
    Some((start, headers, body))
}

fn serve(client: TcpStream, target: u16, state: &Mutex<State>, total_throttled: &AtomicUsize) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut client = client;
    let Some((start, headers, body)) = read_request(&mut reader) else {
        return;
    };
    let method = start.split(' ').next().unwrap_or("").to_string();
    let throttle = {
        let mut s = state.lock().unwrap();
        let matches = s.faults.method.as_deref().is_none_or(|m| m == method);
        if matches && s.throttled < s.faults.throttle_first {
            s.throttled += 1;
            true
        } else {
            if s.faults
                .count_only
                .as_deref()
                .is_none_or(|c| start.contains(c))
            {
                s.forwarded += 1;
            }
            false
        }
    };
    if throttle {
        total_throttled.fetch_add(1, Ordering::Relaxed);
        let _ = write!(
            client,
            "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SLOW_DOWN}",
            SLOW_DOWN.len()
        );
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(mut up) = TcpStream::connect(("127.0.0.1", target)) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let mut head = format!("{start}\r\n");
    for h in headers {
        head.push_str(&h);
        head.push_str("\r\n");
    }
    head.push_str("Connection: close\r\n\r\n");
    if up.write_all(head.as_bytes()).is_err() || up.write_all(&body).is_err() {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let _ = std::io::copy(&mut up, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}

impl HttpFaultProxy {
    /// Starts a proxy to `127.0.0.1:target` that forwards everything.
    pub fn start(target: u16) -> HttpFaultProxy {
        let port = crate::mariadb::free_port();
        let state = Arc::new(Mutex::new(State::default()));
        let listening = Arc::new(AtomicBool::new(true));
        let total_throttled = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, on, tt, quit) = (
            state.clone(),
            listening.clone(),
            total_throttled.clone(),
            stop.clone(),
        );
        let bind = move || {
            for _ in 0..100 {
                if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                    l.set_nonblocking(true).unwrap();
                    return l;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("fault proxy cannot bind port {port}");
        };
        let mut listener = Some(bind());
        let thread = std::thread::spawn(move || {
            while !quit.load(Ordering::Relaxed) {
                let out = {
                    let s = st.lock().unwrap();
                    s.faults.refuse_after.is_some_and(|k| s.forwarded >= k)
                };
                on.store(!out, Ordering::Relaxed);
                if out {
                    listener = None;
                } else if listener.is_none() {
                    listener = Some(bind());
                }
                match listener.as_ref().and_then(|l| l.accept().ok()) {
                    Some((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let (st, tt) = (st.clone(), tt.clone());
                        std::thread::spawn(move || serve(client, target, &st, &tt));
                    }
                    None => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        HttpFaultProxy {
            port,
            state,
            listening,
            total_throttled,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A Lifeboat location URL for `bucket/prefix` through this proxy.
    pub fn url(&self, bucket: &str, prefix: &str) -> String {
        format!(
            "s3://{bucket}/{prefix}?endpoint={}&region=us-east-1",
            self.endpoint()
        )
    }

    /// Replaces the faults (and restarts their counts; a proxy that stopped
    /// listening listens again unless the new faults say otherwise).
    pub fn set_faults(&self, faults: Faults) {
        *self.state.lock().unwrap() = State {
            faults,
            ..State::default()
        };
        std::thread::sleep(Duration::from_millis(30)); // the loop notices within 5 ms
    }

    /// Requests answered with 503 since the proxy started.
    pub fn throttled(&self) -> usize {
        self.total_throttled.load(Ordering::Relaxed)
    }

    /// Requests forwarded since the faults were last set (those matching
    /// `count_only`, when set).
    pub fn forwarded(&self) -> usize {
        self.state.lock().unwrap().forwarded
    }

    /// Whether the proxy listens (false once `refuse_after` requests passed).
    pub fn listening(&self) -> bool {
        self.listening.load(Ordering::Relaxed)
    }
}

impl Drop for HttpFaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
