#!/usr/bin/env bash
# Installs the Debian 12 packages loom needs, only those that are missing.
#   scripts/install-deps.sh            build + tests (the server's tests need Node.js
#                                        and Chromium: Debian's nodejs + npm unless
#                                        `node` and `npm` are already installed)
#   scripts/install-deps.sh fuzz       + clang and its sanitizer/fuzzer runtime
#   scripts/install-deps.sh cross      + the AArch64 cross compiler and qemu-user
#                                        (make test-arm64; GoogleTest is built from
#                                        the googletest package's sources)
set -euo pipefail

packages=(g++ cmake ninja-build make pkg-config libfmt-dev libcli11-dev nlohmann-json3-dev
          libgtest-dev libgmock-dev libbenchmark-dev libpcre2-dev libutf8proc-dev
          libcpp-httplib-dev chromium)
# A Node.js from elsewhere (nodesource, nvm) is fine; Debian's only if there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi
packages+=(libopenmpi-dev openmpi-bin)  # dist: MPI for data-parallel training
for extra in "$@"; do
  case "$extra" in
    fuzz) packages+=(clang libclang-rt-14-dev) ;;
    cross) packages+=(g++-aarch64-linux-gnu qemu-user googletest) ;;
    *) echo "install-deps: unknown group '$extra' (known: fuzz, cross)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "install-deps: installing ${missing[*]}" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
