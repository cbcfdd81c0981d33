// Conformance of the TCP engine (dataplane/dpdk/net/tcp.hh): two engines back to back
// (tcp_pair.hh) with a fake clock and injected loss, duplication and reordering.
#include "dataplane/dpdk/net/tcp.hh"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "tests/dataplane/dpdk/tcp_pair.hh"

namespace cw::dp::net {
namespace {

using namespace test;

const uint16_t kPort = htons(5000);

TcpConfig config(uint32_t buf = 256 * 1024) {
  TcpConfig c;
  c.max_conns = 64;
  c.snd_buf = buf;
  c.rcv_buf = buf;
  c.isn_key = {1, 2, 3};
  return c;
}

std::vector<uint8_t> pattern(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937_64 r(seed);
  for (auto& x : v) x = uint8_t(r());
  return v;
}

// A connected pair: a connects to b, which accepts. Returns {a's, b's} ConnIds (taken with
// std::tie: clang 14 does not let lambdas capture structured bindings).
std::pair<ConnId, ConnId> connect(TcpPair& p, uint16_t lport = htons(40000)) {
  EXPECT_TRUE(p.b.listen(0, kPort) || true);
  const ConnId ca = p.a.connect(p.addr_a(), lport, p.addr_b(), kPort, p.now);
  EXPECT_NE(ca, kNoConn);
  ConnId cb = kNoConn;
  bool connected = false;
  p.run(
      [&] {
        for (const TcpEvent& e : p.a.events())
          connected = connected || (e.kind == TcpEventKind::connected && e.conn == ca);
        for (const TcpEvent& e : p.b.events())
          if (e.kind == TcpEventKind::accepted) cb = e.conn;
        p.a.clear_events();
        p.b.clear_events();
        return connected && cb != kNoConn;
      },
      30 * kSec);
  EXPECT_TRUE(connected);
  EXPECT_NE(cb, kNoConn);
  return {ca, cb};
}

// One direction of a bulk transfer, driven by the test's pump.
struct Flow {
  std::vector<uint8_t> out, in;
  size_t sent = 0;
  bool shut = false;
  size_t want = 0;
  void pump(TcpEngine& e, ConnId c, int64_t now) {
    if (sent < out.size()) sent += e.send(c, out.data() + sent, uint32_t(out.size() - sent), now);
    if (sent == out.size() && !shut) {
      e.shutdown(c, now);
      shut = true;
    }
    uint8_t buf[16384];
    for (uint32_t n; (n = e.recv(c, buf, sizeof buf, now)) > 0;) in.insert(in.end(), buf, buf + n);
  }
};

// a sends out (from out[sent] on, as much as fits each step) while b reads; returns what b
// read once all of it arrived or `limit` passed.
std::vector<uint8_t> send_a_to_b(TcpPair& p, ConnId ca, ConnId cb, const std::vector<uint8_t>& out,
                                 size_t& sent, int64_t limit) {
  std::vector<uint8_t> in;
  p.run(
      [&] {
        sent += p.a.send(ca, out.data() + sent, uint32_t(out.size() - sent), p.now);
        uint8_t buf[1000];
        for (uint32_t k; (k = p.b.recv(cb, buf, sizeof buf, p.now)) > 0;)
          in.insert(in.end(), buf, buf + k);
        return in.size() == out.size();
      },
      limit);
  return in;
}

// a sends all of out at once (it fits the send ring); b reads until it has as many bytes
// or `limit` passed. True if b read exactly out.
bool a_sends_all(TcpPair& p, ConnId ca, ConnId cb, const std::vector<uint8_t>& out,
                 int64_t limit = 5 * kSec) {
  EXPECT_EQ(p.a.send(ca, out.data(), uint32_t(out.size()), p.now), out.size());
  std::vector<uint8_t> in(out.size());
  size_t got = 0;
  p.run(
      [&] {
        got += p.b.recv(cb, in.data() + got, uint32_t(in.size() - got), p.now);
        return got == out.size();
      },
      limit);
  return got == out.size() && in == out;
}

TEST(Tcp, HandshakeNegotiatesOptions) {
  TcpPair p(config(1 << 20), config(1 << 20));
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const auto ia = p.a.info(ca), ib = p.b.info(cb);
  EXPECT_EQ(ia.state, TcpState::established);
  EXPECT_EQ(ib.state, TcpState::established);
  EXPECT_TRUE(ia.ts && ib.ts && ia.sack && ib.sack);
  // 1 MiB: 1 MiB >> 4 is 65536, one too many for 16 bits, so the scale is 5.
  EXPECT_EQ(ia.rcv_wscale, 5);
  EXPECT_EQ(ia.snd_wscale, 5);
  EXPECT_EQ(ib.snd_wscale, 5);
  EXPECT_EQ(ia.snd_mss, 1460 - 12);  // timestamps take 12 bytes of every segment
  // The SYN carries MSS, SACK-permitted, timestamps (TSecr 0) and the window scale.
  const Seg& syn = p.log.at(0);
  ASSERT_EQ(syn.flags(), kTcpSyn);
  EXPECT_EQ(load16(syn.option(2).data()), 1460);
  EXPECT_EQ(syn.option(3).at(0), 5);
  EXPECT_EQ(syn.option(8).size(), 8u);
  EXPECT_EQ(load32(syn.option(8).data() + 4), 0u);
  const Seg& synack = p.log.at(1);
  ASSERT_EQ(synack.flags(), kTcpSyn | kTcpAck);
  EXPECT_EQ(synack.ack(), syn.seq() + 1);
  // The ISNs differ per 4-tuple (RFC 6528).
  EXPECT_NE(syn.seq(), synack.seq());
}

TEST(Tcp, HandshakeWithoutOptions) {
  TcpConfig cb = config();
  cb.timestamps = cb.window_scaling = cb.sack = false;
  cb.mss = 536;
  TcpPair p(config(1 << 20), cb);
  ConnId ca, cbid;
  std::tie(ca, cbid) = connect(p);
  const auto ia = p.a.info(ca), ib = p.b.info(cbid);
  EXPECT_FALSE(ia.ts || ia.sack || ib.ts || ib.sack);
  EXPECT_EQ(ia.rcv_wscale, 0xFF);
  EXPECT_EQ(ia.snd_mss, 536);
  // The SYN-ACK offers nothing the SYN did not get back.
  const Seg& synack = p.log.at(1);
  EXPECT_TRUE(synack.option(3).empty() && synack.option(8).empty() && synack.option(4).empty());
  // Without scaling, a's window stays within 16 bits.
  EXPECT_LE(ia.snd_wnd, 65535u);
}

// Simultaneous open (RFC 9293 3.5): both SYNs cross, both sides pass SYN-RECEIVED.
TEST(Tcp, SimultaneousOpen) {
  TcpPair p(config(), config());
  const ConnId ca = p.a.connect(p.addr_a(), htons(7000), p.addr_b(), htons(8000), p.now);
  const ConnId cb = p.b.connect(p.addr_b(), htons(8000), p.addr_a(), htons(7000), p.now);
  int connected = 0;
  p.run(
      [&] {
        for (const TcpEvent& e : p.a.events()) connected += e.kind == TcpEventKind::connected;
        for (const TcpEvent& e : p.b.events()) connected += e.kind == TcpEventKind::connected;
        p.a.clear_events();
        p.b.clear_events();
        return connected == 2;
      },
      5 * kSec);
  EXPECT_EQ(connected, 2);
  EXPECT_EQ(p.a.state(ca), TcpState::established);
  EXPECT_EQ(p.b.state(cb), TcpState::established);
  EXPECT_TRUE(p.a.info(ca).ts && p.b.info(cb).sack);
  size_t sent = 0;
  const auto out = pattern(50000, 9);
  EXPECT_TRUE(send_a_to_b(p, ca, cb, out, sent, 5 * kSec) == out);
  // Closed by the application while still in SYN-RECEIVED: never handed back, freed.
  const ConnId c2 = p.a.connect(p.addr_a(), htons(7001), p.addr_b(), htons(8001), p.now);
  p.b.connect(p.addr_b(), htons(8001), p.addr_a(), htons(7001), p.now);
  p.run([&] { return p.a.state(c2) == TcpState::syn_rcvd; }, 1 * kSec);
  ASSERT_EQ(p.a.state(c2), TcpState::syn_rcvd);
  p.a.close(c2, p.now);
  p.run([&] { return p.a.live_conns() == 1; }, 60 * kSec);
  EXPECT_EQ(p.a.live_conns(), 1u);  // only ca
  for (const TcpEvent& e : p.a.events()) EXPECT_NE(e.conn, c2);
}

// Transfers `n` bytes each way at once, then both sides shut down; checks every byte.
void bulk_both_ways(TcpPair& p, size_t n) {
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  Flow fa, fb;
  fa.out = pattern(n, 7);
  fb.out = pattern(n, 8);
  const bool done = p.run(
      [&] {
        fa.pump(p.a, ca, p.now);
        fb.pump(p.b, cb, p.now);
        p.a.clear_events();
        p.b.clear_events();
        return fa.in.size() == n && fb.in.size() == n && p.a.eof(ca) && p.b.eof(cb);
      },
      3600 * kSec);
  ASSERT_TRUE(done) << "a got " << fa.in.size() << ", b got " << fb.in.size() << " states "
                    << tcp_state_name(p.a.state(ca)) << " " << tcp_state_name(p.b.state(cb))
                    << " timeouts " << p.a.stats().conns_timed_out << " "
                    << p.b.stats().conns_timed_out << " now " << p.now;
  EXPECT_TRUE(fa.in == fb.out);
  EXPECT_TRUE(fb.in == fa.out);
  p.a.close(ca, p.now);
  p.b.close(cb, p.now);
  p.run([&] { return p.a.live_conns() == 0 && p.b.live_conns() == 0; }, 300 * kSec);
  EXPECT_EQ(p.a.live_conns(), 0u);
  EXPECT_EQ(p.b.live_conns(), 0u);
}

TEST(Tcp, Bulk8MiBBothWaysClean) {
  TcpPair p(config(), config());
  p.keep_log = false;
  bulk_both_ways(p, 8 << 20);
  EXPECT_EQ(p.a.stats().retransmits, 0u);
  EXPECT_EQ(p.drops_a.total() + p.drops_b.total(), 0u);
}

TEST(Tcp, Bulk8MiBBothWays2PercentLossReorderDup) {
  TcpPair p(config(), config(), 2);
  p.keep_log = false;
  p.faults.loss = 0.02;
  p.faults.reorder = 0.02;
  p.faults.dup = 0.01;
  bulk_both_ways(p, 8 << 20);
  EXPECT_GT(p.a.stats().fast_retransmits + p.b.stats().fast_retransmits, 0u);
  EXPECT_GT(p.a.stats().ooo_segments + p.b.stats().ooo_segments, 0u);
}

TEST(Tcp, Bulk8MiBBothWays10PercentLoss) {
  TcpPair p(config(), config(), 3);
  p.keep_log = false;
  p.faults.loss = 0.10;
  bulk_both_ways(p, 8 << 20);
  EXPECT_GT(p.a.stats().rto_expiries + p.b.stats().rto_expiries, 0u);
}

// RFC 6298 2.1 and 5.5: before any sample the RTO is 1 s, and it doubles on each expiry.
TEST(Tcp, SynRetransmissionTimingDoubles) {
  TcpPair p(config(), config());
  p.b.listen(0, kPort);
  p.filter = [&](const Seg& s) { return s.src != p.addr_b(); };  // b's SYN-ACKs are lost
  p.a.connect(p.addr_a(), htons(40000), p.addr_b(), kPort, p.now);
  p.run([&] { return false; }, 16 * kSec);
  std::vector<int64_t> syn_times;
  for (const Seg& s : p.log)
    if (s.flags() == kTcpSyn) syn_times.push_back(s.sent_at);
  ASSERT_GE(syn_times.size(), 5u);
  EXPECT_EQ(syn_times[1] - syn_times[0], 1 * kSec);
  EXPECT_EQ(syn_times[2] - syn_times[1], 2 * kSec);
  EXPECT_EQ(syn_times[3] - syn_times[2], 4 * kSec);
  EXPECT_EQ(syn_times[4] - syn_times[3], 8 * kSec);
}

TEST(Tcp, SrttAndRtoFromSamples) {
  TcpConfig no_tlp = config();
  no_tlp.tail_loss_probe = false;  // the RTO alone
  TcpPair p(no_tlp, config());
  p.faults.delay = 10 * kMs;
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  // First sample (RFC 6298 2.2): SRTT = R = 20 ms, RTTVAR = R/2, RTO = max(min, R + 4 R/2).
  auto ia = p.a.info(ca);
  EXPECT_EQ(ia.srtt_ns, 20 * kMs);
  EXPECT_EQ(ia.rttvar_ns, 10 * kMs);
  EXPECT_EQ(ia.rto_ns, 200 * kMs);  // 60 ms, raised to rto_min
  // More samples of the same RTT: RTTVAR shrinks by 3/4 each time, SRTT stays.
  std::vector<uint8_t> d(100, 1);
  for (int i = 0; i < 5; ++i) {
    p.a.send(ca, d.data(), uint32_t(d.size()), p.now);
    // Until every byte is acknowledged and no timer is left (b's delayed ACK included).
    p.run(
        [&] {
          return p.b.readable_bytes(cb) == d.size() * (i + 1) && p.idle() &&
                 p.a.next_deadline() == INT64_MAX && p.b.next_deadline() == INT64_MAX;
        },
        2 * kSec);
  }
  ia = p.a.info(ca);
  // b acks a single segment after its 40 ms delayed-ACK timer: samples of 60 ms.
  EXPECT_GT(ia.srtt_ns, 20 * kMs);
  EXPECT_LE(ia.srtt_ns, 60 * kMs);
  // Then the retransmission of lost data waits exactly one RTO, and the next one two.
  p.filter = [&](const Seg& s) { return s.src != p.addr_a() || s.dlen() == 0; };
  const size_t first = p.log.size();
  p.a.send(ca, d.data(), uint32_t(d.size()), p.now);
  const int64_t rto = p.a.info(ca).rto_ns;
  p.run([&] { return false; }, 2 * rto + 3 * rto + 10 * kMs);
  std::vector<int64_t> t;
  for (size_t i = first; i < p.log.size(); ++i)
    if (p.log[i].src == p.addr_a() && p.log[i].dlen()) t.push_back(p.log[i].sent_at);
  ASSERT_GE(t.size(), 3u);
  EXPECT_EQ(t[1] - t[0], rto);
  EXPECT_EQ(t[2] - t[1], 2 * rto);
}

// Three duplicate ACKs: one fast retransmit, no timeout (RFC 5681 3.2, RFC 6582).
TEST(Tcp, FastRetransmitOnThreeDupAcks) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  int data_segs = 0;
  p.filter = [&](const Seg& s) {
    return !(s.src == p.addr_a() && s.dlen() && ++data_segs == 2);  // the 2nd data segment
  };
  const auto out = pattern(8 * mss, 11);
  ASSERT_TRUE(a_sends_all(p, ca, cb, out));
  p.run([&] { return p.idle(); }, 1 * kSec);  // the last ACK reaches a
  EXPECT_EQ(p.a.stats().fast_retransmits, 1u);
  EXPECT_EQ(p.a.stats().rto_expiries, 0u);
  EXPECT_EQ(p.a.stats().retransmits, 1u);
  EXPECT_FALSE(p.a.info(ca).in_recovery);
  // b's duplicate ACKs carried the SACK block of what arrived after the hole.
  uint32_t hole = 0;
  for (const Seg& s : p.log)
    if (s.src == p.addr_a() && s.dlen()) {
      hole = s.seq() + s.dlen();  // the first data segment's end: the lost one's start
      break;
    }
  bool seen = false;
  for (const Seg& s : p.log)
    if (s.src == p.addr_b() && s.ack() == hole && !s.sacks().empty()) {
      EXPECT_EQ(s.sacks()[0].first, hole + mss);
      seen = true;
    }
  EXPECT_TRUE(seen);
}

// Limited transmit (RFC 3042): with the whole initial window in flight and more queued, the
// first duplicate ACKs each release one new segment, sent before the fast retransmit.
TEST(Tcp, LimitedTransmitBeforeFastRetransmit) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  int data_segs = 0;
  p.filter = [&](const Seg& s) {
    return !(s.src == p.addr_a() && s.dlen() && ++data_segs == 2);  // the 2nd data segment
  };
  const auto out = pattern(14 * mss, 12);  // 10 in the initial window, 4 queued
  ASSERT_TRUE(a_sends_all(p, ca, cb, out));
  EXPECT_EQ(p.a.stats().fast_retransmits, 1u);
  EXPECT_EQ(p.a.stats().rto_expiries, 0u);
  // In a's log: the 11th segment (new data) comes before the 2nd one is sent again.
  uint32_t first = 0;
  size_t eleventh = 0, again = 0, k = 0;
  for (size_t i = 0; i < p.log.size(); ++i) {
    const Seg& s = p.log[i];
    if (s.src != p.addr_a() || !s.dlen()) continue;
    if (k++ == 0) first = s.seq();
    if (s.seq() == first + 10 * mss && !eleventh) eleventh = i;
    if (s.seq() == first + mss && k > 2 && !again) again = i;
  }
  ASSERT_NE(eleventh, 0u);
  ASSERT_NE(again, 0u);
  EXPECT_LT(eleventh, again);
}

