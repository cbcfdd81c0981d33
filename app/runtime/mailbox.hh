// The mailbox grid: one SPSC ring for every (sender, receiver) pair of workers plus one from
// the control thread to each worker. Built at setup; fixed afterwards.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "app/runtime/service.hh"
#include "app/runtime/spsc.hh"

namespace cw::rt {

class Mailboxes {
 public:
  Mailboxes(unsigned workers, size_t depth) : n_(workers) {
    rings_.reserve(size_t(n_) * (n_ + 1));
    for (size_t i = 0; i < size_t(n_) * (n_ + 1); ++i)
      rings_.push_back(std::make_unique<Spsc<Mail>>(depth));
  }
  unsigned workers() const { return n_; }

  // Sender `from` (a worker index, or n_ for the control thread) to worker `to`.
  Spsc<Mail>& ring(unsigned from, unsigned to) { return *rings_[size_t(to) * (n_ + 1) + from]; }
  Spsc<Mail>& control_ring(unsigned to) { return ring(n_, to); }

  // Any thread: push and, if the receiver is blocked in poll(), wake it.
  bool send(unsigned from, unsigned to, const Mail& m) {
    if (!ring(from, to).push(m)) return false;
    if (waiters_[to].sleeping.load(std::memory_order_seq_cst) && waiters_[to].wake)
      waiters_[to].wake(waiters_[to].arg);
    return true;
  }

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
  unsigned n_;
  std::vector<std::unique_ptr<Spsc<Mail>>> rings_;
  std::unique_ptr<Waiter[]> waiters_ = std::make_unique<Waiter[]>(n_);
};

template <class Io>
bool Ctx<Io>::post(unsigned to_worker, Mail m) {
  m.from = worker;
  m.service = service;
  if (mail.send(worker, to_worker, m)) return true;
  stats.mail_dropped.add();
  return false;
}

}  // namespace cw::rt
