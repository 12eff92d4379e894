//! The HTTP side of the S3 client: signing, sending, mapping answers to
//! errors, and the body of a GET.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method, StatusCode};
use percent_encoding::utf8_percent_encode;
use reqsign_aws_v4::Credential;
use reqsign_core::Signer;
use tokio::sync::Semaphore;

use super::KEY_SET;
use crate::error::{BucketError, Result};
use crate::store::{ObjectInfo, ObjectMeta, encode_tags};

pub(super) struct Core {
    pub(super) client: reqwest::Client,
    pub(super) signer: Signer<Credential>,
    pub(super) endpoint: String,
    pub(super) bucket: String,
    pub(super) root: String,
    pub(super) address: String,
    pub(super) budget: Arc<Semaphore>,
}

pub(super) fn xml_field<'a>(body: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = body.find(&open)? + open.len();
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(&body[start..end])
}

pub(super) fn version_token(etag: &str, secs: i64) -> String {
    format!("{etag}@{secs}")
}

pub(super) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

impl Core {
    pub(super) fn err(
        &self,
        op: &'static str,
        key: &str,
        status: Option<StatusCode>,
        message: String,
    ) -> BucketError {
        let retryable = match status {
            None => true,
            Some(s) => {
                s.is_server_error()
                    || s == StatusCode::TOO_MANY_REQUESTS
                    || s == StatusCode::REQUEST_TIMEOUT
            }
        };
        BucketError::Store {
            bucket: self.address.clone(),
            op,
            key: key.to_string(),
            message,
            retryable,
        }
    }

    pub(super) fn changed(&self, key: &str) -> BucketError {
        BucketError::Changed {
            bucket: self.address.clone(),
            key: key.to_string(),
        }
    }

    /// The URL of an object; refuses keys HTTP cannot carry as they are.
    pub(super) fn url(&self, key: &str) -> Result<String> {
        let full = format!("{}{key}", self.root);
        if full.split('/').any(|c| c == "." || c == "..") {
            return Err(BucketError::BadKey {
                bucket: self.address.clone(),
                key: key.to_string(),
                reason: "a '.' or '..' path component is rewritten by HTTP clients and cannot be addressed reliably".into(),
            });
        }
        if key.is_empty() {
            return Err(BucketError::BadKey {
                bucket: self.address.clone(),
                key: key.to_string(),
                reason: "an empty key".into(),
            });
        }
        Ok(format!(
            "{}/{}/{}",
            self.endpoint,
            self.bucket,
            utf8_percent_encode(&full, KEY_SET)
        ))
    }

    pub(super) fn meta_headers(&self, key: &str, meta: &ObjectMeta) -> Result<HeaderMap> {
        let bad = |what: &str| BucketError::BadKey {
            bucket: self.address.clone(),
            key: key.to_string(),
            reason: format!("{what} cannot be sent as an HTTP header"),
        };
        let mut h = HeaderMap::new();
        if let Some(ct) = &meta.content_type {
            h.insert(
                "content-type",
                ct.parse().map_err(|_| bad("the content type"))?,
            );
        }
        for (k, v) in &meta.user {
            let name = http::HeaderName::from_bytes(format!("x-amz-meta-{k}").as_bytes())
                .map_err(|_| bad("a metadata name"))?;
            h.insert(name, v.parse().map_err(|_| bad("a metadata value"))?);
        }
        if !meta.tags.is_empty() {
            h.insert(
                "x-amz-tagging",
                encode_tags(&meta.tags)
                    .parse()
                    .map_err(|_| bad("the tags"))?,
            );
        }
        Ok(h)
    }

