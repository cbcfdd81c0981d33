// libFuzzer target: arbitrary segments to a TCP engine (dataplane/dpdk/net/tcp.hh) that has
// a listener and three live connections to a peer engine (tcp_pair.hh), interleaved with
// clock steps, the peer's answers and application calls. The input is a list of operations;
// a segment may be aimed at a live connection (its ports, and sequence/ack numbers relative
// to what the engine last sent, so it lands in the window) and get a correct checksum, so
// the state machine is reached and not only the parser; its SACK blocks then land near what
// the engine sent, so they reach the scoreboard. Checked: no crash or sanitizer report,
// every emitted segment well formed with a right checksum, the table bounded.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "tests/dataplane/dpdk/tcp_pair.hh"

using namespace cw::dp;
using namespace cw::dp::net;
using namespace cw::dp::net::test;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

TcpConfig fuzz_config() {
  TcpConfig c;
  c.max_conns = 8;
  c.snd_buf = c.rcv_buf = 4096;
  c.mss = 536;
  c.ooo_ranges = 3;
  c.time_wait_ns = 100 * kMs;
  c.fin_wait2_ns = 1 * kSec;
  // Short timeouts: an input's wind-down (below) then takes little simulated time.
  c.rto_max_ns = 2 * kSec;
  c.max_retries = 4;
  c.syn_retries = 2;
  c.keepalive_idle_ns = 500 * kMs;
  c.keepalive_interval_ns = 100 * kMs;
  c.keepalive_probes = 2;
  c.syn_backlog = 2;  // the fuzzer's SYNs reach the cookie path soon
  c.isn_key = {9, 9, 9};
  return c;
}

