#!/usr/bin/env python3
"""End-to-end smoke test: corewire-bench against cw-kernel-echo on loopback.

Starts cw-kernel-echo (sockperf mode, then native mode) on free 127.0.0.1 ports, runs
corewire-bench --count 2000 over UDP and TCP (closed and open loop, payload check on;
backends auto and epoll), and asserts zero
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
            raise RuntimeError("cw-kernel-echo did not start")
        line = proc.stdout.readline()
        if line:
            seen.add(line.split()[0])


def run_bench(bench, args, tmp):
    out = os.path.join(tmp, "report.json")
    if os.path.exists(out):
        os.remove(out)
    cmd = [bench, "--count", str(COUNT), "--check", "--timeout", "5",
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


class Reference:
    """cw-kernel-echo in `mode` on free loopback ports; killed on exit, failures included."""

    def __init__(self, binary, mode):
        self.udp, self.tcp = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_STREAM)
        self.proc = subprocess.Popen(
            [binary, "--mode", mode, "--udp", f"127.0.0.1:{self.udp}",
             "--tcp", f"127.0.0.1:{self.tcp}"], stdout=subprocess.PIPE, text=True)

    def __enter__(self):
        try:
            wait_listening(self.proc, 2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main():
    echo, bench = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as tmp:
        with Reference(echo, "sockperf") as srv:
            udp, tcp = f"127.0.0.1:{srv.udp}", f"127.0.0.1:{srv.tcp}"
            # auto is io_uring where the kernel allows it; epoll is always there.
            for backend in ("auto", "epoll"):
                be = ["--proto", "sockperf", "--backend", backend]
                run_bench(bench, be + ["--udp", "--target", udp, "--window", "4"], tmp)
                run_bench(bench, be + ["--udp", "--target", udp, "--mode", "open",
                                       "--rate", "2500", "--arrival", "poisson", "--flows", "2"],
                          tmp)
                rep = run_bench(bench, be + ["--tcp", "--target", tcp, "--flows", "4",
                                             "--window", "2"], tmp)
                if rep["conns"]["open"] != 4 or rep["conns"]["failed"] != 0:
                    raise AssertionError(f"connections: {rep['conns']}")
        with Reference(echo, "native") as srv:
            run_bench(bench, ["--proto", "native", "--udp", "--target", f"127.0.0.1:{srv.udp}",
                              "--window", "4"], tmp)
            run_bench(bench, ["--proto", "native", "--tcp", "--target", f"127.0.0.1:{srv.tcp}",
                              "--flows", "2", "--window", "4"], tmp)
    print("ok")


if __name__ == "__main__":
    main()
