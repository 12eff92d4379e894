//! S3 Object Lock: the store itself refuses to delete a locked point's objects.
//!
//! On a bucket created with Object Lock enabled (versioning on), every object
//! version can carry a retention (`GOVERNANCE` or `COMPLIANCE` until a date);
//! the store refuses `DELETE ?versionId=…` of such a version, whoever asks.
//! When a point under retention is written to such a bucket, [`protect`]
//! gives the same retention to the point object, every pack holding one of
//! its blobs and every index file naming one of those packs (PutObjectRetention,
//! `PUT <key>?retention`). OpenDAL has no call for this, so these few
//! requests are signed here with `reqsign` (the signer OpenDAL itself uses).
//!
//! A plain `DELETE <key>` (no version) still succeeds on a versioned bucket:
//! it adds a delete marker and the locked version stays, restorable by an
//! administrator. Prune and repair-index therefore work as before: their
//! deletes hide objects, and the versions of locked ones stay until they expire.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqsign_aws_v4::{
    Credential, DefaultCredentialProvider, RequestSigner, StaticCredentialProvider,
};
use reqsign_core::{Context, OsEnv, Signer};

use crate::Vault;
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::{IndexFile, index_path};
use crate::pack::pack_path;
use crate::point::{LockMode, RecoveryPoint, point_path};
use crate::storage::Location;

/// A client for the Object Lock calls on one S3 vault.
pub struct ObjectLock {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    signer: Signer<Credential>,
    /// `ENDPOINT/BUCKET/` (path style, as the vault's own storage uses).
    base: String,
    /// Key prefix of the vault inside the bucket (`""` or `PREFIX/`).
    root: String,
    bucket: String,
}

/// A store's answer: status, body, `Date` header.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    pub(crate) date: Option<String>,
}

pub(crate) fn err(op: &'static str, path: &str, message: String) -> VaultError {
    VaultError::Storage {
        op,
        path: path.to_string(),
        message,
        retryable: false,
        no_space: false,
    }
}

