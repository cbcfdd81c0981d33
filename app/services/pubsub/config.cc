// The pubsub service's [[service]] keys.
#include "app/services/pubsub/config.hh"

namespace cw::pubsub {

PubsubOptions parse_pubsub_options(rt::ServiceKeys& k) {
  PubsubOptions o;
  if (auto v = k.size("max_payload", 1, 8u << 20)) o.max_payload = uint32_t(*v);
  if (auto v = k.integer("max_connections", 1, 1 << 24)) o.max_connections = uint32_t(*v);
  if (auto v = k.integer("max_subscriptions", 0, 1 << 24)) o.max_subscriptions = uint32_t(*v);
  if (auto v = k.integer("worker_subscriptions", 16, 1 << 22))
    o.worker_subscriptions = uint32_t(*v);
  if (auto v = k.size("max_pending", 64 * 1024, uint64_t{1} << 30)) o.max_pending = *v;
  if (auto v = k.duration_ms("ping_interval", 24 * 3600 * 1000)) {
    if (*v == 0)
      k.fail("ping_interval", "must be above 0");
    else
      o.ping_interval_ms = *v;
  }
  if (auto v = k.integer("max_pings_out", 1, 1000)) o.max_pings_out = uint32_t(*v);
  if (auto v = k.string("user")) o.user = *v;
  if (auto v = k.string("password")) o.password = *v;
  if (auto v = k.string("token")) o.token = *v;
  if (auto v = k.boolean("allow_anonymous")) o.allow_anonymous = *v;
  if (auto v = k.string("server_name")) {
    bool ok = !v->empty() && v->size() <= 64;
    for (char c : *v) ok = ok && c > ' ' && c < 0x7f && c != '"' && c != '\\';
    if (ok)
      o.server_name = *v;
    else
      k.fail("server_name", "must be 1 to 64 printable characters, no quotes or backslashes");
  }
  if (o.user.empty() != o.password.empty())
    k.fail(o.user.empty() ? "password" : "user", "user and password go together");
  if (!o.user.empty() && !o.token.empty())
    k.fail("token", "give either user and password or token, not both");
  return o;
}

std::string listen_refusal(const PubsubOptions& o, uint32_t addr_be) {
  const bool loopback = (__builtin_bswap32(addr_be) >> 24) == 127;
  if (loopback || o.auth() || o.allow_anonymous) return {};
  return "serves an address that is not loopback without auth: set user and password, "
         "token, or allow_anonymous = true";
}

}  // namespace cw::pubsub
