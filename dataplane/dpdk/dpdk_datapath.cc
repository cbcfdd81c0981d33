// DPDK backend datapath: everything a worker runs after setup. No allocation (except TCP
// output queued beyond a send ring: chunks from a pool that mallocs only while it warms up,
// as on the kernel backends), no locks, no syscalls except the optional idle pause; every
// drop is counted by reason.
#include <rte_cycles.h>
#include <rte_lcore.h>
#include <time.h>

#include <bit>
#include <cassert>

#include "dataplane/clock.hh"
#include "dataplane/dpdk/dpdk_port.hh"
#include "dataplane/dpdk/net/frame.hh"
#include "dataplane/dpdk/port_guard.hh"

namespace cw::dp {

using net::DropReason;

static_assert(offsetof(rte_mbuf, ol_flags) == kMbufOlFlags && sizeof(rte_mbuf::ol_flags) == 8);
static_assert(offsetof(rte_mbuf, packet_type) == kMbufPacketType &&
              sizeof(rte_mbuf::packet_type) == 4);
static_assert(offsetof(rte_mbuf, pkt_len) == kMbufPktLen && sizeof(rte_mbuf::pkt_len) == 4);
static_assert(offsetof(rte_mbuf, data_len) == kMbufDataLen && sizeof(rte_mbuf::data_len) == 2);
static_assert(offsetof(rte_mbuf, tx_offload) == kMbufTxOffload &&
              sizeof(rte_mbuf::tx_offload) == 8);
static_assert(std::endian::native == std::endian::little);  // packet_type + pkt_len store

namespace {

net::CsumState csum_state(uint64_t flags, uint64_t mask, uint64_t good, uint64_t bad) {
  const uint64_t f = flags & mask;
  if (f == good || f == mask) return net::CsumState::good;  // mask == "NONE": data verified
  if (f == bad) return net::CsumState::bad;
  return net::CsumState::unknown;
}

}  // namespace

DpdkWorker::DpdkWorker(std::shared_ptr<DpdkShared> shared, unsigned id)
    : sh_(std::move(shared)),
      drops_(&sh_->drops[id]),
      busy_cycles_(&sh_->cpu[id].busy_cycles),
      id_(id),
      port_(sh_->port),
      queue_(uint16_t(id)),
      small_max_(sh_->small_max),
      tx_offload_(sh_->tx_csum_offload),
      rx_offload_(sh_->rx_csum_offload),
      max_datagram_(sh_->io.max_datagram),
      by_port_(sh_->by_port.data()),
      bound_(sh_->bound.data()),
      ifc_(sh_->ifc),
      arp_(sh_->cfg.arp_entries),
      big_(new uint8_t[net::kUdpHdrLen + net::kMaxUdpPayload]),
      arena_(new uint8_t[kDpdkReasmArena]) {
  waiting_.reserve(sh_->cfg.arp_queue);
  if (tx_offload_) {
    tx_flags_ = RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM | RTE_MBUF_F_TX_UDP_CKSUM;
    rte_mbuf m{};
    m.l2_len = net::kEthHdrLen;
    m.l3_len = net::kIpv4MinHdrLen;
    tx_offload_word_ = m.tx_offload;
  }
  ip_id_ = uint16_t(id * 7919);  // workers start apart; ids only need to differ per flow
  link_up_ = sh_->link_up.load(std::memory_order_relaxed);
  now_ns_ = int64_t(now_ns());
  // TCP: worker 0 serves every TCP socket (docs/dpdk.md, "TCP on the datapath").
  bool tcp = false;
  for (const SocketSpec& sp : sh_->specs) tcp = tcp || sp.transport == Transport::tcp;
  if (id == 0 && tcp) {
    net::TcpConfig tc;
    tc.max_conns = std::min<uint32_t>(sh_->io.max_conns, kDpdkTcpConns);
    tc.snd_buf = tc.rcv_buf = kDpdkTcpBuf;
    tc.mss = uint16_t(sh_->ifc.mtu - net::kIpv4MinHdrLen - net::kTcpHdrLen);
    tc.batch_output = true;  // flush() runs once per loop iteration
    tcp_ = std::make_unique<net::TcpEngine>(tc, drops_, &DpdkWorker::tcp_emit, this);
    tcp_conns_.resize(tc.max_conns);
    tcp_watch_.reserve(tc.max_conns);
    tcp_closed_.reserve(tc.max_conns);
    tcp_res_.reset(new uint8_t[kDpdkTcpReserve]);
    tcp_listen_.assign(65536, kNoSocket);
    out_pool_.set_limit(sh_->io.worker_out_limit);
    for (size_t s = 0; s < sh_->specs.size(); ++s) {
      const Endpoint& b = sh_->bound[s];
      if (sh_->specs[s].transport == Transport::tcp && sh_->specs[s].server &&
          tcp_->listen(b.addr_be, b.port_be))
        tcp_listen_[ntohs(b.port_be)] = uint16_t(s);
    }
    // Ephemeral ports for connect() start at a random point of 49152..65535 (RFC 6056).
    tcp_next_port_ = uint16_t(49152 + (uint64_t(now_ns_) * 0x9E3779B97F4A7C15ull >> 50));
  }
}

DpdkWorker::~DpdkWorker() {
  free_held();
  if (stash_n_) rte_pktmbuf_free_bulk(stash_, stash_n_);
  if (res_m_) rte_pktmbuf_free(res_m_);
  for (uint32_t i = 0; i < tx_n_; ++i) rte_pktmbuf_free(tx_[i]);
  for (auto& w : waiting_) rte_pktmbuf_free(w.m);
  for (TcpConnState& st : tcp_conns_) st.out.clear(out_pool_);
}

const net::DropCounters& DpdkWorker::drops() const {
  return *drops_;
}

void DpdkWorker::free_held() {
  // Echo-like services reply in place and leave nothing to free.
  if (held_n_ > held_taken_) rte_pktmbuf_free_bulk(held_, held_n_);  // skips the nullptrs
  held_n_ = 0;
  held_taken_ = 0;
}

// ---- receive ------------------------------------------------------------------------------

uint32_t DpdkWorker::poll(RxItem* out, uint32_t n, int64_t timeout_ns) {
  counters_.polls.add();
  // 1. The previous poll's items are dead now: return their buffers.
  free_held();
  arena_used_ = 0;
  if (tcp_) now_ns_ = int64_t(now_ns());  // TCP timers need ms, not kDpdkHousekeepNs
  // 2. Timers (link, ARP, reassembly) every kDpdkHousekeepNs, not per packet. The same TSC
  //    read ends the busy interval of a previous poll that had input (WorkerCpu).
  const uint64_t tsc = rte_rdtsc();
  if (busy_from_tsc_) busy_cycles_->add(tsc - busy_from_tsc_);
  busy_from_tsc_ = 0;
  if (tsc >= next_housekeep_tsc_) {
    now_ns_ = int64_t(now_ns());
    next_housekeep_tsc_ = tsc + sh_->tsc_hz / (1'000'000'000 / kDpdkHousekeepNs);
    housekeep();
  }
  if (!sh_->arp_rings.empty()) drain_arp_copies();
  // 3. Receive a burst; a port whose link is down is not polled (memif crashes when polled
  //    after its peer left).
  uint32_t got = 0;
  if (link_up_ && sh_->link_up.load(std::memory_order_relaxed)) {
    rte_mbuf* rx[kDpdkRxBurst];
    int nb = guarded_rx_burst(port_, queue_, rx, uint16_t(std::min(n, kDpdkRxBurst)));
    if (nb == kBurstFaulted) {
      port_faulted();
      nb = 0;
    }
    for (int k = 0; k < nb; ++k) {
      if (k + 1 < nb) rte_prefetch0(rte_pktmbuf_mtod(rx[k + 1], void*));
      rx_frame(rx[k], out, n, got);
    }
    // 4. Reassembly gave up on some fragments: free and count them.
    rte_ip_frag_death_row* dr = sh_->death_rows[id_].get();
    if (dr->cnt) {
      drops_->add(DropReason::ip_frag_dropped, dr->cnt);
      rte_ip_frag_free_death_row(dr, 0);
    }
    // Every item is a datagram: count them once per burst rather than one store per item.
    if (got) {
      uint64_t bytes = 0;
      for (uint32_t i = 0; i < got; ++i) bytes += out[i].len;
      counters_.rx_datagrams.add(got);
      counters_.rx_bytes.add(bytes);
    }
    if (tcp_) tcp_poll(out, n, got);
    // ARP/ICMP answers go out with the next flush; send them now if nothing else will.
    if (tx_n_ && got == 0) flush();
    if (nb || got) busy_from_tsc_ = tsc;
    if (nb) return got;
  }
  // 5. Idle. DPDK has no blocking receive here: busy-poll callers pass 0 and spin; others
  //    get a short pause so an idle worker leaves its core to the rest of the machine.
  if (got == 0 && timeout_ns > 0 && !woken_.exchange(false, std::memory_order_relaxed)) {
    timespec ts{0, long(std::min(timeout_ns, kDpdkIdlePauseNs))};
    nanosleep(&ts, nullptr);
    counters_.wakeups.add();
  }
  return got;
}

// Scatter is off, so a frame is one segment; the parsers bound themselves by data_len.
[[gnu::always_inline]] inline void DpdkWorker::rx_frame(rte_mbuf* m, RxItem* out, uint32_t n,
                                                        uint32_t& got) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  net::RxOffload off;
  if (rx_offload_) {
    off.ip = csum_state(m->ol_flags, RTE_MBUF_F_RX_IP_CKSUM_MASK, RTE_MBUF_F_RX_IP_CKSUM_GOOD,
                        RTE_MBUF_F_RX_IP_CKSUM_BAD);
    off.l4 = csum_state(m->ol_flags, RTE_MBUF_F_RX_L4_CKSUM_MASK, RTE_MBUF_F_RX_L4_CKSUM_GOOD,
                        RTE_MBUF_F_RX_L4_CKSUM_BAD);
  }
  // The common frame, parsed inline; everything else (and every drop reason) out of line.
  net::UdpDatagram d;
  if (!net::parse_udp_frame_fast(f, rte_pktmbuf_data_len(m), ifc_, off, d))
    return rx_other(m, off, out, n, got);
  if (deliver_udp(f, d, held_n_, out, n, got))
    hold(m, f);
  else
    rte_pktmbuf_free(m);
}

// The item just delivered points into m until the next poll; held_ slot held_n_ is its
// token. What a reply in place needs of m is noted here, while m's header is in cache.
[[gnu::always_inline]] inline void DpdkWorker::hold(rte_mbuf* m, uint8_t* f) {
  const uint32_t i = held_n_++;
  held_[i] = m;
  held_frame_[i] = f;
  held_len_[i] = rte_pktmbuf_data_len(m);
  // A UDP frame has at least the 42 header bytes, and the buffer holds the frame.
  const uint32_t room = uint32_t(m->buf_len - m->data_off) - net::kUdpFrameHdrLen;
  held_room_[i] = uint16_t(std::min(room, small_max_));
}

void DpdkWorker::rx_other(rte_mbuf* m, net::RxOffload off, RxItem* out, uint32_t n, uint32_t& got) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  const net::Parsed p = net::parse_frame(f, rte_pktmbuf_data_len(m), sh_->ifc, off);
  switch (p.kind) {
    case net::FrameKind::udp:
      if (deliver_udp(f, net::udp_of(p), held_n_, out, n, got)) {  // held at held_n_ below
        hold(m, f);
        return;
      }
      break;
    case net::FrameKind::icmp_echo: {
      const uint32_t len = net::make_echo_reply(f, p);
      m->data_len = uint16_t(len);
      m->pkt_len = len;
      m->ol_flags = 0;
      queue_tx(m);
      return;
    }
    case net::FrameKind::arp:
      arp_received(p.arp, p.src_mac, true);
      break;
    case net::FrameKind::ipv4_fragment:
      rx_fragment(m, p.l3_off, out, n, got);
      return;
    case net::FrameKind::drop:
      if (p.drop == DropReason::tcp_unsupported && tcp_)
        tcp_segment(f, p, off);
      else
        drops_->add(p.drop);
      break;
  }
  rte_pktmbuf_free(m);
}

