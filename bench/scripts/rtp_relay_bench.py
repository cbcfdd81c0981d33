#!/usr/bin/python3
"""The RTP relay benchmark (docs/BENCHMARKS.md, "RTP relay (issue 19)"): sessions held per
worker at 50 packets/s each way, with the delay the relay adds, corewire's rtp relay
(one worker) against the kernel-socket reference relay (bench/reference/rtp_relay.cc), both
pinned to the server core, the generator (cw-rtp-load) on the other.

For each N of the sweep and each round, both relays run once (paired; the order alternates
by round), each on a fresh process with N relay sessions: session i relays side A
127.1.(i // 250).(i % 250 + 1):PA and side B 127.2.(i // 250).(i % 250 + 1):PB (loopback:
every 127/8 address is local). corewire gets them through its control socket (`rtp open
peer=A peer_b=B`, pipelined on one connection), the reference from a file. A run passes
when its loss is under --loss and its p99 delay under --p99-us; a relay holds N when the
median of its rounds passes. The sweep stops after the first N where neither holds.
Sessions held: the largest N held. The table shows how far the generator fell behind its
schedule (ms, worst run): when that is more than a packet interval (20 ms), the row measures
the generator as much as the relay. Every run is kept in the JSON (--out); --md writes the
table with the command, date and commit beside it.

  /usr/bin/python3 bench/scripts/rtp_relay_bench.py --build build \
      --sessions 1000,2000,5000,10000,20000 --rounds 3 --out docs/bench/rtp-relay.json \
      --md docs/bench/rtp-relay.md
Each run also records what the relay cost (relay_cpu()): its CPU time per packet and the
sessions one fully busy core would hold at that cost, a figure the generator's limit does
not cap.
--smoke: one round of 200 sessions for 1 s against both relays, asserting that packets
went through both ways with no loss and that the relays' CPU time was read (no timing
assertion); exit 77 when io_uring or the binaries are missing.
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procgroup import stop_group, wait_listening  # noqa: E402
from cwbench import machine  # noqa: E402

SKIP = 77


def side(net, i, port):
    return f"127.{net}.{i // 250}.{i % 250 + 1}:{port}"


def free_udp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Control:
    """One connection to corewire's control socket; requests pipelined in chunks."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(30)
        self.s.connect(path)
        self.buf = b""

    def requests(self, objs):
        self.s.sendall(b"".join(json.dumps(o).encode() + b"\n" for o in objs))
        out = []
        while len(out) < len(objs):
            while b"\n" not in self.buf:
                chunk = self.s.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("control socket closed")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            out.append(json.loads(line))
        return out

    def close(self):
        self.s.close()


