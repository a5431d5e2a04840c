#!/usr/bin/env bash
# A longer soak of the model checker than CI runs: detourfs mounted in place
# over a directory on ext4 (a loop device), a tmpfs reference, new random
# seeds until DURATION (seconds, default 3600) passes or a mismatch is found.
#   tests/stress/soak.sh [DURATION] [BUILD_DIR]
# Run as root. Every seed tried is printed; a mismatch prints its shortest log.
set -euo pipefail
duration=${1:-3600}
build=${2:-build}
here=$(cd "$(dirname "$0")/../.." && pwd)
detourfs=$here/$build/src/detourfs
stress=$here/$build/tests/stress/detourfs-stress
work=$(mktemp -d /tmp/detourfs-soak.XXXXXX)
cleanup() {
  umount "$work/ext4/tree" 2>/dev/null || umount -l "$work/ext4/tree" 2>/dev/null || true
  umount "$work/ref" 2>/dev/null || true
  umount "$work/ext4" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
truncate -s 2G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$work/ext4" "$work/ref"
mount -o loop "$work/disk.img" "$work/ext4"
mount -t tmpfs -o size=2G tmpfs "$work/ref"
mkdir "$work/ext4/tree"
"$detourfs" "$work/ext4/tree" --log-file "$work/detourfs.log"
end=$((SECONDS + duration))
runs=0
while [ "$SECONDS" -lt "$end" ]; do
  seed=$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')
  rm -rf "${work:?}/ext4/tree/"* "${work:?}/ref/"*
  echo "seed $seed"
  "$stress" --test "$work/ext4/tree" --ref "$work/ref" --seed "$seed" --procs 4 --ops 20000
  runs=$((runs + 1))
done
echo "soak: $runs runs, no mismatch"