// UDP datagram p whose bytes start at base -> one RxItem.
[[gnu::always_inline]] inline bool DpdkWorker::deliver_udp(const uint8_t* base,
                                                           const net::UdpDatagram& p,
                                                           uint32_t token, RxItem* out, uint32_t n,
                                                           uint32_t& got) {
  const uint16_t s = by_port_[ntohs(p.dport_be)];
  if (s == kNoSocket || (bound_[s].addr_be != 0 && bound_[s].addr_be != p.dst_be)) {
    drops_->add(DropReason::udp_no_socket);
    return false;
  }
  if (p.payload_len > max_datagram_) {
    drops_->add(DropReason::udp_too_large);
    counters_.rx_truncated.add();
    return false;
  }
  if (got >= n) {  // cannot happen for single frames (burst <= n); reassembly may add more
    drops_->add(DropReason::rx_no_slot);
    return false;
  }
  RxItem& it = out[got++];
  it.kind = RxKind::datagram;
  it.reason = CloseReason::none;
  it.sock = s;
  it.conn = kNoConn;
  it.peer = Endpoint{p.src_be, p.sport_be};
  it.len = p.payload_len;
  it.data = base + p.payload_off;
  it.token = token;
  return true;  // counted per burst, in poll()
}

void DpdkWorker::rx_fragment(rte_mbuf* m, uint16_t l3_off, RxItem* out, uint32_t n, uint32_t& got) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3_off);
  m->l2_len = l3_off;
  m->l3_len = uint16_t((ip->version_ihl & 0xF) * 4);
  rte_ip_frag_death_row* dr = sh_->death_rows[id_].get();
  // Each call may condemn one datagram's fragments; keep room for them.
  if (dr->cnt > RTE_IP_FRAG_DEATH_ROW_MBUF_LEN - (RTE_LIBRTE_IP_FRAG_MAX_FRAG + 1)) {
    drops_->add(DropReason::ip_frag_dropped, dr->cnt);
    rte_ip_frag_free_death_row(dr, 0);
  }
  rte_mbuf* whole = rte_ipv4_frag_reassemble_packet(sh_->frag_tables[id_], dr, m, rte_rdtsc(), ip);
  if (!whole) return;  // kept for later fragments, or on the death row
  // The datagram is a chain of fragments; RxItem data must be contiguous, so copy it into
  // this poll's arena (valid until the next poll, like rx mbufs).
  const uint32_t len = whole->pkt_len - whole->l2_len;
  if (len > sh_->io.max_datagram + net::kIpv4MinHdrLen + 40 + net::kUdpHdrLen) {
    drops_->add(DropReason::ip_reasm_too_large);
  } else if (arena_used_ + len > kDpdkReasmArena) {
    drops_->add(DropReason::rx_no_slot);
  } else {
    uint8_t* dst = arena_.get() + arena_used_;
    const void* src = rte_pktmbuf_read(whole, whole->l2_len, len, dst);
    if (src != dst) std::memcpy(dst, src, len);
    // Reassembly rewrote the IPv4 header without a checksum; every fragment was checked.
    const net::Parsed p = net::parse_ipv4_datagram(dst, len, sh_->ifc, {net::CsumState::good, {}});
    if (p.kind == net::FrameKind::udp) {
      if (deliver_udp(dst, net::udp_of(p), kNoHeld, out, n, got)) arena_used_ += len;
    } else if (p.kind == net::FrameKind::drop) {
      drops_->add(p.drop);
    } else {
      drops_->add(DropReason::icmp_unhandled);  // fragmented echo requests are not answered
    }
  }
  rte_pktmbuf_free(whole);
}

