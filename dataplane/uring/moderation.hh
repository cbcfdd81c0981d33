// Adaptive interrupt moderation for the io_uring backend in interrupt mode
// (IoConfig::coalesce_us): decides, before each blocking wait, whether to wake on the first
// completion or to sleep until a batch is ready (kCoalesceBatch completions or the window
// passed), like a NIC's adaptive interrupt moderation. Pure logic, owner thread only.
//
// Engage when arrivals cluster: a wake-up already found two or more items, or `need_`
// wake-ups in a row each found one item less than a window after the one before (an
// open-loop stream at a high rate; one TCP connection's stream looks like this, since one
// receive completion carries whatever bytes arrived). Stay engaged while a moderated wait
// gathers more than one arrival: two or more items, or a single item carrying at least
// twice the bytes a lone wake-up brought (several requests in one stream receive).
// Disengage when a moderated wait brought a single arrival: moderation then only added
// latency (ping-pong traffic, a slow stream). Each such failure doubles `need_`, up to
// kMaxQuick, so closed-loop ping-pong pays the window once every `need_` round trips and
// then almost never; a success resets it.
#pragma once

#include <algorithm>
#include <cstdint>

namespace cw::dp::uring {

class Moderator {
 public:
  static constexpr uint32_t kMinQuick = 4;     // single-item wake-ups in a row to engage
  static constexpr uint32_t kMaxQuick = 4096;  // after repeated failures

  explicit Moderator(uint32_t coalesce_us = 0) : window_ns_(uint64_t(coalesce_us) * 1000) {}

  // Whether the next blocking wait should gather a batch, and for how long at most.
  bool engaged() const { return engaged_; }
  uint64_t window_ns() const { return window_ns_; }
  uint32_t need() const { return need_; }

  // After a blocking wait: it returned `items` items carrying `bytes` bytes; `now_ns` is
  // the clock read at the start of the poll that waited.
  void after_wait(uint64_t now_ns, uint32_t items, uint64_t bytes) {
    if (!window_ns_ || !items) return;
    if (engaged_) {
      if (items >= 2 || bytes >= 2 * lone_bytes_) {
        need_ = kMinQuick;
        return;
      }
      engaged_ = false;
      quick_ = 0;
      need_ = std::min(need_ * 2, kMaxQuick);
      return;
    }
    if (items >= 2) {
      engaged_ = true;
      return;
    }
    quick_ = now_ns - last_ns_ < window_ns_ ? quick_ + 1 : 0;
    last_ns_ = now_ns;
    lone_bytes_ = bytes ? bytes : 1;
    if (quick_ >= need_) {
      engaged_ = true;
      quick_ = 0;
    }
  }

 private:
  uint64_t window_ns_ = 0;
  bool engaged_ = false;
  uint32_t quick_ = 0;         // single-item wake-ups in a row, each within a window
  uint32_t need_ = kMinQuick;  // how many of those engage
  uint64_t last_ns_ = 0;       // start of the last single-item wake-up's poll
  uint64_t lone_bytes_ = 1;    // bytes the last single-item wake-up brought
};

}  // namespace cw::dp::uring