    pub(super) fn info_from(&self, key: &str, h: &HeaderMap) -> ObjectInfo {
        let etag = header(h, "etag").unwrap_or_default().to_string();
        let modified = header(h, "last-modified")
            .and_then(|v| chrono::DateTime::parse_from_rfc2822(v).ok())
            .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
            .unwrap_or(0);
        let size = header(h, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        ObjectInfo {
            key: key.to_string(),
            size,
            version: version_token(&etag, modified.div_euclid(1_000_000_000)),
            etag: Some(etag),
            modified_ns: modified,
        }
    }

    /// Signs and sends one request; maps failures to [`BucketError`].
    pub(super) async fn send(
        &self,
        op: &'static str,
        key: &str,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<reqwest::Response> {
        let mut req = http::Request::builder().method(method).uri(url);
        for (k, v) in &headers {
            req = req.header(k, v);
        }
        let len = body.len();
        let (mut parts, body) = req
            .header("content-length", len)
            .body(body)
            .map_err(|e| {
                self.err(
                    op,
                    key,
                    Some(StatusCode::BAD_REQUEST),
                    format!("bad request: {e}"),
                )
            })?
            .into_parts();
        self.signer.sign(&mut parts, None).await.map_err(|e| BucketError::Store {
            bucket: self.address.clone(),
            op,
            key: key.to_string(),
            message: format!("cannot sign the request: {e} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"),
            retryable: false,
        })?;
        parts.headers.remove(http::header::HOST);
        let req =
            reqwest::Request::try_from(http::Request::from_parts(parts, body)).map_err(|e| {
                self.err(
                    op,
                    key,
                    Some(StatusCode::BAD_REQUEST),
                    format!("bad request: {e}"),
                )
            })?;
        let resp = self.client.execute(req).await.map_err(|e| {
            let mut m = format!("{e}");
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                m.push_str(&format!(": {s}"));
                src = s.source();
            }
            if e.is_connect() {
                m.push_str(" (the object store cannot be reached: check the endpoint, the network and that the server runs)");
            }
            self.err(op, key, None, m)
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        if status == StatusCode::NOT_FOUND {
            let text = resp.text().await.unwrap_or_default();
            if text.contains("NoSuchBucket") {
                return Err(BucketError::NoBucket {
                    bucket: self.address.clone(),
                    reason: format!(
                        "the store says NoSuchBucket for {:?}; create it first",
                        self.bucket
                    ),
                });
            }
            return Err(BucketError::NotFound {
                bucket: self.address.clone(),
                key: key.to_string(),
            });
        }
        if status == StatusCode::PRECONDITION_FAILED {
            return Err(self.changed(key));
        }
        let text = resp.text().await.unwrap_or_default();
        let code = xml_field(&text, "Code").unwrap_or("");
        let msg = xml_field(&text, "Message").unwrap_or("");
        let mut m = format!("HTTP {status} {code} {msg}").trim_end().to_string();
        if status == StatusCode::FORBIDDEN {
            m.push_str(" (check the credentials in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket's policy)");
        }
        Err(self.err(op, key, Some(status), m))
    }

    pub(super) async fn body_text(
        &self,
        op: &'static str,
        key: &str,
        resp: reqwest::Response,
    ) -> Result<String> {
        resp.text()
            .await
            .map_err(|e| self.err(op, key, None, format!("reading the answer failed: {e}")))
    }
}

pub(super) type ByteStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The bytes of an object being read from S3.
pub struct S3Body {
    stream: ByteStream,
    size: u64,
    read: u64,
    key: String,
    address: String,
}

impl std::fmt::Debug for S3Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Body")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl S3Body {
    pub(super) fn new(stream: ByteStream, size: u64, key: &str, address: &str) -> S3Body {
        S3Body {
            stream,
            size,
            read: 0,
            key: key.to_string(),
            address: address.to_string(),
        }
    }

    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match self.stream.next().await {
            None => Ok(None),
            Some(Ok(b)) => {
                self.read += b.len() as u64;
                Ok(Some(b))
            }
            Some(Err(e)) => Err(BucketError::Store {
                bucket: self.address.clone(),
                op: "get",
                key: self.key.clone(),
                message: format!("the download broke off: {e}"),
                retryable: true,
            }),
        }
    }

    pub(crate) async fn finish(&mut self) -> Result<()> {
        if self.read != self.size {
            return Err(BucketError::Store {
                bucket: self.address.clone(),
                op: "get",
                key: self.key.clone(),
                message: format!("got {} bytes of {}", self.read, self.size),
                retryable: true,
            });
        }
        Ok(())
    }
}