// ---- ARP --------------------------------------------------------------------------------

void DpdkWorker::arp_received(const net::ArpPacket& a, const net::Mac& eth_src, bool from_wire) {
  const net::ArpDecision d = net::arp_input(a, eth_src, sh_->ifc, arp_, sh_->arp_policy, now_ns_);
  // Copies from other workers were counted (and answered) by the worker that received them.
  // With several workers a reply this worker did not ask for may be another worker's, so it
  // is forwarded below, not counted as unsolicited (see docs/dpdk.md).
  const bool maybe_others = d.drop == DropReason::arp_unsolicited_reply && !sh_->arp_rings.empty();
  if (from_wire && d.drop != DropReason::count && !maybe_others) drops_->add(d.drop);
  if (from_wire && d.reply) send_arp(net::kArpReply, a.sha, a.tpa_be, a.sha, a.spa_be);
  const bool learned =
      d.drop == DropReason::count &&
      (a.op == net::kArpReply || (sh_->arp_policy.learn_from_requests && a.spa_be != 0));
  if (learned && !waiting_.empty()) release_waiting(a.spa_be, &a.sha);
  // Other workers may be waiting for this neighbour: give each a copy of what concerns us
  // (not of requests for other hosts, which every host on the LAN sees).
  const bool useful = d.drop == DropReason::count || d.drop == DropReason::arp_table_full ||
                      d.drop == DropReason::arp_unsolicited_reply;
  if (from_wire && useful && !sh_->arp_rings.empty()) {
    ArpCopyElem e{a, eth_src, 0};
    for (unsigned w = 0; w < sh_->arp_rings.size(); ++w)
      if (w != id_) rte_ring_mp_enqueue_elem(sh_->arp_rings[w], &e, sizeof e);
  }
}

void DpdkWorker::drain_arp_copies() {
  ArpCopyElem e[16];
  const unsigned k =
      rte_ring_sc_dequeue_burst_elem(sh_->arp_rings[id_], e, sizeof e[0], 16, nullptr);
  for (unsigned i = 0; i < k; ++i) arp_received(e[i].arp, e[i].eth_src, false);
}

