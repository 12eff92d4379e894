//! Bearer-token authentication.
//!
//! The token is 32 random bytes, hex: created on first start in the state
//! directory (`api-token`, created with mode 0600 and `O_EXCL`; shown once
//! on stderr only when stderr is a terminal, never in a log); a token file
//! readable by group or others is refused. Every
//! route but `/healthz` needs `Authorization: Bearer TOKEN`; the comparison
//! is constant-time (`subtle`); a token in the URL query is never read.

use std::io::{IsTerminal, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState, ServerError};

/// The API token.
#[derive(Clone)]
pub struct Token(Arc<[u8]>);

impl Token {
    /// A token from its text (tests, and a token file written by hand).
    pub fn from_text(t: &str) -> Token {
        Token(t.trim().as_bytes().into())
    }

    /// Whether `given` is the token (constant time for equal lengths).
    pub fn matches(&self, given: &[u8]) -> bool {
        given.ct_eq(&self.0).into()
    }

    /// Reads the token file, or creates it (0600) with a new token, shown
    /// once when stderr is a terminal (the log names only the file).
    pub fn load_or_create(path: &Path) -> Result<Token, ServerError> {
        let err = |what: &str, e: std::io::Error| {
            ServerError::Token(format!(
                "cannot {what} the API token file {}: {e}",
                path.display()
            ))
        };
        match std::fs::metadata(path) {
            Ok(m) => {
                if m.permissions().mode() & 0o077 != 0 {
                    return Err(ServerError::Token(format!(
                        "the API token file {} can be read by others (mode {:o}); run `chmod 600 {}`",
                        path.display(),
                        m.permissions().mode() & 0o777,
                        path.display()
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| err("read", e))?;
                let t = Token::from_text(&text);
                if t.0.len() < 16 {
                    return Err(ServerError::Token(format!(
                        "the API token in {} is shorter than 16 characters; remove the file and restart to get a new one",
                        path.display()
                    )));
                }
                Ok(t)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    use std::os::unix::fs::DirBuilderExt;
                    std::fs::DirBuilder::new()
                        .recursive(true)
                        .mode(0o700)
                        .create(dir)
                        .map_err(|e| err("create the directory of", e))?;
                }
                let mut raw = [0u8; 32];
                getrandom::fill(&mut raw).map_err(|e| {
                    ServerError::Token(format!("no randomness for the API token: {e}"))
                })?;
                let text = hex::encode(raw);
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                    .map_err(|e| err("create", e))?;
                f.write_all(format!("{text}\n").as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err("write", e))?;
                announce(path, &text, std::io::stderr().is_terminal());
                Ok(Token::from_text(&text))
            }
            Err(e) => Err(err("read", e)),
        }
    }
}

/// Says where a new token is kept; shows the token itself only on a
/// terminal (stderr of a service goes to its journal, which others read).
fn announce(path: &Path, token: &str, terminal: bool) {
    if terminal {
        eprintln!(
            "lifeboat: created the API token (shown once, on this terminal only; it is kept in {}):\n{token}",
            path.display()
        );
    } else {
        eprintln!(
            "lifeboat: created the API token in {} (mode 0600; not shown: stderr is not a terminal)",
            path.display()
        );
    }
}

/// Refuses a request without the right bearer token (401).
pub(crate) async fn require_token(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if state.0.token.matches(t.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized(
            "the bearer token is wrong (see the api-token file in the state directory)",
        ),
        None => unauthorized(
            "no bearer token: send `Authorization: Bearer TOKEN` (the token is in the api-token file of the state directory)",
        ),
    }
}

fn unauthorized(m: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, m).into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"lifeboat\""),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_file_is_created_private_and_read_back() {
        let d = std::env::temp_dir().join(format!("lifeboat-token-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let p = d.join("state/api-token");
        let t = Token::load_or_create(&p).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.trim().len(), 64);
        assert!(t.matches(text.trim().as_bytes()));
        assert!(!t.matches(b""));
        assert!(!t.matches(&text.trim().as_bytes()[..63]));
        let again = Token::load_or_create(&p).unwrap();
        assert!(again.matches(text.trim().as_bytes()));
        // Readable by others: refused, with the fix.
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Token::load_or_create(&p).err().unwrap().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
