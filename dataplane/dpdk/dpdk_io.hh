// DPDK backend: the dataplane contract (dataplane/io.hh) over one DPDK ethdev port, with the
// user-space IPv4/UDP stack in net/. See docs/dpdk.md for the design; in short:
//
//   * One port (PCI device or vdev), one RX/TX queue pair per worker. Worker i owns queue i,
//     its mempool, ARP table, reassembly table and TX batch; nothing on the datapath is
//     shared between workers except read-only port state and the ARP copy rings.
//   * Worker threads are the runtime's own threads; open_worker() registers the calling
//     thread with EAL (rte_thread_register) so it gets an lcore id and mempool caches.
//   * UDP, and TCP on worker 0 (net::TcpEngine, docs/dpdk.md "TCP on the datapath"):
//     accept, connect, stream receive, reserve/commit (output beyond the engine's send ring
//     queued in chunks, bounded by conn_out_limit), pause/resume, close; software
//     checksums. ARP and ICMP echo are answered inside the backend.
//
// This header has no DPDK includes: launch.hh and the worker loop see only these types. The
// reply path of the common datagram (dgram_reserve_reply, dgram_commit to a cached flow) is
// inline here so the worker loop compiles it into the service's handler without seeing
// rte_mbuf: the rx path records each held frame's address, length and room, and a reply's
// length and tx flags are written through the field offsets below (kMbuf*).
#pragma once

#include <atomic>
#include <bit>
#include <cassert>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/dpdk/net/arp.hh"
#include "dataplane/dpdk/net/drop.hh"
#include "dataplane/dpdk/net/frame.hh"
#include "dataplane/dpdk/net/tcp.hh"
#include "dataplane/io.hh"
#include "dataplane/kernel/out_buffer.hh"

struct rte_mbuf;

namespace cw::dp {

// Port and stack settings (the [dpdk] config section; see docs/dpdk.md).
struct DpdkConfig {
  // EAL arguments, without argv[0]. corewire adds "-l <first allowed CPU>" when none of
  // -l/-c/--lcores is given and, when neither --file-prefix nor --in-memory is, "--in-memory"
  // (or "--file-prefix=corewire-<pid>" with --no-huge, which --in-memory refuses).
  std::vector<std::string> eal_args;
  // The port: a PCI address ("0000:03:00.0", probed by EAL), a vdev devargs string
  // ("net_tap0,iface=cw0", hot-plugged if EAL does not have it yet), or a port number.
  std::string port;
  std::vector<net::LocalAddr> addresses;  // at least one; e.g. parse_cidr("10.0.0.2/24")
  uint32_t gateway_be = 0;                // 0 = only on-link destinations are reachable
  uint16_t mtu = 1500;
  uint16_t rx_desc = 1024;  // per queue; adjusted to the device's limits
  uint16_t tx_desc = 1024;
  uint32_t arp_entries = net::kArpDefaultEntries;  // per worker
  uint32_t arp_queue = 64;  // datagrams per worker waiting for ARP resolution
  bool arp_learn_from_requests = true;
  uint32_t frag_flows = 1024;       // datagrams reassembled at once, per worker
  uint32_t frag_timeout_ms = 2000;  // incomplete reassemblies are dropped after this
};

// "a.b.c.d/len" (len defaults to 32).
Result<net::LocalAddr> parse_cidr(const std::string& s);

struct DpdkShared;  // port state shared by the backend and its workers (dpdk_port.hh)

// Offsets of the rte_mbuf fields the inline reply path writes, so this header needs no DPDK
// include; dpdk_datapath.cc checks them against <rte_mbuf.h>. packet_type (4 bytes) and
// pkt_len (4) are adjacent and written as one 8-byte store.
inline constexpr size_t kMbufOlFlags = 24;
inline constexpr size_t kMbufPacketType = 32;
inline constexpr size_t kMbufPktLen = 36;
inline constexpr size_t kMbufDataLen = 40;
inline constexpr size_t kMbufTxOffload = 72;

inline constexpr uint32_t kDpdkRxBurst = 64;            // frames per rte_eth_rx_burst
inline constexpr uint32_t kDpdkTxBatch = 128;           // frames collected before a forced tx_burst
inline constexpr uint32_t kDpdkMaxTxFragments = 64;     // larger datagrams: tx_too_large
inline constexpr uint32_t kDpdkTxFlows = 16;            // cached (socket, destination host) headers
inline constexpr uint32_t kDpdkTcpRoutes = 16;          // cached TCP next-hop MACs (by destination)
inline constexpr uint32_t kDpdkTxStash = 32;            // tx mbufs taken from the pool at once
inline constexpr uint32_t kDpdkReasmArena = 4 * 65536;  // reassembled bytes per poll
inline constexpr int64_t kDpdkHousekeepNs = 100'000'000;  // link, ARP and reassembly timers
inline constexpr int64_t kDpdkIdlePauseNs = 100'000;      // longest pause of an idle non-busy poll
inline constexpr uint32_t kDpdkTcpConns = 1024;           // most TCP connections (worker 0)
inline constexpr uint32_t kDpdkTcpBuf = 64 * 1024;      // TCP send and receive ring, per connection
inline constexpr uint32_t kDpdkTcpReserve = 64 * 1024;  // stream_reserve through the scratch
inline constexpr uint32_t kDpdkTcpConnectTries = 64;    // ephemeral ports tried per connect()
// A connection with more output than this queued behind its send ring is not read
// (stream_data) until it drained below: back-pressure on a peer that sends faster than it
// reads what we answer.
inline constexpr uint32_t kDpdkTcpOutHold = 64 * 1024;

class alignas(64) DpdkWorker {
 public:
  DpdkWorker(std::shared_ptr<DpdkShared> shared, unsigned id);
  ~DpdkWorker();
  DpdkWorker(const DpdkWorker&) = delete;
  DpdkWorker& operator=(const DpdkWorker&) = delete;

