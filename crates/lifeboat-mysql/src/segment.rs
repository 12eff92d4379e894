//! Archived binlog in the vault: `mysql-binlog` points and their segments.
//!
//! A *segment* is a byte range `[start, end)` of one binlog file, cut at event
//! boundaries. The archive seals what arrived every couple of seconds as a
//! *seal point*; a seal's bytes are small, so they travel inside the point
//! itself (`inline`: zstd, base64, inside the sealed point object) and cost
//! one object write — no pack, no index file. A big seal stores its bytes as
//! data blobs instead (tree node `node`). Every few minutes a *rollup point*
//! stores the seals' bytes as ordinary chunked blobs, one tree node per run
//! of contiguous bytes, and the seal points it replaces are removed; a crash
//! between the two leaves both, which readers merge (same bytes, same
//! offsets). The layout is normative in `docs/vault-format.md`.

use base64::Engine;
use chrono::{DateTime, Utc};
use lifeboat_vault::tree::{Node, NodeKind, Tree};
use lifeboat_vault::{BackupWriter, Id, RecoveryPoint, Summary, VaultError};
use serde::{Deserialize, Serialize};

use crate::binlog::file_number;
use crate::error::{MysqlError, Result};

/// One archived byte range of one binlog file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Binlog file name, e.g. `binlog.000042`.
    pub file: String,
    /// First byte (0 = the file's start, magic included).
    pub start: u64,
    /// One past the last byte; always an event boundary.
    pub end: u64,
    /// Timestamp of the first event (the server's clock).
    #[serde(default)]
    pub first_time: Option<DateTime<Utc>>,
    /// Timestamp of the last event.
    #[serde(default)]
    pub last_time: Option<DateTime<Utc>>,
    /// The last GTID the range passes.
    #[serde(default)]
    pub last_gtid: Option<String>,
    /// Set when binlogs were purged on the server before they could be
    /// archived: what is missing before this segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_before: Option<String>,
    /// The bytes, zstd-compressed and base64-encoded (small seals).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// Otherwise the name of the node of the point's root tree holding them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// Where the archive stood when it last knew it had everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Through {
    /// Every event the server wrote before this time (its clock as seen by
    /// the archive host) is archived up to `file`:`end`.
    pub time: DateTime<Utc>,
    /// File reached.
    pub file: String,
    /// Position reached.
    pub end: u64,
}

/// The `meta` of a `mysql-binlog` point.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BinlogMeta {
    /// Layout version (1).
    pub format: u32,
    /// The source server's `server_id`.
    pub server_id: u64,
    /// Segments, in binlog order.
    pub segments: Vec<Segment>,
    /// The archive was caught up with the server at this time.
    #[serde(default)]
    pub through: Option<Through>,
    /// A rollup point (replaces seal points); seals are `false`.
    #[serde(default)]
    pub rollup: bool,
}

impl Segment {
    /// Sort key: file number, then offset.
    pub fn key(&self) -> (u64, String, u64) {
        (
            file_number(&self.file).unwrap_or(0),
            self.file.clone(),
            self.start,
        )
    }
}

/// Bytes of one file waiting to be sealed.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The segment so far (no data fields).
    pub seg: Segment,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Compresses and encodes bytes for a segment's `inline`.
pub fn encode_inline(bytes: &[u8]) -> String {
    let z = zstd::encode_all(bytes, 3).expect("zstd in memory");
    base64::engine::general_purpose::STANDARD.encode(z)
}

/// Decodes a segment's `inline`.
pub fn decode_inline(text: &str, what: &str) -> Result<Vec<u8>> {
    let bad = |reason: String| {
        MysqlError::Vault(VaultError::Corrupt {
            object: what.to_string(),
            reason,
        })
    };
    let z = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| bad(format!("inline binlog bytes: {e}")))?;
    zstd::decode_all(&z[..]).map_err(|e| bad(format!("inline binlog bytes: {e}")))
}

/// Name of the tree node holding a segment's bytes.
pub fn node_name(file: &str, start: u64) -> String {
    format!("{file}@{start:012}")
}

