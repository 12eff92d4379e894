//! `lifeboat recover` and `lifeboat drill` into a site whose buckets are on
//! an S3 endpoint (a real moto server, the site's own keys from
//! `credentials_env`): the replica there is used in place; a newer point, or
//! no replica, and the newest bucket point is restored into a bucket on the
//! endpoint (never into one holding someone's objects); a drill
//! fills a scratch bucket, removes it afterwards, never touches the replica,
//! and says so when the scratch bucket cannot be removed; a recovered
//! instance gets the bucket's address on the endpoint in its environment.

mod stack_fixture;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use lifeboat_testkit::s3::{CREDENTIALS, S3Server};
use lifeboat_testkit::{Cli, tempdir};
use stack_fixture::buckets;

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn field<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    xml.split_once(&open)
        .and_then(|(_, r)| r.split_once(&format!("</{tag}>")))
        .map_or("", |(v, _)| v)
}

/// Each object of a bucket: key → (ETag, LastModified) (an outside view).
fn objects(s3: &S3Server, bucket: &str) -> BTreeMap<String, (String, String)> {
    let r = s3
        .request("GET", &format!("/{bucket}?list-type=2"))
        .unwrap();
    r.split("<Contents>")
        .skip(1)
        // The replicator's mark (`.lifeboat-replicated`) is no object of the content.
        .filter(|c| field(c, "Key") != ".lifeboat-replicated")
        .map(|c| {
            (
                field(c, "Key").to_string(),
                (
                    field(c, "ETag").to_string(),
                    field(c, "LastModified").to_string(),
                ),
            )
        })
        .collect()
}

fn body(s3: &S3Server, bucket: &str, key: &str) -> Vec<u8> {
    let raw = s3
        .request_bytes(
            "GET",
            &format!("/{bucket}/{}", key.replace(' ', "%20")),
            &[],
            b"",
        )
        .unwrap();
    let at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert!(raw.starts_with(b"HTTP/1.1 200"), "GET {bucket}/{key}");
    raw[at..].to_vec()
}

/// Removes a bucket from outside (its objects, then it).
fn destroy_bucket(s3: &S3Server, bucket: &str) {
    let keys = objects(s3, bucket).into_keys();
    for k in keys.chain([".lifeboat-replicated".to_string()]) {
        let r = s3
            .request("DELETE", &format!("/{bucket}/{}", k.replace(' ', "%20")))
            .unwrap();
        assert!(r.starts_with("HTTP/1.1 204"), "{r}");
    }
    let r = s3.request("DELETE", &format!("/{bucket}")).unwrap();
    assert!(r.starts_with("HTTP/1.1 204"), "{r}");
}

/// The primary's bucket (a directory) backed up into the secondary's vault
/// and replicated onto the secondary's endpoint; the secondary signs with
/// its own keys (`DR_S3_*`; no AWS_* in lifeboat's environment).
struct Sites {
    t: tempfile::TempDir,
    s3: Option<S3Server>,
    c: Cli,
    files: BTreeMap<String, Vec<u8>>,
}

impl Sites {
    fn w(&self) -> &Path {
        self.t.path()
    }

    fn s3(&self) -> &S3Server {
        self.s3.as_ref().unwrap()
    }

    fn config(&self, check: &str) {
        self.config_with(check, &[], "");
    }

    /// With more members, declared by `tables`.
    fn config_with(&self, check: &str, members: &[&str], tables: &str) {
        let w = self.w().display();
        std::fs::write(
            self.w().join("lifeboat.toml"),
            format!(
                r#"[site.primary]
root = "{w}/primary"
[site.dr]
root = "{w}/dr"
endpoint = "{endpoint}"
credentials_env = "DR_S3"
[vault.dr]
site = "dr"
location = "{w}/dr-vault"
[resource.shop-assets]
kind = "bucket"
site = "primary"
location = "file://{w}/primary/buckets/shop-assets"
[replication.assets]
from = "shop-assets"
to = "{replica}"
[stack.shop]
members = ["shop-assets"{extra_members}]
check = "{check}"
{extra_tables}"#,
                extra_members = members
                    .iter()
                    .map(|m| format!(", \"{m}\""))
                    .collect::<String>(),
                extra_tables = tables,
                endpoint = self.s3().endpoint(),
                replica = self.s3().url("shop-assets-replica", ""),
            ),
        )
        .unwrap();
    }

