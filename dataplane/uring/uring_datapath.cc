// io_uring backend datapath: owner-thread-only (except wake()). No allocation, no locks,
// no syscall per message: SQEs are batched and submitted by one io_uring_enter per flush()
// or per poll() that finds nothing ready. Per-connection events (accept, connect, close)
// may make a syscall (getpeername, socket, close).
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <ctime>

#include "dataplane/uring/uring_io.hh"

namespace cw::dp {

using uring::Op;
using uring::pack;

namespace {

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

Endpoint endpoint_of(const sockaddr_in& a) { return Endpoint{a.sin_addr.s_addr, a.sin_port}; }

}  // namespace

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
  io_uring_prep_recvmsg_multishot(e, socks_[s].fd, &recv_msg_, 0);
  e->flags |= IOSQE_BUFFER_SELECT;
  e->buf_group = uring::kUdpGroup;
  io_uring_sqe_set_data64(e, pack(Op::udp_recv, s));
  socks_[s].armed = true;
}

void UringWorker::arm_accept(SocketId s) {
  io_uring_sqe* e = sqe();
  io_uring_prep_multishot_accept(e, socks_[s].fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(e, pack(Op::accept, s));
  socks_[s].armed = true;
}

void UringWorker::arm_recv(uint32_t slot) {
  Conn& c = conns_[slot];
  io_uring_sqe* e = sqe();
  io_uring_prep_recv_multishot(e, c.fd, nullptr, 0, 0);
  e->flags |= IOSQE_BUFFER_SELECT;
  e->buf_group = uring::kTcpGroup;
  io_uring_sqe_set_data64(e, pack(Op::tcp_recv, slot, c.ugen));
  c.recv_armed = true;
  ++c.ops;
}

// Sends the contiguous queued run at head (one send in flight per connection).
void UringWorker::arm_send(uint32_t slot) {
  Conn& c = conns_[slot];
  assert(!c.send_armed && c.queued > 0);
  const uint32_t end = c.wrap_end ? c.wrap_end : c.tail;
  c.inflight = end - c.head;
  io_uring_sqe* e = sqe();
  io_uring_prep_send(e, c.fd, c.out + c.head, c.inflight, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(e, pack(Op::tcp_send, slot, c.ugen));
  c.send_armed = true;
  ++c.ops;
}

void UringWorker::arm_wake() {
  io_uring_sqe* e = sqe();
  io_uring_prep_read(e, wake_fd_, &wake_buf_, sizeof wake_buf_, 0);
  io_uring_sqe_set_data64(e, pack(Op::wake, 0));
  wake_armed_ = true;
}

void UringWorker::wake() {
  const uint64_t one = 1;
  // A full counter (never in practice) still leaves the fd readable, so ignoring is safe.
  [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof one);
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

void UringWorker::emit_pending(RxItem* out, uint32_t& k, uint32_t n) {
  while (k < n && closed_head_ < closed_pending_.size()) out[k++] = closed_pending_[closed_head_++];
  if (closed_head_ == closed_pending_.size()) {
    closed_pending_.clear();
    closed_head_ = 0;
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
    if (k >= n) break;
    ++seen;
    handle(*cqe, out, k);
  }
  io_uring_cq_advance(&ring_, seen);
  return k;
}

uint32_t UringWorker::poll(RxItem* out, uint32_t n, int64_t timeout_ns) {
  counters_.polls.add();
  // 1. Last poll's receive buffers go back to the kernel.
  return_buffers();
  // 2. Timers: idle connections.
  now_ns_ = monotonic_ns();
  if (now_ns_ >= next_sweep_ns_) sweep_idle(now_ns_);
  // 3. Deliver queued close notices, then whatever completed.
  uint32_t k = 0;
  woken_ = false;
  emit_pending(out, k, n);
  if (k < n) k += reap(out + k, n - k);
  if (k || woken_) return k;
  // 4. Nothing ready: enter the kernel once (submit re-arms, run deferred completions),
  //    blocking up to timeout_ns in interrupt mode.
  const unsigned sq_flags = IO_URING_READ_ONCE(*ring_.sq.kflags);
  const bool must_enter = plan_.defer_taskrun || io_uring_sq_ready(&ring_) ||
                          (sq_flags & (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN));
  if (timeout_ns > 0) {
    enter(1, timeout_ns);
    k = reap(out, n);
  } else if (must_enter) {
    enter(0, 0);
    k = reap(out, n);
  }
  return k;
}

// Processes one CQE; writes at most one item at out[k] (k < n on entry).
void UringWorker::handle(const io_uring_cqe& c, RxItem* out, uint32_t& k) {
  const uint64_t ud = c.user_data;
  const uint32_t idx = uring::index_of(ud);
  const bool more = c.flags & IORING_CQE_F_MORE;
  switch (uring::op_of(ud)) {
    case Op::udp_recv: {
      if (c.flags & IORING_CQE_F_BUFFER) {
        const uint16_t bid = uint16_t(c.flags >> IORING_CQE_BUFFER_SHIFT);
        uint8_t* buf = udp_.buf(bid);
        io_uring_recvmsg_out* o = io_uring_recvmsg_validate(buf, c.res, &recv_msg_);
        if (c.res > 0 && o && !(o->flags & MSG_TRUNC)) {
          const auto* from = static_cast<const sockaddr_in*>(io_uring_recvmsg_name(o));
          RxItem& it = out[k++];
          it.kind = RxKind::datagram;
          it.reason = CloseReason::none;
          it.sock = SocketId(idx);
          it.conn = kNoConn;
          it.peer = endpoint_of(*from);
          it.len = io_uring_recvmsg_payload_length(o, c.res, &recv_msg_);
          it.data = static_cast<const uint8_t*>(io_uring_recvmsg_payload(o, &recv_msg_));
          counters_.rx_datagrams.add();
          counters_.rx_bytes.add(it.len);
          udp_.out[udp_.nout++] = bid;
        } else {
          if (o && (o->flags & MSG_TRUNC)) counters_.rx_truncated.add();
          udp_.give_back(bid, 0);
          io_uring_buf_ring_advance(udp_.ring, 1);
        }
      } else if (c.res == -ENOBUFS) {
        counters_.rx_no_buffer.add();
      }
      // The multishot ended (ENOBUFS, error, cancel): re-arm; submitted at the next enter,
      // after this poll's buffers have gone back.
      if (!more) arm_udp(SocketId(idx));
      return;
    }
    case Op::udp_send: {
      TxSlot& t = tx_[idx];
      if (c.res >= 0) {
        counters_.tx_datagrams.add();
        counters_.tx_bytes.add(uint64_t(c.res));
      } else {
        counters_.tx_errors.add();
      }
      t.next_free = tx_free_;
      tx_free_ = idx;
      return;
    }
    case Op::accept: {
      if (!more) arm_accept(SocketId(idx));
      if (c.res < 0) return;  // EMFILE and friends: the listener stays armed
      const int fd = c.res;
      const uint32_t slot = alloc_conn();
      if (slot == ~0u) {
        ::close(fd);
        counters_.conns_rejected.add();
        return;
      }
      Conn& cn = conns_[slot];
      cn.fd = fd;
      cn.state = ConnState::open;
      cn.sock = SocketId(idx);
      sockaddr_in peer{};
      socklen_t len = sizeof peer;
      getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len);
      cn.peer = endpoint_of(peer);
      const int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      cn.user_open = true;
      counters_.conns_accepted.add();
      counters_.conns_open.add();
      arm_recv(slot);
      out[k++] = RxItem{RxKind::stream_open, CloseReason::none, cn.sock, conn_id(slot), cn.peer,
                        0, nullptr};
      return;
    }
    case Op::tcp_recv: {
      Conn& cn = conns_[idx];
      const bool ours = cn.state != ConnState::free && cn.ugen == uring::gen_of(ud);
      if (!more && ours) {
        cn.recv_armed = false;
        --cn.ops;
      }
      if (c.flags & IORING_CQE_F_BUFFER) {
        const uint16_t bid = uint16_t(c.flags >> IORING_CQE_BUFFER_SHIFT);
        if (ours && cn.user_open && c.res > 0) {
          cn.last_ns = now_ns_;
          counters_.rx_stream_bytes.add(uint64_t(c.res));
          out[k++] = RxItem{RxKind::stream_data, CloseReason::none, cn.sock, conn_id(idx),
                            cn.peer, uint32_t(c.res), tcp_.buf(bid)};
          tcp_.out[tcp_.nout++] = bid;
        } else {
          tcp_.give_back(bid, 0);
          io_uring_buf_ring_advance(tcp_.ring, 1);
        }
      }
      if (!ours) return;
      if (c.res == 0 || (c.res < 0 && c.res != -ENOBUFS && c.res != -ECANCELED)) {
        // Peer closed (EOF) or reset: the connection is done.
        user_closed(idx, c.res == 0 || c.res == -ECONNRESET ? CloseReason::peer
                                                            : CloseReason::error);
        teardown(idx);
      } else if (!more && cn.state != ConnState::closing) {
        if (c.res == -ENOBUFS) counters_.rx_no_buffer.add();
        arm_recv(idx);
      }
      op_done(idx);
      return;
    }
    case Op::tcp_send: {
      Conn& cn = conns_[idx];
      if (cn.state == ConnState::free || cn.ugen != uring::gen_of(ud)) return;
      cn.send_armed = false;
      --cn.ops;
      if (c.res < 0) {
        if (c.res != -ECANCELED) {
          counters_.tx_errors.add();
          user_closed(idx, c.res == -EPIPE || c.res == -ECONNRESET ? CloseReason::peer
                                                                   : CloseReason::error);
          teardown(idx);
        }
        op_done(idx);
        return;
      }
      // Partial sends are normal: drop what went, send the rest next.
      const uint32_t sent = uint32_t(c.res);
      counters_.tx_stream_bytes.add(sent);
      cn.last_ns = now_ns_;
      cn.head += sent;
      cn.queued -= sent;
      cn.inflight = 0;
      if (cn.wrap_end && cn.head == cn.wrap_end) {
        cn.head = 0;
        cn.wrap_end = 0;
      }
      if (cn.queued == 0) cn.head = cn.tail = 0;
      if (cn.state != ConnState::closing) {
        if (cn.queued) {
          arm_send(idx);
        } else if (cn.state == ConnState::draining) {
          teardown(idx);  // local close: all output is out
        }
      }
      op_done(idx);
      return;
    }
    case Op::connect: {
      Conn& cn = conns_[idx];
      if (cn.state == ConnState::free || cn.ugen != uring::gen_of(ud)) return;
      cn.connect_armed = false;
      --cn.ops;
      if (cn.state == ConnState::connecting) {
        if (c.res == 0) {
          cn.state = ConnState::open;
          cn.last_ns = now_ns_;
          const int one = 1;
          setsockopt(cn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          counters_.conns_connected.add();
          arm_recv(idx);
          if (cn.queued && !cn.send_armed) arm_send(idx);
          out[k++] = RxItem{RxKind::stream_open, CloseReason::none, cn.sock, conn_id(idx),
                            cn.peer, 0, nullptr};
        } else {
          user_closed(idx, CloseReason::connect_failed);
          teardown(idx);
        }
      }
      op_done(idx);
      return;
    }
    case Op::cancel: {
      Conn& cn = conns_[idx];
      if (cn.state == ConnState::free || cn.ugen != uring::gen_of(ud)) return;
      --cn.ops;
      op_done(idx);
      return;
    }
    case Op::wake:
      woken_ = true;
      counters_.wakeups.add();
      arm_wake();
      return;
    case Op::none:
      return;
  }
  return;
}

// ---- datagrams ----------------------------------------------------------------------------

uint8_t* UringWorker::dgram_reserve(SocketId s, Endpoint to, uint32_t n) {
  assert(res_slot_ == ~0u && res_conn_ == kNoConn && "one reservation at a time");
  if (tx_free_ == ~0u || n > cfg_.max_datagram || s >= socks_.size() ||
      socks_[s].transport != Transport::udp || socks_[s].fd < 0) {
    counters_.tx_no_buffer.add();
    return nullptr;
  }
  const uint32_t t = tx_free_;
  TxSlot& slot = tx_[t];
  tx_free_ = slot.next_free;
  slot.to.sin_family = AF_INET;
  slot.to.sin_addr.s_addr = to.addr_be;
  slot.to.sin_port = to.port_be;
  res_slot_ = t;
  res_sock_ = s;
  res_len_ = n;
  return static_cast<uint8_t*>(slot.iov.iov_base);
}

void UringWorker::dgram_commit(uint32_t n) {
  assert(res_slot_ != ~0u && n <= res_len_);
  TxSlot& slot = tx_[res_slot_];
  slot.iov.iov_len = n;
  io_uring_sqe* e = sqe();
  io_uring_prep_sendmsg(e, socks_[res_sock_].fd, &slot.msg, 0);
  io_uring_sqe_set_data64(e, pack(Op::udp_send, res_slot_));
  res_slot_ = ~0u;
}

void UringWorker::flush() {
  assert(res_slot_ == ~0u && res_conn_ == kNoConn && "flush() with an open reservation");
  // Connections with new output and no send in flight get one send each.
  for (uint32_t slot : dirty_) {
    Conn& c = conns_[slot];
    c.dirty = false;
    if ((c.state == ConnState::open || c.state == ConnState::draining) && !c.send_armed &&
        c.queued)
      arm_send(slot);
  }
  dirty_.clear();
  // One enter: submit the batch and run deferred completions, so the next poll() usually
  // finds CQEs without entering the kernel again.
  if (io_uring_sq_ready(&ring_)) io_uring_submit_and_get_events(&ring_);
}

// ---- streams -------------------------------------------------------------------------------

UringWorker::Conn* UringWorker::find(ConnId c) {
  const uint32_t slot = conn_slot(c);
  if (c == kNoConn || slot >= conns_.size()) return nullptr;
  Conn& k = conns_[slot];
  if (!k.user_open || k.gen != uint8_t(c >> 24)) return nullptr;
  return &k;
}

uint32_t UringWorker::alloc_conn() {
  if (conn_free_ == ~0u) return ~0u;
  const uint32_t slot = conn_free_;
  Conn& c = conns_[slot];
  conn_free_ = c.next_free;
  c.state = ConnState::open;
  c.reason = CloseReason::none;
  c.user_open = false;
  c.recv_armed = c.send_armed = c.connect_armed = false;
  c.ugen = (c.ugen + 1) & 0xFFFFFFu;
  c.ops = 0;
  c.head = c.tail = c.wrap_end = c.inflight = c.queued = 0;
  c.hiwater = 0;
  c.dirty = false;
  c.last_ns = monotonic_ns();  // connect() runs outside poll(), so now_ns_ may be stale
  ++conns_used_;
  return slot;
}

// The user learns the connection is gone (one stream_closed item) and its ConnId dies.
void UringWorker::user_closed(uint32_t slot, CloseReason r) {
  Conn& c = conns_[slot];
  if (!c.user_open) return;
  closed_pending_.push_back(
      RxItem{RxKind::stream_closed, r, c.sock, conn_id(slot), c.peer, 0, nullptr});
  c.user_open = false;
  ++c.gen;
  counters_.conns_closed.add();
  counters_.conns_open.set(counters_.conns_open.get() - 1);
}

// Stops all I/O on the slot: cancel what is armed; the fd is closed and the slot freed by
// op_done() once no SQE names it any more (so no CQE can reach a reused slot).
void UringWorker::teardown(uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.state == ConnState::closing || c.state == ConnState::free) return;
  c.state = ConnState::closing;
  if (c.ops) {
    io_uring_sqe* e = sqe();
    io_uring_prep_cancel_fd(e, c.fd, IORING_ASYNC_CANCEL_ALL);
    io_uring_sqe_set_data64(e, pack(Op::cancel, slot, c.ugen));
    ++c.ops;
  }
  op_done(slot);
}

void UringWorker::op_done(uint32_t slot) {
  Conn& c = conns_[slot];
  if (c.state != ConnState::closing || c.ops) return;
  if (c.fd >= 0) ::close(c.fd);
  c.fd = -1;
  if (c.hiwater > uring::kOutKeepBytes) madvise(c.out, c.hiwater, MADV_DONTNEED);
  c.state = ConnState::free;
  c.next_free = conn_free_;
  conn_free_ = slot;
  --conns_used_;
}

void UringWorker::sweep_idle(uint64_t now) {
  next_sweep_ns_ = now + uring::kIdleSweepNs;
  if (cfg_.idle_timeout_ms == 0 || conns_used_ == 0) return;
  const uint64_t limit = uint64_t(cfg_.idle_timeout_ms) * 1'000'000u;
  for (uint32_t slot = 0; slot < conns_.size(); ++slot) {
    Conn& c = conns_[slot];
    if (c.state == ConnState::free || c.state == ConnState::closing) continue;
    if (now - c.last_ns < limit) continue;
    if (c.user_open) {
      counters_.conns_idle.add();
      user_closed(slot, c.state == ConnState::connecting ? CloseReason::connect_failed
                                                         : CloseReason::idle);
    }
    teardown(slot);
  }
}

uint8_t* UringWorker::stream_reserve(ConnId id, uint32_t n) {
  assert(res_slot_ == ~0u && res_conn_ == kNoConn && "one reservation at a time");
  Conn* c = find(id);
  if (!c) return nullptr;
  const uint32_t limit = cfg_.conn_out_limit;
  const uint32_t slot = conn_slot(id);
  if (n > limit || c->queued + n > limit) {
    // The peer is not reading (or the reply is larger than the bound): close it.
    counters_.conns_overflow.add();
    user_closed(slot, CloseReason::overflow);
    teardown(slot);
    return nullptr;
  }
  // Bip-buffer placement: after tail; or wrap to the front when the end has no room.
  const uint32_t cap = uint32_t(out_stride_);
  uint32_t pos;
  if (c->wrap_end) {
    pos = c->tail;  // room up to head is guaranteed (see Conn)
  } else if (c->tail + n <= cap) {
    pos = c->tail;
  } else {
    pos = 0;  // head >= n is guaranteed
  }
  res_conn_ = id;
  res_pos_ = pos;
  res_len_ = n;
  return c->out + pos;
}

void UringWorker::stream_commit(ConnId id, uint32_t n) {
  assert(res_conn_ == id && n <= res_len_);
  res_conn_ = kNoConn;
  Conn* c = find(id);
  if (!c || n == 0) return;
  const uint32_t slot = conn_slot(id);
  if (!c->wrap_end && res_pos_ == 0 && c->queued) {
    c->wrap_end = c->tail;  // wrapped: [head, wrap_end) then [0, tail)
  } else if (c->queued == 0) {
    c->head = res_pos_;
  }
  c->tail = res_pos_ + n;
  c->queued += n;
  if (c->tail > c->hiwater) c->hiwater = c->tail;
  if (!c->dirty) {
    c->dirty = true;
    dirty_.push_back(slot);
  }
}

ConnId UringWorker::connect(SocketId s, Endpoint to) {
  if (s >= socks_.size() || socks_[s].transport != Transport::tcp || socks_[s].server)
    return kNoConn;
  // A blocking socket: io_uring completes the connect asynchronously through its own poll.
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return kNoConn;
  const Endpoint& b = socks_[s].bind;
  if (b.addr_be || b.port_be) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = b.addr_be;
    a.sin_port = b.port_be;
    if (::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
      ::close(fd);
      return kNoConn;
    }
  }
  const uint32_t slot = alloc_conn();
  if (slot == ~0u) {
    ::close(fd);
    counters_.conns_rejected.add();
    return kNoConn;
  }
  Conn& c = conns_[slot];
  c.fd = fd;
  c.state = ConnState::connecting;
  c.sock = s;
  c.peer = to;
  c.user_open = true;
  c.addr = sockaddr_in{};
  c.addr.sin_family = AF_INET;
  c.addr.sin_addr.s_addr = to.addr_be;
  c.addr.sin_port = to.port_be;
  counters_.conns_open.add();
  io_uring_sqe* e = sqe();
  io_uring_prep_connect(e, fd, reinterpret_cast<const sockaddr*>(&c.addr), sizeof c.addr);
  io_uring_sqe_set_data64(e, pack(Op::connect, slot, c.ugen));
  c.connect_armed = true;
  ++c.ops;
  return conn_id(slot);
}

void UringWorker::close(ConnId id) {
  Conn* c = find(id);
  if (!c) return;
  const uint32_t slot = conn_slot(id);
  user_closed(slot, CloseReason::local);
  // Queued output still goes out; the slot is torn down when it has (or on idle timeout).
  if (c->state == ConnState::open && (c->queued || c->send_armed)) {
    c->state = ConnState::draining;
  } else {
    teardown(slot);
  }
}

}  // namespace cw::dp
