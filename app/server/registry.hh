// The registry machinery: a ServiceEntry per service class (its ServiceType plus a factory
// into the application's service variant V), and make_app(), which turns a ServerConfig into
// the runtime's AppSpec. The server's own table is in services.hh; tests build their own.
// Setup-only; the workers dispatch on V statically and never see any of this.
//
// A service class S may provide (all optional, detected at compile time):
//   struct Options;                                   its typed [[service]] keys
//   static constexpr std::array<std::string_view, N> kOptionKeys;   their names
//   static Options parse_options(rt::ServiceKeys&);              reads and validates them
//   static std::vector<rt::ClientSocket> client_sockets(const Options&);
//   static rt::WorkerKey owner_worker(const Options&);   the worker its state lives on
//   S(const rt::ServiceCtx&, const Options&);         the factory (else S() is used)
#pragma once

#include <array>
#include <cstdlib>
#include <utility>
#include <variant>

#include "app/runtime/registry.hh"
#include "app/server/config.hh"
#include "app/server/service_type.hh"

namespace cw::server {

template <class V>
struct ServiceEntry : ServiceType {
  V (*make)(const rt::ServiceCtx&, const void* options) = nullptr;
};

// The entry for service class S (one of V's alternatives), registered as `name`.
template <class V, class S>
ServiceEntry<V> entry(std::string_view name, std::string_view summary) {
  ServiceEntry<V> e;
  e.name = name;
  e.summary = summary;
  if constexpr (requires { typename S::Options; }) {
    using O = typename S::Options;
    e.keys = S::kOptionKeys;
    e.parse = [](ServiceKeys& k) -> ServiceOptions {
      return std::make_shared<const O>(S::parse_options(k));
    };
    if constexpr (requires(const O& o) { S::client_sockets(o); })
      e.clients = [](const void* o) { return S::client_sockets(*static_cast<const O*>(o)); };
    if constexpr (requires(const O& o) { S::owner_worker(o); })
      e.owner = [](const void* o) { return S::owner_worker(*static_cast<const O*>(o)); };
    if constexpr (requires(const O& o) { S::listen_refusal(o, uint32_t{}); })
      e.check_listen = [](const void* o, uint32_t addr_be) {
        return S::listen_refusal(*static_cast<const O*>(o), addr_be);
      };
    e.make = [](const rt::ServiceCtx& c, const void* o) {
      return V(std::in_place_type<S>, c, *static_cast<const O*>(o));
    };
  } else {
    e.make = [](const rt::ServiceCtx&, const void*) { return V(std::in_place_type<S>); };
  }
  return e;
}

template <class V, size_t N>
ServiceCatalog catalog_of(const std::array<ServiceEntry<V>, N>& registry) {
  ServiceCatalog c;
  for (const auto& e : registry) c.types.push_back(&e);
  return c;
}

// One service per [[service]] table, in config order. A service's sockets, in the order its
// factory sees them (ServiceCtx::sockets): udp server, tcp server (each when configured),
// then its client sockets as client_sockets() returned them. Names must be in the registry
// (parse_config checked them against its catalog).
template <class V, size_t N>
rt::AppSpec<V> make_app(const ServerConfig& cfg, const std::array<ServiceEntry<V>, N>& registry) {
  std::vector<rt::ServiceDecl<V>> decls;
  for (const ServiceConfig& s : cfg.services) {
    const ServiceEntry<V>* e = nullptr;
    for (const auto& r : registry)
      if (r.name == s.name) e = &r;
    if (!e) std::abort();  // parse_config rejects unknown names: a broken invariant
    rt::ServiceDecl<V> d;
    d.name = s.name;
    if (s.udp) d.sockets.push_back({dp::Transport::udp, true, cfg.endpoint(*s.udp)});
    if (s.tcp) d.sockets.push_back({dp::Transport::tcp, true, cfg.endpoint(*s.tcp)});
    for (const ClientSocket& c : s.clients) d.sockets.push_back(c.decl);
    d.make = [make = e->make, opts = s.options](const rt::ServiceCtx& c) {
      return make(c, opts.get());
    };
    decls.push_back(std::move(d));
  }
  return rt::build_app(std::move(decls));
}

}  // namespace cw::server
