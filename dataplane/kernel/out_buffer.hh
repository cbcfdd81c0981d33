// Bounded per-connection output queue, shared by the kernel backends. Owner thread only.
//
// Bytes are kept in a chain of chunks taken from a per-worker OutChunkPool. An idle
// connection holds no chunk (an OutBuffer is three words); a chunk is taken when output is
// written and given back as soon as it has been sent. Chunks grow in steps: the first is
// kOutChunkBytes (1 KiB: a connection with a small reply pending holds ~1 KiB, so a
// fan-out to 10 k slow readers costs ~10 MiB, not 160), each next one twice its
// predecessor up to kOutStepMaxBytes, or exactly the power of two a larger reservation
// needs. The pool bounds the bytes all chunks of a worker hold (IoConfig::worker_out_limit):
// past it take() fails, and the backend closes the connection (counted). The pool keeps freed
// chunks on free lists (up to a retained-bytes bound), so steady-state traffic does not allocate;
// it only mallocs while warming up or when load grows beyond what it ever held.
//
// Stability rule (what io_uring needs): chunks never move, and writes only go to the end
// of the chain, past every byte already written. So a region handed to the kernel by
// gather() stays untouched until the caller consume()s it, while new output keeps being
// appended. gather(skip) lets a caller with a send in flight collect only the bytes after it.
//
// The per-connection bound (IoConfig::conn_out_limit) is the caller's check on bytes():
// this class only stores.
#pragma once

#include <sys/uio.h>

#include <cassert>
#include <cstdint>
#include <cstdlib>

namespace cw::dp::kernel {

// Smallest chunk, in data bytes. Larger reservations get a chunk of the next power of two.
inline constexpr uint32_t kOutChunkBytes = 1024;
inline constexpr unsigned kOutChunkClasses = 20;  // 1 KiB .. 512 MiB
// Chunks after the first double in size up to this (fewer chunks per sendmsg under bulk).
inline constexpr uint32_t kOutStepMaxBytes = 64 * 1024;
// Freed chunks kept for reuse per worker (bytes); beyond this they go back to malloc.
inline constexpr uint64_t kOutRetainBytes = 16ull << 20;

struct OutChunk {
  OutChunk* next;
  uint32_t cap;   // data bytes
  uint32_t head;  // first byte not yet consumed (sent)
  uint32_t tail;  // end of committed bytes
  uint32_t cls;   // size class: cap == kOutChunkBytes << cls
  uint8_t* data() { return reinterpret_cast<uint8_t*>(this + 1); }
};

class OutChunkPool {
 public:
  explicit OutChunkPool(uint64_t retain_bytes = kOutRetainBytes) : retain_(retain_bytes) {}
  // Setup: bound on the data bytes of chunks held by buffers at once.
  void set_limit(uint64_t bytes) { limit_ = bytes; }
  ~OutChunkPool() {
    for (OutChunk* c : free_) {
      while (c) {
        OutChunk* next = c->next;
        std::free(c);
        c = next;
      }
    }
  }
  OutChunkPool(const OutChunkPool&) = delete;
  OutChunkPool& operator=(const OutChunkPool&) = delete;

  // A chunk with at least `need` data bytes, emptied; nullptr if need is too large, the
  // limit would be passed, or malloc failed.
  OutChunk* take(uint32_t need) {
    unsigned cls = 0;
    while (cls < kOutChunkClasses && (uint64_t(kOutChunkBytes) << cls) < need) ++cls;
    if (cls == kOutChunkClasses) return nullptr;
    if (held_ + (uint64_t(kOutChunkBytes) << cls) > limit_) return nullptr;
    OutChunk* c = free_[cls];
    if (c) {
      free_[cls] = c->next;
      cached_ -= c->cap;
    } else {
      const uint32_t cap = kOutChunkBytes << cls;
      c = static_cast<OutChunk*>(std::malloc(sizeof(OutChunk) + cap));
      if (!c) return nullptr;
      c->cap = cap;
      c->cls = cls;
    }
    c->next = nullptr;
    c->head = c->tail = 0;
    ++outstanding_;
    held_ += c->cap;
    return c;
  }

