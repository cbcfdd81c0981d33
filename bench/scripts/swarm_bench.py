#!/usr/bin/python3
"""The swarm seed benchmark (docs/BENCHMARKS.md, "Swarm (issue 18)"): one seed to four
leechers on this machine, corewire's swarm service against a libtorrent seed, and a swarm of
five corewire nodes against a swarm of five libtorrent sessions.

Data: a multi-file torrent (--size, default 1 GiB, in --files files of unequal sizes,
--piece-size pieces, v1) made by libtorrent in a fresh directory on tmpfs (/dev/shm) when
the seed copy and every leecher's copy fit there, else under the system's temp directory
(the JSON says which: `data_fs`). The seed's files are read from the page cache either way.

Part 1, the seed (--rounds paired rounds, the order alternating by round, every run kept):
- the seed, a fresh process per run, pinned to --server-core (every thread, with taskset):
  corewire (`swarm` service, one worker on that core, interrupt mode, trackers off) or a
  libtorrent seed (this script with --role seed: one session, no rate limits, send buffer
  watermark 4 MiB, no PEX/DHT/LSD/uTP/encryption, as corewire). Both check the data before
  serving (corewire's start-up check; libtorrent's check when the torrent is added), outside
  the measured window.
- four leechers, the same program each round: this script with --role leech, one libtorrent
  session per process, four processes pinned to --client-core, each connected only to the
  seed (no PEX, DHT, LSD or tracker), so the seed uploads the torrent four times.
- measured: the seconds from the first leecher's start to the last one's completion, upload
  goodput (payload bytes the leechers received / those seconds), the seed's CPU seconds
  (utime + stime of its process, all threads, /proc/PID/stat) and CPU seconds per GiB
  delivered, whole-machine CPU seconds (/proc/stat), and each core's busy share over the
  window. A run whose client core was >= 90 % busy is labelled generator-bound: the
  leechers were the limit, and the seed's goodput is a lower bound.

Part 2, the swarm (--swarm-rounds paired rounds): the same seed and four leechers that also
trade with each other (leecher i connects to the seed and to leechers 0..i-1): corewire
nodes (one process each, `peers` in their config) or libtorrent sessions (--role leech, one
per process); the leechers on --client-core, the seed on --server-core. Measured: the
seconds from starting the leechers to the last one complete.

  /usr/bin/python3 bench/scripts/swarm_bench.py --build build --size 1GiB --rounds 5 \\
      --swarm-rounds 3 --out docs/bench/swarm.json --md docs/bench/swarm.md

--baseline-build DIR: a second corewire build (say, main's, before a change) runs as one more
seed, `corewire-base`, in the same alternating rounds (part 2 too), and the summary adds the
per-round ratios corewire / corewire-base: a before/after on the same machine state.

--smoke: an 8 MiB torrent, one round of each part with both seeds, every leecher's files
compared byte for byte with the seed's; exit 1 when any run did not complete, 77 when
python3-libtorrent or the binaries are missing. No timing assertion.
"""

import argparse
import datetime
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from procgroup import stop_group  # noqa: E402

SKIP = 77
GIB = 1 << 30
MIB = 1 << 20
SEEDS = ("corewire", "corewire-base", "libtorrent")  # corewire-base: --baseline-build
GEN_BOUND = 0.90  # client core busy share from which a run is labelled generator-bound
HERE = os.path.abspath(__file__)


def parse_size(s):
    m = re.fullmatch(r"(\d+)\s*(B|KiB|MiB|GiB)?", s.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {s!r} (e.g. 1GiB, 64MiB, 4096)")
    return int(m.group(1)) << {"B": 0, None: 0, "KiB": 10, "MiB": 20, "GiB": 30}[m.group(2)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def git_commit():
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                       cwd=os.path.dirname(HERE))
    return r.stdout.strip() if r.returncode == 0 else "unknown"


# --- libtorrent roles (run as separate processes) ---

def lt_settings(port):
    """The settings every libtorrent session here shares: TCP on loopback only, plain
    handshakes (corewire speaks no encryption), nothing that finds peers by itself."""
    return {"listen_interfaces": f"127.0.0.1:{port}", "enable_dht": False, "enable_lsd": False,
            "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
            "enable_incoming_utp": False, "allow_multiple_connections_per_ip": True,
            "out_enc_policy": 2, "in_enc_policy": 2,  # pe_disabled
            "upload_rate_limit": 0, "download_rate_limit": 0, "alert_mask": 0}


def lt_add(lt, ses, torrent, save_path):
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent)
    atp.save_path = save_path
    atp.flags |= (lt.torrent_flags.disable_pex | lt.torrent_flags.disable_dht |
                  lt.torrent_flags.disable_lsd)
    # Started now, not queued: added torrents are paused and auto-managed by default.
    atp.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    return ses.add_torrent(atp)