// A fast retransmission that is lost too: the duplicate ACKs that still name the hole more
// than an RTT later make the sender send it again, long before the RTO (200 ms here).
TEST(Tcp, LostRetransmissionSentAgainBeforeRto) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  bool seen = false;
  uint32_t first = 0;
  int hole_sent = 0;
  p.filter = [&](const Seg& s) {
    if (s.src != p.addr_a() || !s.dlen()) return true;
    if (!seen) {
      seen = true;
      first = s.seq();
    }
    return !(s.seq() == first + mss && ++hole_sent <= 2);  // the 2nd segment, twice
  };
  const auto out = pattern(60 * mss, 13);
  const int64_t start = p.now;
  ASSERT_TRUE(a_sends_all(p, ca, cb, out));
  EXPECT_EQ(hole_sent, 3);
  EXPECT_EQ(p.a.stats().fast_retransmits, 1u);
  EXPECT_EQ(p.a.stats().rto_expiries, 0u);
  EXPECT_LT(p.now - start, 100 * kMs);
}

// Two holes: the SACK blocks name both ranges, the most recent first (RFC 2018 4).
TEST(Tcp, SackBlocksAfterHoles) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  int n = 0;
  p.filter = [&](const Seg& s) {
    if (s.src != p.addr_a() || s.dlen() == 0) return true;
    ++n;
    return n != 2 && n != 5;  // segments 2 and 5 of the first flight
  };
  const auto out = pattern(8 * mss, 12);
  uint32_t start = 0;
  p.a.send(ca, out.data(), uint32_t(out.size()), p.now);
  for (const Seg& s : p.log)
    if (s.src == p.addr_a() && s.dlen()) {
      start = s.seq();
      break;
    }
  p.run([&] { return p.b.readable_bytes(cb) == out.size(); }, 10 * kSec);
  ASSERT_EQ(p.b.readable_bytes(cb), out.size());
  // b's ACK for segment 8 (the last of the flight) before any retransmission.
  const Seg* last = nullptr;
  for (const Seg& s : p.log)
    if (s.src == p.addr_b() && s.sacks().size() == 2) {
      last = &s;
      break;
    }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(last->ack(), start + mss);
  const auto blocks = last->sacks();
  // Segments 6.. after the second hole (the newest), then 3..4 after the first.
  EXPECT_EQ(blocks[0].first, start + 5 * mss);
  EXPECT_EQ(blocks[1], std::make_pair(start + 2 * mss, start + 4 * mss));
  std::vector<uint8_t> in(out.size());
  ASSERT_EQ(p.b.recv(cb, in.data(), uint32_t(in.size()), p.now), out.size());
  EXPECT_TRUE(in == out);
}

