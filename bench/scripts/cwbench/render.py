"""Tables (markdown) and plots (PNG) from a table's raw JSON alone, so a committed table
can be regenerated and checked without measuring again."""
import os

from . import stats

UNITS = {"msg_per_s": ("k msg/s", 1e-3), "p50_us": ("RTT p50 µs", 1), "p99_us": ("p99 µs", 1),
         "p99_9_us": ("p99.9 µs", 1), "server_ns_per_msg": ("server CPU ns/msg", 1),
         "machine_ns_per_msg": ("machine CPU ns/msg", 1),
         "softirq_ns_per_msg": ("of which softirq", 1), "loss_ratio": ("loss %", 100),
         "server_core_busy": ("server core busy", 1), "client_core_busy": ("client core busy", 1)}


def f(x, digits=3):
    if x is None:
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def spread_cell(xs, scale=1.0, digits=0):
    """'median (min..max)' of xs x scale, None values left out; '-' when none is left."""
    med, lo, hi = stats.spread([None if x is None else x * scale for x in xs])
    return "-" if med is None else f"{med:.{digits}f} ({lo:.{digits}f}..{hi:.{digits}f})"


def script_lines(command, m, where):
    """The command, machine and date lines of a table written by a script outside the
    harness (the memory scripts); m is machine.describe()."""
    return [f"- **Command:** `{command}`",
            f"- **Machine:** {m['host']}, {m['cpus']} CPUs ({m['cpu_model']}), Linux "
            f"{m['kernel']}; {where}",
            f"- **Date:** {m['date']}; **commit** `{m['commit'][:12]}`"
            + (" (with uncommitted changes)" if m.get("dirty") else "")]


def header(res):
    s, m = res["spec"], res["machine"]
    w = (f"{s.get('transport', 'udp').upper()}, {s.get('proto', 'sockperf')} dialect, "
         f"{s.get('msg', 64)} B, {s.get('flows', 1)} flow(s)")
    if s.get("proto") == "nats":
        w = (f"NATS over TCP, {s.get('msg', 64)} B payloads, {s.get('pubs', 1)} publisher(s) -> "
             f"{s.get('subs', 1)} subscriber(s)"
             + (f" in queue group {s['queue']!r}" if s.get("queue") else ""))
    if res.get("peak"):
        pk = res["peak"]
        w += (f"; offered loads = {pk.get('fractions', s.get('fractions'))} x {pk['server']}'s "
              f"closed-loop peak {pk['msg_per_s']:.0f}/s = {pk['loads']}")
    c = res["spec"]["client"]
    lines = [f"### {s.get('title', s['name'])}", "",
             f"- **Command:** `{res['command']}`",
             f"- **Machine:** {m['host']}, {m['cpus']} CPUs ({m['cpu_model']}), {m['mem_mib']} MiB, "
             f"Linux {m['kernel']}; server on core {s.get('server_core', 1)}, client on core "
             f"{s.get('client_core', 0)}",
             f"- **Date:** {m['date']} .. {res['finished']}; **commit** `{m['commit'][:12]}`"
             + (" (with uncommitted changes)" if m.get("dirty") else ""),
             f"- **Workload:** {w}; client `{c['type']}` "
             + ", ".join(f"{k}={v}" for k, v in c.items() if k != "type")
             + f"; {s.get('duration', 5)} s per run after {s.get('warmup', 1)} s warm-up"]
    cmds = {}
    for r in res["runs"]:
        cmds.setdefault(r["server"], r.get("server_cmd", "?"))
    lines += ["- **Servers** (first run's command line):"]
    lines += [f"  - `{n}`: `{c}`" for n, c in cmds.items()]
    if s.get("note"):
        lines += ["", s["note"]]
    if s.get("proto") == "nats":
        lines += ["", "NATS: k msg/s counts deliveries (all subscribers); the latency columns "
                  "(\"RTT p50\", p99, p99.9) are one-way, publisher's stamp to delivery; "
                  "CPU per message is per delivery; a curve's offered load is the publish rate."]
    hits = {}
    for r in res["runs"]:
        if isinstance(r.get("kv"), dict) and r["kv"].get("gets"):
            hits.setdefault(r["server"], []).append(r["kv"]["hit_ratio"])
    if hits:  # equal work only if both servers hold the keys: a miss is a cheaper reply
        lines += ["", "Get hit ratio (min..max over the runs): " + ", ".join(
            f"{n} {min(v):.3f}..{max(v):.3f}" for n, v in hits.items()) + "."]
    return lines


