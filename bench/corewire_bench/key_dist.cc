#include "bench/corewire_bench/key_dist.hh"

#include <cassert>
#include <cmath>

namespace cw::bench::kv {

// Vose's alias method: columns scaled to mean 1; each small column is topped up by one large
// column, so every column holds at most two ranks and a sample is one lookup and a coin.
KeyDist::KeyDist(uint64_t n, double theta) : n_(n ? n : 1), theta_(theta) {
  if (theta_ <= 0) return;
  assert(n_ <= UINT32_MAX);
  std::vector<double> w(n_);
  norm_ = 0;
  for (uint64_t i = 0; i < n_; ++i) norm_ += w[i] = std::pow(double(i + 1), -theta_);
  for (auto& x : w) x *= double(n_) / norm_;
  threshold_.assign(n_, UINT32_MAX);
  alias_.resize(n_);
  for (uint64_t i = 0; i < n_; ++i) alias_[i] = uint32_t(i);
  std::vector<uint32_t> small, large;
  for (uint64_t i = 0; i < n_; ++i) (w[i] < 1.0 ? small : large).push_back(uint32_t(i));
  while (!small.empty() && !large.empty()) {
    const uint32_t s = small.back(), l = large.back();
    small.pop_back();
    threshold_[s] = uint32_t(std::min(w[s] * 4294967296.0, 4294967295.0));
    alias_[s] = l;
    w[l] -= 1.0 - w[s];
    if (w[l] < 1.0) {
      large.pop_back();
      small.push_back(l);
    }
  }
  // What is left is 1 up to rounding: those columns keep their own rank.
}

double KeyDist::probability(uint64_t i) const {
  if (i >= n_) return 0;
  if (theta_ <= 0) return 1.0 / double(n_);
  return std::pow(double(i + 1), -theta_) / norm_;
}

}  // namespace cw::bench::kv
