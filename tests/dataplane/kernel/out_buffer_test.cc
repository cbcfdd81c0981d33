// Output queue: bytes come out in order across chunks, partial sends, the stability rule
// (gather with skip), large reservations, and no chunk kept by an empty buffer.
#include "dataplane/kernel/out_buffer.hh"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace cw::dp::kernel {
namespace {

std::string drain(OutBuffer& b, OutChunkPool& p, uint32_t max_per_send) {
  std::string out;
  while (!b.empty()) {
    iovec iov[8];
    uint64_t total = 0;
    const unsigned n = b.gather(iov, 8, &total);
    EXPECT_GT(n, 0u);
    uint32_t budget = max_per_send;  // a partial write, as from a full socket
    uint32_t sent = 0;
    for (unsigned i = 0; i < n && budget; ++i) {
      const uint32_t k = std::min<uint32_t>(budget, uint32_t(iov[i].iov_len));
      out.append(static_cast<char*>(iov[i].iov_base), k);
      budget -= k;
      sent += k;
    }
    b.consume(p, sent);
  }
  return out;
}

void put(OutBuffer& b, OutChunkPool& p, const std::string& s) {
  uint8_t* w = b.reserve(p, uint32_t(s.size()));
  ASSERT_NE(w, nullptr);
  std::memcpy(w, s.data(), s.size());
  b.commit(uint32_t(s.size()));
}

TEST(OutBuffer, EmptyBufferHoldsNoChunk) {
  OutChunkPool pool;
  OutBuffer b;
  EXPECT_EQ(pool.outstanding(), 0u);
  put(b, pool, "hello");
  EXPECT_EQ(pool.outstanding(), 1u);
  EXPECT_EQ(drain(b, pool, 3), "hello");
  EXPECT_EQ(pool.outstanding(), 0u);
  EXPECT_EQ(pool.cached_bytes(), kOutChunkBytes) << "the chunk is kept for reuse";
  put(b, pool, "x");
  EXPECT_EQ(pool.cached_bytes(), 0u) << "reused, not allocated";
  b.clear(pool);
  EXPECT_EQ(pool.outstanding(), 0u);
}

TEST(OutBuffer, ManyWritesAcrossChunksComeOutInOrderUnderPartialSends) {
  OutChunkPool pool;
  OutBuffer b;
  std::string want;
  for (int i = 0; i < 5000; ++i) {
    std::string s = std::to_string(i) + std::string(size_t(i % 37), char('a' + i % 26)) + ";";
    want += s;
    put(b, pool, s);
  }
  EXPECT_EQ(b.bytes(), want.size());
  EXPECT_GT(pool.outstanding(), 2u);
  EXPECT_EQ(drain(b, pool, 7777), want);
  EXPECT_EQ(pool.outstanding(), 0u);
}

TEST(OutBuffer, LargeReservationGetsOneContiguousChunk) {
  OutChunkPool pool;
  OutBuffer b;
  put(b, pool, "head");
  const std::string big(100000, 'z');
  put(b, pool, big);
  iovec iov[4];
  uint64_t total = 0;
  ASSERT_EQ(b.gather(iov, 4, &total), 2u);
  EXPECT_EQ(iov[1].iov_len, big.size());
  EXPECT_EQ(total, big.size() + 4);
  EXPECT_EQ(drain(b, pool, 1 << 20), "head" + big);
  EXPECT_EQ(pool.take(uint32_t(kOutChunkBytes) << kOutChunkClasses), nullptr);
}

TEST(OutBuffer, InFlightRegionIsUntouchedByLaterWrites) {
  OutChunkPool pool;
  OutBuffer b;
  put(b, pool, "first-");
  iovec iov[4];
  uint64_t total = 0;
  ASSERT_EQ(b.gather(iov, 4, &total), 1u);
  const uint8_t* inflight = static_cast<uint8_t*>(iov[0].iov_base);
  const size_t inflight_len = iov[0].iov_len;
  // More output while "first-" is in flight: it goes after, and gather(skip) sees only it.
  put(b, pool, "second");
  put(b, pool, std::string(kOutChunkBytes, 'q'));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(inflight), inflight_len), "first-");
  ASSERT_EQ(b.gather(iov, 4, &total, uint32_t(inflight_len)), 2u);
  EXPECT_EQ(std::string(static_cast<char*>(iov[0].iov_base), iov[0].iov_len), "second");
  EXPECT_EQ(total, 6u + kOutChunkBytes);
  b.consume(pool, uint32_t(inflight_len));  // the in-flight send completed
  EXPECT_EQ(drain(b, pool, 1 << 20), "second" + std::string(kOutChunkBytes, 'q'));
}

TEST(OutBuffer, RetainBoundFreesBeyondIt) {
  OutChunkPool pool(kOutChunkBytes);  // keep at most one small chunk
  OutBuffer a, b;
  put(a, pool, "a");
  put(b, pool, "b");
  a.clear(pool);
  b.clear(pool);
  EXPECT_EQ(pool.cached_bytes(), kOutChunkBytes);
  EXPECT_EQ(pool.outstanding(), 0u);
}

// Small output costs a small chunk; a chain grows by doubling (capped) so bulk output
// needs few chunks; the pool's byte bound makes take() fail, and freeing makes room again.
TEST(OutBuffer, ChunksGrowInStepsAndThePoolIsBounded) {
  OutChunkPool pool;
  pool.set_limit(kOutChunkBytes * 8);
  OutBuffer b;
  put(b, pool, std::string(100, 'a'));
  EXPECT_EQ(pool.held_bytes(), kOutChunkBytes) << "a small reply holds one small chunk";
  put(b, pool, std::string(kOutChunkBytes, 'b'));  // does not fit: the next step, 2x
  EXPECT_EQ(pool.held_bytes(), 3u * kOutChunkBytes);
  put(b, pool, std::string(kOutChunkBytes + 1, 'c'));  // fits in the 2x chunk's room? no: 4x
  EXPECT_EQ(pool.held_bytes(), 7u * kOutChunkBytes);
  EXPECT_EQ(b.reserve(pool, kOutChunkBytes * 4), nullptr) << "past the bound";
  EXPECT_EQ(drain(b, pool, 1 << 20), std::string(100, 'a') + std::string(kOutChunkBytes, 'b') +
                                         std::string(kOutChunkBytes + 1, 'c'));
  EXPECT_EQ(pool.held_bytes(), 0u);
  EXPECT_NE(b.reserve(pool, kOutChunkBytes * 4), nullptr) << "room again once sent";
  b.commit(0);
  b.clear(pool);
  // The doubling stops at kOutStepMaxBytes.
  OutChunkPool big;
  OutBuffer c;
  uint32_t last = 0;
  for (int i = 0; i < 12; ++i) {
    const uint64_t before = big.held_bytes();
    put(c, big, std::string(last ? last : 1, 'x'));
    last = uint32_t(big.held_bytes() - before);
  }
  EXPECT_EQ(last, kOutStepMaxBytes);
  c.clear(big);
}

}  // namespace
}  // namespace cw::dp::kernel
