#!/usr/bin/env bash
# detourfs routing benchmark (not a test): what a developer feels when
# node_modules is routed to the memory tier. In one run, on every target:
#   extract  tar -xf of the webapp fixture's node_modules tarball
#   npm-ci   npm ci --prefer-offline of the fixture with a warm cache
#   rm       rm -rf of a routed node_modules tree: RM_TREES (default 2) copies
#            of the fixture's tree, the second and later nested in the first
#            (node_modules/copy-N/node_modules); extracted untimed, caches
#            dropped, then only the rm -rf timed
# Targets:
#   tmpfs           raw tmpfs (the baseline every ratio is against)
#   detourfs        mounted over the volume, node_modules routed to a tmpfs tier;
#                   requests through FUSE-over-io_uring rings (the script turns
#                   /sys/module/fuse/parameters/enable_uring on for the run and
#                   puts it back)
#   detourfs-devfuse  the same, requests through /dev/fuse
#   fuse-overlayfs  upper and work dir on tmpfs, the volume as lower
#   unionfs-fuse    tmpfs RW over the volume RO, copy-on-write
#   mergerfs        tmpfs branch first (creates land there), the volume second
#   volume          straight onto the simulated cross-node volume: flakyfs
#                   with 1 ms per metadata/write operation (bench/volume.sh)
# BASELINE_BIN=/path/to/an/older/detourfs adds detourfs-base (after detourfs)
# and, when detourfs-devfuse is picked, detourfs-base-devfuse: that binary run
# exactly like its counterpart, so new/old ratios come out of one run. Each
# binary gets the flags its --help understands for "rings" and "/dev/fuse"
# (bench/lib.sh, transport_flags), and every measurement checks the daemon
# really used that transport. DETOURFS_BIN measures a given binary instead of
# building this checkout (scripts/build.sh).
# The "volume" is an ext4 loop device. ROUNDS rounds (default 3; VOLUME_ROUNDS,
# default 1, for the slow volume target); TARGETS picks targets (tmpfs and
# detourfs first, always); WORKLOADS picks workloads (default all three);
# RING_FLAGS adds flags to the rings target of this checkout's binary;
# medians and ratios to tmpfs go to bench/results/routed-<time>.md.
# Run as root on a quiet machine.
set -euo pipefail
shopt -s inherit_errexit
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
rounds=${ROUNDS:-3}
volume_rounds=${VOLUME_ROUNDS:-1}
rm_trees=${RM_TREES:-2}
work=${BENCH_DIR:-/tmp/detourfs-bench-routed}
fixtures=${DETOURFS_FIXTURES:-$root/../shared/fixtures}
results_dir=$root/bench/results
mkdir -p "$results_dir"
out=$results_dir/routed-$(date -u +%Y%m%dT%H%M%SZ).md
cache=$work/../detourfs-bench-npm-cache
tarball=$work/../detourfs-bench-node_modules.tar
baseline=${BASELINE_BIN:-}
if [ -n "$baseline" ] && [ ! -x "$baseline" ]; then
  echo "routed.sh: BASELINE_BIN=$baseline is not an executable" >&2
  exit 1
fi
[[ $rm_trees =~ ^[1-9][0-9]*$ ]] || { echo "routed.sh: RM_TREES must be a positive number" >&2; exit 1; }

"$root/scripts/install-deps.sh"
for tool in fuse-overlayfs unionfs mergerfs bc; do
  command -v "$tool" >/dev/null && continue
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse-overlayfs unionfs-fuse mergerfs bc \
    >/dev/null
  break
done
if [ -n "${DETOURFS_BIN:-}" ]; then
  detourfs=$DETOURFS_BIN
else
  BUILD_DIR=build "$root/scripts/build.sh" >/dev/null
  detourfs=$root/build/src/detourfs
fi
. "$here/volume.sh"
. "$here/lib.sh"

