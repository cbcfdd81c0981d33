// io_uring backend: one ring per worker, created on the worker's thread.
//
//   UDP   one SO_REUSEPORT socket per worker and spec; a multishot recvmsg per socket draws
//         from the worker's datagram buffer ring (group kUdpGroup); consecutive datagrams to
//         one destination leave as one UDP GSO sendmsg (dataplane/kernel/udp_gso.hh), any
//         other datagram as its own send SQE (sendto, or sendmsg on kernels without it);
//         flush() submits them all in one io_uring_enter, which also collects completions.
//   TCP   one SO_REUSEPORT listener per worker (multishot accept); a connection lives on the
//         worker that accepted (or connected, IORING_OP_CONNECT) it; multishot recv draws
//         from the stream buffer ring (group kTcpGroup); output is queued in a bounded
//         per-connection chunk queue and gathered into one send (sendmsg when it spans
//         chunks), at most one in flight.
//   Shared with the epoll backend (dataplane/kernel/): socket set-up, the connection slot
//   table, the per-connection output chunks and the datagram tx pool.
//
// Flow control: pause() cancels the connection's multishot recv; stream buffers the kernel
// filled before the cancel took effect are held on the connection (a chain through
// held_next_, no allocation) and handed out after stream_resumed, before anything newer:
// while a chain exists, new bytes join its end.
//
// Buffer lifetimes: receive buffers are handed out in RxItems and go back to their buffer
// ring at the start of the next poll(). Tx buffers belong to the kernel from commit until
// the send's CQE. A connection slot is reused only once every SQE that names it has
// completed and its stream_closed item was handed out.
//
// Setup (probe, create, open_worker, ring and buffer-ring set-up) is in uring_setup.cc; the
// datapath (poll, reserve/commit, flush, connect, close, wake) is in uring_datapath.cc.
#pragma once

#include <liburing.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dataplane/io.hh"
#include "dataplane/kernel/conn_table.hh"
#include "dataplane/kernel/out_buffer.hh"
#include "dataplane/kernel/sockets.hh"
#include "dataplane/kernel/tx_pool.hh"
#include "dataplane/kernel/udp_gso.hh"
#include "dataplane/result.hh"
#include "dataplane/uring/moderation.hh"

