// epoll backend datapath: poll, datagram and stream transmit, connection life cycle.
// Owner thread only (wake() excepted). No allocation here apart from the output-chunk pool
// warming up (OutChunkPool), no exceptions; failures are counted in IoCounters.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <ctime>

#include "dataplane/clock.hh"
#include "dataplane/epoll/epoll_io.hh"

namespace cw::dp {

using namespace epoll_limits;
using kernel::ConnState;
using kernel::kNilSlot;

namespace {

enum : uint64_t { kTagWake = 1, kTagUdp = 2, kTagListener = 3, kTagConn = 4 };
constexpr uint64_t tag_conn(ConnId c) {
  return (kTagConn << 56) | c;
}

RxItem item(RxKind k, CloseReason r, SocketId s, ConnId c, Endpoint peer, uint32_t len,
            const uint8_t* data) {
  return RxItem{k, r, s, c, peer, len, data};
}

}  // namespace

// ---- poll ------------------------------------------------------------------------------

uint32_t EpollWorker::poll(RxItem* out, uint32_t n, int64_t timeout_ns) {
  assert(res_ == Res::none && "poll() with an open reservation");
  counters_.polls.add();
  // The previous poll's receive memory is released here (RxItem data lifetime).
  rx_used_ = 0;
  large_used_ = 0;
  now_ns_ = now_ns();
  if (now_ns_ >= drops_due_ns_) sample_drops();

  // 1. Items owed from earlier (closes, immediate connects), then the idle sweep.
  uint32_t k = drain_notify(out, n);
  if (idle_ns_ && conns_.in_use())
    conns_.sweep_idle(now_ns_, idle_ns_, [this](uint32_t slot) {
      counters_.conns_idle.add();
      zombify(slot, Conns::idle_reason(conns_.at(slot)));
    });

  // 2. Wait for readiness: not at all when items are ready; never past the next idle sweep.
  int64_t t = (k || conns_.has_notify()) ? 0 : timeout_ns;
  if (t > 0 && idle_ns_ && conns_.in_use()) {
    const uint64_t due = conns_.next_sweep_ns();
    const int64_t until = due > now_ns_ ? int64_t(due - now_ns_) : 0;
    if (until < t) t = until;
  }
  const int ne = wait(t);

  // 3. Dispatch ready descriptors. Readiness that finds no room stays level-triggered.
  // Level-triggered epoll reports ready descriptors in a stable order, so a busy socket
  // early in the list could fill every poll's items and starve the rest: start at a
  // rotating position instead.
  const int first = ne > 1 ? int(rotate_++ % uint32_t(ne)) : 0;
  for (int j = 0; j < ne; ++j) {
    const int i = first + j < ne ? first + j : first + j - ne;
    const uint64_t tag = events_[i].data.u64;
    const uint32_t ev = events_[i].events;
    switch (tag >> 56) {
      case kTagWake: {
        uint64_t v;
        if (::read(evfd_, &v, sizeof v) > 0 && t > 0) counters_.wakeups.add();
        break;
      }
      case kTagUdp:
        if (k < n) k += rx_udp(SocketId(tag), out + k, n - k);
        break;
      case kTagListener:
        if (k < n) k += accept_some(SocketId(tag), out + k, n - k);
        break;
      case kTagConn:
        k += conn_event(ConnId(tag), ev, out + k, n - k);
        break;
    }
  }
  if (ne > 0) now_ns_ = now_ns();

  // 4. Closes that happened during this poll follow the data delivered before them.
  k += drain_notify(out + k, n - k);
  return k;
}

int EpollWorker::wait(int64_t timeout_ns) {
  int r;
  if (timeout_ns <= 0) {
    r = epoll_wait(epfd_, events_, kMaxEvents, 0);
  } else {
    const timespec ts{time_t(timeout_ns / 1'000'000'000), long(timeout_ns % 1'000'000'000)};
    r = epoll_pwait2(epfd_, events_, kMaxEvents, &ts, nullptr);
    if (r < 0 && errno == ENOSYS) {  // kernel < 5.11: millisecond timeout, rounded up
      r = epoll_wait(epfd_, events_, kMaxEvents, int((timeout_ns + 999'999) / 1'000'000));
    }
  }
  return r < 0 ? 0 : r;  // EINTR: nothing ready this time
}

// Adds the datagrams the kernel dropped on each UDP socket (receive queue full) since the
// last sample: one getsockopt per socket per kDropSamplePeriodNs, never per datagram.
void EpollWorker::sample_drops() {
  drops_due_ns_ = now_ns_ + kernel::kDropSamplePeriodNs;
  for (Sock& k : socks_) {
    uint32_t drops;
    if (k.transport != Transport::udp || k.fd < 0 || !kernel::socket_drops(k.fd, &drops)) continue;
    counters_.rx_no_buffer.add(uint32_t(drops - k.drops_seen));  // wraps like the kernel's
    k.drops_seen = drops;
  }
}

uint32_t EpollWorker::drain_notify(RxItem* out, uint32_t room) {
  // Nothing is held while paused (the kernel keeps unread bytes), so no kOwedHeld.
  return conns_.drain_owed(out, room, [](uint32_t, RxItem&) { return false; });
}

// The read part of a connection's epoll mask.
uint32_t EpollWorker::read_mask(const Slot& s) {
  return s.state == ConnState::open && !s.paused ? uint32_t(EPOLLIN | EPOLLRDHUP) : 0u;
}

// ---- UDP receive -----------------------------------------------------------------------

// Batches until the socket is empty (a batch came back short) or there is no room.
uint32_t EpollWorker::rx_udp(SocketId s, RxItem* out, uint32_t room) {
  uint32_t k = 0;
  for (;;) {
    bool full = false;
    k += rx_udp_batch(s, out + k, room - k, &full);
    if (!full || k == room) return k;
  }
}

// One recvmmsg. *full: the batch was filled (more may be waiting).
uint32_t EpollWorker::rx_udp_batch(SocketId s, RxItem* out, uint32_t room, bool* full) {
  const uint32_t rbs = cfg_.rx_buffer_size;
  uint32_t batch = room < kRxBatch ? room : kRxBatch;
  const uint32_t slots = rx_room() / rbs;
  if (slots < batch) batch = slots;
  if (large_stride_ && kRxLargeSlots - large_used_ < batch) batch = kRxLargeSlots - large_used_;
  if (batch == 0) return 0;

  uint8_t* small = rx_arena_.data() + rx_used_;
  for (uint32_t i = 0; i < batch; ++i) {
    rx_iov_[i][0] = {small + size_t(i) * rbs, rbs};
    unsigned iovs = 1;
    if (large_stride_) {  // the spill: the large slot, after room for the first rbs bytes
      uint8_t* large = rx_large_.data() + size_t(large_order_[large_used_ + i]) * large_stride_;
      rx_iov_[i][1] = {large + rbs, cfg_.max_datagram - rbs};
      iovs = 2;
    }
    msghdr& h = rx_msgs_[i].msg_hdr;
    h = msghdr{};
    h.msg_name = &rx_addr_[i];
    h.msg_namelen = sizeof rx_addr_[i];
    h.msg_iov = rx_iov_[i];
    h.msg_iovlen = iovs;
    rx_msgs_[i].msg_len = 0;
  }
  int r;
  do r = recvmmsg(socks_[s].fd, rx_msgs_, batch, MSG_DONTWAIT, nullptr);
  while (r < 0 && errno == EINTR);
  if (r <= 0) {
    if (r < 0 && (errno == ENOBUFS || errno == ENOMEM)) counters_.rx_no_buffer.add();
    return 0;  // EAGAIN: another worker or an earlier batch took it
  }

  uint32_t k = 0, large_taken = 0;
  for (uint32_t i = 0; i < uint32_t(r); ++i) {
    const uint32_t len = rx_msgs_[i].msg_len;
    if (rx_msgs_[i].msg_hdr.msg_flags & MSG_TRUNC) {
      counters_.rx_truncated.add();  // above max_datagram: dropped, never half-delivered
      continue;
    }
    const uint8_t* data = small + size_t(i) * rbs;
    if (len > rbs) {
      // Make it contiguous in its large slot, and keep that slot for this poll: move its
      // index into the used prefix of large_order_ (the data stays where it is).
      const uint32_t pos = large_used_ + i, keep = large_used_ + large_taken;
      uint8_t* large = rx_large_.data() + size_t(large_order_[pos]) * large_stride_;
      std::memcpy(large, data, rbs);
      data = large;
      const uint32_t tmp = large_order_[keep];
      large_order_[keep] = large_order_[pos];
      large_order_[pos] = tmp;
      ++large_taken;
    }
    out[k++] = item(RxKind::datagram, CloseReason::none, s, kNoConn,
                    kernel::from_sockaddr(rx_addr_[i]), len, data);
    counters_.rx_datagrams.add();
    counters_.rx_bytes.add(len);
  }
  rx_used_ += size_t(r) * rbs;
  large_used_ += large_taken;
  *full = uint32_t(r) == batch;
  return k;
}

// ---- TCP accept ------------------------------------------------------------------------

uint32_t EpollWorker::accept_some(SocketId s, RxItem* out, uint32_t room) {
  uint32_t k = 0;
  for (uint32_t tries = 0; k < room && tries < kAcceptBatch; ++tries) {
    Endpoint peer;
    const int fd = kernel::accept_conn(socks_[s].fd, &peer);
    if (fd < 0) {
      if (fd == -EINTR || fd == -ECONNABORTED) continue;
      if ((fd == -EMFILE || fd == -ENFILE) && spare_fd_.valid()) {
        // Out of descriptors: the pending connection would keep the listener ready
        // forever. Free the spare, accept and close it, take the spare back.
        spare_fd_.reset();
        const int victim = kernel::accept_conn(socks_[s].fd, &peer);
        if (victim >= 0) ::close(victim);
        spare_fd_ = kernel::Fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
        counters_.conns_rejected.add();
        if (victim >= 0) continue;
      }
      break;  // EAGAIN (none left) or a resource error: try again next poll
    }
    if (conns_.full()) {
      ::close(fd);  // beyond max_conns
      counters_.conns_rejected.add();
      continue;
    }
    const uint32_t slot = conns_.alloc(fd, s, peer, ConnState::open, now_ns_);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = tag_conn(conns_.id(slot));
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      ::close(fd);
      conns_.release(slot);
      counters_.conns_rejected.add();
      continue;
    }
    conns_.at(slot).x.events = ev.events;
    counters_.conns_accepted.add();
    counters_.conns_open.add();
    out[k++] = item(RxKind::stream_open, CloseReason::none, s, conns_.id(slot), peer, 0, nullptr);
  }
  return k;
}

// ---- connection events -----------------------------------------------------------------

uint32_t EpollWorker::conn_event(ConnId c, uint32_t ev, RxItem* out, uint32_t room) {
  Slot* s = conns_.find(c);
  if (!s || s->state == ConnState::zombie) return 0;  // closed earlier in this poll
  const uint32_t slot = conn_slot(c);
  switch (s->state) {
    case ConnState::connecting: {
      if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return 0;
      const int err = kernel::socket_error(s->fd);
      if (err != 0 || (ev & EPOLLHUP)) {
        zombify(slot, CloseReason::connect_failed);
        return 0;
      }
      s->state = ConnState::open;
      s->last_ns = now_ns_;
      counters_.conns_connected.add();
      set_events(slot, read_mask(*s));
      if (!s->x.out.empty()) mark_dirty(slot);  // output queued while connecting
      if (room == 0) {                          // deliver it with the next poll
        conns_.owe(slot, kernel::kOwedOpen);
        return 0;
      }
      out[0] = item(RxKind::stream_open, CloseReason::none, s->sock, c, s->peer, 0, nullptr);
      return 1;
    }
    case ConnState::open: {
      uint32_t k = 0;
      if (ev & EPOLLOUT) write_conn(slot);  // also disarms EPOLLOUT once drained
      if (s->state == ConnState::open && s->paused) {
        // Not reading: only a reset or error (HUP/ERR are always reported) closes it now.
        if (ev & (EPOLLHUP | EPOLLERR)) {
          const int err = kernel::socket_error(s->fd);
          zombify(slot, err == 0 || err == ECONNRESET || err == EPIPE ? CloseReason::peer
                                                                      : CloseReason::error);
        }
        return 0;
      }
      if (s->state == ConnState::open && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) &&
          room > 0 && read_conn(slot, out))
        k = 1;
      return k;
    }
    case ConnState::draining:
      // Only EPOLLOUT is armed (while output is blocked); HUP/ERR mean it cannot be sent.
      if (ev & (EPOLLHUP | EPOLLERR)) {
        zombify(slot, s->reason);
      } else if (ev & EPOLLOUT) {
        write_conn(slot);
      }
      return 0;
    default:
      return 0;
  }
}

// One read into the rx arena. True when an item was produced.
bool EpollWorker::read_conn(uint32_t slot, RxItem* out) {
  Slot& s = conns_.at(slot);
  uint32_t want = rx_room();
  if (want < kStreamReadMinBytes) return false;  // arena full: stays ready for next poll
  if (want > kStreamReadBytes) want = kStreamReadBytes;
  uint8_t* buf = rx_arena_.data() + rx_used_;
  ssize_t r;
  do r = ::recv(s.fd, buf, want, MSG_DONTWAIT);
  while (r < 0 && errno == EINTR);
  if (r > 0) {
    rx_used_ += size_t(r);
    s.last_ns = now_ns_;
    counters_.rx_stream_bytes.add(uint64_t(r));
    *out = item(RxKind::stream_data, CloseReason::none, s.sock, conns_.id(slot), s.peer,
                uint32_t(r), buf);
    return true;
  }
  if (r == 0) {
    begin_drain(slot, CloseReason::peer);  // EOF: replies still go out, then close
  } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
    zombify(slot, errno == ECONNRESET || errno == EPIPE ? CloseReason::peer : CloseReason::error);
  }
  return false;
}

// Sends queued output until it is gone or the kernel buffer is full.
void EpollWorker::write_conn(uint32_t slot) {
  Slot& s = conns_.at(slot);
  bool blocked = false;
  while (!s.x.out.empty()) {
    iovec iov[kIovMax];
    uint64_t total = 0;
    msghdr h{};
    h.msg_iov = iov;
    h.msg_iovlen = s.x.out.gather(iov, kIovMax, &total);
    const ssize_t r = ::sendmsg(s.fd, &h, MSG_NOSIGNAL | MSG_DONTWAIT);
    counters_.tx_stream_sends.add();
    if (r > 0) {
      s.x.out.consume(out_pool_, uint32_t(r));
      conns_.sent(slot, s.x.out.bytes(), cfg_.conn_low_water);
      s.last_ns = now_ns_;
      counters_.tx_stream_bytes.add(uint64_t(r));
      if (uint64_t(r) < total) {  // short write: the socket buffer is full
        blocked = true;
        break;
      }
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      blocked = true;
      break;
    }
    // Peer gone (EPIPE, ECONNRESET) or a socket error: the output cannot be delivered.
    const bool peer = errno == EPIPE || errno == ECONNRESET;
    zombify(slot, s.state == ConnState::draining ? s.reason
                  : peer                         ? CloseReason::peer
                                                 : CloseReason::error);
    return;
  }
  const uint32_t base = read_mask(s);
  if (blocked) {
    set_events(slot, base | EPOLLOUT);
    return;
  }
  set_events(slot, base);
  if (s.state == ConnState::draining) finish_drain(slot);
}

// Stop reading; queued output is still sent (at flush or on EPOLLOUT), then closed.
void EpollWorker::begin_drain(uint32_t slot, CloseReason r) {
  Slot& s = conns_.at(slot);
  s.state = ConnState::draining;
  s.reason = r;
  set_events(slot, s.x.events & EPOLLOUT);
  mark_dirty(slot);  // flush() finishes it (sends what is queued by then); no-op if it failed
}

// Output is all in the kernel: shut down, discard unread input (closing with unread input
// would reset the connection and lose the output still in flight), close.
void EpollWorker::finish_drain(uint32_t slot) {
  Slot& s = conns_.at(slot);
  ::shutdown(s.fd, SHUT_WR);
  if (s.reason == CloseReason::local) {
    uint8_t scratch[4096];
    for (uint32_t i = 0; i < kDiscardReads; ++i)
      if (::recv(s.fd, scratch, sizeof scratch, MSG_DONTWAIT) <= 0) break;
  }
  zombify(slot, s.reason);
}

// Closes the socket now (output dropped); stream_closed(r) is delivered by drain_notify.
void EpollWorker::zombify(uint32_t slot, CloseReason r) {
  Slot& s = conns_.at(slot);
  if (s.state == ConnState::zombie) return;
  unmark_dirty(slot);
  s.x.out.clear(out_pool_);
  ::close(s.fd);  // also leaves the epoll set
  s.fd = -1;
  s.x.events = 0;
  s.state = ConnState::zombie;
  s.reason = r;
  counters_.conns_closed.add();
  counters_.conns_open.set(counters_.conns_open.get() - 1);
  conns_.notify(slot);
}

void EpollWorker::set_events(uint32_t slot, uint32_t ev) {
  Slot& s = conns_.at(slot);
  if (s.x.events == ev) return;
  epoll_event e{};
  e.events = ev;
  e.data.u64 = tag_conn(conns_.id(slot));
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, s.fd, &e) != 0) {
    zombify(slot, CloseReason::error);
    return;
  }
  s.x.events = ev;
}