# Everything this script mounts lives under $work: FUSE mounts (mnt-*, and
# detourfs in place over ext4/*) go first, then the tmpfs tiers and the ext4
# loop filesystem under them (mount -o loop frees the loop device with it).
cleanup() {
  local m
  for m in "$work"/mnt-* "$work"/ext4/* "$work"/tmpfs-*; do
    mountpoint -q "$m" 2>/dev/null && umount -l "$m"
  done
  mountpoint -q "$work/ext4" 2>/dev/null && umount -l "$work/ext4"
  if grep -qF " $work/" /proc/self/mounts; then
    echo "routed.sh: still mounted under $work:" >&2
    grep -F " $work/" /proc/self/mounts >&2
  fi
  true
}
uring_switch=/sys/module/fuse/parameters/enable_uring
uring_was=$(cat "$uring_switch" 2>/dev/null || true)
[ -w "$uring_switch" ] && echo Y >"$uring_switch"
restore_switch() { [ -n "$uring_was" ] && echo "$uring_was" >"$uring_switch"; true; }
trap 'cleanup; restore_switch' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cleanup
rm -rf "$work"
mkdir -p "$work"

# The workload: the fixture's node_modules as a tarball, and a warm npm cache.
if [ ! -f "$tarball" ]; then
  app=$(mktemp -d)
  cp -r "$fixtures/webapp/." "$app/"
  (cd "$app" && npm ci --no-audit --no-fund --loglevel=error --cache "$cache" >/dev/null)
  tar -C "$app" -cf "$tarball.tmp" node_modules
  mv "$tarball.tmp" "$tarball"
  rm -rf "$app"
fi
files=$(tar -tf "$tarball" | grep -vc '/$')
entries=$(tar -tf "$tarball" | wc -l)
size=$(du -m "$tarball" | cut -f1)

truncate -s 4G "$work/disk.img"
mkfs.ext4 -q -F "$work/disk.img"
mkdir -p "$work/ext4"
mount -o loop "$work/disk.img" "$work/ext4"

# The detourfs targets: which binary each runs and which transport it must use.
declare -A bin_of transport_of flags_of seen_of
detourfs_target() { case $1 in detourfs | detourfs-devfuse | detourfs-base | detourfs-base-devfuse) ;; *) return 1 ;; esac; }
for tg in detourfs detourfs-devfuse detourfs-base detourfs-base-devfuse; do
  case $tg in detourfs-base*) bin_of[$tg]=$baseline ;; *) bin_of[$tg]=$detourfs ;; esac
  case $tg in *-devfuse) transport_of[$tg]=devfuse ;; *) transport_of[$tg]=rings ;; esac
  # Without the kernel's switch there are no rings to ask for or to check.
  [ "$(cat "$uring_switch" 2>/dev/null || true)" = Y ] || transport_of[$tg]=devfuse
  if [ -n "${bin_of[$tg]}" ]; then
    flags_of[$tg]=$(transport_flags "${bin_of[$tg]}" "${transport_of[$tg]}")
  fi
  # RING_FLAGS: more flags for this checkout's binary on rings (e.g.
  # --io-uring-sched-idle, to compare with aac18b4, whose rings ran so).
  if [ "$tg" = detourfs ] && [ "${transport_of[$tg]}" = rings ] && [ -n "${RING_FLAGS:-}" ]; then
    flags_of[$tg]="${flags_of[$tg]} $RING_FLAGS"
  fi
done

# mount_target NAME: mounts the target over a fresh tmpfs and volume directory;
# prints the directory the workload runs in.
mount_target() {
  local name=$1 vol=$work/ext4/$1 fast=$work/tmpfs-$1 mnt=$work/mnt-$1
  mkdir -p "$vol" "$fast" "$mnt"
  mount -t tmpfs -o size=4G tmpfs "$fast"
  case $name in
    tmpfs) mkdir -p "$fast/app"; echo "$fast/app" ;;
    detourfs | detourfs-devfuse | detourfs-base | detourfs-base-devfuse)
      cat >"$work/detourfs.toml" <<EOT
[tiers.memory]
root = "$fast/memory"

[[route]]
match = "**/node_modules"
tier = "memory"
EOT
      mkdir -p "$vol/app"
      local flags=()
      read -r -a flags <<<"${flags_of[$name]}"
      "${bin_of[$name]}" "$vol" -c "$work/detourfs.toml" --log-level warn "${flags[@]}"
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
    *) echo "routed.sh: unknown target $name" >&2; return 1 ;;
  esac
}

unmount_target() {
  local name=$1
  if detourfs_target "$name"; then fusermount3 -u "$work/ext4/$name"
  elif [ "$name" != tmpfs ]; then fusermount3 -u "$work/mnt-$name"
  fi
  # fusermount3 -u returns before a FUSE daemon has exited and let go of
  # the tmpfs under it (fuse-overlayfs holds its upper dir open): wait for it.
  local i
  for i in $(seq 50); do
    umount "$work/tmpfs-$name" 2>/dev/null && break
    [ "$i" = 50 ] && umount "$work/tmpfs-$name"
    sleep 0.1
  done
  rm -rf "${work:?}/ext4/$name"
}

