// Key choice for the memcached workload: uniform over [0, n), or Zipf(theta) with
// P(rank i) proportional to 1 / (i + 1)^theta, sampled in O(1) from a Walker/Vose alias
// table built once at setup (8 bytes per key). Rank 0 is the hottest key. A table is
// read-only after construction, so every worker of a run shares one.
#pragma once

#include <cstdint>
#include <vector>

namespace cw::bench::kv {

// splitmix64's finaliser: a 64-bit bijection whose outputs look independent.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

class KeyDist {
 public:
  // theta == 0: uniform, no table. Setup only: allocates and takes O(n).
  KeyDist(uint64_t n, double theta);

  uint64_t size() const { return n_; }
  double theta() const { return theta_; }
  // Rank from two independent uniformly random 64-bit words.
  uint64_t sample(uint64_t r1, uint64_t r2) const {
    __extension__ using u128 = unsigned __int128;
    const uint64_t i = uint64_t(u128(r1) * n_ >> 64);  // uniform in [0, n) without division
    if (alias_.empty()) return i;
    return uint32_t(r2 >> 32) < threshold_[i] ? i : alias_[i];
  }
  // The exact probability of rank i (tests).
  double probability(uint64_t i) const;

 private:
  uint64_t n_;
  double theta_;
  double norm_ = 1;                  // sum of 1/(i+1)^theta
  std::vector<uint32_t> threshold_;  // keep i when the coin (32 bits) is below this
  std::vector<uint32_t> alias_;      // else take this rank
};

}  // namespace cw::bench::kv
