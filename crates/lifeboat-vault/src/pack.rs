//! Packs: many sealed blobs in one storage object.
//!
//! ```text
//! pack   = blob_1 ‖ … ‖ blob_n ‖ header ‖ u32le(len(header))
//! blob_i = sealed box of (zstd(plaintext) or plaintext), aad = type ‖ blob id
//! header = sealed box of  "LBPK" ‖ u8 version=1 ‖ u32le n ‖ entry_1 ‖ … ‖ entry_n,
//!          aad = "lifeboat:pack-header"
//! entry  = u8 type ‖ u8 flags ‖ id[32] ‖ u32le sealed length ‖ u32le plaintext length
//! ```
//! Blob offsets follow from the lengths, in order. A pack is named by the BLAKE3
//! of all its bytes and stored at `packs/<first 2 hex>/<64 hex>`.

use crate::crypto::MasterKey;
use crate::error::{Result, VaultError};
use crate::id::Id;

/// What a blob holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlobType {
    /// File or stream content.
    Data,
    /// A tree: a serialized list of nodes.
    Tree,
}

impl BlobType {
    /// Byte in the format.
    pub fn code(self) -> u8 {
        match self {
            BlobType::Data => 0,
            BlobType::Tree => 1,
        }
    }

    /// From the format byte.
    pub fn from_code(c: u8) -> Option<BlobType> {
        match c {
            0 => Some(BlobType::Data),
            1 => Some(BlobType::Tree),
            _ => None,
        }
    }
}

/// Flag bit: the blob's plaintext was compressed with zstd before sealing.
pub const FLAG_ZSTD: u8 = 1;

/// One blob in a pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackEntry {
    /// Data or tree.
    pub blob_type: BlobType,
    /// Flags ([`FLAG_ZSTD`]).
    pub flags: u8,
    /// Blob id.
    pub id: Id,
    /// Byte offset of the sealed blob within the pack.
    pub offset: u32,
    /// Length of the sealed blob.
    pub length: u32,
    /// Length of the plaintext (after decompression).
    pub raw_length: u32,
}

/// Associated data a blob is sealed with.
pub fn blob_aad(t: BlobType, id: &Id) -> [u8; 33] {
    let mut a = [0u8; 33];
    a[0] = t.code();
    a[1..].copy_from_slice(&id.0);
    a
}

const HEADER_AAD: &[u8] = b"lifeboat:pack-header";
const ENTRY_LEN: usize = 42;

/// Accumulates sealed blobs into a pack.
#[derive(Debug, Default)]
pub struct PackWriter {
    buf: Vec<u8>,
    entries: Vec<PackEntry>,
}

impl PackWriter {
    /// An empty pack.
    pub fn new() -> PackWriter {
        PackWriter::default()
    }