  // ---- WorkerIo (owner thread only, except wake) ------------------------------------
  uint32_t poll(RxItem* out, uint32_t n, int64_t timeout_ns);
  uint8_t* dgram_reserve(SocketId s, Endpoint to, uint32_t n);
  // The reply leaves in the request's own mbuf (io.hh "Replies in place"): no allocation,
  // no free, and the payload offset is the request's when its IPv4 header had no options.
  inline uint8_t* dgram_reserve_reply(const RxItem& it, uint32_t n);
  inline void dgram_commit(uint32_t n);
  // A reply over its request's own bytes (dp::commit_reply): the request's UDP checksum is
  // updated for the edits rather than summed again (net::write_udp_reply_frame).
  using ReplyEdits = net::CsumEdits;
  inline void dgram_commit_edited(uint32_t n, const ReplyEdits& e);
  // TCP (worker 0 only; elsewhere every handle is stale and these do nothing, and connect
  // returns kNoConn).
  uint8_t* stream_reserve(ConnId c, uint32_t n);
  void stream_commit(ConnId c, uint32_t n);
  ConnId connect(SocketId s, Endpoint to);
  void pause(ConnId c);
  void resume(ConnId c);
  uint32_t queued(ConnId c) const;
  void notify_writable(ConnId c);
  void close(ConnId c);
  void flush();  // the TCP engine's batched output, then every queued frame
  void wake() { woken_.store(true, std::memory_order_relaxed); }
  void stop_accepting();
  const IoCounters& counters() const { return counters_; }
  unsigned worker_id() const { return id_; }
  const net::DropCounters& drops() const;

 private:
  struct Waiting {  // a frame waiting for its next hop's MAC
    rte_mbuf* m;
    uint32_t next_hop_be;
  };
  // Prepared headers of one (socket, destination host) whose next hop resolved, valid while
  // the ARP table's generation is unchanged and its answer fresh (direct-mapped cache).
  struct TxFlow {
    SocketId sock = 0;
    uint32_t dst_be = 0;
    uint64_t arp_gen = 0;
    int64_t fresh_until_ns = 0;  // 0: empty
    net::UdpTemplate tpl;
  };

