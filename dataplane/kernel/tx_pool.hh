// Per-worker pool of datagram tx buffers, shared by the kernel backends. Owner thread only.
//
// Two sizes, both fixed at setup: IoConfig::tx_buffers small buffers of kTxSmallBytes (most
// datagrams), and kTxLargeBuffers buffers of max_datagram bytes for the rest. A buffer is
// taken at dgram_reserve and given back when its send completed (epoll: after sendmmsg in
// flush; io_uring: on the send's completion) -- the backend owns it in between, the caller
// only between reserve and commit. Exhaustion is not an error: take() returns kNoTxBuf and
// the backend counts tx_no_buffer. Nothing here allocates after create().
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/kernel/mem_map.hh"
#include "dataplane/result.hh"

namespace cw::dp::kernel {

inline constexpr uint32_t kTxSmallBytes = 2048;  // holds any datagram up to a 1500 MTU
inline constexpr uint32_t kTxLargeBuffers = 32;  // max-size buffers per worker
inline constexpr uint32_t kNoTxBuf = ~uint32_t{0};

class TxPool {
 public:
  TxPool() = default;
  TxPool(TxPool&&) = default;
  TxPool& operator=(TxPool&&) = default;

  // small: number of kTxSmallBytes buffers; large: number of `large_bytes` buffers.
  static Result<TxPool> create(uint32_t small, uint32_t large, uint32_t large_bytes) {
    TxPool p;
    if (large_bytes < kTxSmallBytes) large_bytes = kTxSmallBytes;
    auto m =
        MemMap::map(size_t(small) * kTxSmallBytes + size_t(large) * large_bytes, "tx buffer pool");
    if (!m) return m.error();
    p.mem_ = std::move(*m);
    p.small_ = small;
    p.large_ = large;
    p.large_bytes_ = large_bytes;
    p.free_small_ = std::make_unique<uint32_t[]>(small ? small : 1);
    p.free_large_ = std::make_unique<uint32_t[]>(large ? large : 1);
    // Stacks hand out low indices first (the same few buffers stay warm in cache).
    for (uint32_t i = 0; i < small; ++i) p.free_small_[i] = small - 1 - i;
    for (uint32_t i = 0; i < large; ++i) p.free_large_[i] = small + large - 1 - i;
    p.nfree_small_ = small;
    p.nfree_large_ = large;
    return p;
  }

  // A buffer of at least n bytes, or kNoTxBuf (pool exhausted or n > large size). Small
  // requests fall back to a large buffer when the small ones are gone.
  uint32_t take(uint32_t n) {
    if (n <= kTxSmallBytes && nfree_small_) return free_small_[--nfree_small_];
    if (n <= large_bytes_ && nfree_large_) return free_large_[--nfree_large_];
    return kNoTxBuf;
  }
  void give(uint32_t b) {
    if (b < small_)
      free_small_[nfree_small_++] = b;
    else
      free_large_[nfree_large_++] = b;
  }

  uint8_t* data(uint32_t b) const {
    return b < small_
               ? mem_.data() + size_t(b) * kTxSmallBytes
               : mem_.data() + size_t(small_) * kTxSmallBytes + size_t(b - small_) * large_bytes_;
  }
  uint32_t size(uint32_t b) const { return b < small_ ? kTxSmallBytes : large_bytes_; }
  uint32_t count() const { return small_ + large_; }
  uint32_t in_use() const { return small_ + large_ - nfree_small_ - nfree_large_; }

 private:
  MemMap mem_;
  uint32_t small_ = 0, large_ = 0, large_bytes_ = 0;
  std::unique_ptr<uint32_t[]> free_small_, free_large_;
  uint32_t nfree_small_ = 0, nfree_large_ = 0;
};

}  // namespace cw::dp::kernel
