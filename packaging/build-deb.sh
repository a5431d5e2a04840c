#!/usr/bin/env bash
# Builds the detourfs Debian package (binary only) into packaging/out/.
# Needs debhelper and dpkg-dev (installed here if missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
if ! command -v dpkg-buildpackage >/dev/null || ! dpkg -s debhelper >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debhelper dpkg-dev >/dev/null
fi
src=$(mktemp -d)/detourfs-0.1.0
mkdir -p "$src"
git -C "$root" archive HEAD | tar -x -C "$src"
cp -r "$here/debian" "$src/debian"
(cd "$src" && dpkg-buildpackage -b -us -uc >/dev/null)
mkdir -p "$here/out"
mv "$src"/../*.deb "$here/out/"
ls "$here/out"/*.deb