  void rx_frame(rte_mbuf* m, RxItem* out, uint32_t n, uint32_t& got);
  void rx_other(rte_mbuf* m, net::RxOffload off, RxItem* out, uint32_t n, uint32_t& got);
  void hold(rte_mbuf* m, uint8_t* f);
  void rx_fragment(rte_mbuf* m, uint16_t l3_off, RxItem* out, uint32_t n, uint32_t& got);
  // token: the held_ slot of the frame's mbuf, kNoHeld for a reassembled datagram.
  bool deliver_udp(const uint8_t* base, const net::UdpDatagram& p, uint32_t token, RxItem* out,
                   uint32_t n, uint32_t& got);
  void arp_received(const net::ArpPacket& a, const net::Mac& eth_src, bool from_wire);
  void send_arp(uint16_t op, const net::Mac& eth_dst, uint32_t spa_be, const net::Mac& tha,
                uint32_t tpa_be);
  // Fills the dst MAC and queues m, or holds/drops it for ARP. Returns until when the MAC
  // (*mac) may be reused without asking the table again, 0 when it may not.
  int64_t route_frame(rte_mbuf* m, uint32_t dst_be, net::Mac* mac);
  TxFlow& tx_flow(SocketId s, uint32_t dst_be);
  rte_mbuf* alloc_tx_mbuf();
  uint8_t* open_in(rte_mbuf* m, SocketId s, Endpoint to, uint32_t n);
  template <bool kEdited>
  void commit(uint32_t len, uint64_t edits);
  void commit_routed(uint32_t len);  // dgram_commit without a fresh cached flow
  void release_waiting(uint32_t ip_be, const net::Mac* mac);  // nullptr: ARP failed
  void queue_tx(rte_mbuf* m) {                                // m's length and flags are set
    if (tx_n_ == kDpdkTxBatch) transmit();
    tx_[tx_n_++] = m;
  }
  // Sets a single-segment UDP frame's length and tx flags (through the kMbuf offsets).
  void mark_udp_tx(rte_mbuf* m, uint32_t frame_len) {
    uint8_t* b = reinterpret_cast<uint8_t*>(m);
    const uint64_t flags = tx_flags_;
    const uint64_t type_and_len = uint64_t(frame_len) << 32;  // packet_type 0, pkt_len
    const uint16_t data_len = uint16_t(frame_len);
    std::memcpy(b + kMbufOlFlags, &flags, 8);
    std::memcpy(b + kMbufPacketType, &type_and_len, 8);
    std::memcpy(b + kMbufDataLen, &data_len, 2);
    if (tx_offload_) std::memcpy(b + kMbufTxOffload, &tx_offload_word_, 8);  // l2/l3 lengths
  }
  // A UDP frame of the inline path: marked, counted (by flush()), queued.
  void queue_udp(rte_mbuf* m, uint32_t frame_len) {
    mark_udp_tx(m, frame_len);
    ++tx_pending_datagrams_;
    tx_pending_bytes_ += frame_len - net::kUdpFrameHdrLen;
    queue_tx(m);
  }
  void commit_fragmented(uint32_t len);
  net::UdpHeaderSpec reserved_udp_spec();
  void housekeep();
  void port_faulted();
  // TCP (tcp_ set on worker 0 when a TCP server socket exists).
  static void tcp_emit(void* self, const net::TcpSegmentOut& seg);
  // The next hop's MAC for a TCP destination, cached like TxFlow: valid while the ARP
  // table's generation is unchanged and its answer fresh (direct-mapped by destination), so
  // a segment costs no route or ARP lookup.
  struct TcpRoute {
    uint32_t dst_be = 0;
    uint64_t arp_gen = 0;
    int64_t fresh_until_ns = 0;  // 0: empty
    net::Mac mac{};
  };
  TcpRoute& tcp_route(uint32_t dst_be) {
    const uint32_t h = net::host(dst_be) * 0x9E3779B1u;
    return tcp_routes_[h >> (32 - std::bit_width(kDpdkTcpRoutes - 1))];
  }
  void tcp_segment(const uint8_t* f, const net::Parsed& p, net::RxOffload off);
  void tcp_poll(RxItem* out, uint32_t n, uint32_t& got);
  void tcp_item(RxItem* out, uint32_t& got, RxKind kind, ConnId c, CloseReason why, uint32_t len,
                const uint8_t* data);
  void tcp_watch(ConnId c);  // c may have bytes, an EOF or a reset to deliver
  struct TcpConnState;
  void tcp_push(ConnId c, TcpConnState& st);      // queued output into the engine's send ring
  bool tcp_draining(ConnId c, TcpConnState& st);  // false once the engine's side is closed
  void tcp_forget(ConnId c);                      // the slot's state and output released
  void tcp_closed_here(ConnId c, CloseReason why);
  void tcp_publish();  // engine counters for DpdkBackend::counters_by_name (housekeep)
  // Per engine slot. Output the send ring cannot take yet waits in `out` (chunks from
  // out_pool_), in order behind it; while more than kDpdkTcpOutHold bytes wait there no
  // stream_data is handed out (the receive ring fills and the peer's window closes:
  // back-pressure, not a reset).
  struct TcpConnState {
    uint32_t delivered = 0;   // bytes handed out by the last poll, consumed by the next
    bool opened = false;      // stream_open handed out
    bool counted = false;     // in conns_open
    bool connecting = false;  // connect() from this side, stream_open not yet handed out
    bool watched = false, paused = false, resumed = false, want_writable = false;
    bool closing = false;  // stream_closed handed out: close the engine's side next poll
    // The application's handle is dead (stream_closed handed out) but `out` still holds
    // output: it is pushed, received bytes are discarded, then the engine's side is closed.
    bool draining = false;
    SocketId sock = 0;
    kernel::OutBuffer out;
  };
  void drain_arp_copies();
  void free_held();

