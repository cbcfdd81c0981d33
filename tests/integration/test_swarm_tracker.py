"""A BitTorrent swarm through a real tracker (docs/swarm.md, issue 18's acceptance), on the
real binary over loopback: Debian's opentracker, a libtorrent seed (python3-libtorrent),
aria2c (Debian aria2) and two corewire nodes, which learn of every peer only from the
tracker (no `peers` in their config).

- The swarm completes, every copy byte-identical; blocks flow between the two corewire
  nodes (their corewire_bytes_in/out counters); the tracker counts both as seeds once they
  are done (our `completed`/left) and one fewer after one stops (our `stopped`).
- A corewire node killed (SIGKILL) mid-transfer does not stop the rest: the other corewire
  node and aria2c complete.
- An info-hash the tracker does not list: its failure reason is counted (tracker_failures).
The seed's upload rate is limited so the leechers overlap and trade pieces. Every wait is
bounded; every process is stopped. Exits 77 without opentracker, aria2c or libtorrent.
"""

import hashlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

for tool in ("opentracker", "aria2c"):
    if shutil.which(tool) is None:
        print(f"SKIP: {tool} not installed")
        sys.exit(77)

try:
    import libtorrent as lt
except ImportError:
    print("SKIP: python3-libtorrent not installed")
    sys.exit(77)

import harness as h
from test_swarm import Corewire, lt_session

PIECE = 32768
# A few MiB in several files, the last piece short.
FILES = {"a.bin": 1200000, "sub/b.bin": 1700003, "sub/c.txt": 999, "z/d.bin": 600000}
TOTAL = sum(FILES.values())
NPIECES = (TOTAL + PIECE - 1) // PIECE
SEED_RATE = 600 * 1024  # bytes/s the libtorrent seed uploads, all peers together


def make_tree(root, seed):
    rnd = random.Random(seed)
    for rel, n in FILES.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(rnd.randbytes(n))


def tree_digest(root):
    out = {}
    for rel in FILES:
        with open(os.path.join(root, rel), "rb") as f:
            out[rel] = hashlib.sha256(f.read()).hexdigest()
    return out


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


class Tracker:
    """opentracker on a free loopback port, serving only the info-hashes in its whitelist
    (Debian builds it with a whitelist)."""

    def __init__(self, tmp, info_hashes, port):
        self.dir = tempfile.mkdtemp(prefix="ot-", dir=tmp)
        os.chmod(self.dir, 0o755)
        with open(os.path.join(self.dir, "whitelist"), "w") as f:
            f.writelines(x.hex() + "\n" for x in info_hashes)
        self.port = port
        self.log = open(os.path.join(self.dir, "log"), "w+")
        # -d: the directory it chroots to when started as root; the whitelist is read there.
        self.proc = subprocess.Popen(
            ["opentracker", "-i", "127.0.0.1", "-p", str(self.port), "-P", str(self.port),
             "-d", self.dir, "-w", "whitelist"],
            cwd=self.dir, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)
        try:
            wait_port(self.port)
        except AssertionError:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{self.port}/announce"

    def scrape(self, info_hash):
        """(complete, incomplete, downloaded) for one torrent, from its scrape page."""
        q = urllib.parse.quote_from_bytes(info_hash)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/scrape?info_hash={q}",
                                    timeout=5) as r:
            body = lt.bdecode(r.read())
        f = body[b"files"].get(info_hash, {})
        return f.get(b"complete", 0), f.get(b"incomplete", 0), f.get(b"downloaded", 0)

    def stop(self):
        self.proc.kill()
        self.proc.wait(5)
        self.log.close()


