//! Directory buckets: a directory whose files are the objects.
//!
//! Key = path relative to the root, `/`-separated. Keys a path cannot hold
//! (empty components as in `a//b`, a trailing `/`, `.` or `..` components,
//! NUL, components over 255 bytes) are refused with [`BucketError::BadKey`];
//! non-UTF-8 file names, symlinks and special files are not objects.
//!
//! What S3 keeps beside the bytes is kept in extended attributes of the file:
//!
//! | S3 | xattr |
//! |---|---|
//! | `Content-Type` | `user.lifeboat.content-type` |
//! | `x-amz-meta-KEY` | `user.lifeboat.meta.KEY` |
//! | tags | `user.lifeboat.tags` (URL-encoded `k=v&k2=v2`, as `x-amz-tagging`) |
//! | last modified | the file's mtime (set from the source on replication) |
//!
//! Writes go to a temporary file under `.lifeboat-tmp/` at the root (same
//! filesystem), get their attributes there, and are renamed into place, so a
//! reader sees the old object or the complete new one with its metadata.
//! `.lifeboat-tmp/` is never listed, and it is removed as soon as it is empty
//! (a restored or replicated bucket is then identical to its source);
//! leftovers older than an hour are removed when the bucket is opened for
//! writing.
//!
//! Keys never lead outside the root: `.`/`..`/empty components are refused,
//! and directories are opened and made one component at a time relative to
//! the one above (`openat`/`mkdirat` with `O_NOFOLLOW`), so a symbolic link
//! planted inside the bucket is never followed: a write below one is refused
//! (naming it), a delete below one deletes nothing, a read finds no object.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

use super::beneath::{
    DIR_FLAGS, Staged, Walk, open_below, open_parent, open_root, remove_tmp_dir_if_empty,
};

use super::{ObjectInfo, ObjectMeta, Source};
use crate::error::{BucketError, Result};

mod xattrs;
pub use xattrs::meta_of_file;
use xattrs::{read_meta, write_meta};

/// Name of the staging directory at the root of a directory bucket.
pub const TMP_DIR: &str = ".lifeboat-tmp";
const READ_CHUNK: usize = 1024 * 1024;

/// A directory bucket.
#[derive(Debug)]
pub struct DirBucket {
    root: PathBuf,
    address: String,
}

/// Why a key cannot be a path, if it cannot.
pub fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("an empty key");
    }
    if key.contains('\0') {
        return Some("a NUL byte cannot be in a file name");
    }
    if key.ends_with('/') {
        return Some("a key ending in '/' (a folder marker) is not a file");
    }
    for c in key.split('/') {
        match c {
            "" => return Some("an empty path component ('//' or a leading '/')"),
            "." | ".." => return Some("a '.' or '..' component"),
            _ if c.len() > 255 => return Some("a component longer than 255 bytes"),
            _ => {}
        }
    }
    if key == TMP_DIR || key.starts_with(&format!("{TMP_DIR}/")) {
        return Some("the .lifeboat-tmp/ directory is reserved");
    }
    None
}

fn ns(secs: i64, nsec: i64) -> i64 {
    secs.saturating_mul(1_000_000_000).saturating_add(nsec)
}

fn info_of(key: String, md: &std::fs::Metadata) -> ObjectInfo {
    let ctime = ns(md.ctime(), md.ctime_nsec());
    ObjectInfo {
        size: md.len(),
        etag: None,
        modified_ns: ns(md.mtime(), md.mtime_nsec()),
        version: format!("{:x}-{:x}-{:x}", md.ino(), ctime, md.len()),
        key,
    }
}

