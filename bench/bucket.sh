#!/usr/bin/env bash
# Bucket benchmark: Lifeboat replication vs `rclone sync`, side by side, in one
# run, on the same data: backfill of ≥ 20 000 objects / ≥ 2 GB (directory
# buckets, and S3 buckets on a moto server), then steady-state replication lag
# while a writer puts 50 objects/s for a minute.
#
#   bench/bucket.sh            # full run
#   bench/bucket.sh --quick    # smoke run: 2 000 objects / 200 MB, 10 s of writes
#   bench/bucket.sh --no-s3    # directory buckets only
#   bench/bucket.sh --record   # also append the table to bench/RESULTS.md
#
# Environment: BENCH_DIR (default bench/work/bucket), LIFEBOAT_BIN (default: build release).
. "$(dirname "$0")/lib.sh"
bench_install rclone
bench_moto_bin
bench_lifeboat_bin
export LIFEBOAT_BIN BENCH_DIR=${BENCH_DIR:-$ROOT/bench/work/bucket} MOTO
exec python3 "$ROOT/bench/bucket.py" "$@"
