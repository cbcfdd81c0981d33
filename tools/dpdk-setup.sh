#!/usr/bin/env bash
# Sets up (and tears down) what corewire's DPDK backend needs on a machine without a NIC
# (docs/dpdk.md): 2 MB hugepages with a hugetlbfs mount, and a network namespace holding a
# persistent TAP whose kernel side is the peer corewire's net_tap port talks to.
#
#   tools/dpdk-setup.sh up     [--ns cw] [--tap cwt0] [--peer 10.99.0.1/24] [--pages 512]
#   tools/dpdk-setup.sh down   [--ns cw]
#   tools/dpdk-setup.sh status [--ns cw]
#
# up is idempotent and records what it created in $STATE_DIR/<ns>.state; down removes
# exactly that (restores the hugepage count, unmounts what it mounted, deletes the
# namespace, which deletes the TAP in it) and nothing else. --pages 0 skips hugepages
# (EAL then runs with --no-huge). Needs root.
#
# corewire attaches to the TAP from inside the namespace:
#   ip netns exec cw corewire -c server.toml   # [dpdk] port = "net_tap0,iface=cwt0"
#                                              #        addresses = ["10.99.0.2/24"]
# The tap PMD copies its MAC onto the kernel side when it attaches; `up` again (or
# `peer-mac`) gives the kernel side its own MAC back (02:00:00:00:99:01 by default).
set -euo pipefail

STATE_DIR=${CW_DPDK_STATE_DIR:-/run/corewire-dpdk-setup}
HP_SYSFS=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
HP_MOUNT=/dev/hugepages
NS=cw TAP=cwt0 PEER=10.99.0.1/24 PEER_MAC=02:00:00:00:99:01 PAGES=512 TAP_GIVEN=0

die() { echo "dpdk-setup: $*" >&2; exit 1; }
say() { echo "dpdk-setup: $*"; }

cmd=${1:-}
[[ -n $cmd ]] || die "usage: $0 up|down|status|peer-mac [--ns N] [--tap T] [--peer CIDR] [--peer-mac M] [--pages N]"
shift
while (($#)); do
  case $1 in
    --ns) NS=$2; shift 2 ;;
    --tap) TAP=$2; TAP_GIVEN=1; shift 2 ;;
    --peer) PEER=$2; shift 2 ;;
    --peer-mac) PEER_MAC=$2; shift 2 ;;
    --pages) PAGES=$2; shift 2 ;;
    *) die "unknown option $1" ;;
  esac
done
[[ $(id -u) == 0 ]] || die "needs root"
[[ $NS =~ ^[A-Za-z0-9_.-]+$ && $TAP =~ ^[A-Za-z0-9_.-]{1,15}$ ]] || die "bad --ns or --tap name"
STATE=$STATE_DIR/$NS.state

# State file: shell assignments, written once per resource when it is created.
declare -A S=()
load_state() {
  if [[ -f $STATE ]]; then
    while IFS='=' read -r k v; do S[$k]=$v; done <"$STATE"
  fi
  if [[ -n ${S[tap]:-} && $TAP_GIVEN == 0 ]]; then TAP=${S[tap]}; fi  # the one up created
}
record() { mkdir -p "$STATE_DIR"; echo "$1=$2" >>"$STATE"; S[$1]=$2; }

hp_count() { cat "$HP_SYSFS"; }
hp_set() {
  if command -v dpdk-hugepages.py >/dev/null; then
    dpdk-hugepages.py -p 2M --reserve "$(($1 * 2))M"
  else
    echo "$1" >"$HP_SYSFS"
  fi
}
hp_mounted() { awk -v m="$HP_MOUNT" '$2 == m && $3 == "hugetlbfs"' /proc/mounts | grep -q .; }
ns_exists() { ip netns list | awk '{print $1}' | grep -qx "$NS"; }
in_ns() { ip netns exec "$NS" "$@"; }

peer_mac() {
  # The kernel side needs its own MAC (the PMD gives it the port's when attaching).
  in_ns ip link set "$TAP" address "$PEER_MAC"
}

up() {
  load_state
  if ((PAGES > 0)); then
    [[ -w $HP_SYSFS ]] || die "no 2 MB hugepages here ($HP_SYSFS)"
    if [[ -z ${S[hp_before]:-} ]]; then
      local before; before=$(hp_count)
      record hp_before "$before"
      hp_set $((before + PAGES))
      record hp_added "$PAGES"
      (($(hp_count) >= before + PAGES)) ||
        say "warning: only $(($(hp_count) - before)) of $PAGES hugepages could be reserved"
    fi
    if ! hp_mounted; then
      mkdir -p "$HP_MOUNT"
      mount -t hugetlbfs -o pagesize=2M nodev "$HP_MOUNT"
      record mounted "$HP_MOUNT"
    fi
  fi
  if ! ns_exists; then
    ip netns add "$NS"
    record ns "$NS"
  fi
  if ! in_ns ip link show "$TAP" >/dev/null 2>&1; then
    # Persistent and multi-queue: net_tap opens it with IFF_MULTI_QUEUE, one fd per queue.
    in_ns ip tuntap add dev "$TAP" mode tap multi_queue
    in_ns ip addr add "$PEER" dev "$TAP"
    record tap "$TAP"
  fi
  peer_mac
  in_ns ip link set lo up
  in_ns ip link set "$TAP" up
  say "up: namespace $NS, tap $TAP ($PEER, $PEER_MAC), hugepages 2M: $(hp_count)"
}

down() {
  load_state
  [[ -f $STATE ]] || { say "down: nothing recorded for namespace $NS"; return 0; }
  if [[ -n ${S[ns]:-} ]] && ns_exists; then
    ip netns del "$NS"  # deletes the TAP in it too
  elif [[ -n ${S[tap]:-} ]] && ns_exists; then
    in_ns ip link del "$TAP" 2>/dev/null || true
  fi
  if [[ -n ${S[mounted]:-} ]] && hp_mounted; then
    umount "${S[mounted]}" || say "warning: ${S[mounted]} busy (a DPDK process still running?)"
  fi
  if [[ -n ${S[hp_added]:-} ]]; then
    # Give back what up added (others may have changed the count since).
    local now; now=$(hp_count)
    hp_set $((now > S[hp_added] ? now - S[hp_added] : 0))
  fi
  rm -f "$STATE"
  rmdir "$STATE_DIR" 2>/dev/null || true
  say "down: namespace $NS removed, hugepages 2M: $(hp_count)"
}

status() {
  load_state
  echo "hugepages 2M: $(hp_count) reserved, $(awk '/HugePages_Free/ {print $2}' /proc/meminfo) free;" \
    "hugetlbfs on $HP_MOUNT: $(hp_mounted && echo yes || echo no)"
  if ns_exists; then
    echo "namespace $NS:"
    in_ns ip -br addr show "$TAP" 2>/dev/null || echo "  no $TAP in $NS"
  else
    echo "namespace $NS: absent"
  fi
  if [[ -f $STATE ]]; then
    echo "recorded by up ($STATE): $(tr '\n' ' ' <"$STATE")"
  else
    echo "recorded by up: nothing"
  fi
}

case $cmd in
  up) up ;;
  down) down ;;
  status) status ;;
  peer-mac) load_state; peer_mac ;;
  *) die "unknown command $cmd (up, down, status, peer-mac)" ;;
esac