    fn protected() -> Sites {
        let s3 = S3Server::start();
        let t = tempdir().unwrap();
        let w = t.path().to_path_buf();
        let mut c = Cli::new(BIN, &w.join("dr-vault")).with_workdir(&w);
        c.env.push(("DR_S3_ACCESS_KEY_ID".into(), "test".into()));
        c.env
            .push(("DR_S3_SECRET_ACCESS_KEY".into(), "test".into()));
        let src = w.join("primary/buckets/shop-assets");
        let mut files = BTreeMap::new();
        files.insert("index.html".to_string(), b"<html>shop</html>".to_vec());
        files.insert(
            "img/p1.bin".to_string(),
            lifeboat_testkit::pseudo_random(1, 300_000),
        );
        files.insert("css/a b.css".to_string(), b"body{}".to_vec());
        for (k, v) in &files {
            std::fs::create_dir_all(src.join(k).parent().unwrap()).unwrap();
            std::fs::write(src.join(k), v).unwrap();
        }
        let me = Sites {
            t,
            s3: Some(s3),
            c,
            files,
        };
        me.config("true");
        let c = &me.c;
        c.ok(&["vault", "init"]);
        let bucket = format!("file://{}", src.display());
        c.ok(&[
            "backup",
            "bucket",
            "--bucket",
            &bucket,
            "--resource",
            "shop-assets",
        ]);
        // The replica on the secondary's endpoint (replicated with AWS_* keys).
        me.s3().create_bucket("shop-assets-replica");
        let mut rep = c.command(&[
            "replicate",
            "--from",
            &bucket,
            "--to",
            &me.s3().url("shop-assets-replica", ""),
            "--existing",
            "--once",
            "--state",
        ]);
        rep.arg(w.join("replication"));
        for (k, v) in CREDENTIALS {
            rep.env(k, v);
        }
        let o = rep.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(objects(me.s3(), "shop-assets-replica").len(), 3);
        me
    }

    fn assert_holds_the_files(&self, bucket: &str) {
        let got: Vec<String> = objects(self.s3(), bucket).into_keys().collect();
        let want: Vec<String> = self.files.keys().cloned().collect();
        assert_eq!(got, want);
        for (k, v) in &self.files {
            assert!(body(self.s3(), bucket, k) == *v, "{bucket}/{k} differs");
        }
    }
}

fn src_of(r: &serde_json::Value, m: &str) -> serde_json::Value {
    r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["member"] == m)
        .unwrap_or_else(|| panic!("{r:#}"))
        .clone()
}

