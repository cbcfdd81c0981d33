#!/usr/bin/env python3
"""Issue 20's benchmark table: TCP echo on corewire's own DPDK TCP stack, against TCP echo
on io_uring and against UDP echo on DPDK. The link, EAL, roles, probes and paired rounds are
dpdk_table.py's (its docstring); the generator is corewire-bench on both ends' stack:

  tcp-dpdk      corewire, backend dpdk, sockperf echo on TCP, memif server role; the
                generator on DPDK too (--backend dpdk --tcp: the client role of corewire's
                TCP stack, worker 0), memif client role
  tcp-io_uring  corewire, backend io_uring, sockperf echo on TCP 127.0.0.1; the generator
                on io_uring --tcp (the kernel's TCP both ends)
  udp-dpdk      corewire, backend dpdk, sockperf echo on UDP only (no TCP socket, so no TCP
                engine on the worker), generator --backend dpdk --udp: dpdk_table.py's row

Each server busy-polls on --server-core, each generator on --client-core; a fresh server
per generator run. Per system and round:

  throughput   closed loop, --flows x --window outstanding, --msg bytes, replies/s; the
               generator sends at most --sends-per-tick requests per loop iteration (every
               system alike), so the window circulates as several bursts and server and
               generator work at the same time; with the whole window in one burst they take
               turns, and the figure is 1 / (server + generator time per message)
  ping-pong    closed loop, 1 flow x 1 outstanding: RTT p50 and p99 (us)
  bulk         TCP rows: 1 flow x --bulk-window messages of --bulk-msg bytes in flight;
               goodput = echoed payload bytes/s, each way
  CPU / msg    DPDK rows: the server core's busy time per message it answered, from its
               exit counters: cpu.busy_ns (DpdkWorker: loop iterations that had input, from
               the receiving poll to the next one, so idle polls are not in it; docs/dpdk.md)
               over the service's responses, for the throughput and the ping-pong run. The
               generator's own figure likewise (its cpu.busy_ns over all it sent). Busy % is
               CPU/msg x msg/s: a server below ~90 % had spare time, so the run measured the
               generator ("generator-bound"), not the server.

Goals (issue 20): TCP on DPDK vs io_uring, RTT p50 <= 1/5 and throughput >= 5x at 64 B; TCP's
server CPU per message within 1.5x of UDP's on DPDK. Ratios are medians of per-round
ratios with a bootstrap 95% interval; every run is kept.

  sudo bench/scripts/dpdk_tcp_table.py --build build --runs 5 --duration 5 --json tcp.json
  sudo bench/scripts/dpdk_tcp_table.py --build build --runs 1 --duration 0.5   # check
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_table as dt  # noqa: E402

PORT = 11121  # sockperf echo, TCP or UDP: on the memif link's addresses or 127.0.0.1
SERVICE = "sockperf-echo"
SYSTEMS = ("tcp-dpdk", "tcp-io_uring", "udp-dpdk")
CONNECT_TIMEOUT = 20  # s


def servers(args, tmp):
    """(name, factory() -> dt.Proc, generator arguments, transport) in run order."""
    dpdk_cfg, dpdk_gen = dt.dpdk_ends(args, tmp, PORT)

    def corewire(backend, transport, runtime_extra):
        return dt.corewire_server(args, tmp, f"{backend}-{transport}", backend, runtime_extra,
                                  f'[[service]]\nname = "{SERVICE}"\n{transport} = {PORT}')

    return [
        ("tcp-dpdk", lambda: corewire("dpdk", "tcp", dpdk_cfg), dpdk_gen, "tcp"),
        ("tcp-io_uring", lambda: corewire("io_uring", "tcp", 'listen = "127.0.0.1"'),
         ["--backend", "io_uring", "--target", f"127.0.0.1:{PORT}"], "tcp"),
        ("udp-dpdk", lambda: corewire("dpdk", "udp", dpdk_cfg), dpdk_gen, "udp"),
    ]


def cpu_per_msg(rep):
    """(server ns per answered message, generator ns per sent message) of one run; None
    where the backend has no cpu.busy_ns (io_uring) or nothing was answered."""
    srv = rep["server"]
    busy, answered = srv.get("dpdk.cpu.busy_ns"), srv.get(f"{SERVICE}.responses", 0)
    gen_busy = rep.get("backend_counters", {}).get("cpu.busy_ns")
    gen_sent = rep["sent"] + rep["warmup_sent"]
    return (busy / answered if busy is not None and answered else None,
            gen_busy / gen_sent if gen_busy is not None and gen_sent else None)


def measure(args):
    def one(entry, tmp):
        name, make, gen, transport = entry
        dpdk = name != "tcp-io_uring"

        def run(flows, window, msg, extra=()):
            # A generator that starts first (zero-copy link) connects while the server
            # starts: its SYNs are retried until then.
            return dt.generator(args, gen, make, tmp, flows, window, dpdk, workload=[
                "--proto", "sockperf", f"--{transport}", "-m", str(msg),
                "--connect-timeout", str(CONNECT_TIMEOUT), *extra])

        t = run(args.flows, args.window, args.msg,
                ("--sends-per-tick", str(args.sends_per_tick)))
        pp = run(1, 1, args.msg)
        m = {"msg_per_s": t["throughput_msgs"], "p50_us": pp["latency"]["p50"],
             "p99_us": pp["latency"]["p99"],
             "lost": t["lost"] + t["errors"] + pp["lost"] + pp["errors"]}
        if dpdk:
            m["cpu_ns"], m["gen_cpu_ns"] = cpu_per_msg(t)
            m["cpu_ns_pp"], m["gen_cpu_ns_pp"] = cpu_per_msg(pp)
        if transport == "tcp" and args.bulk_msg:
            b = run(1, args.bulk_window, args.bulk_msg)
            m["bulk_mb_per_s"] = b["throughput_msgs"] * args.bulk_msg / 1e6
            m["lost"] += b["lost"] + b["errors"]
        return m

    return dt.paired_rounds(args, "cw-dpdk-tcp-", lambda tmp: servers(args, tmp), one)


def cell(m, key, scale=1.0, digits=1):
    vals = m.get(key)
    if not vals or any(v is None for v in vals):
        return "-"
    return dt.fmt([v * scale for v in vals], digits)


def busy(m, cpu_key, rate_key="msg_per_s"):
    """Busy share of a core (%) per run: CPU per message x messages per second."""
    if not m.get(cpu_key) or any(v is None for v in m[cpu_key]):
        return "-"
    return dt.fmt([c * r / 1e7 for c, r in zip(m[cpu_key], m[rate_key])], 0)


def table(args, results):
    lines = [f"### TCP echo on DPDK over net_memif, {args.msg}-byte messages (sockperf dialect), "
             f"memif link {args.link}", "",
             "| system | throughput (k msg/s) | RTT p50 (us) | RTT p99 (us) | server CPU / msg "
             "(ns), throughput run | server core busy (%) | generator CPU / msg (ns) | "
             "generator core busy (%) | server CPU / msg (ns), ping-pong | "
             f"bulk goodput (MB/s each way, {args.bulk_msg} B x {args.bulk_window}) | lost |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in SYSTEMS:
        m = results[n]
        lines.append(f"| {n} | {cell(m, 'msg_per_s', 1e-3)} | {cell(m, 'p50_us', 1, 2)} | "
                     f"{cell(m, 'p99_us', 1, 2)} | {cell(m, 'cpu_ns', 1, 0)} | "
                     f"{busy(m, 'cpu_ns')} | {cell(m, 'gen_cpu_ns', 1, 0)} | "
                     f"{busy(m, 'gen_cpu_ns')} | {cell(m, 'cpu_ns_pp', 1, 0)} | "
                     f"{cell(m, 'bulk_mb_per_s')} | {int(sum(m['lost']))} |")
    T, K, U = "tcp-dpdk", "tcp-io_uring", "udp-dpdk"
    ratios = {"throughput_vs_io_uring": dt.per_round(results, T, K, "msg_per_s"),
              "rtt_p50_vs_io_uring": dt.per_round(results, T, K, "p50_us"),
              "cpu_per_msg_vs_udp": dt.per_round(results, T, U, "cpu_ns"),
              "cpu_per_msg_pp_vs_udp": dt.per_round(results, T, U, "cpu_ns_pp"),
              "throughput_vs_udp": dt.per_round(results, T, U, "msg_per_s"),
              "rtt_p50_vs_udp": dt.per_round(results, T, U, "p50_us")}
    if args.bulk_msg:
        ratios["bulk_vs_io_uring"] = dt.per_round(results, T, K, "bulk_mb_per_s")
    rows = [("throughput tcp-dpdk / tcp-io_uring", "throughput_vs_io_uring", ">= 5",
             lambda x: x >= 5),
            ("RTT p50 tcp-dpdk / tcp-io_uring", "rtt_p50_vs_io_uring", "<= 0.2",
             lambda x: x <= 0.2),
            ("server CPU / msg tcp-dpdk / udp-dpdk, throughput run", "cpu_per_msg_vs_udp",
             "<= 1.5", lambda x: x <= 1.5),
            ("server CPU / msg tcp-dpdk / udp-dpdk, ping-pong", "cpu_per_msg_pp_vs_udp"),
            ("throughput tcp-dpdk / udp-dpdk", "throughput_vs_udp"),
            ("RTT p50 tcp-dpdk / udp-dpdk", "rtt_p50_vs_udp")]
    if args.bulk_msg:
        rows.append(("bulk goodput tcp-dpdk / tcp-io_uring", "bulk_vs_io_uring"))
    lines += ["", "| ratio | median of per-round ratios | bootstrap 95% | per round | goal | met |",
              "|---|---|---|---|---|---|"]
    for label, key, *goal in rows:
        row = dt.ratio_row(label, ratios[key], *goal)
        lines.append(row if goal else row + " - | - |")
    lines += ["", dt.probe_line(args), ""]
    return "\n".join(lines), ratios


def main():
    ap = dt.make_parser(__doc__, "seconds before each measurement (memif link-up, ARP, "
                        "connects)")
    ap.add_argument("--msg", type=int, default=64)
    ap.add_argument("--bulk-msg", type=int, default=16384,
                    help="bulk run's message bytes (0: no bulk run)")
    ap.add_argument("--bulk-window", type=int, default=8,
                    help="bulk run's messages in flight on its one connection")
    ap.add_argument("--sends-per-tick", type=int, default=64,
                    help="throughput run: the generator's requests per loop iteration at most "
                    "(256: the whole 8 x 32 window in one burst)")
    args = ap.parse_args()
    if (args.runs < 1 or args.sends_per_tick < 1 or args.msg < 16
            or not (args.bulk_msg == 0 or 16 <= args.bulk_msg <= 65507)):
        ap.error("--runs and --sends-per-tick at least 1; --msg and --bulk-msg 16 .. 65507 "
                 "bytes (--bulk-msg 0: off)")
    dt.find_programs(args, "dpdk_tcp_table")
    print(dt.header(args, f"memif link {args.link}; throughput {args.flows} flows x "
                          f"{args.window} outstanding, at most {args.sends_per_tick} sent per "
                          f"generator loop, ping-pong 1 x 1, bulk 1 x "
                          f"{args.bulk_window} of {args.bulk_msg} B"))
    dt.run_table(args, measure, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