void DpdkWorker::send_arp(uint16_t op, const net::Mac& eth_dst, uint32_t spa_be,
                          const net::Mac& tha, uint32_t tpa_be) {
  rte_mbuf* m = rte_pktmbuf_alloc(sh_->pools[id_]);
  if (!m) {
    drops_->add(DropReason::tx_no_mbuf);
    return;
  }
  uint8_t* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, net::kEthMinFrame));
  net::build_arp(f, op, eth_dst, sh_->ifc.mac, spa_be, tha, tpa_be);
  queue_tx(m);
}

void DpdkWorker::release_waiting(uint32_t ip_be, const net::Mac* mac) {
  size_t keep = 0;
  for (size_t i = 0; i < waiting_.size(); ++i) {
    Waiting w = waiting_[i];
    if (w.next_hop_be != ip_be) {
      waiting_[keep++] = w;
    } else if (mac) {
      net::store_mac(rte_pktmbuf_mtod(w.m, uint8_t*), *mac);
      queue_tx(w.m);
    } else {
      drops_->add(DropReason::tx_arp_failed);
      rte_pktmbuf_free(w.m);
    }
  }
  waiting_.resize(keep);  // shrinks only: no allocation
}

// The frame m (Ethernet header written, dst MAC unset) goes to dst_be: find the next hop's
// MAC, or hold the frame (bounded) until ARP answers.
int64_t DpdkWorker::route_frame(rte_mbuf* m, uint32_t dst_be, net::Mac* mac) {
  uint8_t* f = rte_pktmbuf_mtod(m, uint8_t*);
  if (sh_->ifc.is_broadcast(dst_be)) {
    net::store_mac(f, net::kBroadcastMac);
    queue_tx(m);
    return 0;
  }
  // No route: off-link without a gateway, or a destination no frame can reach (ourselves,
  // 0.0.0.0, multicast: none is resolvable by ARP).
  const uint32_t nh = sh_->ifc.next_hop(dst_be);
  if (nh == 0 || dst_be == 0 || sh_->ifc.is_local(dst_be) || net::is_multicast_ip(dst_be)) {
    drops_->add(DropReason::tx_no_route);
    rte_pktmbuf_free(m);
    return 0;
  }
  const net::ArpLookupResult r = arp_.lookup(nh, now_ns_);
  switch (r.status) {
    case net::ArpLookup::hit_refresh:
      send_arp(net::kArpRequest, net::kBroadcastMac, sh_->ifc.source_for(nh), net::kZeroMac, nh);
      net::store_mac(f, r.mac);
      queue_tx(m);
      return 0;
    case net::ArpLookup::hit:
      net::store_mac(f, r.mac);
      queue_tx(m);
      *mac = r.mac;
      return r.fresh_until_ns;
    case net::ArpLookup::miss_request:
      send_arp(net::kArpRequest, net::kBroadcastMac, sh_->ifc.source_for(nh), net::kZeroMac, nh);
      [[fallthrough]];
    case net::ArpLookup::miss_pending:
      if (waiting_.size() < waiting_.capacity()) {
        waiting_.push_back({m, nh});  // within reserved capacity: no allocation
        return 0;
      }
      drops_->add(DropReason::tx_arp_queue_full);
      break;
    case net::ArpLookup::failed:
      drops_->add(DropReason::tx_arp_failed);
      break;
    case net::ArpLookup::table_full:
      drops_->add(DropReason::arp_table_full);
      break;
  }
  rte_pktmbuf_free(m);
  return 0;
}

// ---- transmit -----------------------------------------------------------------------------

uint8_t* DpdkWorker::dgram_reserve(SocketId s, Endpoint to, uint32_t n) {
  assert(!res_open_ && "one reservation at a time");
  if (n > sh_->io.max_datagram || n > net::kMaxUdpPayload) {
    drops_->add(DropReason::tx_too_large);
    counters_.tx_no_buffer.add();
    return nullptr;
  }
  if (n <= sh_->small_max) {
    rte_mbuf* m = alloc_tx_mbuf();
    if (!m) {
      drops_->add(DropReason::tx_no_mbuf);
      counters_.tx_no_buffer.add();
      return nullptr;
    }
    return open_in(m, s, to, n);
  }
  // Above the MTU: staged in big_ and copied into fragments at commit.
  res_sock_ = s;
  res_to_ = to;
  res_cap_ = n;
  res_open_ = true;
  res_large_ = true;
  res_edit_len_ = kNoEdit;
  return big_.get() + net::kUdpHdrLen;
}

// Opens the reservation of a datagram of at most n bytes (one frame) in mbuf m: the
// payload goes straight into the frame, after room for the 42 header bytes.
[[gnu::always_inline]] inline uint8_t* DpdkWorker::open_in(rte_mbuf* m, SocketId s, Endpoint to,
                                                           uint32_t n) {
  res_m_ = m;
  res_f_ = rte_pktmbuf_mtod(m, uint8_t*);
  res_edit_len_ = kNoEdit;
  res_sock_ = s;
  res_to_ = to;
  res_cap_ = n;
  res_open_ = true;
  res_large_ = false;
  return res_f_ + net::kUdpFrameHdrLen;
}

// The headers of the datagram reserved on res_sock_ to res_to_ (takes the next IP id).
net::UdpHeaderSpec DpdkWorker::reserved_udp_spec() {
  const Endpoint& b = sh_->bound[res_sock_];
  net::UdpHeaderSpec h;
  h.src_mac = sh_->ifc.mac;
  h.src_be = b.addr_be ? b.addr_be : sh_->ifc.source_for(res_to_.addr_be);
  h.dst_be = res_to_.addr_be;
  h.sport_be = b.port_be;
  h.dport_be = res_to_.port_be;
  h.ip_id = ip_id_++;
  return h;
}

// A fresh single-segment mbuf from the stash, refilled from the pool kDpdkTxStash at a time
// (one pool access per stash instead of per datagram).
rte_mbuf* DpdkWorker::alloc_tx_mbuf() {
  if (stash_n_ == 0) {
    if (rte_pktmbuf_alloc_bulk(sh_->pools[id_], stash_, kDpdkTxStash) == 0)
      stash_n_ = kDpdkTxStash;
    else
      return rte_pktmbuf_alloc(sh_->pools[id_]);  // pool nearly empty: what is left
  }
  return stash_[--stash_n_];
}