def role_seed(args):
    """A libtorrent seed: checks the data, prints `ready`, then answers `stats` lines on stdin
    with a JSON line, until stdin closes."""
    import libtorrent as lt
    s = lt_settings(args.port)
    # Every speed-relevant knob open: no rate limits (above), 4 MiB of send buffer per peer
    # (corewire's budget is 1 MiB), every interested leecher unchoked.
    s.update({"send_buffer_watermark": 4 * MIB, "send_buffer_low_watermark": MIB,
              "send_buffer_watermark_factor": 100, "unchoke_slots_limit": 16,
              "max_allowed_in_request_queue": 2000})
    ses = lt.session(s)
    h = lt_add(lt, ses, args.torrent, args.data)
    end = time.monotonic() + 600
    while not h.status().is_seeding and time.monotonic() < end:
        time.sleep(0.05)
    if not h.status().is_seeding:
        print("not seeding after the check", flush=True)
        return 1
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "stats":
            st = h.status()
            print(json.dumps({"bytes_out": st.total_payload_upload, "peers": st.num_peers}),
                  flush=True)
    return 0


def role_leech(args):
    """One libtorrent leecher: prints `ready`; with --wait-go waits for a `go` line; connects
    to --peers (again every second to those it holds no connection with); prints a JSON line
    when complete, then keeps seeding to its peers until stdin closes."""
    import libtorrent as lt
    ses = lt.session(lt_settings(args.port))
    h = lt_add(lt, ses, args.torrent, args.save)
    peers = [(p.split(":")[0], int(p.split(":")[1])) for p in args.peers.split(",") if p]
    total = h.torrent_file().num_pieces()
    print("ready", flush=True)
    if args.wait_go and sys.stdin.readline().strip() != "go":
        return 1
    t0 = time.monotonic()
    for p in peers:
        h.connect_peer(p)
    last_connect, done = t0, None
    while True:
        st = h.status()
        now = time.monotonic()
        if done is None and st.is_seeding:
            done = now
            # The status may trail the last piece by a moment: its count is read once settled.
            while st.num_pieces < total and time.monotonic() < done + 2:
                time.sleep(0.01)
                st = h.status()
            print(json.dumps({"start": t0, "done": done, "down": st.total_payload_download,
                              "up": st.total_payload_upload, "pieces": st.num_pieces,
                              "peers": st.num_peers}), flush=True)
        if done is None and now - last_connect >= 1.0 and len(peers) > 1:
            have = {(pi.ip[0], pi.ip[1]) for pi in h.get_peer_info()}
            for p in peers:
                if p not in have:
                    h.connect_peer(p)
            last_connect = now
        r, _, _ = select.select([sys.stdin], [], [], 0.02)
        if r and not sys.stdin.readline():
            return 0


# --- measurement ---

def proc_stat():
    """Per line of /proc/stat's cpu lines: (busy, total) in clock ticks."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if not line.startswith("cpu"):
                break
            v = line.split()
            ticks = [int(x) for x in v[1:9]]  # user nice system idle iowait irq softirq steal
            out[v[0]] = (sum(ticks) - ticks[3] - ticks[4], sum(ticks))
    return out


def pid_cpu_s(pid):
    """utime + stime of a process (all its threads, those that exited too), seconds."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def window(before, after, cores):
    tck = os.sysconf("SC_CLK_TCK")
    busy = lambda k: (after[k][0] - before[k][0])  # noqa: E731
    tot = lambda k: max(1, after[k][1] - before[k][1])  # noqa: E731
    out = {"machine_cpu_s": busy("cpu") / tck}
    for name, c in cores.items():
        k = f"cpu{c}"
        out[f"{name}_core_busy"] = round(busy(k) / tot(k), 4) if k in after else None
    return out


