// Per-connection storage for the unconsumed tail of a TCP stream (a frame split across
// segments). An idle connection, or one whose frames arrive whole, owns no buffer: a tail
// buffer is taken from a per-worker free list when a partial frame is left over and given
// back as soon as it is consumed. Buffers come in two sizes (small, then large up to the
// largest frame any service accepts); their number is bounded at setup, and the free lists
// keep them for reuse, so in steady state this does not allocate.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace cw::rt {

class StreamTails {
 public:
  struct Tail {
    uint8_t* buf = nullptr;
    uint32_t len = 0;
    uint32_t cap = 0;
  };

  // slots: max connections; small/large: buffer sizes; max_buffers: bound on buffers in use.
  StreamTails(uint32_t slots, uint32_t small, uint32_t large, uint32_t max_buffers)
      : tails_(slots), small_(small), large_(large < small ? small : large), max_(max_buffers) {}
  ~StreamTails() {
    for (auto& t : tails_) std::free(t.buf);
    for (auto* b : free_small_) std::free(b);
    for (auto* b : free_large_) std::free(b);
  }
  StreamTails(const StreamTails&) = delete;
  StreamTails& operator=(const StreamTails&) = delete;

  Tail& at(uint32_t slot) { return tails_[slot]; }
  uint32_t large_size() const { return large_; }
  uint32_t in_use() const { return in_use_; }

  // Make t hold at least `need` bytes of capacity (keeping its contents). False when the
  // bound on buffers is reached or need exceeds the large size.
  bool reserve(Tail& t, uint32_t need) {
    if (need <= t.cap) return true;
    if (need > large_) return false;
    const bool want_large = need > small_;
    uint8_t* nb = take(want_large);
    if (!nb) return false;
    if (t.len) std::memcpy(nb, t.buf, t.len);
    if (t.buf) give(t);
    t.buf = nb;
    t.cap = want_large ? large_ : small_;
    return true;
  }

  // Drop the first n bytes of t; frees the buffer when it becomes empty.
  void consume(Tail& t, uint32_t n) {
    if (n >= t.len) {
      release(t);
      return;
    }
    std::memmove(t.buf, t.buf + n, t.len - n);
    t.len -= n;
  }

  void release(Tail& t) {
    if (t.buf) give(t);
    t = Tail{};
  }

 private:
  uint8_t* take(bool large) {
    auto& fl = large ? free_large_ : free_small_;
    if (!fl.empty()) {
      uint8_t* b = fl.back();
      fl.pop_back();
      ++in_use_;
      return b;
    }
    if (in_use_ + free_small_.size() + free_large_.size() >= max_) {
      // Recycle a cached buffer of the other size rather than fail.
      auto& other = large ? free_small_ : free_large_;
      if (other.empty()) return nullptr;
      std::free(other.back());
      other.pop_back();
    }
    auto* b = static_cast<uint8_t*>(std::malloc(large ? large_ : small_));
    if (b) ++in_use_;
    return b;
  }
  void give(Tail& t) {
    --in_use_;
    auto& fl = t.cap == large_ ? free_large_ : free_small_;
    fl.push_back(t.buf);  // capacity reserved up front: never reallocates
    t.buf = nullptr;
  }

 public:
  // Setup: reserve free-list capacity so give() never allocates.
  void prepare() {
    free_small_.reserve(max_);
    free_large_.reserve(max_);
  }

 private:
  std::vector<Tail> tails_;
  std::vector<uint8_t*> free_small_, free_large_;
  uint32_t small_, large_, max_;
  uint32_t in_use_ = 0;
};

}  // namespace cw::rt