class Relay:
    """One relay process holding n sessions; stats() after stop()."""

    def __init__(self, kind, build, n, pa, pb, core, sessions_file, args):
        self.kind, self.proc, self.final = kind, None, ""
        self.tmp = tempfile.mkdtemp(prefix="cw-rtp-relay-")
        self.ctl = os.path.join(build, "control/corewirectl")
        busy = args.busy_poll
        self.port = free_udp_port()
        self.open_s = 0.0
        if kind == "reference":
            argv = [os.path.join(build, "bench/reference/cw-rtp-relay-ref"), "--udp",
                    f"127.0.0.1:{self.port}", "--sessions", sessions_file]
            argv += ["--core", str(core)] if core >= 0 else []
            argv += ["--busy-poll"] if busy else []
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                                         start_new_session=True)
            line = self.proc.stdout.readline()
            if not line.startswith("udp "):
                raise RuntimeError(f"cw-rtp-relay-ref did not start: {line!r}")
            return
        cfg = os.path.join(self.tmp, "corewire.toml")
        with open(cfg, "w") as f:
            f.write(f'[runtime]\nbackend = "{args.backend}"\n'
                    + (f"cores = [{core}]\n" if core >= 0 else "workers = 1\n") +
                    f'busy_poll = {"true" if busy else "false"}\n'
                    f'[log]\nlevel = "warn"\n[control]\nrun_dir = "{self.tmp}"\n'
                    f'[[service]]\nname = "rtp"\nmode = "relay"\n'
                    f'udp = "127.0.0.1:{self.port}"\nmax_sessions = {max(n, 1)}\n')
        self.cfg = cfg
        self.proc = subprocess.Popen([os.path.join(build, "app/server/corewire"), "-c", cfg],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, start_new_session=True)
        sock = os.path.join(self.tmp, "control.sock")
        if not wait_listening(sock, self.proc, 20):
            raise RuntimeError("corewire did not start: " + self.stop_text())
        t0 = time.monotonic()
        ctl = Control(sock)
        try:
            for lo in range(0, n, 500):
                reqs = [{"cmd": "rtp", "op": "open", "peer": side(1, i, pa),
                         "peer_b": side(2, i, pb)} for i in range(lo, min(n, lo + 500))]
                for r in ctl.requests(reqs):
                    if not r.get("ok"):
                        raise RuntimeError(f"rtp open: {r}")
        finally:
            ctl.close()
        self.open_s = time.monotonic() - t0

    def stop_text(self):
        stop_group(self.proc)
        return (self.proc.stderr.read() if self.proc.stderr else "")[-2000:]

    def counters(self):
        """corewire: the rtp service's counters (corewirectl stats); reference: its JSON."""
        if self.kind == "reference":
            return {}
        r = subprocess.run([self.ctl, "-c", self.cfg, "stats", "--json"], capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            return {}
        w = json.loads(r.stdout)["workers"][0]
        return {k: w["services"]["rtp"]["counters"].get(k) for k in
                ("relayed", "rtp_in", "unknown_source", "bad_rtp", "tx_full")}

    def stop(self):
        stop_group(self.proc)
        if self.kind == "reference":
            rest = self.proc.stdout.read().strip().splitlines()
            self.final = rest[-1] if rest else ""
        shutil.rmtree(self.tmp, ignore_errors=True)
        try:
            return json.loads(self.final) if self.final else {}
        except json.JSONDecodeError:
            return {}


def run_load(build, relay_port, sessions_file, args, core):
    argv = [os.path.join(build, "bench/reference/cw-rtp-load"), "--relay",
            f"127.0.0.1:{relay_port}", "--sessions", sessions_file, "--pps", str(args.pps),
            "--warmup", str(args.warmup), "--seconds", str(args.seconds)]
    argv += ["--core", str(core)] if core >= 0 else []
    r = subprocess.run(argv, capture_output=True, text=True,
                       timeout=args.warmup + args.seconds + 30)
    if r.returncode != 0:
        raise RuntimeError(f"cw-rtp-load: {r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def relay_cpu(rel, cpu0, task0, wall_s, n, args):
    """What the relay cost over the whole load run (warm-up included): its own CPU time
    (schedstat), its core's busy share (/proc/stat: softirq and anything else on that core
    included), and CPU per packet at the scheduled rate (2 x n x pps packets/s in). The
    relay's capacity, sessions per fully busy core, is n / its process's busy share: an
    estimate that does not depend on whether the generator kept up (it assumes cost per
    packet stays flat up to saturation)."""
    task1, cpu1 = machine.task_cpu_ns(rel.proc.pid), machine.proc_stat()
    out = {"wall_s": round(wall_s, 3)}
    if task0 is not None and task1 is not None and wall_s > 0:
        share = (task1 - task0) / 1e9 / wall_s
        out["relay_busy"] = round(share, 4)
        out["relay_ns_per_packet"] = round(share * 1e9 / (2 * n * args.pps), 1)
        out["sessions_per_core"] = round(n / share) if share > 0 else None
    if args.server_core >= 0:
        core = machine.cpu_delta(cpu0, cpu1)["cores"].get(f"cpu{args.server_core}")
        if core:
            out["server_core_busy"] = round(core["busy_s"] / wall_s, 4)
    return out


def passes(res, args):
    return res["loss"] <= args.loss and res["delay_us"]["p99"] <= args.p99_us


def git_commit():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.abspath(__file__)))
    return r.stdout.strip() if r.returncode == 0 else "unknown"


def med_opt(rs, key):
    """Median of run["cpu"][key] over the runs that have it, else None."""
    xs = [r["cpu"][key] for r in rs if r.get("cpu", {}).get(key) is not None]
    return statistics.median(xs) if xs else None


