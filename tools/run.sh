#!/usr/bin/env bash
# Installs what building and running needs (not the test tool chain), builds corewire,
# corewirectl and corewire-bench, and runs the corewire server in the foreground (Ctrl-C
# stops it). Arguments go to corewire, e.g. `tools/run.sh -c docs/corewire.example.toml`.
#   DPDK=1          also install libdpdk-dev and build the DPDK backend
#   BUILD_DIR=build build directory
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [[ ${DPDK:-0} == 1 ]]; then tools/install-deps.sh run-dpdk; else tools/install-deps.sh run; fi
# Features left on auto: tests and DPDK build when their packages are present.
[[ -f $BUILD_DIR/build.ninja ]] || meson setup "$BUILD_DIR" >/dev/null
ninja -C "$BUILD_DIR" app/server/corewire control/corewirectl bench/corewire-bench
exec "$BUILD_DIR/app/server/corewire" "$@"
