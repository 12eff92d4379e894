#!/usr/bin/env bash
# Instance benchmark: backup, incremental (5 % of the data changed) and
# restore of a 4 GiB raw image holding ext4 (bench/instance-images.sh makes
# it), lifeboat vs restic, and a plain `qemu-img convert` copy for scale.
# Needs root (loop mount for the images). Prints a markdown table.
# Usage: bench/instance.sh [WORKDIR]   (LIFEBOAT_BIN to pick the binary; default: build release)
. "$(dirname "$0")/lib.sh"
W=${1:-/tmp/lifeboat-bench-instance}
bench_install restic qemu-img:qemu-utils /usr/bin/time:time
bench_lifeboat_bin
LB=$LIFEBOAT_BIN
rm -rf "$W/vault" "$W/restic" "$W/live" "$W"/r-*; mkdir -p "$W/live"
[ -f "$W/img/after.img" ] || bench/instance-images.sh "$W/img" 4 1200 >"$W/images.log"
img=$W/live/disk.img
cp --sparse=always "$W/img/before.img" "$img"
cat >"$W/spec.toml" <<TOML
name = "bench-host"
volumes = ["$img"]
TOML
export LIFEBOAT_VAULT=$W/vault LIFEBOAT_PASSWORD=bench RESTIC_REPOSITORY=$W/restic RESTIC_PASSWORD=bench
"$LB" vault init -q >/dev/null
restic init -q >/dev/null
sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
run() { # step tool cmd...
  local step=$1 tool=$2; shift 2
  /usr/bin/time -f "%e %M %P" -o "$W/$step.$tool" "$@" >"$W/$step.$tool.log" 2>&1
}
# Page cache warm for every tool: read the image first.
cat "$img" >/dev/null
run first lifeboat "$LB" backup instance --spec "$W/spec.toml" --json
run first restic restic backup -q "$img"
run first qemu-img qemu-img convert -f raw -O raw "$img" "$W/copy.raw"
rm -f "$W/copy.raw"
cp --sparse=always "$W/img/after.img" "$img"   # same inode, new content
cat "$img" >/dev/null
run incr lifeboat "$LB" backup instance --spec "$W/spec.toml" --json
run incr restic restic backup -q "$img"
run incr qemu-img qemu-img convert -f raw -O raw "$img" "$W/copy.raw"
rm -f "$W/copy.raw"
run restore lifeboat "$LB" restore instance latest --to "$W/r-lifeboat" --json
run restore restic restic restore latest --target "$W/r-restic"
cmp "$img" "$W/r-lifeboat$img"
cmp "$img" "$W/r-restic$img"
f() { cut -d' ' -f"$2" "$W/$1"; }
echo "| step | lifeboat s | restic s | qemu-img convert s | lifeboat vs restic | lifeboat RSS MiB | restic RSS MiB | lifeboat CPU |"
echo "|---|---|---|---|---|---|---|---|"
for step in first incr restore; do
  l=$(f "$step.lifeboat" 1); r=$(f "$step.restic" 1)
  q=$( [ -f "$W/$step.qemu-img" ] && f "$step.qemu-img" 1 || echo "–")
  echo "| $step | $l | $r | $q | $(python3 -c "print(f'{$r/$l:.2f}×')") | $(( $(f "$step.lifeboat" 2) / 1024 )) | $(( $(f "$step.restic" 2) / 1024 )) | $(f "$step.lifeboat" 3) |"
done
echo
echo "lifeboat first: $(python3 -c "import json;j=json.load(open('$W/first.lifeboat.log'));print('read',j['bytes_read']>>20,'MiB, new',j['bytes_new']>>20,'MiB, stored',j['bytes_stored']>>20,'MiB')")"
echo "lifeboat incremental: $(python3 -c "import json;j=json.load(open('$W/incr.lifeboat.log'));print('read',j['bytes_read']>>20,'MiB, new',j['bytes_new']>>20,'MiB, stored',j['bytes_stored']>>20,'MiB')")"
echo "vault $(du -sm "$W/vault" | cut -f1) MiB, restic repository $(du -sm "$W/restic" | cut -f1) MiB"
echo "restored image allocated: lifeboat $(( $(stat -c %b "$W/r-lifeboat$img") / 2048 )) MiB, restic $(( $(stat -c %b "$W/r-restic$img") / 2048 )) MiB, original $(( $(stat -c %b "$img") / 2048 )) MiB"
