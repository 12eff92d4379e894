//! A TCP proxy that can be switched off and on, to make a server (e.g. the
//! S3 test server standing for a remote site) really disappear and come back
//! without losing its state: while off, its port refuses connections and
//! every open connection is cut.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running proxy from `127.0.0.1:port` to a target port.
#[derive(Debug)]
pub struct TcpProxy {
    /// The port clients connect to.
    pub port: u16,
    enabled: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

impl TcpProxy {
    /// Starts forwarding a free port to `127.0.0.1:target`.
    pub fn start(target: u16) -> TcpProxy {
        let port = crate::mariadb::free_port();
        let enabled = Arc::new(AtomicBool::new(true));
        let stop = Arc::new(AtomicBool::new(false));
        let (en, st) = (enabled.clone(), stop.clone());
        let bind = move || {
            for _ in 0..100 {
                if let Ok(l) = TcpListener::bind(("127.0.0.1", port)) {
                    l.set_nonblocking(true).unwrap();
                    return l;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            panic!("proxy cannot bind port {port}");
        };
        let mut listener = Some(bind());
        let thread = std::thread::spawn(move || {
            let open: Mutex<Vec<TcpStream>> = Mutex::new(Vec::new());
            while !st.load(Ordering::Relaxed) {
                if en.load(Ordering::Relaxed) {
                    if listener.is_none() {
                        listener = Some(bind());
                    }
                } else if listener.is_some() {
                    listener = None;
                    for s in open.lock().unwrap().drain(..) {
                        let _ = s.shutdown(Shutdown::Both);
                    }
                }
                let accepted = listener.as_ref().and_then(|l| l.accept().ok());
                match accepted {
                    Some((client, _)) => {
                        let _ = client.set_nonblocking(false);
                        let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                            continue;
                        };
                        let mut o = open.lock().unwrap();
                        o.retain(|s| s.peer_addr().is_ok());
                        o.push(client.try_clone().unwrap());
                        o.push(server.try_clone().unwrap());
                        let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                        std::thread::spawn(move || pipe(client, server));
                        std::thread::spawn(move || pipe(s2, c2));
                    }
                    None => std::thread::sleep(Duration::from_millis(10)),
                }
            }
            for s in open.lock().unwrap().drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        });
        TcpProxy {
            port,
            enabled,
            stop,
            thread: Some(thread),
        }
    }

    /// Switches forwarding on (`true`) or off (`false`: refuse and cut).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        std::thread::sleep(Duration::from_millis(50)); // the loop notices within 10 ms
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
