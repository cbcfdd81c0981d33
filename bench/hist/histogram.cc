#include "bench/hist/histogram.hh"

#include <algorithm>
#include <cmath>

namespace cw::bench {

namespace {
constexpr double kNsPerUs = 1000.0;
}

void Histogram::reset() {
  counts_.fill(0);
  total_ = clamped_ = 0;
  min_ = ~uint64_t{0};
  max_ = 0;
  sum_ = 0;
}

uint64_t Histogram::value_at_index(size_t i) {
  int bucket = int(i >> kSubBucketHalfCountMagnitude) - 1;
  uint64_t sub = (i & (kSubBucketHalfCount - 1)) + kSubBucketHalfCount;
  if (bucket < 0) {
    sub -= kSubBucketHalfCount;
    bucket = 0;
  }
  return sub << bucket;
}

void Histogram::merge(const Histogram& o) {
  for (size_t i = 0; i < kCountsLen; ++i) counts_[i] += o.counts_[i];
  total_ += o.total_;
  clamped_ += o.clamped_;
  sum_ += o.sum_;
  min_ = std::min(min_, o.min_);
  max_ = std::max(max_, o.max_);
}

double Histogram::stddev() const {
  if (total_ == 0) return 0.0;
  const double m = mean();
  long double acc = 0;
  for (size_t i = 0; i < kCountsLen; ++i) {
    if (!counts_[i]) continue;
    const uint64_t lo = value_at_index(i);
    const double med = double(lo + ((highest_equivalent(lo) - lo + 1) >> 1));
    const double d = med - m;
    acc += (long double)(d * d) * counts_[i];
  }
  return std::sqrt(double(acc / total_));
}

uint64_t Histogram::percentile(double p) const {
  if (total_ == 0) return 0;
  if (p <= 0) return min();
  p = std::min(p, 100.0);
  uint64_t want = uint64_t(std::ceil(p / 100.0 * double(total_)));
  want = std::clamp<uint64_t>(want, 1, total_);
  if (want == total_) return max_;  // the top rank is the exact max, even when clamped
  uint64_t cum = 0;
  for (size_t i = 0; i < kCountsLen; ++i) {
    cum += counts_[i];
    if (cum >= want) {
      const uint64_t v = highest_equivalent(value_at_index(i));
      return std::clamp(v, min(), max_);
    }
  }
  return max_;
}

std::string Histogram::hgrm(unsigned ticks) const {
  std::string out;
  char line[160];
  std::snprintf(line, sizeof line, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
                "1/(1-Percentile)");
  out += line;
  auto emit = [&](uint64_t v_ns, double level, uint64_t cum) {
    const double frac = level / 100.0;
    std::snprintf(line, sizeof line, "%12.3f %2.12f %10llu %14.2f\n", double(v_ns) / kNsPerUs, frac,
                  (unsigned long long)cum, 1.0 / (1.0 - frac));
    out += line;
  };
  if (total_ > 0) {
    // Percentile levels as HdrHistogram iterates them: ticks_per_half_distance reports per
    // halving of the distance to 100%.
    double level = 0.0;
    auto advance = [&] {
      const double half = std::floor(std::log2(100.0 / (100.0 - level))) + 1;
      level += 100.0 / (double(ticks) * std::pow(2.0, half));
    };
    uint64_t cum = 0;
    for (size_t i = 0; i < kCountsLen; ++i) {
      if (!counts_[i]) continue;
      cum += counts_[i];
      const uint64_t v = std::clamp(highest_equivalent(value_at_index(i)), min(), max_);
      while (level < 100.0 && double(cum) >= level / 100.0 * double(total_)) {
        // At the last value the levels converge on 100%: stop once 1/(1-p) passes the count.
        if (cum == total_ && (100.0 - level) / 100.0 * double(total_) < 1.0) break;
        emit(v, level, cum);
        advance();
      }
    }
    std::snprintf(line, sizeof line, "%12.3f %2.12f %10llu\n", double(max_) / kNsPerUs, 1.0,
                  (unsigned long long)total_);
    out += line;
  }
  std::snprintf(line, sizeof line, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
                mean() / kNsPerUs, stddev() / kNsPerUs);
  out += line;
  std::snprintf(line, sizeof line, "#[Max     = %12.3f, Total count    = %12llu]\n",
                double(max_) / kNsPerUs, (unsigned long long)total_);
  out += line;
  std::snprintf(line, sizeof line, "#[Buckets = %12u, SubBuckets     = %12llu]\n", kBucketCount,
                (unsigned long long)kSubBucketCount);
  out += line;
  return out;
}

bool Histogram::write_hgrm(const std::string& path) const {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (!f) return false;
  const std::string s = hgrm();
  const bool ok = std::fwrite(s.data(), 1, s.size(), f) == s.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace cw::bench
