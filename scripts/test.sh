#!/usr/bin/env bash
# Installs what is needed, builds detourfs, and runs every test: unit, mount
# and tools suites, first in a normal (-Werror) build, then all again in an
# ASan+UBSan build. Run as root (the mount suites mount for real).
#   SANITIZE=0 skips the sanitizer pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
"$here/install-deps.sh"

passed=0
failed=0
skipped=0

# Runs every suite in a build directory and adds its gtest counts to the totals.
run_suites() {
  local build_dir=$1 rc=0 log
  meson test -C "$build_dir" --print-errorlogs --num-processes 1 || rc=$?
  log=$build_dir/meson-logs/testlog.txt
  sum() { grep -oE "^\[  $1 \] [0-9]+ tests?" "$log" | awk '{s += $(NF-1)} END {print s + 0}'; }
  passed=$((passed + $(sum 'PASSED ')))
  failed=$((failed + $(sum 'FAILED ')))
  skipped=$((skipped + $(sum 'SKIPPED')))
  # A suite that crashed or timed out reports no gtest count: count it failed.
  if [ "$rc" -ne 0 ] && [ "$(sum 'FAILED ')" -eq 0 ]; then failed=$((failed + 1)); fi
  return "$rc"
}

summary() { echo "$passed passed, $failed failed, $skipped skipped"; }

echo "== build (release flags, -Werror)"
BUILD_DIR=build "$here/build.sh" >/dev/null
echo "== tests"
run_suites build || { summary; exit 1; }

if [ "${SANITIZE:-1}" != 0 ]; then
  echo "== build (ASan + UBSan)"
  BUILD_DIR=build-asan "$here/build.sh" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
  echo "== tests under ASan + UBSan"
  # Abort on the first UBSan report, so a finding fails its test.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suites build-asan || { summary; exit 1; }
fi
summary