// A receiver with a small buffer that does not read: the sender keeps within the offered
// window, probes the zero window, and the transfer completes once the receiver reads.
TEST(Tcp, WindowHonouredWithSmallReceiver) {
  // Segments of 1024 bytes (MSS 1036 less 12 for timestamps): four fill b's window to 0.
  TcpConfig cfa = config(), cfb = config(4096);
  cfa.mss = cfb.mss = 1036;
  TcpPair p(cfa, cfb);
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const auto out = pattern(64 * 1024, 13);
  size_t sent = 0;
  // Track b's advertised right edge and check a never sends beyond it.
  uint32_t right = 0;
  bool beyond = false;
  p.filter = [&](const Seg& s) {
    if (s.src == p.addr_b() && (s.flags() & kTcpAck)) right = s.ack() + s.wnd();  // no scaling
    if (s.src == p.addr_a() && s.dlen() > 1 && right && int32_t(s.seq() + s.dlen() - right) > 0)
      beyond = true;
    return true;
  };
  p.run(
      [&] {
        sent += p.a.send(ca, out.data() + sent, uint32_t(out.size() - sent), p.now);
        return false;
      },
      5 * kSec);
  EXPECT_EQ(p.b.readable_bytes(cb), 4096u);
  EXPECT_GT(p.a.stats().window_probes, 0u);
  EXPECT_FALSE(beyond);
  EXPECT_EQ(p.a.info(ca).snd_wnd, 0u);
  EXPECT_EQ(p.a.state(ca), TcpState::established);  // probes do not time out
  const auto in = send_a_to_b(p, ca, cb, out, sent, 120 * kSec);
  EXPECT_EQ(in.size(), out.size());
  EXPECT_TRUE(in == out);
  EXPECT_FALSE(beyond);
}

TEST(Tcp, SimultaneousClose) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  p.a.shutdown(ca, p.now);
  p.b.shutdown(cb, p.now);  // both FINs cross on the wire
  EXPECT_EQ(p.a.state(ca), TcpState::fin_wait1);
  p.run(
      [&] { return p.a.state(ca) == TcpState::time_wait && p.b.state(cb) == TcpState::time_wait; },
      5 * kSec);
  EXPECT_EQ(p.a.state(ca), TcpState::time_wait);  // via CLOSING
  EXPECT_EQ(p.b.state(cb), TcpState::time_wait);
  EXPECT_TRUE(p.a.eof(ca) && p.b.eof(cb));
  p.a.close(ca, p.now);
  p.b.close(cb, p.now);
  p.run([&] { return p.a.live_conns() + p.b.live_conns() == 0; }, 5 * kSec);
  EXPECT_EQ(p.a.live_conns() + p.b.live_conns(), 0u);
}

