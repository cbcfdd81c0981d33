// io_uring backend: one ring per worker, created on the worker's thread.
//
//   UDP   one SO_REUSEPORT socket per worker and spec; a multishot recvmsg per socket draws
//         from the worker's datagram buffer ring (group kUdpGroup); every committed datagram
//         is one sendmsg SQE; flush() submits them all in one io_uring_enter.
//   TCP   one SO_REUSEPORT listener per worker (multishot accept); a connection lives on the
//         worker that accepted (or connected) it; multishot recv draws from the stream
//         buffer ring (group kTcpGroup); output goes through a bounded per-connection ring
//         with at most one send in flight.
//
// Buffer lifetimes: receive buffers are handed out in RxItems and go back to their buffer
// ring at the start of the next poll(). Tx slots belong to the kernel from commit until the
// send's CQE. A connection slot is reused only once every SQE that names it has completed.
//
// Setup (probe, create, open_worker, ring and buffer-ring set-up) is in uring_setup.cc; the
// datapath (poll, reserve/commit, flush, connect, close, wake) is in uring_datapath.cc.
#pragma once

#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/io.hh"
#include "dataplane/result.hh"

namespace cw::dp {

namespace uring {

// What a worker ring was set up with; decided once by UringBackend::create (probe of the
// running kernel) and logged by the caller through UringBackend::features().
struct RingPlan {
  unsigned setup_flags = 0;  // IORING_SETUP_* actually accepted by the kernel
  unsigned sq_entries = 0;
  unsigned cq_entries = 0;
  bool defer_taskrun = false;  // completions only appear when we enter the kernel
};

// The low level pieces, kept apart so tests can check them directly.
// user_data layout: [63..56] op, [55..32] generation (24 bits), [31..0] index.
enum class Op : uint8_t {
  none = 0,
  udp_recv,  // index = SocketId
  udp_send,  // index = tx slot
  accept,    // index = SocketId
  tcp_recv,  // index = connection slot
  tcp_send,  // index = connection slot
  connect,   // index = connection slot
  cancel,    // index = connection slot (result ignored)
  wake,      // eventfd read
};
inline constexpr uint64_t pack(Op op, uint32_t index, uint32_t gen = 0) {
  return uint64_t(op) << 56 | uint64_t(gen & 0xFFFFFFu) << 32 | index;
}
inline constexpr Op op_of(uint64_t ud) { return Op(ud >> 56); }
inline constexpr uint32_t index_of(uint64_t ud) { return uint32_t(ud); }
inline constexpr uint32_t gen_of(uint64_t ud) { return uint32_t(ud >> 32) & 0xFFFFFFu; }

// Buffer group ids registered on every worker ring.
inline constexpr uint16_t kUdpGroup = 0;
inline constexpr uint16_t kTcpGroup = 1;

// Datagram receive buffers hold a whole datagram of up to IoConfig::max_datagram bytes
// (plus the 32-byte recvmsg header), so nothing below max_datagram is ever truncated. They
// are mapped MAP_NORESERVE: small datagrams touch one page per buffer, so resident memory
// is ~4 KiB per buffer and grows toward buffers x 64 KiB only under large datagrams. The
// count is min(IoConfig::rx_buffers, kUdpRxVirtualBudget / buffer size), a power of two:
// with the defaults 1024 buffers of 64 KiB = 64 MiB virtual, 4 MiB resident per worker.
inline constexpr size_t kUdpRxVirtualBudget = size_t(64) << 20;
inline constexpr uint32_t kMinRxBuffers = 2;
inline constexpr uint32_t kMaxRingBuffers = 32768;  // buffer ring entries limit (bid is u16)
// SQ depth; a commit that finds the SQ full submits early (one extra enter per 1024 SQEs).
inline constexpr unsigned kSqEntries = 1024;
inline constexpr unsigned kMaxCqEntries = 65536;
// Idle sweep period: connections are checked for idle_timeout_ms this often.
inline constexpr uint64_t kIdleSweepNs = 250'000'000;
inline constexpr int kListenBacklog = 4096;
inline constexpr uint32_t kOutKeepBytes = 64u << 10;

// A provided-buffer ring: `count` buffers of `size` bytes in one mapping, registered as
// group `bgid`. Owned by one worker; the kernel reads the ring, we write it.
struct BufRing {
  io_uring_buf_ring* ring = nullptr;
  size_t ring_bytes = 0;
  uint8_t* mem = nullptr;
  size_t mem_bytes = 0;
  uint32_t count = 0;
  uint32_t size = 0;  // bytes per buffer
  uint16_t bgid = 0;
  int mask = 0;
  // Buffers handed out in RxItems by the last poll(); returned at the next one.
  std::vector<uint16_t> out;
  uint32_t nout = 0;

