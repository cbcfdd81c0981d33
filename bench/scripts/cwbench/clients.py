"""The clients a table can run against a server; each returns a dict of figures.

A client spec is a dict: {"type": ..., options}. Types:
  corewire-bench  closed loop ("window") or open loop ("rate" set by a curve, Poisson
                  arrivals); figures: msg_per_s, p50/p99/p99_9_us (closed: reply - send;
                  open: reply - intended send time), lost, answered (warm-up included);
                  "args": more corewire-bench arguments (e.g. the --kv-* workload of
                  --proto memcached: bench/README.md), the report's "kv" counts kept;
                  with proto memcached the table's "msg" is the sets' value size, and
                  "preload": corewire-bench arguments of a --kv-preload-only run made
                  after the server starts, before the measured run and its CPU figures.
                  With proto nats: the table's "pubs", "subs" and "queue" (publisher and
                  subscriber connections, queue group or none), "msg" the payload size,
                  "window" unacknowledged PUBs per publisher (closed loop), "rate" the
                  publish rate (open loop); msg_per_s is delivered messages/s (all
                  subscribers), load_per_s that divided by the fan-out (so it compares with
                  the offered publish rate), published_per_s, and the report's "nats" kept.
  kernel-blaster  bench/reference cw-kernel-blaster: msg_per_s only (UDP).
  sockperf-pp     `sockperf ping-pong --full-rtt`: p50_us, p99_us (one outstanding; whole
                  seconds, at least 1).
Workload keys come from the table: transport, proto, msg, flows, duration, warmup.
"""
import json
import os
import re
import subprocess
import tempfile


def run_client(spec, w, build, port, core, hgrm=None, rate=None):
    t = spec["type"]
    if t == "corewire-bench":
        return corewire_bench(spec, w, build, port, core, hgrm, rate)
    if t == "kernel-blaster":
        return kernel_blaster(spec, w, build, port, core)
    if t == "sockperf-pp":
        return sockperf_pp(w, port, core)
    raise ValueError(f"unknown client type {t!r}")


class SetupError(RuntimeError):
    """A set-up step failed (the preload did not store every key): every later run of the
    table would measure another workload, so the table stops instead of recording it."""


def prepare(spec, w, build, port):
    """The client's set-up run (proto memcached "preload"), not measured. corewire-bench
    exits 1 unless every key was stored; that (or no exit in time) raises SetupError."""
    if "preload" not in spec:
        return
    argv = [os.path.join(build, "bench/corewire-bench"), "--proto", "memcached",
            "--target", f"127.0.0.1:{port}", "--kv-preload-only", "-q",
            "--kv-value-size", str(w["msg"])] + [str(a) for a in spec["preload"]]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        raise SetupError(f"preload did not run: {' '.join(argv)}: {e}")
    if r.returncode != 0:
        raise SetupError(f"preload failed ({r.returncode}): {' '.join(argv)}\n{r.stdout}{r.stderr}")


def bounded(argv, w):
    timeout = w["duration"] + w.get("warmup", 0) + 60
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    return r, " ".join(argv)


