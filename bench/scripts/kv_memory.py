#!/usr/bin/python3
"""Memory per item: corewire's kv service and memcached, each started fresh on a free port
pinned to --server-core by the harness (cwbench/servers.py), N items stored by
`corewire-bench --kv-preload-only` (--key-size-byte keys, --value-size-byte values, set once
each over TCP from --client-core), memory read before and after.

Per server and round:
  rss_start_kib     VmRSS (/proc/<pid>/status) just after start (tables touched at start-up
                    show here, not in the delta)
  rss_before/after  VmRSS before the first set and after the last STORED, each once it
                    held still for SETTLE_S
  bytes_per_item    (rss_after - rss_before) x 1024 / curr_items after
  rss_bytes_per_item  rss_after x 1024 / curr_items: the whole process, start-up included
  stats_bytes_per_item  the server's own `stats` `bytes` / `curr_items` (memcached: item
                    headers, key and value as its slabs account them; corewire: its kv.md)
  curr_items, evictions, limit_maxbytes from `stats` after the preload

Servers: corewire with the memory limit the kv tables use (8 GiB) and at its default
(64 MiB), memcached with the tables' -m 8192 and at its default (-m 64); with a default
limit N items may not fit: the server evicts, and the per-item figures are over the items it
holds (curr_items). Servers alternate each round (A B C D, D C B A, ...); the JSON keeps
every run.

  bench/scripts/kv_memory.py --build build --items 1000000 --rounds 3 \\
      --json docs/bench/kv-memory.json > docs/bench/kv-memory.md
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cwbench import machine, runner, servers  # noqa: E402
from cwbench.machine import rss_kib  # noqa: E402
from cwbench.render import spread_cell as fmt, script_lines  # noqa: E402
from cwbench.stats import median  # noqa: E402

SERVERS = [
    {"name": "corewire", "type": "corewire", "backend": "io_uring", "service": "kv",
     "service_config": {"memory_limit": "8GiB"}},
    {"name": "corewire-default", "type": "corewire", "backend": "io_uring", "service": "kv"},
    {"name": "memcached", "type": "memcached", "args": ["-m", "8192"]},
    {"name": "memcached-default", "type": "memcached"},
]
SETTLE_S = 0.5       # RSS must hold still this long before it is read
SETTLE_MAX_S = 30.0  # ... within this
IO_TIMEOUT_S = 10
STAT_KEYS = ("curr_items", "bytes", "evictions", "limit_maxbytes", "total_items")


def settled_rss_kib(pid):
    """VmRSS once it holds still (a server may touch its tables for a while after its port
    is bound: corewire's index for an 8 GiB limit): equal over SETTLE_S, within
    SETTLE_MAX_S (after which the last reading is taken and flagged)."""
    deadline = time.time() + SETTLE_MAX_S
    last = rss_kib(pid)
    while time.time() < deadline:
        time.sleep(SETTLE_S)
        now = rss_kib(pid)
        if now == last:
            return now, True
        last = now
    return last, False


def stats(port):
    """memcached's `stats` over TCP: {name: int} for the numeric ones."""
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as s:
        s.sendall(b"stats\r\n")
        buf = b""
        deadline = time.time() + IO_TIMEOUT_S
        while not buf.endswith(b"END\r\n"):
            if time.time() > deadline:
                raise RuntimeError(f"stats: no END in {IO_TIMEOUT_S} s: {buf[-200:]!r}")
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"stats: connection closed: {buf[-200:]!r}")
            buf += chunk
    out = {}
    for line in buf.decode(errors="replace").splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT" and parts[2].isdigit():
            out[parts[1]] = int(parts[2])
    missing = [k for k in ("curr_items", "bytes") if k not in out]
    if missing:
        raise RuntimeError(f"stats: no {missing} in the reply")
    return out


def preload(a, port):
    """Every key set once; corewire-bench exits 1 unless each was STORED."""
    argv = [os.path.join(a.build, "bench/corewire-bench"), "--proto", "memcached", "--target",
            f"127.0.0.1:{port}", "--kv-preload-only", "-q", "--kv-keys", str(a.items),
            "--kv-key-size", str(a.key_size), "--kv-value-size", str(a.value_size),
            "--flows", "4", "--cores", str(a.client_core)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"preload failed ({r.returncode}): {' '.join(argv)}\n"
                           f"{r.stdout}{r.stderr}")
    return " ".join(argv)


def one(spec, a):
    port = runner.free_port()
    with servers.Server(spec, a.build, "tcp", "memcached", port, a.server_core) as srv:
        pid = srv.proc.pid
        start = rss_kib(pid)
        before, still_before = settled_rss_kib(pid)
        s0 = stats(port)
        t0 = time.time()
        cmd = preload(a, port)
        load_s = time.time() - t0
        after, still_after = settled_rss_kib(pid)
        s1 = stats(port)
        if srv.proc.poll() is not None:
            raise RuntimeError(f"{spec['name']} exited during the preload")
    items = s1["curr_items"]
    return {"server": spec["name"], "server_cmd": " ".join(srv.argv), "client_cmd": cmd,
            "rss_start_kib": start, "rss_before_kib": before, "rss_after_kib": after,
            "rss_settled": still_before and still_after, "items": items,
            "load_s": round(load_s, 3),
            "bytes_per_item": (after - before) * 1024 / items if items else None,
            "rss_bytes_per_item": after * 1024 / items if items else None,
            "stats_bytes_per_item": s1["bytes"] / items if items else None,
            "stats_before": {k: s0.get(k) for k in STAT_KEYS},
            "stats_after": {k: s1.get(k) for k in STAT_KEYS}}