// dgram_commit (dpdk_io.hh) of a datagram whose flow is not cached or no longer fresh: the
// full header write, then the next hop's MAC from the ARP table (or a wait for ARP).
void DpdkWorker::commit_routed(uint32_t len) {
  rte_mbuf* m = res_m_;
  res_m_ = nullptr;
  mark_udp_tx(m, net::kUdpFrameHdrLen + len);
  counters_.tx_datagrams.add();
  counters_.tx_bytes.add(len);
  const net::UdpHeaderSpec h = reserved_udp_spec();
  const net::TxCsum csum = tx_offload_ ? net::TxCsum::offload : net::TxCsum::software;
  net::write_udp_frame(res_f_, h, len, csum);
  net::UdpHeaderSpec resolved = h;
  const int64_t until = route_frame(m, h.dst_be, &resolved.dst_mac);
  if (until == 0) return;
  TxFlow& c = tx_flow(res_sock_, h.dst_be);
  c.sock = res_sock_;
  c.dst_be = h.dst_be;
  c.arp_gen = arp_.generation();
  c.fresh_until_ns = until;
  c.tpl = net::make_udp_template(resolved, csum);
}

// RFC 791 fragmentation by copy from big_: each fragment is a fresh single-segment mbuf
// (one copy of the payload, the same as the unfragmented path).
void DpdkWorker::commit_fragmented(uint32_t len) {
  const net::UdpHeaderSpec h = reserved_udp_spec();
  net::write_udp_header(big_.get(), h, big_.get() + net::kUdpHdrLen, len);
  const uint32_t l4 = len + net::kUdpHdrLen;
  const uint32_t step = net::frag_payload(sh_->ifc.mtu);
  const uint32_t nfrag = (l4 + step - 1) / step;
  // At MTU 1500 a 64 KiB datagram needs 45 fragments; only small MTUs exceed the bound.
  rte_mbuf* frags[kDpdkMaxTxFragments];
  if (nfrag > kDpdkMaxTxFragments) {
    drops_->add(DropReason::tx_too_large);
    return;
  }
  if (rte_pktmbuf_alloc_bulk(sh_->pools[id_], frags, nfrag) != 0) {
    drops_->add(DropReason::tx_no_mbuf);
    counters_.tx_no_buffer.add();
    return;
  }
  for (uint32_t k = 0; k < nfrag; ++k) {
    const uint32_t off = k * step;
    const uint32_t flen = std::min(step, l4 - off);
    const uint32_t hdr = net::kEthHdrLen + net::kIpv4MinHdrLen;
    uint8_t* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(frags[k], uint16_t(hdr + flen)));
    net::write_fragment_headers(f, h, off, flen, k + 1 < nfrag);
    std::memcpy(f + hdr, big_.get() + off, flen);
    net::Mac mac;
    route_frame(frags[k], h.dst_be, &mac);
  }
  counters_.tx_datagrams.add();
  counters_.tx_bytes.add(len);
}

void DpdkWorker::flush() {
  if (tcp_) tcp_->flush(now_ns_);  // segments for what the services wrote in this burst
  transmit();
}

void DpdkWorker::transmit() {
  if (tx_n_ == 0) return;
  if (tx_pending_datagrams_) {  // queue_udp's frames
    counters_.tx_datagrams.add(tx_pending_datagrams_);
    counters_.tx_bytes.add(tx_pending_bytes_);
    tx_pending_datagrams_ = tx_pending_bytes_ = 0;
  }
  uint32_t sent = 0;
  if (link_up_ && sh_->link_up.load(std::memory_order_relaxed)) {
    const int r = guarded_tx_burst(port_, queue_, tx_, uint16_t(tx_n_));
    if (r == kBurstFaulted) {  // the driver may have taken some: none can be freed safely
      drops_->add(DropReason::tx_link_down, tx_n_);
      tx_n_ = 0;
      return port_faulted();
    }
    sent = uint32_t(r);
    if (sent < tx_n_) {
      drops_->add(DropReason::tx_ring_full, tx_n_ - sent);
      counters_.tx_errors.add(tx_n_ - sent);
    }
  } else {
    drops_->add(DropReason::tx_link_down, tx_n_);
  }
  if (sent < tx_n_) rte_pktmbuf_free_bulk(tx_ + sent, tx_n_ - sent);
  tx_n_ = 0;
}

// The port went down inside a burst (port_guard.hh): stop touching it until housekeep()
// reads its link up again (the next peer connected).
void DpdkWorker::port_faulted() {
  drops_->add(DropReason::port_burst_faulted);
  link_up_ = false;
  sh_->link_up.store(false, std::memory_order_relaxed);
}

// ---- timers -----------------------------------------------------------------------------

void DpdkWorker::housekeep() {
  // Link: polled here as well as by the LSC interrupt (drivers without one).
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port_, &link) == 0) {
    const bool was_up = link_up_;
    link_up_ = link.link_status == RTE_ETH_LINK_UP;
    if (id_ == 0) sh_->link_up.store(link_up_, std::memory_order_relaxed);
    // ARP requests sent while the link was down were dropped (tx_link_down): ask again now
    // rather than a retry interval (1 s) later.
    if (link_up_ && !was_up) arp_.retry_pending_now(now_ns_);
  }
  // ARP retransmits and give-ups.
  arp_.run_timers(now_ns_, [this](uint32_t ip_be, net::ArpEvent ev) {
    if (ev == net::ArpEvent::retransmit)
      send_arp(net::kArpRequest, net::kBroadcastMac, sh_->ifc.source_for(ip_be), net::kZeroMac,
               ip_be);
    else
      release_waiting(ip_be, nullptr);
  });
  // Reassemblies that timed out.
  rte_ip_frag_death_row* dr = sh_->death_rows[id_].get();
  rte_ip_frag_table_del_expired_entries(sh_->frag_tables[id_], dr, rte_rdtsc());
  if (dr->cnt) {
    drops_->add(DropReason::ip_frag_dropped, dr->cnt);
    rte_ip_frag_free_death_row(dr, 0);
  }
  if (tcp_) tcp_publish();
  // Port-wide NIC drops (no rx descriptor / no mbuf), reported by worker 0.
  if (id_ == 0) {
    rte_eth_stats st{};
    if (rte_eth_stats_get(port_, &st) == 0) counters_.rx_no_buffer.set(st.imissed + st.rx_nombuf);
  }
}

}  // namespace cw::dp

