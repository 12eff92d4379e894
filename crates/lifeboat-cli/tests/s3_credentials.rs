//! S3 credentials per site, on moto with IAM enforced (every request's
//! signature and the signer's policies checked, as on AWS):
//! - the secondary pulls from the primary with credentials that may only
//!   read it (`--from-credentials-env`), and those credentials cannot delete
//!   anything there;
//! - the copy writes into an S3 vault whose credentials are another user's
//!   (`--to-credentials-file`), which may not touch the primary;
//! - wrong credentials are named as such.
//!
//! (moto re-signs each request to check it, hashing the body where the
//! client declared `UNSIGNED-PAYLOAD`, as AWS allows; `start_with_iam` keeps
//! the declared value, see `lifeboat_testkit::s3`.)

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};

use lifeboat_testkit::args::backup_files;
use lifeboat_testkit::s3::S3Server;
use lifeboat_testkit::{Cli, make_sample_tree, tempdir};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_lifeboat");

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn policy(actions: &[&str], bucket: &str) -> String {
    let actions: Vec<String> = actions.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":[{}],"Resource":["arn:aws:s3:::{bucket}","arn:aws:s3:::{bucket}/*"]}}]}}"#,
        actions.join(",")
    )
}

/// A runner whose process environment holds these AWS keys.
fn as_user(url: &str, password: &str, keys: &(String, String)) -> Cli {
    let mut c = Cli::at(BIN, url);
    c.password = password.into();
    c.env = vec![
        ("AWS_ACCESS_KEY_ID".into(), keys.0.clone()),
        ("AWS_SECRET_ACCESS_KEY".into(), keys.1.clone()),
        ("AWS_DEFAULT_REGION".into(), "us-east-1".into()),
    ];
    c
}

#[test]
fn the_secondary_pulls_with_read_only_keys_and_writes_with_its_own() {
    let t = tempdir().unwrap();
    let data = t.path().join("data");
    make_sample_tree(&data, 6);
    let s3 = S3Server::start_with_iam();
    s3.create_bucket("primary");
    s3.create_bucket("secondary");
    let primary_admin = s3.iam_user("primary-admin", &policy(&["s3:*"], "primary"));
    let reader = s3.iam_user(
        "dr-reader",
        &policy(
            &["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"],
            "primary",
        ),
    );
    let dr_admin = s3.iam_user("dr-admin", &policy(&["s3:*"], "secondary"));
    s3.enforce_iam();

    let src = as_user(
        &s3.url("primary", "lifeboat"),
        "primary password",
        &primary_admin,
    );
    src.ok(&["vault", "init"]);
    src.ok(&backup_files(&data, &[]));
    src.ok(&backup_files(&data, &[]));
    let dst = as_user(
        &s3.url("secondary", "lifeboat"),
        "secondary password",
        &dr_admin,
    );
    dst.ok(&["vault", "init"]);

    // The primary's admin keys cannot touch the secondary: one set of keys
    // for both vaults does not work.
    let copy = |env: &[(&str, &str)], extra: &[&str]| -> Output {
        let mut a = vec![
            "copy", "--from", &src.vault, "--to", &dst.vault, "--all", "--json",
        ];
        a.extend_from_slice(extra);
        let mut c = Command::new(BIN);
        c.args(&a)
            .env("LIFEBOAT_PASSWORD", &src.password)
            .env("LIFEBOAT_TO_PASSWORD", &dst.password)
            .env("LIFEBOAT_INSECURE_FAST_KDF", "1")
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        c.envs(env.iter().copied());
        c.output().unwrap()
    };
    let o = copy(
        &[
            ("AWS_ACCESS_KEY_ID", &primary_admin.0),
            ("AWS_SECRET_ACCESS_KEY", &primary_admin.1),
        ],
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("access denied") && err.contains("\"secondary\""),
        "{err}"
    );

    // The secondary pulls: read-only keys for the source from DR_PULL_*,
    // its own keys for the target from a private credentials file.
    let file = t.path().join("dr-credentials");
    std::fs::write(
        &file,
        format!(
            "[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            dr_admin.0, dr_admin.1
        ),
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let pull = [
        "--from-credentials-env",
        "DR_PULL",
        "--to-credentials-file",
        file.to_str().unwrap(),
    ];
    let env = [
        ("DR_PULL_ACCESS_KEY_ID", reader.0.as_str()),
        ("DR_PULL_SECRET_ACCESS_KEY", reader.1.as_str()),
    ];
    let o = copy(&env, &pull);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a world-readable file: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let o = copy(&env, &pull);
    assert!(o.status.success(), "pull: {}", stderr(&o));
    // It could not take a reader lock in the primary, and said so.
    assert!(stderr(&o).contains("reading without one"), "{}", stderr(&o));
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["points_copied"], 2, "{r:#}");

    // The read-only keys cannot delete anything from the primary.
    let ro = as_user(&src.vault, &src.password, &reader);
    assert_eq!(ro.json(&["points", "list"]).as_array().unwrap().len(), 2);
    for args in [&["forget", "--keep-last", "1"][..], &["prune"][..]] {
        let o = ro.run(args);
        let err = stderr(&o);
        // forget: 3 (that point could not be forgotten); prune: 1.
        assert!(matches!(o.status.code(), Some(1 | 3)), "{args:?}: {err}");
        assert!(
            err.contains("access denied") && err.contains("read-only credentials"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(src.json(&["points", "list"]).as_array().unwrap().len(), 2);
    // Wrong keys are named as such.
    let wrong = as_user(
        &src.vault,
        &src.password,
        &(reader.0.clone(), "not the secret".into()),
    );
    let o = wrong.run(&["points", "list"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("refused the credentials"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("not the secret"), "{}", stderr(&o));

    // The secondary holds both points whole.
    let r = dst.json(&["vault", "check", "--read-data"]);
    assert_eq!(r["errors"].as_array().unwrap().len(), 0, "{r:#}");
    dst.assert_restores("latest", &data, &t.path().join("restored"));
}

/// A credentials file readable by others is refused before any network
/// call: both vaults are on an endpoint that counts its connections and
/// closes each at once, and the copy never connects to it.
#[test]
fn a_world_readable_credentials_file_is_refused_before_any_vault_is_reached() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let t = tempdir().unwrap();
    let endpoint = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = endpoint.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for c in endpoint.incoming() {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(c);
        }
    });
    let file = t.path().join("dr-credentials");
    std::fs::write(
        &file,
        "[default]\naws_access_key_id = a\naws_secret_access_key = b\n",
    )
    .unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let vault = |bucket: &str| {
        format!("s3://{bucket}/lifeboat?endpoint=http://127.0.0.1:{port}&region=us-east-1")
    };
    let o = Command::new(BIN)
        .args([
            "copy",
            "--from",
            &vault("primary"),
            "--to",
            &vault("secondary"),
        ])
        .args(["--to-credentials-file", file.to_str().unwrap(), "--all"])
        .env("LIFEBOAT_PASSWORD", "p")
        .env("LIFEBOAT_TO_PASSWORD", "q")
        .envs(lifeboat_testkit::s3::CREDENTIALS)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("chmod 600"), "{}", stderr(&o));
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "the copy connected to a vault before refusing its credentials file"
    );
}
