//! `lifeboat stack up|down|status` in a site that names an S3 endpoint: the
//! stack's bucket is made on a real S3 server (moto), the real Unishop binary
//! reads its frontend from it through `${shop-assets.location}`; a bucket
//! with someone's data, an endpoint that refuses connections and one that
//! never answers are refused in words, in bounded time.

mod stack_fixture;

use std::path::Path;
use std::time::{Duration, Instant};

use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, tempdir};
use stack_fixture::{SiteStack, buckets, shop_app, shop_members};

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

/// The keys of a bucket (an outside view).
fn keys(s3: &S3Server, bucket: &str) -> Vec<String> {
    let r = s3
        .request("GET", &format!("/{bucket}?list-type=2"))
        .unwrap();
    r.split("<Key>")
        .skip(1)
        .filter_map(|x| x.split_once("</Key>").map(|(n, _)| n.to_string()))
        .collect()
}

fn cli(w: &Path) -> Cli {
    let mut c = Cli::new(BIN, &w.join("vault")).with_workdir(w);
    c.env.extend(
        CREDENTIALS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    c
}

#[test]
fn stack_up_makes_the_bucket_on_the_sites_endpoint_and_the_shop_reads_its_frontend_from_it() {
    let s3 = S3Server::start();
    let t = tempdir().unwrap();
    let w = t.path();
    let app = shop_app(w, BIN);
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            r#"[site.dr]
root = "{w}/dr"
endpoint = "{endpoint}"
{members}[stack.unishop]
members = ["shop-host", "shop-db", "shop-assets"]
"#,
            w = w.display(),
            members = shop_members(w, &app),
            endpoint = s3.endpoint(),
        ),
    )
    .unwrap();
    let c = cli(w);
    let stack = SiteStack::new(&c, "dr", &["--purge"]);
    assert!(!buckets(&s3).contains(&"shop-assets".to_string()));

    let up = stack.json(&["up"]);
    let members = up["state"]["members"].as_array().unwrap();
    let assets = &members.iter().find(|m| m[0] == "shop-assets").unwrap()[1];
    let location = format!(
        "s3://shop-assets?endpoint={}&region=us-east-1",
        s3.endpoint()
    );
    assert_eq!(assets["outputs"]["location"], location.as_str(), "{up:#}");
    // The bucket is on the endpoint, and the shop published its frontend into it.
    assert!(buckets(&s3).contains(&"shop-assets".to_string()));
    assert!(
        keys(&s3, "shop-assets").contains(&"index.html".to_string()),
        "{:?}",
        keys(&s3, "shop-assets")
    );
    assert!(
        !w.join("dr/buckets/shop-assets").exists(),
        "no directory bucket"
    );
    // `${shop-assets.location}` flowed into the shop's environment.
    let launch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("dr/hosts/shop-host/launch.json")).unwrap())
            .unwrap();
    assert_eq!(launch["env"]["UNISHOP_BUCKET"], location.as_str());
    let host = &members.iter().find(|m| m[0] == "shop-host").unwrap()[1];
    let url = host["outputs"]["url"].as_str().unwrap();
    let index =
        lifeboat_testkit::s3::http_get(url.rsplit(':').next().unwrap().parse().unwrap(), "/");
    assert!(index.to_lowercase().contains("<html"), "{index}");

    // Status: the bucket is reachable and exists.
    let st = stack.json(&["status"]);
    assert_eq!(st["up"], true, "{st:#}");
    // Up again keeps the stack's own bucket, objects and all.
    stack.ok(&["up"]);
    assert!(keys(&s3, "shop-assets").contains(&"index.html".to_string()));

    // Purge: the stack's bucket is emptied and deleted on the endpoint.
    stack.ok(&["down", "--purge"]);
    assert!(
        !buckets(&s3).contains(&"shop-assets".to_string()),
        "{:?}",
        buckets(&s3)
    );
}

fn bucket_only(w: &Path, endpoint: &str) {
    std::fs::write(
        w.join("lifeboat.toml"),
        format!(
            "[site.dr]\nroot = \"{w}/dr\"\nendpoint = \"{endpoint}\"\n[vault.main]\nlocation = \"{w}/vault\"\n[resource.shop-assets]\nkind = \"bucket\"\nlocation = \"file://{w}/unused\"\n[stack.s]\nmembers = [\"shop-assets\"]\n",
            w = w.display()
        ),
    )
    .unwrap();
}

