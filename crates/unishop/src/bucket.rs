//! The shop's object bucket: where the frontend (HTML, CSS, JS, product
//! images) lives, as the seed's frontend lives in S3.
//!
//! A bucket is given by URL:
//! - `file:///abs/dir` (or a bare absolute path): a local directory;
//! - `s3://BUCKET[/PREFIX][?endpoint=URL&region=R]`: a bucket of an
//!   S3-compatible store. Credentials come from the `AWS_*` environment
//!   (or `~/.aws`); the EC2 metadata service is never asked.

use std::path::PathBuf;
use std::time::Duration;

use opendal::{ErrorKind, Operator};

use crate::error::{Error, Result};

/// How long one bucket request may take before it counts as unanswered.
pub const BUCKET_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed bucket URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketUrl {
    /// A local directory.
    Dir(PathBuf),
    /// A bucket (and key prefix) of an S3-compatible store.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket (no leading or trailing slash; may be empty).
        prefix: String,
        /// Endpoint URL; `None` means AWS.
        endpoint: Option<String>,
        /// Region (default `us-east-1`).
        region: String,
    },
}

impl BucketUrl {
    /// Parses `file:///dir`, `/dir` or `s3://BUCKET[/PREFIX][?endpoint=URL&region=R]`.
    pub fn parse(text: &str) -> Result<BucketUrl> {
        let bad = |reason: &str| Error::BadBucketUrl {
            url: text.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = text.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(bad("a file URL needs an absolute path: file:///abs/dir"));
            }
            return Ok(BucketUrl::Dir(rest.into()));
        }
        if text.starts_with('/') {
            return Ok(BucketUrl::Dir(text.into()));
        }
        let Some(rest) = text.strip_prefix("s3://") else {
            return Err(bad(
                "expected file:///abs/dir or s3://BUCKET[/PREFIX][?endpoint=URL&region=R]",
            ));
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        let valid_name = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_name {
            return Err(bad(
                "the bucket name must be 3 to 63 lowercase letters, digits, '-' or '.'",
            ));
        }
        let mut endpoint = None;
        let mut region = "us-east-1".to_string();
        for kv in query.split('&').filter(|s| !s.is_empty()) {
            match kv.split_once('=') {
                Some(("endpoint", v)) if v.starts_with("http://") || v.starts_with("https://") => {
                    endpoint = Some(v.trim_end_matches('/').to_string())
                }
                Some(("endpoint", _)) => return Err(bad("endpoint must be an http(s):// URL")),
                Some(("region", v)) if !v.is_empty() => region = v.to_string(),
                _ => {
                    return Err(bad(&format!(
                        "unknown query parameter {kv:?} (known: endpoint, region)"
                    )));
                }
            }
        }
        Ok(BucketUrl::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
            endpoint,
            region,
        })
    }
}

/// An open bucket.
#[derive(Debug, Clone)]
pub struct Bucket {
    op: Operator,
    url: String,
}