// The dirty list: connections with output (or a drain) for flush(). Doubly linked through
// the slots so a connection closed in between leaves it in O(1).
void EpollWorker::mark_dirty(uint32_t slot) {
  Slot& s = conns_.at(slot);
  if (s.x.dirty || s.state == ConnState::zombie) return;  // zombies must never be listed
  s.x.dirty = true;
  s.x.dirty_prev = kNilSlot;
  s.x.dirty_next = dirty_head_;
  if (dirty_head_ != kNilSlot) conns_.at(dirty_head_).x.dirty_prev = slot;
  dirty_head_ = slot;
}

void EpollWorker::unmark_dirty(uint32_t slot) {
  Slot& s = conns_.at(slot);
  if (!s.x.dirty) return;
  if (s.x.dirty_prev != kNilSlot)
    conns_.at(s.x.dirty_prev).x.dirty_next = s.x.dirty_next;
  else
    dirty_head_ = s.x.dirty_next;
  if (s.x.dirty_next != kNilSlot) conns_.at(s.x.dirty_next).x.dirty_prev = s.x.dirty_prev;
  s.x.dirty = false;
  s.x.dirty_prev = s.x.dirty_next = kNilSlot;
}

// ---- transmit --------------------------------------------------------------------------

uint8_t* EpollWorker::dgram_reserve(SocketId s, Endpoint to, uint32_t n) {
  assert(res_ == Res::none && "one reservation at a time");
  if (s >= socks_.size() || socks_[s].transport != Transport::udp || socks_[s].fd < 0 ||
      n > cfg_.max_datagram || tx_n_ == tx_cap_) {
    counters_.tx_no_buffer.add();
    return nullptr;
  }
  const uint32_t b = tx_pool_.take(n);
  if (b == kernel::kNoTxBuf) {
    counters_.tx_no_buffer.add();
    return nullptr;
  }
  res_ = Res::dgram;
  res_sock_ = s;
  res_to_ = to;
  res_buf_ = b;
  res_len_ = n;
  return tx_pool_.data(b);
}

