#!/usr/bin/env python3
"""Issue 15's DPDK key-value row: corewire's kv service over memcached UDP on DPDK (net_memif),
against the same service on io_uring over 127.0.0.1 and against the bare reflector as the
link's ceiling. The link, EAL, roles, probes and rounds are dpdk_table.py's (its docstring).

  corewire-dpdk  corewire, backend dpdk, kv on UDP (udp_public, the generator's /24 in
                 udp_trusted), memif server role; the generator (corewire-bench --backend
                 dpdk --proto memcached --udp) on the link's client role
  io_uring       corewire, backend io_uring, kv on UDP 127.0.0.1; the generator on io_uring
  reflector      cw-dpdk-reflector, measured by cw-dpdk-blaster (it cannot answer memcached)
                 with requests of a get hit's reply size in both directions: the frames/s
                 the link carries at that size, a bound on any server's rate there

Each server runs busy-polling on --server-core, each generator on --client-core. Workload:
--kv-keys keys (default 1000) of 32 bytes, --kv-value-size values, --kv-get-ratio gets,
uniform, text protocol. No TCP preload reaches a DPDK server, and each generator run gets a
fresh server, so the keys are set by the run's own sets during --warmup (default 2 s; at
10 % sets, 1000 keys are all set within the first ~100 k requests, 10 000 keys within ~1 M,
more than a loaded machine warms in 1 s); the measured hit ratio is in the table, and a
server whose ratio is below the other's answered cheaper misses. Throughput: closed loop, --flows x
--window; RTT: 1 flow, window 1. Every run is kept; ratios are medians of per-round ratios.

  sudo bench/scripts/kv_dpdk_table.py --build build --runs 5 --duration 5 --json kv-dpdk.json
  sudo bench/scripts/kv_dpdk_table.py --build build --runs 1 --duration 1    # check, ~1 min
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_table as dt  # noqa: E402

KV_PORT = 11311  # on the memif link's own addresses, or 127.0.0.1 (io_uring)


def reply_size(key_size, value_size):
    """memcached's UDP reply to a get hit: frame header, VALUE line, data, END."""
    return 8 + len(f"VALUE {'k' * key_size} 0 {value_size}\r\n") + value_size + 2 + len("END\r\n")


def servers(args, tmp):
    """(name, factory() -> dt.Proc, generator arguments or None) in run order."""
    dpdk_cfg, dpdk_gen = dt.dpdk_ends(args, tmp, KV_PORT)

    def corewire(backend, runtime_extra, kv_extra):
        return dt.corewire_server(args, tmp, f"kv-{backend}", backend, runtime_extra,
                                  f'[[service]]\nname = "kv"\nudp = {KV_PORT}\n'
                                  f'memory_limit = "1GiB"\n{kv_extra}')

    # Not loopback: kv serves UDP there only with udp_public, and replies to a source that
    # has not proven it receives are capped; the generator's link address is trusted.
    kv_dpdk = f'udp_public = true\nudp_trusted = ["{dt.CLIENT_IP}/24"]'
    return [
        ("reflector", lambda: dt.reflector_proc(args, tmp), None),
        ("corewire-dpdk", lambda: corewire("dpdk", dpdk_cfg, kv_dpdk), dpdk_gen),
        ("io_uring", lambda: corewire("io_uring", 'listen = "127.0.0.1"', ""),
         ["--backend", "io_uring", "--target", f"127.0.0.1:{KV_PORT}"]),
    ]


def generator(args, gen, make, tmp, flows, window, dpdk):
    return dt.generator(args, gen, make, tmp, flows, window, dpdk, workload=[
        "--proto", "memcached", "--udp", "--kv-keys", str(args.kv_keys), "--kv-key-size",
        str(args.kv_key_size), "--kv-value-size", str(args.kv_value_size), "--kv-get-ratio",
        str(args.kv_get_ratio)])


