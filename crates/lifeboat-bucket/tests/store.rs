//! One suite for both kinds of bucket: a directory bucket and a bucket on a
//! real S3-protocol server (moto), through `lifeboat_bucket::store::Bucket`.

use std::collections::BTreeMap;

use bytes::Bytes;
use lifeboat_bucket::store::{Bucket, BytesSource, ObjectMeta, Source};
use lifeboat_bucket::{BucketError, ObjectInfo};
use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{pseudo_random, tempdir};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn open_s3(url: &str) -> Bucket {
    let _ = CREDENTIALS;
    Bucket::open_with_keys(&Bucket::parse(url).unwrap(), false, Some(("test", "test"))).unwrap()
}

fn meta() -> ObjectMeta {
    let mut m = ObjectMeta {
        content_type: Some("text/html; charset=utf-8".into()),
        ..ObjectMeta::default()
    };
    m.user.insert("owner".into(), "shop team".into());
    m.user.insert("build".into(), "42".into());
    m.tags.insert("tier".into(), "frontend".into());
    m.tags.insert("cost center".into(), "a+b=c@x:/y".into());
    m
}

async fn read_all(b: &Bucket, key: &str) -> (ObjectInfo, ObjectMeta, Vec<u8>) {
    let mut r = b.open_read(key, None).await.unwrap();
    let mut out = Vec::new();
    while let Some(c) = r.next_chunk().await.unwrap() {
        out.extend_from_slice(&c);
    }
    r.finish().await.unwrap();
    (r.info.clone(), r.meta.clone(), out)
}

async fn list(b: &Bucket, prefix: &str) -> Vec<ObjectInfo> {
    let mut v = Vec::new();
    b.list(prefix, &mut |o| v.push(o)).await.unwrap();
    v
}

async fn suite(b: &Bucket) {
    // Write with metadata, read it back.
    let body = Bytes::from(pseudo_random(1, 300_000));
    let put = b
        .put(
            "site/index.html",
            &meta(),
            &mut BytesSource(Some(body.clone())),
        )
        .await
        .unwrap();
    assert_eq!(put.size, 300_000);
    let (info, m, data) = read_all(b, "site/index.html").await;
    assert_eq!(data, body);
    assert_eq!(m.content_type, meta().content_type);
    assert_eq!(m.user, meta().user);
    assert_eq!(m.tags, meta().tags);
    let st = b.stat("site/index.html").await.unwrap().unwrap();
    assert_eq!(
        st.version, info.version,
        "stat and read agree on the version"
    );
    assert!(b.stat("site/nope").await.unwrap().is_none());
    // Listing, with a key prefix that is not a directory.
    for k in [
        "site/a.css",
        "site/app.js",
        "site/img/logo.png",
        "sitemap.xml",
    ] {
        b.put(
            k,
            &ObjectMeta::default(),
            &mut BytesSource(Some(Bytes::from(k.as_bytes().to_vec()))),
        )
        .await
        .unwrap();
    }
    let all: Vec<String> = list(b, "").await.into_iter().map(|o| o.key).collect();
    assert_eq!(
        all,
        [
            "site/a.css",
            "site/app.js",
            "site/img/logo.png",
            "site/index.html",
            "sitemap.xml"
        ]
    );
    let some: Vec<String> = list(b, "site/a").await.into_iter().map(|o| o.key).collect();
    assert_eq!(some, ["site/a.css", "site/app.js"]);
    let listed = list(b, "site/index").await;
    assert_eq!(
        listed[0].version, st.version,
        "listing and stat agree on the version"
    );
    // An overwrite changes the version; reading the old version is refused.
    b.put(
        "site/index.html",
        &ObjectMeta::default(),
        &mut BytesSource(Some(Bytes::from_static(b"v2"))),
    )
    .await
    .unwrap();
    match b.open_read("site/index.html", Some(&info.version)).await {
        Err(BucketError::Changed { .. }) => {}
        other => panic!("expected Changed, got {other:?}"),
    }
    let (_, m2, d2) = read_all(b, "site/index.html").await;
    assert_eq!(d2, b"v2");
    assert_eq!(
        m2.user,
        BTreeMap::new(),
        "the overwrite replaced the metadata"
    );
    // A multipart-sized object (several parts on S3).
    let big = Bytes::from(pseudo_random(2, 21 * 1024 * 1024 + 5));
    let mut src = ChunkedSource {
        data: big.clone(),
        pos: 0,
        fail_at_end: false,
    };
    b.put("big.bin", &meta(), &mut src).await.unwrap();
    let (_, bm, bd) = read_all(b, "big.bin").await;
    assert!(bd == big, "multipart content differs");
    assert_eq!(bm.tags, meta().tags);
    // A source that reports a change at the end leaves nothing behind.
    let mut bad = ChunkedSource {
        data: big.clone(),
        pos: 0,
        fail_at_end: true,
    };
    assert!(b.put("torn.bin", &meta(), &mut bad).await.is_err());
    assert!(
        b.stat("torn.bin").await.unwrap().is_none(),
        "an aborted write is invisible"
    );
    let mut bad_small = ChunkedSource {
        data: Bytes::from_static(b"tiny"),
        pos: 0,
        fail_at_end: true,
    };
    assert!(
        b.put("site/index.html", &meta(), &mut bad_small)
            .await
            .is_err()
    );
    assert_eq!(
        read_all(b, "site/index.html").await.2,
        b"v2",
        "old version kept"
    );
    // Delete.
    b.delete("site/img/logo.png").await.unwrap();
    b.delete("site/img/logo.png").await.unwrap();
    assert!(b.stat("site/img/logo.png").await.unwrap().is_none());
}

