#!/usr/bin/env bash
# Installs the Debian bookworm packages corewire needs. Idempotent and quiet: when everything
# is already installed it does not touch apt at all. Runs as root, or through sudo.
#   tools/install-deps.sh          everything: build, DPDK, tests, fuzzing, packaging (CI)
#   tools/install-deps.sh run      only what building and running needs (tools/run.sh)
#   tools/install-deps.sh run-dpdk the same plus DPDK (backend "dpdk")
set -euo pipefail

RUN_PKGS=(
  meson ninja-build g++ pkg-config                 # build
  liburing-dev                                     # io_uring backend (epoll needs nothing)
  libtomlplusplus-dev libcli11-dev                 # config file, command line
  nlohmann-json3-dev libfmt-dev libspdlog-dev      # stats/JSON output, logging
  libcpp-httplib-dev libsystemd-dev                # corewirectl: admin HTTP, sd_notify
  nettle-dev                                       # swarm: SHA-1 (info-hash, pieces)
  libngtcp2-dev libngtcp2-crypto-gnutls-dev        # peer: QUIC (ngtcp2 0.12) and its TLS glue
  libgnutls28-dev                                  # peer: TLS 1.3, X.509 (mutual TLS)
)
DPDK_PKGS=(libdpdk-dev)                            # DPDK backend (optional in meson)
TEST_PKGS=(
  libgtest-dev libgmock-dev libbenchmark-dev       # unit tests, micro-benchmarks
  libxxhash-dev                                    # kv store: key hash, file checksums
  sockperf python3                                 # integration tests (real sockperf client)
  memcached                                        # corewire-bench memcached smoke test (bench_kv_smoke)
  libmemcached-tools python3-pymemcache            # kv integration tests (memccapable, memcaslap, pymemcache)
  nats-server libnats-dev nodejs npm               # pubsub integration tests (differential, nats.c, nats.js)
  python3-scapy                                    # DPDK malformed-frame tests (frame injection)
  nftables                                         # DPDK TCP loss tests (nft numgen drops in a namespace)
  python3-matplotlib python3-numpy                 # benchmark harness plots (bench/scripts/cwbench)
  clang libclang-rt-14-dev clang-format           # fuzz targets (libFuzzer), sanitizers, format check
  scdoc debhelper lintian fakeroot                 # man pages, Debian package (debian/)
  prometheus                                       # promtool: checks the /metrics text
  gstreamer1.0-tools gstreamer1.0-plugins-base     # rtp interop tests (gst-launch-1.0, rtpbin)
  gstreamer1.0-plugins-good                        #   (rtpbin, rtppcmupay, mulaw, udp)
  python3-libtorrent                               # swarm interop tests (the metainfo codec)
  opentracker aria2                                # swarm tracker tests (a real tracker, aria2c)
  gnutls-bin                                       # peer tests: certtool makes CAs and certificates
  etcd-server etcd-client                          # cluster tests: membership through a real etcd
)
case ${1:-all} in
  run) PKGS=("${RUN_PKGS[@]}") ;;
  run-dpdk) PKGS=("${RUN_PKGS[@]}" "${DPDK_PKGS[@]}") ;;
  all) PKGS=("${RUN_PKGS[@]}" "${DPDK_PKGS[@]}" "${TEST_PKGS[@]}") ;;
  *) echo "usage: $0 [all|run|run-dpdk]" >&2; exit 2 ;;
esac

missing=()
for p in "${PKGS[@]}"; do
  # A Node.js from elsewhere (e.g. NodeSource's nodejs, which carries its own npm and
  # conflicts with Debian's npm package) serves the tests as well: only the commands matter.
  if [[ $p == nodejs || $p == npm ]] && command -v "${p/nodejs/node}" >/dev/null; then
    continue
  fi
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