  uint8_t* buf(uint16_t bid) const { return mem + size_t(bid) * size; }
  void give_back(uint16_t bid, int offset) {
    io_uring_buf_ring_add(ring, buf(bid), size, bid, mask, offset);
  }
};

}  // namespace uring

class UringBackend;

class UringWorker {
 public:
  UringWorker(const UringWorker&) = delete;
  UringWorker& operator=(const UringWorker&) = delete;
  ~UringWorker();

  // ---- WorkerIo (owner thread only, except wake) ------------------------------------
  uint32_t poll(RxItem* out, uint32_t n, int64_t timeout_ns);
  uint8_t* dgram_reserve(SocketId s, Endpoint to, uint32_t n);
  void dgram_commit(uint32_t n);
  uint8_t* stream_reserve(ConnId c, uint32_t n);
  void stream_commit(ConnId c, uint32_t n);
  ConnId connect(SocketId s, Endpoint to);
  void close(ConnId c);
  void flush();
  void wake();
  const IoCounters& counters() const { return counters_; }
  unsigned worker_id() const { return id_; }

  // Receive buffers in the datagram group (after clamping to the memory budget).
  uint32_t udp_rx_buffers() const { return udp_.count; }
  // Open connection slots (including ones draining after close); for tests.
  uint32_t conns_in_use() const { return conns_used_; }

 private:
  friend class UringBackend;
  UringWorker() = default;

  // A tx slot: one datagram from reserve until its send CQE.
  struct TxSlot {
    msghdr msg;
    iovec iov;
    sockaddr_in to;
    uint32_t next_free;
  };

  enum class ConnState : uint8_t { free, connecting, open, draining, closing };
  // One TCP connection. Output is a bip-buffer in the slot's 2 x conn_out_limit region of
  // out_mem_: queued bytes are [head, tail) or, once wrapped, [head, wrap_end) then
  // [0, tail). The first `inflight` bytes at head belong to the kernel until the send CQE.
  // With capacity 2 x limit and at most `limit` bytes queued, a reservation of up to
  // `limit` bytes always finds contiguous room.
  struct Conn {
    int fd = -1;
    ConnState state = ConnState::free;
    CloseReason reason = CloseReason::none;
    bool user_open = false;    // the user holds a valid ConnId
    bool recv_armed = false;
    bool send_armed = false;
    bool connect_armed = false;
    bool close_queued = false;  // a stream_closed item is waiting in the pending list
    uint8_t gen = 0;            // ConnId generation (8 bits, io.hh)
    uint32_t ugen = 0;          // user_data generation (24 bits), bumped on every reuse
    uint32_t ops = 0;           // SQEs naming this slot not yet completed
    SocketId sock = 0;
    Endpoint peer;
    uint64_t last_ns = 0;
    uint8_t* out = nullptr;
    uint32_t head = 0, tail = 0, wrap_end = 0, inflight = 0;
    uint32_t queued = 0;      // bytes in the buffer, in flight included
    uint32_t hiwater = 0;     // highest offset written since the slot was taken
    bool dirty = false;       // in dirty_, to be sent at flush()
    uint32_t next_free = 0;
    sockaddr_in addr{};       // connect() target; read by the kernel at submission
  };

  struct Sock {
    int fd = -1;  // -1 for a tcp client spec (each connection has its own socket)
    Transport transport = Transport::udp;
    bool server = true;
    bool armed = false;
    Endpoint bind;  // spec's bind address; tcp client connections bind to it
  };

