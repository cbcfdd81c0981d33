// The wake-ups between the owning worker and one of the swarm's helper threads (the disk
// helper, disk.hh; the tracker announcer, announcer.hh). The worker rings after it queued
// work, at most once per loop iteration (an atomic counter the helper waits on: no syscall
// while the helper is busy); the helper wakes the worker's poll through the waker the
// worker installed (ctx.io.wake()) when it has answers. Stopping rings too.
#pragma once

#include <atomic>
#include <cstdint>

namespace cw::swarm {

class Doorbell {
 public:
  using Waker = void (*)(void*);

  // Worker side. Set the waker before the first job is queued.
  void set_waker(Waker w, void* arg) {
    waker_ = w;
    waker_arg_ = arg;
  }
  void queued() { queued_ = true; }
  // Wakes the helper if anything was queued since the last ring.
  void ring() {
    if (!queued_) return;
    queued_ = false;
    bump();
  }
  void stop() {
    stop_.store(true, std::memory_order_release);
    bump();
  }

  // Helper side: take seen() before draining the jobs; wait(seen) sleeps only if nothing
  // rang since.
  uint32_t seen() const { return seq_.load(std::memory_order_acquire); }
  void wait(uint32_t seen) const { seq_.wait(seen, std::memory_order_acquire); }
  bool stopping() const { return stop_.load(std::memory_order_acquire); }
  void wake_worker() const {
    if (waker_) waker_(waker_arg_);
  }

 private:
  void bump() {
    seq_.fetch_add(1, std::memory_order_release);
    seq_.notify_one();
  }

  bool queued_ = false;  // worker only: since the last ring
  std::atomic<uint32_t> seq_{0};
  std::atomic<bool> stop_{false};
  Waker waker_ = nullptr;
  void* waker_arg_ = nullptr;
};

}  // namespace cw::swarm
