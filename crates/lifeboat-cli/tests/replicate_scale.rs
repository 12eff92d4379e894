//! Replication at scale, through the real `lifeboat replicate` process: a
//! 1 GiB object (multipart, streamed) and 100 000 small objects, each with a
//! bound on the replicator's peak memory.

mod support;

use lifeboat_testkit::s3::S3Server;
use lifeboat_testkit::{pseudo_random, tempdir};
use support::*;

#[test]
fn a_gigabyte_object_is_streamed_multipart_in_bounded_memory() {
    let s3 = S3Server::start();
    s3.create_bucket("site-b");
    let t = tempdir().unwrap();
    let src = t.path().join("a");
    std::fs::create_dir_all(&src).unwrap();
    // 1 GiB + a bit: sparse, with distinct bytes at both ends and in the middle.
    let f = std::fs::File::create(src.join("video.bin")).unwrap();
    let size = (1u64 << 30) + 12345;
    f.set_len(size).unwrap();
    use std::os::unix::fs::FileExt;
    let marks = [
        (0u64, pseudo_random(1, 4096)),
        (size / 2, pseudo_random(2, 4096)),
        (size - 4096, pseudo_random(3, 4096)),
    ];
    for (off, data) in &marks {
        f.write_all_at(data, *off).unwrap();
    }
    drop(f);
    let r = Replicator::start(
        &file_url(&src),
        &s3.url("site-b", ""),
        &t.path().join("state"),
        &["--existing", "-q"],
    );
    r.wait("the big copy", 300, |s| s["copied_objects"] == 1);
    let rss_mib = r.peak_rss_kib() / 1024;
    r.stop();
    assert!(rss_mib < 200, "peak RSS {rss_mib} MiB while copying 1 GiB");
    let head = s3.request("HEAD", "/site-b/video.bin").unwrap();
    assert!(head.contains(&format!("Content-Length: {size}")), "{head}");
    assert!(head.contains("-"), "a multipart ETag (md5-parts): {head}");
    for (off, data) in &marks {
        let range = format!("bytes={}-{}", off, off + 4095);
        let raw = s3
            .request_bytes("GET", "/site-b/video.bin", &[("Range", &range)], b"")
            .unwrap();
        let start = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(raw[start..] == data[..], "bytes at {off} differ");
    }
}

#[test]
fn a_hundred_thousand_small_objects_in_bounded_memory() {
    // On tmpfs when there is one: creating 200 000 files on this machine's
    // disk costs a minute of system time that says nothing about Lifeboat.
    let t = match std::path::Path::new("/dev/shm").is_dir() {
        true => tempfile::Builder::new().tempdir_in("/dev/shm").unwrap(),
        false => tempdir().unwrap(),
    };
    let (src, dst) = (t.path().join("a"), t.path().join("b"));
    for d in 0..100 {
        let dir = src.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..1000 {
            std::fs::write(dir.join(format!("o{i:04}")), format!("{d}/{i}")).unwrap();
        }
    }
    let r = Replicator::start(
        &file_url(&src),
        &file_url(&dst),
        &t.path().join("state"),
        &["--existing", "--concurrency", "8", "-q"],
    );
    let s = r.settle(600);
    assert_eq!(s["copied_objects"], 100_000);
    let rss_mib = r.peak_rss_kib() / 1024;
    r.stop();
    assert!(rss_mib < 250, "peak RSS {rss_mib} MiB for 100 000 objects");
    assert_same(src.to_str().unwrap(), dst.to_str().unwrap(), None, &[]);
}
