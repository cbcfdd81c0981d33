#!/usr/bin/env bash
# Installs the dependencies, configures the build directory (once), builds, and runs every
# test (unit, integration, sockperf). Extra arguments go to `meson test`.
#   BUILD_DIR=build          build directory
#   MESON_SETUP_ARGS="..."   options for `meson setup` (e.g. -Dwerror=true; used by .ci/run)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
read -r -a SETUP_ARGS <<<"${MESON_SETUP_ARGS:-}"

tools/install-deps.sh
if [[ -f $BUILD_DIR/build.ninja ]]; then
  # --reconfigure: a build dir first set up by run.sh (no test packages yet) finds them now.
  meson setup --reconfigure "$BUILD_DIR" "${SETUP_ARGS[@]}" >/dev/null
else
  meson setup "$BUILD_DIR" "${SETUP_ARGS[@]}" >/dev/null
fi
ninja -C "$BUILD_DIR"
meson test -C "$BUILD_DIR" --print-errorlogs "$@"
