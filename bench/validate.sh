#!/usr/bin/env bash
# `lifeboat validate` of a generated 1,000-resource file (target: < 200 ms).
# Usage: bench/validate.sh [N]   (LIFEBOAT_BIN to pick the binary; default: build release)
. "$(dirname "$0")/lib.sh"
n=${1:-1000}
bench_lifeboat_bin
bin=$LIFEBOAT_BIN
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
f=$work/lifeboat.toml
{
  printf '[site.primary]\nroot = "/srv/primary"\n[site.secondary]\nroot = "/srv/secondary"\n'
  printf '[vault.main]\nsite = "primary"\nlocation = "/srv/primary/vault"\n'
  printf '[vault.dr]\nsite = "secondary"\nlocation = "/srv/secondary/vault"\nlock = { mode = "governance", min_retention = "7d" }\n'
  for i in $(seq 1 "$n"); do
    case $((i % 3)) in
      0) printf '[resource.r%d]\nkind = "files"\nsite = "primary"\npaths = ["/srv/data/%d"]\nexclude = ["*.tmp"]\n' "$i" "$i" ;;
      1) printf '[resource.r%d]\nkind = "mysql"\nsite = "primary"\ndsn = "mysql://backup@127.0.0.1:%d"\npassword_env = "DB%d"\narchive = { vault = "main", copy_to = ["dr"] }\n' "$i" $((3000 + i)) "$i" ;;
      2) printf '[resource.r%d]\nkind = "bucket"\nsite = "primary"\nlocation = "/srv/buckets/b%d"\n' "$i" "$i" ;;
    esac
  done
  for p in $(seq 0 9); do
    printf '[plan.p%d]\nresources = [' "$p"
    for i in $(seq $((p * n / 10 + 1)) $(((p + 1) * n / 10))); do printf '"r%d",' "$i"; done
    printf ']\nschedule = "%d * * * *"\ntimezone = "Europe/Berlin"\nwindow = "30m"\nvault = "main"\nretention = { keep_hourly = 24, keep_daily = 30 }\ncopy = [{ vault = "dr", retention = { keep_daily = 30 } }]\n' "$p"
  done
} > "$f"
"$bin" validate -c "$f"
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
hyperfine --warmup 3 --runs 20 -N "$bin validate -q -c $f"
