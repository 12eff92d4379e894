//! From an mbstream into the vault: each file of the backup is stored as its
//! payloads arrive, on a thread of its own (the stream interleaves the files
//! mariadb-backup copies in parallel), so nothing is first copied to local
//! disk. InnoDB tablespaces are made of fixed pages (4 to 64 KiB) that stay
//! at their offsets, so they are cut into [`BLOCK`]-sized blobs on the page
//! grid: an unchanged page range is an unchanged blob, and a changed row
//! costs one block, not the megabyte of a content-defined chunk around it.
//! Every other file (the redo log copy, Aria/MyISAM, .frm, the backup's own
//! files) goes through the vault's content-defined chunker.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::ScopedJoinHandle;

use lifeboat_vault::{BackupWriter, BlobType, Id};

use super::mbstream::{Chunk, MbReader, components};
use crate::error::{MysqlError, Result};
use crate::snapshot::Counters;

/// Payloads queued per file before the stream reader waits for its chunker.
const QUEUE: usize = 4;
/// Blob size of InnoDB tablespaces: a multiple of every InnoDB page size.
pub(super) const BLOCK: usize = 64 * 1024;

/// Whether a file of the backup is an InnoDB tablespace (system, undo or
/// per table), stored in fixed blocks.
pub(super) fn is_tablespace(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".ibd")
        || name
            .strip_prefix("ibdata")
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        || name
            .strip_prefix("undo")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether a file of the backup is stored in fixed [`BLOCK`]s: a tablespace,
/// an incremental point's `.delta` of one (a header page, then whole pages:
/// its blocks lie on its own page grid) or a `.new` tablespace (a table an
/// incremental copies whole).
pub(super) fn is_blocked(path: &str) -> bool {
    is_tablespace(path)
        || path.strip_suffix(".delta").is_some_and(is_tablespace)
        || path.ends_with(".new")
}
/// Files whose bytes are also kept in memory (they describe the backup).
pub(super) const DESCRIBING: &[&str] = &[
    "xtrabackup_checkpoints",
    "xtrabackup_binlog_info",
    "mariadb_backup_binlog_info",
    "xtrabackup_info",
    "mariadb_backup_info",
    "mariadb_backup_checkpoints",
];

/// One stored file of the backup.
#[derive(Debug, Clone, Default)]
pub(super) struct Stored {
    /// Data blobs, in order.
    pub(super) content: Vec<Id>,
    /// Its size.
    pub(super) size: u64,
}

/// What a stream became: every file by its path, and the describing files' bytes.
#[derive(Debug, Default)]
pub(super) struct Streamed {
    pub(super) files: BTreeMap<String, Stored>,
    pub(super) describing: HashMap<String, Vec<u8>>,
}

/// A file whose payloads are being chunked.
struct Open<'s> {
    tx: SyncSender<Vec<u8>>,
    next: u64,
    saver: ScopedJoinHandle<'s, Result<(Vec<Id>, u64)>>,
    keep: Option<Vec<u8>>,
}

/// Payloads received over a channel, as a byte stream.
struct Payloads {
    rx: Receiver<Vec<u8>>,
    buf: Vec<u8>,
    pos: usize,
}