#[test]
fn s3_members_refuse_data_and_dead_or_silent_endpoints_status_sees_them_and_a_declared_one_is_kept()
{
    let s3 = S3Server::start();
    let t = tempdir().unwrap();
    let w = t.path();
    let c = cli(w);
    let up = ["stack", "up", "--stack", "s", "--site", "dr"];

    // A bucket of that name already holds someone's data: refused, untouched.
    s3.create_bucket("shop-assets");
    let r = s3
        .request_with("PUT", "/shop-assets/keep.txt", &[], b"someone's data")
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    bucket_only(w, &s3.endpoint());
    let o = c.run(&up);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bucket `shop-assets`")
            && err.contains(&s3.endpoint())
            && err.contains("already holds objects")
            && err.contains("never provisions a stack into a bucket with data"),
        "{err}"
    );
    assert_eq!(keys(&s3, "shop-assets"), ["keep.txt"]);

    // Emptied, the bucket is adopted; status sees it.
    let r = s3.request("DELETE", "/shop-assets/keep.txt").unwrap();
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    let j = c.json(&up);
    assert_eq!(
        j["state"]["members"][0][1]["outputs"]["location"],
        format!(
            "s3://shop-assets?endpoint={}&region=us-east-1",
            s3.endpoint()
        )
    );
    let st = c.json(&["stack", "status", "--stack", "s", "--site", "dr"]);
    assert_eq!(st["members"][0]["status"], "up", "{st:#}");

    // The bucket is deleted behind the stack's back: status says it is
    // missing (exit 3); `stack up` makes it again.
    let r = s3.request("DELETE", "/shop-assets").unwrap();
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    let o = c.run(&["stack", "status", "--stack", "s", "--site", "dr", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["members"][0]["status"], "missing", "{st:#}");
    c.ok(&up);
    assert!(buckets(&s3).contains(&"shop-assets".to_string()));

    // In the resource's own site, the bucket it declares is used as it is,
    // and a purge never removes it.
    let t3 = tempdir().unwrap();
    std::fs::write(
        t3.path().join("lifeboat.toml"),
        format!(
            "[site.dr]\nroot = \"{w}/dr\"\nendpoint = \"{e}\"\n[vault.main]\nlocation = \"{w}/vault\"\n[resource.assets]\nkind = \"bucket\"\nsite = \"dr\"\nlocation = \"{l}\"\n[stack.s]\nmembers = [\"assets\"]\n",
            w = t3.path().display(),
            e = s3.endpoint(),
            l = s3.url("declared-assets", "")
        ),
    )
    .unwrap();
    let c3 = cli(t3.path());
    let j = c3.json(&up);
    assert_eq!(
        j["state"]["members"][0][1]["outputs"]["location"],
        s3.url("declared-assets", "").as_str()
    );
    assert_eq!(j["state"]["members"][0][1]["borrowed"], true);
    let r = s3
        .request_with("PUT", "/declared-assets/site.css", &[], b"body{}")
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    c3.ok(&["stack", "down", "--stack", "s", "--site", "dr", "--purge"]);
    assert_eq!(keys(&s3, "declared-assets"), ["site.css"]);

    // The endpoint goes away: status says the member is down and names it (exit 3).
    let endpoint = s3.endpoint();
    drop(s3);
    let began = Instant::now();
    let o = c.run(&["stack", "status", "--stack", "s", "--site", "dr", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let st: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(st["members"][0]["status"], "down", "{st:#}");
    assert!(
        st["members"][0]["detail"]
            .as_str()
            .unwrap()
            .contains(&endpoint),
        "{st:#}"
    );
    assert!(began.elapsed() < Duration::from_secs(15));

    // Nothing listens there: refused at once, naming the endpoint and what to check.
    let t2 = tempdir().unwrap();
    let dead = format!(
        "http://127.0.0.1:{}",
        lifeboat_testkit::mariadb::free_port()
    );
    bucket_only(t2.path(), &dead);
    let c2 = cli(t2.path());
    let began = Instant::now();
    let o = c2.run(&up);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!(
            "the S3 endpoint {dead} of site `dr` cannot be used"
        )) && err.contains("check that the object store runs"),
        "{err}"
    );
    assert!(
        began.elapsed() < Duration::from_secs(15),
        "{:?}",
        began.elapsed()
    );

    // An endpoint that accepts connections and never answers: refused within the connect bound.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    bucket_only(t2.path(), &silent_url);
    let mut c3 = c2.clone();
    c3.env
        .push(("LIFEBOAT_S3_CONNECT_TIMEOUT".into(), "2s".into()));
    let began = Instant::now();
    let o = c3.run(&up);
    let took = began.elapsed();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&silent_url) && err.contains("did not answer within 2 s"),
        "{err}"
    );
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(15),
        "{took:?}"
    );
    drop(silent);
}
