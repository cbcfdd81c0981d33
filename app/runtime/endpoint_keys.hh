// A [[service]] key holding a list of "a.b.c.d:port" endpoints (a peer list), for services'
// config code (swarm, peer). Setup-only.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/service_keys.hh"
#include "dataplane/io.hh"

namespace cw::rt {

// The endpoints under key, each with a nonzero address and port, at most max of them: the
// well-formed ones (every bad one is recorded as an error naming the key).
inline std::vector<dp::Endpoint> endpoint_list(ServiceKeys& k, std::string_view key, size_t max) {
  std::vector<dp::Endpoint> out;
  auto v = k.strings(key);
  if (!v) return out;
  if (v->size() > max) k.fail(key, "at most " + std::to_string(max) + " entries");
  for (const std::string& s : *v) {
    auto ep = dp::parse_endpoint(s);
    if (!ep || ep->addr_be == 0 || ep->port_be == 0)
      k.fail(key, "expected \"a.b.c.d:port\" with a nonzero address and port, got \"" + s + "\"");
    else
      out.push_back(*ep);
  }
  return out;
}

}  // namespace cw::rt