class Aria2:
    """aria2c as a leecher: trackers only (no DHT, LPD or PEX), exits once complete."""

    def __init__(self, tmp, torrent, dest):
        self.log = open(os.path.join(tmp, f"aria2-{os.path.basename(dest)}.log"), "w+")
        self.proc = subprocess.Popen(
            ["aria2c", f"--dir={dest}", "--seed-time=0", "--bt-enable-lpd=false",
             "--enable-dht=false", "--enable-dht6=false", "--enable-peer-exchange=false",
             "--bt-tracker-connect-timeout=5", "--bt-tracker-timeout=5",
             f"--listen-port={h.free_port()}", "--file-allocation=none", "--check-certificate=false",
             "--summary-interval=0", "--console-log-level=warn", "--no-conf=true",
             "--bt-stop-timeout=60", torrent],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def output(self):
        self.log.seek(0)
        return self.log.read()[-3000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


class SwarmTrackerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cw-swarm-trk-")
        cls.seed_dir = os.path.join(cls.tmp, "seed")
        cls.tree = os.path.join(cls.seed_dir, "tree")
        make_tree(cls.tree, 23)
        cls.want = tree_digest(cls.tree)
        # Two torrents of the same tree whose info-hashes differ (a private flag), one
        # whitelisted by the tracker and one not.
        fs = lt.file_storage()
        lt.add_files(fs, cls.tree)
        cls.torrents, cls.hashes = {}, {}
        cls.tracker_port = h.free_port()  # each test starts opentracker there afresh
        for name, private in (("listed", False), ("unlisted", True)):
            t = lt.create_torrent(fs, PIECE, lt.create_torrent.v1_only)
            t.add_tracker(f"http://127.0.0.1:{cls.tracker_port}/announce")
            t.set_priv(private)
            lt.set_piece_hashes(t, cls.seed_dir)
            path = os.path.join(cls.tmp, f"{name}.torrent")
            with open(path, "wb") as f:
                f.write(lt.bencode(t.generate()))
            cls.torrents[name] = path
            cls.hashes[name] = bytes.fromhex(str(lt.torrent_info(path).info_hashes().v1))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def setUp(self):
        self.procs = []
        self.tracker = Tracker(self.tmp, [self.hashes["listed"]], self.tracker_port)

    def tearDown(self):
        for p in reversed(self.procs):
            try:
                p.stop()
            except Exception:  # keep stopping the rest
                pass
        if self.tracker:
            self.tracker.stop()

    def fresh_dir(self, name):
        d = os.path.join(self.tmp, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def lt_seed(self):
        ses = lt_session()
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(self.torrents["listed"])
        atp.save_path = self.seed_dir
        hd = ses.add_torrent(atp)
        # The torrent's own limit: the session's would not apply to loopback peers (libtorrent
        # puts local networks in a peer class without rate limits).
        hd.set_upload_limit(SEED_RATE)
        end = time.monotonic() + 30
        while not hd.status().is_seeding and time.monotonic() < end:
            time.sleep(0.05)
        self.assertTrue(hd.status().is_seeding, "libtorrent did not start seeding in 30 s")

        class Seed:
            def stop(self_):
                ses.remove_torrent(hd)
                ses.pause()

        seed = Seed()
        self.procs.append(seed)
        # It announces on its own (started); wait until the tracker knows it.
        end = time.monotonic() + 15
        while self.tracker.scrape(self.hashes["listed"])[0] < 1 and time.monotonic() < end:
            hd.force_reannounce()
            time.sleep(0.3)
        self.assertGreaterEqual(self.tracker.scrape(self.hashes["listed"])[0], 1,
                                "the libtorrent seed did not announce")
        return seed

    def corewire(self, dest, torrent="listed"):
        cw = Corewire(self.tmp, f'torrents = ["{self.torrents[torrent]}"]\n'
                      f'data_dir = "{dest}"\nidle_timeout = "20s"')
        self.procs.append(cw)
        return cw

    def aria2(self, dest):
        a = Aria2(self.tmp, self.torrents["listed"], dest)
        self.procs.append(a)
        return a

    def check_tree(self, dest, who):
        self.assertEqual(tree_digest(os.path.join(dest, "tree")), self.want,
                         f"{who}'s copy differs")

    def test_swarm_completes_with_pieces_between_corewire_nodes(self):
        t0 = time.monotonic()
        self.lt_seed()
        da, db, dx = (self.fresh_dir(n) for n in ("cw-a", "cw-b", "aria2"))
        a = self.corewire(da)
        b = self.corewire(db)
        x = self.aria2(dx)
        ca = a.wait(lambda c: c["torrents_complete"] == 1, 45, "corewire A to complete")
        cb = b.wait(lambda c: c["torrents_complete"] == 1, 45, "corewire B to complete")
        rc = x.wait(45)
        self.assertEqual(rc, 0, f"aria2c: {x.output()}")
        for d, who in ((da, "corewire A"), (db, "corewire B"), (dx, "aria2c")):
            self.check_tree(d, who)
        ca, cb = a.counters(), b.counters()
        for c, cw in ((ca, a), (cb, b)):
            self.assertGreaterEqual(c["tracker_replies"], 1, c)
            self.assertGreaterEqual(c["tracker_peers"], 1, c)
            self.assertEqual((c["tracker_failures"], c["tracker_errors"], c["bad_pieces"],
                              c["protocol_errors"]), (0, 0, 0, 0), f"{c}\n{cw.server.log()}")
            self.assertEqual(c["pieces_done"], NPIECES, c)
        # Blocks flowed between the corewire nodes (each counts bytes to and from peers whose
        # peer id carries our prefix), and both ways agree within what was in flight.
        between = ca["corewire_bytes_in"] + cb["corewire_bytes_in"]
        self.assertGreaterEqual(between, 16384, (ca, cb))
        self.assertGreaterEqual(ca["corewire_bytes_out"] + cb["corewire_bytes_out"], between)
        # The tracker holds both as seeds (left = 0 after `completed`), with the libtorrent
        # seed; aria2c has left (`stopped`).
        end = time.monotonic() + 10
        while self.tracker.scrape(self.hashes["listed"])[0] < 3 and time.monotonic() < end:
            time.sleep(0.2)
        complete, _, downloaded = self.tracker.scrape(self.hashes["listed"])
        self.assertEqual(complete, 3, (complete, downloaded))
        self.assertGreaterEqual(downloaded, 2)
        # A stopped corewire node tells the tracker (`stopped`): one seed fewer.
        a.stop()
        end = time.monotonic() + 10
        while self.tracker.scrape(self.hashes["listed"])[0] != 2 and time.monotonic() < end:
            time.sleep(0.2)
        self.assertEqual(self.tracker.scrape(self.hashes["listed"])[0], 2)
        print(f"swarm of 4 through opentracker: {TOTAL} bytes, {time.monotonic() - t0:.1f} s; "
              f"corewire to corewire {between} bytes")

    def test_peer_killed_mid_transfer_does_not_stop_the_rest(self):
        self.lt_seed()
        da, db, dx = (self.fresh_dir(n) for n in ("kill-a", "kill-b", "kill-aria2"))
        a = self.corewire(da)
        b = self.corewire(db)
        x = self.aria2(dx)
        # Kill A once it holds some pieces and trades (but is far from done).
        a.wait(lambda c: c["pieces_have"] >= 4, 30, "corewire A to hold some pieces")
        ca = a.counters()
        self.assertLess(ca["pieces_have"], NPIECES, "A completed before it could be killed")
        a.server.proc.kill()
        a.server.proc.wait(5)
        cb = b.wait(lambda c: c["torrents_complete"] == 1, 45, "corewire B to complete")
        rc = x.wait(45)
        self.assertEqual(rc, 0, f"aria2c: {x.output()}")
        self.check_tree(db, "corewire B")
        self.check_tree(dx, "aria2c")
        self.assertEqual((cb["bad_pieces"], cb["protocol_errors"]), (0, 0), cb)

    def test_unlisted_torrent_failure_reason_is_counted(self):
        cw = self.corewire(self.fresh_dir("unlisted"), "unlisted")
        c = cw.wait(lambda c: c["tracker_failures"] >= 1, 15, "the tracker's failure reason")
        self.assertEqual((c["tracker_replies"], c["tracker_peers"], c["connects"]), (0, 0, 0))
        self.assertIn("failure reason", cw.server.log())


if __name__ == "__main__":
    unittest.main(verbosity=2)
