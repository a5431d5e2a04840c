# Helpers shared by the benchmark scripts (sourced): timing, medians, caches,
# and which transport a detourfs binary is asked for and really uses.
# shellcheck shell=bash

drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# t CMD...: wall-clock seconds of CMD.
t() {
  local start end
  start=$(date +%s.%N)
  if ! "$@" >/dev/null; then
    echo "bench: failed: $*" >&2
    return 1
  fi
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}

# median: the median of the numbers on stdin (space or newline separated).
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# spread: "min–max" of the numbers on stdin, two decimals.
spread() {
  tr ' ' '\n' | grep -v '^$' | sort -g |
    awk 'NR==1{lo=$1} {hi=$1} END {if (NR) printf "%.2f–%.2f", lo, hi}'
}

# transport_flags BIN rings|devfuse: the flags that make detourfs BIN read
# requests through FUSE-over-io_uring rings, or through /dev/fuse. Up to
# aac18b4 rings were the default wherever the kernel's switch is on and
# --no-io-uring opted out; later builds make them opt-in with --io-uring.
# Whichever of the two flags BIN's --help lists is passed; none when BIN's
# default already is the wanted transport.
transport_flags() {
  local help
  help=$("$1" --help 2>&1) || true
  case $2 in
    rings) grep -Eq -- '--io-uring([^[:alnum:]-]|$)' <<<"$help" && echo --io-uring ;;
    devfuse) grep -Eq -- '--no-io-uring([^[:alnum:]-]|$)' <<<"$help" && echo --no-io-uring ;;
  esac
  true
}

# fuse_daemon_pid MOUNTPOINT: the pid of the process that holds /dev/fuse and
# has MOUNTPOINT among its arguments (the daemon serving it); empty if none.
fuse_daemon_pid() {
  local p arg fd
  for p in /proc/[0-9]*; do
    while IFS= read -r -d '' arg; do
      [ "$arg" = "$1" ] || continue
      for fd in "$p"/fd/*; do
        if [ "$(readlink "$fd" 2>/dev/null)" = /dev/fuse ]; then
          echo "${p#/proc/}"
          return
        fi
      done
    done 2>/dev/null <"$p/cmdline" || true
  done
}

# uring_fds PID: how many io_uring instances PID has open (0 through /dev/fuse).
uring_fds() {
  local fd n=0
  for fd in "/proc/$1"/fd/*; do
    [ "$(readlink "$fd" 2>/dev/null)" = 'anon_inode:[io_uring]' ] && n=$((n + 1))
  done
  echo "$n"
}
