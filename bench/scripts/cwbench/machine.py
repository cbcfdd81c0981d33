"""What the harness reads from the machine: /proc/stat CPU time per core, a process's CPU
time (schedstat, ns), the VM-state probe, and the description recorded with each table."""
import glob
import json
import os
import platform
import subprocess
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
# /proc/stat cpuN fields: user nice system idle iowait irq softirq steal guest guest_nice.
# guest time is also counted in user, so only the first eight are summed.
IDLE, IOWAIT, SOFTIRQ, STEAL = 3, 4, 6, 7


def proc_stat():
    """{cpu name: [jiffies per field]} for every core (the "cpu" total line excluded)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *vals = line.split()
                out[name] = [int(v) for v in vals[:8]]
    return out


def cpu_delta(before, after):
    """Seconds per core between two proc_stat() readings: busy (everything but idle, iowait
    and steal), of which softirq, and steal (time the hypervisor took)."""
    cores = {}
    for name, a in after.items():
        d = [x - y for x, y in zip(a, before.get(name, a))]
        busy = sum(d) - d[IDLE] - d[IOWAIT] - d[STEAL]
        cores[name] = {"busy_s": busy / CLK_TCK, "softirq_s": d[SOFTIRQ] / CLK_TCK,
                       "steal_s": d[STEAL] / CLK_TCK}
    return {"cores": cores, "busy_s": sum(c["busy_s"] for c in cores.values()),
            "softirq_s": sum(c["softirq_s"] for c in cores.values()),
            "steal_s": sum(c["steal_s"] for c in cores.values())}


def task_cpu_ns(pid):
    """CPU time of every thread of pid and of its children's threads, in ns (schedstat's
    first field), or None when the process is gone."""
    total, found = 0, False
    pids = [pid] + children(pid)
    for p in pids:
        for path in glob.glob(f"/proc/{p}/task/*/schedstat"):
            try:
                with open(path) as f:
                    total += int(f.read().split()[0])
                    found = True
            except (OSError, ValueError, IndexError):
                pass
    return total if found else None


def rss_kib(pid):
    """VmRSS of pid in KiB (/proc/<pid>/status); a server started through taskset has
    exec'd, so the harness's pid is the server's."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def children(pid):
    """Direct children of pid (taskset / wrapper processes exec, but be safe)."""
    out = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        try:
            with open(path) as f:
                out += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return out


class Sampler:
    """Samples per-core busy fraction every `every` seconds in a thread (the per-run
    timeline: a core that saturates, or steal, shows up here)."""

    def __init__(self, every=0.25):
        self.every, self.samples = every, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t0, prev, prev_t = time.time(), proc_stat(), time.time()
        while not self._stop.wait(self.every):
            now, now_t = proc_stat(), time.time()
            d, dt = cpu_delta(prev, now), max(now_t - prev_t, 1e-3)
            self.samples.append({"t": round(now_t - t0, 3),
                                 **{k: round(v["busy_s"] / dt, 3) for k, v in d["cores"].items()},
                                 "steal": round(d["steal_s"] / dt, 3)})
            prev, prev_t = now, now_t

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def probe(exe, cores, rounds=20000, chunks=5, max_s=2.0):
    """Runs cw-vm-probe between the two cores; its JSON (median_ns, min_ns, ...) or
    {"error": ...} when it cannot run (then the round is not held back)."""
    try:
        r = subprocess.run([exe, "--cores", f"{cores[0]},{cores[1]}", "--rounds", str(rounds),
                            "--chunks", str(chunks), "--max-s", str(max_s)],
                           capture_output=True, text=True, timeout=max_s + 10)
        return json.loads(r.stdout)
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}


def describe(root):
    """Machine, kernel, CPU model, date and the source commit (with a dirty flag)."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass

    def git(*a):
        try:
            return subprocess.run(["git", "-C", root, *a], capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except OSError:
            return ""

    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"host": platform.node(), "kernel": platform.release(), "cpus": os.cpu_count(),
            "cpu_model": model, "mem_mib": mem,
            "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain",
                                                                   "--untracked-files=no"))}
