// libFuzzer target: compound RTCP (app/services/rtp/protocol.hh). An accepted compound's
// packets tile the input with their headers, bodies and the last one's padding; every
// report, SDES CNAME and BYE reads inside its packet (ASan watches); an SR or RR without
// extensions writes back byte for byte.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "tests/fuzz/rtp_fuzz_check.hh"

namespace rp = cw::rtp::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const rp::Bytes in(data, size);
  rp::Compound c;
  if (rp::parse_rtcp(in, c) != rp::Error::ok) return 0;
  RTP_CHECK(rp::classify(in) == rp::Kind::rtcp);
  RTP_CHECK(c.n >= 1 && c.n <= rp::kMaxCompound);
  RTP_CHECK(c.pkts[0].type == rp::kSr || c.pkts[0].type == rp::kRr);
  const uint8_t* at = data;
  for (size_t i = 0; i < c.n; ++i) {
    const rp::RtcpPacket& p = c.pkts[i];
    RTP_CHECK(p.body.data() == at + rp::kRtcpHeaderSize);
    const size_t wire = (size_t{at[2]} << 8 | at[3]) * 4 + 4;
    RTP_CHECK(p.body.size() + rp::kRtcpHeaderSize <= wire);
    const bool padded = (at[0] & 0x20) != 0;
    RTP_CHECK(padded ? i + 1 == c.n : p.body.size() + rp::kRtcpHeaderSize == wire);
    if (p.type == rp::kSr || p.type == rp::kRr) {
      const rp::Report r = rp::read_report(p);
      rp::ReportBlock blocks[31];
      for (size_t b = 0; b < r.count; ++b) blocks[b] = r.block(b);
      const size_t need =
          8 + (r.has_sender ? rp::kSenderInfoSize : 0) + r.count * rp::kReportBlockSize;
      if (!padded && wire == need) {
        static uint8_t out[8 + rp::kSenderInfoSize + 31 * rp::kReportBlockSize];
        const std::span<const rp::ReportBlock> bs(blocks, r.count);
        const size_t n =
            r.has_sender ? rp::write_sr(out, r.ssrc, r.sender, bs) : rp::write_rr(out, r.ssrc, bs);
        RTP_CHECK(n == wire && std::memcmp(out, at, n) == 0);
      }
    } else if (p.type == rp::kSdes) {
      uint32_t ssrc = 0;
      const std::string_view cname = rp::sdes_cname(p, ssrc);
      RTP_CHECK(cname.empty() || (reinterpret_cast<const uint8_t*>(cname.data()) >= p.body.data() &&
                                  reinterpret_cast<const uint8_t*>(cname.data()) + cname.size() <=
                                      p.body.data() + p.body.size()));
    } else if (p.type == rp::kBye) {
      for (size_t b = 0; b < p.count; ++b) (void)rp::bye_ssrc(p, b);
    }
    at += wire;
  }
  RTP_CHECK(at == data + size);
  return 0;
}