# check_transport NAME: fails unless the daemon serving detourfs target NAME
# reads requests the way the target says (io_uring instances open, or none).
check_transport() {
  local name=$1 pid n seen
  detourfs_target "$name" || return 0
  pid=$(fuse_daemon_pid "$work/ext4/$name")
  [ -n "$pid" ] || { echo "routed.sh: no daemon found for $name" >&2; return 1; }
  n=$(uring_fds "$pid")
  seen=devfuse
  [ "$n" -gt 0 ] && seen=rings
  if [ "$seen" != "${transport_of[$name]}" ]; then
    echo "routed.sh: $name (${bin_of[$name]} ${flags_of[$name]:-without transport flags})" \
      "served through $seen, not ${transport_of[$name]}" >&2
    return 1
  fi
  seen_of[$name]="$seen ($n io_uring instances)"
}

npm_ci() {
  (cd "$1" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error --cache "$cache")
}

# rm_tree DIR: RM_TREES copies of the fixture's node_modules under DIR, one tree.
rm_tree() {
  local k
  tar -C "$1" -xf "$tarball"
  for k in $(seq 2 "$rm_trees"); do
    mkdir "$1/node_modules/copy-$k"
    tar -C "$1/node_modules/copy-$k" -xf "$tarball"
  done
}

read -r -a picked <<<"${TARGETS:-detourfs-devfuse fuse-overlayfs unionfs-fuse mergerfs volume}"
targets=(tmpfs detourfs)  # the baseline and the subject come first, always
[ -n "$baseline" ] && targets+=(detourfs-base)
for target in "${picked[@]}"; do
  case $target in tmpfs | detourfs | detourfs-base | detourfs-base-devfuse) continue ;; esac
  targets+=("$target")
  [ -n "$baseline" ] && [ "$target" = detourfs-devfuse ] && targets+=(detourfs-base-devfuse)
done
read -r -a workloads <<<"${WORKLOADS:-extract npm-ci rm}"
for w in "${workloads[@]}"; do
  case $w in extract | npm-ci | rm) ;; *) echo "routed.sh: unknown workload $w" >&2; exit 1 ;; esac
done
declare -A samples
has() { local x; for x in "${targets[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }

# round_order N: the targets in round N's order. With a baseline, even rounds
# run each baseline target before its counterpart, so a machine getting
# slower or faster during the run does not favour one binary.
round_order() {
  local tg
  for tg in "${targets[@]}"; do
    if [ -z "$baseline" ] || [ $(($1 % 2)) = 1 ]; then echo "$tg"; continue; fi
    case $tg in
      detourfs) echo detourfs-base ;;
      detourfs-base) echo detourfs ;;
      detourfs-devfuse) has detourfs-base-devfuse && echo detourfs-base-devfuse || echo "$tg" ;;
      detourfs-base-devfuse) echo detourfs-devfuse ;;
      *) echo "$tg" ;;
    esac
  done
}

for round in $(seq 1 "$rounds"); do
  mapfile -t order < <(round_order "$round")
  for target in "${order[@]}"; do
    [ "$target" = volume ] && [ "$round" -gt "$volume_rounds" ] && continue
    dir=$(mount_target "$target")
    for w in "${workloads[@]}"; do
      case $w in
        extract)
          drop_caches
          samples[$target,extract]+=" $(t tar -C "$dir" -xf "$tarball")"
          rm -rf "$dir/node_modules" ;;
        npm-ci)
          drop_caches
          cp "$fixtures/webapp/package.json" "$fixtures/webapp/package-lock.json" "$dir/"
          samples[$target,npm-ci]+=" $(t npm_ci "$dir")" ;;
        rm)
          mkdir "$dir/rm"
          rm_tree "$dir/rm"
          drop_caches
          samples[$target,rm]+=" $(t rm -rf "$dir/rm/node_modules")"
          if [ -n "$(ls -A "$dir/rm")" ]; then
            echo "routed.sh: rm -rf left entries on $target: $(ls -A "$dir/rm")" >&2
            exit 1
          fi ;;
      esac
    done
    check_transport "$target"
    unmount_target "$target"
    echo "round $round: $target done${seen_of[$target]:+ (${seen_of[$target]})}" >&2
  done
done

# ratio A B W: median of A's samples of W over B's, or "n/a".
ratio() {
  local a b
  a=$(echo "${samples[$1,$3]:-}" | median)
  b=$(echo "${samples[$2,$3]:-}" | median)
  if [ -z "$a" ] || [ -z "$b" ]; then printf 'n/a'; return; fi
  printf '%.3f' "$(echo "$a / $b" | bc -l)"
}

