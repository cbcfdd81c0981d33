// The subscription table: literal prefixes of wildcard subjects, and match() against a
// brute-force scan (every live entry through subject_matches) over random subjects, before
// and after removals and reuse of freed entries.
#include "app/services/pubsub/sublist.hh"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace cw::pubsub {
namespace {

TEST(Sublist, LiteralPrefix) {
  EXPECT_EQ(literal_prefix_len("a.b.*.c"), 3u);
  EXPECT_EQ(literal_prefix_len("a.>"), 1u);
  EXPECT_EQ(literal_prefix_len("*.x"), 0u);
  EXPECT_EQ(literal_prefix_len(">"), 0u);
  EXPECT_EQ(literal_prefix_len("ab.cd.*"), 5u);
  EXPECT_EQ(literal_prefix_len("a*.b.>"), 4u);  // "a*" is a literal token
}

std::vector<uint32_t> matched(const Sublist& l, std::string_view subject) {
  std::vector<uint32_t> ids;
  l.match(subject, [&](uint32_t id) { ids.push_back(id); });
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<uint32_t> brute(const Sublist& l, const std::vector<uint32_t>& live,
                            std::string_view subject) {
  std::vector<uint32_t> ids;
  for (uint32_t id : live)
    if (proto::subject_matches(l.at(id).subject_sv(), subject)) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

TEST(Sublist, OneCallPerMatchingEntry) {
  Sublist l(16);
  uint32_t own = kNil;
  const uint32_t lit = l.add("a.b.c", "", "1", 7, own);
  const uint32_t w1 = l.add("a.*.c", "", "2", 7, own);
  const uint32_t w2 = l.add("a.b.>", "", "3", 7, own);
  const uint32_t w3 = l.add(">", "", "4", 7, own);
  const uint32_t w4 = l.add("*.b.*", "", "5", 7, own);
  l.add("a.b.c.d.>", "", "6", 7, own);
  l.add("b.>", "", "7", 7, own);
  std::vector<uint32_t> want{lit, w1, w2, w3, w4};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(matched(l, "a.b.c"), want);
  EXPECT_EQ(matched(l, "a.b"), (std::vector<uint32_t>{w3}));
  l.remove(w3, own);
  EXPECT_TRUE(matched(l, "a.b").empty());
  EXPECT_EQ(matched(l, "x.b.y"), (std::vector<uint32_t>{w4}));
}

TEST(Sublist, RandomAgainstBruteForce) {
  std::mt19937 rng(12345);
  const char* tokens[] = {"a", "b", "c", "dd", "*", ">"};
  auto subject = [&](bool wild) {
    std::string s;
    const int n = 1 + int(rng() % 4);
    for (int i = 0; i < n; ++i) {
      if (i) s += '.';
      // '>' only last; wildcards only in filters.
      const unsigned k = wild ? rng() % (i + 1 == n ? 6 : 5) : rng() % 4;
      s += tokens[k];
    }
    return s;
  };
  Sublist l(3000);
  uint32_t own = kNil;
  std::vector<uint32_t> live;
  for (int i = 0; i < 2500; ++i) {
    const uint32_t id = l.add(subject(true), "", std::to_string(i), 1, own);
    ASSERT_NE(id, kNil);
    live.push_back(id);
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 2000; ++i) {
      const std::string s = subject(false);
      ASSERT_EQ(matched(l, s), brute(l, live, s)) << s;
    }
    // Remove a third, add new ones into the freed entries.
    std::shuffle(live.begin(), live.end(), rng);
    for (size_t i = 0; i < live.size() / 3; ++i) l.remove(live[i], own);
    live.erase(live.begin(), live.begin() + live.size() / 3);
    for (int i = 0; i < 500; ++i) live.push_back(l.add(subject(true), "q", "x", 2, own));
    ASSERT_EQ(l.size(), live.size());
  }
}

}  // namespace
}  // namespace cw::pubsub