namespace cw::dp {

// ---- TCP ----------------------------------------------------------------------------------
// Worker 0's net::TcpEngine: segments in from rx_other, segments out through tcp_emit (IPv4
// header and checksums in software, then the ARP path like any frame). Stream bytes are
// handed out straight from the engine's receive ring and consumed at the next poll, when
// the items are dead (io.hh ownership rules).

void DpdkWorker::tcp_segment(const uint8_t* f, const net::Parsed& p, net::RxOffload off) {
  if (off.l4 == net::CsumState::bad) return drops_->add(DropReason::tcp_bad_checksum);
  const uint32_t len = p.ip_len - uint32_t(p.l4_off - p.l3_off);
  tcp_->input(p.src_be, p.dst_be, f + p.l4_off, len, now_ns_, off.l4 == net::CsumState::good);
}

void DpdkWorker::tcp_emit(void* self, const net::TcpSegmentOut& s) {
  auto* w = static_cast<DpdkWorker*>(self);
  rte_mbuf* m = w->alloc_tx_mbuf();
  if (!m) return w->drops_->add(DropReason::tx_no_mbuf);  // TCP sends it again
  const uint32_t ip_len = net::kIpv4MinHdrLen + s.len();
  auto* f = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(net::kEthHdrLen + ip_len)));
  if (!f) {  // cannot happen: the engine's MSS is the MTU's
    rte_pktmbuf_free(m);
    return w->drops_->add(DropReason::tx_too_large);
  }
  net::store_mac(f + 6, w->ifc_.mac);
  net::store16(f + 12, net::kEtherTypeIpv4);
  uint8_t* ip = f + net::kEthHdrLen;
  ip[0] = 0x45;
  ip[1] = 0;
  net::store16(ip + 2, uint16_t(ip_len));
  net::store16(ip + 4, w->ip_id_++);
  net::store16(ip + 6, 0x4000);  // DF: segments fit the MTU (MSS = MTU - 40)
  ip[8] = net::kDefaultTtl;
  ip[9] = net::kProtoTcp;
  net::store16(ip + 10, 0);
  net::store_be32(ip + 12, s.src_be);
  net::store_be32(ip + 16, s.dst_be);
  net::store16(ip + 10, net::csum_fold(net::csum_add(ip, net::kIpv4MinHdrLen)));
  uint8_t* t = ip + net::kIpv4MinHdrLen;
  std::memcpy(t, s.hdr, s.hdr_len);
  if (s.n1) std::memcpy(t + s.hdr_len, s.p1, s.n1);
  if (s.n2) std::memcpy(t + s.hdr_len + s.n1, s.p2, s.n2);
  m->ol_flags = 0;
  TcpRoute& r = w->tcp_route(s.dst_be);
  if (r.dst_be == s.dst_be && r.arp_gen == w->arp_.generation() && w->now_ns_ < r.fresh_until_ns) {
    net::store_mac(f, r.mac);
    return w->queue_tx(m);
  }
  net::Mac mac;
  const int64_t until = w->route_frame(m, s.dst_be, &mac);
  if (until) r = TcpRoute{s.dst_be, w->arp_.generation(), until, mac};
}

void DpdkWorker::tcp_watch(ConnId c) {
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  if (st.watched) return;
  st.watched = true;
  tcp_watch_.push_back(c);
}

void DpdkWorker::tcp_item(RxItem* out, uint32_t& got, RxKind kind, ConnId c, CloseReason why,
                          uint32_t len, const uint8_t* data) {
  uint32_t la = 0, ra = 0;
  uint16_t lp = 0, rp = 0;
  tcp_->endpoints(c, &la, &lp, &ra, &rp);
  RxItem& it = out[got++];
  it.kind = kind;
  it.reason = why;
  it.sock = tcp_conns_[conn_slot(c)].sock;
  it.conn = c;
  it.peer = Endpoint{ra, rp};
  it.len = len;
  it.data = data;
  it.token = kNoHeld;
}

// The handle c is dead for the application from now on: its stream_closed(why) is owed
// (handed out by the next poll) and it leaves conns_open. The engine's side is the caller's.
void DpdkWorker::tcp_closed_here(ConnId c, CloseReason why) {
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  RxItem it{};
  uint32_t n = 0;
  tcp_item(&it, n, RxKind::stream_closed, c, why, 0, nullptr);
  tcp_closed_.push_back(it);
  if (st.counted) {
    st.counted = false;
    counters_.conns_closed.add();
    counters_.conns_open.set(counters_.conns_open.get() - 1);
  }
  if (tcp_res_conn_ == c) tcp_res_conn_ = kNoConn;
}

void DpdkWorker::tcp_forget(ConnId c) {
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  st.out.clear(out_pool_);
  if (tcp_res_conn_ == c) tcp_res_conn_ = kNoConn;
  st = TcpConnState{};
}

// As much of c's queued output as the send ring takes, in order (the engine sends it as
// the windows allow).
void DpdkWorker::tcp_push(ConnId c, TcpConnState& st) {
  iovec iov[8];
  uint64_t total = 0;
  const unsigned k = st.out.gather(iov, 8, &total);
  uint32_t sent = 0;
  for (unsigned i = 0; i < k; ++i) {
    const auto len = uint32_t(iov[i].iov_len);
    const uint32_t m = tcp_->send(c, static_cast<const uint8_t*>(iov[i].iov_base), len, now_ns_);
    sent += m;
    if (m < len) break;
  }
  if (sent) st.out.consume(out_pool_, sent);
}

