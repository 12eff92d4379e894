//! A reader of the `mbstream` (xbstream) format that `mariadb-backup
//! --stream=mbstream` writes: a sequence of chunks, each naming the file of
//! the backup it belongs to.
//!
//! ```text
//! chunk   = "XBSTCK01" ‖ u8 flags ‖ u8 type ‖ u32le path_len ‖ path
//!           type 'P' (payload): ‖ u64le length ‖ u64le offset ‖ u32le crc32(payload) ‖ payload
//!           type 'E' (end of the file): nothing more
//! flags   = bit 0: the chunk may be skipped when its type is unknown
//! ```
//! The chunks of several files interleave (the backup copies files in
//! parallel); each file's payloads come in order (`offset` is where the
//! payload goes, and equals the bytes of that file so far), then its `E`
//! chunk. A file with no payload is empty. The stream ends with its last chunk.

use std::io::Read;

/// Magic at the start of every chunk.
const MAGIC: &[u8; 8] = b"XBSTCK01";
/// Flag: a chunk of an unknown type may be skipped.
const FLAG_IGNORABLE: u8 = 0x01;
/// Longest path the format allows (the server's FN_REFLEN).
const MAX_PATH: u32 = 512;
/// Largest payload accepted (mariadb-backup writes at most a few MiB per chunk).
const MAX_PAYLOAD: u64 = 256 << 20;

/// One chunk of the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes of `path` at `offset`.
    Payload {
        /// The file, relative to the backup's directory.
        path: String,
        /// Where in the file the bytes go.
        offset: u64,
        /// The bytes.
        data: Vec<u8>,
    },
    /// `path` is complete.
    End {
        /// The file.
        path: String,
    },
}

/// What is wrong with a stream, and where.
#[derive(Debug, thiserror::Error)]
#[error("mbstream at byte {at}: {reason}")]
pub struct StreamError {
    /// Offset in the stream of the chunk at fault.
    pub at: u64,
    /// What is wrong.
    pub reason: String,
}

/// Reads chunks from a byte stream.
pub struct MbReader<R> {
    inner: R,
    pos: u64,
}

