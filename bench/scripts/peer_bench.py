#!/usr/bin/env python3
"""Issue 17's peer-session benchmark (docs/BENCHMARKS.md, "Peer sessions"): a corewire peer
session (QUIC, ngtcp2 + GnuTLS, mutual TLS) against a plain kernel TCP connection carrying
the same frames on the same path (loopback, the same cores), and the core's AES-128-GCM rate.

  corewire-quic  two corewire processes with the peer service (certificates from
                 `corewirectl cluster`): the server node on --server-core, the node that
                 dials it and runs the probe on --client-core. The figures are the service's
                 own counters (corewirectl stats): probe_rtt's histogram and the server's
                 sink_bytes / sink_us.
  kernel-tcp     bench/reference/peer_tcp.cc (cw-peer-tcp): its server on --server-core,
                 its client on --client-core, TCP_NODELAY, the same frames and the same
                 measurement (first tenth of the round trips is warm-up; goodput timed from
                 the first sink frame to the last on the receiver).
  aes-128-gcm    `openssl speed -evp aes-128-gcm -bytes 16384` on --server-core: the 16 KiB
                 column, bytes/s: the bulk goal's denominator.

Per system and round: RTT p50 / p99 with one request outstanding (--rtt-count round trips) at
64 B and 1 KiB bodies, and bulk goodput (--bulk-bytes of --bulk-msg-byte frames, one
session / connection, consumed by the receiver); corewire's bulk again with both nodes'
stream_window = --stream-window (the default window, 32 KiB, lets one 16 KiB frame through
per round trip). Each measurement starts fresh processes.
Rounds are dpdk_table.py's paired rounds (the VM-state probe before each, the order
reversed every other round, every run kept); ratios are medians of per-round ratios with a
bootstrap 95% interval.

Goals (issue 17): RTT corewire / kernel TCP <= 1.3 (p50; p99 shown beside it), bulk goodput
/ AES-128-GCM rate >= 0.4. Neither side busy-polls (--busy-poll: both do: corewire's
busy_poll, and cw-peer-tcp is not changed, so that flag is for exploring only).

  bench/scripts/peer_bench.py --build build --runs 5 --json peer.json
  bench/scripts/peer_bench.py --build build --runs 1 --rtt-count 500 --bulk-bytes 4MiB   # check
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_table as dt  # noqa: E402
from cwbench import runner as cw_runner  # noqa: E402

SYSTEMS = ("corewire-quic", "kernel-tcp", "aes-128-gcm")
SIZES = (64, 1024)  # RTT request bodies
POLL_S = 0.2        # between counter reads while a probe runs
AES_COLUMN = 16384


def size_arg(s):
    m = re.fullmatch(r"(\d+)\s*(KiB|MiB|GiB)?", s)
    if not m:
        raise argparse.ArgumentTypeError(f"bytes: an integer or NKiB/NMiB/NGiB, got {s!r}")
    return int(m.group(1)) * {None: 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]


def parse_openssl(text, column=AES_COLUMN):
    """The AES-128-GCM rate in bytes/s of `openssl speed -evp aes-128-gcm` output, from its
    `column`-byte column (the table gives 1000s of bytes per second, "123.45k")."""
    head = next((ln for ln in text.splitlines() if ln.startswith("type") and "bytes" in ln), None)
    row = next((ln for ln in text.splitlines() if ln.lower().startswith("aes-128-gcm")), None)
    if head is None or row is None:
        raise ValueError(f"no AES-128-GCM table in openssl's output:\n{text}")
    cols = re.findall(r"(\d+) bytes", head)
    vals = re.findall(r"([\d.]+)k", row)
    if str(column) not in cols or len(vals) != len(cols):
        raise ValueError(f"no {column}-byte column in openssl's output:\n{text}")
    return float(vals[cols.index(str(column))]) * 1000


def counters(args, cfg):
    """The peer service's counters through `corewirectl stats --json`, summed over workers."""
    r = subprocess.run([args.ctl, "-c", cfg, "stats", "--json"], capture_output=True, text=True,
                       timeout=10)
    if r.returncode != 0:
        raise RuntimeError(f"corewirectl stats: {r.stdout}{r.stderr}")
    out = {}
    for w in json.loads(r.stdout)["workers"]:
        for k, v in w["services"]["peer"]["counters"].items():
            out[k] = out.get(k, 0) + v
    return out


