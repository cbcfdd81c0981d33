// Config -> AppSpec. Setup-only.
#include "app/server/services.hh"

#include <cstdlib>

#include "app/runtime/launch.hh"
#include "app/server/config.hh"

namespace cw::server {
namespace {

Services make_service(std::string_view name) {
  if (name == "sockperf-echo") return svc::SockperfEcho{};
  if (name == "echo") return svc::NativeEcho{};
  // parse_config rejects unknown names, so this is a broken invariant, not bad input.
  std::abort();
}

}  // namespace

rt::AppSpec<Services> make_app(const ServerConfig& cfg) {
  rt::AppSpec<Services> app;
  std::vector<std::string> names;
  for (size_t i = 0; i < cfg.services.size(); ++i) {
    const ServiceConfig& s = cfg.services[i];
    names.push_back(s.name);
    if (s.udp) {
      app.sockets.push_back({dp::Transport::udp, cfg.endpoint(*s.udp), true});
      app.sock_service.push_back(uint16_t(i));
    }
    if (s.tcp) {
      app.sockets.push_back({dp::Transport::tcp, cfg.endpoint(*s.tcp), true});
      app.sock_service.push_back(uint16_t(i));
    }
  }
  app.service_names = names;
  // Runs on each worker's thread at setup: that worker's own instances, by service index.
  app.make_services = [names](unsigned) {
    std::vector<Services> v;
    v.reserve(names.size());
    for (const auto& n : names) v.push_back(make_service(n));
    return v;
  };
  return app;
}

}  // namespace cw::server
