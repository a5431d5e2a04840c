#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) in build-fuzz and runs
# each for FUZZ_SECONDS (default 60) from the seed corpus in tests/fuzz/corpus.
# New interesting inputs go to a scratch directory, not the repository. A
# crash leaves its input in build-fuzz/artifacts/ and fails the script: fix
# it, then add the input to tests/fuzz/corpus/<target>/ as a regression test.
#   scripts/fuzz.sh [TARGET...]     (targets: glob config manifest journal; default all)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(glob config manifest journal)
build_dir=build-fuzz
if [ ! -f "$build_dir/build.ninja" ]; then
  CXX=clang++ CC=clang meson setup "$build_dir" -Dfuzz=true -Dwerror=true \
    -Db_sanitize=address,undefined -Db_lundef=false >/dev/null
fi
ninja -C "$build_dir" $(for t in "${targets[@]}"; do echo "tests/fuzz/$t-fuzzer"; done) \
  >"$build_dir/ninja.log" 2>&1 || { cat "$build_dir/ninja.log"; exit 1; }
mkdir -p "$build_dir/artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  echo "== fuzz $t for ${seconds}s"
  if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$build_dir/tests/fuzz/$t-fuzzer" "$scratch/$t" "tests/fuzz/corpus/$t" \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
      -artifact_prefix="$build_dir/artifacts/$t-" -print_final_stats=1 \
      >"$build_dir/artifacts/$t.log" 2>&1; then
    echo "fuzz $t: FAILED (input and log in $build_dir/artifacts/)"
    grep -E "ERROR|invariant|SUMMARY" "$build_dir/artifacts/$t.log" | head -5 || true
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$build_dir/artifacts/$t.log" \
      | sed "s/^/fuzz $t: /"
  fi
done
exit "$status"
