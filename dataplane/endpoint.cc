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

Result<Prefix> parse_prefix(const std::string& s) {
  const auto slash = s.find('/');
  const std::string host = s.substr(0, slash);
  in_addr a{};
  if (inet_pton(AF_INET, host.c_str(), &a) != 1)
    return make_error("'" + s + "': expected an IPv4 address[/prefix length]");
  Prefix p{a.s_addr, 32};
  if (slash != std::string::npos) {
    const std::string t = s.substr(slash + 1);
    unsigned len = 0;
    auto [ptr, ec] = std::from_chars(t.data(), t.data() + t.size(), len);
    if (ec != std::errc{} || ptr != t.data() + t.size() || t.empty() || len > 32)
      return make_error("'" + s + "': prefix length must be 0-32");
    p.len = uint8_t(len);
  }
  return p;
}

}  // namespace cw::dp