void EpollWorker::dgram_commit(uint32_t n) {
  assert(res_ == Res::dgram && n <= res_len_);
  res_ = Res::none;
  const uint32_t i = tx_n_++;
  tx_buf_[i] = res_buf_;
  tx_sock_[i] = res_sock_;
  tx_addr_[i] = kernel::to_sockaddr(res_to_);
  tx_iov_[i] = {tx_pool_.data(res_buf_), n};
  msghdr& h = tx_msgs_[i].msg_hdr;
  h = msghdr{};
  h.msg_name = &tx_addr_[i];
  h.msg_namelen = sizeof tx_addr_[i];
  h.msg_iov = &tx_iov_[i];
  h.msg_iovlen = 1;
}

uint8_t* EpollWorker::stream_reserve(ConnId c, uint32_t n) {
  assert(res_ == Res::none && "one reservation at a time");
  Slot* s = conns_.find(c);
  if (!s || !Conns::takes_output(*s)) return nullptr;
  if (uint64_t(s->x.out.bytes()) + n > cfg_.conn_out_limit) {
    counters_.conns_overflow.add();
    zombify(conn_slot(c), CloseReason::overflow);
    return nullptr;
  }
  uint8_t* p = s->x.out.reserve(out_pool_, n);
  if (!p) {  // output memory exhausted: the reply is lost, so the stream is (io.hh)
    counters_.tx_no_buffer.add();
    zombify(conn_slot(c), CloseReason::error);
    return nullptr;
  }
  res_ = Res::stream;
  res_conn_ = c;
  res_len_ = n;
  return p;
}

