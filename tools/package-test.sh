#!/usr/bin/env bash
# Builds the Debian packages from the committed tree and checks them as an operator would:
# lintian (no errors), install, the unit file (systemd-analyze verify), man pages, the
# service answering `corewirectl status`, then removes them again. As root (CI machine).
#   OUT=build-deb   where the copy, the .debs and logs go (git-ignored)
# Under systemd the unit is started with systemctl; without it (containers) corewirectl is
# started exactly as the unit's ExecStart= says, as the unit's user.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-build-deb}
[[ $(id -u) == 0 ]] || { echo "package-test: needs root (dpkg -i)" >&2; exit 1; }
rm -rf "$OUT" && mkdir -p "$OUT/corewire"
git archive HEAD | tar -x -C "$OUT/corewire"
# -j: without it debhelper runs ninja -j1.
(cd "$OUT/corewire" && dpkg-buildpackage -us -uc -b -j"$(nproc)") >"$OUT/build.log" 2>&1 ||
  { tail -40 "$OUT/build.log"; exit 1; }
debs=("$OUT"/corewire_*.deb "$OUT"/corewire-bench_*.deb)
echo "package-test: built ${debs[*]}"
lintian --fail-on error "${debs[@]}" | tee "$OUT/lintian.log"

cleanup() {
  systemctl stop corewire 2>/dev/null || true
  dpkg --purge corewire-bench corewire >/dev/null 2>&1 || true
}
trap cleanup EXIT
dpkg -i "${debs[@]}" >"$OUT/install.log" 2>&1 || { cat "$OUT/install.log"; exit 1; }
getent passwd corewire >/dev/null
test -f /etc/corewire/corewire.toml
dpkg-query -W -f='${Conffiles}\n' corewire | grep -q /etc/corewire/corewire.toml
man -w corewire corewirectl corewire.toml corewire-bench >/dev/null
MANWIDTH=80 man corewire 2>/dev/null | grep -q "per-core, shared-nothing"
systemd-analyze verify /lib/systemd/system/corewire.service
corewire --version
corewirectl --version

if [[ $(systemctl is-system-running 2>/dev/null || true) =~ ^(running|degraded|starting)$ ]]; then
  systemctl restart corewire
  for _ in $(seq 1 100); do corewirectl status >/dev/null 2>&1 && break; sleep 0.1; done
  corewirectl status
  systemctl is-active corewire
else
  echo "package-test: systemd is not running here; starting the unit's ExecStart= by hand"
  # As the unit would: its user, its run dir; in private mount and network namespaces so
  # that the default ports and /run/corewire collide with nothing on this machine.
  exec_start=$(sed -n 's/^ExecStart=//p' /lib/systemd/system/corewire.service)
  unshare --mount --net --propagation private bash -euo pipefail -c '
    ip link set lo up
    mount -t tmpfs tmpfs /run
    install -d -o corewire -g corewire -m 0700 /run/corewire
    setpriv --reuid=corewire --regid=corewire --init-groups $1 2>"$2/service.log" &
    pid=$!
    trap "kill -TERM $pid 2>/dev/null || true" EXIT
    for _ in $(seq 1 100); do corewirectl status >/dev/null 2>&1 && break; sleep 0.1; done
    corewirectl status
    curl -fsS http://127.0.0.1:9901/healthz
    curl -fsS http://127.0.0.1:9901/metrics | grep "^corewire_build_info"
    kill -TERM $pid
    wait $pid
  ' bash "$exec_start" "$OUT"
fi
echo "package-test: ok"
