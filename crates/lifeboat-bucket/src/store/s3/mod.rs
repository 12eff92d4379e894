//! S3 buckets: a small S3 client on signed HTTP requests.
//!
//! Requests are signed with SigV4 by `reqsign` (the signer OpenDAL uses) and
//! sent with `reqwest`, path-style (`ENDPOINT/BUCKET/KEY`). Credentials come
//! from the environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`, `AWS_PROFILE` and `~/.aws/`); the EC2 metadata
//! service is never asked.
//!
//! Why not OpenDAL's S3 service (the vault's storage): it normalizes paths,
//! so keys like `a//b`, `/x` or ` x` would silently be read and written as
//! other objects and a folder marker `dir/` is not an object at all; it has
//! no object tags and cannot send `x-amz-tagging`; and its reader does not
//! return the GET's headers, which would cost a HEAD per copied object.
//!
//! - read: one GET with `If-Match` (the version listed), giving bytes, content
//!   type, user metadata and the tag count (tags: GET `?tagging` when non-zero);
//! - write: one PUT up to the part size; else a multipart upload, parts sent
//!   concurrently within a shared memory budget, completed only after the
//!   source confirms it delivered one complete version, aborted otherwise.
//!   Content type, user metadata and tags go with the PUT / the upload's start.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqsign_aws_v4::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, OsEnv, Signer};
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::{ObjectInfo, ObjectMeta, Source};

mod admin;
mod core;
pub use self::core::S3Body;
use self::core::{Core, header, version_token, xml_field};
use crate::error::{BucketError, Result};

