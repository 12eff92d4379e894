//! Keys and encryption.
//!
//! A vault has one random 64-byte **master key**: 32 bytes of encryption key
//! (XChaCha20-Poly1305) and 32 bytes of id key (keyed BLAKE3 for blob ids, and the
//! seed of the chunker's gear table). The master key never leaves memory
//! unencrypted: each password wraps it in a key file, with a key derived from the
//! password by Argon2id.
//!
//! Every encrypted thing is a *sealed box*: `nonce (24 bytes) ‖ ciphertext ‖ tag
//! (16 bytes)`, with a random nonce and associated data that binds the box to
//! its role (a blob id, "index", "point"), so a box cannot be moved into another
//! role undetected.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::id::Id;

/// Bytes a sealed box adds to its plaintext.
pub const SEAL_OVERHEAD: usize = 24 + 16;

/// Fills `buf` with random bytes from the OS.
pub fn fill_random(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the operating system's random source failed");
}

/// The vault's master key.
#[derive(Clone)]
pub struct MasterKey {
    material: Zeroizing<[u8; 64]>,
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> MasterKey {
        let mut m = Zeroizing::new([0u8; 64]);
        fill_random(&mut m[..]);
        MasterKey::from_bytes(m)
    }

    fn from_bytes(material: Zeroizing<[u8; 64]>) -> MasterKey {
        let cipher = XChaCha20Poly1305::new_from_slice(&material[..32]).expect("32-byte key");
        MasterKey { material, cipher }
    }

    fn id_key(&self) -> [u8; 32] {
        let mut k = [0u8; 32];
        k.copy_from_slice(&self.material[32..]);
        k
    }

    /// The id of a blob: keyed BLAKE3 of its plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key(), plaintext).as_bytes())
    }

    /// The seed of the content-defined chunker (secret, so chunk boundaries do
    /// not reveal which known files a vault holds).
    pub fn chunker_seed(&self) -> u64 {
        let k = blake3::derive_key("lifeboat 2026 chunker seed", &self.id_key());
        u64::from_le_bytes(k[..8].try_into().expect("8 bytes"))
    }

    /// Encrypts `plaintext` into a sealed box bound to `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal_with(&self.cipher, aad, plaintext)
    }

    /// Encrypts `plaintext` into a sealed box appended to `out` (no allocation
    /// when `out` has room).
    pub fn seal_into(&self, aad: &[u8], plaintext: &[u8], out: &mut Vec<u8>) {
        let mut nonce = [0u8; 24];
        fill_random(&mut nonce);
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut out[start..])
            .expect("encryption does not fail for in-memory buffers");
        out.extend_from_slice(&tag);
    }

    /// Opens a sealed box; `what` names the object for the error.
    pub fn open(&self, aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        open_with(&self.cipher, aad, sealed, what)
    }
}

fn seal_with(cipher: &XChaCha20Poly1305, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 24];
    fill_random(&mut nonce);
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad,
            },
        )
        .expect("encryption does not fail for in-memory buffers");
    let mut out = Vec::with_capacity(24 + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    out
}

fn open_with(cipher: &XChaCha20Poly1305, aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
    if sealed.len() < SEAL_OVERHEAD {
        return Err(VaultError::corrupt(what, "too short to be a sealed box"));
    }
    cipher
        .decrypt(
            XNonce::from_slice(&sealed[..24]),
            Payload {
                msg: &sealed[24..],
                aad,
            },
        )
        .map_err(|_| VaultError::corrupt(what, "authentication failed (bytes changed on storage)"))
}

/// Argon2id cost parameters of a key file.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_cost: u32,
    /// Iterations.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams {
            m_cost: 64 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }
}

impl KdfParams {
    /// Cheap parameters, for tests only (set `LIFEBOAT_INSECURE_FAST_KDF=1`).
    pub fn insecure_fast() -> Self {
        KdfParams {
            m_cost: 256,
            t_cost: 1,
            p_cost: 1,
        }
    }

    /// The parameters new key files get: the default, or the insecure fast ones
    /// when `LIFEBOAT_INSECURE_FAST_KDF=1` (tests).
    pub fn for_new_key() -> Self {
        if std::env::var("LIFEBOAT_INSECURE_FAST_KDF").as_deref() == Ok("1") {
            Self::insecure_fast()
        } else {
            Self::default()
        }
    }

