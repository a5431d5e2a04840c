#!/usr/bin/env bash
# detourfs benchmark (not a test): the same workloads, in one run, on raw ext4
# (a loop device), through detourfs, through libfuse's passthrough_ll example
# and through mergerfs. ROUNDS rounds (default 3); medians and ratios to raw
# ext4 go to bench/results/<time>.md. Run as root on a quiet machine.
#
# Workloads:
#   extract   tar -xf of the webapp fixture's node_modules (npm ci once, then tar)
#   stat      find -printf '%s' over the extracted tree, cold caches (remount +
#             drop_caches), so every lookup and getattr reaches the filesystem
#   rm        rm -rf of the extracted tree
#   fio-write sequential 1 GiB write, 1 MiB blocks, fsync at the end
#   fio-read  sequential 1 GiB read, cold caches
# WITH_VOLUME=1 adds "volume": the same ext4 behind flakyfs with 1 ms per
# metadata and write operation (bench/volume.sh), the cross-node volume that
# detourfs exists to avoid. Slow: minutes per round.
set -euo pipefail
shopt -s inherit_errexit  # a failing workload inside $(...) stops the run
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${ROUNDS:-3}
fio_size=${FIO_SIZE:-1G}
work=${BENCH_DIR:-/tmp/detourfs-bench}
fixtures=${DETOURFS_FIXTURES:-$root/../shared/fixtures}
results_dir=$root/bench/results
mkdir -p "$results_dir"
out=$results_dir/$(date -u +%Y%m%dT%H%M%SZ).md

"$root/scripts/install-deps.sh"
if ! command -v fio >/dev/null || ! command -v mergerfs >/dev/null || ! command -v bc >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio mergerfs bc >/dev/null
fi
BUILD_DIR=build "$root/scripts/build.sh" >/dev/null
detourfs=$root/build/src/detourfs
. "$here/volume.sh"
. "$here/lib.sh"

