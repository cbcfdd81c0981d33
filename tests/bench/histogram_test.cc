// The latency histogram: relative error bound, percentiles on known distributions, merge,
// exact min/max, clamping, and the .hgrm text HdrHistogram's plotter reads.
#include "bench/hist/histogram.hh"

#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <sstream>
#include <vector>

namespace cw::bench {
namespace {

std::unique_ptr<Histogram> make() {
  return std::make_unique<Histogram>();
}

TEST(Histogram, RelativeErrorBelowOnePercentAcrossTheRange) {
  std::mt19937_64 rng(42);
  // Log-uniform values from 1 ns to 60 s, plus the small exact range.
  std::uniform_real_distribution<double> exp10(0.0, std::log10(60e9));
  for (int i = 0; i < 200000; ++i) {
    const uint64_t v = std::max<uint64_t>(1, uint64_t(std::pow(10.0, exp10(rng))));
    const uint64_t lo = Histogram::lowest_equivalent(v);
    const uint64_t hi = Histogram::highest_equivalent(v);
    ASSERT_LE(lo, v);
    ASSERT_GE(hi, v);
    ASSERT_LE(double(hi - lo), 0.01 * double(v)) << v;
    // value_at_index maps back to the bucket's lowest value.
    ASSERT_EQ(Histogram::value_at_index(Histogram::index_of(v)), lo) << v;
  }
  for (uint64_t v = 0; v < 256; ++v) EXPECT_EQ(Histogram::highest_equivalent(v), v);
  EXPECT_LT(Histogram::index_of(Histogram::kHighestTrackable), Histogram::kCountsLen);
  EXPECT_GE(Histogram::kHighestTrackable, uint64_t(60e9));
}

TEST(Histogram, PercentileOfRecordedValuesWithinOnePercent) {
  auto h = make();
  std::mt19937_64 rng(7);
  std::exponential_distribution<double> expo(1.0 / 50000.0);  // mean 50 us
  std::vector<uint64_t> vals;
  for (int i = 0; i < 100000; ++i) {
    vals.push_back(uint64_t(expo(rng)) + 1);
    h->record(vals.back());
  }
  std::sort(vals.begin(), vals.end());
  for (double p : {50.0, 90.0, 99.0, 99.9, 99.99}) {
    const size_t rank = size_t(std::ceil(p / 100.0 * vals.size())) - 1;
    const double exact = double(vals[rank]);
    EXPECT_NEAR(double(h->percentile(p)), exact, exact * 0.01) << p;
  }
  EXPECT_EQ(h->percentile(100), vals.back());
  EXPECT_EQ(h->percentile(0), vals.front());
}

TEST(Histogram, UniformOneToTenThousand) {
  auto h = make();
  for (uint64_t v = 1; v <= 10000; ++v) h->record(v);
  EXPECT_EQ(h->count(), 10000u);
  EXPECT_NEAR(double(h->percentile(50)), 5000, 50);
  EXPECT_NEAR(double(h->percentile(90)), 9000, 90);
  EXPECT_NEAR(double(h->percentile(99)), 9900, 99);
  EXPECT_NEAR(h->mean(), 5000.5, 1e-6);  // the mean is exact
  EXPECT_NEAR(h->stddev(), 2886.75, 2886.75 * 0.01);
}

TEST(Histogram, MinAndMaxAreExact) {
  auto h = make();
  h->record(123457);
  h->record(987654321);
  h->record(5555);
  EXPECT_EQ(h->min(), 5555u);
  EXPECT_EQ(h->max(), 987654321u);
  EXPECT_EQ(h->percentile(100), 987654321u) << "p100 is the exact max, not a bucket edge";
  // The lowest rank reports its bucket's highest equivalent value (HdrHistogram's rule).
  EXPECT_NEAR(double(h->percentile(0.0001)), 5555.0, 5555.0 * 0.01);
  EXPECT_GE(h->percentile(0.0001), 5555u);
}

TEST(Histogram, EmptyReportsZero) {
  auto h = make();
  EXPECT_EQ(h->count(), 0u);
  EXPECT_EQ(h->min(), 0u);
  EXPECT_EQ(h->max(), 0u);
  EXPECT_EQ(h->percentile(99), 0u);
  EXPECT_EQ(h->mean(), 0.0);
}

TEST(Histogram, ValuesAboveTheRangeAreClampedAndCounted) {
  auto h = make();
  const uint64_t huge = Histogram::kHighestTrackable * 4;
  h->record(huge);
  h->record(10);
  EXPECT_EQ(h->clamped(), 1u);
  EXPECT_EQ(h->max(), huge);
  EXPECT_EQ(h->count(), 2u);
  EXPECT_EQ(h->percentile(100), huge);
}

TEST(Histogram, MergeEqualsRecordingEverythingInOne) {
  auto a = make(), b = make(), all = make();
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<uint64_t> d(1, 10'000'000);
  for (int i = 0; i < 50000; ++i) {
    const uint64_t v = d(rng);
    (i % 3 ? a : b)->record(v);
    all->record(v);
  }
  a->merge(*b);
  EXPECT_EQ(a->count(), all->count());
  EXPECT_EQ(a->min(), all->min());
  EXPECT_EQ(a->max(), all->max());
  EXPECT_DOUBLE_EQ(a->mean(), all->mean());
  for (double p : {1.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0})
    EXPECT_EQ(a->percentile(p), all->percentile(p)) << p;
  EXPECT_EQ(a->hgrm(), all->hgrm());
}

TEST(Histogram, MergeIntoEmptyKeepsMin) {
  auto a = make(), b = make();
  b->record(77);
  a->merge(*b);
  EXPECT_EQ(a->min(), 77u);
  EXPECT_EQ(a->max(), 77u);
}

TEST(Histogram, HgrmFormat) {
  auto h = make();
  for (uint64_t v = 1; v <= 1000; ++v) h->record(v * 1000);  // 1..1000 us
  const std::string s = h->hgrm();
  std::istringstream in(s);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "       Value     Percentile TotalCount 1/(1-Percentile)");
  std::getline(in, line);
  EXPECT_EQ(line, "");
  // Data lines: value (us), percentile (fraction), cumulative count, 1/(1-p); both
  // non-decreasing, and the last data line is 100% with the total and no fourth column.
  double last_v = -1, last_p = -1;
  uint64_t last_c = 0;
  int data = 0;
  std::vector<std::string> footer;
  std::string final_line;
  while (std::getline(in, line)) {
    if (line.rfind("#[", 0) == 0) {
      footer.push_back(line);
      continue;
    }
    std::istringstream f(line);
    double v, p;
    uint64_t c;
    ASSERT_TRUE(f >> v >> p >> c) << line;
    double inv;
    if (f >> inv) {
      EXPECT_NEAR(inv, 1.0 / (1.0 - p), 0.01 * inv + 0.01) << line;
    } else {
      final_line = line;
    }
    EXPECT_GE(v, last_v);
    EXPECT_GE(p, last_p);
    EXPECT_GE(c, last_c);
    last_v = v, last_p = p, last_c = c;
    ++data;
  }
  EXPECT_GT(data, 20);
  EXPECT_EQ(final_line, "    1000.000 1.000000000000       1000");
  ASSERT_EQ(footer.size(), 3u);
  EXPECT_EQ(footer[0], "#[Mean    =      500.500, StdDeviation   =      288.676]")
      << "stddev is computed over bucket midpoints";
  EXPECT_EQ(footer[1], "#[Max     =     1000.000, Total count    =         1000]");
  EXPECT_EQ(footer[2], "#[Buckets =           33, SubBuckets     =          256]");
}

}  // namespace
}  // namespace cw::bench
