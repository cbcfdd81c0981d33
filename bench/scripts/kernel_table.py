#!/usr/bin/env python3
"""The kernel-path benchmark table of docs/BENCHMARKS.md, measured in one run.

Three servers answer the sockperf dialect on 127.0.0.1, each pinned to --server-core:
  corewire  the io_uring backend (busy-poll for throughput and ping-pong, interrupt mode
            for the efficiency row),
  ceiling   cw-kernel-echo --busy-poll (bench/reference): recvmmsg + GSO trains, batched TCP,
  sockperf  the stock `sockperf server` (the peer).
The same clients, pinned to --client-core, measure each of them; runs are interleaved
(ceiling, sockperf, corewire, ceiling, ...) and repeated --runs times; the table shows the
median and the spread (min..max) of each figure, and ratios of medians.

  throughput   corewire-bench --proto sockperf, closed loop (--flows x --window outstanding),
               replies/s
  ping-pong    sockperf ping-pong --full-rtt, round trip p50 and p99 (us)
  efficiency   sockperf under-load --mps 100000 --full-rtt; server CPU (utime+stime from
               /proc) per message sent (us/msg) and the round trip p50 sockperf reports.
               corewire in interrupt mode, without interrupt moderation and with each
               window of --coalesce-us (runtime.coalesce, in µs); the ceiling spins by design
               and is left out of this table.

Every server and client run is bounded in time; servers are killed at the end even on error.
"""
import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from procgroup import stop_group

CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        t.bind(("127.0.0.1", port))
    except OSError:
        t.close()
        return free_port()
    t.close()
    return port


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


class Server:
    def __init__(self, name, argv, port, tcp):
        self.name, self.argv, self.port, self.tcp = name, argv, port, tcp
        self.proc = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_ready(self.port, self.tcp, self.proc)
        return self

    def __exit__(self, *exc):
        stop_group(self.proc, timeout=5)


def wait_ready(port, tcp, proc, timeout=10.0):
    """Waits until the server answers one sockperf ping (UDP) or accepts (TCP)."""
    deadline = time.time() + timeout
    msg = (1).to_bytes(8, "big") + (3).to_bytes(2, "big") + (14).to_bytes(4, "big")
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.args}")
        try:
            if tcp:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return
            else:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                    s.settimeout(0.2)
                    s.sendto(msg, ("127.0.0.1", port))
                    s.recvfrom(100)
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server not ready on port {port}: {proc.args}")


def run(argv, timeout):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r.stdout + r.stderr


def sockperf_pp(args, port, tcp):
    out = run(["taskset", "-c", str(args.client_core), "sockperf", "ping-pong", "-i", "127.0.0.1",
               "-p", str(port), "-m", str(args.msg), "-t", str(args.duration), "--full-rtt"]
              + (["--tcp"] if tcp else []), args.duration + 20)
    p50 = re.search(r"percentile 50\.000 =\s+([\d.]+)", out)
    p99 = re.search(r"percentile 99\.000 =\s+([\d.]+)", out)
    dropped = re.search(r"# dropped messages = (\d+)", out)
    if not p50 or not p99:
        raise RuntimeError("sockperf ping-pong gave no percentiles:\n" + out)
    return {"p50_us": float(p50.group(1)), "p99_us": float(p99.group(1)),
            "dropped": int(dropped.group(1)) if dropped else None}


def sockperf_ul(args, port, tcp, server_pid):
    before = cpu_seconds(server_pid)
    out = run(["taskset", "-c", str(args.client_core), "sockperf", "under-load", "-i", "127.0.0.1",
               "-p", str(port), "-m", str(args.msg), "-t", str(args.duration),
               "--mps", str(args.mps), "--full-rtt"] + (["--tcp"] if tcp else []), args.duration + 20)
    time.sleep(0.2)  # let the server finish what is queued
    cpu = cpu_seconds(server_pid) - before
    sent = re.search(r"SentMessages=(\d+)", out)
    if not sent:
        raise RuntimeError("sockperf under-load gave no counts:\n" + out)
    n = int(sent.group(1))
    p50 = re.search(r"percentile 50\.000 =\s+([\d.]+)", out)
    return {"sent": n, "server_cpu_s": cpu, "us_per_msg": cpu / n * 1e6 if n else None,
            "p50_us": float(p50.group(1)) if p50 else None}