impl ObjectLock {
    /// For an S3 location; `None` for a directory.
    pub fn for_location(loc: &Location) -> Result<Option<ObjectLock>> {
        let Location::S3 {
            bucket,
            prefix,
            endpoint,
            region,
            credentials,
            ..
        } = loc
        else {
            return Ok(None);
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| VaultError::io("start I/O runtime", "", e))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| err("open", bucket, format!("cannot set up an HTTP client: {e}")))?;
        let ctx = Context::new()
            .with_file_read(reqsign_file_read_tokio::TokioFileRead)
            .with_env(OsEnv);
        let signer = match credentials {
            crate::S3Credentials::Keys {
                access_key_id,
                secret_access_key,
                session_token,
                ..
            } => {
                let mut p = StaticCredentialProvider::new(access_key_id, secret_access_key);
                if let Some(t) = session_token {
                    p = p.with_session_token(t);
                }
                Signer::new(ctx, p, RequestSigner::new("s3", region))
            }
            crate::S3Credentials::Environment => Signer::new(
                ctx,
                DefaultCredentialProvider::builder().no_imds().build(),
                RequestSigner::new("s3", region),
            ),
        };
        let endpoint = endpoint
            .as_deref()
            .map(|e| e.trim_end_matches('/').to_string())
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        Ok(Some(ObjectLock {
            rt,
            client,
            signer,
            base: format!("{endpoint}/{bucket}/"),
            root: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            bucket: bucket.clone(),
        }))
    }

    fn send(
        &self,
        op: &'static str,
        path: &str,
        method: http::Method,
        url: String,
        body: Vec<u8>,
    ) -> Result<(u16, String)> {
        self.send_raw(op, path, method, url, body)
            .map(|a| (a.status, String::from_utf8_lossy(&a.body).into_owned()))
    }

    /// [`Self::send`], answering the body's bytes and the `Date` header.
    pub(crate) fn send_raw(
        &self,
        op: &'static str,
        path: &str,
        method: http::Method,
        url: String,
        body: Vec<u8>,
    ) -> Result<Answer> {
        self.rt.block_on(async {
            let mut req = http::Request::builder()
                .method(method)
                .uri(&url)
                .header("content-length", body.len());
            if !body.is_empty() {
                use base64::Engine;
                use md5::Digest;
                let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&body));
                req = req
                    .header("content-md5", md5)
                    .header("content-type", "application/xml");
            }
            let (mut parts, body) = req
                .body(body)
                .map_err(|e| err(op, path, format!("bad request: {e}")))?
                .into_parts();
            self.signer.sign(&mut parts, None).await.map_err(|e| {
                err(op, path, format!("cannot sign the request: {e} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"))
            })?;
            parts.headers.remove(http::header::HOST);
            let req = reqwest::Request::try_from(http::Request::from_parts(parts, body))
                .map_err(|e| err(op, path, format!("bad request: {e}")))?;
            let resp = self.client.execute(req).await.map_err(|e| {
                err(op, path, format!("{e} (the object store cannot be reached: check the endpoint and the network)"))
            })?;
            let status = resp.status().as_u16();
            let date = resp
                .headers()
                .get(http::header::DATE)
                .and_then(|d| d.to_str().ok())
                .map(str::to_string);
            let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            Ok(Answer { status, body, date })
        })
    }

    /// The store's time: the `Date` header of its answer to a `HEAD` of the
    /// bucket (every answer carries one, a refusal too).
    pub fn server_time(&self) -> Result<DateTime<Utc>> {
        let Answer { status, date, .. } = self.send_raw(
            "clock",
            &self.bucket,
            http::Method::HEAD,
            self.base.clone(),
            Vec::new(),
        )?;
        let date = date.ok_or_else(|| {
            err(
                "clock",
                &self.bucket,
                format!("the store's answer ({status}) has no Date header: its time is unknown, so no retention or lock decision can be made"),
            )
        })?;
        DateTime::parse_from_rfc2822(&date)
            .map(|d| d.with_timezone(&Utc))
            .map_err(|e| {
                err(
                    "clock",
                    &self.bucket,
                    format!("the store's Date header {date:?} is not an HTTP date: {e}"),
                )
            })
    }

    /// Whether the bucket has Object Lock enabled.
    pub fn enabled(&self) -> Result<bool> {
        let (status, body) = self.send(
            "object-lock",
            &self.bucket,
            http::Method::GET,
            format!("{}?object-lock", self.base),
            Vec::new(),
        )?;
        match status {
            200 => Ok(body.contains("<ObjectLockEnabled>Enabled</ObjectLockEnabled>")),
            // No configuration (or a store without the feature).
            404 | 400 | 501 => Ok(false),
            403 => Err(err(
                "object-lock",
                &self.bucket,
                format!(
                    "asking whether the bucket has Object Lock was refused (403: {}); give the credentials s3:GetBucketObjectLockConfiguration (and s3:PutObjectRetention)",
                    body.trim()
                ),
            )),
            _ => Err(err(
                "object-lock",
                &self.bucket,
                format!("GET ?object-lock answered {status}: {}", body.trim()),
            )),
        }
    }

    /// Gives the current version of `path` (vault-relative) a retention of
    /// `mode` until `until`. A version already retained as long is left.
    pub fn retain(&self, path: &str, mode: LockMode, until: DateTime<Utc>) -> Result<()> {
        self.retain_version(path, None, mode, until)
    }

    /// [`Self::retain`] for one version of `path` (`None`: the current one).
    pub fn retain_version(
        &self,
        path: &str,
        version: Option<&str>,
        mode: LockMode,
        until: DateTime<Utc>,
    ) -> Result<()> {
        let date = until.to_rfc3339_opts(SecondsFormat::Secs, true);
        let body = format!(
            "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>{}</Mode><RetainUntilDate>{date}</RetainUntilDate></Retention>",
            mode.as_str().to_uppercase()
        );
        let url = self.url(path, "retention", version);
        let (status, text) = self.send(
            "retain",
            path,
            http::Method::PUT,
            url.clone(),
            body.into_bytes(),
        )?;
        if status == 200 || status == 204 {
            return Ok(());
        }
        // Refused: fine when the version is already retained at least as long
        // (another point shares the pack, with a later date).
        if status == 403 {
            let (s, cur) = self.send("retain", path, http::Method::GET, url, Vec::new())?;
            if s == 200
                && let Some(d) = between(&cur, "<RetainUntilDate>", "</RetainUntilDate>")
                    .and_then(|d| d.parse::<DateTime<Utc>>().ok())
                && d >= until
            {
                return Ok(());
            }
        }
        Err(err(
            "retain",
            path,
            format!(
                "setting Object Lock retention ({} until {date}) was refused ({status}): {} (the credentials need s3:PutObjectRetention)",
                mode.as_str(),
                text.trim()
            ),
        ))
    }
}

impl ObjectLock {
    /// `BASE/ROOT+path?query[&versionId=V]`.
    fn url(&self, path: &str, query: &str, version: Option<&str>) -> String {
        let mut u = format!("{}{}{path}?{query}", self.base, self.root);
        if let Some(v) = version {
            u.push_str(if query.is_empty() {
                "versionId="
            } else {
                "&versionId="
            });
            u.push_str(&query_escape(v));
        }
        u
    }