namespace cw::dp {

namespace uring {

// What a worker ring was set up with; decided once by UringBackend::create (probe of the
// running kernel) and logged by the caller through UringBackend::features().
struct RingPlan {
  unsigned setup_flags = 0;  // IORING_SETUP_* actually accepted by the kernel
  unsigned sq_entries = 0;
  unsigned cq_entries = 0;
  // Completions appear only when the worker enters the kernel (DEFER_TASKRUN or
  // COOP_TASKRUN); otherwise task work interrupts the worker and the CQ fills by itself.
  bool enter_for_completions = false;
  // IORING_SQ_TASKRUN in the SQ flags says when completion work is waiting: an empty busy
  // poll need not enter the kernel (it still does every kForcedEnterPolls polls).
  bool taskrun_flag = false;
  bool ring_fd_registered = false;  // per worker: enter via the registered ring index
  // Datagrams go out as IORING_OP_SEND with a destination address (sendto) when the kernel
  // takes one; else as IORING_OP_SENDMSG (the kernel then also copies a msghdr per send).
  bool send_to = false;
  // UDP_SEGMENT is available and IoConfig::udp_gso asks for it.
  bool udp_gso = false;
  // UDP_GRO is set on the UDP sockets: IoConfig::udp_gro asks for it, the kernel has it and
  // a receive buffer holds the largest run (max_datagram >= kernel::kGroMaxPayload).
  bool udp_gro = false;
};

// SQE user_data: [63..56] op, [55..32] generation, [31..0] index. For connection ops the
// generation is the slot's (ConnSlot::gen), checked on every CQE.
enum class Op : uint8_t {
  none = 0,
  udp_recv,  // index = SocketId
  udp_send,  // index = tx pool buffer
  accept,    // index = SocketId
  tcp_recv,  // index = connection slot
  tcp_send,  // index = connection slot
  connect,   // index = connection slot
  cancel,    // index = connection slot (result ignored)
  wake,      // eventfd read
  udp_gso,   // index = GSO train (kernel::GsoTrains)
};
inline constexpr uint64_t pack(Op op, uint32_t index, uint32_t gen = 0) {
  return uint64_t(op) << 56 | uint64_t(gen & 0xFFFFFFu) << 32 | index;
}
inline constexpr Op op_of(uint64_t ud) {
  return Op(ud >> 56);
}
inline constexpr uint32_t index_of(uint64_t ud) {
  return uint32_t(ud);
}
inline constexpr uint32_t gen_of(uint64_t ud) {
  return uint32_t(ud >> 32) & 0xFFFFFFu;
}

// Buffer group ids registered on every worker ring.
inline constexpr uint16_t kUdpGroup = 0;
inline constexpr uint16_t kTcpGroup = 1;

// Datagram receive buffers hold a whole datagram of up to IoConfig::max_datagram bytes
// (plus ~100 bytes of recvmsg header, address and control), so nothing up to max_datagram
// is ever truncated: a multishot receive cannot pick a buffer size per datagram, so one
// size fits all. They are mapped MAP_NORESERVE: a small datagram touches one page of its
// buffer, so resident memory is ~4 KiB per buffer and grows toward count x 64 KiB only
// under large datagrams. The count is min(IoConfig::rx_buffers, kUdpRxVirtualBudget /
// buffer size), rounded down to a power of two. With the defaults: 512 buffers of 65,600
// bytes = 32 MiB of address space, ~2 MiB resident per worker for small datagrams.
// (IoConfig::rx_buffer_size sizes the stream buffers: rx_buffers x rx_buffer_size.)
inline constexpr size_t kUdpRxVirtualBudget = size_t(64) << 20;
inline constexpr uint32_t kMinRxBuffers = 2;
inline constexpr uint32_t kMaxRingBuffers = 32768;  // buffer ring entries limit (bid is u16)
// SQ depth; a commit that finds the SQ full submits early (one extra enter per 1024 SQEs).
inline constexpr unsigned kSqEntries = 1024;
inline constexpr unsigned kMaxCqEntries = 65536;
// iovecs per stream send (output chunks gathered into one sendmsg).
inline constexpr unsigned kSendIov = 8;
// Reads of unread input discarded before closing a drained connection (closing with unread
// input would reset it and lose output still in flight).
inline constexpr unsigned kDiscardReads = 16;
// A listener whose accept failed for want of resources (EMFILE, ENFILE, ENOMEM, ENOBUFS)
// pauses this long before accepting again, instead of spinning on the same failure.
inline constexpr uint64_t kAcceptBackoffNs = 10'000'000;
// Busy-poll with TASKRUN_FLAG: polls that skip io_uring_enter on a clear flag before one
// enters anyway (a safety net should the kernel leave work without raising the flag).
inline constexpr uint32_t kForcedEnterPolls = 64;
// Interrupt moderation: completions to wait for before waking while arrivals cluster.
inline constexpr unsigned kCoalesceBatch = 16;

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

// Per-connection io_uring state, kept in the shared connection table's slot (ConnSlot::x).
// Every SQE naming the slot counts in `ops`; the slot's fd is closed, and the slot becomes
// a zombie owing its stream_closed item, only when ops is 0 -- so no CQE can ever reach a
// reused slot (the user_data generation check is a second guard).
inline constexpr uint32_t kNoHeld = ~uint32_t{0};
struct UringConnOps {
  kernel::OutBuffer out;    // queued output; the first `inflight` bytes are the kernel's
  uint32_t inflight = 0;    // bytes of the send in flight (at most one per connection)
  uint32_t ops = 0;         // SQEs naming this slot not yet completed
  bool recv_armed = false;  // multishot recv outstanding
  bool send_armed = false;
  bool closing = false;   // teardown started: cancel sent, no new SQEs
  bool dirty = false;     // in dirty_, output to send at flush()
  bool graceful = false;  // drained: FIN sent; unread input is discarded before close
  uint32_t held_head = kNoHeld, held_tail = kNoHeld;  // stream buffers held (pause)
  msghdr msg{};  // the in-flight sendmsg (output in several chunks); the kernel's until its CQE
  iovec iov[uring::kSendIov]{};
  sockaddr_in addr{};  // connect() target
};

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
  void pause(ConnId c);
  void resume(ConnId c);
  uint32_t queued(ConnId c) const;
  void notify_writable(ConnId c);
  void flush();
  void wake();
  void stop_accepting();  // uring_setup.cc: control path, once per drain
  const IoCounters& counters() const { return counters_; }
  unsigned worker_id() const { return id_; }

