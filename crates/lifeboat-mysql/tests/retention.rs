//! Retention of archived binlog through the library: `forget` keeps every
//! binlog point a kept snapshot needs for point-in-time restore, whoever
//! calls it (the CLI, a daemon), as long as it passes the protector's rules.

use chrono::{DateTime, Duration, Utc};
use lifeboat_vault::crypto::KdfParams;
use lifeboat_vault::forget::{KeepPolicy, apply, forget};
use lifeboat_vault::{Id, InitOptions, Location, RecoveryPoint, Vault};

fn vault(dir: &std::path::Path) -> Vault {
    let opts = InitOptions {
        kdf: KdfParams {
            m_cost: 8,
            t_cost: 1,
            p_cost: 1,
        },
        ..InitOptions::default()
    };
    Vault::init(&Location::Dir(dir.join("v")), b"pw", &opts).unwrap()
}

fn at(h: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap() + Duration::minutes(h * 60)
}

fn snapshot(v: &Vault, hour: i64, file: &str) -> Id {
    let mut p = RecoveryPoint::new("db", lifeboat_mysql::KIND_SNAPSHOT, Id::default());
    p.time = at(hour);
    p.meta = serde_json::json!({
        "format": 1,
        "server": {"flavor": "mariadb", "version": "11", "server_id": 1, "log_bin": true, "binlog_format": "ROW"},
        "dsn": "mysql://test",
        "binlog": {"file": file, "pos": 4},
        "consistent_at": at(hour),
        "method": "backup-stage",
        "databases": [], "tables": 0, "rows": 0, "users": false
    });
    v.write_point(&p).unwrap()
}

fn binlog(v: &Vault, hour: i64, file: &str) -> Id {
    let mut p = RecoveryPoint::new("db", lifeboat_mysql::KIND_BINLOG, Id::default());
    p.time = at(hour);
    p.meta = serde_json::json!({
        "format": 1, "server_id": 1, "rollup": true,
        "segments": [{"file": file, "start": 0, "end": 100}]
    });
    v.write_point(&p).unwrap()
}

#[test]
fn forget_keeps_the_binlog_a_kept_snapshot_needs() {
    let d = tempfile::tempdir().unwrap();
    let v = vault(d.path());
    let s1 = snapshot(&v, 1, "binlog.000002");
    let b1 = binlog(&v, 2, "binlog.000002");
    let b2 = binlog(&v, 3, "binlog.000004");
    let s2 = snapshot(&v, 4, "binlog.000005");
    let b3 = binlog(&v, 5, "binlog.000005");
    let (points, _) = v.list_points().unwrap();
    let keep2 = KeepPolicy {
        last: 2,
        ..KeepPolicy::default()
    };
    let rules = lifeboat_mysql::forget_rules();
    let keep = |ds: &[lifeboat_vault::forget::Decision], id: Id| {
        ds.iter().find(|d| d.id == id).unwrap().keep
    };

    // The policy alone (what the engine did for any caller but the CLI)
    // would forget b1, which s1 needs to be rolled forward.
    let plain = apply(&points, &keep2, at(6), &[]);
    assert!(
        !keep(&plain, b1),
        "the keep policy alone drops needed binlog"
    );

    // With the protector's rule: both snapshots kept, all their binlog kept.
    let ds = apply(&points, &keep2, at(6), &rules);
    for id in [s1, s2, b1, b2, b3] {
        assert!(keep(&ds, id), "{} must be kept: {ds:#?}", id.short());
    }

    // Through `forget` on a real vault: keep one snapshot; the binlog older
    // than its coordinates goes, the rest stays.
    let keep1 = KeepPolicy {
        last: 1,
        ..KeepPolicy::default()
    };
    let out = forget(&v, &points, &keep1, &rules, false, false).unwrap();
    assert!(out.not_deleted.is_empty(), "{:?}", out.not_deleted);
    let left: Vec<Id> = v
        .list_points()
        .unwrap()
        .0
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&s2) && left.contains(&b3));
}
