// Why the user-space stack dropped a frame or datagram. Every drop on the DPDK datapath is
// counted under exactly one reason, per worker (DropCounters), so an operator can tell a bad
// checksum from an ARP miss from a full TX ring without a packet capture.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "dataplane/io.hh"

namespace cw::dp::net {

// clang-format off
#define CW_DROP_REASONS(X)                                                              \
  /* Ethernet */                                                                        \
  X(eth_too_short)        /* shorter than the 14-byte Ethernet header */                \
  X(eth_not_for_us)       /* destination MAC neither ours nor broadcast */              \
  X(eth_vlan)             /* 802.1Q/802.1ad tagged: no VLAN support */                  \
  X(eth_unknown_type)     /* not IPv4 or ARP (IPv6, LLDP, ...) */                       \
  /* ARP */                                                                             \
  X(arp_malformed)        /* short, or not Ethernet/IPv4 ARP */                         \
  X(arp_bad_op)           /* neither request nor reply */                               \
  X(arp_bad_sender)       /* sender MAC multicast/zero, or IP martian/ours */           \
  X(arp_not_for_us)       /* target IP is not one of our addresses */                   \
  X(arp_unsolicited_reply) /* reply we never asked for: never learned */                \
  X(arp_table_full)       /* no slot to learn or resolve into */                        \
  /* IPv4 (RFC 1812 section 5.2.2 checks, then host checks) */                          \
  X(ip_too_short)         /* fewer than 20 bytes */                                     \
  X(ip_bad_version)       /* version != 4 */                                            \
  X(ip_bad_ihl)           /* IHL < 5 or IHL*4 beyond the frame */                       \
  X(ip_bad_total_length)  /* total length < IHL*4 or beyond the frame */                \
  X(ip_bad_checksum)      /* header checksum wrong (software or NIC) */                 \
  X(ip_bad_src)           /* martian source: 0/8, 127/8, multicast, broadcast, ours */  \
  X(ip_not_for_us)        /* destination is not one of our addresses */                 \
  X(ip_broadcast)         /* broadcast or multicast destination: not served */          \
  X(ip_bad_fragment)      /* fragment with bad length/offset */                         \
  X(ip_frag_dropped)      /* reassembly gave up (timeout, table full, overlap) */       \
  X(ip_reasm_too_large)   /* reassembled datagram above max_datagram */                 \
  X(ip_unknown_proto)     /* not ICMP/UDP/TCP */                                        \
  X(tcp_unsupported)      /* TCP segment on a worker without TCP (all but worker 0) */  \
  /* TCP (tcp.hh; RFC 9293 3.10.7, RFC 5961, RFC 7323) */                              \
  X(tcp_too_short)        /* fewer than 20 bytes */                                     \
  X(tcp_bad_offset)       /* data offset < 5 or beyond the segment */                   \
  X(tcp_bad_checksum)     /* checksum wrong (software or NIC) */                        \
  X(tcp_bad_options)      /* malformed option list (length 0/1 or past the header) */   \
  X(tcp_bad_flags)        /* SYN+FIN, SYN+RST, no SYN/ACK/RST, or ports 0 */            \
  X(tcp_no_listener)      /* no connection and no listener: answered with RST */        \
  X(tcp_conn_closed)      /* for a closed connection the app still holds (RST -> none) */ \
  X(tcp_listen_bad)       /* non-SYN (RST/ACK/bare) to a listener (ACK -> RST) */       \
  X(tcp_table_full)       /* SYN or connect with no free connection slot */             \
  X(tcp_bad_ack)          /* SYN-SENT/SYN-RCVD: ACK outside what we sent (-> RST) */    \
  X(tcp_paws)             /* timestamp older than TS.Recent (RFC 7323 5) */             \
  X(tcp_out_of_window)    /* sequence outside the receive window (-> ACK) */            \
  X(tcp_rst_out_of_window) /* RST outside the window: ignored */                        \
  X(tcp_rst_challenged)   /* RST in window but not at RCV.NXT: challenge ACK */         \
  X(tcp_syn_challenged)   /* SYN on a synchronized connection: challenge ACK */         \
  X(tcp_no_ack)           /* segment without ACK on a synchronized connection */        \
  X(tcp_ack_unsent)       /* ACK of data never sent (-> ACK) */                         \
  X(tcp_ack_too_old)      /* ACK below SND.UNA - MAX.SND.WND: challenge ACK */          \
  X(tcp_ooo_full)         /* out-of-order segment with no range slot left */            \
  X(tcp_data_after_close) /* data after our close() or after the peer's FIN (-> RST) */ \
  /* ICMP */                                                                            \
  X(icmp_too_short)       /* fewer than 8 bytes */                                      \
  X(icmp_bad_checksum)    /* checksum wrong */                                          \
  X(icmp_unhandled)       /* anything but an unfragmented echo request */               \
  /* UDP */                                                                             \
  X(udp_too_short)        /* IP payload shorter than the 8-byte UDP header */           \
  X(udp_bad_length)       /* UDP length < 8 or beyond the IP payload */                 \
  X(udp_bad_checksum)     /* checksum wrong (software or NIC) */                        \
  X(udp_no_socket)        /* no socket on the destination port */                       \
  X(udp_too_large)        /* payload above max_datagram */                              \
  /* Receive path resources */                                                          \
  X(rx_no_slot)           /* burst held more datagrams than poll() could return */      \
  /* Transmit path */                                                                   \
  X(tx_no_route)          /* destination not on a local subnet and no gateway */        \
  X(tx_too_large)         /* datagram above max_datagram */                             \
  X(tx_no_mbuf)           /* mempool empty */                                           \
  X(tx_arp_queue_full)    /* next hop unresolved and its wait queue is full */          \
  X(tx_arp_failed)        /* next hop did not answer ARP */                             \
  X(tx_ring_full)         /* NIC TX ring did not take the packet */                     \
  X(tx_link_down)         /* port down: packet not sent */                              \
  X(port_burst_faulted)   /* port went down inside an rx/tx burst (memif peer left): */ \
                          /* the burst's frames are lost (port_guard.hh)             */
// clang-format on

enum class DropReason : uint8_t {
#define CW_X(name) name,
  CW_DROP_REASONS(CW_X)
#undef CW_X
      count
};
inline constexpr size_t kDropReasonCount = size_t(DropReason::count);

inline const char* drop_reason_name(DropReason r) {
  static constexpr const char* kNames[] = {
#define CW_X(name) #name,
      CW_DROP_REASONS(CW_X)
#undef CW_X
  };
  return size_t(r) < kDropReasonCount ? kNames[size_t(r)] : "unknown";
}

// Per-worker drop counters, indexed by reason. Single writer (the worker); any thread may
// read (relaxed, see Counter).
struct alignas(64) DropCounters {
  std::array<Counter, kDropReasonCount> by_reason;
  void add(DropReason r, uint64_t n = 1) { by_reason[size_t(r)].add(n); }
  uint64_t get(DropReason r) const { return by_reason[size_t(r)].get(); }
  uint64_t total() const {
    uint64_t t = 0;
    for (const auto& c : by_reason) t += c.get();
    return t;
  }
};

}  // namespace cw::dp::net