// c's handle is dead but output is queued: push it, discard what arrives (nobody reads it;
// the engine would answer unread data at close() with a reset), and close the engine's side
// once everything is in the send ring, so the FIN follows the last byte. A connection that
// can no longer send (reset) is released with its output. False once it is closed.
bool DpdkWorker::tcp_draining(ConnId c, TcpConnState& st) {
  for (auto r = tcp_->readable(c); !r.empty(); r = tcp_->readable(c))
    tcp_->consume(c, uint32_t(r.size()), now_ns_);
  const net::TcpState s = tcp_->state(c);
  const bool sending = s == net::TcpState::established || s == net::TcpState::close_wait;
  if (sending) tcp_push(c, st);
  if (sending && !st.out.empty()) return true;
  tcp_->close(c, now_ns_);
  tcp_forget(c);
  return false;
}

void DpdkWorker::tcp_publish() {
  const net::TcpStats& s = tcp_->stats();
  const uint64_t v[kTcpCounterCount] = {
      tcp_->live_conns(), s.segs_in,          s.segs_out,          s.retransmits,
      s.rto_expiries,     s.fast_retransmits, s.conns_accepted,    s.conns_connected,
      s.conns_reset,      s.conns_timed_out,  s.syn_cookies_sent,  s.challenge_acks,
      s.sack_retransmits, s.lost_retransmits, s.sack_blocks_bogus, s.tlp_probes};
  for (size_t k = 0; k < kTcpCounterCount; ++k) sh_->tcp[id_].v[k].set(v[k]);
}

void DpdkWorker::tcp_poll(RxItem* out, uint32_t n, uint32_t& got) {
  const int64_t now = now_ns_;
  // 1. What the last poll handed out is read; connections it reported closed are closed
  //    (after their queued output, if any: they drain in step 3).
  for (ConnId c : tcp_watch_) {
    if (!tcp_->valid(c)) continue;
    TcpConnState& st = tcp_conns_[conn_slot(c)];
    if (st.delivered) tcp_->consume(c, st.delivered, now);
    st.delivered = 0;
    if (st.closing) {
      st.closing = false;
      if (!st.out.empty() && tcp_->state(c) != net::TcpState::closed) {
        st.draining = true;
      } else {
        tcp_->close(c, now);
        tcp_forget(c);
      }
    }
  }
  // 2. Timers, then the engine's events: each only marks its connection for step 3.
  tcp_->advance(now);
  for (const net::TcpEvent& e : tcp_->events()) {
    if (!tcp_->valid(e.conn)) continue;
    if (e.kind == net::TcpEventKind::accepted) {
      uint32_t la, ra;
      uint16_t lp, rp;
      tcp_->endpoints(e.conn, &la, &lp, &ra, &rp);
      const uint16_t s = tcp_listen_[ntohs(lp)];
      tcp_forget(e.conn);
      tcp_conns_[conn_slot(e.conn)].sock = s == kNoSocket ? 0 : s;
      tcp_conns_[conn_slot(e.conn)].counted = true;
      counters_.conns_accepted.add();
      counters_.conns_open.add();
    } else if (e.kind == net::TcpEventKind::connected) {
      tcp_conns_[conn_slot(e.conn)].counted = true;
      counters_.conns_connected.add();
      counters_.conns_open.add();
    }
    tcp_watch(e.conn);
  }
  tcp_->clear_events();
  // 3. Items, as many as fit; what does not fit stays watched for the next poll.
  size_t keep = 0;
  for (size_t i = 0; i < tcp_watch_.size(); ++i) {
    const ConnId c = tcp_watch_[i];
    if (!tcp_->valid(c)) continue;  // closed locally meanwhile; its slot state was reset
    TcpConnState& st = tcp_conns_[conn_slot(c)];
    if (!st.watched) continue;
    if (st.draining) {  // no items: the handle is dead
      if (tcp_draining(c, st)) tcp_watch_[keep++] = c;
      continue;
    }
    if (got + 3 > n) {  // room for open, resumed or writable, and one more
      tcp_watch_[keep++] = c;
      continue;
    }
    const net::TcpState state = tcp_->state(c);
    if (!st.opened) {
      if (st.connecting && !st.counted) {
        if (state == net::TcpState::syn_sent || state == net::TcpState::syn_rcvd) {
          st.watched = false;  // the engine's connected or closed event brings it back
          continue;
        }
        // Refused, timed out or reset in the handshake: released by the next poll (step 1).
        st.connecting = false;
        st.closing = true;
        tcp_item(out, got, RxKind::stream_closed, c, CloseReason::connect_failed, 0, nullptr);
        tcp_watch_[keep++] = c;
        continue;
      }
      st.opened = true;
      st.connecting = false;
      tcp_item(out, got, RxKind::stream_open, c, CloseReason::none, 0, nullptr);
    }
    if (st.resumed) {
      st.resumed = false;
      tcp_item(out, got, RxKind::stream_resumed, c, CloseReason::none, 0, nullptr);
    }
    // Output queued behind the send ring first; the connection stays watched until it is
    // all in the ring.
    if (!st.out.empty()) tcp_push(c, st);
    bool again = !st.out.empty();
    if (st.want_writable) {
      if (queued(c) <= sh_->io.conn_low_water) {
        st.want_writable = false;
        tcp_item(out, got, RxKind::stream_writable, c, CloseReason::none, 0, nullptr);
      } else {
        again = true;
      }
    }
    if (st.closing) {
      again = true;  // closed by step 1 of the next poll
    } else if (st.paused) {
      // nothing handed out; resume() watches it again
    } else {
      // Back-pressure: while more than kDpdkTcpOutHold bytes wait behind the send ring,
      // nothing is handed out (the receive ring fills, the peer's window closes); below it,
      // everything readable. An echo's output queue so stays near one receive ring's worth.
      // A reset connection (engine state closed) hands out nothing more: what it had not
      // handed out is dropped and stream_closed follows at once.
      const bool reset = state == net::TcpState::closed;
      const auto r = reset ? std::span<const uint8_t>{} : tcp_->readable(c);
      const uint32_t len = st.out.bytes() < kDpdkTcpOutHold ? uint32_t(r.size()) : 0;
      if (len) {
        st.delivered = len;
        counters_.rx_stream_bytes.add(len);
        tcp_item(out, got, RxKind::stream_data, c, CloseReason::none, len, r.data());
        again = true;
      } else if (r.empty() && (reset || tcp_->eof(c))) {
        st.closing = true;  // the engine's side is closed by the next poll (step 1)
        if (st.counted) {
          st.counted = false;
          counters_.conns_closed.add();
          counters_.conns_open.set(counters_.conns_open.get() - 1);
        }
        tcp_item(out, got, RxKind::stream_closed, c, CloseReason::peer, 0, nullptr);
        again = true;
      } else if (!r.empty()) {
        again = true;  // output is held back: look again once it drained
      }
    }
    if (again)
      tcp_watch_[keep++] = c;
    else
      st.watched = false;
  }
  tcp_watch_.resize(keep);
  // 4. Connections closed here (close(), failed reservations): their stream_closed items.
  size_t left = 0;
  for (const RxItem& it : tcp_closed_) {
    if (got < n)
      out[got++] = it;
    else
      tcp_closed_[left++] = it;
  }
  tcp_closed_.resize(left);
}

