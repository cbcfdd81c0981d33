// The relay's forwarding table (app/services/rtp/relay_table.hh) against std::unordered_map:
// random inserts, replacements and erases on a small table (long probe runs that wrap around
// the array, the backward shift at work), a full table refusing, key 0 refused.
#include "app/services/rtp/relay_table.hh"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>

namespace cw::rtp {
namespace {

void check_same(const RelayTable& t, const std::unordered_map<uint64_t, uint64_t>& model,
                uint64_t keys) {
  ASSERT_EQ(t.size(), model.size());
  for (uint64_t k = 1; k <= keys; ++k) {
    const RelayTable::Entry* e = t.find(k);
    auto it = model.find(k);
    ASSERT_EQ(e != nullptr, it != model.end()) << "key " << k;
    if (e) {
      EXPECT_EQ(e->dest, it->second);
      EXPECT_EQ(e->slot, uint32_t(it->second));
    }
  }
}

TEST(RelayTable, MatchesAMapUnderRandomOperations) {
  for (size_t max : {1u, 5u, 8u, 100u}) {
    RelayTable t(max);
    std::unordered_map<uint64_t, uint64_t> model;
    std::mt19937_64 rng(max);
    const uint64_t keys = 3 * max + 2;  // few keys: many collisions, full table reached
    for (int op = 0; op < 20000; ++op) {
      const uint64_t k = 1 + rng() % keys, v = rng() % 1000 + 1;
      if (rng() % 2) {
        const bool fits = model.count(k) || model.size() < max;
        ASSERT_EQ(t.insert(k, v, uint32_t(v)), fits);
        if (fits) model[k] = v;
      } else {
        ASSERT_EQ(t.erase(k), model.erase(k) == 1);
      }
      if (op % 97 == 0) check_same(t, model, keys);
    }
    check_same(t, model, keys);
  }
}

TEST(RelayTable, KeyZeroIsNeverAnEntry) {
  RelayTable t(4);
  EXPECT_FALSE(t.insert(0, 1, 1));
  EXPECT_EQ(t.find(0), nullptr);
  EXPECT_FALSE(t.erase(0));
  EXPECT_EQ(t.size(), 0u);
}

// Realistic keys (loopback addresses and ports, command.hh endpoint_key) at the table's
// capacity, then all erased: every lookup finds its own route.
TEST(RelayTable, EndpointKeysAtCapacity) {
  const size_t n = 20000;
  RelayTable t(n);
  for (uint64_t i = 0; i < n; ++i)
    ASSERT_TRUE(t.insert((uint64_t{0x7f010000u + uint32_t(i)} << 16) | 0x1389, i + 7, uint32_t(i)));
  EXPECT_FALSE(t.insert(uint64_t{0x7f7f0000} << 16 | 1, 1, 1));
  for (uint64_t i = 0; i < n; ++i) {
    const RelayTable::Entry* e = t.find((uint64_t{0x7f010000u + uint32_t(i)} << 16) | 0x1389);
    ASSERT_NE(e, nullptr);
    ASSERT_EQ(e->dest, i + 7);
  }
  for (uint64_t i = 0; i < n; ++i)
    ASSERT_TRUE(t.erase((uint64_t{0x7f010000u + uint32_t(i)} << 16) | 0x1389));
  EXPECT_EQ(t.size(), 0u);
}

}  // namespace
}  // namespace cw::rtp