/// Identity of an open file's content for the "unchanged while read" check.
fn stamp(md: &std::fs::Metadata) -> (u64, i64, i64, u64) {
    (
        md.len(),
        ns(md.mtime(), md.mtime_nsec()),
        ns(md.ctime(), md.ctime_nsec()),
        md.ino(),
    )
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

impl DirBucket {
    /// Opens (or with `create`, makes) a directory bucket.
    pub fn open(root: &Path, address: &str, create: bool) -> Result<DirBucket> {
        if create {
            std::fs::create_dir_all(root).map_err(|e| BucketError::Io {
                bucket: address.to_string(),
                op: "create directory",
                key: String::new(),
                source: e,
            })?;
            lifeboat_vault::storage::remove_old_files(
                &root.join(TMP_DIR),
                std::time::Duration::from_secs(3600),
            );
            remove_tmp_dir_if_empty(root);
        } else if !root.is_dir() {
            return Err(BucketError::NoBucket {
                bucket: address.to_string(),
                reason: "the directory does not exist".into(),
            });
        }
        Ok(DirBucket {
            root: root.to_path_buf(),
            address: address.to_string(),
        })
    }

    /// The bucket's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn io(&self, op: &'static str, key: &str, source: std::io::Error) -> BucketError {
        BucketError::Io {
            bucket: self.address.clone(),
            op,
            key: key.to_string(),
            source,
        }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        if let Some(reason) = key_problem(key) {
            return Err(BucketError::BadKey {
                bucket: self.address.clone(),
                key: key.to_string(),
                reason: reason.to_string(),
            });
        }
        Ok(self.root.join(key))
    }

    /// Lists objects below `prefix` (a key prefix, not necessarily a directory).
    pub async fn list(
        &self,
        prefix: &str,
        each: &mut (dyn FnMut(ObjectInfo) + Send),
    ) -> Result<()> {
        let (dir, first) = match prefix.rfind('/') {
            Some(i) => (&prefix[..=i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let start = self.root.join(dir);
        tokio::task::block_in_place(|| {
            if !start.is_dir() {
                return Ok(());
            }
            self.walk(&start, dir, first, each)
        })
    }

    fn walk(
        &self,
        dir: &Path,
        key_prefix: &str,
        first: &str,
        each: &mut (dyn FnMut(ObjectInfo) + Send),
    ) -> Result<()> {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.io("list", key_prefix, e)),
        };
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        for e in rd {
            match e {
                Ok(e) => names.push(e.file_name()),
                Err(e) => return Err(self.io("list", key_prefix, e)),
            }
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let Some(n) = name.to_str() else {
                tracing::warn!(
                    "{}: {:?} is not UTF-8 and cannot be an object key; skipped",
                    self.address,
                    dir.join(&name)
                );
                continue;
            };
            if !n.starts_with(first) || (key_prefix.is_empty() && n == TMP_DIR) {
                continue;
            }
            let path = dir.join(&name);
            let md = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // gone meanwhile
                Err(e) => return Err(self.io("stat", &format!("{key_prefix}{n}"), e)),
            };
            let key = format!("{key_prefix}{n}");
            if md.is_dir() {
                self.walk(&path, &format!("{key}/"), "", each)?;
            } else if md.is_file() {
                each(info_of(key, &md));
            }
        }
        Ok(())
    }

    /// Facts of one object.
    pub async fn stat(&self, key: &str) -> Result<Option<ObjectInfo>> {
        self.path_of(key)?;
        match open_below(&self.root, key, OFlags::PATH).and_then(|f| f.metadata()) {
            Ok(md) if md.is_file() => Ok(Some(info_of(key.to_string(), &md))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) if e.raw_os_error() == Some(20) => Ok(None), // ENOTDIR: a file where a dir would be
            Err(e) => Err(self.io("stat", key, e)),
        }
    }

    /// Opens an object for reading.
    pub async fn open_read(
        &self,
        key: &str,
        expect: Option<&str>,
    ) -> Result<(ObjectInfo, ObjectMeta, DirBody)> {
        self.path_of(key)?;
        let (root, k) = (self.root.clone(), key.to_string());
        let (f, md) = blocking(move || -> std::io::Result<(File, std::fs::Metadata)> {
            let f = open_below(&root, &k, OFlags::RDONLY)?;
            let md = f.metadata()?;
            Ok((f, md))
        })
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BucketError::NotFound {
                bucket: self.address.clone(),
                key: key.to_string(),
            },
            _ if e.raw_os_error() == Some(20) => BucketError::NotFound {
                bucket: self.address.clone(),
                key: key.to_string(),
            },
            _ => self.io("open", key, e),
        })?;
        if !md.is_file() {
            return Err(BucketError::NotFound {
                bucket: self.address.clone(),
                key: key.to_string(),
            });
        }
        let info = info_of(key.to_string(), &md);
        if expect.is_some_and(|v| v != info.version) {
            return Err(BucketError::Changed {
                bucket: self.address.clone(),
                key: key.to_string(),
            });
        }
        let meta = read_meta(&f, &md);
        let body = DirBody {
            file: Arc::new(f),
            before: stamp(&md),
            read: 0,
            key: key.to_string(),
            address: self.address.clone(),
        };
        Ok((info, meta, body))
    }

    /// Writes an object atomically (temp file, attributes, rename).
    pub async fn put<S: Source>(
        &self,
        key: &str,
        meta: &ObjectMeta,
        src: &mut S,
    ) -> Result<ObjectInfo> {
        if let Some(reason) = key_problem(key) {
            return Err(self.bad_key(key, reason.to_string()));
        }
        let root = self.root.clone();
        let (stage, f) = blocking(move || Staged::create(&root))
            .await
            .map_err(|e| self.io("create temporary file for", key, e))?;
        let stage = Arc::new(stage);
        let f = Arc::new(f);
        let r = match src.local_file() {
            Some(from) => self.fill_from_file(key, meta, src, from, &f, &stage).await,
            None => self.fill(key, meta, src, &f, &stage).await,
        };
        if r.is_err() {
            stage.discard();
        }
        r
    }

    /// The source is a local file: copy in the kernel, one blocking call.
    async fn fill_from_file<S: Source>(
        &self,
        key: &str,
        meta: &ObjectMeta,
        src: &mut S,
        from: Arc<File>,
        f: &Arc<File>,
        stage: &Arc<Staged>,
    ) -> Result<ObjectInfo> {
        let size = src.size_hint().unwrap_or(0);
        let to = f.clone();
        let copied = blocking(move || copy_file(&from, &to, size))
            .await
            .map_err(|e| self.io("copy", key, e))?;
        src.advance(copied);
        self.commit(key, meta, src, f, stage).await
    }

    async fn fill<S: Source>(
        &self,
        key: &str,
        meta: &ObjectMeta,
        src: &mut S,
        f: &Arc<File>,
        stage: &Arc<Staged>,
    ) -> Result<ObjectInfo> {
        while let Some(chunk) = src.next_chunk().await? {
            let f = f.clone();
            blocking(move || (&*f).write_all(&chunk))
                .await
                .map_err(|e| self.io("write", key, e))?;
        }
        self.commit(key, meta, src, f, stage).await
    }

    /// Checks the source, then attributes, directories (made below the root
    /// one at a time, never through a symlink), rename, stat.
    async fn commit<S: Source>(
        &self,
        key: &str,
        meta: &ObjectMeta,
        src: &mut S,
        f: &Arc<File>,
        stage: &Arc<Staged>,
    ) -> Result<ObjectInfo> {
        src.finish().await?;
        let (f, meta, stage, root) = (f.clone(), meta.clone(), stage.clone(), self.root.clone());
        let k = key.to_string();
        let md = blocking(move || -> std::result::Result<std::fs::Metadata, (&'static str, Walk)> {
            write_meta(&f, &meta).map_err(|e| ("keep metadata of", Walk::Io(e)))?;
            let (dir, leaf) = open_parent(&root, &k, true)
                .map_err(|e| ("create the directories of", e))?
                .ok_or((
                    "create the directories of",
                    Walk::Io(std::io::Error::from(std::io::ErrorKind::NotFound)),
                ))?;
            rustix::fs::renameat(&stage.dir, stage.name.as_str(), &dir, leaf.as_str())
                .map_err(|e| ("rename into place", Walk::Io(e.into())))?;
            stage.done();
            f.metadata().map_err(|e| ("stat", Walk::Io(e)))
        })
        .await
        .map_err(|(op, e)| match e {
            Walk::Symlink(at) => self.bad_key(key, format!(
                "{op}: {at} is a symbolic link inside the bucket; lifeboat never writes through one (remove it, or make it a real directory)"
            )),
            Walk::Io(e) if matches!(e.raw_os_error(), Some(20) | Some(21) | Some(17) | Some(39)) => {
                self.bad_key(key, format!("{op}: {e} (an object and a \"directory\" of the same name cannot both exist in a directory bucket)"))
            }
            Walk::Io(e) => self.io(op, key, e),
        })?;
        Ok(info_of(key.to_string(), &md))
    }

    fn bad_key(&self, key: &str, reason: String) -> BucketError {
        BucketError::BadKey {
            bucket: self.address.clone(),
            key: key.to_string(),
            reason,
        }
    }

    /// Deletes an object and the directories it leaves empty. A key below a
    /// symbolic link names no object: nothing is deleted through the link.
    pub async fn delete(&self, key: &str) -> Result<()> {
        if let Some(reason) = key_problem(key) {
            return Err(self.bad_key(key, reason.to_string()));
        }
        let comps: Vec<&str> = key.split('/').collect();
        let root = open_root(&self.root).map_err(|e| self.io("open", key, e.into()))?;
        // The directory chain from the root down to the object's directory.
        let mut chain = vec![root];
        for d in &comps[..comps.len() - 1] {
            match rustix::fs::openat(chain.last().expect("root"), *d, DIR_FLAGS, Mode::empty()) {
                Ok(fd) => chain.push(fd),
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(()),
                Err(e) => return Err(self.io("delete", key, e.into())),
            }
        }
        let leaf = comps[comps.len() - 1];
        match rustix::fs::unlinkat(chain.last().expect("root"), leaf, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::NOENT | Errno::NOTDIR) => return Ok(()),
            Err(e) => return Err(self.io("delete", key, e.into())),
        }
        // Remove the directories left empty, deepest first.
        for i in (1..chain.len()).rev() {
            if rustix::fs::unlinkat(&chain[i - 1], comps[i - 1], AtFlags::REMOVEDIR).is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Flushes the filesystem holding the bucket.
    pub async fn sync(&self) -> Result<()> {
        let root = self.root.clone();
        blocking(move || {
            let f = File::open(&root)?;
            rustix::fs::syncfs(&f).map_err(std::io::Error::from)
        })
        .await
        .map_err(|e| self.io("sync", "", e))
    }
}

