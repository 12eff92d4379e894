//! Just enough of the binary log format to cut it at event boundaries.
//!
//! A binlog file is the magic `\xfebin` followed by events. Every event starts
//! with a 19-byte header (v4): timestamp (u32, seconds, the server's clock),
//! type (u8), server id (u32), event size (u32, header and checksum
//! included), log position (u32: where the event ends in the original file;
//! 0 for artificial events), flags (u16). The archive only ever seals whole
//! events, records their timestamps (for the restorable window) and the GTIDs
//! it passed; replaying is left to `mariadb-binlog`.

/// The four bytes every binlog file starts with.
pub const MAGIC: &[u8; 4] = b"\xfebin";
/// Size of an event header.
pub const HEADER: usize = 19;

/// Event types the archive looks at.
pub mod types {
    /// Switches to the next file (the last event of a rotated file).
    pub const ROTATE: u8 = 4;
    /// Describes the file's format (first event).
    pub const FORMAT_DESCRIPTION: u8 = 15;
    /// Commit of a transactional transaction.
    pub const XID: u8 = 16;
    /// Oracle MySQL GTID.
    pub const MYSQL_GTID: u8 = 33;
    /// MariaDB GTID (starts a transaction group).
    pub const MARIADB_GTID: u8 = 162;
}

/// One event found in a byte range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// Offset of the event in its file.
    pub offset: u64,
    /// Size in bytes.
    pub size: u32,
    /// Server timestamp, seconds since the epoch.
    pub timestamp: u32,
    /// Event type.
    pub kind: u8,
    /// Originating server id.
    pub server_id: u32,
    /// End position recorded by the server (0 for artificial events).
    pub log_pos: u32,
    /// GTID, for GTID events: `domain-server-seq` (MariaDB) or `uuid:gno` (MySQL).
    pub gtid: Option<String>,
}

/// Scans `buf`, which holds a file's bytes from `base` on (`base` must be 0
/// or an event boundary). Returns the complete events and the number of bytes
/// they cover; a trailing partial event is left for the next call. At
/// `base == 0` the magic is checked and counted as covered.
pub fn scan(buf: &[u8], base: u64) -> Result<(Vec<EventInfo>, usize), String> {
    let mut at = 0usize;
    if base == 0 {
        if buf.len() < MAGIC.len() {
            return Ok((Vec::new(), 0));
        }
        if &buf[..4] != MAGIC {
            return Err("not a binlog file (bad magic)".into());
        }
        at = 4;
    }
    let mut events = Vec::new();
    while buf.len() - at >= HEADER {
        let h = &buf[at..at + HEADER];
        let u32le = |o: usize| u32::from_le_bytes(h[o..o + 4].try_into().expect("4 bytes"));
        let size = u32le(9);
        if (size as usize) < HEADER {
            return Err(format!(
                "event at offset {} claims {size} bytes, less than a header: the file is damaged",
                base.saturating_add(at as u64)
            ));
        }
        if buf.len() - at < size as usize {
            break;
        }
        let kind = h[4];
        let body = &buf[at + HEADER..at + size as usize];
        let server_id = u32le(5);
        let gtid = match kind {
            types::MARIADB_GTID if body.len() >= 12 => {
                let seq = u64::from_le_bytes(body[0..8].try_into().expect("8"));
                let domain = u32::from_le_bytes(body[8..12].try_into().expect("4"));
                Some(format!("{domain}-{server_id}-{seq}"))
            }
            types::MYSQL_GTID if body.len() >= 25 => {
                let sid = &body[1..17];
                let gno = u64::from_le_bytes(body[17..25].try_into().expect("8"));
                let hex: String = sid.iter().map(|b| format!("{b:02x}")).collect();
                Some(format!(
                    "{}-{}-{}-{}-{}:{gno}",
                    &hex[0..8],
                    &hex[8..12],
                    &hex[12..16],
                    &hex[16..20],
                    &hex[20..32]
                ))
            }
            _ => None,
        };
        events.push(EventInfo {
            offset: base.saturating_add(at as u64),
            size,
            timestamp: u32le(0),
            kind,
            server_id,
            log_pos: u32le(13),
            gtid,
        });
        at += size as usize;
    }
    Ok((events, at))
}

/// The sequence number of a binlog file name (`binlog.000042` → 42).
pub fn file_number(name: &str) -> Option<u64> {
    name.rsplit_once('.').and_then(|(_, n)| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(ts: u32, kind: u8, body: &[u8], log_pos: u32) -> Vec<u8> {
        let size = (HEADER + body.len()) as u32;
        let mut e = Vec::new();
        e.extend_from_slice(&ts.to_le_bytes());
        e.push(kind);
        e.extend_from_slice(&7u32.to_le_bytes());
        e.extend_from_slice(&size.to_le_bytes());
        e.extend_from_slice(&log_pos.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(body);
        e
    }

    #[test]
    fn scans_whole_events_and_leaves_a_partial_one() {
        let mut gtid_body = 5u64.to_le_bytes().to_vec();
        gtid_body.extend_from_slice(&0u32.to_le_bytes());
        gtid_body.push(0);
        let mut file = MAGIC.to_vec();
        file.extend(event(100, types::FORMAT_DESCRIPTION, &[0; 10], 33));
        file.extend(event(101, types::MARIADB_GTID, &gtid_body, 65));
        file.extend(event(102, types::XID, &[1; 8], 92));
        let whole = file.len();
        file.extend(&event(103, types::XID, &[1; 8], 119)[..10]);
        let (ev, used) = scan(&file, 0).unwrap();
        assert_eq!(used, whole);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[1].gtid.as_deref(), Some("0-7-5"));
        assert_eq!(ev[2].timestamp, 102);
        assert_eq!(ev[2].offset + ev[2].size as u64, ev[2].log_pos as u64);
        // Continuing from a boundary.
        let (ev2, used2) = scan(&file[used..], used as u64).unwrap();
        assert!(ev2.is_empty() && used2 == 0);
        assert!(scan(b"nope", 0).is_err());
        let mut bad = MAGIC.to_vec();
        bad.extend(event(1, 2, &[], 0));
        bad[4 + 9] = 3; // size < header
        assert!(scan(&bad, 0).is_err());
    }

    #[test]
    fn file_numbers() {
        assert_eq!(file_number("binlog.000042"), Some(42));
        assert_eq!(file_number("mysql-bin.1"), Some(1));
        assert_eq!(file_number("nonsense"), None);
    }
}
