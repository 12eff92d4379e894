//! Bucket access: one small interface over directory buckets and S3 buckets.
//!
//! | operation | directory bucket (`file:///dir`) | S3 bucket (`s3://B[/P]?endpoint=…`) |
//! |---|---|---|
//! | list | sorted walk; key = relative path | ListObjectsV2, paged |
//! | stat | `lstat` | HEAD |
//! | read | file descriptor, checked unchanged (size, mtime, ctime) after the last byte | GET with `If-Match: <etag>` |
//! | write | temp file under `.lifeboat-tmp/`, xattrs, then `rename` | PUT, or multipart for large objects, tags in `x-amz-tagging` |
//! | delete | unlink (and empty parent directories) | DELETE |
//!
//! A write is committed (rename; CompleteMultipartUpload) only after the
//! [`Source`] it copies from confirms that what it delivered is one complete
//! version ([`Source::finish`]); otherwise it is aborted and nothing is
//! visible. Every object carries a **version token** ([`ObjectInfo::version`])
//! that changes whenever its content or metadata change: the ETag and
//! last-modified second on S3, the inode, ctime and size on a directory.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use lifeboat_vault::Location;

use crate::error::{BucketError, Result};

mod beneath;
pub mod dir;
pub mod s3;

/// One object as listed or stat'ed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Key relative to the bucket's root (address prefix).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// ETag (S3 only), with its quotes.
    pub etag: Option<String>,
    /// Last modification, ns since the epoch (S3: as precise as the store says).
    pub modified_ns: i64,
    /// Change token: differs whenever content or metadata differ.
    pub version: String,
}