void EpollWorker::stream_commit(ConnId c, uint32_t n) {
  assert(res_ == Res::stream && c == res_conn_ && n <= res_len_);
  (void)c;
  res_ = Res::none;
  Slot* s = conns_.find(res_conn_);
  if (!s || s->state == ConnState::zombie) return;
  s->x.out.commit(n);
  if (n && s->state != ConnState::connecting) mark_dirty(conn_slot(res_conn_));
}

ConnId EpollWorker::connect(SocketId s, Endpoint to) {
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
  if (now_ns_ == 0) now_ns_ = now_ns();
  const uint32_t slot = conns_.alloc(fd, s, to, ConnState::connecting, now_ns_);
  counters_.conns_open.add();
  const ConnId id = conns_.id(slot);
  Slot& k = conns_.at(slot);
  const int r = kernel::connect_start(fd, to);
  epoll_event ev{};
  ev.events = r == 0 ? (EPOLLIN | EPOLLRDHUP) : EPOLLOUT;
  ev.data.u64 = tag_conn(id);
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    zombify(slot, CloseReason::connect_failed);
    return id;
  }
  k.x.events = ev.events;
  if (r == 0) {  // connected at once: stream_open with the next poll
    k.state = ConnState::open;
    counters_.conns_connected.add();
    conns_.owe(slot, kernel::kOwedOpen);
  } else if (r != -EINPROGRESS) {
    zombify(slot, CloseReason::connect_failed);
  }
  return id;
}

