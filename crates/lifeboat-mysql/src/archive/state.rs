//! The archive's running state: what the follower wrote, read and cut at
//! whole events, then sealed into points and rolled up.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Vault};

use super::{ArchiveEvent, ArchiveOptions};
use crate::binlog::{file_number, scan};
use crate::error::{MysqlError, Result};
use crate::segment::{Pending, Segment, Through, write_rollup, write_seal};

/// The archive's running state.
pub(super) struct State<'v> {
    pub(super) vault: &'v Vault,
    pub(super) resource: String,
    pub(super) server_id: u64,
    pub(super) writer: BackupWriter<'v>,
    /// Seal points of this session, not rolled up yet.
    pub(super) seals: Vec<(Id, RecoveryPoint)>,
    pub(super) seal_bytes: usize,
    /// The file followed, and bytes read but not yet cut into whole events.
    pub(super) file: String,
    pub(super) buf: Vec<u8>,
    pub(super) buf_start: u64,
    pub(super) pending: Vec<Pending>,
    /// The spooled file read from so far (its disappearance is an error).
    pub(super) opened: Option<PathBuf>,
    pub(super) gap: Option<String>,
    pub(super) through: Option<Through>,
    /// The last "through" mark written to the vault.
    pub(super) through_written: Option<DateTime<Utc>>,
    pub(super) last_point: Instant,
    pub(super) first_seal: Option<Instant>,
    /// The last rollup of this session that held no binlog (an idle
    /// stretch): the next such rollup, caught up at the same position and
    /// later, replaces it, so an idle server leaves one point, not 12 an hour.
    pub(super) idle_rollup: Option<Id>,
}

