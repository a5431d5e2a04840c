#!/usr/bin/env bash
# clang's thread-safety analysis (-Wthread-safety) over the daemon's sources:
# checks the lock annotations (src/util/thread_annotations.h; the order is in
# docs/architecture.md, "Locks"). Syntax only, no code generated: a few
# seconds per file. BUILD_DIR (default: build) supplies the generated
# build_config.h. Fails, listing them, on any warning.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
build_dir=${BUILD_DIR:-build}
[ -f "$build_dir/build_config.h" ] || { echo "thread-safety.sh: no $build_dir/build_config.h (build first)" >&2; exit 2; }
warnings=0
for f in src/*/*.cc; do
  out=$(clang++ -std=c++20 -fsyntax-only -Wthread-safety -Iinclude -Isrc -I"$build_dir" \
    -I/usr/include/fuse3 -DSPDLOG_FMT_EXTERNAL -DSPDLOG_COMPILED_LIB -D_FILE_OFFSET_BITS=64 \
    "$f" 2>&1) || { echo "$out" >&2; exit 1; }
  if grep -q 'warning:' <<<"$out"; then
    grep 'warning:' <<<"$out" >&2
    warnings=$((warnings + $(grep -c 'warning:' <<<"$out")))
  fi
done
if [ "$warnings" -ne 0 ]; then
  echo "thread-safety.sh: $warnings warning(s)" >&2
  exit 1
fi
echo "thread-safety analysis: clean ($(ls src/*/*.cc | wc -l) files)"
