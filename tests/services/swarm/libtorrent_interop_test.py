#!/usr/bin/python3
"""The metainfo codec against libtorrent-rasterbar (Debian python3-libtorrent).

libtorrent makes .torrent files (v1-only and v1+v2 hybrid, single and multi-file) and our
parser reads them with the same info-hash, size, files and pieces. The reverse: our writer
makes one and libtorrent loads it with the same info-hash, and, checking the data on disk
against our piece hashes, finds every piece (and one piece missing once a byte is changed).
The peer wire codec: a minimal peer built on it (peer_fetch) handshakes with a libtorrent
seed on loopback and fetches and verifies piece 0.
Usage: libtorrent_interop_test.py TORRENT_TOOL PEER_FETCH. Exits 77 (skip) without
libtorrent."""
import os
import shutil
import sys
import tempfile
import time
import unittest

try:
    import libtorrent as lt
except ImportError:
    print('SKIP: python3-libtorrent not installed')
    sys.exit(77)

import subprocess

TOOL = None
FETCH = None


def show(path):
    out = subprocess.run([TOOL, 'show', path], check=True, capture_output=True, text=True).stdout
    r = {'files': []}
    for line in out.splitlines():
        k, v = line.split(' ', 1)
        if k == 'file':
            n, p = v.split(' ', 1)
            r['files'].append((int(n), p))
        else:
            r[k] = v
    return r


def make_tree(root):
    """A directory of files whose sizes do not fall on piece boundaries, one empty."""
    os.makedirs(os.path.join(root, 'sub', 'deeper'))
    sizes = {'a.bin': 70000, 'sub/b.txt': 12345, 'sub/deeper/c': 100001, 'sub/empty': 0,
             'z': 16384}
    for i, (rel, n) in enumerate(sorted(sizes.items())):
        with open(os.path.join(root, rel), 'wb') as f:
            f.write(bytes((j * 31 + i) & 0xff for j in range(n)))
    return sizes


def lt_make(path, piece_size, flags):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    t = lt.create_torrent(fs, piece_size, flags)
    t.add_tracker('http://127.0.0.1:1/announce')
    lt.set_piece_hashes(t, os.path.dirname(path))
    return lt.bencode(t.generate())


class Interop(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix='cw-swarm-')
        self.data = os.path.join(self.tmp, 'data')
        os.makedirs(self.data)
        self.tree = os.path.join(self.data, 'tree')
        self.sizes = make_tree(self.tree)
        self.single = os.path.join(self.data, 'one.bin')
        with open(self.single, 'wb') as f:
            f.write(bytes(range(256)) * 500)

    def tearDown(self):
        shutil.rmtree(self.tmp)

    def write(self, name, blob):
        p = os.path.join(self.tmp, name)
        with open(p, 'wb') as f:
            f.write(blob)
        return p

    def check_ours_reads(self, blob, name):
        ti = lt.torrent_info(lt.bdecode(blob))
        got = show(self.write(name, blob))
        self.assertEqual(got['info_hash'], str(ti.info_hashes().v1))
        self.assertEqual(int(got['total']), ti.total_size())
        self.assertEqual(int(got['pieces']), ti.num_pieces())
        self.assertEqual(int(got['piece_length']), ti.piece_length())
        self.assertEqual(got['name'], ti.name())
        fs = ti.files()
        self.assertEqual(int(got['nfiles']), fs.num_files())
        self.assertEqual(len(got['files']), fs.num_files())
        return got

    def test_libtorrent_torrents_parse_with_same_info_hash(self):
        for flags, tag in [(lt.create_torrent.v1_only, 'v1'), (0, 'hybrid')]:
            for piece in (16384, 65536):
                with self.subTest(flags=tag, piece=piece):
                    got = self.check_ours_reads(lt_make(self.tree, piece, flags),
                                                f'lt-{tag}-{piece}.torrent')
                    # Every file of ours is in the tree, with its size (hybrids add pad files).
                    real = [(n, p) for n, p in got['files'] if not p.startswith('.pad/')]
                    self.assertEqual(sorted(real),
                                     sorted((n, p) for p, n in self.sizes.items()))
                    got = self.check_ours_reads(lt_make(self.single, piece, flags),
                                                f'lt-one-{tag}-{piece}.torrent')
                    self.assertEqual(got['files'], [(128000, 'one.bin')])

    def recheck(self, torrent, save_path):
        """Pieces libtorrent finds on disk under save_path for torrent: it checks the files
        when the torrent is added (no resume data). No network use: no DHT, LSD, UPnP."""
        ses = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False,
                          'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
                          'alert_mask': lt.alert.category_t.status_notification})
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
        atp.save_path = save_path
        h = ses.add_torrent(atp)
        checked = False
        deadline = time.monotonic() + 30
        while not checked and time.monotonic() < deadline:
            ses.wait_for_alert(100)
            checked = any(isinstance(a, lt.torrent_checked_alert) for a in ses.pop_alerts())
        self.assertTrue(checked, 'libtorrent did not finish checking in 30 s')
        have = h.status().num_pieces
        ses.remove_torrent(h)
        return have, atp.ti.num_pieces()

    def test_our_torrents_load_in_libtorrent(self):
        for path, piece in [(self.tree, 16384), (self.tree, 32768), (self.single, 16384)]:
            with self.subTest(path=os.path.basename(path), piece=piece):
                out = os.path.join(self.tmp, f'ours-{os.path.basename(path)}-{piece}.torrent')
                subprocess.run([TOOL, 'create', path, out, str(piece), 'http://127.0.0.1:1/a'],
                               check=True)
                ti = lt.torrent_info(out)
                self.assertEqual(str(ti.info_hashes().v1), show(out)['info_hash'])
                self.assertFalse(ti.info_hashes().has_v2())
                self.assertEqual(ti.piece_length(), piece)
                self.assertEqual([t.url for t in ti.trackers()], ['http://127.0.0.1:1/a'])
                have, total = self.recheck(out, self.data)
                self.assertEqual(have, total)

    def test_changed_byte_fails_its_piece(self):
        out = os.path.join(self.tmp, 'ours.torrent')
        subprocess.run([TOOL, 'create', self.tree, out, '16384'], check=True)
        copy = os.path.join(self.tmp, 'copy')
        shutil.copytree(self.tree, os.path.join(copy, 'tree'))
        with open(os.path.join(copy, 'tree', 'sub', 'b.txt'), 'r+b') as f:
            f.seek(100)
            b = f.read(1)
            f.seek(100)
            f.write(bytes([b[0] ^ 1]))
        have, total = self.recheck(out, copy)
        self.assertEqual(have, total - 1)


    def test_wire_with_libtorrent_seed(self):
        blob = lt_make(self.single, 32768, lt.create_torrent.v1_only)
        torrent = self.write('seed.torrent', blob)
        ses = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False,
                          'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False})
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent)
        atp.save_path = self.data
        h = ses.add_torrent(atp)
        deadline = time.monotonic() + 30
        while not h.status().is_seeding and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertTrue(h.status().is_seeding, 'libtorrent did not start seeding in 30 s')
        r = subprocess.run([FETCH, torrent, str(ses.listen_port())], capture_output=True,
                           text=True, timeout=60)
        ses.remove_torrent(h)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('handshake extended=1 fast=1', r.stdout)
        self.assertIn('ext client=libtorrent', r.stdout)
        self.assertIn('piece 0 ok (32768 bytes, 2 blocks)', r.stdout)

if __name__ == '__main__':
    TOOL = sys.argv.pop(1)
    FETCH = sys.argv.pop(1)
    unittest.main()
