#!/usr/bin/env python3
"""The harness's key-value tables against corewire's kv service and Debian's memcached:
one table of each kv spec (specs/kv.json busy-poll, kv-default.json, kv-headroom.json, and
a curve of kv-curves.json at 2 of its fractions after 1 peak run) with the key space cut
to 2000 (one round, 0.3 s runs), then kv_memory.py storing 2000 items in each of its
servers. Checks every run is kept without error, every get hits (the preload reached each
server), the core busy shares and the curve's CPU per million requests are there, and the
memory figures are positive; never timing. Also: a preload that cannot connect makes
corewire-bench exit 1 and stops a harness table (exit 2, no raw.json).
Skips (exit 77) when memcached is not installed.

usage: kv_harness_smoke.py (CW_BUILD_ROOT set to the build directory)
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
sys.path.insert(0, os.path.join(SRC, "bench/scripts"))
from cwbench import cli, render, runner  # noqa: E402

BUILD = os.environ.get("CW_BUILD_ROOT", os.path.join(SRC, "build"))
BENCH = os.path.join(BUILD, "bench/corewire-bench")
SPECS = os.path.join(SRC, "bench/scripts/cwbench/specs")
CWBENCH = [sys.executable, os.path.join(SRC, "bench/scripts/cwbench.py"), "run"]
SHORT = ["--build", BUILD, "--rounds", "1", "--duration", "0.3", "--warmup", "0.1"]
KEYS = "2000"
SKIP = 77
failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def small_keys(args):
    """The spec's corewire-bench arguments with --kv-keys cut to KEYS."""
    out = list(args)
    i = out.index("--kv-keys")
    out[i + 1] = KEYS
    return out


def preload_refused():
    """Nothing listens on the port: the preload stores nothing and must fail loudly."""
    port = runner.free_port()
    for extra in (["--kv-preload-only"], ["--kv-preload", "--count", "10"]):
        argv = [BENCH, "--proto", "memcached", "--target", f"127.0.0.1:{port}", "--kv-keys",
                "100", "--connect-timeout", "1", "--max-time", "10", "-q"] + extra
        r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        check(r.returncode == 1 and "preload failed" in r.stderr,
              f"{extra[0]} against a closed port: exit 1 ({r.returncode}), "
              f"'preload failed' ({r.stderr.strip()[-200:]})")


def harness_stops(out):
    """A server that takes UDP but no TCP on the port: the harness's TCP preload is refused
    and the table stops: exit 2, no raw.json, the next table not run."""
    echo = os.path.join(BUILD, "bench/reference/cw-kernel-echo")
    base = {"kind": "pair", "transport": "udp", "proto": "memcached", "msg": 100, "flows": 1,
            "probe": False,
            "servers": [{"name": "udp-only", "type": "command", "transports": ["udp"],
                         "argv": [echo, "--udp", "127.0.0.1:{port}", "--mode", "raw"]}],
            "client": {"type": "corewire-bench", "window": 4, "args": ["--kv-keys", "100"],
                       "preload": ["--kv-keys", "100"]}}
    spec = os.path.join(out, "stop.json")
    with open(spec, "w") as f:
        json.dump([dict(base, name="kv-stop-a"), dict(base, name="kv-stop-b")], f)
    r = subprocess.run(CWBENCH + [spec, "--out", out] + SHORT, capture_output=True, text=True,
                       timeout=120)
    check(r.returncode == 2 and "table kv-stop-a stopped" in r.stderr
          and "preload failed" in r.stderr,
          f"harness: a failed preload stops the table (exit {r.returncode}) {r.stderr[-300:]}")
    check(not os.path.exists(os.path.join(out, "kv-stop-a", "raw.json"))
          and not os.path.exists(os.path.join(out, "kv-stop-b")),
          "harness: no raw.json for the stopped table, the next one not run")