def probe_lines(res):
    ok = [p["median_ns"] for p in res["probes"] if p.get("median_ns", -1) > 0]
    slow_runs = sum(1 for r in res["runs"] if r.get("probe_slow"))
    errors = [r for r in res["runs"] if "error" in r]
    out = [f"VM-state probe (cache-line round trip between the two cores) before each round: "
           f"{len(ok)} probes, median {f(stats.median(ok))} ns, best {f(min(ok) if ok else None)} ns; "
           f"{len(res['postponed'])} postponement(s); {slow_runs} run(s) made while still slow "
           f"after {5} retries. Runs that failed: {len(errors)}"
           + (" (" + "; ".join(f"{r['label']} {r['server']}" for r in errors) + ")" if errors else "")
           + ". No run is left out of any figure."]
    return out


def pair_table(res):
    sm = res["summary"]
    metrics = [m for m in UNITS if any(v is not None for n in sm["servers"]
                                       for v in sm["per_server"][n].get(m, []))]
    lines = header(res) + ["", f"{len(sm['rounds'])} paired rounds (order reversed every other "
                           "round); median (min..max) over every run:", "",
                           "| server | " + " | ".join(UNITS[m][0] for m in metrics) + " |",
                           "|---" * (len(metrics) + 1) + "|"]
    for n in sm["servers"]:
        cells = []
        for m in metrics:
            med, lo, hi = stats.spread([None if v is None else v * UNITS[m][1]
                                        for v in sm["per_server"][n][m]])
            cells.append("-" if med is None else f"{f(med)} ({f(lo)}..{f(hi)})")
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "| ratio | median of per-round ratios | bootstrap 95% | per round |",
              "|---|---|---|---|"]
    for k, v in sm["ratios"].items():
        if not any(k.startswith(m + " ") for m in metrics):
            continue
        ci = v["ci95"]
        lines.append(f"| {k} | **{f(v['median'])}** | "
                     + (f"{f(ci[0])}..{f(ci[1])}" if ci else "-") + " | "
                     + ", ".join(f(x) for x in v["per_round"]) + " |")
    return lines + [""] + probe_lines(res)


def curve_table(res):
    sm = res["summary"]
    lines = header(res) + ["", "Open loop, Poisson arrivals, latency from the intended send "
                           "time; median over rounds at each offered load:", ""]
    cols = ("msg_per_s", "p50_us", "p99_us", "p99_9_us", "loss_ratio", "server_ns_per_msg",
            "machine_ns_per_msg")
    lines += ["| server | offered k msg/s | " + " | ".join(UNITS[c][0] for c in cols) + " |",
              "|---" * (len(cols) + 2) + "|"]
    for n in sm["servers"]:
        for p in sm["points"][n]:
            cells = [f(None if p.get(c) is None else p[c] * UNITS[c][1]) for c in cols]
            lines.append(f"| {n} | {f(p['offered'] / 1e3)}{' (sat.)' if p['saturated'] else ''} | "
                         + " | ".join(cells) + " |")
    subj = sm["servers"][0]
    for other in sm["servers"][1:]:
        a = {p["offered"]: p for p in sm["points"][subj] if not p["saturated"]}
        b = {p["offered"]: p for p in sm["points"][other] if not p["saturated"]}
        common = sorted(set(a) & set(b))
        if not common:
            continue
        # Whole-machine CPU (every core's busy time, the generator's included) per million
        # messages: ns per message x 1e6 / 1e9 = s per M.
        unit = "req" if res["spec"].get("proto") == "memcached" else "msg"
        lines += ["", f"{subj} / {other} at equal offered load (both below saturation); "
                  f"whole-machine CPU seconds per million {unit}s for each:", "",
                  f"| offered k {unit}/s | p50 | p99 | p99.9 | machine CPU/{unit} | "
                  f"{subj} machine CPU s/M | {other} machine CPU s/M | server CPU/{unit} |",
                  "|---|---|---|---|---|---|---|---|"]
        for load in common:
            def r(m):
                x, y = a[load].get(m), b[load].get(m)
                return f(x / y) if x is not None and y else "-"

            def per_m(p):
                x = p.get("machine_ns_per_msg")
                return f(x / 1e3) if x is not None else "-"
            lines.append(f"| {f(load / 1e3)} | {r('p50_us')} | {r('p99_us')} | {r('p99_9_us')} | "
                         f"{r('machine_ns_per_msg')} | {per_m(a[load])} | {per_m(b[load])} | "
                         f"{r('server_ns_per_msg')} |")
    return lines + [""] + probe_lines(res)


def plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as p
    return p


def plot_pair(res, out):
    p = plt()
    sm, files = res["summary"], []
    ratios = [(k, v) for k, v in sm["ratios"].items() if any(x is not None for x in v["per_round"])]
    if ratios:
        fig, ax = p.subplots(figsize=(8, 4.5))
        for k, v in ratios:
            xs = [i for i, x in enumerate(v["per_round"]) if x is not None]
            ys = [x for x in v["per_round"] if x is not None]
            line, = ax.plot(xs, ys, "o-", label=f"{k} (median {f(v['median'])})")
            ax.axhline(v["median"], color=line.get_color(), ls=":", lw=1)
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_xlabel("round")
        ax.set_ylabel("ratio (per round)")
        ax.set_title(res["spec"].get("title", res["spec"]["name"]))
        ax.legend(fontsize=7)
        save(fig, out, "ratios.png", files)
    # The timeline: every run's headline figures against the time it ran, with the probe.
    metrics = [m for m in ("msg_per_s", "p50_us", "server_ns_per_msg")
               if any(r.get(m) is not None for r in res["runs"])]
    if metrics:
        fig, axes = p.subplots(len(metrics), 1, figsize=(8, 2.6 * len(metrics)), squeeze=False)
        for ax, m in zip(axes[:, 0], metrics):
            for n in sm["servers"]:
                rs = [r for r in res["runs"] if r["server"] == n and r.get(m) is not None]
                ax.plot([r["t"] for r in rs], [r[m] for r in rs], "o", label=n)
            ax.set_ylabel(m)
            pr = [q for q in res["probes"] if q.get("median_ns", -1) > 0]
            if pr:
                ax2 = ax.twinx()
                ax2.plot([q["t"] for q in pr], [q["median_ns"] for q in pr], "k+", ms=5)
                ax2.set_ylabel("probe ns", fontsize=7)
            ax.legend(fontsize=7)
        axes[-1, 0].set_xlabel("seconds since the table started")
        save(fig, out, "timeline.png", files)
    return files + plot_cpu_timeline(res, out) + plot_percentiles(res, out)


def plot_cpu_timeline(res, out):
    """Every core's busy share and the steal through the whole table, run by run (a slow
    state, or a core that saturates, shows here), the runs labelled by server."""
    runs = [r for r in res["runs"] if r.get("timeline")]
    if not runs:
        return []
    p = plt()
    prog = [r for r in runs if r.get("progress")]
    fig, axes = p.subplots(2 if prog else 1, 1, figsize=(10, 6 if prog else 3.5), squeeze=False)
    ax = axes[0, 0]
    if prog:  # the client's rate, second by second, in every run that lasted over 2 s
        colors = {}
        for r in prog:
            first = r["server"] not in colors
            c = colors.setdefault(r["server"], f"C{len(colors)}")
            axes[1, 0].plot([r.get("client_t", r["t"]) + q["t"] for q in r["progress"]],
                            [q["msg_per_s"] for q in r["progress"]], "-o", ms=3, color=c, lw=1,
                            label=r["server"] if first else None)
        axes[1, 0].set_ylabel("replies/s (each second)")
        axes[1, 0].set_xlabel("seconds since the table started")
        axes[1, 0].legend(fontsize=7)
    cores = sorted({k for r in runs for s in r["timeline"] for k in s if k.startswith("cpu")})
    for i, c in enumerate(cores + ["steal"]):
        xs, ys = [], []
        for r in runs:
            xs += [r.get("client_t", r["t"]) + s["t"] for s in r["timeline"]] + [None]
            ys += [s.get(c) for s in r["timeline"]] + [None]
        ax.plot(xs, ys, lw=0.8, color=f"C{i}", label=c)
    for r in runs:
        ax.text(r["t"], 1.02, r["server"][:10], fontsize=5, rotation=60)
    ax.set_ylim(0, 1.15)
    ax.set_xlabel("seconds since the table started")
    ax.set_ylabel("busy share")
    ax.legend(fontsize=7, loc="lower right")
    files = []
    save(fig, out, "cpu.png", files)
    return files


