// The rtp service's [[service]] keys.
#include "app/services/rtp/config.hh"

namespace cw::rtp {
namespace {

bool endpoint_key(rt::ServiceKeys& k, std::string_view key, dp::Endpoint& out) {
  const auto v = k.string(key);
  if (!v) return false;
  auto ep = dp::parse_endpoint(*v);
  if (!ep || ep->addr_be == 0 || ep->port_be == 0) {
    k.fail(key, "expected \"a.b.c.d:port\" with a nonzero address and port, got \"" + *v + "\"");
    return false;
  }
  out = *ep;
  return true;
}

}  // namespace

RtpOptions parse_rtp_options(rt::ServiceKeys& k) {
  RtpOptions o;
  if (auto v = k.string("mode")) {
    if (*v == "endpoint")
      o.mode = Mode::endpoint;
    else if (*v == "relay")
      o.mode = Mode::relay;
    else
      k.fail("mode", "expected \"endpoint\" or \"relay\", got \"" + *v + "\"");
  }
  const bool peer = endpoint_key(k, "peer", o.peer);
  const bool peer_b = endpoint_key(k, "peer_b", o.peer_b);
  const auto max_sessions = k.integer("max_sessions", 0, kMaxSessions);
  if (max_sessions) o.max_sessions = uint32_t(*max_sessions);
  // A relay takes run-time sessions only when max_sessions says so (before it took none).
  if (o.mode == Mode::relay && !max_sessions) o.max_sessions = 0;
  // A table may hold only run-time sessions; one that can hold none needs a peer.
  if (!peer && (o.max_sessions == 0 || (o.mode == Mode::relay && peer_b)))
    k.fail("peer", "required: where the session's peer (relay: side A) receives");
  if (o.mode == Mode::relay && !peer_b && (peer || o.max_sessions == 0))
    k.fail("peer_b", "required in relay mode (side B)");
  if (o.mode == Mode::endpoint && peer_b) k.fail("peer_b", "only in relay mode");
  if (endpoint_key(k, "peer_rtcp", o.peer_rtcp) && o.mode == Mode::relay)
    k.fail("peer_rtcp", "only in endpoint mode (a relay forwards RTCP where it came from)");
  if (auto v = k.string("peer_match")) {
    if (*v == "address")
      o.match_address = true;
    else if (*v != "address_port")
      k.fail("peer_match", "expected \"address_port\" or \"address\", got \"" + *v + "\"");
  }
  o.valid = peer && (o.mode == Mode::endpoint || peer_b);
  if (auto v = k.string("payload")) {
    if (*v == "pcmu") {
      o.codec = Codec::pcmu;
    } else if (*v == "l16") {
      o.codec = Codec::l16;
      o.pt = 96;
    } else {
      k.fail("payload", "expected \"pcmu\" or \"l16\", got \"" + *v + "\"");
    }
  }
  // RTCP's SR/RR occupy 200..204; RFC 5761 keeps RTP payload types out of 64..95.
  if (auto v = k.integer("pt", 0, 127)) {
    if (*v >= 64 && *v <= 95)
      k.fail("pt", "64..95 collide with RTCP on one port (RFC 5761)");
    else
      o.pt = uint8_t(*v);
  }
  if (auto v = k.integer("clock_rate", 8000, 48000)) {
    if (o.codec == Codec::pcmu && *v != 8000)
      k.fail("clock_rate", "PCMU's clock rate is 8000");
    else if (*v % 50 != 0)
      k.fail("clock_rate", "must be a multiple of 50 (whole samples per 20 ms)");
    else
      o.clock_rate = uint32_t(*v);
  }
  if (auto v = k.integer("tone_hz", 1, 4000)) {
    if (uint32_t(*v) * 2 >= o.clock_rate)
      k.fail("tone_hz", "must be below half the clock rate");
    else
      o.tone_hz = uint32_t(*v);
  }
  if (auto v = k.integer("ssrc", 1, 0xffffffff)) o.ssrc = uint32_t(*v);
  if (auto v = k.string("cname")) {
    if (v->empty() || v->size() > 255)
      k.fail("cname", "must be 1..255 bytes");
    else
      o.cname = *v;
  }
  if (auto v = k.integer("worker", 0, 1023)) o.worker = unsigned(*v);
  if (auto v = k.duration_ms("rtcp_min_interval", 60'000)) {
    if (*v < 100)
      k.fail("rtcp_min_interval", "must be at least 100ms");
    else
      o.rtcp_min_ms = *v;
  }
  if (auto v = k.integer("inject_loss", 0, 1000)) o.loss_permille = uint32_t(*v);
  if (auto v = k.duration_ms("inject_jitter", 1000)) o.jitter_ms = uint32_t(*v);
  if (auto v = k.integer("inject_reorder", 0, 1000)) o.reorder_permille = uint32_t(*v);
  return o;
}

}  // namespace cw::rtp
