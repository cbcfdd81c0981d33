// The one monotonic clock, in nanoseconds: CLOCK_MONOTONIC, served by the vDSO (no
// syscall, ~20 ns). The runtime reads it once per burst and the backends for their idle,
// ARP and back-off timers, so every deadline compared anywhere is on this one base.
#pragma once

#include <cstdint>
#include <ctime>

namespace cw::dp {

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

}  // namespace cw::dp
