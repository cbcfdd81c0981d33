// The RTP/RTCP codec against RFC 3550 and RFC 5761: headers with CSRCs, extension and
// padding; compound RTCP round trips; every malformed length an error, and every truncation
// of a valid packet either an error or (RTP only) a shorter packet, never a read past it.
#include "app/services/rtp/protocol.hh"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace cw::rtp::proto {
namespace {

using Buf = std::vector<uint8_t>;

Bytes B(const Buf& b) {
  return {b.data(), b.size()};
}

// An RTP packet: V=2, flags as given, then the CSRCs, an extension and padding if asked.
Buf rtp(uint8_t pt, uint16_t seq, uint32_t ts, uint32_t ssrc, Buf payload, uint8_t cc = 0,
        int ext_words = -1, uint8_t pad = 0) {
  Buf b(kRtpHeaderSize);
  write_rtp_header(b.data(), {.marker = true, .pt = pt, .seq = seq, .timestamp = ts, .ssrc = ssrc});
  b[0] |= cc;
  for (uint8_t i = 0; i < cc; ++i) b.insert(b.end(), {0, 0, 0, static_cast<uint8_t>(i + 1)});
  if (ext_words >= 0) {
    b[0] |= 0x10;
    b.insert(b.end(), {0xbe, 0xde, 0, static_cast<uint8_t>(ext_words)});
    for (int i = 0; i < ext_words * 4; ++i) b.push_back(0xee);
  }
  b.insert(b.end(), payload.begin(), payload.end());
  if (pad != 0) {
    b[0] |= 0x20;
    for (uint8_t i = 1; i < pad; ++i) b.push_back(0);
    b.push_back(pad);
  }
  return b;
}

TEST(RtpParse, FixedHeader) {
  const Buf b = rtp(0, 0xfffe, 0xdeadbeef, 0x01020304, {1, 2, 3});
  RtpPacket p;
  ASSERT_EQ(parse_rtp(B(b), p), Error::ok);
  EXPECT_TRUE(p.marker);
  EXPECT_EQ(p.pt, 0);
  EXPECT_EQ(p.seq, 0xfffe);
  EXPECT_EQ(p.timestamp, 0xdeadbeefu);
  EXPECT_EQ(p.ssrc, 0x01020304u);
  EXPECT_EQ(p.csrc_count, 0);
  EXPECT_FALSE(p.has_ext);
  ASSERT_EQ(p.payload.size(), 3u);
  EXPECT_EQ(p.payload.data(), b.data() + 12);
}

TEST(RtpParse, CsrcExtensionPadding) {
  const Buf b = rtp(96, 7, 8, 9, {0xaa, 0xbb}, 3, 2, 4);
  RtpPacket p;
  ASSERT_EQ(parse_rtp(B(b), p), Error::ok);
  ASSERT_EQ(p.csrc_count, 3);
  EXPECT_EQ(p.csrc(0), 1u);
  EXPECT_EQ(p.csrc(2), 3u);
  EXPECT_TRUE(p.has_ext);
  EXPECT_EQ(p.ext_profile, 0xbede);
  EXPECT_EQ(p.ext.size(), 8u);
  EXPECT_EQ(p.padding, 4);
  ASSERT_EQ(p.payload.size(), 2u);
  EXPECT_EQ(p.payload[0], 0xaa);
  EXPECT_EQ(p.payload[1], 0xbb);
}

TEST(RtpParse, EmptyPayloadAndAllPadding) {
  RtpPacket p;
  ASSERT_EQ(parse_rtp(B(rtp(0, 1, 2, 3, {})), p), Error::ok);
  EXPECT_TRUE(p.payload.empty());
  // Padding may take the whole payload...
  ASSERT_EQ(parse_rtp(B(rtp(0, 1, 2, 3, {}, 0, -1, 4)), p), Error::ok);
  EXPECT_TRUE(p.payload.empty());
}

TEST(RtpParse, Malformed) {
  RtpPacket p;
  EXPECT_EQ(parse_rtp({}, p), Error::too_short);
  Buf b = rtp(0, 1, 2, 3, {1});
  EXPECT_EQ(parse_rtp(B(b).first(11), p), Error::too_short);
  b[0] = 0x40;  // version 1
  EXPECT_EQ(parse_rtp(B(b), p), Error::bad_version);
  EXPECT_EQ(parse_rtp(B(rtp(72, 1, 2, 3, {1})), p), Error::bad_type);  // RTCP SR's octet
  EXPECT_EQ(parse_rtp(B(rtp(95, 1, 2, 3, {1})), p), Error::bad_type);
  EXPECT_EQ(parse_rtp(B(rtp(63, 1, 2, 3, {1})), p), Error::ok);
  EXPECT_EQ(parse_rtp(B(rtp(96, 1, 2, 3, {1})), p), Error::ok);
  // CC = 15 with no CSRCs behind it.
  b = rtp(0, 1, 2, 3, {1, 2, 3, 4});
  b[0] |= 0x0f;
  EXPECT_EQ(parse_rtp(B(b), p), Error::bad_csrc);
  // An extension header cut short, and one whose length runs past the packet.
  b = rtp(0, 1, 2, 3, {0xbe, 0xde});
  b[0] |= 0x10;
  EXPECT_EQ(parse_rtp(B(b), p), Error::bad_ext);
  b = rtp(0, 1, 2, 3, {}, 0, 1);
  b[15] = 2;
  EXPECT_EQ(parse_rtp(B(b), p), Error::bad_ext);
  // Padding count 0, and one reaching into the header.
  b = rtp(0, 1, 2, 3, {1, 2, 3, 0});
  b[0] |= 0x20;
  EXPECT_EQ(parse_rtp(B(b), p), Error::bad_padding);
  b.back() = 5;
  EXPECT_EQ(parse_rtp(B(b), p), Error::bad_padding);
  b.back() = 4;
  EXPECT_EQ(parse_rtp(B(b), p), Error::ok);
}

TEST(RtpParse, EveryTruncationIsSafe) {
  const Buf b = rtp(96, 7, 8, 9, {1, 2, 3, 4, 5}, 2, 1, 3);
  for (size_t n = 0; n < b.size(); ++n) {
    Buf cut(b.begin(), b.begin() + static_cast<ptrdiff_t>(n));  // exact-size heap block
    RtpPacket p;
    const Error e = parse_rtp(B(cut), p);
    if (e == Error::ok) {
      EXPECT_LE(p.payload.data() + p.payload.size(), cut.data() + cut.size());
    }
  }
}

TEST(Demux, Rfc5761) {
  EXPECT_EQ(classify(B(rtp(0, 1, 2, 3, {}))), Kind::rtp);
  EXPECT_EQ(classify(B(rtp(127, 1, 2, 3, {}))), Kind::rtp);  // marker + 127 = 255
  Buf sr(28, 0);
  SenderInfo si;
  ASSERT_EQ(write_sr(sr, 1, si, {}), 28u);
  EXPECT_EQ(classify(B(sr)), Kind::rtcp);
  for (int t = 192; t <= 223; ++t) {
    const Buf x{0x80, static_cast<uint8_t>(t), 0, 0};
    EXPECT_EQ(classify(B(x)), Kind::rtcp) << t;
  }
  EXPECT_EQ(classify(B(Buf{0x80, 191, 0, 0})), Kind::rtp);
  EXPECT_EQ(classify(B(Buf{0x80, 224, 0, 0})), Kind::rtp);
  EXPECT_EQ(classify(B(Buf{0x00, 200, 0, 0})), Kind::bad);  // version 0 (e.g. STUN)
  EXPECT_EQ(classify(B(Buf{0x80, 200, 0})), Kind::bad);
}

// SR (2 blocks) + SDES CNAME + BYE, as corewire writes a closing report.
Buf compound(std::string_view cname = "cw@example") {
  Buf b(512);
  const ReportBlock blocks[2] = {{.ssrc = 0xa,
                                  .fraction_lost = 25,
                                  .cumulative_lost = -3,
                                  .ext_highest_seq = 0x1ffff,
                                  .jitter = 42,
                                  .lsr = 0x12345678,
                                  .dlsr = 65536},
                                 {.ssrc = 0xb,
                                  .fraction_lost = 255,
                                  .cumulative_lost = 0x7fffff,
                                  .ext_highest_seq = 9,
                                  .jitter = 0,
                                  .lsr = 0,
                                  .dlsr = 0}};
  const SenderInfo si{.ntp = 0x0102030405060708, .rtp_ts = 160, .packets = 50, .octets = 8000};
  size_t n = write_sr(b, 0x5eed, si, blocks);
  n += write_sdes_cname(std::span(b).subspan(n), 0x5eed, cname);
  n += write_bye(std::span(b).subspan(n), 0x5eed);
  b.resize(n);
  return b;
}

TEST(Rtcp, CompoundRoundTrip) {
  const Buf b = compound();
  EXPECT_EQ(b.size(), 76u + 24 + 8);  // SR 2 blocks, SDES (10-char CNAME), BYE
  Compound c;
  ASSERT_EQ(parse_rtcp(B(b), c), Error::ok);
  ASSERT_EQ(c.n, 3u);
  EXPECT_EQ(c.pkts[0].type, kSr);
  const Report r = read_report(c.pkts[0]);
  EXPECT_EQ(r.ssrc, 0x5eedu);
  ASSERT_TRUE(r.has_sender);
  EXPECT_EQ(r.sender.ntp, 0x0102030405060708u);
  EXPECT_EQ(r.sender.rtp_ts, 160u);
  EXPECT_EQ(r.sender.packets, 50u);
  EXPECT_EQ(r.sender.octets, 8000u);
  ASSERT_EQ(r.count, 2);
  const ReportBlock a = r.block(0);
  EXPECT_EQ(a.ssrc, 0xau);
  EXPECT_EQ(a.fraction_lost, 25);
  EXPECT_EQ(a.cumulative_lost, -3);
  EXPECT_EQ(a.ext_highest_seq, 0x1ffffu);
  EXPECT_EQ(a.jitter, 42u);
  EXPECT_EQ(a.lsr, 0x12345678u);
  EXPECT_EQ(a.dlsr, 65536u);
  EXPECT_EQ(r.block(1).cumulative_lost, 0x7fffff);
  EXPECT_EQ(r.block(1).fraction_lost, 255);
  uint32_t ssrc = 0;
  EXPECT_EQ(sdes_cname(c.pkts[1], ssrc), "cw@example");
  EXPECT_EQ(ssrc, 0x5eedu);
  ASSERT_EQ(c.pkts[2].type, kBye);
  ASSERT_EQ(c.pkts[2].count, 1);
  EXPECT_EQ(bye_ssrc(c.pkts[2], 0), 0x5eedu);
}

TEST(Rtcp, SdesPaddingPerLength) {
  // A CNAME of each length mod 4 gives a chunk padded with 1..4 null octets.
  for (std::string_view cname : {"a", "ab", "abc", "abcd", "abcde"}) {
    const Buf b = compound(cname);
    Compound c;
    ASSERT_EQ(parse_rtcp(B(b), c), Error::ok) << cname;
    uint32_t ssrc = 0;
    EXPECT_EQ(sdes_cname(c.pkts[1], ssrc), cname);
  }
}

TEST(Rtcp, ReceiverReportWithoutBlocks) {
  Buf b(8);
  ASSERT_EQ(write_rr(b, 77, {}), 8u);
  Compound c;
  ASSERT_EQ(parse_rtcp(B(b), c), Error::ok);
  const Report r = read_report(c.pkts[0]);
  EXPECT_FALSE(r.has_sender);
  EXPECT_EQ(r.ssrc, 77u);
  EXPECT_EQ(r.count, 0);
  EXPECT_EQ(write_rr(std::span(b).first(7), 77, {}), 0u);
}

TEST(Rtcp, HandWrittenWithAppAndPadding) {
  // RR with no blocks; APP "test" with 4 bytes of data; BYE with reason "bye" padded by 4.
  const Buf b{0x80, 201, 0, 1, 0, 0, 0, 9,                                   // RR
              0x81, 204, 0, 3, 0, 0, 0, 9, 't', 'e', 's', 't', 1, 2, 3, 4,   // APP
              0xa1, 203, 0, 3, 0, 0, 0, 9, 3,   'b', 'y', 'e', 0, 0, 0, 4};  // BYE, P set
  Compound c;
  ASSERT_EQ(parse_rtcp(B(b), c), Error::ok);
  ASSERT_EQ(c.n, 3u);
  EXPECT_EQ(c.pkts[1].type, kApp);
  EXPECT_EQ(c.pkts[2].body.size(), 8u);
  EXPECT_EQ(bye_ssrc(c.pkts[2], 0), 9u);
}

TEST(Rtcp, Malformed) {
  Compound c;
  EXPECT_EQ(parse_rtcp({}, c), Error::too_short);
  Buf b = compound();
  // The first packet must be SR or RR.
  Buf sdes_first(b.begin() + 76, b.end());
  EXPECT_EQ(parse_rtcp(B(sdes_first), c), Error::bad_type);
  // A length one word too long for the compound, and one word too short (the rest no longer
  // starts a packet).
  Buf x = b;
  x[3] += 1;
  EXPECT_NE(parse_rtcp(B(x), c), Error::ok);
  x = b;
  x[3] -= 1;
  EXPECT_NE(parse_rtcp(B(x), c), Error::ok);
  // Trailing bytes that are not a whole packet.
  x = b;
  x.push_back(0x80);
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_length);
  // Version 1 in a later packet.
  x = b;
  x[76] = 0x41;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_version);
  // SR claiming 3 blocks in room for 2.
  x = b;
  x[0] = 0x83;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_count);
  // Padding on a packet that is not the last.
  x = b;
  x[0] |= 0x20;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_padding);
  // Padding count 0 and past the packet on the last one.
  x = b;
  x[b.size() - 8] |= 0x20;
  x.back() = 0;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_padding);
  x.back() = 9;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_padding);
  // SDES whose item length runs past its packet; SDES without a null item.
  x = b;
  x[76 + 9] = 200;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_sdes);
  const Buf no_null{0x80, 201, 0, 1, 0, 0, 0, 1, 0x81, 202, 0, 2, 0, 0, 0, 1, 1, 2, 'a', 'b'};
  EXPECT_EQ(parse_rtcp(B(no_null), c), Error::bad_sdes);
  // SDES count 2 with one chunk.
  x = b;
  x[76] = 0x82;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_count);
  // BYE with a reason longer than its packet; BYE count 2 in one word.
  const Buf long_reason{0x80, 201, 0, 1, 0, 0, 0, 1, 0x81, 203, 0, 2, 0, 0, 0, 1, 9, 'a', 'b', 'c'};
  EXPECT_EQ(parse_rtcp(B(long_reason), c), Error::bad_length);
  x = b;
  x[b.size() - 8] = 0x82;
  EXPECT_EQ(parse_rtcp(B(x), c), Error::bad_count);
  // More than kMaxCompound packets.
  Buf many;
  for (size_t i = 0; i <= kMaxCompound; ++i) many.insert(many.end(), {0x80, 201, 0, 1, 0, 0, 0, 1});
  EXPECT_EQ(parse_rtcp(B(many), c), Error::too_many);
  many.resize(kMaxCompound * 8);
  EXPECT_EQ(parse_rtcp(B(many), c), Error::ok);
}

