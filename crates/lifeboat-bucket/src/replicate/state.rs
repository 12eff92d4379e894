//! The resume state of a replication rule: which version of each source
//! object was copied, and what the destination held after the copy.
//!
//! Stored in the rule's state directory as two files of lines:
//! `state` (a compacted snapshot, replaced atomically) and `journal` (lines
//! appended since). A line is `c SRC DST KEY` (copied), `b SRC - KEY`
//! (there before the rule, not copied: see `--existing`) or `x - - KEY`
//! (forgotten); SRC and DST are 16-hex fingerprints (hashes of the version
//! tokens), KEY is a JSON string. The first line of `state` names the rule.
//!
//! Journal lines are written only at checkpoints, after the destination has
//! made its writes durable, so a line never claims a copy that a crash could
//! undo. A crash loses at most the lines since the last checkpoint: those
//! objects are compared again, and copied again only if needed.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use crate::error::{BucketError, Result};

/// What the state knows of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Fingerprint of the source version last handled.
    pub src: u64,
    /// Fingerprint of the destination object written for it (0 when not copied).
    pub dst: u64,
    /// Whether it was copied (false: it was there before the rule and left alone).
    pub copied: bool,
}

/// Fingerprint of a version token.
pub fn fingerprint(token: &str) -> u64 {
    let h = blake3::hash(token.as_bytes());
    u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The state of one rule, in memory, with its files.
#[derive(Debug)]
pub struct State {
    dir: PathBuf,
    header: String,
    /// Key → entry.
    pub map: HashMap<String, Entry>,
    pending: Vec<u8>,
    journal_lines: usize,
    /// Whether the state existed before this run (a resumed rule).
    pub resumed: bool,
    /// When the rule was first started (ns since the epoch).
    pub created_ns: i64,
}

fn err(path: &Path, reason: impl Into<String>) -> BucketError {
    BucketError::State {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn parse_line(line: &str, map: &mut HashMap<String, Entry>) -> Option<()> {
    let mut it = line.splitn(4, ' ');
    let tag = it.next()?;
    let src = it.next()?;
    let dst = it.next()?;
    let key: String = serde_json::from_str(it.next()?).ok()?;
    let hex = |s: &str| u64::from_str_radix(s, 16).ok();
    match tag {
        "c" => {
            map.insert(
                key,
                Entry {
                    src: hex(src)?,
                    dst: hex(dst)?,
                    copied: true,
                },
            );
        }
        "b" => {
            map.insert(
                key,
                Entry {
                    src: hex(src)?,
                    dst: 0,
                    copied: false,
                },
            );
        }
        "x" => {
            map.remove(&key);
        }
        _ => return None,
    }
    Some(())
}

fn line(key: &str, e: Option<&Entry>) -> String {
    let k = serde_json::to_string(key).expect("strings serialize");
    match e {
        Some(e) if e.copied => format!("c {:016x} {:016x} {k}\n", e.src, e.dst),
        Some(e) => format!("b {:016x} - {k}\n", e.src),
        None => format!("x - - {k}\n"),
    }
}

impl State {
    /// Loads (or starts) the state of the rule described by `header` in `dir`.
    /// Refuses a directory holding another rule's state.
    pub fn load(dir: &Path, header: &str) -> Result<State> {
        std::fs::create_dir_all(dir).map_err(|e| err(dir, format!("cannot create it: {e}")))?;
        let mut st = State {
            dir: dir.to_path_buf(),
            header: header.to_string(),
            map: HashMap::new(),
            pending: Vec::new(),
            journal_lines: 0,
            resumed: false,
            created_ns: chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0),
        };
        let snap = dir.join("state");
        if let Ok(f) = std::fs::File::open(&snap) {
            let mut lines = std::io::BufReader::new(f).lines();
            let first = lines
                .next()
                .transpose()
                .map_err(|e| err(&snap, e.to_string()))?
                .unwrap_or_default();
            let (h, created) = first
                .rsplit_once(" created=")
                .unwrap_or((first.as_str(), ""));
            if h != header {
                return Err(err(
                    &snap,
                    format!(
                        "it belongs to another rule ({h}); give this rule its own --state directory"
                    ),
                ));
            }
            st.created_ns = created.parse().unwrap_or(st.created_ns);
            for l in lines {
                let l = l.map_err(|e| err(&snap, e.to_string()))?;
                parse_line(&l, &mut st.map)
                    .ok_or_else(|| err(&snap, format!("unreadable line {l:?}")))?;
            }
            st.resumed = true;
        }
        let jpath = dir.join("journal");
        if let Ok(f) = std::fs::File::open(&jpath) {
            for l in std::io::BufReader::new(f).lines() {
                let Ok(l) = l else { break };
                // A torn last line (a crash mid-write) is ignored.
                if parse_line(&l, &mut st.map).is_some() {
                    st.journal_lines += 1;
                }
            }
        }
        if !st.resumed {
            st.compact()?;
        }
        Ok(st)
    }

    /// Records a key's new entry (`None`: forget the key).
    pub fn set(&mut self, key: &str, e: Option<Entry>) {
        self.pending
            .extend_from_slice(line(key, e.as_ref()).as_bytes());
        match e {
            Some(e) => {
                self.map.insert(key.to_string(), e);
            }
            None => {
                self.map.remove(key);
            }
        }
        self.journal_lines += 1;
    }

    /// Whether lines wait for the next checkpoint.
    pub fn dirty(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Appends the pending lines to the journal and syncs it. Call after the
    /// destination's writes are durable. Compacts when the journal is long.
    pub fn checkpoint(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let jpath = self.dir.join("journal");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&jpath)
            .map_err(|e| err(&jpath, e.to_string()))?;
        f.write_all(&self.pending)
            .and_then(|_| f.sync_data())
            .map_err(|e| {
                err(
                    &jpath,
                    format!(
                        "{e} (the state is kept in memory and written again at the next checkpoint)"
                    ),
                )
            })?;
        self.pending.clear();
        if self.journal_lines > 4 * self.map.len() + 10_000 {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the snapshot from memory and empties the journal.
    pub fn compact(&mut self) -> Result<()> {
        let snap = self.dir.join("state");
        let tmp = self.dir.join("state.tmp");
        let write = || -> std::io::Result<()> {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&tmp)?);
            writeln!(w, "{} created={}", self.header, self.created_ns)?;
            for (k, e) in &self.map {
                w.write_all(line(k, Some(e)).as_bytes())?;
            }
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &snap)?;
            std::fs::File::create(self.dir.join("journal"))?.sync_all()
        };
        write().map_err(|e| err(&snap, e.to_string()))?;
        self.pending.clear();
        self.journal_lines = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_restart_and_refuses_another_rule() {
        let d = tempfile::tempdir().unwrap();
        let mut s = State::load(d.path(), "rule A").unwrap();
        assert!(!s.resumed);
        s.set(
            "a b\n\"c",
            Some(Entry {
                src: 1,
                dst: 2,
                copied: true,
            }),
        );
        s.set(
            "old",
            Some(Entry {
                src: 3,
                dst: 0,
                copied: false,
            }),
        );
        s.set(
            "gone",
            Some(Entry {
                src: 4,
                dst: 5,
                copied: true,
            }),
        );
        s.set("gone", None);
        s.checkpoint().unwrap();
        s.set(
            "lost",
            Some(Entry {
                src: 9,
                dst: 9,
                copied: true,
            }),
        ); // no checkpoint: a crash
        let s2 = State::load(d.path(), "rule A").unwrap();
        assert!(s2.resumed);
        assert_eq!(s2.map.len(), 2);
        assert_eq!(
            s2.map["a b\n\"c"],
            Entry {
                src: 1,
                dst: 2,
                copied: true
            }
        );
        assert!(!s2.map["old"].copied);
        assert_eq!(s2.created_ns, s.created_ns);
        let mut s3 = s2;
        s3.compact().unwrap();
        assert_eq!(State::load(d.path(), "rule A").unwrap().map.len(), 2);
        assert!(State::load(d.path(), "rule B").is_err());
    }
}
