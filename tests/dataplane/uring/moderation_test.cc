// The interrupt-moderation policy (dataplane/uring/moderation.hh), driven with made-up
// wake-ups: when it engages, stays, and backs off.
#include "dataplane/uring/moderation.hh"

#include <gtest/gtest.h>

namespace cw::dp::uring {
namespace {

constexpr uint64_t kUs = 1000;

TEST(Moderator, OffWithoutAWindow) {
  Moderator m(0);
  for (int i = 0; i < 100; ++i) m.after_wait(uint64_t(i) * kUs, 5, 320);
  EXPECT_FALSE(m.engaged());
}

TEST(Moderator, AClusteredWakeUpEngagesAndABatchKeepsItEngaged) {
  Moderator m(50);
  m.after_wait(1000 * kUs, 1, 64);
  EXPECT_FALSE(m.engaged());
  m.after_wait(1001 * kUs, 3, 192);
  EXPECT_TRUE(m.engaged());
  m.after_wait(1060 * kUs, 5, 320);
  EXPECT_TRUE(m.engaged());
}

// An open-loop stream at one item per wake-up, 10 us apart: engages after kMinQuick.
TEST(Moderator, AFastStreamOfLoneItemsEngages) {
  Moderator m(50);
  uint64_t t = 1000 * kUs;
  uint32_t wakes = 0;
  while (!m.engaged() && wakes < 100) {
    m.after_wait(t, 1, 64);
    t += 10 * kUs;
    ++wakes;
  }
  EXPECT_TRUE(m.engaged());
  EXPECT_EQ(wakes, Moderator::kMinQuick + 1);  // the first one has no predecessor
  // One TCP receive carrying five requests' bytes counts as a batch.
  m.after_wait(t, 1, 320);
  EXPECT_TRUE(m.engaged());
}

TEST(Moderator, SlowArrivalsNeverEngage) {
  Moderator m(50);
  for (uint64_t i = 1; i < 200; ++i) m.after_wait(i * 100 * kUs, 1, 64);
  EXPECT_FALSE(m.engaged());
}

// Ping-pong: each moderated wait brings one lone request, so every failure disengages and
// doubles the run of quick wake-ups needed next time; a delayed round trip gets rare.
TEST(Moderator, PingPongBacksOffExponentially) {
  Moderator m(50);
  uint64_t t = 1000 * kUs;
  uint32_t delayed = 0;
  const uint32_t kRoundTrips = 20000;
  for (uint32_t i = 0; i < kRoundTrips; ++i) {
    if (m.engaged()) ++delayed;
    m.after_wait(t, 1, 64);
    t += 20 * kUs;
  }
  EXPECT_FALSE(m.engaged());
  EXPECT_EQ(m.need(), Moderator::kMaxQuick);
  EXPECT_LT(delayed, kRoundTrips / 500);  // ~10 failures in 20,000 round trips
  // A batch resets the back-off.
  m.after_wait(t, 4, 256);
  EXPECT_TRUE(m.engaged());
  m.after_wait(t + 50 * kUs, 6, 384);
  EXPECT_EQ(m.need(), Moderator::kMinQuick);
}

}  // namespace
}  // namespace cw::dp::uring
