"""Runs a table spec: paired rounds ("pair") or an open-loop load sweep ("curve"). Every
run is kept in the returned JSON; nothing is filtered after the fact."""
import os
import shutil
import socket
import subprocess
import sys
import time

from . import clients, machine, servers, stats

# A probe slower than this many times the fastest probe of the table marks the VM slow.
PROBE_SLOW_FACTOR = 3.0
PROBE_RETRIES = 5       # a slow probe postpones the round this many times at most
PROBE_WAIT_S = 2.0      # between retries
SATURATED_ACHIEVED = 0.95  # a curve step is saturated below this share of the offered load
SATURATED_LOSS = 0.01      # ... or above this loss ratio
STEPS_PAST_SATURATION = 1  # steps measured after a server saturated (to show the knee)


def log(*a):
    print("cwbench:", *a, file=sys.stderr, flush=True)


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as t:
                try:
                    t.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port")


class Context:
    def __init__(self, spec, build, out_dir):
        self.spec, self.build, self.out = spec, build, out_dir
        self.cores = [spec.get("server_core", 1), spec.get("client_core", 0)]
        self.t0 = time.time()
        self.probes, self.postponed = [], []
        self.probe_exe = os.path.join(build, "bench/reference/cw-vm-probe")

    def workload(self):
        s = self.spec
        return {"transport": s.get("transport", "udp"), "proto": s.get("proto", "sockperf"),
                "msg": s.get("msg", 64), "flows": s.get("flows", 1),
                "duration": s.get("duration", 5), "warmup": s.get("warmup", 1),
                # proto nats: publisher and subscriber connections, queue group ("": none)
                "pubs": s.get("pubs", 1), "subs": s.get("subs", 1), "queue": s.get("queue", "")}

    def check_state(self, label):
        """Probes before a round; a slow probe postpones the round (logged), up to
        PROBE_RETRIES times, after which the round runs with probe_slow set."""
        if not self.spec.get("probe", True) or not os.path.exists(self.probe_exe):
            return {"skipped": True}
        for attempt in range(PROBE_RETRIES + 1):
            p = machine.probe(self.probe_exe, self.cores)
            p["t"] = round(time.time() - self.t0, 3)
            p["label"] = label
            self.probes.append(p)
            ok = [q["median_ns"] for q in self.probes if q.get("median_ns", -1) > 0]
            if "median_ns" not in p or p["median_ns"] <= 0:
                return p
            best = min(ok)
            p["threshold_ns"] = PROBE_SLOW_FACTOR * best
            p["slow"] = p["median_ns"] > p["threshold_ns"]
            if not p["slow"]:
                return p
            log(f"{label}: probe {p['median_ns']:.0f} ns > {p['threshold_ns']:.0f} ns (slow VM "
                f"state), round postponed (attempt {attempt + 1})")
            self.postponed.append({"label": label, "t": p["t"], "median_ns": p["median_ns"]})
            time.sleep(PROBE_WAIT_S)
        return p

    def measure(self, server, client, w, label, rate=None):
        """One run: a fresh server on a free port, the client against it, CPU around it."""
        port = free_port()
        run = {"server": server["name"], "label": label, "t": round(time.time() - self.t0, 3),
               "rate": rate}
        hgrm = None
        if client["type"] == "corewire-bench" and self.spec.get("hgrm", True):
            os.makedirs(os.path.join(self.out, "hgrm"), exist_ok=True)
            hgrm = os.path.join(self.out, "hgrm", f"{label}-{server['name']}.hgrm")
        try:
            with servers.Server(server, self.build, w["transport"], w["proto"], port,
                                self.cores[0]) as srv:
                run["server_cmd"] = " ".join(srv.argv)
                clients.prepare(client, w, self.build, port)
                s0, m0 = machine.task_cpu_ns(srv.proc.pid), machine.proc_stat()
                c0 = time.monotonic()
                run["client_t"] = round(time.time() - self.t0, 3)  # the timelines' origin
                with machine.Sampler() as samp:
                    run.update(clients.run_client(client, w, self.build, port, self.cores[1],
                                                  hgrm, rate))
                s1, m1 = machine.task_cpu_ns(srv.proc.pid), machine.proc_stat()
                wall = time.monotonic() - c0
                run["timeline"] = samp.samples
            run["server_stdout"] = srv.stdout[-1000:]
        except clients.SetupError:
            raise  # the table stops (cli: no raw.json, exit 2)
        except (RuntimeError, OSError, KeyError, ValueError, subprocess.SubprocessError) as e:
            run["error"] = str(e)[:3000]
            log(f"{label} {server['name']}: {run['error'][:300]}")
            return run
        cpu = machine.cpu_delta(m0, m1)
        run["machine"] = cpu
        # Each pinned core's busy share over the client's run (its start-up included): a
        # generator whose core is below 1 while it does not busy-poll waited for replies,
        # so the server, not the generator, set the rate (docs/BENCHMARKS.md, kv).
        for key, core in (("server_core_busy", self.cores[0]), ("client_core_busy", self.cores[1])):
            c = cpu["cores"].get(f"cpu{core}")
            run[key] = c["busy_s"] / wall if c and wall > 0 else None
        run["server_cpu_s"] = (s1 - s0) / 1e9 if s0 is not None and s1 is not None else None
        n = run.get("answered")
        if n:
            run["server_ns_per_msg"] = run["server_cpu_s"] * 1e9 / n if run["server_cpu_s"] else None
            run["machine_ns_per_msg"] = cpu["busy_s"] * 1e9 / n
            run["softirq_ns_per_msg"] = cpu["softirq_s"] * 1e9 / n
        if hgrm and os.path.exists(hgrm):
            run["hgrm"] = os.path.relpath(hgrm, self.out)
        log(f"{label} {server['name']}: " + ", ".join(
            f"{k}={run[k]:.4g}" for k in ("msg_per_s", "p50_us", "p99_us", "server_ns_per_msg",
                                           "machine_ns_per_msg") if run.get(k) is not None))
        return run


