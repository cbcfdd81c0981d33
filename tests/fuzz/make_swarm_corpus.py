#!/usr/bin/env python3
"""Writes the swarm fuzz targets' seed corpus (tests/fuzz/corpus/swarm_*); re-run to
regenerate. Standard library only: a tiny bencoder and the peer wire framing by hand.
corpus/swarm_metainfo/lt_hybrid is not written here: libtorrent 2.0 made it once (a hybrid
v1+v2 torrent of two files, with pad files, piece layers and a file tree)."""
import hashlib, os, struct

here = os.path.dirname(os.path.abspath(__file__))


def be(x):
    if isinstance(x, int):
        return b'i%de' % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b'%d:%s' % (len(x), x)
    if isinstance(x, list):
        return b'l' + b''.join(be(v) for v in x) + b'e'
    return b'd' + b''.join(be(k) + be(v) for k, v in sorted(
        (k.encode() if isinstance(k, str) else k, v) for k, v in x.items())) + b'e'


def pieces(total, plen):
    return b''.join(hashlib.sha1(b'%d' % i).digest() for i in range((total + plen - 1) // plen))


def torrent(info, **top):
    top['info'] = info
    return be(top)


single = {'length': 40000, 'name': 'a.bin', 'piece length': 32768, 'pieces': pieces(40000, 32768)}
multi = {'files': [{'length': 20000, 'path': ['dir', 'a.txt']}, {'length': 0, 'path': ['e']},
                   {'length': 30000, 'path': ['b']}],
         'name': 'root', 'piece length': 16384, 'pieces': pieces(50000, 16384), 'private': 1}

bencode_seeds = {
    'int': b'i-42e', 'string': b'4:spam', 'list': b'l4:spami0ee', 'dict': b'd1:ai1e1:bli2eee',
    'nested': be({'a': [1, [2, {'b': 'c'}]], 'z': {}}), 'empty_list': b'le',
    'bad_zero': b'i-0e', 'unsorted': b'd1:bi1e1:ai2ee', 'deep': b'l' * 20 + b'e' * 20,
    'torrent': torrent(single, announce='http://t/ann'),
}
metainfo_seeds = {
    'single': torrent(single, announce='http://t/ann'),
    'multi': torrent(multi, **{'announce': 'u1', 'announce-list': [['u1', 'u2'], ['u3']],
                               'created by': 'x', 'creation date': 1700000000}),
    'dotdot': torrent(dict(multi, files=[{'length': 50000, 'path': ['..', 'x']}])),
    'bad_count': torrent(dict(single, pieces=pieces(40000, 32768)[:20])),
    'no_info': be({'announce': 'x'}),
}


def msg(id_, body=b''):
    return struct.pack('>IB', len(body) + 1, id_) + body


hs = b'\x13BitTorrent protocol' + bytes([0, 0, 0, 0, 0, 0x10, 0, 0x05]) + bytes(range(20)) + \
    b'-CW0001-' + bytes(12)
ext_hs = msg(20, b'\x00' + be({'m': {'ut_metadata': 2, 'ut_pex': 1}, 'p': 6881, 'reqq': 250,
                                'v': 'corewire', 'metadata_size': 1234}))
stream = (struct.pack('>I', 0) + msg(1) + msg(2) + msg(4, struct.pack('>I', 7)) +
          msg(5, b'\xff\x80') + msg(6, struct.pack('>III', 1, 0, 16384)) +
          msg(7, struct.pack('>II', 1, 0) + bytes(100)) + msg(8, struct.pack('>III', 1, 0, 16384)) +
          msg(9, struct.pack('>H', 6881)))
fast = (msg(14) + msg(15) + msg(13, struct.pack('>I', 3)) + msg(16, struct.pack('>III', 1, 0, 1)) +
        msg(17, struct.pack('>I', 9)))
# The first byte is the fuzz target's flags: bit 0 BEP 6, bit 1 BEP 10.
wire_seeds = {
    'handshake': b'\x03' + hs, 'stream': b'\x00' + stream, 'fast': b'\x01' + fast,
    'ext_handshake': b'\x02' + ext_hs, 'all': b'\x03' + stream + fast + ext_hs,
    'too_long': b'\x00' + struct.pack('>IB', 16384 + 10, 7), 'unknown': b'\x00' + msg(42, b'ab'),
    'not_negotiated': b'\x00' + msg(14),
}

# swarm_session: flags (bit 0 BEP 6, bit 1 leech), what the peer sends after its handshake,
# then the cut count byte (0: one segment each time the harness feeds). The torrent is
# swarm_world.hh's: 4 pieces of 32 KiB, the last 5000 bytes.
def ref(id_, i, b, n):
    return msg(id_, struct.pack('>III', i, b, n))


session_seeds = {
    'seed_fast': b'\x01' + msg(15) + msg(2) + ref(6, 0, 0, 16384) + ref(6, 3, 0, 5000) +
                 ref(8, 0, 0, 16384) + msg(3) + b'\x00',
    'seed_plain': b'\x00' + msg(5, b'\x00') + msg(2) + ref(6, 1, 16384, 16384) +
                  struct.pack('>I', 0) + b'\x00',
    'seed_bad_request': b'\x01' + msg(2) + ref(6, 3, 16384, 16384) + b'\x00',
    'leech_fast': b'\x03' + msg(14) + msg(1) + msg(7, struct.pack('>II', 0, 0) + bytes(16384)) +
                  ref(16, 0, 16384, 16384) + msg(0) + msg(1) + b'\x00',
    'leech_plain': b'\x02' + msg(5, b'\xf0') + msg(1) + msg(4, struct.pack('>I', 1)) +
                   msg(7, struct.pack('>II', 3, 0) + bytes(5000)) + b'\x00',
    'leech_cut': b'\x03' + msg(14) + msg(1) + msg(7, struct.pack('>II', 1, 16384) + bytes(16384)) +
                 bytes([3, 7, 200, 0, 5]),
}

# swarm_tracker: announce replies as trackers send them (opentracker's compact form, the
# dict form, a failure reason, unsorted keys); the same bytes are tried as a query's URL.
tracker_seeds = {
    'compact': be({'complete': 1, 'downloaded': 0, 'incomplete': 2, 'interval': 1728,
                   'min interval': 864, 'peers': bytes([127, 0, 0, 1, 0x1b, 0x58] * 3)}),
    'dict_peers': be({'interval': 60, 'peers': [
        {'ip': '10.0.0.1', 'peer id': 'a' * 20, 'port': 6881}, {'ip': 'example.com', 'port': 1},
        {'ip': '::1', 'port': 2}, {'ip': '10.0.0.2', 'port': 0}]}),
    'failure': be({'failure reason': 'Requested download is not authorized for use with this tracker.'}),
    'unsorted': b'd8:intervali30e5:peers6:\x7f\x00\x00\x01\x00\x5012:min intervali0e'
                b'15:warning message2:hie',
    'bad_peers': be({'interval': 5, 'peers': b'abcde'}),
    'url': bytes(range(40)) + b'http://127.0.0.1:6969/announce?passkey=x',
}

for name, seeds in [('swarm_bencode', bencode_seeds), ('swarm_metainfo', metainfo_seeds),
                    ('swarm_wire', wire_seeds), ('swarm_session', session_seeds),
                    ('swarm_tracker', tracker_seeds)]:
    d = os.path.join(here, 'corpus', name)
    os.makedirs(d, exist_ok=True)
    for k, v in seeds.items():
        with open(os.path.join(d, k), 'wb') as f:
            f.write(v)
