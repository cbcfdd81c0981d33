// The rtp service's run-time command parser (command.hh).
#include "app/services/rtp/command.hh"

#include <charconv>

namespace cw::rtp {
namespace {

bool number(std::string_view v, uint64_t max, uint64_t& out) {
  if (v.empty() || v.size() > 10) return false;
  uint64_t x = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), x);
  if (ec != std::errc{} || p != v.data() + v.size() || x > max) return false;
  out = x;
  return true;
}

}  // namespace

std::string parse_command(std::string_view text, Command& out) {
  out = Command{};
  if (text.size() > kMaxCommandBytes) return "command longer than 1024 bytes";
  auto next = [&text]() {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    const size_t n = text.find(' ');
    std::string_view t = text.substr(0, n);
    text.remove_prefix(n == std::string_view::npos ? text.size() : n);
    return t;
  };
  const std::string_view op = next();
  if (op == "open")
    out.op = CommandOp::open;
  else if (op == "close")
    out.op = CommandOp::close;
  else if (op == "list")
    out.op = CommandOp::list;
  else
    return "unknown operation '" + std::string(op) + "' (open, close, list)";
  bool have_peer = false, have_peer_b = false, have_pt = false, have_ssrc = false,
       have_peer_ssrc = false;
  for (std::string_view t = next(); !t.empty(); t = next()) {
    const size_t eq = t.find('=');
    if (eq == std::string_view::npos) return "expected key=value, got '" + std::string(t) + "'";
    const std::string_view k = t.substr(0, eq), v = t.substr(eq + 1);
    const std::string key(k);
    auto repeated = [](bool& seen) {
      const bool r = seen;
      seen = true;
      return r;
    };
    uint64_t x = 0;
    if (out.op == CommandOp::list) return "list takes no arguments";
    if (k == "peer") {
      if (repeated(have_peer)) return "peer given twice";
      auto ep = dp::parse_endpoint(std::string(v));
      if (!ep) return "peer: " + ep.error().message;
      if (ep->addr_be == 0 || ep->port_be == 0) return "peer: address and port must be nonzero";
      out.peer = *ep;
    } else if (k == "peer_b" && out.op == CommandOp::open) {
      if (repeated(have_peer_b)) return "peer_b given twice";
      auto ep = dp::parse_endpoint(std::string(v));
      if (!ep) return "peer_b: " + ep.error().message;
      if (ep->addr_be == 0 || ep->port_be == 0) return "peer_b: address and port must be nonzero";
      out.peer_b = *ep;
    } else if (k == "peer_ssrc") {
      if (repeated(have_peer_ssrc)) return "peer_ssrc given twice";
      if (!number(v, 0xffffffff, x) || x == 0) return "peer_ssrc: expected 1..4294967295";
      out.peer_ssrc = uint32_t(x);
    } else if (k == "pt" && out.op == CommandOp::open) {
      if (repeated(have_pt)) return "pt given twice";
      // RFC 5761: 64..95 would collide with RTCP on the session's one port.
      if (!number(v, 127, x) || (x >= 64 && x <= 95)) return "pt: expected 0..63 or 96..127";
      out.pt = int(x);
    } else if (k == "ssrc" && out.op == CommandOp::open) {
      if (repeated(have_ssrc)) return "ssrc given twice";
      if (!number(v, 0xffffffff, x) || x == 0) return "ssrc: expected 1..4294967295";
      out.ssrc = uint32_t(x);
    } else {
      return "unknown key '" + key + "' for " + std::string(op);
    }
  }
  if (out.op != CommandOp::list && !have_peer) return std::string(op) + " needs peer=ADDRESS:PORT";
  // A relay session forwards between two endpoints; the endpoint keys are its own.
  if (have_peer_b && (have_pt || have_ssrc || have_peer_ssrc))
    return "peer_b (a relay session) takes no pt, ssrc or peer_ssrc";
  if (have_peer_b && out.peer_b == out.peer) return "peer and peer_b are the same endpoint";
  return {};
}

}  // namespace cw::rtp
