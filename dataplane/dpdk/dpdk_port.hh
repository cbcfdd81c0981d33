// Internal to the DPDK backend: state shared by DpdkBackend and its workers. Everything
// here is written at setup (main thread) and read-only afterwards, except the per-worker
// objects (each touched by its own worker) and `link_up` (LSC callback + workers).
#pragma once

#include <rte_ethdev.h>
#include <rte_ip_frag.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <iterator>
#include <memory>
#include <vector>

#include "dataplane/dpdk/dpdk_io.hh"
#include "dataplane/dpdk/net/arp.hh"

namespace cw::dp {

inline constexpr uint16_t kNoSocket = 0xFFFF;
inline constexpr uint32_t kNoHeld = 0xFFFFFFFF;  // RxItem::token of a reassembled datagram

// An ARP packet one worker received, copied to the others so each can learn replies to its
// own requests (ARP is not IP: RSS puts it on one queue). 20 bytes of payload + padding.
struct ArpCopyElem {
  net::ArpPacket arp;
  net::Mac eth_src;
  uint16_t pad;
};
static_assert(sizeof(ArpCopyElem) % 4 == 0);
inline constexpr uint32_t kArpCopyRing = 256;  // per worker; a full ring drops copies

// The TCP engine's counters (net::TcpStats is owner-only) as worker 0's housekeep() last
// copied them, readable from any thread; DpdkBackend::counters_by_name reports them as
// "tcp.<name>". conns_live is a gauge: the engine's slots in use (TIME-WAIT included).
inline constexpr const char* kTcpCounterNames[] = {
    "conns_live",       "segs_in",          "segs_out",          "retransmits",
    "rto_expiries",     "fast_retransmits", "conns_accepted",    "conns_connected",
    "conns_reset",      "conns_timed_out",  "syn_cookies_sent",  "challenge_acks",
    "sack_retransmits", "lost_retransmits", "sack_blocks_bogus", "tlp_probes"};
inline constexpr size_t kTcpCounterCount = std::size(kTcpCounterNames);
struct TcpPublished {
  Counter v[kTcpCounterCount];
};

// A worker's core time on loop iterations that had input (ns = cycles * 1e9 / tsc_hz): from
// the poll that received a burst (or handed out TCP items) to the next poll, so the service
// handlers, the TCP engine and the flush are in it and idle polls are not. Written by the
// worker, read by DpdkBackend::counters_by_name as "cpu.busy_ns".
struct alignas(64) WorkerCpu {
  Counter busy_cycles;
};

struct DpdkShared {
  ~DpdkShared();  // stops and closes the port, frees pools and tables (dpdk_setup.cc)

  IoConfig io;
  DpdkConfig cfg;
  uint16_t port = 0;
  bool port_started = false;
  bool hotplugged = false;       // we probed the vdev, so we remove it
  rte_device* device = nullptr;  // for rte_dev_remove
  bool lsc_registered = false;
  net::Interface ifc;
  net::ArpPolicy arp_policy;
  bool rx_csum_offload = false;  // NIC verifies IPv4/UDP checksums (mbuf flags)
  bool tx_csum_offload = false;  // NIC fills IPv4/UDP checksums
  uint32_t small_max = 0;        // largest payload sent unfragmented: mtu - 28
  uint64_t tsc_hz = 0;
  std::atomic<bool> link_up{false};

  std::vector<SocketSpec> specs;
  std::vector<Endpoint> bound;
  std::vector<uint16_t> by_port;  // 65536 entries: UDP dst port (host order) -> SocketId

  // Per worker, indexed by worker id.
  std::vector<rte_mempool*> pools;
  std::vector<rte_ip_frag_tbl*> frag_tables;
  std::vector<std::unique_ptr<rte_ip_frag_death_row>> death_rows;
  std::vector<rte_ring*> arp_rings;  // empty with one worker
  std::unique_ptr<net::DropCounters[]> drops;
  std::unique_ptr<TcpPublished[]> tcp;  // written by the worker's engine, if any
  std::unique_ptr<WorkerCpu[]> cpu;
};

}  // namespace cw::dp