#[test]
fn a_recovery_uses_the_replica_on_the_endpoint_in_place_and_without_it_restores_the_point_there() {
    let sites = Sites::protected();
    let (c, s3) = (&sites.c, sites.s3());
    std::fs::remove_dir_all(sites.w().join("primary")).unwrap();
    let replica = s3.url("shop-assets-replica", "");
    let before = objects(s3, "shop-assets-replica");

    // The replica on the endpoint is used in place.
    let r = c.json(&["recover", "--stack", "shop", "--to", "dr"]);
    let src = src_of(&r, "shop-assets");
    assert_eq!(src["from"], "replica", "{r:#}");
    assert!(
        src["why"].as_str().unwrap().contains(&s3.endpoint()),
        "{src}"
    );
    assert_eq!(r["outputs"]["shop-assets.location"], replica.as_str());
    let st = c.json(&["stack", "status", "--stack", "shop", "--site", "dr"]);
    assert_eq!(st["members"][0]["status"], "up", "{st:#}");
    assert!(!buckets(s3).contains(&"shop-assets".to_string()));
    // Purging the recovered stack never removes the replica it used.
    c.ok(&[
        "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
    ]);
    // ... and the recovery fenced it against the old primary's replicator
    // (issue 21 D19): its objects are as they were, the fence beside them.
    let fenced = objects(s3, "shop-assets-replica");
    let mut after = fenced.clone();
    assert!(after.remove(".lifeboat-fence").is_some(), "{after:?}");
    assert_eq!(after, before);

    // A point whose objects are newer than the replica's: the point is
    // restored into a bucket on the endpoint; the replica stays as it is.
    let newer = sites.w().join("newer");
    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    for (k, v) in &sites.files {
        let p = newer.join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, v).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(future)
            .unwrap();
    }
    c.ok(&[
        "backup",
        "bucket",
        "--bucket",
        &format!("file://{}", newer.display()),
        "--resource",
        "shop-assets",
    ]);
    let r = c.json(&["recover", "--stack", "shop", "--to", "dr"]);
    let src = src_of(&r, "shop-assets");
    assert_eq!(src["from"], "point", "{r:#}");
    assert!(
        src["why"]
            .as_str()
            .unwrap()
            .contains("newer objects than the replica"),
        "{src}"
    );
    sites.assert_holds_the_files("shop-assets");
    assert_eq!(objects(s3, "shop-assets-replica"), fenced);
    c.ok(&[
        "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
    ]);
    assert!(!buckets(s3).contains(&"shop-assets".to_string()));

    // The replica is lost: the newest point is restored into a bucket on the endpoint.
    destroy_bucket(s3, "shop-assets-replica");
    // A bucket of that name holding someone's objects is never written over
    // nor removed: the point goes into a bucket of its own.
    s3.create_bucket("shop-assets");
    let r = s3
        .request_with("PUT", "/shop-assets/theirs.txt", &[], b"not the shop's")
        .unwrap();
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let r = c.json(&["recover", "--stack", "shop", "--to", "dr"]);
    let own = own_bucket(&r);
    assert!(own.starts_with("shop-assets-recovered-"), "{r:#}");
    assert!(
        src_of(&r, "shop-assets")["why"]
            .as_str()
            .unwrap()
            .contains("holds objects"),
        "{r:#}"
    );
    sites.assert_holds_the_files(&own);
    c.ok(&[
        "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
    ]);
    assert!(
        !buckets(s3).contains(&own),
        "what the recovery made is purged"
    );
    assert_eq!(
        objects(s3, "shop-assets").into_keys().collect::<Vec<_>>(),
        ["theirs.txt"]
    );
    // Gone, the bucket named after the resource is made and filled.
    destroy_bucket(s3, "shop-assets");
    let r = c.json(&["recover", "--stack", "shop", "--to", "dr"]);
    let src = src_of(&r, "shop-assets");
    assert_eq!(src["from"], "point", "{r:#}");
    assert_eq!(src["vault"], "dr");
    assert!(src["why"].as_str().unwrap().contains("no replica"), "{src}");
    let location = format!(
        "s3://shop-assets?endpoint={}&region=us-east-1",
        s3.endpoint()
    );
    assert_eq!(r["outputs"]["shop-assets.location"], location.as_str());
    sites.assert_holds_the_files("shop-assets");
    let steps = r["steps"].to_string();
    assert!(steps.contains("restore the bucket point"), "{steps}");
    let st = c.json(&["stack", "status", "--stack", "shop", "--site", "dr"]);
    assert_eq!(st["up"], true, "{st:#}");
    // The recovered stack's own bucket is removed by a purge.
    c.ok(&[
        "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
    ]);
    assert!(!buckets(s3).contains(&"shop-assets".to_string()));
}

/// The bucket a recovery restored `shop-assets` into (its name on the endpoint).
fn own_bucket(r: &serde_json::Value) -> String {
    let loc = r["outputs"]["shop-assets.location"].as_str().unwrap();
    loc.strip_prefix("s3://")
        .and_then(|l| l.split('?').next())
        .unwrap()
        .to_string()
}

