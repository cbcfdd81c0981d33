// RTP and RTCP (RFC 3550) and their demultiplexing on one port (RFC 5761): the codec of the
// rtp service. Pure functions over bytes: no I/O, no globals, no allocation. A parsed packet
// points into the caller's input, which must stay alive and unchanged while it is used.
// Every length is checked against the input before it is read; anything malformed is an
// error value (the service counts and drops it). Limits and rules: docs/rtp.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace cw::rtp::proto {

using Bytes = std::span<const uint8_t>;

inline constexpr uint8_t kVersion = 2;
inline constexpr size_t kRtpHeaderSize = 12;    // fixed header, before CSRCs
inline constexpr size_t kMaxCsrc = 15;          // CC is 4 bits
inline constexpr size_t kRtcpHeaderSize = 4;    // V P RC/SC PT length
inline constexpr size_t kReportBlockSize = 24;  // one reception report block
inline constexpr size_t kSenderInfoSize = 20;   // NTP (8) RTP ts (4) packets (4) octets (4)
// RTCP packets in one compound packet; more is an error (a compound this long would not fit
// an Ethernet MTU with the minimum sizes of SR + SDES anyway, so no real peer sends it).
inline constexpr size_t kMaxCompound = 16;
inline constexpr size_t kMaxSdesText = 255;  // an SDES item's length is one octet

// RTCP packet types (RFC 3550 12.1) and the RFC 5761 range the second octet of an RTCP
// packet falls in: as an RTP marker + PT octet it would be PT 64..95, which RFC 5761 4
// forbids RTP from using when the two share a port.
enum RtcpType : uint8_t { kSr = 200, kRr = 201, kSdes = 202, kBye = 203, kApp = 204 };
inline constexpr uint8_t kRtcpTypeMin = 192;
inline constexpr uint8_t kRtcpTypeMax = 223;
inline constexpr uint8_t kSdesCname = 1;

// RFC 5761 4: version 2 and a second octet in 192..223 is RTCP, any other version 2 is RTP.
enum class Kind : uint8_t { rtp, rtcp, bad };
Kind classify(Bytes pkt);

enum class Error : uint8_t {
  ok,
  too_short,    // shorter than the fixed header
  bad_version,  // version != 2
  bad_type,     // RTP: PT in the RTCP range; RTCP: the first packet not SR/RR
  bad_csrc,     // CSRC list runs past the packet
  bad_ext,      // header extension (or its length) runs past the packet
  bad_padding,  // padding count 0 or past the header/payload
  bad_length,   // RTCP length field past the compound or not what the content needs
  bad_count,    // RTCP count asks for more blocks/chunks/SSRCs than the length holds
  bad_sdes,     // an SDES chunk without its terminating null item inside its packet
  too_many,     // more than kMaxCompound packets in one compound
  kCount,
};
std::string_view error_name(Error e);

struct RtpPacket {
  bool marker = false;
  uint8_t pt = 0;
  uint16_t seq = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
  uint8_t csrc_count = 0;
  Bytes csrcs;  // csrc_count * 4 bytes, big-endian
  bool has_ext = false;
  uint16_t ext_profile = 0;
  Bytes ext;      // the extension's data words (without its 4-byte header)
  Bytes payload;  // padding removed
  uint8_t padding = 0;
  uint32_t csrc(size_t i) const;
};

// RFC 3550 5.1 with the checks of A.1: version 2, CSRCs, extension and padding inside the
// packet, padding count >= 1, and PT outside 64..95 (RFC 5761 4).
Error parse_rtp(Bytes pkt, RtpPacket& out);

// Fields of an RTP header to write (no CSRCs, no extension, no padding: what we send).
struct RtpFields {
  bool marker = false;
  uint8_t pt = 0;
  uint16_t seq = 0;
  uint32_t timestamp = 0;
  uint32_t ssrc = 0;
};
// Writes the 12-byte header into out (at least kRtpHeaderSize bytes).
void write_rtp_header(uint8_t* out, const RtpFields& f);

// One RTCP packet of a compound: its header fields and its body (after the 4-byte header and
// before its padding).
struct RtcpPacket {
  uint8_t type = 0;
  uint8_t count = 0;  // RC / SC / APP subtype
  Bytes body;
};

// A compound RTCP packet (RFC 3550 6.1, A.2): every packet version 2, only the last padded,
// the first an SR or RR, the lengths adding up to the datagram exactly, and each SR, RR,
// SDES and BYE well-formed inside its length. APP and other types are kept as they are (the
// service skips them). On any error the whole compound is invalid.
struct Compound {
  std::array<RtcpPacket, kMaxCompound> pkts{};
  size_t n = 0;
};
Error parse_rtcp(Bytes pkt, Compound& out);

struct SenderInfo {
  uint64_t ntp = 0;  // NTP timestamp, 32.32 fixed point seconds since 1900
  uint32_t rtp_ts = 0;
  uint32_t packets = 0;
  uint32_t octets = 0;
};
struct ReportBlock {
  uint32_t ssrc = 0;
  uint8_t fraction_lost = 0;    // 8-bit fixed point, lost / expected * 256
  int32_t cumulative_lost = 0;  // 24-bit signed on the wire
  uint32_t ext_highest_seq = 0;
  uint32_t jitter = 0;  // RTP timestamp units
  uint32_t lsr = 0;     // middle 32 bits of the last SR's NTP timestamp
  uint32_t dlsr = 0;    // 1/65536 s since that SR was received
};
// An SR or RR from a packet parse_rtcp accepted (so the sizes already hold).
struct Report {
  uint32_t ssrc = 0;
  bool has_sender = false;
  SenderInfo sender;
  uint8_t count = 0;
  Bytes blocks;  // count * kReportBlockSize
  ReportBlock block(size_t i) const;
};
Report read_report(const RtcpPacket& p);

// The CNAME of the first SDES chunk carrying one, for a packet parse_rtcp accepted; empty
// if none. ssrc gets that chunk's SSRC.
std::string_view sdes_cname(const RtcpPacket& p, uint32_t& ssrc);
// The i-th SSRC of a BYE parse_rtcp accepted (i < count).
uint32_t bye_ssrc(const RtcpPacket& p, size_t i);

// Writers. Each returns the bytes written, or 0 if out is too small (nothing usable written).
size_t write_sr(std::span<uint8_t> out, uint32_t ssrc, const SenderInfo& si,
                std::span<const ReportBlock> blocks);
size_t write_rr(std::span<uint8_t> out, uint32_t ssrc, std::span<const ReportBlock> blocks);
// One chunk with one CNAME item, null-terminated and padded to 32 bits.
size_t write_sdes_cname(std::span<uint8_t> out, uint32_t ssrc, std::string_view cname);
size_t write_bye(std::span<uint8_t> out, uint32_t ssrc);

}  // namespace cw::rtp::proto
