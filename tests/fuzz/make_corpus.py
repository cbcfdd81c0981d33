#!/usr/bin/env python3
"""Writes the small seed corpus under tests/fuzz/corpus/ (re-run to regenerate)."""
import os, struct

here = os.path.dirname(os.path.abspath(__file__))

def native(kind=0, service=1, rid=1, payload=b'', version=1, flags=0, reserved=0, plen=None):
    return struct.pack('>HBBHHQII', 0x4357, version, kind, service, flags, rid,
                       len(payload) if plen is None else plen, reserved) + payload

def sockperf(seq, flags, ln, payload=None):
    body = payload if payload is not None else bytes(range(14, ln))[: max(ln - 14, 0)]
    return struct.pack('>QHI', seq, flags, ln) + body

native_seeds = {
    'request_empty': native(),
    'request_hello': native(rid=7, payload=b'hello'),
    'oneway': native(kind=2, payload=b'x'),
    'response': native(kind=1, payload=b'r'),
    'error': native(kind=3, payload=b'\x00\x04'),
    'bad_version': native(version=2),
    'bad_kind': native(kind=9),
    'bad_flags': native(flags=1),
    'bad_reserved': native(reserved=1),
    'too_large': native(plen=0xFFFF),
    'truncated': native(payload=b'abcdef')[:27],
    'unknown_service': native(service=77, payload=b'?'),
    'two_requests': native(rid=1, payload=b'a') + native(rid=2, payload=b'bb'),
    'garbage': b'GET / HTTP/1.1\r\n\r\n',
}
sockperf_seeds = {
    'pingpong_14': bytes.fromhex('000000000000000700030000000e'),  # captured
    'pingpong_20': bytes.fromhex('0000000000000001000300000014b73158a35a25'),  # captured (TCP)
    'throughput': sockperf(1, 1, 14),
    'warmup': sockperf(2, 7, 14),
    'flags_0x13': sockperf(3, 0x13, 14),
    'len_5': sockperf(4, 3, 5, b''),
    'len_huge': sockperf(5, 3, 70000, b''),
    'truncated': sockperf(6, 3, 100, b'abc'),
    'three': sockperf(1, 3, 14) + sockperf(2, 1, 20) + sockperf(3, 3, 16),
    'trailing': sockperf(1, 3, 14) + b'XXXXXX',
}

def write(dirname, seeds, service):
    d = os.path.join(here, 'corpus', dirname)
    os.makedirs(d, exist_ok=True)
    for name, b in seeds.items():
        if service:
            # stream bytes + no cuts; and a variant cut into 1-byte and 3-byte segments
            open(os.path.join(d, name), 'wb').write(b + b'\x00')
            open(os.path.join(d, name + '_cut'), 'wb').write(b + bytes([0, 2, 0, 2]) + b'\x04')
        else:
            open(os.path.join(d, name), 'wb').write(b)

write('native', native_seeds, False)
write('sockperf', sockperf_seeds, False)
write('native_service', native_seeds, True)
write('sockperf_service', sockperf_seeds, True)

# NATS client protocol (pubsub_fuzz): byte 0 selects the headers flag, the rest is the stream.
pubsub_seeds = {
    'session': b'\x01CONNECT {"verbose":false,"pedantic":true,"headers":true,"no_responders":true,'
               b'"user":"u","pass":"p\\"q","sig":{"a":[1,null]}}\r\nSUB a.* q 1\r\n'
               b'PUB a.b r 5\r\nhello\r\nHPUB a.c 12 14\r\nNATS/1.0\r\n\r\nhi\r\n'
               b'UNSUB 1 3\r\nPING\r\nPONG\r\n+OK\r\nINFO {}\r\n',
    'wildcards': b'\x00SUB > 1\r\nSUB a.*.> 2\r\nSUB a..b 3\r\nPUB a.*.> 0\r\n\r\n',
    'bad_len': b'\x00PUB a 3\r\nabcd\r\n',
    'big_len': b'\x00PUB a 999999999\r\n',
    'long_line': b'\x00SUB a ' + b'x' * 4200 + b'\r\n',
    'unknown': b'\x00MSG a 1 1\r\nx\r\n',
    'lower': b'\x00pub\ta\t1\r\nx\r\nping\n',
    'err': b'\x00-ERR \'x\'\r\n',
}
write('pubsub', pubsub_seeds, False)

