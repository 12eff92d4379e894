//! Opening a vault: config, keys, recovery points, reading blobs.

use chrono::Utc;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::crypto::{KdfParams, KeyFile, MasterKey};
use crate::error::{Result, VaultError};
use crate::id::Id;
use crate::index::Index;
use crate::pack::{BlobType, open_blob, pack_path};
use crate::point::{RecoveryPoint, point_path};
use crate::storage::{Location, Storage};
use crate::tree::Tree;

/// Format version this build writes (it reads every version up to it).
pub const FORMAT_VERSION: u32 = 4;

/// Content-defined chunking parameters.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    /// Smallest chunk.
    pub min: u32,
    /// Average chunk.
    pub avg: u32,
    /// Largest chunk.
    pub max: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min: 512 * 1024,
            avg: 1024 * 1024,
            max: 4 * 1024 * 1024,
        }
    }
}

/// The plaintext `config` object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// Always "lifeboat-vault".
    pub format: String,
    /// Format version.
    pub version: u32,
    /// Random vault id (64 hex).
    pub id: String,
    /// When the vault was made.
    pub created: String,
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// zstd level for new blobs (0 = store uncompressed).
    pub compression: i32,
    /// Target size of a pack in bytes.
    pub pack_size: u32,
    /// A chunker seed taken from another vault (`vault init
    /// --copy-chunker-params-from`), sealed with this vault's key (see `seed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunker_seed: Option<String>,
}

/// Allowed ranges of the config's numbers (`docs/vault-format.md` §4): the
/// chunker's are FastCDC's own limits.
pub mod limits {
    /// `chunker.min`.
    pub const CHUNK_MIN: (u32, u32) = (64, 1_048_576);
    /// `chunker.avg`.
    pub const CHUNK_AVG: (u32, u32) = (256, 4_194_304);
    /// `chunker.max`.
    pub const CHUNK_MAX: (u32, u32) = (1024, 16_777_216);
    /// `compression` (zstd level; 0 stores uncompressed).
    pub const COMPRESSION: (i32, i32) = (0, 22);
    /// `pack_size` (pack offsets are 32-bit).
    pub const PACK_SIZE: (u32, u32) = (64 * 1024, 1024 * 1024 * 1024);
}

impl Config {
    /// Checks every field against its allowed range; the error names the
    /// field, its value and the range. A config is plaintext anyone with
    /// write access can change, so nothing is used before this passed.
    pub fn validate(&self) -> std::result::Result<(), String> {
        fn within<T: PartialOrd + std::fmt::Display>(
            field: &str,
            v: T,
            (lo, hi): (T, T),
        ) -> std::result::Result<(), String> {
            if v < lo || v > hi {
                return Err(format!(
                    "config field {field} is {v}; it must be between {lo} and {hi}"
                ));
            }
            Ok(())
        }
        if self.format != "lifeboat-vault" {
            return Err(format!(
                "config field format is {:?}; it must be \"lifeboat-vault\"",
                self.format
            ));
        }
        within("version", self.version, (1, FORMAT_VERSION))?;
        if self.id.len() != 64 || !self.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("config field id must be 64 hex digits".into());
        }
        let c = self.chunker;
        within("chunker.min", c.min, limits::CHUNK_MIN)?;
        within("chunker.avg", c.avg, limits::CHUNK_AVG)?;
        within("chunker.max", c.max, limits::CHUNK_MAX)?;
        for (field, v) in [
            ("chunker.min", c.min),
            ("chunker.avg", c.avg),
            ("chunker.max", c.max),
        ] {
            // FastCDC scans byte pairs: odd sizes shift its boundaries.
            if !v.is_multiple_of(2) {
                return Err(format!("config field {field} is {v}; it must be even"));
            }
        }
        if !(c.min <= c.avg && c.avg <= c.max) {
            return Err(format!(
                "config fields chunker.min {} ≤ chunker.avg {} ≤ chunker.max {} do not hold",
                c.min, c.avg, c.max
            ));
        }
        within("compression", self.compression, limits::COMPRESSION)?;
        within("pack_size", self.pack_size, limits::PACK_SIZE)?;
        Ok(())
    }
}

/// Options for `init`.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// Chunker parameters.
    pub chunker: ChunkerParams,
    /// zstd level.
    pub compression: i32,
    /// Target pack size.
    pub pack_size: u32,
    /// Argon2id costs for the first key.
    pub kdf: KdfParams,
    /// The chunker seed of another vault, so that this vault cuts data as
    /// that one does (`None`: derived from this vault's own key).
    pub chunker_seed: Option<u64>,
}

