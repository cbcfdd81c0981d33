// The peer service's [[service]] keys.
#include "app/services/peer/config.hh"

#include "app/runtime/endpoint_keys.hh"
#include "app/services/peer/frame.hh"
#include "app/services/peer/tls.hh"

namespace cw::peer {

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
        Ms{"handshake_timeout", &o.handshake_timeout_ms, 100}, Ms{"retry", &o.retry_ms, 10}}) {
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
  }
  return o;
}

}  // namespace cw::peer