void EpollWorker::close(ConnId c) {
  Slot* s = conns_.find(c);
  if (!s || s->state == ConnState::zombie) return;
  const uint32_t slot = conn_slot(c);
  if (s->state == ConnState::connecting) {
    zombify(slot, CloseReason::local);
    return;
  }
  if (s->state == ConnState::draining) {
    s->reason = CloseReason::local;  // the app is done too; nothing more may be queued
    return;
  }
  begin_drain(slot, CloseReason::local);
}

void EpollWorker::pause(ConnId c) {
  Slot* s = conns_.find(c);
  if (!s || !conns_.pause(conn_slot(c))) return;
  set_events(conn_slot(c), read_mask(*s) | (s->x.events & EPOLLOUT));
}

void EpollWorker::resume(ConnId c) {
  Slot* s = conns_.find(c);
  if (!s || !conns_.resume(conn_slot(c))) return;
  set_events(conn_slot(c), read_mask(*s) | (s->x.events & EPOLLOUT));
}

uint32_t EpollWorker::queued(ConnId c) const {
  const Slot* s = conns_.find(c);
  return s ? s->x.out.bytes() : 0;
}

void EpollWorker::notify_writable(ConnId c) {
  Slot* s = conns_.find(c);
  if (s) conns_.want_writable(conn_slot(c), s->x.out.bytes(), cfg_.conn_low_water);
}

