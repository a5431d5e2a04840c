#!/usr/bin/env bash
# The "straight onto the cross-node volume" baseline for benchmarks: flakyfs
# (tests/tools/flakyfs) with latency only, no faults.
#
# Sourced by a bench script:
#   . bench/volume.sh
#   volume_start SRC MNT [LATENCY]   # serve SRC at MNT, LATENCY per metadata
#                                    # and write op (default 1ms), fsync 4x that
#   volume_stop MNT
# Or run by hand: bench/volume.sh start SRC MNT [LATENCY] | stop MNT
# The flakyfs binary comes from the default build (scripts/build.sh).
_volume_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FLAKYFS=${FLAKYFS:-$_volume_root/build/tests/tools/flakyfs/flakyfs}

volume_start() {
  local src=$1 mnt=$2 latency=${3:-1ms}
  local value=${latency%%[a-z]*} unit=${latency##*[0-9.]}
  [ -x "$FLAKYFS" ] || { echo "volume.sh: $FLAKYFS not built (scripts/build.sh)" >&2; return 1; }
  mkdir -p "$mnt"
  "$FLAKYFS" "$mnt" --source "$src" --cache 1 \
    --rule "latency meta $latency" --rule "latency write $latency" \
    --rule "latency fsync $(echo "$value * 4" | bc)$unit" \
    >"${TMPDIR:-/tmp}/flakyfs-volume.$$.log" 2>&1 &
  local i
  for i in $(seq 200); do
    [ "$(stat -f -c %t "$mnt" 2>/dev/null)" = 65735546 ] && return 0  # FUSE's magic
    sleep 0.05
  done
  echo "volume.sh: flakyfs did not mount at $mnt" >&2
  return 1
}

volume_stop() { fusermount3 -u "$1"; }

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case ${1:-} in
    start) shift; volume_start "$@" ;;
    stop) shift; volume_stop "$@" ;;
    *) echo "usage: $0 start SRC MNT [LATENCY] | stop MNT" >&2; exit 2 ;;
  esac
fi
