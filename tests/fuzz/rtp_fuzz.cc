// libFuzzer target: RTP (app/services/rtp/protocol.hh) and the reception statistics
// (receiver_stats.hh). A parsed packet's header, CSRCs, extension, payload and padding tile
// the input exactly and its fixed header writes back byte for byte; the input, read as
// (seq, timestamp) pairs, drives a source's A.1/A.3/A.8 statistics, whose counts stay
// bounded by the packets given.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "app/services/rtp/receiver_stats.hh"
#include "tests/fuzz/rtp_fuzz_check.hh"

namespace rp = cw::rtp::proto;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const rp::Bytes in(data, size);
  rp::RtpPacket p;
  const rp::Error e = rp::parse_rtp(in, p);
  const rp::Kind k = rp::classify(in);
  if (e == rp::Error::ok) {
    RTP_CHECK(k == rp::Kind::rtp);
    size_t total = rp::kRtpHeaderSize + p.csrcs.size() + p.payload.size() + p.padding;
    if (p.has_ext) total += 4 + p.ext.size();
    RTP_CHECK(total == size);
    RTP_CHECK(p.payload.data() + p.payload.size() + p.padding == data + size);
    for (size_t i = 0; i < p.csrc_count; ++i) (void)p.csrc(i);
    uint8_t h[rp::kRtpHeaderSize];
    rp::write_rtp_header(h, {p.marker, p.pt, p.seq, p.timestamp, p.ssrc});
    RTP_CHECK((h[0] | (data[0] & 0x3f)) == data[0]);
    RTP_CHECK(std::memcmp(h + 1, data + 1, rp::kRtpHeaderSize - 1) == 0);
  } else if (e == rp::Error::bad_version) {
    RTP_CHECK(k == rp::Kind::bad);
  }
  cw::rtp::ReceiverStats s;
  uint32_t counted = 0;
  for (size_t at = 0; at + 6 <= size; at += 6) {
    const uint16_t seq = static_cast<uint16_t>(data[at] << 8 | data[at + 1]);
    uint32_t ts;
    std::memcpy(&ts, data + at + 2, 4);
    if (at == 0) s.start(seq);
    if (s.update(seq) == cw::rtp::SeqResult::valid) {
      ++counted;
      s.update_jitter(static_cast<uint32_t>(at) * 8, ts);
    }
    if (at % 60 == 0 && s.valid()) {
      const cw::rtp::LossReport r = s.report();
      RTP_CHECK(r.cumulative_lost >= -0x800000 && r.cumulative_lost <= 0x7fffff);
    }
  }
  RTP_CHECK(s.received() <= counted);
  return 0;
}