    /// An empty pack whose buffer already holds `bytes`: a pack closed at
    /// `pack_size` plus one blob then never grows by doubling (memory).
    pub fn with_capacity(bytes: usize) -> PackWriter {
        PackWriter {
            buf: Vec::with_capacity(bytes),
            entries: Vec::new(),
        }
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends one sealed blob.
    pub fn add(&mut self, blob_type: BlobType, flags: u8, id: Id, sealed: &[u8], raw_length: u32) {
        self.entries.push(PackEntry {
            blob_type,
            flags,
            id,
            offset: self.buf.len() as u32,
            length: sealed.len() as u32,
            raw_length,
        });
        self.buf.extend_from_slice(sealed);
    }

    /// Seals the header and returns the pack's id, bytes and entries.
    pub fn finish(mut self, key: &MasterKey) -> (Id, Vec<u8>, Vec<PackEntry>) {
        let mut h = Vec::with_capacity(9 + self.entries.len() * ENTRY_LEN);
        h.extend_from_slice(b"LBPK");
        h.push(1);
        h.extend_from_slice(&(self.entries.len() as u32).to_le_bytes());
        for e in &self.entries {
            h.push(e.blob_type.code());
            h.push(e.flags);
            h.extend_from_slice(&e.id.0);
            h.extend_from_slice(&e.length.to_le_bytes());
            h.extend_from_slice(&e.raw_length.to_le_bytes());
        }
        let sealed = key.seal(HEADER_AAD, &h);
        self.buf.extend_from_slice(&sealed);
        self.buf
            .extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let id = Id::of_stored(&self.buf);
        (id, self.buf, self.entries)
    }
}

/// Lists the packs on storage with their sizes; the second list holds the
/// paths under `packs/` that are not pack names.
pub fn list_packs(
    storage: &crate::storage::Storage,
) -> Result<(std::collections::HashMap<Id, u64>, Vec<String>)> {
    let mut packs = std::collections::HashMap::new();
    let mut strays = Vec::new();
    for l in storage.list("packs/")? {
        match l.path.rsplit('/').next().and_then(Id::parse) {
            Some(id) => {
                packs.insert(id, l.size);
            }
            None => strays.push(l.path),
        }
    }
    Ok((packs, strays))
}

/// Storage path of a pack.
pub fn pack_path(id: &Id) -> String {
    let h = id.to_hex();
    format!("packs/{}/{}", &h[..2], h)
}

/// Reads the header of a whole pack held in memory.
pub fn parse_pack(key: &MasterKey, pack: &[u8], what: &str) -> Result<Vec<PackEntry>> {
    if pack.len() < 4 {
        return Err(VaultError::corrupt(what, "pack too short for its trailer"));
    }
    let hlen = u32::from_le_bytes(pack[pack.len() - 4..].try_into().expect("4")) as usize;
    if hlen + 4 > pack.len() {
        return Err(VaultError::corrupt(
            what,
            "pack header length points outside the pack",
        ));
    }
    let start = pack.len() - 4 - hlen;
    let entries = open_header(key, &pack[start..pack.len() - 4], what)?;
    let end = entries
        .last()
        .map(|e| e.offset as usize + e.length as usize)
        .unwrap_or(0);
    if end != start {
        return Err(VaultError::corrupt(
            what,
            "pack header does not account for the pack's bytes",
        ));
    }
    Ok(entries)
}

/// Opens a pack's sealed header (the bytes before the 4-byte trailer).
pub fn open_header(key: &MasterKey, sealed: &[u8], what: &str) -> Result<Vec<PackEntry>> {
    let h = key.open(HEADER_AAD, sealed, what)?;
    decode_header(&h, what)
}

/// Reads only the header of a stored pack (two ranged reads).
pub fn read_header(
    storage: &crate::storage::Storage,
    key: &MasterKey,
    id: &Id,
    size: u64,
) -> Result<Vec<PackEntry>> {
    let path = pack_path(id);
    if size < 4 {
        return Err(VaultError::corrupt(&path, "pack too short for its trailer"));
    }
    let t = storage.read_range(&path, size - 4, 4)?;
    let hlen = u32::from_le_bytes(t[..4].try_into().expect("4")) as u64;
    if hlen + 4 > size {
        return Err(VaultError::corrupt(
            &path,
            "pack header length points outside the pack",
        ));
    }
    let sealed = storage.read_range(&path, size - 4 - hlen, hlen)?;
    open_header(key, &sealed, &path)
}

/// Decodes a pack header's plaintext (after the sealed box is opened).
pub fn decode_header(h: &[u8], what: &str) -> Result<Vec<PackEntry>> {
    let bad = |r: &str| VaultError::corrupt(what, format!("pack header: {r}"));
    if h.len() < 9 || &h[..4] != b"LBPK" {
        return Err(bad("bad magic"));
    }
    if h[4] != 1 {
        return Err(bad(&format!("unknown pack version {}", h[4])));
    }
    let n = u32::from_le_bytes(h[5..9].try_into().expect("4")) as usize;
    if h.len() != 9 + n * ENTRY_LEN {
        return Err(bad("length does not match entry count"));
    }
    let mut out = Vec::with_capacity(n);
    let mut offset = 0u32;
    for c in h[9..].chunks_exact(ENTRY_LEN) {
        let blob_type = BlobType::from_code(c[0]).ok_or_else(|| bad("unknown blob type"))?;
        let mut id = [0u8; 32];
        id.copy_from_slice(&c[2..34]);
        let length = u32::from_le_bytes(c[34..38].try_into().expect("4"));
        let raw_length = u32::from_le_bytes(c[38..42].try_into().expect("4"));
        out.push(PackEntry {
            blob_type,
            flags: c[1],
            id: Id(id),
            offset,
            length,
            raw_length,
        });
        offset = offset
            .checked_add(length)
            .ok_or_else(|| bad("blob lengths overflow"))?;
    }
    Ok(out)
}

/// Decompresses with this thread's zstd context: creating one per blob
/// cost 8 % of a volume restore's CPU.
fn decompress(z: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DCTX.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(zstd::bulk::Decompressor::new()?);
        }
        d.as_mut().expect("just made").decompress(z, capacity)
    })
}