  // Receive buffers in the datagram group (after clamping to the memory budget).
  uint32_t udp_rx_buffers() const { return udp_.count; }
  // Connection slots in use (including ones draining, tearing down or owing stream_closed).
  uint32_t conns_in_use() const { return conns_.in_use(); }

 private:
  friend class UringBackend;
  using Conns = kernel::ConnTable<UringConnOps>;
  explicit UringWorker(uint32_t max_conns) : conns_(max_conns) {}

  // The sendmsg header of one datagram tx buffer (TxPool index); read by the kernel from
  // commit until the send's CQE.
  struct TxMsg {
    msghdr msg;
    iovec iov;
    sockaddr_in to;
  };

  struct Sock {
    kernel::Fd fd;  // invalid for a tcp client spec (each connection has its own socket)
    Transport transport = Transport::udp;
    bool server = true;
    Endpoint bind;             // spec's bind address; tcp client connections bind to it
    uint32_t drops_seen = 0;   // udp: the kernel's drop count already added (socket_drops)
    uint64_t rearm_at_ns = 0;  // tcp listener: accept paused (out of fds/memory) until then
  };

  // Datapath helpers (uring_datapath.cc).
  io_uring_sqe* sqe();
  void return_buffers();
  uint32_t reap(RxItem* out, uint32_t n);
  void handle(const io_uring_cqe& c, RxItem* out, uint32_t n, uint32_t& k);
  void on_udp_recv(const io_uring_cqe& c, RxItem* out, uint32_t n, uint32_t& k);
  uint32_t gro_segment(io_uring_recvmsg_out* o, uint32_t len);
  void emit_run(RxItem* out, uint32_t n, uint32_t& k);
  void on_accept(const io_uring_cqe& c, RxItem* out, uint32_t& k);
  void on_tcp_recv(const io_uring_cqe& c, RxItem* out, uint32_t& k);
  void on_tcp_send(const io_uring_cqe& c);
  void on_connect(const io_uring_cqe& c, RxItem* out, uint32_t& k);
  void arm_udp(SocketId s);
  void arm_accept(SocketId s);
  void arm_recv(uint32_t slot);
  void arm_send(uint32_t slot);
  void arm_wake();
  void recycle(uring::BufRing& br, const io_uring_cqe& c);
  void send_one(SocketId s, uint32_t b, uint32_t n);
  void submit_train(uint32_t t);
  void on_gso_send(const io_uring_cqe& c);
  void mark_dirty(uint32_t slot);
  void begin_drain(uint32_t slot, CloseReason why);
  void finish_drain(uint32_t slot);
  void teardown(uint32_t slot, CloseReason why);
  void maybe_finish(uint32_t slot);
  void emit_closed(RxItem* out, uint32_t& k, uint32_t n);
  void hold(uint32_t slot, uint16_t bid, uint32_t len);
  bool take_held(uint32_t slot, RxItem& it);
  void drop_held(uint32_t slot);
  void enter(unsigned wait_nr, int64_t timeout_ns);
  void resume_accepts(uint64_t now);
  void sample_drops(uint64_t now);

  unsigned id_ = 0;
  IoConfig cfg_;
  uring::RingPlan plan_;
  io_uring ring_{};
  bool ring_ok_ = false;
  pid_t owner_tid_ = 0;  // thread that created (and submits to) the ring
  IoCounters counters_;

