#!/usr/bin/env python3
"""Deterministic benchmark data for bench/files.sh.

  gen_data.py DIR GB          generate about GB gigabytes of mixed files under DIR
  gen_data.py --mutate DIR F  change a fraction F of the files below DIR (originals saved)
  gen_data.py --reset DIR     put back the originals saved by --mutate

The mix: many small text-like files in nested directories, medium files
(random and text-like), a few large files (half random, half text-like), and
duplicates (whole-file copies and a large file differing in its first MiB).
Text-like bytes come from random bytes mapped onto a small alphabet: they
compress about 2:1 and do not deduplicate by accident.
"""
import os
import random
import shutil
import sys

ALPHABET = b"etaoinshrdlucmfw \n.,"
TABLE = bytes(ALPHABET[i % len(ALPHABET)] for i in range(256))
MIB = 1 << 20


def text(rng, n):
    return rng.randbytes(n).translate(TABLE)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def generate(root, gb):
    rng = random.Random(20261125)
    scale = gb / 2.0
    n_small = int(20000 * scale)
    for i in range(n_small):
        write(f"{root}/small/d{i % 97:02d}/e{i % 13}/f{i:06d}.txt", text(rng, rng.randint(512, 16 * 1024)))
    medium = []
    budget = int(1200 * MIB * scale)
    i = 0
    while budget > 0:
        n = rng.randint(1 * MIB, 8 * MIB)
        data = rng.randbytes(n) if rng.random() < 0.6 else text(rng, n)
        p = f"{root}/medium/m{i:04d}.bin"
        write(p, data)
        medium.append(p)
        budget -= n
        i += 1
    large = int(192 * MIB * scale)
    for j in range(2):
        half = large // 2
        write(f"{root}/large/l{j}.img", rng.randbytes(half) + text(rng, large - half))
    # Duplicates.
    for k, p in enumerate(medium[: max(1, len(medium) // 10)]):
        d = f"{root}/dup/copy{k:03d}.bin"
        os.makedirs(os.path.dirname(d), exist_ok=True)
        shutil.copyfile(p, d)
    with open(f"{root}/large/l0.img", "rb") as f:
        data = bytearray(f.read())
    data[:MIB] = rng.randbytes(MIB)
    write(f"{root}/dup/l0-variant.img", bytes(data))


def all_files(root):
    out = []
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            if not f.startswith(".complete-") and os.path.isfile(p) and not os.path.islink(p):
                out.append(p)
    return sorted(out)


def saved_dir(root):
    return os.path.join(os.path.dirname(os.path.abspath(root)), ".originals")


def mutate(root, fraction):
    rng = random.Random(5)
    saved = saved_dir(root)
    files = all_files(root)
    chosen = [p for p in files if rng.random() < fraction]
    for p in chosen:
        rel = os.path.relpath(p, os.path.dirname(os.path.abspath(root)))
        keep = os.path.join(saved, rel)
        if not os.path.exists(keep):
            os.makedirs(os.path.dirname(keep), exist_ok=True)
            shutil.copy2(p, keep)
        size = os.path.getsize(p)
        os.chmod(p, os.stat(p).st_mode | 0o200)
        with open(p, "r+b") as f:
            if size > 64 * 1024:
                f.seek(size // 2)
                f.write(rng.randbytes(4096))
            else:
                f.seek(0, 2)
                f.write(text(rng, 100))
    print(f"changed {len(chosen)} of {len(files)} files ({len(chosen) / max(1, len(files)):.1%})")


def reset(root):
    saved = saved_dir(root)
    if not os.path.isdir(saved):
        return
    base = os.path.dirname(os.path.abspath(root))
    for d, _, fs in os.walk(saved):
        for f in fs:
            keep = os.path.join(d, f)
            target = os.path.join(base, os.path.relpath(keep, saved))
            shutil.copy2(keep, target)
    shutil.rmtree(saved)


if __name__ == "__main__":
    if sys.argv[1] == "--mutate":
        mutate(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] == "--reset":
        reset(sys.argv[2])
    else:
        generate(sys.argv[1], float(sys.argv[2]))
