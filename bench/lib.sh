# Helpers shared by the benchmark scripts (sourced): timing, medians, caches.

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