def make_certs(args, tmp):
    """A CA and two node certificates from corewirectl: {"a": (pem, key), "b": ..., "ca"}."""
    def ctl(*a):
        subprocess.run([args.ctl, "cluster", *a], check=True, capture_output=True, timeout=30)

    ctl("init-ca", f"{tmp}/ca")
    out = {"ca": f"{tmp}/ca/ca.pem"}
    for n in ("a", "b"):
        ctl("issue-cert", "--ca", f"{tmp}/ca", "--name", f"node-{n}", "--out", f"{tmp}/{n}")
        out[n] = (f"{tmp}/{n}/node-{n}.pem", f"{tmp}/{n}/node-{n}.key")
    return out


def node(args, tmp, name, core, port, dial, extra=""):
    """A corewire config with one worker on core and the peer service on 127.0.0.1:port,
    dialing port dial (None: none); returns its path."""
    run_dir = os.path.join(tmp, f"{name}-run")
    os.makedirs(run_dir, exist_ok=True)
    pem, key = args.certs[name]
    peers = f'"127.0.0.1:{dial}"' if dial else ""
    cfg = os.path.join(tmp, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'[runtime]\nbackend = "{args.backend}"\ncores = [{core}]\n'
                f'busy_poll = {"true" if args.busy_poll else "false"}\n'
                f'[log]\nlevel = "info"\n[control]\nrun_dir = "{run_dir}"\n'
                f'[[service]]\nname = "peer"\nudp = "127.0.0.1:{port}"\ncert = "{pem}"\n'
                f'key = "{key}"\nca = "{args.certs["ca"]}"\npeers = [{peers}]\n{extra}')
    return cfg


def goodput(c):
    """Bytes/s of a receiver's sink_bytes over sink_us (first sink frame to the last)."""
    if c["sink_us"] <= 0:
        raise RuntimeError(f"bulk too small to time (--bulk-bytes): {c}")
    return c["sink_bytes"] / (c["sink_us"] / 1e6)


def corewire_run(args, tmp, extra, done, both=""):
    """Server node b, then node a dialing it with the probe keys extra (and both, keys of
    both nodes); polls both nodes' counters until done(a, b) returns the figures (bounded by
    --timeout)."""
    pa, pb = cw_runner.free_port(), cw_runner.free_port()
    cb = node(args, tmp, "b", args.server_core, pb, None, both)
    ca = node(args, tmp, "a", args.client_core, pa, pb, extra + both)
    with dt.Proc("corewire peer server", [args.corewire, "-c", cb], r"corewire: ready"), \
            dt.Proc("corewire peer client", [args.corewire, "-c", ca], r"corewire: ready"):
        deadline = time.time() + args.timeout
        while True:
            time.sleep(POLL_S)
            a, b = counters(args, ca), counters(args, cb)
            got = done(a, b)
            if got is not None:
                return got
            if time.time() > deadline:
                raise RuntimeError(f"corewire probe did not finish in {args.timeout} s: {extra}"
                                   f"\nclient {a}\nserver {b}")


def corewire_rtt(args, tmp, size):
    extra = f"probe_requests = {args.rtt_count}\nprobe_bytes = {size}\nprobe_rtt = true\n"

    def done(a, b):
        if a["probe_bad"]:
            raise RuntimeError(f"corewire probe: {a['probe_bad']} bad responses")
        if not a["probe_done"]:
            return None
        return a["probe_rtt_p50_ns"] / 1e3, a["probe_rtt_p99_ns"] / 1e3, a["probe_rtt_samples"]

    return corewire_run(args, tmp, extra, done)


def corewire_bulk(args, tmp, window=None):
    """Goodput of --bulk-bytes; window: both nodes' stream_window (None: the default)."""
    win = f"stream_window = {window}\n" if window else ""
    extra = f"probe_bulk = {args.bulk_bytes}\nprobe_bytes = {args.bulk_msg}\n"

    def done(a, b):
        return None if b["sink_bytes"] < args.bulk_bytes else goodput(b)

    return corewire_run(args, tmp, extra, done, win)


def tcp_server(args, port):
    return dt.Proc("cw-peer-tcp server", [args.peer_tcp, "server", "--listen",
                                          f"127.0.0.1:{port}", "--core", str(args.server_core)],
                   r"listening")