  // Datapath helpers (uring_datapath.cc).
  io_uring_sqe* sqe();
  void return_buffers();
  uint32_t reap(RxItem* out, uint32_t n);
  void handle(const io_uring_cqe& c, RxItem* out, uint32_t& k);
  void arm_udp(SocketId s);
  void arm_accept(SocketId s);
  void arm_recv(uint32_t slot);
  void arm_send(uint32_t slot);
  void arm_wake();
  void op_done(uint32_t slot);
  ConnId conn_id(uint32_t slot) const { return ConnId(conns_[slot].gen) << 24 | slot; }
  Conn* find(ConnId c);
  uint32_t alloc_conn();
  void user_closed(uint32_t slot, CloseReason r);
  void teardown(uint32_t slot);
  void sweep_idle(uint64_t now);
  void emit_pending(RxItem* out, uint32_t& k, uint32_t n);
  void enter(unsigned wait_nr, int64_t timeout_ns);

  unsigned id_ = 0;
  IoConfig cfg_;
  uring::RingPlan plan_;
  io_uring ring_{};
  bool ring_ok_ = false;
  IoCounters counters_;

  std::vector<Sock> socks_;
  msghdr recv_msg_{};  // multishot recvmsg template: name = sockaddr_in, no control

  uring::BufRing udp_;
  uring::BufRing tcp_;

  // Datagram tx slots: tx_count x max_datagram bytes, MAP_NORESERVE; LIFO free list so the
  // hot slots stay resident.
  uint8_t* tx_mem_ = nullptr;
  size_t tx_mem_bytes_ = 0;
  uint32_t tx_stride_ = 0;
  std::vector<TxSlot> tx_;
  uint32_t tx_free_ = ~0u;
  uint32_t res_slot_ = ~0u;   // open datagram reservation
  SocketId res_sock_ = 0;
  ConnId res_conn_ = kNoConn;  // open stream reservation
  uint32_t res_len_ = 0;
  uint32_t res_pos_ = 0;       // offset of the open stream reservation in its buffer

  // Connections. out_mem_: max_conns x 2 x conn_out_limit bytes, MAP_NORESERVE; pages are
  // touched only as output queues up and released (MADV_DONTNEED) when a slot is freed
  // after holding more than kOutKeepBytes.
  uint8_t* out_mem_ = nullptr;
  size_t out_mem_bytes_ = 0;
  size_t out_stride_ = 0;
  std::vector<Conn> conns_;
  uint32_t conn_free_ = ~0u;
  uint32_t conns_used_ = 0;
  // stream_closed items not yet delivered (at most one per slot: reserved max_conns).
  std::vector<RxItem> closed_pending_;
  size_t closed_head_ = 0;
  std::vector<uint32_t> dirty_;  // slots with output to send at flush() (reserved max_conns)
  uint64_t now_ns_ = 0;          // CLOCK_MONOTONIC at the start of the current poll()
  uint64_t next_sweep_ns_ = 0;

  // Wake-up: wake() writes the eventfd; a read of it is kept armed in the ring.
  int wake_fd_ = -1;
  uint64_t wake_buf_ = 0;
  bool wake_armed_ = false;
  bool woken_ = false;
};

class UringBackend {
 public:
  using Worker = UringWorker;

  // Whether this process can use io_uring with the features the backend needs (ring
  // set-up, buffer rings, multishot recvmsg). The error says why not.
  static Result<void> probe();
  static Result<std::unique_ptr<UringBackend>> create(const IoConfig& cfg,
                                                      std::span<const SocketSpec> specs);
  ~UringBackend();
  // Called on worker thread i: creates its ring (SINGLE_ISSUER binds it to this thread),
  // registers its buffer rings and arms its sockets.
  Result<std::unique_ptr<UringWorker>> open_worker(unsigned i);
  Endpoint bound(SocketId s) const { return bound_.at(s); }
  static const char* name() { return "io_uring"; }
  // One line for the start-up log: ring flags in use and buffer sizing.
  const std::string& features() const { return features_; }
  const uring::RingPlan& plan() const { return plan_; }

 private:
  UringBackend() = default;

  IoConfig cfg_;
  std::vector<SocketSpec> specs_;
  std::vector<Endpoint> bound_;
  // fds_[w][s]: worker w's socket for spec s (client TCP specs have -1: per connection).
  // Ownership moves to the worker in open_worker(); the rest are closed by the destructor.
  std::vector<std::vector<int>> fds_;
  uring::RingPlan plan_;
  std::string features_;
};

static_assert(Backend<UringBackend>);

}  // namespace cw::dp