cleanup() {
  for m in "$work"/mnt-*; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
  for m in "$work"/ext4/*; do mountpoint -q "$m" 2>/dev/null && umount -l "$m"; done
  mountpoint -q "$work/ext4" 2>/dev/null && umount -l "$work/ext4"
  true
}
trap cleanup EXIT
cleanup
rm -rf "$work"
mkdir -p "$work"

# passthrough_ll is compiled here from libfuse's examples, never committed.
gcc -O2 -Wall -o "$work/passthrough_ll" /usr/share/doc/libfuse3-dev/examples/passthrough_ll.c \
  $(pkg-config --cflags --libs fuse3)

# The workload: the fixture's node_modules as a tarball.
if [ ! -f "$work/../detourfs-bench-node_modules.tar" ]; then
  app=$(mktemp -d)
  cp -r "$fixtures/webapp/." "$app/"
  (cd "$app" && npm ci --no-audit --no-fund --loglevel=error --cache "$work/../detourfs-bench-npm-cache" >/dev/null)
  tar -C "$app" -cf "$work/../detourfs-bench-node_modules.tar" node_modules
  rm -rf "$app"
fi
tarball=$work/../detourfs-bench-node_modules.tar
files=$(tar -tf "$tarball" | grep -vc '/$')
size=$(du -m "$tarball" | cut -f1)

truncate -s 4G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$work/ext4"
mount -o loop "$work/disk.img" "$work/ext4"

# mount_target NAME: mounts the target's filesystem, prints the directory to use.
mount_target() {
  local name=$1 src=$work/ext4/$1 mnt=$work/mnt-$1
  mkdir -p "$src" "$mnt"
  case $name in
    raw) echo "$src"; return ;;
    detourfs) "$detourfs" "$src" --log-level warn; echo "$src" ;;
    passthrough_ll) "$work/passthrough_ll" -o source="$src",allow_other "$mnt"; echo "$mnt" ;;
    # With allow_other alone passthrough_ll checks no permissions (every user
    # acts as root); default_permissions makes the kernel check them, as
    # detourfs does, at the cost of a GETATTR after each change to a directory.
    passthrough_ll_dp) "$work/passthrough_ll" -o source="$src",allow_other,default_permissions \
                         "$mnt"; echo "$mnt" ;;
    volume) volume_start "$src" "$mnt" 1ms; echo "$mnt" ;;
    mergerfs) mergerfs -o allow_other,use_ino,cache.files=partial,dropcacheonclose=true,minfreespace=0 \
                "$src" "$mnt"; echo "$mnt" ;;
  esac
}

unmount_target() {
  local name=$1
  case $name in
    raw) ;;
    detourfs) fusermount3 -u "$work/ext4/$name" ;;
    *) fusermount3 -u "$work/mnt-$name" ;;
  esac
}


targets=(raw detourfs passthrough_ll passthrough_ll_dp mergerfs)
[ "${WITH_VOLUME:-0}" = 1 ] && targets+=(volume)
workloads=(extract stat rm fio-write fio-read)
declare -A samples

for round in $(seq 1 "$rounds"); do
  for target in "${targets[@]}"; do
    dir=$(mount_target "$target")
    drop_caches
    samples[$target,extract]+=" $(t tar -C "$dir" -xf "$tarball")"
    sync
    unmount_target "$target"; drop_caches; dir=$(mount_target "$target")
    samples[$target,stat]+=" $(t find "$dir/node_modules" -printf '%s\n')"
    samples[$target,rm]+=" $(t rm -rf "$dir/node_modules")"
    samples[$target,fio-write]+=" $(t fio --name=w --rw=write --bs=1M --size="$fio_size" \
      --filename="$dir/fio.dat" --end_fsync=1 --output=/dev/null)"
    unmount_target "$target"; drop_caches; dir=$(mount_target "$target")
    samples[$target,fio-read]+=" $(t fio --name=r --rw=read --bs=1M --size="$fio_size" \
      --filename="$dir/fio.dat" --output=/dev/null)"
    rm -f "$dir/fio.dat"
    unmount_target "$target"
    echo "round $round: $target done" >&2
  done
done

{
  echo "# detourfs benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)."
  echo "Workload: webapp node_modules, $files files, $size MB tarball; fio $fio_size."
  echo "Median of $rounds rounds, seconds (lower is better); ratio to raw ext4 in brackets."
  echo
  printf '| workload |'; for tg in "${targets[@]}"; do printf ' %s |' "$tg"; done; echo
  printf '|---|'; for _ in "${targets[@]}"; do printf -- '---|'; done; echo
  for w in "${workloads[@]}"; do
    base=$(echo "${samples[raw,$w]}" | median)
    printf '| %s |' "$w"
    for tg in "${targets[@]}"; do
      m=$(echo "${samples[$tg,$w]}" | median)
      printf ' %.2f (%.2fx) |' "$m" "$(echo "$m / $base" | bc -l)"
    done
    echo
  done
  echo
  echo "detourfs against the peers (ratio of medians, below 1 means detourfs is faster):"
  echo
  echo "| workload | detourfs / passthrough_ll | detourfs / passthrough_ll_dp | detourfs / mergerfs |"
  echo "|---|---|---|---|"
  for w in "${workloads[@]}"; do
    d=$(echo "${samples[detourfs,$w]}" | median)
    p=$(echo "${samples[passthrough_ll,$w]}" | median)
    pd=$(echo "${samples[passthrough_ll_dp,$w]}" | median)
    m=$(echo "${samples[mergerfs,$w]}" | median)
    printf '| %s | %.2f | %.2f | %.2f |\n' "$w" "$(echo "$d / $p" | bc -l)" \
      "$(echo "$d / $pd" | bc -l)" "$(echo "$d / $m" | bc -l)"
  done
  echo
  echo "Raw samples (seconds):"
  echo
  for tg in "${targets[@]}"; do
    for w in "${workloads[@]}"; do echo "- $tg $w:${samples[$tg,$w]}"; done
  done
} | tee "$out"
echo "written to $out" >&2
