// SockperfEcho over the fake backend: UDP and TCP echo, the messages sockperf sends in each
// mode, framing across segments, and bad input (counted drops, closed connections).
#include <cstring>
#include <random>

#include "app/protocol/sockperf.hh"
#include "tests/services/echo_fixture.hh"

namespace cw::svc::testing {
namespace {

namespace sp = proto::sockperf;

Bytes msg(uint64_t seq, uint16_t flags, uint32_t len, size_t have = ~size_t{0}) {
  Bytes v(have == ~size_t{0} ? len : have);
  for (size_t i = 0; i < v.size(); ++i) v[i] = uint8_t(0xA0 + i);
  uint8_t h[sp::kHeaderSize];
  sp::encode_header(h, {seq, flags, len});
  std::memcpy(v.data(), h, std::min<size_t>(v.size(), sp::kHeaderSize));
  return v;
}
Bytes reply_of(Bytes m) {
  sp::make_reply(m.data());
  return m;
}
constexpr uint16_t kPing = sp::kClient | sp::kPongRequest;

using SockperfUdp = EchoFixture;
using SockperfTcp = EchoFixture;

TEST_F(SockperfUdp, PingPongIsAnsweredToItsSourceWithTheClientBitCleared) {
  const Bytes req = msg(7, kPing, 14);
  const auto sent = udp(kSpUdp, req);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].to, peer);
  EXPECT_EQ(sent[0].sock, kSpUdp);
  // The exact bytes the stock `sockperf server` sent back for this request.
  EXPECT_EQ(sent[0].bytes, Bytes({0, 0, 0, 0, 0, 0, 0, 7, 0x00, 0x02, 0, 0, 0, 14}));
  EXPECT_EQ(sp().requests.get(), 1u);
  EXPECT_EQ(sp().responses.get(), 1u);
}

TEST_F(SockperfUdp, PayloadIsEchoedAtEverySize) {
  for (uint32_t len : {14u, 15u, 64u, 1500u, 9000u, sp::kMaxMessage}) {
    const Bytes req = msg(len, kPing, len);
    const auto sent = udp(kSpUdp, req);
    ASSERT_EQ(sent.size(), 1u) << len;
    EXPECT_EQ(sent[0].bytes, reply_of(req)) << len;
  }
}

TEST_F(SockperfUdp, ThroughputUnderLoadAndWarmupMessagesAreCountedNotAnswered) {
  for (uint16_t f : {uint16_t(0x1), uint16_t(0x2), uint16_t(0x5), uint16_t(0x7), uint16_t(0x0)})
    EXPECT_TRUE(udp(kSpUdp, msg(1, f, 14)).empty()) << f;
  EXPECT_EQ(sp().requests.get(), 5u);
  EXPECT_EQ(sp().responses.get(), 0u);
  EXPECT_EQ(sp().malformed.get(), 0u);
  EXPECT_EQ(declared(kSp, SockperfEcho::kNoReply), 5u);
  EXPECT_EQ(declared(kNt, NativeEcho::kOneway), 0u) << "the other service's block";
}

TEST_F(SockperfUdp, SeveralMessagesInOneDatagramGetOneReplyDatagram) {
  const Bytes a = msg(1, kPing, 14), b = msg(2, sp::kClient, 20), c = msg(3, kPing, 30);
  const auto sent = udp(kSpUdp, cat({a, b, c}));
  ASSERT_EQ(sent.size(), 1u) << "one request datagram, at most one reply datagram";
  EXPECT_EQ(sent[0].bytes, cat({reply_of(a), reply_of(c)}));
  EXPECT_EQ(sp().requests.get(), 3u);
  EXPECT_EQ(sp().responses.get(), 2u);
}

TEST_F(SockperfUdp, TruncatedAndBadLengthsAreCountedAndDropped) {
  const Bytes cases[] = {
      msg(1, kPing, 100, 14),    // says 100, carries 14
      msg(1, kPing, 5, 14),      // length below the header
      msg(1, kPing, 0, 14),      // length 0
      msg(1, kPing, 70000, 14),  // above kMaxMessage
      msg(1, kPing, 14, 10),     // shorter than a header
      Bytes{},                   // empty datagram
  };
  for (const Bytes& b : cases) EXPECT_TRUE(udp(kSpUdp, b).empty());
  EXPECT_EQ(sp().malformed.get(), 6u);
  EXPECT_EQ(sp().responses.get(), 0u);
}

