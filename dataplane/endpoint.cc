#include <arpa/inet.h>

#include <charconv>

#include "dataplane/io.hh"

namespace cw::dp {

std::string to_string(const Endpoint& ep) {
  char buf[INET_ADDRSTRLEN] = {};
  in_addr a{ep.addr_be};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(ep.port_be));
}

Result<Endpoint> parse_endpoint(const std::string& s) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) return make_error("'" + s + "': expected ADDRESS:PORT");
  const std::string host = s.substr(0, colon);
  const std::string port = s.substr(colon + 1);
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1)
    return make_error("'" + s + "': '" + host + "' is not an IPv4 address");
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc{} || ptr != port.data() + port.size() || port.empty() || p > 65535)
    return make_error("'" + s + "': '" + port + "' is not a port (0-65535)");
  return Endpoint{a.s_addr, htons(uint16_t(p))};
}

}  // namespace cw::dp