    /// Checks the costs against the bounds lifeboat accepts ([`KDF_LIMITS`]);
    /// the error says which cost is out of range. A key file is plaintext:
    /// absurd costs are refused before any memory is allocated.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let l = KDF_LIMITS;
        if !(l.m_cost.0..=l.m_cost.1).contains(&self.m_cost) {
            return Err(format!(
                "Argon2 memory cost m_cost {} KiB is out of the range {}..={} KiB lifeboat accepts",
                self.m_cost, l.m_cost.0, l.m_cost.1
            ));
        }
        if !(l.t_cost.0..=l.t_cost.1).contains(&self.t_cost) {
            return Err(format!(
                "Argon2 time cost t_cost {} is out of the range {}..={} lifeboat accepts",
                self.t_cost, l.t_cost.0, l.t_cost.1
            ));
        }
        if !(l.p_cost.0..=l.p_cost.1).contains(&self.p_cost) {
            return Err(format!(
                "Argon2 parallelism p_cost {} is out of the range {}..={} lifeboat accepts",
                self.p_cost, l.p_cost.0, l.p_cost.1
            ));
        }
        if self.m_cost < 8 * self.p_cost {
            return Err(format!(
                "Argon2 memory cost m_cost {} KiB is below 8 × p_cost ({})",
                self.m_cost, self.p_cost
            ));
        }
        Ok(())
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        self.validate()
            .map_err(|r| VaultError::corrupt("key file", r))?;
        let params = argon2::Params::new(self.m_cost, self.t_cost, self.p_cost, Some(32))
            .map_err(|e| VaultError::corrupt("key file", format!("bad Argon2 parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        a.hash_password_into(password, salt, &mut out[..])
            .map_err(|e| VaultError::corrupt("key file", format!("Argon2 failed: {e}")))?;
        Ok(out)
    }
}

/// Bounds on the Argon2id costs of a key file (inclusive ranges): memory
/// 8 KiB to 2 GiB, 1 to 100 iterations, 1 to 64 lanes (`docs/vault-format.md` §5).
pub const KDF_LIMITS: KdfLimits = KdfLimits {
    m_cost: (8, 2 * 1024 * 1024),
    t_cost: (1, 100),
    p_cost: (1, 64),
};

/// Inclusive ranges of the Argon2id costs lifeboat accepts.
#[derive(Debug, Clone, Copy)]
pub struct KdfLimits {
    /// Memory in KiB.
    pub m_cost: (u32, u32),
    /// Iterations.
    pub t_cost: (u32, u32),
    /// Lanes.
    pub p_cost: (u32, u32),
}

/// A key file: the master key wrapped by one password.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    /// Key file format version (1).
    pub version: u32,
    /// Always "argon2id".
    pub kdf: String,
    /// Argon2id costs.
    pub params: KdfParams,
    /// 32 random bytes, base64.
    pub salt: String,
    /// Sealed box of the 64-byte master key, base64.
    pub wrapped: String,
    /// When the key was added (RFC 3339).
    pub created: String,
    /// Host that added it.
    pub host: String,
    /// User that added it.
    pub user: String,
    /// Free label.
    #[serde(default)]
    pub label: String,
}

const KEY_AAD: &[u8] = b"lifeboat:key";

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

impl KeyFile {
    /// Wraps `master` with `password`.
    pub fn wrap(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        label: &str,
    ) -> Result<KeyFile> {
        use base64::Engine;
        params
            .validate()
            .map_err(|r| VaultError::Refused(format!("cannot make a key file: {r}")))?;
        let mut salt = [0u8; 32];
        fill_random(&mut salt);
        let kek = params.derive(password, &salt)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&kek[..]).expect("32-byte key");
        let wrapped = seal_with(&cipher, KEY_AAD, &master.material[..]);
        Ok(KeyFile {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt: b64().encode(salt),
            wrapped: b64().encode(wrapped),
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            host: crate::host_name(),
            user: crate::user_name(),
            label: label.to_string(),
        })
    }