  // Hot state first.
  std::shared_ptr<DpdkShared> sh_;
  net::DropCounters* drops_;    // lives in sh_, so the backend can read it
  Counter* busy_cycles_;        // sh_->cpu[id].busy_cycles
  uint64_t busy_from_tsc_ = 0;  // the last poll's TSC when it had input, else 0
  unsigned id_;
  uint16_t port_;
  uint16_t queue_;
  bool link_up_ = false;
  int64_t now_ns_ = 0;
  uint64_t next_housekeep_tsc_ = 0;
  uint32_t held_n_ = 0;
  uint32_t held_taken_ = 0;  // held_ slots taken for replies in place (now nullptr)
  uint32_t tx_n_ = 0;
  // Copies of the read-only DpdkShared fields the per-frame paths read: one load from the
  // worker instead of a chain through sh_.
  uint32_t small_max_ = 0;             // small_max
  bool tx_offload_ = false;            // tx_csum_offload
  bool rx_offload_ = false;            // rx_csum_offload
  uint32_t max_datagram_ = 0;          // io.max_datagram
  const uint16_t* by_port_ = nullptr;  // by_port.data()
  const Endpoint* bound_ = nullptr;    // bound.data()
  net::Interface ifc_;
  rte_mbuf* held_[kDpdkRxBurst] = {};       // rx mbufs the last poll's items point into (RxItem::
                                            // token); nullptr once taken for a reply in place
  uint8_t* held_frame_[kDpdkRxBurst] = {};  // held_[i]'s frame (first byte)
  uint16_t held_len_[kDpdkRxBurst] = {};    // its length
  uint16_t held_room_[kDpdkRxBurst] = {};   // reply payload bytes it holds behind 42 header
                                            // bytes (at most small_max_)
  void transmit();                          // tx_ to the port, in one burst
  rte_mbuf* tx_[kDpdkTxBatch] = {};         // committed frames, sent by transmit()
  uint64_t tx_flags_ = 0;                   // ol_flags of a UDP frame sent (offloads)
  uint64_t tx_offload_word_ = 0;            // its rte_mbuf::tx_offload (l2_len, l3_len)
  uint64_t tx_pending_datagrams_ = 0, tx_pending_bytes_ = 0;  // queue_udp, counted by flush()
  uint32_t stash_n_ = 0;
  rte_mbuf* stash_[kDpdkTxStash] = {};  // fresh mbufs for dgram_reserve, taken in bulk
  // The open reservation.
  rte_mbuf* res_m_ = nullptr;
  uint8_t* res_f_ = nullptr;  // res_m_'s frame
  // The request's payload length when the reservation is its own frame with the payload at
  // the reply's offset (42), so dgram_commit_edited may update its checksum; else kNoEdit.
  static constexpr uint32_t kNoEdit = ~uint32_t{0};
  uint32_t res_edit_len_ = kNoEdit;
  bool res_open_ = false;
  bool res_large_ = false;  // payload in big_, fragmented at commit
  SocketId res_sock_ = 0;
  Endpoint res_to_;
  uint32_t res_cap_ = 0;
  uint16_t ip_id_ = 0;
  uint32_t arena_used_ = 0;
  IoCounters counters_;
  net::ArpTable arp_;
  TxFlow tx_flows_[kDpdkTxFlows];
  std::vector<Waiting> waiting_;      // capacity DpdkConfig::arp_queue, never grows
  std::unique_ptr<uint8_t[]> big_;    // large datagram being reserved (UDP hdr + data)
  std::unique_ptr<uint8_t[]> arena_;  // reassembled datagrams of the current poll
  std::atomic<bool> woken_{false};
  std::unique_ptr<net::TcpEngine> tcp_;
  std::vector<TcpConnState> tcp_conns_;  // by conn_slot
  std::vector<ConnId> tcp_watch_;        // connections to look at in the next poll
  std::vector<RxItem> tcp_closed_;       // closed here (close(), failed reservations): items owed
  std::unique_ptr<uint8_t[]> tcp_res_;   // stream_reserve's buffer (kDpdkTcpReserve)
  std::vector<uint16_t> tcp_listen_;     // port (host order) -> TCP server SocketId
  ConnId tcp_res_conn_ = kNoConn;        // the open stream reservation's connection
  bool tcp_res_out_ = false;             // ... reserved in its `out` (not tcp_res_)
  uint16_t tcp_next_port_ = 0;           // next ephemeral port connect() tries (host order)
  kernel::OutChunkPool out_pool_;        // bounded by IoConfig::worker_out_limit
  TcpRoute tcp_routes_[kDpdkTcpRoutes];
};

class DpdkBackend {
 public:
  using Worker = DpdkWorker;
  // Initialises EAL (once per process), opens and starts the port, creates every queue,
  // mempool and table. Logs the mempool memory cost and offload choices to `log`.
  static Result<std::unique_ptr<DpdkBackend>> create(
      const IoConfig& io, std::span<const SocketSpec> specs, const DpdkConfig& cfg,
      const std::function<void(const std::string&)>& log = {});
  // Call on worker thread i: registers the thread with EAL and binds it to queue i.
  Result<std::unique_ptr<DpdkWorker>> open_worker(unsigned i);
  Endpoint bound(SocketId s) const;
  static const char* name() { return "dpdk"; }

