"""What the DPDK integration tests (test_dpdk*.py) share: the skip check, starting corewire
on the DPDK backend, the namespace/TAP topology from tools/dpdk-setup.sh, and the backend's
exit counters, and (from bench/scripts/procgroup.py) whether a memif socket listens yet.
python3 stdlib only."""

import os
import re
import shutil
import subprocess
import sys
import unittest

import harness as h

ROOT = os.environ.get("CW_SOURCE_ROOT",
                      os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
SETUP = os.path.join(ROOT, "tools/dpdk-setup.sh")
sys.path.insert(0, os.path.join(ROOT, "bench/scripts"))
from procgroup import wait_listening  # noqa: E402,F401  (the benchmark scripts' helper)


def why_not(our_ip, topology=True):
    """None when root can run corewire with backend dpdk here (and, with topology, set up
    the namespace and TAP), else the reason."""
    if os.geteuid() != 0:
        return "needs root (DPDK EAL, network namespace, TAP/memif)"
    if topology and not shutil.which("ip"):
        return "needs iproute2 (ip)"
    if topology and not os.access(SETUP, os.X_OK):
        return f"no {SETUP}"
    cfg = h.write_temp(f'[dpdk]\nport = "x"\naddresses = ["{our_ip}/24"]\n')
    try:
        p = h.run_corewire(["--backend", "dpdk", "--check-config", "-c", cfg])
    finally:
        os.unlink(cfg)
    if p.returncode != 0:
        return "corewire rejects backend dpdk: " + p.stderr.strip()
    return None


def tap_config(tap, our_ip, services, runtime=""):
    """A config for corewire on the net_tap PMD (TAP tap, address our_ip/24), no hugepages,
    with these [[service]] tables and extra [runtime] keys."""
    return f"""[runtime]
backend = "dpdk"
{runtime}[log]
level = "info"
[dpdk]
eal = ["--no-huge", "-m", "512", "--no-pci"]
port = "net_tap0,iface={tap}"
addresses = ["{our_ip}/24"]
{services}"""


def start_server(test, cfg, prefix=()):
    """A running corewire with config cfg; skips the test when the build has no DPDK."""
    srv = h.Server(cfg, expect_start=False, prefix=prefix)
    test.addCleanup(srv.stop)
    try:
        srv.wait_ready()
    except h.ServerError:
        if "has no DPDK" in srv.log():
            test.skipTest("this corewire build has no DPDK backend")
        raise
    return srv


def in_ns(ns, *cmd, check=True, timeout=60, input=None):
    return subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True,
                          check=check, timeout=timeout, input=input)


def topology_up(test, ns, tap, peer_cidr, peer_mac):
    """Namespace ns with persistent TAP tap (kernel side peer_cidr, peer_mac), no
    hugepages; removed (dpdk-setup.sh down) when the test ends."""
    test.addCleanup(subprocess.run, [SETUP, "down", "--ns", ns], capture_output=True,
                    timeout=60)
    subprocess.run([SETUP, "up", "--ns", ns, "--tap", tap, "--peer", peer_cidr, "--peer-mac",
                    peer_mac, "--pages", "0"], check=True, capture_output=True, timeout=60)


def restore_peer_mac(ns, peer_mac):
    """The tap PMD copies its MAC onto the kernel side when it attaches; give it back."""
    subprocess.run([SETUP, "peer-mac", "--ns", ns, "--peer-mac", peer_mac], check=True,
                   capture_output=True, timeout=30)


def backend_counters(log):
    """{"drop.<reason>": N, "port.<stat>": N} from the exit log's "stats dpdk:" line."""
    m = re.search(r"stats dpdk: (.*)", log)
    return {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", m.group(1))} if m else {}


def assert_tcp_clean(test, log):
    """From the exit log's counters: no TCP segment had a bad checksum or reached a worker
    without TCP."""
    drops = backend_counters(log)
    test.assertEqual(drops.get("drop.tcp_bad_checksum", 0), 0, drops)
    test.assertEqual(drops.get("drop.tcp_unsupported", 0), 0, drops)


def main(why_not_fn, what):
    """Runs the calling script's tests, or exits 77 (meson: skipped) saying why not."""
    reason = why_not_fn()
    if reason:
        print(f"SKIP: {what}: {reason}", file=sys.stderr)
        sys.exit(77)
    unittest.main(module="__main__", verbosity=2)
