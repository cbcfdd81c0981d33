// Two QUIC endpoints (app/services/peer/endpoint.hh) joined in memory (two_endpoints.hh): one
// dials, the other accepts, on a simulated clock. Skips without certtool.
#include "app/services/peer/endpoint.hh"

#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cstdlib>
#include <string>
#include <vector>

#include "tests/services/peer/two_endpoints.hh"

namespace cw::peer {
namespace {

using namespace test;

TEST(PeerEndpoint, HandshakeAndOrderedEcho) {
  NEED_CERTS();
  TlsContext ta, tb;
  ASSERT_EQ(ta.load(certs().f("a.pem"), certs().f("a.key"), certs().f("ca.pem")), "");
  ASSERT_EQ(tb.load(certs().f("b.pem"), certs().f("b.key"), certs().f("ca.pem")), "");
  QuicEndpoint a(dialer(), &ta), b(acceptor(), &tb);
  Net net{a, b};
  a.start(net.now);
  for (int i = 0; i < 200 && !(a.is_open(0) && b.counters()[kSessionsUp] == 1); ++i) net.round();
  ASSERT_TRUE(a.is_open(0));
  EXPECT_EQ(b.counters()[kSessionsUp], 1u);
  EXPECT_EQ(b.counters()[kSessionsOpen], 1u);
  const int st = a.open_stream(0);
  ASSERT_GE(st, 0);

  // 5000 requests of 300 bytes (more than the rings and windows hold at once): B echoes each,
  // A checks they come back in order.
  constexpr uint32_t kN = 5000;
  uint32_t sent = 0, got = 0, bad = 0;
  std::vector<uint8_t> body(300);
  auto fill = [&](uint32_t seq) {
    for (size_t i = 0; i < body.size(); ++i) body[i] = uint8_t(seq + i * 7);
  };
  for (int r = 0; r < 100000 && got < kN; ++r) {
    while (sent < kN) {
      fill(sent);
      if (!a.send_frame(0, unsigned(st), {uint32_t(body.size()), FrameKind::request, 0}, body))
        break;
      ++sent;
    }
    b.drain_frames(
        [&](uint32_t slot, unsigned s, const FrameHeader& h, std::span<const uint8_t> in) {
          EXPECT_EQ(h.kind, FrameKind::request);
          return b.send_frame(slot, s, {h.len, FrameKind::response, h.channel}, in);
        });
    a.drain_frames([&](uint32_t, unsigned, const FrameHeader& h, std::span<const uint8_t> in) {
      fill(got);
      if (h.kind != FrameKind::response || in.size() != body.size() ||
          !std::equal(in.begin(), in.end(), body.begin()))
        ++bad;
      ++got;
      return true;
    });
    net.round();
  }
  EXPECT_EQ(got, kN);
  EXPECT_EQ(bad, 0u);
  EXPECT_EQ(a.counters()[kBadFrames] + b.counters()[kBadFrames], 0u);

  // Datagrams both ways beside the streams: B echoes each; on this lossless link all arrive.
  uint32_t dsent = 0, dgot = 0, dbad = 0;
  std::vector<uint8_t> dg(kMaxDatagram);
  for (int r = 0; r < 2000 && dgot < 200; ++r) {
    while (dsent < 200) {
      fill(dsent);
      if (!a.send_datagram(0, std::span(dg.data(), 1 + dsent * 5))) break;
      ++dsent;
    }
    b.drain_datagrams(
        [&](uint32_t slot, std::span<const uint8_t> d) { EXPECT_TRUE(b.send_datagram(slot, d)); });
    a.drain_datagrams([&](uint32_t, std::span<const uint8_t> d) {
      if (d.size() != 1 + dgot * 5) ++dbad;  // in order here: one path, nothing lost
      ++dgot;
    });
    net.round();
  }
  EXPECT_EQ(dgot, 200u);
  EXPECT_EQ(dbad, 0u);
  EXPECT_EQ(a.counters()[kDatagramsOut], 200u);
  EXPECT_EQ(b.counters()[kDatagramsIn], 200u);
  EXPECT_FALSE(a.send_datagram(0, std::vector<uint8_t>(kMaxDatagram + 1)));

  // The dialer closes; the acceptor's session ends once the close arrives.
  a.close(0, 0);
  for (int i = 0; i < 50; ++i) net.round();
  EXPECT_EQ(b.counters()[kSessionsOpen], 0u);
  EXPECT_EQ(b.counters()[kSessionsClosed], 1u);
}

// The receiver holds up to its stream window of frames it has not consumed, and the sender's
// ring is twice that: with the default window one 16 KiB frame gets through while B consumes
// nothing, with stream_window = 256 KiB all twelve do.
TEST(PeerEndpoint, StreamWindowFromConfig) {
  NEED_CERTS();
  for (const uint32_t window : {kStreamRxBytes, uint32_t{256 * 1024}}) {
    TlsContext ta, tb;
    ASSERT_EQ(ta.load(certs().f("a.pem"), certs().f("a.key"), certs().f("ca.pem")), "");
    ASSERT_EQ(tb.load(certs().f("b.pem"), certs().f("b.key"), certs().f("ca.pem")), "");
    EndpointConfig ca = dialer(), cb = acceptor();
    ca.stream_window = cb.stream_window = window;
    QuicEndpoint a(ca, &ta), b(cb, &tb);
    Net net{a, b};
    a.start(net.now);
    for (int i = 0; i < 200 && !(a.is_open(0) && b.counters()[kSessionsUp] == 1); ++i) net.round();
    ASSERT_TRUE(a.is_open(0));
    const int st = a.open_stream(0);
    ASSERT_GE(st, 0);
    EXPECT_EQ(a.tx_room(0, unsigned(st)), std::bit_ceil(2 * window));
    const std::vector<uint8_t> body(kMaxFrameBody, 0x5a);
    uint32_t queued = 0;
    while (queued < 12 &&
           a.send_frame(0, unsigned(st), {kMaxFrameBody, FrameKind::request, 0}, body))
      ++queued;
    EXPECT_EQ(queued, window == kStreamRxBytes ? 3u : 12u);  // what the ring holds
    for (int i = 0; i < 300; ++i) net.round();
    uint32_t whole = 0;
    b.drain_frames([&](uint32_t, unsigned, const FrameHeader& h, std::span<const uint8_t>) {
      EXPECT_EQ(h.len, kMaxFrameBody);
      ++whole;
      return false;  // consume nothing: the window stays where it is
    });
    uint32_t in_window = 0;  // frames B must have whole: all that fit its window
    while ((in_window + 1) * (kFrameHeader + kMaxFrameBody) <= window && in_window < queued)
      ++in_window;
    EXPECT_EQ(whole, 1u) << "drain_frames stops at the first frame left";
    b.drain_frames([&](uint32_t, unsigned, const FrameHeader&, std::span<const uint8_t>) {
      ++whole;
      return true;
    });
    EXPECT_EQ(whole, 1 + in_window) << "window " << window;
  }
}

// A dial from (cert, ca) to B (the cluster's node) until the dialer's handshake fails or
// 400 ms pass; the counters of both sides.
struct Outcome {
  std::array<uint64_t, kEpCounters> dialer, acceptor;
  bool open = false;
};
Outcome dial_b(const std::string& node, const std::string& ca) {
  TlsContext td, tb;
  EXPECT_EQ(td.load(certs().f(node + ".pem"), certs().f(node + ".key"), certs().f(ca)), "");
  EXPECT_EQ(tb.load(certs().f("b.pem"), certs().f("b.key"), certs().f("ca.pem")), "");
  QuicEndpoint d(dialer(), &td), b(acceptor(), &tb);
  Net net{d, b};
  d.start(net.now);
  for (int i = 0; i < 400 && d.counters()[kHandshakeFailed] == 0; ++i) net.round(1'000'000);
  return {d.counters(), b.counters(), d.is_open(0)};
}

TEST(PeerEndpoint, CertificateFromAnotherCaIsRefused) {
  NEED_CERTS();
  // C trusts the cluster CA (so it accepts B) but holds the rogue CA's certificate.
  const Outcome o = dial_b("c", "ca.pem");
  EXPECT_EQ(o.acceptor[kPeerRefused], 1u);
  EXPECT_EQ(o.acceptor[kHandshakeFailed], 1u);
  EXPECT_EQ(o.acceptor[kSessionsUp], 0u);
  EXPECT_EQ(o.dialer[kHandshakeFailed], 1u);
  EXPECT_EQ(o.dialer[kSessionsUp], 0u);
  EXPECT_FALSE(o.open);
}

TEST(PeerEndpoint, ServerCertificateFromAnotherCaIsRefused) {
  NEED_CERTS();
  // A trusts only the rogue CA: B's certificate is refused by the dialer.
  const Outcome o = dial_b("a", "rogue.pem");
  EXPECT_EQ(o.dialer[kPeerRefused], 1u);
  EXPECT_EQ(o.acceptor[kSessionsUp], 0u);
  EXPECT_FALSE(o.open);
}

// A member slot dials the peer it was assigned, pinned to a certificate fingerprint: B's
// own is accepted; another (the CA signed B's, but it is not the one registered) is refused.
TEST(PeerEndpoint, MemberSlotsArePinnedToTheRegisteredCertificate) {
  NEED_CERTS();
  TlsContext ta, tb;
  ASSERT_EQ(ta.load(certs().f("a.pem"), certs().f("a.key"), certs().f("ca.pem")), "");
  ASSERT_EQ(tb.load(certs().f("b.pem"), certs().f("b.key"), certs().f("ca.pem")), "");
  ASSERT_NE(ta.fingerprint(), tb.fingerprint());
  EndpointConfig cfg = dialer();
  cfg.dial.clear();
  cfg.member_slots = 2;
  cfg.retry_ns = 5'000'000;
  QuicEndpoint a(cfg, &ta), b(acceptor(), &tb);
  Net net{a, b};
  a.start(net.now);
  ASSERT_EQ(a.client_slots(), 2u);
  const uint32_t s0 = a.member_slot(0), s1 = a.member_slot(1);
  for (int i = 0; i < 20; ++i) net.round();
  EXPECT_EQ(a.counters()[kSessionsUp] + b.counters()[kSessionsUp], 0u);  // nothing assigned

  // Pinned to A's own fingerprint: B's certificate is refused, and the slot keeps redialing.
  ASSERT_TRUE(a.assign(s1, kB, ta.fingerprint(), net.now));
  EXPECT_FALSE(a.assign(s1, kB, tb.fingerprint(), net.now));  // taken
  for (int i = 0; i < 400 && a.counters()[kPeerMismatch] < 2; ++i) net.round(1'000'000);
  EXPECT_GE(a.counters()[kPeerMismatch], 2u);
  EXPECT_GE(a.counters()[kPeerRefused], 2u);
  EXPECT_FALSE(a.is_open(s1));
  a.unassign(s1);
  for (int i = 0; i < 200 && !a.assignable(s1); ++i) net.round(1'000'000);
  EXPECT_TRUE(a.assignable(s1));

  // Pinned to B's: the session comes up and reports B's fingerprint.
  ASSERT_TRUE(a.assign(s0, kB, tb.fingerprint(), net.now));
  for (int i = 0; i < 200 && !a.is_open(s0); ++i) net.round();
  ASSERT_TRUE(a.is_open(s0));
  ASSERT_NE(a.peer_fingerprint(s0), nullptr);
  EXPECT_EQ(*a.peer_fingerprint(s0), tb.fingerprint());
  // B learnt A's the same way (the server slots come after the client slots).
  bool b_knows_a = false;
  for (uint32_t s = b.client_slots(); s < b.slots(); ++s)
    b_knows_a |= b.peer_fingerprint(s) && *b.peer_fingerprint(s) == ta.fingerprint();
  EXPECT_TRUE(b_knows_a);

  // Unassigned: the session closes, B sees it end, and the slot is not redialed.
  const uint64_t mismatches = a.counters()[kPeerMismatch];
  a.unassign(s0);
  for (int i = 0; i < 200; ++i) net.round(1'000'000);
  EXPECT_FALSE(a.is_open(s0));
  EXPECT_TRUE(a.assignable(s0));
  EXPECT_EQ(b.counters()[kSessionsOpen], 0u);
  EXPECT_EQ(a.counters()[kSessionsUp], 1u);
  EXPECT_EQ(a.counters()[kPeerMismatch], mismatches);
}

TEST(PeerEndpoint, GarbageIsCountedAndDropped) {
  NEED_CERTS();
  TlsContext tb;
  ASSERT_EQ(tb.load(certs().f("b.pem"), certs().f("b.key"), certs().f("ca.pem")), "");
  QuicEndpoint b(acceptor(), &tb);
  std::vector<uint8_t> junk(1400);
  uint64_t seed = 1;
  for (int i = 0; i < 2000; ++i) {
    const size_t n = size_t(i % 1400);
    for (size_t k = 0; k < n; ++k) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      junk[k] = uint8_t(seed >> 56);
    }
    b.on_datagram(Via::server, kA, junk.data(), n, 1'000'000'000 + uint64_t(i));
    b.flush(1'000'000'000 + uint64_t(i));
    b.clear_outbox();
  }
  // Random bytes are almost never a valid Initial; whatever is not, is counted dropped.
  const auto& c = b.counters();
  EXPECT_GE(c[kDropGarbage] + c[kDropUnknown] + c[kDropVersion] + c[kDropWrongWorker], 1990u);
  EXPECT_EQ(c[kSessionsUp], 0u);
}

}  // namespace
}  // namespace cw::peer