struct ChunkedSource {
    data: Bytes,
    pos: usize,
    fail_at_end: bool,
}

impl Source for ChunkedSource {
    async fn next_chunk(&mut self) -> lifeboat_bucket::Result<Option<Bytes>> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let end = (self.pos + 1024 * 1024).min(self.data.len());
        let c = self.data.slice(self.pos..end);
        self.pos = end;
        Ok(Some(c))
    }
    async fn finish(&mut self) -> lifeboat_bucket::Result<()> {
        if self.fail_at_end {
            return Err(BucketError::Changed {
                bucket: "test".into(),
                key: "x".into(),
            });
        }
        Ok(())
    }
    fn size_hint(&self) -> Option<u64> {
        Some(self.data.len() as u64)
    }
}

#[test]
fn directory_bucket_passes_the_suite() {
    let t = tempdir().unwrap();
    let b = Bucket::open_address(&format!("file://{}/b", t.path().display()), true).unwrap();
    rt().block_on(suite(&b));
    // Metadata lives in xattrs; the staging directory is never listed.
    let m = lifeboat_bucket::store::dir::meta_of_file(&t.path().join("b/big.bin")).unwrap();
    assert_eq!(m.content_type.as_deref(), Some("text/html; charset=utf-8"));
    assert!(
        !t.path().join("b/.lifeboat-tmp").exists(),
        "the staging directory goes when empty"
    );
    assert!(
        !t.path().join("b/site/img").exists(),
        "empty directories go with their last object"
    );
    // Keys a path cannot hold are refused by name.
    rt().block_on(async {
        for k in [
            "a//b",
            "dir/",
            "/lead",
            "a/./b",
            "a/../b",
            ".lifeboat-tmp/x",
        ] {
            match b
                .put(
                    k,
                    &ObjectMeta::default(),
                    &mut BytesSource(Some(Bytes::from_static(b"x"))),
                )
                .await
            {
                Err(BucketError::BadKey { .. }) => {}
                other => panic!("{k}: expected BadKey, got {other:?}"),
            }
        }
    });
}