TEST(Tcp, OrderlyCloseBothWays) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  p.a.shutdown(ca, p.now);
  p.run([&] { return p.b.eof(cb) && p.a.state(ca) == TcpState::fin_wait2; }, 5 * kSec);
  EXPECT_EQ(p.b.state(cb), TcpState::close_wait);
  EXPECT_EQ(p.a.state(ca), TcpState::fin_wait2);
  const uint8_t x[3] = {1, 2, 3};
  EXPECT_EQ(p.b.send(cb, x, 3, p.now), 3u);  // half-close: b may still send
  p.b.close(cb, p.now);                      // LAST_ACK, freed by a's ACK
  p.run([&] { return p.a.state(ca) == TcpState::time_wait; }, 5 * kSec);
  uint8_t r[3];
  EXPECT_EQ(p.a.recv(ca, r, 3, p.now), 3u);
  EXPECT_EQ(p.a.state(ca), TcpState::time_wait);
  p.run([&] { return p.b.live_conns() == 0; }, 5 * kSec);
  EXPECT_EQ(p.b.live_conns(), 0u);
  p.a.close(ca, p.now);
  p.run([&] { return p.a.live_conns() == 0; }, 5 * kSec);
  EXPECT_EQ(p.a.live_conns(), 0u);
  EXPECT_EQ(p.drops_a.total() + p.drops_b.total(), 0u);
}

// Data for a connection the application closed: RST (RFC 9293 3.6), and the peer resets.
TEST(Tcp, DataAfterCloseResets) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  p.a.close(ca, p.now);
  p.run([&] { return p.b.eof(cb); }, 5 * kSec);
  const uint8_t x[3] = {1, 2, 3};
  EXPECT_EQ(p.b.send(cb, x, 3, p.now), 3u);
  p.run([&] { return p.b.state(cb) == TcpState::closed; }, 5 * kSec);
  EXPECT_EQ(p.b.state(cb), TcpState::closed);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_data_after_close), 1u);
  EXPECT_EQ(p.a.live_conns(), 0u);
  p.b.close(cb, p.now);
  EXPECT_EQ(p.b.live_conns(), 0u);
}

// Forges a segment from src to dst (options padded to 4 bytes by the caller).
std::vector<uint8_t> forge(uint16_t sport, uint16_t dport, uint32_t seq, uint32_t ack,
                           uint8_t flags, uint32_t src, uint32_t dst,
                           const std::vector<uint8_t>& opts = {},
                           const std::vector<uint8_t>& payload = {}) {
  std::vector<uint8_t> h(20, 0);
  store_be16(&h[0], sport);
  store_be16(&h[2], dport);
  store_be32(&h[4], htonl(seq));
  store_be32(&h[8], htonl(ack));
  h[12] = uint8_t((20 + opts.size()) / 4 << 4);
  h[13] = flags;
  store16(&h[14], 1000);
  h.insert(h.end(), opts.begin(), opts.end());
  h.insert(h.end(), payload.begin(), payload.end());
  store16(&h[16], csum_fold(pseudo_header_sum(src, dst, kProtoTcp, uint32_t(h.size())) +
                            csum_add(h.data(), h.size())));
  return h;
}

// NOP NOP TS(tsval, tsecr).
std::vector<uint8_t> ts_option(uint32_t tsval, uint32_t tsecr) {
  std::vector<uint8_t> o{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0};
  store_be32(&o[4], htonl(tsval));
  store_be32(&o[8], htonl(tsecr));
  return o;
}

// What a expects next from b, and a's next sequence number: from a's last segment to b.
struct Expect {
  uint32_t rcv_nxt = 0, snd_nxt = 0, tsval = 0;
};
Expect expect_of_a(const TcpPair& p) {
  Expect e;
  for (const Seg& s : p.log) {
    if (s.src == p.addr_a()) e.rcv_nxt = s.ack(), e.snd_nxt = s.seq() + s.dlen();
    if (s.src == p.addr_b() && s.option(8).size() == 8) e.tsval = load32(s.option(8).data());
  }
  return e;
}

// Times at which a sent data segments that start at `seq` (every copy).
std::vector<int64_t> sent_at(const TcpPair& p, uint32_t seq) {
  std::vector<int64_t> t;
  for (const Seg& s : p.log)
    if (s.src == p.addr_a() && s.dlen() && s.seq() == seq) t.push_back(s.sent_at);
  return t;
}

// Loses the first copy of a's data segments number `lost` (0-based, counted in MSS from
// a's first data segment); later copies pass.
struct FirstCopyLoss {
  uint32_t mss;
  std::vector<uint32_t> lost, dropped;
  uint32_t first = 0;
  bool seen = false;
  bool pass(const TcpPair& p, const Seg& s) {
    if (s.src != p.addr_a() || !s.dlen()) return true;
    if (!seen) seen = true, first = s.seq();
    const uint32_t k = (s.seq() - first) / mss;
    if (std::find(lost.begin(), lost.end(), k) == lost.end() ||
        std::find(dropped.begin(), dropped.end(), k) != dropped.end())
      return true;
    dropped.push_back(k);
    return false;
  }
};

// Four holes in one flight: a connects and moves 40 segments to b, the first copy of
// segments 12, 15, 18 and 21 lost, all four recovered in one episode, no timeout. Returns
// when each of them was sent again (once each).
std::vector<int64_t> four_holes(TcpPair& p, ConnId& ca) {
  ConnId cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  FirstCopyLoss loss{mss, {11, 14, 17, 20}, {}};
  p.filter = [&](const Seg& s) { return loss.pass(p, s); };
  const auto out = pattern(40 * mss, 21);
  EXPECT_TRUE(a_sends_all(p, ca, cb, out));
  EXPECT_EQ(loss.dropped.size(), 4u);
  p.run([&] { return p.idle(); }, 1 * kSec);
  p.filter = nullptr;  // loss is gone after the return
  std::vector<int64_t> rtx;
  for (uint32_t k : loss.lost) {
    const auto t = sent_at(p, loss.first + k * mss);
    EXPECT_EQ(t.size(), 2u) << k;
    if (t.size() >= 2) rtx.push_back(t[1]);
  }
  EXPECT_EQ(p.a.stats().fast_retransmits, 1u);
  EXPECT_EQ(p.a.stats().rto_expiries, 0u);
  EXPECT_EQ(p.a.stats().retransmits, 4u);
  EXPECT_EQ(rtx.size(), 4u);
  return rtx;
}

// SACK recovery (RFC 6675): the scoreboard shows every hole, and all four go again within
// one round trip of the fast retransmit (pipe allowing), in one recovery, with no timeout
// and nothing sent twice that had arrived.
TEST(Tcp, SackRecoversSeveralHolesInOneEpisode) {
  TcpPair p(config(), config());
  ConnId ca;
  const auto rtx = four_holes(p, ca);
  ASSERT_EQ(rtx.size(), 4u);
  EXPECT_TRUE(p.a.info(ca).sack);
  EXPECT_EQ(p.a.stats().sack_retransmits, 3u);  // the holes after the first
  EXPECT_EQ(p.a.stats().lost_retransmits, 0u);
  // The round trip is 2 ms (1 ms each way): NewReno would need one per hole.
  EXPECT_LT(*std::max_element(rtx.begin(), rtx.end()) - rtx.front(), 2 * kMs);
  const auto ia = p.a.info(ca);
  EXPECT_FALSE(ia.in_recovery);
  EXPECT_EQ(ia.sacked_ranges, 0u);
  EXPECT_EQ(p.a.stats().sack_blocks_bogus, 0u);
}

// The same losses to a peer without SACK: NewReno (RFC 6582), one hole per round trip,
// still without a timeout; no scoreboard.
TEST(Tcp, SackPeerWithoutSackStillNewReno) {
  TcpConfig cb_cfg = config();
  cb_cfg.sack = false;
  TcpPair p(config(), cb_cfg);
  ConnId ca;
  const auto rtx = four_holes(p, ca);  // each hole sent again after a partial ACK
  ASSERT_EQ(rtx.size(), 4u);
  EXPECT_FALSE(p.a.info(ca).sack);
  EXPECT_EQ(p.a.stats().sack_retransmits, 0u);
  for (size_t i = 1; i < rtx.size(); ++i) EXPECT_GE(rtx[i] - rtx[i - 1], 2 * kMs) << i;
  for (const Seg& s : p.log) EXPECT_TRUE(s.sacks().empty());
  EXPECT_EQ(p.a.info(ca).sacked_ranges, 0u);
}

