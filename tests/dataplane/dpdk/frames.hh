// Test helpers: a small interface and well-formed frames the tests then break one field at
// a time.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <vector>

#include "dataplane/dpdk/net/frame.hh"

namespace cw::dp::net::test {

inline uint32_t ip(const char* s) {
  in_addr a{};
  inet_pton(AF_INET, s, &a);
  return a.s_addr;
}
inline const Mac kOurMac{0x02, 0, 0, 0, 0, 0x02};
inline const Mac kPeerMac{0x02, 0, 0, 0, 0, 0x01};

inline Interface test_interface() {
  Interface ifc;
  ifc.mac = kOurMac;
  ifc.addrs[0] = {ip("10.0.0.2"), 24};
  ifc.naddrs = 1;
  ifc.gateway_be = ip("10.0.0.254");
  ifc.mtu = 1500;
  return ifc;
}

inline UdpHeaderSpec peer_to_us(uint16_t dport = 7) {
  UdpHeaderSpec h;
  h.src_mac = kPeerMac;
  h.dst_mac = kOurMac;
  h.src_be = ip("10.0.0.1");
  h.dst_be = ip("10.0.0.2");
  h.sport_be = htons(40000);
  h.dport_be = htons(dport);
  h.ip_id = 1;
  return h;
}

// A valid Ethernet/IPv4/UDP frame from the peer to us carrying `payload`.
inline std::vector<uint8_t> udp_frame(const std::vector<uint8_t>& payload,
                                      const UdpHeaderSpec& h = peer_to_us()) {
  std::vector<uint8_t> f(kUdpFrameHdrLen + payload.size());
  std::copy(payload.begin(), payload.end(), f.begin() + kUdpFrameHdrLen);
  write_udp_frame(f.data(), h, uint32_t(payload.size()), TxCsum::software);
  return f;
}

// Recomputes the IPv4 header checksum of a frame after a test edited the header.
inline void fix_ip_csum(std::vector<uint8_t>& f) {
  uint8_t* ip = f.data() + kEthHdrLen;
  const uint32_t ihl = uint32_t(ip[0] & 0xF) * 4;
  store16(ip + 10, 0);
  store16(ip + 10, csum_fold(csum_add(ip, ihl)));
}

// A valid ICMP echo request from the peer.
inline std::vector<uint8_t> echo_request(uint32_t data_len = 16) {
  std::vector<uint8_t> f(kEthHdrLen + kIpv4MinHdrLen + kIcmpHdrLen + data_len);
  UdpHeaderSpec h = peer_to_us();
  store_mac(f.data(), h.dst_mac);
  store_mac(f.data() + 6, h.src_mac);
  store16(f.data() + 12, kEtherTypeIpv4);
  uint8_t* ip = f.data() + kEthHdrLen;
  ip[0] = 0x45;
  store16(ip + 2, uint16_t(kIpv4MinHdrLen + kIcmpHdrLen + data_len));
  ip[8] = 64;
  ip[9] = kProtoIcmp;
  store_be32(ip + 12, h.src_be);
  store_be32(ip + 16, h.dst_be);
  uint8_t* icmp = ip + kIpv4MinHdrLen;
  icmp[0] = 8;
  store16(icmp + 4, 0x1234);  // id
  store16(icmp + 6, 1);       // seq
  for (uint32_t i = 0; i < data_len; ++i) icmp[kIcmpHdrLen + i] = uint8_t(i);
  store16(icmp + 2, csum_fold(csum_add(icmp, kIcmpHdrLen + data_len)));
  fix_ip_csum(f);
  return f;
}

}  // namespace cw::dp::net::test
