//! Reading a resource's points back: its snapshots, its archived binlog, and
//! from both the times it can be restored to.
//!
//! A snapshot consistent at binlog `(file, pos)` can be rolled forward as far
//! as the archive holds the binlog *contiguously* from there: file by file,
//! each from its first byte, the next file numbered one higher, no gap marked
//! in between. The restorable window of a snapshot runs from its consistency
//! time to the latest of the event times and "caught up through" marks along
//! that chain; a resource's windows are the union over its snapshots.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use lifeboat_vault::{Id, Index, RecoveryPoint, Vault};
use serde::Serialize;

use crate::binlog::file_number;
use crate::error::{MysqlError, Result};
use crate::segment::{Segment, Through, binlog_meta, decode_inline};
use crate::snapshot::SnapshotMeta;

/// Finds a snapshot point: `latest` (newest `mysql` point, of `resource` when
/// given), a full id or a unique prefix (of a `mysql` point: another kind is
/// refused with [`lifeboat_vault::VaultError::WrongKind`]).
pub fn find_snapshot(
    vault: &Vault,
    spec: &str,
    resource: Option<&str>,
) -> Result<(Id, RecoveryPoint)> {
    let filter = lifeboat_vault::PointFilter::kinds(&[crate::KIND_SNAPSHOT]).resource(resource);
    let (id, p) = vault.select_point(spec, &filter)?;
    crate::restore::snapshot_meta(&id, &p)?;
    Ok((id, p))
}

/// An archived segment and where its bytes are.
#[derive(Debug, Clone)]
pub struct Archived {
    /// The segment.
    pub seg: Segment,
    /// The point holding it.
    pub point: Id,
    /// The point's root tree (for segments stored as nodes).
    pub tree: Id,
}

/// Everything the vault knows about one mysql resource.
#[derive(Debug, Default)]
pub struct Catalog {
    /// The resource.
    pub resource: String,
    /// Snapshots, oldest first.
    pub snapshots: Vec<(Id, RecoveryPoint, SnapshotMeta)>,
    /// Physical points, oldest first. Kept apart from `snapshots`, which
    /// hold what a logical restore (and a replay after it) can load; their
    /// binlog coordinates keep the archive they need (`binlog_points_needed`).
    pub physical: Vec<(Id, RecoveryPoint, crate::physical::PhysicalMeta)>,
    /// Archived segments, in binlog order.
    pub segments: Vec<Archived>,
    /// "Caught up through" marks.
    pub throughs: Vec<Through>,
    /// Seal points not yet rolled up, oldest first.
    pub seals: Vec<(Id, RecoveryPoint)>,
}

/// A contiguous run of archive from a starting position.
#[derive(Debug, Clone, Default)]
pub struct Chain {
    /// Files in order with the end of their contiguous coverage from byte 0.
    pub files: Vec<(String, u64)>,
    /// The latest time restorable along the chain.
    pub reach: Option<DateTime<Utc>>,
    /// The last GTID along the chain.
    pub last_gtid: Option<String>,
    /// Why the chain stops where it does, when that is not the archive's head.
    pub broken: Option<String>,
}

/// A span of time a resource can be restored to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Earliest restorable time.
    pub from: DateTime<Utc>,
    /// Latest restorable time.
    pub to: DateTime<Utc>,
}

impl Catalog {
    /// Reads the points of `resource` from the vault.
    pub fn load(vault: &Vault, resource: &str) -> Result<Catalog> {
        let (points, _) = vault.list_points()?;
        Catalog::from_points(
            points.into_iter().filter(|(_, p)| p.resource == resource),
            resource,
        )
    }

    /// Builds a catalog from points (of one resource).
    pub fn from_points(
        points: impl IntoIterator<Item = (Id, RecoveryPoint)>,
        resource: &str,
    ) -> Result<Catalog> {
        let mut c = Catalog {
            resource: resource.to_string(),
            ..Catalog::default()
        };
        for (id, p) in points {
            match p.kind.as_str() {
                crate::KIND_SNAPSHOT => {
                    let m = crate::restore::snapshot_meta(&id, &p)?;
                    c.snapshots.push((id, p, m));
                }
                crate::KIND_PHYSICAL => {
                    let m = crate::physical::physical_meta(&id, &p)?;
                    c.physical.push((id, p, m));
                }
                crate::KIND_BINLOG => {
                    let m = binlog_meta(&id, &p)?;
                    if let Some(t) = m.through.clone() {
                        c.throughs.push(t);
                    }
                    for seg in m.segments {
                        c.segments.push(Archived {
                            seg,
                            point: id,
                            tree: p.tree,
                        });
                    }
                    if !m.rollup {
                        c.seals.push((id, p));
                    }
                }
                _ => {}
            }
        }
        c.snapshots.sort_by_key(|(_, _, m)| m.consistent_at);
        c.physical.sort_by_key(|(_, _, m)| m.consistent_at);
        c.segments.sort_by_key(|a| a.seg.key());
        c.seals.sort_by_key(|(_, p)| p.time);
        Ok(c)
    }