impl<R: Read> MbReader<R> {
    /// A reader of the stream `inner`.
    pub fn new(inner: R) -> Self {
        MbReader { inner, pos: 0 }
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The next chunk, or `None` at the end of the stream (which may only
    /// come between chunks). Chunks of unknown types marked ignorable are
    /// skipped; payload checksums are verified.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, StreamError> {
        loop {
            let start = self.pos;
            let bad = |reason: String| StreamError { at: start, reason };
            let mut head = [0u8; 14];
            match self.fill(&mut head)? {
                0 => return Ok(None),
                14 => {}
                n => {
                    return Err(bad(format!(
                        "the stream ends inside a chunk header ({n} of 14 bytes)"
                    )));
                }
            }
            if &head[..8] != MAGIC {
                return Err(bad(
                    "no chunk magic XBSTCK01 (not an mbstream, or damaged)".into()
                ));
            }
            let (flags, kind) = (head[8], head[9]);
            let path_len = u32::from_le_bytes(head[10..14].try_into().expect("4 bytes"));
            if path_len >= MAX_PATH {
                return Err(bad(format!("path length {path_len} is too large")));
            }
            let mut path = vec![0u8; path_len as usize];
            self.exact(&mut path, start)?;
            let path =
                String::from_utf8(path).map_err(|_| bad("a path that is not UTF-8".into()))?;
            match kind {
                b'E' => return Ok(Some(Chunk::End { path })),
                b'P' => {}
                other if flags & FLAG_IGNORABLE != 0 => {
                    tracing::debug!(kind = other, %path, "skipping an ignorable mbstream chunk");
                }
                other => {
                    return Err(bad(format!("unknown chunk type 0x{other:02x} for {path}")));
                }
            }
            let mut fixed = [0u8; 20];
            self.exact(&mut fixed, start)?;
            let len = u64::from_le_bytes(fixed[..8].try_into().expect("8 bytes"));
            let offset = u64::from_le_bytes(fixed[8..16].try_into().expect("8 bytes"));
            let crc = u32::from_le_bytes(fixed[16..20].try_into().expect("4 bytes"));
            if len > MAX_PAYLOAD {
                return Err(bad(format!(
                    "payload of {len} bytes for {path} is too large"
                )));
            }
            let mut data = vec![0u8; len as usize];
            self.exact(&mut data, start)?;
            if kind != b'P' {
                continue;
            }
            let sum = crc32fast::hash(&data);
            if sum != crc {
                return Err(bad(format!(
                    "checksum mismatch in {path} at offset {offset}: expected {crc:08x}, read {sum:08x}"
                )));
            }
            return Ok(Some(Chunk::Payload { path, offset, data }));
        }
    }

    /// Reads as much of `buf` as the stream holds; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, StreamError> {
        let mut n = 0;
        while n < buf.len() {
            match self.inner.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(StreamError {
                        at: self.pos + n as u64,
                        reason: format!("reading failed: {e}"),
                    });
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads all of `buf`; the end of the stream here is an error of the chunk at `start`.
    fn exact(&mut self, buf: &mut [u8], start: u64) -> Result<(), StreamError> {
        let n = self.fill(buf)?;
        if n < buf.len() {
            return Err(StreamError {
                at: start,
                reason: format!(
                    "the stream ends inside a chunk ({n} of {} bytes; was the backup cut short?)",
                    buf.len()
                ),
            });
        }
        Ok(())
    }
}

/// A path of the stream as components below the backup's directory: no
/// absolute path, no `..`, no empty name (a leading `./` is dropped).
pub fn components(path: &str) -> Option<Vec<&str>> {
    if path.starts_with('/') || path.contains('\0') {
        return None;
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return None;
    }
    Some(parts)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A chunk as mariadb-backup writes it.
    pub(crate) fn chunk(path: &str, payload: Option<(u64, &[u8])>) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.push(0);
        out.push(if payload.is_some() { b'P' } else { b'E' });
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        if let Some((off, data)) = payload {
            out.extend_from_slice(&(data.len() as u64).to_le_bytes());
            out.extend_from_slice(&off.to_le_bytes());
            out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
            out.extend_from_slice(data);
        }
        out
    }

    fn all(bytes: &[u8]) -> Result<Vec<Chunk>, StreamError> {
        let mut r = MbReader::new(bytes);
        let mut out = Vec::new();
        while let Some(c) = r.next_chunk()? {
            out.push(c);
        }
        Ok(out)
    }

    #[test]
    fn reads_interleaved_files_and_skips_ignorable_chunks() {
        let mut s = chunk("ibdata1", Some((0, b"abc")));
        s.extend(chunk("t/a.frm", Some((0, b"frm"))));
        s.extend(chunk("ibdata1", Some((3, b"def"))));
        let mut odd = chunk("x", Some((0, b"zz")));
        odd[8] = FLAG_IGNORABLE;
        odd[9] = b'S';
        s.extend(odd);
        s.extend(chunk("ibdata1", None));
        s.extend(chunk("t/a.frm", None));
        let got = all(&s).unwrap();
        assert_eq!(got.len(), 5);
        assert_eq!(
            got[2],
            Chunk::Payload {
                path: "ibdata1".into(),
                offset: 3,
                data: b"def".to_vec()
            }
        );
        assert_eq!(
            got[4],
            Chunk::End {
                path: "t/a.frm".into()
            }
        );
    }

    #[test]
    fn refuses_damage_and_cut_streams() {
        let good = chunk("ibdata1", Some((0, b"abcdef")));
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(all(&flipped).unwrap_err().reason.contains("checksum"));
        let cut = &good[..good.len() - 2];
        assert!(all(cut).unwrap_err().reason.contains("ends inside a chunk"));
        let mut magic = good.clone();
        magic[0] = b'Y';
        assert!(all(&magic).unwrap_err().reason.contains("magic"));
        let mut unknown = good.clone();
        unknown[9] = b'S';
        assert!(
            all(&unknown)
                .unwrap_err()
                .reason
                .contains("unknown chunk type")
        );
        let mut two = good.clone();
        two.extend(&good[..5]);
        let e = all(&two).unwrap_err();
        assert_eq!(e.at, good.len() as u64);
    }

    #[test]
    fn paths_stay_below_the_backup() {
        assert_eq!(components("./t/a.ibd").unwrap(), ["t", "a.ibd"]);
        assert_eq!(components("ibdata1").unwrap(), ["ibdata1"]);
        for bad in ["/etc/passwd", "../x", "t/../../x", "", ".", "a\0b"] {
            assert!(components(bad).is_none(), "{bad}");
        }
    }
}
