// What an application hands the runtime: its services, the sockets each one declares, and
// the factory that builds a worker's own instance of each. Setup-only: everything here may
// allocate; the workers see only the service variant and the socket -> service map.
//
// SocketIds are assigned in declaration order over all services (service 0's sockets first),
// so they are the same on every worker. A service never assumes its ids: its factory gets
// them (ServiceCtx::sockets), in the order it declared them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/io.hh"

namespace cw::rt {

inline constexpr int kAllWorkers = -1;

// One socket a service declares. Server sockets are shared by every worker (the port is
// spread over them). A client socket exists on every worker (the backend opens one each),
// but only the workers of its affinity may use it: all of them, or the one given.
struct SocketDecl {
  dp::Transport transport = dp::Transport::udp;
  bool server = true;
  dp::Endpoint bind{};       // client: usually 0.0.0.0:0 (ephemeral)
  int worker = kAllWorkers;  // client sockets only: kAllWorkers or one worker index
};

// A declared socket as its service sees it on one worker.
struct SocketRef {
  dp::SocketId id = 0;
  dp::Transport transport = dp::Transport::udp;
  bool server = true;
  bool here = true;  // this worker may use it (server sockets: always)
};

// Every socket of the application, for finding another service's server socket.
struct SocketInfo {
  uint16_t service = 0;
  dp::Transport transport = dp::Transport::udp;
  bool server = true;
};

// What a service factory gets, on its worker's thread, before the loop runs.
struct ServiceCtx {
  unsigned worker = 0;     // this worker's index
  unsigned workers = 1;    // how many workers there are
  uint32_t max_conns = 0;  // connection slots per worker (size ConnSlots by it)
  uint16_t service = 0;    // this service's index
  // The spans are valid during the factory call only: copy what the service keeps.
  std::span<const SocketRef> sockets;   // the sockets it declared, in declaration order
  std::span<const SocketInfo> all;      // every socket, by SocketId
  std::span<const dp::Endpoint> bound;  // where each socket is bound, by SocketId
  std::span<const std::string> names;   // service names, by index

  // Where service `name`'s first server socket of transport t is bound (after port 0 was
  // resolved); empty when there is none.
  std::optional<dp::Endpoint> server_endpoint(std::string_view name, dp::Transport t) const {
    for (size_t s = 0; s < all.size() && s < bound.size(); ++s)
      if (all[s].server && all[s].transport == t && names[all[s].service] == name) return bound[s];
    return std::nullopt;
  }
};

// What the runtime passes the factory for one worker.
struct WorkerSetup {
  unsigned worker = 0, workers = 1;
  uint32_t max_conns = 0;
  std::span<const dp::Endpoint> bound;  // by SocketId
};

// What an application (server, load generator, test) runs on the workers.
template <class Services>
struct AppSpec {
  std::vector<dp::SocketSpec> sockets;
  std::vector<uint16_t> sock_service;      // sockets[i] belongs to service sock_service[i]
  std::vector<std::string> service_names;  // by service index
  // Builds worker w's own service instances (called on the worker's thread, at setup).
  // Set one: make_services for hand-built specs, make_worker_services (build_app) when the
  // factory needs bound endpoints or the worker count.
  std::function<std::vector<Services>(unsigned w)> make_services;
  std::function<std::vector<Services>(const WorkerSetup&)> make_worker_services;
};

// One service of an application: its name, its sockets, and its factory (setup only).
template <class Services>
struct ServiceDecl {
  std::string name;
  std::vector<SocketDecl> sockets;
  std::function<Services(const ServiceCtx&)> make;
};

// Assigns SocketIds in declaration order and wraps the factories. Client sockets of an
// affinity beyond the worker count are never usable; validate the count before (the server's
// config does).
template <class Services>
AppSpec<Services> build_app(std::vector<ServiceDecl<Services>> decls) {
  AppSpec<Services> app;
  std::vector<SocketInfo> all;
  std::vector<std::vector<SocketDecl>> per_service;
  for (size_t i = 0; i < decls.size(); ++i) {
    app.service_names.push_back(decls[i].name);
    for (const SocketDecl& d : decls[i].sockets) {
      app.sockets.push_back({d.transport, d.bind, d.server});
      app.sock_service.push_back(uint16_t(i));
      all.push_back({uint16_t(i), d.transport, d.server});
    }
  }
  app.make_worker_services = [decls = std::move(decls), all = std::move(all),
                              names = app.service_names](const WorkerSetup& ws) {
    std::vector<Services> v;
    v.reserve(decls.size());
    dp::SocketId next = 0;
    for (size_t i = 0; i < decls.size(); ++i) {
      std::vector<SocketRef> refs;
      for (const SocketDecl& d : decls[i].sockets) {
        const bool here = d.server || d.worker == kAllWorkers || unsigned(d.worker) == ws.worker;
        refs.push_back({next++, d.transport, d.server, here});
      }
      ServiceCtx c{ws.worker, ws.workers, ws.max_conns, uint16_t(i), refs, all, ws.bound, names};
      v.push_back(decls[i].make(c));
    }
    return v;
  };
  return app;
}

}  // namespace cw::rt
