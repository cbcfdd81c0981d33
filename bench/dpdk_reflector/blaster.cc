// cw-dpdk-blaster: a bare closed-loop UDP client, the counterpart of cw-dpdk-reflector, for
// measuring a DPDK server's own capacity rather than corewire-bench's (bench/README.md).
// One lcore, port 0: resolves --dst by ARP, sends --window sockperf requests (one fixed
// frame, checksums computed once), then one new request per reply received. Nothing per
// message but rx burst, free, copy a template, tx burst.
//   cw-dpdk-blaster <EAL args> -- --src A.B.C.D --dst A.B.C.D:PORT [--window N]
//                   [--duration S] [--warmup S] [--size BYTES]
// Prints one line: "cw-dpdk-blaster: replies_per_s R replies N sent N refills N".
#include <arpa/inet.h>
#include <rte_arp.h>
#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_udp.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <string>

#include "bench/dpdk_reflector/bare_port.hh"

namespace {

using namespace cw::bare;
constexpr unsigned kMbufs = 16383;
constexpr uint16_t kSrcPort = 40000;
constexpr uint16_t kSockperfRequest = 0x3;  // client | pong-request (app/protocol/sockperf.hh)
constexpr uint32_t kSockperfHeader = 14;
constexpr double kArpTimeoutS = 5, kArpRetryS = 0.02;
constexpr double kRefillAfterS = 0.01;  // no reply this long: the window was lost, resend it

rte_mempool* g_mp;
rte_ether_addr g_mac;

void send_copies(const uint8_t* frame, uint16_t len, uint32_t n, uint64_t& sent) {
  rte_mbuf* m[kBurst];
  while (n) {
    const uint16_t k = uint16_t(n < kBurst ? n : kBurst);
    if (rte_pktmbuf_alloc_bulk(g_mp, m, k) != 0) return;
    for (uint16_t i = 0; i < k; ++i) {
      std::memcpy(rte_pktmbuf_mtod(m[i], void*), frame, len);
      m[i]->data_len = m[i]->pkt_len = len;
    }
    const uint16_t s = rte_eth_tx_burst(kPort, 0, m, k);
    if (s < k) rte_pktmbuf_free_bulk(m + s, k - s);
    sent += s;
    n -= k;
  }
}

// An ARP frame (request to broadcast, or reply to `to`) from us.
void send_arp(uint16_t op, const rte_ether_addr& to_mac, uint32_t sip, uint32_t tip) {
  uint8_t f[64] = {};
  auto* e = reinterpret_cast<rte_ether_hdr*>(f);
  auto* a = reinterpret_cast<rte_arp_hdr*>(e + 1);
  e->dst_addr = to_mac;
  e->src_addr = g_mac;
  e->ether_type = htons(RTE_ETHER_TYPE_ARP);
  a->arp_hardware = htons(RTE_ARP_HRD_ETHER);
  a->arp_protocol = htons(RTE_ETHER_TYPE_IPV4);
  a->arp_hlen = RTE_ETHER_ADDR_LEN;
  a->arp_plen = 4;
  a->arp_opcode = htons(op);
  a->arp_data.arp_sha = g_mac;
  a->arp_data.arp_sip = sip;
  a->arp_data.arp_tha = op == RTE_ARP_OP_REPLY ? to_mac : rte_ether_addr{};
  a->arp_data.arp_tip = tip;
  uint64_t unused = 0;
  send_copies(f, 60, 1, unused);
}

// Answers ARP requests for src; returns true (and *mac) on a reply from dst.
bool arp_frame(rte_mbuf* m, uint32_t src, uint32_t dst, rte_ether_addr* mac) {
  auto* e = rte_pktmbuf_mtod(m, rte_ether_hdr*);
  if (e->ether_type != htons(RTE_ETHER_TYPE_ARP) ||
      rte_pktmbuf_data_len(m) < sizeof *e + sizeof(rte_arp_hdr))
    return false;
  const auto* a = reinterpret_cast<const rte_arp_hdr*>(e + 1);
  if (a->arp_opcode == htons(RTE_ARP_OP_REQUEST) && a->arp_data.arp_tip == src)
    send_arp(RTE_ARP_OP_REPLY, a->arp_data.arp_sha, src, a->arp_data.arp_sip);
  if (a->arp_opcode == htons(RTE_ARP_OP_REPLY) && a->arp_data.arp_sip == dst) {
    *mac = a->arp_data.arp_sha;
    return true;
  }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  const int used = rte_eal_init(argc, argv);
  if (used < 0) return std::fprintf(stderr, "cw-dpdk-blaster: rte_eal_init failed\n"), 1;
  CLI::App app{"bare closed-loop UDP client (sockperf requests) over DPDK port 0"};
  std::string src_s, dst_s;
  uint32_t window = 512, size = 64;
  double duration = 3, warmup = 1;
  app.add_option("--src", src_s, "our IPv4 address")->required();
  app.add_option("--dst", dst_s, "the server, A.B.C.D:PORT")->required();
  app.add_option("--window", window, "requests outstanding")->check(CLI::Range(1u, 8192u));
  app.add_option("--duration", duration, "measured seconds")->check(CLI::Range(0.1, 600.0));
  app.add_option("--warmup", warmup, "seconds before measuring")->check(CLI::Range(0.0, 60.0));
  app.add_option("--size", size, "sockperf message bytes")
      ->check(CLI::Range(kSockperfHeader, 1400u));
  argv[used] = argv[0];
  CLI11_PARSE(app, argc - used, argv + used);
  in_addr src{}, dst{};
  const auto colon = dst_s.rfind(':');
  const int port = colon == std::string::npos ? 0 : std::atoi(dst_s.c_str() + colon + 1);
  if (inet_pton(AF_INET, src_s.c_str(), &src) != 1 || colon == std::string::npos ||
      inet_pton(AF_INET, dst_s.substr(0, colon).c_str(), &dst) != 1 || port <= 0 || port > 65535)
    return std::fprintf(stderr, "cw-dpdk-blaster: bad --src or --dst\n"), 2;
  g_mp = rte_pktmbuf_pool_create("blast", kMbufs, 256, 0, RTE_MBUF_DEFAULT_BUF_SIZE,
                                 int(rte_socket_id()));
  if (!start_port(g_mp))
    return std::fprintf(stderr, "cw-dpdk-blaster: cannot set up port %u\n", kPort), 1;
  rte_eth_macaddr_get(kPort, &g_mac);
  const uint64_t hz = rte_get_tsc_hz();
  LinkWatch link;
  rte_mbuf* rx[kBurst];

  // 1. The server's MAC.
  rte_ether_addr peer{};
  bool resolved = false;
  const uint64_t give_up = rte_rdtsc() + uint64_t(kArpTimeoutS * hz);
  for (uint64_t next_ask = 0; !resolved && !g_stop && rte_rdtsc() < give_up;) {
    if (!link.up()) continue;
    if (rte_rdtsc() >= next_ask) {
      send_arp(RTE_ARP_OP_REQUEST, rte_ether_addr{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}, src.s_addr,
               dst.s_addr);
      next_ask = rte_rdtsc() + uint64_t(kArpRetryS * hz);
    }
    const uint16_t n = rte_eth_rx_burst(kPort, 0, rx, kBurst);
    for (uint16_t i = 0; i < n; ++i) resolved |= arp_frame(rx[i], src.s_addr, dst.s_addr, &peer);
    if (n) rte_pktmbuf_free_bulk(rx, n);
  }
  if (!resolved) {
    std::fprintf(stderr, "cw-dpdk-blaster: no ARP reply from %s\n", dst_s.substr(0, colon).c_str());
    stop_port();
    return 1;
  }

  // 2. The request frame, checksums included (every copy is identical).
  uint8_t frame[RTE_ETHER_HDR_LEN + 20 + 8 + 1400] = {};
  auto* e = reinterpret_cast<rte_ether_hdr*>(frame);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(e + 1);
  auto* udp = reinterpret_cast<rte_udp_hdr*>(ip + 1);
  auto* msg = reinterpret_cast<uint8_t*>(udp + 1);
  e->dst_addr = peer;
  e->src_addr = g_mac;
  e->ether_type = htons(RTE_ETHER_TYPE_IPV4);
  ip->version_ihl = RTE_IPV4_VHL_DEF;
  ip->total_length = htons(uint16_t(20 + 8 + size));
  ip->time_to_live = 64;
  ip->next_proto_id = IPPROTO_UDP;
  ip->src_addr = src.s_addr;
  ip->dst_addr = dst.s_addr;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  udp->src_port = htons(kSrcPort);
  udp->dst_port = htons(uint16_t(port));
  udp->dgram_len = htons(uint16_t(8 + size));
  msg[9] = kSockperfRequest;  // header: seq 0 (8 bytes), flags, total length (4 bytes)
  msg[12] = uint8_t(size >> 8);
  msg[13] = uint8_t(size);
  udp->dgram_cksum = rte_ipv4_udptcp_cksum(ip, udp);
  const uint16_t len = uint16_t(RTE_ETHER_HDR_LEN + 20 + 8 + size);

  // 3. Closed loop.
  uint64_t sent = 0, got = 0, got_at_start = 0, refills = 0;
  send_copies(frame, len, window, sent);
  const uint64_t t0 = rte_rdtsc(), start = t0 + uint64_t(warmup * hz),
                 end = start + uint64_t(duration * hz), refill_after = uint64_t(kRefillAfterS * hz);
  bool measuring = false;
  uint64_t last_rx = t0;
  while (!g_stop) {
    const uint64_t now = rte_rdtsc();
    if (!measuring && now >= start) {
      measuring = true;
      got_at_start = got;
    }
    if (now >= end) break;
    if (!link.up()) continue;
    const uint16_t n = rte_eth_rx_burst(kPort, 0, rx, kBurst);
    uint16_t replies = 0;
    for (uint16_t i = 0; i < n; ++i) {
      const auto* f = rte_pktmbuf_mtod(rx[i], const rte_ether_hdr*);
      const auto* rip = reinterpret_cast<const rte_ipv4_hdr*>(f + 1);
      if (rte_pktmbuf_data_len(rx[i]) >= sizeof *f + sizeof *rip &&
          f->ether_type == htons(RTE_ETHER_TYPE_IPV4) && rip->next_proto_id == IPPROTO_UDP &&
          rip->src_addr == dst.s_addr)
        ++replies;
      else
        arp_frame(rx[i], src.s_addr, dst.s_addr, &peer);
    }
    if (n) rte_pktmbuf_free_bulk(rx, n);
    if (replies) {
      got += replies;
      last_rx = now;
      send_copies(frame, len, replies, sent);
    } else if (now - last_rx > refill_after) {
      ++refills;
      last_rx = now;
      send_copies(frame, len, window, sent);
    }
  }
  std::printf("cw-dpdk-blaster: replies_per_s %.0f replies %llu sent %llu refills %llu\n",
              double(got - got_at_start) / duration, (unsigned long long)(got - got_at_start),
              (unsigned long long)sent, (unsigned long long)refills);
  std::fflush(stdout);  // the figure is out even if the port's teardown fails
  stop_port();
  return 0;
}