    /// Parses a stored key file (JSON); `what` names it for the error.
    pub fn from_bytes(b: &[u8], what: &str) -> Result<KeyFile> {
        serde_json::from_slice(b).map_err(|e| VaultError::corrupt(what, format!("bad JSON: {e}")))
    }

    /// Checks everything that can be checked without the password: version,
    /// KDF and its cost bounds, salt and wrapped key encodings and lengths.
    /// Returns the decoded salt and wrapped key.
    pub fn validate(&self, what: &str) -> Result<(Vec<u8>, Vec<u8>)> {
        use base64::Engine;
        if self.version != 1 {
            return Err(VaultError::corrupt(
                what,
                format!("unknown key file version {}", self.version),
            ));
        }
        if self.kdf != "argon2id" {
            return Err(VaultError::corrupt(
                what,
                format!("unknown KDF {:?}", self.kdf),
            ));
        }
        self.params
            .validate()
            .map_err(|r| VaultError::corrupt(what, format!("{r}; the key file was not tried")))?;
        let salt = b64()
            .decode(&self.salt)
            .map_err(|_| VaultError::corrupt(what, "salt is not base64"))?;
        if salt.len() < 16 || salt.len() > 64 {
            return Err(VaultError::corrupt(
                what,
                format!("salt has {} bytes (16 to 64 expected)", salt.len()),
            ));
        }
        let wrapped = b64()
            .decode(&self.wrapped)
            .map_err(|_| VaultError::corrupt(what, "wrapped key is not base64"))?;
        if wrapped.len() != 64 + SEAL_OVERHEAD {
            return Err(VaultError::corrupt(
                what,
                format!(
                    "wrapped key has {} bytes ({} expected)",
                    wrapped.len(),
                    64 + SEAL_OVERHEAD
                ),
            ));
        }
        Ok((salt, wrapped))
    }

    /// Unwraps the master key; `None` when the password does not fit.
    pub fn unwrap(&self, password: &[u8], what: &str) -> Result<Option<MasterKey>> {
        let (salt, wrapped) = self.validate(what)?;
        let kek = self.params.derive(password, &salt)?;
        let cipher = XChaCha20Poly1305::new_from_slice(&kek[..]).expect("32-byte key");
        match open_with(&cipher, KEY_AAD, &wrapped, what) {
            Ok(m) if m.len() == 64 => {
                let mut material = Zeroizing::new([0u8; 64]);
                material.copy_from_slice(&m);
                Ok(Some(MasterKey::from_bytes(material)))
            }
            Ok(_) => Err(VaultError::corrupt(
                what,
                "wrapped key has the wrong length",
            )),
            Err(_) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let k = MasterKey::generate();
        let boxed = k.seal(b"a", b"hello");
        assert_eq!(boxed.len(), 5 + SEAL_OVERHEAD);
        assert_eq!(k.open(b"a", &boxed, "x").unwrap(), b"hello");
        assert!(k.open(b"b", &boxed, "x").is_err(), "other aad must fail");
        let mut flipped = boxed.clone();
        flipped[30] ^= 1;
        assert!(
            k.open(b"a", &flipped, "x").is_err(),
            "flipped byte must fail"
        );
    }

    #[test]
    fn seal_into_is_a_sealed_box_too() {
        let k = MasterKey::generate();
        let mut out = b"prefix".to_vec();
        k.seal_into(b"a", b"hello", &mut out);
        assert_eq!(k.open(b"a", &out[6..], "x").unwrap(), b"hello");
    }

    #[test]
    fn key_file_wraps_and_rejects_wrong_password() {
        let k = MasterKey::generate();
        let f = KeyFile::wrap(&k, b"pw", KdfParams::insecure_fast(), "").unwrap();
        let back = f.unwrap(b"pw", "k").unwrap().expect("right password opens");
        assert_eq!(back.blob_id(b"x"), k.blob_id(b"x"));
        assert!(f.unwrap(b"wrong", "k").unwrap().is_none());
    }

    #[test]
    fn blob_ids_are_keyed() {
        let a = MasterKey::generate();
        let b = MasterKey::generate();
        assert_ne!(a.blob_id(b"same"), b.blob_id(b"same"));
        assert_eq!(a.blob_id(b"same"), a.blob_id(b"same"));
        assert_ne!(a.chunker_seed(), b.chunker_seed());
    }
}