/// What travels with an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Content type (`Content-Type`), when set.
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*`), keys in lower case.
    pub user: BTreeMap<String, String>,
    /// Object tags.
    pub tags: BTreeMap<String, String>,
    /// Last modification of the source, ns (directory buckets keep it as mtime).
    pub modified_ns: Option<i64>,
}

/// A stream of an object's bytes that can tell, at the end, whether what it
/// delivered is one complete version.
pub trait Source: Send {
    /// The next chunk, or `None` at the end.
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>>> + Send;
    /// Called after the last chunk, before the write is committed: an error
    /// (e.g. [`BucketError::Changed`]) aborts the write.
    fn finish(&mut self) -> impl Future<Output = Result<()>> + Send;
    /// Total size, when known in advance.
    fn size_hint(&self) -> Option<u64>;
    /// A local file holding exactly the bytes this source would deliver, when
    /// nothing was delivered yet: a directory bucket then copies it in the
    /// kernel (`copy_file_range`) and reports the bytes with [`Source::advance`].
    fn local_file(&self) -> Option<Arc<std::fs::File>> {
        None
    }
    /// Counts `n` bytes as delivered by other means than [`Source::next_chunk`].
    fn advance(&mut self, _n: u64) {}
}

/// Bytes in memory as a [`Source`] (tests, small objects).
#[derive(Debug)]
pub struct BytesSource(pub Option<Bytes>);

impl Source for BytesSource {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        Ok(self.0.take())
    }
    async fn finish(&mut self) -> Result<()> {
        Ok(())
    }
    fn size_hint(&self) -> Option<u64> {
        self.0.as_ref().map(|b| b.len() as u64)
    }
}

/// An open object: its facts, its metadata and its bytes.
pub struct ObjectReader {
    /// The version being read.
    pub info: ObjectInfo,
    /// Content type, user metadata, tags, modification time.
    pub meta: ObjectMeta,
    body: Body,
}

impl std::fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObjectReader")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

enum Body {
    Dir(dir::DirBody),
    S3(s3::S3Body),
}

impl Source for ObjectReader {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        match &mut self.body {
            Body::Dir(b) => b.next_chunk().await,
            Body::S3(b) => b.next_chunk().await,
        }
    }
    async fn finish(&mut self) -> Result<()> {
        match &mut self.body {
            Body::Dir(b) => b.finish().await,
            Body::S3(b) => b.finish().await,
        }
    }
    fn size_hint(&self) -> Option<u64> {
        Some(self.info.size)
    }
    fn local_file(&self) -> Option<Arc<std::fs::File>> {
        match &self.body {
            Body::Dir(b) => b.untouched_file(),
            Body::S3(_) => None,
        }
    }
    fn advance(&mut self, n: u64) {
        if let Body::Dir(b) = &mut self.body {
            b.advance(n);
        }
    }
}

#[derive(Debug)]
enum Backend {
    Dir(dir::DirBucket),
    S3(s3::S3Bucket),
}

/// A bucket: a directory or an S3 bucket (and prefix). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bucket {
    inner: Arc<Backend>,
    address: String,
}

impl Bucket {
    /// Parses a bucket address: `file:///dir`, `/dir`, or
    /// `s3://BUCKET[/PREFIX][?endpoint=URL&region=R]`.
    pub fn parse(address: &str) -> Result<Location> {
        Location::parse(address).map_err(|e| BucketError::BadAddress {
            address: address.to_string(),
            reason: match e {
                lifeboat_vault::VaultError::BadLocation { reason, .. } => reason,
                other => other.to_string(),
            },
        })
    }

    /// Opens a bucket. A directory bucket must exist unless `create` is set
    /// (then it is made); an S3 bucket must exist (it is never created
    /// here). An S3 location's own keys ([`Location::with_credentials`]) sign
    /// its requests; else the environment's.
    pub fn open(loc: &Location, create: bool) -> Result<Bucket> {
        match loc {
            Location::S3 {
                credentials:
                    lifeboat_vault::S3Credentials::Keys {
                        access_key_id,
                        secret_access_key,
                        session_token,
                        ..
                    },
                ..
            } => Bucket::open_signed(
                loc,
                create,
                Some((access_key_id, secret_access_key, session_token.as_deref())),
            ),
            _ => Bucket::open_signed(loc, create, None),
        }
    }

    /// Like [`Bucket::open`], with explicit S3 keys (access key id, secret)
    /// instead of the environment's.
    pub fn open_with_keys(
        loc: &Location,
        create: bool,
        keys: Option<(&str, &str)>,
    ) -> Result<Bucket> {
        Bucket::open_signed(loc, create, keys.map(|(a, s)| (a, s, None)))
    }

    fn open_signed(
        loc: &Location,
        create: bool,
        keys: Option<(&str, &str, Option<&str>)>,
    ) -> Result<Bucket> {
        let address = loc.to_string();
        let inner = match loc {
            Location::Dir(p) => Backend::Dir(dir::DirBucket::open(p, &address, create)?),
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                region,
                ..
            } => Backend::S3(s3::S3Bucket::open(
                bucket,
                prefix,
                endpoint.as_deref(),
                region,
                &address,
                keys,
            )?),
        };
        Ok(Bucket {
            inner: Arc::new(inner),
            address,
        })
    }

    /// Parses and opens.
    pub fn open_address(address: &str, create: bool) -> Result<Bucket> {
        Bucket::open(&Bucket::parse(address)?, create)
    }

    /// The address, for messages and resource names.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Whether this is a directory bucket.
    pub fn is_dir(&self) -> bool {
        matches!(*self.inner, Backend::Dir(_))
    }

    /// Lists every object whose key starts with `prefix`, calling `each` for
    /// each one (never the replicator's fence, `.lifeboat-fence`, or its
    /// mark, `.lifeboat-replicated`: they are no part of the content). Keys of one "directory" (`a/…`) come together; S3 gives
    /// byte order.
    pub async fn list(
        &self,
        prefix: &str,
        each: &mut (dyn FnMut(ObjectInfo) + Send),
    ) -> Result<()> {
        // The replicator fence is never an object of the bucket's content.
        let each = &mut |o: ObjectInfo| {
            if o.key != crate::replicate::fence::FENCE_KEY
                && o.key != crate::replicate::caught_up::CAUGHT_UP_KEY
            {
                each(o)
            }
        };
        match &*self.inner {
            Backend::Dir(d) => d.list(prefix, each).await,
            Backend::S3(s) => s.list(prefix, each).await,
        }
    }

    /// Facts of one object, `None` when it does not exist.
    pub async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        match &*self.inner {
            Backend::Dir(d) => d.stat(key).await,
            Backend::S3(s) => s.stat(key).await,
        }
    }

    /// Opens an object for reading. With `expect`, fails with
    /// [`BucketError::Changed`] when the current version is another one.
    pub async fn open_read(&self, key: &str, expect: Option<&str>) -> Result<ObjectReader> {
        let (info, meta, body) = match &*self.inner {
            Backend::Dir(d) => {
                let (i, m, b) = d.open_read(key, expect).await?;
                (i, m, Body::Dir(b))
            }
            Backend::S3(s) => {
                let (i, m, b) = s.open_read(key, expect).await?;
                (i, m, Body::S3(b))
            }
        };
        Ok(ObjectReader { info, meta, body })
    }

    /// Writes an object from `src` with `meta`, atomically: readers see the
    /// old version or the complete new one. Returns the new object's facts.
    pub async fn put<S: Source>(
        &self,
        key: &str,
        meta: &ObjectMeta,
        src: &mut S,
    ) -> Result<ObjectInfo> {
        match &*self.inner {
            Backend::Dir(d) => d.put(key, meta, src).await,
            Backend::S3(s) => s.put(key, meta, src).await,
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        match &*self.inner {
            Backend::Dir(d) => d.delete(key).await,
            Backend::S3(s) => s.delete(key).await,
        }
    }

    /// Makes every completed write durable (directory buckets: `syncfs`;
    /// S3 acknowledges only durable writes).
    pub async fn sync(&self) -> Result<()> {
        match &*self.inner {
            Backend::Dir(d) => d.sync().await,
            Backend::S3(_) => Ok(()),
        }
    }

    /// The S3 side of an S3 bucket: bucket-level requests (exists, empty,
    /// create, remove; `s3/admin.rs`).
    pub fn s3(&self) -> Option<&s3::S3Bucket> {
        match &*self.inner {
            Backend::S3(s) => Some(s),
            Backend::Dir(_) => None,
        }
    }

    /// The root directory of a directory bucket.
    pub fn dir_root(&self) -> Option<&std::path::Path> {
        match &*self.inner {
            Backend::Dir(d) => Some(d.root()),
            Backend::S3(_) => None,
        }
    }
}

/// Encodes tags as S3's `x-amz-tagging` header does: `k=v&k2=v2`, URL-encoded.
pub fn encode_tags(tags: &BTreeMap<String, String>) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    tags.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, NON_ALPHANUMERIC),
                utf8_percent_encode(v, NON_ALPHANUMERIC)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes [`encode_tags`]' form.
pub fn decode_tags(s: &str) -> BTreeMap<String, String> {
    let dec = |x: &str| {
        percent_encoding::percent_decode_str(&x.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_roundtrip_with_odd_characters() {
        let mut t = BTreeMap::new();
        t.insert("team".to_string(), "web shop".to_string());
        t.insert("a&b=c".to_string(), "100% +ü".to_string());
        t.insert("empty".to_string(), String::new());
        assert_eq!(decode_tags(&encode_tags(&t)), t);
        assert_eq!(decode_tags(""), BTreeMap::new());
    }
}
