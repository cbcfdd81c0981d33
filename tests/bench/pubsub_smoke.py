#!/usr/bin/env python3
"""corewire-bench --proto nats against corewire's pubsub service and against nats-server
(Debian's 2.9.10; that half skipped when it is not installed), each started on a free
loopback port: 1 -> 2 closed loop, 2 -> 3 in a queue group, 1 -> 1 open loop. Then the
harness runs one pair table and one curve (2 of its fractions) of specs/pubsub.json (one
round, 0.3 s runs), and pubsub_memory.py measures a few connections and subscriptions.
Checks figures are present and positive, nothing is lost where nothing may be, and no
error; never timing.
Bounded: counts of a few thousand, 0.3 s timed runs.

usage: pubsub_smoke.py (CW_BUILD_ROOT set to the build directory)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
sys.path.insert(0, os.path.join(SRC, "bench/scripts"))
from cwbench import cli, runner, servers  # noqa: E402

BUILD = os.environ.get("CW_BUILD_ROOT", os.path.join(SRC, "build"))
BENCH = os.path.join(BUILD, "bench/corewire-bench")
SERVERS = [{"name": "corewire", "type": "corewire", "backend": "epoll", "service": "pubsub"},
           {"name": "nats-server", "type": "nats-server"}]
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def bench(port, args, label):
    with tempfile.NamedTemporaryFile(suffix=".json") as j:
        argv = [BENCH, "--proto", "nats", "--target", f"127.0.0.1:{port}", "--cores", "0",
                "-q", "--json", j.name, "--max-time", "30"] + args
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0, f"{label}: exit 0 ({r.returncode}) {r.stderr[-300:]}")
        try:
            return json.load(open(j.name))
        except ValueError:
            check(False, f"{label}: a JSON report\n{r.stdout}{r.stderr}")
            return None


def generator(spec):
    port = runner.free_port()
    name = spec["name"]
    with servers.Server(spec, BUILD, "tcp", "nats", port, 1):
        # 1 -> 2, closed loop: every one of 2000 PUBs reaches both subscribers.
        rep = bench(port, ["--nats-pubs", "1", "--nats-subs", "2", "-m", "16", "--window", "32",
                           "--count", "2000"], f"{name} 1->2")
        if rep:
            n = rep["nats"]
            check(rep["sent"] == 2000 and n["published"] == 2000, f"{name} 1->2: 2000 published")
            check(n["expected"] == 4000 and rep["received"] == 4000,
                  f"{name} 1->2: 4000 delivered ({rep['received']})")
            check(rep["lost"] == 0 and rep["errors"] == 0 and n["out_of_order"] == 0,
                  f"{name} 1->2: no loss, error or reordering")
            check(rep["throughput_msgs"] > 0 and n["published_per_s"] > 0,
                  f"{name} 1->2: positive rates")
            lat = rep["latency"]
            check(lat["count"] == 4000 and 0 < lat["p50"] <= lat["p99"] <= lat["max"],
                  f"{name} 1->2: latency percentiles")
            check(rep["conns"]["failed"] == 0 and rep["conns"]["closed"] == 0,
                  f"{name} 1->2: connections held")
        # 2 -> 3 in a queue group, 1 KiB: each message once.
        rep = bench(port, ["--nats-pubs", "2", "--nats-subs", "3", "--nats-queue", "q", "-m",
                           "1024", "--window", "8", "--count", "1000"], f"{name} queue")
        if rep:
            check(rep["nats"]["expected"] == 1000 and rep["received"] == 1000,
                  f"{name} queue: 1000 delivered once each ({rep['received']})")
            check(rep["errors"] == 0 and rep["nats"]["out_of_order"] == 0,
                  f"{name} queue: no error or reordering")
        # 1 MiB payloads (nats-server's default max_payload), each parsed as it streams in;
        # a window of 2 stays below corewire's max_pending (3 MiB), past which a subscriber
        # is closed as a slow consumer.
        rep = bench(port, ["--nats-pubs", "1", "--nats-subs", "2", "-m", "1048576", "--window",
                           "2", "--count", "20"], f"{name} 1 MiB")
        if rep:
            check(rep["received"] == 40 and rep["errors"] == 0 and rep["conns"]["closed"] == 0,
                  f"{name} 1 MiB: 40 delivered ({rep['received']}), no error, none closed")
        # 1 -> 1 open loop, Poisson, two threads (publisher and subscriber on two workers).
        rep = bench(port, ["--nats-pubs", "1", "--nats-subs", "1", "-m", "64", "--mode", "open",
                           "--rate", "5000", "--arrival", "poisson", "--duration", "0.3",
                           "--warmup", "0.1", "--threads", "2", "--cores", "0,1"],
                    f"{name} open")
        if rep:
            check(rep["sent"] > 0 and rep["received"] > 0 and rep["throughput_msgs"] > 0,
                  f"{name} open: published {rep['sent']}, delivered {rep['received']}")
            check(rep["loss_ratio"] < 0.5 and rep["latency"]["p99"] > 0,
                  f"{name} open: loss {rep['loss_ratio']}, p99 {rep['latency']['p99']}")


def harness(out):
    # Two tables of specs/pubsub.json as they are, but for the curve's length: 2 fractions
    # and 1 peak run instead of 7 and 3 (runs are 0.3 s).
    tables = [t for t in cli.load_specs([os.path.join(SRC, "bench/scripts/cwbench/specs/pubsub.json")])
              if t["name"] in ("pubsub-1-10-16b", "pubsub-curve-1-1-16b")]
    check(len(tables) == 2, "harness: both tables in specs/pubsub.json")
    for t in tables:
        if "fractions" in t:
            t.update(fractions=[0.5, 1.0], peak_runs=1)
    spec = os.path.join(out, "spec.json")
    with open(spec, "w") as f:
        json.dump(tables, f)
    argv = [sys.executable, os.path.join(SRC, "bench/scripts/cwbench.py"), "run", spec, "--out",
            out, "--build", BUILD, "--rounds", "1", "--duration", "0.3", "--warmup", "0.1"]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    check(r.returncode == 0, f"harness: exit 0 ({r.returncode}) {r.stderr[-600:]}")
    for t in ("pubsub-1-10-16b", "pubsub-curve-1-1-16b"):
        path = os.path.join(out, t, "raw.json")
        if not os.path.exists(path):
            check(False, f"harness: {path}")
            continue
        res = json.load(open(path))
        runs = [x for x in res["runs"] if "error" not in x]
        check(len(runs) == len(res["runs"]) and runs,
              f"harness {t}: {len(runs)} runs, none failed "
              f"({[x.get('error', '')[:200] for x in res['runs'] if 'error' in x]})")
        check({x["server"] for x in runs} == {"corewire", "nats-server"},
              f"harness {t}: both servers ran")
        check(all(x["msg_per_s"] > 0 and x["p99_us"] > 0 and x["nats"]["delivered"] > 0
                  for x in runs), f"harness {t}: positive figures in every run")
        check(os.path.exists(os.path.join(out, t, "table.md")), f"harness {t}: table.md")
        if "curve" in t:
            pk = res.get("peak", {})
            check(pk.get("msg_per_s", 0) > 0 and len(pk.get("loads", [])) == 2
                  and pk["loads"][1] == int(pk["msg_per_s"]),
                  f"harness {t}: peak {pk.get('msg_per_s')} and 2 loads from its fractions")


def memory():
    argv = [sys.executable, os.path.join(SRC, "bench/scripts/pubsub_memory.py"), "--build",
            BUILD, "--conns", "20", "--subs", "200", "--rounds", "1", "--json"]
    with tempfile.NamedTemporaryFile(suffix=".json") as j:
        r = subprocess.run(argv + [j.name], capture_output=True, text=True, timeout=120)
        check(r.returncode == 0, f"memory: exit 0 ({r.returncode}) {r.stderr[-600:]}")
        try:
            res = json.load(open(j.name))
        except ValueError:
            return
    for s in ("corewire", "nats-server"):
        runs = [x for x in res["runs"] if x["server"] == s]
        check(len(runs) == 2 and all(x["rss_start_kib"] > 0 and x["rss_after_kib"] > 0
                                     for x in runs), f"memory {s}: RSS read for both figures")
        check(res["summary"][s]["bytes_per_conn"] is not None
              and res["summary"][s]["bytes_per_sub"] is not None, f"memory {s}: both figures")


def main():
    if not os.path.exists(BENCH):
        print(f"no {BENCH}")
        return 1
    have_nats = shutil.which("nats-server") is not None
    for spec in SERVERS:
        if spec["type"] == "nats-server" and not have_nats:
            print("skip nats-server (not installed)")
            continue
        generator(spec)
    if have_nats:
        out = tempfile.mkdtemp(prefix="cw-pubsub-smoke-")
        try:
            harness(out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        memory()
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
