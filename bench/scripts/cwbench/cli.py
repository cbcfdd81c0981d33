"""Command line: run spec files into table directories, re-render them from their JSON,
and write the index that docs/BENCHMARKS.md links to.

  cwbench run SPEC.json [SPEC.json ...] [--only NAME] [--out docs/bench] [--build build]
              [--rounds N] [--duration S] [--warmup S] [--loads L1,L2,..]
  cwbench render DIR [DIR ...]        table.md + PNGs again from DIR/raw.json
  cwbench index [--out docs/bench]    docs/bench/README.md: every table found under it

A spec file holds one table ({"name": ..., "kind": "pair" | "curve", ...}) or a list of
them; "expand": {"transport": [...], "msg": [...], "flows": [...]} makes one table per
combination, named <name>-<transport>-<msg>b-<flows>f. Keys: see specs/*.json and
bench/README.md.
"""
import argparse
import itertools
import json
import os
import shlex
import sys

from . import clients, render, runner

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "../../.."))


def load_specs(paths):
    out = []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        for spec in data if isinstance(data, list) else [data]:
            out += expand(spec)
    return out


def expand(spec):
    ex = spec.pop("expand", None)
    if not ex:
        return [spec]
    keys = list(ex)
    out = []
    for combo in itertools.product(*(ex[k] for k in keys)):
        s = dict(spec, **dict(zip(keys, combo)))
        s["name"] = spec["name"] + "-" + "-".join(
            f"{v}{'b' if k == 'msg' else 'f' if k == 'flows' else ''}" for k, v in zip(keys, combo))
        s["title"] = (spec.get("title", spec["name"]) + ": "
                      + ", ".join(f"{k} {v}" for k, v in zip(keys, combo)))
        out.append(s)
    return out


def cmd_run(a):
    specs = load_specs(a.spec)
    if a.only:
        specs = [s for s in specs if s["name"] in a.only.split(",")]
    command = "bench/scripts/cwbench.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    for s in specs:
        for k in ("rounds", "duration", "warmup"):
            if getattr(a, k) is not None:
                s[k] = getattr(a, k)
        if a.loads:
            s["loads"] = [int(x) for x in a.loads.split(",")]
        out = os.path.join(a.out, s["name"])
        try:
            res = runner.run_table(s, a.build, out, ROOT, command)
        except clients.SetupError as e:
            # No raw.json for this table, and the tables after it are not run either: they
            # would most likely fail the same way.
            print(f"cwbench: table {s['name']} stopped: {e}", file=sys.stderr)
            return 2
        with open(os.path.join(out, "raw.json"), "w") as fh:
            json.dump(res, fh, indent=1)
        print(render.render(res, out))
    return 0


def cmd_render(a):
    for d in a.dir:
        with open(os.path.join(d, "raw.json")) as fh:
            render.render(json.load(fh), d)
    return 0


def cmd_index(a):
    tables = sorted(d for d in os.listdir(a.out) if os.path.exists(os.path.join(a.out, d, "raw.json")))
    lines = ["# Benchmark tables (generated)", "",
             "Written by `bench/scripts/cwbench.py index` from each table's `raw.json`; every "
             "table below was rendered by `cwbench.py render` from that JSON alone. How they "
             "are measured: bench/README.md (Harness).", ""]
    others = []
    for d in tables:
        with open(os.path.join(a.out, d, "raw.json")) as fh:
            res = json.load(fh)
        if not isinstance(res, dict) or "spec" not in res:  # written by another script
            others.append(f"- [{d}/raw.json]({d}/raw.json)")
            continue
        md = render.render(res, os.path.join(a.out, d))
        # Links in a table are relative to its directory.
        md = md.replace("](", f"]({d}/").replace(f"]({d}/http", "](http")
        lines += [md, ""]
    others += [f"- [{f}]({f})" for f in sorted(os.listdir(a.out))
               if f.endswith((".md", ".json")) and f != "README.md"]
    if others:
        lines += ["## Other measurements", "",
                  "Written by other scripts (see docs/BENCHMARKS.md for each); not rendered here:",
                  ""] + others + [""]
    with open(os.path.join(a.out, "README.md"), "w") as fh:
        fh.write("\n".join(lines))
    print(os.path.join(a.out, "README.md"))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="cwbench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("spec", nargs="+")
    r.add_argument("--only", help="comma list of table names")
    r.add_argument("--out", default=os.path.join(ROOT, "docs/bench"))
    r.add_argument("--build", default=os.path.join(ROOT, "build"))
    r.add_argument("--rounds", type=int)
    r.add_argument("--duration", type=float)
    r.add_argument("--warmup", type=float)
    r.add_argument("--loads", help="curve: comma list of offered loads (msg/s)")
    d = sub.add_parser("render")
    d.add_argument("dir", nargs="+")
    i = sub.add_parser("index")
    i.add_argument("--out", default=os.path.join(ROOT, "docs/bench"))
    a = ap.parse_args(argv)
    return {"run": cmd_run, "render": cmd_render, "index": cmd_index}[a.cmd](a)
