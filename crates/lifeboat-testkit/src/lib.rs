//! Helpers Lifeboat's tests share: deterministic sample trees, a tree
//! comparison that covers metadata, byte flipping, and a runner for the
//! `lifeboat` binary. Real files and real processes only.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use tempfile::{TempDir, tempdir};

pub mod archive;
pub mod args;
pub mod browser;
pub mod fuzz;
pub mod http_fault;
pub mod load;
pub mod loopdev;
pub mod mariadb;
pub mod procs;
pub mod proxy;
pub mod s3;
pub mod serve;
pub mod wait;

/// Writes a secret file as a user must: readable by its owner only (the
/// declarative file's password files are refused when others can read them).
pub fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Deterministic pseudo-random bytes (xorshift64*), fast enough for hundreds of MB.
pub fn pseudo_random(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        out.extend_from_slice(&s.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Compressible text-like bytes.
pub fn text_bytes(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "order", "cart", "product", "lifeboat", "vault", "unishop", "region", " ", "\n", "42",
    ];
    let r = pseudo_random(seed, len);
    let mut out = Vec::with_capacity(len + 16);
    for b in r {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(words[b as usize % words.len()].as_bytes());
    }
    out.truncate(len);
    out
}

fn set_mtime(path: &Path, secs: i64, nsec: i64) {
    let t = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: nsec as _,
        },
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .expect("set times");
}