# --- processes ---

def pinned(core):
    return ["taskset", "-c", str(core)] if core >= 0 else []


class CorewireNode:
    """A corewire process with one swarm table (a seed, or a leecher with `peers`)."""

    def __init__(self, build, tmp, core, torrent, data, port, peers=(), name="seed"):
        self.ctl = os.path.join(build, "control/corewirectl")
        self.dir = tempfile.mkdtemp(prefix=f"cw-{name}-", dir=tmp)
        self.port = port
        self.cfg = os.path.join(self.dir, "corewire.toml")
        runtime = f"cores = [{core}]" if core >= 0 else "workers = 1"
        peer_list = ", ".join(f'"127.0.0.1:{p}"' for p in peers)
        with open(self.cfg, "w") as f:
            f.write(f'[runtime]\n{runtime}\nbusy_poll = false\n[log]\nlevel = "warn"\n'
                    f'[control]\nrun_dir = "{self.dir}"\n'
                    f'[[service]]\nname = "swarm"\ntcp = "127.0.0.1:{port}"\n'
                    f'torrents = ["{torrent}"]\ndata_dir = "{data}"\ntrackers = false\n'
                    f'peers = [{peer_list}]\n')
        self.log = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(
            pinned(core) + [os.path.join(build, "app/server/corewire"), "-c", self.cfg],
            stdout=subprocess.DEVNULL, stderr=self.log, start_new_session=True)
        self.pid = self.proc.pid  # taskset execs corewire in the same process

    def counters(self):
        r = subprocess.run([self.ctl, "-c", self.cfg, "stats", "--json"], capture_output=True,
                           text=True, timeout=20)
        if r.returncode != 0:
            return None
        out = {}
        for w in json.loads(r.stdout)["workers"]:
            for k, v in w["services"].get("swarm", {}).get("counters", {}).items():
                out[k] = out.get(k, 0) + v
        return out

    def wait(self, ok, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end and self.proc.poll() is None:
            c = self.counters()
            if c and ok(c):
                return c
            time.sleep(0.1)
        raise RuntimeError(f"corewire ({self.cfg}) not ready: {self.tail()}")

    def tail(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-2000:]

    def stats(self):
        """The counters once bytes_out has held still for 0.3 s (at most ~3 s): a send is
        counted when its completion is reaped, which can come after the leechers are done."""
        c, prev = {}, None
        for _ in range(10):
            c = self.counters() or {}
            if prev is not None and c.get("bytes_out") == prev.get("bytes_out"):
                break
            prev = c
            time.sleep(0.3)
        return {"bytes_out": c.get("bytes_out", 0), "peers": c.get("peers", 0),
                "counters": c}

    def stop(self):
        stop_group(self.proc)
        self.log.close()


class LtProc:
    """This script in a libtorrent role, pinned to a core, talking on stdin/stdout (lines)."""

    def __init__(self, core, role_args):
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(pinned(core) + [sys.executable, HERE] + role_args,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, start_new_session=True)
        self.pid = self.proc.pid
        self.buf = b""

    def line(self, timeout):
        """The next line of its stdout, or None after timeout seconds or at its end."""
        end = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            r, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            chunk = os.read(fd, 65536) if r else b""
            if not chunk:
                return None
            self.buf += chunk
        ln, self.buf = self.buf.split(b"\n", 1)
        return ln.decode().strip()

    def expect_ready(self, timeout):
        ln = self.line(timeout)
        if ln != "ready":
            raise RuntimeError(f"libtorrent {self.proc.args[-8:]} not ready: {ln!r} "
                               f"{self.stop_text()}")

    def send(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def stop_text(self):
        self.stop()
        self.err.seek(0)
        return self.err.read()[-2000:]

    def stop(self):
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop_group(self.proc)


class LtSeed(LtProc):
    def __init__(self, core, torrent, data, port):
        super().__init__(core, ["--role", "seed", "--torrent", torrent, "--data", data,
                                "--port", str(port)])
        self.port = port

    def stats(self):
        self.send("stats")
        ln = self.line(10)
        return json.loads(ln) if ln else {}


def build_of(kind, a):
    """The corewire build a kind runs: --baseline-build for corewire-base, else --build."""
    return a.baseline_build if kind == "corewire-base" else a.build


def start_seed(kind, a, env):
    port = free_port()
    if kind.startswith("corewire"):
        s = CorewireNode(build_of(kind, a), env["tmp"], a.server_core, env["torrent"],
                         env["seed_data"], port)
        ready = lambda: s.wait(lambda c: c.get("torrents_complete") == 1, a.check_timeout)  # noqa
    else:
        s = LtSeed(a.server_core, env["torrent"], env["seed_data"], port)
        ready = lambda: s.expect_ready(a.check_timeout)  # noqa: E731
    try:
        ready()
    except RuntimeError:
        s.stop()  # a seed that never got ready is stopped here: the run has no handle on it
        raise
    return s


def start_lt_leecher(a, env, i, peers, wait_go):
    save = os.path.join(env["base"], f"leech-{i}")
    os.makedirs(save, exist_ok=True)
    p = LtProc(a.client_core, ["--role", "leech", "--torrent", env["torrent"], "--save", save,
                               "--port", str(free_port()),
                               "--peers", ",".join(f"127.0.0.1:{q}" for q in peers)] +
               (["--wait-go"] if wait_go else []))
    return p, save


def same_tree(a, b):
    """The first relative path whose bytes differ between trees a and b, or None."""
    for root, _, files in os.walk(a):
        for fn in files:
            pa = os.path.join(root, fn)
            pb = os.path.join(b, os.path.relpath(pa, a))
            if not os.path.exists(pb) or os.path.getsize(pa) != os.path.getsize(pb):
                return os.path.relpath(pa, a)
            with open(pa, "rb") as fa, open(pb, "rb") as fb:
                while True:
                    x, y = fa.read(MIB), fb.read(MIB)
                    if x != y:
                        return os.path.relpath(pa, a)
                    if not x:
                        break
    return None


def verify(res, a, env, saves):
    """With --verify: a run whose leecher holds a file unlike the seed's is not complete."""
    if not a.verify:
        return
    for s in saves:
        bad = same_tree(env["tree"], os.path.join(s, env["name"]))
        if bad:
            res["complete"] = False
            res["error"] = f"{s}: {bad} differs"


def stop_all(leechers, seed, saves):
    """Stops the leechers, then the seed, and removes the leechers' copies."""
    for p in leechers:
        p.stop()
    if seed:
        seed.stop()
    for d in saves:
        shutil.rmtree(d, ignore_errors=True)


def seed_run(kind, a, env, rnd):
    """Part 1: one seed (kind) to four libtorrent leechers connected only to it."""
    res = {"part": "seed", "seed": kind, "round": rnd, "complete": False}
    seed, leechers, saves = None, [], []
    try:
        seed = start_seed(kind, a, env)
        for i in range(a.leechers):
            p, save = start_lt_leecher(a, env, i, [seed.port], wait_go=True)
            leechers.append(p)
            saves.append(save)
        for p in leechers:
            p.expect_ready(60)
        cores = {"server": a.server_core, "client": a.client_core}
        st0, seed0 = proc_stat(), pid_cpu_s(seed.pid)
        leech0 = sum(pid_cpu_s(p.pid) for p in leechers)
        t0 = time.monotonic()
        for p in leechers:
            p.send("go")
        reports = []
        deadline = t0 + a.timeout
        for p in leechers:
            ln = p.line(max(0.0, deadline - time.monotonic()))
            if not ln:
                raise RuntimeError(f"a leecher did not complete in {a.timeout} s")
            reports.append(json.loads(ln))
        st1, seed1 = proc_stat(), pid_cpu_s(seed.pid)
        leech1 = sum(pid_cpu_s(p.pid) for p in leechers)
        t1 = time.monotonic()
        secs = max(r["done"] for r in reports) - min(r["start"] for r in reports)
        down = sum(r["down"] for r in reports)
        res.update(window(st0, st1, cores))
        res.update({
            "seconds": round(secs, 3), "window_s": round(t1 - t0, 3), "bytes": down,
            "goodput_mib_s": round(down / MIB / secs, 1),
            "seed_cpu_s": round(seed1 - seed0, 3),
            "seed_cpu_s_per_gib": round((seed1 - seed0) / (down / GIB), 3),
            "leechers_cpu_s": round(leech1 - leech0, 3),
            "leechers": reports, "seed_stats": seed.stats()})
        res["machine_cpu_s_per_gib"] = round(res["machine_cpu_s"] / (down / GIB), 3)
        res["generator_bound"] = (res["client_core_busy"] or 0) >= GEN_BOUND
        res["complete"] = all(r["pieces"] == env["pieces"] for r in reports)
        verify(res, a, env, saves)
    except (RuntimeError, OSError, ValueError) as e:
        res["error"] = str(e)[-3000:]
    finally:
        stop_all(leechers, seed, saves)
    return res


def swarm_run(kind, a, env, rnd):
    """Part 2: the seed and four leechers of one kind that also trade among themselves."""
    res = {"part": "swarm", "swarm": kind, "round": rnd, "complete": False}
    seed, nodes, saves = None, [], []
    try:
        seed = start_seed(kind, a, env)
        ports = [free_port() for _ in range(a.leechers)]
        st0 = proc_stat()
        t0 = time.monotonic()
        done = [None] * a.leechers
        for i in range(a.leechers):
            save = os.path.join(env["base"], f"leech-{i}")
            os.makedirs(save, exist_ok=True)
            saves.append(save)
            peers = [seed.port] + ports[:i]
            if kind.startswith("corewire"):
                nodes.append(CorewireNode(build_of(kind, a), env["tmp"], a.client_core,
                                          env["torrent"], save, ports[i], peers,
                                          name=f"leech{i}"))
            else:
                nodes.append(LtProc(a.client_core, [
                    "--role", "leech", "--torrent", env["torrent"], "--save", save,
                    "--port", str(ports[i]),
                    "--peers", ",".join(f"127.0.0.1:{q}" for q in peers)]))
        deadline = t0 + a.timeout
        while None in done and time.monotonic() < deadline:
            for i, n in enumerate(nodes):
                if done[i] is not None:
                    continue
                if kind.startswith("corewire"):
                    c = n.counters()
                    if c and c.get("torrents_complete") == 1:
                        done[i] = time.monotonic()
                else:
                    ln = n.line(0)
                    if ln and ln.startswith("{"):
                        done[i] = json.loads(ln)["done"]
                    elif n.proc.poll() is not None:
                        raise RuntimeError(f"leecher {i} exited: {n.stop_text()}")
            # corewirectl is a process per look: every 0.2 s keeps it off the leechers' core.
            time.sleep(0.2 if kind.startswith("corewire") else 0.05)
        if None in done:
            raise RuntimeError(f"leechers {[i for i, d in enumerate(done) if d is None]} did "
                               f"not complete in {a.timeout} s")
        st1 = proc_stat()
        res.update(window(st0, st1, {"server": a.server_core, "client": a.client_core}))
        res["seconds"] = round(max(done) - t0, 3)
        res["leecher_seconds"] = [round(d - t0, 3) for d in done]
        res["seed_stats"] = seed.stats()
        if kind.startswith("corewire"):
            res["leecher_counters"] = [
                {k: c.get(k) for k in ("bytes_in", "corewire_bytes_in", "corewire_bytes_out",
                                       "bad_pieces", "handshakes")}
                for c in (n.counters() or {} for n in nodes)]
        res["complete"] = True
        verify(res, a, env, saves)
    except (RuntimeError, OSError, ValueError) as e:
        res["error"] = str(e)[-3000:]
    finally:
        stop_all(nodes, seed, saves)
    return res


# --- data ---

def file_sizes(total, n):
    """n sizes summing to total, unequal (weights 1..n, shuffled), none a multiple of 16 KiB
    where avoidable, so pieces and blocks straddle file boundaries."""
    w = list(range(1, n + 1))
    random.Random(18).shuffle(w)
    sizes = [total * x // sum(w) + 777 * (i % 2) for i, x in enumerate(w)]
    sizes[-1] = total - sum(sizes[:-1])
    return sizes


def make_data(a):
    import libtorrent as lt
    need = a.size * (1 + a.leechers) + 256 * MIB
    shm = shutil.disk_usage("/dev/shm").free if os.path.isdir("/dev/shm") else 0
    parent = "/dev/shm" if shm >= need and not a.no_tmpfs else None
    base = tempfile.mkdtemp(prefix="cw-swarm-bench-", dir=parent)
    fs_type = "tmpfs (/dev/shm)" if parent else f"disk ({tempfile.gettempdir()})"
    seed_data = os.path.join(base, "seed")
    name = "tree"
    tree = os.path.join(seed_data, name)
    for i, n in enumerate(file_sizes(a.size, a.files)):
        p = os.path.join(tree, f"dir{i % 2}", f"file{i}.bin")
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            while n:
                k = min(n, 16 * MIB)
                f.write(os.urandom(k))
                n -= k
    fs = lt.file_storage()
    lt.add_files(fs, tree)
    t = lt.create_torrent(fs, a.piece_size, lt.create_torrent.v1_only)
    lt.set_piece_hashes(t, seed_data)
    torrent = os.path.join(base, "bench.torrent")
    with open(torrent, "wb") as f:
        f.write(lt.bencode(t.generate()))
    ti = lt.torrent_info(torrent)
    return {"base": base, "tmp": base, "seed_data": seed_data, "tree": tree, "name": name,
            "torrent": torrent, "pieces": ti.num_pieces(), "data_fs": fs_type}


# --- summary ---

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    xs = [x for x in xs if x is not None]
    return [min(xs), max(xs)] if xs else None


def summarize(runs):
    out = {"seed": {}, "swarm": {}}
    for kind in SEEDS:
        rs = [r for r in runs if r["part"] == "seed" and r["seed"] == kind and r["complete"]]
        if rs:
            out["seed"][kind] = {
                k: {"median": med(r[k] for r in rs), "range": spread(r[k] for r in rs)}
                for k in ("seconds", "goodput_mib_s", "seed_cpu_s", "seed_cpu_s_per_gib",
                          "machine_cpu_s", "machine_cpu_s_per_gib", "server_core_busy",
                          "client_core_busy")}
            out["seed"][kind]["runs"] = len(rs)
            out["seed"][kind]["generator_bound_runs"] = sum(r["generator_bound"] for r in rs)
        ss = [r for r in runs if r["part"] == "swarm" and r["swarm"] == kind and r["complete"]]
        if ss:
            out["swarm"][kind] = {"seconds": {"median": med(r["seconds"] for r in ss),
                                              "range": spread(r["seconds"] for r in ss)},
                                  "client_core_busy": med(r["client_core_busy"] for r in ss),
                                  "runs": len(ss)}
    # Ratios corewire / `ref` per round (both runs of the round complete), then medians.
    def paired(part, key, field, ref="libtorrent"):
        rounds = {}
        for r in runs:
            if r["part"] == part and r["complete"]:
                rounds.setdefault(r["round"], {})[r[key]] = r[field]
        rs = [v["corewire"] / v[ref] for v in rounds.values() if "corewire" in v and v.get(ref)]
        return {"median": med(rs), "range": spread(rs), "rounds": len(rs)}
    g = paired("seed", "seed", "goodput_mib_s")
    c = paired("seed", "seed", "seed_cpu_s_per_gib")
    m = paired("seed", "seed", "machine_cpu_s_per_gib")
    out["ratios"] = {"goodput": g, "seed_cpu_per_gib": c, "machine_cpu_per_gib": m,
                     "swarm_seconds": paired("swarm", "swarm", "seconds")}
    if "corewire-base" in out["seed"]:
        out["ratios_vs_base"] = {
            f: paired("seed", "seed", k, "corewire-base")
            for f, k in (("goodput", "goodput_mib_s"), ("seed_cpu_per_gib", "seed_cpu_s_per_gib"),
                         ("machine_cpu_per_gib", "machine_cpu_s_per_gib"))}
    out["goals"] = {
        "goodput >= 2x": None if g["median"] is None else g["median"] >= 2.0,
        "seed CPU per GiB <= 0.5x": None if c["median"] is None else c["median"] <= 0.5}
    return out


def fmt(v, spec=".2f"):
    if v is None:
        return "-"
    return format(v, spec)


def markdown(doc):
    s, p = doc["summary"], doc["params"]
    L = ["# Swarm: one seed to four leechers, corewire vs libtorrent (issue 18)\n",
         f"Command: `{doc['command']}`  ",
         f"Date: {doc['date']}, commit `{doc['commit']}`, machine: {doc['machine']['cpus']} "
         f"CPUs, load {doc['machine']['load'][0]:.1f} after the runs (1-min average: the "
         f"benchmark's own threads count). {doc['note']}\n",
         f"Torrent: {p['size'] / MIB:g} MiB in {p['files']} files, {p['piece_size'] // 1024} KiB "
         f"pieces, data on {doc['data_fs']}; seed on core {p['server_core']}, "
         f"{p['leechers']} libtorrent leechers (one process each) on core {p['client_core']}. "
         "Medians over complete runs, range in brackets.\n",
         "| seed | runs | seconds | goodput MiB/s | seed CPU s | seed CPU s / GiB | "
         "machine CPU s / GiB | server core busy | client core busy | generator-bound runs |",
         "|---|---|---|---|---|---|---|---|---|---|"]

    def mr(d, spec=".2f"):
        lo, hi = d["range"] or (None, None)
        return f"{fmt(d['median'], spec)} ({fmt(lo, spec)}..{fmt(hi, spec)})"
    for kind, v in s["seed"].items():
        L.append(f"| {kind} | {v['runs']} | {mr(v['seconds'])} | {mr(v['goodput_mib_s'], '.0f')} "
                 f"| {mr(v['seed_cpu_s'])} | {mr(v['seed_cpu_s_per_gib'], '.3f')} | "
                 f"{mr(v['machine_cpu_s_per_gib'], '.3f')} | {mr(v['server_core_busy'])} | "
                 f"{mr(v['client_core_busy'])} | {v['generator_bound_runs']} |")
    r = s["ratios"]
    L.append("")
    L.append("| corewire / libtorrent (median of per-round ratios) | ratio | goal | met? |")
    L.append("|---|---|---|---|")
    gb = any(v.get("generator_bound_runs") for v in s["seed"].values())

    def goal(key):
        v = s["goals"][key]
        return "-" if v is None else ("yes" if v else "**no**")
    L.append(f"| upload goodput | {fmt(r['goodput']['median'])}x "
             f"{'(generator-bound)' if gb else ''} | >= 2x | {goal('goodput >= 2x')} |")
    L.append(f"| seed CPU per GiB | {fmt(r['seed_cpu_per_gib']['median'])}x | <= 0.5x | "
             f"{goal('seed CPU per GiB <= 0.5x')} |")
    L.append(f"| whole-machine CPU per GiB | {fmt(r['machine_cpu_per_gib']['median'])}x | - | - |")
    L.append(f"| swarm time to finish | {fmt(r['swarm_seconds']['median'])}x | - | - |")
    if s.get("ratios_vs_base", {}).get("goodput", {}).get("rounds"):
        b = s["ratios_vs_base"]
        L.append("")
        L.append("| corewire / corewire-base (--baseline-build; median of per-round ratios) | "
                 "goodput | seed CPU per GiB | whole-machine CPU per GiB |")
        L.append("|---|---|---|---|")
        L.append(f"| ratio (range) | {mr(b['goodput'])}x | {mr(b['seed_cpu_per_gib'])}x | "
                 f"{mr(b['machine_cpu_per_gib'])}x |")
    if s["swarm"]:
        L.append("")
        L.append("| swarm (seed + 4 leechers trading) | runs | seconds to finish | "
                 "client core busy |")
        L.append("|---|---|---|---|")
        for kind, v in s["swarm"].items():
            L.append(f"| {kind} | {v['runs']} | {mr(v['seconds'])} | "
                     f"{fmt(v['client_core_busy'])} |")
    bad = [x for x in doc["runs"] if not x["complete"]]
    if bad:
        L.append("")
        L.append(f"Incomplete runs (kept in the JSON): {len(bad)}: " + "; ".join(
            f"{x['part']} {x.get('seed', x.get('swarm'))} round {x['round']}: "
            f"{x.get('error', '?')[:200]}" for x in bad))
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=["bench", "seed", "leech"], default="bench",
                    help=argparse.SUPPRESS)
    ap.add_argument("--torrent", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--save", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--peers", default="", help=argparse.SUPPRESS)
    ap.add_argument("--wait-go", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--build", default="build")
    ap.add_argument("--baseline-build",
                    help="another corewire build, run as seed `corewire-base` in the same "
                         "rounds (before/after on the same machine state)")
    ap.add_argument("--size", type=parse_size, default=GIB)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--piece-size", type=parse_size, default=MIB)
    ap.add_argument("--leechers", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="paired rounds of part 1")
    ap.add_argument("--swarm-rounds", type=int, default=1, help="paired rounds of part 2")
    ap.add_argument("--seeds", default="corewire,libtorrent")
    ap.add_argument("--server-core", type=int, default=1)
    ap.add_argument("--client-core", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per run, bounded")
    ap.add_argument("--check-timeout", type=float, default=300)
    ap.add_argument("--no-tmpfs", action="store_true", help="data under the temp directory")
    ap.add_argument("--verify", action="store_true", help="compare every leecher's files")
    ap.add_argument("--out")
    ap.add_argument("--md")
    ap.add_argument("--note", default="")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.role == "seed":
        return role_seed(a)
    if a.role == "leech":
        return role_leech(a)
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        print("skip: python3-libtorrent not installed", file=sys.stderr)
        return SKIP
    if a.smoke:
        a.size, a.piece_size, a.rounds, a.swarm_rounds = 8 * MIB, 256 * 1024, 1, 1
        a.verify, a.timeout, a.check_timeout = True, 60, 30
    for build in [a.build] + ([a.baseline_build] if a.baseline_build else []):
        for exe in ("app/server/corewire", "control/corewirectl"):
            if not os.path.exists(os.path.join(build, exe)):
                print(f"skip: {build}/{exe} not built", file=sys.stderr)
                return SKIP
    if shutil.which("taskset") is None or max(a.server_core, a.client_core) >= (os.cpu_count() or 1):
        a.server_core = a.client_core = -1  # not pinned
    kinds = [k for k in a.seeds.split(",") if k]
    if a.baseline_build and "corewire-base" not in kinds:
        kinds.insert(1, "corewire-base")
    # A SIGTERM (meson's timeout) unwinds, so the finally blocks stop every process started
    # and remove the data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = make_data(a)
    runs = []
    try:
        for rnd in range(a.rounds):
            for kind in (kinds if rnd % 2 == 0 else kinds[::-1]):
                r = seed_run(kind, a, env, rnd)
                runs.append(r)
                print(f"seed {kind} round {rnd}: " + (
                    f"{r['seconds']} s, {r['goodput_mib_s']} MiB/s, seed CPU "
                    f"{r['seed_cpu_s']} s ({r['seed_cpu_s_per_gib']} s/GiB), client core "
                    f"{r['client_core_busy']}, server core {r['server_core_busy']}"
                    if r["complete"] else f"INCOMPLETE: {r.get('error')}"),
                    file=sys.stderr, flush=True)
        for rnd in range(a.swarm_rounds):
            for kind in (kinds if rnd % 2 == 0 else kinds[::-1]):
                r = swarm_run(kind, a, env, rnd)
                runs.append(r)
                print(f"swarm {kind} round {rnd}: " + (
                    f"{r['seconds']} s (leechers {r['leecher_seconds']})" if r["complete"]
                    else f"INCOMPLETE: {r.get('error')}"), file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(env["base"], ignore_errors=True)
    doc = {"command": " ".join(["/usr/bin/python3", "bench/scripts/swarm_bench.py"] +
                               sys.argv[1:]),
           "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "commit": git_commit(), "note": a.note, "data_fs": env["data_fs"],
           "machine": {"cpus": os.cpu_count(), "load": os.getloadavg()},
           "params": {k: getattr(a, k) for k in
                      ("size", "files", "piece_size", "leechers", "rounds", "swarm_rounds",
                       "server_core", "client_core")},
           "summary": summarize(runs), "runs": runs}
    if a.out:
        with open(a.out, "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
    if a.md:
        with open(a.md, "w") as f:
            f.write(markdown(doc))
    print(markdown(doc))
    if a.smoke:
        # Every run of both parts, with both seeds, delivered the whole torrent to every
        # leecher byte for byte, and the seed counted what it sent.
        want = {("seed", k) for k in kinds} | {("swarm", k) for k in kinds}
        got = {(r["part"], r.get("seed", r.get("swarm"))) for r in runs if r["complete"]}
        for r in runs:
            if r["part"] == "seed" and r["complete"] and \
                    r["seed_stats"].get("bytes_out", 0) < a.leechers * a.size:
                print(f"FAIL: {r['seed']} seed sent {r['seed_stats']}", file=sys.stderr)
                return 1
        if got != want:
            print(f"FAIL: incomplete: {sorted(want - got)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
