// Single-producer/single-consumer ring: the only way one worker (or the control thread)
// hands something to another. Lock-free, fixed capacity chosen at construction (setup),
// never allocates afterwards. Producer-side and consumer-side fields sit on separate cache
// lines so the two threads do not false-share.
#pragma once

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>

namespace cw::rt {

template <class T>
class Spsc {
  static_assert(std::is_trivially_copyable_v<T>, "mailbox items are copied as bytes");

 public:
  // capacity is rounded up to a power of two.
  explicit Spsc(size_t capacity) {
    const size_t c = std::bit_ceil(std::max<size_t>(capacity, 2));
    mask_ = c - 1;
    slots_ = std::make_unique<T[]>(c);
  }
  Spsc(const Spsc&) = delete;
  Spsc& operator=(const Spsc&) = delete;

  // Producer thread only. False when full (the caller counts the drop).
  bool push(const T& v) {
    const uint64_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_cache_ > mask_) {
      tail_cache_ = tail_.load(std::memory_order_acquire);
      if (h - tail_cache_ > mask_) return false;
    }
    slots_[h & mask_] = v;
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

  // Consumer thread only. False when empty.
  bool pop(T& out) {
    const uint64_t t = tail_.load(std::memory_order_relaxed);
    if (t == head_cache_) {
      head_cache_ = head_.load(std::memory_order_acquire);
      if (t == head_cache_) return false;
    }
    out = slots_[t & mask_];
    tail_.store(t + 1, std::memory_order_release);
    return true;
  }

  // Any thread; approximate.
  size_t size() const {
    return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire);
  }
  size_t capacity() const { return mask_ + 1; }

 private:
  static constexpr size_t kLine = 64;
  alignas(kLine) std::atomic<uint64_t> head_{0};  // written by producer
  uint64_t tail_cache_ = 0;                       // producer's view of tail
  alignas(kLine) std::atomic<uint64_t> tail_{0};  // written by consumer
  uint64_t head_cache_ = 0;                       // consumer's view of head
  alignas(kLine) size_t mask_ = 0;
  std::unique_ptr<T[]> slots_;
};

}  // namespace cw::rt