def bench_throughput(args, port, tcp):
    with tempfile.NamedTemporaryFile(suffix=".json") as j:
        run([args.bench, "--proto", "sockperf", "--tcp" if tcp else "--udp",
             "--target", f"127.0.0.1:{port}", "-m", str(args.msg), "--mode", "closed",
             "--flows", str(args.flows), "--window", str(args.window),
             "--duration", str(args.duration), "--warmup", "1", "--cores", str(args.client_core),
             "--busy-poll", "--json", j.name, "-q"], args.duration + 30)
        rep = json.load(open(j.name))
    return {"msg_per_s": rep["throughput_msgs"], "lost": rep["lost"], "errors": rep["errors"]}


def servers(args, tcp):
    """(name, factory(port, mode)) for each server; mode is 'busy' or 'interrupt'."""
    proto = "tcp" if tcp else "udp"

    def corewire(port, mode):
        cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        cfg.write(f'[runtime]\nbackend = "{args.backend}"\ncores = [{args.server_core}]\n'
                  f'busy_poll = {"true" if mode == "busy" else "false"}\n'
                  f'coalesce = "{mode if isinstance(mode, int) else 0}us"\n'
                  f'[[service]]\nname = "sockperf-echo"\n{proto} = {port}\n')
        cfg.close()
        return Server("corewire", [args.corewire, "-c", cfg.name], port, tcp)

    def ceiling(port, mode):
        return Server("ceiling", [args.ceiling, f"--{proto}", f"127.0.0.1:{port}", "--core",
                                  str(args.server_core), "--mode", "sockperf", "--busy-poll"], port, tcp)

    def sockperf(port, mode):
        return Server("sockperf", ["taskset", "-c", str(args.server_core), "sockperf", "server",
                                   "-i", "127.0.0.1", "-p", str(port)]
                      + (["--tcp"] if tcp else []), port, tcp)

    return [("ceiling", ceiling), ("sockperf", sockperf), ("corewire", corewire)]


def measure(args, tcp):
    results = {}  # name -> metric -> [values]
    for r in range(args.runs):
        for name, make in servers(args, tcp):
            m = results.setdefault(name, {})
            port = free_port()
            with make(port, "busy") as srv:
                t = bench_throughput(args, port, tcp)
                m.setdefault("msg_per_s", []).append(t["msg_per_s"])
                m.setdefault("lost", []).append(t["lost"])
                pp = sockperf_pp(args, port, tcp)
                m.setdefault("p50_us", []).append(pp["p50_us"])
                m.setdefault("p99_us", []).append(pp["p99_us"])
                if name == "sockperf":
                    ul = sockperf_ul(args, port, tcp, srv.proc.pid)
                    m.setdefault("us_per_msg", []).append(ul["us_per_msg"])
                    m.setdefault("ul_p50_us", []).append(ul["p50_us"])
            if name == "corewire":
                for w in [0] + args.windows:
                    port = free_port()
                    with make(port, w if w else "interrupt") as srv:
                        ul = sockperf_ul(args, port, tcp, srv.proc.pid)
                        sfx = f"_c{w}" if w else ""
                        m.setdefault("us_per_msg" + sfx, []).append(ul["us_per_msg"])
                        m.setdefault("ul_p50_us" + sfx, []).append(ul["p50_us"])
            print(f"  run {r + 1}/{args.runs} {'tcp' if tcp else 'udp'} {name}: "
                  + ", ".join(f"{k}={v[-1]:.3f}" for k, v in m.items() if v), file=sys.stderr)
    return results