fn file_node(name: &str, content: Vec<Id>, size: u64, seg: &Segment) -> Node {
    let mut n = Node {
        kind: NodeKind::File,
        mode: 0o100640,
        size,
        content,
        ..Node::default()
    };
    n.set_name_bytes(name.as_bytes());
    n.attrs.insert("file".into(), seg.file.clone());
    n.attrs.insert("start".into(), seg.start.to_string());
    n.attrs.insert("end".into(), seg.end.to_string());
    n
}

/// Stores the tree of segment nodes and writes the point (stamped `time`, or now).
fn write_point(
    writer: &BackupWriter<'_>,
    resource: &str,
    mut nodes: Vec<Node>,
    meta: &BinlogMeta,
    time: Option<DateTime<Utc>>,
    started: std::time::Instant,
) -> Result<(Id, RecoveryPoint)> {
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let tree = writer.save_tree(&Tree { nodes })?;
    let mut p = RecoveryPoint::new(resource, crate::KIND_BINLOG, tree);
    if let Some(t) = time {
        p.time = t;
    }
    let bytes: u64 = meta.segments.iter().map(|s| s.end - s.start).sum();
    p.paths = meta.segments.iter().map(|s| s.file.clone()).collect();
    p.paths.dedup();
    p.summary = Summary {
        files: meta.segments.len() as u64,
        size: bytes,
        bytes_read: bytes,
        duration_s: started.elapsed().as_secs_f64(),
        ..Summary::default()
    };
    p.meta = serde_json::to_value(meta).expect("meta serializes");
    let id = writer.write_point(&p)?;
    Ok((id, p))
}

/// Writes a seal point holding `pending` (inline when the total is at most
/// `inline_max` bytes, else as blobs) and the `through` mark.
pub fn write_seal(
    writer: &BackupWriter<'_>,
    resource: &str,
    server_id: u64,
    pending: Vec<Pending>,
    through: Option<Through>,
    inline_max: usize,
) -> Result<(Id, RecoveryPoint)> {
    let started = std::time::Instant::now();
    let total: usize = pending.iter().map(|p| p.bytes.len()).sum();
    let mut nodes = Vec::new();
    let mut segments = Vec::new();
    for p in pending {
        let mut seg = p.seg;
        if total <= inline_max {
            seg.inline = Some(encode_inline(&p.bytes));
        } else {
            let name = node_name(&seg.file, seg.start);
            let (ids, n) = writer.save_stream(&p.bytes[..], |_| {})?;
            nodes.push(file_node(&name, ids, n, &seg));
            seg.node = Some(name);
        }
        segments.push(seg);
    }
    let meta = BinlogMeta {
        format: 1,
        server_id,
        segments,
        through,
        rollup: false,
    };
    write_point(writer, resource, nodes, &meta, None, started)
}

/// The meta of a `mysql-binlog` point.
pub fn binlog_meta(id: &Id, p: &RecoveryPoint) -> Result<BinlogMeta> {
    serde_json::from_value(p.meta.clone()).map_err(|e| MysqlError::BadPoint {
        point: id.short(),
        reason: format!("unreadable binlog meta: {e}"),
    })
}

/// Sorts (segment, content ids) pairs into binlog order and merges the
/// contiguous ranges of one file; identical ranges (a crash between a rollup
/// and the removal of its seals) collapse.
fn merge_contiguous(mut parts: Vec<(Segment, Vec<Id>)>) -> Vec<(Segment, Vec<Id>)> {
    parts.sort_by_key(|(s, _)| s.key());
    // Merge contiguous ranges of one file; identical ranges (a crash between
    // a rollup and the removal of its seals) collapse.
    let mut merged: Vec<(Segment, Vec<Id>)> = Vec::new();
    for (s, ids) in parts {
        if let Some((last, lids)) = merged.last_mut()
            && last.file == s.file
        {
            if s.end <= last.end {
                continue; // already covered
            }
            if s.start == last.end && s.gap_before.is_none() {
                last.end = s.end;
                last.last_time = s.last_time.or(last.last_time);
                last.last_gtid = s.last_gtid.or(last.last_gtid.take());
                lids.extend(ids);
                continue;
            }
        }
        merged.push((s, ids));
    }
    merged
}