def plot_curve(res, out):
    p = plt()
    sm, files = res["summary"], []
    fig, axes = p.subplots(1, 2, figsize=(11, 4.5))
    for n in sm["servers"]:
        pts = [q for q in sm["points"][n] if q.get("p50_us") is not None]
        x = [q["offered"] / 1e3 for q in pts]
        for m, style in (("p50_us", "-"), ("p99_us", "--"), ("p99_9_us", ":")):
            axes[0].plot(x, [q[m] for q in pts], style, marker="o", ms=3, label=f"{n} {m[:-3]}")
        axes[1].plot(x, [q.get("machine_ns_per_msg") for q in pts], "-o", ms=3,
                     label=f"{n} machine")
        axes[1].plot(x, [q.get("server_ns_per_msg") for q in pts], "--o", ms=3,
                     label=f"{n} server")
    loads = [q["offered"] for n in sm["servers"] for q in sm["points"][n]]
    if loads and max(loads) > 20 * min(loads):
        for ax in axes:
            ax.set_xscale("log")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("offered load (k msg/s)")
    axes[0].set_ylabel("latency from intended send (µs)")
    axes[1].set_xlabel("offered load (k msg/s)")
    axes[1].set_ylabel("CPU ns per message")
    for ax in axes:
        ax.legend(fontsize=6)
    fig.suptitle(res["spec"].get("title", res["spec"]["name"]))
    save(fig, out, "curve.png", files)
    return files + plot_cpu_timeline(res, out) + plot_percentiles(res, out)


def read_hgrm(path):
    xs, ys = [], []
    with open(path) as fh:
        for line in fh:
            parts = line.split()
            try:
                v, _, _, inv = (float(x) for x in parts)
            except ValueError:
                continue
            if inv != float("inf"):
                xs.append(inv)
                ys.append(v)
    return xs, ys


def plot_percentiles(res, out):
    """HdrHistogram-style percentile plot: every run's distribution, one colour per server."""
    runs = [r for r in res["runs"] if r.get("hgrm") and os.path.exists(os.path.join(out, r["hgrm"]))]
    if not runs:
        return []
    p = plt()
    fig, ax = p.subplots(figsize=(8, 4.5))
    colors = {}
    for r in runs:
        xs, ys = read_hgrm(os.path.join(out, r["hgrm"]))
        first = r["server"] not in colors
        c = colors.setdefault(r["server"], f"C{len(colors)}")
        ax.plot(xs, ys, color=c, lw=0.8, alpha=0.6, label=r["server"] if first else None)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = [1, 2, 10, 100, 1000, 10000, 100000]
    ax.set_xticks(ticks)
    ax.set_xticklabels(["0", "50", "90", "99", "99.9", "99.99", "99.999"])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (µs)")
    ax.set_title("every run's latency distribution")
    ax.legend(fontsize=7)
    files = []
    save(fig, out, "percentiles.png", files)
    return files


def save(fig, out, name, files):
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=90)
    files.append(name)
    import matplotlib.pyplot as p
    p.close(fig)


def render(res, out):
    """Writes table.md and the PNGs into out; returns the markdown."""
    pair = res["spec"]["kind"] == "pair"
    try:
        pngs = plot_pair(res, out) if pair else plot_curve(res, out)
    except ImportError:
        pngs = []  # no matplotlib: the table still renders (install python3-matplotlib)
    lines = pair_table(res) if pair else curve_table(res)
    lines += ["", " ".join(f"![{n[:-4]}]({n})" for n in pngs), "",
              "Raw runs: [raw.json](raw.json).", ""]
    md = "\n".join(lines)
    with open(os.path.join(out, "table.md"), "w") as fh:
        fh.write(md)
    return md