// Losses at the tail of a flight (first copies of segments `lost` of 10), with nothing
// more to send: no third duplicate ACK ever comes. Returns how long the transfer took.
int64_t tail_losses(TcpPair& p, std::vector<uint32_t> lost) {
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  FirstCopyLoss loss{mss, std::move(lost), {}};
  p.filter = [&](const Seg& s) { return loss.pass(p, s); };
  const int64_t start = p.now;
  EXPECT_TRUE(a_sends_all(p, ca, cb, pattern(10 * mss, 24)));
  EXPECT_EQ(loss.dropped.size(), loss.lost.size());
  p.filter = nullptr;  // loss is gone after the return
  return p.now - start;
}

// RFC 8985 7: the last two segments lost. The probe (the last segment again, PTO =
// max(2 SRTT, 10 ms) later) is SACKed above the hole, which is then lost: recovery, well
// before the 200 ms RTO. Without probes the RTO it is.
TEST(Tcp, TailLossProbeInsteadOfRto) {
  TcpPair p(config(), config());
  EXPECT_LT(tail_losses(p, {8, 9}), 40 * kMs);
  EXPECT_EQ(p.a.stats().tlp_probes, 1u);
  EXPECT_EQ(p.a.stats().fast_retransmits, 1u);
  EXPECT_EQ(p.a.stats().rto_expiries, 0u);
  EXPECT_EQ(p.a.stats().retransmits, 2u);  // the probe and the hole
  TcpConfig no_tlp = config();
  no_tlp.tail_loss_probe = false;
  TcpPair q(no_tlp, config());
  EXPECT_GE(tail_losses(q, {8, 9}), 200 * kMs);
  EXPECT_EQ(q.a.stats().tlp_probes, 0u);
  EXPECT_EQ(q.a.stats().rto_expiries, 1u);
}

// One segment lost with only two after it: IsLost (more than 2 MSS SACKed above) stays
// false and no third duplicate ACK comes. When the probe timer fires, the SACKed data that
// arrived after the hole shows it lost (RACK's rule): recovery at once, no probe, no RTO.
TEST(Tcp, TwoSegmentsAfterAHoleRecoverAtTheProbeTimer) {
  TcpPair p(config(), config());
  EXPECT_LT(tail_losses(p, {7}), 40 * kMs);
  EXPECT_EQ(p.a.stats().tlp_probes, 0u);
  EXPECT_EQ(p.a.stats().fast_retransmits, 1u);
  EXPECT_EQ(p.a.stats().rto_expiries, 0u);
  EXPECT_EQ(p.a.stats().retransmits, 1u);
}

// An ACK from b to a (as b's last segment, an ACK: its sequence number, window and
// timestamp) with these options.
std::vector<uint8_t> ack_from_b(const TcpPair& p, uint32_t ack, const std::vector<uint8_t>& opts) {
  const Seg* last = nullptr;
  for (const Seg& s : p.log)
    if (s.src == p.addr_b()) last = &s;
  std::vector<uint8_t> o = ts_option(load32(last->option(8).data()), 0);
  o.insert(o.end(), opts.begin(), opts.end());
  auto h = forge(kPort, htons(40000), last->seq(), ack, kTcpAck, p.addr_b(), p.addr_a(), o);
  store16(&h[14], last->wnd());
  store16(&h[16], 0);
  store16(&h[16],
          csum_fold(pseudo_header_sum(p.addr_b(), p.addr_a(), kProtoTcp, uint32_t(h.size())) +
                    csum_add(h.data(), h.size())));
  return h;
}

// NOP NOP SACK with these blocks.
std::vector<uint8_t> sack_option(const std::vector<std::pair<uint32_t, uint32_t>>& blocks) {
  std::vector<uint8_t> o{1, 1, 5, uint8_t(2 + 8 * blocks.size())};
  for (const auto& [l, r] : blocks) {
    o.resize(o.size() + 8);
    store_be32(&o[o.size() - 8], htonl(l));
    store_be32(&o[o.size() - 4], htonl(r));
  }
  return o;
}

// SACK blocks that cannot be true (empty or inverted, unsent data, SND.UNA itself, far
// below SND.UNA) are ignored and counted; the segment is still processed. A D-SACK below
// SND.UNA marks nothing and is not bogus; a good block is kept.
TEST(Tcp, SackBogusBlocksIgnored) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  // One segment through (SND.UNA moves), then five that never arrive.
  const auto out = pattern(6 * mss, 22);
  ASSERT_EQ(p.a.send(ca, out.data(), mss, p.now), mss);
  p.run([&] { return p.a.send_queued(ca) == 0 && p.idle(); }, 1 * kSec);  // b's ACK too
  ASSERT_EQ(p.a.send_queued(ca), 0u);
  p.filter = [&](const Seg& s) { return s.src != p.addr_a() || !s.dlen(); };
  p.a.send(ca, out.data() + mss, 5 * mss, p.now);
  const Expect e = expect_of_a(p);
  const uint32_t una = e.snd_nxt - 5 * mss, max = e.snd_nxt;
  auto feed = [&](const std::vector<std::pair<uint32_t, uint32_t>>& blocks) {
    const auto h = ack_from_b(p, una, sack_option(blocks));
    p.a.input(p.addr_b(), p.addr_a(), h.data(), uint32_t(h.size()), p.now);
  };
  feed({{una + mss, una + mss}, {una + 2 * mss, una + mss}, {max, max + mss}});
  EXPECT_EQ(p.a.stats().sack_blocks_bogus, 3u);
  feed({{una - 10, una + mss}, {una - 4'000'000, una - 3'000'000}});
  EXPECT_EQ(p.a.stats().sack_blocks_bogus, 5u);
  EXPECT_EQ(p.a.info(ca).sacked_ranges, 0u);
  feed({{una - mss, una}});  // D-SACK of the segment that did arrive
  EXPECT_EQ(p.a.stats().sack_blocks_bogus, 5u);
  EXPECT_EQ(p.a.info(ca).sacked_ranges, 0u);
  EXPECT_EQ(p.drops_a.total(), 0u);  // each segment was accepted
  EXPECT_FALSE(p.a.info(ca).in_recovery);
  feed({{una + 2 * mss, una + 3 * mss}});
  EXPECT_EQ(p.a.info(ca).sacked_ranges, 1u);
  EXPECT_EQ(p.a.info(ca).sacked_bytes, mss);
  EXPECT_EQ(p.a.stats().sack_blocks_bogus, 5u);
  // The peer is honest from here: everything arrives.
  p.filter = nullptr;
  size_t sent = 6 * mss;
  // The block that lied is forgotten once SND.UNA reaches it, and its segment sent again.
  EXPECT_TRUE(send_a_to_b(p, ca, cb, out, sent, 5 * kSec) == out);
  p.run([&] { return p.a.send_queued(ca) == 0 && p.idle(); }, 1 * kSec);
  EXPECT_EQ(p.a.send_queued(ca), 0u);
  EXPECT_EQ(p.a.info(ca).sacked_ranges, 0u);
}