/// Builds a tree that exercises every kind of entry the files protector keeps:
/// nested directories, an empty directory, small and multi-chunk files,
/// duplicates, a symlink, a hard link, a sparse file, a fifo, an xattr, a
/// non-UTF-8 name, odd permissions, owners and nanosecond mtimes.
pub fn make_sample_tree(root: &Path, seed: u64) {
    std::fs::create_dir_all(root.join("docs/deep/er")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::create_dir_all(root.join("data")).unwrap();
    for i in 0..20u64 {
        std::fs::write(
            root.join(format!("docs/note-{i}.txt")),
            text_bytes(seed + i, 100 + i as usize * 37),
        )
        .unwrap();
    }
    std::fs::write(root.join("docs/deep/er/leaf.txt"), b"leaf\n").unwrap();
    std::fs::write(
        root.join("data/random.bin"),
        pseudo_random(seed, 3 * 1024 * 1024 + 17),
    )
    .unwrap();
    std::fs::write(
        root.join("data/text.log"),
        text_bytes(seed, 2 * 1024 * 1024),
    )
    .unwrap();
    std::fs::write(
        root.join("data/copy.bin"),
        pseudo_random(seed, 3 * 1024 * 1024 + 17),
    )
    .unwrap();
    std::fs::write(root.join("data/empty-file"), b"").unwrap();
    std::os::unix::fs::symlink("../docs/note-1.txt", root.join("data/link")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", root.join("data/dangling")).unwrap();
    std::fs::hard_link(root.join("docs/note-2.txt"), root.join("data/hardlink")).unwrap();
    // Sparse: 20 MiB with data at 1 MiB and at the end.
    let f = std::fs::File::create(root.join("data/sparse.img")).unwrap();
    f.set_len(20 * 1024 * 1024).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(&pseudo_random(seed + 7, 8192), 1024 * 1024)
        .unwrap();
    f.write_all_at(b"tail", 20 * 1024 * 1024 - 4).unwrap();
    drop(f);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("data/pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    let _ = rustix::fs::setxattr(
        root.join("docs/note-3.txt"),
        "user.lifeboat.test",
        b"value \x00\xff",
        rustix::fs::XattrFlags::empty(),
    );
    std::fs::write(
        root.join(OsStr::from_bytes(b"docs/latin1-\xe9t\xe9")),
        b"non-utf8 name",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("docs/note-4.txt"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("docs/note-5.txt"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    if rustix::process::geteuid().is_root() {
        std::os::unix::fs::lchown(root.join("docs/note-6.txt"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("data/link"), Some(4321), Some(8765)).unwrap();
        // A character device like /dev/null (1, 3).
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("data/null-device"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
    }
    set_mtime(&root.join("docs/note-7.txt"), 1_000_000_000, 123_456_789);
    set_mtime(&root.join("data/link"), 1_200_000_000, 5);
    set_mtime(&root.join("docs/deep"), 1_100_000_000, 987_654_321);
}

/// Changes roughly `fraction` of the regular files below `root` (appends or
/// rewrites), deterministically.
pub fn mutate_tree(root: &Path, fraction: f64, seed: u64) -> usize {
    let mut files = Vec::new();
    walk(root, &mut |p, md| {
        if md.is_file() {
            files.push(p.to_path_buf())
        }
    });
    files.sort();
    let r = pseudo_random(seed, files.len().max(1));
    let mut n = 0;
    for (f, b) in files.iter().zip(r) {
        if (b as f64) / 256.0 < fraction {
            let mut data = std::fs::read(f).unwrap();
            data.extend_from_slice(&pseudo_random(seed ^ b as u64, 1000));
            std::fs::write(f, data).unwrap();
            n += 1;
        }
    }
    n
}

fn walk(p: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    let md = std::fs::symlink_metadata(p).unwrap();
    f(p, &md);
    if md.is_dir() {
        let mut names: Vec<_> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for n in names {
            walk(&n, f);
        }
    }
}

fn xattrs(p: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 65536];
    let Ok(n) = rustix::fs::llistxattr(p, &mut names[..]) else {
        return out;
    };
    for name in names[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).unwrap();
        let mut v = vec![0u8; 65536];
        if let Ok(len) = rustix::fs::lgetxattr(p, cname.as_c_str(), &mut v[..]) {
            out.insert(
                String::from_utf8_lossy(name).into_owned(),
                v[..len].to_vec(),
            );
        }
    }
    out
}

/// Compares two trees entry by entry: type, permissions, owner, size, content,
/// mtime (ns), symlink targets, xattrs, hard-link groups, and that holes of
/// sparse files stay holes. Returns the differences (empty when identical).
pub fn compare_trees(a: &Path, b: &Path) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut ea = BTreeMap::new();
    walk(a, &mut |p, md| {
        ea.insert(p.strip_prefix(a).unwrap().to_path_buf(), md.clone());
    });
    let mut eb = BTreeMap::new();
    walk(b, &mut |p, md| {
        eb.insert(p.strip_prefix(b).unwrap().to_path_buf(), md.clone());
    });
    for k in ea.keys() {
        if !eb.contains_key(k) {
            diffs.push(format!("{}: missing in restore", k.display()));
        }
    }
    for k in eb.keys() {
        if !ea.contains_key(k) {
            diffs.push(format!("{}: extra in restore", k.display()));
        }
    }
    let mut links_a: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    let mut links_b: HashMap<u64, Vec<PathBuf>> = HashMap::new();
    for (k, ma) in &ea {
        let Some(mb) = eb.get(k) else { continue };
        let (pa, pb) = (a.join(k), b.join(k));
        let d = |what: &str, x: String, y: String| format!("{}: {what} {x} != {y}", k.display());
        if ma.file_type() != mb.file_type() {
            diffs.push(d(
                "type",
                format!("{:?}", ma.file_type()),
                format!("{:?}", mb.file_type()),
            ));
            continue;
        }
        if !ma.file_type().is_symlink() && ma.mode() != mb.mode() {
            diffs.push(d(
                "mode",
                format!("{:o}", ma.mode()),
                format!("{:o}", mb.mode()),
            ));
        }
        if k.as_os_str().is_empty() {
            continue; // the roots themselves: owner and times are the caller's
        }
        if (ma.uid(), ma.gid()) != (mb.uid(), mb.gid()) {
            diffs.push(d(
                "owner",
                format!("{}:{}", ma.uid(), ma.gid()),
                format!("{}:{}", mb.uid(), mb.gid()),
            ));
        }
        if (ma.mtime(), ma.mtime_nsec()) != (mb.mtime(), mb.mtime_nsec()) {
            diffs.push(d(
                "mtime",
                format!("{}.{:09}", ma.mtime(), ma.mtime_nsec()),
                format!("{}.{:09}", mb.mtime(), mb.mtime_nsec()),
            ));
        }
        if ma.rdev() != mb.rdev() {
            diffs.push(d(
                "device number",
                ma.rdev().to_string(),
                mb.rdev().to_string(),
            ));
        }
        if xattrs(&pa) != xattrs(&pb) {
            diffs.push(d(
                "xattrs",
                format!("{:?}", xattrs(&pa)),
                format!("{:?}", xattrs(&pb)),
            ));
        }
        if ma.file_type().is_symlink()
            && std::fs::read_link(&pa).ok() != std::fs::read_link(&pb).ok()
        {
            diffs.push(d("target", String::new(), String::new()));
        }
        if ma.is_file() {
            if ma.len() != mb.len() {
                diffs.push(d("size", ma.len().to_string(), mb.len().to_string()));
            } else if std::fs::read(&pa).unwrap() != std::fs::read(&pb).unwrap() {
                diffs.push(d("content", "".into(), "differs".into()));
            }
            if ma.blocks() * 512 < ma.len() && mb.blocks() > ma.blocks() + 64 {
                diffs.push(d(
                    "allocated blocks (holes not kept)",
                    ma.blocks().to_string(),
                    mb.blocks().to_string(),
                ));
            }
            if ma.nlink() > 1 {
                links_a.entry(ma.ino()).or_default().push(k.clone());
                links_b.entry(mb.ino()).or_default().push(k.clone());
            }
        }
    }
    let mut ga: Vec<Vec<PathBuf>> = links_a.into_values().collect();
    let mut gb: Vec<Vec<PathBuf>> = links_b.into_values().collect();
    for g in ga.iter_mut().chain(gb.iter_mut()) {
        g.sort();
    }
    ga.sort();
    gb.sort();
    if ga != gb {
        diffs.push(format!("hard-link groups differ: {ga:?} != {gb:?}"));
    }
    diffs
}

/// Flips one bit of the byte at `offset` of a file (offset from the end when negative).
pub fn flip_byte(path: &Path, offset: i64) {
    let mut data = std::fs::read(path).unwrap();
    let i = if offset < 0 {
        data.len() as i64 + offset
    } else {
        offset
    } as usize;
    data[i] ^= 0x01;
    let perm = std::fs::metadata(path).unwrap().permissions();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, perm).unwrap();
}

/// Every file below `dir` (recursively), sorted.
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, &mut |p, md| {
            if md.is_file() {
                out.push(p.to_path_buf())
            }
        });
    }
    out.sort();
    out
}

