// Refcounted payload buffers for one-to-many fan-out between workers.
//
// Ownership rules:
//  - Each SharedPool belongs to one worker (its owner), which alone allocates from it and
//    alone puts buffers back on its free list. A buffer is never freed on a foreign core.
//  - The owner fills a buffer (data, len), then shares it. After sharing, the bytes are
//    read-only for everyone until the last reference goes.
//  - A Mail whose p is a SharedBuf carries one reference: take it before posting (retain),
//    and the receiver releases it exactly once when done. If the post fails the sender
//    still holds that reference and releases it (fan_out() does this).
//  - release() by the last holder: on the owner it goes straight back to the free list; on
//    any other worker it is pushed onto the pool's return list (lock-free, never full), and
//    the owner takes the whole list back in reclaim() (called by alloc() when the free list
//    is empty, and by the service each loop if it wants returns counted promptly).
//  - A pool must outlive every worker that may hold one of its buffers: create pools at
//    setup, outside the workers' service instances, and destroy them after all workers
//    have stopped.
#pragma once

#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <vector>

#include "app/runtime/mailbox.hh"
#include "app/runtime/service.hh"
#include "app/runtime/stats.hh"

namespace cw::rt {

class SharedPool;

struct SharedBuf {
  uint8_t* data;     // cap bytes, fixed at setup
  uint32_t cap;      // bytes
  uint32_t len = 0;  // bytes in use; set by the owner before sharing
  uint16_t owner;    // worker that owns the pool
  SharedPool* pool;
  std::atomic<uint32_t> refs{0};
  SharedBuf* next = nullptr;  // return-list link (while on the return list only)
};

// Owner-written counters (the owner counts remote returns when it reclaims them).
struct alignas(64) SharedPoolStats {
  Counter allocs;        // buffers handed out
  Counter alloc_failed;  // alloc() with every buffer in use
  Counter freed_local;   // last reference dropped on the owner
  Counter returned;      // last reference dropped on another worker, reclaimed by the owner
};

class SharedPool {
 public:
  // Setup: buffers of buf_bytes each, owned by worker `owner`.
  SharedPool(unsigned owner, uint32_t buffers, uint32_t buf_bytes)
      // Not zeroed: a buffer's bytes are read only up to len, after they are written, so
      // pages become resident only when buffers are used.
      : bytes_(std::make_unique_for_overwrite<uint8_t[]>(size_t(buffers) * buf_bytes)),
        bufs_(std::make_unique<SharedBuf[]>(buffers)),
        n_(buffers),
        owner_(owner) {
    free_.reserve(buffers);
    for (uint32_t i = buffers; i-- > 0;) {
      SharedBuf& b = bufs_[i];
      b.data = bytes_.get() + size_t(i) * buf_bytes;
      b.cap = buf_bytes;
      b.owner = uint16_t(owner);
      b.pool = this;
      free_.push_back(&b);
    }
  }
  SharedPool(const SharedPool&) = delete;
  SharedPool& operator=(const SharedPool&) = delete;

  // Owner only: a buffer holding one reference, len 0; nullptr when all are in use
  // (counted).
  SharedBuf* alloc() {
    if (free_.empty() && reclaim() == 0) {
      stats_.alloc_failed.add();
      return nullptr;
    }
    SharedBuf* b = free_.back();
    free_.pop_back();
    b->len = 0;
    b->refs.store(1, std::memory_order_relaxed);
    stats_.allocs.add();
    return b;
  }

  // Any holder of a reference: n more references (one per mail about to carry it).
  static void retain(SharedBuf* b, uint32_t n = 1) {
    b->refs.fetch_add(n, std::memory_order_relaxed);
  }

  // Any holder, on worker `self`: drop one reference (see the rules above).
  static void release(SharedBuf* b, unsigned self) {
    if (b->refs.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
    if (self == b->owner)
      b->pool->free_local(b);
    else
      b->pool->push_return(b);
  }

  // Owner only: takes back every buffer other workers returned; how many.
  uint32_t reclaim() {
    SharedBuf* l = returns_.exchange(nullptr, std::memory_order_acquire);
    uint32_t k = 0;
    for (; l; ++k) {
      SharedBuf* nx = l->next;
      free_.push_back(l);
      l = nx;
    }
    stats_.returned.add(k);
    return k;
  }

  // Owner only: buffers not on the free list (in use, or returned but not yet reclaimed).
  uint32_t in_use() const { return n_ - uint32_t(free_.size()); }
  uint32_t size() const { return n_; }
  unsigned owner() const { return owner_; }
  const SharedPoolStats& stats() const { return stats_; }

 private:
  void free_local(SharedBuf* b) {
    stats_.freed_local.add();
    free_.push_back(b);
  }
  // Any thread. The owner only ever takes the whole list (exchange), so there is no ABA.
  void push_return(SharedBuf* b) {
    SharedBuf* h = returns_.load(std::memory_order_relaxed);
    do b->next = h;
    while (!returns_.compare_exchange_weak(h, b, std::memory_order_release,
                                           std::memory_order_relaxed));
  }

  std::unique_ptr<uint8_t[]> bytes_;
  std::unique_ptr<SharedBuf[]> bufs_;
  std::vector<SharedBuf*> free_;  // owner only; capacity n_, never grows past it
  uint32_t n_;
  unsigned owner_;
  SharedPoolStats stats_;
  alignas(64) std::atomic<SharedBuf*> returns_{nullptr};  // pushed by others, taken by owner
};

// Sends buffer b (held by the caller, who keeps its own reference) to the same service on
// every worker (this one only if include_self), one reference per mail. Posts that fail
// give their reference back; returns how many failed.
template <class Io>
unsigned fan_out(Ctx<Io>& ctx, SharedBuf* b, Mail m, bool include_self) {
  const unsigned targets = ctx.workers - (include_self ? 0 : 1);
  if (targets == 0) return 0;
  SharedPool::retain(b, targets);
  m.p = b;
  const unsigned failed = ctx.broadcast(m, include_self);
  for (unsigned i = 0; i < failed; ++i) SharedPool::release(b, ctx.worker);
  return failed;
}

}  // namespace cw::rt