impl InitOptions {
    /// The zstd level of new vaults. Level 2 stores within 3 % of level 3 on
    /// the benchmark's data sets (0.3 % on the generated one) for 15–35 % less
    /// compression CPU, which is most of a backup's CPU (bench/RESULTS.md).
    pub const DEFAULT_COMPRESSION: i32 = 2;
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            chunker: ChunkerParams::default(),
            compression: Self::DEFAULT_COMPRESSION,
            pack_size: 16 * 1024 * 1024,
            kdf: KdfParams::for_new_key(),
            chunker_seed: None,
        }
    }
}

/// A key of the vault, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Key id (name of the key file).
    pub id: String,
    /// Whether this is the key the vault was opened with.
    pub current: bool,
    /// When it was added.
    pub created: String,
    /// Host that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
    /// Label.
    pub label: String,
}

/// All readable points (oldest first), and the errors of the damaged ones.
pub type PointListing = (Vec<(Id, RecoveryPoint)>, Vec<VaultError>);

/// An open, unlocked vault.
#[derive(Debug, Clone)]
pub struct Vault {
    storage: Storage,
    key: MasterKey,
    config: Config,
    key_id: String,
    /// Retention state: the session's request and the cached vault lock
    /// configuration (`retention.rs`).
    ret: crate::retention_session::Session,
}

/// Whether a key file's bytes match its name (`keys/<BLAKE3 of the bytes>`).
pub fn key_name_matches(path: &str, bytes: &[u8]) -> bool {
    path.strip_prefix("keys/")
        .and_then(Id::parse)
        .is_some_and(|id| id == Id::of_stored(bytes))
}

fn read_config(storage: &Storage) -> Result<Config> {
    let raw = match storage.read("config") {
        Ok(r) => r,
        Err(VaultError::Missing { .. }) => {
            return Err(VaultError::NoVault {
                location: storage.location().to_string(),
                reason: "it has no `config` object".into(),
            });
        }
        Err(e) => return Err(e),
    };
    let config: Config = serde_json::from_slice(&raw)
        .map_err(|e| VaultError::corrupt("config", format!("bad JSON: {e}")))?;
    if config.format != "lifeboat-vault" {
        return Err(VaultError::corrupt("config", "not a lifeboat vault config"));
    }
    if config.version > FORMAT_VERSION {
        return Err(VaultError::UnsupportedVersion {
            location: storage.location().to_string(),
            found: config.version,
            supported: FORMAT_VERSION,
        });
    }
    config.validate().map_err(|r| {
        VaultError::corrupt(
            "config",
            format!("{r} (the config was changed or damaged; restore it from a copy of the vault)"),
        )
    })?;
    Ok(config)
}

impl Vault {
    /// Creates a new vault at `location`, protected by `password`.
    ///
    /// A directory must be new or empty (it is made private: mode 0700); an
    /// S3 prefix must hold no vault.
    pub fn init(location: &Location, password: &[u8], opts: &InitOptions) -> Result<Vault> {
        if let Location::Dir(root) = location {
            crate::private::check_new_vault_dir(root, location)?;
        }
        let storage = Storage::open(location, true)?;
        if storage.stat("config")?.is_some() || !storage.list("keys/")?.is_empty() {
            return Err(VaultError::AlreadyExists {
                location: location.to_string(),
            });
        }
        if let Location::Dir(root) = location {
            crate::private::restrict_dir(root)
                .map_err(|e| VaultError::io("set permissions of", root, e))?;
        }
        let key = MasterKey::generate();
        let mut probe = Config {
            format: "lifeboat-vault".into(),
            version: FORMAT_VERSION,
            id: Id::random().to_hex(),
            created: String::new(),
            chunker: opts.chunker,
            compression: opts.compression,
            pack_size: opts.pack_size,
            chunker_seed: opts
                .chunker_seed
                .map(|seed| crate::seed::seal_seed(&key, seed)),
        };
        probe
            .validate()
            .map_err(|r| VaultError::Refused(format!("cannot create the vault: {r}")))?;
        let kf = KeyFile::wrap(&key, password, opts.kdf, "")?;
        let kb = serde_json::to_vec_pretty(&kf).expect("json");
        let key_id = Id::of_stored(&kb).to_hex();
        // Key first, config last: a vault exists once its config exists.
        storage.write(&format!("keys/{key_id}"), kb)?;
        probe.created = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let config = probe;
        storage.write("config", serde_json::to_vec_pretty(&config).expect("json"))?;
        Ok(Vault {
            storage,
            key,
            config,
            key_id,
            ret: Default::default(),
        })
    }

