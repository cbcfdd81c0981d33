// Per-connection storage for the unconsumed tail of a TCP stream (a frame split across
// segments, or bytes kept while the connection is paused). An idle connection, or one whose
// frames arrive whole, owns no buffer: a tail buffer is taken from per-worker free lists
// when bytes are left over and given back as soon as they are consumed.
//
// Buffer sizes come in steps: eight per doubling from `small` (small, 9/8 small, ..., 2
// small, ...), the last capped at `large` (the largest tail any service allows). A full tail
// grows to the step of twice its size, or straight to the step holding a known frame size
// (StreamVerdict::need), copying what it holds. So a connection holding a frame of known
// size holds at most 1/8 more than the frame (a 1 MiB value: ~1.1 MiB), one growing without
// a hint at most twice what it received, never `large` bytes for a small partial frame.
//
// Bounded per worker: buffers in use plus cached at most `max_buffers`, their bytes at most
// `max_bytes`. A cached buffer of another step is freed to make room before a take fails.
// Free lists are intrusive (the link lives in the free buffer), so after warm-up nothing
// allocates.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace cw::rt {

class StreamTails {
 public:
  struct Tail {
    uint8_t* buf = nullptr;
    uint32_t len = 0;
    uint32_t cap = 0;
    uint32_t need = 0;    // the service's hint: call again once len >= need (0: any bytes)
    bool paused = false;  // the runtime paused the connection: keep bytes, do not parse
    uint8_t step = 0;     // buf's size step (valid while buf is set)
  };

  // slots: max connections; small/large: first and last step (bytes); max_buffers and
  // max_bytes: bounds on buffers in use plus cached, per worker.
  StreamTails(uint32_t slots, uint32_t small, uint32_t large, uint32_t max_buffers,
              uint64_t max_bytes = uint64_t(64) << 20)
      : tails_(slots),
        small_(small < kMinStep ? kMinStep : small),
        large_(large < small_ ? small_ : large),
        max_(max_buffers),
        max_bytes_(max_bytes) {
    while (steps_ < kMaxSteps && step_cap(steps_ - 1) < large_) ++steps_;
  }
  ~StreamTails() {
    for (auto& t : tails_) std::free(t.buf);
    for (Free* f : free_) {
      while (f) {
        Free* next = f->next;
        std::free(f);
        f = next;
      }
    }
  }
  StreamTails(const StreamTails&) = delete;
  StreamTails& operator=(const StreamTails&) = delete;

  Tail& at(uint32_t slot) { return tails_[slot]; }
  uint32_t large_size() const { return large_; }
  uint32_t in_use() const { return in_use_; }
  uint64_t bytes_in_use() const { return bytes_in_use_; }  // capacity of buffers in use

  // Make t hold at least `need` bytes of capacity (keeping its contents): the smallest step
  // that fits. False when need exceeds the last step or a bound is reached.
  bool reserve(Tail& t, uint32_t need) {
    if (need <= t.cap) return true;
    if (need > large_) return false;
    unsigned s = 0;
    while (step_cap(s) < need) ++s;
    uint8_t* nb = take(s);
    if (!nb) return false;
    if (t.len) std::memcpy(nb, t.buf, t.len);
    if (t.buf) give(t);
    t.buf = nb;
    t.cap = step_cap(s);
    t.step = uint8_t(s);
    return true;
  }

  // Drop the first n bytes of t; frees the buffer when it becomes empty (need and paused
  // stay: they are the connection's, not the buffer's).
  void consume(Tail& t, uint32_t n) {
    if (n >= t.len) {
      if (t.buf) give(t);
      t.len = t.cap = 0;
      return;
    }
    std::memmove(t.buf, t.buf + n, t.len - n);
    t.len -= n;
  }

  // The connection is gone (or closed): everything goes.
  void release(Tail& t) {
    if (t.buf) give(t);
    t = Tail{};
  }

 private:
  struct Free {
    Free* next;
  };
  static constexpr uint32_t kMinStep = sizeof(Free);
  static constexpr unsigned kPerDoubling = 8;
  static constexpr unsigned kMaxSteps = 255;  // Tail::step is a byte

  uint32_t step_cap(unsigned s) const {
    const uint64_t c =
        (uint64_t(small_) << (s / kPerDoubling)) * (kPerDoubling + s % kPerDoubling) / kPerDoubling;
    return c < large_ ? uint32_t(c) : large_;
  }

  uint8_t* take(unsigned s) {
    if (Free* f = free_[s]) {
      free_[s] = f->next;
      cached_bytes_ -= step_cap(s);
      --cached_;
      return held(s, reinterpret_cast<uint8_t*>(f));
    }
    const uint64_t cap = step_cap(s);
    // Over a bound: free cached buffers (largest steps first) until it fits.
    for (unsigned o = steps_; o-- > 0;) {
      while (free_[o] &&
             (in_use_ + cached_ >= max_ || bytes_in_use_ + cached_bytes_ + cap > max_bytes_)) {
        Free* f = free_[o];
        free_[o] = f->next;
        cached_bytes_ -= step_cap(o);
        --cached_;
        std::free(f);
      }
    }
    if (in_use_ + cached_ >= max_ || bytes_in_use_ + cached_bytes_ + cap > max_bytes_)
      return nullptr;
    auto* b = static_cast<uint8_t*>(std::malloc(cap));
    return b ? held(s, b) : nullptr;
  }
  uint8_t* held(unsigned s, uint8_t* b) {
    ++in_use_;
    bytes_in_use_ += step_cap(s);
    return b;
  }
  void give(Tail& t) {
    const unsigned s = t.step;
    --in_use_;
    bytes_in_use_ -= t.cap;
    Free* f = reinterpret_cast<Free*>(t.buf);
    f->next = free_[s];
    free_[s] = f;
    ++cached_;
    cached_bytes_ += t.cap;
    t.buf = nullptr;
  }

  std::vector<Tail> tails_;
  Free* free_[kMaxSteps] = {};
  uint32_t small_, large_, max_;
  uint64_t max_bytes_;
  unsigned steps_ = 1;
  uint32_t in_use_ = 0, cached_ = 0;
  uint64_t bytes_in_use_ = 0, cached_bytes_ = 0;
};

}  // namespace cw::rt
