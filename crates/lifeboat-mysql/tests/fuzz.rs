//! Fuzzing the binlog event cutter: whatever bytes the follower's spool
//! holds, `binlog::scan` returns events or an error, never panics, and the
//! events it returns lie inside the buffer, in order. Runs for
//! `LIFEBOAT_FUZZ_SECS` (default 30 s; `scripts/fuzz` runs it longer).

use lifeboat_mysql::binlog::{HEADER, MAGIC, file_number, scan, types};
use lifeboat_testkit::fuzz::fuzz;

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

fn seed_file() -> Vec<u8> {
    let mut gtid = 5u64.to_le_bytes().to_vec();
    gtid.extend_from_slice(&0u32.to_le_bytes());
    gtid.push(0);
    let mut mysql_gtid = vec![1u8];
    mysql_gtid.extend_from_slice(&[0xab; 16]);
    mysql_gtid.extend_from_slice(&9u64.to_le_bytes());
    let mut f = MAGIC.to_vec();
    f.extend(event(100, types::FORMAT_DESCRIPTION, &[0; 10], 33));
    f.extend(event(101, types::MARIADB_GTID, &gtid, 65));
    f.extend(event(102, types::XID, &[1; 8], 92));
    f.extend(event(103, types::MYSQL_GTID, &mysql_gtid, 130));
    f.extend(event(
        104,
        types::ROTATE,
        b"\x04\0\0\0\0\0\0\0binlog.000002",
        0,
    ));
    f
}

#[test]
fn fuzz_binlog_event_cutter() {
    let file = seed_file();
    let tail = file[4..].to_vec();
    // Flag byte 1: the next 8 bytes are a base offset (a continued scan).
    let mut based = vec![1u8];
    based.extend_from_slice(&1000u64.to_le_bytes());
    based.extend_from_slice(&tail);
    fuzz(
        "binlog cutter",
        &[file, tail, based],
        &[
            MAGIC,
            &[types::MARIADB_GTID],
            &[types::MYSQL_GTID],
            &[19, 0, 0, 0],
        ],
        1 << 14,
        |b| {
            // The first 8 bytes choose a base offset, the rest is the buffer.
            let (base, buf) = if b.len() > 8 && b[0] & 1 == 1 {
                (u64::from_le_bytes(b[1..9].try_into().unwrap()), &b[9..])
            } else {
                (0, b)
            };
            if let Ok((events, used)) = scan(buf, base) {
                assert!(used <= buf.len());
                let mut end = if base == 0 && used > 0 { 4 } else { 0 };
                for e in &events {
                    assert!(e.size as usize >= HEADER);
                    end += e.size as usize;
                }
                assert_eq!(end, used, "events cover exactly the bytes used");
            }
            let _ = file_number(&String::from_utf8_lossy(buf));
        },
    );
}

/// Inputs the fuzzer found crashing, kept as regressions.
#[test]
fn binlog_cutter_regressions() {
    // A base offset near u64::MAX overflowed the event offset.
    let mut f = event(1, types::XID, &[0; 8], 0);
    f.extend(event(2, types::XID, &[0; 8], 0));
    let (ev, _) = scan(&f, u64::MAX - 3).unwrap();
    assert_eq!(ev.len(), 2);
}

#[test]
fn binlog_cutter_regression_damaged_event_near_the_end_of_offsets() {
    // The error message for a too-small event overflowed the same way.
    let mut f = event(1, types::XID, &[0; 8], 0);
    let good = f.len();
    f.extend(event(2, types::XID, &[0; 8], 0));
    f[good + 9] = 3;
    assert!(scan(&f, u64::MAX - 3).unwrap_err().contains("damaged"));
}