/// Decrypts, decompresses and verifies one blob's sealed bytes.
pub fn open_blob(key: &MasterKey, e: &PackEntry, sealed: &[u8], what: &str) -> Result<Vec<u8>> {
    let what_blob = || format!("blob {} in {what}", e.id);
    let plain = key.open(&blob_aad(e.blob_type, &e.id), sealed, &what_blob())?;
    let data = if e.flags & FLAG_ZSTD != 0 {
        decompress(&plain, e.raw_length as usize)
            .map_err(|err| VaultError::corrupt(what_blob(), format!("zstd: {err}")))?
    } else {
        plain
    };
    if data.len() != e.raw_length as usize {
        return Err(VaultError::corrupt(
            what_blob(),
            "length differs from the index",
        ));
    }
    if key.blob_id(&data) != e.id {
        return Err(VaultError::corrupt(
            what_blob(),
            "content does not match its id",
        ));
    }
    Ok(data)
}

/// Reusable buffers for sealing blobs (one per thread).
#[derive(Default)]
pub struct SealScratch {
    compressor: Option<(i32, zstd::bulk::Compressor<'static>)>,
    compressed: Vec<u8>,
    /// The last sealed blob.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for SealScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealScratch")
    }
}

/// Compresses (when it pays: it must save at least 1/32) and seals a blob
/// into `s.sealed`; returns the flags.
pub fn seal_blob_into(
    key: &MasterKey,
    t: BlobType,
    id: &Id,
    data: &[u8],
    level: i32,
    s: &mut SealScratch,
) -> u8 {
    s.sealed.clear();
    if level > 0 && data.len() > 64 {
        if s.compressor.as_ref().is_none_or(|(l, _)| *l != level) {
            s.compressor = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        if let Some((_, c)) = s.compressor.as_mut() {
            s.compressed.clear();
            s.compressed
                .reserve(zstd::zstd_safe::compress_bound(data.len()));
            if c.compress_to_buffer(data, &mut s.compressed).is_ok()
                && s.compressed.len() + s.compressed.len() / 32 < data.len()
            {
                key.seal_into(&blob_aad(t, id), &s.compressed, &mut s.sealed);
                return FLAG_ZSTD;
            }
        }
    }
    key.seal_into(&blob_aad(t, id), data, &mut s.sealed);
    0
}

/// Compresses (when it pays) and seals a blob; returns (flags, sealed).
pub fn seal_blob(key: &MasterKey, t: BlobType, id: &Id, data: &[u8], level: i32) -> (u8, Vec<u8>) {
    let mut s = SealScratch::default();
    let flags = seal_blob_into(key, t, id, data, level, &mut s);
    (flags, s.sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_roundtrip_and_corruption() {
        let key = MasterKey::generate();
        let mut w = PackWriter::new();
        let blobs: Vec<Vec<u8>> = vec![vec![7u8; 10_000], b"tree".to_vec(), (0..255u8).collect()];
        for (i, b) in blobs.iter().enumerate() {
            let t = if i == 1 {
                BlobType::Tree
            } else {
                BlobType::Data
            };
            let id = key.blob_id(b);
            let (flags, sealed) = seal_blob(&key, t, &id, b, 3);
            w.add(t, flags, id, &sealed, b.len() as u32);
        }
        let (id, bytes, entries) = w.finish(&key);
        assert_eq!(id, Id::of_stored(&bytes));
        assert_eq!(entries[0].flags, FLAG_ZSTD, "repetitive data compresses");
        let parsed = parse_pack(&key, &bytes, "p").unwrap();
        assert_eq!(parsed, entries);
        for (e, b) in parsed.iter().zip(&blobs) {
            let s = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(&open_blob(&key, e, s, "p").unwrap(), b);
        }
        let mut bad = bytes.clone();
        bad[5] ^= 0x40;
        let e = parsed[0];
        let s = &bad[e.offset as usize..(e.offset + e.length) as usize];
        assert!(open_blob(&key, &e, s, "p").is_err());
        let mut bad_header = bytes.clone();
        let n = bad_header.len();
        bad_header[n - 10] ^= 1;
        assert!(parse_pack(&key, &bad_header, "p").is_err());
    }
}
