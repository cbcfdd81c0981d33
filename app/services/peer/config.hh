// The peer service's [[service]] keys (docs/configuration.md, docs/cluster.md): this node's
// certificate, key and the cluster CA, the static peer list, and the probe that tests use.
// Setup-only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/service_keys.hh"
#include "app/services/peer/membership.hh"
#include "dataplane/io.hh"

namespace cw::peer {

inline constexpr uint32_t kMaxPeers = 256;
inline constexpr uint32_t kMaxProbeRequests = 10'000'000;
inline constexpr uint64_t kMaxProbeBulk = uint64_t{1} << 40;  // 1 TiB

struct PeerOptions {
  std::string cert, key, ca;        // PEM files: this node's chain and key; the cluster's CA
  std::vector<dp::Endpoint> peers;  // peers to dial; peer i is dialed by worker i % workers
  uint32_t max_inbound = 16;        // sessions peers may open to each worker
  uint64_t idle_timeout_ms = 30'000;
  uint64_t keepalive_ms = 5'000;
  uint64_t handshake_timeout_ms = 10'000;
  uint64_t retry_ms = 1'000;            // a failed or closed dial is retried this long after
  uint64_t request_timeout_ms = 1'000;  // the peer API's requests (api.hh)
  // Test probe: on every session this node dials, send probe_requests echo requests of
  // probe_bytes each on one stream and check the responses arrive whole and in order.
  uint32_t probe_requests = 0;
  uint32_t probe_bytes = 64;
  // And probe_datagrams RFC 9221 datagrams (echoed by the peer; best effort, so counted).
  uint32_t probe_datagrams = 0;
  // Benchmarks (docs/BENCHMARKS.md, "Peer sessions"): probe_rtt keeps one probe request
  // outstanding at a time and records each round trip in a histogram (the first tenth are
  // warm-up, not recorded); probe_bulk sends that many bytes of sink-channel frames of
  // probe_bytes each on a stream of its own, which the peer consumes and times.
  bool probe_rtt = false;
  uint64_t probe_bulk = 0;
  // Receive window per stream (the endpoint's stream_window): bulk goodput is at most one
  // window per round trip, scheduling delays included.
  uint32_t stream_window = 32 * 1024;  // kStreamRxBytes (endpoint.hh)
  // Membership through etcd (docs/cluster.md#membership-through-etcd): with etcd set, the
  // process's membership thread, started by the first worker (null without etcd). Each
  // worker keeps max_members - 1 client slots for the members it dials.
  std::vector<std::string> etcd;
  std::string node_id;
  uint32_t max_members = 16;
  dp::Endpoint advertise{};
  std::shared_ptr<Membership> membership;
};

// Packed by hand: clang-format would put one key per line.
// clang-format off
inline constexpr std::array<std::string_view, 23> kPeerOptionKeys = {
    "cert", "key", "ca", "peers", "max_inbound", "idle_timeout", "keepalive",
    "handshake_timeout", "retry", "probe_requests", "probe_bytes", "probe_datagrams",
    "etcd", "node_id", "prefix", "advertise", "lease_ttl", "etcd_poll", "max_members",
    "probe_rtt", "probe_bulk", "stream_window", "request_timeout"};
// clang-format on

// Reads and checks the keys; the certificate, key and CA are loaded once here so that a bad
// file stops corewire with an error naming the key.
PeerOptions parse_peer_options(rt::ServiceKeys& k);

// Why the peer service may not listen on addr_be (network byte order), empty when it may:
// with etcd, peers must learn an address to dial (advertise, or a listen address not 0.0.0.0).
std::string peer_listen_refusal(const PeerOptions& o, uint32_t addr_be);

// Whether s is an etcd endpoint this build can reach: "http://host[:port]".
bool valid_etcd_url(std::string_view s);

}  // namespace cw::peer
