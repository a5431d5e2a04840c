#!/usr/bin/env bash
# detourfs routing benchmark (not a test): what a developer feels when
# node_modules is routed to the memory tier. In one run, on every target:
#   extract  tar -xf of the webapp fixture's node_modules tarball
#   npm-ci   npm ci --prefer-offline of the fixture with a warm cache
# Targets:
#   tmpfs           raw tmpfs (the baseline every ratio is against)
#   detourfs        mounted over the volume, node_modules routed to a tmpfs tier;
#                   requests through io_uring when the kernel has it (the
#                   script turns /sys/module/fuse/parameters/enable_uring on
#                   for the run and puts it back)
#   detourfs-devfuse  the same with --no-io-uring: requests through /dev/fuse
#   fuse-overlayfs  upper and work dir on tmpfs, the volume as lower
#   unionfs-fuse    tmpfs RW over the volume RO, copy-on-write
#   mergerfs        tmpfs branch first (creates land there), the volume second
#   volume          straight onto the simulated cross-node volume: flakyfs
#                   with 1 ms per metadata/write operation (bench/volume.sh)
# The "volume" is an ext4 loop device. ROUNDS rounds (default 3; VOLUME_ROUNDS,
# default 1, for the slow volume target); TARGETS picks targets (tmpfs and
# detourfs first, always); medians and ratios to tmpfs go to
# bench/results/routed-<time>.md; WORKLOADS picks workloads (default both).
# Run as root on a quiet machine.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${ROUNDS:-3}
volume_rounds=${VOLUME_ROUNDS:-1}
work=${BENCH_DIR:-/tmp/detourfs-bench-routed}
fixtures=${DETOURFS_FIXTURES:-$root/../shared/fixtures}
results_dir=$root/bench/results
mkdir -p "$results_dir"
out=$results_dir/routed-$(date -u +%Y%m%dT%H%M%SZ).md
cache=$work/../detourfs-bench-npm-cache
tarball=$work/../detourfs-bench-node_modules.tar

"$root/scripts/install-deps.sh"
for tool in fuse-overlayfs unionfs mergerfs bc; do
  command -v "$tool" >/dev/null && continue
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse-overlayfs unionfs-fuse mergerfs bc \
    >/dev/null
  break
done
BUILD_DIR=build "$root/scripts/build.sh" >/dev/null
detourfs=$root/build/src/detourfs
. "$here/volume.sh"
. "$here/lib.sh"

cleanup() {
  local m
  for m in "$work"/mnt-* "$work"/ext4/* "$work"/tmpfs-*; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  mountpoint -q "$work/ext4" 2>/dev/null && umount -l "$work/ext4"
  true
}
uring_switch=/sys/module/fuse/parameters/enable_uring
uring_was=$(cat "$uring_switch" 2>/dev/null || true)
[ -w "$uring_switch" ] && echo Y >"$uring_switch"
restore_switch() { [ -n "$uring_was" ] && echo "$uring_was" >"$uring_switch"; true; }
trap 'cleanup; restore_switch' EXIT
cleanup
rm -rf "$work"
mkdir -p "$work"

# The workload: the fixture's node_modules as a tarball, and a warm npm cache.
if [ ! -f "$tarball" ]; then
  app=$(mktemp -d)
  cp -r "$fixtures/webapp/." "$app/"
  (cd "$app" && npm ci --no-audit --no-fund --loglevel=error --cache "$cache" >/dev/null)
  tar -C "$app" -cf "$tarball" node_modules
  rm -rf "$app"
fi
files=$(tar -tf "$tarball" | grep -vc '/$')
size=$(du -m "$tarball" | cut -f1)

truncate -s 4G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$work/ext4"
mount -o loop "$work/disk.img" "$work/ext4"

# mount_target NAME: mounts the target over a fresh tmpfs and volume directory;
# prints the directory the workload runs in.
mount_target() {
  local name=$1 vol=$work/ext4/$1 fast=$work/tmpfs-$1 mnt=$work/mnt-$1
  mkdir -p "$vol" "$fast" "$mnt"
  mount -t tmpfs -o size=4G tmpfs "$fast"
  case $name in
    tmpfs) mkdir -p "$fast/app"; echo "$fast/app" ;;
    detourfs | detourfs-devfuse)
      cat >"$work/detourfs.toml" <<EOF
[tiers.memory]
root = "$fast/memory"

[[route]]
match = "**/node_modules"
tier = "memory"
EOF
      mkdir -p "$vol/app"
      local transport=()
      [ "$name" = detourfs-devfuse ] && transport=(--no-io-uring)
      "$detourfs" "$vol" -c "$work/detourfs.toml" --log-level warn "${transport[@]}"
      echo "$vol/app" ;;
    fuse-overlayfs)
      mkdir -p "$fast/upper" "$fast/work" "$vol/app"
      fuse-overlayfs -o lowerdir="$vol",upperdir="$fast/upper",workdir="$fast/work" "$mnt"
      echo "$mnt/app" ;;
    unionfs-fuse)
      mkdir -p "$fast/rw" "$vol/app"
      unionfs -o cow,allow_other "$fast/rw=RW:$vol=RO" "$mnt"
      echo "$mnt/app" ;;
    mergerfs)
      mkdir -p "$fast/rw/app" "$vol/app"
      mergerfs -o allow_other,use_ino,cache.files=partial,category.create=ff,minfreespace=0 \
        "$fast/rw:$vol" "$mnt"
      echo "$mnt/app" ;;
    volume) mkdir -p "$vol/app"; volume_start "$vol" "$mnt" 1ms; echo "$mnt/app" ;;
  esac
}