def measure(args):
    # cw-dpdk-blaster sends --msg-byte UDP payloads each way (dt.blaster reads args.msg).
    blast_args = argparse.Namespace(**vars(args))
    blast_args.msg = reply_size(args.kv_key_size, args.kv_value_size)

    def one(entry, tmp):
        name, make, gen = entry
        # A fresh server per generator run (dpdk_table.py: memif and a leaving peer).
        if gen is None:
            return {"bare_msg_per_s": dt.blaster(blast_args, make, tmp)}
        dpdk = name != "io_uring"
        t = generator(args, gen, make, tmp, args.flows, args.window, dpdk)
        pp = generator(args, gen, make, tmp, 1, 1, dpdk)
        return {"msg_per_s": t["throughput_msgs"], "hit_ratio": t["kv"]["hit_ratio"],
                "p50_us": pp["latency"]["p50"], "p99_us": pp["latency"]["p99"],
                "lost": t["lost"] + t["errors"] + pp["lost"] + pp["errors"]
                + t["kv"]["error_replies"] + t["kv"]["bad_replies"]}

    return dt.paired_rounds(args, "cw-kv-dpdk-", lambda tmp: servers(args, tmp), one)


def table(args, results):
    rs = reply_size(args.kv_key_size, args.kv_value_size)
    lines = [f"### memcached UDP over net_memif, {args.kv_get_ratio:g} gets, {args.kv_keys} keys "
             f"of {args.kv_key_size} B, {args.kv_value_size}-byte values, memif link {args.link}",
             "", "| server | throughput (k req/s) | get hit ratio | ping-pong RTT p50 (us) | "
             "RTT p99 (us) | lost + errors |", "|---|---|---|---|---|---|"]
    for n in ("corewire-dpdk", "io_uring"):
        m = results[n]
        lines.append(f"| {n} | {dt.fmt([v / 1e3 for v in m['msg_per_s']], 1)} | "
                     f"{dt.fmt(m['hit_ratio'], 3)} | {dt.fmt(m['p50_us'])} | "
                     f"{dt.fmt(m['p99_us'])} | {int(sum(m['lost']))} |")
    lines.append(f"| reflector (cw-dpdk-blaster, {rs}-byte UDP payloads both ways) | "
                 f"{dt.fmt([v / 1e3 for v in results['reflector']['bare_msg_per_s']], 1)} | - | - "
                 "| - | - |")
    D, U, R = "corewire-dpdk", "io_uring", "reflector"
    ratios = {"throughput_vs_io_uring": dt.per_round(results, D, U, "msg_per_s"),
              "rtt_p50_vs_io_uring": dt.per_round(results, D, U, "p50_us"),
              "throughput_vs_link": dt.per_round(results, D, R, "msg_per_s", "bare_msg_per_s")}
    lines += ["", "| ratio | median of per-round ratios | bootstrap 95% | per round |",
              "|---|---|---|---|"]
    for label, key in (("throughput corewire-dpdk / io_uring", "throughput_vs_io_uring"),
                       ("RTT p50 corewire-dpdk / io_uring", "rtt_p50_vs_io_uring"),
                       ("throughput corewire-dpdk / the link (reflector, bare client)",
                        "throughput_vs_link")):
        lines.append(dt.ratio_row(label, ratios[key]))
    lines += ["", dt.probe_line(args), ""]
    return "\n".join(lines), ratios


def main():
    ap = dt.make_parser(__doc__, "seconds before each measurement (link-up, ARP, the keys' "
                        "first sets)", warmup=2)
    ap.add_argument("--kv-keys", type=int, default=1000)
    ap.add_argument("--kv-key-size", type=int, default=32)
    ap.add_argument("--kv-value-size", type=int, default=100)
    ap.add_argument("--kv-get-ratio", type=float, default=0.9)
    args = ap.parse_args()
    if args.kv_keys < 1 or args.runs < 1 or not 0 <= args.kv_get_ratio <= 1:
        ap.error("--kv-keys and --runs at least 1, --kv-get-ratio in 0..1")
    dt.find_programs(args, "kv_dpdk_table")
    print(dt.header(args, f"memif link {args.link}; throughput {args.flows} flows x "
                          f"{args.window} outstanding, ping-pong 1 x 1"))
    dt.run_table(args, measure, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
