//! A `lifeboat serve` seen from outside: started in the background on a
//! free port, and its `/metrics` read with the API token, waiting until it
//! answers.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::Cli;
use crate::mariadb::free_port;
use crate::procs::Bg;
use crate::wait::wait_until;

/// A `lifeboat serve` running in the background (killed on drop).
pub struct Serve {
    /// Its process.
    pub bg: Bg,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
}

impl Serve {
    /// `serve` of `c` on a free port of 127.0.0.1, its output dropped.
    pub fn start(c: &Cli) -> Serve {
        let port = free_port();
        let bg = Bg(c
            .command(&["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap());
        Serve { bg, port }
    }

    /// `GET /metrics` with the token in `token_file` (the state directory's
    /// `api-token`), once the server answers it (at most 60 s).
    pub fn metrics(&self, token_file: &Path) -> String {
        let port = self.port;
        wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
            if let (Ok(mut s), Ok(token)) = (
                std::net::TcpStream::connect(("127.0.0.1", port)),
                std::fs::read_to_string(token_file),
            ) {
                write!(
                    s,
                    "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
                    token.trim()
                )
                .unwrap();
                let mut out = String::new();
                s.read_to_string(&mut out).unwrap();
                if out.starts_with("HTTP/1.1 200") {
                    return Ok(out);
                }
            }
            Err(format!("no /metrics on port {port}"))
        })
    }
}