    /// Opens the vault at `location` with `password`.
    pub fn open(location: &Location, password: &[u8]) -> Result<Vault> {
        let storage = Storage::open(location, false)?;
        let config = read_config(&storage)?;
        let keys = storage.list("keys/")?;
        if keys.is_empty() {
            return Err(VaultError::corrupt("keys/", "the vault has no key files"));
        }
        let mut damaged: Vec<VaultError> = Vec::new();
        for k in keys {
            let what = k.path.clone();
            let bytes = match storage.read(&k.path) {
                Ok(b) => b,
                Err(VaultError::Missing { .. }) => continue, // removed meanwhile
                Err(e) => return Err(e),
            };
            // A key file is named by the BLAKE3 of its bytes: a changed one is
            // damaged, not a wrong password. It is still tried (a changed
            // label does not stop it from opening).
            let name_ok = key_name_matches(&what, &bytes);
            let kf = match KeyFile::from_bytes(&bytes, &what) {
                Ok(kf) => kf,
                Err(e) => {
                    damaged.push(e);
                    continue;
                }
            };
            match kf.unwrap(password, &what) {
                Ok(Some(key)) => {
                    if !name_ok {
                        tracing::warn!(
                            "key file {what} is damaged (its content does not match its name) but opens with this password; add a new key with `lifeboat key add` and remove this one"
                        );
                    }
                    let v = Vault {
                        storage,
                        key,
                        config,
                        key_id: what.trim_start_matches("keys/").to_string(),
                        ret: Default::default(),
                    };
                    v.chunker_seed()?;
                    return Ok(v);
                }
                Ok(None) if name_ok => {}
                Ok(None) => damaged.push(VaultError::corrupt(
                    &what,
                    "content does not match its name (bytes changed on storage)",
                )),
                Err(e) => damaged.push(e),
            }
        }
        if let Some(first) = damaged.first() {
            return Err(VaultError::DamagedKey {
                location: location.to_string(),
                count: damaged.len(),
                damaged: first.to_string(),
            });
        }
        Err(VaultError::WrongPassword {
            location: location.to_string(),
        })
    }

    /// The session's retention state (`retention_session.rs`).
    pub(crate) fn ret(&self) -> &crate::retention_session::Session {
        &self.ret
    }

    /// The storage below the vault.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// The master key.
    pub fn key(&self) -> &MasterKey {
        &self.key
    }

    /// The vault's config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Loads the index.
    pub fn load_index(&self) -> Result<Index> {
        Index::load(&self.storage, &self.key)
    }

    // ----- keys -----

    /// Adds a password; returns the new key's id.
    pub fn add_key(&self, password: &[u8], label: &str) -> Result<String> {
        let kf = KeyFile::wrap(&self.key, password, KdfParams::for_new_key(), label)?;
        let kb = serde_json::to_vec_pretty(&kf).expect("json");
        let id = Id::of_stored(&kb).to_hex();
        self.storage.write(&format!("keys/{id}"), kb)?;
        Ok(id)
    }

