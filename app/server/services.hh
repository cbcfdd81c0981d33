// The server's service registry: which service names a config may use, the variant of
// service classes the workers dispatch on, and (services.cc) how a ServerConfig becomes the
// runtime's AppSpec: its sockets and each worker's own service instances.
#pragma once

#include <array>
#include <string_view>
#include <variant>

#include "app/services/echo_native.hh"
#include "app/services/echo_sockperf.hh"

namespace cw::rt {
template <class Services>
struct AppSpec;  // app/runtime/launch.hh
}

namespace cw::server {

struct ServerConfig;

// Every name a [[service]] table may give, and the class serving it. Keep the two lists and
// make_service() in services.cc in step.
inline constexpr std::array<std::string_view, 2> kServiceNames = {
    "sockperf-echo",  // cw::svc::SockperfEcho: sockperf's wire format (for the sockperf client)
    "echo",           // cw::svc::NativeEcho: the native corewire protocol (docs/protocol.md)
};
using Services = std::variant<svc::SockperfEcho, svc::NativeEcho>;

inline bool is_service_name(std::string_view n) {
  for (auto k : kServiceNames)
    if (k == n) return true;
  return false;
}

// One server socket per configured (service, transport), in config order; socket s belongs
// to service sock_service[s]. Names must be registered (parse_config checks that).
rt::AppSpec<Services> make_app(const ServerConfig& cfg);

}  // namespace cw::server