TEST(Rtcp, EveryTruncationIsAnError) {
  const Buf b = compound();
  for (size_t n = 0; n < b.size(); ++n) {
    Buf cut(b.begin(), b.begin() + static_cast<ptrdiff_t>(n));
    Compound c;
    const Error e = parse_rtcp(B(cut), c);
    // Cutting at a packet boundary leaves a valid shorter compound; anywhere else is an error.
    const bool boundary = n == 76 || n == 100;
    EXPECT_EQ(e == Error::ok, boundary) << n;
  }
}

TEST(Rtcp, WritersRefuseSmallBuffers) {
  uint8_t b[64];
  const SenderInfo si;
  const ReportBlock blocks[2] = {};
  EXPECT_EQ(write_sr(std::span(b).first(27), 1, si, {}), 0u);
  EXPECT_EQ(write_sr(b, 1, si, blocks), 0u);  // needs 76
  EXPECT_EQ(write_sdes_cname(std::span(b).first(15), 1, "abcd"), 0u);
  EXPECT_EQ(write_sdes_cname(b, 1, "abcd"), 16u);
  EXPECT_EQ(write_bye(std::span(b).first(7), 1), 0u);
  const std::string long_name(256, 'x');
  uint8_t big[400];
  EXPECT_EQ(write_sdes_cname(big, 1, long_name), 0u);
}

TEST(Errors, Named) {
  for (int e = 0; e < static_cast<int>(Error::kCount); ++e)
    EXPECT_NE(error_name(static_cast<Error>(e)), "?");
}

}  // namespace
}  // namespace cw::rtp::proto