    /// Per file: the end of the contiguous coverage from byte 0, and whether
    /// a gap is marked before the file.
    fn coverage(&self) -> BTreeMap<(u64, String), (u64, bool)> {
        let mut m: BTreeMap<(u64, String), (u64, bool)> = BTreeMap::new();
        for a in &self.segments {
            let k = (file_number(&a.seg.file).unwrap_or(0), a.seg.file.clone());
            let e = m.entry(k).or_insert((0, false));
            if a.seg.gap_before.is_some() && a.seg.start == 0 {
                e.1 = true;
            }
            if a.seg.start <= e.0 && a.seg.end > e.0 {
                e.0 = a.seg.end;
            }
        }
        m
    }

    /// The archive's contiguous run from `file`:`pos`.
    pub fn chain_from(&self, file: &str, pos: u64) -> Chain {
        let cov = self.coverage();
        let mut chain = Chain::default();
        let Some(mut n) = file_number(file) else {
            chain.broken = Some(format!("unexpected binlog file name {file}"));
            return chain;
        };
        let mut name = file.to_string();
        match cov.get(&(n, name.clone())) {
            Some((end, _)) if *end >= pos => {}
            _ => {
                chain.broken = Some(format!(
                    "the archive does not hold {file} up to position {pos} (was `lifeboat archive mysql` running when the snapshot was taken?)"
                ));
                return chain;
            }
        }
        loop {
            let (end, _) = cov[&(n, name.clone())];
            chain.files.push((name.clone(), end));
            match cov.range((n + 1, String::new())..).next() {
                None => break,
                Some(((m, next), (_, gap))) => {
                    if *m != n + 1 || *gap {
                        chain.broken = Some(format!(
                            "GAP: the archive holds nothing between {name} (up to byte {end}) and {next}: binlogs were purged before they were archived"
                        ));
                        break;
                    }
                    n = *m;
                    name = next.clone();
                }
            }
        }
        // Reach: event times and "through" marks inside the chain.
        let inside = |f: &str, at: u64| chain.files.iter().any(|(cf, end)| cf == f && at <= *end);
        let start = (file_number(file).unwrap_or(0), pos);
        for a in &self.segments {
            let k = (file_number(&a.seg.file).unwrap_or(0), a.seg.end);
            if inside(&a.seg.file, a.seg.end) && k >= start {
                if a.seg.last_time > chain.reach {
                    chain.reach = a.seg.last_time;
                }
                if a.seg.last_gtid.is_some() {
                    chain.last_gtid = a.seg.last_gtid.clone();
                }
            }
        }
        for t in &self.throughs {
            if inside(&t.file, t.end) && Some(t.time) > chain.reach {
                chain.reach = Some(t.time);
            }
        }
        chain
    }

    /// The latest time a snapshot can be rolled forward to (its own time when
    /// the archive cannot take it further).
    pub fn reach_of(&self, meta: &SnapshotMeta) -> (DateTime<Utc>, Option<Chain>) {
        self.reach_from(meta.binlog.as_ref(), meta.consistent_at)
    }

    /// The latest time data consistent at `at`, binlog coordinates `co`
    /// (a logical snapshot's or a physical point's), can be rolled forward
    /// to, and the archive's chain from there.
    pub fn reach_from(
        &self,
        co: Option<&crate::snapshot::Coordinates>,
        at: DateTime<Utc>,
    ) -> (DateTime<Utc>, Option<Chain>) {
        match co {
            Some(c) => {
                let chain = self.chain_from(&c.file, c.pos);
                let reach = chain.reach.filter(|r| *r > at).unwrap_or(at);
                (reach, Some(chain))
            }
            None => (at, None),
        }
    }

    /// The spans of time the resource can be restored to, merged: from its
    /// logical snapshots and physical points alike.
    pub fn windows(&self) -> Vec<Window> {
        let starts = self
            .snapshots
            .iter()
            .map(|(_, _, m)| (m.binlog.as_ref(), m.consistent_at))
            .chain(
                self.physical
                    .iter()
                    .map(|(_, _, m)| (m.binlog.as_ref(), m.consistent_at)),
            );
        self.windows_of(starts)
    }

    /// The spans of time data consistent at these starts (coordinates and
    /// time) can be restored to, merged.
    pub fn windows_of<'a>(
        &self,
        starts: impl Iterator<Item = (Option<&'a crate::snapshot::Coordinates>, DateTime<Utc>)>,
    ) -> Vec<Window> {
        let mut w: Vec<Window> = starts
            .map(|(co, at)| Window {
                from: at,
                to: self.reach_from(co, at).0,
            })
            .collect();
        w.sort_by_key(|x| x.from);
        let mut out: Vec<Window> = Vec::new();
        for x in w {
            match out.last_mut() {
                Some(l) if x.from <= l.to => {
                    if x.to > l.to {
                        l.to = x.to;
                    }
                }
                _ => out.push(x),
            }
        }
        out
    }