impl Read for Payloads {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.buf.len() {
            match self.rx.recv() {
                Ok(b) => {
                    self.buf = b;
                    self.pos = 0;
                }
                Err(_) => return Ok(0), // the sender is done: end of file
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads the whole stream and stores each file through `writer`.
/// `counters.bytes` counts streamed bytes, `chunks_done` finished files.
pub(super) fn store_stream(
    writer: &BackupWriter<'_>,
    input: impl Read,
    counters: &Counters,
) -> Result<Streamed> {
    let mut reader = MbReader::new(input);
    let mut out = Streamed::default();
    std::thread::scope(|sc| -> Result<()> {
        let mut open: HashMap<String, Open<'_>> = HashMap::new();
        let result = (|| -> Result<()> {
            while let Some(chunk) = reader.next_chunk().map_err(stream_error)? {
                match chunk {
                    Chunk::Payload { path, offset, data } => {
                        let path = check_path(&path, reader.position())?;
                        let f = open
                            .entry(path.clone())
                            .or_insert_with(|| start_file(sc, writer, counters, &path));
                        if offset != f.next {
                            return Err(stream_error(super::mbstream::StreamError {
                                at: reader.position(),
                                reason: format!(
                                    "{path}: a payload for offset {offset} where {} was next",
                                    f.next
                                ),
                            }));
                        }
                        f.next += data.len() as u64;
                        if let Some(k) = f.keep.as_mut() {
                            k.extend_from_slice(&data);
                        }
                        if f.tx.send(data).is_err() {
                            // Its chunker stopped: the join says why.
                            let f = open.remove(&path).expect("open");
                            finish(f, &path, &mut out, counters)?;
                            return Err(MysqlError::Interrupted);
                        }
                    }
                    Chunk::End { path } => {
                        let path = check_path(&path, reader.position())?;
                        let f = open
                            .remove(&path)
                            .unwrap_or_else(|| start_file(sc, writer, counters, &path));
                        finish(f, &path, &mut out, counters)?;
                    }
                }
            }
            if let Some(path) = open.keys().next() {
                return Err(stream_error(super::mbstream::StreamError {
                    at: reader.position(),
                    reason: format!("the stream ends before {path} is complete"),
                }));
            }
            Ok(())
        })();
        // Whatever happened, every chunker ends (a closed channel is its end of file).
        for (_, f) in open.drain() {
            drop(f.tx);
            let _ = f.saver.join();
        }
        result
    })?;
    Ok(out)
}

fn stream_error(e: super::mbstream::StreamError) -> MysqlError {
    MysqlError::Tool {
        program: "mariadb-backup".into(),
        reason: format!("its output is not a valid backup stream: {e}"),
    }
}

/// The path's normal form (`a/b`), or an error when it leaves the backup's directory.
fn check_path(path: &str, at: u64) -> Result<String> {
    match components(path) {
        Some(c) => Ok(c.join("/")),
        None => Err(stream_error(super::mbstream::StreamError {
            at,
            reason: format!("refusing the path {path:?} (outside the backup's directory)"),
        })),
    }
}

/// Starts the chunker of one file.
fn start_file<'s>(
    sc: &'s std::thread::Scope<'s, '_>,
    writer: &'s BackupWriter<'_>,
    counters: &'s Counters,
    path: &str,
) -> Open<'s> {
    let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
    let fixed = is_blocked(path);
    let saver = sc.spawn(move || {
        let payloads = Payloads {
            rx,
            buf: Vec::new(),
            pos: 0,
        };
        let progress = |n| {
            counters.bytes.fetch_add(n, Ordering::Relaxed);
        };
        let r = if fixed {
            save_blocks(writer, payloads, progress)
        } else {
            writer.save_stream(payloads, progress)
        };
        r.map_err(MysqlError::from)
    });
    Open {
        tx,
        next: 0,
        saver,
        keep: DESCRIBING.contains(&path).then(Vec::new),
    }
}

/// Blocks read before they are stored side by side (8 MiB).
const BATCH_BLOCKS: usize = 128;

/// Stores a stream in blobs of [`BLOCK`] bytes (the last one shorter); the
/// blocks of a batch are hashed, compressed and sealed in parallel (a big
/// tablespace is one file, and would otherwise be stored by one thread).
fn save_blocks(
    writer: &BackupWriter<'_>,
    mut r: impl Read,
    progress: impl Fn(u64),
) -> lifeboat_vault::Result<(Vec<Id>, u64)> {
    use rayon::prelude::*;
    let mut ids = Vec::new();
    let mut total = 0;
    let mut batch = vec![0u8; BLOCK * BATCH_BLOCKS];
    loop {
        let mut n = 0;
        while n < batch.len() {
            match r.read(&mut batch[n..])? {
                0 => break,
                k => n += k,
            }
        }
        let stored: Vec<lifeboat_vault::Result<Id>> = batch[..n]
            .par_chunks(BLOCK)
            .map(|b| writer.save_blob(BlobType::Data, b))
            .collect();
        for id in stored {
            ids.push(id?);
        }
        total += n as u64;
        progress(n as u64);
        if n < batch.len() {
            return Ok((ids, total));
        }
    }
}

/// Ends a file: its chunker reads to the end, and its blobs are recorded
/// (a path seen again after its end replaces the earlier file).
fn finish(f: Open<'_>, path: &str, out: &mut Streamed, counters: &Counters) -> Result<()> {
    drop(f.tx);
    let (content, size) = match f.saver.join() {
        Ok(r) => r?,
        Err(p) => std::panic::resume_unwind(p),
    };
    if size != f.next {
        return Err(MysqlError::Tool {
            program: "mariadb-backup".into(),
            reason: format!(
                "{path}: {size} bytes stored where the stream held {}",
                f.next
            ),
        });
    }
    if let Some(k) = f.keep {
        out.describing.insert(path.to_string(), k);
    }
    out.files.insert(path.to_string(), Stored { content, size });
    counters.chunks_done.fetch_add(1, Ordering::Relaxed);
    Ok(())
}