def table_servers(spec):
    w_t, proto = spec.get("transport", "udp"), spec.get("proto", "sockperf")
    return [s for s in spec["servers"] if servers.supports(s, w_t, proto)]


def run_pair(spec, build, out_dir):
    ctx = Context(spec, build, out_dir)
    w, srvs, runs = ctx.workload(), table_servers(spec), []
    for r in range(spec.get("rounds", 5)):
        probe = ctx.check_state(f"r{r}")
        order = srvs if r % 2 == 0 else list(reversed(srvs))
        for s in order:
            run = ctx.measure(s, spec["client"], w, f"r{r}")
            run["round"], run["probe_ns"] = r, probe.get("median_ns")
            run["probe_slow"] = probe.get("slow", False)
            runs.append(run)
    return {"runs": runs, "probes": ctx.probes, "postponed": ctx.postponed,
            "summary": summarize_pair(spec, runs)}


METRICS = ("msg_per_s", "p50_us", "p99_us", "p99_9_us", "server_ns_per_msg",
           "machine_ns_per_msg", "softirq_ns_per_msg")
BUSY = ("server_core_busy", "client_core_busy")  # shown per server, no ratio


def summarize_pair(spec, runs):
    """Per server: every run's figure per metric (by round); ratios of the first server
    (the subject) to each other one, per round."""
    names = [s["name"] for s in table_servers(spec)]
    rounds = sorted({r["round"] for r in runs})
    by = {(r["server"], r["round"]): r for r in runs}
    # proto nats: a server may close subscribers it finds slow (closed loop paces publishers
    # by the server's PONGs, not by deliveries), so the share not delivered is shown too.
    metrics = METRICS + (("loss_ratio",) if spec.get("proto") == "nats" else ())
    per = {n: {m: [by.get((n, k), {}).get(m) for k in rounds] for m in metrics + BUSY}
           for n in names}
    subject, ratios = names[0], {}
    for other in names[1:]:
        for m in metrics:
            pr = []
            for a, b in zip(per[subject][m], per[other][m]):
                pr.append(a / b if a is not None and b else None)
            if any(x is not None for x in pr):
                ratios[f"{m} {subject}/{other}"] = stats.ratio_summary(pr)
    return {"subject": subject, "servers": names, "rounds": rounds, "per_server": per,
            "ratios": ratios}


def achieved(run):
    """The rate a curve step compares with its offered load: replies/s, or for proto nats
    deliveries/s over the fan-out (the publish rate the subscribers saw)."""
    return run.get("load_per_s", run.get("msg_per_s", 0))