def corewire_bench(spec, w, build, port, core, hgrm, rate):
    with tempfile.NamedTemporaryFile(suffix=".json") as j:
        argv = [os.path.join(build, "bench/corewire-bench"), "--proto", w["proto"],
                f"--{w['transport']}", "--target", f"127.0.0.1:{port}", "-m", str(w["msg"]),
                "--duration", str(w["duration"]),
                "--warmup", str(w.get("warmup", 0)), "--cores", str(core), "--json", j.name]
        if rate:
            argv += ["--mode", "open", "--rate", str(rate), "--arrival",
                     spec.get("arrival", "poisson"), "--seed", str(spec.get("seed", 1))]
        else:
            argv += ["--mode", "closed", "--window", str(spec.get("window", 16))]
        argv += ["--busy-poll"] if spec.get("busy_poll", True) else []
        argv += ["--hgrm", hgrm] if hgrm else []
        if w["proto"] == "nats":
            argv += ["--nats-pubs", str(w["pubs"]), "--nats-subs", str(w["subs"])]
            argv += ["--nats-queue", w["queue"]] if w.get("queue") else []
        else:
            argv += ["--flows", str(w["flows"])]
        if w["proto"] == "memcached":  # "msg" is the value size of the sets
            argv += ["--kv-value-size", str(w["msg"])]
        argv += [str(a) for a in spec.get("args", [])]
        r, cmd = bounded(argv, w)
        try:
            rep = json.load(open(j.name))
        except ValueError:
            raise RuntimeError(f"corewire-bench gave no report ({r.returncode}): {cmd}\n"
                               f"{r.stdout}{r.stderr}")
    lat = rep["latency"]
    # Its progress lines (runs over 2 s): "[  3.0s] sent N (+W warm-up)  received N (R/s)
    # lost L ..." once a second: the rate within the run, so a stall shows.
    progress = [{"t": float(m.group(1)), "msg_per_s": float(m.group(2)), "lost": int(m.group(3))}
                for m in re.finditer(r"\[\s*([\d.]+)s\] .*?\(([\d.]+)/s\)\s+lost (\d+)", r.stderr)]
    out = {"progress": progress,"msg_per_s": rep["throughput_msgs"], "p50_us": lat["p50"], "p99_us": lat["p99"],
           "p99_9_us": lat["p99_9"], "max_us": lat["max"], "sent": rep["sent"],
           "lost": rep["lost"], "loss_ratio": rep["loss_ratio"], "errors": rep["errors"],
           "answered": rep["received"] + rep["warmup_sent"], "client_cmd": cmd}
    if "kv" in rep:
        out["kv"] = rep["kv"]
    if "nats" in rep:
        n = rep["nats"]
        fan = 1 if n["queue"] else max(n["subscribers"], 1)
        out.update({"nats": n, "published_per_s": n["published_per_s"],
                    "load_per_s": n["delivered_per_s"] / fan})
        # CPU per message is per delivered message (warm-up included), publishing included.
        out["answered"] = rep["received"] + n["warmup_msgs"]
    return out


def kernel_blaster(spec, w, build, port, core):
    argv = [os.path.join(build, "bench/reference/cw-kernel-blaster"), "--target",
            f"127.0.0.1:{port}", "--proto", w["proto"], "-m", str(w["msg"]), "--flows",
            str(w["flows"]), "--window", str(spec.get("window", 64)), "--duration",
            str(w["duration"]), "--warmup", str(w.get("warmup", 0)), "--core", str(core)]
    argv += ["--gso"] if spec.get("gso") else []
    r, cmd = bounded(argv, w)
    try:
        rep = json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"cw-kernel-blaster failed ({r.returncode}): {cmd}\n{r.stderr}")
    return {"msg_per_s": rep["msg_per_s"], "sent": rep["sent"], "lost": rep["lost"],
            "answered": rep["all_received"], "client_cmd": cmd}


def sockperf_pp(w, port, core):
    argv = ["taskset", "-c", str(core), "sockperf", "ping-pong", "-i", "127.0.0.1", "-p",
            str(port), "-m", str(w["msg"]), "-t", str(max(1, round(w["duration"]))), "--full-rtt"]
    argv += ["--tcp"] if w["transport"] == "tcp" else []
    r, cmd = bounded(argv, w)
    out = r.stdout + r.stderr
    p50 = re.search(r"percentile 50\.000 =\s+([\d.]+)", out)
    p99 = re.search(r"percentile 99\.000 =\s+([\d.]+)", out)
    sent = re.search(r"SentMessages=(\d+)", out)
    if not p50 or not p99:
        raise RuntimeError(f"sockperf ping-pong gave no percentiles: {cmd}\n{out}")
    return {"p50_us": float(p50.group(1)), "p99_us": float(p99.group(1)),
            "answered": int(sent.group(1)) if sent else None, "client_cmd": cmd}
