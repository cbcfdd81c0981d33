#!/usr/bin/env python3
"""corewire-bench's memcached workload against a real memcached (Debian's 1.6.18), started on
a free loopback port for TCP and UDP: text and meta, TCP and UDP, preload, Zipf, multi-get
with values spanning several datagrams, open and closed loop. Every run is bounded (counts
of a few thousand, 1 s open loop). The generator's hit/miss counts are checked against
memcached's own stats. Skips (exit 77) only when memcached is not installed.

usage: kv_smoke.py CORWIRE_BENCH
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77


def free_port():
    """A port free for both TCP and UDP on 127.0.0.1 (memcached -p P -U P)."""
    for _ in range(50):
        t = socket.socket()
        t.bind(("127.0.0.1", 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        return port
    raise RuntimeError("no free port")


def start_memcached(exe):
    for _ in range(5):
        port = free_port()
        args = [exe, "-p", str(port), "-U", str(port), "-l", "127.0.0.1", "-t", "1", "-m", "64"]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 5
        while time.time() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return proc, port
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    raise RuntimeError("memcached did not start")


def stats(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        while not buf.endswith(b"END\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    out = {}
    for line in buf.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            out[parts[1]] = parts[2]
    return out


def run(bench, port, tmp, name, args):
    out = os.path.join(tmp, name + ".json")
    cmd = [bench, "--proto", "memcached", "--target", f"127.0.0.1:{port}", "-q",
           "--json", out, "--max-time", "30"] + args
    print("+", " ".join(cmd), flush=True)
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=60)
    print(p.stdout, flush=True)
    if p.returncode != 0:
        raise AssertionError(f"{name}: exit {p.returncode}")
    with open(out) as f:
        return json.load(f)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("ok:", msg, flush=True)


def main():
    bench = sys.argv[1]
    exe = shutil.which("memcached") or ("/usr/bin/memcached" if os.path.exists("/usr/bin/memcached") else None)
    if not exe:
        print("SKIP: memcached is not installed (tools/install-deps.sh installs it)")
        return SKIP
    proc, port = start_memcached(exe)
    tmp = tempfile.mkdtemp(prefix="cw-kv-smoke-")
    try:
        # Text over TCP: preload 2000 keys, then a 90/10 Zipf mix: every get hits.
        before = stats(port)
        j = run(bench, port, tmp, "text_tcp", [
            "--tcp", "--kv-keys", "2000", "--kv-preload", "--kv-dist", "zipf",
            "--kv-get-ratio", "0.9", "--count", "4000", "--window", "8", "--flows", "2"])
        after = stats(port)
        kv = j["kv"]
        check(j["preload"]["stored"] == 2000 and j["preload"]["errors"] == 0, "preload stored 2000")
        check(j["received"] == 4000 and j["lost"] == 0 and j["errors"] == 0, "text tcp: all answered")
        check(kv["gets"] + kv["sets"] == 4000 and 3300 < kv["gets"] < 3900, "text tcp: 90/10 mix")
        check(kv["misses"] == 0 and kv["hits"] == kv["keys_requested"], "text tcp: every get hits")
        check(int(after["cmd_set"]) - int(before["cmd_set"]) == 2000 + kv["sets"],
              "memcached counted the preload and the sets")
        check(int(after["get_hits"]) - int(before["get_hits"]) == kv["hits"],
              "memcached's get_hits match")
        check(j["latency"]["count"] == 4000 and j["latency"]["p50"] > 0, "latency histogram")

        # Meta over TCP, open loop (Poisson), multi-get of 4 keys.
        j = run(bench, port, tmp, "meta_tcp_open", [
            "--tcp", "--kv-proto", "meta", "--kv-keys", "2000", "--kv-multiget", "4",
            "--mode", "open", "--rate", "3000", "--arrival", "poisson", "--duration", "1"])
        kv = j["kv"]
        check(j["received"] > 2000 and j["lost"] == 0 and j["errors"] == 0, "meta tcp open loop")
        check(kv["misses"] == 0 and kv["keys_requested"] == 4 * kv["gets"], "meta multi-get hits")

        # Keys never set (another key size): every get misses, and memcached agrees.
        before = stats(port)
        j = run(bench, port, tmp, "misses", [
            "--tcp", "--kv-proto", "meta", "--kv-key-size", "20", "--kv-keys", "500",
            "--kv-get-ratio", "1", "--kv-multiget", "3", "--count", "500"])
        after = stats(port)
        kv = j["kv"]
        check(j["errors"] == 0 and kv["hits"] == 0 and kv["misses"] == 1500, "misses counted")
        check(int(after["get_misses"]) - int(before["get_misses"]) == 1500,
              "memcached's get_misses match")

        # Text over UDP: 3000-byte values (3 datagrams each) in multi-gets of 3 (memcached
        # sends each value as its own message), 50/50 with sets.
        j = run(bench, port, tmp, "text_udp", [
            "--udp", "--kv-keys", "300", "--kv-preload", "--kv-value-size", "3000",
            "--kv-multiget", "3", "--kv-get-ratio", "0.5", "--count", "2000", "--window", "4"])
        kv = j["kv"]
        check(j["errors"] == 0 and kv["bad_replies"] == 0, "text udp: no errors")
        check(j["received"] + j["lost"] == 2000 and j["lost"] <= 20, "text udp: loss <= 1 %")
        check(kv["misses"] == 0 and kv["hits"] > 0, "text udp: multi-datagram values reassembled")

        # Meta over UDP, value sizes 10..1000, Zipf 0.8.
        j = run(bench, port, tmp, "meta_udp", [
            "--udp", "--kv-proto", "meta", "--kv-keys", "300", "--kv-value-size", "10:1000",
            "--kv-dist", "zipf", "--kv-zipf-theta", "0.8", "--count", "2000", "--window", "4"])
        check(j["errors"] == 0 and j["received"] + j["lost"] == 2000 and j["lost"] <= 20,
              "meta udp")
        check(j["kv"]["misses"] == 0, "meta udp: keys preloaded earlier still hit")

        # Errors are counted apart from latency: values over memcached's 1 MiB item limit
        # are refused (SERVER_ERROR object too large for cache).
        j = run(bench, port, tmp, "too_large", [
            "--tcp", "--kv-keys", "10", "--kv-get-ratio", "0", "--kv-value-size", "1048576",
            "--count", "5"])
        check(j["kv"]["error_replies"] == 5 and j["received"] == 0 and j["lost"] == 0,
              "error replies counted, not timed")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)
    print("kv smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
