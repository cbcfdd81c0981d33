// The epoll backend: the portable kernel-socket fallback (laptops, CI, kernels without
// io_uring) and the reference behaviour for the io_uring backend. One epoll instance per
// worker, all level-triggered (see "Readiness" below); UDP via recvmmsg/sendmmsg; TCP via
// accept4/recv/sendmsg with per-connection output queues (dataplane/kernel/).
//
// Files: epoll_setup.cc opens and allocates (may fail, may allocate); epoll_datapath.cc is
// the per-poll path (no allocation except the output-chunk pool warming up, no exceptions).
//
// Readiness. Every descriptor is registered level-triggered. A poll() stops early when its
// item array or its rx arena is full; whatever was not read stays ready and is reported by
// the next epoll_wait, so no work is lost. Dispatch starts at a rotating position in the
// event list, so a busy socket cannot starve the others. Listeners accept up to the free
// items per poll; a connection gets one read per poll (fairness between connections).
// EPOLLOUT is armed only while a connection's kernel send buffer is full. wake() writes an
// eventfd that sits in the epoll set; a blocking poll never sleeps past the next idle sweep
// (kernel::ConnTable::sweep_idle) while connections are open.
//
// Receive memory. A per-worker arena of rx_buffers x rx_buffer_size bytes is bump-allocated
// during a poll and reused by the next one, so RxItem data is valid until the next poll().
// Each UDP datagram gets a rx_buffer_size slot; the datagram may spill into a max_datagram
// sized "large" slot (kRxLargeSlots per poll), in which case it is made contiguous there
// (one copy of rx_buffer_size bytes, large datagrams only). Datagrams above max_datagram
// are dropped and counted (rx_truncated); a truncated datagram is never delivered.
// Datagrams the kernel dropped because a socket's receive queue was full are counted in
// rx_no_buffer: poll() reads each UDP socket's kernel drop count (SO_MEMINFO) at most once
// per kernel::kDropSamplePeriodNs and adds what is new.
//
// Transmit. Datagrams wait in a per-worker list until flush(), which sends each run of
// same-socket datagrams with one sendmmsg and frees their buffers (the kernel copied
// them). A full socket send buffer (EAGAIN) drops the rest of the run: counted in
// tx_errors, as are datagrams the kernel refuses (EMSGSIZE, ...). Stream output is
// written at flush() straight from the output chunks (sendmsg, scatter-gather).
//
// Flow control. pause() drops EPOLLIN/EPOLLRDHUP from the connection's mask (EPOLLOUT stays
// while output is blocked; errors and resets are always reported and close it); nothing is
// held in user space, so resume() only restores the mask and the kernel's buffer delivers
// the rest. The shared slot table (kernel::ConnTable) keeps the owed items.
//
// Connections. close() and peer EOF both "drain": queued output is still sent, then the
// socket is shut down and closed and stream_closed follows (reason local / peer). A half-
// closed peer (EOF) can still receive replies to what it sent before: replies queued before
// the next flush() go out first. Resets and errors close at once (output dropped).
#pragma once

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "dataplane/io.hh"
#include "dataplane/kernel/conn_table.hh"
#include "dataplane/kernel/mem_map.hh"
#include "dataplane/kernel/out_buffer.hh"
#include "dataplane/kernel/sockets.hh"
#include "dataplane/kernel/tx_pool.hh"
#include "dataplane/kernel/udp_gso.hh"

namespace cw::dp {

namespace epoll_limits {
inline constexpr uint32_t kMaxEvents = 256;              // epoll_wait batch
inline constexpr uint32_t kRxBatch = 32;                 // datagrams per recvmmsg
inline constexpr uint32_t kRxLargeSlots = 64;            // datagrams > rx_buffer_size per poll
inline constexpr uint32_t kStreamReadBytes = 64 * 1024;  // most bytes per connection read
inline constexpr uint32_t kStreamReadMinBytes = 512;     // stop reading below this arena room
inline constexpr uint32_t kAcceptBatch = 64;             // accept4 calls per listener per poll
inline constexpr uint32_t kIovMax = 64;                  // chunks per sendmsg
inline constexpr uint32_t kSendmmsgMax = 1024;           // datagrams per sendmmsg (UIO_MAXIOV)
inline constexpr uint32_t kDiscardReads = 4;             // reads of unread input before close
}  // namespace epoll_limits

class EpollBackend;

class EpollWorker {
 public:
  ~EpollWorker();
  EpollWorker(const EpollWorker&) = delete;
  EpollWorker& operator=(const EpollWorker&) = delete;

  // ---- WorkerIo (owner thread only, except wake) ----------------------------------------
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
  void stop_accepting();  // epoll_setup.cc: control path, once per drain
  const IoCounters& counters() const { return counters_; }
  unsigned worker_id() const { return id_; }

 private:
  friend class EpollBackend;
  EpollWorker(unsigned id, const IoConfig& cfg);
  Result<void> setup(std::vector<kernel::Fd> fds, std::span<const SocketSpec> specs);

  struct Sock {
    int fd = -1;  // owned via fds_
    Transport transport = Transport::udp;
    bool server = true;
    Endpoint bind;
    uint32_t drops_seen = 0;  // udp: the kernel's drop count already added (socket_drops)
  };
  // The backend's part of a connection slot.
  struct ConnExtra {
    kernel::OutBuffer out;  // queued stream output
    uint32_t dirty_prev = kernel::kNilSlot, dirty_next = kernel::kNilSlot;
    uint32_t events = 0;  // epoll mask currently registered
    bool dirty = false;   // on the dirty list (output or a drain to finish at flush)
  };
  using Conns = kernel::ConnTable<ConnExtra>;
  using Slot = Conns::Slot;
  enum class Res : uint8_t { none, dgram, stream };