/// The content type a key is served and uploaded with, from its extension.
pub fn content_type(key: &str) -> &'static str {
    let ext = key.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl Bucket {
    /// Opens the bucket at `url` (no request is made yet).
    pub fn open(url: &str) -> Result<Bucket> {
        let parsed = BucketUrl::parse(url)?;
        let op_err = |e: opendal::Error| Error::Bucket {
            url: url.to_string(),
            action: "open".into(),
            source: Box::new(e),
        };
        let op = match &parsed {
            BucketUrl::Dir(root) => {
                Operator::new(opendal::services::Fs::default().root(&root.to_string_lossy()))
                    .map_err(op_err)?
            }
            BucketUrl::S3 {
                bucket,
                prefix,
                endpoint,
                region,
            } => {
                opendal::install_default(); // the HTTP transport (idempotent)
                let mut b = opendal::services::S3::default()
                    .bucket(bucket)
                    .root(&format!("/{prefix}"))
                    .region(region)
                    .disable_ec2_metadata();
                if let Some(e) = endpoint {
                    b = b.endpoint(e);
                }
                Operator::new(b).map_err(op_err)?
            }
        };
        Ok(Bucket {
            op,
            url: url.to_string(),
        })
    }

    /// The URL the bucket was opened with, for messages.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self, action: &str, key: &str, e: opendal::Error) -> Error {
        if e.kind() == ErrorKind::NotFound {
            return Error::NotInBucket {
                url: self.url.clone(),
                key: key.to_string(),
            };
        }
        Error::Bucket {
            url: self.url.clone(),
            action: format!("{action} {key}"),
            source: Box::new(e),
        }
    }

    fn timeout(&self, action: &str, key: &str) -> Error {
        Error::BucketTimeout {
            url: self.url.clone(),
            action: format!("{action} {key}"),
            after: BUCKET_TIMEOUT,
        }
    }

    /// Reads a whole object. A missing key is [`Error::NotInBucket`].
    pub async fn read(&self, key: &str) -> Result<Vec<u8>> {
        match tokio::time::timeout(BUCKET_TIMEOUT, self.op.read(key)).await {
            Ok(Ok(buf)) => Ok(buf.to_vec()),
            Ok(Err(e)) => Err(self.err("read", key, e)),
            Err(_) => Err(self.timeout("read", key)),
        }
    }

    /// Checks that a key exists (a cheap request that proves the bucket answers).
    pub async fn exists(&self, key: &str) -> Result<()> {
        match tokio::time::timeout(BUCKET_TIMEOUT, self.op.stat(key)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.err("stat", key, e)),
            Err(_) => Err(self.timeout("stat", key)),
        }
    }

    /// Writes a whole object with the content type of its extension.
    pub async fn write(&self, key: &str, data: Vec<u8>) -> Result<()> {
        let fut = self
            .op
            .write_with(key, data)
            .content_type(content_type(key));
        match tokio::time::timeout(BUCKET_TIMEOUT, fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.err("write", key, e)),
            Err(_) => Err(self.timeout("write", key)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_url_forms() {
        assert_eq!(
            BucketUrl::parse("file:///srv/shop").unwrap(),
            BucketUrl::Dir("/srv/shop".into())
        );
        assert_eq!(
            BucketUrl::parse("/srv/shop").unwrap(),
            BucketUrl::Dir("/srv/shop".into())
        );
        assert_eq!(
            BucketUrl::parse(
                "s3://unishop-frontend/site/v1/?endpoint=http://127.0.0.1:9000/&region=eu-west-1"
            )
            .unwrap(),
            BucketUrl::S3 {
                bucket: "unishop-frontend".into(),
                prefix: "site/v1".into(),
                endpoint: Some("http://127.0.0.1:9000".into()),
                region: "eu-west-1".into(),
            }
        );
        assert_eq!(
            BucketUrl::parse("s3://shop").unwrap(),
            BucketUrl::S3 {
                bucket: "shop".into(),
                prefix: String::new(),
                endpoint: None,
                region: "us-east-1".into(),
            }
        );
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        for (url, hint) in [
            ("file://relative/dir", "absolute"),
            ("relative/dir", "expected"),
            ("http://host/bucket", "expected"),
            ("s3://ab", "bucket name"),
            ("s3://Upper-Case", "bucket name"),
            ("s3://shop?endpoint=127.0.0.1:9000", "http"),
            ("s3://shop?foo=bar", "unknown query parameter"),
        ] {
            let e = BucketUrl::parse(url).unwrap_err().to_string();
            assert!(e.contains(hint), "{url}: {e}");
        }
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("vendor/bootstrap.min.css"),
            "text/css; charset=utf-8"
        );
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("images/mug.SVG"), "image/svg+xml");
        assert_eq!(content_type("README"), "application/octet-stream");
    }
}