TEST_F(SockperfUdp, TrailingJunkIsCountedButTheWholeMessageBeforeItIsAnswered) {
  const Bytes a = msg(16, kPing, 14);
  const auto sent = udp(kSpUdp, cat({a, Bytes(6, 'X')}));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].bytes, reply_of(a));
  EXPECT_EQ(sp().malformed.get(), 1u);
}

TEST_F(SockperfUdp, NoTxBufferCountsADrop) {
  io.set_tx_capacity(0);
  EXPECT_TRUE(udp(kSpUdp, msg(1, kPing, 14)).empty());
  EXPECT_EQ(sp().dropped.get(), 1u);
  EXPECT_EQ(sp().responses.get(), 0u);
  EXPECT_EQ(io.counters().tx_no_buffer.get(), 1u);
}

TEST_F(SockperfUdp, GarbageNeverGetsALargerReply) {
  std::mt19937 rng(3);
  for (int i = 0; i < 3000; ++i) {
    Bytes b(rng() % 120);
    for (auto& x : b) x = uint8_t(rng());
    if (b.size() >= 14 && i % 2) b[10] = b[11] = b[12] = 0, b[13] = uint8_t(14 + rng() % 50);
    if (b.size() >= 14 && i % 4 == 1) b[9] = (b[9] & ~7) | 3;
    io.inject_datagram(kSpUdp, peer, b);
    run();
    const auto sent = io.take_sent();
    ASSERT_LE(sent.size(), 1u);
    if (!sent.empty()) {
      EXPECT_LE(sent[0].bytes.size(), b.size());
    }
  }
  EXPECT_GT(sp().responses.get(), 0u);
  EXPECT_GT(sp().malformed.get(), 0u);
}

TEST_F(SockperfTcp, PingPongEcho) {
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  const Bytes req = msg(1, kPing, 20);
  tcp(c, req);
  EXPECT_EQ(io.take_stream_out(c), reply_of(req));
  EXPECT_TRUE(io.is_open(c));
  EXPECT_EQ(sp().responses.get(), 1u);
}

TEST_F(SockperfTcp, SeveralMessagesPerSegmentAndOnlyPongRequestsAnswered) {
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  Bytes all, want;
  for (uint64_t i = 1; i <= 50; ++i) {
    const uint16_t f = i % 10 == 0 ? kPing : sp::kClient;  // under-load: a few ask for replies
    const Bytes m = msg(i, f, 14 + uint32_t(i % 7));
    all.insert(all.end(), m.begin(), m.end());
    if (f == kPing) {
      const Bytes r = reply_of(m);
      want.insert(want.end(), r.begin(), r.end());
    }
  }
  tcp(c, all);
  EXPECT_EQ(io.take_stream_out(c), want);
  EXPECT_EQ(sp().requests.get(), 50u);
  EXPECT_EQ(sp().responses.get(), 5u);
  EXPECT_EQ(declared(kSp, SockperfEcho::kNoReply), 45u);
  EXPECT_TRUE(io.is_open(c));
}

TEST_F(SockperfTcp, MessagesSplitByteByByteAreReassembled) {
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  Bytes all, want;
  for (uint32_t len : {14u, 15u, 100u, 300u}) {  // 300 > the small tail buffer (64)
    const Bytes m = msg(len, kPing, len);
    all.insert(all.end(), m.begin(), m.end());
    const Bytes r = reply_of(m);
    want.insert(want.end(), r.begin(), r.end());
  }
  tcp(c, all, 1);
  EXPECT_EQ(io.take_stream_out(c), want);
  EXPECT_EQ(sp().responses.get(), 4u);
  EXPECT_EQ(w.tails().in_use(), 0u);
}

TEST_F(SockperfTcp, LargestMessageAcrossSegments) {
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  const Bytes m = msg(9, kPing, sp::kMaxMessage);
  tcp(c, m, 1448);
  EXPECT_EQ(io.take_stream_out(c), reply_of(m));
  EXPECT_TRUE(io.is_open(c));
  EXPECT_EQ(stats.stream_oversize.get(), 0u);
}