// A retransmission timeout in SACK recovery (both holes' retransmissions lost) empties the
// scoreboard (RFC 2018 8, RFC 6675 5.1); the recovery after it skips what the peer SACKs
// from then on, so no segment that arrived is sent again (going back N would).
TEST(Tcp, SackRtoClearsScoreboard) {
  TcpConfig no_tlp = config();
  no_tlp.tail_loss_probe = false;  // the RTO alone
  TcpPair p(no_tlp, config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  uint32_t first = 0;
  bool seen = false;
  int rto_sends = 0;
  uint32_t sacked_at_rto = 99;
  p.filter = [&](const Seg& s) {
    if (s.src != p.addr_a() || !s.dlen()) return true;
    if (!seen) seen = true, first = s.seq();
    const uint32_t k = (s.seq() - first) / mss;
    if (p.a.stats().rto_expiries == 0) return k != 1 && k != 5;  // both holes, every copy
    if (rto_sends++ == 0) sacked_at_rto = p.a.info(ca).sacked_ranges;
    return true;
  };
  const auto out = pattern(10 * mss, 23);
  ASSERT_TRUE(a_sends_all(p, ca, cb, out));
  EXPECT_EQ(p.a.stats().fast_retransmits, 1u);  // SACK recovery, then the timeout
  EXPECT_EQ(p.a.stats().rto_expiries, 1u);
  EXPECT_EQ(sacked_at_rto, 0u);  // the RTO's retransmission left with the scoreboard empty
  EXPECT_GE(rto_sends, 2);       // holes 1 and 5 after the RTO
  // Segments 2-4 and 6-9 arrived the first time and went only once.
  for (uint32_t k = 0; k < 10; ++k)
    if (k != 1 && k != 5) {
      EXPECT_EQ(sent_at(p, first + k * mss).size(), 1u) << k;
    }
  p.run([&] { return p.idle(); }, 1 * kSec);
  EXPECT_FALSE(p.a.info(ca).in_recovery);
  EXPECT_EQ(p.a.info(ca).sacked_ranges, 0u);
}

TEST(Tcp, RstAndSynPerRfc5961) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const Expect e = expect_of_a(p);
  const uint32_t rcv_nxt = e.rcv_nxt, snd_nxt = e.snd_nxt;
  auto inject = [&](uint32_t seq, uint8_t flags) {
    auto h = forge(kPort, htons(40000), seq, snd_nxt, flags, p.addr_b(), p.addr_a());
    p.a.input(p.addr_b(), p.addr_a(), h.data(), 20, p.now);
  };
  const size_t before = p.log.size();
  inject(rcv_nxt + 100, kTcpRst);  // in window, not exact: challenge ACK
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_rst_challenged), 1u);
  EXPECT_EQ(p.a.stats().challenge_acks, 1u);
  ASSERT_EQ(p.log.size(), before + 1);
  EXPECT_EQ(p.log.back().flags(), kTcpAck);
  EXPECT_EQ(p.log.back().ack(), rcv_nxt);
  inject(rcv_nxt + 10'000'000, kTcpRst);  // out of window: ignored silently
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_rst_out_of_window), 1u);
  EXPECT_EQ(p.log.size(), before + 1);
  inject(rcv_nxt + 5, kTcpSyn);  // SYN on an established connection: challenge ACK
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_syn_challenged), 1u);
  EXPECT_EQ(p.a.stats().challenge_acks, 2u);
  EXPECT_EQ(p.a.state(ca), TcpState::established);
  inject(rcv_nxt, kTcpRst);  // exactly at RCV.NXT: reset
  EXPECT_EQ(p.a.state(ca), TcpState::closed);
  bool closed = false;
  for (const TcpEvent& e : p.a.events()) closed = closed || (e.kind == TcpEventKind::closed);
  EXPECT_TRUE(closed);
  EXPECT_TRUE(p.a.eof(ca));
  // Until the application releases it, the closed connection answers as CLOSED does: a
  // late RST is dropped unanswered, anything else gets an RST; neither is a refused connect.
  const size_t at_close = p.log.size();
  inject(rcv_nxt, kTcpRst);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_conn_closed), 1u);
  EXPECT_EQ(p.log.size(), at_close);
  inject(rcv_nxt, kTcpAck);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_conn_closed), 2u);
  ASSERT_EQ(p.log.size(), at_close + 1);
  EXPECT_EQ(p.log.back().flags(), kTcpRst);
  EXPECT_EQ(p.log.back().seq(), snd_nxt);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_no_listener), 0u);
  p.a.close(ca, p.now);
  EXPECT_EQ(p.a.live_conns(), 0u);
  (void)cb;
}

TEST(Tcp, NoListenerAnswersRstAndBadSegmentsAreCounted) {
  TcpPair p(config(), config());
  const uint32_t src = p.addr_a(), dst = p.addr_b();
  auto syn = forge(htons(1234), htons(9), 1000, 0, kTcpSyn, src, dst);
  p.b.input(src, dst, syn.data(), 20, 0);
  EXPECT_EQ(p.drops_b.get(DropReason::tcp_no_listener), 1u);
  ASSERT_EQ(p.log.size(), 1u);
  EXPECT_EQ(p.log[0].flags(), kTcpRst | kTcpAck);
  EXPECT_EQ(p.log[0].ack(), 1001u);
  syn[16] ^= 1;  // checksum
  p.b.input(src, dst, syn.data(), 20, 0);
  EXPECT_EQ(p.drops_b.get(DropReason::tcp_bad_checksum), 1u);
  auto synfin = forge(htons(1234), htons(9), 1000, 0, kTcpSyn | kTcpFin, src, dst);
  p.b.input(src, dst, synfin.data(), 20, 0);
  EXPECT_EQ(p.drops_b.get(DropReason::tcp_bad_flags), 1u);
  p.b.input(src, dst, synfin.data(), 10, 0);
  EXPECT_EQ(p.drops_b.get(DropReason::tcp_too_short), 1u);
  auto rst = forge(htons(1234), htons(9), 1000, 0, kTcpRst, src, dst);
  p.b.input(src, dst, rst.data(), 20, 0);  // an RST is never answered
  EXPECT_EQ(p.log.size(), 1u);
  // A bare ACK to a listener: RST with its ACK number as the sequence number.
  p.b.listen(0, kPort);
  auto ack = forge(htons(1234), kPort, 1000, 777, kTcpAck, src, dst);
  p.b.input(src, dst, ack.data(), 20, 0);
  EXPECT_EQ(p.drops_b.get(DropReason::tcp_listen_bad), 1u);
  ASSERT_EQ(p.log.size(), 2u);
  EXPECT_EQ(p.log[1].flags(), kTcpRst);
  EXPECT_EQ(p.log[1].seq(), 777u);
  EXPECT_EQ(p.b.live_conns(), 0u);
}

// Delayed ACK: one segment is acknowledged after delack_ns, a second one at once.
TEST(Tcp, DelayedAckTimerAndEverySecondSegment) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const uint32_t mss = p.a.info(ca).snd_mss;
  const auto one = pattern(100, 1);
  const size_t first = p.log.size();
  const int64_t t0 = p.now;
  p.a.send(ca, one.data(), uint32_t(one.size()), p.now);
  p.run(
      [&] { return p.b.readable_bytes(cb) == 100 && p.idle() && p.b.next_deadline() == INT64_MAX; },
      1 * kSec);
  const Seg* ack = nullptr;
  for (size_t i = first; i < p.log.size(); ++i)
    if (p.log[i].src == p.addr_b()) {
      ack = &p.log[i];
      break;
    }
  ASSERT_NE(ack, nullptr);
  EXPECT_EQ(ack->sent_at - t0, 1 * kMs + 40 * kMs);  // one way, then the timer
  // Two full segments: the second one is acknowledged on arrival.
  const auto two = pattern(2 * mss, 2);
  const size_t mark = p.log.size();
  const int64_t t1 = p.now;
  p.a.send(ca, two.data(), uint32_t(two.size()), p.now);
  p.run([&] { return p.b.readable_bytes(cb) == 100 + 2 * mss && p.idle(); }, 1 * kSec);
  std::vector<const Seg*> acks;
  for (size_t i = mark; i < p.log.size(); ++i)
    if (p.log[i].src == p.addr_b()) acks.push_back(&p.log[i]);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0]->sent_at - t1, 1 * kMs);
}

