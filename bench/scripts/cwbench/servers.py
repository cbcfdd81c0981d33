"""The servers a table can measure, started on a free port pinned to the server core.

A server spec is a dict: {"name": "...", "type": ..., options}. Types:
  corewire     app/server/corewire; "backend" (io_uring | epoll), "runtime": extra
               [runtime] keys (e.g. {"busy_poll": true}); unset keys keep the defaults;
               "service": the service to run (default echo, or sockperf-echo for proto
               sockperf; "kv" for proto memcached).
               "service_config": that service table's own keys (e.g. {"memory_limit": "8GiB"}).
  kernel-echo  bench/reference cw-kernel-echo; "busy_poll", "gso" (default true), "gro".
  uring-echo   bench/reference cw-uring-echo (UDP only); "busy_poll", "gso", "gro" (with
               buffers that hold a whole run).
  sockperf     the stock `sockperf server` (sockperf dialect only).
  memcached    Debian's memcached (proto memcached only), `-t 1` on the port for TCP and
               UDP; "args": more memcached arguments (e.g. ["-m", "4096"]).
  nats-server  Debian's nats-server (proto nats only, TCP) on 127.0.0.1, pinned with taskset
               and GOMAXPROCS=1 (one core, as corewire gets); "args": more arguments.
               corewire runs its "pubsub" service for proto nats.
  command      any program: "argv" with {port}, {core}, {transport} substituted.
"""
import os
import subprocess
import tempfile
import time

from procgroup import stop_group

UDP_ONLY = {"uring-echo"}
NATS_SERVERS = {"corewire", "nats-server", "command"}  # the ones that speak NATS


def supports(spec, transport, proto):
    if spec["type"] in UDP_ONLY and transport != "udp":
        return False
    if spec["type"] == "sockperf" and proto != "sockperf":
        return False
    if spec["type"] == "memcached" and proto != "memcached":
        return False
    if proto == "memcached" and spec["type"] not in ("memcached", "corewire", "command"):
        return False
    if spec["type"] == "nats-server" and proto != "nats":
        return False
    if proto == "nats" and (transport != "tcp" or spec["type"] not in NATS_SERVERS):
        return False
    return transport in spec.get("transports", ("udp", "tcp"))


def argv_for(spec, build, transport, proto, port, core):
    """(argv, temp file to remove or None)."""
    t = spec["type"]
    ref = os.path.join(build, "bench/reference")
    if t == "corewire":
        rt = {"backend": spec.get("backend", "io_uring"), "cores": [core], **spec.get("runtime", {})}
        lines = ["[runtime]"] + [f"{k} = {toml(v)}" for k, v in rt.items()]
        svc = spec.get("service", {"sockperf": "sockperf-echo", "memcached": "kv",
                                   "nats": "pubsub"}.get(proto, "echo"))
        # kv: TCP and UDP on the port, as memcached -p P -U P (the preload sets over TCP).
        both = ("udp", "tcp") if proto == "memcached" else (transport,)
        lines += ["[[service]]", f'name = "{svc}"'] + [f"{t} = {port}" for t in both]
        lines += [f"{k} = {toml(v)}" for k, v in spec.get("service_config", {}).items()]
        cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
        cfg.write("\n".join(lines) + "\n")
        cfg.close()
        return [os.path.join(build, "app/server/corewire"), "-c", cfg.name], cfg.name
    if t in ("kernel-echo", "uring-echo"):
        argv = [os.path.join(ref, "cw-" + t), f"--{transport}", f"127.0.0.1:{port}",
                "--core", str(core), "--mode", "raw" if proto == "raw" else proto]
        argv += ["--busy-poll"] if spec.get("busy_poll") else []
        argv += [] if spec.get("gso", True) else ["--no-gso"]
        argv += ["--gro"] if spec.get("gro") else []
        if spec.get("gro") and t == "uring-echo":  # buffers that hold a whole run
            argv += ["--buf-size", "65664", "--bufs", "1024"]
        return argv, None
    if t == "sockperf":
        return (["taskset", "-c", str(core), "sockperf", "server", "-i", "127.0.0.1", "-p",
                 str(port)] + (["--tcp"] if transport == "tcp" else []), None)
    if t == "memcached":
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        return (["taskset", "-c", str(core), "memcached", "-p", str(port), "-U", str(port),
                 "-l", "127.0.0.1", "-t", "1"] + user + [str(a) for a in spec.get("args", [])],
                None)
    if t == "nats-server":
        return (["taskset", "-c", str(core), "env", "GOMAXPROCS=1", "nats-server", "-a",
                 "127.0.0.1", "-p", str(port)] + [str(a) for a in spec.get("args", [])], None)
    if t == "command":
        return [a.format(port=port, core=core, transport=transport) for a in spec["argv"]], None
    raise ValueError(f"unknown server type {t!r}")


def toml(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(toml(x) for x in v) + "]"
    return str(v)


def port_bound(port, transport):
    """Whether something listens on 127.0.0.1/0.0.0.0:port (TCP: LISTEN state)."""
    path = "/proc/net/udp" if transport == "udp" else "/proc/net/tcp"
    want = f":{port:04X}"
    with open(path) as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1].endswith(want) and (transport == "udp" or fields[3] == "0A"):
                return True
    return False


class Server:
    def __init__(self, spec, build, transport, proto, port, core):
        self.spec, self.transport, self.port = spec, transport, port
        self.argv, self._tmp = argv_for(spec, build, transport, proto, port, core)
        self.proc, self.stdout = None, ""

    def __enter__(self):
        self._out = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(self.argv, stdout=self._out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 15
        while not port_bound(self.port, self.transport):
            if self.proc.poll() is not None or time.time() > deadline:
                self.__exit__()
                raise RuntimeError(f"server did not start: {' '.join(self.argv)}\n{self.stdout}")
            time.sleep(0.05)
        time.sleep(0.2)  # the port is bound before the loop runs
        return self

    def __exit__(self, *exc):
        stop_group(self.proc, timeout=5)
        self._out.seek(0)
        self.stdout = self._out.read()[-4000:]
        self._out.close()
        if self._tmp:
            os.unlink(self._tmp)