def tcp_client(args, port, *mode):
    r = subprocess.run([args.peer_tcp, *mode, "--connect", f"127.0.0.1:{port}", "--core",
                        str(args.client_core)], capture_output=True, text=True,
                       timeout=args.timeout)
    if r.returncode != 0:
        raise RuntimeError(f"cw-peer-tcp {mode[0]}: exit {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


def last_json(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def tcp_rtt(args, size):
    port = cw_runner.free_port()
    with tcp_server(args, port):
        out = last_json(tcp_client(args, port, "rtt", "--count", str(args.rtt_count), "--bytes",
                                   str(size)))
    return out["p50_ns"] / 1e3, out["p99_ns"] / 1e3, out["samples"]


def tcp_bulk(args):
    port = cw_runner.free_port()
    with tcp_server(args, port) as srv:
        tcp_client(args, port, "bulk", "--total", str(args.bulk_bytes), "--bytes",
                   str(args.bulk_msg))
        deadline = time.time() + args.timeout
        while (s := last_json(srv.output())) is None and time.time() < deadline:
            time.sleep(0.05)
    if s is None or s["sink_bytes"] != args.bulk_bytes or s["bad"]:
        raise RuntimeError(f"cw-peer-tcp server: {s}")
    return goodput(s)


def aes_rate(args):
    r = subprocess.run(["taskset", "-c", str(args.server_core), "openssl", "speed", "-evp",
                        "aes-128-gcm", "-bytes", str(AES_COLUMN), "-seconds",
                        str(args.aes_seconds)], capture_output=True, text=True,
                       timeout=60 + 2 * args.aes_seconds)
    if r.returncode != 0:
        raise RuntimeError(f"openssl speed: {r.stderr}")
    return parse_openssl(r.stdout)


def measure(args):
    def one(entry, tmp):
        name = entry[0]
        if name == "aes-128-gcm":
            return {"aes_bytes_per_s": aes_rate(args)}
        rtt, bulk = (corewire_rtt, corewire_bulk) if name == "corewire-quic" else (tcp_rtt,
                                                                                  tcp_bulk)
        m = {}
        for size in SIZES:
            p50, p99, n = rtt(args, tmp, size) if name == "corewire-quic" else rtt(args, size)
            if n != args.rtt_count - args.rtt_count // 10:
                raise RuntimeError(f"{name}: {n} round trips recorded, not "
                                   f"{args.rtt_count - args.rtt_count // 10}")
            m[f"p50_us_{size}"], m[f"p99_us_{size}"] = p50, p99
        if name == "corewire-quic":
            m["bulk_bytes_per_s"] = bulk(args, tmp)
            if args.stream_window:
                m["bulk_window_bytes_per_s"] = bulk(args, tmp, args.stream_window)
        else:
            m["bulk_bytes_per_s"] = bulk(args)
        return m

    def systems(tmp):
        args.certs = args.certs or make_certs(args, tmp)
        return [(n,) for n in SYSTEMS]

    args.certs = None
    return dt.paired_rounds(args, "cw-peer-bench-", systems, one)


def table(args, results):
    Q, T, A = SYSTEMS
    q, t = results[Q], results[T]

    def cell(m, key, scale=1.0, digits=1):
        vals = m.get(key)
        return "-" if not vals or None in vals else dt.fmt([v * scale for v in vals], digits)

    lines = [f"### Peer session (QUIC) vs kernel TCP on loopback, backend {args.backend}"
             f"{', busy-polling' if args.busy_poll else ''}", "",
             "| system | RTT p50 64 B (us) | RTT p99 64 B (us) | RTT p50 1 KiB (us) | "
             f"RTT p99 1 KiB (us) | bulk goodput (MB/s, {args.bulk_msg} B frames) |",
             "|---|---|---|---|---|---|"]
    for n, m in ((Q, q), (T, t)):
        lines.append(f"| {n} | {cell(m, 'p50_us_64', 1, 1)} | {cell(m, 'p99_us_64', 1, 1)} | "
                     f"{cell(m, 'p50_us_1024', 1, 1)} | {cell(m, 'p99_us_1024', 1, 1)} | "
                     f"{cell(m, 'bulk_bytes_per_s', 1e-6, 0)} |")
    if args.stream_window:
        lines.append(f"| {Q}, stream_window = {args.stream_window} | - | - | - | - | "
                     f"{cell(q, 'bulk_window_bytes_per_s', 1e-6, 0)} |")
    lines += ["", f"AES-128-GCM on core {args.server_core} (`openssl speed -evp aes-128-gcm`, "
              f"16 KiB blocks): {cell(results[A], 'aes_bytes_per_s', 1e-6, 0)} MB/s", ""]
    ratios = {f"rtt_p{p}_{s}": dt.per_round(results, Q, T, f"p{p}_us_{s}")
              for s in SIZES for p in (50, 99)}
    ratios["bulk_vs_aes"] = dt.per_round(results, Q, A, "bulk_bytes_per_s", "aes_bytes_per_s")
    ratios["tcp_bulk_vs_aes"] = dt.per_round(results, T, A, "bulk_bytes_per_s",
                                             "aes_bytes_per_s")
    ratios["bulk_vs_tcp"] = dt.per_round(results, Q, T, "bulk_bytes_per_s")
    if args.stream_window:
        ratios["bulk_window_vs_aes"] = dt.per_round(results, Q, A, "bulk_window_bytes_per_s",
                                                    "aes_bytes_per_s")
    le13 = ("<= 1.3", lambda x: x <= 1.3)
    rows = [("RTT p50 64 B corewire-quic / kernel-tcp", "rtt_p50_64", *le13),
            ("RTT p50 1 KiB corewire-quic / kernel-tcp", "rtt_p50_1024", *le13),
            ("RTT p99 64 B corewire-quic / kernel-tcp", "rtt_p99_64"),
            ("RTT p99 1 KiB corewire-quic / kernel-tcp", "rtt_p99_1024"),
            ("bulk goodput corewire-quic / AES-128-GCM rate", "bulk_vs_aes", ">= 0.4",
             lambda x: x >= 0.4),
            *([(f"bulk goodput corewire-quic, stream_window = {args.stream_window} / "
                "AES-128-GCM rate", "bulk_window_vs_aes", ">= 0.4", lambda x: x >= 0.4)]
              if args.stream_window else []),
            ("bulk goodput kernel-tcp / AES-128-GCM rate (no encryption: for scale)",
             "tcp_bulk_vs_aes"),
            ("bulk goodput corewire-quic / kernel-tcp", "bulk_vs_tcp")]
    lines += ["| ratio | median of per-round ratios | bootstrap 95% | per round | goal | met |",
              "|---|---|---|---|---|---|"]
    for label, key, *goal in rows:
        row = dt.ratio_row(label, ratios[key], *goal)
        if goal:
            row = row.replace("| yes |", "| met |").replace("| no |", "| not met |")
        lines.append(row if goal else row + " - | - |")
    lines += ["", dt.probe_line(args), ""]
    return "\n".join(lines), ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5, help="paired rounds")
    ap.add_argument("--backend", default="io_uring", choices=("io_uring", "epoll"))
    ap.add_argument("--busy-poll", action="store_true", help="corewire busy-polls (see above)")
    ap.add_argument("--rtt-count", type=int, default=20000,
                    help="round trips per RTT run (the first tenth is warm-up)")
    ap.add_argument("--bulk-bytes", type=size_arg, default=size_arg("256MiB"))
    ap.add_argument("--bulk-msg", type=int, default=16384, help="bulk frame body bytes")
    ap.add_argument("--stream-window", type=size_arg, default=size_arg("1MiB"),
                    help="a second corewire bulk run with this stream_window on both nodes "
                    "(0: none)")
    ap.add_argument("--aes-seconds", type=int, default=3, help="openssl speed -seconds")
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120, help="seconds per measurement at most")
    ap.add_argument("--json", help="write the raw results, ratios and probes here")
    args = ap.parse_args()
    if args.runs < 1 or args.rtt_count < 10 or not 8 <= args.bulk_msg <= 16384 \
            or args.bulk_bytes < args.bulk_msg or args.aes_seconds < 1:
        ap.error("--runs >= 1, --rtt-count >= 10, --bulk-msg 8..16384, --bulk-bytes >= "
                 "--bulk-msg, --aes-seconds >= 1")
    args.link = "loopback"  # paired_rounds' probe label
    args.corewire = os.path.join(args.build, "app/server/corewire")
    args.ctl = os.path.join(args.build, "control/corewirectl")
    args.peer_tcp = os.path.join(args.build, "bench/reference/cw-peer-tcp")
    for p in (args.corewire, args.ctl, args.peer_tcp):
        if not os.access(p, os.X_OK):
            sys.exit(f"peer_bench: {p} missing (build it in --build)")
    commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True,
                            text=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout
    meta = {"command": " ".join(sys.argv), "machine": os.uname().nodename,
            "cores": os.cpu_count(), "kernel": os.uname().release, "commit": commit.strip(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print("\n".join(f"{k}: {v}" for k, v in meta.items()))
    print(f"server core {args.server_core}, client core {args.client_core}; {args.rtt_count} "
          f"round trips per RTT run; bulk {args.bulk_bytes} bytes of {args.bulk_msg} B frames; "
          f"{args.runs} paired rounds, median (min..max) over every run\n")
    results = measure(args)
    text, ratios = table(args, results)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "results": results, "ratios": ratios,
                       "probes": args.probes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