def summarize(runs, relays, args):
    """Per relay and N: medians over rounds; sessions held."""
    out = {}
    for kind in relays:
        rows, held = [], 0
        for n in sorted({r["sessions"] for r in runs if r["relay"] == kind}):
            rs = [r for r in runs if r["relay"] == kind and r["sessions"] == n]
            med = lambda f: statistics.median(f(r) for r in rs)  # noqa: E731
            row = {"sessions": n, "rounds": len(rs),
                   "p50_us": med(lambda r: r["delay_us"]["p50"]),
                   "p99_us": med(lambda r: r["delay_us"]["p99"]),
                   "p999_us": med(lambda r: r["delay_us"]["p999"]),
                   "loss": med(lambda r: r["loss"]),
                   "jitter_mean_us": med(lambda r: r["jitter_us"]["mean"]),
                   "jitter_p99_us": med(lambda r: r["jitter_us"]["p99"]),
                   "gen_behind_max": max(r["behind_max"] for r in rs),
                   "relay_busy": med_opt(rs, "relay_busy"),
                   "relay_ns_per_packet": med_opt(rs, "relay_ns_per_packet"),
                   "sessions_per_core": med_opt(rs, "sessions_per_core"),
                   "server_core_busy": med_opt(rs, "server_core_busy"),
                   # The generator's worst lag behind its schedule: packets / packet rate.
                   "gen_behind_ms": max(r["behind_max"] for r in rs) * 1000 /
                   (2 * n * args.pps)}
            row["held"] = row["loss"] <= args.loss and row["p99_us"] <= args.p99_us
            if row["held"]:
                held = max(held, n)
            rows.append(row)
        out[kind] = {"rows": rows, "sessions_held": held}
    return out


