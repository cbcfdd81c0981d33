#include "app/services/rtp/session.hh"

#include <algorithm>
#include <cmath>

namespace cw::rtp {

uint8_t ulaw_encode(int16_t pcm) {
  // G.711: bias 0x84, clip at 32635, a 3-bit segment and a 4-bit step, all bits inverted.
  constexpr int kBias = 0x84, kClip = 32635;
  int v = pcm;
  const uint8_t sign = v < 0 ? 0x80 : 0;
  if (v < 0) v = -v;
  v = std::min(v, kClip) + kBias;
  int exponent = 7;
  while (exponent > 0 && (v & (0x4000 >> (7 - exponent))) == 0) --exponent;
  const int mantissa = (v >> (exponent + 3)) & 0x0f;
  return static_cast<uint8_t>(~(sign | exponent << 4 | mantissa));
}

std::vector<uint8_t> make_tone(const RtpOptions& o) {
  const size_t bytes_per = o.codec == Codec::pcmu ? 1 : 2;
  std::vector<uint8_t> t(o.clock_rate * bytes_per);
  for (uint32_t i = 0; i < o.clock_rate; ++i) {
    // The phase is taken modulo one cycle in integers, so the table repeats exactly.
    const uint64_t phase = uint64_t{i} * o.tone_hz % o.clock_rate;
    const double x = std::sin(2 * M_PI * double(phase) / o.clock_rate);
    const auto s = static_cast<int16_t>(std::lround(kToneAmplitude * x));
    if (bytes_per == 1) {
      t[i] = ulaw_encode(s);
    } else {
      t[2 * i] = static_cast<uint8_t>(uint16_t(s) >> 8);
      t[2 * i + 1] = static_cast<uint8_t>(s);
    }
  }
  return t;
}

double rtcp_interval(int members, int senders, double rtcp_bw, bool we_sent, double avg_rtcp_size,
                     bool initial, double min_s, double u01) {
  constexpr double kSenderFraction = 0.25, kReceiverFraction = 1 - kSenderFraction;
  constexpr double kCompensation = 2.71828 - 1.5;
  const double tmin = initial ? min_s / 2 : min_s;
  // Senders get a quarter of the RTCP bandwidth when they are at most a quarter of members.
  int n = members;
  if (senders <= members * kSenderFraction) {
    if (we_sent) {
      rtcp_bw *= kSenderFraction;
      n = senders;
    } else {
      rtcp_bw *= kReceiverFraction;
      n -= senders;
    }
  }
  double t = rtcp_bw > 0 ? avg_rtcp_size * n / rtcp_bw : tmin;
  t = std::max(t, tmin);
  return t * (u01 + 0.5) / kCompensation;
}

uint64_t ntp_from_unix_ns(uint64_t unix_ns) {
  const uint64_t sec = unix_ns / 1'000'000'000 + kNtpUnixOffset;
  const uint64_t frac = ((unix_ns % 1'000'000'000) << 32) / 1'000'000'000;
  return sec << 32 | frac;
}

size_t write_report(std::span<uint8_t> out, const Sender& s, Remote& r, uint64_t now_ns,
                    uint64_t now_ntp, uint32_t rtp_now, std::string_view cname, bool bye) {
  proto::ReportBlock b;
  size_t nblocks = 0;
  if (r.seen && r.stats.valid()) {
    const LossReport lr = r.stats.report();
    b.ssrc = r.ssrc;
    b.fraction_lost = lr.fraction_lost;
    b.cumulative_lost = lr.cumulative_lost;
    b.ext_highest_seq = lr.ext_highest_seq;
    b.jitter = r.stats.jitter();
    b.lsr = r.last_sr;
    // DLSR in 1/65536 s since that SR arrived; 0 when none has.
    b.dlsr = r.last_sr_ns == 0 ? 0 : uint32_t((now_ns - r.last_sr_ns) * 65536 / 1'000'000'000);
    nblocks = 1;
  }
  const proto::SenderInfo si{
      .ntp = now_ntp, .rtp_ts = rtp_now, .packets = s.packets, .octets = s.octets};
  size_t n = proto::write_sr(out, s.ssrc, si, {&b, nblocks});
  if (n == 0) return 0;
  const size_t sdes = proto::write_sdes_cname(out.subspan(n), s.ssrc, cname);
  if (sdes == 0) return 0;
  n += sdes;
  if (bye) {
    const size_t k = proto::write_bye(out.subspan(n), s.ssrc);
    if (k == 0) return 0;
    n += k;
  }
  return n;
}

}  // namespace cw::rtp
