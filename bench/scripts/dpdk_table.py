#!/usr/bin/env python3
"""The DPDK benchmark table of docs/BENCHMARKS.md (issue 3), measured in one run.

Three servers answer 64-byte sockperf-dialect UDP echo, each pinned to --server-core and
busy-polling; the same generator, corewire-bench pinned to --client-core and busy-polling,
measures each of them:
  corewire-dpdk  corewire, backend dpdk, memif server role; the generator runs on DPDK too
                 (memif client role) over one net_memif link,
  reflector      bench/dpdk_reflector: a bare rx -> swap addresses -> tx loop on the same
                 kind of memif link (the link's ceiling, with the same generator),
  io_uring       corewire, backend io_uring, on 127.0.0.1; the generator on io_uring too
                 (the kernel path).
Each of --runs rounds runs every server once, back to back (the order reversed every other
round), after a cache-line ping-pong probe between the two cores (cw-vm-probe; a slow VM
postpones the round, logged). Every run is kept: the table shows the median and spread
(min..max) of each figure over all runs, and each ratio the issue sets a goal for is the
median of the per-round ratios, with its bootstrap 95% interval and the per-round list.

corewire-bench does more per message than a server (timestamps, histograms, sequence
matching), so with the same stack on both ends it saturates first and both DPDK servers
measure its rate. A second table therefore replaces it with cw-dpdk-blaster (bench/
dpdk_reflector/blaster.cc: a bare closed-loop client, --blast-window outstanding) for the
two DPDK servers: the server's own capacity against the link's.

  throughput   corewire-bench closed loop, --flows x --window outstanding (default 8 x 32:
               at 4 x 16 every side idles between bursts and both DPDK servers measure
               below their capacity), replies/s
  ping-pong    corewire-bench closed loop, 1 flow x 1 outstanding: RTT p50 and p99 (us)

The memif link has two modes (--link). copy (the default): the servers are memif's server
role and the generators its client role; every frame is copied between the shared rings and
mbufs on both sides. zero-copy: the roles swap and the servers' side runs memif's zero-copy
client mode (zero-copy=yes, EAL --single-file-segments): their mbufs are the shared buffers
and the generator's side does every copy. Both servers and every generator run over the same
mode in one table; the generator, as the memif server, starts first there.

Needs root and a DPDK build. EAL memory: --eal (default --no-huge -m 512); with hugepages
reserved (tools/dpdk-setup.sh up) pass --eal "--in-memory -m 512 --no-pci". Every process
is bounded in time and killed at the end, even on error; the memif sockets live in a
temporary directory that is removed.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from cwbench import runner as cw_runner, stats as cw_stats

from procgroup import stop_group, wait_listening

SERVER_IP, CLIENT_IP = "10.94.0.1", "10.94.0.2"
SP_PORT = 11111
START_TIMEOUT = 20.0  # s


class Proc:
    """A server process; ready once `ready_re` appears in its output. Always killed."""

    def __init__(self, name, argv, ready_re):
        self.name, self.argv, self.ready_re = name, argv, re.compile(ready_re)
        self.proc, self.log = None, tempfile.TemporaryFile("w+")

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, text=True)
        deadline = time.time() + START_TIMEOUT
        while time.time() < deadline:
            if self.ready_re.search(self.output()):
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        out = self.output()
        self.__exit__()
        raise RuntimeError(f"{self.name} did not start:\n{out}")

    def output(self):
        self.log.seek(0)
        return self.log.read()

    def __exit__(self, *exc):
        stop_group(self.proc)
        self.final_log = self.output()  # with the exit counters (server_counters)
        self.log.close()


def server_counters(log):
    """The exit log's "stats" lines as {"<line>.<name>": N}: "io.rx_datagrams",
    "<service>.responses", "dpdk.cpu.busy_ns", "dpdk.tcp.segs_in", ..."""
    out = {}
    for m in re.finditer(r"stats (?:service\[\d+\] )?([\w-]+): (.*)", log):
        for k, v in re.findall(r"([\w.]+)=(\d+)", m.group(2)):
            out[f"{m.group(1)}.{k}"] = int(v)
    return out


def memif(role, sock):
    return f"net_memif0,role={role},socket={sock}"


def link_ends(args, sock):
    """(server-side vdev, server-side extra EAL args, generator vdev) for --link."""
    if args.link == "zero-copy":
        return memif("client", sock) + ",zero-copy=yes", ["--single-file-segments"], \
            memif("server", sock)
    return memif("server", sock), [], memif("client", sock)


def gen_first(args, dpdk):
    """Whether the generator starts before the server: on a zero-copy link it owns the memif
    socket (io_uring runs have no link)."""
    return dpdk and args.link == "zero-copy"


def corewire_server(args, tmp, name, backend, runtime_extra, services):
    """A Proc for corewire with this backend, busy-polling on --server-core, the extra
    [runtime] lines (and sections after them), and these [[service]] tables."""
    cfg = os.path.join(tmp, f"{name}.toml")
    with open(cfg, "w") as f:
        f.write(f'[runtime]\nbackend = "{backend}"\ncores = [{args.server_core}]\n'
                f'busy_poll = true\n{runtime_extra}\n[log]\nlevel = "info"\n{services}\n')
    return Proc(f"corewire {name}", [args.corewire, "-c", cfg], r"corewire: ready")


def dpdk_ends(args, tmp, port):
    """For the memif link in tmp: the DPDK server's [dpdk] section, and the generator's
    arguments that run it on DPDK against SERVER_IP:port."""
    srv_vdev, srv_eal, gen_vdev = link_ends(args, os.path.join(tmp, "memif.sock"))
    section = (f'[dpdk]\neal = {json.dumps(args.eal.split() + srv_eal + ["--vdev=" + srv_vdev])}'
               f'\nport = "net_memif0"\naddresses = ["{SERVER_IP}/24"]\n')
    return section, ["--backend", "dpdk", "--target", f"{SERVER_IP}:{port}", "--eal", args.eal,
                     "--dpdk-port", gen_vdev, "--dpdk-addr", f"{CLIENT_IP}/24"]


def reflector_proc(args, tmp):
    """A Proc for cw-dpdk-reflector on --server-core, the server side of the link in tmp."""
    srv_vdev, srv_eal, _ = link_ends(args, os.path.join(tmp, "memif.sock"))
    argv = [args.reflector, "-l", str(args.server_core), *args.eal.split(), *srv_eal,
            "--no-shconf", "--no-telemetry", f"--file-prefix=cw-refl-{os.getpid()}",
            "--vdev=" + srv_vdev, "--", "--ip", SERVER_IP]
    return Proc("reflector", argv, r"cw-dpdk-reflector: port")


def servers(args, tmp):
    """(name, factory() -> Proc, generator arguments) for each system, in run order."""
    dpdk_cfg, dpdk_gen = dpdk_ends(args, tmp, SP_PORT)
    service = f'[[service]]\nname = "sockperf-echo"\nudp = {SP_PORT}'

    def corewire(backend, extra_cfg):
        return corewire_server(args, tmp, backend, backend, extra_cfg, service)

    return [
        ("reflector", lambda: reflector_proc(args, tmp), dpdk_gen),
        ("corewire-dpdk", lambda: corewire("dpdk", dpdk_cfg), dpdk_gen),
        ("io_uring", lambda: corewire("io_uring", 'listen = "127.0.0.1"'),
         ["--backend", "io_uring", "--target", f"127.0.0.1:{SP_PORT}"]),
    ]


def run_generator(args, argv, make, tmp, parse, dpdk):
    """Runs the generator argv against a fresh server (make()), in the order the link needs:
    the memif server's side first (it creates the socket the client connects to). Returns
    parse(completed process, the server's exit log); every process is stopped on the way
    out."""
    timeout = args.duration + args.warmup + EXTRA_WARMUP + 60
    if not gen_first(args, dpdk):
        with make() as srv:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        return parse(p, srv.final_log)
    sock = os.path.join(tmp, "memif.sock")
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, start_new_session=True, text=True)
    try:
        wait_listening(sock, proc, START_TIMEOUT)
        if proc.poll() is not None:  # it failed before listening: report its output
            out, err = proc.communicate()
            return parse(subprocess.CompletedProcess(argv, proc.returncode, out, err), "")
        with make() as srv:
            out, err = proc.communicate(timeout=timeout)
        return parse(subprocess.CompletedProcess(argv, proc.returncode, out, err),
                     srv.final_log)
    finally:
        stop_group(proc)


# When the generator starts first (zero-copy link), its warm-up also covers the server's
# start (EAL, port, link up); corewire-bench's ARP retries then resolve the server.
EXTRA_WARMUP = 3.0  # s


def warmup(args, dpdk):
    return args.warmup + (EXTRA_WARMUP if gen_first(args, dpdk) else 0)


def generator(args, gen, make, tmp, flows, window, dpdk, workload=None):
    """corewire-bench's JSON report of one closed-loop run, with the server's exit counters
    under "server" (server_counters); workload: its protocol arguments (default: sockperf
    over UDP, --msg bytes)."""
    out = os.path.join(tmp, "run.json")
    workload = workload or ["--proto", "sockperf", "--udp", "-m", str(args.msg)]
    argv = [args.bench, *gen, *workload, "--mode", "closed", "--flows", str(flows), "--window", str(window),
            "--duration", str(args.duration), "--warmup", str(warmup(args, dpdk)),
            "--cores", str(args.client_core), "--busy-poll", "--json", out, "-q"]

    def parse(p, server_log):
        if p.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"corewire-bench failed ({p.returncode}): {' '.join(argv)}\n"
                               + p.stdout + p.stderr)
        with open(out) as f:
            rep = json.load(f)
        os.unlink(out)
        rep["server"] = server_counters(server_log)
        return rep

    return run_generator(args, argv, make, tmp, parse, dpdk)


def blaster(args, make, tmp):
    """cw-dpdk-blaster against a fresh server on the memif link in tmp: replies/s."""
    _, _, gen_vdev = link_ends(args, os.path.join(tmp, "memif.sock"))
    argv = [args.blaster, "-l", str(args.client_core), *args.eal.split(), "--no-shconf",
            "--no-telemetry", f"--file-prefix=cw-blast-{os.getpid()}", "--vdev=" + gen_vdev,
            "--", "--src", CLIENT_IP, "--dst", f"{SERVER_IP}:{SP_PORT}",
            "--window", str(args.blast_window), "--duration", str(args.duration),
            "--warmup", str(warmup(args, True)), "--size", str(args.msg)]

    def parse(p, _server_log):
        m = re.search(r"replies_per_s (\d+)", p.stdout)
        if p.returncode != 0 or not m:
            raise RuntimeError(f"cw-dpdk-blaster failed ({p.returncode}): {' '.join(argv)}\n"
                               + p.stdout + p.stderr)
        return float(m.group(1))

    return run_generator(args, argv, make, tmp, parse, True)


def paired_rounds(args, prefix, systems, measure_one):
    """The paired rounds every DPDK table runs: --runs rounds, each after the VM-state probe
    (cw-vm-probe between the two cores; a slow VM postpones the round, logged), each running
    every system of systems(tmp) once, back to back, the order reversed every other round.
    measure_one(entry, tmp) -> {metric: value} measures one entry (a tuple, name first).
    Returns name -> metric -> [value of round 0, round 1, ...], every run kept; sets
    args.probes; tmp (memif socket, configs) is removed at the end, even on error."""
    results = {}
    tmp = tempfile.mkdtemp(prefix=prefix)
    probe = cw_runner.Context({"server_core": args.server_core, "client_core": args.client_core},
                              args.build, tmp)
    try:
        for r in range(args.runs):
            probe.check_state(f"{args.link} r{r}")
            order = systems(tmp)
            for entry in (order if r % 2 == 0 else list(reversed(order))):
                m = results.setdefault(entry[0], {})
                for k, v in measure_one(entry, tmp).items():
                    m.setdefault(k, []).append(v)
                print(f"  run {r + 1}/{args.runs} {entry[0]}: "
                      + ", ".join(f"{k}={v[-1]:.3f}" for k, v in m.items()), file=sys.stderr)
    finally:
        args.probes = probe.probes
        cleanup(tmp)
    return results


def measure(args):
    def one(entry, tmp):
        name, make, gen = entry
        # A fresh server per generator run: memif unmaps the rings under a busy-polling peer
        # when the generator leaves (docs/dpdk.md), so a server that served one generator
        # is not trusted with the next.
        dpdk = name != "io_uring"
        t = generator(args, gen, make, tmp, args.flows, args.window, dpdk)
        pp = generator(args, gen, make, tmp, 1, 1, dpdk)
        m = {"msg_per_s": t["throughput_msgs"], "p50_us": pp["latency"]["p50"],
             "p99_us": pp["latency"]["p99"],
             "lost": t["lost"] + t["errors"] + pp["lost"] + pp["errors"]}
        if dpdk:
            m["bare_msg_per_s"] = blaster(args, make, tmp)
        return m

    return paired_rounds(args, "cw-dpdk-table-", lambda tmp: servers(args, tmp), one)


def cleanup(tmp):
    """Removes tmp (memif socket, configs), the reflector's and blaster's EAL runtime
    directories (empty: --no-shconf, --no-telemetry), and the shared one --in-memory
    processes use, if they left it empty."""
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(f"/var/run/dpdk/cw-refl-{os.getpid()}", ignore_errors=True)
    shutil.rmtree(f"/var/run/dpdk/cw-blast-{os.getpid()}", ignore_errors=True)
    try:
        os.rmdir("/var/run/dpdk/rte")
    except OSError:
        pass


def fmt(vals, digits=2):
    med = statistics.median(vals)
    return f"{med:.{digits}f} ({min(vals):.{digits}f}..{max(vals):.{digits}f})"


def per_round(results, a, b, metric, metric_b=None):
    """a's figure over b's, round by round (None where either measured nothing), summarized."""
    xs, ys = results[a][metric], results[b][metric_b or metric]
    return cw_stats.ratio_summary([x / y if x is not None and y else None
                                   for x, y in zip(xs, ys)])


def table(args, results):
    title = f", memif link {args.link}"
    lines = [f"### UDP echo over net_memif, {args.msg}-byte messages (sockperf dialect){title}", "",
             "| server | throughput (k msg/s) | ping-pong RTT p50 (us) | RTT p99 (us) | lost |",
             "|---|---|---|---|---|"]
    for n in ("reflector", "corewire-dpdk", "io_uring"):
        m = results[n]
        lines.append(f"| {n} | {fmt([v / 1e3 for v in m['msg_per_s']], 1)} | "
                     f"{fmt(m['p50_us'])} | {fmt(m['p99_us'])} | {int(sum(m['lost']))} |")
    D, U, R = "corewire-dpdk", "io_uring", "reflector"
    ratios = {
        "throughput_vs_io_uring": per_round(results, D, U, "msg_per_s"),
        "rtt_p50_vs_io_uring": per_round(results, D, U, "p50_us"),
        "throughput_vs_reflector": per_round(results, D, R, "msg_per_s"),
        "rtt_p50_vs_reflector": per_round(results, D, R, "p50_us"),
        "bare_throughput_vs_reflector": per_round(results, D, R, "bare_msg_per_s"),
        "bare_throughput_vs_io_uring": per_round(results, D, U, "bare_msg_per_s", "msg_per_s"),
        "link_bare_throughput_vs_io_uring": per_round(results, R, U, "bare_msg_per_s",
                                                      "msg_per_s")}

    def row(label, key, goal=None, ok=None):
        return ratio_row(label, ratios[key], goal, ok)

    head = "| ratio | median of per-round ratios | bootstrap 95% | per round |"
    lines += ["", head + " goal | met |", "|---|---|---|---|---|---|",
              row("throughput corewire-dpdk / io_uring", "throughput_vs_io_uring", ">= 20",
                  lambda x: x >= 20),
              row("RTT p50 corewire-dpdk / io_uring", "rtt_p50_vs_io_uring", "<= 0.2",
                  lambda x: x <= 0.2),
              row("throughput corewire-dpdk / reflector", "throughput_vs_reflector", ">= 0.8",
                  lambda x: x >= 0.8),
              row("RTT p50 corewire-dpdk / reflector", "rtt_p50_vs_reflector", "<= 3",
                  lambda x: x <= 3), ""]
    lines += [f"### The same servers measured by cw-dpdk-blaster ({args.blast_window} "
              f"outstanding){title}",
              "", "| server | throughput (k msg/s) |", "|---|---|"]
    for n in ("reflector", "corewire-dpdk"):
        lines.append(f"| {n} | {fmt([v / 1e3 for v in results[n]['bare_msg_per_s']], 1)} |")
    lines += ["", head, "|---|---|---|---|",
              row("throughput corewire-dpdk / reflector, bare client",
                  "bare_throughput_vs_reflector"),
              row("throughput corewire-dpdk (bare client) / io_uring",
                  "bare_throughput_vs_io_uring"),
              row("throughput reflector (bare client) / io_uring: the link's bound on that "
                  "ratio", "link_bare_throughput_vs_io_uring"), ""]
    lines += [probe_line(args), ""]
    return "\n".join(lines), ratios


def probe_line(args):
    """What the VM-state probes before the rounds (paired_rounds) saw."""
    probes = [p["median_ns"] for p in args.probes if p.get("median_ns", -1) > 0]
    slow = sum(1 for p in args.probes if p.get("slow"))
    return (f"VM-state probe before each round: {len(probes)} probes, median "
            f"{num(cw_stats.median(probes))} ns, {slow} slow (each postponed its round). "
            "Every run is in every figure.")


def run_table(args, measure_fn, table_fn):
    """measure_fn(args) -> results, table_fn(args, results) -> (text, ratios): prints the
    table and writes --json {"results", "ratios", "probes"}."""
    results = measure_fn(args)
    text, ratios = table_fn(args, results)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "ratios": ratios, "probes": args.probes}, f, indent=1)


def num(x):
    return "-" if x is None else f"{x:.3g}"


def ratio_row(label, v, goal=None, ok=None):
    """A table row of a per_round() summary: median, bootstrap interval, every round; with a
    goal, the goal and whether the median meets it (ok(median))."""
    ci = v["ci95"]
    cells = [f"**{num(v['median'])}**", f"{num(ci[0])}..{num(ci[1])}" if ci else "-",
             ", ".join(num(x) for x in v["per_round"])]
    if goal:
        cells += [goal, "-" if v["median"] is None else "yes" if ok(v["median"]) else "no"]
    return f"| {label} | " + " | ".join(cells) + " |"


def make_parser(doc, warmup_help, warmup=1.0, links=("copy", "zero-copy"), link_help=None):
    """The command line every DPDK table shares: build, rounds, load, cores, EAL, JSON,
    --warmup and --link (memif mode, dpdk_table.py's docstring); doc is the table's."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=float, default=5, help="measured seconds per run")
    ap.add_argument("--flows", type=int, default=8)
    ap.add_argument("--window", type=int, default=32)
    # 1024: corewire's 64-frame bursts keep more requests in the server than the
    # reflector's 32, and at 512 the closed loop starved it (interleaved sweep, fast
    # state: corewire 11.5 / 12.2 / 12.1 M msg/s at 512 / 1024 / 2048, the reflector
    # 15.5 / 15.7 / 15.5 M); 1024 is the plateau for both (docs/BENCHMARKS.md).
    ap.add_argument("--blast-window", type=int, default=1024,
                    help="cw-dpdk-blaster's requests outstanding")
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--eal", default="--no-huge -m 512 --no-pci",
                    help="EAL arguments for every DPDK process (memory, devices)")
    ap.add_argument("--json", help="write raw results and ratios here")
    ap.add_argument("--warmup", type=float, default=warmup, help=warmup_help)
    ap.add_argument("--link", choices=links, default="copy", help=link_help)
    return ap


def header(args, setup):
    """The lines every DPDK table starts with: command, machine, date, cores and EAL, then
    setup (the table's own link and load), the rounds."""
    return (f"command: {' '.join(sys.argv)}\nmachine: {os.uname().nodename}, {os.cpu_count()} "
            f"cores, kernel {os.uname().release}\ndate: "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\nserver core "
            f"{args.server_core}, generator core {args.client_core}, EAL {args.eal}, {setup}; "
            f"{args.runs} paired rounds, median (min..max) over every run\n")


def find_programs(args, prog):
    """Root, and the four programs in --build (args.corewire, bench, reflector, blaster)."""
    if os.geteuid() != 0:
        sys.exit(f"{prog}: needs root (DPDK EAL, memif)")
    args.corewire = os.path.join(args.build, "app/server/corewire")
    args.bench = os.path.join(args.build, "bench/corewire-bench")
    args.reflector = os.path.join(args.build, "bench/cw-dpdk-reflector")
    args.blaster = os.path.join(args.build, "bench/cw-dpdk-blaster")
    for p in (args.corewire, args.bench, args.reflector, args.blaster):
        if not os.access(p, os.X_OK):
            sys.exit(f"{prog}: {p} missing (a DPDK build in --build is needed)")


def main():
    ap = make_parser(__doc__, "seconds before each measurement (memif link-up and ARP)",
                     links=("copy", "zero-copy", "both"),
                     link_help="memif mode: copy (servers are memif servers) or zero-copy "
                     "(servers are zero-copy memif clients; needs hugepages); both: one "
                     "table each, copy first")
    ap.add_argument("--msg", type=int, default=64)
    args = ap.parse_args()
    find_programs(args, "dpdk_table")
    links = ("copy", "zero-copy") if args.link == "both" else (args.link,)
    print(header(args, f"memif link {', '.join(links)}; throughput {args.flows} flows x "
                       f"{args.window} outstanding, ping-pong 1 x 1"))
    out = {}
    for link in links:
        args.link = link
        results = measure(args)
        text, ratios = table(args, results)
        print(text)
        out[link] = {"results": results, "ratios": ratios, "probes": args.probes}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out[links[0]] if len(links) == 1 else out, f, indent=1)


if __name__ == "__main__":
    main()
