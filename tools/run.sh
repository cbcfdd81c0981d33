#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the corewire server in the foreground (Ctrl-C
# stops it). Arguments go to corewire, e.g. `tools/run.sh -c docs/corewire.example.toml`.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
tools/install-deps.sh
[[ -f $BUILD_DIR/build.ninja ]] || meson setup "$BUILD_DIR" >/dev/null
ninja -C "$BUILD_DIR" app/server/corewire
exec "$BUILD_DIR/app/server/corewire" "$@"