/// Copies `size` bytes of `from` (from its start) to the end of `to`: in the
/// kernel where it can, else through a buffer. Returns the bytes copied
/// (fewer when `from` shrank).
fn copy_file(from: &File, to: &File, size: u64) -> std::io::Result<u64> {
    let mut off = 0u64;
    while off < size {
        let want = ((size - off) as usize).min(1 << 30);
        match rustix::fs::copy_file_range(from, Some(&mut off), to, None, want) {
            Ok(0) => return Ok(off),
            Ok(_) => {}
            Err(_) if off == 0 => {
                // Another filesystem, or no copy_file_range: a plain copy.
                let mut r = std::io::Read::take(from, size);
                let mut w = to;
                return std::io::copy(&mut r, &mut w);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(off)
}

/// The bytes of an open directory-bucket object.
#[derive(Debug)]
pub struct DirBody {
    file: Arc<File>,
    before: (u64, i64, i64, u64),
    read: u64,
    key: String,
    address: String,
}

impl DirBody {
    pub(crate) async fn next_chunk(&mut self) -> Result<Option<Bytes>> {
        if self.read > self.before.0 {
            return Ok(None); // it grew: finish() says so
        }
        let left = self.before.0 - self.read;
        if left == 0 {
            return Ok(None); // a file that grew is caught by finish()
        }
        let f = self.file.clone();
        let want = (left as usize).min(READ_CHUNK);
        let buf = blocking(move || -> std::io::Result<Vec<u8>> {
            let mut buf = vec![0u8; want];
            let mut n = 0;
            while n < buf.len() {
                match (&*f).read(&mut buf[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            buf.truncate(n);
            Ok(buf)
        })
        .await
        .map_err(|e| BucketError::Io {
            bucket: self.address.clone(),
            op: "read",
            key: self.key.clone(),
            source: e,
        })?;
        if buf.is_empty() {
            return Ok(None);
        }
        self.read += buf.len() as u64;
        Ok(Some(Bytes::from(buf)))
    }

    /// The file, when nothing was read from it yet.
    pub(crate) fn untouched_file(&self) -> Option<Arc<File>> {
        (self.read == 0).then(|| self.file.clone())
    }

    pub(crate) fn advance(&mut self, n: u64) {
        self.read += n;
    }

    pub(crate) async fn finish(&mut self) -> Result<()> {
        let md = self.file.metadata().map_err(|e| BucketError::Io {
            bucket: self.address.clone(),
            op: "stat",
            key: self.key.clone(),
            source: e,
        })?;
        let now = stamp(&md);
        // Replaced by a rename (its last link gone): what was read is still
        // one complete version, as long as no write touched it.
        let replaced = md.nlink() == 0 && (now.0, now.1) == (self.before.0, self.before.1);
        if (now != self.before && !replaced) || self.read != self.before.0 {
            return Err(BucketError::Changed {
                bucket: self.address.clone(),
                key: self.key.clone(),
            });
        }
        Ok(())
    }
}
