#include "dataplane/dpdk/net/frame.hh"

#include <array>
#include <bit>

namespace cw::dp::net {
namespace {

// Every parser below fills one Parsed and returns that same object, so the compiler builds
// it in the caller's storage (NRVO) instead of copying ~70 bytes per frame.
void dropped(Parsed& p, DropReason r) {
  p.kind = FrameKind::drop;
  p.drop = r;
}

// L4 of an unfragmented datagram; `ip` points at the IPv4 header, p has the L3 fields.
// addrs_word: the source and destination addresses (ip+12..20) as one native 64-bit word,
// already loaded for the header checksum; it stands for both in the UDP pseudo-header sum
// (2^32 == 1 mod 0xFFFF, so its halves add like two separate words).
void parse_l4(const uint8_t* ip, uint8_t proto, uint32_t ihl, uint64_t addrs_word, RxOffload off,
              Parsed& p) {
  const uint8_t* l4 = ip + ihl;
  const uint32_t l4_len = p.ip_len - ihl;
  p.l4_off = uint16_t(p.l3_off + ihl);
  if (proto == kProtoUdp) {
    if (l4_len < kUdpHdrLen) return dropped(p, DropReason::udp_too_short);
    const uint32_t ulen = load16(l4 + 4);
    // A UDP length shorter than the IP payload is legal (trailing bytes are ignored).
    if (ulen < kUdpHdrLen || ulen > l4_len) return dropped(p, DropReason::udp_bad_length);
    const uint16_t csum = load16(l4 + 6);
    if (off.l4 == CsumState::bad) return dropped(p, DropReason::udp_bad_checksum);
    // Zero = sender computed none (allowed on IPv4, RFC 768).
    if (csum != 0 && off.l4 != CsumState::good && !udp_checksum_ok(addrs_word, l4, ulen))
      return dropped(p, DropReason::udp_bad_checksum);
    p.kind = FrameKind::udp;
    p.sport_be = load_be16(l4);
    p.dport_be = load_be16(l4 + 2);
    p.payload_off = p.l4_off + kUdpHdrLen;
    p.payload_len = ulen - kUdpHdrLen;
    return;
  }
  if (proto == kProtoIcmp) {
    if (l4_len < kIcmpHdrLen) return dropped(p, DropReason::icmp_too_short);
    if (csum_fold(csum_add(l4, l4_len)) != 0) return dropped(p, DropReason::icmp_bad_checksum);
    if (l4[0] != 8 || l4[1] != 0) return dropped(p, DropReason::icmp_unhandled);
    p.kind = FrameKind::icmp_echo;
    return;
  }
  dropped(p, proto == kProtoTcp ? DropReason::tcp_unsupported : DropReason::ip_unknown_proto);
}

// Parses the IPv4 datagram at base + l3_off into p (p.src_mac already set by the caller):
// every check, in RFC 1812 order, each failure with its own drop reason.
void parse_ipv4_checked(const uint8_t* base, uint32_t l3_off, uint32_t len, const Interface& ifc,
                        RxOffload off, Parsed& p) {
  const uint8_t* ip = base + l3_off;
  const uint32_t avail = len - l3_off;
  // RFC 1812 5.2.2: length, version, header length, total length, checksum.
  if (avail < kIpv4MinHdrLen) return dropped(p, DropReason::ip_too_short);
  // Version and IHL share the first byte, and 0x45 (IPv4, no options) passes both checks
  // with one compare. Any other value gets the checks one by one, so each malformed header
  // keeps its own drop reason.
  const uint8_t ver_ihl = ip[0];
  uint32_t ihl = kIpv4MinHdrLen;
  if (ver_ihl != 0x45) {
    if ((ver_ihl >> 4) != 4) return dropped(p, DropReason::ip_bad_version);
    ihl = uint32_t(ver_ihl & 0xF) * 4;
    if (ihl < kIpv4MinHdrLen || ihl > avail) return dropped(p, DropReason::ip_bad_ihl);
  }
  const uint32_t total = load16(ip + 2);
  if (total < ihl || total > avail) return dropped(p, DropReason::ip_bad_total_length);
  if (off.ip == CsumState::bad) return dropped(p, DropReason::ip_bad_checksum);
  // The header checksum as three loads (bytes 0-8, 8-12, 12-20) plus any options. The last
  // 8 bytes are the two addresses: loaded once, summed here and reused for the UDP
  // pseudo-header.
  const uint64_t addrs_word = load_native64(ip + 12);
  if (off.ip != CsumState::good) {
    CsumAcc acc;
    acc.add(load_native64(ip));
    uint32_t mid;  // bytes 8..12: TTL, protocol, checksum
    std::memcpy(&mid, ip + 8, 4);
    acc.add(mid);
    acc.add(addrs_word);
    if (ihl > kIpv4MinHdrLen) csum_accumulate(acc, ip + kIpv4MinHdrLen, ihl - kIpv4MinHdrLen);
    if (!csum_native_ok(acc)) return dropped(p, DropReason::ip_bad_checksum);
  }
  p.l3_off = uint16_t(l3_off);
  p.ip_len = uint16_t(total);
  p.src_be = load_be32(ip + 12);
  p.dst_be = load_be32(ip + 16);
  // Host checks: a martian or spoofed-as-us source is never answered. One pass over our
  // addresses answers all of them (see Interface::classify).
  const AddrClass src = ifc.classify(p.src_be);
  if (is_martian_src(p.src_be) || src != AddrClass::other)
    return dropped(p, DropReason::ip_bad_src);
  const AddrClass dst = ifc.classify(p.dst_be);
  if (dst != AddrClass::local) {
    const bool bcast = dst == AddrClass::broadcast || is_multicast_ip(p.dst_be);
    return dropped(p, bcast ? DropReason::ip_broadcast : DropReason::ip_not_for_us);
  }
  const uint16_t frag = load16(ip + 6);
  const bool more = (frag & 0x2000) != 0;
  const uint32_t frag_off = uint32_t(frag & 0x1FFF) * 8;
  if (more || frag_off != 0) {
    const uint32_t data = total - ihl;
    // Every fragment but the last carries a multiple of 8 bytes; none may end past 65535.
    if (data == 0 || (more && (data % 8) != 0) || frag_off + data + ihl > kMaxIpv4Len)
      return dropped(p, DropReason::ip_bad_fragment);
    p.kind = FrameKind::ipv4_fragment;
    p.l4_off = uint16_t(l3_off + ihl);
    return;
  }
  parse_l4(ip, ip[9], ihl, addrs_word, off, p);
}

}  // namespace

bool parse_arp(const uint8_t* p, uint32_t len, ArpPacket* out, DropReason* why) {
  // htype 1 (Ethernet), ptype 0x0800, hlen 6, plen 4.
  if (len < kArpLen || load16(p) != 1 || load16(p + 2) != kEtherTypeIpv4 || p[4] != 6 ||
      p[5] != 4) {
    *why = DropReason::arp_malformed;
    return false;
  }
  out->op = load16(p + 6);
  if (out->op != kArpRequest && out->op != kArpReply) {
    *why = DropReason::arp_bad_op;
    return false;
  }
  out->sha = load_mac(p + 8);
  out->spa_be = load_be32(p + 14);
  out->tha = load_mac(p + 18);
  out->tpa_be = load_be32(p + 24);
  return true;
}

Parsed parse_frame(const uint8_t* f, uint32_t len, const Interface& ifc, RxOffload off) {
  Parsed p;  // every path returns p itself (NRVO)
  if (len < kEthHdrLen) {
    dropped(p, DropReason::eth_too_short);
    return p;
  }
  const Mac dst = load_mac(f);
  p.src_mac = load_mac(f + 6);
  const uint16_t type = load16(f + 12);
  if (dst != ifc.mac && dst != kBroadcastMac) {
    dropped(p, DropReason::eth_not_for_us);
  } else if (type == kEtherTypeIpv4) {
    // A frame sent to the broadcast MAC never carries unicast IPv4 for us; the IPv4 checks
    // below drop it as broadcast or not-for-us.
    parse_ipv4_checked(f, kEthHdrLen, len, ifc, off, p);
  } else if (type == kEtherTypeArp) {
    DropReason why;
    if (parse_arp(f + kEthHdrLen, len - kEthHdrLen, &p.arp, &why)) {
      p.kind = FrameKind::arp;
      p.l3_off = kEthHdrLen;
    } else {
      dropped(p, why);
    }
  } else {
    dropped(p, type == kEtherTypeVlan || type == kEtherTypeQinQ ? DropReason::eth_vlan
                                                                : DropReason::eth_unknown_type);
  }
  return p;
}

Parsed parse_ipv4_datagram(const uint8_t* ip, uint32_t len, const Interface& ifc, RxOffload off) {
  Parsed p;
  parse_ipv4_checked(ip, 0, len, ifc, off, p);
  return p;
}

uint32_t build_arp(uint8_t* b, uint16_t op, const Mac& eth_dst, const Mac& sha, uint32_t spa_be,
                   const Mac& tha, uint32_t tpa_be) {
  store_mac(b, eth_dst);
  store_mac(b + 6, sha);
  store16(b + 12, kEtherTypeArp);
  uint8_t* a = b + kEthHdrLen;
  store16(a, 1);
  store16(a + 2, kEtherTypeIpv4);
  a[4] = 6;
  a[5] = 4;
  store16(a + 6, op);
  store_mac(a + 8, sha);
  store_be32(a + 14, spa_be);
  store_mac(a + 18, tha);
  store_be32(a + 24, tpa_be);
  std::memset(b + kEthHdrLen + kArpLen, 0, kEthMinFrame - kEthHdrLen - kArpLen);
  return kEthMinFrame;
}

uint32_t make_echo_reply(uint8_t* f, const Parsed& p) {
  uint8_t* ip = f + p.l3_off;
  const uint32_t ihl = uint32_t(ip[0] & 0xF) * 4;
  uint8_t* icmp = ip + ihl;
  const uint32_t icmp_len = p.ip_len - ihl;
  // Ethernet: back to the sender.
  uint8_t mac[6];
  std::memcpy(mac, f, 6);
  std::memcpy(f, f + 6, 6);
  std::memcpy(f + 6, mac, 6);
  // IPv4: swap addresses, fresh TTL, options dropped would change lengths, so keep them.
  store_be32(ip + 12, p.dst_be);
  store_be32(ip + 16, p.src_be);
  ip[8] = kDefaultTtl;
  store16(ip + 10, 0);
  store16(ip + 10, csum_fold(csum_add(ip, ihl)));
  icmp[0] = 0;  // echo reply
  store16(icmp + 2, 0);
  store16(icmp + 2, csum_fold(csum_add(icmp, icmp_len)));
  return p.l3_off + p.ip_len;
}

namespace {
void write_eth_ipv4(uint8_t* f, const UdpHeaderSpec& h, uint32_t ip_total, uint16_t frag_field,
                    bool ip_csum) {
  store_mac(f, h.dst_mac);
  store_mac(f + 6, h.src_mac);
  store16(f + 12, kEtherTypeIpv4);
  uint8_t* ip = f + kEthHdrLen;
  ip[0] = 0x45;
  ip[1] = 0;
  store16(ip + 2, uint16_t(ip_total));
  store16(ip + 4, h.ip_id);
  store16(ip + 6, frag_field);
  ip[8] = kDefaultTtl;
  ip[9] = kProtoUdp;
  store16(ip + 10, 0);
  store_be32(ip + 12, h.src_be);
  store_be32(ip + 16, h.dst_be);
  if (ip_csum) store16(ip + 10, csum_fold(csum_add(ip, kIpv4MinHdrLen)));
}
}  // namespace

void write_udp_header(uint8_t* u, const UdpHeaderSpec& h, const uint8_t* payload, uint32_t len) {
  const uint32_t ulen = len + kUdpHdrLen;
  store_be16(u, h.sport_be);
  store_be16(u + 2, h.dport_be);
  store16(u + 4, uint16_t(ulen));
  store16(u + 6, 0);
  uint64_t sum = pseudo_header_sum(h.src_be, h.dst_be, kProtoUdp, ulen);
  sum = csum_add(u, kUdpHdrLen, sum);
  sum = csum_add(payload, len, sum);
  uint16_t c = csum_fold(sum);
  store16(u + 6, c == 0 ? 0xFFFF : c);  // 0 means "no checksum" (RFC 768)
}

void write_udp_frame(uint8_t* f, const UdpHeaderSpec& h, uint32_t len, TxCsum csum) {
  // DF clear: a datagram that fits one frame is sent whole either way.
  write_eth_ipv4(f, h, kIpv4MinHdrLen + kUdpHdrLen + len, 0, csum == TxCsum::software);
  uint8_t* u = f + kEthHdrLen + kIpv4MinHdrLen;
  if (csum == TxCsum::software) {
    write_udp_header(u, h, u + kUdpHdrLen, len);
    return;
  }
  const uint32_t ulen = len + kUdpHdrLen;
  store_be16(u, h.sport_be);
  store_be16(u + 2, h.dport_be);
  store16(u + 4, uint16_t(ulen));
  // DPDK offload convention: the field holds the folded pseudo-header sum, uncomplemented.
  store16(u + 6, csum_fold_raw(pseudo_header_sum(h.src_be, h.dst_be, kProtoUdp, ulen)));
}

UdpTemplate make_udp_template(const UdpHeaderSpec& h, TxCsum csum) {
  UdpTemplate t;
  t.csum = csum;
  UdpHeaderSpec z = h;
  z.dport_be = 0;
  z.ip_id = 0;
  write_eth_ipv4(t.hdr, z, 0, 0, false);
  uint8_t* u = t.hdr + kEthHdrLen + kIpv4MinHdrLen;
  store_be16(u, h.sport_be);
  t.ip_sum = csum_add(t.hdr + kEthHdrLen, kIpv4MinHdrLen);
  t.l4_sum = pseudo_header_sum(h.src_be, h.dst_be, kProtoUdp, 0);
  t.l4_native.add(uint64_t(h.src_be) + h.dst_be);
  t.l4_native.add(native_term(kProtoUdp));
  t.l4_native.add(h.sport_be);
  return t;
}

void write_fragment_headers(uint8_t* f, const UdpHeaderSpec& h, uint32_t offset, uint32_t frag_len,
                            bool more) {
  const uint16_t field = uint16_t((more ? 0x2000 : 0) | (offset / 8));
  write_eth_ipv4(f, h, kIpv4MinHdrLen + frag_len, field, true);
}

}  // namespace cw::dp::net