// A reservation that fits the send ring (and has nothing queued before it) is written to
// the scratch buffer and copied into the ring at commit; any other goes to the connection's
// chunk queue (out_pool_), bounded per connection by conn_out_limit and per worker by
// worker_out_limit: past either the connection is reset and closed (io.hh).
uint8_t* DpdkWorker::stream_reserve(ConnId c, uint32_t n) {
  if (!tcp_ || !tcp_->valid(c)) return nullptr;
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  if (st.closing || st.draining) return nullptr;
  uint8_t* p = nullptr;
  const bool fits = uint64_t(queued(c)) + n <= sh_->io.conn_out_limit;
  if (fits && st.out.empty() && n <= kDpdkTcpReserve && n <= tcp_->send_space(c)) {
    tcp_res_conn_ = c;
    tcp_res_out_ = false;
    return tcp_res_.get();
  }
  if (fits) p = st.out.reserve(out_pool_, n);
  if (!p) {
    if (fits)
      counters_.tx_no_buffer.add();
    else
      counters_.conns_overflow.add();
    tcp_closed_here(c, fits ? CloseReason::error : CloseReason::overflow);
    tcp_->abort(c, now_ns_);
    tcp_forget(c);
    return nullptr;
  }
  tcp_res_conn_ = c;
  tcp_res_out_ = true;
  return p;
}

void DpdkWorker::stream_commit(ConnId c, uint32_t n) {
  if (!tcp_ || c != tcp_res_conn_) return;
  tcp_res_conn_ = kNoConn;
  counters_.tx_stream_bytes.add(n);
  if (!tcp_res_out_) {
    tcp_->send(c, tcp_res_.get(), n, now_ns_);  // room checked by stream_reserve
    return;
  }
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  st.out.commit(n);
  tcp_push(c, st);
  if (!st.out.empty()) tcp_watch(c);  // pushed as the ring drains (tcp_poll step 3)
}

// The client role on worker 0: the source address is the socket's or the one facing `to`,
// the port the socket's or the next free ephemeral one (a port in use for this 4-tuple or
// by a listener is skipped). stream_open follows once established, or
// stream_closed(connect_failed) once refused or out of SYN retries.
ConnId DpdkWorker::connect(SocketId s, Endpoint to) {
  if (!tcp_ || s >= sh_->specs.size() || sh_->specs[s].transport != Transport::tcp ||
      sh_->specs[s].server || to.port_be == 0)
    return kNoConn;
  const Endpoint& b = sh_->bound[s];
  const uint32_t local = b.addr_be ? b.addr_be : ifc_.source_for(to.addr_be);
  ConnId c = kNoConn;
  if (tcp_->live_conns() < tcp_->config().max_conns) {
    if (b.port_be) {
      c = tcp_->connect(local, b.port_be, to.addr_be, to.port_be, now_ns_);
    } else {
      for (uint32_t k = 0; k < kDpdkTcpConnectTries && c == kNoConn; ++k) {
        const uint16_t p = tcp_next_port_;
        tcp_next_port_ = p == 65535 ? uint16_t(49152) : uint16_t(p + 1);
        if (tcp_listen_[p] == kNoSocket)
          c = tcp_->connect(local, htons(p), to.addr_be, to.port_be, now_ns_);
      }
    }
  }
  if (c == kNoConn) {
    counters_.conns_rejected.add();
    return kNoConn;
  }
  tcp_forget(c);
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  st.sock = s;
  st.connecting = true;
  return c;
}

void DpdkWorker::close(ConnId c) {
  if (!tcp_ || !tcp_->valid(c)) return;
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  if (st.closing || st.draining) return;  // stream_closed was handed out: the handle is dead
  if (st.delivered) tcp_->consume(c, st.delivered, now_ns_);  // the service has read them
  st.delivered = 0;
  tcp_closed_here(c, CloseReason::local);
  if (!st.out.empty() && tcp_->state(c) != net::TcpState::closed) {
    st.draining = true;  // FIN after the queued output (tcp_draining)
    tcp_watch(c);
    return;
  }
  tcp_->close(c, now_ns_);  // FIN after the queued bytes (RST if unread bytes remain)
  tcp_forget(c);
}

void DpdkWorker::pause(ConnId c) {
  if (tcp_ && tcp_->valid(c)) tcp_conns_[conn_slot(c)].paused = true;
}

void DpdkWorker::resume(ConnId c) {
  if (!tcp_ || !tcp_->valid(c)) return;
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  if (!st.paused || st.draining) return;
  st.paused = false;
  st.resumed = true;
  tcp_watch(c);
}

uint32_t DpdkWorker::queued(ConnId c) const {
  if (!tcp_ || !tcp_->valid(c)) return 0;
  return tcp_->send_queued(c) + tcp_conns_[conn_slot(c)].out.bytes();
}

void DpdkWorker::notify_writable(ConnId c) {
  if (!tcp_ || !tcp_->valid(c)) return;
  TcpConnState& st = tcp_conns_[conn_slot(c)];
  if (st.closing || st.draining) return;
  st.want_writable = true;
  tcp_watch(c);
}

void DpdkWorker::stop_accepting() {
  if (tcp_) tcp_->stop_listening();
}

}  // namespace cw::dp
