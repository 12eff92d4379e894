//! A pause hook for tests that need a deterministic interleaving of processes.
//!
//! When the environment variable `LIFEBOAT_TEST_PAUSE` is set to
//! `POINT:DIR[,POINT:DIR…]`, a process that reaches a named point creates
//! `DIR/POINT.reached` and waits (at most two minutes) until `DIR/POINT.go`
//! exists; once it exists, later visits pass at once. Unset (always, outside
//! tests), [`pause`] does nothing but read the variable. Named points:
//!
//! | point | where |
//! |---|---|
//! | `index-listed` | `Index::load`, after listing `index/`, before reading the files |
//! | `index-loaded` | `Index::load`, before returning |
//! | `prune-index-written` | prune, after its new index files are stored, before it removes the old ones |
//! | `stale-judged` | `lock::remove_stale`, after reading the locks, before deleting |
//! | `prune-old-index-removed` | prune, after removing the old index files, before its first new one |
//! | `archive-checked` | a binlog archive, once it found no other archive of its resource running (after its claim) |
//! | `before-point` | `BackupWriter`, after its packs and index are stored, before the point |
//! | `volume-read` | instance backup, after a volume's blocks were read, before its status is taken again |

use std::time::{Duration, Instant};

/// Pauses at the named point if the environment asks for it (see the module).
pub fn pause(point: &str) {
    let Ok(spec) = std::env::var("LIFEBOAT_TEST_PAUSE") else {
        return;
    };
    for item in spec.split(',') {
        let Some((name, dir)) = item.split_once(':') else {
            continue;
        };
        if name != point {
            continue;
        }
        let dir = std::path::Path::new(dir);
        let go = dir.join(format!("{point}.go"));
        if go.exists() {
            return;
        }
        let _ = std::fs::write(dir.join(format!("{point}.reached")), b"");
        let deadline = Instant::now() + Duration::from_secs(120);
        while !go.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
