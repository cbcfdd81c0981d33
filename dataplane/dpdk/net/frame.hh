// Frame codecs of the user-space stack: parse and check received Ethernet/ARP/IPv4/ICMP/UDP,
// build ARP, ICMP echo replies and UDP/IPv4 headers for transmission. Pure functions over
// bytes (no DPDK, no globals); every rejection names its DropReason.
#pragma once

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

#include "dataplane/dpdk/net/drop.hh"
#include "dataplane/dpdk/net/wire.hh"

namespace cw::dp::net {

// What the NIC already verified (mbuf ol_flags), so software checks can be skipped.
enum class CsumState : uint8_t { unknown, good, bad };
struct RxOffload {
  CsumState ip = CsumState::unknown;
  CsumState l4 = CsumState::unknown;
};

enum class FrameKind : uint8_t {
  drop,           // see Parsed::drop
  arp,            // Parsed::arp holds the checked ARP body (policy: arp_input)
  icmp_echo,      // an echo request to one of our addresses: answer with make_echo_reply
  udp,            // a datagram for one of our addresses; payload at payload_off
  ipv4_fragment,  // a checked fragment for us: hand to reassembly, then parse_ipv4_datagram
};

struct ArpPacket {
  uint16_t op = 0;  // 1 request, 2 reply
  Mac sha{};
  uint32_t spa_be = 0;
  Mac tha{};
  uint32_t tpa_be = 0;
};
inline constexpr uint16_t kArpRequest = 1;
inline constexpr uint16_t kArpReply = 2;

// Result of parsing one frame (or one reassembled datagram). Offsets are from the start of
// the bytes that were parsed.
struct Parsed {
  FrameKind kind = FrameKind::drop;
  DropReason drop = DropReason::count;  // valid when kind == drop
  Mac src_mac{};
  uint16_t l3_off = 0;  // ARP body or IPv4 header
  uint16_t l4_off = 0;  // ICMP/UDP header
  uint16_t ip_len = 0;  // IPv4 total length
  uint32_t src_be = 0, dst_be = 0;
  uint16_t sport_be = 0, dport_be = 0;
  uint32_t payload_off = 0, payload_len = 0;  // UDP payload
  ArpPacket arp;
};

// Ethernet frame (without FCS) -> ARP, ICMP echo, UDP datagram or IPv4 fragment, after
// every check in drop.hh, one by one in RFC 1812 order, each failure with its own drop
// reason. `ifc` says which MAC and addresses are ours. The datapath tries the inline
// parse_udp_frame_fast (below) first and calls this for everything else; the two are
// separate implementations, and fuzz_dpdk_frame checks that the fast one accepts nothing
// this one rejects, with the same datagram.
Parsed parse_frame(const uint8_t* frame, uint32_t len, const Interface& ifc, RxOffload off);

// ---- the common case, inline ----------------------------------------------------------

// Whether a UDP datagram's checksum is right: the pseudo-header (addrs_word: source and
// destination as the 8 native bytes at ip+12, protocol, UDP length) and the `ulen` bytes of
// the datagram at udp in one native-order accumulator, folded once. ulen >= 8 (checked by
// both callers), so the block takes the whole-word path.
inline bool udp_checksum_ok(uint64_t addrs_word, const uint8_t* udp, uint32_t ulen) {
  CsumAcc acc;
  acc.add(addrs_word);
  acc.add(native_term(kProtoUdp));
  acc.add(native_term(uint16_t(ulen)));
  csum_accumulate_words(acc, udp, ulen);
  return csum_native_ok(acc);
}

// Bytes 0..7 of an IPv4 header (version/IHL, TOS, total length, id, flags/fragment offset)
// as a native word: mask and value of "IPv4, IHL 5, not a fragment" (MF clear, offset 0; DF
// may be set). std::bit_cast of the byte pattern keeps this independent of byte order.
inline constexpr uint64_t kPlainHdrMask =
    std::bit_cast<uint64_t>(std::array<uint8_t, 8>{0xFF, 0, 0, 0, 0, 0, 0x3F, 0xFF});
inline constexpr uint64_t kPlainHdrWant =
    std::bit_cast<uint64_t>(std::array<uint8_t, 8>{0x45, 0, 0, 0, 0, 0, 0, 0});

// A UDP datagram's addresses, ports and payload (offsets from the start of the parsed bytes).
struct UdpDatagram {
  uint32_t src_be = 0, dst_be = 0;
  uint16_t sport_be = 0, dport_be = 0;
  uint32_t payload_off = 0, payload_len = 0;
};
inline UdpDatagram udp_of(const Parsed& p) {
  return {p.src_be, p.dst_be, p.sport_be, p.dport_be, p.payload_off, p.payload_len};
}

// The common case: an unfragmented UDP/IPv4 datagram without options (at ip, `avail` bytes),
// from a plausible source to one of our addresses, every check passing. Returns true with
// d filled (payload_off from ip) and *total set to the IPv4 total length; returns false as
// soon as anything is unusual (options, fragment, other protocol, a failed check), and the
// caller runs the checked path (parse_frame), which finds the drop reason. So this path may
// only accept what the checked path accepts (fuzz_dpdk_frame, DpdkFrame.PlainUdpEdges), and
// never needs to name a reason itself.
inline bool check_plain_udp(const uint8_t* ip, uint32_t avail, const Interface& ifc, RxOffload off,
                            UdpDatagram& d, uint32_t* total_out) {
  if (avail < kIpv4MinHdrLen + kUdpHdrLen) return false;
  const uint64_t head = load_native64(ip);  // version/IHL .. fragment field
  uint32_t mid;                             // TTL, protocol, header checksum
  std::memcpy(&mid, ip + 8, 4);
  const uint64_t addrs = load_native64(ip + 12);  // source, destination
  if ((head & kPlainHdrMask) != kPlainHdrWant || ip[9] != kProtoUdp) return false;
  const uint32_t total = load16(ip + 2);
  // Total length covers the UDP header and lies inside the bytes we have: 28 <= total <=
  // avail as one unsigned compare (a total below 28 wraps to a huge value).
  constexpr uint32_t kMin = kIpv4MinHdrLen + kUdpHdrLen;
  if (total - kMin > avail - kMin) return false;
  if (off.ip == CsumState::bad || off.l4 == CsumState::bad) return false;
  if (off.ip != CsumState::good) {
    CsumAcc acc;
    acc.add(head);
    acc.add(mid);
    acc.add(addrs);
    if (!csum_native_ok(acc)) return false;
  }
  // Source and destination checks in one pass over our addresses, without early exits: the
  // source must be neither one of them nor a directed broadcast of their subnets (the
  // limited broadcast is martian), the destination one of them. addr | host bits is the
  // directed broadcast; for a /32 it is the address itself, rejected either way, so the
  // /32 exception of is_directed_broadcast needs no test here.
  const uint32_t src = load_be32(ip + 12), dst = load_be32(ip + 16);
  bool src_bad = is_martian_src(src), dst_ours = false;
  for (unsigned i = 0; i < ifc.naddrs; ++i) {
    const LocalAddr& a = ifc.addrs[i];
    src_bad |= (a.addr_be == src) | ((a.addr_be | a.host_bits_be()) == src);
    dst_ours |= a.addr_be == dst;
  }
  if (src_bad || !dst_ours) return false;
  const uint8_t* u = ip + kIpv4MinHdrLen;
  const uint32_t ulen = load16(u + 4);
  // 8 <= ulen <= total - 20 (the IP payload), as above.
  if (ulen - kUdpHdrLen > total - kMin) return false;
  // 0: no checksum (RFC 768).
  if (load16(u + 6) != 0 && off.l4 != CsumState::good && !udp_checksum_ok(addrs, u, ulen))
    return false;
  d.src_be = src;
  d.dst_be = dst;
  d.sport_be = load_be16(u);
  d.dport_be = load_be16(u + 2);
  d.payload_off = kIpv4MinHdrLen + kUdpHdrLen;
  d.payload_len = ulen - kUdpHdrLen;
  *total_out = total;
  return true;
}

// Whether the 6 bytes at p are the MAC m (two loads and compares, no copy).
inline bool mac_is(const uint8_t* p, const Mac& m) {
  uint32_t a, b;
  uint16_t c, e;
  std::memcpy(&a, p, 4);
  std::memcpy(&b, m.data(), 4);
  std::memcpy(&c, p + 4, 2);
  std::memcpy(&e, m.data() + 4, 2);
  return ((a ^ b) | uint32_t(c ^ e)) == 0;
}

// parse_frame's fast path, inline for the datapath: a frame to our own MAC carrying a plain
// UDP datagram (check_plain_udp). Returns true with d as parse_frame would report it
// (payload_off from the frame's start); false as soon as anything is unusual, and the
// caller runs parse_frame, which finds the drop reason or the other kind (a broadcast MAC,
// ARP, ICMP, options, fragments).
inline bool parse_udp_frame_fast(const uint8_t* f, uint32_t len, const Interface& ifc,
                                 RxOffload off, UdpDatagram& d) {
  if (len < kUdpFrameHdrLen || !mac_is(f, ifc.mac) || load16(f + 12) != kEtherTypeIpv4)
    return false;
  uint32_t total;
  if (!check_plain_udp(f + kEthHdrLen, len - kEthHdrLen, ifc, off, d, &total)) return false;
  d.payload_off += kEthHdrLen;
  return true;
}

// An IPv4 datagram without L2 header (used for reassembled datagrams: pass
// off.ip = good, since reassembly rewrote the header without a checksum). Fragments are
// reported as ipv4_fragment, never parsed further.
Parsed parse_ipv4_datagram(const uint8_t* ip, uint32_t len, const Interface& ifc, RxOffload off);

// Checks an ARP body (28 bytes, Ethernet/IPv4). False + *why on malformed input.
bool parse_arp(const uint8_t* p, uint32_t len, ArpPacket* out, DropReason* why);

// Writes an Ethernet+ARP frame into buf (>= kEthMinFrame bytes), padded to the Ethernet
// minimum; returns its length.
uint32_t build_arp(uint8_t* buf, uint16_t op, const Mac& eth_dst, const Mac& sha, uint32_t spa_be,
                   const Mac& tha, uint32_t tpa_be);

// Turns the echo request frame `p` (as classified by parse_frame) into its echo reply in
// place: swaps MACs and addresses, fresh TTL and checksums. Returns the frame length to send.
uint32_t make_echo_reply(uint8_t* frame, const Parsed& p);

// How UDP/IPv4 checksums are produced on transmit.
enum class TxCsum : uint8_t {
  software,  // IPv4 and UDP checksums computed here
  offload,   // NIC computes both: IPv4 field 0, UDP field = pseudo-header sum (DPDK rule)
};

struct UdpHeaderSpec {
  Mac src_mac, dst_mac;
  uint32_t src_be = 0, dst_be = 0;
  uint16_t sport_be = 0, dport_be = 0;
  uint16_t ip_id = 0;
};

// Writes Ethernet(14)+IPv4(20)+UDP(8) headers at frame[0..42) for the payload of `len`
// bytes that already sits at frame+42 (read for the software UDP checksum).
void write_udp_frame(uint8_t* frame, const UdpHeaderSpec& h, uint32_t len, TxCsum csum);

// The headers of every datagram from one source to one destination host, prepared once:
// writing a frame is then a 42-byte copy, a few length/id/port stores and a checksum over
// the payload alone. The destination port is per frame (one template serves every port of
// a host); src/dst MACs, addresses and the source port are fixed.
struct UdpTemplate {
  uint8_t hdr[kUdpFrameHdrLen] = {};  // lengths, IP id, dst port and checksums zero
  uint64_t ip_sum = 0;                // IPv4 header sum without total length and id
  uint64_t l4_sum = 0;                // pseudo-header addresses + protocol (offload)
  CsumAcc l4_native;  // addresses, protocol, source port in native order (software csum)
  TxCsum csum = TxCsum::software;
};
UdpTemplate make_udp_template(const UdpHeaderSpec& h, TxCsum csum);
// Same bytes as write_udp_frame(frame, h, len, csum) with h's dport_be and ip_id replaced.
// The template's headers for a payload of len bytes, all but the UDP checksum field; with
// software checksums the IPv4 one included.
inline void write_template_headers(uint8_t* f, const UdpTemplate& t, uint16_t dport_be,
                                   uint16_t ip_id, uint32_t len) {
  // 42 bytes as three 16-byte moves (the last overlaps): a plain 42-byte memcpy may become
  // `rep movsb` once inlined, which costs more than the rest of the header write.
  static_assert(kUdpFrameHdrLen > 32 && kUdpFrameHdrLen <= 48);
  std::memcpy(f, t.hdr, 16);
  std::memcpy(f + 16, t.hdr + 16, 16);
  std::memcpy(f + kUdpFrameHdrLen - 16, t.hdr + kUdpFrameHdrLen - 16, 16);
  uint8_t* ip = f + kEthHdrLen;
  uint8_t* u = ip + kIpv4MinHdrLen;
  const uint32_t ulen = kUdpHdrLen + len;
  const uint32_t total = kIpv4MinHdrLen + ulen;
  store16(ip + 2, uint16_t(total));
  store16(ip + 4, ip_id);
  store_be16(u + 2, dport_be);
  store16(u + 4, uint16_t(ulen));
  if (t.csum == TxCsum::software) store16(ip + 10, csum_fold(t.ip_sum + total + ip_id));
}

// The native one's-complement sum of the UDP checksum as stored: 0 (RFC 768's "none")
// becomes 0xFFFF, the other representation of zero.
inline void store_udp_checksum(uint8_t* udp, const CsumAcc& acc) {
  const uint16_t c = uint16_t(~fold16(acc.value()));
  store_be16(udp + 6, c == 0 ? 0xFFFF : c);
}

// Inline: it runs once per datagram sent.
inline void write_udp_frame(uint8_t* f, const UdpTemplate& t, uint16_t dport_be, uint16_t ip_id,
                            uint32_t len) {
  write_template_headers(f, t, dport_be, ip_id, len);
  uint8_t* u = f + kEthHdrLen + kIpv4MinHdrLen;
  const uint32_t ulen = kUdpHdrLen + len;
  if (t.csum == TxCsum::offload) {  // DPDK rule: IPv4 field 0, UDP field the pseudo sum
    store16(u + 6, csum_fold_raw(t.l4_sum + ulen));
    return;
  }
  // Pseudo-header length, UDP length field, destination port, payload, summed in native
  // order and folded once: the complement of the native fold, stored as native bytes, is
  // the big-endian checksum (byte swap and complement commute).
  CsumAcc acc = t.l4_native;
  acc.add(2 * native_term(uint16_t(ulen)));
  acc.add(dport_be);
  csum_accumulate(acc, u + kUdpHdrLen, len);
  store_udp_checksum(u, acc);
}

// write_udp_frame for a reply written over the request it answers: f still holds the
// request's IPv4 header (no options) and UDP header, and the `len` payload bytes are the
// request's except for changes whose one's-complement sum, in native order, is `edits`
// (CsumEdits). The UDP checksum is then the request's, updated (RFC 1624) for the
// new addresses and ports and the edits, instead of a sum over the payload: the same bytes
// as write_udp_frame. The request's checksum must be right (the receive path verified
// it); without one (0), or with another length, the reply gets the full sum.
inline void write_udp_reply_frame(uint8_t* f, const UdpTemplate& t, uint16_t dport_be,
                                  uint16_t ip_id, uint32_t len, uint64_t edits) {
  uint8_t* u = f + kEthHdrLen + kIpv4MinHdrLen;
  const uint16_t old = load_be16(u + 6);  // native order, like every term below
  if (old == 0 || load16(u + 4) != kUdpHdrLen + len || t.csum == TxCsum::offload)
    return write_udp_frame(f, t, dport_be, ip_id, len);
  // The request's sum (~checksum) minus its addresses, protocol and ports (the lengths stay),
  // plus the reply's (t.l4_native: addresses, protocol, source port; then the destination
  // port) and the edits. -x is ~x for a 16-, 32- or 64-bit x, as 2^16 - 1 divides 2^32 - 1
  // and 2^64 - 1.
  uint32_t old_ports;
  std::memcpy(&old_ports, u, 4);
  CsumAcc acc = t.l4_native;
  acc.add(uint16_t(~old));
  acc.add(~load_native64(f + kEthHdrLen + 12));
  acc.add(~native_term(kProtoUdp));
  acc.add(uint32_t(~old_ports));
  acc.add(dport_be);
  acc.add(edits);
  write_template_headers(f, t, dport_be, ip_id, len);
  store_udp_checksum(u, acc);
}

// Fragmentation (RFC 791) of a UDP datagram too large for one frame. The L4 bytes (UDP
// header + payload, `l4_len` bytes) are split into pieces of frag_payload(mtu) bytes (a
// multiple of 8), the last one shorter.
inline uint32_t frag_payload(uint16_t mtu) {
  return ((mtu - kIpv4MinHdrLen) / 8) * 8;
}
// Writes the UDP header (with software checksum over the whole datagram) for `payload`.
void write_udp_header(uint8_t* udp, const UdpHeaderSpec& h, const uint8_t* payload, uint32_t len);
// Writes Ethernet+IPv4 headers (34 bytes) of one fragment carrying `frag_len` L4 bytes at
// L4 offset `offset` (multiple of 8); `more` sets MF. IPv4 checksum always in software.
void write_fragment_headers(uint8_t* frame, const UdpHeaderSpec& h, uint32_t offset,
                            uint32_t frag_len, bool more);

}  // namespace cw::dp::net
