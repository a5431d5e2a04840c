#!/usr/bin/env bash
# A longer soak of the model checker than CI runs, new random seeds until
# DURATION (seconds, default 3600) passes or a mismatch is found, alternating
#   flat: detourfs mounted in place over a directory on ext4 (a loop device),
#         no routes, 4 workers x 20000 operations in a flat namespace;
#   home: detourfs over a separate volume directory on that ext4 with a
#         home's routes (node_modules and /*/.cache to a memory tier, dist/
#         and build/ to a disk tier, each a tmpfs), each worker's home made on
#         the volume first (--home --prefill), 4 workers x 20000 operations.
# Each run gets a fresh mount, volume and tiers. MODE (flat, home or both,
# the default) picks the kinds of run.
#   tests/stress/soak.sh [DURATION] [BUILD_DIR] [MODE]
# Run as root. Every seed tried is printed; a mismatch prints its shortest
# log (replay it with the same seed and mode) and ends the soak.
set -euo pipefail
duration=${1:-3600}
build=${2:-build}
mode=${3:-both}
here=$(cd "$(dirname "$0")/../.." && pwd)
detourfs=$here/$build/src/detourfs
stress=$here/$build/tests/stress/detourfs-stress
work=$(mktemp -d /tmp/detourfs-soak.XXXXXX)
unmount_all() {
  for m in "$work/mnt" "$work/ext4/tree"; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
cleanup() {
  unmount_all
  for m in ref memory disk ext4; do umount "$work/$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
truncate -s 4G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$work/ext4" "$work/ref" "$work/memory" "$work/disk" "$work/mnt"
mount -o loop "$work/disk.img" "$work/ext4"
# nodev like the FUSE mount, so the whiteouts RENAME_WHITEOUT leaves open alike.
mount -t tmpfs -o size=2G,nodev,nosuid tmpfs "$work/ref"
mount -t tmpfs -o size=1G tmpfs "$work/memory"
mount -t tmpfs -o size=1G tmpfs "$work/disk"
cat >"$work/home.toml" <<TOML
[tiers.memory]
root = "$work/memory/tier"
[tiers.disk]
root = "$work/disk/tier"
[[route]]
match = "/*/.cache"
tier = "memory"
persist = "never"
[[route]]
match = "**/node_modules"
tier = "memory"
[[route]]
match = ["**/dist/", "**/build/"]
tier = "disk"
TOML

# One run of kind $1 with seed $2 on a fresh mount.
run() {
  local kind=$1 seed=$2
  rm -rf "${work:?}/ext4/"* "${work:?}/ref/"* "${work:?}/memory/"* "${work:?}/disk/"*
  echo "seed $seed ($kind)"
  if [ "$kind" = flat ]; then
    mkdir "$work/ext4/tree"
    "$detourfs" "$work/ext4/tree" --log-file "$work/detourfs.log"
    "$stress" --test "$work/ext4/tree" --ref "$work/ref" --seed "$seed" --procs 4 --ops 20000
  else
    mkdir "$work/ext4/volume"
    "$detourfs" "$work/mnt" --lower "$work/ext4/volume" -c "$work/home.toml" \
      --log-file "$work/detourfs.log"
    "$stress" --home --test "$work/mnt" --ref "$work/ref" --prefill "$work/ext4/volume" \
      --seed "$seed" --procs 4 --ops 20000 --check-every 200
  fi
  unmount_all
}

end=$((SECONDS + duration))
runs=0
while [ "$SECONDS" -lt "$end" ]; do
  seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  case $mode in
    flat | home) run "$mode" "$seed" ;;
    *) if [ $((runs % 2)) -eq 0 ]; then run flat "$seed"; else run home "$seed"; fi ;;
  esac
  runs=$((runs + 1))
done
echo "soak: $runs runs, no mismatch"
