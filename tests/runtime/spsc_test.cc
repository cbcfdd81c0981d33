#include "app/runtime/spsc.hh"

#include <gtest/gtest.h>

#include <thread>

namespace cw::rt {
namespace {

TEST(Spsc, FifoAndBounded) {
  Spsc<int> q(3);  // rounds up to 4
  EXPECT_EQ(q.capacity(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(q.push(i));
  EXPECT_FALSE(q.push(99)) << "a full ring refuses, never overwrites";
  int v = -1;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(q.pop(v));
    EXPECT_EQ(v, i);
  }
  EXPECT_FALSE(q.pop(v));
}

TEST(Spsc, TwoThreadsSeeEveryItemInOrder) {
  Spsc<uint64_t> q(64);
  constexpr uint64_t kN = 200000;
  std::thread prod([&] {
    for (uint64_t i = 0; i < kN;)
      if (q.push(i)) ++i;
  });
  uint64_t expect = 0, v = 0;
  while (expect < kN)
    if (q.pop(v)) {
      ASSERT_EQ(v, expect++);
    }
  prod.join();
  EXPECT_EQ(q.size(), 0u);
}

}  // namespace
}  // namespace cw::rt
