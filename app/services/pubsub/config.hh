// The pubsub service's [[service]] keys (docs/configuration.md) and what one pubsub table
// shares between its workers. Setup-only: nothing here runs on the datapath except the
// connection count (one atomic add per connection, not per message).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/service_keys.hh"
#include "app/runtime/shared_buf.hh"
#include "app/services/pubsub/protocol.hh"

namespace cw::pubsub {

// One worker's mail buffers: messages and announcements it sends to other workers.
struct Pools {
  std::unique_ptr<rt::SharedPool> small;  // up to 4 KiB
  std::unique_ptr<rt::SharedPool> large;  // up to one max_payload message
};

// What the workers of one pubsub table share: the connection count (max_connections) and
// every worker's pools, so a buffer outlives the worker that sent it however workers stop.
// Each factory claims its slot under the mutex before any loop runs; after that the slots
// never change.
struct Shared {
  std::atomic<uint32_t> connections{0};
  Pools& claim(unsigned worker, unsigned workers) {
    std::lock_guard g(mu);
    if (pools.size() != workers) pools.resize(workers);
    pools[worker] = std::make_unique<Pools>();
    return *pools[worker];
  }
  std::mutex mu;
  std::vector<std::unique_ptr<Pools>> pools;
};

struct PubsubOptions {
  uint32_t max_payload = proto::kDefaultMaxPayload;  // bytes per message, headers included
  uint32_t max_connections = 65536;                  // over all workers (nats-server's 64K)
  uint32_t max_subscriptions = 0;                    // per connection; 0: no limit
  uint32_t worker_subscriptions = 16384;             // table entries per worker
  uint64_t max_pending = 3u << 20;      // output bytes queued per connection before it is cut
  uint64_t ping_interval_ms = 120'000;  // server PING every this often (nats-server: 2m)
  uint32_t max_pings_out = 2;           // unanswered PINGs before 'Stale Connection'
  std::string user, password, token;    // at most one of user/password and token
  bool allow_anonymous = false;         // serve without auth on an address not loopback
  std::string server_name = "corewire";
  std::shared_ptr<Shared> shared = std::make_shared<Shared>();

  bool auth() const { return !user.empty() || !token.empty(); }
};

inline constexpr std::array<std::string_view, 12> kPubsubOptionKeys = {
    "max_payload", "max_connections", "max_subscriptions", "worker_subscriptions",
    "max_pending", "ping_interval",   "max_pings_out",     "user",
    "password",    "token",           "allow_anonymous",   "server_name"};

PubsubOptions parse_pubsub_options(rt::ServiceKeys& k);

// Whether options `o` may serve on an address (network byte order): anything on loopback;
// elsewhere only with auth or allow_anonymous. Empty when it may, else why not.
std::string listen_refusal(const PubsubOptions& o, uint32_t addr_be);

}  // namespace cw::pubsub