def measure_peak(ctx, spec, w, srvs):
    """Curves with "fractions": the reference's ("peak_of", default the last server) peak,
    the median over "peak_runs" (1) closed-loop runs of published/s (proto nats) or
    msg/s; the offered loads are those fractions of it. Every run is kept."""
    name = spec.get("peak_of", srvs[-1]["name"])
    ref = next(s for s in srvs if s["name"] == name)
    runs = []
    for i in range(spec.get("peak_runs", 1)):
        ctx.check_state(f"peak{i}")
        run = ctx.measure(ref, spec["client"], w, f"peak{i}")
        run["round"] = i
        runs.append(run)
    rates = [r.get("published_per_s", r.get("msg_per_s")) for r in runs if "error" not in r]
    peak = stats.median([x for x in rates if x])
    if not peak:
        raise RuntimeError(f"no peak measured for {name}: {[r.get('error') for r in runs]}")
    return {"server": name, "msg_per_s": peak, "runs": runs, "fractions": spec["fractions"],
            "loads": [max(1, int(f * peak)) for f in spec["fractions"]]}


def loads_of(spec):
    if "loads" in spec:
        return list(spec["loads"])
    out, x = [], spec.get("start", 10000)
    while x <= spec.get("max", 2_000_000):
        out.append(int(x))
        x *= spec.get("factor", 1.5)
    return out


def run_curve(spec, build, out_dir):
    ctx = Context(spec, build, out_dir)
    w, srvs, runs = ctx.workload(), table_servers(spec), []
    peak = measure_peak(ctx, spec, w, srvs) if "fractions" in spec and "loads" not in spec else None
    loads = peak["loads"] if peak else loads_of(spec)
    for rnd in range(spec.get("rounds", 1)):
        past = {s["name"]: -1 for s in srvs}  # steps measured since saturation (-1: not yet)
        for i, load in enumerate(loads):
            live = [s for s in srvs if past[s["name"]] < STEPS_PAST_SATURATION]
            if not live:
                break
            label = f"r{rnd}-{load}"
            probe = ctx.check_state(label)
            for s in (live if i % 2 == 0 else list(reversed(live))):
                run = ctx.measure(s, spec["client"], w, label, rate=load)
                run.update({"round": rnd, "offered": load, "probe_ns": probe.get("median_ns"),
                            "probe_slow": probe.get("slow", False)})
                sat = ("error" in run or achieved(run) < SATURATED_ACHIEVED * load
                       or run.get("loss_ratio", 0) > SATURATED_LOSS)
                run["saturated"] = sat
                if sat or past[s["name"]] >= 0:
                    past[s["name"]] += 1
                runs.append(run)
    out = {"runs": runs, "probes": ctx.probes, "postponed": ctx.postponed,
           "summary": summarize_curve(spec, runs)}
    if peak:
        out["peak"] = peak
        out["summary"]["peak"] = {"server": peak["server"], "msg_per_s": peak["msg_per_s"],
                                  "fractions": spec["fractions"], "loads": peak["loads"]}
    return out


CURVE_METRICS = ("msg_per_s", "p50_us", "p99_us", "p99_9_us", "loss_ratio",
                 "server_ns_per_msg", "machine_ns_per_msg") + BUSY


def summarize_curve(spec, runs):
    """Per server and offered load: the median over rounds of each figure."""
    out = {}
    for s in table_servers(spec):
        pts = {}
        for r in runs:
            if r["server"] == s["name"] and "error" not in r:
                pts.setdefault(r["offered"], []).append(r)
        out[s["name"]] = [{"offered": load, "saturated": any(r["saturated"] for r in rs),
                           **{m: stats.median([r.get(m) for r in rs]) for m in CURVE_METRICS}}
                          for load, rs in sorted(pts.items())]
    return {"servers": [s["name"] for s in table_servers(spec)], "points": out}


def run_table(spec, build, out_dir, root, command):
    os.makedirs(out_dir, exist_ok=True)
    hg = os.path.join(out_dir, "hgrm")
    if os.path.isdir(hg):
        shutil.rmtree(hg)  # this table's percentile files are rewritten with its JSON
    info = machine.describe(root)
    log(f"table {spec['name']} ({spec['kind']}) -> {out_dir}")
    res = (run_pair if spec["kind"] == "pair" else run_curve)(spec, build, out_dir)
    res.update({"spec": spec, "command": command, "machine": info,
                "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())})
    return res
