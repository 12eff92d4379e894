//! `[server]`: where `lifeboat serve` serves the REST API and `/metrics`.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:7460"          # default; `lifeboat serve --listen` overrides
//! tls_cert = "/etc/lifeboat/api.crt" # with tls_key: HTTPS (rustls)
//! tls_key = "/etc/lifeboat/api.key"
//! token_file = "/etc/lifeboat/api-token"  # default: api-token in the state directory
//! restore_roots = ["/srv/restores"]  # where the API may restore; default: STATE/restores and the sites' roots
//! ```

use std::path::PathBuf;

use crate::diag::Sink;
use crate::load::Draft;
use crate::model::ServerSpec;
use crate::read::Table;

/// Reads an absolute path key.
fn abs_path(sink: &mut Sink<'_>, t: Table<'_, '_>, key: &str) -> Option<PathBuf> {
    let (s, span) = sink.string(t, key)?;
    if !s.starts_with('/') {
        sink.error(
            &span,
            &t.key(key),
            format!("`{s}` is not an absolute path"),
            Some("write the file's path from `/`".into()),
        );
    }
    Some(PathBuf::from(s))
}

pub(crate) fn load_server(sink: &mut Sink<'_>, t: Table<'_, '_>, d: &mut Draft) {
    sink.unknown_keys(
        t,
        "the server",
        &[
            "listen",
            "tls_cert",
            "tls_key",
            "token_file",
            "restore_roots",
        ],
    );
    let mut spec = ServerSpec::default();
    if let Some((l, span)) = sink.string(t, "listen") {
        match l.parse() {
            Ok(a) => spec.listen = a,
            Err(_) => sink.error(
                &span,
                &t.key("listen"),
                format!("`{l}` is not an address and port"),
                Some(format!(
                    "write an IP address and a port, e.g. `listen = \"{}\"` (or `[::1]:7460`)",
                    ServerSpec::DEFAULT_LISTEN
                )),
            ),
        }
    }
    spec.tls_cert = abs_path(sink, t, "tls_cert");
    spec.tls_key = abs_path(sink, t, "tls_key");
    spec.token_file = abs_path(sink, t, "token_file");
    if let Some(roots) = sink.strings(t, "restore_roots") {
        let mut ok = Vec::new();
        for (r, span) in roots {
            if !r.starts_with('/') || r.split('/').any(|c| c == "..") {
                sink.error(
                    &span,
                    &t.key("restore_roots"),
                    format!("`{r}` is not an absolute path without `..`"),
                    Some("write each directory the API may restore into from `/`, e.g. `restore_roots = [\"/srv/restores\"]`".into()),
                );
            } else if r.trim_end_matches('/').is_empty() {
                sink.error(
                    &span,
                    &t.key("restore_roots"),
                    "`/` as a restore root lets the API write over the whole system".to_string(),
                    Some("name the directories restores may go to, e.g. `restore_roots = [\"/srv/restores\"]`".into()),
                );
            } else {
                ok.push(PathBuf::from(r));
            }
        }
        spec.restore_roots = Some(ok);
    }
    match (&spec.tls_cert, &spec.tls_key) {
        (Some(_), None) => sink.missing(
            t,
            "tls_key",
            "the server's TLS",
            "add `tls_key = \"/path/to/key.pem\"` (the private key of tls_cert), or remove tls_cert",
        ),
        (None, Some(_)) => sink.missing(
            t,
            "tls_cert",
            "the server's TLS",
            "add `tls_cert = \"/path/to/cert.pem\"` (the certificate of tls_key), or remove tls_key",
        ),
        _ => {}
    }
    d.server = spec;
}
