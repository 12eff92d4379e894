#!/usr/bin/env python3
"""Driver of bench/bucket.sh (see there). Prints a table; --record appends it to bench/RESULTS.md."""
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ARGS = set(sys.argv[1:])
QUICK = "--quick" in ARGS
S3 = "--no-s3" not in ARGS
RECORD = "--record" in ARGS
BIN = os.environ["LIFEBOAT_BIN"]
WORK = os.environ["BENCH_DIR"]
MOTO = os.environ["MOTO"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_OBJECTS = 2000 if QUICK else 20000
N_LARGE = 20 if QUICK else 200
WRITE_SECONDS = 10 if QUICK else 60
RATE = 50
CONCURRENCY = 16
MIB = 1 << 20


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def gen(src):
    """N_OBJECTS objects in 100 directories: small ones of 1–40 KiB, and
    N_LARGE large ones of 4–12 MiB: about 2 GB in all (full run)."""
    rng = random.Random(7)
    marker = src.rstrip("/") + f".complete-{N_OBJECTS}"
    if os.path.exists(marker):
        return
    shutil.rmtree(src, ignore_errors=True)
    for old in os.listdir(os.path.dirname(src)):
        if old.startswith("src.complete"):
            os.remove(os.path.join(os.path.dirname(src), old))
    for i in range(N_OBJECTS):
        d = os.path.join(src, f"d{i % 100:02}")
        os.makedirs(d, exist_ok=True)
        size = rng.randint(4, 12) * MIB if i % (N_OBJECTS // N_LARGE) == 0 else rng.randint(1024, 40 * 1024)
        with open(os.path.join(d, f"obj-{i:06}.bin"), "wb") as f:
            f.write(rng.randbytes(size))
    open(marker, "w").close()


def du(src):
    n = b = 0
    for dp, _, fs in os.walk(src):
        for f in fs:
            n += 1
            b += os.path.getsize(os.path.join(dp, f))
    return n, b


def warm(src):
    subprocess.run(f"find {src} -type f -exec cat {{}} + > /dev/null", shell=True, check=True)


def settle_fs():
    subprocess.run(["sync"], check=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def status(state):
    out = subprocess.run([BIN, "replicate", "status", "--json", "--state", state], capture_output=True, check=True).stdout
    v = json.loads(out)
    return v[0] if v else {}


def rclone_env(endpoint):
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)
    for r in ("SRC", "DST"):
        env.update({
            f"RCLONE_CONFIG_{r}_TYPE": "s3", f"RCLONE_CONFIG_{r}_PROVIDER": "Other",
            f"RCLONE_CONFIG_{r}_ENDPOINT": endpoint, f"RCLONE_CONFIG_{r}_ACCESS_KEY_ID": "test",
            f"RCLONE_CONFIG_{r}_SECRET_ACCESS_KEY": "test",
        })
    return env


def lifeboat_backfill(frm, to, state, env=None):
    """`lifeboat replicate --existing --once`: copies everything, exits when nothing waits.
    Returns (seconds, peak RSS MiB, objects copied)."""
    shutil.rmtree(state, ignore_errors=True)
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "replicate", "--from", frm, "--to", to, "--existing", "--once",
                        "--state", state, "--concurrency", str(CONCURRENCY), "--json", "-q"],
                       env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    if r.returncode != 0:
        sys.exit(f"lifeboat replicate failed: {r.stderr[-2000:]}")
    rss = int(r.stderr.strip().splitlines()[-1]) / 1024
    return took, rss, json.loads(r.stdout)["copied"]


def timed(cmd, env=None):
    t0 = time.monotonic()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{cmd} failed: {r.stderr[-2000:]}")
    rss = int(r.stderr.strip().splitlines()[-1]) / 1024
    return time.monotonic() - t0, rss


def check(a, b, env=None):
    # Lifeboat's staging and the replicator's mark are no objects of the content.
    r = subprocess.run(["rclone", "check", a, b, "--exclude", ".lifeboat-tmp/**",
                        "--exclude", "/.lifeboat-replicated"],
                       env=env, capture_output=True, text=True)
    return r.returncode == 0


def writer_load(put, seconds):
    """Puts RATE objects per second for `seconds`; returns the keys and their write times."""
    rng = random.Random(11)
    t0 = time.monotonic()
    keys = []
    for i in range(RATE * seconds):
        target = t0 + i / RATE
        d = target - time.monotonic()
        if d > 0:
            time.sleep(d)
        k = f"live/{i % 20:02}/obj-{i:05}.bin"
        put(k, rng.randbytes(rng.randint(1024, 64 * 1024)))
        keys.append((k, time.time()))
    return keys


def quantiles(v):
    v = sorted(v)
    q = lambda p: v[min(len(v) - 1, max(0, int(len(v) * p + 0.999999) - 1))]
    return q(0.5), q(0.99), v[-1]


def main():
    os.makedirs(WORK, exist_ok=True)
    src = os.path.join(WORK, "src")
    log(f"== data: {N_OBJECTS} objects in {src}")
    gen(src)
    n, size = du(src)
    rows = []
    # --- backfill, directory buckets ---------------------------------------
    for d in ("dst-lifeboat", "dst-rclone"):
        shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)
    warm(src)
    settle_fs()
    log("== backfill dir → dir: lifeboat")
    lt, lrss, copied = lifeboat_backfill(f"file://{src}", f"file://{WORK}/dst-lifeboat", f"{WORK}/state-dir")
    assert copied == n, (copied, n)
    lok = check(src, f"{WORK}/dst-lifeboat")
    settle_fs()
    log("== backfill dir → dir: rclone sync")
    rt, rrss = timed(["rclone", "sync", src, f"{WORK}/dst-rclone", "--transfers", str(CONCURRENCY), "--checkers", str(CONCURRENCY)])
    rok = check(src, f"{WORK}/dst-rclone")
    rows.append(("backfill dir → dir", lt, rt, size, lrss, rrss, lok and rok))
    for d in ("dst-lifeboat", "dst-rclone"):
        shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)
    settle_fs()
    # --- backfill, S3 buckets on moto ---------------------------------------
    moto = None
    s3_notes = ""
    if S3:
        port = free_port()
        moto = subprocess.Popen([MOTO, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        env = rclone_env(endpoint)
        env.update({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
        for b in ("src", "dst-lifeboat", "dst-rclone", "live-src", "live-dst"):
            subprocess.run(["rclone", "mkdir", f"SRC:{b}"], env=env, check=True)
        log("== loading the source bucket (rclone copy)")
        subprocess.run(["rclone", "copy", src, "SRC:src", "--transfers", "16"], env=env, check=True)
        url = lambda b: f"s3://{b}?endpoint={endpoint}&region=us-east-1"
        log("== backfill S3 → S3: lifeboat")
        lt, lrss, copied = lifeboat_backfill(url("src"), url("dst-lifeboat"), f"{WORK}/state-s3", env)
        assert copied == n, (copied, n)
        lok = check("SRC:src", "DST:dst-lifeboat", env)
        log("== backfill S3 → S3: rclone sync")
        rt, rrss = timed(["rclone", "sync", "SRC:src", "DST:dst-rclone", "--transfers", str(CONCURRENCY),
                          "--checkers", str(CONCURRENCY)], env)
        rok = check("SRC:src", "DST:dst-rclone", env)
        rows.append(("backfill S3 → S3 (moto)", lt, rt, size, lrss, rrss, lok and rok))
    # --- steady-state lag ----------------------------------------------------
    lags = []
    live_src, live_dst = os.path.join(WORK, "live-src"), os.path.join(WORK, "live-dst")
    for d in (live_src, live_dst):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(live_src)
    state = f"{WORK}/state-live"
    shutil.rmtree(state, ignore_errors=True)
    rep = subprocess.Popen([BIN, "replicate", "--from", f"file://{live_src}", "--to", f"file://{live_dst}", "--state", state, "-q"])
    time.sleep(1)

    def put_dir(k, data):
        p = os.path.join(live_src, k)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        tmp = os.path.join(live_src, ".w.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
        os.rename(tmp, p)

    log(f"== lag dir → dir: {RATE} objects/s for {WRITE_SECONDS} s")
    keys = writer_load(put_dir, WRITE_SECONDS)
    time.sleep(5)
    s = status(state)
    rep.send_signal(signal.SIGTERM)
    rep.wait()
    # Outside view: destination ctime (renamed into place) − source mtime (written).
    outside = []
    missing = 0
    for k, _ in keys:
        try:
            outside.append(os.stat(os.path.join(live_dst, k)).st_ctime - os.stat(os.path.join(live_src, k)).st_mtime)
        except FileNotFoundError:
            missing += 1
    lags.append(("dir → dir (inotify)", s, quantiles(outside), missing, len(keys)))
    if S3:
        state = f"{WORK}/state-live-s3"
        shutil.rmtree(state, ignore_errors=True)
        rep = subprocess.Popen([BIN, "replicate", "--from", url("live-src"), "--to", url("live-dst"), "--state", state, "-q"], env=env)
        time.sleep(2)
        auth = {"Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"}

        def put_s3(k, data):
            urllib.request.urlopen(urllib.request.Request(f"{endpoint}/live-src/{k}", data=data, method="PUT", headers=auth)).read()

        log(f"== lag S3 → S3 (listing loop): {RATE} objects/s for {WRITE_SECONDS} s")
        keys = writer_load(put_s3, WRITE_SECONDS)
        time.sleep(8)
        s = status(state)
        rep.send_signal(signal.SIGTERM)
        rep.wait()
        lags.append(("S3 → S3 (listing loop, moto)", s, None, 0, len(keys)))
        moto.terminate()
        moto.wait()
    report(n, size, rows, lags)


def report(n, size, rows, lags):
    ver = subprocess.run([BIN, "--version"], capture_output=True, text=True).stdout.strip()
    rver = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.splitlines()[0]
    out = [f"### Bucket benchmark, {time.strftime('%Y-%m-%d')} — {os.cpu_count()} cores, "
           f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, {platform.platform()}", "",
           f"Data: {n} objects, {size / MIB:.0f} MiB ({N_LARGE} of 4–12 MiB, the rest 1–40 KiB) in 100 directories; page cache warm; "
           f"both tools with {CONCURRENCY} transfers.  ",
           f"Versions: {ver}; {rver}", "",
           "| backfill | lifeboat s (MiB/s, obj/s) | rclone sync s (MiB/s, obj/s) | lifeboat RSS MiB | rclone RSS MiB | rclone check | lifeboat vs rclone |",
           "|---|---|---|---|---|---|---|"]
    for name, lt, rt, sz, lr, rr, ok in rows:
        out.append(f"| {name} | {lt:.1f} ({sz / MIB / lt:.0f}, {n / lt:.0f}) | {rt:.1f} ({sz / MIB / rt:.0f}, {n / rt:.0f}) | "
                   f"{lr:.0f} | {rr:.0f} | {'no differences' if ok else 'DIFFERENCES'} | {rt / lt:.2f}× rclone's throughput |")
    out += ["", f"| steady state, {RATE} objects/s for {WRITE_SECONDS} s | lag p50 s | lag p99 s | lag max s | outside view p50 / p99 / max s | missing |",
            "|---|---|---|---|---|---|"]
    for name, s, outside, missing, total in lags:
        ov = " / ".join(f"{x:.3f}" for x in outside) if outside else "—"
        f = lambda v: "—" if v is None else f"{v:.3f}"
        out.append(f"| {name} | {f(s.get('lag_p50_s'))} | {f(s.get('lag_p99_s'))} | {f(s.get('lag_max_s'))} | {ov} | {missing} of {total} |")
    text = "\n".join(out) + "\n"
    print(text)
    if RECORD:
        with open(os.path.join(ROOT, "bench", "RESULTS.md"), "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
