// ConnSlots: per-connection state sized once, found only by the ConnId that opened it, reset
// on open and on close.
#include "app/runtime/conn_slots.hh"

#include <gtest/gtest.h>

namespace cw::rt {
namespace {

struct State {
  uint32_t bytes = 0;
  bool seen = false;
};

constexpr dp::ConnId conn(uint32_t gen, uint32_t slot) {
  return (gen << 24) | slot;
}

TEST(ConnSlots, OpenFindClose) {
  ConnSlots<State> s(8);
  EXPECT_EQ(s.capacity(), 8u);
  const dp::ConnId c = conn(1, 3);
  EXPECT_EQ(s.find(c), nullptr) << "never opened";
  State* st = s.open(c);
  ASSERT_NE(st, nullptr);
  EXPECT_EQ(st->bytes, 0u);
  st->bytes = 100;
  st->seen = true;
  EXPECT_EQ(s.find(c), st);
  s.close(c);
  EXPECT_EQ(s.find(c), nullptr) << "closed";
  s.close(c);  // twice: nothing
  // The slot's next connection starts fresh.
  const dp::ConnId next = conn(2, 3);
  State* n = s.open(next);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->bytes, 0u);
  EXPECT_FALSE(n->seen);
}

TEST(ConnSlots, StaleHandleFindsNothing) {
  ConnSlots<State> s(8);
  const dp::ConnId old = conn(1, 5), now = conn(2, 5);
  s.open(old)->bytes = 7;
  s.open(now)->bytes = 9;  // the backend reused the slot (old was closed without our close)
  EXPECT_EQ(s.find(old), nullptr);
  s.close(old);  // a late close for the old handle must not reset the new connection
  ASSERT_NE(s.find(now), nullptr);
  EXPECT_EQ(s.find(now)->bytes, 9u);
}

TEST(ConnSlots, OutOfRange) {
  ConnSlots<State> s(4);
  EXPECT_EQ(s.open(conn(1, 4)), nullptr);
  EXPECT_EQ(s.open(dp::kNoConn), nullptr);
  EXPECT_EQ(s.find(dp::kNoConn), nullptr);
  s.close(conn(1, 9));  // nothing
}

}  // namespace
}  // namespace cw::rt
