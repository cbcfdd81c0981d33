// A log-linear latency histogram in the HdrHistogram layout: values (ns) are grouped by
// power of two ("buckets"), and each bucket is split linearly into kSubBucketHalfCount
// "sub-buckets", so any recorded value is represented within 1/128 (< 0.8%) of itself.
//
// Fixed memory (one array of counters, ~35 KiB, inside the object), O(1) record with no
// allocation and no branch beyond the range clamp: safe on the load generator's datapath.
// One histogram per worker, owned by that worker while it runs; merge() them afterwards.
// min, max and the sum (mean) are tracked exactly; percentiles come from the buckets.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <string>

namespace cw::bench {

class Histogram {
 public:
  // Layout (the same for every Histogram, so any two can be merged).
  static constexpr unsigned kSubBucketHalfCountMagnitude = 7;
  static constexpr uint64_t kSubBucketHalfCount = 1u << kSubBucketHalfCountMagnitude;  // 128
  static constexpr uint64_t kSubBucketCount = kSubBucketHalfCount * 2;                 // 256
  static constexpr uint64_t kSubBucketMask = kSubBucketCount - 1;
  // Largest trackable value: 2^40 ns (~18 minutes). Larger values are clamped to it (and
  // counted in clamped()); max() still reports the exact value recorded.
  static constexpr unsigned kMaxValueMagnitude = 40;
  static constexpr uint64_t kHighestTrackable = (uint64_t{1} << kMaxValueMagnitude) - 1;
  static constexpr unsigned kBucketCount =
      kMaxValueMagnitude - (kSubBucketHalfCountMagnitude + 1) + 1;
  static constexpr size_t kCountsLen = size_t(kBucketCount + 1) * kSubBucketHalfCount;

  Histogram() { reset(); }

  void reset();

  // Records one value (ns). Values of 0 are recorded as 0 (the first sub-bucket).
  void record(uint64_t v) { record_n(v, 1); }
  void record_n(uint64_t v, uint64_t n) {
    if (v > kHighestTrackable) {
      clamped_ += n;
      if (v > max_) max_ = v;
      v = kHighestTrackable;
    } else if (v > max_) {
      max_ = v;
    }
    if (v < min_) min_ = v;
    counts_[index_of(v)] += n;
    total_ += n;
    sum_ += v * n;
  }

  // Adds every count of other to this one.
  void merge(const Histogram& other);

  uint64_t count() const { return total_; }
  uint64_t clamped() const { return clamped_; }
  uint64_t min() const { return total_ ? min_ : 0; }  // exact
  uint64_t max() const { return max_; }               // exact
  double mean() const { return total_ ? double(sum_) / double(total_) : 0.0; }
  // Standard deviation over the buckets' median-equivalent values (as HdrHistogram does).
  double stddev() const;
  // The value at percentile p (0..100): the highest value equivalent to the bucket holding
  // the ceil(p% * count)-th value, bounded by the exact min and max. 0 when empty.
  uint64_t percentile(double p) const;

  // The HdrHistogram percentile-distribution text (".hgrm"), values in microseconds.
  // ticks_per_half_distance: reporting density (HdrHistogram's default is 5).
  std::string hgrm(unsigned ticks_per_half_distance = 5) const;
  bool write_hgrm(const std::string& path) const;

  // Bucket arithmetic, exposed for tests.
  static unsigned bucket_of(uint64_t v) {
    return unsigned(64 - __builtin_clzll(v | kSubBucketMask)) - (kSubBucketHalfCountMagnitude + 1);
  }
  static size_t index_of(uint64_t v) {
    const unsigned b = bucket_of(v);
    const uint64_t sub = v >> b;
    return (size_t(b + 1) << kSubBucketHalfCountMagnitude) + sub - kSubBucketHalfCount;
  }
  static uint64_t lowest_equivalent(uint64_t v) {
    const unsigned b = bucket_of(v);
    return (v >> b) << b;
  }
  static uint64_t highest_equivalent(uint64_t v) {
    return lowest_equivalent(v) + (uint64_t{1} << bucket_of(v)) - 1;
  }
  // The lowest value counted at counts index i.
  static uint64_t value_at_index(size_t i);

 private:
  std::array<uint64_t, kCountsLen> counts_;
  uint64_t total_ = 0;
  uint64_t clamped_ = 0;
  uint64_t min_ = ~uint64_t{0};
  uint64_t max_ = 0;
  uint64_t sum_ = 0;  // ns; wraps only after ~584 years of summed latency
};

}  // namespace cw::bench