/// Runs the `lifeboat` binary against one vault with a fixed password.
#[derive(Debug, Clone)]
pub struct Cli {
    /// The binary.
    pub bin: PathBuf,
    /// The vault location.
    pub vault: String,
    /// The password.
    pub password: String,
    /// Extra environment for every run (e.g. S3 credentials).
    pub env: Vec<(String, String)>,
}

impl Cli {
    /// A runner for `bin` on `vault`.
    pub fn new(bin: impl Into<PathBuf>, vault: &Path) -> Cli {
        Cli::at(bin, &vault.display().to_string())
    }

    /// A runner for `bin` on a vault given by URL (`s3://…`, `file://…`).
    pub fn at(bin: impl Into<PathBuf>, vault: &str) -> Cli {
        Cli {
            bin: bin.into(),
            vault: vault.to_string(),
            password: "correct horse battery staple".into(),
            env: Vec::new(),
        }
    }

    /// This runner reading the working directory `w`'s `lifeboat.toml` and
    /// keeping its state (job history, applied file) in `w/state`.
    pub fn with_workdir(mut self, w: &Path) -> Cli {
        self.env.push((
            "LIFEBOAT_CONFIG".into(),
            w.join("lifeboat.toml").display().to_string(),
        ));
        self.env.push((
            "LIFEBOAT_STATE".into(),
            w.join("state").display().to_string(),
        ));
        self
    }

    /// A command with the vault and password in its environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .env("LIFEBOAT_VAULT", &self.vault)
            .env("LIFEBOAT_PASSWORD", &self.password)
            .env("LIFEBOAT_INSECURE_FAST_KDF", "1")
            .env_remove("LIFEBOAT_PASSWORD_FILE");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs and returns the output.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run lifeboat")
    }

    /// Runs, asserts success, returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "lifeboat {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Restores `point` into `to` with `--verify` and asserts that what lands
    /// there equals `src` (content and metadata, see [`compare_trees`]).
    pub fn assert_restores(&self, point: &str, src: &Path, to: &Path) {
        self.ok(&[
            "restore",
            "files",
            point,
            "--to",
            to.to_str().unwrap(),
            "--verify",
        ]);
        let d = compare_trees(src, &restored(to, src));
        assert!(
            d.is_empty(),
            "restore of {point} differs from {}:\n{}",
            src.display(),
            d.join("\n")
        );
    }

    /// Runs with `--json`, asserts success, parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = args.to_vec();
        a.push("--json");
        let out = self.ok(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }

    /// Runs with `--json` whatever its outcome (a drill that misses an
    /// objective exits 3 with its report): the exit code and the parsed
    /// stdout (panics with stdout and stderr when it is not JSON).
    pub fn json_exit(&self, args: &[&str]) -> (Option<i32>, serde_json::Value) {
        let mut a = args.to_vec();
        a.push("--json");
        let o = self.run(&a);
        let v = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
            panic!(
                "lifeboat {args:?} wrote no JSON ({e}, {}):\nstdout: {}\nstderr: {}",
                o.status,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        });
        (o.status.code(), v)
    }
}

/// A new vault (initialised) of `bin` in a temporary directory, which
/// lives as long as the returned `TempDir`.
pub fn fresh_vault(bin: &str) -> (TempDir, Cli) {
    let t = tempdir().unwrap();
    let c = Cli::new(bin, &t.path().join("vault"));
    c.ok(&["vault", "init"]);
    (t, c)
}

/// The directory a path's restore lands in below `to` (absolute paths are kept).
pub fn restored(to: &Path, original: &Path) -> PathBuf {
    to.join(original.strip_prefix("/").unwrap())
}
