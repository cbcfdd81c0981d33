// Monotonic time in nanoseconds. clock_gettime(CLOCK_MONOTONIC) is served by the vDSO, so
// this is no syscall; the worker reads it once per burst.
#pragma once

#include <cstdint>
#include <ctime>

namespace cw::rt {

inline uint64_t now_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000u + uint64_t(ts.tv_nsec);
}

}  // namespace cw::rt