  // datapath helpers (epoll_datapath.cc)
  uint32_t drain_notify(RxItem* out, uint32_t room);
  static uint32_t read_mask(const Slot& s);
  uint32_t rx_udp(SocketId s, RxItem* out, uint32_t room);
  uint32_t rx_udp_batch(SocketId s, RxItem* out, uint32_t room, bool* full);
  uint32_t accept_some(SocketId s, RxItem* out, uint32_t room);
  uint32_t conn_event(ConnId c, uint32_t ev, RxItem* out, uint32_t room);
  bool read_conn(uint32_t slot, RxItem* out);
  void write_conn(uint32_t slot);
  void begin_drain(uint32_t slot, CloseReason r);
  void finish_drain(uint32_t slot);
  void zombify(uint32_t slot, CloseReason r);
  void set_events(uint32_t slot, uint32_t ev);
  void mark_dirty(uint32_t slot);
  void unmark_dirty(uint32_t slot);
  void send_datagrams();
  void send_run(int fd, uint32_t first, uint32_t count);
  void send_gso();
  void send_gso_run(int fd, uint32_t first, uint32_t count);
  int wait(int64_t timeout_ns);
  void sample_drops();
  uint32_t rx_room() const { return uint32_t(rx_arena_.size() - rx_used_); }

  // hot state first
  alignas(64) IoCounters counters_;
  unsigned id_;
  IoConfig cfg_;
  uint64_t now_ns_ = 0;
  uint64_t idle_ns_ = 0;
  uint64_t drops_due_ns_ = 0;  // next kernel drop sample (sample_drops) at or after this
  uint32_t rotate_ = 0;        // where event dispatch starts (fairness; see poll)
  int epfd_ = -1, evfd_ = -1;  // owned via epfd_owner_/evfd_owner_
  std::vector<Sock> socks_;

  // receive
  kernel::MemMap rx_arena_;    // rx_buffers * rx_buffer_size, reused every poll
  size_t rx_used_ = 0;         // bytes handed out in this poll
  kernel::MemMap rx_large_;    // kRxLargeSlots * large_stride_
  uint32_t large_stride_ = 0;  // 0 = no large path (max_datagram <= rx_buffer_size)
  uint32_t large_used_ = 0;    // large slots handed out in this poll
  uint32_t large_order_[epoll_limits::kRxLargeSlots];  // permutation: [0, large_used_) used
  mmsghdr rx_msgs_[epoll_limits::kRxBatch];
  iovec rx_iov_[epoll_limits::kRxBatch][2];
  sockaddr_in rx_addr_[epoll_limits::kRxBatch];
  epoll_event events_[epoll_limits::kMaxEvents];

  // datagram transmit: committed sends waiting for flush(), in commit order
  kernel::TxPool tx_pool_;
  uint32_t tx_n_ = 0, tx_cap_ = 0;
  std::unique_ptr<mmsghdr[]> tx_msgs_;
  std::unique_ptr<iovec[]> tx_iov_;
  std::unique_ptr<sockaddr_in[]> tx_addr_;
  std::unique_ptr<uint32_t[]> tx_buf_;
  std::unique_ptr<SocketId[]> tx_sock_;
  // UDP GSO (kernel/udp_gso.hh): at flush, the committed datagrams are gathered into trains
  // per destination; gso_out_ lists the sends in order (a train index, or kGsoSingle + the
  // datagram's index), gso_msgs_ their headers for sendmmsg. gso_on_ drops for good if the
  // kernel refuses a train (its datagrams are then sent alone).
  static constexpr uint32_t kGsoSingle = 1u << 31;
  kernel::GsoTrains gso_;
  bool gso_on_ = false;
  std::unique_ptr<uint32_t[]> gso_out_;
  std::unique_ptr<mmsghdr[]> gso_msgs_;

  // the open reservation
  Res res_ = Res::none;
  SocketId res_sock_ = 0;
  Endpoint res_to_;
  uint32_t res_buf_ = 0, res_len_ = 0;
  ConnId res_conn_ = kNoConn;

  // connections
  Conns conns_;
  kernel::OutChunkPool out_pool_;
  uint32_t dirty_head_ = kernel::kNilSlot;

  // ownership of descriptors (closed last, after connections)
  std::vector<kernel::Fd> fds_;
  kernel::Fd epfd_owner_, evfd_owner_;
  kernel::Fd spare_fd_;  // released to accept-and-close when out of descriptors (EMFILE)
};

class EpollBackend {
 public:
  using Worker = EpollWorker;
  static Result<std::unique_ptr<EpollBackend>> create(const IoConfig& cfg,
                                                      std::span<const SocketSpec> specs);
  // Worker thread i: builds worker i's epoll instance and buffers; takes its sockets.
  Result<std::unique_ptr<EpollWorker>> open_worker(unsigned i);
  Endpoint bound(SocketId s) const { return sockets_.bound(s); }
  static const char* name() { return "epoll"; }

 private:
  IoConfig cfg_;
  std::vector<SocketSpec> specs_;
  kernel::SocketSet sockets_;
};

static_assert(Backend<EpollBackend>);

}  // namespace cw::dp
