// The kv service's [[service]] keys (docs/configuration.md) and the partitions one kv table
// shares between its workers. Setup-only: nothing here runs on the datapath.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "app/runtime/service_keys.hh"
#include "app/runtime/shared_buf.hh"
#include "app/services/kv/store/store.hh"
#include "app/services/kv/udp_trust.hh"

namespace cw::kv {

// One worker's share of a kv service: its store (the keys it owns) and, with more than one
// worker, the pools its forwarded requests and its replies to other workers travel in.
// Written by its worker only; other workers read the store's counters (stats()).
struct Partition {
  std::unique_ptr<Store> store;
  std::unique_ptr<rt::SharedPool> small;  // requests and replies up to kSmallBuf bytes
  std::unique_ptr<rt::SharedPool> large;  // up to one whole item (item_size_max + a line)
};

// The partitions of one kv table, by worker. Every worker's instance holds this (a
// shared_ptr), so the stores and pools outlive every worker that may still hold a buffer of
// another's pool, however the workers stop. Each factory fills its own slot under the mutex
// before any loop runs (the runtime starts the loops after every factory returned); after
// that the slots never change and are read without the lock.
class Partitions {
 public:
  Partition& claim(unsigned worker, unsigned workers) {
    std::lock_guard g(mu_);
    if (parts_.size() != workers) parts_.resize(workers);
    parts_[worker] = std::make_unique<Partition>();
    return *parts_[worker];
  }
  const Partition* at(unsigned w) const { return w < parts_.size() ? parts_[w].get() : nullptr; }
  size_t size() const { return parts_.size(); }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<Partition>> parts_;
};

inline constexpr uint32_t kSmallBuf = 4096;     // bytes per small mail buffer
inline constexpr uint32_t kSmallBufs = 1024;    // per worker
inline constexpr uint32_t kLargeBufs = 4;       // per worker
inline constexpr unsigned kMaxWarmFiles = 256;  // <path>.0 .. <path>.255 are looked for

struct KvOptions {
  uint64_t memory_limit = uint64_t{64} << 20;    // item memory, all workers together (-m)
  uint64_t item_size_max = kDefaultItemSizeMax;  // header + key + value (-I)
  std::string warm_restart_file;                 // empty: off (memcached -e)
  bool udp_public = false;                       // serve UDP on an address that is not loopback
  uint32_t udp_reply_factor = 10;  // reply bytes per request byte to an unverified source
  std::vector<Cidr> udp_trusted;   // sources exempt from the cap (besides loopback)
  uint32_t udp_tcp_trust_s = 300;  // a TCP peer stays proven this long after its session
  uint32_t pipeline_depth = 64;    // requests in flight per connection
  bool cluster = false;  // keys owned by nodes of the peer service's cluster (docs/cluster.md)
  // Filled by the factories; shared by this table's worker instances (see Partitions).
  std::shared_ptr<Partitions> partitions = std::make_shared<Partitions>();
};

inline constexpr size_t kMaxUdpTrusted = 64;  // udp_trusted entries

inline constexpr std::array<std::string_view, 9> kKvOptionKeys = {
    "memory_limit", "item_size_max", "warm_restart_file", "udp_public", "udp_reply_factor",
    "udp_trusted",  "udp_tcp_trust", "pipeline_depth",    "cluster"};

KvOptions parse_kv_options(rt::ServiceKeys& k);

// Bytes of item memory worker partitions get: memory_limit split evenly, at least four
// pages of item_size_max each (a store needs a page per slab class in use).
uint64_t partition_bytes(const KvOptions& o, unsigned workers);

}  // namespace cw::kv