#[test]
fn a_recovery_to_an_earlier_time_never_writes_into_the_replica_on_the_endpoint_nor_purges_it() {
    let sites = Sites::protected();
    let (c, s3) = (&sites.c, sites.s3());
    // The replica lives in the bucket named after the resource.
    let w = sites.w().display().to_string();
    let text = std::fs::read_to_string(sites.w().join("lifeboat.toml")).unwrap();
    let text = text.replace(
        &s3.url("shop-assets-replica", ""),
        &s3.url("shop-assets", ""),
    );
    std::fs::write(sites.w().join("lifeboat.toml"), text).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let at = chrono::Utc::now();
    std::thread::sleep(Duration::from_millis(1100));
    // Written after `at`, replicated.
    let src = sites.w().join("primary/buckets/shop-assets");
    std::fs::write(src.join("after.txt"), b"written after at").unwrap();
    s3.create_bucket("shop-assets");
    let mut rep = c.command(&[
        "replicate",
        "--from",
        &format!("file://{}", src.display()),
        "--to",
        &s3.url("shop-assets", ""),
        "--existing",
        "--once",
        "--state",
    ]);
    rep.arg(format!("{w}/replication-2"));
    for (k, v) in CREDENTIALS {
        rep.env(k, v);
    }
    let o = rep.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let before = objects(s3, "shop-assets");
    assert!(before.contains_key("after.txt"));

    let r = c.json(&[
        "recover",
        "--stack",
        "shop",
        "--to",
        "dr",
        "--at",
        &at.to_rfc3339(),
    ]);
    let own = own_bucket(&r);
    assert_ne!(own, "shop-assets", "restored into the replica: {r:#}");
    sites.assert_holds_the_files(&own);
    let why = src_of(&r, "shop-assets")["why"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(why.contains("replication destination"), "{why}");
    assert!(why.contains("--at"), "{why}");
    assert_eq!(
        objects(s3, "shop-assets"),
        before,
        "the replica is untouched"
    );
    c.ok(&[
        "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
    ]);
    assert!(!buckets(s3).contains(&own));
    assert_eq!(
        objects(s3, "shop-assets"),
        before,
        "the replica is not purged"
    );
}

fn scratch_buckets(s3: &S3Server) -> Vec<String> {
    buckets(s3)
        .into_iter()
        .filter(|b| b.starts_with("lifeboat-drill-"))
        .collect()
}

#[test]
fn a_drill_fills_a_scratch_bucket_from_the_replica_removes_it_and_reports_a_failed_teardown() {
    let mut sites = Sites::protected();
    let w = sites.w().to_path_buf();
    let replica_before = objects(sites.s3(), "shop-assets-replica");

    // The drill's check sees the scratch bucket's address and its content.
    sites.config("echo '${shop-assets.location}'");
    let d = sites.c.json(&["drill", "--stack", "shop", "--to", "dr"]);
    assert_eq!(d["passed"], true, "{d:#}");
    assert_eq!(d["torn_down"], true, "{d:#}");
    let seen = d["check"]["output"].as_str().unwrap().trim().to_string();
    let scratch = seen
        .strip_prefix("s3://")
        .and_then(|s| s.split_once('?'))
        .map(|(b, _)| b.to_string())
        .unwrap_or_else(|| panic!("{seen}"));
    assert!(
        scratch.starts_with("lifeboat-drill-") && scratch.ends_with("-shop-assets"),
        "{scratch}"
    );
    let src = src_of(&d["recovery"], "shop-assets");
    assert_eq!(src["from"], "replica", "{d:#}");
    assert!(
        src["why"]
            .as_str()
            .unwrap()
            .contains("copied into the scratch bucket"),
        "{src}"
    );
    // Gone afterwards; the replica untouched (same objects, ETags and times).
    assert!(
        scratch_buckets(sites.s3()).is_empty(),
        "{:?}",
        buckets(sites.s3())
    );
    assert_eq!(objects(sites.s3(), "shop-assets-replica"), replica_before);
    assert!(!w.join("dr/drills").exists());

    // A drill to a random earlier moment restores the point (a replica is
    // as of now) into its scratch bucket, removed afterwards too.
    let d = sites.c.json(&[
        "drill",
        "--stack",
        "shop",
        "--to",
        "dr",
        "--pick",
        "random-within:1d",
    ]);
    assert_eq!(d["passed"], true, "{d:#}");
    let src = src_of(&d["recovery"], "shop-assets");
    assert_eq!(src["from"], "point", "{d:#}");
    assert_eq!(d["torn_down"], true, "{d:#}");
    assert!(
        scratch_buckets(sites.s3()).is_empty(),
        "{:?}",
        buckets(sites.s3())
    );

    // A drill whose recovery fails (a member without a point) leaves no
    // scratch bucket behind.
    sites.config_with(
        "true",
        &["etc"],
        "[resource.etc]\nkind = \"files\"\nsite = \"primary\"\npaths = [\"/etc\"]\n",
    );
    let o = sites
        .c
        .run(&["drill", "--stack", "shop", "--to", "dr", "--json"]);
    assert_eq!(o.status.code(), Some(3));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(
        d["error"].as_str().unwrap().contains("no point of `etc`"),
        "{d:#}"
    );
    assert_eq!(d["torn_down"], true, "{d:#}");
    assert!(
        scratch_buckets(sites.s3()).is_empty(),
        "{:?}",
        buckets(sites.s3())
    );
    assert_eq!(objects(sites.s3(), "shop-assets-replica"), replica_before);

    // The endpoint dies while the scratch stack is up: the drill says the
    // scratch bucket was not removed, and which.
    let checked = w.join("checked");
    let go = w.join("go");
    sites.config(&format!(
        "echo '${{shop-assets.location}}' > {}; while [ ! -e {} ]; do sleep 0.05; done",
        checked.display(),
        go.display()
    ));
    let drill = sites
        .c
        .command(&["drill", "--stack", "shop", "--to", "dr", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !checked.exists() {
        assert!(Instant::now() < deadline, "the drill's check never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = scratch_buckets(sites.s3());
    assert_eq!(left.len(), 1, "{left:?}");
    sites.assert_holds_the_files(&left[0]);
    sites.s3 = None;
    std::fs::write(&go, b"").unwrap();
    let began = Instant::now();
    let o = drill.wait_with_output().unwrap();
    assert!(began.elapsed() < Duration::from_secs(30));
    let d: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(d["passed"], true, "{d:#}");
    assert_eq!(d["torn_down"], false, "{d:#}");
    let why = d["teardown_error"].as_str().unwrap();
    assert!(
        why.contains(&left[0]) && why.contains("could not be removed"),
        "{why}"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("the scratch stack was not removed whole"),
        "{err}"
    );
    let job = d["job"].to_string();
    let j = sites.c.json(&["jobs", "show", &job]);
    assert!(
        j["log"].as_str().unwrap().contains("teardown failed"),
        "{j:#}"
    );
}

#[test]
fn a_planned_switchover_replicates_once_more_into_the_replica_on_the_endpoint_and_uses_it() {
    let sites = Sites::protected();
    let (s3, w) = (sites.s3(), sites.w());
    // Written at the primary after the replica was made: only the
    // switchover's last replication pass brings it to the endpoint.
    let late = w.join("primary/buckets/shop-assets/late.html");
    std::fs::write(&late, b"<p>the last change</p>").unwrap();
    assert!(!objects(s3, "shop-assets-replica").contains_key("late.html"));
    let mut c = sites.c.clone();
    c.env.extend(
        CREDENTIALS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    let r = c.json(&["recover", "--planned", "--stack", "shop", "--to", "dr"]);
    let pass = &r["switchover"]["replicated"][0];
    assert_eq!(pass[0], "shop-assets", "{r:#}");
    assert!(pass[1].as_u64().unwrap() >= 1, "{r:#}");
    let src = src_of(&r, "shop-assets");
    assert_eq!(src["from"], "replica", "{r:#}");
    assert_eq!(
        r["outputs"]["shop-assets.location"],
        s3.url("shop-assets-replica", "").as_str()
    );
    assert_eq!(
        body(s3, "shop-assets-replica", "late.html"),
        b"<p>the last change</p>"
    );
}

#[test]
fn a_recovered_instance_is_started_with_the_bucket_on_the_endpoint_in_its_environment() {
    let sites = Sites::protected();
    let (c, s3, w) = (&sites.c, sites.s3(), sites.w());
    // A small app host: it writes the bucket address it was given, and serves HTTP.
    let app = w.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("README"), b"the app host").unwrap();
    let launch = format!(
        r#"[launch]
command = ["sh", "-c", "printf %s \"$SHOP_BUCKET\" > bucket.seen && exec python3 -m http.server ${{port}} --bind 127.0.0.1"]
cwd = "{app}"
env = {{ SHOP_BUCKET = "${{shop-assets.location}}" }}
health = "http://${{listen}}/"
health_timeout = "30s"
"#,
        app = app.display()
    );
    let spec = w.join("shop-host.toml");
    std::fs::write(
        &spec,
        format!(
            "name = \"shop-host\"\npaths = [\"{}\"]\n{launch}",
            app.display()
        ),
    )
    .unwrap();
    c.ok(&["backup", "instance", "--spec", spec.to_str().unwrap()]);
    sites.config_with(
        "true",
        &["shop-host"],
        &format!(
            "[resource.shop-host]\nkind = \"instance\"\nsite = \"primary\"\npaths = [\"{}\"]\n{}",
            app.display(),
            launch.replace("[launch]", "[resource.shop-host.launch]")
        ),
    );
    struct Down<'a>(&'a Cli);
    impl Drop for Down<'_> {
        fn drop(&mut self) {
            let _ = self.0.run(&[
                "stack", "down", "--stack", "shop", "--site", "dr", "--purge",
            ]);
        }
    }
    let _down = Down(c);
    std::fs::remove_dir_all(w.join("primary")).unwrap();

    let r = c.json(&["recover", "--stack", "shop", "--to", "dr"]);
    let replica = s3.url("shop-assets-replica", "");
    assert_eq!(src_of(&r, "shop-assets")["from"], "replica", "{r:#}");
    assert_eq!(src_of(&r, "shop-host")["from"], "point", "{r:#}");
    let host = w.join("dr/hosts/shop-host");
    let launch: serde_json::Value =
        serde_json::from_slice(&std::fs::read(host.join("launch.json")).unwrap()).unwrap();
    assert_eq!(launch["env"]["SHOP_BUCKET"], replica.as_str(), "{launch:#}");
    let cwd = PathBuf::from(launch["cwd"].as_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(cwd.join("bucket.seen")).unwrap(),
        replica
    );
    let url = r["outputs"]["shop-host.url"].as_str().unwrap();
    assert_eq!(
        lifeboat_instance::supervise::http_status(&format!("{url}/"), Duration::from_secs(5)),
        Ok(200)
    );
}