def table(res):
    lines = ["| server | limit MiB | items held | evictions | bytes per item (RSS growth) | "
             "bytes per item (own stats) | whole RSS per item | start RSS MiB | "
             "RSS MiB before | RSS MiB after |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for s in res["servers"]:
        runs = [r for r in res["runs"] if r["server"] == s]
        if not runs:
            continue
        lim = runs[0]["stats_after"].get("limit_maxbytes")
        lines.append(f"| {s} | {f'{lim / 2**20:.0f}' if lim else '-'} | "
                     f"{fmt([r['items'] for r in runs])} | "
                     f"{fmt([r['stats_after'].get('evictions') for r in runs])} | "
                     f"{fmt([r['bytes_per_item'] for r in runs])} | "
                     f"{fmt([r['stats_bytes_per_item'] for r in runs])} | "
                     f"{fmt([r['rss_bytes_per_item'] for r in runs])} | "
                     f"{fmt([r['rss_start_kib'] for r in runs], 1 / 1024, 1)} | "
                     f"{fmt([r['rss_before_kib'] for r in runs], 1 / 1024, 1)} | "
                     f"{fmt([r['rss_after_kib'] for r in runs], 1 / 1024, 1)} |")
    pairs = [("corewire", "memcached"), ("corewire-default", "memcached-default")]
    sm = res["summary"]
    ratios = [f"{x} / {y} {sm[x]['bytes_per_item'] / sm[y]['bytes_per_item']:.2f}"
              for x, y in pairs if sm.get(x, {}).get("bytes_per_item")
              and sm.get(y, {}).get("bytes_per_item")]
    if ratios:
        lines += ["", "Bytes per item (RSS growth), ratio of the medians: " + ", ".join(ratios)
                  + " (the goal: <= 1 with the tables' limit)."]
    unsettled = [r for r in res["runs"] if not r.get("rss_settled", True)]
    if unsettled:
        lines += ["", f"{len(unsettled)} run(s) read RSS while it still moved after "
                  f"{SETTLE_MAX_S:.0f} s: " + ", ".join(f"r{r['round']} {r['server']}"
                                                        for r in unsettled) + "."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
    ap.add_argument("--build", default=os.path.join(root, "build"))
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--items", type=int, default=1000000)
    ap.add_argument("--key-size", type=int, default=32)
    ap.add_argument("--value-size", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", help="comma list of server names (" +
                    ", ".join(s["name"] for s in SERVERS) + ")")
    ap.add_argument("--json", help="write every run and the medians here")
    a = ap.parse_args()
    if a.items < 1 or a.rounds < 1:
        ap.error("--items and --rounds: at least 1")
    srvs = [s for s in SERVERS if not a.only or s["name"] in a.only.split(",")]
    if not srvs:
        ap.error(f"--only {a.only}: no such server")
    runs = []
    for rnd in range(a.rounds):
        for s in (srvs if rnd % 2 == 0 else list(reversed(srvs))):
            r = one(s, a)
            r["round"] = rnd
            runs.append(r)
            print(f"kv_memory: r{rnd} {s['name']}: {r['items']} items, "
                  f"{r['bytes_per_item'] or 0:.0f} B each by RSS ({r['rss_before_kib']} -> "
                  f"{r['rss_after_kib']} KiB), {r['stats_bytes_per_item'] or 0:.0f} B by its stats, "
                  f"{r['stats_after'].get('evictions')} evictions", file=sys.stderr)
    res = {"command": " ".join(sys.argv), "machine": machine.describe(root),
           "items": a.items, "key_size": a.key_size, "value_size": a.value_size,
           "rounds": a.rounds, "servers": [s["name"] for s in srvs], "runs": runs}
    res["summary"] = {s: {k: median([r[k] for r in runs if r["server"] == s])
                          for k in ("bytes_per_item", "stats_bytes_per_item",
                                    "rss_bytes_per_item", "items")}
                      for s in res["servers"]}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    m = res["machine"]
    print("\n".join([
        "### Key-value memory per item: corewire vs memcached", "",
        *script_lines(res["command"], m, f"servers on core {a.server_core}, the preload on "
                      f"core {a.client_core}"),
        f"- {a.items} items of {a.key_size}-byte keys and {a.value_size}-byte values, each set "
        f"once (`corewire-bench --kv-preload-only`), {a.rounds} round(s), a fresh server per "
        "run; RSS from /proc/<pid>/status, `bytes` and `curr_items` from the server's `stats`; "
        "median (min..max) over the rounds; raw runs in the JSON", "",
        table(res)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
