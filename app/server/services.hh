// The server's service registry: which service names a config may use, and (services.cc)
// how each becomes a per-worker instance in the std::variant the workers dispatch on.
#pragma once

#include <array>
#include <string_view>

namespace cw::server {

// Every name a [[service]] table may give. Keep in step with make_app() in services.cc.
inline constexpr std::array<std::string_view, 2> kServiceNames = {
    "sockperf-echo",  // the sockperf wire format, for the unmodified sockperf client
    "echo",           // the native corewire protocol (docs/protocol.md)
};

inline bool is_service_name(std::string_view n) {
  for (auto k : kServiceNames)
    if (k == n) return true;
  return false;
}

}  // namespace cw::server