  std::vector<Sock> socks_;
  // Multishot recvmsg template: name = sockaddr_in, control = room for the UDP_GRO cmsg
  // when plan_.udp_gro. Each buffer holds io_uring_recvmsg_out, name, control, payload.
  msghdr recv_msg_{};
  // A UDP_GRO run not yet wholly handed out (poll() ran out of room): its next datagram,
  // the bytes left, the datagram size, and the buffer that goes back after the last one.
  // While one is pending, reap() takes no completions: the run's order is kept.
  struct GroRun {
    const uint8_t* next = nullptr;
    uint32_t left = 0;
    uint32_t seg = 0;
    uint16_t bid = 0;
    SocketId sock = 0;
    Endpoint peer{};
  };
  GroRun gro_;

  uring::BufRing udp_;
  uring::BufRing tcp_;

  // Datagram tx buffers (shared pool) and their sendmsg headers, by pool index.
  kernel::TxPool tx_;
  std::vector<TxMsg> txmsg_;
  uint32_t res_buf_ = kernel::kNoTxBuf;  // open datagram reservation
  SocketId res_sock_ = 0;
  ConnId res_conn_ = kNoConn;  // open stream reservation
  uint32_t res_len_ = 0;
  // UDP GSO trains (gathering, or in flight until their CQE). gso_on_ starts as
  // plan_.udp_gso and drops for good if the kernel refuses a train (then every datagram
  // goes alone; the refused train is resent datagram by datagram).
  kernel::GsoTrains gso_;
  bool gso_on_ = false;

  // Connections (shared slot table), their output chunks, and the slots with new output.
  Conns conns_;
  kernel::OutChunkPool chunks_;
  std::vector<uint32_t> dirty_;  // reserved max_conns at setup
  // Stream buffers held for paused connections, by buffer id: the next in the chain and
  // the byte count. Sized to the stream buffer ring at setup.
  std::vector<uint16_t> held_next_;
  std::vector<uint32_t> held_len_;
  // CLOCK_MONOTONIC ns, read by poll() while connections or UDP sockets exist and at each
  // accept.
  uint64_t now_ns_ = 0;
  // Kernel drop counters (rx_no_buffer): UDP sockets are sampled at poll() once this is due.
  uint32_t udp_socks_ = 0;
  uint64_t drops_due_ns_ = 0;

  // Wake-up: wake() writes the eventfd; a read of it is kept armed in the ring.
  kernel::Fd wake_fd_;
  uint64_t wake_buf_ = 0;
  bool woken_ = false;
  uring::Moderator moderator_;   // interrupt moderation (IoConfig::coalesce_us)
  uint32_t skipped_enters_ = 0;  // busy polls that did not enter (see kForcedEnterPolls)
  uint32_t accepts_paused_ = 0;  // listeners waiting out kAcceptBackoffNs
};

class UringBackend {
 public:
  using Worker = UringWorker;

  // Whether this process can use io_uring with the features the backend needs (ring
  // set-up, buffer rings, multishot recvmsg). The error says why not.
  static Result<void> probe();
  static Result<std::unique_ptr<UringBackend>> create(const IoConfig& cfg,
                                                      std::span<const SocketSpec> specs);
  // Called on worker thread i: creates its ring (SINGLE_ISSUER binds it to this thread),
  // registers its buffer rings and arms its sockets.
  Result<std::unique_ptr<UringWorker>> open_worker(unsigned i);
  Endpoint bound(SocketId s) const { return sockets_.bound(s); }
  static const char* name() { return "io_uring"; }
  // One line for the start-up log: ring flags in use and buffer sizing.
  const std::string& features() const { return features_; }
  const uring::RingPlan& plan() const { return plan_; }
  // Tests: send datagrams with IORING_OP_SENDMSG even where sendto is available (the
  // fallback path stays covered). Before open_worker().
  void force_sendmsg() { plan_.send_to = false; }

 private:
  UringBackend() = default;

  IoConfig cfg_;
  std::vector<SocketSpec> specs_;
  // Every worker's sockets; open_worker(i) takes row i (once: opened_[i]).
  kernel::SocketSet sockets_;
  // One byte per worker, sized in create(): open_worker() runs on every worker thread at
  // once, so each touches only its own element (a vector<bool> would share words).
  std::vector<uint8_t> opened_;
  uring::RingPlan plan_;
  std::string features_;
};

static_assert(Backend<UringBackend>);

}  // namespace cw::dp
