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
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dpdk_table as dt  # noqa: E402
from cwbench import runner as cw_runner  # noqa: E402

KV_PORT = 11311  # on the memif link's own addresses, or 127.0.0.1 (io_uring)


def reply_size(key_size, value_size):
    """memcached's UDP reply to a get hit: frame header, VALUE line, data, END."""
    return 8 + len(f"VALUE {'k' * key_size} 0 {value_size}\r\n") + value_size + 2 + len("END\r\n")


def servers(args, tmp):
    """(name, factory() -> dt.Proc, generator arguments or None) in run order."""
    sock = os.path.join(tmp, "memif.sock")
    srv_vdev, srv_eal, gen_vdev = dt.link_ends(args, sock)
    eal = args.eal.split() + srv_eal

    def corewire(backend, runtime_extra, kv_extra):
        cfg = os.path.join(tmp, f"kv-{backend}.toml")
        with open(cfg, "w") as f:
            f.write(f'[runtime]\nbackend = "{backend}"\ncores = [{args.server_core}]\n'
                    f'busy_poll = true\n{runtime_extra}\n[log]\nlevel = "info"\n'
                    f'[[service]]\nname = "kv"\nudp = {KV_PORT}\nmemory_limit = "1GiB"\n'
                    f'{kv_extra}\n')
        return dt.Proc(f"corewire {backend}", [args.corewire, "-c", cfg], r"corewire: ready")

    dpdk_cfg = (f'[dpdk]\neal = {json.dumps(eal + ["--vdev=" + srv_vdev])}\n'
                f'port = "net_memif0"\naddresses = ["{dt.SERVER_IP}/24"]\n')
    # Not loopback: kv serves UDP there only with udp_public, and replies to a source that
    # has not proven it receives are capped; the generator's link address is trusted.
    kv_dpdk = f'udp_public = true\nudp_trusted = ["{dt.CLIENT_IP}/24"]'
    dpdk_gen = ["--backend", "dpdk", "--target", f"{dt.SERVER_IP}:{KV_PORT}", "--eal", args.eal,
                "--dpdk-port", gen_vdev, "--dpdk-addr", f"{dt.CLIENT_IP}/24"]
    reflector = [args.reflector, "-l", str(args.server_core), *eal, "--no-shconf",
                 "--no-telemetry", f"--file-prefix=cw-refl-{os.getpid()}",
                 "--vdev=" + srv_vdev, "--", "--ip", dt.SERVER_IP]
    return [
        ("reflector", lambda: dt.Proc("reflector", reflector, r"cw-dpdk-reflector: port"), None),
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
    results = {}  # name -> metric -> [value of round 0, round 1, ...]
    tmp = tempfile.mkdtemp(prefix="cw-kv-dpdk-")
    probe = cw_runner.Context({"server_core": args.server_core, "client_core": args.client_core},
                              args.build, tmp)
    # cw-dpdk-blaster sends --msg-byte UDP payloads each way (dt.blaster reads args.msg).
    blast_args = argparse.Namespace(**vars(args))
    blast_args.msg = reply_size(args.kv_key_size, args.kv_value_size)
    try:
        for r in range(args.runs):
            probe.check_state(f"{args.link} r{r}")
            order = servers(args, tmp)
            for name, make, gen in (order if r % 2 == 0 else list(reversed(order))):
                m = results.setdefault(name, {})
                # A fresh server per generator run (dpdk_table.py: memif and a leaving peer).
                if gen is None:
                    m.setdefault("bare_msg_per_s", []).append(dt.blaster(blast_args, make, tmp))
                else:
                    dpdk = name != "io_uring"
                    t = generator(args, gen, make, tmp, args.flows, args.window, dpdk)
                    pp = generator(args, gen, make, tmp, 1, 1, dpdk)
                    m.setdefault("msg_per_s", []).append(t["throughput_msgs"])
                    m.setdefault("hit_ratio", []).append(t["kv"]["hit_ratio"])
                    m.setdefault("p50_us", []).append(pp["latency"]["p50"])
                    m.setdefault("p99_us", []).append(pp["latency"]["p99"])
                    m.setdefault("lost", []).append(t["lost"] + t["errors"] + pp["lost"]
                                                    + pp["errors"] + t["kv"]["error_replies"]
                                                    + t["kv"]["bad_replies"])
                print(f"  run {r + 1}/{args.runs} {name}: "
                      + ", ".join(f"{k}={v[-1]:.3f}" for k, v in m.items()), file=sys.stderr)
    finally:
        args.probes = probe.probes
        dt.cleanup(tmp)
    return results


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
        v = ratios[key]
        ci = v["ci95"]
        lines.append(f"| {label} | **{dt.num(v['median'])}** | "
                     + (f"{dt.num(ci[0])}..{dt.num(ci[1])}" if ci else "-") + " | "
                     + ", ".join(dt.num(x) for x in v["per_round"]) + " |")
    probes = [p["median_ns"] for p in args.probes if p.get("median_ns", -1) > 0]
    lines += ["", f"VM-state probe before each round: {len(probes)} probes; every run is in "
              "every figure.", ""]
    return "\n".join(lines), ratios


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    dt.add_common_args(ap)
    ap.add_argument("--warmup", type=float, default=2,
                    help="seconds before each measurement (link-up, ARP, the keys' first sets)")
    ap.add_argument("--kv-keys", type=int, default=1000)
    ap.add_argument("--kv-key-size", type=int, default=32)
    ap.add_argument("--kv-value-size", type=int, default=100)
    ap.add_argument("--kv-get-ratio", type=float, default=0.9)
    ap.add_argument("--link", choices=("copy", "zero-copy"), default="copy")
    args = ap.parse_args()
    if args.kv_keys < 1 or args.runs < 1 or not 0 <= args.kv_get_ratio <= 1:
        ap.error("--kv-keys and --runs at least 1, --kv-get-ratio in 0..1")
    dt.find_programs(args, "kv_dpdk_table")
    print(f"command: {' '.join(sys.argv)}\nmachine: {os.uname().nodename}, {os.cpu_count()} "
          f"cores, kernel {os.uname().release}\ndate: "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\nserver core "
          f"{args.server_core}, generator core {args.client_core}, EAL {args.eal}; throughput "
          f"{args.flows} flows x {args.window} outstanding, ping-pong 1 x 1; {args.runs} paired "
          "rounds, median (min..max) over every run\n")
    results = measure(args)
    text, ratios = table(args, results)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"results": results, "ratios": ratios, "probes": args.probes}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