{
  echo "# detourfs routing benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)."
  echo "FUSE over io_uring: $( [ -n "$uring_was" ] && echo "available (switched on for the run)" || echo "not in this kernel")."
  echo "Tree: webapp node_modules, $files files ($entries entries), $size MB tarball."
  for w in "${workloads[@]}"; do
    case $w in
      extract) echo "- extract: tar -xf of the tree, cold caches." ;;
      npm-ci) echo "- npm-ci: npm ci --prefer-offline of the fixture, warm npm cache." ;;
      rm) echo "- rm: rm -rf of $rm_trees nested cop$( [ "$rm_trees" = 1 ] && echo y || echo ies) of the tree," \
            "$((files * rm_trees)) files ($((entries * rm_trees)) entries), extracted untimed, cold caches." ;;
    esac
  done
  echo
  echo "Median of $rounds rounds ($volume_rounds for volume), seconds (lower is better); ratio"
  echo "to raw tmpfs in brackets."
  echo
  echo "detourfs binaries (checkout $(git -C "$root" describe --always --dirty 2>/dev/null || echo unknown)):"
  echo
  for tg in "${targets[@]}"; do
    detourfs_target "$tg" || continue
    echo "- $tg: ${bin_of[$tg]} ${flags_of[$tg]:-(no transport flag)}; served through ${seen_of[$tg]:-?}"
  done
  echo
  printf '| workload |'; for tg in "${targets[@]}"; do printf ' %s |' "$tg"; done; echo
  printf '|---|'; for _ in "${targets[@]}"; do printf -- '---|'; done; echo
  for w in "${workloads[@]}"; do
    base=$(echo "${samples[tmpfs,$w]}" | median)
    printf '| %s |' "$w"
    for tg in "${targets[@]}"; do
      m=$(echo "${samples[$tg,$w]:-}" | median)
      if [ -z "$m" ]; then printf ' n/a |'; continue; fi
      printf ' %.2f (%.2fx) |' "$m" "$(echo "$m / $base" | bc -l)"
    done
    echo
  done
  echo
  echo "detourfs against the others (ratio of medians, below 1 means detourfs is faster):"
  echo
  others=()
  for tg in "${targets[@]:2}"; do
    case $tg in detourfs-base*) ;; *) others+=("$tg") ;; esac
  done
  printf '| workload |'; for tg in "${others[@]}"; do printf ' detourfs / %s |' "$tg"; done; echo
  printf '|---|'; for _ in "${others[@]}"; do printf -- '---|'; done; echo
  for w in "${workloads[@]}"; do
    printf '| %s |' "$w"
    for tg in "${others[@]}"; do printf ' %s |' "$(ratio detourfs "$tg" "$w")"; done
    echo
  done
  if [ -n "$baseline" ]; then
    # New against old, each transport, and through /dev/fuse against the best
    # peer the issue names; min–max of the samples to judge the noise.
    pairs=("detourfs detourfs-base")
    has detourfs-devfuse && pairs+=("detourfs-devfuse detourfs-base-devfuse")
    has detourfs-devfuse && has fuse-overlayfs && pairs+=("detourfs-devfuse fuse-overlayfs" \
      "detourfs-base-devfuse fuse-overlayfs")
    echo
    echo "Against the baseline ${baseline} (ratio of medians, below 1 means the first is"
    echo "faster; min–max of each side's samples in brackets):"
    echo
    printf '| workload |'
    for p in "${pairs[@]}"; do read -r a b <<<"$p"; printf ' %s / %s |' "$a" "$b"; done; echo
    printf '|---|'; for _ in "${pairs[@]}"; do printf -- '---|'; done; echo
    for w in "${workloads[@]}"; do
      printf '| %s |' "$w"
      for p in "${pairs[@]}"; do
        read -r a b <<<"$p"
        printf ' %s (%s / %s) |' "$(ratio "$a" "$b" "$w")" \
          "$(echo "${samples[$a,$w]:-}" | spread)" "$(echo "${samples[$b,$w]:-}" | spread)"
      done
      echo
    done
  fi
  echo
  echo "Raw samples (seconds):"
  echo
  for tg in "${targets[@]}"; do
    for w in "${workloads[@]}"; do echo "- $tg $w:${samples[$tg,$w]:-}"; done
  done
} | tee "$out"
echo "written to $out" >&2