pub(super) const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Smallest multipart part (S3's minimum is 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// Memory for parts in flight, per bucket, in MiB.
const PART_BUDGET_MIB: usize = 64;
const PARTS_IN_FLIGHT: usize = 4;

/// An S3 bucket (and key prefix).
#[derive(Clone)]
pub struct S3Bucket {
    core: Arc<Core>,
}

impl std::fmt::Debug for S3Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Bucket")
            .field("address", &self.core.address)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListResult {
    is_truncated: Option<bool>,
    next_continuation_token: Option<String>,
    #[serde(default)]
    contents: Vec<ListEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListEntry {
    key: String,
    last_modified: String,
    #[serde(rename = "ETag")]
    etag: Option<String>,
    size: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tagging {
    tag_set: TagSet,
}

#[derive(Deserialize, Default)]
struct TagSet {
    #[serde(rename = "Tag", default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InitiateResult {
    upload_id: String,
}

impl S3Bucket {
    /// Prepares a client for `bucket` (nothing is sent yet).
    /// With `keys` (access key id, secret, session token), those are used;
    /// otherwise the environment's.
    pub fn open(
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        region: &str,
        address: &str,
        keys: Option<(&str, &str, Option<&str>)>,
    ) -> Result<S3Bucket> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| BucketError::BadAddress {
                address: address.to_string(),
                reason: format!("cannot set up an HTTP client: {e}"),
            })?;
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(OsEnv);
        let signer = match keys {
            Some((id, secret, token)) => {
                let mut p = StaticCredentialProvider::new(id, secret);
                if let Some(t) = token {
                    p = p.with_session_token(t);
                }
                Signer::new(ctx, p, RequestSigner::new("s3", region))
            }
            None => Signer::new(
                ctx,
                DefaultCredentialProvider::builder().no_imds().build(),
                RequestSigner::new("s3", region),
            ),
        };
        let endpoint = endpoint
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let root = if prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", prefix.trim_matches('/'))
        };
        Ok(S3Bucket {
            core: Arc::new(Core {
                client,
                signer,
                endpoint,
                bucket: bucket.to_string(),
                root,
                address: address.to_string(),
                budget: Arc::new(Semaphore::new(PART_BUDGET_MIB)),
            }),
        })
    }

    /// Lists objects below `prefix`, in key order.
    pub async fn list(
        &self,
        prefix: &str,
        each: &mut (dyn FnMut(ObjectInfo) + Send),
    ) -> Result<()> {
        let c = &self.core;
        let full = format!("{}{prefix}", c.root);
        let mut token: Option<String> = None;
        loop {
            let mut q = format!(
                "list-type=2&prefix={}",
                utf8_percent_encode(&full, QUERY_SET)
            );
            if let Some(t) = &token {
                q.push_str(&format!(
                    "&continuation-token={}",
                    utf8_percent_encode(t, QUERY_SET)
                ));
            }
            let url = format!("{}/{}?{q}", c.endpoint, c.bucket);
            let resp = c
                .send(
                    "list",
                    prefix,
                    Method::GET,
                    &url,
                    HeaderMap::new(),
                    Bytes::new(),
                )
                .await?;
            let body = c.body_text("list", prefix, resp).await?;
            let r: ListResult = quick_xml::de::from_str(&body)
                .map_err(|e| c.err("list", prefix, None, format!("unreadable listing: {e}")))?;
            for e in r.contents {
                let Some(key) = e.key.strip_prefix(&c.root) else {
                    continue;
                };
                let modified = chrono::DateTime::parse_from_rfc3339(&e.last_modified)
                    .map(|t| t.timestamp_nanos_opt().unwrap_or(0))
                    .unwrap_or(0);
                let etag = e.etag.unwrap_or_default();
                each(ObjectInfo {
                    key: key.to_string(),
                    size: e.size,
                    version: version_token(&etag, modified.div_euclid(1_000_000_000)),
                    etag: Some(etag),
                    modified_ns: modified,
                });
            }
            match (r.is_truncated, r.next_continuation_token) {
                (Some(true), Some(t)) => token = Some(t),
                _ => return Ok(()),
            }
        }
    }

    /// HEAD of one object.
    pub async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        let c = &self.core;
        let url = c.url(key)?;
        let resp = match c
            .send(
                "head",
                key,
                Method::HEAD,
                &url,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
        {
            Ok(r) => r,
            Err(BucketError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(c.info_from(key, resp.headers())))
    }

    /// GET of one object (the version `expect`, when given).
    pub async fn open_read(
        &self,
        key: &str,
        expect: Option<&str>,
    ) -> Result<(ObjectInfo, ObjectMeta, S3Body)> {
        let c = &self.core;
        let url = c.url(key)?;
        let mut h = HeaderMap::new();
        if let Some(v) = expect {
            let etag = v.rsplit_once('@').map(|x| x.0).unwrap_or(v);
            if !etag.is_empty() {
                h.insert("if-match", etag.parse().map_err(|_| c.changed(key))?);
            }
        }
        let resp = c
            .send("get", key, Method::GET, &url, h, Bytes::new())
            .await?;
        let headers = resp.headers().clone();
        let info = c.info_from(key, &headers);
        if expect.is_some_and(|v| v != info.version) {
            return Err(c.changed(key));
        }
        let mut meta = ObjectMeta {
            content_type: header(&headers, "content-type").map(str::to_string),
            modified_ns: Some(info.modified_ns),
            ..ObjectMeta::default()
        };
        for (name, value) in &headers {
            if let Some(k) = name.as_str().strip_prefix("x-amz-meta-") {
                meta.user.insert(
                    k.to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                );
            }
        }
        let tag_count: u64 = header(&headers, "x-amz-tagging-count")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let body = S3Body::new(Box::pin(resp.bytes_stream()), info.size, key, &c.address);
        if tag_count > 0 {
            meta.tags = self.get_tags(key).await?;
        }
        Ok((info, meta, body))
    }

    /// The object's tags.
    pub async fn get_tags(&self, key: &str) -> Result<BTreeMap<String, String>> {
        let c = &self.core;
        let url = format!("{}?tagging", c.url(key)?);
        let resp = c
            .send(
                "tagging",
                key,
                Method::GET,
                &url,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await?;
        let body = c.body_text("tagging", key, resp).await?;
        let t: Tagging = quick_xml::de::from_str(&body)
            .map_err(|e| c.err("tagging", key, None, format!("unreadable tag set: {e}")))?;
        Ok(t.tag_set
            .tags
            .into_iter()
            .map(|t| (t.key, t.value))
            .collect())
    }

    /// Writes an object: one PUT, or a multipart upload for large ones.
    pub async fn put<S: Source>(
        &self,
        key: &str,
        meta: &ObjectMeta,
        src: &mut S,
    ) -> Result<ObjectInfo> {
        let c = &self.core;
        let url = c.url(key)?;
        let headers = c.meta_headers(key, meta)?;
        let part = part_size(src.size_hint());
        let first = read_part(src, part).await?;
        if first.len() < part {
            src.finish().await?;
            let mut h = headers;
            h.insert(
                "content-md5",
                md5_b64(&first).parse().expect("base64 is a header value"),
            );
            let size = first.len() as u64;
            let resp = c.send("put", key, Method::PUT, &url, h, first).await?;
            let etag = header(resp.headers(), "etag")
                .unwrap_or_default()
                .to_string();
            return Ok(put_info(key, size, etag));
        }
        // Multipart.
        let start = format!("{url}?uploads");
        let resp = c
            .send("put", key, Method::POST, &start, headers, Bytes::new())
            .await?;
        let body = c.body_text("put", key, resp).await?;
        let init: InitiateResult = quick_xml::de::from_str(&body).map_err(|e| {
            c.err(
                "put",
                key,
                None,
                format!("unreadable CreateMultipartUpload answer: {e}"),
            )
        })?;
        let upload = init.upload_id;
        let r = self
            .upload_parts(key, &url, &upload, first, part, src)
            .await;
        match r {
            Ok(info) => Ok(info),
            Err(e) => {
                let abort = format!("{url}?uploadId={}", utf8_percent_encode(&upload, QUERY_SET));
                if let Err(a) = c
                    .send(
                        "put",
                        key,
                        Method::DELETE,
                        &abort,
                        HeaderMap::new(),
                        Bytes::new(),
                    )
                    .await
                {
                    tracing::debug!(
                        "abort of multipart upload {upload} failed (the store's lifecycle rules remove it): {a}"
                    );
                }
                Err(e)
            }
        }
    }

    async fn upload_parts<S: Source>(
        &self,
        key: &str,
        url: &str,
        upload: &str,
        first: Bytes,
        part: usize,
        src: &mut S,
    ) -> Result<ObjectInfo> {
        let c = &self.core;
        let upload_q = utf8_percent_encode(upload, QUERY_SET).to_string();
        let mut tasks: tokio::task::JoinSet<Result<(usize, String)>> = tokio::task::JoinSet::new();
        let mut etags: Vec<(usize, String)> = Vec::new();
        let mut next = Some(first);
        let mut number = 0usize;
        let mut size = 0u64;
        while let Some(data) = next.take() {
            if data.is_empty() {
                break;
            }
            number += 1;
            size += data.len() as u64;
            let mib = data.len().div_ceil(1024 * 1024).min(PART_BUDGET_MIB) as u32;
            let permit = c
                .budget
                .clone()
                .acquire_many_owned(mib)
                .await
                .expect("the budget semaphore is never closed");
            while tasks.len() >= PARTS_IN_FLIGHT {
                etags.push(
                    tasks
                        .join_next()
                        .await
                        .expect("tasks")
                        .expect("part task")?,
                );
            }
            let core = self.core.clone();
            let part_url = format!("{url}?partNumber={number}&uploadId={upload_q}");
            let k = key.to_string();
            tasks.spawn(async move {
                let _permit = permit;
                let mut h = HeaderMap::new();
                h.insert("content-md5", md5_b64(&data).parse().expect("header"));
                let resp = core
                    .send("put", &k, Method::PUT, &part_url, h, data)
                    .await?;
                let etag = header(resp.headers(), "etag")
                    .unwrap_or_default()
                    .to_string();
                Ok((number, etag))
            });
            let more = read_part(src, part).await?;
            if !more.is_empty() {
                next = Some(more);
            }
        }
        while let Some(r) = tasks.join_next().await {
            etags.push(r.expect("part task")?);
        }
        src.finish().await?;
        etags.sort();
        let mut xml = String::from("<CompleteMultipartUpload>");
        for (n, e) in &etags {
            xml.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{e}</ETag></Part>"
            ));
        }
        xml.push_str("</CompleteMultipartUpload>");
        let done = format!("{url}?uploadId={upload_q}");
        let resp = c
            .send(
                "put",
                key,
                Method::POST,
                &done,
                HeaderMap::new(),
                Bytes::from(xml),
            )
            .await?;
        let body = c.body_text("put", key, resp).await?;
        if body.contains("<Error>") {
            let msg = xml_field(&body, "Message").unwrap_or(&body).to_string();
            return Err(c.err(
                "put",
                key,
                None,
                format!("CompleteMultipartUpload failed: {msg}"),
            ));
        }
        let etag = xml_field(&body, "ETag")
            .unwrap_or_default()
            .replace("&quot;", "\"");
        Ok(put_info(key, size, etag))
    }

    /// Deletes an object.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let c = &self.core;
        let url = c.url(key)?;
        match c
            .send(
                "delete",
                key,
                Method::DELETE,
                &url,
                HeaderMap::new(),
                Bytes::new(),
            )
            .await
        {
            Ok(_) | Err(BucketError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

fn put_info(key: &str, size: u64, etag: String) -> ObjectInfo {
    ObjectInfo {
        key: key.to_string(),
        size,
        version: etag.clone(),
        etag: Some(etag),
        modified_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
    }
}

fn md5_b64(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// Part size for an object of `size` bytes: 8 MiB, larger when 9 000 parts
/// would not hold it (S3 allows 10 000).
fn part_size(size: Option<u64>) -> usize {
    let need = size.unwrap_or(0).div_ceil(9000) as usize;
    need.max(PART_SIZE).next_multiple_of(1024 * 1024)
}

async fn read_part<S: Source>(src: &mut S, part: usize) -> Result<Bytes> {
    let mut buf: Option<BytesMut> = None;
    let mut single: Option<Bytes> = None;
    while buf.as_ref().map_or(0, |b| b.len()) + single.as_ref().map_or(0, |b| b.len()) < part {
        let Some(chunk) = src.next_chunk().await? else {
            break;
        };
        match (&mut buf, single.take()) {
            (None, None) => single = Some(chunk),
            (None, Some(s)) => {
                let mut b = BytesMut::with_capacity(part.max(s.len() + chunk.len()));
                b.extend_from_slice(&s);
                b.extend_from_slice(&chunk);
                buf = Some(b);
            }
            (Some(b), _) => b.extend_from_slice(&chunk),
        }
    }
    // A chunk may overshoot the part size; S3 only needs parts ≥ 5 MiB.
    Ok(match (buf, single) {
        (Some(b), _) => b.freeze(),
        (None, Some(s)) => s,
        (None, None) => Bytes::new(),
    })
}