def fmt(vals, digits=2):
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    med = statistics.median(vals)
    return f"{med:.{digits}f} ({min(vals):.{digits}f}..{max(vals):.{digits}f})"


def table(results, tcp):
    med = {n: {k: statistics.median([x for x in v if x is not None]) for k, v in m.items()
               if any(x is not None for x in v)} for n, m in results.items()}
    lines = [f"### {'TCP' if tcp else 'UDP'} echo, {args_g.msg}-byte messages",
             "",
             "| server | throughput (k msg/s) | ping-pong RTT p50 (us) | RTT p99 (us) |",
             "|---|---|---|---|"]
    for n in ("ceiling", "sockperf", "corewire"):
        m = results[n]
        lines.append(f"| {n} | {fmt([v / 1e3 for v in m['msg_per_s']], 1)} | {fmt(m['p50_us'])} | "
                     f"{fmt(m['p99_us'])} |")
    c, k, s = med["corewire"], med["ceiling"], med["sockperf"]
    lines += ["",
              f"- throughput: corewire / ceiling = **{c['msg_per_s'] / k['msg_per_s']:.3f}**, "
              f"corewire / sockperf server = {c['msg_per_s'] / s['msg_per_s']:.3f}, "
              f"ceiling / sockperf server = {k['msg_per_s'] / s['msg_per_s']:.3f}",
              f"- RTT p50: corewire / ceiling = **{c['p50_us'] / k['p50_us']:.3f}**",
              f"- requests lost in throughput runs: "
              + ", ".join(f"{n} {int(sum(results[n]['lost']))}" for n in results), "",
              f"Interrupt mode at {args_g.mps // 1000}k msg/s (sockperf under-load; the ceiling "
              "spins and is left out):", "",
              "| server | CPU per message (us) | / sockperf server | RTT p50 under load (us) |",
              "|---|---|---|---|"]
    cs, cc = results["sockperf"], results["corewire"]
    lines.append(f"| sockperf server | {fmt(cs['us_per_msg'], 3)} | 1 | {fmt(cs['ul_p50_us'])} |")
    for w in [0] + args_g.windows:
        sfx = f"_c{w}" if w else ""
        name = f"corewire, coalesce_us={w}" if w else "corewire, no moderation"
        lines.append(f"| {name} | {fmt(cc['us_per_msg' + sfx], 3)} | "
                     f"**{c['us_per_msg' + sfx] / s['us_per_msg']:.3f}** | "
                     f"{fmt(cc['ul_p50_us' + sfx])} |")
    lines.append("")
    return "\n".join(lines)


args_g = None


def main():
    global args_g
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per measurement")
    ap.add_argument("--msg", type=int, default=64)
    ap.add_argument("--flows", type=int, default=4)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--mps", type=int, default=100000)
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--backend", default="io_uring")
    ap.add_argument("--coalesce-us", default="50,100,200",
                    help="interrupt-moderation windows measured besides none (comma list)")
    ap.add_argument("--transports", default="udp,tcp")
    ap.add_argument("--json", help="write raw results here")
    args = args_g = ap.parse_args()
    args.windows = [int(w) for w in args.coalesce_us.split(",") if w]
    args.corewire = os.path.join(args.build, "app/server/corewire")
    args.bench = os.path.join(args.build, "bench/corewire-bench")
    args.ceiling = os.path.join(args.build, "bench/reference/cw-kernel-echo")
    out, raw = [], {}
    for t in args.transports.split(","):
        tcp = t == "tcp"
        res = measure(args, tcp)
        raw[t] = res
        out.append(table(res, tcp))
    print(f"command: {' '.join(sys.argv)}\nmachine: {os.uname().nodename}, {os.cpu_count()} cores, "
          f"kernel {os.uname().release}\ndate: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print("\n".join(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