// batch_output: send() only queues and the every-second-segment ACK is held until
// flush(); then the replies leave as one segment that carries the ACK, and with nothing to
// send the held ACK leaves alone.
TEST(Tcp, BatchedOutputCoalescesRepliesAndCarriesTheAck) {
  TcpConfig cb_cfg = config();
  cb_cfg.batch_output = true;
  TcpPair p(config(), cb_cfg);
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  p.b.flush(p.now);
  p.run([&] { return p.idle(); }, 1 * kSec);
  auto from_b = [&](size_t mark) {
    std::vector<const Seg*> v;
    for (size_t i = mark; i < p.log.size(); ++i)
      if (p.log[i].src == p.addr_b()) v.push_back(&p.log[i]);
    return v;
  };
  const auto msg = pattern(64, 3);
  const size_t mark = p.log.size();
  for (int i = 0; i < 4; ++i) ASSERT_EQ(p.a.send(ca, msg.data(), 64, p.now), 64u);  // 4 segments
  ASSERT_TRUE(p.run([&] { return p.b.readable_bytes(cb) == 256 && p.idle(); }, 1 * kSec));
  EXPECT_TRUE(from_b(mark).empty());  // the ACK is held, not sent per second segment
  uint8_t buf[256];
  ASSERT_EQ(p.b.recv(cb, buf, sizeof buf, p.now), 256u);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(p.b.send(cb, buf + 64 * i, 64, p.now), 64u);
  EXPECT_TRUE(from_b(mark).empty());  // queued until flush()
  p.b.flush(p.now);
  auto out = from_b(mark);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->dlen(), 256u);
  EXPECT_TRUE(out[0]->flags() & kTcpAck);
  const uint32_t a_end = out[0]->ack();
  ASSERT_TRUE(p.run([&] { return p.a.readable_bytes(ca) == 256 && p.idle(); }, 1 * kSec));
  // Nothing to reply: flush() sends the held ACK alone, for everything received.
  const size_t mark2 = p.log.size();
  for (int i = 0; i < 2; ++i) ASSERT_EQ(p.a.send(ca, msg.data(), 64, p.now), 64u);
  ASSERT_TRUE(p.run([&] { return p.b.readable_bytes(cb) == 128 && p.idle(); }, 1 * kSec));
  EXPECT_TRUE(from_b(mark2).empty());
  p.b.flush(p.now);
  out = from_b(mark2);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->dlen(), 0u);
  EXPECT_EQ(out[0]->ack(), a_end + 128);
  p.b.flush(p.now);  // nothing more is owed
  EXPECT_EQ(from_b(mark2).size(), 1u);
}

// PAWS (RFC 7323 5): an in-window segment with a timestamp older than TS.Recent is dropped
// and answered with an ACK; a newer one is taken.
TEST(Tcp, PawsDropsOldTimestamps) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const Expect e = expect_of_a(p);
  ASSERT_NE(e.tsval, 0u);
  const size_t before = p.log.size();
  auto old = forge(kPort, htons(40000), e.rcv_nxt, e.snd_nxt, kTcpAck | kTcpPsh, p.addr_b(),
                   p.addr_a(), ts_option(e.tsval - 1000, 0), {'x'});
  p.a.input(p.addr_b(), p.addr_a(), old.data(), uint32_t(old.size()), p.now);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_paws), 1u);
  EXPECT_EQ(p.a.readable_bytes(ca), 0u);
  ASSERT_EQ(p.log.size(), before + 1);  // the ACK
  auto fresh = forge(kPort, htons(40000), e.rcv_nxt, e.snd_nxt, kTcpAck | kTcpPsh, p.addr_b(),
                     p.addr_a(), ts_option(e.tsval + 1, 0), {'y'});
  p.a.input(p.addr_b(), p.addr_a(), fresh.data(), uint32_t(fresh.size()), p.now);
  EXPECT_EQ(p.a.readable_bytes(ca), 1u);
  (void)cb;
}

// RFC 5961 5.2: an ACK of unsent data is answered with an ACK, one far below SND.UNA with a
// challenge ACK; both are dropped. Challenge ACKs are rate-limited (RFC 5961 7).
TEST(Tcp, AckChecksAndChallengeAckLimit) {
  TcpConfig c = config();
  c.challenge_ack_limit = 5;
  TcpPair p(c, c);
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  const Expect e = expect_of_a(p);
  auto inject = [&](uint32_t seq, uint32_t ack, uint8_t flags) {
    auto h = forge(kPort, htons(40000), seq, ack, flags, p.addr_b(), p.addr_a(),
                   ts_option(e.tsval + 1, 0));
    p.a.input(p.addr_b(), p.addr_a(), h.data(), uint32_t(h.size()), p.now);
  };
  inject(e.rcv_nxt, e.snd_nxt + 5000, kTcpAck);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_ack_unsent), 1u);
  inject(e.rcv_nxt, e.snd_nxt - 1'000'000, kTcpAck);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_ack_too_old), 1u);
  EXPECT_EQ(p.a.stats().challenge_acks, 1u);
  for (int i = 0; i < 10; ++i) inject(e.rcv_nxt + 1 + i, 0, kTcpRst);
  EXPECT_EQ(p.drops_a.get(DropReason::tcp_rst_challenged), 10u);
  EXPECT_EQ(p.a.stats().challenge_acks, 5u);
  EXPECT_EQ(p.a.stats().challenge_acks_suppressed, 6u);
  p.now += 1 * kSec;  // a new second: challenges again
  inject(e.rcv_nxt + 1, 0, kTcpRst);
  EXPECT_EQ(p.a.stats().challenge_acks, 6u);
  EXPECT_EQ(p.a.state(ca), TcpState::established);
  (void)cb;
}

// Bounds: a full table drops SYNs (counted); a segment needing one out-of-order range more
// than configured is dropped (counted) and the data still arrives by retransmission.
TEST(Tcp, TableAndOutOfOrderBounds) {
  TcpConfig cb = config();
  cb.max_conns = 2;
  cb.ooo_ranges = 2;
  TcpPair p(config(), cb);
  ConnId ca, cbid;
  std::tie(ca, cbid) = connect(p, htons(40000));
  connect(p, htons(40001));
  p.a.connect(p.addr_a(), htons(40002), p.addr_b(), kPort, p.now);
  p.run([&] { return false; }, 100 * kMs);
  EXPECT_GE(p.drops_b.get(DropReason::tcp_table_full), 1u);
  EXPECT_EQ(p.b.live_conns(), 2u);
  const uint32_t mss = p.a.info(ca).snd_mss;
  int n = 0;
  p.filter = [&](const Seg& s) {
    if (s.src != p.addr_a() || s.dport() != kPort || s.sport() != htons(40000) || s.dlen() == 0)
      return true;
    ++n;
    return n != 2 && n != 4 && n != 6;  // three holes: the third range does not fit
  };
  const auto out = pattern(8 * mss, 3);
  p.a.send(ca, out.data(), uint32_t(out.size()), p.now);
  p.run([&] { return p.b.readable_bytes(cbid) == out.size(); }, 30 * kSec);
  EXPECT_GE(p.drops_b.get(DropReason::tcp_ooo_full), 1u);
  std::vector<uint8_t> in(out.size());
  ASSERT_EQ(p.b.recv(cbid, in.data(), uint32_t(in.size()), p.now), out.size());
  EXPECT_TRUE(in == out);
}