def tables(out):
    want = {"kv.json": "kv-90-10-uniform-tcp-100b",
            "kv-default.json": "kv-default-90-10-uniform-udp-100b",
            "kv-headroom.json": "kv-headroom-90-10-zipf-tcp-100b",
            "kv-curves.json": "kv-curve-90-10-uniform-udp-100b"}
    picked = []
    for fname, name in want.items():
        found = [t for t in cli.load_specs([os.path.join(SPECS, fname)]) if t["name"] == name]
        check(len(found) == 1, f"{fname}: table {name}")
        for t in found:
            c = t["client"]
            c["args"], c["preload"] = small_keys(c["args"]), small_keys(c["preload"])
            if t["kind"] == "curve":
                t.update(fractions=[0.5, 1.0], peak_runs=1)
            picked.append(t)
    spec = os.path.join(out, "spec.json")
    with open(spec, "w") as f:
        json.dump(picked, f)
    r = subprocess.run(CWBENCH + [spec, "--out", out] + SHORT, capture_output=True, text=True,
                       timeout=400)
    check(r.returncode == 0, f"harness: exit 0 ({r.returncode}) {r.stderr[-600:]}")
    for t in picked:
        name = t["name"]
        path = os.path.join(out, name, "raw.json")
        if not os.path.exists(path):
            check(False, f"{name}: {path}")
            continue
        res = json.load(open(path))
        runs = res["runs"] + res.get("peak", {}).get("runs", [])
        bad = [x.get("error", "")[:200] for x in runs if "error" in x]
        check(runs and not bad, f"{name}: {len(runs)} runs, none failed {bad}")
        names = {s["name"] for s in t["servers"]}
        check({x["server"] for x in res["runs"]} == names, f"{name}: {sorted(names)} ran")
        ok = [x for x in runs if "error" not in x]
        check(all(x["msg_per_s"] > 0 and x["kv"]["gets"] > 0 and x["kv"]["misses"] == 0
                  and x["kv"]["hit_ratio"] == 1.0 for x in ok),
              f"{name}: positive rates, every get hits (the preload reached each server)")
        check(all(0 < x["server_core_busy"] <= 1.5 and 0 < x["client_core_busy"] <= 1.5
                  for x in ok), f"{name}: both cores' busy shares recorded")
        md = open(os.path.join(out, name, "table.md")).read()
        if t["kind"] == "curve":
            pk = res.get("peak", {})
            check(pk.get("server") == "memcached" and pk.get("msg_per_s", 0) > 0
                  and len(pk.get("loads", [])) == 2, f"{name}: memcached's peak and 2 loads")
            check(("both below saturation" in md) == ("machine CPU s/M" in md),
                  f"{name}: CPU per million requests beside the equal-load ratios")
        else:
            check("client core busy" in md and "server core busy" in md,
                  f"{name}: busy columns in table.md")


def render_equal_load():
    """The curve table's equal-load rows: each server's whole-machine CPU s per M requests
    (ns per request / 1000) beside the ratios; saturated steps left out."""
    pts = {"corewire": [{"offered": 1000, "saturated": False, "p99_us": 10,
                         "machine_ns_per_msg": 2000, "server_ns_per_msg": 500},
                        {"offered": 2000, "saturated": False, "p99_us": 12,
                         "machine_ns_per_msg": 1500, "server_ns_per_msg": 400}],
           "memcached": [{"offered": 1000, "saturated": False, "p99_us": 20,
                          "machine_ns_per_msg": 8000, "server_ns_per_msg": 1000},
                         {"offered": 2000, "saturated": True, "p99_us": 900,
                          "machine_ns_per_msg": 7000, "server_ns_per_msg": 900}]}
    res = {"spec": {"name": "t", "kind": "curve", "proto": "memcached",
                    "client": {"type": "corewire-bench"}},
           "machine": {"host": "h", "cpus": 2, "cpu_model": "m", "mem_mib": 1, "kernel": "k",
                       "date": "d", "commit": "c" * 12},
           "finished": "f", "command": "c", "runs": [], "probes": [], "postponed": [],
           "summary": {"servers": ["corewire", "memcached"], "points": pts}}
    md = "\n".join(render.curve_table(res))
    check("| 1 | - | 0.5 | - | 0.25 | 2 | 8 | 0.5 |" in md and "\n| 2 |" not in md,
          "render: CPU s per M requests (2 and 8) and ratios at the one common unsaturated load")


def memory():
    argv = [sys.executable, os.path.join(SRC, "bench/scripts/kv_memory.py"), "--build", BUILD,
            "--items", KEYS, "--rounds", "1", "--json"]
    with tempfile.NamedTemporaryFile(suffix=".json") as j:
        r = subprocess.run(argv + [j.name], capture_output=True, text=True, timeout=240)
        check(r.returncode == 0, f"kv_memory: exit 0 ({r.returncode}) {r.stderr[-600:]}")
        check("| memcached-default |" in r.stdout, "kv_memory: the markdown table")
        try:
            res = json.load(open(j.name))
        except ValueError:
            return
    for s in ("corewire", "corewire-default", "memcached", "memcached-default"):
        runs = [x for x in res["runs"] if x["server"] == s]
        check(len(runs) == 1 and runs[0]["items"] == int(KEYS)
              and runs[0]["rss_after_kib"] >= runs[0]["rss_before_kib"] > 0
              and runs[0]["stats_bytes_per_item"] > 100,
              f"kv_memory {s}: {KEYS} items held, RSS and own-stats figures "
              f"({runs[0] if runs else None})")


def main():
    if not shutil.which("memcached"):
        print("SKIP: memcached is not installed (tools/install-deps.sh installs it)")
        return SKIP
    if not os.path.exists(BENCH):
        print(f"no {BENCH}")
        return 1
    render_equal_load()
    preload_refused()
    out = tempfile.mkdtemp(prefix="cw-kv-harness-smoke-")
    try:
        harness_stops(out)
        tables(out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    memory()
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print("kv harness smoke: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