TEST_F(SockperfTcp, WarmupIsIgnored) {
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  tcp(c, cat({msg(1, 0x7, 14), msg(2, kPing, 14)}));
  EXPECT_EQ(io.take_stream_out(c), reply_of(msg(2, kPing, 14)));
  EXPECT_EQ(sp().requests.get(), 2u);
  EXPECT_EQ(sp().responses.get(), 1u);
}

TEST_F(SockperfTcp, BadLengthClosesAfterEarlierReplies) {
  for (uint32_t bad : {0u, 5u, 13u, sp::kMaxMessage + 1, 0xFFFFFFFFu}) {
    const dp::ConnId c = io.inject_open(kSpTcp, peer);
    const Bytes good = msg(1, kPing, 14);
    tcp(c, cat({good, msg(2, kPing, bad, 14)}));
    EXPECT_FALSE(io.is_open(c)) << bad;
    EXPECT_EQ(io.take_stream_out(c), reply_of(good)) << "queued replies go out first";
  }
  EXPECT_EQ(sp().malformed.get(), 5u);
  EXPECT_EQ(w.tails().in_use(), 0u);
}

TEST_F(SockperfTcp, GarbageClosesTheConnection) {
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  const char text[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
  tcp(c, Bytes(text, text + sizeof text - 1));
  EXPECT_FALSE(io.is_open(c));
  EXPECT_EQ(sp().malformed.get(), 1u);
}

TEST_F(SockperfTcp, TruncatedFrameThenPeerCloseReleasesTheTail) {
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  tcp(c, msg(1, kPing, 200, 150));
  EXPECT_TRUE(io.is_open(c));
  EXPECT_EQ(w.tails().in_use(), 1u);
  EXPECT_TRUE(io.take_stream_out(c).empty());
  io.inject_peer_close(c);
  run();
  EXPECT_EQ(w.tails().in_use(), 0u);
}

TEST_F(SockperfTcp, AReaderThatNeverReadsIsClosedAndCounted) {
  io.set_conn_out_limit(1000);
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  Bytes all;
  for (uint64_t i = 0; i < 200; ++i) {
    const Bytes m = msg(i, kPing, 14);
    all.insert(all.end(), m.begin(), m.end());
  }
  for (int round = 0; round < 5 && io.is_open(c); ++round) tcp(c, all);  // never take output
  EXPECT_FALSE(io.is_open(c));
  EXPECT_EQ(io.counters().conns_overflow.get(), 1u);
  EXPECT_EQ(sp().dropped.get(), 1u);
  EXPECT_EQ(sp().responses.get(), 1000u / 14);
}

using SockperfDisable = EchoFixture;

TEST_F(SockperfDisable, DisabledDropsAndCountsOverUdpAndTcpAndEnableResumes) {
  control_mail(kSp, rt::kMailServiceDisable);
  EXPECT_FALSE(std::get<SockperfEcho>(w.service(kSp)).enabled());
  EXPECT_TRUE(udp(kSpUdp, cat({msg(1, kPing, 14), msg(2, kPing, 20)})).empty());
  const dp::ConnId c = io.inject_open(kSpTcp, peer);
  tcp(c, cat({msg(3, kPing, 14), msg(4, sp::kClient, 14)}));  // the second wants no reply
  EXPECT_TRUE(io.take_stream_out(c).empty());
  EXPECT_TRUE(io.is_open(c));
  EXPECT_EQ(sp().requests.get(), 4u);
  EXPECT_EQ(sp().dropped.get(), 3u);
  EXPECT_EQ(sp().responses.get(), 0u);

  control_mail(kSp, rt::kMailServiceEnable);
  const Bytes req = msg(5, kPing, 30);
  const auto sent = udp(kSpUdp, req);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].bytes, reply_of(req));
  tcp(c, req);
  EXPECT_EQ(io.take_stream_out(c), reply_of(req));
  EXPECT_EQ(sp().responses.get(), 2u);
  EXPECT_EQ(sp().dropped.get(), 3u);
}

}  // namespace
}  // namespace cw::svc::testing