// TIME_WAIT answers a retransmitted FIN (our last ACK was lost) and restarts its timer.
TEST(Tcp, TimeWaitAcksRetransmittedFin) {
  TcpPair p(config(), config());
  ConnId ca, cb;
  std::tie(ca, cb) = connect(p);
  p.a.close(ca, p.now);
  p.run([&] { return p.b.eof(cb); }, 1 * kSec);
  bool lose = true;  // a's ACK of b's FIN is lost once
  p.filter = [&](const Seg& s) {
    if (lose && s.src == p.addr_a() && s.flags() == kTcpAck) {
      lose = false;
      return false;
    }
    return true;
  };
  p.b.close(cb, p.now);
  p.run([&] { return p.b.live_conns() == 0; }, 5 * kSec);
  EXPECT_FALSE(lose);
  EXPECT_EQ(p.b.live_conns(), 0u);  // b's FIN again, a's ACK again
  EXPECT_GE(p.b.stats().retransmits, 1u);
  EXPECT_EQ(p.a.live_conns(), 1u);  // still in TIME_WAIT
  p.run([&] { return p.a.live_conns() == 0; }, 5 * kSec);
  EXPECT_EQ(p.a.live_conns(), 0u);
}

// A SYN flood (RFC 4987): past syn_backlog half-open connections, SYNs get stateless
// cookie SYN-ACKs; a real client still connects (through a cookie) and transfers data, and
// an ACK with a wrong cookie is answered with RST.
TEST(Tcp, SynCookiesUnderFlood) {
  TcpConfig cb = config();
  cb.max_conns = 8;
  cb.syn_backlog = 4;
  TcpPair p(config(), cb);
  p.b.listen(0, kPort);
  p.filter = [&](const Seg& s) { return s.dst != htonl(0x0A000063); };  // the flooder's
  for (uint16_t i = 0; i < 100; ++i) {
    auto syn = forge(htons(uint16_t(1000 + i)), kPort, 7777u * i, 0, kTcpSyn, htonl(0x0A000063),
                     p.addr_b());
    p.b.input(htonl(0x0A000063), p.addr_b(), syn.data(), 20, p.now);
  }
  EXPECT_EQ(p.b.live_conns(), 4u);
  EXPECT_EQ(p.b.stats().syn_cookies_sent, 96u);
  EXPECT_EQ(p.drops_b.get(DropReason::tcp_table_full), 0u);
  ConnId ca, cbid;
  std::tie(ca, cbid) = connect(p);
  EXPECT_EQ(p.b.stats().syn_cookies_accepted, 1u);
  const auto ib = p.b.info(cbid);
  EXPECT_FALSE(ib.ts || ib.sack);  // a cookie remembers only the MSS
  EXPECT_EQ(ib.snd_mss, 1460);
  const auto out = pattern(100000, 4);
  size_t sent = 0;
  const auto in = send_a_to_b(p, ca, cbid, out, sent, 10 * kSec);
  EXPECT_TRUE(in == out);
  // A forged third segment: no cookie matches.
  const size_t before = p.log.size();
  auto ack = forge(htons(5555), kPort, 1, 12345, kTcpAck, p.addr_a(), p.addr_b());
  p.b.input(p.addr_a(), p.addr_b(), ack.data(), 20, p.now);
  EXPECT_EQ(p.drops_b.get(DropReason::tcp_listen_bad), 1u);
  ASSERT_EQ(p.log.size(), before + 1);
  EXPECT_EQ(p.log.back().flags(), kTcpRst);
  // The flood's half-open connections time out; the table empties.
  p.a.close(ca, p.now);
  p.b.close(cbid, p.now);
  p.run([&] { return p.b.live_conns() == 0; }, 300 * kSec);
  EXPECT_EQ(p.b.live_conns(), 0u);
}

// Keep-alive: an idle connection is probed (one below SND.UNA, which the peer answers);
// when the peer falls silent, the probes run out and the connection is reset.
TEST(Tcp, KeepAliveProbesAndTimesOut) {
  TcpConfig c = config();
  c.keepalive_idle_ns = 2 * kSec;
  c.keepalive_interval_ns = 1 * kSec;
  c.keepalive_probes = 3;
  TcpPair p(c, config());
  ConnId ca, cb;  // a established at 2 ms (the SYN-ACK's arrival)
  std::tie(ca, cb) = connect(p);
  const size_t first = p.log.size();
  p.run([&] { return p.now >= 5 * kSec; }, 10 * kSec);
  std::vector<const Seg*> probes;
  for (size_t i = first; i < p.log.size(); ++i)
    if (p.log[i].src == p.addr_a()) probes.push_back(&p.log[i]);
  // At 2 s after the last segment from b, then (b answered at once) 2 s after the answer.
  ASSERT_EQ(probes.size(), 2u);
  EXPECT_EQ(probes[0]->sent_at, 2 * kSec + 2 * kMs);
  EXPECT_EQ(probes[1]->sent_at, 4 * kSec + 4 * kMs);
  EXPECT_EQ(probes[0]->seq(), p.log.at(2).seq() - 1);  // one below SND.UNA
  EXPECT_EQ(probes[0]->dlen(), 0u);
  EXPECT_EQ(p.a.stats().keepalive_probes, 2u);
  EXPECT_EQ(p.a.state(ca), TcpState::established);
  // b falls silent: probes at 6, 7 and 8 s go unanswered; at 9 s a resets.
  p.filter = [&](const Seg& s) { return s.src != p.addr_b(); };
  p.run([&] { return p.a.state(ca) == TcpState::closed; }, 10 * kSec);
  EXPECT_EQ(p.a.state(ca), TcpState::closed);
  EXPECT_EQ(p.a.stats().keepalive_probes, 5u);
  EXPECT_EQ(p.a.stats().conns_timed_out, 1u);
  EXPECT_EQ(p.log.back().flags(), kTcpRst | kTcpAck);
  EXPECT_EQ(p.log.back().sent_at, 9 * kSec + 6 * kMs);
  (void)cb;
}

// Many short connections leave nothing behind once TIME_WAIT is over.
TEST(Tcp, TenThousandConnectCloseCycles) {
  TcpConfig c = config(4096);
  c.max_conns = 2048;
  c.time_wait_ns = 200 * kMs;
  TcpPair p(c, c);
  p.keep_log = false;
  p.b.listen(0, kPort);
  const uint8_t req[4] = {'p', 'i', 'n', 'g'};
  int done = 0;
  for (int i = 0; i < 10000; ++i) {
    const uint16_t lport = htons(uint16_t(20000 + i % 30000));
    const ConnId ca = p.a.connect(p.addr_a(), lport, p.addr_b(), kPort, p.now);
    ASSERT_NE(ca, kNoConn) << i;
    ConnId cb = kNoConn;
    bool ok = p.run(
        [&] {
          for (const TcpEvent& e : p.b.events())
            if (e.kind == TcpEventKind::accepted) cb = e.conn;
          p.a.clear_events();
          p.b.clear_events();
          if (p.a.state(ca) == TcpState::established && p.a.send_space(ca) == 4096) {
            p.a.send(ca, req, 4, p.now);
            p.a.close(ca, p.now);  // a closes first: a holds the TIME_WAIT
          }
          if (cb != kNoConn && p.b.readable_bytes(cb) == 4 &&
              p.b.state(cb) == TcpState::close_wait) {
            uint8_t r[4];
            p.b.recv(cb, r, 4, p.now);
            p.b.close(cb, p.now);
            ++done;
            return true;
          }
          return false;
        },
        10 * kSec);
    ASSERT_TRUE(ok) << i;
  }
  EXPECT_EQ(done, 10000);
  EXPECT_GT(p.a.live_conns(), 0u);  // TIME_WAITs
  p.run([&] { return p.a.live_conns() + p.b.live_conns() == 0; }, 10 * kSec);
  EXPECT_EQ(p.a.live_conns(), 0u);
  EXPECT_EQ(p.b.live_conns(), 0u);
  EXPECT_EQ(p.a.stats().conns_connected, 10000u);
  EXPECT_EQ(p.b.stats().conns_accepted, 10000u);
  EXPECT_EQ(p.drops_a.total() + p.drops_b.total(), 0u);
}

}  // namespace
}  // namespace cw::dp::net
