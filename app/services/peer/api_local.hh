// How a service reaches the peer API of its own worker: a per-worker table of Api pointers.
// Entry w is written and read only on worker w's thread (the peer service sets it on its
// first tick and clears it when its loop stops; a user such as kv reads it on its own tick
// and keeps the pointer), so it needs no lock or atomic, and a request costs no lookup. One
// peer service per process: a second one's first tick leaves the first one's entry.
#pragma once

#include <array>

#include "app/services/peer/api.hh"

namespace cw::peer {

inline constexpr unsigned kMaxApiWorkers = 256;  // app/server/config.hh's kMaxWorkers

inline std::array<Api*, kMaxApiWorkers>& local_apis() {
  static std::array<Api*, kMaxApiWorkers> apis{};
  return apis;
}

// This worker's peer API, or nullptr (no peer service, or it has not started yet).
inline Api* local_api(unsigned worker) {
  return worker < kMaxApiWorkers ? local_apis()[worker] : nullptr;
}

}  // namespace cw::peer