    /// The archive's head: the furthest archived position.
    pub fn head(&self) -> Option<&Segment> {
        self.segments
            .iter()
            .map(|a| &a.seg)
            .max_by_key(|s| (file_number(&s.file).unwrap_or(0), s.end))
    }

    /// Writes the chain's files into `dir` (whole files from byte 0 up to the
    /// covered end) and returns their paths in order.
    pub fn materialize(
        &self,
        vault: &Vault,
        index: &Index,
        chain: &Chain,
        dir: &Path,
    ) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut trees: BTreeMap<Id, lifeboat_vault::Tree> = BTreeMap::new();
        for (file, end) in &chain.files {
            let mut bytes: Vec<u8> = Vec::with_capacity(*end as usize);
            for a in self.segments.iter().filter(|a| &a.seg.file == file) {
                let s = &a.seg;
                if s.end <= bytes.len() as u64 || s.start > bytes.len() as u64 {
                    continue;
                }
                let data = if let Some(t) = &s.inline {
                    decode_inline(t, &format!("point {}", a.point.short()))?
                } else {
                    let tree = match trees.entry(a.tree) {
                        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                        std::collections::btree_map::Entry::Vacant(e) => {
                            e.insert(vault.read_tree(index, &a.tree)?)
                        }
                    };
                    let name = s.node.clone().unwrap_or_default();
                    let node = tree
                        .find(name.as_bytes())
                        .ok_or_else(|| MysqlError::BadPoint {
                            point: a.point.short(),
                            reason: format!("segment node {name} is missing"),
                        })?;
                    crate::restore::read_file(vault, index, node)?
                };
                if data.len() as u64 != s.end - s.start {
                    return Err(MysqlError::BadPoint {
                        point: a.point.short(),
                        reason: format!(
                            "segment {}@{} holds {} bytes, expected {}",
                            s.file,
                            s.start,
                            data.len(),
                            s.end - s.start
                        ),
                    });
                }
                let skip = (bytes.len() as u64 - s.start) as usize;
                bytes.extend_from_slice(&data[skip..]);
            }
            bytes.truncate(*end as usize);
            let p = dir.join(file);
            std::fs::write(&p, &bytes).map_err(|e| MysqlError::io("write", &p, e))?;
            out.push(p);
        }
        Ok(out)
    }
}

/// Which archived-binlog points must be kept so that the snapshots kept by a
/// retention policy can still be rolled forward: every `mysql-binlog` point
/// of a resource holding any part of the binlog file of that resource's
/// oldest kept snapshot (a replay needs that file from its first byte) or of
/// a later file. Returns (point, reason) for those; the other binlog points
/// are useless (no kept snapshot can use them).
pub fn binlog_points_needed(
    points: &[(Id, RecoveryPoint)],
    kept: &dyn Fn(&Id) -> bool,
) -> Vec<(Id, String)> {
    let mut out = Vec::new();
    let mut resources: Vec<&str> = points
        .iter()
        .filter(|(_, p)| p.kind == crate::KIND_BINLOG)
        .map(|(_, p)| p.resource.as_str())
        .collect();
    resources.sort();
    resources.dedup();
    for r in resources {
        // The oldest kept snapshot (logical or physical) with coordinates.
        let oldest = points
            .iter()
            .filter(|(id, p)| p.resource == r && kept(id))
            .filter_map(|(id, p)| match p.kind.as_str() {
                crate::KIND_SNAPSHOT => {
                    let m = crate::restore::snapshot_meta(id, p).ok()?;
                    m.binlog.map(|c| (m.consistent_at, *id, c))
                }
                crate::KIND_PHYSICAL => {
                    let m = crate::physical::physical_meta(id, p).ok()?;
                    m.binlog.map(|c| (m.consistent_at, *id, c))
                }
                _ => None,
            })
            .min_by_key(|(t, _, _)| *t);
        let Some((_, sid, co)) = oldest else { continue };
        let from = file_number(&co.file).unwrap_or(0);
        for (id, p) in points
            .iter()
            .filter(|(_, p)| p.resource == r && p.kind == crate::KIND_BINLOG)
        {
            let Ok(m) = binlog_meta(id, p) else {
                out.push((*id, "unreadable meta: kept".into()));
                continue;
            };
            if m.segments.is_empty()
                || m.segments
                    .iter()
                    .any(|s| file_number(&s.file).unwrap_or(0) >= from)
            {
                out.push((*id, format!("binlog for snapshot {}", sid.short())));
            }
        }
    }
    out
}