    /// Lists the key files.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for k in self.storage.list("keys/")? {
            let id = k.path.trim_start_matches("keys/").to_string();
            let bytes = self.storage.read(&k.path)?;
            let kf = match KeyFile::from_bytes(&bytes, &k.path) {
                Ok(kf) if key_name_matches(&k.path, &bytes) => kf,
                Ok(_) | Err(_) => {
                    out.push(KeyInfo {
                        current: id == self.key_id,
                        id,
                        created: String::new(),
                        host: String::new(),
                        user: String::new(),
                        label: "(damaged key file: see `lifeboat vault check`)".into(),
                    });
                    continue;
                }
            };
            out.push(KeyInfo {
                current: id == self.key_id,
                id,
                created: kf.created,
                host: kf.host,
                user: kf.user,
                label: kf.label,
            });
        }
        Ok(out)
    }

    /// Removes a key (by id or unique prefix). The key in use and the last key
    /// cannot be removed.
    pub fn remove_key(&self, prefix: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let m: Vec<_> = keys.iter().filter(|k| k.id.starts_with(prefix)).collect();
        let k = match m.as_slice() {
            [k] => *k,
            [] => return Err(VaultError::NoSuchKey(prefix.to_string())),
            _ => {
                return Err(VaultError::Refused(format!(
                    "key prefix {prefix:?} is ambiguous"
                )));
            }
        };
        if k.current {
            return Err(VaultError::Refused(
                "refusing to remove the key this session opened the vault with; open the vault with another password first".into(),
            ));
        }
        self.storage.remove(&format!("keys/{}", k.id))?;
        Ok(k.id.clone())
    }

    // ----- points -----

    /// Ids of all recovery points.
    pub fn point_ids(&self) -> Result<Vec<Id>> {
        Ok(self
            .storage
            .list("points/")?
            .iter()
            .filter_map(|l| l.path.strip_prefix("points/").and_then(Id::parse))
            .collect())
    }

    /// Reads one point.
    pub fn read_point(&self, id: &Id) -> Result<RecoveryPoint> {
        let b = self.storage.read(&point_path(id))?;
        RecoveryPoint::open(&self.key, id, &b)
    }

    /// Reads all points, oldest first. Damaged ones are returned separately.
    pub fn list_points(&self) -> Result<PointListing> {
        let ids = self.point_ids()?;
        let read: Vec<(Id, Result<RecoveryPoint>)> = ids
            .par_iter()
            .map(|id| (*id, self.read_point(id)))
            .collect();
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        for (id, r) in read {
            match r {
                Ok(p) => ok.push((id, p)),
                Err(VaultError::Missing { .. }) => {} // forgotten meanwhile
                Err(e) if e.is_damage() => bad.push(e),
                Err(e) => return Err(e),
            }
        }
        ok.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((ok, bad))
    }

    /// Finds a point by full id, unique id prefix, or `latest` (newest, optionally
    /// of one resource).
    pub fn find_point(&self, spec: &str, resource: Option<&str>) -> Result<(Id, RecoveryPoint)> {
        if spec == "latest" {
            let (points, _) = self.list_points()?;
            return points
                .into_iter()
                .rev()
                .find(|(_, p)| resource.is_none_or(|r| p.resource == r))
                .ok_or_else(|| VaultError::NoSuchPoint(spec.to_string()));
        }
        let ids = self.point_ids()?;
        let m: Vec<_> = ids
            .iter()
            .filter(|i| i.to_hex().starts_with(spec))
            .collect();
        match m.as_slice() {
            [id] => Ok((**id, self.read_point(id)?)),
            [] => Err(VaultError::NoSuchPoint(spec.to_string())),
            _ => Err(VaultError::AmbiguousPoint(spec.to_string())),
        }
    }

    /// Writes a point; it becomes visible at once. Its retention is
    /// resolved first: the session's request (`set_retention_request`) and
    /// the vault lock configuration apply (`retention::resolve`).
    pub fn write_point(&self, point: &RecoveryPoint) -> Result<Id> {
        let point = &self.with_retention(point)?;
        let (id, stored) = point.seal(&self.key);
        self.storage.write(&point_path(&id), stored)?;
        self.protect_point(&id, point)?;
        Ok(id)
    }

    /// Deletes a point, unless its retention forbids.
    pub fn remove_point(&self, id: &Id, override_governance: bool) -> Result<()> {
        let p = self.read_point(id)?;
        // The storage's clock is asked only about a point that has a lock.
        if let Some(r) = &p.retention
            && p.is_locked(self.now()?, override_governance)
        {
            return Err(VaultError::Refused(format!(
                "recovery point {} is locked ({}) until {}; it cannot be deleted{}",
                id.short(),
                r.mode.as_str(),
                r.retain_until.to_rfc3339(),
                if r.mode == crate::point::LockMode::Governance {
                    " without --bypass-governance"
                } else {
                    " by anyone before then"
                }
            )));
        }
        self.storage.remove(&point_path(id))
    }

    // ----- blobs -----

    /// Reads, decrypts and verifies one blob.
    pub fn read_blob(&self, index: &Index, id: &Id) -> Result<Vec<u8>> {
        let loc = index
            .get(id)
            .ok_or_else(|| VaultError::UnknownBlob(id.to_hex()))?;
        let path = pack_path(&loc.pack);
        let sealed =
            self.storage
                .read_range(&path, loc.entry.offset as u64, loc.entry.length as u64)?;
        open_blob(&self.key, &loc.entry, &sealed, &path)
    }

    /// Reads a tree blob.
    pub fn read_tree(&self, index: &Index, id: &Id) -> Result<Tree> {
        let loc = index
            .get(id)
            .ok_or_else(|| VaultError::UnknownBlob(id.to_hex()))?;
        if loc.entry.blob_type != BlobType::Tree {
            return Err(VaultError::corrupt(
                id.to_hex(),
                "expected a tree blob, found data",
            ));
        }
        let b = self.read_blob(index, id)?;
        Tree::from_bytes(&b)
            .map_err(|e| VaultError::corrupt(format!("tree {id}"), format!("bad JSON: {e}")))
    }
}

/// A throw-away vault in directory `dir` for tests: password `pw`, the
/// fast key derivation (never for a vault that keeps anything).
#[doc(hidden)]
pub fn throwaway(dir: &std::path::Path) -> Vault {
    let opts = InitOptions {
        kdf: crate::crypto::KdfParams::insecure_fast(),
        ..InitOptions::default()
    };
    Vault::init(&Location::Dir(dir.to_path_buf()), b"pw", &opts).expect("a throw-away vault")
}

#[cfg(test)]
mod tests;
