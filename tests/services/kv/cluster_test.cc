// Rendezvous ownership of keys across nodes (app/services/kv/cluster.hh): every node up gets
// a fair share, a node going down moves only its own keys, and nothing is owned when no node
// is up.
#include "app/services/kv/cluster.hh"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "app/runtime/router.hh"

namespace cw::kv {
namespace {

uint64_t key_hash(const std::string& k) {
  return rt::hash_key({reinterpret_cast<const uint8_t*>(k.data()), k.size()});
}

TEST(KvCluster, RendezvousSharesKeysAndMovesOnlyALeaversKeys) {
  const std::array<uint64_t, 3> ids = {node_id({0x0100007f, 0x1111}), node_id({0x0100007f, 0x2222}),
                                       node_id({0x0200007f, 0x1111})};
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_NE(ids[0], ids[2]);
  const std::array<uint8_t, 3> all = {1, 1, 1}, no_c = {1, 1, 0}, none = {0, 0, 0};
  constexpr int kKeys = 30000;
  std::array<int, 3> share{};
  int moved = 0;
  for (int i = 0; i < kKeys; ++i) {
    const uint64_t h = key_hash("key-" + std::to_string(i));
    const size_t o = rendezvous(h, ids, all);
    ASSERT_LT(o, 3u);
    ++share[o];
    const size_t o2 = rendezvous(h, ids, no_c);
    ASSERT_LT(o2, 2u);
    if (o != 2) {
      EXPECT_EQ(o2, o) << "a key of a node still up moved";
    }
    moved += o != o2;
    EXPECT_EQ(rendezvous(h, ids, none), 3u);
  }
  for (int s : share) {  // a third each, within 5 %
    EXPECT_GT(s, kKeys / 3 * 95 / 100);
    EXPECT_LT(s, kKeys / 3 * 105 / 100);
  }
  EXPECT_EQ(moved, share[2]);  // exactly the leaver's keys
}

}  // namespace
}  // namespace cw::kv
