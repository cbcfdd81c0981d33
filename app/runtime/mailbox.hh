// The mailbox grid: one SPSC ring for every (sender, receiver) pair of workers plus one from
// the control thread to each worker. Built at setup; fixed afterwards.
//
// Full-mailbox policy (worker senders, Ctx::post): mail is never dropped silently. When the
// ring to a worker is full, the sender parks the mail in its own bounded overflow queue for
// that receiver (sized at setup) and its loop moves parked mail into the ring first, in
// order, on every iteration: mail from one worker to another stays FIFO. While anything is
// parked for a receiver, backpressured(from, to) holds and the sending service should stop
// taking new work that would mail it (stop reading the source connection, stop issuing);
// services with on_mail_drained are called when the backlog has emptied. Only when the
// overflow queue is full as well does post() fail (Post::failed, counted in mail_dropped):
// the mail was not taken and its sender still owns whatever Mail::p points to.
// Sizing: an overflow at least as large as the mail a worker can have in flight to one
// receiver (e.g. windows x window of ReplyOrder for forwarded requests, plus their replies)
// makes Post::failed impossible; the Runtime uses overflow = mailbox depth.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <vector>

#include "app/runtime/service.hh"
#include "app/runtime/spsc.hh"

namespace cw::rt {

// A fixed-capacity FIFO used by one thread only (a sender's parked mail for one receiver).
class LocalFifo {
 public:
  explicit LocalFifo(size_t capacity) {
    const size_t c = std::bit_ceil(std::max<size_t>(capacity, 1));
    mask_ = c - 1;
    slots_ = std::make_unique<Mail[]>(c);
  }
  bool push(const Mail& m) {
    if (head_ - tail_ > mask_) return false;
    slots_[head_++ & mask_] = m;
    return true;
  }
  const Mail& front() const { return slots_[tail_ & mask_]; }
  void pop() { ++tail_; }
  bool empty() const { return head_ == tail_; }
  size_t size() const { return head_ - tail_; }

 private:
  std::unique_ptr<Mail[]> slots_;
  size_t mask_ = 0, head_ = 0, tail_ = 0;
};

class Mailboxes {
 public:
  // depth: ring capacity per (sender, receiver). overflow: capacity of each worker's
  // parked-mail queue per receiver (0: same as depth).
  Mailboxes(unsigned workers, size_t depth, size_t overflow = 0)
      : n_(workers), outboxes_(std::make_unique<Outbox[]>(workers)) {
    rings_.reserve(size_t(n_) * (n_ + 1));
    for (size_t i = 0; i < size_t(n_) * (n_ + 1); ++i)
      rings_.push_back(std::make_unique<Spsc<Mail>>(depth));
    for (unsigned w = 0; w < n_; ++w) {
      outboxes_[w].parked.reserve(n_);
      for (unsigned to = 0; to < n_; ++to)
        outboxes_[w].parked.emplace_back(overflow ? overflow : depth);
    }
  }
  unsigned workers() const { return n_; }

  // Sender `from` (a worker index, or n_ for the control thread) to worker `to`.
  Spsc<Mail>& ring(unsigned from, unsigned to) { return *rings_[size_t(to) * (n_ + 1) + from]; }
  Spsc<Mail>& control_ring(unsigned to) { return ring(n_, to); }

  // Any sender thread: push and, if the receiver is blocked in poll(), wake it. False when
  // the ring is full (nothing queued). The control thread uses this; workers use post().
  bool send(unsigned from, unsigned to, const Mail& m) {
    if (!ring(from, to).push(m)) return false;
    if (waiters_[to].sleeping.load(std::memory_order_seq_cst) && waiters_[to].wake)
      waiters_[to].wake(waiters_[to].arg);
    return true;
  }

  // Worker `from` only: send, parking the mail when the ring is full (see the policy above).
  Post post(unsigned from, unsigned to, const Mail& m, WorkerStats& st) {
    Outbox& o = outboxes_[from];
    LocalFifo& q = o.parked[to];
    // Behind parked mail the ring must not be tried: that would overtake it.
    if (q.empty() && send(from, to, m)) {
      st.mail_out.add();
      return Post::sent;
    }
    if (!q.push(m)) {
      st.mail_dropped.add();
      return Post::failed;
    }
    ++o.total;
    st.mail_deferred.add();
    return Post::deferred;
  }

  // Worker `from` only: moves parked mail into the rings, in order, as far as they have
  // room. True when something was parked before and nothing is now.
  bool flush_parked(unsigned from, WorkerStats& st) {
    Outbox& o = outboxes_[from];
    if (o.total == 0) return false;
    for (unsigned to = 0; to < n_; ++to) {
      LocalFifo& q = o.parked[to];
      while (!q.empty() && send(from, to, q.front())) {
        q.pop();
        --o.total;
        st.mail_out.add();
      }
    }
    return o.total == 0;
  }

  // Worker `from` only: whether mail to `to` is parked (the receiver is behind).
  bool backpressured(unsigned from, unsigned to) const {
    return !outboxes_[from].parked[to].empty();
  }
  // Worker `from` only: mail parked for all receivers together.
  size_t parked(unsigned from) const { return outboxes_[from].total; }

  // Setup: how to wake worker w (its WorkerIo::wake()).
  void set_waker(unsigned w, void (*fn)(void*), void* arg) {
    waiters_[w].wake = fn;
    waiters_[w].arg = arg;
  }

  // Worker w only: announce/retract that it is about to block. After announcing, the
  // worker re-checks its rings before blocking (a sender that pushed before seeing the
  // flag is caught by that re-check; one that pushed after it calls wake()).
  void set_sleeping(unsigned w, bool s) {
    waiters_[w].sleeping.store(s, std::memory_order_seq_cst);
  }
  bool has_mail(unsigned w) {
    for (unsigned f = 0; f <= n_; ++f)
      if (ring(f, w).size() != 0) return true;
    return false;
  }

 private:
  struct alignas(64) Waiter {
    std::atomic<bool> sleeping{false};
    void (*wake)(void*) = nullptr;
    void* arg = nullptr;
  };
  // One worker's parked mail, by receiver. Touched by that worker only.
  struct alignas(64) Outbox {
    std::vector<LocalFifo> parked;
    size_t total = 0;
  };
  unsigned n_;
  std::vector<std::unique_ptr<Spsc<Mail>>> rings_;
  std::unique_ptr<Waiter[]> waiters_ = std::make_unique<Waiter[]>(n_);
  std::unique_ptr<Outbox[]> outboxes_;
};

template <class Io>
Post Ctx<Io>::post(unsigned to_worker, uint16_t to_service, Mail m) {
  m.from = worker;
  m.service = to_service;
  return mail.post(worker, to_worker, m, stats);
}

template <class Io>
unsigned Ctx<Io>::broadcast(Mail m, bool include_self) {
  unsigned failed = 0;
  for (unsigned w = 0; w < workers; ++w)
    if ((w != worker || include_self) && post(w, m) == Post::failed) ++failed;
  return failed;
}

template <class Io>
bool Ctx<Io>::backpressured(unsigned to_worker) const {
  return mail.backpressured(worker, to_worker);
}

}  // namespace cw::rt
