#!/usr/bin/env python3
"""End-to-end smoke test: corewire-bench against cw-ceiling-echo on loopback.

Starts cw-ceiling-echo (sockperf mode) on free 127.0.0.1 ports, runs corewire-bench
--count 2000 over UDP and TCP (closed and open loop, payload check on; backends auto and
epoll), and asserts zero
loss, zero errors and a well-formed JSON report. Bounded: each step has a timeout and the
server is killed at the end, on failure too.
usage: e2e_smoke.py CW_CEILING_ECHO COREWIRE_BENCH
"""
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

COUNT = 2000
STEP_TIMEOUT_S = 30


def free_port(kind):
    """A port the kernel just handed out for kind (SOCK_DGRAM/SOCK_STREAM) on 127.0.0.1."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(proc, want):
    """Reads the server's "udp ADDR" / "tcp ADDR" lines (it prints them once bound)."""
    seen = set()
    deadline = time.monotonic() + 5
    while len(seen) < want:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("cw-ceiling-echo did not start")
        line = proc.stdout.readline()
        if line:
            seen.add(line.split()[0])


def run_bench(bench, args, tmp):
    out = os.path.join(tmp, "report.json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [bench, "--proto", "sockperf", "--count", str(COUNT), "--check", "--timeout", "5",
           "--json", out, "-q", "-m", "100"] + args
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=STEP_TIMEOUT_S)
    print(r.stdout, r.stderr, sep="", flush=True)
    if r.returncode != 0:
        raise AssertionError(f"corewire-bench exited {r.returncode}")
    with open(out) as f:
        rep = json.load(f)
    for key, want in (("sent", COUNT), ("received", COUNT), ("lost", 0), ("errors", 0),
                      ("unfinished_workers", 0)):
        if rep[key] != want:
            raise AssertionError(f"{key} = {rep[key]}, want {want}")
    lat = rep["latency"]
    if lat["count"] != COUNT or not 0 < lat["p50"] <= lat["p99"] <= lat["max"]:
        raise AssertionError(f"bad latency block: {lat}")
    if rep["throughput_msgs"] <= 0:
        raise AssertionError("no throughput")
    return rep


def main():
    ceiling, bench = sys.argv[1], sys.argv[2]
    udp, tcp = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
    server = subprocess.Popen(
        [ceiling, "--mode", "sockperf", "--udp", f"127.0.0.1:{udp}", "--tcp", f"127.0.0.1:{tcp}"],
        stdout=subprocess.PIPE, text=True)
    try:
        wait_listening(server, 2)
        with tempfile.TemporaryDirectory() as tmp:
            # auto is io_uring where the kernel allows it; epoll is always there.
            for backend in ("auto", "epoll"):
                be = ["--backend", backend]
                run_bench(bench, be + ["--udp", "--target", f"127.0.0.1:{udp}", "--window", "4"],
                          tmp)
                run_bench(bench, be + ["--udp", "--target", f"127.0.0.1:{udp}", "--mode", "open",
                                       "--rate", "4000", "--arrival", "poisson", "--flows", "2"],
                          tmp)
                rep = run_bench(bench, be + ["--tcp", "--target", f"127.0.0.1:{tcp}",
                                             "--flows", "4", "--window", "2"], tmp)
                if rep["conns"]["open"] != 4 or rep["conns"]["failed"] != 0:
                    raise AssertionError(f"connections: {rep['conns']}")
    finally:
        server.terminate()
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    print("ok")


if __name__ == "__main__":
    main()