def markdown(doc):
    s, lines = doc["summary"], []
    lines.append(f"# RTP relay: sessions held per worker (issue 19)\n")
    lines.append(f"Command: `{doc['command']}`  ")
    lines.append(f"Date: {doc['date']}, commit `{doc['commit']}`, raw runs: "
                 f"[rtp-relay.json](rtp-relay.json). {doc['note']}\n")
    lines.append(f"Bound: p99 delay <= {doc['params']['p99_us']} us and loss <= "
                 f"{doc['params']['loss'] * 100:g} %, {doc['params']['pps']} packets/s per "
                 f"stream each way, {doc['params']['seconds']} s measured after "
                 f"{doc['params']['warmup']} s; medians over rounds.\n")
    lines.append("| relay | sessions | p50 us | p99 us | p99.9 us | loss % | jitter mean us "
                 "| jitter p99 us | generator behind, ms | held | relay busy | relay ns/packet "
                 "| server core busy | sessions per core (estimate) |")
    lines.append("|---" * 14 + "|")

    def opt(x, fmt):
        return "-" if x is None else format(x, fmt)
    for kind, v in s.items():
        for r in v["rows"]:
            lines.append(f"| {kind} | {r['sessions']} | {r['p50_us']:.1f} | {r['p99_us']:.1f} | "
                         f"{r['p999_us']:.1f} | {r['loss'] * 100:.3f} | "
                         f"{r['jitter_mean_us']:.2f} | {r['jitter_p99_us']:.2f} | "
                         f"{r['gen_behind_ms']:.1f} | {'yes' if r['held'] else 'no'} | "
                         f"{opt(r.get('relay_busy'), '.3f')} | "
                         f"{opt(r.get('relay_ns_per_packet'), '.0f')} | "
                         f"{opt(r.get('server_core_busy'), '.3f')} | "
                         f"{opt(r.get('sessions_per_core'), ',.0f')} |")
    held = {k: v["sessions_held"] for k, v in s.items()}
    lines.append("")
    lines.append("relay busy: the relay process's CPU time over the run (schedstat) / wall time; "
                 "ns/packet: that per packet at the scheduled rate; sessions per core: sessions "
                 "/ relay busy, what one fully busy core would hold if cost per packet stayed "
                 "flat (an estimate, not a held figure; it leaves out the kernel's receive "
                 "work, which loopback runs on the sender's core).")
    lines.append("")
    lines.append("Sessions held: " + ", ".join(f"{k} **{v}**" for k, v in held.items()) +
                 (f"; ratio corewire / reference **{held['corewire'] / held['reference']:.2f}x**"
                  if held.get("reference") else "") + ".")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--sessions", default="1000,2000,5000,10000,20000")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--pps", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--p99-us", type=float, default=1000)
    ap.add_argument("--loss", type=float, default=0.01)
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--gen-core", type=int, default=0)
    ap.add_argument("--busy-poll", action="store_true", help="both relays spin")
    ap.add_argument("--backend", default="io_uring", help="corewire's backend")
    ap.add_argument("--relays", default="corewire,reference")
    ap.add_argument("--out")
    ap.add_argument("--md")
    ap.add_argument("--note", default="")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    if args.smoke:
        args.sessions, args.rounds, args.seconds, args.warmup = "200", 1, 1.0, 0.5
        args.p99_us = 1e9  # no timing assertion
        args.backend = "auto"
    relays = args.relays.split(",")
    for exe in ("app/server/corewire", "bench/reference/cw-rtp-relay-ref",
                "bench/reference/cw-rtp-load"):
        if not os.path.exists(os.path.join(args.build, exe)):
            print(f"skip: {exe} not built", file=sys.stderr)
            return SKIP
    ncores = os.cpu_count() or 1
    if max(args.server_core, args.gen_core) >= ncores:
        args.server_core, args.gen_core = -1, -1  # fewer cores: not pinned
    sweep = [int(x) for x in args.sessions.split(",")]
    if max(sweep) > 64000:
        ap.error("at most 64,000 sessions (the 127.x.y.z address plan)")
    runs, stopped = [], set()
    for n in sweep:
        pa, pb = free_udp_port(), free_udp_port()
        with tempfile.NamedTemporaryFile("w", suffix=".sessions", delete=False) as f:
            for i in range(n):
                f.write(f"{side(1, i, pa)} {side(2, i, pb)}\n")
            sessions_file = f.name
        try:
            for rnd in range(args.rounds):
                order = relays if rnd % 2 == 0 else relays[::-1]
                for kind in order:
                    if kind in stopped:
                        continue
                    rel = Relay(kind, args.build, n, pa, pb, args.server_core, sessions_file,
                                args)
                    try:
                        cpu0, task0 = machine.proc_stat(), machine.task_cpu_ns(rel.proc.pid)
                        t0 = time.monotonic()
                        res = run_load(args.build, rel.port, sessions_file, args, args.gen_core)
                        res["cpu"] = relay_cpu(rel, cpu0, task0, time.monotonic() - t0, n,
                                               args)
                        res["server_counters"] = rel.counters()
                    finally:
                        res_ref = rel.stop()
                    res.update(relay=kind, round=rnd, open_s=round(rel.open_s, 3))
                    if res_ref:
                        res["server_counters"] = res_ref
                    runs.append(res)
                    print(f"N={n} round {rnd} {kind}: p50 {res['delay_us']['p50']:.1f} us "
                          f"p99 {res['delay_us']['p99']:.1f} us loss {res['loss'] * 100:.3f} % "
                          f"jitter {res['jitter_us']['mean']:.2f} us "
                          f"(gen behind max {res['behind_max']}, open {rel.open_s:.1f} s)",
                          file=sys.stderr, flush=True)
        finally:
            os.unlink(sessions_file)
        summary = summarize(runs, relays, args)
        for kind in relays:
            rows = [r for r in summary[kind]["rows"] if r["sessions"] == n]
            if rows and not rows[0]["held"]:
                stopped.add(kind)
        if all(k in stopped for k in relays):
            break
    doc = {"command": " ".join(["/usr/bin/python3", "bench/scripts/rtp_relay_bench.py"] +
                               sys.argv[1:]),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "commit": git_commit(), "note": args.note,
           "machine": {"cpus": ncores, "load": os.getloadavg()},
           "params": {k: getattr(args, k) for k in
                      ("pps", "seconds", "warmup", "p99_us", "loss", "rounds", "server_core",
                       "gen_core", "busy_poll")},
           "summary": summarize(runs, relays, args), "runs": runs}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    if args.md:
        with open(args.md, "w") as f:
            f.write(markdown(doc))
    print(markdown(doc))
    if args.smoke:
        # Every relay carried every stream both ways (nothing lost on an idle loopback), and
        # corewire counted what it relayed.
        for r in runs:
            if r["received_measured"] == 0 or r["loss"] > 0.001 or r["foreign"]:
                print(f"FAIL: {r['relay']}: {r}", file=sys.stderr)
                return 1
            if not r["cpu"].get("relay_busy"):
                print(f"FAIL: {r['relay']}: no relay CPU time measured: {r['cpu']}",
                      file=sys.stderr)
                return 1
            if r["relay"] == "corewire" and not r["server_counters"].get("relayed"):
                print(f"FAIL: corewire relayed nothing: {r}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
