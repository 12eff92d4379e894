//! The replicator's mark in a replica: `.lifeboat-replicated`, the moment
//! through which every change of the source is in the replica (written by
//! the replicator while it has nothing left to copy). A recovery that uses
//! the replica takes its data as of the later of that moment and its newest
//! object, so a bucket nobody writes to is as fresh as its replicator says,
//! not as old as its newest object. Like the fence, it is no object of the
//! bucket's content: never listed, never copied, never in a point.

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::error::Result;
use crate::store::{Bucket, BytesSource, ObjectMeta, Source};

/// The mark's key in the replica.
pub const CAUGHT_UP_KEY: &str = ".lifeboat-replicated";

/// Writes into `replica` that it holds every change of its source through `through`.
pub async fn write(replica: &Bucket, through: DateTime<Utc>) -> Result<()> {
    let body = through.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let meta = ObjectMeta {
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    replica
        .put(
            CAUGHT_UP_KEY,
            &meta,
            &mut BytesSource(Some(Bytes::from(body))),
        )
        .await
        .map(|_| ())
}

/// The moment `text` (a mark's body) says, if it says one.
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The moment through which `replica` is caught up, if its replicator
/// wrote one.
pub async fn read(replica: &Bucket) -> Option<DateTime<Utc>> {
    replica.stat(CAUGHT_UP_KEY).await.ok()??;
    let mut r = replica.open_read(CAUGHT_UP_KEY, None).await.ok()?;
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = r.next_chunk().await {
        text.extend_from_slice(&chunk);
        if text.len() > 100 {
            return None;
        }
    }
    parse(&String::from_utf8_lossy(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mark_is_read_back_and_never_listed() {
        let d = tempfile::tempdir().unwrap();
        let b = Bucket::open_address(&format!("file://{}", d.path().display()), true).unwrap();
        assert_eq!(read(&b).await, None);
        let t = DateTime::parse_from_rfc3339("2026-12-07T21:00:00.250Z")
            .unwrap()
            .with_timezone(&Utc);
        write(&b, t).await.unwrap();
        assert_eq!(read(&b).await, Some(t));
        let mut keys = Vec::new();
        b.list("", &mut |o| keys.push(o.key)).await.unwrap();
        assert_eq!(keys, Vec::<String>::new());
        assert_eq!(parse("not a time"), None);
    }
}
