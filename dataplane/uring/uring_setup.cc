// io_uring backend set-up: kernel probe, socket opening, per-worker ring and buffer rings.
// Everything here may allocate and fail; errors come back as one line saying what and why.
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <thread>

#include "dataplane/uring/uring_io.hh"

namespace cw::dp {

namespace {

std::string errstr(int err) {
  return std::strerror(err < 0 ? -err : err);
}

// Why io_uring_setup failed, in words an operator can act on.
std::string setup_failure(int err) {
  int disabled = -1;
  if (FILE* f = std::fopen("/proc/sys/kernel/io_uring_disabled", "r")) {
    if (std::fscanf(f, "%d", &disabled) != 1) disabled = -1;
    std::fclose(f);
  }
  if (disabled == 2) return "disabled by sysctl kernel.io_uring_disabled=2";
  if (disabled == 1 && err == -EPERM)
    return "restricted by sysctl kernel.io_uring_disabled=1 (process not in io_uring_group)";
  if (err == -ENOSYS) return "io_uring_setup: not implemented (old kernel or blocked by seccomp)";
  if (err == -EPERM) return "io_uring_setup: operation not permitted (seccomp or container policy)";
  if (err == -ENOMEM) return "io_uring_setup: out of memory (RLIMIT_MEMLOCK?)";
  return "io_uring_setup: " + errstr(err);
}

void* map_anon(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

size_t round_up(size_t v, size_t a) {
  return (v + a - 1) / a * a;
}

// Sets up a ring with the given flags; returns 0 or -errno.
int init_ring(io_uring* ring, unsigned sq, unsigned cq, unsigned flags) {
  io_uring_params p{};
  p.flags = flags | IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
  p.cq_entries = cq;
  return io_uring_queue_init_params(sq, ring, &p);
}

// Flag sets to try, best first (the same for busy-poll and interrupt mode, see below).
//   DEFER_TASKRUN (6.1, needs SINGLE_ISSUER): completion work runs only when the worker
//     enters the kernel, batched, in its own context: no IPI or signal-like task work into a
//     running worker. Interrupt mode: fewer, fuller wake-ups. This measured better than
//     spinning on the CQ with plain rings, where every packet's completion interrupts the
//     worker with an IPI (ping-pong p50 about 1.5x worse on the shared 2-core test machine).
//   TASKRUN_FLAG: the kernel sets IORING_SQ_TASKRUN in the shared SQ flags when completion
//     work is waiting, so a busy-polling worker spins on that word and enters the kernel
//     only when there is something to run (an empty io_uring_enter costs ~0.5 us in a VM).
//     Taken with DEFER_TASKRUN where the kernel allows the pair, else with COOP_TASKRUN
//     (5.19), which has no IPIs either.
//   SUBMIT_ALL (5.18): one bad SQE does not stop the rest of a batch.
// SQPOLL is never used: its kernel thread would burn a second core per worker.
constexpr unsigned kFlagSets[] = {
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
        IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_SUBMIT_ALL,
    IORING_SETUP_SUBMIT_ALL,
    0,
};

std::string flag_names(unsigned f) {
  std::string s;
  auto add = [&](unsigned bit, const char* name) {
    if (!(f & bit)) return;
    if (!s.empty()) s.push_back('|');
    s.append(name);
  };
  add(IORING_SETUP_SINGLE_ISSUER, "SINGLE_ISSUER");
  add(IORING_SETUP_DEFER_TASKRUN, "DEFER_TASKRUN");
  add(IORING_SETUP_COOP_TASKRUN, "COOP_TASKRUN");
  add(IORING_SETUP_TASKRUN_FLAG, "TASKRUN_FLAG");
  add(IORING_SETUP_SUBMIT_ALL, "SUBMIT_ALL");
  return s.empty() ? "none" : s;
}

Result<void> setup_buf_ring(io_uring* ring, uring::BufRing& br, uint16_t bgid, uint32_t count,
                            uint32_t size) {
  br.bgid = bgid;
  br.count = count;
  br.size = size;
  br.mask = io_uring_buf_ring_mask(count);
  br.ring_bytes = round_up(size_t(count) * sizeof(io_uring_buf), 4096);
  br.ring = static_cast<io_uring_buf_ring*>(map_anon(br.ring_bytes));
  br.mem_bytes = round_up(size_t(count) * size, 4096);
  br.mem = static_cast<uint8_t*>(map_anon(br.mem_bytes));
  if (!br.ring || !br.mem) return make_error("io_uring: cannot map receive buffers");
  io_uring_buf_ring_init(br.ring);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uintptr_t>(br.ring);
  reg.ring_entries = count;
  reg.bgid = bgid;
  const int r = io_uring_register_buf_ring(ring, &reg, 0);
  if (r != 0) return make_error("io_uring: register buffer ring: " + errstr(r));
  for (uint32_t i = 0; i < count; ++i) br.give_back(uint16_t(i), int(i));
  io_uring_buf_ring_advance(br.ring, int(count));
  br.out.assign(count, 0);
  br.nout = 0;
  return {};
}

void free_buf_ring(uring::BufRing& br) {
  if (br.ring) munmap(br.ring, br.ring_bytes);
  if (br.mem) munmap(br.mem, br.mem_bytes);
  br.ring = nullptr;
  br.mem = nullptr;
}

// Cancels every request on the ring and reaps the completions on this (the owning) thread
// before the ring is torn down. Without this, io_uring_queue_exit leaves the cancellations
// to a kernel worker that queues their completion work to this thread as signal-like task
// work, which later interrupts an unrelated blocking syscall of the thread with EINTR.
void quiesce_ring(io_uring* ring) {
  io_uring_sqe* e = io_uring_get_sqe(ring);
  if (!e) {
    io_uring_submit(ring);
    e = io_uring_get_sqe(ring);
  }
  if (!e) return;
  io_uring_prep_cancel64(e, 0, IORING_ASYNC_CANCEL_ANY | IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(e, 0);
  io_uring_submit(ring);
  // Bounded: a few short waits until nothing more completes.
  for (int round = 0; round < 50; ++round) {
    __kernel_timespec ts{0, 10'000'000};
    io_uring_cqe* cqe = nullptr;
    if (io_uring_wait_cqe_timeout(ring, &cqe, &ts) != 0) break;
    unsigned head, n = 0;
    io_uring_for_each_cqe(ring, head, cqe)++ n;
    io_uring_cq_advance(ring, n);
  }
}

// After a ring this thread submitted to is gone, the kernel's ring-exit work sends the
// thread one signal-like task work item (to unlink the ring from the thread's io_uring
// context), a few ms later. Were the thread then blocked in an interruptible wait with a
// timeout (e.g. recv with SO_RCVTIMEO), that call would fail with EINTR. When the owner
// thread destroys its own worker (tests do), take that interruption here instead: wait
// for it in a throwaway recv, bounded by kExitAbsorbMs. Setup/teardown only.
constexpr int kExitAbsorbMs = 100;
void absorb_ring_exit() {
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  timeval tv{0, kExitAbsorbMs * 1000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0) {
    char b;
    [[maybe_unused]] ssize_t r = ::recv(fd, &b, 1, 0);  // EINTR (absorbed) or timeout
  }
  ::close(fd);
}

uint32_t floor_pow2(uint64_t v) {
  return v == 0 ? 0 : uint32_t(std::bit_floor(v));
}

// Room for the one cmsg a datagram receive can carry (UDP_GRO's run size).
constexpr size_t kRecvControl = CMSG_SPACE(sizeof(int));

// Bytes of one datagram receive buffer: recvmsg header, sockaddr_in, control, payload up
// to max_datagram; 64-aligned.
uint32_t udp_buf_size(const IoConfig& cfg) {
  return uint32_t(round_up(
      sizeof(io_uring_recvmsg_out) + sizeof(sockaddr_in) + kRecvControl + cfg.max_datagram, 64));
}
uint32_t udp_buf_count(const IoConfig& cfg) {
  const uint64_t budget = uring::kUdpRxVirtualBudget / udp_buf_size(cfg);
  return std::max(uring::kMinRxBuffers, floor_pow2(std::min<uint64_t>(cfg.rx_buffers, budget)));
}

}  // namespace

// ---- probe ------------------------------------------------------------------------------

namespace {

// The checks that need a live ring; the caller owns and tears down ring and buffers.
Result<void> probe_ring(io_uring& ring, uring::BufRing& br) {
  const unsigned feats = ring.features;
  if (!(feats & IORING_FEAT_NODROP) || !(feats & IORING_FEAT_FAST_POLL) ||
      !(feats & IORING_FEAT_EXT_ARG))
    return make_error("kernel io_uring lacks NODROP/FAST_POLL/EXT_ARG (need Linux >= 5.19)");
  io_uring_probe* p = io_uring_get_probe_ring(&ring);
  if (!p) return make_error("io_uring: opcode probe failed");
  const int need[] = {IORING_OP_RECVMSG, IORING_OP_SENDMSG, IORING_OP_ACCEPT,       IORING_OP_RECV,
                      IORING_OP_SEND,    IORING_OP_CONNECT, IORING_OP_ASYNC_CANCEL, IORING_OP_READ};
  bool ok = true;
  for (int op : need) ok = ok && io_uring_opcode_supported(p, op);
  io_uring_free_probe(p);
  if (!ok) return make_error("kernel io_uring lacks a needed opcode (need Linux >= 6.0)");
  // Provided-buffer ring plus multishot recvmsg (6.0): a datagram to ourselves must arrive
  // through a multishot request that stays armed.
  if (auto b = setup_buf_ring(&ring, br, 0, 2, 256); !b)
    return make_error(b.error().message + " (provided-buffer rings need Linux >= 5.19)");
  auto fd = kernel::open_udp(Endpoint{htonl(INADDR_LOOPBACK), 0}, false);
  if (!fd) return make_error("io_uring probe: " + fd.error().message);
  auto self_ep = kernel::local_endpoint(fd->get());
  if (!self_ep) return make_error("io_uring probe: " + self_ep.error().message);
  msghdr mh{};
  mh.msg_namelen = sizeof(sockaddr_in);
  io_uring_sqe* sqe = io_uring_get_sqe(&ring);
  io_uring_prep_recvmsg_multishot(sqe, fd->get(), &mh, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = 0;
  io_uring_submit(&ring);
  const sockaddr_in self = kernel::to_sockaddr(*self_ep);
  const char ping = 'p';
  sendto(fd->get(), &ping, 1, 0, reinterpret_cast<const sockaddr*>(&self), sizeof self);
  __kernel_timespec ts{1, 0};
  io_uring_cqe* cqe = nullptr;
  const int r = io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
  const bool armed = r == 0 && cqe->res > 0 && (cqe->flags & IORING_CQE_F_MORE);
  const int res = r == 0 ? cqe->res : r;
  fd->reset();  // the ring still holds the file until it is torn down
  if (!armed)
    return make_error("kernel io_uring lacks multishot recvmsg (need Linux >= 6.0): " +
                      errstr(res));
  return {};
}

// Every ring a thread created makes the kernel's ring-exit work queue a signal-like task
// work item to that thread after the ring is gone (to unlink it from the thread's io_uring
// context); it interrupts whatever interruptible wait the thread is in with EINTR. Probe
// rings therefore live on a short-lived thread of their own, never the caller's.
template <class F>
auto on_own_thread(F f) -> decltype(f()) {
  std::optional<decltype(f())> r;
  std::thread([&] { r.emplace(f()); }).join();
  return std::move(*r);
}

Result<void> probe_on_this_thread() {
  io_uring ring;
  const int r = io_uring_queue_init(8, &ring, 0);
  if (r < 0) return make_error(setup_failure(r));
  uring::BufRing br;
  auto ok = probe_ring(ring, br);
  quiesce_ring(&ring);
  io_uring_queue_exit(&ring);
  free_buf_ring(br);
  return ok;
}

// Does IORING_OP_SEND take a destination address (sendto; newer kernels)? A datagram sent
// that way from an unconnected socket must arrive. Runs on a probe thread (see above).
bool probe_send_to() {
  io_uring ring;
  if (io_uring_queue_init(4, &ring, 0) != 0) return false;
  bool ok = false;
  auto a = kernel::open_udp(Endpoint{htonl(INADDR_LOOPBACK), 0}, false);
  auto b = kernel::open_udp(Endpoint{htonl(INADDR_LOOPBACK), 0}, false);
  if (a && b) {
    auto to = kernel::local_endpoint(b->get());
    if (to) {
      const sockaddr_in dst = kernel::to_sockaddr(*to);
      static const char kPing[] = "sendto-probe";
      io_uring_sqe* e = io_uring_get_sqe(&ring);
      io_uring_prep_send(e, a->get(), kPing, sizeof kPing, 0);
      io_uring_prep_send_set_addr(e, reinterpret_cast<const sockaddr*>(&dst), sizeof dst);
      io_uring_submit(&ring);
      __kernel_timespec ts{1, 0};
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe_timeout(&ring, &cqe, &ts) == 0 && cqe->res == int(sizeof kPing)) {
        char got[sizeof kPing] = {};
        ok = ::recv(b->get(), got, sizeof got, MSG_DONTWAIT) == ssize_t(sizeof kPing) &&
             std::memcmp(got, kPing, sizeof kPing) == 0;
      }
    }
  }
  quiesce_ring(&ring);
  io_uring_queue_exit(&ring);
  return ok;
}

}  // namespace

Result<void> UringBackend::probe() {
  return on_own_thread(probe_on_this_thread);
}

// ---- backend ----------------------------------------------------------------------------

Result<std::unique_ptr<UringBackend>> UringBackend::create(const IoConfig& cfg,
                                                           std::span<const SocketSpec> specs) {
  if (cfg.workers == 0) return make_error("io_uring: at least one worker is needed");
  if (cfg.rx_buffers < uring::kMinRxBuffers || !std::has_single_bit(cfg.rx_buffers) ||
      cfg.rx_buffers > uring::kMaxRingBuffers)
    return make_error("runtime.rx_buffers: must be a power of two in [2, 32768]");
  if (cfg.rx_buffer_size < 64 || cfg.rx_buffer_size > (1u << 20))
    return make_error("runtime.rx_buffer_size: must be in [64, 1048576] bytes");
  if (cfg.max_datagram == 0 || cfg.max_datagram > 65535)
    return make_error("runtime.max_datagram: must be in [1, 65535]");
  if (cfg.tx_buffers == 0 || cfg.tx_buffers > (1u << 20))
    return make_error("runtime.tx_buffers: must be in [1, 1048576]");
  if (cfg.max_conns == 0 || cfg.max_conns >= (1u << 24))
    return make_error("runtime.max_conns: must be in [1, 16777215]");
  if (cfg.conn_out_limit == 0 || cfg.conn_out_limit > (1u << 30))
    return make_error("runtime.conn_out_limit: must be in [1, 1 GiB]");
  if (specs.size() > 0xFFFF) return make_error("io_uring: too many sockets");

  std::unique_ptr<UringBackend> b(new UringBackend);
  b->cfg_ = cfg;
  b->specs_.assign(specs.begin(), specs.end());

  // Which ring flags does this kernel take? Try the best set first and fall back on EINVAL.
  const unsigned cq = std::min<unsigned>(
      uring::kMaxCqEntries,
      std::bit_ceil(2u * (udp_buf_count(cfg) + cfg.rx_buffers + cfg.tx_buffers) + 1024u));
  struct Pick {
    int err = 0;
    unsigned flags = 0;
  };
  const Pick pick = on_own_thread([cq] {
    Pick p;
    for (unsigned flags : kFlagSets) {
      io_uring ring;
      p.err = init_ring(&ring, uring::kSqEntries, cq, flags);
      if (p.err == 0) {
        io_uring_queue_exit(&ring);
        p.flags = flags;
        break;
      }
      if (p.err != -EINVAL) break;
    }
    return p;
  });
  if (pick.err != 0) return make_error(setup_failure(pick.err));
  b->plan_.send_to = on_own_thread(probe_send_to);
  b->plan_.udp_gso = cfg.udp_gso && kernel::udp_gso_available();
  b->plan_.udp_gro =
      cfg.udp_gro && cfg.max_datagram >= kernel::kGroMaxPayload && kernel::udp_gro_available();
  b->plan_.setup_flags = pick.flags;
  b->plan_.sq_entries = uring::kSqEntries;
  b->plan_.cq_entries = cq;
  b->plan_.enter_for_completions =
      b->plan_.setup_flags & (IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN);
  b->plan_.taskrun_flag = b->plan_.setup_flags & IORING_SETUP_TASKRUN_FLAG;
  char line[320];
  std::snprintf(line, sizeof line,
                "ring flags %s (busy-poll and interrupt mode), sq %u cq %u; datagram tx %s%s; "
                "udp rx %u x %u B%s, tcp rx %u x %u B, tx %u x %u B + %u x %u B",
                flag_names(b->plan_.setup_flags).c_str(), uring::kSqEntries, cq,
                b->plan_.send_to ? "send+addr" : "sendmsg", b->plan_.udp_gso ? " + gso" : "",
                udp_buf_count(cfg), udp_buf_size(cfg), b->plan_.udp_gro ? " + gro" : "",
                cfg.rx_buffers, cfg.rx_buffer_size, cfg.tx_buffers, kernel::kTxSmallBytes,
                kernel::kTxLargeBuffers, cfg.max_datagram);
  b->features_ = line;

  // Open every socket now so bind errors surface before any thread starts.
  kernel::raise_nofile_limit(kernel::nofile_wanted(cfg, specs.size()));
  auto set = kernel::open_socket_set(specs, cfg.workers);
  if (!set) return set.error();
  b->sockets_ = std::move(*set);
  b->opened_.assign(cfg.workers, 0);
  return b;
}

Result<std::unique_ptr<UringWorker>> UringBackend::open_worker(unsigned i) {
  if (i >= cfg_.workers) return make_error("io_uring: no worker " + std::to_string(i));
  if (opened_[i]) return make_error("io_uring: worker " + std::to_string(i) + " opened twice");
  opened_[i] = 1;
  std::unique_ptr<UringWorker> w(new UringWorker(cfg_.max_conns));
  w->id_ = i;
  w->cfg_ = cfg_;
  w->plan_ = plan_;
  const std::string who = "io_uring worker " + std::to_string(i) + ": ";

  int r = init_ring(&w->ring_, plan_.sq_entries, plan_.cq_entries, plan_.setup_flags);
  if (r < 0) return make_error(who + setup_failure(r));
  w->ring_ok_ = true;
  w->owner_tid_ = gettid();
  // io_uring_enter through a registered ring index: no fdget/fdput (an atomic on the
  // process-wide file table) per enter. Best effort (5.18+).
  w->plan_.ring_fd_registered = io_uring_register_ring_fd(&w->ring_) == 1;

  // Receive buffer rings: datagrams (whole, up to max_datagram) and stream bytes.
  if (auto ok = setup_buf_ring(&w->ring_, w->udp_, uring::kUdpGroup, udp_buf_count(cfg_),
                               udp_buf_size(cfg_));
      !ok)
    return make_error(who + ok.error().message);
  if (auto ok = setup_buf_ring(&w->ring_, w->tcp_, uring::kTcpGroup, cfg_.rx_buffers,
                               cfg_.rx_buffer_size);
      !ok)
    return make_error(who + ok.error().message);

  // Datagram tx buffers and their sendmsg headers (pointing at the buffer, fixed for life).
  auto tx = kernel::TxPool::create(cfg_.tx_buffers, kernel::kTxLargeBuffers, cfg_.max_datagram);
  if (!tx) return make_error(who + tx.error().message);
  w->tx_ = std::move(*tx);
  w->txmsg_.resize(w->tx_.count());
  for (uint32_t t = 0; t < w->tx_.count(); ++t) {
    UringWorker::TxMsg& m = w->txmsg_[t];
    m.msg = msghdr{};
    m.msg.msg_name = &m.to;
    m.msg.msg_namelen = sizeof m.to;
    m.msg.msg_iov = &m.iov;
    m.msg.msg_iovlen = 1;
    m.iov.iov_base = w->tx_.data(t);
  }
  w->dirty_.reserve(cfg_.max_conns);
  w->held_next_.assign(w->tcp_.count, 0);
  w->held_len_.assign(w->tcp_.count, 0);
  w->chunks_.set_limit(cfg_.worker_out_limit);
  w->gso_on_ = w->plan_.udp_gso;
  w->moderator_ = uring::Moderator(cfg_.coalesce_us);

  w->wake_fd_ = kernel::Fd(eventfd(0, EFD_CLOEXEC));
  if (!w->wake_fd_.valid()) return make_error(who + "eventfd: " + errstr(errno));

  // Take this worker's sockets and arm them.
  w->recv_msg_.msg_namelen = sizeof(sockaddr_in);
  // Control room only for UDP_GRO's run size (kernel drops are sampled, see poll()).
  w->recv_msg_.msg_controllen = w->plan_.udp_gro ? kRecvControl : 0;
  std::vector<kernel::Fd> fds = sockets_.take(i);
  w->socks_.resize(specs_.size());
  for (size_t s = 0; s < specs_.size(); ++s) {
    UringWorker::Sock& k = w->socks_[s];
    k.transport = specs_[s].transport;
    k.server = specs_[s].server;
    k.bind = specs_[s].bind;
    k.fd = std::move(fds[s]);
    if (!k.fd.valid()) continue;
    if (k.transport == Transport::udp) {
      const int one = 1;
      if (w->plan_.udp_gro && ::setsockopt(k.fd.get(), SOL_UDP, UDP_GRO, &one, sizeof one) != 0)
        return make_error(who + "UDP_GRO: " + errstr(errno));
      ++w->udp_socks_;
      w->arm_udp(SocketId(s));
    } else
      w->arm_accept(SocketId(s));
  }
  w->arm_wake();
  r = io_uring_submit(&w->ring_);
  if (r < 0) return make_error(who + "io_uring_submit: " + errstr(r));
  return w;
}

// Drain (io.hh): cancels each listener's multishot accept and closes the listener. The
// accept request holds the socket until its cancellation completes (at the next submit),
// then the kernel closes it; on_accept() does not re-arm a listener whose fd is gone, and
// a connection accepted before the cancellation is still delivered and served. Called
// from the worker loop on mail, once per drain, so it lives with the setup code.
void UringWorker::stop_accepting() {
  for (size_t s = 0; s < socks_.size(); ++s) {
    Sock& k = socks_[s];
    if (k.transport != Transport::tcp || !k.server || !k.fd.valid()) continue;
    if (k.rearm_at_ns) {  // accept paused (out of fds): nothing is armed
      k.rearm_at_ns = 0;
      --accepts_paused_;
    } else {
      io_uring_sqe* e = sqe();
      // By user_data, not by fd: the fd is closed below, before this SQE is submitted.
      io_uring_prep_cancel64(e, uring::pack(uring::Op::accept, uint32_t(s)),
                             IORING_ASYNC_CANCEL_ALL);
      io_uring_sqe_set_data64(e, uring::pack(uring::Op::none, 0));
    }
    k.fd.reset();
  }
}

UringWorker::~UringWorker() {
  // Closing the ring cancels and reaps every request still armed; only then are buffers the
  // kernel might still write unmapped (members are destroyed after this body).
  if (ring_ok_) {
    quiesce_ring(&ring_);
    io_uring_queue_exit(&ring_);
    if (gettid() == owner_tid_) absorb_ring_exit();
  }
  for (uint32_t i = 0; i < conns_.high_water(); ++i) {
    auto& s = conns_.at(i);
    if (s.state == kernel::ConnState::free) continue;
    if (s.fd >= 0) ::close(s.fd);
    s.x.out.clear(chunks_);
  }
  free_buf_ring(udp_);
  free_buf_ring(tcp_);
}

}  // namespace cw::dp
