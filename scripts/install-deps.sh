#!/usr/bin/env bash
# Installs what detourfs needs to build, run and test, from Debian 12 packages
# only. Run as root. Safe to run again.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config g++ clang clang-format clang-tidy
  libclang-rt-14-dev  # libFuzzer and clang's sanitizer runtimes (scripts/fuzz.sh)
  libfuse3-dev liburing-dev libboost-filesystem-dev libspdlog-dev libtbb-dev
  libgtest-dev libgmock-dev libbenchmark-dev libtomlplusplus-dev libcli11-dev
  nlohmann-json3-dev libxxhash-dev libsystemd-dev
  # run
  fuse3
  # test: real tools through the mount, loop filesystems, ACLs
  e2fsprogs acl attr tar git rsync nodejs npm util-linux procps
)

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (apt-get install)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from elsewhere on a developer machine: accept them.
if command -v node >/dev/null && command -v npm >/dev/null; then
  missing=("${missing[@]/nodejs}")
  missing=("${missing[@]/npm}")
fi
read -r -a missing <<<"${missing[*]:-}"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
