// What the config parser knows of a service type: its name, its own [[service]] keys and how
// to read them, and the client sockets it declares. Setup-only. The concrete services are
// named in one place only, app/server/services.hh; app/server/registry.hh turns a service
// class into a ServiceType (and its factory).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/registry.hh"
#include "app/runtime/service_keys.hh"

namespace cw::server {

// What a service writes its keys and client sockets against (app/runtime/service_keys.hh).
using rt::ClientSocket;
using rt::ServiceKeys;
using rt::WorkerKey;

using ServiceOptions = std::shared_ptr<const void>;  // the service's own Options struct

struct ServiceType {
  std::string_view name;
  std::string_view summary;                // one line, for messages and docs
  std::span<const std::string_view> keys;  // its own keys (besides name, udp, tcp, enabled)
  // Reads its keys into its typed Options; nullptr when it has none.
  ServiceOptions (*parse)(ServiceKeys&) = nullptr;
  // Its client sockets given its options; nullptr when it has none.
  std::vector<ClientSocket> (*clients)(const void* options) = nullptr;
  // The worker its state is pinned to given its options; nullptr when it pins none.
  WorkerKey (*owner)(const void* options) = nullptr;
  // Why it may not serve on address addr_be (network byte order), empty when it may; checked
  // once the listen addresses are final (finalize). nullptr: anywhere.
  std::string (*check_listen)(const void* options, uint32_t addr_be) = nullptr;
};

// The service types a config may name (the server's registry, or a test's).
struct ServiceCatalog {
  std::vector<const ServiceType*> types;

  const ServiceType* find(std::string_view name) const {
    for (const ServiceType* t : types)
      if (t->name == name) return t;
    return nullptr;
  }
  std::string names() const {
    std::string s;
    for (const ServiceType* t : types) s += (s.empty() ? "" : ", ") + std::string(t->name);
    return s;
  }
};

}  // namespace cw::server
