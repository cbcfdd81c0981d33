// Datagram tx pool: small and large buffers, fallback, exhaustion, reuse.
#include "dataplane/kernel/tx_pool.hh"

#include <gtest/gtest.h>

#include <cstring>
#include <set>

namespace cw::dp::kernel {
namespace {

TEST(TxPool, SmallThenLargeThenExhausted) {
  auto p = TxPool::create(3, 2, 65535);
  ASSERT_TRUE(p) << p.error().message;
  std::set<uint32_t> got;
  for (int i = 0; i < 3; ++i) {
    const uint32_t b = p->take(100);
    ASSERT_NE(b, kNoTxBuf);
    EXPECT_EQ(p->size(b), kTxSmallBytes);
    got.insert(b);
  }
  const uint32_t big = p->take(9000);
  ASSERT_NE(big, kNoTxBuf);
  EXPECT_EQ(p->size(big), 65535u);
  const uint32_t fallback = p->take(10);  // small ones gone: a large one serves
  ASSERT_NE(fallback, kNoTxBuf);
  EXPECT_EQ(p->size(fallback), 65535u);
  EXPECT_EQ(p->take(10), kNoTxBuf);
  EXPECT_EQ(p->take(70000), kNoTxBuf);
  EXPECT_EQ(p->in_use(), 5u);
  // Buffers do not overlap and are writable end to end.
  for (uint32_t b : got) std::memset(p->data(b), int(b), p->size(b));
  std::memset(p->data(big), 0xAB, 65535);
  for (uint32_t b : got) EXPECT_EQ(p->data(b)[kTxSmallBytes - 1], uint8_t(b));
  p->give(big);
  EXPECT_EQ(p->take(60000), big);
  for (uint32_t b : got) p->give(b);
  p->give(big);
  p->give(fallback);
  EXPECT_EQ(p->in_use(), 0u);
}

}  // namespace
}  // namespace cw::dp::kernel
