"""The swarm service end to end (docs/swarm.md), on the real binary over loopback, with a real
BitTorrent client: Python's libtorrent (Debian python3-libtorrent, so /usr/bin/python3).

- libtorrent downloads a multi-file torrent (several files, the last piece short) from a
  corewire seed it is given as a peer; the files are byte-identical.
- corewire downloads the same torrent from a libtorrent seed given in its config.
- A peer (in Python) that sends one corrupted piece once: corewire discards it, counts it,
  fetches it again and completes.
- Bad input against a seed: a wrong info-hash, oversized lengths, a request for the one piece
  whose data on disk is corrupted (so never announced; rejected, BEP 6), a silent peer
  (closed by the idle timer). Each is a counted close or answer, and the seed keeps serving.
Every wait is bounded; every process and session is stopped. Exits 77 without libtorrent.
"""

import hashlib
import os
import random
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
import unittest

try:
    import libtorrent as lt
except ImportError:
    print("SKIP: python3-libtorrent not installed")
    sys.exit(77)

import harness as h

CTL = os.environ.get("COREWIRECTL", "build/control/corewirectl")
PIECE = 32768
# Sizes whose sum is not a multiple of PIECE (a short last piece); one file is empty.
FILES = {"a.bin": 1000000, "sub/b.bin": 1500001, "sub/c.txt": 777, "sub/empty": 0,
         "z/e.bin": 700000}
TOTAL = sum(FILES.values())
NPIECES = (TOTAL + PIECE - 1) // PIECE


def lt_session():
    s = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
         "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
         "enable_incoming_utp": False, "allow_multiple_connections_per_ip": True,
         "out_enc_policy": 2, "in_enc_policy": 2}  # 2: pe_disabled (plain handshakes)
    return lt.session(s)


def make_tree(root):
    rnd = random.Random(18)
    for rel, n in FILES.items():
        p = os.path.join(root, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(rnd.randbytes(n))


def same_tree(a, b):
    """The first file that differs between trees a and b, or None (an empty file may be
    absent: clients need not create it)."""
    for rel, n in FILES.items():
        pb = os.path.join(b, rel)
        if n == 0 and not os.path.exists(pb):
            continue
        with open(os.path.join(a, rel), "rb") as fa, open(pb, "rb") as fb:
            if fa.read() != fb.read():
                return rel
    return None


def is_pad(fs, i):
    return bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)


def stream(ti, save_path):
    """The torrent's byte stream, the files in torrent order (pad files are zeros)."""
    fs = ti.files()
    out = bytearray()
    for i in range(fs.num_files()):
        if is_pad(fs, i):
            out += bytes(fs.file_size(i))
            continue
        with open(os.path.join(save_path, fs.file_path(i)), "rb") as f:
            out += f.read()
    assert len(out) == ti.total_size()
    return bytes(out)


def flip_byte(ti, save_path, off):
    """Changes the byte at offset off of the torrent's stream, in whichever file holds it."""
    fs = ti.files()
    for i in range(fs.num_files()):
        start, n = fs.file_offset(i), fs.file_size(i)
        if start <= off < start + n and not is_pad(fs, i):
            with open(os.path.join(save_path, fs.file_path(i)), "r+b") as f:
                f.seek(off - start)
                b = f.read(1)
                f.seek(off - start)
                f.write(bytes([b[0] ^ 1]))
            return
    raise AssertionError(f"no file holds offset {off}")


class Corewire:
    """One corewire process with one swarm table; stats through corewirectl."""

    def __init__(self, tmp, keys, tcp=True):
        self.dir = tempfile.mkdtemp(prefix="cw-run-", dir=tmp)
        self.port = h.free_port() if tcp else None
        backend = os.environ.get("CW_TEST_BACKEND", "auto")
        listen = f'tcp = "127.0.0.1:{self.port}"\n' if tcp else ""
        cfg = (f'[runtime]\nbackend = "{backend}"\nworkers = 1\n[log]\nlevel = "info"\n'
               f'[control]\nrun_dir = "{self.dir}"\n'
               f'[[service]]\nname = "swarm"\n{listen}{keys}\n')
        self.server = h.Server(cfg)

    def counters(self):
        return h.service_counters(CTL, self.server.cfg.name, "swarm")

    def wait(self, ok, timeout, what):
        end = time.monotonic() + timeout
        c = self.counters()
        while time.monotonic() < end and not ok(c):
            time.sleep(0.1)
            c = self.counters()
        if not ok(c):
            raise AssertionError(f"timed out waiting for {what}: {c}\n{self.server.log()}")
        return c

    def stop(self):
        self.server.stop()


class SwarmTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cw-swarm-")
        cls.seed_dir = os.path.join(cls.tmp, "seed")
        cls.tree = os.path.join(cls.seed_dir, "tree")
        make_tree(cls.tree)
        fs = lt.file_storage()
        lt.add_files(fs, cls.tree)
        t = lt.create_torrent(fs, PIECE, lt.create_torrent.v1_only)
        lt.set_piece_hashes(t, cls.seed_dir)
        cls.torrent = os.path.join(cls.tmp, "tree.torrent")
        with open(cls.torrent, "wb") as f:
            f.write(lt.bencode(t.generate()))
        cls.ti = lt.torrent_info(cls.torrent)
        cls.info_hash = bytes.fromhex(str(cls.ti.info_hashes().v1))
        assert cls.ti.num_pieces() == NPIECES and TOTAL % PIECE != 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def fresh_dir(self, name):
        d = os.path.join(self.tmp, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        return d

    def test_libtorrent_downloads_from_corewire(self):
        cw = Corewire(self.tmp, f'torrents = ["{self.torrent}"]\ndata_dir = "{self.seed_dir}"')
        ses = lt_session()
        try:
            c = cw.wait(lambda c: c["torrents_complete"] == 1, 5, "the start-up check")
            self.assertEqual(c["pieces_have"], NPIECES)
            dest = self.fresh_dir("lt-dest")
            atp = lt.add_torrent_params()
            atp.ti = lt.torrent_info(self.torrent)
            atp.save_path = dest
            hd = ses.add_torrent(atp)
            hd.connect_peer(("127.0.0.1", cw.port))
            end = time.monotonic() + 60
            while not hd.status().is_seeding and time.monotonic() < end:
                time.sleep(0.1)
            st = hd.status()
            self.assertTrue(st.is_seeding, f"libtorrent has {st.num_pieces} of {NPIECES} "
                            f"pieces after 60 s: {cw.counters()}\n{cw.server.log()}")
            self.assertIsNone(same_tree(self.tree, os.path.join(dest, "tree")))
            c = cw.counters()
            self.assertGreaterEqual(c["blocks_out"], (TOTAL + 16383) // 16384)
            self.assertGreaterEqual(c["bytes_out"], TOTAL)
            self.assertGreaterEqual(c["handshakes"], 1)
            self.assertEqual((c["protocol_errors"], c["disk_errors"]), (0, 0))
            ses.remove_torrent(hd)
        finally:
            cw.stop()

    def test_corewire_downloads_from_libtorrent(self):
        ses = lt_session()
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(self.torrent)
        atp.save_path = self.seed_dir
        hd = ses.add_torrent(atp)
        end = time.monotonic() + 30
        while not hd.status().is_seeding and time.monotonic() < end:
            time.sleep(0.05)
        self.assertTrue(hd.status().is_seeding, "libtorrent did not start seeding in 30 s")
        dest = self.fresh_dir("cw-dest")
        cw = Corewire(self.tmp, f'torrents = ["{self.torrent}"]\ndata_dir = "{dest}"\n'
                      f'peers = ["127.0.0.1:{ses.listen_port()}"]')
        try:
            c = cw.wait(lambda c: c["torrents_complete"] == 1, 60, "the download")
            self.assertEqual((c["pieces_done"], c["pieces_have"], c["bad_pieces"]),
                             (NPIECES, NPIECES, 0))
            self.assertEqual((c["connects"], c["handshakes"]), (1, 1))
            self.assertIsNone(same_tree(self.tree, os.path.join(dest, "tree")))
        finally:
            cw.stop()
            ses.remove_torrent(hd)

    def test_corrupted_piece_is_discarded_and_fetched_again(self):
        data = stream(self.ti, self.seed_dir)
        bad = NPIECES // 2
        lsn = socket.socket()
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(1)
        lsn.settimeout(20)
        served = {"bad_sent": 0, "error": None}

        def peer():
            try:
                s, _ = lsn.accept()
                s.settimeout(30)
                hs = h.recv_exact(s, 68)
                assert hs[28:48] == self.info_hash, "wrong info-hash"
                s.sendall(b"\x13BitTorrent protocol" + bytes(8) + self.info_hash + b"P" * 20)
                bits = bytearray((NPIECES + 7) // 8)
                for i in range(NPIECES):
                    bits[i >> 3] |= 0x80 >> (i & 7)
                s.sendall(struct.pack(">IB", 1 + len(bits), 5) + bytes(bits))
                while True:
                    n = struct.unpack(">I", h.recv_exact(s, 4))[0]
                    if n == 0:
                        continue
                    body = h.recv_exact(s, n)
                    if body[0] == 2:  # interested
                        s.sendall(struct.pack(">IB", 1, 1))
                    elif body[0] == 6:
                        i, b, ln = struct.unpack(">III", body[1:13])
                        blk = bytearray(data[i * PIECE + b:i * PIECE + b + ln])
                        if i == bad and b == 0 and served["bad_sent"] == 0:
                            blk[7] ^= 0xFF
                            served["bad_sent"] = 1
                        s.sendall(struct.pack(">IBII", 9 + ln, 7, i, b) + bytes(blk))
            except (ConnectionError, socket.timeout, OSError, AssertionError) as e:
                served["error"] = repr(e)

        th = threading.Thread(target=peer, daemon=True)
        th.start()
        dest = self.fresh_dir("cw-bad")
        cw = Corewire(self.tmp, f'torrents = ["{self.torrent}"]\ndata_dir = "{dest}"\n'
                      f'peers = ["127.0.0.1:{lsn.getsockname()[1]}"]', tcp=False)
        try:
            c = cw.wait(lambda c: c["torrents_complete"] == 1, 60,
                        f"the download past a bad piece ({served})")
            self.assertEqual(served["bad_sent"], 1)
            self.assertEqual((c["bad_pieces"], c["pieces_done"], c["peers_banned"]),
                             (1, NPIECES, 0))
            self.assertIsNone(same_tree(self.tree, os.path.join(dest, "tree")))
        finally:
            cw.stop()
            lsn.close()
            th.join(5)


class BadInputTest(unittest.TestCase):
    """A seed whose data has one corrupted piece (found at start, so never announced)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="cw-swarm-bad-")
        seed = os.path.join(cls.tmp, "seed")
        tree = os.path.join(seed, "tree")
        make_tree(tree)
        fs = lt.file_storage()
        lt.add_files(fs, tree)
        t = lt.create_torrent(fs, PIECE, lt.create_torrent.v1_only)
        lt.set_piece_hashes(t, seed)
        cls.torrent = os.path.join(cls.tmp, "tree.torrent")
        with open(cls.torrent, "wb") as f:
            f.write(lt.bencode(t.generate()))
        ti = lt.torrent_info(cls.torrent)
        cls.info_hash = bytes.fromhex(str(ti.info_hashes().v1))
        cls.data = stream(ti, seed)
        cls.missing = 3
        flip_byte(ti, seed, cls.missing * PIECE + 100)
        cls.cw = Corewire(cls.tmp, f'torrents = ["{cls.torrent}"]\ndata_dir = "{seed}"\n'
                          'idle_timeout = "1s"\nkeepalive = "500ms"')
        cls.ep = ("127.0.0.1", cls.cw.port)

    @classmethod
    def tearDownClass(cls):
        cls.cw.stop()
        shutil.rmtree(cls.tmp)

    def connect(self, info_hash=None, fast=True):
        s = h.tcp_connect(self.ep)
        reserved = bytearray(8)
        if fast:
            reserved[7] |= 0x04
        s.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + (info_hash or self.info_hash)
                  + b"-PY0001-" + b"x" * 12)
        return s

    def read_msg(self, s):
        """One message: (id, payload); (None, b"") for a keep-alive."""
        n = struct.unpack(">I", h.recv_exact(s, 4))[0]
        if n == 0:
            return None, b""
        body = h.recv_exact(s, n)
        return body[0], body[1:]

    def handshaken(self):
        s = self.connect()
        hs = h.recv_exact(s, 68)
        self.assertEqual(hs[:20], b"\x13BitTorrent protocol")
        self.assertEqual(hs[28:48], self.info_hash)
        self.assertTrue(hs[27] & 0x04)  # BEP 6
        mid, bits = self.read_msg(s)
        self.assertEqual(mid, 5)  # a bitfield: one piece is missing, so not have-all
        return s, bits

    def test_only_verified_pieces_are_announced(self):
        s, bits = self.handshaken()
        try:
            self.assertEqual(len(bits), (NPIECES + 7) // 8)
            for i in range(NPIECES):
                self.assertEqual(bool(bits[i >> 3] & (0x80 >> (i & 7))), i != self.missing, i)
            self.cw.wait(lambda c: c["pieces_have"] == NPIECES - 1, 5, "pieces_have")
        finally:
            s.close()

    def test_request_for_missing_piece_is_rejected_and_others_served(self):
        s, _ = self.handshaken()
        try:
            s.sendall(struct.pack(">IB", 1, 2))  # interested
            mid, _ = self.read_msg(s)
            while mid is None:
                mid, _ = self.read_msg(s)
            self.assertEqual(mid, 1)  # unchoke
            s.sendall(struct.pack(">IBIII", 13, 6, self.missing, 0, 16384))
            s.sendall(struct.pack(">IBIII", 13, 6, 1, 16384, 16384))
            got = []
            while len(got) < 2:
                mid, body = self.read_msg(s)
                if mid is not None:
                    got.append((mid, body))
            self.assertEqual(got[0], (16, struct.pack(">III", self.missing, 0, 16384)))
            self.assertEqual(got[1][0], 7)
            self.assertEqual(got[1][1][:8], struct.pack(">II", 1, 16384))
            self.assertEqual(got[1][1][8:], self.data[PIECE + 16384:PIECE + 32768])
        finally:
            s.close()

    def test_wrong_info_hash_is_a_counted_close(self):
        before = self.cw.counters()["unknown_torrent"]
        s = self.connect(info_hash=b"\x01" * 20)
        try:
            self.assertTrue(h.wait_closed(s))
        finally:
            s.close()
        self.cw.wait(lambda c: c["unknown_torrent"] == before + 1, 5, "unknown_torrent")

    def test_not_bittorrent_is_a_counted_close(self):
        before = self.cw.counters()["bad_handshake"]
        s = h.tcp_connect(self.ep)
        try:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 60)
            self.assertTrue(h.wait_closed(s))
        finally:
            s.close()
        self.cw.wait(lambda c: c["bad_handshake"] == before + 1, 5, "bad_handshake")

    def test_oversized_lengths_are_counted_closes(self):
        for msg in (struct.pack(">IBIII", 13, 6, 0, 0, 32768),  # a block above 16 KiB
                    struct.pack(">IB", 0x7FFFFFFF, 7),  # a piece of 2 GiB
                    struct.pack(">IB", 1 + 4096, 5)):  # a bitfield of the wrong size
            with self.subTest(msg=msg.hex()):
                before = self.cw.counters()["protocol_errors"]
                s, _ = self.handshaken()
                try:
                    s.sendall(msg)
                    self.assertTrue(h.wait_closed(s))
                finally:
                    s.close()
                self.cw.wait(lambda c: c["protocol_errors"] == before + 1, 5, "protocol_errors")

    def test_silent_peer_is_closed_by_the_idle_timer(self):
        before = self.cw.counters()["idle_closed"]
        s = h.tcp_connect(self.ep)
        try:
            t0 = time.monotonic()
            self.assertTrue(h.wait_closed(s, timeout=5))
            self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        finally:
            s.close()
        self.cw.wait(lambda c: c["idle_closed"] == before + 1, 5, "idle_closed")

    def test_keepalive_keeps_a_quiet_handshaken_peer(self):
        # We answer its keep-alives; the seed sends its own after 500 ms of silence.
        s, _ = self.handshaken()
        try:
            end = time.monotonic() + 2.5
            alive = 0
            while time.monotonic() < end:
                s.sendall(struct.pack(">I", 0))
                s.settimeout(0.4)
                try:
                    mid, _ = self.read_msg(s)
                    alive += mid is None
                except socket.timeout:
                    pass
            self.assertGreaterEqual(alive, 1)
            s.sendall(struct.pack(">IB", 1, 2))
            s.settimeout(5)
            mid, _ = self.read_msg(s)
            while mid is None:
                mid, _ = self.read_msg(s)
            self.assertEqual(mid, 1)  # still served: unchoked
        finally:
            s.close()


if __name__ == "__main__":
    unittest.main()
