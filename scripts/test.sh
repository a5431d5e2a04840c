#!/usr/bin/env bash
# Installs what is needed, builds detourfs, and runs every test:
#   1. a normal (-Werror) build: every suite (unit, mount, tools, flakyfs,
#      stress, crash), requests through /dev/fuse;
#   2. an ASan+UBSan build: every suite again, with the kernel's
#      FUSE-over-io-uring switch on when the kernel has one and every test
#      mount started with --io-uring (DETOURFS_TEST_IO_URING=1: the daemon
#      then serves requests through per-CPU rings; the switch is put back
#      afterwards), and npm ci only into a routed memory tier (the plain
#      npm ci tests take minutes under ASan and exercise nothing the routed
#      one does not). With SANITIZE=0 the mount and stress suites run a
#      second time in the normal build with the switch on instead;
#   3. a TSan build: the concurrency tests (threads and processes racing in
#      one directory, locks, readdir under churn, stats racing spills, the
#      multi-process model checker, flakyfs with its control thread);
#   4. the libFuzzer targets, FUZZ_SECONDS (default 30 here) each (scripts/fuzz.sh).
# Before the tests of 1, clang's thread-safety analysis of the lock
# annotations (scripts/thread-safety.sh, syntax only).
# Run as root (the mount suites mount for real). SANITIZE=0 skips 2 and 3,
# FUZZ=0 skips 4; FUZZ_SECONDS sets the fuzzing time per target (CI: 30).
# Prints "N passed, N failed, N skipped" (gtest counts, a
# crashed suite counts as one failure) last.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
"$here/install-deps.sh"

passed=0
failed=0
skipped=0

# Runs `meson test` in a build directory with the remaining arguments and adds
# its gtest counts to the totals.
run_suites() {
  local build_dir=$1 rc=0 log
  shift
  meson test -C "$build_dir" --print-errorlogs --num-processes 1 "$@" || rc=$?
  log=$build_dir/meson-logs/testlog.txt
  sum() { grep -oE "^\[  $1 \] [0-9]+ tests?" "$log" | awk '{s += $(NF-1)} END {print s + 0}'; }
  passed=$((passed + $(sum 'PASSED ')))
  failed=$((failed + $(sum 'FAILED ')))
  skipped=$((skipped + $(sum 'SKIPPED')))
  # A suite that crashed or timed out reports no gtest count: count it failed.
  if [ "$rc" -ne 0 ] && [ "$(sum 'FAILED ')" -eq 0 ]; then failed=$((failed + 1)); fi
  return "$rc"
}

# Runs "$@" with the kernel's FUSE-over-io-uring switch on (when this kernel
# has one) and DETOURFS_TEST_IO_URING=1, so the test library starts every
# mount with --io-uring; then puts the switch back as it was.
uring_switch=/sys/module/fuse/parameters/enable_uring
with_io_uring() {
  if [ ! -w "$uring_switch" ]; then
    echo "(this kernel has no FUSE over io_uring: requests stay on /dev/fuse)"
    "$@"
    return
  fi
  local was rc=0
  was=$(cat "$uring_switch")
  echo Y >"$uring_switch"
  DETOURFS_TEST_IO_URING=1 "$@" || rc=$?
  echo "$was" >"$uring_switch"
  return "$rc"
}

fuzzed=""
summary() { echo "$passed passed, $failed failed, $skipped skipped$fuzzed"; }
fail() { summary; exit 1; }

echo "== build (release flags, -Werror)"
BUILD_DIR=build "$here/build.sh" >/dev/null
echo "== clang thread-safety analysis"
if ! BUILD_DIR=build "$here/thread-safety.sh"; then
  failed=$((failed + 1))
  fail
fi
echo "== tests"
run_suites build || fail

if [ "${SANITIZE:-1}" != 0 ]; then
  echo "== build (ASan + UBSan)"
  BUILD_DIR=build-asan "$here/build.sh" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
  echo "== tests under ASan + UBSan, requests through FUSE over io_uring"
  # Abort on the first UBSan report, so a finding fails its test.
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
  with_io_uring run_suites build-asan --test-args='--gtest_filter=-Backings/ToolsTest.NpmCi*' ||
    fail
  unset ASAN_OPTIONS UBSAN_OPTIONS

  echo "== build (TSan)"
  if [ ! -f build-tsan/build.ninja ]; then
    meson setup build-tsan -Dwerror=true -Db_sanitize=thread -Db_lundef=false >/dev/null
  fi
  # Only what the concurrency tests run.
  ninja -C build-tsan src/detourfs tests/tools/flakyfs/flakyfs tests/stress/detourfs-stress \
    tests/mount-tests tests/stress-tests tests/flakyfs-tests >/dev/null
  echo "== concurrency tests under TSan"
  export TSAN_OPTIONS="halt_on_error=1:suppressions=$PWD/tests/tsan.supp"
  run_suites build-tsan --no-rebuild mount \
    --test-args='--gtest_filter=*Concurren*:*Lock*:*ConcurrentChanges*:*Uring*:*SpillRace*' || fail
  run_suites build-tsan --no-rebuild --suite stress --suite flakyfs || fail
  unset TSAN_OPTIONS
else
  echo "== mount and stress tests with FUSE over io_uring"
  with_io_uring run_suites build --no-rebuild --suite mount --suite stress || fail
fi

if [ "${FUZZ:-1}" != 0 ]; then
  echo "== fuzzing"
  if FUZZ_SECONDS=${FUZZ_SECONDS:-30} "$here/fuzz.sh"; then
    fuzzed="; fuzz targets clean: glob, config, manifest, journal"
  else
    failed=$((failed + 1))
    fail
  fi
fi
summary
