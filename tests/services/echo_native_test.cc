// NativeEcho over the fake backend: echo over UDP and TCP, one-way, every error reply, the
// UDP amplification bound, framing across segments, and connections closed on bad input.
#include <cstring>
#include <random>

#include "app/protocol/native.hh"
#include "tests/services/echo_fixture.hh"

namespace cw::svc::testing {
namespace {

namespace nt = proto::native;

nt::Header hdr(uint64_t id, nt::Kind k = nt::Kind::request, uint16_t service = kEchoService) {
  nt::Header h;
  h.kind = k;
  h.service = service;
  h.request_id = id;
  return h;
}
Bytes msg(const nt::Header& h, uint32_t payload) {
  Bytes p(payload);
  for (uint32_t i = 0; i < payload; ++i) p[i] = uint8_t(i ^ 0x5A);
  Bytes out(nt::kHeaderSize + payload);
  nt::encode_message(out.data(), h, p);
  return out;
}
Bytes response_to(const Bytes& req) {
  Bytes r = req;
  r[3] = uint8_t(nt::Kind::response);
  return r;
}
struct Err {
  nt::ErrorCode code;
  uint64_t id;
};
Err error_of(const Bytes& b) {
  const nt::Decoded d = nt::decode(b);
  EXPECT_EQ(d.status, nt::Status::ok);
  EXPECT_EQ(d.header.kind, nt::Kind::error);
  EXPECT_EQ(d.payload.size(), 2u);
  if (d.payload.size() != 2) return {};
  return {nt::ErrorCode(d.payload[0] << 8 | d.payload[1]), d.header.request_id};
}

using NativeUdp = EchoFixture;
using NativeTcp = EchoFixture;

TEST_F(NativeUdp, RequestGetsResponseWithSameIdServiceAndPayload) {
  for (uint32_t n : {0u, 1u, 13u, 14u, 1000u, nt::kMaxPayload}) {
    const Bytes req = msg(hdr(0xABCD0000 + n), n);
    const auto sent = udp(kNtUdp, req);
    ASSERT_EQ(sent.size(), 1u) << n;
    EXPECT_EQ(sent[0].to, peer);
    EXPECT_EQ(sent[0].sock, kNtUdp);
    EXPECT_EQ(sent[0].bytes, response_to(req)) << n;
  }
  EXPECT_EQ(nt().requests.get(), 6u);
  EXPECT_EQ(nt().responses.get(), 6u);
}

TEST_F(NativeUdp, OneWayIsHandledButNotAnswered) {
  EXPECT_TRUE(udp(kNtUdp, msg(hdr(1, nt::Kind::oneway), 10)).empty());
  EXPECT_EQ(nt().requests.get(), 1u);
  EXPECT_EQ(nt().responses.get(), 0u);
  EXPECT_EQ(declared(kNt, NativeEcho::kOneway), 1u);
  EXPECT_EQ(declared(kSp, SockperfEcho::kNoReply), 0u) << "the other service's block";
}

TEST_F(NativeUdp, ResponsesAndErrorsFromAClientAreDropped) {
  EXPECT_TRUE(udp(kNtUdp, msg(hdr(1, nt::Kind::response), 3)).empty());
  EXPECT_TRUE(udp(kNtUdp, msg(hdr(2, nt::Kind::error), 2)).empty());
  EXPECT_EQ(nt().malformed.get(), 2u);
  EXPECT_EQ(nt().errors.get(), 0u);
}

TEST_F(NativeUdp, BadMagicAndShortDatagramsAreDroppedSilently) {
  Bytes bad = msg(hdr(1), 4);
  bad[0] = 'X';
  EXPECT_TRUE(udp(kNtUdp, bad).empty());
  const Bytes good = msg(hdr(1), 4);
  EXPECT_TRUE(udp(kNtUdp, Bytes(good.begin(), good.begin() + 23)).empty());
  EXPECT_TRUE(udp(kNtUdp, Bytes{}).empty());
  EXPECT_EQ(nt().malformed.get(), 3u);
  EXPECT_EQ(nt().errors.get(), 0u);
}

TEST_F(NativeUdp, EveryAnswerableErrorIsAnsweredWithinTheAmplificationBound) {
  struct Case {
    size_t off;
    uint8_t val;
    nt::ErrorCode code;
  };
  const Case cases[] = {
      {2, 2, nt::ErrorCode::bad_version},   {2, 0, nt::ErrorCode::bad_version},
      {3, 9, nt::ErrorCode::bad_kind},      {7, 1, nt::ErrorCode::bad_reserved},
      {21, 1, nt::ErrorCode::bad_reserved}, {16, 0x7F, nt::ErrorCode::too_large},
  };
  for (const Case& c : cases) {
    Bytes req = msg(hdr(500 + c.off), 0);  // the smallest datagram that can be answered
    req[c.off] = c.val;
    const auto sent = udp(kNtUdp, req);
    ASSERT_EQ(sent.size(), 1u) << int(c.off);
    EXPECT_LE(sent[0].bytes.size(), req.size() + kUdpReplySlack);
    EXPECT_EQ(sent[0].bytes[2], nt::kVersion) << "errors carry our highest version";
    const Err e = error_of(sent[0].bytes);
    EXPECT_EQ(e.code, c.code) << int(c.off);
    EXPECT_EQ(e.id, 500 + c.off);
  }
  EXPECT_EQ(nt().errors.get(), 6u);
}

TEST_F(NativeUdp, TruncatedPayloadGetsTruncatedError) {
  const Bytes whole = msg(hdr(42), 100);
  const Bytes req(whole.begin(), whole.begin() + 60);
  const auto sent = udp(kNtUdp, req);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(error_of(sent[0].bytes).code, nt::ErrorCode::truncated);
  EXPECT_EQ(error_of(sent[0].bytes).id, 42u);
}

TEST_F(NativeUdp, UnknownServiceGetsItsError) {
  const auto sent = udp(kNtUdp, msg(hdr(8, nt::Kind::request, 77), 5));
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(error_of(sent[0].bytes).code, nt::ErrorCode::unknown_service);
  EXPECT_EQ(nt::decode(sent[0].bytes).header.service, 77u);
  EXPECT_EQ(nt().errors.get(), 1u);
  EXPECT_EQ(nt().requests.get(), 0u);
}

TEST_F(NativeUdp, OneWayAndResponsesNeverGetErrors) {
  Bytes ow = msg(hdr(1, nt::Kind::oneway), 0);
  ow[7] = 1;  // bad flags
  EXPECT_TRUE(udp(kNtUdp, ow).empty());
  EXPECT_TRUE(udp(kNtUdp, msg(hdr(2, nt::Kind::oneway, 77), 0)).empty());  // unknown service
  Bytes resp = msg(hdr(3, nt::Kind::response), 50);
  resp.resize(30);  // truncated
  EXPECT_TRUE(udp(kNtUdp, resp).empty());
  EXPECT_EQ(nt().malformed.get(), 3u);
  EXPECT_EQ(nt().errors.get(), 0u);
}

TEST_F(NativeUdp, ExtraBytesAfterTheMessageAreDropped) {
  Bytes req = msg(hdr(1), 4);
  req.push_back(0);
  EXPECT_TRUE(udp(kNtUdp, req).empty());
  EXPECT_EQ(nt().malformed.get(), 1u);
}

TEST_F(NativeUdp, NoTxBufferCountsADrop) {
  io.set_tx_capacity(0);
  EXPECT_TRUE(udp(kNtUdp, msg(hdr(1), 4)).empty());
  Bytes bad = msg(hdr(2), 0);
  bad[2] = 9;
  EXPECT_TRUE(udp(kNtUdp, bad).empty());
  EXPECT_EQ(nt().dropped.get(), 2u);
}

TEST_F(NativeUdp, GarbageNeverGetsAReplyLargerThanTheBound) {
  std::mt19937 rng(11);
  for (int i = 0; i < 5000; ++i) {
    Bytes b(rng() % 64);
    for (auto& x : b) x = uint8_t(rng());
    if (b.size() >= 2 && i % 2) b[0] = 0x43, b[1] = 0x57;
    if (b.size() >= 24 && i % 4 == 1) b[2] = 1, b[3] &= 3, b[16] = b[17] = b[18] = 0, b[19] &= 63;
    io.inject_datagram(kNtUdp, peer, b);
    run();
    const auto sent = io.take_sent();
    ASSERT_LE(sent.size(), 1u);
    if (!sent.empty()) {
      EXPECT_LE(sent[0].bytes.size(), b.size() + kUdpReplySlack);
    }
  }
  EXPECT_GT(nt().errors.get(), 0u);
  EXPECT_GT(nt().malformed.get(), 0u);
}

TEST_F(NativeTcp, RequestsAreAnsweredInOrderManyPerSegment) {
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  Bytes all, want;
  for (uint64_t i = 0; i < 40; ++i) {
    const Bytes m = msg(hdr(i, i % 4 == 3 ? nt::Kind::oneway : nt::Kind::request), uint32_t(i));
    all.insert(all.end(), m.begin(), m.end());
    if (i % 4 != 3) {
      const Bytes r = response_to(m);
      want.insert(want.end(), r.begin(), r.end());
    }
  }
  tcp(c, all);
  EXPECT_EQ(io.take_stream_out(c), want);
  EXPECT_EQ(nt().requests.get(), 40u);
  EXPECT_EQ(nt().responses.get(), 30u);
  EXPECT_EQ(declared(kNt, NativeEcho::kOneway), 10u);
  EXPECT_TRUE(io.is_open(c));
}

TEST_F(NativeTcp, FramesSplitByteByByteAreReassembled) {
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  Bytes all, want;
  for (uint32_t n : {0u, 1u, 13u, 14u, 200u}) {  // 224 bytes > the small tail buffer
    const Bytes m = msg(hdr(n), n);
    all.insert(all.end(), m.begin(), m.end());
    const Bytes r = response_to(m);
    want.insert(want.end(), r.begin(), r.end());
  }
  tcp(c, all, 1);
  EXPECT_EQ(io.take_stream_out(c), want);
  EXPECT_EQ(w.tails().in_use(), 0u);
}

TEST_F(NativeTcp, LargestFrameAcrossSegments) {
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  const Bytes m = msg(hdr(1), nt::kMaxPayload);
  tcp(c, m, 1448);
  EXPECT_EQ(io.take_stream_out(c), response_to(m));
  EXPECT_TRUE(io.is_open(c));
}

TEST_F(NativeTcp, UnknownServiceIsAnsweredAndTheConnectionStays) {
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  const Bytes good = msg(hdr(2), 3);
  tcp(c, cat({msg(hdr(1, nt::Kind::request, 9), 3), good}));
  const Bytes out = io.take_stream_out(c);
  ASSERT_EQ(out.size(), nt::kErrorSize + good.size());
  EXPECT_EQ(error_of(Bytes(out.begin(), out.begin() + nt::kErrorSize)).code,
            nt::ErrorCode::unknown_service);
  EXPECT_EQ(Bytes(out.begin() + nt::kErrorSize, out.end()), response_to(good));
  EXPECT_TRUE(io.is_open(c));
}

TEST_F(NativeTcp, ResponsesFromAClientAreDroppedAndTheConnectionStays) {
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  const Bytes good = msg(hdr(2), 3);
  tcp(c, cat({msg(hdr(1, nt::Kind::response), 3), msg(hdr(1, nt::Kind::error), 2), good}));
  EXPECT_EQ(io.take_stream_out(c), response_to(good));
  EXPECT_EQ(nt().malformed.get(), 2u);
  EXPECT_TRUE(io.is_open(c));
}

TEST_F(NativeTcp, AnswerableErrorIsSentThenTheConnectionCloses) {
  struct Case {
    size_t off;
    uint8_t val;
    nt::ErrorCode code;
  };
  for (const Case& k :
       {Case{2, 3, nt::ErrorCode::bad_version}, Case{3, 4, nt::ErrorCode::bad_kind},
        Case{6, 1, nt::ErrorCode::bad_reserved}, Case{17, 0xFF, nt::ErrorCode::too_large}}) {
    const dp::ConnId c = io.inject_open(kNtTcp, peer);
    const Bytes good = msg(hdr(1), 2);
    Bytes bad = msg(hdr(66), 0);
    bad[k.off] = k.val;
    tcp(c, cat({good, bad, good}));
    EXPECT_FALSE(io.is_open(c));
    const Bytes out = io.take_stream_out(c);
    ASSERT_EQ(out.size(), good.size() + nt::kErrorSize) << "nothing after the error";
    EXPECT_EQ(Bytes(out.begin(), out.begin() + good.size()), response_to(good));
    const Err e = error_of(Bytes(out.begin() + good.size(), out.end()));
    EXPECT_EQ(e.code, k.code);
    EXPECT_EQ(e.id, 66u);
  }
  EXPECT_EQ(nt().errors.get(), 4u);
  EXPECT_EQ(w.tails().in_use(), 0u);
}

TEST_F(NativeTcp, GarbageClosesWithoutAReply) {
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  const char text[] = "GET / HTTP/1.1\r\n";
  tcp(c, Bytes(text, text + sizeof text - 1), 1);
  EXPECT_FALSE(io.is_open(c));
  EXPECT_TRUE(io.take_stream_out(c).empty());
  EXPECT_EQ(nt().malformed.get(), 1u) << "refused on the first byte";
}

TEST_F(NativeTcp, AReaderThatNeverReadsIsClosedAndCounted) {
  io.set_conn_out_limit(4096);
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  Bytes all;
  for (uint64_t i = 0; i < 100; ++i) {
    const Bytes m = msg(hdr(i), 40);  // 64-byte frames
    all.insert(all.end(), m.begin(), m.end());
  }
  tcp(c, all);
  EXPECT_FALSE(io.is_open(c));
  EXPECT_EQ(io.counters().conns_overflow.get(), 1u);
  EXPECT_EQ(nt().dropped.get(), 1u);
  EXPECT_EQ(nt().responses.get(), 4096u / 64);
}

TEST_F(NativeTcp, RandomSegmentationGivesTheSameReplies) {
  std::mt19937 rng(5);
  Bytes all, want;
  for (uint64_t i = 0; i < 60; ++i) {
    const Bytes m = msg(hdr(i), uint32_t(rng() % 300));
    all.insert(all.end(), m.begin(), m.end());
    const Bytes r = response_to(m);
    want.insert(want.end(), r.begin(), r.end());
  }
  for (int trial = 0; trial < 20; ++trial) {
    const dp::ConnId c = io.inject_open(kNtTcp, peer);
    for (size_t off = 0; off < all.size();) {
      const size_t n = std::min<size_t>(1 + rng() % 400, all.size() - off);
      io.inject_stream(c, std::span(all.data() + off, n));
      off += n;
    }
    run();
    EXPECT_EQ(io.take_stream_out(c), want) << trial;
    io.inject_peer_close(c);
    run();
  }
  EXPECT_EQ(w.tails().in_use(), 0u);
}

using NativeDisable = EchoFixture;

TEST_F(NativeDisable, DisabledAnswersErrorsOverUdpAndTcpAndEnableResumes) {
  control_mail(kNt, rt::kMailServiceDisable);
  EXPECT_FALSE(std::get<NativeEcho>(w.service(kNt)).enabled());
  auto sent = udp(kNtUdp, msg(hdr(41), 20));
  ASSERT_EQ(sent.size(), 1u);
  const Err e = error_of(sent[0].bytes);
  EXPECT_EQ(e.code, nt::ErrorCode::unavailable);
  EXPECT_EQ(e.id, 41u);
  EXPECT_TRUE(udp(kNtUdp, msg(hdr(42, nt::Kind::oneway), 5)).empty());
  EXPECT_EQ(declared(kNt, NativeEcho::kOneway), 0u) << "dropped while disabled, not consumed";
  const dp::ConnId c = io.inject_open(kNtTcp, peer);
  tcp(c, cat({msg(hdr(43), 3), msg(hdr(44), 0)}));
  const Bytes out = io.take_stream_out(c);
  ASSERT_EQ(out.size(), 2 * nt::kErrorSize);
  EXPECT_EQ(error_of(Bytes(out.begin(), out.begin() + nt::kErrorSize)).id, 43u);
  EXPECT_EQ(error_of(Bytes(out.begin() + nt::kErrorSize, out.end())).id, 44u);
  EXPECT_EQ(error_of(Bytes(out.begin(), out.begin() + nt::kErrorSize)).code,
            nt::ErrorCode::unavailable);
  EXPECT_TRUE(io.is_open(c)) << "a refused request keeps the connection";
  EXPECT_EQ(nt().requests.get(), 4u);
  EXPECT_EQ(nt().errors.get(), 3u);
  EXPECT_EQ(nt().dropped.get(), 1u);
  EXPECT_EQ(nt().responses.get(), 0u);
  EXPECT_EQ(sp().requests.get(), 0u) << "the other service is not affected";

  control_mail(kNt, rt::kMailServiceEnable);
  const Bytes req = msg(hdr(45), 7);
  sent = udp(kNtUdp, req);
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_EQ(sent[0].bytes, response_to(req));
  tcp(c, req);
  EXPECT_EQ(io.take_stream_out(c), response_to(req));
  EXPECT_EQ(nt().responses.get(), 2u);
  EXPECT_EQ(nt().errors.get(), 3u);
}

}  // namespace
}  // namespace cw::svc::testing
