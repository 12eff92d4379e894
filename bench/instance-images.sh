#!/usr/bin/env bash
# Makes two states of a raw disk image holding a real ext4 filesystem, for the
# instance benchmarks: OUT/before.img (files written) and OUT/after.img (then
# about 5 % of its data changed: files rewritten in place, deleted, written).
# Needs root (loop mount). Usage: bench/instance-images.sh OUT [SIZE_GIB] [FILL_MIB]
set -euo pipefail
out=${1:?usage: $0 OUT [SIZE_GIB] [FILL_MIB]}
size=${2:-4}
fill=${3:-1200}
mkdir -p "$out"
img=$out/work.img
mnt=$(mktemp -d)
trap 'umount "$mnt" 2>/dev/null || true; rmdir "$mnt"' EXIT
rm -f "$img"
truncate -s "${size}G" "$img"
mkfs.ext4 -q -F -E lazy_itable_init=1,lazy_journal_init=1,nodiscard "$img"
mount -o loop "$img" "$mnt"
# Real files: a copy of system libraries and docs (compressible, some duplicates),
# plus incompressible data, up to FILL_MIB.
mkdir -p "$mnt/usr" "$mnt/data"
budget=$((fill * 1024 * 1024 * 3 / 4))
du_now() { du -sb "$mnt" | cut -f1; }
for d in /usr/lib/x86_64-linux-gnu /usr/share/doc /usr/share/locale /usr/lib/python3; do
  [ -d "$d" ] || continue
  [ "$(du_now)" -lt "$budget" ] || break
  cp -a "$d" "$mnt/usr/" 2>/dev/null || true
done
i=0
while [ "$(du_now)" -lt $((fill * 1024 * 1024)) ]; do
  head -c $((8 * 1024 * 1024)) /dev/urandom > "$mnt/data/blob$i.bin"; i=$((i + 1))
done
sync; umount "$mnt"
cp --sparse=always "$img" "$out/before.img"
mount -o loop "$img" "$mnt"
total=$(du_now); target=$((total / 20)); changed=0
# Rewrite parts of files in place, delete some, write new ones: ~5 % of the data.
while IFS= read -r -d '' f; do
  [ "$changed" -lt $((target / 3)) ] || break
  s=$(stat -c %s "$f"); [ "$s" -gt 65536 ] || continue
  dd if=/dev/urandom of="$f" bs=4096 seek=$(( (s / 4096) / 2 )) count=4 conv=notrunc status=none
  changed=$((changed + 16384))
done < <(find "$mnt/usr" -type f -print0 | shuf -z --random-source=<(yes))
deleted=0
while IFS= read -r -d '' f; do
  [ "$deleted" -lt $((target / 3)) ] || break
  deleted=$((deleted + $(stat -c %s "$f"))); rm -f "$f"
done < <(find "$mnt/usr" -type f -size +100k -print0 | shuf -z --random-source=<(yes 1))
n=0
while [ $((n * 4 * 1024 * 1024)) -lt $((target / 3)) ]; do
  head -c $((4 * 1024 * 1024)) /dev/urandom > "$mnt/data/new$n.bin"; n=$((n + 1))
done
sync; umount "$mnt"
cp --sparse=always "$img" "$out/after.img"
rm -f "$img"
echo "data $((total / 1048576)) MiB; changed in place ~$((changed / 1048576)) MiB, deleted $((deleted / 1048576)) MiB, new $((n * 4)) MiB"
ls -ls "$out"/*.img
