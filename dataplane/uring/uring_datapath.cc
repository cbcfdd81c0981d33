// io_uring backend datapath: owner-thread-only (except wake()). No allocation, no locks,
// no syscall per message: SQEs are batched and submitted by one io_uring_enter per flush()
// or per poll() that finds nothing ready. Per-connection events (accept, connect, close)
// may make a syscall (getpeername, socket, close).
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <utility>

#include "dataplane/clock.hh"
#include "dataplane/uring/uring_io.hh"

namespace cw::dp {

using uring::Op;
using uring::pack;

// ---- SQE helpers --------------------------------------------------------------------------

// A free SQE. When the SQ is full the batch so far is submitted early (rare: the SQ holds
// kSqEntries); this keeps commit infallible.
io_uring_sqe* UringWorker::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

void UringWorker::arm_udp(SocketId s) {
  io_uring_sqe* e = sqe();
  io_uring_prep_recvmsg_multishot(e, socks_[s].fd.get(), &recv_msg_, 0);
  e->flags |= IOSQE_BUFFER_SELECT;
  e->buf_group = uring::kUdpGroup;
  io_uring_sqe_set_data64(e, pack(Op::udp_recv, s));
}

void UringWorker::arm_accept(SocketId s) {
  io_uring_sqe* e = sqe();
  io_uring_prep_multishot_accept(e, socks_[s].fd.get(), nullptr, nullptr,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
  io_uring_sqe_set_data64(e, pack(Op::accept, s));
}

void UringWorker::arm_recv(uint32_t slot) {
  auto& c = conns_.at(slot);
  io_uring_sqe* e = sqe();
  io_uring_prep_recv_multishot(e, c.fd, nullptr, 0, 0);
  e->flags |= IOSQE_BUFFER_SELECT;
  e->buf_group = uring::kTcpGroup;
  io_uring_sqe_set_data64(e, pack(Op::tcp_recv, slot, c.gen));
  c.x.recv_armed = true;
  ++c.x.ops;
}

// One send of the queued output (up to kSendIov chunks); at most one in flight, and the
// bytes it covers are not touched until its CQE (OutBuffer only appends). Output in one
// chunk (the common case) goes as a plain send: the kernel then takes one buffer instead of
// copying in a msghdr and importing an iovec array.
void UringWorker::arm_send(uint32_t slot) {
  auto& c = conns_.at(slot);
  assert(!c.x.send_armed && !c.x.out.empty());
  uint64_t total = 0;
  const unsigned n = c.x.out.gather(c.x.iov, uring::kSendIov, &total);
  c.x.inflight = uint32_t(total);
  io_uring_sqe* e = sqe();
  if (n == 1) {
    io_uring_prep_send(e, c.fd, c.x.iov[0].iov_base, c.x.iov[0].iov_len, MSG_NOSIGNAL);
  } else {
    c.x.msg = msghdr{};
    c.x.msg.msg_iov = c.x.iov;
    c.x.msg.msg_iovlen = n;
    io_uring_prep_sendmsg(e, c.fd, &c.x.msg, MSG_NOSIGNAL);
  }
  io_uring_sqe_set_data64(e, pack(Op::tcp_send, slot, c.gen));
  counters_.tx_stream_sends.add();
  c.x.send_armed = true;
  ++c.x.ops;
}

void UringWorker::arm_wake() {
  io_uring_sqe* e = sqe();
  io_uring_prep_read(e, wake_fd_.get(), &wake_buf_, sizeof wake_buf_, 0);
  io_uring_sqe_set_data64(e, pack(Op::wake, 0));
}

void UringWorker::wake() {
  const uint64_t one = 1;
  // A full counter (never in practice) still leaves the fd readable, so ignoring is safe.
  [[maybe_unused]] ssize_t r = ::write(wake_fd_.get(), &one, sizeof one);
}

// ---- poll -------------------------------------------------------------------------------

// Hands the buffers of the previous poll's items back to their rings (one release store
// per ring).
void UringWorker::return_buffers() {
  for (uring::BufRing* br : {&udp_, &tcp_}) {
    if (!br->nout) continue;
    for (uint32_t i = 0; i < br->nout; ++i) br->give_back(br->out[i], int(i));
    io_uring_buf_ring_advance(br->ring, int(br->nout));
    br->nout = 0;
  }
}

// Hands out what connections owe (kernel::ConnTable::drain_owed): stream_closed for those
// whose teardown finished (the slot is free, and its ConnId dead, from here on), then
// stream_open / stream_resumed / held bytes / stream_writable.
void UringWorker::emit_closed(RxItem* out, uint32_t& k, uint32_t n) {
  k += conns_.drain_owed(out + k, n - k,
                         [this](uint32_t slot, RxItem& it) { return take_held(slot, it); });
}

// A stream buffer received while the connection is paused (or while older held bytes wait):
// kept, in order, until resume().
void UringWorker::hold(uint32_t slot, uint16_t bid, uint32_t len) {
  auto& c = conns_.at(slot);
  held_len_[bid] = len;
  if (c.x.held_tail == kNoHeld)
    c.x.held_head = bid;
  else
    held_next_[c.x.held_tail] = bid;
  c.x.held_tail = bid;
}

// The oldest held buffer as a stream_data item (the buffer goes back to the ring at the next
// poll, like any delivered one). True while more are held.
bool UringWorker::take_held(uint32_t slot, RxItem& it) {
  auto& c = conns_.at(slot);
  const uint16_t bid = uint16_t(c.x.held_head);
  it.len = held_len_[bid];
  it.data = tcp_.buf(bid);
  tcp_.out[tcp_.nout++] = bid;
  c.last_ns = now_ns_;
  if (c.x.held_head == c.x.held_tail) {
    c.x.held_head = c.x.held_tail = kNoHeld;
    return false;
  }
  c.x.held_head = held_next_[bid];
  return true;
}

// Closing: held buffers go straight back to the ring.
void UringWorker::drop_held(uint32_t slot) {
  auto& c = conns_.at(slot);
  for (uint32_t b = c.x.held_head; b != kNoHeld;) {
    const uint32_t next = b == c.x.held_tail ? kNoHeld : held_next_[b];
    tcp_.give_back(uint16_t(b), 0);
    io_uring_buf_ring_advance(tcp_.ring, 1);
    b = next;
  }
  c.x.held_head = c.x.held_tail = kNoHeld;
}

// Re-arms listeners whose accept backoff is over.
void UringWorker::resume_accepts(uint64_t now) {
  for (size_t s = 0; s < socks_.size(); ++s) {
    Sock& k = socks_[s];
    if (!k.rearm_at_ns || now < k.rearm_at_ns) continue;
    k.rearm_at_ns = 0;
    --accepts_paused_;
    arm_accept(SocketId(s));
  }
}

// Adds the datagrams the kernel dropped on each UDP socket (receive queue full) since the
// last sample: one getsockopt per socket per kDropSamplePeriodNs, never per datagram.
void UringWorker::sample_drops(uint64_t now) {
  drops_due_ns_ = now + kernel::kDropSamplePeriodNs;
  for (Sock& k : socks_) {
    uint32_t drops;
    if (k.transport != Transport::udp || !k.fd.valid() || !kernel::socket_drops(k.fd.get(), &drops))
      continue;
    counters_.rx_no_buffer.add(uint32_t(drops - k.drops_seen));  // wraps like the kernel's
    k.drops_seen = drops;
  }
}

// Enters the kernel once: submits queued SQEs and, with wait_nr, waits up to timeout_ns.
void UringWorker::enter(unsigned wait_nr, int64_t timeout_ns) {
  if (wait_nr == 0) {
    io_uring_submit_and_get_events(&ring_);
    return;
  }
  __kernel_timespec ts{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
  io_uring_cqe* cqe = nullptr;
  io_uring_submit_and_wait_timeout(&ring_, &cqe, wait_nr, &ts, nullptr);
}

uint32_t UringWorker::reap(RxItem* out, uint32_t n) {
  uint32_t k = 0;
  unsigned head;
  unsigned seen = 0;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (k >= n || gro_.left) break;
    ++seen;
    handle(*cqe, out, n, k);
  }
  io_uring_cq_advance(&ring_, seen);
  return k;
}

uint32_t UringWorker::poll(RxItem* out, uint32_t n, int64_t timeout_ns) {
  counters_.polls.add();
  // 1. Last poll's receive buffers go back to the kernel.
  return_buffers();
  // 2. Timers: idle connections (a bounded slice of the table per call) and the kernel drop
  //    counters of UDP sockets. The clock is read once, only when either needs it.
  if (conns_.in_use() || udp_socks_) now_ns_ = now_ns();
  if (udp_socks_ && now_ns_ >= drops_due_ns_) sample_drops(now_ns_);
  if (conns_.in_use()) {
    conns_.sweep_idle(now_ns_, uint64_t(cfg_.idle_timeout_ms) * 1'000'000u, [&](uint32_t slot) {
      if (!conns_.at(slot).x.closing) counters_.conns_idle.add();
      teardown(slot, Conns::idle_reason(conns_.at(slot)));
    });
  }
  if (accepts_paused_) resume_accepts(now_ns());
  // 3. Deliver finished closes, then whatever completed.
  uint32_t k = 0;
  woken_ = false;
  emit_closed(out, k, n);
  if (gro_.left && k < n) emit_run(out, n, k);
  if (k < n && !gro_.left) k += reap(out + k, n - k);
  if (k || woken_) return k;
  // 4. Nothing ready: enter the kernel once (submit re-arms, run deferred completions),
  //    blocking up to timeout_ns in interrupt mode.
  const unsigned sq_flags = IO_URING_READ_ONCE(*ring_.sq.kflags);
  bool must_enter =
      io_uring_sq_ready(&ring_) || (sq_flags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN));
  if (!must_enter && plan_.enter_for_completions)
    must_enter = !plan_.taskrun_flag || ++skipped_enters_ >= uring::kForcedEnterPolls;
  if (must_enter) skipped_enters_ = 0;
  if (timeout_ns > 0) {
    if (accepts_paused_ && timeout_ns > int64_t(uring::kAcceptBackoffNs))
      timeout_ns = int64_t(uring::kAcceptBackoffNs);
    // Do not sleep past the next idle sweep while connections are open.
    if (conns_.in_use() && cfg_.idle_timeout_ms) {
      const uint64_t due = conns_.next_sweep_ns();
      const int64_t until = due > now_ns_ ? int64_t(due - now_ns_) : 0;
      if (until < timeout_ns) timeout_ns = until > 0 ? until : 1;
    }
    // Interrupt moderation (moderation.hh): while arrivals cluster, sleep until a batch is
    // ready (the kernel wakes us at wait_nr completions with DEFER_TASKRUN) or the window
    // passed.
    unsigned wait_nr = 1;
    if (moderator_.engaged()) {
      wait_nr = std::min<unsigned>(n, uring::kCoalesceBatch);
      timeout_ns = std::min<int64_t>(timeout_ns, int64_t(moderator_.window_ns()));
    }
    enter(wait_nr, timeout_ns);
    k = reap(out, n);
    if (moderator_.window_ns()) {
      uint64_t bytes = 0;
      for (uint32_t i = 0; i < k; ++i) bytes += out[i].len;
      moderator_.after_wait(now_ns_, k, bytes);
    }
  } else if (must_enter) {
    enter(0, 0);
    k = reap(out, n);
  }
  return k;
}

// Processes one CQE; writes items from out[k] on, never past out[n - 1] (k < n on entry):
// one, except a UDP_GRO run, whose datagrams that do not fit wait in gro_.
void UringWorker::handle(const io_uring_cqe& c, RxItem* out, uint32_t n, uint32_t& k) {
  switch (uring::op_of(c.user_data)) {
    case Op::udp_recv:
      return on_udp_recv(c, out, n, k);
    case Op::udp_send: {
      const uint32_t b = uring::index_of(c.user_data);
      if (c.res >= 0) {
        counters_.tx_datagrams.add();
        counters_.tx_bytes.add(uint64_t(c.res));
      } else {
        counters_.tx_errors.add();
      }
      tx_.give(b);
      return;
    }
    case Op::accept:
      return on_accept(c, out, k);
    case Op::tcp_recv:
      return on_tcp_recv(c, out, k);
    case Op::tcp_send:
      return on_tcp_send(c);
    case Op::connect:
      return on_connect(c, out, k);
    case Op::cancel: {
      const uint32_t slot = uring::index_of(c.user_data);
      auto& cn = conns_.at(slot);
      if (cn.state == kernel::ConnState::free || cn.gen != uring::gen_of(c.user_data)) return;
      --cn.x.ops;
      return maybe_finish(slot);
    }
    case Op::udp_gso:
      return on_gso_send(c);
    case Op::wake:
      woken_ = true;
      counters_.wakeups.add();
      return arm_wake();
    case Op::none:
      return;
  }
}

// A buffer that carried nothing for the caller goes straight back to its ring.
void UringWorker::recycle(uring::BufRing& br, const io_uring_cqe& c) {
  if (!(c.flags & IORING_CQE_F_BUFFER)) return;
  br.give_back(uint16_t(c.flags >> IORING_CQE_BUFFER_SHIFT), 0);
  io_uring_buf_ring_advance(br.ring, 1);
}

// The datagram size of a UDP_GRO run (its cmsg), or len when the buffer holds one datagram.
uint32_t UringWorker::gro_segment(io_uring_recvmsg_out* o, uint32_t len) {
  for (cmsghdr* h = io_uring_recvmsg_cmsg_firsthdr(o, &recv_msg_); h;
       h = io_uring_recvmsg_cmsg_nexthdr(o, &recv_msg_, h)) {
    if (h->cmsg_level != SOL_UDP || h->cmsg_type != UDP_GRO) continue;
    int seg;
    std::memcpy(&seg, CMSG_DATA(h), sizeof seg);
    return seg > 0 && uint32_t(seg) < len ? uint32_t(seg) : len;
  }
  return len;
}

// Hands out the pending run's datagrams while there is room; its buffer goes back to the
// ring at the poll() after the one that took its last datagram.
void UringWorker::emit_run(RxItem* out, uint32_t n, uint32_t& k) {
  GroRun& g = gro_;
  while (g.left && k < n) {
    const uint32_t len = std::min(g.left, g.seg);
    out[k++] = RxItem{RxKind::datagram, CloseReason::none, g.sock, kNoConn, g.peer, len, g.next};
    counters_.rx_datagrams.add();
    counters_.rx_bytes.add(len);
    g.next += len;
    g.left -= len;
  }
  if (!g.left) udp_.out[udp_.nout++] = g.bid;
}

void UringWorker::on_udp_recv(const io_uring_cqe& c, RxItem* out, uint32_t n, uint32_t& k) {
  const SocketId s = SocketId(uring::index_of(c.user_data));
  if (c.flags & IORING_CQE_F_BUFFER) {
    const uint16_t bid = uint16_t(c.flags >> IORING_CQE_BUFFER_SHIFT);
    io_uring_recvmsg_out* o = io_uring_recvmsg_validate(udp_.buf(bid), c.res, &recv_msg_);
    // MSG_CTRUNC cannot happen: the control room fits UDP_GRO's one int, the only cmsg
    // enabled.
    if (c.res > 0 && o && !(o->flags & MSG_TRUNC)) {
      const auto* from = static_cast<const sockaddr_in*>(io_uring_recvmsg_name(o));
      const uint32_t len = io_uring_recvmsg_payload_length(o, c.res, &recv_msg_);
      const auto* data = static_cast<const uint8_t*>(io_uring_recvmsg_payload(o, &recv_msg_));
      const Endpoint peer = kernel::from_sockaddr(*from);
      const uint32_t seg = plan_.udp_gro ? gro_segment(o, len) : len;
      if (seg < len) {
        gro_ = GroRun{data, len, seg, bid, s, peer};
        emit_run(out, n, k);
      } else {
        out[k++] = RxItem{RxKind::datagram, CloseReason::none, s, kNoConn, peer, len, data};
        counters_.rx_datagrams.add();
        counters_.rx_bytes.add(len);
        udp_.out[udp_.nout++] = bid;  // back to the ring at the next poll()
      }
    } else {
      if (o && (o->flags & MSG_TRUNC)) counters_.rx_truncated.add();  // > max_datagram
      recycle(udp_, c);
    }
  } else if (c.res == -ENOBUFS) {
    counters_.rx_no_buffer.add();
  }
  // The multishot ended (ENOBUFS, error): re-arm. The SQE goes in at the next enter, after
  // this poll's buffers went back, and the socket kept what arrived meanwhile.
  if (!(c.flags & IORING_CQE_F_MORE)) arm_udp(s);
}

void UringWorker::on_accept(const io_uring_cqe& c, RxItem* out, uint32_t& k) {
  const SocketId s = SocketId(uring::index_of(c.user_data));
  const bool starved =
      c.res == -EMFILE || c.res == -ENFILE || c.res == -ENOMEM || c.res == -ENOBUFS;
  if (!(c.flags & IORING_CQE_F_MORE)) {
    if (starved) {
      // Out of descriptors or memory: the connection stays in the backlog; retry later
      // rather than spin on the same failure.
      socks_[s].rearm_at_ns = now_ns() + uring::kAcceptBackoffNs;
      ++accepts_paused_;
    } else if (socks_[s].fd.valid()) {  // else stop_accepting() closed it: stay closed
      arm_accept(s);
    }
  }
  if (c.res < 0) return;  // ECONNABORTED and friends: the listener stays armed
  const int fd = c.res;
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
  now_ns_ = now_ns();  // may be stale: poll() reads the clock only while conns exist
  const uint32_t slot =
      conns_.alloc(fd, s, kernel::from_sockaddr(peer), kernel::ConnState::open, now_ns_);
  if (slot == kernel::kNilSlot) {
    ::close(fd);
    counters_.conns_rejected.add();
    return;
  }
  // Request/response traffic: never wait for Nagle to coalesce small replies.
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  counters_.conns_accepted.add();
  counters_.conns_open.add();
  arm_recv(slot);
  auto& cn = conns_.at(slot);
  out[k++] =
      RxItem{RxKind::stream_open, CloseReason::none, s, conns_.id(slot), cn.peer, 0, nullptr};
}

void UringWorker::on_tcp_recv(const io_uring_cqe& c, RxItem* out, uint32_t& k) {
  const uint32_t slot = uring::index_of(c.user_data);
  auto& cn = conns_.at(slot);
  if (cn.state == kernel::ConnState::free || cn.gen != uring::gen_of(c.user_data)) {
    recycle(tcp_, c);  // cannot happen (slots outlive their SQEs); harmless if it did
    return;
  }
  const bool more = c.flags & IORING_CQE_F_MORE;
  if (!more) {
    cn.x.recv_armed = false;
    --cn.x.ops;
  }
  if (c.res > 0 && cn.state == kernel::ConnState::open && !cn.x.closing) {
    cn.last_ns = now_ns_;
    counters_.rx_stream_bytes.add(uint64_t(c.res));
    const uint16_t bid = uint16_t(c.flags >> IORING_CQE_BUFFER_SHIFT);
    if (cn.paused || cn.x.held_head != kNoHeld) {
      hold(slot, bid, uint32_t(c.res));  // after what is held already: order is kept
      if (!cn.paused) conns_.owe(slot, kernel::kOwedHeld);
    } else {
      out[k++] = RxItem{RxKind::stream_data, CloseReason::none, cn.sock, conns_.id(slot), cn.peer,
                        uint32_t(c.res),     tcp_.buf(bid)};
      tcp_.out[tcp_.nout++] = bid;
    }
  } else {
    recycle(tcp_, c);  // draining or closing: input is dropped
  }
  if (cn.x.closing) return maybe_finish(slot);
  if (c.res == -ECANCELED) {  // pause() cancelled the recv; re-armed if resumed meanwhile
    if (!more && !cn.paused && cn.state == kernel::ConnState::open) arm_recv(slot);
    return;
  }
  // Peer's orderly close (FIN): replies may still be queued (this poll's items included);
  // they go out, then we close (flush() finishes the drain).
  if (c.res == 0) return begin_drain(slot, CloseReason::peer);
  if (c.res < 0 && c.res != -ENOBUFS)
    return teardown(slot, c.res == -ECONNRESET ? CloseReason::peer : CloseReason::error);
  if (!more) {
    if (c.res == -ENOBUFS) counters_.rx_no_buffer.add();
    arm_recv(slot);  // multishot ended (ENOBUFS, or the kernel's own limit)
  }
}

void UringWorker::on_tcp_send(const io_uring_cqe& c) {
  const uint32_t slot = uring::index_of(c.user_data);
  auto& cn = conns_.at(slot);
  if (cn.state == kernel::ConnState::free || cn.gen != uring::gen_of(c.user_data)) return;
  cn.x.send_armed = false;
  --cn.x.ops;
  if (c.res < 0) {
    if (!cn.x.closing) {
      counters_.tx_errors.add();
      teardown(slot,
               c.res == -EPIPE || c.res == -ECONNRESET ? CloseReason::peer : CloseReason::error);
    }
    return maybe_finish(slot);
  }
  // Partial sends are normal: drop what went, send the rest next.
  const uint32_t sent = uint32_t(c.res);
  counters_.tx_stream_bytes.add(sent);
  cn.last_ns = now_ns_;
  cn.x.out.consume(chunks_, sent);
  cn.x.inflight = 0;
  conns_.sent(slot, cn.x.out.bytes(), cfg_.conn_low_water);
  if (cn.x.closing) return maybe_finish(slot);
  if (!cn.x.out.empty()) return arm_send(slot);
  if (cn.state == kernel::ConnState::draining) finish_drain(slot);  // all out: close
}

void UringWorker::on_connect(const io_uring_cqe& c, RxItem* out, uint32_t& k) {
  const uint32_t slot = uring::index_of(c.user_data);
  auto& cn = conns_.at(slot);
  if (cn.state == kernel::ConnState::free || cn.gen != uring::gen_of(c.user_data)) return;
  --cn.x.ops;
  if (cn.x.closing || cn.state != kernel::ConnState::connecting) return maybe_finish(slot);
  if (c.res != 0) return teardown(slot, CloseReason::connect_failed);
  cn.state = kernel::ConnState::open;
  cn.last_ns = now_ns_;
  counters_.conns_connected.add();
  if (!cn.paused) arm_recv(slot);
  if (!cn.x.out.empty()) arm_send(slot);  // output queued while connecting
  out[k++] =
      RxItem{RxKind::stream_open, CloseReason::none, cn.sock, conns_.id(slot), cn.peer, 0, nullptr};
}

// ---- datagrams ----------------------------------------------------------------------------

uint8_t* UringWorker::dgram_reserve(SocketId s, Endpoint to, uint32_t n) {
  assert(res_buf_ == kernel::kNoTxBuf && res_conn_ == kNoConn && "one reservation at a time");
  if (n > cfg_.max_datagram || s >= socks_.size() || socks_[s].transport != Transport::udp ||
      !socks_[s].fd.valid()) {
    counters_.tx_no_buffer.add();
    return nullptr;
  }
  const uint32_t b = tx_.take(n);
  if (b == kernel::kNoTxBuf) {
    counters_.tx_no_buffer.add();
    return nullptr;
  }
  txmsg_[b].to = kernel::to_sockaddr(to);
  res_buf_ = b;
  res_sock_ = s;
  res_len_ = n;
  return tx_.data(b);
}

// The datagram joins a GSO train to its destination when it can (sent at the latest by
// flush()), else it is queued as its own send. Either way the buffer is the kernel's until
// the send's CQE gives it back to the pool.
void UringWorker::dgram_commit(uint32_t n) {
  assert(res_buf_ != kernel::kNoTxBuf && n <= res_len_);
  const uint32_t b = std::exchange(res_buf_, kernel::kNoTxBuf);
  if (gso_on_) {
    auto submit = [this](uint32_t t) { submit_train(t); };
    const sockaddr_in& to = txmsg_[b].to;
    if (kernel::GsoTrains::eligible(n)) {
      const uint32_t t = gso_.join(res_sock_, to, n, submit);
      if (t != kernel::kNoTrain) {
        gso_.at(t).add(b, tx_.data(b), n);
        gso_.close_if_full(t, submit);
        return;
      }
    } else {
      gso_.close(res_sock_, to, submit);  // keep this destination's order
    }
  }
  send_one(res_sock_, b, n);
}

// One datagram in tx buffer b, as its own send SQE.
void UringWorker::send_one(SocketId s, uint32_t b, uint32_t n) {
  TxMsg& m = txmsg_[b];
  io_uring_sqe* e = sqe();
  if (plan_.send_to) {
    io_uring_prep_send(e, socks_[s].fd.get(), m.iov.iov_base, n, 0);
    io_uring_prep_send_set_addr(e, reinterpret_cast<const sockaddr*>(&m.to), sizeof m.to);
  } else {
    m.iov.iov_len = n;
    io_uring_prep_sendmsg(e, socks_[s].fd.get(), &m.msg, 0);
  }
  io_uring_sqe_set_data64(e, pack(Op::udp_send, b));
}

// A train leaves: two or more datagrams as one UDP_SEGMENT sendmsg (the descriptor is the
// kernel's until its CQE), a single one as an ordinary send.
void UringWorker::submit_train(uint32_t t) {
  kernel::GsoTrain& tr = gso_.at(t);
  if (tr.n == 1) {
    send_one(tr.sock, tr.buf[0], uint32_t(tr.iov[0].iov_len));
    return gso_.release(t);
  }
  io_uring_sqe* e = sqe();
  io_uring_prep_sendmsg(e, socks_[tr.sock].fd.get(), tr.finish(), 0);
  io_uring_sqe_set_data64(e, pack(Op::udp_gso, t));
}

void UringWorker::on_gso_send(const io_uring_cqe& c) {
  const uint32_t t = uring::index_of(c.user_data);
  kernel::GsoTrain& tr = gso_.at(t);
  if (c.res >= 0) {
    counters_.tx_gso_sends.add();
    counters_.tx_datagrams.add(tr.n);
    counters_.tx_bytes.add(uint64_t(c.res));
    for (uint32_t i = 0; i < tr.n; ++i) tx_.give(tr.buf[i]);
  } else if (kernel::gso_refused(-c.res)) {
    // The kernel refused segmentation on this path (an MTU below the segment, a device or
    // route without GSO): send these datagrams alone, and every later one too.
    gso_on_ = false;
    for (uint32_t i = 0; i < tr.n; ++i) send_one(tr.sock, tr.buf[i], uint32_t(tr.iov[i].iov_len));
  } else {
    counters_.tx_errors.add(tr.n);
    for (uint32_t i = 0; i < tr.n; ++i) tx_.give(tr.buf[i]);
  }
  gso_.release(t);
}

void UringWorker::flush() {
  assert(res_buf_ == kernel::kNoTxBuf && res_conn_ == kNoConn &&
         "flush() with an open reservation");
  // Connections with new output and no send in flight get one send each; drains with
  // nothing left to send finish.
  for (uint32_t slot : dirty_) {
    auto& c = conns_.at(slot);
    c.x.dirty = false;
    if (c.x.closing || c.x.send_armed) continue;
    if (c.state != kernel::ConnState::open && c.state != kernel::ConnState::draining) continue;
    if (!c.x.out.empty())
      arm_send(slot);
    else if (c.state == kernel::ConnState::draining)
      finish_drain(slot);
  }
  dirty_.clear();
  if (gso_.open_count()) gso_.close_all([this](uint32_t t) { submit_train(t); });
  // One enter: submit the batch and run deferred completions, so the next poll() usually
  // finds CQEs without entering the kernel again.
  if (io_uring_sq_ready(&ring_)) io_uring_submit_and_get_events(&ring_);
}

// ---- streams -------------------------------------------------------------------------------

void UringWorker::mark_dirty(uint32_t slot) {
  auto& c = conns_.at(slot);
  if (c.x.dirty) return;
  c.x.dirty = true;
  dirty_.push_back(slot);
}

// Stop delivering input; queued output (and, after a peer FIN, replies still being
// written) goes out first. flush() or the last send's CQE finishes the drain.
void UringWorker::begin_drain(uint32_t slot, CloseReason why) {
  auto& c = conns_.at(slot);
  c.state = kernel::ConnState::draining;
  if (c.reason == CloseReason::none) c.reason = why;
  mark_dirty(slot);
}

// All output is in the kernel: FIN now (after that output), then close.
void UringWorker::finish_drain(uint32_t slot) {
  auto& c = conns_.at(slot);
  ::shutdown(c.fd, SHUT_WR);
  c.x.graceful = true;
  teardown(slot, c.reason);
}

// Stops all I/O on the slot: cancels what is armed; maybe_finish() closes the fd once no
// SQE names the slot any more. `why` is what stream_closed will say (the first reason wins).
void UringWorker::teardown(uint32_t slot, CloseReason why) {
  auto& c = conns_.at(slot);
  if (c.x.closing) return;
  c.x.closing = true;
  if (c.reason == CloseReason::none) c.reason = why;
  if (c.x.ops) {
    io_uring_sqe* e = sqe();
    io_uring_prep_cancel_fd(e, c.fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(e, pack(Op::cancel, slot, c.gen));
    ++c.x.ops;
  }
  maybe_finish(slot);
}

// Last step of a teardown: no SQE names the slot, so the fd can be closed (its number may
// be reused at once) and the stream_closed item queued. The slot is freed when that item
// is handed out (emit_closed), so the ConnId stays unique until then.
void UringWorker::maybe_finish(uint32_t slot) {
  auto& c = conns_.at(slot);
  if (!c.x.closing || c.x.ops || c.state == kernel::ConnState::zombie) return;
  if (c.x.graceful && c.reason == CloseReason::local) {
    uint8_t scratch[4096];
    for (unsigned i = 0; i < uring::kDiscardReads; ++i)
      if (::recv(c.fd, scratch, sizeof scratch, MSG_DONTWAIT) <= 0) break;
  }
  ::close(c.fd);
  c.fd = -1;
  c.x.out.clear(chunks_);
  drop_held(slot);
  c.state = kernel::ConnState::zombie;
  counters_.conns_closed.add();
  counters_.conns_open.set(counters_.conns_open.get() - 1);
  conns_.notify(slot);
}

uint8_t* UringWorker::stream_reserve(ConnId id, uint32_t n) {
  assert(res_buf_ == kernel::kNoTxBuf && res_conn_ == kNoConn && "one reservation at a time");
  auto* c = conns_.find(id);
  if (!c || c->x.closing || !Conns::takes_output(*c)) return nullptr;
  const uint32_t slot = conn_slot(id);
  if (uint64_t(c->x.out.bytes()) + n > cfg_.conn_out_limit) {
    // The peer stopped reading (or one reply exceeds the bound): close it.
    counters_.conns_overflow.add();
    teardown(slot, CloseReason::overflow);
    return nullptr;
  }
  uint8_t* p = c->x.out.reserve(chunks_, n);
  if (!p) {  // output memory exhausted: the reply is lost, so the stream is (io.hh)
    counters_.tx_no_buffer.add();
    teardown(slot, CloseReason::error);
    return nullptr;
  }
  res_conn_ = id;
  res_len_ = n;
  return p;
}

void UringWorker::stream_commit(ConnId id, uint32_t n) {
  assert(res_conn_ == id && n <= res_len_);
  res_conn_ = kNoConn;
  auto* c = conns_.find(id);
  if (!c) return;
  c->x.out.commit(n);
  if (n) mark_dirty(conn_slot(id));
}

ConnId UringWorker::connect(SocketId s, Endpoint to) {
  if (s >= socks_.size() || socks_[s].transport != Transport::tcp || socks_[s].server)
    return kNoConn;
  if (conns_.full()) {
    counters_.conns_rejected.add();
    return kNoConn;
  }
  const int fd = kernel::open_tcp_client(socks_[s].bind);
  if (fd < 0) {  // out of descriptors or memory: refused like a connection beyond max_conns
    counters_.conns_rejected.add();
    return kNoConn;
  }
  const uint32_t slot = conns_.alloc(fd, s, to, kernel::ConnState::connecting, now_ns());
  auto& c = conns_.at(slot);
  c.x.addr = kernel::to_sockaddr(to);
  counters_.conns_open.add();
  io_uring_sqe* e = sqe();
  io_uring_prep_connect(e, fd, reinterpret_cast<const sockaddr*>(&c.x.addr), sizeof c.x.addr);
  io_uring_sqe_set_data64(e, pack(Op::connect, slot, c.gen));
  ++c.x.ops;
  return conns_.id(slot);
}

void UringWorker::pause(ConnId id) {
  auto* c = conns_.find(id);
  const uint32_t slot = conn_slot(id);
  if (!c || c->x.closing || !conns_.pause(slot) || !c->x.recv_armed) return;
  // Stop the multishot recv; what it delivers before the cancel lands is held (hold()).
  io_uring_sqe* e = sqe();
  io_uring_prep_cancel64(e, uring::pack(Op::tcp_recv, slot, c->gen), 0);
  io_uring_sqe_set_data64(e, pack(Op::cancel, slot, c->gen));
  ++c->x.ops;
}

void UringWorker::resume(ConnId id) {
  auto* c = conns_.find(id);
  const uint32_t slot = conn_slot(id);
  if (!c || c->x.closing || !conns_.resume(slot)) return;
  if (c->x.held_head != kNoHeld) conns_.owe(slot, kernel::kOwedHeld);
  // A recv still armed (its cancel not yet completed) is re-armed on its ECANCELED.
  if (c->state == kernel::ConnState::open && !c->x.recv_armed) arm_recv(slot);
}

uint32_t UringWorker::queued(ConnId id) const {
  const auto* c = conns_.find(id);
  return c ? c->x.out.bytes() : 0;
}

void UringWorker::notify_writable(ConnId id) {
  auto* c = conns_.find(id);
  if (c && !c->x.closing)
    conns_.want_writable(conn_slot(id), c->x.out.bytes(), cfg_.conn_low_water);
}

void UringWorker::close(ConnId id) {
  auto* c = conns_.find(id);
  if (!c || c->x.closing || c->state == kernel::ConnState::zombie) return;
  const uint32_t slot = conn_slot(id);
  if (c->state == kernel::ConnState::connecting) return teardown(slot, CloseReason::local);
  if (c->state == kernel::ConnState::draining) {
    c->reason = CloseReason::local;  // the app is done too; nothing more may be queued
    return;
  }
  // Queued output still goes out, then the connection closes (or on idle timeout).
  begin_drain(slot, CloseReason::local);
}

}  // namespace cw::dp