void EpollWorker::flush() {
  assert(res_ == Res::none && "flush() with an open reservation");
  if (tx_n_) send_datagrams();
  // Streams: write what was queued; finish drains whose output is all out.
  while (dirty_head_ != kNilSlot) {
    const uint32_t slot = dirty_head_;
    unmark_dirty(slot);
    Slot& s = conns_.at(slot);
    if (s.state != ConnState::open && s.state != ConnState::draining) continue;
    if (s.x.events & EPOLLOUT) continue;  // blocked: EPOLLOUT resumes it
    if (!s.x.out.empty())
      write_conn(slot);
    else if (s.state == ConnState::draining)
      finish_drain(slot);
  }
}

void EpollWorker::send_datagrams() {
  if (gso_on_) return send_gso();
  // One sendmmsg per run of datagrams on the same socket (usually one run).
  uint32_t i = 0;
  while (i < tx_n_) {
    uint32_t j = i + 1;
    while (j < tx_n_ && tx_sock_[j] == tx_sock_[i]) ++j;
    send_run(socks_[tx_sock_[i]].fd, i, j - i);
    i = j;
  }
  // sendmmsg copied the data: every buffer is free again.
  for (uint32_t b = 0; b < tx_n_; ++b) tx_pool_.give(tx_buf_[b]);
  tx_n_ = 0;
}