    /// Every version of the objects under `prefix` (vault-relative), as
    /// (path, version id), those hidden by a delete marker included (a
    /// delete marker itself is not a version of content).
    pub fn versions(&self, prefix: &str) -> Result<Vec<(String, String)>> {
        let url = format!(
            "{}?versions&prefix={}",
            self.base,
            query_escape(&format!("{}{prefix}", self.root))
        );
        let (status, body) = self.send("versions", prefix, http::Method::GET, url, Vec::new())?;
        if status != 200 {
            return Err(err(
                "versions",
                prefix,
                format!(
                    "listing the object versions answered {status}: {} (the credentials need s3:ListBucketVersions)",
                    body.trim()
                ),
            ));
        }
        if body.contains("<IsTruncated>true</IsTruncated>") {
            return Err(err(
                "versions",
                prefix,
                "more than one page of object versions: remove old noncurrent versions (a lifecycle rule) and run again".into(),
            ));
        }
        Ok(body
            .split("<Version>")
            .skip(1)
            .filter_map(|v| {
                let key = between(v, "<Key>", "</Key>")?;
                let id = between(v, "<VersionId>", "</VersionId>")?;
                Some((key.strip_prefix(&self.root)?.to_string(), id.to_string()))
            })
            .collect())
    }

    /// The bytes of one version of `path`.
    pub fn read_version(&self, path: &str, version: &str) -> Result<Vec<u8>> {
        let url = self.url(path, "", Some(version));
        let a = self.send_raw("read", path, http::Method::GET, url, Vec::new())?;
        match a.status {
            200 => Ok(a.body),
            404 => Err(VaultError::Missing {
                object: format!("{path} (version {version})"),
                reason: "not found in storage".into(),
            }),
            s => Err(err(
                "read",
                path,
                format!(
                    "reading version {version} answered {s}: {} (the credentials need s3:GetObjectVersion)",
                    String::from_utf8_lossy(&a.body).trim()
                ),
            )),
        }
    }

    /// Deletes one version of `path` for good (refused by the store while
    /// the version is under retention).
    pub fn delete_version(&self, path: &str, version: &str) -> Result<()> {
        let url = self.url(path, "", Some(version));
        let (status, body) = self.send("remove", path, http::Method::DELETE, url, Vec::new())?;
        match status {
            200 | 204 | 404 => Ok(()),
            s => Err(err(
                "remove",
                path,
                format!(
                    "deleting version {version} answered {s}: {} (the credentials need s3:DeleteObjectVersion; a version under retention cannot be deleted)",
                    body.trim()
                ),
            )),
        }
    }

    /// The retention date of one version of `path`, if it has one.
    pub fn retained_until(&self, path: &str, version: &str) -> Result<Option<DateTime<Utc>>> {
        let url = self.url(path, "retention", Some(version));
        let (status, body) = self.send("retain", path, http::Method::GET, url, Vec::new())?;
        Ok((status == 200)
            .then(|| between(&body, "<RetainUntilDate>", "</RetainUntilDate>"))
            .flatten()
            .and_then(|d| d.parse::<DateTime<Utc>>().ok()))
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> Option<&'a str> {
    let i = s.find(a)? + a.len();
    let j = s[i..].find(b)? + i;
    Some(&s[i..j])
}

/// What [`protect`] did.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Protected {
    /// Objects given a retention: the point, its packs, index files.
    pub objects: usize,
    /// Packs among them.
    pub packs: usize,
    /// Index files among them.
    pub index_files: usize,
}

/// Gives the point `id` (whose retention is set), its packs and the index
/// files naming them the point's retention on an S3 bucket with Object Lock.
/// `None` when the vault is not on such a bucket (or the point has no
/// retention); then only Lifeboat's own refusals protect the point.
pub fn protect(vault: &Vault, id: &Id, point: &RecoveryPoint) -> Result<Option<Protected>> {
    let Some(r) = point.retention.as_ref() else {
        return Ok(None);
    };
    let Some(ol) = ObjectLock::for_location(vault.storage().loc())? else {
        return Ok(None);
    };
    if !vault.object_lock_enabled(&ol)? {
        return Ok(None);
    }
    let index = vault.load_index()?;
    let blobs = crate::prune::referenced_blobs(vault, &index, &[point.tree])?;
    let packs: HashSet<Id> = blobs
        .iter()
        .filter_map(|b| index.get(b).map(|l| l.pack))
        .collect();
    let mut out = Protected::default();
    for p in &packs {
        ol.retain(&pack_path(p), r.mode, r.retain_until)?;
        out.packs += 1;
    }
    for f in index.files() {
        let path = index_path(f);
        let bytes = match vault.storage().read(&path) {
            Ok(b) => b,
            Err(VaultError::Missing { .. }) => continue, // replaced by a prune
            Err(e) => return Err(e),
        };
        let file = IndexFile::open(vault.key(), f, &bytes)?;
        if file.packs.iter().any(|(p, _)| packs.contains(p)) {
            ol.retain(&path, r.mode, r.retain_until)?;
            out.index_files += 1;
        }
    }
    ol.retain(&point_path(id), r.mode, r.retain_until)?;
    out.objects = out.packs + out.index_files + 1;
    Ok(Some(out))
}
