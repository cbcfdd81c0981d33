// cw-dpdk-reflector: the DPDK link's ceiling (docs/dpdk.md, bench/README.md). One lcore,
// port 0, one queue pair: rx burst -> swap the MAC, IPv4 and UDP source/destination of every
// UDP frame -> tx burst. Nothing else runs, so a generator measures the link and itself.
//   cw-dpdk-reflector <EAL args> -- --ip A.B.C.D
// Two additions so corewire-bench can use it unchanged: ARP requests for --ip are answered
// (the generator resolves its target by ARP), and a sockperf request's client flag is
// cleared (payload bytes 8-9; UDP checksum patched per RFC 1624) so it reads as a reply.
// Swapping addresses leaves both checksums valid. Stops on SIGINT/SIGTERM.
#include <arpa/inet.h>
#include <rte_arp.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_ip.h>
#include <rte_udp.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "bench/dpdk_reflector/bare_port.hh"

namespace {

using namespace cw::bare;
constexpr unsigned kMbufs = 8191;
constexpr uint32_t kIdleSpins = 1u << 16;  // empty polls (a few ms) before polling slowly
constexpr uint16_t kSockperfClient = 0x1;  // app/protocol/sockperf.hh
rte_ether_addr g_mac;                      // the port's, read once at start

// Turns one received frame into its answer in place; false: drop it.
bool reflect(rte_mbuf* m, uint32_t ip_be) {
  auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  const uint32_t len = rte_pktmbuf_data_len(m);
  std::swap(eth->src_addr, eth->dst_addr);
  if (eth->ether_type == htons(RTE_ETHER_TYPE_ARP) && len >= sizeof *eth + sizeof(rte_arp_hdr)) {
    auto* a = reinterpret_cast<rte_arp_hdr*>(eth + 1);
    if (a->arp_opcode != htons(RTE_ARP_OP_REQUEST) || a->arp_data.arp_tip != ip_be) return false;
    a->arp_opcode = htons(RTE_ARP_OP_REPLY);
    a->arp_data.arp_tha = a->arp_data.arp_sha;
    a->arp_data.arp_tip = a->arp_data.arp_sip;
    a->arp_data.arp_sha = eth->src_addr = g_mac;  // eth dst is the requester after the swap
    a->arp_data.arp_sip = ip_be;
    return true;
  }
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(eth + 1);
  if (eth->ether_type != htons(RTE_ETHER_TYPE_IPV4) || len < sizeof *eth + sizeof *ip) return false;
  const uint32_t l3 = sizeof *eth + rte_ipv4_hdr_len(ip);
  if (len < l3 + sizeof(rte_udp_hdr) || ip->next_proto_id != IPPROTO_UDP) return false;
  auto* udp = rte_pktmbuf_mtod_offset(m, rte_udp_hdr*, l3);
  const uint32_t a = ip->src_addr;
  ip->src_addr = ip->dst_addr;
  ip->dst_addr = a;
  const uint16_t p = udp->src_port;
  udp->src_port = udp->dst_port;
  udp->dst_port = p;
  uint8_t* flags = reinterpret_cast<uint8_t*>(udp + 1) + 8;  // sockperf header bytes 8-9
  uint16_t old = 0;
  if (len >= l3 + sizeof *udp + 14) std::memcpy(&old, flags, 2);
  if (ntohs(old) & kSockperfClient) {
    const uint16_t now = htons(ntohs(old) & ~kSockperfClient);
    std::memcpy(flags, &now, 2);
    if (udp->dgram_cksum) {  // RFC 1624: HC' = ~(~HC + ~m + m')
      uint32_t s = uint16_t(~udp->dgram_cksum) + uint16_t(~old) + now;
      s = (s & 0xFFFF) + (s >> 16);
      s = (s & 0xFFFF) + (s >> 16);
      const uint16_t c = uint16_t(~s);
      udp->dgram_cksum = c ? c : 0xFFFF;  // 0 would mean "no checksum"
    }
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  const int used = rte_eal_init(argc, argv);
  if (used < 0) return std::fprintf(stderr, "cw-dpdk-reflector: rte_eal_init failed\n"), 1;
  in_addr ip{};
  if (argc - used != 3 || std::strcmp(argv[used + 1], "--ip") != 0 ||
      inet_pton(AF_INET, argv[used + 2], &ip) != 1)
    return std::fprintf(stderr, "usage: cw-dpdk-reflector <EAL args> -- --ip A.B.C.D\n"), 2;
  rte_mempool* mp = rte_pktmbuf_pool_create("refl", kMbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                            int(rte_socket_id()));
  if (!start_port(mp))
    return std::fprintf(stderr, "cw-dpdk-reflector: cannot set up port %u\n", kPort), 1;
  rte_eth_macaddr_get(kPort, &g_mac);
  std::printf("cw-dpdk-reflector: port %u, ip %s, lcore %u\n", kPort, argv[used + 2],
              rte_lcore_id());
  std::fflush(stdout);
  LinkWatch link;
  uint64_t reflected = 0;
  uint32_t idle = 0;
  while (!g_stop) {
    if (!link.up()) continue;
    rte_mbuf* rx[kBurst];
    rte_mbuf* tx[kBurst];
    uint16_t n = rte_eth_rx_burst(kPort, 0, rx, kBurst), k = 0;
    // Idle for a while (the peer stopped sending): poll every 100 us instead of spinning.
    // memif unmaps the peer's rings in its interrupt thread when the peer leaves, under a
    // poller that may be inside rx_burst; an idle poller is rarely there.
    idle = n ? 0 : idle + 1;
    if (idle > kIdleSpins) usleep(100);
    for (uint16_t i = 0; i < n; ++i) {
      if (reflect(rx[i], ip.s_addr))
        tx[k++] = rx[i];
      else
        rte_pktmbuf_free(rx[i]);
    }
    if (k == 0) continue;  // memif's tx_burst reads tx[0] even when asked for 0 frames
    const uint16_t sent = rte_eth_tx_burst(kPort, 0, tx, k);
    if (sent < k) rte_pktmbuf_free_bulk(tx + sent, k - sent);
    reflected += sent;
  }
  std::printf("cw-dpdk-reflector: reflected %llu frames\n", (unsigned long long)reflected);
  stop_port();
  return 0;
}
