// The session's pure parts: G.711 mu-law, the tone table, RFC 3550 A.7's interval, NTP time
// and the report an endpoint sends.
#include "app/services/rtp/session.hh"

#include <gtest/gtest.h>

#include <cmath>

namespace cw::rtp {
namespace {

int ulaw_decode(uint8_t u) {
  u = static_cast<uint8_t>(~u);
  const int t = (((u & 0x0f) << 3) + 0x84) << ((u >> 4) & 7);
  return (u & 0x80) ? 0x84 - t : t - 0x84;
}

TEST(Ulaw, G711Values) {
  EXPECT_EQ(ulaw_encode(0), 0xff);
  EXPECT_EQ(ulaw_encode(-1), 0x7f);
  EXPECT_EQ(ulaw_encode(32767), 0x80);
  EXPECT_EQ(ulaw_encode(-32768), 0x00);
  // Every sample decodes back within half a step of its segment.
  for (int v = -32000; v <= 32000; v += 7) {
    const int d = ulaw_decode(ulaw_encode(int16_t(v)));
    const int step = std::max(8, 1 << (int(std::log2(std::abs(v) + 0x84)) - 4));
    EXPECT_LE(std::abs(d - v), step) << v;
  }
}

TEST(Tone, OneSecondOfTheSine) {
  RtpOptions o;
  o.tone_hz = 440;
  const std::vector<uint8_t> t = make_tone(o);
  ASSERT_EQ(t.size(), 8000u);
  for (size_t i = 0; i < t.size(); ++i) {
    const double want = kToneAmplitude * std::sin(2 * M_PI * 440.0 * double(i) / 8000);
    EXPECT_LE(std::abs(ulaw_decode(t[i]) - want), 300) << i;
  }
  o.codec = Codec::l16;
  o.clock_rate = 16000;
  const std::vector<uint8_t> l = make_tone(o);
  ASSERT_EQ(l.size(), 32000u);
  for (size_t i = 0; i < 16000; i += 97) {
    const int16_t s = int16_t(l[2 * i] << 8 | l[2 * i + 1]);  // network order
    EXPECT_NEAR(s, kToneAmplitude * std::sin(2 * M_PI * 440.0 * double(i) / 16000), 1.0) << i;
  }
}

TEST(RtcpInterval, A7) {
  constexpr double kComp = 2.71828 - 1.5;
  // Two members, 400 B/s, 100-byte reports: 0.5 s deterministic, below the 5 s minimum.
  EXPECT_NEAR(rtcp_interval(2, 2, 400, true, 100, false, 5, 0.5), 5 / kComp, 1e-9);
  EXPECT_NEAR(rtcp_interval(2, 2, 400, true, 100, true, 5, 0.5), 2.5 / kComp, 1e-9);
  // Randomised over [0.5, 1.5).
  EXPECT_NEAR(rtcp_interval(2, 2, 400, true, 100, false, 5, 0), 2.5 / kComp, 1e-9);
  EXPECT_NEAR(rtcp_interval(2, 2, 400, true, 100, false, 5, 0.999), 5 * 1.499 / kComp, 1e-9);
  // Above the minimum: n * avg / bw (two senders of two members share all the bandwidth).
  EXPECT_NEAR(rtcp_interval(2, 2, 10, true, 100, false, 5, 0.5), 20 / kComp, 1e-9);
  // One sender of 8 members: senders get a quarter of the bandwidth, split among 1.
  EXPECT_NEAR(rtcp_interval(8, 1, 10, true, 100, false, 5, 0.5), 100 / 2.5 / kComp, 1e-9);
  // ...receivers three quarters, split among 7.
  EXPECT_NEAR(rtcp_interval(8, 1, 10, false, 100, false, 5, 0.5), 700 / 7.5 / kComp, 1e-9);
}

TEST(Ntp, FromUnix) {
  EXPECT_EQ(ntp_from_unix_ns(0), kNtpUnixOffset << 32);
  EXPECT_EQ(ntp_from_unix_ns(1'500'000'000), (kNtpUnixOffset + 1) << 32 | 0x80000000u);
  EXPECT_EQ(ntp_middle(0x0001000200030004ull), 0x00020003u);
}

TEST(RtpUnits, NoOverflow) {
  EXPECT_EQ(rtp_units(1'000'000'000, 8000), 8000u);
  EXPECT_EQ(rtp_units(20'000'000, 8000), 160u);
  // A monotonic clock of 30 days: ns * 48000 would overflow 64 bits.
  const uint64_t days30 = 30ull * 86400 * 1'000'000'000;
  EXPECT_EQ(rtp_units(days30 + 500'000'000, 48000), uint32_t(30ull * 86400 * 48000 + 24000));
}

TEST(Report, SrWithBlockAndCname) {
  Sender s;
  s.ssrc = 0x1111;
  s.packets = 10;
  s.octets = 1600;
  Remote r;
  uint8_t buf[256];
  // No valid source yet: an SR without blocks.
  size_t n = write_report(buf, s, r, 0, 42, 7, "me", false);
  proto::Compound c;
  ASSERT_EQ(proto::parse_rtcp({buf, n}, c), proto::Error::ok);
  ASSERT_EQ(c.n, 2u);
  EXPECT_EQ(proto::read_report(c.pkts[0]).count, 0);
  // A source with 1 of 11 lost, an SR heard 0.5 s ago.
  r.seen = true;
  r.ssrc = 0x2222;
  r.stats.start(100);
  for (uint16_t q = 100; q <= 112; ++q)
    if (q != 105) r.stats.update(q);
  r.last_sr = 0xabcd;
  r.last_sr_ns = 1'000'000'000;
  n = write_report(buf, s, r, 1'500'000'000, 42, 7, "me", true);
  ASSERT_EQ(proto::parse_rtcp({buf, n}, c), proto::Error::ok);
  ASSERT_EQ(c.n, 3u);
  const proto::Report rep = proto::read_report(c.pkts[0]);
  EXPECT_EQ(rep.ssrc, 0x1111u);
  EXPECT_EQ(rep.sender.ntp, 42u);
  EXPECT_EQ(rep.sender.rtp_ts, 7u);
  EXPECT_EQ(rep.sender.packets, 10u);
  EXPECT_EQ(rep.sender.octets, 1600u);
  ASSERT_EQ(rep.count, 1);
  const proto::ReportBlock b = rep.block(0);
  EXPECT_EQ(b.ssrc, 0x2222u);
  EXPECT_EQ(b.cumulative_lost, 1);           // 101..112 expected, 105 missing
  EXPECT_EQ(b.fraction_lost, 1 * 256 / 12);  // 21
  EXPECT_EQ(b.ext_highest_seq, 112u);
  EXPECT_EQ(b.lsr, 0xabcdu);
  EXPECT_EQ(b.dlsr, 32768u);  // 0.5 s in 1/65536 s
  uint32_t ssrc = 0;
  EXPECT_EQ(proto::sdes_cname(c.pkts[1], ssrc), "me");
  EXPECT_EQ(c.pkts[2].type, proto::kBye);
  EXPECT_EQ(write_report({buf, 40}, s, r, 0, 0, 0, "me", false), 0u);  // too small
}

}  // namespace
}  // namespace cw::rtp