#[test]
fn s3_bucket_passes_the_suite() {
    let s3 = S3Server::start();
    s3.create_bucket("site-a");
    let b = open_s3(&s3.url("site-a", "shop"));
    rt().block_on(suite(&b));
    // The outside view (raw HTTP, not our client) sees what we wrote, under the prefix.
    let head = s3
        .request("HEAD", "/site-a/shop/big.bin")
        .unwrap()
        .to_lowercase();
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("x-amz-meta-owner: shop team"), "{head}");
    let tags = s3.request("GET", "/site-a/shop/big.bin?tagging").unwrap();
    assert!(
        tags.contains("<Key>tier</Key><Value>frontend</Value>"),
        "{tags}"
    );
    // Keys a path split cannot represent are objects like any other on S3.
    rt().block_on(async {
        let odd = ["a//b", "dir/", "/lead", " space ", "100%+ü?#.txt"];
        for k in odd {
            b.put(
                k,
                &meta(),
                &mut BytesSource(Some(Bytes::from(k.as_bytes().to_vec()))),
            )
            .await
            .unwrap();
        }
        for k in odd {
            let (_, m, d) = read_all(&b, k).await;
            assert_eq!(d, k.as_bytes(), "{k:?}");
            assert_eq!(m.tags, meta().tags, "{k:?}");
        }
        let keys: Vec<String> = list(&b, "").await.into_iter().map(|o| o.key).collect();
        for k in odd {
            assert!(
                keys.contains(&k.to_string()),
                "{k:?} not listed in {keys:?}"
            );
        }
    });
    // A missing bucket is named.
    let nb = open_s3(&s3.url("no-such-bucket", ""));
    let e = rt()
        .block_on(async { nb.list("", &mut |_| {}).await })
        .unwrap_err();
    assert!(matches!(e, BucketError::NoBucket { .. }), "{e}");
}

/// Passes an object's chunks through, running `hook` after the first one.
struct Hooked<F: FnMut() + Send> {
    inner: lifeboat_bucket::store::ObjectReader,
    hook: Option<F>,
}

impl<F: FnMut() + Send> Source for Hooked<F> {
    async fn next_chunk(&mut self) -> lifeboat_bucket::Result<Option<Bytes>> {
        let c = self.inner.next_chunk().await?;
        if let Some(mut h) = self.hook.take() {
            h();
        }
        Ok(c)
    }
    async fn finish(&mut self) -> lifeboat_bucket::Result<()> {
        self.inner.finish().await
    }
    fn size_hint(&self) -> Option<u64> {
        self.inner.size_hint()
    }
}

#[test]
fn a_directory_object_changed_while_read_is_refused_at_the_end() {
    let t = tempdir().unwrap();
    let b = Bucket::open_address(&format!("file://{}/b", t.path().display()), true).unwrap();
    let d = Bucket::open_address(&format!("file://{}/d", t.path().display()), true).unwrap();
    let path = t.path().join("b/obj");
    std::fs::write(&path, pseudo_random(5, 3 * 1024 * 1024)).unwrap();
    rt().block_on(async {
        // Written in place (same inode) after the read began: the copy is refused.
        let p = path.clone();
        let mut r = Hooked {
            inner: b.open_read("obj", None).await.unwrap(),
            hook: Some(move || {
                use std::os::unix::fs::FileExt;
                let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
                f.write_all_at(b"XX", 10).unwrap();
            }),
        };
        match d.put("obj", &ObjectMeta::default(), &mut r).await {
            Err(BucketError::Changed { .. }) => {}
            other => panic!("expected Changed, got {other:?}"),
        }
        assert!(
            d.stat("obj").await.unwrap().is_none(),
            "nothing was written"
        );
        // Replaced by rename after the read began: the old version is complete and kept.
        let (p, dir) = (path.clone(), t.path().join("b"));
        let mut r = Hooked {
            inner: b.open_read("obj", None).await.unwrap(),
            hook: Some(move || {
                std::fs::write(dir.join("new"), b"new version").unwrap();
                std::fs::rename(dir.join("new"), &p).unwrap();
            }),
        };
        d.put("obj", &ObjectMeta::default(), &mut r).await.unwrap();
        let got = std::fs::read(t.path().join("d/obj")).unwrap();
        let mut old = pseudo_random(5, 3 * 1024 * 1024);
        old[10..12].copy_from_slice(b"XX");
        assert!(got == old, "the complete old version");
    });
}
