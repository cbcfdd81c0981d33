// The peer service's [[service]] keys.
#include "app/services/peer/config.hh"

#include <algorithm>

#include "app/runtime/endpoint_keys.hh"
#include "app/services/peer/endpoint.hh"
#include "app/services/peer/frame.hh"
#include "app/services/peer/tls.hh"

namespace cw::peer {
namespace {

constexpr uint64_t kMaxLeaseTtlMs = 3600 * 1000;

// The etcd keys: parsed into o and, when etcd is set, into the membership thread's config.
void parse_membership(rt::ServiceKeys& k, PeerOptions& o, MembershipConfig& m) {
  if (auto v = k.strings("etcd")) {
    if (v->empty() || v->size() > 8)
      k.fail("etcd", "1..8 endpoints, e.g. [\"http://127.0.0.1:2379\"]");
    for (const std::string& u : *v) {
      if (u.starts_with("https://"))
        k.fail("etcd", "\"" + u +
                           "\": https is not supported: reach etcd over http on a "
                           "trusted network (docs/cluster.md)");
      else if (!valid_etcd_url(u))
        k.fail("etcd", "expected \"http://host[:port]\", got \"" + u + "\"");
    }
    o.etcd = *v;
  }
  const bool on = !o.etcd.empty();
  // Keys that mean nothing without etcd say so rather than being ignored.
  auto needs_etcd = [&](std::string_view key) {
    if (!on) k.fail(key, "needs etcd (membership through etcd, docs/cluster.md)");
    return on;
  };
  if (auto v = k.string("node_id"); v && needs_etcd("node_id")) {
    if (etcd::valid_node_id(*v))
      o.node_id = *v;
    else
      k.fail("node_id",
             "1.." + std::to_string(etcd::kMaxNodeId) + " of [A-Za-z0-9._-], got \"" + *v + "\"");
  }
  if (on && o.node_id.empty())
    k.fail("node_id", "required with etcd: this node's unique name in the cluster");
  if (auto v = k.string("prefix"); v && needs_etcd("prefix")) {
    const bool printable =
        std::all_of(v->begin(), v->end(), [](char c) { return c > ' ' && c < 127; });
    if (v->empty() || v->size() > etcd::kMaxPrefix || !printable || v->back() != '/')
      k.fail("prefix", "1.." + std::to_string(etcd::kMaxPrefix) +
                           " printable bytes ending in '/', got \"" + *v + "\"");
    else
      m.prefix = *v;
  }
  if (auto v = k.string("advertise"); v && needs_etcd("advertise")) {
    auto ep = dp::parse_endpoint(*v);
    if (!ep || ep->addr_be == 0 || ep->port_be == 0)
      k.fail("advertise",
             "expected \"a.b.c.d:port\" with a nonzero address and port, got \"" + *v + "\"");
    else
      o.advertise = *ep;
  }
  if (auto v = k.duration_ms("lease_ttl", kMaxLeaseTtlMs); v && needs_etcd("lease_ttl")) {
    if (*v < 1000)
      k.fail("lease_ttl", "must be at least 1s (etcd raises it to its own minimum)");
    else
      m.lease_ttl_s = (*v + 999) / 1000;
  }
  if (auto v = k.duration_ms("etcd_poll", 60'000); v && needs_etcd("etcd_poll")) {
    if (*v < 50)
      k.fail("etcd_poll", "must be at least 50ms");
    else
      m.poll_ms = *v;
  }
  if (auto v = k.integer("max_members", 2, int64_t(etcd::kMaxMembers));
      v && needs_etcd("max_members"))
    o.max_members = uint32_t(*v);
  m.etcd = o.etcd;
  m.node_id = o.node_id;
  m.advertise = o.advertise;
}

}  // namespace

bool valid_etcd_url(std::string_view s) {
  constexpr std::string_view kScheme = "http://";
  if (!s.starts_with(kScheme)) return false;
  s.remove_prefix(kScheme.size());
  const size_t colon = s.find(':');
  const std::string_view host = s.substr(0, colon);
  const std::string_view port = colon == std::string_view::npos ? "" : s.substr(colon + 1);
  const bool host_ok = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-';
  });
  const bool port_ok =
      colon == std::string_view::npos ||
      (!port.empty() && port.size() <= 5 &&
       std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
       std::stoul(std::string(port)) - 1 < 65535);
  return host_ok && port_ok;
}

std::string peer_listen_refusal(const PeerOptions& o, uint32_t addr_be) {
  if (o.etcd.empty() || o.advertise.addr_be != 0 || addr_be != 0) return {};
  return "with etcd, peers must learn an address to dial: listen on one, or set advertise";
}

PeerOptions parse_peer_options(rt::ServiceKeys& k) {
  PeerOptions o;
  o.peers = rt::endpoint_list(k, "peers", kMaxPeers);
  if (auto v = k.integer("max_inbound", 0, 1024)) o.max_inbound = uint32_t(*v);
  struct Ms {
    const char* key;
    uint64_t* into;
    uint64_t lo;
  };
  for (const Ms& d :
       {Ms{"idle_timeout", &o.idle_timeout_ms, 100}, Ms{"keepalive", &o.keepalive_ms, 0},
        Ms{"handshake_timeout", &o.handshake_timeout_ms, 100}, Ms{"retry", &o.retry_ms, 10},
        Ms{"request_timeout", &o.request_timeout_ms, 1}}) {
    if (auto v = k.duration_ms(d.key, 24 * 3600 * 1000)) {
      if (*v < d.lo)
        k.fail(d.key, "must be at least " + std::to_string(d.lo) + "ms");
      else
        *d.into = *v;
    }
  }
  if (o.keepalive_ms && o.keepalive_ms >= o.idle_timeout_ms)
    k.fail("keepalive", "must be below idle_timeout (or 0: none)");
  if (auto v = k.integer("probe_requests", 0, kMaxProbeRequests)) o.probe_requests = uint32_t(*v);
  if (auto v = k.integer("probe_bytes", 8, kMaxFrameBody)) o.probe_bytes = uint32_t(*v);
  if (auto v = k.integer("probe_datagrams", 0, kMaxProbeRequests)) o.probe_datagrams = uint32_t(*v);
  if (auto v = k.boolean("probe_rtt")) o.probe_rtt = *v;
  if (auto v = k.size("probe_bulk", 0, kMaxProbeBulk)) o.probe_bulk = *v;
  if (auto v = k.size("stream_window", kStreamRxBytes, kMaxStreamWindow))
    o.stream_window = uint32_t(*v);
  MembershipConfig m;
  parse_membership(k, o, m);
  // The files last: a config with other errors reports those first.
  const char* files[] = {"cert", "key", "ca"};
  std::string* into[] = {&o.cert, &o.key, &o.ca};
  for (int i = 0; i < 3; ++i) {
    if (auto v = k.string(files[i]); v && !v->empty())
      *into[i] = *v;
    else
      k.fail(files[i], "required: a PEM file (docs/cluster.md, \"Certificates\")");
  }
  if (!o.cert.empty() && !o.key.empty() && !o.ca.empty()) {
    TlsContext tls;
    if (std::string e = tls.load(o.cert, o.key, o.ca); !e.empty()) k.fail("cert", e);
    m.fingerprint = tls.fingerprint();
  }
  // The thread starts with the first worker (a config that is only checked starts none).
  if (!o.etcd.empty()) o.membership = std::make_shared<Membership>(std::move(m));
  return o;
}

}  // namespace cw::peer