unmount_target() {
  local name=$1
  case $name in
    tmpfs) ;;
    detourfs | detourfs-devfuse) fusermount3 -u "$work/ext4/$name" ;;
    *) fusermount3 -u "$work/mnt-$name" ;;
  esac
  umount "$work/tmpfs-$name"
  rm -rf "${work:?}/ext4/$name"
}


npm_ci() {
  (cd "$1" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error --cache "$cache")
}

read -r -a picked <<<"${TARGETS:-detourfs-devfuse fuse-overlayfs unionfs-fuse mergerfs volume}"
targets=(tmpfs detourfs)  # the baseline and the subject come first, always
for target in "${picked[@]}"; do
  [ "$target" = tmpfs ] || [ "$target" = detourfs ] || targets+=("$target")
done
read -r -a workloads <<<"${WORKLOADS:-extract npm-ci}"
declare -A samples

for round in $(seq 1 "$rounds"); do
  for target in "${targets[@]}"; do
    [ "$target" = volume ] && [ "$round" -gt "$volume_rounds" ] && continue
    dir=$(mount_target "$target")
    for w in "${workloads[@]}"; do
      drop_caches
      case $w in
        extract)
          samples[$target,extract]+=" $(t tar -C "$dir" -xf "$tarball")"
          rm -rf "$dir/node_modules" ;;
        npm-ci)
          cp "$fixtures/webapp/package.json" "$fixtures/webapp/package-lock.json" "$dir/"
          samples[$target,npm-ci]+=" $(t npm_ci "$dir")" ;;
        *) echo "routed.sh: unknown workload $w" >&2; exit 1 ;;
      esac
    done
    unmount_target "$target"
    echo "round $round: $target done" >&2
  done
done

{
  echo "# detourfs routing benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)."
  echo "FUSE over io_uring: $( [ -n "$uring_was" ] && echo "available (switched on for the run)" || echo "not in this kernel")."
  echo "Workload: webapp node_modules, $files files, $size MB tarball; npm ci --prefer-offline,"
  echo "warm cache. Median of $rounds rounds ($volume_rounds for volume), seconds (lower is"
  echo "better); ratio to raw tmpfs in brackets."
  echo
  printf '| workload |'; for tg in "${targets[@]}"; do printf ' %s |' "$tg"; done; echo
  printf '|---|'; for _ in "${targets[@]}"; do printf -- '---|'; done; echo
  for w in "${workloads[@]}"; do
    base=$(echo "${samples[tmpfs,$w]}" | median)
    printf '| %s |' "$w"
    for tg in "${targets[@]}"; do
      m=$(echo "${samples[$tg,$w]:-}" | median)
      printf ' %.2f (%.2fx) |' "$m" "$(echo "$m / $base" | bc -l)"
    done
    echo
  done
  echo
  echo "detourfs against the others (ratio of medians, below 1 means detourfs is faster):"
  echo
  printf '| workload |'; for tg in "${targets[@]:2}"; do printf ' detourfs / %s |' "$tg"; done; echo
  printf '|---|'; for _ in "${targets[@]:2}"; do printf -- '---|'; done; echo
  for w in "${workloads[@]}"; do
    d=$(echo "${samples[detourfs,$w]}" | median)
    printf '| %s |' "$w"
    for tg in "${targets[@]:2}"; do
      m=$(echo "${samples[$tg,$w]:-}" | median)
      printf ' %.3f |' "$(echo "$d / $m" | bc -l)"
    done
    echo
  done
  echo
  echo "Raw samples (seconds):"
  echo
  for tg in "${targets[@]}"; do
    for w in "${workloads[@]}"; do echo "- $tg $w:${samples[$tg,$w]:-}"; done
  done
} | tee "$out"
echo "written to $out" >&2
