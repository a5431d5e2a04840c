#!/usr/bin/env bash
# Installs what is needed, builds detourfs, and runs every test: unit, mount
# and tools suites, first in a normal (-Werror) build, then all again in an
# ASan+UBSan build. Run as root (the mount suites mount for real).
#   SANITIZE=0 skips the sanitizer pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
"$here/install-deps.sh"

run_suites() {
  local build_dir=$1
  meson test -C "$build_dir" --print-errorlogs --num-processes 1
}

echo "== build (release flags, -Werror)"
BUILD_DIR=build "$here/build.sh" >/dev/null
echo "== tests"
run_suites build

if [ "${SANITIZE:-1}" != 0 ]; then
  echo "== build (ASan + UBSan)"
  BUILD_DIR=build-asan "$here/build.sh" -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
  echo "== tests under ASan + UBSan"
  # Abort on the first UBSan report, so a finding fails its test.
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    run_suites build-asan
fi