# The pubsub service on two workers (pubsub_service_fuzz): stream bytes + cut lengths + count.
pubsub_service_seeds = {k: v[1:] for k, v in pubsub_seeds.items()}
pubsub_service_seeds['pub_cross'] = (b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\n'
                                     b'SUB _I.* 9\r\nPUB a 2\r\nhi\r\nPUB x _I.1 0\r\n\r\n'
                                     b'HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n')
write('pubsub_service', pubsub_service_seeds, True)

# RTP (RFC 3550 5.1) and compound RTCP (6.4, 6.5, 6.6, 6.7).
def rtp(pt=0, seq=1, ts=160, ssrc=0x1234, payload=b'\xff' * 160, m=0, csrc=(), ext=None,
        pad=0):
    b0 = 0x80 | (0x20 if pad else 0) | (0x10 if ext is not None else 0) | len(csrc)
    h = struct.pack('>BBHII', b0, m << 7 | pt, seq, ts, ssrc)
    h += b''.join(struct.pack('>I', c) for c in csrc)
    if ext is not None:
        h += struct.pack('>HH', 0xbede, len(ext) // 4) + ext
    return h + payload + (bytes(pad - 1) + bytes([pad]) if pad else b'')

def rtcp(pt, count, body, pad=0):
    body += bytes(pad - 1) + bytes([pad]) if pad else b''
    return struct.pack('>BBH', 0x80 | (0x20 if pad else 0) | count, pt, len(body) // 4) + body

block = struct.pack('>IIIIII', 0xabcd, 25 << 24 | 3, 0x10005, 42, 0x12345678, 65536)
sr = rtcp(200, 1, struct.pack('>IIIIII', 0x5eed, 0xe0000000, 0x80000000, 160, 50, 8000) + block)
rr = rtcp(201, 1, struct.pack('>I', 0x5eed) + block)
sdes = rtcp(202, 1, struct.pack('>IBB', 0x5eed, 1, 10) + b'cw@example' + bytes(4))
bye = rtcp(203, 1, struct.pack('>IB', 0x5eed, 3) + b'bye' + bytes(0))
app = rtcp(204, 0, struct.pack('>I', 0x5eed) + b'test' + b'data')
rtp_seeds = {
    'pcmu': rtp(),
    'l16_marker': rtp(pt=96, m=1, payload=bytes(640)),
    'csrc_ext_pad': rtp(csrc=(1, 2, 3), ext=bytes(8), pad=4),
    'empty': rtp(payload=b''),
    'bad_pad': rtp(pad=200, payload=b'')[:-1] + b'\xc8',
    'rtcp_pt': rtp(pt=72),
    'seq_wrap': b''.join(struct.pack('>HI', s & 0xffff, s * 160) for s in range(65530, 65545)),
}
rtcp_seeds = {
    'sr_sdes': sr + sdes,
    'rr_sdes_bye': rr + sdes + bye,
    'rr_app_padded': rr + rtcp(204, 0, struct.pack('>I', 1) + b'name', pad=4),
    'sr_only': sr,
    'sdes_first': sdes + sr,
    'lying_length': sr[:2] + b'\x00\x20' + sr[4:] + sdes,
    'bye_reason_long': rr + rtcp(203, 1, struct.pack('>IB', 1, 40) + b'abc'),
    'app': rr + app,
}
write('rtp', rtp_seeds, False)
write('rtcp', rtcp_seeds, False)