impl State<'_> {
    /// Reads what the follower appended to the current file and cuts it into events.
    pub(super) fn read(&mut self, dir: &Path) -> Result<u64> {
        use std::io::{Read, Seek, SeekFrom};
        let path = dir.join(&self.file);
        let mut f = match std::fs::File::open(&path) {
            Ok(f) => f,
            // The follower has not made it yet; once read, it must stay.
            Err(_) if self.opened.as_ref() != Some(&path) => return Ok(0),
            Err(_) => return Err(crate::spool::gone(&path)),
        };
        if self.opened.as_ref() != Some(&path) {
            crate::spool::make_private(&f, &path)?;
            self.opened = Some(path.clone());
        }
        let at = self.buf_start + self.buf.len() as u64;
        f.seek(SeekFrom::Start(at))
            .map_err(|e| MysqlError::io("read", &path, e))?;
        let before = self.buf.len();
        f.read_to_end(&mut self.buf)
            .map_err(|e| MysqlError::io("read", &path, e))?;
        if self.buf.len() == before {
            return Ok(0);
        }
        let (events, used) = scan(&self.buf, self.buf_start).map_err(|e| MysqlError::Tool {
            program: "binlog".into(),
            reason: format!("{}: {e}", path.display()),
        })?;
        if used == 0 {
            return Ok(0);
        }
        let bytes: Vec<u8> = self.buf.drain(..used).collect();
        let start = self.buf_start;
        self.buf_start += used as u64;
        let time = |ts: u32| DateTime::from_timestamp(ts as i64, 0);
        let gap = self.gap.take();
        match self.pending.last_mut() {
            Some(p) if p.seg.file == self.file && p.seg.end == start => {
                p.seg.end = self.buf_start;
                p.bytes.extend_from_slice(&bytes);
            }
            _ => self.pending.push(Pending {
                seg: Segment {
                    file: self.file.clone(),
                    start,
                    end: self.buf_start,
                    first_time: None,
                    last_time: None,
                    last_gtid: None,
                    gap_before: gap,
                    inline: None,
                    node: None,
                },
                bytes,
            }),
        }
        let p = self.pending.last_mut().expect("pending");
        for e in events.iter().filter(|e| e.log_pos != 0 && e.timestamp != 0) {
            if p.seg.first_time.is_none() {
                p.seg.first_time = time(e.timestamp);
            }
            p.seg.last_time = time(e.timestamp);
            if e.gtid.is_some() {
                p.seg.last_gtid = e.gtid.clone();
            }
        }
        Ok(used as u64)
    }

    /// The next file the follower started, if any.
    pub(super) fn next_file(&self, dir: &Path) -> Option<String> {
        let n = file_number(&self.file)?;
        let mut best: Option<(u64, String)> = None;
        for e in std::fs::read_dir(dir).ok()?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(m) = file_number(&name)
                && m > n
                && best.as_ref().is_none_or(|(b, _)| m < *b)
            {
                best = Some((m, name));
            }
        }
        best.map(|(_, f)| f)
    }

    /// Writes a seal point with what arrived; without new bytes, only when the
    /// "caught up" mark moved and the heartbeat is due (or the archive stops).
    pub(super) fn seal(
        &mut self,
        stopping: bool,
        opts: &ArchiveOptions,
        on_event: &mut dyn FnMut(&ArchiveEvent),
    ) -> Result<()> {
        let newer = self.through.as_ref().map(|t| t.time) > self.through_written;
        let heartbeat = newer && (stopping || self.last_point.elapsed() >= opts.heartbeat);
        if self.pending.is_empty() && !heartbeat {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let bytes: u64 = pending.iter().map(|p| p.bytes.len() as u64).sum();
        let last = pending.last().map(|p| p.seg.clone());
        let started = Instant::now();
        let (id, point) = write_seal(
            &self.writer,
            &self.resource,
            self.server_id,
            pending,
            self.through.clone(),
            opts.inline_max,
        )?;
        self.last_point = Instant::now();
        self.through_written = self.through.as_ref().map(|t| t.time);
        self.first_seal.get_or_insert_with(Instant::now);
        self.seal_bytes += bytes as usize;
        on_event(&ArchiveEvent::Sealed {
            point: id.to_hex(),
            bytes,
            file: last
                .as_ref()
                .map(|s| s.file.clone())
                .unwrap_or_else(|| self.file.clone()),
            end: last.as_ref().map(|s| s.end).unwrap_or(self.buf_start),
            last_time: last.as_ref().and_then(|s| s.last_time),
            last_gtid: last.and_then(|s| s.last_gtid),
            through: self.through.as_ref().map(|t| t.time),
            sealed_at: Utc::now(),
            write_ms: started.elapsed().as_secs_f64() * 1000.0,
        });
        self.seals.push((id, point));
        Ok(())
    }

    /// Replaces this session's seal points by one rollup point when it is
    /// due (or `force`d), and starts a fresh vault session.
    pub(super) fn rollup(
        &mut self,
        force: bool,
        opts: &ArchiveOptions,
        on_event: &mut dyn FnMut(&ArchiveEvent),
    ) -> Result<()> {
        let due = self
            .first_seal
            .is_some_and(|t| t.elapsed() >= opts.rollup_interval)
            || self.seal_bytes >= opts.rollup_bytes;
        if self.seals.is_empty() || !(force || due) {
            return Ok(());
        }
        let idle = self
            .seals
            .iter()
            .all(|(id, p)| crate::segment::binlog_meta(id, p).is_ok_and(|m| m.segments.is_empty()));
        if let Some(id) = write_rollup(&self.writer, &self.resource, &self.seals)? {
            on_event(&ArchiveEvent::RolledUp {
                point: id.to_hex(),
                replaced: self.seals.len(),
            });
            let replaced = if idle {
                self.idle_rollup.replace(id)
            } else {
                self.idle_rollup = None;
                None
            };
            if let Some(old) = replaced {
                let new = self.vault.read_point(&id)?;
                if let Err(e) = self.vault.remove_superseded_point(&old, &new) {
                    tracing::warn!("idle rollup {} kept: {e}", old.short());
                }
            }
        }
        self.seals.clear();
        self.seal_bytes = 0;
        self.first_seal = None;
        // A fresh session: a prune may delete what it marked meanwhile.
        let w = std::mem::replace(
            &mut self.writer,
            BackupWriter::start(self.vault, "archive")?,
        );
        w.finish()?;
        Ok(())
    }

    /// Reads the current file; moves on to the next once the follower has
    /// started it (the current one must then end at a whole event).
    pub(super) fn catch_up(&mut self, dir: &Path) -> Result<()> {
        loop {
            self.read(dir)?;
            let Some(next) = self.next_file(dir) else {
                break;
            };
            self.read(dir)?;
            if !self.buf.is_empty() {
                return Err(MysqlError::Tool {
                    program: "binlog".into(),
                    reason: format!(
                        "{} ends in the middle of an event ({} bytes left) although the server moved on to {next}",
                        self.file,
                        self.buf.len()
                    ),
                });
            }
            self.file = next;
            self.buf_start = 0;
        }
        Ok(())
    }

    /// Marks the archive caught up through `asked` when it holds at least
    /// the server's position `(file, pos)` asked for then.
    pub(super) fn mark_through(&mut self, asked: DateTime<Utc>, (file, pos): (String, u64)) {
        let ours = (file_number(&self.file).unwrap_or(0), self.buf_start);
        if ours >= (file_number(&file).unwrap_or(0), pos) {
            self.through = Some(Through {
                time: asked,
                file: self.file.clone(),
                end: self.buf_start,
            });
        }
    }
}