  // ---- readable from any thread while workers run -------------------------------------
  const net::DropCounters& drops(unsigned worker) const;
  struct PortStat {
    std::string name;
    uint64_t value;
  };
  // rte_eth_stats plus the driver's extended statistics (setup/control path: allocates).
  std::vector<PortStat> port_stats() const;
  bool link_up() const;  // as the workers last saw it (they skip a port that is down)
  // The port's link as the driver reports it now (no wait; setup/control path).
  struct LinkState {
    bool up = false;
    uint32_t speed_mbps = 0;  // 0: down or unknown
    bool full_duplex = false;
    bool autoneg = false;
  };
  LinkState link_state() const;
  // The link ("link.<port id>.up", ".speed_mbps", ".full_duplex", ".autoneg"; first), drop
  // reasons summed over workers ("drop.<reason>", non-zero only), the workers' busy time
  // ("cpu.busy_ns", WorkerCpu in dpdk_port.hh), the TCP engine's ("tcp.<name>", with a TCP
  // socket) and port_stats() ("port.<name>"): what Runtime::backend_counters() reports.
  std::vector<std::pair<std::string, uint64_t>> counters_by_name() const;
  const net::Mac& mac() const;
  uint16_t port_id() const;

  ~DpdkBackend();

 private:
  explicit DpdkBackend(std::shared_ptr<DpdkShared> s) : sh_(std::move(s)) {}
  std::shared_ptr<DpdkShared> sh_;
};

static_assert(Backend<DpdkBackend>);

// ---- the inline reply path ------------------------------------------------------------------

inline DpdkWorker::TxFlow& DpdkWorker::tx_flow(SocketId s, uint32_t dst_be) {
  const uint32_t h = (net::host(dst_be) ^ (uint32_t(s) << 24)) * 0x9E3779B1u;
  return tx_flows_[h >> (32 - std::bit_width(kDpdkTxFlows - 1))];
}

inline uint8_t* DpdkWorker::dgram_reserve_reply(const RxItem& it, uint32_t n) {
  assert(!res_open_ && "one reservation at a time");
  // Only a frame of this poll, not yet taken, that still holds this item's bytes, with room
  // for the reply behind fresh headers (the reply starts at the standard 42-byte offset).
  // Anything else (a reassembled datagram, a second reply, a large one) gets a fresh buffer.
  const uint32_t t = it.token;
  if (t < held_n_ && held_[t] && n <= held_room_[t] &&
      uintptr_t(it.data) - uintptr_t(held_frame_[t]) < held_len_[t]) {
    res_m_ = held_[t];
    held_[t] = nullptr;  // not freed by the next poll: it is the reply now
    ++held_taken_;
    res_f_ = held_frame_[t];
    res_edit_len_ = it.data == res_f_ + net::kUdpFrameHdrLen ? it.len : kNoEdit;
    res_sock_ = it.sock;
    res_to_ = it.peer;
    res_cap_ = n;
    res_open_ = true;
    res_large_ = false;
    return res_f_ + net::kUdpFrameHdrLen;
  }
  return dgram_reserve(it.sock, it.peer, n);
}

inline void DpdkWorker::dgram_commit(uint32_t len) {
  commit<false>(len, 0);
}

inline void DpdkWorker::dgram_commit_edited(uint32_t len, const ReplyEdits& e) {
  if (len == res_edit_len_) return commit<true>(len, e.native_sum());
  commit<false>(len, 0);
}

template <bool kEdited>
inline void DpdkWorker::commit(uint32_t len, uint64_t edits) {
  assert(res_open_ && len <= res_cap_);
  res_open_ = false;
  if (res_large_) return commit_fragmented(len);
  // The headers of a (socket, destination host) whose next hop is known and fresh: one
  // template write. Otherwise the full header write and an ARP lookup (commit_routed).
  TxFlow& c = tx_flow(res_sock_, res_to_.addr_be);
  if (c.sock != res_sock_ || c.dst_be != res_to_.addr_be || c.arp_gen != arp_.generation() ||
      now_ns_ >= c.fresh_until_ns)
    return commit_routed(len);
  if constexpr (kEdited)
    net::write_udp_reply_frame(res_f_, c.tpl, res_to_.port_be, ip_id_++, len, edits);
  else
    net::write_udp_frame(res_f_, c.tpl, res_to_.port_be, ip_id_++, len);
  queue_udp(res_m_, net::kUdpFrameHdrLen + len);
  res_m_ = nullptr;
}

}  // namespace cw::dp