/// Replaces seal points by one rollup point holding all their bytes as
/// chunked blobs; then removes the seals. Returns the rollup's id.
pub fn write_rollup(
    writer: &BackupWriter<'_>,
    resource: &str,
    seals: &[(Id, RecoveryPoint)],
) -> Result<Option<Id>> {
    if seals.is_empty() {
        return Ok(None);
    }
    let started = std::time::Instant::now();
    let vault = writer.vault();
    // Seals of this very session may hold nodes in trees written after the
    // session's index was loaded: read trees through a fresh index then.
    let fresh;
    let index = if seals.iter().any(|(_, p)| {
        p.meta["segments"]
            .as_array()
            .is_some_and(|a| a.iter().any(|s| s.get("node").is_some()))
    }) {
        fresh = vault.load_index()?;
        &fresh
    } else {
        writer.index()
    };
    let mut server_id = 0;
    let mut through: Option<Through> = None;
    // (segment, content ids) in binlog order.
    let mut parts: Vec<(Segment, Vec<Id>)> = Vec::new();
    for (id, p) in seals {
        let m = binlog_meta(id, p)?;
        server_id = m.server_id;
        if let Some(t) = m.through
            && through.as_ref().is_none_or(|o| t.time > o.time)
        {
            through = Some(t);
        }
        let tree = if m.segments.iter().any(|s| s.node.is_some()) {
            Some(vault.read_tree(index, &p.tree)?)
        } else {
            None
        };
        for s in m.segments {
            let ids = if let Some(text) = &s.inline {
                let bytes = decode_inline(text, &format!("point {}", id.short()))?;
                writer.save_stream(&bytes[..], |_| {})?.0
            } else {
                let name = s.node.as_deref().unwrap_or_default();
                let n = tree
                    .as_ref()
                    .and_then(|t| t.find(name.as_bytes()))
                    .ok_or_else(|| MysqlError::BadPoint {
                        point: id.short(),
                        reason: format!("segment node {name} is missing"),
                    })?;
                n.content.clone()
            };
            parts.push((s, ids));
        }
    }
    let merged = merge_contiguous(parts);
    let mut nodes = Vec::new();
    let mut segments = Vec::new();
    for (mut s, ids) in merged {
        let name = node_name(&s.file, s.start);
        s.inline = None;
        s.node = Some(name.clone());
        nodes.push(file_node(&name, ids, s.end - s.start, &s));
        segments.push(s);
    }
    let meta = BinlogMeta {
        format: 1,
        server_id,
        segments,
        through,
        rollup: true,
    };
    let time = seals.iter().map(|(_, p)| p.time).max();
    let (id, _) = write_point(writer, resource, nodes, &meta, time, started)?;
    // The rollup holds the seals' bytes and (written later) a retention at
    // least as long as theirs: it replaces them, locked or not.
    let rollup = vault.read_point(&id)?;
    for (sid, _) in seals {
        vault.remove_superseded_point(sid, &rollup)?;
    }
    Ok(Some(id))
}

/// Removes the seal points of vault `vault` that a rollup point of the same
/// resource there holds whole (each of the seal's segments inside one of the
/// rollup's, its "caught up" mark no later than the rollup's), and rollups of
/// an idle stretch that a later one repeats ([`supersedes`]). The archive
/// does both in its own vault; a copy target (`copy --follow`) receives the
/// seals and rollups as copies, and folds them with this. A point that may
/// not be removed yet (locked longer than its replacement) is kept. Returns
/// how many were removed.
pub fn fold_superseded_seals(vault: &lifeboat_vault::Vault) -> Result<usize> {
    let (points, _) = vault.list_points()?;
    let binlog: Vec<(Id, RecoveryPoint, BinlogMeta)> = points
        .into_iter()
        .filter(|(_, p)| p.kind == crate::KIND_BINLOG)
        .filter_map(|(id, p)| binlog_meta(&id, &p).ok().map(|m| (id, p, m)))
        .collect();
    let mut removed = 0;
    for (sid, sp, sm) in binlog.iter() {
        let by = binlog
            .iter()
            .find(|(rid, rp, rm)| rid != sid && rp.resource == sp.resource && supersedes(rm, sm));
        if let Some((_, rp, _)) = by {
            match vault.remove_superseded_point(sid, rp) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!("seal {} kept: {e}", sid.short()),
            }
        }
    }
    Ok(removed)
}

