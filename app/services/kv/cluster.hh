// Which node owns a key in a kv cluster (docs/cluster.md#key-value-across-nodes): rendezvous
// hashing (highest random weight) over the nodes that are up. Every node computes the same
// owner from the same set; a node that goes down gives its keys to the next in each key's
// order, and no other key moves. Pure functions, no state.
#pragma once

#include <cstdint>
#include <span>

#include "dataplane/io.hh"

namespace cw::kv {

inline constexpr uint64_t mix64(uint64_t x) {  // splitmix64's finalizer
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// A node's id: its peer address (the one its peers dial), the same on every node.
inline constexpr uint64_t node_id(const dp::Endpoint& e) {
  return mix64(uint64_t(e.addr_be) << 16 | e.port_be);
}

// The index in ids of the owner of key_hash among the nodes with up[i] != 0; ids.size() if
// none is up.
inline size_t rendezvous(uint64_t key_hash, std::span<const uint64_t> ids,
                         std::span<const uint8_t> up) {
  size_t best = ids.size();
  uint64_t best_score = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (!up[i]) continue;
    const uint64_t score = mix64(key_hash ^ ids[i]);
    if (best == ids.size() || score > best_score) {
      best = i;
      best_score = score;
    }
  }
  return best;
}

}  // namespace cw::kv