// Every segment an engine emits: header length in range, checksum right.
void check_segment(const Seg& s) {
  check(s.bytes.size() >= kTcpHdrLen && s.hlen() >= kTcpHdrLen && s.hlen() <= s.bytes.size());
  check(csum_fold(pseudo_header_sum(s.src, s.dst, kProtoTcp, uint32_t(s.bytes.size())) +
                  csum_add(s.bytes.data(), s.bytes.size())) == 0);
}

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t u8() {
    if (n == 0) return 0;
    --n;
    return *p++;
  }
  uint32_t u32() { return uint32_t(u8()) << 24 | uint32_t(u8()) << 16 | u8() << 8 | u8(); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  TcpPair p(fuzz_config(), fuzz_config());
  p.filter = [](const Seg& s) {
    check_segment(s);
    return true;
  };
  const uint16_t kListen = htons(80);
  p.a.listen(0, kListen);
  // Three connections from b to a's listener.
  std::vector<ConnId> a_conns, b_conns;
  for (uint16_t i = 0; i < 3; ++i)
    b_conns.push_back(p.b.connect(p.addr_b(), htons(uint16_t(1000 + i)), p.addr_a(), kListen, 0));
  p.run(
      [&] {
        for (const TcpEvent& e : p.a.events())
          if (e.kind == TcpEventKind::accepted) a_conns.push_back(e.conn);
        p.a.clear_events();
        p.b.clear_events();
        return a_conns.size() == 3;
      },
      kSec);
  check(a_conns.size() == 3);

  std::vector<ConnId> owned = a_conns;  // every handle the application may hold
  Reader r{data, size};
  std::vector<uint8_t> seg;
  uint8_t buf[4096];
  for (int ops = 0; r.n > 0 && ops < 256; ++ops) {
    const uint8_t op = r.u8() % 8;
    switch (op) {
      case 0:
      case 1: {  // a segment to a
        const uint8_t how = r.u8();
        const size_t len = std::min<size_t>(r.u8() * 8u + r.u8() % 8, r.n);
        seg.assign(r.p, r.p + len);
        r.p += len;
        r.n -= len;
        const uint16_t lport = htons(uint16_t(1000 + how % 4));  // 1003: no connection
        if ((how & 0x10) && seg.size() >= kTcpHdrLen) {
          store_be16(&seg[0], lport);
          store_be16(&seg[2], (how & 0x40) ? htons(81) : kListen);
          // Relative to a's last segment to that port: seq from its ack, ack from its seq.
          uint32_t base_seq = 0, base_ack = 0;
          for (const Seg& s : p.log)
            if (s.src == p.addr_a() && s.dport() == lport)
              base_seq = s.ack(), base_ack = s.seq() + s.dlen();
          if (how & 0x20) {
            store_be32(&seg[4], htonl(load32(&seg[4]) % 8192 - 4096 + base_seq));
            store_be32(&seg[8], htonl(load32(&seg[8]) % 8192 - 4096 + base_ack));
          }
          seg[12] = uint8_t(std::max<uint8_t>(seg[12] >> 4, 5) << 4);
          if (seg.size() < (seg[12] >> 4) * 4u) seg[12] = 5 << 4;
          if (how & 0x20) {
            // SACK blocks near what a sent, so that they reach its scoreboard (RFC 6675).
            const uint32_t hlen = (seg[12] >> 4) * 4u;
            for (uint32_t i = kTcpHdrLen; i + 1 < hlen && seg[i] != 0;) {
              if (seg[i] == 1) {
                ++i;
                continue;
              }
              const uint32_t olen = std::max<uint32_t>(seg[i + 1], 2);
              for (uint32_t k = i + 2; seg[i] == 5 && k + 4 <= std::min(i + olen, hlen); k += 4)
                store_be32(&seg[k], htonl(load32(&seg[k]) % 16384 - 8192 + base_ack));
              i += olen;
            }
          }
        }
        if ((how & 0x80) && seg.size() >= kTcpHdrLen) {  // right checksum
          store16(&seg[16], 0);
          store16(&seg[16], csum_fold(pseudo_header_sum(p.addr_b(), p.addr_a(), kProtoTcp,
                                                        uint32_t(seg.size())) +
                                      csum_add(seg.data(), seg.size())));
        }
        p.a.input(p.addr_b(), p.addr_a(), seg.data(), uint32_t(seg.size()), p.now, how & 1);
        break;
      }
      case 2:  // time passes, the peer answers
        p.run([] { return false; }, int64_t(r.u8()) * 5 * kMs);
        break;
      case 3:
      case 6: {  // a or b sends
        const bool from_a = op == 3;
        const uint8_t i = r.u8() % 3;
        const uint32_t n = r.u8() * 32u;
        std::vector<uint8_t> d(n, uint8_t(n));
        (from_a ? p.a : p.b).send((from_a ? a_conns : b_conns)[i], d.data(), n, p.now);
        break;
      }
      case 4: {  // both applications read
        const uint8_t i = r.u8() % 3;
        for (int k = 0; k < 4 && p.a.recv(a_conns[i], buf, sizeof buf, p.now); ++k) {
        }
        for (int k = 0; k < 4 && p.b.recv(b_conns[i], buf, sizeof buf, p.now); ++k) {
        }
        break;
      }
      case 5: {  // a shuts down, closes or aborts one
        const uint8_t v = r.u8();
        const ConnId c = a_conns[v % 3];
        if (v & 0x10)
          p.a.close(c, p.now);
        else if (v & 0x20)
          p.a.abort(c, p.now);
        else
          p.a.shutdown(c, p.now);
        break;
      }
      case 7:  // a connects out (b has no listener: refused)
        owned.push_back(p.a.connect(p.addr_a(), htons(uint16_t(2000 + r.u8() % 4)), p.addr_b(),
                                    htons(9), p.now));
        break;
    }
    for (const TcpEvent& e : p.a.events()) {
      check(conn_slot(e.conn) < 8);
      if (e.kind == TcpEventKind::accepted) owned.push_back(e.conn);
    }
    p.a.clear_events();
    p.b.clear_events();
    check(p.a.live_conns() <= 8);
    if (p.log.size() > 4096) p.log.erase(p.log.begin(), p.log.end() - 64);
  }
  // Whatever happened, the engine winds down: every connection closed by the application
  // ends, and after TIME_WAIT and the timers nothing is left.
  // b keeps reading, so a's last data and FIN are not held up by a zero window.
  for (ConnId c : owned) p.a.close(c, p.now);
  p.run(
      [&] {
        for (ConnId c : b_conns)
          while (p.b.recv(c, buf, sizeof buf, p.now)) {
          }
        for (const TcpEvent& e : p.a.events()) p.a.close(e.conn, p.now);  // late accepts
        p.a.clear_events();
        p.b.clear_events();
        return p.a.live_conns() == 0;
      },
      900 * kSec, 50 * kMs);
  check(p.a.live_conns() == 0);
  return 0;
}
