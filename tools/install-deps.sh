#!/usr/bin/env bash
# Installs every package corewire needs to build and test (Debian bookworm). Idempotent and
# quiet: when everything is already installed it does not touch apt at all.
# Runs as root, or through sudo when that exists.
set -euo pipefail

PKGS=(
  meson ninja-build g++ pkg-config                 # build
  liburing-dev libdpdk-dev                         # io_uring and DPDK backends
  libtomlplusplus-dev libcli11-dev                 # config file, command line
  nlohmann-json3-dev libfmt-dev libspdlog-dev      # stats/JSON output, logging
  libgtest-dev libgmock-dev libbenchmark-dev       # unit tests, micro-benchmarks
  libxxhash-dev                                    # kv store: key hash, file checksums
  sockperf python3                                 # integration tests (real sockperf client)
  python3-scapy                                    # DPDK malformed-frame tests (frame injection)
  clang libclang-rt-14-dev clang-format           # fuzz targets (libFuzzer), sanitizers, format check
  libcpp-httplib-dev libsystemd-dev                # corewirectl: admin HTTP, sd_notify
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

SUDO=()
if [[ $(id -u) != 0 ]]; then
  if command -v sudo >/dev/null; then
    SUDO=(sudo)
  else
    echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