/// Whether rollup `r` replaces binlog point `s`: `s` a seal that `r` holds
/// whole, or a rollup of an idle stretch (no binlog, only a "caught up"
/// mark) that `r`, idle too, repeats at the same position and later (the
/// archive replaces those in its own vault).
fn supersedes(r: &BinlogMeta, s: &BinlogMeta) -> bool {
    if !r.rollup {
        return false;
    }
    if !s.rollup {
        return holds(r, s);
    }
    let idle = r.segments.is_empty() && s.segments.is_empty();
    match (&r.through, &s.through) {
        (Some(a), Some(b)) => idle && a.file == b.file && a.end == b.end && a.time > b.time,
        _ => false,
    }
}

/// Whether rollup `r` holds everything seal `s` does.
fn holds(r: &BinlogMeta, s: &BinlogMeta) -> bool {
    let through = match (&s.through, &r.through) {
        (None, _) => true,
        (Some(a), Some(b)) => a.time <= b.time,
        (Some(_), None) => false,
    };
    through
        && s.segments.iter().all(|x| {
            r.segments
                .iter()
                .any(|y| y.file == x.file && y.start <= x.start && x.end <= y.end)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_roundtrip_and_damage() {
        let data: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let t = encode_inline(&data);
        assert!(t.len() < data.len(), "compressed");
        assert_eq!(decode_inline(&t, "x").unwrap(), data);
        assert!(decode_inline("!!", "x").is_err());
        assert!(decode_inline(&t[..t.len() / 2], "x").is_err());
    }

    #[test]
    fn a_rollup_holds_the_seals_inside_it_and_no_later_ones() {
        let seg = |f: &str, a, b| Segment {
            file: f.into(),
            start: a,
            end: b,
            first_time: None,
            last_time: None,
            last_gtid: None,
            gap_before: None,
            inline: None,
            node: None,
        };
        let at = |s: i64| Through {
            time: DateTime::from_timestamp(s, 0).unwrap(),
            file: "b.000001".into(),
            end: 0,
        };
        let meta = |segments, through, rollup| BinlogMeta {
            format: 1,
            server_id: 1,
            segments,
            through,
            rollup,
        };
        let r = meta(vec![seg("b.000001", 4, 900)], Some(at(100)), true);
        assert!(holds(
            &r,
            &meta(vec![seg("b.000001", 4, 300)], Some(at(90)), false)
        ));
        assert!(
            holds(&r, &meta(vec![], Some(at(100)), false)),
            "a caught-up mark"
        );
        assert!(
            !holds(&r, &meta(vec![], Some(at(101)), false)),
            "a later mark"
        );
        assert!(!holds(
            &r,
            &meta(vec![seg("b.000001", 900, 950)], None, false)
        ));
        assert!(!holds(&r, &meta(vec![seg("b.000002", 4, 10)], None, false)));
        // An idle rollup is replaced by a later idle one at the same position.
        let idle = |s| meta(vec![], Some(at(s)), true);
        assert!(supersedes(&idle(200), &idle(150)));
        assert!(!supersedes(&idle(150), &idle(200)), "never by an older one");
        assert!(!supersedes(&r, &idle(50)), "nor by one holding binlog");
        assert!(!supersedes(&idle(200), &r), "a rollup with binlog stays");
    }

    #[test]
    fn segments_sort_by_file_number() {
        let s = |f: &str, st| Segment {
            file: f.into(),
            start: st,
            end: st + 1,
            first_time: None,
            last_time: None,
            last_gtid: None,
            gap_before: None,
            inline: None,
            node: None,
        };
        let mut v = [s("b.000010", 4), s("b.000009", 100), s("b.000009", 4)];
        v.sort_by_key(|x| x.key());
        let order: Vec<_> = v.iter().map(|x| (x.file.as_str(), x.start)).collect();
        assert_eq!(
            order,
            vec![("b.000009", 4), ("b.000009", 100), ("b.000010", 4)]
        );
    }
}