  void give(OutChunk* c) {
    --outstanding_;
    held_ -= c->cap;
    if (cached_ + c->cap > retain_) {
      std::free(c);
      return;
    }
    cached_ += c->cap;
    c->next = free_[c->cls];
    free_[c->cls] = c;
  }

  uint64_t cached_bytes() const { return cached_; }
  uint64_t outstanding() const { return outstanding_; }  // chunks held by buffers (leak check)
  uint64_t held_bytes() const { return held_; }          // their data bytes

 private:
  OutChunk* free_[kOutChunkClasses] = {};
  uint64_t retain_;
  uint64_t limit_ = ~uint64_t{0};
  uint64_t held_ = 0;
  uint64_t cached_ = 0;
  uint64_t outstanding_ = 0;
};

class OutBuffer {
 public:
  uint32_t bytes() const { return bytes_; }  // queued and not consumed (incl. in flight)
  bool empty() const { return bytes_ == 0; }

  // Contiguous space for n bytes at the end of the queue (nullptr: pool failed). Only one
  // reservation is open at a time; commit() ends it.
  uint8_t* reserve(OutChunkPool& pool, uint32_t n) {
    if (tail_ && tail_->cap - tail_->tail >= n) return tail_->data() + tail_->tail;
    // The step: twice the last chunk (capped), or what n needs if that is more.
    uint32_t step = tail_ ? tail_->cap * 2 : kOutChunkBytes;
    if (step > kOutStepMaxBytes) step = kOutStepMaxBytes;
    OutChunk* c = pool.take(n > step ? n : step);
    if (!c) return nullptr;
    if (tail_)
      tail_->next = c;
    else
      head_ = c;
    tail_ = c;
    return c->data();
  }
  // n (<= the reserved length) bytes were written at the reserved place.
  void commit(uint32_t n) {
    assert(tail_ && tail_->cap - tail_->tail >= n);
    tail_->tail += n;
    bytes_ += n;
  }

  // Fills at most max_iov iovecs with queued bytes, starting `skip` bytes after the head.
  // Returns the number of iovecs; *total gets their byte count.
  unsigned gather(iovec* iov, unsigned max_iov, uint64_t* total, uint32_t skip = 0) const {
    unsigned k = 0;
    uint64_t sum = 0;
    for (OutChunk* c = head_; c && k < max_iov; c = c->next) {
      uint32_t from = c->head;
      const uint32_t avail = c->tail - c->head;
      if (skip >= avail) {
        skip -= avail;
        continue;
      }
      from += skip;
      skip = 0;
      iov[k].iov_base = c->data() + from;
      iov[k].iov_len = c->tail - from;
      sum += iov[k].iov_len;
      ++k;
    }
    *total = sum;
    return k;
  }

  // The first n queued bytes were sent: drop them and give emptied chunks back. The tail
  // chunk is given back too once empty, so an idle connection holds nothing.
  void consume(OutChunkPool& pool, uint32_t n) {
    assert(n <= bytes_);
    bytes_ -= n;
    while (head_) {
      const uint32_t avail = head_->tail - head_->head;
      const uint32_t take = n < avail ? n : avail;
      head_->head += take;
      n -= take;
      if (head_->head < head_->tail) break;
      // Drained: give it back, even when it is the tail (idle connections own no memory).
      OutChunk* c = head_;
      head_ = c->next;
      if (!head_) tail_ = nullptr;
      pool.give(c);
    }
    assert(n == 0);
  }

  // Drops everything (connection closed). No send may be in flight on these bytes.
  void clear(OutChunkPool& pool) {
    while (head_) {
      OutChunk* c = head_;
      head_ = c->next;
      pool.give(c);
    }
    tail_ = nullptr;
    bytes_ = 0;
  }

 private:
  OutChunk* head_ = nullptr;
  OutChunk* tail_ = nullptr;
  uint32_t bytes_ = 0;
};

}  // namespace cw::dp::kernel
