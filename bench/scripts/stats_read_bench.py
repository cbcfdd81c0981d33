#!/usr/bin/env python3
"""Does reading the stats segment at 100 Hz slow the dataplane? (docs/BENCHMARKS.md)

One corewire (sockperf echo, busy-poll, pinned to --server-core) serves corewire-bench
throughput runs (closed loop, pinned to --client-core). Runs alternate between two
conditions, --runs times each, in interleaved order (off, on, on, off, off, on, ...) so that
drift hits both alike:
  off  no reader;
  on   `corewirectl stats --watch --interval-ms 10 --json` (a full snapshot of every worker
       block every 10 ms, i.e. ~100 Hz; pinned to --reader-core) runs for the whole run.
The claim holds when the medians of the two conditions differ by no more than the run-to-run
spread (max - min) of the runs without the reader. The reader's achieved rate is measured (lines printed
per second) and reported.

Output: a short text summary on stdout, and with --json every run's figures, the medians,
spreads and the verdict. Every process is bounded in time and killed at the end. Exit 77
(skipped) when a requested core is not available.

  bench/scripts/stats_read_bench.py --build build --runs 5 --duration 5 --json out.json
"""
import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from procgroup import stop_group

READ_INTERVAL_MS = 10  # 100 Hz


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, workdir, port):
    cfg = os.path.join(workdir, "corewire.toml")
    with open(cfg, "w") as f:
        f.write(f'[runtime]\nbackend = "{args.backend}"\ncores = [{args.server_core}]\n'
                f'busy_poll = true\n\n[[service]]\nname = "sockperf-echo"\n'
                f'{args.transport} = {port}\n\n[control]\nrun_dir = "{workdir}/run"\n')
    proc = subprocess.Popen([args.corewire, "-c", cfg], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    stats = os.path.join(workdir, "run", "stats")
    end = time.monotonic() + 10
    while not os.path.exists(stats):  # the segment appears once the workers serve
        if proc.poll() is not None or time.monotonic() > end:
            stop(proc)
            raise RuntimeError("corewire did not start: " + " ".join(proc.args))
        time.sleep(0.05)
    return proc, cfg


def stop(proc):
    stop_group(proc)


def throughput(args, port, reader_cfg):
    """One corewire-bench run; with reader_cfg, a 100 Hz segment reader runs alongside."""
    reader = None
    if reader_cfg:
        reader = subprocess.Popen(
            ["taskset", "-c", str(args.reader_core), args.corewirectl, "-c", reader_cfg, "--json",
             "stats", "--watch", "--interval-ms", str(READ_INTERVAL_MS)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
        t_reader = time.monotonic()
    try:
        with tempfile.NamedTemporaryFile(suffix=".json") as j:
            r = subprocess.run(
                [args.bench, "--proto", "sockperf", "--" + args.transport,
                 "--target", f"127.0.0.1:{port}", "-m", str(args.msg), "--mode", "closed",
                 "--flows", str(args.flows), "--window", str(args.window),
                 "--duration", str(args.duration), "--warmup", str(args.warmup),
                 "--cores", str(args.client_core), "--busy-poll", "--json", j.name, "-q"],
                capture_output=True, text=True, timeout=args.duration + args.warmup + 30)
            if r.returncode != 0:
                raise RuntimeError("corewire-bench failed: " + r.stderr)
            rep = json.load(open(j.name))
    finally:
        reads_per_s = None
        if reader:
            elapsed = time.monotonic() - t_reader
            stop(reader)
            lines = reader.stdout.read().count("\n")
            reads_per_s = lines / elapsed
    return {"msg_per_s": rep["throughput_msgs"], "lost": rep["lost"], "errors": rep["errors"],
            "reads_per_s": reads_per_s}


def summary(vals):
    return {"runs": vals, "median": statistics.median(vals), "min": min(vals), "max": max(vals),
            "spread": max(vals) - min(vals)}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build", help="meson build dir with the binaries")
    ap.add_argument("--corewire"), ap.add_argument("--corewirectl"), ap.add_argument("--bench")
    ap.add_argument("--runs", type=int, default=5, help="runs per condition (>= 5 for the table)")
    ap.add_argument("--duration", type=float, default=5, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    ap.add_argument("--msg", type=int, default=64)
    ap.add_argument("--flows", type=int, default=4)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--reader-core", type=int, help="default: the client core")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    args.corewire = args.corewire or os.path.join(args.build, "app/server/corewire")
    args.corewirectl = args.corewirectl or os.path.join(args.build, "control/corewirectl")
    args.bench = args.bench or os.path.join(args.build, "bench/corewire-bench")
    if args.reader_core is None:
        args.reader_core = args.client_core
    missing = {args.server_core, args.client_core, args.reader_core} - os.sched_getaffinity(0)
    if missing:
        print(f"stats_read_bench: cores {sorted(missing)} are not available here", file=sys.stderr)
        return 77  # "skipped" for meson's test runner

    runs = {"off": [], "on": []}
    workdir = tempfile.mkdtemp(prefix="cw-statsbench-")
    port = free_port()
    server, cfg = start_server(args, workdir, port)
    try:
        for r in range(args.runs):
            order = ("off", "on") if r % 2 == 0 else ("on", "off")
            for cond in order:
                res = throughput(args, port, cfg if cond == "on" else None)
                runs[cond].append(res)
                extra = f", reader {res['reads_per_s']:.0f} Hz" if res["reads_per_s"] else ""
                print(f"  run {r + 1}/{args.runs} reader {cond}: {res['msg_per_s']:.0f} msg/s, "
                      f"lost {res['lost']}{extra}", file=sys.stderr)
    finally:
        stop(server)
        subprocess.run(["rm", "-rf", workdir])

    off = summary([x["msg_per_s"] for x in runs["off"]])
    on = summary([x["msg_per_s"] for x in runs["on"]])
    hz = statistics.median([x["reads_per_s"] for x in runs["on"]])
    delta = on["median"] - off["median"]
    within = abs(delta) <= off["spread"]
    result = {
        "config": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "machine": {"node": os.uname().nodename, "cores": os.cpu_count(),
                    "kernel": os.uname().release},
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "without_reader": off, "with_reader": on, "reader_hz_median": hz,
        "delta_median_msg_per_s": delta, "delta_median_pct": 100 * delta / off["median"],
        "within_spread": within,
        "lost": sum(x["lost"] for x in runs["off"] + runs["on"]),
    }
    print(f"{args.transport} sockperf echo, {args.msg} B, {args.runs} run(s) x {args.duration:g} s "
          f"per condition\n"
          f"  without reader: median {off['median'] / 1e3:.1f} k msg/s "
          f"({off['min'] / 1e3:.1f}..{off['max'] / 1e3:.1f})\n"
          f"  with reader at {hz:.0f} Hz: median {on['median'] / 1e3:.1f} k msg/s "
          f"({on['min'] / 1e3:.1f}..{on['max'] / 1e3:.1f})\n"
          f"  difference of medians: {result['delta_median_pct']:+.2f} %, "
          f"{'within' if within else 'OUTSIDE'} the run-to-run spread without the reader")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