void EpollWorker::send_run(int fd, uint32_t first, uint32_t count) {
  uint32_t off = 0;
  while (off < count) {
    const uint32_t want = count - off < kSendmmsgMax ? count - off : kSendmmsgMax;
    const int r = sendmmsg(fd, tx_msgs_.get() + first + off, want, MSG_DONTWAIT);
    if (r > 0) {
      for (uint32_t m = 0; m < uint32_t(r); ++m)
        counters_.tx_bytes.add(tx_iov_[first + off + m].iov_len);
      counters_.tx_datagrams.add(uint32_t(r));
      off += uint32_t(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      counters_.tx_errors.add(count - off);  // socket buffer full: the rest is dropped
      return;
    }
    counters_.tx_errors.add();  // this datagram failed (EMSGSIZE, unreachable, ...): skip it
    ++off;
  }
}

// The GSO path of send_datagrams(): datagrams to one destination join a train (commit
// order kept per destination), then one sendmmsg per run of sends on the same socket.
void EpollWorker::send_gso() {
  uint32_t m = 0;
  auto submit = [&](uint32_t t) { gso_out_[m++] = t; };
  for (uint32_t i = 0; i < tx_n_; ++i) {
    const uint32_t len = uint32_t(tx_iov_[i].iov_len);
    if (kernel::GsoTrains::eligible(len)) {
      const uint32_t t = gso_.join(tx_sock_[i], tx_addr_[i], len, submit);
      if (t != kernel::kNoTrain) {
        gso_.at(t).add(i, static_cast<uint8_t*>(tx_iov_[i].iov_base), len);
        gso_.close_if_full(t, submit);
        continue;
      }
    } else {
      gso_.close(tx_sock_[i], tx_addr_[i], submit);  // keep this destination's order
    }
    gso_out_[m++] = kGsoSingle | i;
  }
  gso_.close_all(submit);
  // Headers: a train of one is sent as the plain datagram it is.
  for (uint32_t k = 0; k < m; ++k) {
    const uint32_t o = gso_out_[k];
    if (!(o & kGsoSingle) && gso_.at(o).n == 1) {
      gso_out_[k] = kGsoSingle | gso_.at(o).buf[0];
      gso_.release(o);
    }
    const uint32_t x = gso_out_[k];
    gso_msgs_[k].msg_hdr =
        (x & kGsoSingle) ? tx_msgs_[x & ~kGsoSingle].msg_hdr : *gso_.at(x).finish();
  }
  uint32_t i = 0;
  while (i < m) {
    const auto sock_of = [&](uint32_t o) {
      return o & kGsoSingle ? tx_sock_[o & ~kGsoSingle] : gso_.at(o).sock;
    };
    uint32_t j = i + 1;
    while (j < m && sock_of(gso_out_[j]) == sock_of(gso_out_[i])) ++j;
    send_gso_run(socks_[sock_of(gso_out_[i])].fd, i, j - i);
    i = j;
  }
  for (uint32_t k = 0; k < m; ++k)
    if (!(gso_out_[k] & kGsoSingle)) gso_.release(gso_out_[k]);
  for (uint32_t b = 0; b < tx_n_; ++b) tx_pool_.give(tx_buf_[b]);
  tx_n_ = 0;
}

// sendmmsg of gso_msgs_[first, first + count): like send_run, counting each train as its
// datagrams; a train the kernel refuses (kernel::gso_refused) turns GSO off and goes
// datagram by datagram.
void EpollWorker::send_gso_run(int fd, uint32_t first, uint32_t count) {
  uint32_t off = 0;
  auto datagrams = [&](uint32_t k) {
    const uint32_t o = gso_out_[first + k];
    return o & kGsoSingle ? 1u : gso_.at(o).n;
  };
  while (off < count) {
    const uint32_t want = count - off < kSendmmsgMax ? count - off : kSendmmsgMax;
    const int r = sendmmsg(fd, gso_msgs_.get() + first + off, want, MSG_DONTWAIT);
    if (r > 0) {
      for (uint32_t k = off; k < off + uint32_t(r); ++k) {
        counters_.tx_bytes.add(gso_msgs_[first + k].msg_len);
        counters_.tx_datagrams.add(datagrams(k));
        if (datagrams(k) > 1) counters_.tx_gso_sends.add();
      }
      off += uint32_t(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    uint32_t rest = 0;
    for (uint32_t k = off; k < count; ++k) rest += datagrams(k);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
      counters_.tx_errors.add(rest);  // socket buffer full: the rest is dropped
      return;
    }
    const uint32_t o = gso_out_[first + off];
    if (!(o & kGsoSingle) && kernel::gso_refused(errno)) {
      gso_on_ = false;
      const kernel::GsoTrain& t = gso_.at(o);
      for (uint32_t d = 0; d < t.n; ++d) {
        // t.buf holds the datagrams' indices into the tx arrays (see send_gso).
        if (::sendmsg(fd, &tx_msgs_[t.buf[d]].msg_hdr, MSG_DONTWAIT) >= 0) {
          counters_.tx_datagrams.add();
          counters_.tx_bytes.add(t.iov[d].iov_len);
        } else {
          counters_.tx_errors.add();
        }
      }
    } else {
      counters_.tx_errors.add(datagrams(off));  // EMSGSIZE, unreachable, ...: skip it
    }
    ++off;
  }
}

void EpollWorker::wake() {
  const uint64_t one = 1;
  // EAGAIN means the counter is already non-zero: the worker will wake anyway.
  [[maybe_unused]] const ssize_t r = ::write(evfd_, &one, sizeof one);
}

}  // namespace cw::dp
