#!/usr/bin/env bash
# Installs what is needed, builds detourfs, and mounts it in place over DIR:
# the files that were in DIR are served through detourfs from then on.
#   usage: scripts/mount.sh DIR [detourfs options...]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [detourfs options...]" >&2
  exit 1
fi
here=$(cd "$(dirname "$0")" && pwd)
dir=$(realpath "$1")
shift
"$here/install-deps.sh"
"$here/build.sh" >/dev/null
"$here/../build/src/detourfs" "$dir" "$@"
cat <<MSG
detourfs is mounted over $dir (logs: journalctl -t detourfs, or syslog).
  Use it:      cd $dir    (everything there passes through to the directory underneath)
  Check it:    findmnt $dir
  Unmount it:  fusermount3 -u $dir
  After a crash, if $dir says "Transport endpoint is not connected":  umount -l $dir
MSG
