#!/usr/bin/python3
"""Memory per idle NATS connection and per subscription: corewire's pubsub service and
nats-server (GOMAXPROCS=1), each started fresh on a free port pinned to --server-core by the
harness (cwbench/servers.py), measured from /proc/<pid>/status (VmRSS).

  connections: RSS after --conns idle clients (each CONNECT + PING, PONG read) minus RSS
               before them, over --conns.
  subscriptions: one client; RSS after --subs SUBs on distinct subjects (the PONG after
               them read, so the server has taken every one) minus RSS before, over --subs.

Each figure is measured --rounds times on a fresh server, servers alternated (A B, B A, ...);
the JSON keeps every run. RSS counts pages touched, so a server whose tables are allocated
and touched at start-up shows little growth here: the start-up RSS ("rss_start_kib") is
reported beside each delta.

  bench/scripts/pubsub_memory.py --build build --conns 1000 --subs 10000 --rounds 3 \\
      --json pubsub-memory.json
"""
import argparse
import json
import os
import resource
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cwbench import machine, runner, servers  # noqa: E402
from cwbench.machine import rss_kib  # noqa: E402
from cwbench.render import spread_cell as fmt, script_lines  # noqa: E402
from cwbench.stats import median  # noqa: E402

SERVERS = [{"name": "corewire", "type": "corewire", "backend": "io_uring", "service": "pubsub"},
           {"name": "nats-server", "type": "nats-server"}]
SETTLE_S = 0.5   # after the last PONG, before RSS is read (a Go server's GC, lazy pages)
IO_TIMEOUT_S = 10


def read_until(sock, buf, token):
    """Reads from sock until token is in buf; returns (buf up to and with token, rest)."""
    while token not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise RuntimeError(f"server closed the connection; got {buf[-200:]!r}")
        buf += chunk
    i = buf.index(token) + len(token)
    return buf[:i], buf[i:]


def nats_client(port):
    """A connected NATS client: INFO read, CONNECT and PING sent, PONG read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S)
    _, rest = read_until(s, b"", b"\r\n")  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false,"name":"cw-mem"}\r\nPING\r\n')
    got, _ = read_until(s, rest, b"PONG\r\n")
    if b"-ERR" in got:
        raise RuntimeError(f"server refused the client: {got!r}")
    return s


def measure_conns(pid, port, n):
    before = rss_kib(pid)
    socks = []
    try:
        for _ in range(n):
            socks.append(nats_client(port))
        time.sleep(SETTLE_S)
        for s in socks:  # every one still served (PING answered)
            s.sendall(b"PING\r\n")
            read_until(s, b"", b"PONG\r\n")
        after = rss_kib(pid)
    finally:
        for s in socks:
            s.close()
    return {"rss_before_kib": before, "rss_after_kib": after, "n": n,
            "bytes_per_conn": (after - before) * 1024 / n}


def measure_subs(pid, port, n, batch=500):
    s = nats_client(port)
    try:
        time.sleep(SETTLE_S)
        before = rss_kib(pid)
        for b in range(0, n, batch):
            lines = b"".join(b"SUB mem.%d %d\r\n" % (i, i + 1) for i in range(b, min(n, b + batch)))
            s.sendall(lines + b"PING\r\n")
            got, _ = read_until(s, b"", b"PONG\r\n")
            if b"-ERR" in got:
                raise RuntimeError(f"SUB refused after {b} subscriptions: {got!r}")
        time.sleep(SETTLE_S)
        after = rss_kib(pid)
    finally:
        s.close()
    return {"rss_before_kib": before, "rss_after_kib": after, "n": n,
            "bytes_per_sub": (after - before) * 1024 / n}


def one(spec, build, core, what, n):
    port = runner.free_port()
    with servers.Server(spec, build, "tcp", "nats", port, core) as srv:
        pid = srv.proc.pid
        start = rss_kib(pid)
        r = measure_conns(pid, port, n) if what == "conns" else measure_subs(pid, port, n)
        r.update({"server": spec["name"], "what": what, "rss_start_kib": start,
                  "server_cmd": " ".join(srv.argv)})
    return r


def table(res):
    """Medians (min..max) per server: the deltas, and the whole RSS they start from and end
    at (a server that touches its tables at start-up shows it there, not in the deltas)."""
    lines = [f"| server | start RSS MiB | bytes per idle connection | RSS MiB with {res['conns']} "
             f"connections | bytes per subscription | RSS MiB with {res['subs']} subscriptions |",
             "|---|---|---|---|---|---|"]

    for s in res["servers"]:
        runs = [r for r in res["runs"] if r["server"] == s]
        conns = [r for r in runs if r["what"] == "conns"]
        subs = [r for r in runs if r["what"] == "subs"]
        start = [r["rss_start_kib"] / 1024 for r in runs]
        lines.append(f"| {s} | {median(start):.1f} | {fmt([r['bytes_per_conn'] for r in conns])} | "
                     f"{fmt([r['rss_after_kib'] for r in conns], 1 / 1024, 1)} | "
                     f"{fmt([r['bytes_per_sub'] for r in subs])} | "
                     f"{fmt([r['rss_after_kib'] for r in subs], 1 / 1024, 1)} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
    ap.add_argument("--build", default=os.path.join(root, "build"))
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--subs", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma list of server names (corewire, nats-server)")
    ap.add_argument("--json", help="write every run and the medians here")
    a = ap.parse_args()
    want = a.conns + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    srvs = [s for s in SERVERS if not a.only or s["name"] in a.only.split(",")]
    runs = []
    for rnd in range(a.rounds):
        order = srvs if rnd % 2 == 0 else list(reversed(srvs))
        for what, n in (("conns", a.conns), ("subs", a.subs)):
            for s in order:
                r = one(s, a.build, a.server_core, what, n)
                r["round"] = rnd
                runs.append(r)
                print(f"pubsub_memory: r{rnd} {s['name']} {what}: "
                      f"{r.get('bytes_per_conn', r.get('bytes_per_sub')):.0f} B each "
                      f"(RSS {r['rss_before_kib']} -> {r['rss_after_kib']} KiB)", file=sys.stderr)
    res = {"command": " ".join(sys.argv), "machine": machine.describe(root),
           "conns": a.conns, "subs": a.subs, "rounds": a.rounds,
           "servers": [s["name"] for s in srvs], "runs": runs}
    res["summary"] = {s: {"bytes_per_conn": median([r["bytes_per_conn"] for r in runs
                                                    if r["server"] == s and r["what"] == "conns"]),
                          "bytes_per_sub": median([r["bytes_per_sub"] for r in runs
                                                   if r["server"] == s and r["what"] == "subs"])}
                      for s in res["servers"]}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    m = res["machine"]
    print("\n".join([
        "### NATS memory per idle connection and per subscription: corewire vs nats-server", "",
        *script_lines(res["command"], m, f"servers on core {a.server_core}"),
        f"- {a.conns} idle connections / {a.subs} subscriptions, {a.rounds} round(s), a fresh "
        "server per figure; RSS from /proc/<pid>/status; raw runs in the JSON", "",
        table(res)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
