#!/usr/bin/env python3
"""bench/scripts/peer_bench.py, one tiny round: corewire peer sessions vs cw-peer-tcp vs
openssl speed, 300 round trips per RTT run and 2 MiB of bulk (corewire's at the default
stream window and at 1 MiB). Checks that every system has
every figure once, positive, p50 <= p99, the ratios are there with one round each and the
table says met / not met for the goals; never timing. Then the openssl parser on a canned
table and on output without its column (refused), and cw-peer-tcp's RTT client against a
server that answers with the wrong body (exit 1). Skipped (77) without openssl.

usage: peer_bench_smoke.py (CW_BUILD_ROOT set to the build directory)
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
sys.path.insert(0, os.path.join(SRC, "bench/scripts"))
import peer_bench  # noqa: E402

BUILD = os.environ.get("CW_BUILD_ROOT", os.path.join(SRC, "build"))
PEER_TCP = os.path.join(BUILD, "bench/reference/cw-peer-tcp")
failures = []

OPENSSL_OUT = """version: 3.0.19
The 'numbers' are in 1000s of bytes per second processed.
type             16 bytes     64 bytes    256 bytes   1024 bytes   8192 bytes  16384 bytes
AES-128-GCM     295010.57k   771196.15k  1625088.09k  2194336.77k  2436194.99k  2451593.22k
"""


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def run_table():
    with tempfile.TemporaryDirectory(prefix="cw-peer-bench-smoke-") as d:
        out = os.path.join(d, "peer.json")
        r = subprocess.run([sys.executable, os.path.join(SRC, "bench/scripts/peer_bench.py"),
                            "--build", BUILD, "--runs", "1", "--rtt-count", "300",
                            "--bulk-bytes", "2MiB", "--aes-seconds", "1", "--timeout", "30",
                            "--json", out], capture_output=True, text=True, timeout=240)
        check(r.returncode == 0, f"peer_bench: exit 0 ({r.returncode}) {r.stderr[-1500:]}")
        if r.returncode != 0:
            return
        print(r.stdout)
        j = json.load(open(out))
    res = j["results"]
    rtt_bulk = ["p50_us_64", "p99_us_64", "p50_us_1024", "p99_us_1024", "bulk_bytes_per_s"]
    want = {"corewire-quic": rtt_bulk + ["bulk_window_bytes_per_s"], "kernel-tcp": rtt_bulk,
            "aes-128-gcm": ["aes_bytes_per_s"]}
    for system, keys in want.items():
        for k in keys:
            v = res.get(system, {}).get(k)
            check(v is not None and len(v) == 1 and v[0] > 0, f"{system} {k}: one run, > 0 ({v})")
    for system in ("corewire-quic", "kernel-tcp"):
        for s in (64, 1024):
            m = res[system]
            check(m[f"p50_us_{s}"][0] <= m[f"p99_us_{s}"][0], f"{system} p50 <= p99 at {s} B")
    for k in ("rtt_p50_64", "rtt_p50_1024", "rtt_p99_64", "bulk_vs_aes", "bulk_vs_tcp",
              "bulk_window_vs_aes"):
        v = j["ratios"].get(k, {})
        check(len(v.get("per_round", [])) == 1 and v.get("median"), f"ratio {k}: {v}")
    goal_rows = [ln for ln in r.stdout.splitlines() if "| <= 1.3 |" in ln or "| >= 0.4 |" in ln]
    said = all(ln.endswith("| met |") or ln.endswith("| not met |") for ln in goal_rows)
    check(len(goal_rows) == 4 and said, f"goal rows say met / not met: {goal_rows}")
    check(j["meta"]["commit"] != "", "the commit is in the JSON")


def check_parser():
    check(abs(peer_bench.parse_openssl(OPENSSL_OUT) - 2451593220.0) < 1,
          "openssl parser: the 16384-byte column")
    check(abs(peer_bench.parse_openssl(OPENSSL_OUT, 1024) - 2194336770.0) < 1,
          "openssl parser: another column")
    try:
        peer_bench.parse_openssl(OPENSSL_OUT.replace("16384 bytes", ""))
        check(False, "openssl parser refuses output without the 16 KiB column")
    except ValueError:
        check(True, "openssl parser refuses output without the 16 KiB column")


def check_rtt_client_checks_answers():
    """cw-peer-tcp rtt against a server echoing a corrupted body: exit 1, not a figure."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    port = ls.getsockname()[1]

    def serve():
        c, _ = ls.accept()
        with c:
            while True:
                hdr = c.recv(8, socket.MSG_WAITALL)
                if len(hdr) < 8:
                    return
                body = c.recv(int.from_bytes(hdr[:4], "big"), socket.MSG_WAITALL)
                c.sendall(hdr[:4] + b"\x02" + hdr[5:] + bytes(b ^ 1 for b in body))

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = subprocess.run([PEER_TCP, "rtt", "--connect", f"127.0.0.1:{port}", "--count", "20"],
                       capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and '"bad":20' in r.stdout,
          f"cw-peer-tcp rtt: a wrong answer fails it ({r.returncode}, {r.stdout.strip()})")
    ls.close()


def main():
    if not shutil.which("openssl"):
        print("openssl is not installed: skipped")
        return 77
    check_parser()
    check_rtt_client_checks_answers()
    run_table()
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
