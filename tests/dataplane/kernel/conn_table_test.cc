// Connection slots: generations reject stale handles, the bound holds, the notify list is
// FIFO without duplicates, and the idle sweep finds exactly the idle slots.
#include "dataplane/kernel/conn_table.hh"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <vector>

namespace cw::dp::kernel {
namespace {

struct Extra {
  int v = 0;
};
using Table = ConnTable<Extra>;

TEST(ConnTable, AllocUntilFullThenReuseWithNewGeneration) {
  Table t(3);
  std::vector<uint32_t> s;
  for (int i = 0; i < 3; ++i) s.push_back(t.alloc(10 + i, 0, {}, ConnState::open, 0));
  EXPECT_EQ(s, (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_TRUE(t.full());
  EXPECT_EQ(t.alloc(99, 0, {}, ConnState::open, 0), kNilSlot);
  const ConnId old = t.id(1);
  ASSERT_EQ(t.find(old), &t.at(1));
  t.at(1).x.v = 7;
  t.release(1);
  EXPECT_EQ(t.find(old), nullptr) << "a released slot is not found";
  EXPECT_EQ(t.alloc(20, 0, {}, ConnState::open, 0), 1u);
  EXPECT_EQ(t.find(old), nullptr) << "the old handle does not name the new connection";
  EXPECT_NE(t.find(t.id(1)), nullptr);
  EXPECT_EQ(t.at(1).x.v, 0) << "extra state starts fresh";
  EXPECT_EQ(t.at(1).fd, 20);
  EXPECT_EQ(t.in_use(), 3u);
  EXPECT_EQ(t.find(kNoConn), nullptr);
  EXPECT_EQ(conn_slot(t.id(2)), 2u);
}

TEST(ConnTable, GenerationWrapsWithoutProducingNoConn) {
  Table t(1);
  std::set<ConnId> seen;
  for (int i = 0; i < 600; ++i) {
    const uint32_t s = t.alloc(1, 0, {}, ConnState::open, 0);
    ASSERT_EQ(s, 0u);
    EXPECT_NE(t.id(s), kNoConn);
    seen.insert(t.id(s));
    t.release(s);
  }
  EXPECT_EQ(seen.size(), 256u);
}

TEST(ConnTable, NotifyIsFifoAndQueuesEachSlotOnce) {
  Table t(4);
  for (int i = 0; i < 4; ++i) t.alloc(i, 0, {}, ConnState::open, 0);
  t.notify(2);
  t.notify(0);
  t.notify(2);
  t.notify(3);
  EXPECT_EQ(t.pop_notify(), 2u);
  EXPECT_EQ(t.pop_notify(), 0u);
  t.notify(2);
  EXPECT_EQ(t.pop_notify(), 3u);
  EXPECT_EQ(t.pop_notify(), 2u);
  EXPECT_FALSE(t.has_notify());
  EXPECT_EQ(t.pop_notify(), kNilSlot);
}

TEST(ConnTable, IdleSweepFindsIdleLiveSlotsOnly) {
  const uint64_t ms = 1'000'000;
  Table t(3000);
  for (uint32_t i = 0; i < 3000; ++i) t.alloc(int(i), 0, {}, ConnState::open, 0);
  // Slot 5 had traffic recently; slot 7 is a zombie (already closing); 2500 is freed.
  t.at(5).last_ns = 95 * ms;
  t.at(7).state = ConnState::zombie;
  t.release(2500);
  std::vector<uint32_t> idle;
  // A round covers 3000 slots in steps of kIdleSweepSlots.
  for (int step = 0; step < 3; ++step)
    t.sweep_idle(100 * ms, 10 * ms, [&](uint32_t s) { idle.push_back(s); });
  EXPECT_EQ(idle.size(), 3000u - 3);
  EXPECT_EQ(std::count(idle.begin(), idle.end(), 5u), 0);
  EXPECT_EQ(std::count(idle.begin(), idle.end(), 7u), 0);
  EXPECT_EQ(std::count(idle.begin(), idle.end(), 2500u), 0);
  // The round finished: nothing more until the interval (timeout/4) passed.
  EXPECT_GT(t.next_sweep_ns(), 100 * ms);
  idle.clear();
  t.sweep_idle(101 * ms, 10 * ms, [&](uint32_t s) { idle.push_back(s); });
  EXPECT_TRUE(idle.empty());
  t.sweep_idle(200 * ms, 0, [&](uint32_t s) { idle.push_back(s); });
  EXPECT_TRUE(idle.empty()) << "timeout 0 disables the sweep";
}

}  // namespace
}  // namespace cw::dp::kernel
