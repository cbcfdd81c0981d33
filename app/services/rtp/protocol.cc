#include "app/services/rtp/protocol.hh"

#include <cstring>

namespace cw::rtp::proto {
namespace {

uint16_t be16(const uint8_t* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void put32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// The common header of an RTCP packet of `size` bytes (a multiple of 4).
void put_rtcp_header(uint8_t* p, uint8_t count, uint8_t type, size_t size) {
  p[0] = static_cast<uint8_t>(kVersion << 6 | count);
  p[1] = type;
  put16(p + 2, static_cast<uint16_t>(size / 4 - 1));
}

void put_blocks(uint8_t* p, std::span<const ReportBlock> blocks) {
  for (const ReportBlock& b : blocks) {
    put32(p, b.ssrc);
    put32(p + 4, static_cast<uint32_t>(b.cumulative_lost) & 0xffffff);
    p[4] = b.fraction_lost;
    put32(p + 8, b.ext_highest_seq);
    put32(p + 12, b.jitter);
    put32(p + 16, b.lsr);
    put32(p + 20, b.dlsr);
    p += kReportBlockSize;
  }
}

// An SDES body of `count` chunks: each an SSRC and items up to a null item, then null octets
// to the next 32-bit boundary; the chunks fill the body exactly.
Error check_sdes(Bytes b, uint8_t count) {
  size_t at = 0;
  for (uint8_t c = 0; c < count; ++c) {
    if (b.size() - at < 4) return Error::bad_count;
    at += 4;
    for (;;) {
      if (at >= b.size()) return Error::bad_sdes;
      if (b[at] == 0) break;
      if (b.size() - at < 2 || b.size() - at - 2 < b[at + 1]) return Error::bad_sdes;
      at += 2 + size_t{b[at + 1]};
    }
    // The null item, then padding to the boundary (chunks start on one, as does the body).
    at = (at + 4) & ~size_t{3};
    if (at > b.size()) return Error::bad_sdes;
  }
  return at == b.size() ? Error::ok : Error::bad_length;
}

Error check_packet(const RtcpPacket& p) {
  const size_t n = p.body.size();
  switch (p.type) {
    case kSr:
      if (n < 4 + kSenderInfoSize) return Error::bad_length;
      return (n - 4 - kSenderInfoSize) / kReportBlockSize < p.count ? Error::bad_count : Error::ok;
    case kRr:
      if (n < 4) return Error::bad_length;
      return (n - 4) / kReportBlockSize < p.count ? Error::bad_count : Error::ok;
    case kSdes:
      return check_sdes(p.body, p.count);
    case kBye: {
      if (n / 4 < p.count) return Error::bad_count;
      const size_t at = size_t{p.count} * 4;
      // An optional reason: a length octet and that many bytes.
      if (at < n && n - at - 1 < p.body[at]) return Error::bad_length;
      return Error::ok;
    }
    case kApp:
      return n < 8 ? Error::bad_length : Error::ok;  // SSRC and a 4-octet name
    default:
      return Error::ok;  // another type (RTPFB, PSFB, XR, ...): kept, skipped by the service
  }
}

}  // namespace

std::string_view error_name(Error e) {
  switch (e) {
    case Error::ok:
      return "ok";
    case Error::too_short:
      return "too_short";
    case Error::bad_version:
      return "bad_version";
    case Error::bad_type:
      return "bad_type";
    case Error::bad_csrc:
      return "bad_csrc";
    case Error::bad_ext:
      return "bad_ext";
    case Error::bad_padding:
      return "bad_padding";
    case Error::bad_length:
      return "bad_length";
    case Error::bad_count:
      return "bad_count";
    case Error::bad_sdes:
      return "bad_sdes";
    case Error::too_many:
      return "too_many";
    case Error::kCount:
      break;
  }
  return "?";
}

Kind classify(Bytes pkt) {
  if (pkt.size() < kRtcpHeaderSize || pkt[0] >> 6 != kVersion) return Kind::bad;
  return pkt[1] >= kRtcpTypeMin && pkt[1] <= kRtcpTypeMax ? Kind::rtcp : Kind::rtp;
}

uint32_t RtpPacket::csrc(size_t i) const {
  return be32(csrcs.data() + 4 * i);
}

Error parse_rtp(Bytes pkt, RtpPacket& out) {
  if (pkt.size() < kRtpHeaderSize) return Error::too_short;
  const uint8_t* p = pkt.data();
  if (p[0] >> 6 != kVersion) return Error::bad_version;
  out.marker = (p[1] & 0x80) != 0;
  out.pt = p[1] & 0x7f;
  if (out.pt >= 64 && out.pt <= 95) return Error::bad_type;
  out.seq = be16(p + 2);
  out.timestamp = be32(p + 4);
  out.ssrc = be32(p + 8);
  out.csrc_count = p[0] & 0x0f;
  size_t at = kRtpHeaderSize;
  const size_t csrc_bytes = size_t{out.csrc_count} * 4;
  if (pkt.size() - at < csrc_bytes) return Error::bad_csrc;
  out.csrcs = pkt.subspan(at, csrc_bytes);
  at += csrc_bytes;
  out.has_ext = (p[0] & 0x10) != 0;
  out.ext_profile = 0;
  out.ext = {};
  if (out.has_ext) {
    if (pkt.size() - at < 4) return Error::bad_ext;
    out.ext_profile = be16(p + at);
    const size_t words = be16(p + at + 2);
    at += 4;
    if ((pkt.size() - at) / 4 < words) return Error::bad_ext;
    out.ext = pkt.subspan(at, words * 4);
    at += words * 4;
  }
  size_t end = pkt.size();
  out.padding = 0;
  if (p[0] & 0x20) {
    // The last octet counts the padding, itself included; it may not reach into the header.
    out.padding = p[end - 1];
    if (out.padding == 0 || out.padding > end - at) return Error::bad_padding;
    end -= out.padding;
  }
  out.payload = pkt.subspan(at, end - at);
  return Error::ok;
}

void write_rtp_header(uint8_t* out, const RtpFields& f) {
  out[0] = kVersion << 6;
  out[1] = static_cast<uint8_t>((f.marker ? 0x80 : 0) | (f.pt & 0x7f));
  put16(out + 2, f.seq);
  put32(out + 4, f.timestamp);
  put32(out + 8, f.ssrc);
}

Error parse_rtcp(Bytes pkt, Compound& out) {
  out.n = 0;
  size_t at = 0;
  while (at < pkt.size()) {
    const size_t left = pkt.size() - at;
    if (left < kRtcpHeaderSize) return out.n == 0 ? Error::too_short : Error::bad_length;
    const uint8_t* p = pkt.data() + at;
    if (p[0] >> 6 != kVersion) return Error::bad_version;
    const size_t size = (size_t{be16(p + 2)} + 1) * 4;
    if (size > left) return Error::bad_length;
    if (out.n == kMaxCompound) return Error::too_many;
    RtcpPacket& r = out.pkts[out.n];
    r.type = p[1];
    r.count = p[0] & 0x1f;
    if (out.n == 0 && r.type != kSr && r.type != kRr) return Error::bad_type;
    size_t end = size;
    if (p[0] & 0x20) {
      // Only the last packet of a compound may be padded (RFC 3550 6.4.1, A.2).
      if (size != left) return Error::bad_padding;
      const uint8_t pad = p[size - 1];
      if (pad == 0 || pad > size - kRtcpHeaderSize) return Error::bad_padding;
      end -= pad;
    }
    r.body = pkt.subspan(at + kRtcpHeaderSize, end - kRtcpHeaderSize);
    if (const Error e = check_packet(r); e != Error::ok) return e;
    ++out.n;
    at += size;
  }
  return out.n == 0 ? Error::too_short : Error::ok;
}

ReportBlock Report::block(size_t i) const {
  const uint8_t* p = blocks.data() + i * kReportBlockSize;
  ReportBlock b;
  b.ssrc = be32(p);
  b.fraction_lost = p[4];
  // 24-bit two's complement: sign-extend from bit 23.
  const uint32_t lost = be32(p + 4) & 0xffffff;
  b.cumulative_lost = static_cast<int32_t>(lost ^ 0x800000) - 0x800000;
  b.ext_highest_seq = be32(p + 8);
  b.jitter = be32(p + 12);
  b.lsr = be32(p + 16);
  b.dlsr = be32(p + 20);
  return b;
}

Report read_report(const RtcpPacket& p) {
  Report r;
  const uint8_t* b = p.body.data();
  r.ssrc = be32(b);
  size_t at = 4;
  r.has_sender = p.type == kSr;
  if (r.has_sender) {
    r.sender.ntp = uint64_t{be32(b + 4)} << 32 | be32(b + 8);
    r.sender.rtp_ts = be32(b + 12);
    r.sender.packets = be32(b + 16);
    r.sender.octets = be32(b + 20);
    at += kSenderInfoSize;
  }
  r.count = p.count;
  r.blocks = p.body.subspan(at, size_t{p.count} * kReportBlockSize);
  return r;
}

std::string_view sdes_cname(const RtcpPacket& p, uint32_t& ssrc) {
  const Bytes b = p.body;
  size_t at = 0;
  for (uint8_t c = 0; c < p.count; ++c) {
    const uint32_t chunk_ssrc = be32(b.data() + at);
    at += 4;
    while (b[at] != 0) {
      const uint8_t len = b[at + 1];
      if (b[at] == kSdesCname) {
        ssrc = chunk_ssrc;
        return {reinterpret_cast<const char*>(b.data() + at + 2), len};
      }
      at += 2 + size_t{len};
    }
    at = (at + 4) & ~size_t{3};
  }
  return {};
}

uint32_t bye_ssrc(const RtcpPacket& p, size_t i) {
  return be32(p.body.data() + 4 * i);
}

size_t write_sr(std::span<uint8_t> out, uint32_t ssrc, const SenderInfo& si,
                std::span<const ReportBlock> blocks) {
  const size_t size = kRtcpHeaderSize + 4 + kSenderInfoSize + blocks.size() * kReportBlockSize;
  if (blocks.size() > 31 || out.size() < size) return 0;
  uint8_t* p = out.data();
  put_rtcp_header(p, static_cast<uint8_t>(blocks.size()), kSr, size);
  put32(p + 4, ssrc);
  put32(p + 8, static_cast<uint32_t>(si.ntp >> 32));
  put32(p + 12, static_cast<uint32_t>(si.ntp));
  put32(p + 16, si.rtp_ts);
  put32(p + 20, si.packets);
  put32(p + 24, si.octets);
  p += 28;
  put_blocks(p, blocks);
  return size;
}

size_t write_rr(std::span<uint8_t> out, uint32_t ssrc, std::span<const ReportBlock> blocks) {
  const size_t size = kRtcpHeaderSize + 4 + blocks.size() * kReportBlockSize;
  if (blocks.size() > 31 || out.size() < size) return 0;
  uint8_t* p = out.data();
  put_rtcp_header(p, static_cast<uint8_t>(blocks.size()), kRr, size);
  put32(p + 4, ssrc);
  p += 8;
  put_blocks(p, blocks);
  return size;
}

size_t write_sdes_cname(std::span<uint8_t> out, uint32_t ssrc, std::string_view cname) {
  if (cname.size() > kMaxSdesText) return 0;
  // SSRC, type, length, text, then at least one null octet up to the 32-bit boundary.
  const size_t chunk = (4 + 2 + cname.size() + 4) & ~size_t{3};
  const size_t size = kRtcpHeaderSize + chunk;
  if (out.size() < size) return 0;
  uint8_t* p = out.data();
  put_rtcp_header(p, 1, kSdes, size);
  put32(p + 4, ssrc);
  p[8] = kSdesCname;
  p[9] = static_cast<uint8_t>(cname.size());
  std::memcpy(p + 10, cname.data(), cname.size());
  std::memset(p + 10 + cname.size(), 0, size - 10 - cname.size());
  return size;
}

size_t write_bye(std::span<uint8_t> out, uint32_t ssrc) {
  if (out.size() < 8) return 0;
  put_rtcp_header(out.data(), 1, kBye, 8);
  put32(out.data() + 4, ssrc);
  return 8;
}

}  // namespace cw::rtp::proto
