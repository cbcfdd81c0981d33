#!/usr/bin/env python3
"""Paired A/B rounds of two corewire builds on the echo benchmarks (before/after a change).

Each round measures A and B back to back, in alternating order (AB, BA, AB, ...), with the
same clients pinned to --client-core and both servers (sockperf-echo, io_uring, one
worker) pinned to --server-core:
  throughput  corewire-bench --proto sockperf, closed loop (--flows x --window), busy-poll
              server, replies/s
  rtt         sockperf ping-pong --full-rtt against the busy-poll server, p50/p99 (us)
  cpu         sockperf under-load --mps --full-rtt against the interrupt-mode server:
              server CPU (utime+stime) per message sent (us)
for UDP and TCP. Every run is kept in the JSON; the table gives, per figure, the median of
the per-round ratios B/A, the per-round list, and a bootstrap 95% interval of that median.
The clients come from --client-build (default: A's), so both servers face the same client.
"""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kernel_table as kt  # noqa: E402  (servers, clients and parsers are shared)


def bootstrap_median(xs, n=2000, seed=1):
    rnd = random.Random(seed)
    meds = sorted(statistics.median(rnd.choices(xs, k=len(xs))) for _ in range(n))
    return meds[int(0.025 * n)], meds[int(0.975 * n) - 1]


def corewire(binary, args, port, tcp, busy):
    cfg = os.path.join(args.tmp, f"ab-{port}.toml")
    with open(cfg, "w") as f:
        f.write(f'[runtime]\nbackend = "io_uring"\ncores = [{args.server_core}]\n'
                f'busy_poll = {"true" if busy else "false"}\n'
                f'[[service]]\nname = "sockperf-echo"\n{"tcp" if tcp else "udp"} = {port}\n')
    return kt.Server("corewire", [binary, "-c", cfg], port, tcp)


def one(binary, args, tcp):
    out = {}
    port = kt.free_port()
    with corewire(binary, args, port, tcp, True):
        t = kt.bench_throughput(args, port, tcp)
        out["msg_per_s"], out["lost"] = t["msg_per_s"], t["lost"]
        pp = kt.sockperf_pp(args, port, tcp)
        out["p50_us"], out["p99_us"] = pp["p50_us"], pp["p99_us"]
    port = kt.free_port()
    with corewire(binary, args, port, tcp, False) as srv:
        ul = kt.sockperf_ul(args, port, tcp, srv.proc.pid)
        out["us_per_msg"] = ul["us_per_msg"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--a", required=True, help="build dir of A (before)")
    ap.add_argument("--b", required=True, help="build dir of B (after)")
    ap.add_argument("--client-build", help="build dir whose corewire-bench is the client")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--msg", type=int, default=64)
    ap.add_argument("--flows", type=int, default=4)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--mps", type=int, default=100000)
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--transports", default="udp,tcp")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    args.bench = os.path.join(args.client_build or args.a, "bench/corewire-bench")
    args.tmp = os.environ.get("TMPDIR", "/tmp")
    bins = {k: os.path.join(getattr(args, k), "app/server/corewire") for k in ("a", "b")}
    meta = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                                   time.gmtime()),
            "commits": {k: subprocess.run(["git", "-C", getattr(args, k), "rev-parse", "HEAD"],
                                          capture_output=True, text=True).stdout.strip()
                        for k in ("a", "b")}}
    runs = []
    for r in range(args.rounds):
        for proto in args.transports.split(","):
            order = ("a", "b") if r % 2 == 0 else ("b", "a")
            res = {}
            for k in order:
                res[k] = one(bins[k], args, proto == "tcp")
                print(f"round {r + 1} {proto} {k}: {res[k]}", file=sys.stderr)
            runs.append({"round": r + 1, "proto": proto, "order": "".join(order), **res})
    with open(args.json, "w") as f:
        json.dump({"meta": meta, "runs": runs}, f, indent=1)
    print(f"| transport | figure | A median | B median | B/A per round | median B/A [95% CI] |")
    print("|---|---|---|---|---|---|")
    for proto in args.transports.split(","):
        rs = [x for x in runs if x["proto"] == proto]
        for fig in ("msg_per_s", "p50_us", "p99_us", "us_per_msg"):
            ratios = [x["b"][fig] / x["a"][fig] for x in rs if x["a"][fig] and x["b"][fig]]
            lo, hi = bootstrap_median(ratios)
            print(f"| {proto} | {fig} | {statistics.median(x['a'][fig] for x in rs):.3f} | "
                  f"{statistics.median(x['b'][fig] for x in rs):.3f} | "
                  f"{', '.join(f'{v:.3f}' for v in ratios)} | "
                  f"**{statistics.median(ratios):.3f}** [{lo:.3f}, {hi:.3f}] |")


if __name__ == "__main__":
    main()
